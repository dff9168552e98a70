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
