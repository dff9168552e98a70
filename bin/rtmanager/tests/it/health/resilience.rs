//! Nothing is lost when the monitor's inputs or outputs break: an engine
//! that dies while RTM is down is reported after RTM starts again, and a
//! change made while Redis is down is published once Redis is back —
//! each exactly once.

use std::collections::HashSet;

use rtm_testkit::redis::RedisServer;

use super::*;

/// Every event id and every (game, container, type, source, details,
/// observed_at) appears once.
fn assert_no_duplicates(evs: &[HealthEvent]) {
    let ids: HashSet<u64> = evs.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), evs.len(), "duplicate event_id: {evs:#?}");
    let contents: HashSet<String> = evs
        .iter()
        .map(|e| {
            format!(
                "{}|{}|{}|{}|{}|{}",
                e.game_id, e.container_id, e.event_type, e.source, e.details, e.observed_at
            )
        })
        .collect();
    assert_eq!(contents.len(), evs.len(), "duplicate content: {evs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_while_rtm_is_down_is_reported_once_after_restart() {
    let mut app = spawn_app().await;
    let g = game("hdown");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    app.stop().await;
    // RTM is not watching: its event subscription is gone with it.
    // On a swarm the service's task container (the same id on one host).
    let task = app.docker_container(&container).await;
    docker(&["kill", &task]);
    let state = docker(&["inspect", "-f", "{{.State.Status}}", &task]);
    assert_eq!(state.trim(), "exited");
    app.start().await;

    let view = wait_health(&app, &g, "exited").await;
    assert_eq!(view["status"], "stopped", "{view}");
    assert!(view["stopped_at"].is_string(), "{view}");
    assert_eq!(view["health"]["details"]["exit_code"], 137, "{view}");
    wait_event(&app, &g, "exited").await;
    settle(&app, 3).await;
    let evs = events(&app, &g).await;
    assert_eq!(types(&evs), ["healthy", "exited"], "{evs:#?}");
    assert_no_duplicates(&evs);
    assert_eq!(evs[1].container_id, container);
    assert_eq!(evs[1].details["exit_code"], 137, "{evs:#?}");
    assert_event_matches_snapshot(&evs[1], &view);
    assert_eq!(op_kinds(&app, &g).await, ["start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_redis_is_down_is_published_once_it_is_back() {
    // Append-only, so the entries published before the outage survive the
    // restart and the whole history can be checked for duplicates.
    let mut redis = RedisServer::start_with(&["--save", "", "--appendonly", "yes"]);
    let url = redis.url();
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_REDIS_URL".into(), url);
    })
    .await;
    let g = game("hredis");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();
    assert_eq!(outbox_pending(&app).await, 0);

    redis.stop();
    control(&app, &g, "crash", "5");

    // The snapshot and the record do not wait for Redis.
    let view = wait_health(&app, &g, "exited").await;
    assert_eq!(view["status"], "stopped", "{view}");
    assert_eq!(view["health"]["details"]["exit_code"], 5, "{view}");
    // The change waits in the outbox while the relay keeps failing.
    settle(&app, 2).await;
    assert!(outbox_pending(&app).await >= 1, "the change is kept");

    redis.restart();

    wait_event(&app, &g, "exited").await;
    wait_for("the outbox to drain", CHANGE, || async {
        (outbox_pending(&app).await == 0).then_some(())
    })
    .await;
    settle(&app, 3).await;
    let evs = events(&app, &g).await;
    assert_eq!(types(&evs), ["healthy", "exited"], "{evs:#?}");
    assert_no_duplicates(&evs);
    assert_eq!(evs[1].container_id, container);
    assert_eq!(evs[1].details["exit_code"], 5, "{evs:#?}");
    assert_event_matches_snapshot(&evs[1], &view);
    assert_eq!(op_kinds(&app, &g).await, ["start"]);
}
