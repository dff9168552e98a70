//! Bounded growth: refusals on unknown games are audited, yet under a
//! flood of them the audit table shrinks back once they pass
//! `RTM_AUDIT_RETENTION`, while a live game keeps its last row.

use std::time::Duration;

use super::*;

async fn operation_count(app: &TestApp) -> i64 {
    let client = app.db.admin_client().await.expect("admin client");
    client
        .query_one("SELECT count(*) FROM operation_log", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_on_unknown_games_stays_bounded() {
    let live = game("ret-live");
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_AUDIT_RETENTION".into(), "1s".into());
        vars.insert("RTM_CLEANUP_INTERVAL".into(), "1s".into());
    })
    .await;
    let (status, body) = app.start_game(&live, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");

    const FLOOD: usize = 300;
    for i in 0..FLOOD {
        let ghost = game(&format!("ghost{i}"));
        let (status, body) = app
            .gm_post(&format!("/api/v1/runtimes/{ghost}/stop"), None)
            .await;
        assert_eq!(status, 404, "{body}");
    }
    // Every refusal was recorded (the row itself may already be gone).
    let text = metrics_text(&app.admin).await;
    assert_eq!(
        series(
            &text,
            r#"rtm_operations_total{op_kind="stop",op_source="gm_rest",outcome="failure"}"#
        ),
        Some(FLOOD as f64),
        "{text}"
    );

    // Within a few cleanup passes only the live game's last row is left.
    wait_for(
        "the audit table shrinks",
        Duration::from_secs(30),
        || async { (operation_count(&app).await == 1).then_some(()) },
    )
    .await;
    let rows = app.operation_rows(&live).await;
    assert_eq!(rows.len(), 1, "the live game keeps its last operation");
    let text = metrics_text(&app.admin).await;
    assert!(
        series(&text, r#"rtm_retention_deleted_total{what="operations"}"#)
            .is_some_and(|n| n >= FLOOD as f64),
        "{text}"
    );
    assert_eq!(app.runtime(&live).await.0, 200);
}

/// Starts `g`, then stops and cleans it up through the admin API: its
/// record is `removed`, its state directory still on disk.
async fn removed_game(app: &TestApp, g: &str) {
    let (status, body) = app.start_game(g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    for op in ["stop", "cleanup"] {
        let (status, body) = app
            .admin_post(&format!("/admin/v1/runtimes/{g}/{op}"), None)
            .await;
        assert_eq!(status, 200, "{op}: {body}");
    }
    let (status, body) = app.runtime(g).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "removed", "{body}");
    assert!(app.state_dir(g).is_dir(), "state directory kept on removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_games_are_forgotten_but_their_state_stays_by_default() {
    let g = game("ret-keep");
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_REMOVED_RETENTION".into(), "1s".into());
        vars.insert("RTM_CLEANUP_INTERVAL".into(), "1s".into());
    })
    .await;
    removed_game(&app, &g).await;
    wait_for(
        "the removed game forgotten",
        Duration::from_secs(30),
        || async { (app.runtime(&g).await.0 == 404).then_some(()) },
    )
    .await;
    assert!(
        app.state_dir(&g).is_dir(),
        "without RTM_STATE_RETENTION the state is never deleted"
    );
    let text = metrics_text(&app.admin).await;
    assert!(series(&text, r#"rtm_retention_deleted_total{what="games"}"#) >= Some(1.0));
    assert_eq!(
        series(&text, r#"rtm_retention_deleted_total{what="states"}"#),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_state_retention_deletes_the_state_with_the_record() {
    let g = game("ret-state");
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_REMOVED_RETENTION".into(), "1s".into());
        vars.insert("RTM_STATE_RETENTION".into(), "2s".into());
        vars.insert("RTM_CLEANUP_INTERVAL".into(), "1s".into());
    })
    .await;
    removed_game(&app, &g).await;
    let dir = app.state_dir(&g);
    wait_for(
        "the removed game forgotten",
        Duration::from_secs(30),
        || async { (app.runtime(&g).await.0 == 404).then_some(()) },
    )
    .await;
    assert!(!dir.exists(), "{} deleted", dir.display());
    // A running game's state is never touched.
    let live = game("ret-live2");
    let (status, body) = app.start_game(&live, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    wait_for("another cleanup pass", Duration::from_secs(30), || async {
        let text = metrics_text(&app.admin).await;
        (series(&text, r#"rtm_retention_deleted_total{what="states"}"#) == Some(1.0)
            && worker_runs(&app.admin, "cleanup").await >= 3.0)
            .then_some(())
    })
    .await;
    assert!(app.state_dir(&live).is_dir());
}
