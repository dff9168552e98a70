//! Probe addressing (issue 13 §7): a probe targets the address the
//! container has *now*. A game restarted onto another address, whose old
//! address another game's engine then takes, is probed at its new address:
//! no false `probe_failed`, no success borrowed from the other engine, and
//! a real failure of the moved engine is reported.
//!
//! Addresses are pinned with `docker network connect --ip`, which Docker
//! allows only on networks with a configured subnet, so this test brings
//! its own network (dropped after the app's containers).

use super::*;

/// A network with a configured subnet, removed on drop.
struct SubnetNetwork {
    name: String,
    /// The first three octets, e.g. `10.231.17`.
    prefix: String,
}

impl SubnetNetwork {
    /// Tries a few random /24s in 10.231.0.0/16 (one may overlap a network
    /// of another test or helper on the shared engine).
    fn create() -> Self {
        let name = game("rtmtest-subnet");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = String::new();
        for attempt in 0..8u32 {
            let third = (seed / 7 + attempt * 37) % 250 + 1;
            let prefix = format!("10.231.{third}");
            match rtm_testkit::docker::docker(&[
                "network",
                "create",
                "--subnet",
                &format!("{prefix}.0/24"),
                &name,
            ]) {
                Ok(_) => return Self { name, prefix },
                Err(e) => last = format!("{e:#}"),
            }
        }
        panic!("no free subnet for {name}: {last}");
    }

    fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }
}

impl Drop for SubnetNetwork {
    fn drop(&mut self) {
        let _ = rtm_testkit::docker::docker(&["network", "rm", &self.name]);
    }
}

/// The container's address on `net`, as Docker reports it.
fn address(container: &str, net: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        container,
    ])
    .trim()
    .to_owned()
}

/// Pins `container` (running or stopped) to `ip` on `net`.
fn pin(container: &str, net: &str, ip: &str) {
    docker(&["network", "disconnect", "-f", net, container]);
    docker(&["network", "connect", "--ip", ip, net, container]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_is_probed_at_its_new_address() {
    if skip_on_swarm(
        "a_restarted_engine_is_probed_at_its_new_address",
        "docs/swarm.md, 'A port \"container\" is a service': every start is a new task at an \
         address Swarm assigns on the overlay network; `docker network connect --ip` cannot pin \
         a task's address, so the re-addressing this test stages does not exist there",
    ) {
        return;
    }
    // Declared before the app: dropped after its containers are removed.
    let net = SubnetNetwork::create();
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_DOCKER_NETWORK".into(), net.name.clone());
        vars.insert("RTM_PROBE_FAILURES".into(), "3".into());
    })
    .await;
    let a = game("hmove-a");
    let b = game("hmove-b");
    let va = start_healthy(&app, &a, "1.0.0").await;
    let vb = start_healthy(&app, &b, "1.0.0").await;
    let ca = va["container_id"].as_str().expect("container").to_owned();
    let cb = vb["container_id"].as_str().expect("container").to_owned();
    let old = address(&ca, &net.name);
    assert!(!old.is_empty(), "A has an address");

    // Restart A onto another address: stop, re-address, start (the same
    // container, as RTM's own restart keeps it).
    let moved = net.ip(200);
    let (status, body) = app
        .gm_post(&format!("/api/v1/runtimes/{a}/stop"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    pin(&ca, &net.name, &moved);
    let (status, body) = app.start_game(&a, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["container_id"], ca.as_str(), "{body}");
    assert_eq!(address(&ca, &net.name), moved);
    // B's engine takes A's old address.
    pin(&cb, &net.name, &old);
    assert_eq!(address(&cb, &net.name), old);

    // Several probe passes later: both healthy, no `probe_failed` (a probe
    // of A's old address would reach B and a probe of B's old one nobody).
    settle(&app, 4).await;
    for g in [&a, &b] {
        let (_, v) = app.runtime(g).await;
        assert_eq!(v["health"]["status"], "healthy", "{v}");
        let evs = events(&app, g).await;
        assert!(
            evs.iter().all(|e| e.event_type == "healthy"),
            "no false probe failure: {evs:#?}"
        );
    }

    // A's engine really fails now. B still answers 200 at A's old address:
    // only a probe of A's current address sees the failure.
    control(&app, &a, "unhealthy", "");
    let view = wait_health(&app, &a, "probe_failed").await;
    assert_eq!(view["health"]["container_id"], ca.as_str(), "{view}");
    let error = view["health"]["details"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("503"), "A's own answer: {view}");
    let evs = wait_event(&app, &a, "probe_failed").await;
    assert_eq!(
        evs.iter()
            .filter(|e| e.event_type == "probe_failed")
            .count(),
        1,
        "{evs:#?}"
    );
    // B is untouched by A's failure.
    let (_, v) = app.runtime(&b).await;
    assert_eq!(v["health"]["status"], "healthy", "{v}");
    assert!(events(&app, &b)
        .await
        .iter()
        .all(|e| e.event_type == "healthy"));
}
