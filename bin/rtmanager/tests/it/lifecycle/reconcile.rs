//! Reconcile through `POST /admin/v1/reconcile` (SPEC §8): an unrecorded
//! container of RTM's is adopted, a record whose container vanished
//! becomes `removed`, a stray extra container of a game is disposed.

use super::*;

#[tokio::test]
async fn reconcile_adopts_removes_and_disposes() {
    let app = spawn_app().await;
    let (adopt, gone, stray) = (
        gid(&app, "rc-adopt"),
        gid(&app, "rc-gone"),
        gid(&app, "rc-stray"),
    );
    let (adopt, gone, stray) = (adopt.as_str(), gone.as_str(), stray.as_str());
    for g in [adopt, gone, stray] {
        start_running(&app, g, "1.0.0").await;
    }
    let adopt_ctr = containers(&app, adopt).pop().expect("container");
    let stray_keep = containers(&app, stray).pop().expect("container");

    // Out of band: the record of `adopt` is lost ...
    let client = app.db.admin_client().await.expect("admin client");
    client
        .execute("DELETE FROM health_snapshots WHERE game_id = $1", &[&adopt])
        .await
        .expect("delete health");
    client
        .execute("DELETE FROM runtime_records WHERE game_id = $1", &[&adopt])
        .await
        .expect("delete record");
    assert!(record(&app, adopt).await.is_none());
    // ... the container of `gone` is removed behind RTM's back ...
    let gone_ctr = containers(&app, gone).pop().expect("container");
    rtm_testkit::docker::docker(&["rm", "-f", &gone_ctr.id]).expect("docker rm");
    // ... and an extra container appears for `stray`.
    let extra = rtm_testkit::docker::docker(&[
        "run",
        "-d",
        "--name",
        &format!("stray-{}", app.owner.owner()),
        "--label",
        "rtm.managed=true",
        "--label",
        &format!("rtm.owner={}", app.owner.owner()),
        "--label",
        &format!("rtm.game_id={stray}"),
        "--label",
        &format!("rtm.image_ref={}", image("1.0.0")),
        "--user",
        "65534:65534",
        "-e",
        &format!("GAME_ID={stray}"),
        "-e",
        "ENGINE_STATE_DIR=/tmp",
        "-e",
        "ENGINE_PORT=8080",
        &image("1.0.0"),
    ])
    .expect("docker run")
    .trim()
    .to_owned();
    assert_eq!(containers(&app, stray).len(), 2);
    let rows_before = (
        rows(&app, adopt).await.len(),
        rows(&app, gone).await.len(),
        rows(&app, stray).await.len(),
    );

    let (s, summary) = app.admin_post("/admin/v1/reconcile", None).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["adopted"], 1, "{summary}");
    assert_eq!(summary["disposed"], 1, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["skipped_busy"], 0, "{summary}");

    // Adopted: the record is rebuilt from the container.
    let rec = record(&app, adopt).await.expect("adopted record");
    assert_eq!(rec["status"], "running", "{rec}");
    assert_eq!(rec["container_id"], adopt_ctr.id.as_str());
    assert_eq!(rec["image_ref"], image("1.0.0"));
    assert_eq!(rec["engine_endpoint"], format!("http://rtm-{adopt}:8080"));
    assert_eq!(
        rec["state_path"],
        app.state_dir(adopt).display().to_string()
    );
    let r = rows(&app, adopt).await;
    assert_eq!(r.len(), rows_before.0 + 1, "{r:?}");
    let last = r.last().unwrap();
    assert_eq!(
        (
            last.op_kind.as_str(),
            last.op_source.as_str(),
            last.outcome.as_str()
        ),
        ("reconcile_adopt", "admin_rest", "success")
    );
    assert_eq!(last.container_id, adopt_ctr.id);
    let c = containers(&app, adopt);
    assert_eq!(c.len(), 1);
    assert!(c[0].running);

    // Gone: the record is removed with `container_disappeared` (the health
    // monitor may have noticed first; either way it ends here).
    let rec = record(&app, gone).await.expect("record");
    assert_eq!(rec["status"], "removed", "{rec}");
    assert!(rec["removed_at"].is_string(), "{rec}");
    assert_eq!(rec["health"]["status"], "container_disappeared", "{rec}");
    let r = rows(&app, gone).await;
    if summary["removed"] == 1 {
        assert_eq!(r.len(), rows_before.1 + 1, "{r:?}");
        assert_eq!(r.last().unwrap().op_kind, "reconcile_dispose");
    } else {
        assert_eq!(summary["removed"], 0, "{summary}");
    }
    assert!(containers(&app, gone).is_empty());

    // Stray: the extra container is gone, the bound one untouched.
    let c = containers(&app, stray);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].id, stray_keep.id);
    assert!(c[0].running);
    assert_ne!(c[0].id, extra);
    let rec = record(&app, stray).await.unwrap();
    assert_eq!(rec["status"], "running");
    assert_eq!(rec["container_id"], stray_keep.id.as_str());
    let r = rows(&app, stray).await;
    assert_eq!(r.len(), rows_before.2 + 1, "{r:?}");
    let last = r.last().unwrap();
    assert_eq!(
        (
            last.op_kind.as_str(),
            last.op_source.as_str(),
            last.outcome.as_str()
        ),
        ("reconcile_dispose", "admin_rest", "success")
    );

    // A second pass right after finds nothing to repair.
    let (s, again) = app.admin_post("/admin/v1/reconcile", None).await;
    assert_eq!(s, 200, "{again}");
    for k in ["adopted", "disposed", "removed", "errors"] {
        assert_eq!(again[k], 0, "{k}: {again}");
    }
}
