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
    app.remove_behind_back(&gone_ctr.id);
    // ... and an extra container appears for `stray`.
    let extra = app.run_behind_back(
        &format!("stray-{}", app.owner.owner()),
        &[
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
        ],
    );
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

/// Issue 13 §8: a patch whose rollback could not finish leaves the previous
/// engine stopped under its parking name `rtmold-<game>`, the record
/// `stopped` on it and the row `patch_rollback_incomplete`. The reconciler
/// finishes the rollback (renamed back, started, record `running`); it
/// never removes that container as garbage.
#[tokio::test]
async fn reconcile_finishes_an_incomplete_patch_rollback() {
    let app = spawn_app().await;
    let g = gid(&app, "rc-parked");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let old = containers(&app, g).pop().expect("container");
    let starts = starts(&app, g);

    // The state an incomplete rollback leaves: the old engine stopped and
    // parked, the failed patch recorded with its code (what RTM writes
    // when Docker kept refusing), the record `stopped`.
    use rtm_testkit::docker::docker;
    let old_ctr = app.docker_container(&old.id).await;
    docker(&["stop", "-t", "5", &old_ctr]).expect("docker stop");
    app.rename_behind_back(&old.id, &format!("rtmold-{g}"));
    let client = app.db.admin_client().await.expect("admin client");
    client
        .execute(
            "INSERT INTO operation_log (game_id, op_kind, op_source, source_ref, image_ref, \
               container_id, outcome, error_code, error_message, started_at, finished_at) \
             VALUES ($1, 'patch', 'admin_rest', '', $2, $3, 'failure', \
               'patch_rollback_incomplete', 'rollback could not finish', now(), now())",
            &[&g, &image("1.0.1"), &old.id],
        )
        .await
        .expect("insert row");
    client
        .execute(
            "UPDATE runtime_records SET status = 'stopped', stopped_at = now(), \
               last_op_at = now() WHERE game_id = $1",
            &[&g],
        )
        .await
        .expect("record stopped");

    // Reconcile passes (ours, or the timer's first pass of this replica)
    // finish it; a pass may skip the game while a monitor holds it. None
    // removes anything.
    wait_for("the rollback finished", Duration::from_secs(60), || async {
        let (status, summary) = app.admin_post("/admin/v1/reconcile", None).await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["disposed"], 0, "{summary}");
        assert_eq!(summary["removed"], 0, "{summary}");
        record(&app, g).await.filter(|r| r["status"] == "running")
    })
    .await;
    let now = containers(&app, g);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].id, old.id, "the same container, not a new one");
    assert_eq!(now[0].name, format!("rtm-{g}"));
    assert!(now[0].running);
    let rec = record(&app, g).await.expect("record");
    assert_eq!(rec["status"], "running", "{rec}");
    assert_eq!(rec["container_id"], old.id.as_str());
    assert_eq!(rec["image_ref"], image("1.0.0"));
    wait_engine_started(&app, g, starts + 1).await;
    // Exactly one repair row after the failed patch.
    let all = rows(&app, g).await;
    let patch_at = all
        .iter()
        .position(|r| r.error_code == "patch_rollback_incomplete")
        .expect("the patch row");
    let after: Vec<_> = all[patch_at + 1..]
        .iter()
        .map(|r| (r.op_kind.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(after, vec![("reconcile_adopt", "success")], "{all:?}");
    // Done: the next pass has nothing to repair.
    for _ in 0..20 {
        let (_, again) = app.admin_post("/admin/v1/reconcile", None).await;
        assert_eq!(
            (again["adopted"].clone(), again["disposed"].clone()),
            (json!(0), json!(0)),
            "{again}"
        );
        if again["skipped_busy"] == 0 {
            break;
        }
    }
}
