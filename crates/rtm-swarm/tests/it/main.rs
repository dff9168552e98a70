//! Integration tests of [`SwarmRuntime`] against this machine's Docker
//! engine as a single-node swarm (`docker swarm init --advertise-addr
//! 127.0.0.1`; the tests fail loudly when the engine is not a manager) and
//! the engine stub image `rtm.local/engine-stub:*` (built when missing).
//!
//! Isolation: every test has its own `rtm.owner` label, state root and
//! game ids, and removes its services (then their containers) in a drop
//! guard; the tests of this binary share one attachable overlay network,
//! removed when the last test holding it ends. Every wait polls a
//! condition with a deadline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtm_docker::DockerHost;
use rtm_domain::ports::{ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState};
use rtm_domain::{ContainerId, GameId, ImageRef};
use rtm_swarm::{SwarmConfig, SwarmRuntime};
pub(crate) use rtm_testkit::docker::docker;
use rtm_testkit::docker::{docker_host, engine_image, ensure_engine_images, OwnerGuard};

mod contract;
mod lifecycle;
mod lockdown;
mod remote;

/// Upper bound of every wait; generous because the machine is shared.
const DEADLINE: Duration = Duration::from_secs(90);

/// The overlay network of this test binary.
struct TestNetwork {
    name: String,
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        // Swarm removes a service's containers after the service: the
        // network is free a little later. Bounded: 60 tries, 30 s.
        for _ in 0..60 {
            if docker(&["network", "rm", &self.name]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("TestNetwork: could not remove {}", self.name);
    }
}

fn shared_overlay() -> Arc<TestNetwork> {
    static CURRENT: Mutex<Weak<TestNetwork>> = Mutex::new(Weak::new());
    // A std Mutex: never held across an `.await`.
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(net) = current.upgrade() {
        return net;
    }
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).expect("docker info");
    assert_eq!(
        state.trim(),
        "active",
        "these tests need a swarm: docker swarm init --advertise-addr 127.0.0.1"
    );
    sweep_leftovers();
    let name = rtm_testkit::unique("rtmswarm-net").replace('_', "-");
    docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        &name,
    ])
    .expect("create the overlay network");
    let net = Arc::new(TestNetwork { name });
    *current = Arc::downgrade(&net);
    net
}

/// Whether the test process `pid` still runs.
fn pid_alive(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && std::path::Path::new("/proc").join(pid).exists()
}

/// Removes the services and overlay networks of test processes that no
/// longer exist (a killed run never drops its guards). Best effort.
fn sweep_leftovers() {
    // Owners look like `rtmtest_<pid>_<n>_<nanos>`.
    // `service ls` cannot print labels: inspect the listed ids.
    let ids = docker(&["service", "ls", "-q", "--filter", "label=rtm.owner"]).unwrap_or_default();
    let mut args = vec![
        "service",
        "inspect",
        "--format",
        "{{.ID}} {{index .Spec.Labels \"rtm.owner\"}}",
    ];
    args.extend(ids.split_whitespace());
    let listed = if ids.trim().is_empty() {
        Ok(String::new())
    } else {
        docker(&args)
    };
    for line in listed.unwrap_or_default().lines() {
        let Some((id, owner)) = line.split_once(' ') else {
            continue;
        };
        let mut parts = owner.split('_');
        if parts.next() == Some("rtmtest") && parts.next().is_some_and(|pid| !pid_alive(pid)) {
            let _ = docker(&["service", "rm", id]);
        }
    }
    // Networks look like `rtmswarm-net-<pid>-<n>-<nanos>` (also `-own-`).
    let nets = docker(&[
        "network",
        "ls",
        "--filter",
        "driver=overlay",
        "--format",
        "{{.Name}}",
    ]);
    for name in nets.unwrap_or_default().lines() {
        let pid = name
            .strip_prefix("rtmswarm-net-")
            .or_else(|| name.strip_prefix("rtmswarm-own-"))
            .and_then(|rest| rest.split('-').next());
        if pid.is_some_and(|pid| !pid_alive(pid)) {
            let _ = docker(&["network", "rm", name]);
        }
    }
}

/// Removes the owner's services (their tasks and containers go with
/// them) when the test ends.
struct ServiceGuard {
    owner: String,
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let filter = format!("label=rtm.owner={}", self.owner);
        let Ok(ids) = docker(&["service", "ls", "-q", "--filter", &filter]) else {
            return;
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(ids);
            if let Err(e) = docker(&args) {
                eprintln!("ServiceGuard: {e:#}");
            }
        }
    }
}

/// One test's adapter, owner and network. Fields drop in order: the
/// services, then the owner's containers and state, then the network.
struct Env {
    rt: SwarmRuntime,
    _services: ServiceGuard,
    guard: OwnerGuard,
    _net: Arc<TestNetwork>,
}

impl Env {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut SwarmConfig)) -> Self {
        ensure_engine_images();
        let net = shared_overlay();
        let guard = OwnerGuard::new();
        let config = test_config(&guard, &net.name, tune);
        let rt = SwarmRuntime::new(config).expect("valid config");
        Self {
            rt,
            _services: ServiceGuard {
                owner: guard.owner().to_owned(),
            },
            guard,
            _net: net,
        }
    }

    /// A spec for a fresh game running `tag`.
    fn spec(&self, tag: &str) -> ContainerSpec {
        let game = GameId::parse(&rtm_testkit::unique("g")).expect("valid game id");
        ContainerSpec {
            name: game.container_name(),
            image: ImageRef::parse(&engine_image(tag)).expect("valid image ref"),
            state_path: self
                .guard
                .state_root()
                .join(game.as_str())
                .display()
                .to_string(),
            game_id: game,
        }
    }

    /// Creates and starts a service, waiting until the engine has recorded
    /// its start.
    async fn running(&self, tag: &str) -> (ContainerSpec, ContainerId) {
        let spec = self.spec(tag);
        let id = self.rt.create(&spec).await.expect("create");
        self.rt.start(&id).await.expect("start");
        wait_file(&spec, "starts.log").await;
        (spec, id)
    }
}

fn test_config(
    guard: &OwnerGuard,
    network: &str,
    tune: impl FnOnce(&mut SwarmConfig),
) -> SwarmConfig {
    let mut config = SwarmConfig::with_defaults(guard.owner());
    let d = &mut config.docker;
    d.host = DockerHost::parse(&docker_host()).expect("RTM_TEST_DOCKER_HOST");
    d.network = network.to_owned();
    d.memory_bytes = 64 * 1024 * 1024;
    d.nano_cpus = 500_000_000;
    d.log_max_size = 1024 * 1024;
    d.log_max_files = 2;
    config.stop_grace = Duration::from_secs(20);
    config.poll_interval = Duration::from_millis(500);
    // This machine's engine: no swap, and the gap of no-new-privileges is
    // what `lockdown.rs` measures.
    config.accept_weaker_isolation = true;
    tune(&mut config);
    config
}

/// Polls `f` every 100 ms until it returns `Some`, at most [`DEADLINE`].
async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the non-empty file `name` exists in the game's state dir.
async fn wait_file(spec: &ContainerSpec, name: &str) -> String {
    let path = PathBuf::from(&spec.state_path).join(name);
    poll(name, || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await
}

fn write_control(spec: &ContainerSpec, name: &str, content: &str) {
    std::fs::write(PathBuf::from(&spec.state_path).join(name), content)
        .expect("write control file");
}

/// Waits until the service has no running task and returns its state.
async fn wait_exited(rt: &SwarmRuntime, id: &ContainerId) -> ContainerInfo {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = rt.inspect(id).await.expect("inspect");
        if !info.summary.running && info.state == ContainerState::Exited {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {id} to exit: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the service's task containers on this node, newest first.
fn task_containers(service: &ContainerId) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.id={service}");
    docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])
        .expect("docker ps")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `docker inspect` of one object, as JSON.
fn inspect_json(kind: &str, id: &str) -> serde_json::Value {
    let out = docker(&[kind, "inspect", id]).expect("docker inspect");
    let all: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    all[0].clone()
}
