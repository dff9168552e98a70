//! The harness itself: the app starts, is ready, and serves both surfaces.

use crate::support::*;

#[tokio::test]
async fn the_app_starts_ready_and_runs_a_game() {
    let app = spawn_app().await;
    // Container names are global on a Docker host: a unique game id keeps
    // this test clear of any other run's leftovers.
    let game = rtm_testkit::unique("smoke").replace('_', "-");
    let game = game.as_str();
    let (status, body) = call("GET", &format!("{}/readyz", app.gm), None, None, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.start_game(game, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["status"], "running");
    let healthy = wait_for("healthy", std::time::Duration::from_secs(30), || async {
        let (_, v) = app.runtime(game).await;
        (v["health"]["status"] == "healthy").then_some(v)
    })
    .await;
    assert_eq!(healthy["health"]["source"], "probe");
    assert_eq!(app.containers(game).len(), 1);
}
