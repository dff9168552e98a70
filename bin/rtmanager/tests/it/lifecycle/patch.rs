//! Patch rules (SPEC §5): a patched engine that never becomes healthy is
//! rolled back onto the old container; only the patch version may change
//! without `force`; the repository may never change.

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_broken_patch_rolls_back_to_the_old_container() {
    let app = spawn_app().await;
    let g = gid(&app, "patch-broken");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let before = snapshot(&app, g).await;
    assert_eq!(before.containers.len(), 1);
    let old = before.containers[0].clone();

    let (status, body) = app
        .admin_post(
            &format!("/admin/v1/runtimes/{g}/patch"),
            Some(json!({"image_ref": image("broken"), "force": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "patch_rolled_back", "{body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");

    // The old engine runs again, under its own name, and answers.
    let after = snapshot(&app, g).await;
    let rec = after.record.clone().expect("record");
    assert_eq!(rec["status"], "running");
    assert_eq!(rec["container_id"], old.id.as_str());
    assert_eq!(rec["image_ref"], image("1.0.0"));
    assert_eq!(
        rec["created_at"],
        before.record.as_ref().unwrap()["created_at"]
    );
    assert_eq!(
        after.containers.len(),
        1,
        "no leftover: {:?}",
        after.containers
    );
    let c = &after.containers[0];
    assert_eq!(c.id, old.id);
    assert_eq!(c.name, format!("rtm-{g}"));
    assert!(c.running);
    assert_eq!(c.image, image("1.0.0"));
    let health = wait_for("old engine healthz", Duration::from_secs(10), || async {
        engine_health(c).await
    })
    .await;
    assert_eq!(health["version"], "1.0.0", "{health}");
    assert_eq!(health["game_id"], g, "{health}");

    // Exactly one failed patch row.
    assert_eq!(after.rows.len(), before.rows.len() + 1, "{:?}", after.rows);
    let row = after.rows.last().unwrap();
    assert_eq!(body["operation"]["id"], row.id);
    assert_eq!(
        (
            row.op_kind.as_str(),
            row.op_source.as_str(),
            row.outcome.as_str()
        ),
        ("patch", "admin_rest", "failure")
    );
    assert_eq!(row.error_code, "patch_rolled_back");
    assert_eq!(row.image_ref, image("broken"));
    // Nothing parked under the temporary name either (any owner label).
    let parked = app.containers_named(&format!("rtmold-{g}"));
    assert!(parked.is_empty(), "parked container left: {parked:?}");
}

#[tokio::test]
async fn only_patch_versions_without_force_and_never_another_repository() {
    // The whole `rtm.local` registry is allowed, so another repository is
    // refused by the patch rule itself, not by the allow-list.
    let app = spawn_app_with(|v| {
        v.insert("RTM_IMAGE_ALLOWLIST".into(), "rtm.local/*".into());
    })
    .await;
    let g = gid(&app, "patch-rules");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let path = format!("/runtimes/{g}/patch");

    // A minor bump on the GM surface is refused, recorded, and changes nothing.
    let before = snapshot(&app, g).await;
    let (status, body) = app
        .gm_post(
            &format!("/api/v1{path}"),
            Some(json!({"image_ref": image("1.1.0")})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "patch_not_allowed", "{body}");
    let after = snapshot(&app, g).await;
    assert_eq!(
        without_health(&after.record),
        without_health(&before.record)
    );
    assert_eq!(after.containers.len(), 1);
    assert_eq!(after.containers[0].id, before.containers[0].id);
    assert!(after.containers[0].running);
    assert_eq!(after.rows.len(), before.rows.len() + 1);
    let row = after.rows.last().unwrap();
    assert_eq!(
        (
            row.op_kind.as_str(),
            row.op_source.as_str(),
            row.outcome.as_str()
        ),
        ("patch", "gm_rest", "failure")
    );
    assert_eq!(row.error_code, "patch_not_allowed");

    // `force` is not a GM field.
    let (status, body) = app
        .gm_post(
            &format!("/api/v1{path}"),
            Some(json!({"image_ref": image("1.1.0"), "force": true})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(rows(&app, g).await.len(), after.rows.len());

    // Another repository: refused even with force, and recorded.
    let (status, body) = app
        .admin_post(
            &format!("/admin/v1{path}"),
            Some(json!({"image_ref": "rtm.local/other-engine:1.0.1", "force": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "patch_not_allowed", "{body}");
    let after2 = snapshot(&app, g).await;
    assert_eq!(
        without_health(&after2.record),
        without_health(&before.record)
    );
    assert_eq!(after2.containers[0].id, before.containers[0].id);
    assert_eq!(after2.rows.len(), after.rows.len() + 1);
    assert_eq!(after2.rows.last().unwrap().error_code, "patch_not_allowed");
    assert_eq!(after2.rows.last().unwrap().op_source, "admin_rest");

    // The admin surface with force: the minor bump happens.
    let (status, body) = app
        .admin_post(
            &format!("/admin/v1{path}"),
            Some(json!({"image_ref": image("1.1.0"), "force": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_engine_started(&app, g, before.starts + 1).await;
    let done = snapshot(&app, g).await;
    let rec = done.record.clone().unwrap();
    assert_eq!(rec["status"], "running");
    assert_eq!(rec["image_ref"], image("1.1.0"));
    assert_eq!(done.containers.len(), 1, "{:?}", done.containers);
    let c = &done.containers[0];
    assert_ne!(c.id, before.containers[0].id, "a new container");
    assert_eq!(rec["container_id"], c.id.as_str());
    assert_eq!(c.image, image("1.1.0"));
    assert_eq!(c.name, format!("rtm-{g}"));
    // The state directory carried over: the new engine appended its start.
    assert_eq!(done.starts, before.starts + 1);
    let log = std::fs::read_to_string(app.state_dir(g).join("starts.log")).unwrap();
    assert!(log.lines().next().unwrap().starts_with("1.0.0 "), "{log}");
    assert!(log.lines().last().unwrap().starts_with("1.1.0 "), "{log}");
    let row = done.rows.last().unwrap();
    assert_eq!(
        (
            row.op_kind.as_str(),
            row.op_source.as_str(),
            row.outcome.as_str()
        ),
        ("patch", "admin_rest", "success")
    );
    assert_eq!(row.container_id, c.id);
}

/// Issue 13 §8: the new container is removed behind RTM's back (`docker
/// rm -f`) during the patch's health gate. Whatever Docker is doing with
/// it then (removal in progress, already gone), the previous engine comes
/// back under its own name and running, the row says
/// `patch_rolled_back`, and its DNS name resolves to it alone.
#[tokio::test]
async fn a_patch_whose_new_container_is_removed_during_the_gate_rolls_back() {
    let app = spawn_app_with(|v| {
        // Room to remove the new container while the gate waits.
        v.insert("RTM_PATCH_HEALTH_TIMEOUT".into(), "60s".into());
    })
    .await;
    let g = gid(&app, "patch-rmf");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let before = snapshot(&app, g).await;
    let old = before.containers[0].clone();
    // The new engine never turns healthy (the state dir carries over).
    let unhealthy = app.state_dir(g).join("unhealthy");
    std::fs::write(&unhealthy, "").expect("control file");

    let admin = app.admin.clone();
    let path = format!("/admin/v1/runtimes/{g}/patch");
    let patch = tokio::spawn(async move {
        call(
            "POST",
            &format!("{admin}{path}"),
            Some(ADMIN_TOKEN),
            Some(json!({"image_ref": image("1.0.1")})),
            &[],
        )
        .await
    });
    // The gate is open once the new engine runs under the canonical name.
    let new = wait_for("the new engine", Duration::from_secs(60), || async {
        containers(&app, g)
            .into_iter()
            .find(|c| c.id != old.id && c.running && c.image == image("1.0.1"))
    })
    .await;
    // The engine's container vanishes (on a swarm: its task's container).
    let new_ctr = app.docker_container(&new.id).await;
    rtm_testkit::docker::docker(&["rm", "-f", &new_ctr]).expect("docker rm -f");
    let (status, body) = tokio::time::timeout(Duration::from_secs(120), patch)
        .await
        .expect("the patch answers")
        .expect("patch task");
    std::fs::remove_file(&unhealthy).expect("remove control file");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "patch_rolled_back", "{body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    assert_eq!(body["runtime"]["container_id"], old.id.as_str(), "{body}");

    let after = snapshot(&app, g).await;
    assert_eq!(after.containers.len(), 1, "{:?}", after.containers);
    let c = &after.containers[0];
    assert_eq!((c.id.as_str(), c.running), (old.id.as_str(), true));
    assert_eq!(c.name, format!("rtm-{g}"));
    assert_eq!(c.image, image("1.0.0"));
    let rec = after.record.clone().expect("record");
    assert_eq!(rec["status"], "running");
    assert_eq!(rec["container_id"], old.id.as_str());
    assert_eq!(rec["image_ref"], image("1.0.0"));
    assert_eq!(after.rows.len(), before.rows.len() + 1);
    let row = after.rows.last().unwrap();
    assert_eq!(
        (
            row.op_kind.as_str(),
            row.outcome.as_str(),
            row.error_code.as_str()
        ),
        ("patch", "failure", "patch_rolled_back")
    );
    let health = wait_for("old engine healthz", Duration::from_secs(20), || async {
        engine_health(c).await
    })
    .await;
    assert_eq!(health["version"], "1.0.0", "{health}");
    assert_eq!(
        resolve(&app, &format!("rtm-{g}")),
        vec![container_ip(&app, c)]
    );
}
