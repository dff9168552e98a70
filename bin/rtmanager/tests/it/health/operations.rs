//! RTM's own operations are not health events: the `die` of its restart,
//! the old container a patch removes, the engine its stop ends (even with
//! a zero grace period, i.e. a kill) are audited as operations and never
//! observed as exits or disappearances.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtm_own_restart_patch_and_stop_are_not_observed() {
    let app = spawn_app().await;
    let g = game("hops");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let first = view["container_id"].as_str().expect("container").to_owned();
    let first_start = view["started_at"].clone();

    let (status, body) = app
        .gm_post(&format!("/api/v1/runtimes/{g}/restart"), None)
        .await;
    assert_eq!(status, 200, "restart: {body}");
    assert_eq!(body["operation"]["outcome"], "success", "{body}");
    assert_eq!(body["runtime"]["container_id"], first.as_str(), "{body}");
    assert_ne!(body["runtime"]["started_at"], first_start, "{body}");
    // Let the monitor see the restart's die/start and probe the engine again.
    settle(&app, 2).await;
    let (_, view) = app.runtime(&g).await;
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(view["health"]["status"], "healthy", "{view}");
    assert_eq!(types(&events(&app, &g).await), ["healthy"]);

    let (status, body) = app
        .gm_post(
            &format!("/api/v1/runtimes/{g}/patch"),
            Some(serde_json::json!({ "image_ref": image("1.0.1") })),
        )
        .await;
    assert_eq!(status, 200, "patch: {body}");
    let second = body["runtime"]["container_id"]
        .as_str()
        .expect("container")
        .to_owned();
    assert_ne!(second, first, "a patch replaces the container");
    let evs = wait_for("a healthy event for the new container", CHANGE, || async {
        let evs = events(&app, &g).await;
        evs.iter().any(|e| e.container_id == second).then_some(evs)
    })
    .await;
    assert_eq!(types(&evs), ["healthy", "healthy"], "{evs:#?}");

    // A stop with no grace period: Docker kills the engine.
    let (status, body) = app
        .gm_post(
            &format!("/api/v1/runtimes/{g}/stop"),
            Some(serde_json::json!({ "timeout_s": 0 })),
        )
        .await;
    assert_eq!(status, 200, "stop: {body}");
    assert_eq!(body["runtime"]["status"], "stopped", "{body}");
    settle(&app, 3).await;

    let evs = events(&app, &g).await;
    assert_eq!(types(&evs), ["healthy", "healthy"], "{evs:#?}");
    assert_eq!(evs[0].container_id, first);
    assert_eq!(evs[1].container_id, second);
    let (_, view) = app.runtime(&g).await;
    assert_eq!(view["status"], "stopped", "{view}");
    assert_eq!(view["container_id"], second.as_str(), "{view}");
    // A stopped game shows no `healthy` health (that engine is gone)...
    assert_eq!(view["health"], serde_json::Value::Null, "{view}");
    assert_eq!(view["health_state"], "not_running", "{view}");
    // ...and the stop is no observed exit: the latest snapshot is still
    // the healthy one of the second container.
    let (status, page) = app.admin_get("/admin/v1/health?limit=500").await;
    assert_eq!(status, 200, "{page}");
    let snapshot = page["health"]
        .as_array()
        .and_then(|items| items.iter().find(|h| h["game_id"] == g.as_str()))
        .unwrap_or_else(|| panic!("no snapshot of {g}: {page}"));
    assert_eq!(
        snapshot["status"], "healthy",
        "the stop is no observed exit: {snapshot}"
    );
    assert_eq!(snapshot["container_id"], second.as_str(), "{snapshot}");
    assert_eq!(
        op_kinds(&app, &g).await,
        ["start", "restart", "patch", "stop"]
    );
    let outcomes: Vec<String> = app
        .operation_rows(&g)
        .await
        .iter()
        .map(|r| r.get::<_, String>("outcome"))
        .collect();
    assert!(outcomes.iter().all(|o| o == "success"), "{outcomes:?}");
}
