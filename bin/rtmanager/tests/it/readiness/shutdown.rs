//! Graceful shutdown of the in-process app (as on SIGTERM): new work is
//! refused at once, an operation in flight completes and is recorded,
//! engines keep running, and the next start finds Docker and the database
//! in agreement (the reconciler has nothing to adopt or dispose).

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_work_and_leaves_engines_running() {
    let slow = game("slow");
    let steady = game("steady");
    let parked = game("parked");
    let late = game("late");
    let mut app = spawn_app_with(|v| {
        // The slow operation is a health-gated patch held back by the
        // stub's `unhealthy` file; both bounds exceed the test's steps.
        v.insert("RTM_PATCH_HEALTH_TIMEOUT".into(), "25s".into());
        v.insert("RTM_SHUTDOWN_TIMEOUT".into(), "30s".into());
    })
    .await;
    for game in [&slow, &steady, &parked] {
        let (status, body) = app.start_game(game, &image("1.0.0")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .gm_post(
            &format!("/api/v1/runtimes/{parked}/stop"),
            Some(json!({"timeout_s": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The patch's new engine answers 503 while this file exists.
    let unhealthy = app.state_dir(&slow).join("unhealthy");
    std::fs::write(&unhealthy, "").expect("write unhealthy");
    let patch = tokio::spawn({
        let url = format!("{}/api/v1/runtimes/{slow}/patch", app.gm);
        async move {
            call(
                "POST",
                &url,
                Some(GM_TOKEN),
                Some(json!({ "image_ref": image("1.0.1") })),
                &[],
            )
            .await
        }
    });
    // In flight: the new container exists beside the parked old one.
    wait_for(
        "the patch's second container",
        Duration::from_secs(30),
        || async { (app.containers(&slow).len() == 2).then_some(()) },
    )
    .await;

    let running = app.app.take().expect("running");
    let (gm_addr, admin_addr) = (running.gm_addr, running.admin_addr);
    let shutdown = tokio::spawn(running.shutdown());

    // New work is refused at once, while the patch is still held back.
    wait_for("listeners closed", Duration::from_secs(10), || async {
        (refuses(gm_addr).await && refuses(admin_addr).await).then_some(())
    })
    .await;
    assert!(
        !patch.is_finished(),
        "the patch is still waiting for health"
    );
    // Arrives during the shutdown; must be handled once, by the next start.
    let redis = rtm_testkit::redis::client(&rtm_testkit::redis::redis_url()).await;
    rtm_testkit::redis::xadd(
        &redis,
        &app.lobby_stream,
        &[
            ("op", "start"),
            ("game_id", late.as_str()),
            ("image_ref", &image("1.0.0")),
        ],
    )
    .await;

    std::fs::remove_file(&unhealthy).expect("remove unhealthy");
    let (status, body) = tokio::time::timeout(Duration::from_secs(40), patch)
        .await
        .expect("the in-flight patch answers")
        .expect("patch task");
    assert_eq!(status, 200, "the in-flight patch completed: {body}");
    assert_eq!(body["runtime"]["image_ref"], image("1.0.1"), "{body}");
    tokio::time::timeout(Duration::from_secs(40), shutdown)
        .await
        .expect("shutdown ends within its timeout")
        .expect("shutdown task");

    // Recorded, committed.
    let rows = app.operation_rows(&slow).await;
    let last = rows.last().expect("rows");
    assert_eq!(last.get::<_, String>("op_kind"), "patch");
    assert_eq!(last.get::<_, String>("outcome"), "success");
    let id: i64 = last.get("id");
    let client = app.db.admin_client().await.expect("admin client");
    let finished: bool = client
        .query_one(
            "SELECT finished_at IS NOT NULL FROM operation_log WHERE id = $1",
            &[&id],
        )
        .await
        .expect("row")
        .get(0);
    assert!(finished);

    // Engines outlive RTM.
    let mut expected = Vec::new();
    for game in [&slow, &steady] {
        let ids = app.containers(game);
        assert_eq!(ids.len(), 1, "{game}: {ids:?}");
        let state = rtm_testkit::docker::docker(&["inspect", "-f", "{{.State.Running}}", &ids[0]])
            .expect("inspect");
        assert_eq!(state.trim(), "true", "{game} still runs");
        expected.push((game, ids[0].clone()));
    }

    // A new app on the same schema and owner: everything already agrees.
    app.start().await;
    wait_for(
        "the start-up reconcile pass",
        Duration::from_secs(20),
        || async { (worker_runs(&app.admin, "reconcile").await >= 1.0).then_some(()) },
    )
    .await;
    let repairs: i64 = client
        .query_one(
            "SELECT count(*) FROM operation_log WHERE op_kind IN ('reconcile_adopt', 'reconcile_dispose')",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(repairs, 0, "nothing to adopt or dispose after a clean stop");
    let (status, summary) = app.admin_post("/admin/v1/reconcile", None).await;
    assert_eq!(status, 200, "{summary}");
    for (game, id) in &expected {
        let (_, v) = app.runtime(game).await;
        assert_eq!(v["status"], "running", "{v}");
        assert_eq!(v["container_id"], id.as_str(), "{v}");
    }
    let (_, v) = app.runtime(&parked).await;
    assert_eq!(v["status"], "stopped", "{v}");

    // The entry that arrived during the shutdown is handled exactly once.
    wait_for("the late Lobby entry", Duration::from_secs(30), || async {
        let (s, v) = app.runtime(&late).await;
        (s == 200 && v["status"] == "running").then_some(())
    })
    .await;
    assert_eq!(app.operation_rows(&late).await.len(), 1);
    assert_eq!(app.containers(&late).len(), 1);
    let repairs: i64 = client
        .query_one(
            "SELECT count(*) FROM operation_log WHERE op_kind IN ('reconcile_adopt', 'reconcile_dispose')",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        repairs, 0,
        "the explicit pass found nothing either: {summary}"
    );
    app.stop().await;
}
