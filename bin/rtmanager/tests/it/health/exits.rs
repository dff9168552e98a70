//! Engines that end on their own: a crash with an exit code, an OOM kill,
//! a plain `docker kill`, and a container removed behind RTM's back. Each
//! must be recorded once (snapshot, record, one event) and never as an
//! operation.

use super::*;

/// The checks shared by every observed exit: health `status` with `code`
/// (when given), record `stopped` with `stopped_at`, the stream holding
/// exactly `healthy` then `status` for the same container, and no
/// operation but the start.
async fn assert_observed_exit(app: &TestApp, game: &str, container: &str, status: &str) -> Value {
    let view = wait_health(app, game, status).await;
    assert_eq!(view["status"], "stopped", "{view}");
    assert!(view["stopped_at"].is_string(), "stopped_at set: {view}");
    assert_eq!(view["container_id"], container, "{view}");
    assert_eq!(view["health"]["container_id"], container, "{view}");
    let src = view["health"]["source"].as_str().unwrap_or_default();
    assert!(
        ["docker_event", "inspect"].contains(&src),
        "exits are seen by Docker events or inspect, not {src}: {view}"
    );
    wait_event(app, game, status).await;
    settle(app, 2).await;
    let evs = events(app, game).await;
    assert_eq!(types(&evs), ["healthy", status], "{evs:#?}");
    for ev in &evs {
        assert_eq!(ev.container_id, container, "{ev:#?}");
    }
    assert!(evs[0].event_id < evs[1].event_id, "{evs:#?}");
    assert_event_matches_snapshot(&evs[1], &view);
    assert_eq!(evs[1].details, view["health"]["details"], "{evs:#?} {view}");
    // Observed, not done: the log has the start and nothing else.
    assert_eq!(op_kinds(app, game).await, ["start"]);
    // Docker agrees the container is stopped, not gone (RTM does not
    // remove what it only observed).
    assert_eq!(app.containers(game), [container.to_owned()]);
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_an_exit_with_its_code() {
    let app = spawn_app().await;
    let g = game("hcrash");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    control(&app, &g, "crash", "7");

    let view = assert_observed_exit(&app, &g, &container, "exited").await;
    assert_eq!(view["health"]["details"]["exit_code"], 7, "{view}");
    let evs = events(&app, &g).await;
    assert_eq!(evs[1].details["exit_code"], 7, "{evs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_is_oom_not_an_exit() {
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_ENGINE_MEMORY".into(), "32m".into());
    })
    .await;
    let g = game("hoom");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    control(&app, &g, "oom", "");

    let view = assert_observed_exit(&app, &g, &container, "oom").await;
    let task = app.docker_container(&container).await;
    let state = docker(&["inspect", "-f", "{{.State.OOMKilled}}", &task]);
    assert_eq!(state.trim(), "true", "Docker says OOMKilled");
    assert_eq!(view["health"]["details"]["exit_code"], 137, "{view}");
    // `assert_observed_exit` already checked the stream is exactly
    // [healthy, oom]: never an `exited` for the same death.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_is_an_exit_137_not_an_oom() {
    let app = spawn_app().await;
    let g = game("hkill");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    // On a swarm the service's task container (the same id on one host).
    let task = app.docker_container(&container).await;
    docker(&["kill", &task]);

    let view = assert_observed_exit(&app, &g, &container, "exited").await;
    assert_eq!(view["health"]["details"]["exit_code"], 137, "{view}");
    let state = docker(&["inspect", "-f", "{{.State.OOMKilled}}", &task]);
    assert_eq!(state.trim(), "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_removed_out_of_band_disappears() {
    let app = spawn_app().await;
    let g = game("hgone");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    // On a swarm: `docker service rm` (the port's container is the service).
    app.remove_behind_back(&container);

    let view = wait_health(&app, &g, "container_disappeared").await;
    assert_eq!(view["status"], "removed", "{view}");
    assert!(view["removed_at"].is_string(), "removed_at set: {view}");
    assert_eq!(view["health"]["container_id"], container.as_str(), "{view}");
    wait_event(&app, &g, "container_disappeared").await;
    settle(&app, 2).await;
    let evs = events(&app, &g).await;
    // `rm -f` kills the engine first: Docker reports its `die` (exit 137)
    // before the `destroy`, and the monitor may record that exit on the
    // way (record stopped, then removed). What must hold: the
    // disappearance is reported once and last, nothing else is.
    let kinds = types(&evs);
    assert!(
        kinds == ["healthy", "container_disappeared"]
            || kinds == ["healthy", "exited", "container_disappeared"],
        "{evs:#?}"
    );
    if kinds.len() == 3 && !on_swarm() {
        assert_eq!(evs[1].details["exit_code"], 137, "{evs:#?}");
    }
    if kinds.len() == 3 && on_swarm() {
        // `docker service rm` stops the task with the service's grace (the
        // stub exits 0 on SIGTERM) and Swarm deletes it with the service:
        // the exit is reported without a code when the task was gone before
        // the feed saw it end, else with the task's code (docs/swarm.md,
        // "Health sources", events from another process).
        let code = &evs[1].details["exit_code"];
        assert!(code.is_null() || *code == 0, "{evs:#?}");
    }
    for ev in &evs {
        assert_eq!(ev.container_id, container, "{ev:#?}");
    }
    assert_event_matches_snapshot(evs.last().expect("events"), &view);
    assert_eq!(op_kinds(&app, &g).await, ["start"]);
    assert!(app.containers(&g).is_empty());
}
