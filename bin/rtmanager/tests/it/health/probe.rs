//! The HTTP probe: a failing health endpoint becomes `probe_failed` after
//! `RTM_PROBE_FAILURES` consecutive failures and `healthy` again on the
//! next success — one event per change, never one per probe — and the
//! probe reaches the engine from the host, where the engine's DNS name
//! does not resolve.

use std::net::ToSocketAddrs;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_endpoint_flips_once_each_way() {
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_PROBE_FAILURES".into(), "3".into());
    })
    .await;
    let g = game("hprobe");
    let view = start_healthy(&app, &g, "1.0.0").await;
    let container = view["container_id"].as_str().expect("container").to_owned();

    control(&app, &g, "unhealthy", "");

    let failed = wait_health(&app, &g, "probe_failed").await;
    assert_eq!(failed["health"]["source"], "probe", "{failed}");
    assert_eq!(failed["status"], "running", "a probe failure is no exit");
    let evs = wait_event(&app, &g, "probe_failed").await;
    let ev = evs.last().expect("event");
    assert_eq!(ev.source, "probe");
    assert_eq!(ev.container_id, container);
    assert_eq!(
        ev.details["consecutive_failures"], 3,
        "the change happens at the threshold: {ev:#?}"
    );
    let error = ev.details["error"].as_str().unwrap_or_default();
    assert!(error.contains("503"), "the reason is kept: {ev:#?}");

    // Many more failing probes (the snapshot is refreshed with the count)
    // must not add events.
    wait_for("more failed probes", CHANGE, || async {
        let (_, v) = app.runtime(&g).await;
        (v["health"]["details"]["consecutive_failures"].as_i64() >= Some(8)).then_some(())
    })
    .await;
    settle(&app, 1).await;
    assert_eq!(
        types(&events(&app, &g).await),
        ["healthy", "probe_failed"],
        "one event per change, not per probe"
    );

    std::fs::remove_file(app.state_dir(&g).join("unhealthy")).expect("remove unhealthy");

    let healthy = wait_health(&app, &g, "healthy").await;
    assert_eq!(healthy["status"], "running");
    assert_eq!(healthy["health"]["source"], "probe");
    wait_event(&app, &g, "healthy").await;
    // Let several successful probes pass: still one `healthy` event.
    settle(&app, 3).await;
    let evs = events(&app, &g).await;
    assert_eq!(
        types(&evs),
        ["healthy", "probe_failed", "healthy"],
        "{evs:#?}"
    );
    assert!(evs.iter().all(|e| e.container_id == container));
    assert!(evs.windows(2).all(|w| w[0].event_id < w[1].event_id));
    assert!(evs.windows(2).all(|w| w[0].observed_at <= w[1].observed_at));
    assert_eq!(evs[2].details, serde_json::json!({}), "{evs:#?}");
    assert_eq!(op_kinds(&app, &g).await, ["start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reaches_the_engine_by_ip_from_the_host() {
    let app = spawn_app().await;
    let g = game("hip");
    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    let endpoint = body["runtime"]["engine_endpoint"]
        .as_str()
        .expect("engine_endpoint")
        .to_owned();
    let host = format!("rtm-{g}");
    assert_eq!(endpoint, format!("http://{host}:8080"));
    // The premise: this test runs on the host, where the engine's name on
    // the Docker network means nothing.
    assert!(
        (host.as_str(), 8080).to_socket_addrs().is_err(),
        "{host} resolves from the host; this test would prove nothing"
    );

    let view = wait_health(&app, &g, "healthy").await;
    assert_eq!(view["health"]["source"], "probe", "{view}");
    let evs = wait_event(&app, &g, "healthy").await;
    assert_eq!(types(&evs), ["healthy"]);
    assert_eq!(evs[0].source, "probe");

    // And the engine really is reachable at its container IP from here.
    let container = view["container_id"].as_str().expect("container");
    // On a swarm: the task container's address on the overlay network.
    let container = app.docker_container(container).await;
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &container,
    ]);
    let (code, health) = call(
        "GET",
        &format!("http://{}:8080/healthz", ip.trim()),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["game_id"], g.as_str());
}
