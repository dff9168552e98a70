//! Integration tests of [`DockerRuntime`] against the real Docker engine and
//! the engine stub images (`rtm.local/engine-stub:*`, built when missing).
//!
//! Isolation: every test has its own `rtm.owner` label, state root and game
//! ids (container names are global to Docker), and removes its containers
//! in a drop guard; the tests of this binary share one network (Docker's
//! default address pools hold only ~30 user networks), removed when the
//! last test holding it ends. Nothing leaves the machine: pulls go to
//! 127.0.0.1:1 or to a silent listener on loopback. Every wait polls a
//! condition with a deadline.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rtm_docker::{DockerConfig, DockerConfigError, DockerHost, DockerRuntime, EngineUser};
use rtm_domain::ports::{
    ContainerEvent, ContainerEventKind, ContainerInfo, ContainerRuntime, ContainerSpec,
    ContainerState, FeedItem,
};
use rtm_domain::{ContainerId, GameId, ImageRef, RuntimeError};
use rtm_testkit::docker::{
    docker, docker_host, engine_image, ensure_engine_images, shared_network, OwnerGuard,
    TestNetwork,
};

mod contract;
mod logs;

/// Upper bound of every wait; generous because the machine is shared.
const DEADLINE: Duration = Duration::from_secs(60);

/// One test's adapter, owner and network. Fields drop in order: the
/// owner's containers go before the network is released.
struct Env {
    rt: DockerRuntime,
    guard: OwnerGuard,
    net: Arc<TestNetwork>,
}

impl Env {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut DockerConfig)) -> Self {
        ensure_engine_images();
        let net = shared_network();
        let guard = OwnerGuard::new();
        let mut config = DockerConfig::with_defaults(guard.owner());
        config.host = DockerHost::parse(&docker_host()).expect("RTM_TEST_DOCKER_HOST");
        config.network = net.name().to_owned();
        config.memory_bytes = 64 * 1024 * 1024;
        config.nano_cpus = 500_000_000;
        config.log_max_size = 1024 * 1024;
        config.log_max_files = 2;
        tune(&mut config);
        let rt = DockerRuntime::new(config).expect("valid config");
        Self { rt, guard, net }
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

    /// Creates and starts a container, waiting until the engine has
    /// recorded its start.
    async fn running(&self, tag: &str) -> (ContainerSpec, ContainerId) {
        let spec = self.spec(tag);
        let id = self.rt.create(&spec).await.expect("create");
        self.rt.start(&id).await.expect("start");
        let log = PathBuf::from(&spec.state_path).join("starts.log");
        poll("starts.log", || {
            std::fs::read_to_string(&log).ok().filter(|s| !s.is_empty())
        })
        .await;
        (spec, id)
    }
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

/// Polls the async `f` every 100 ms until it returns `Some`, at most
/// [`DEADLINE`].
async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the container is no longer running and returns its state.
async fn wait_exited(rt: &DockerRuntime, id: &ContainerId) -> ContainerInfo {
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

/// A raw HTTP/1.1 GET (the stub closes the connection after answering).
fn http_get(ip: IpAddr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {out:?}")))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `docker inspect` of a container, as JSON (checks what the port does not
/// expose: the host configuration).
fn docker_inspect(id: &ContainerId) -> serde_json::Value {
    let out = docker(&["inspect", id.as_str()]).expect("docker inspect");
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

fn write_control(spec: &ContainerSpec, name: &str, content: &str) {
    std::fs::write(PathBuf::from(&spec.state_path).join(name), content)
        .expect("write control file");
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn creates_a_hardened_labelled_engine_that_serves_healthz() {
    let env = Env::new();
    env.rt.ping().await.expect("ping");
    let (spec, id) = env.running("1.0.1").await;

    let info = env.rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.state, ContainerState::Running);
    assert!(info.summary.running);
    assert_eq!(info.summary.name, spec.name);
    assert_eq!(info.summary.game_id.as_ref(), Some(&spec.game_id));
    assert_eq!(
        info.summary.image_ref.as_deref(),
        Some("rtm.local/engine-stub:1.0.1")
    );
    assert_eq!(
        info.summary.state_path.as_deref(),
        Some(spec.state_path.as_str())
    );
    assert_eq!(info.exit_code, None);
    assert!(!info.oom_killed);
    assert!(info.started_at.is_some());
    assert_eq!(info.finished_at, None);
    let ip = info.ip.expect("an address on the test network");

    // What the port does not show: Docker's own view of the container.
    let raw = docker_inspect(&id);
    let labels = &raw["Config"]["Labels"];
    assert_eq!(labels["rtm.managed"], "true");
    assert_eq!(labels["rtm.owner"], env.guard.owner());
    assert_eq!(labels["rtm.game_id"], spec.game_id.as_str());
    assert_eq!(labels["rtm.image_ref"], "rtm.local/engine-stub:1.0.1");
    assert_eq!(labels["rtm.state_path"], spec.state_path.as_str());
    assert_eq!(raw["Config"]["User"], "65534:65534");
    let env_vars = raw["Config"]["Env"].as_array().expect("env");
    for want in [
        format!("GAME_ID={}", spec.game_id),
        "ENGINE_STATE_DIR=/var/lib/engine".to_owned(),
        "ENGINE_PORT=8080".to_owned(),
    ] {
        assert!(
            env_vars.contains(&serde_json::json!(want)),
            "missing env {want}: {env_vars:?}"
        );
    }
    let hc = &raw["HostConfig"];
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["RestartPolicy"]["Name"], "no");
    assert_eq!(hc["Memory"], 64 * 1024 * 1024);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["NetworkMode"], env.net.name());
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["LogConfig"]["Config"]["max-size"], "1048576");
    assert_eq!(hc["LogConfig"]["Config"]["max-file"], "2");
    assert_eq!(
        hc["Binds"],
        serde_json::json!([format!("{}:/var/lib/engine", spec.state_path)])
    );
    // The lockdown (docs/docker.md): what docker-api's builder cannot say.
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert!(
        hc["CapAdd"].is_null() || hc["CapAdd"] == serde_json::json!([]),
        "no capability added back by default: {}",
        hc["CapAdd"]
    );
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(
        hc["Tmpfs"],
        serde_json::json!({"/tmp": "rw,noexec,nosuid,nodev,mode=1777,size=67108864"})
    );
    assert_eq!(hc["PidsLimit"], 256);
    assert_eq!(hc["Init"], true);
    let mounts = raw["Mounts"].as_array().expect("mounts");
    // The tmpfs is a HostConfig.Tmpfs mount, which `Mounts` does not list.
    assert_eq!(mounts.len(), 1, "only the state dir is mounted: {mounts:?}");
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Source"], spec.state_path.as_str());

    // The state dir belongs to the engine user, and the engine wrote to it.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&spec.state_path).expect("state dir");
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    let log = std::fs::read_to_string(PathBuf::from(&spec.state_path).join("starts.log"))
        .expect("starts.log");
    assert!(log.starts_with("1.0.1 "), "{log:?}");

    // The engine answers on its container IP, from the host.
    let (status, body) = poll("healthz", || http_get(ip, 8080, "/healthz").ok()).await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(health["game_id"], spec.game_id.as_str());
    assert_eq!(health["version"], "1.0.1");
    write_control(&spec, "unhealthy", "");
    assert_eq!(http_get(ip, 8080, "/healthz").expect("healthz").0, 503);

    let listed = env.rt.list(None).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert!(listed[0].running);
    assert_eq!(listed[0].name, spec.name);
    assert_eq!(listed[0].game_id.as_ref(), Some(&spec.game_id));
    // One list carries each container's current address on our network
    // (what the probe pass targets) and Docker's health (none here).
    assert_eq!(listed[0].ip, Some(ip));
    assert_eq!(info.summary.ip, Some(ip));
    assert_eq!(listed[0].health, None);
}

/// The engine's own attempts, through the stub's `lockdown` control file:
/// writes outside `/tmp` and the state dir, running from `/tmp` and forking
/// past the pids limit are all refused, and the engine keeps serving.
#[tokio::test]
async fn the_lockdown_refuses_writes_exec_and_forks_while_the_engine_serves() {
    const PIDS: u32 = 24;
    let env = Env::with(|c| c.pids_limit = PIDS);
    let (spec, id) = env.running("1.0.0").await;
    let ip = env.rt.inspect(&id).await.expect("inspect").ip.expect("ip");
    poll("healthz", || http_get(ip, 8080, "/healthz").ok()).await;

    write_control(&spec, "lockdown", "");
    let path = PathBuf::from(&spec.state_path).join("lockdown.result");
    let text = poll("lockdown.result", || std::fs::read_to_string(&path).ok()).await;
    let result: std::collections::HashMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    // New files at / and in /etc: EROFS proves the root filesystem itself
    // is read-only (not merely owned by root).
    for key in ["write_root", "write_etc"] {
        let got = result.get(key).copied().unwrap_or("missing");
        assert!(got.contains("os error 30"), "{key}: {got} ({text})");
    }
    // Existing files (Docker's /etc/hosts, the engine binary): refused,
    // as read-only or as not the engine user's (EACCES).
    for key in ["write_etc_hosts", "write_binary"] {
        let got = result.get(key).copied().unwrap_or("missing");
        assert!(
            got.contains("os error 30") || got.contains("os error 13"),
            "{key} must be refused: {got} ({text})"
        );
    }
    assert_eq!(result.get("write_tmp").copied(), Some("ok"), "{text}");
    assert!(
        result
            .get("exec_tmp")
            .is_some_and(|r| r.contains("os error 13")),
        "/tmp is noexec: {text}"
    );
    let spawned: u32 = result
        .get("spawned")
        .and_then(|n| n.parse().ok())
        .expect("spawned count");
    assert!(
        spawned < PIDS,
        "{spawned} children under a limit of {PIDS}: {text}"
    );
    assert!(
        result
            .get("spawn_error")
            .is_some_and(|r| r.contains("os error 11")),
        "the fork past the limit is refused with EAGAIN: {text}"
    );
    assert_eq!(result.get("pid1").copied(), Some("docker-init"), "{text}");

    // Still the same, running engine: it answers and never restarted.
    let (status, _) = poll("healthz after the probes", || {
        http_get(ip, 8080, "/healthz").ok()
    })
    .await;
    assert_eq!(status, 200);
    let info = env.rt.inspect(&id).await.expect("inspect");
    assert!(info.summary.running, "{info:?}");
    let starts = std::fs::read_to_string(PathBuf::from(&spec.state_path).join("starts.log"))
        .expect("starts.log");
    assert_eq!(starts.lines().count(), 1, "{starts}");
}

/// An allow-listed capability is added back; anything else stays dropped.
#[tokio::test]
async fn the_capability_allow_list_is_applied_and_validated() {
    let env = Env::with(|c| c.cap_add = vec!["NET_BIND_SERVICE".to_owned()]);
    let (_, id) = env.running("1.0.0").await;
    let hc = docker_inspect(&id)["HostConfig"].clone();
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["CapAdd"], serde_json::json!(["NET_BIND_SERVICE"]));

    for bad in ["ALL", "NOT_A_CAP"] {
        let mut config = env.rt.config().clone();
        config.cap_add = vec![bad.to_owned()];
        let err = DockerRuntime::new(config).expect_err(bad);
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[tokio::test]
async fn stop_is_graceful_and_start_stop_are_idempotent() {
    let env = Env::new();
    let (spec, id) = env.running("1.0.0").await;
    env.rt
        .start(&id)
        .await
        .expect("starting a running container is Ok");

    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let info = env.rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.state, ContainerState::Exited);
    // 0, not 137: the stub handled SIGTERM within the grace period.
    assert_eq!(info.exit_code, Some(0));
    assert!(!info.oom_killed);
    assert!(info.finished_at.is_some());
    env.rt
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container is Ok");

    // Same container again: a second line in the state dir's log.
    env.rt.start(&id).await.expect("restart");
    let log = PathBuf::from(&spec.state_path).join("starts.log");
    poll("second start", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.lines().count() == 2)
    })
    .await;
    assert!(env.rt.inspect(&id).await.expect("inspect").summary.running);
}

#[tokio::test]
async fn a_crash_reports_its_exit_code() {
    let env = Env::new();
    let (spec, id) = env.running("1.0.0").await;
    write_control(&spec, "crash", "42\n");
    let info = wait_exited(&env.rt, &id).await;
    assert_eq!(info.exit_code, Some(42));
    assert!(!info.oom_killed);
}

#[tokio::test]
async fn the_broken_image_exits_with_3() {
    let env = Env::new();
    let spec = env.spec("broken");
    let id = env.rt.create(&spec).await.expect("create");
    env.rt.start(&id).await.expect("start");
    let info = wait_exited(&env.rt, &id).await;
    assert_eq!(info.exit_code, Some(3));
}

#[tokio::test]
async fn an_oom_kill_is_reported_as_such() {
    let env = Env::with(|c| c.memory_bytes = 32 * 1024 * 1024);
    let (spec, id) = env.running("1.0.0").await;
    write_control(&spec, "oom", "");
    let info = wait_exited(&env.rt, &id).await;
    assert!(info.oom_killed, "{info:?}");
    assert_eq!(info.exit_code, Some(137));
}

#[tokio::test]
async fn a_plain_sigkill_is_137_without_oom() {
    let env = Env::new();
    let (_spec, id) = env.running("1.0.0").await;
    docker(&["kill", id.as_str()]).expect("docker kill");
    let info = wait_exited(&env.rt, &id).await;
    assert_eq!(info.exit_code, Some(137));
    assert!(!info.oom_killed, "a SIGKILL is not an OOM kill");
}

/// Reads events until `done` holds for the collected list.
/// Collects events from `feed` until `done`; a `Connected` is skipped, a
/// `Lost` fails the test.
async fn collect_events(
    feed: &mut (impl futures_util::Stream<Item = FeedItem> + Unpin),
    seen: &mut Vec<ContainerEvent>,
    done: impl Fn(&[ContainerEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(seen) {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Some(FeedItem::Event(e))) => seen.push(e),
            Ok(Some(FeedItem::Connected)) => {}
            Ok(Some(FeedItem::Lost(e))) => panic!("event feed lost: {e}"),
            Ok(None) => panic!("event feed ended; seen {seen:?}"),
            Err(_) => panic!("timed out waiting for events; seen {seen:?}"),
        }
    }
}

fn has(seen: &[ContainerEvent], id: &ContainerId, kind: &ContainerEventKind) -> bool {
    seen.iter()
        .any(|e| &e.container_id == id && &e.kind == kind)
}

#[tokio::test]
async fn events_report_start_die_oom_destroy_of_our_containers_only() {
    let before = time::OffsetDateTime::now_utc();
    let env = Env::with(|c| c.memory_bytes = 32 * 1024 * 1024);
    let other = Env::new();
    let mut events = Box::pin(env.rt.events());
    let mut other_events = Box::pin(other.rt.events());

    let (spec_a, a) = env.running("1.0.0").await;
    let (spec_b, b) = env.running("1.0.0").await;
    let (spec_c, c) = other.running("1.0.0").await;
    write_control(&spec_c, "crash", "9");
    write_control(&spec_a, "crash", "7");
    let mut seen = Vec::new();
    let die_a = ContainerEventKind::Die { exit_code: Some(7) };
    collect_events(&mut events, &mut seen, |s| has(s, &a, &die_a)).await;
    assert!(has(&seen, &a, &ContainerEventKind::Start), "{seen:?}");
    let a_event = seen
        .iter()
        .find(|e| e.container_id == a)
        .expect("an event of a");
    assert_eq!(a_event.game_id.as_ref(), Some(&spec_a.game_id));
    assert!(a_event.at >= before - time::Duration::seconds(1));

    write_control(&spec_b, "oom", "");
    let die_b = ContainerEventKind::Die {
        exit_code: Some(137),
    };
    // Docker usually sends `oom` first, but may send it just after the
    // `die` (docs/health.md); both must come.
    collect_events(&mut events, &mut seen, |s| {
        has(s, &b, &die_b) && has(s, &b, &ContainerEventKind::Oom)
    })
    .await;

    env.rt.remove(&a).await.expect("remove a");
    env.rt.remove(&b).await.expect("remove b");
    collect_events(&mut events, &mut seen, |s| {
        has(s, &a, &ContainerEventKind::Destroy) && has(s, &b, &ContainerEventKind::Destroy)
    })
    .await;
    assert!(
        seen.iter().all(|e| e.container_id != c),
        "another owner's events leaked: {seen:?}"
    );

    // The other owner's stream saw its own container and none of ours.
    let die_c = ContainerEventKind::Die { exit_code: Some(9) };
    let mut other_seen = Vec::new();
    collect_events(&mut other_events, &mut other_seen, |s| has(s, &c, &die_c)).await;
    assert!(
        other_seen.iter().all(|e| e.container_id == c),
        "{other_seen:?}"
    );
}

#[tokio::test]
async fn a_docker_kill_is_reported_with_its_signal_and_a_stop_with_sigterm() {
    let env = Env::new();
    let mut events = Box::pin(env.rt.events());
    let (_, killed) = env.running("1.0.0").await;
    let (_, stopped) = env.running("1.0.0").await;
    docker(&["kill", killed.as_str()]).expect("docker kill");
    let mut seen = Vec::new();
    let sigkill = ContainerEventKind::Kill { signal: Some(9) };
    let die = ContainerEventKind::Die {
        exit_code: Some(137),
    };
    collect_events(&mut events, &mut seen, |s| {
        has(s, &killed, &sigkill) && has(s, &killed, &die)
    })
    .await;
    env.rt
        .stop(&stopped, Duration::from_secs(10))
        .await
        .expect("stop");
    let sigterm = ContainerEventKind::Kill { signal: Some(15) };
    collect_events(&mut events, &mut seen, |s| {
        has(s, &stopped, &sigterm)
            && s.iter().any(|e| {
                e.container_id == stopped && matches!(e.kind, ContainerEventKind::Die { .. })
            })
    })
    .await;
    assert!(
        !has(&seen, &stopped, &sigkill),
        "a graceful stop needs no SIGKILL: {seen:?}"
    );
}

#[tokio::test]
async fn another_owners_container_is_invisible() {
    let env = Env::new();
    let other = Env::new();
    let (_mine, my_id) = env.running("1.0.0").await;
    let (theirs, their_id) = other.running("1.0.0").await;

    let listed = env.rt.list(None).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&my_id]
    );
    assert!(env
        .rt
        .list(Some(&theirs.game_id))
        .await
        .expect("list")
        .is_empty());

    let not_found = |r: Result<(), RuntimeError>, op: &str| {
        assert!(matches!(r, Err(RuntimeError::NotFound(_))), "{op}: {r:?}");
    };
    assert!(matches!(
        env.rt.inspect(&their_id).await,
        Err(RuntimeError::NotFound(_))
    ));
    not_found(env.rt.stop(&their_id, Duration::from_secs(1)).await, "stop");
    not_found(env.rt.start(&their_id).await, "start");
    not_found(
        env.rt
            .rename(&their_id, &format!("{}-x", theirs.name))
            .await,
        "rename",
    );
    not_found(env.rt.remove(&their_id).await, "remove");
    // Not even by name.
    let by_name = ContainerId::new(theirs.name.clone()).expect("non-empty");
    assert!(matches!(
        env.rt.inspect(&by_name).await,
        Err(RuntimeError::NotFound(_))
    ));

    // Untouched: still running under its owner.
    let info = other.rt.inspect(&their_id).await.expect("their inspect");
    assert!(info.summary.running);
    assert_eq!(info.summary.name, theirs.name);
}

#[tokio::test]
async fn list_filters_by_game() {
    let env = Env::new();
    let g1 = env.spec("1.0.0");
    let g2 = env.spec("1.1.0");
    let id1 = env.rt.create(&g1).await.expect("create g1");
    let id2 = env.rt.create(&g2).await.expect("create g2");
    let all = env.rt.list(None).await.expect("list");
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|c| !c.running),
        "created, not started: {all:?}"
    );
    assert!(
        all.iter().all(|c| c.ip.is_none()),
        "no address yet: {all:?}"
    );
    let only1 = env.rt.list(Some(&g1.game_id)).await.expect("list g1");
    assert_eq!(only1.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id1]);
    assert_eq!(
        only1[0].image_ref.as_deref(),
        Some("rtm.local/engine-stub:1.0.0")
    );
    let only2 = env.rt.list(Some(&g2.game_id)).await.expect("list g2");
    assert_eq!(only2.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id2]);
    // Created, never started: no exit code, no times.
    let info = env.rt.inspect(&id1).await.expect("inspect");
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!(
        (info.exit_code, info.started_at, info.finished_at),
        (None, None, None)
    );
}

#[tokio::test]
async fn names_conflict_rename_and_remove() {
    let env = Env::new();
    let spec = env.spec("1.0.0");
    let id = env.rt.create(&spec).await.expect("create");
    let again = env.rt.create(&spec).await;
    assert!(matches!(again, Err(RuntimeError::Conflict(_))), "{again:?}");

    let other = env.spec("1.0.0");
    let other_id = env.rt.create(&other).await.expect("create other");
    let taken = env.rt.rename(&other_id, &spec.name).await;
    assert!(matches!(taken, Err(RuntimeError::Conflict(_))), "{taken:?}");

    let parked = spec.game_id.parked_container_name();
    env.rt.rename(&id, &parked).await.expect("rename");
    assert_eq!(
        env.rt.inspect(&id).await.expect("inspect").summary.name,
        parked
    );
    // The canonical name is free again.
    env.rt
        .rename(&other_id, &spec.name)
        .await
        .expect("rename into the freed name");

    env.rt.remove(&id).await.expect("remove");
    assert!(matches!(
        env.rt.inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        env.rt.remove(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    // The state directory outlives its container.
    assert!(PathBuf::from(&spec.state_path).is_dir());
}

#[tokio::test]
async fn remove_force_removes_a_running_container() {
    let env = Env::new();
    let (_spec, id) = env.running("2.0.0").await;
    env.rt.remove(&id).await.expect("remove");
    assert!(env.rt.list(None).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_all_end_with_the_container_gone() {
    // Several removers race (an operator's `docker rm -f` and RTM's
    // rollback, or two replicas): Docker answers the later ones 409
    // "removal … already in progress". Each must return only once the
    // container is gone, and only `Ok` or `NotFound`.
    let env = Arc::new(Env::new());
    for round in 0..3 {
        let (_spec, id) = env.running("1.0.0").await;
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (env, id) = (Arc::clone(&env), id.clone());
                tokio::spawn(async move {
                    let r = env.rt.remove(&id).await;
                    let after = env.rt.inspect(&id).await;
                    (r, after)
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            let (r, after) = t.await.expect("task");
            match r {
                Ok(()) => ok += 1,
                Err(RuntimeError::NotFound(_)) => {}
                other => panic!("round {round}: removal answered {other:?}"),
            }
            assert!(
                matches!(after, Err(RuntimeError::NotFound(_))),
                "round {round}: still there after a removal returned: {after:?}"
            );
        }
        assert!(ok >= 1, "round {round}: no removal succeeded");
    }
}

#[tokio::test]
async fn ensure_image_keeps_present_images_and_reports_failed_pulls() {
    let env = Env::new();
    let present = ImageRef::parse(&engine_image("1.0.0")).expect("ref");
    env.rt.ensure_image(&present).await.expect("present image");
    // Loopback, port 1: the pull fails without any traffic leaving.
    let absent = ImageRef::parse("127.0.0.1:1/engine:1.0.0").expect("ref");
    let r = env.rt.ensure_image(&absent).await;
    assert!(matches!(r, Err(RuntimeError::PullFailed(_))), "{r:?}");
}

/// A registry that accepts connections and never answers: the pull is
/// cut at `pull_timeout` and reported as `PullFailed`, not left hanging.
#[tokio::test]
async fn a_pull_that_outlives_the_timeout_fails() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::with(|c| c.pull_timeout = Duration::from_secs(2));
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    silent.set_nonblocking(true).expect("nonblocking");
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    // Accepted connections are held open, unanswered, until the pull is over.
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && held.len() < 64 {
            match silent.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        held.len()
    });
    let image = ImageRef::parse(&format!("127.0.0.1:{port}/engine:1.0.0")).expect("ref");
    let r = env.rt.ensure_image(&image).await;
    done.store(true, Ordering::SeqCst);
    let held = holder.join().expect("holder thread");
    assert!(held > 0, "Docker connected to the silent registry");
    match r {
        Err(RuntimeError::PullFailed(msg)) => {
            assert!(msg.contains("RTM_PULL_TIMEOUT"), "{msg}")
        }
        other => panic!("expected a timed-out pull, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_docker_is_unavailable() {
    let env = Env::new();
    for host in ["/nonexistent/docker.sock", "tcp://127.0.0.1:1"] {
        let mut config = env.rt.config().clone();
        config.host = DockerHost::parse(host).expect("valid host");
        let rt = DockerRuntime::new(config).expect("valid config");
        let r = rt.ping().await;
        assert!(
            matches!(r, Err(RuntimeError::Unavailable(_))),
            "{host} ping: {r:?}"
        );
        let r = rt.list(None).await;
        assert!(
            matches!(r, Err(RuntimeError::Unavailable(_))),
            "{host} list: {r:?}"
        );
        let r = rt.create(&env.spec("1.0.0")).await;
        assert!(
            matches!(r, Err(RuntimeError::Unavailable(_))),
            "{host} create: {r:?}"
        );
        let r = rt
            .ensure_image(&ImageRef::parse(&engine_image("1.0.0")).expect("ref"))
            .await;
        assert!(
            matches!(r, Err(RuntimeError::Unavailable(_))),
            "{host} ensure_image: {r:?}"
        );
        let mut feed = Box::pin(rt.events());
        let first = feed.next().await;
        assert!(
            matches!(first, Some(FeedItem::Connected)),
            "{host}: {first:?}"
        );
        let second = tokio::time::timeout(DEADLINE, feed.next()).await;
        assert!(
            matches!(
                second,
                Ok(Some(FeedItem::Lost(RuntimeError::Unavailable(_))))
            ),
            "{host} events: {second:?}"
        );
        // The cause is kept for the logs, in the message.
        if let Err(e) = rt.ping().await {
            let text = e.to_string();
            assert!(
                text.contains("No such file") || text.contains("refused"),
                "{host}: {text}"
            );
        }
    }
}

/// Removes a network on drop (for the one test that makes its own).
struct NetworkGuard(String);
impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.0]);
    }
}

#[tokio::test]
async fn a_missing_network_is_created_once_even_by_racing_creators() {
    let name = rtm_testkit::unique("rtmtest-own-net").replace('_', "-");
    // Declared first, dropped last: after the containers are gone.
    let _net_guard = NetworkGuard(name.clone());
    let env = Env::with(|c| c.network = name.clone());
    // Three runtimes, as three replicas would have: nothing shared in
    // process, so only Docker (and the adapter's re-check) decides.
    let rt2 = DockerRuntime::new(env.rt.config().clone()).expect("config");
    let rt3 = DockerRuntime::new(env.rt.config().clone()).expect("config");
    let (s1, s2, s3) = (env.spec("1.0.0"), env.spec("1.0.0"), env.spec("1.0.0"));
    let (r1, r2, r3) = tokio::join!(env.rt.create(&s1), rt2.create(&s2), rt3.create(&s3));
    let ids = [
        r1.expect("create 1"),
        r2.expect("create 2"),
        r3.expect("create 3"),
    ];
    let nets = docker(&["network", "ls", "-q", "--filter", &format!("name=^{name}$")])
        .expect("network ls");
    assert_eq!(
        nets.lines().count(),
        1,
        "exactly one network named {name}: {nets:?}"
    );
    for id in &ids {
        env.rt.start(id).await.expect("start");
        let info = env.rt.inspect(id).await.expect("inspect");
        assert!(
            info.ip.is_some(),
            "address on the created network: {info:?}"
        );
    }
    drop(env);
}

#[tokio::test]
async fn a_network_removed_under_the_adapter_is_made_again_by_the_next_create() {
    let name = rtm_testkit::unique("rtmtest-own-net").replace('_', "-");
    let _net_guard = NetworkGuard(name.clone());
    let env = Env::with(|c| c.network = name.clone());
    // The first create checks the network (creating it) and remembers it.
    let (_, first) = env.running("1.0.0").await;
    env.rt.remove(&first).await.expect("remove");
    // An operator removes it behind the adapter's back: the remembered
    // answer is now wrong, and the next create must not fail because of it.
    docker(&["network", "rm", &name]).expect("network rm");
    let (_, second) = env.running("1.0.0").await;
    let info = env.rt.inspect(&second).await.expect("inspect");
    assert!(
        info.ip.is_some(),
        "address on the re-made network: {info:?}"
    );
    drop(env);
}

#[tokio::test]
async fn creates_and_starts_beyond_the_call_limit_wait_for_a_slot_and_all_complete() {
    let env = Env::with(|c| c.call_concurrency = 1);
    let specs: Vec<ContainerSpec> = (0..4).map(|_| env.spec("1.0.0")).collect();
    let runs = specs.iter().map(|spec| async {
        let id = env.rt.create(spec).await?;
        env.rt.start(&id).await?;
        Ok::<_, RuntimeError>(id)
    });
    let ids = futures_util::future::join_all(runs).await;
    for id in ids {
        let id = id.expect("create and start through one slot");
        assert!(env.rt.inspect(&id).await.expect("inspect").summary.running);
    }
}

#[tokio::test]
async fn bad_specs_and_configs_are_refused() {
    let env = Env::new();
    let mut spec = env.spec("1.0.0");
    spec.state_path = "relative/dir".to_owned();
    assert!(matches!(
        env.rt.create(&spec).await,
        Err(RuntimeError::Other(_))
    ));
    // A root engine user cannot even be held: its parser refuses it.
    assert_eq!(
        EngineUser::parse("0:0"),
        Err(DockerConfigError::RootUser("0:0".to_owned()))
    );
    let base = env.rt.config().clone();
    let mut c = base.clone();
    c.pids_limit = 1;
    assert!(
        DockerRuntime::new(c).is_err(),
        "a pids limit too small to start"
    );
    let mut c = base.clone();
    c.tmpfs_bytes = 0;
    assert!(DockerRuntime::new(c).is_err(), "an empty /tmp");
    let mut c = base.clone();
    c.pull_timeout = Duration::ZERO;
    assert!(
        DockerRuntime::new(c).is_err(),
        "a pull that can never finish"
    );
    let mut c = base;
    c.registry_auth_file = Some(PathBuf::from("/nonexistent/rtm-auth.json"));
    let err = DockerRuntime::new(c).expect_err("a missing credentials file");
    assert!(
        err.to_string().contains("/nonexistent/rtm-auth.json"),
        "the error names the file: {err}"
    );
}

/// A Unix-socket proxy to Docker whose connections a test can cut, to see
/// what the adapter does when Docker goes away mid-stream.
struct DockerProxy {
    path: PathBuf,
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl DockerProxy {
    fn start() -> Self {
        let path = std::env::temp_dir().join(format!("{}.sock", rtm_testkit::unique("rtm-proxy")));
        Self::start_at(path)
    }

    /// A proxy on `path` (e.g. the path of one that was cut: Docker is back).
    fn start_at(path: PathBuf) -> Self {
        let listener = tokio::net::UnixListener::bind(&path).expect("bind proxy socket");
        let host = docker_host();
        let upstream = host.strip_prefix("unix://").unwrap_or(&host).to_owned();
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut docker) = tokio::net::UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut docker).await;
                    }
                });
                accepted.lock().expect("not poisoned").push(conn);
            }
        });
        Self {
            path,
            accept,
            conns,
        }
    }

    /// Drops every proxied connection and stops accepting new ones.
    fn cut(&self) {
        self.accept.abort();
        for conn in self.conns.lock().expect("not poisoned").drain(..) {
            conn.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test]
async fn a_lost_feed_reconnects_resumes_and_repeats_nothing() {
    let env = Env::new();
    let proxy = DockerProxy::start();
    let path = proxy.path.clone();
    let mut config = env.rt.config().clone();
    config.host = DockerHost::parse(&path.display().to_string()).expect("socket path");
    let rt = DockerRuntime::new(config).expect("config");
    rt.ping().await.expect("ping through the proxy");

    let mut feed = Box::pin(rt.events());
    let spec = env.spec("1.0.0");
    let id = rt.create(&spec).await.expect("create");
    rt.start(&id).await.expect("start");
    let mut seen = Vec::new();
    collect_events(&mut feed, &mut seen, |s| {
        has(s, &id, &ContainerEventKind::Start)
    })
    .await;

    // Docker's socket goes away: the feed says so.
    proxy.cut();
    let lost = tokio::time::timeout(DEADLINE, feed.next())
        .await
        .expect("the feed reacts to the cut");
    assert!(
        matches!(lost, Some(FeedItem::Lost(RuntimeError::Unavailable(_)))),
        "{lost:?}"
    );
    let r = rt.ping().await;
    assert!(matches!(r, Err(RuntimeError::Unavailable(_))), "{r:?}");
    // The engine crashes while nobody listens (Docker itself is up).
    write_control(&spec, "crash", "5");
    for _ in 0..100 {
        if !env.rt.inspect(&id).await.expect("inspect").summary.running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Docker is reachable again: the feed reconnects by itself, resumes
    // where it left off (the crash is delivered) and does not repeat the
    // start it replays from that second.
    let _back = DockerProxy::start_at(path);
    let die = ContainerEventKind::Die { exit_code: Some(5) };
    let mut after = Vec::new();
    let mut connected = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !has(&after, &id, &die) {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Some(FeedItem::Event(e))) => after.push(e),
            Ok(Some(FeedItem::Connected)) => connected += 1,
            Ok(Some(FeedItem::Lost(_))) => {} // tried before the proxy was back
            Ok(None) => panic!("the feed ended"),
            Err(_) => panic!("no die after reconnecting; seen {after:?}"),
        }
    }
    assert!(connected >= 1, "Connected before the resumed events");
    assert!(
        !has(&after, &id, &ContainerEventKind::Start),
        "the replayed start was yielded again: {after:?}"
    );
    assert_eq!(
        after.iter().filter(|e| e.container_id == id).count(),
        1,
        "{after:?}"
    );
}
