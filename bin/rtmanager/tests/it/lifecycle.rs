//! Lifecycle end-to-end tests: SPEC §3, §4, §5 and §9 seen through the REST
//! surfaces of the real application, checked against PostgreSQL (the
//! operation log, read directly) and Docker's reality (`docker inspect`,
//! the engine stub's `starts.log`).
//!
//! The submodules share the observation helpers below: a [`Snapshot`] of
//! one game (record, operation rows, containers, engine starts) taken
//! before and after a request, so every test compares "what changed"
//! instead of trusting the response alone.

use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::*;

mod case;
mod concurrency;
mod container;
mod idempotency;
mod input;
mod listing;
mod patch;
mod reconcile;
mod table;

/// The container's address on the test's engines network.
pub fn container_ip(app: &TestApp, c: &Ctr) -> String {
    let ip = c.inspect["NetworkSettings"]["Networks"][app.network.name()]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!ip.is_empty(), "{} has no address on the network", c.id);
    ip
}

/// The static engine-stub binary `cargo xtask engine-image` built from
/// this checkout (see `xtask/src/engine_image.rs`).
fn stub_binary() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ => root.join("target"),
    };
    target.join("engine-stub/x86_64-unknown-linux-gnu/release/rtm-engine-stub")
}

/// What `name` resolves to from inside the engines' network: a real DNS
/// query to Docker's embedded DNS, by the engine stub's `resolve` mode in a
/// throw-away container (sorted IPv4 addresses; empty when it does not
/// resolve). Bounded: the container is given [`RESOLVE_DEADLINE`].
///
/// The stub binary of this checkout is mounted and run (the image only
/// provides a root filesystem): the `rtm.local/engine-stub` tags are shared
/// by every checkout on the machine and may hold another build.
pub fn resolve(app: &TestApp, name: &str) -> Vec<String> {
    use rtm_testkit::docker::docker;
    let binary = stub_binary();
    assert!(
        binary.is_file(),
        "{} missing (cargo xtask engine-image)",
        binary.display()
    );
    let probe = format!("rtmresolve-{}", rtm_testkit::unique("q"));
    docker(&[
        "run",
        "-d",
        "--name",
        &probe,
        "--label",
        &format!("rtm.owner={}", app.owner.owner()),
        "--network",
        app.network.name(),
        "-v",
        &format!("{}:/rtm-resolve:ro", binary.display()),
        "--entrypoint",
        "/rtm-resolve",
        &image("1.0.0"),
        "resolve",
        name,
    ])
    .expect("docker run resolve");
    let deadline = std::time::Instant::now() + RESOLVE_DEADLINE;
    let code = loop {
        let state = docker(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            &probe,
        ])
        .expect("inspect resolver");
        let mut parts = state.split_whitespace();
        if parts.next() == Some("exited") {
            break parts.next().unwrap_or_default().to_owned();
        }
        if std::time::Instant::now() >= deadline {
            let _ = docker(&["rm", "-f", &probe]);
            panic!(
                "the resolver did not finish in {RESOLVE_DEADLINE:?} (is the stub image current? \
                 `cargo xtask engine-image`)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = docker(&["logs", &probe]).unwrap_or_default();
    let _ = docker(&["rm", "-f", &probe]);
    match code.as_str() {
        "0" => out.lines().map(str::to_owned).collect(),
        "1" => Vec::new(),
        other => panic!("resolve {name}: exit {other}: {out}"),
    }
}

/// Upper bound for one resolver container (start, query, exit).
pub const RESOLVE_DEADLINE: Duration = Duration::from_secs(60);

/// A game id unique to this test: container names (`rtm-<game>`) are
/// global on the shared Docker engine, so two tests (or two runs) must
/// never use the same game id. The suffix comes from the test's owner.
pub fn gid(app: &TestApp, base: &str) -> String {
    let owner = app.owner.owner();
    format!("{base}-{}", owner.trim_start_matches("rtmtest_"))
}

/// One container of a game as Docker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub image: String,
    pub inspect: Value,
}

/// One `operation_log` row, read with SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub op_kind: String,
    pub op_source: String,
    pub source_ref: String,
    pub image_ref: String,
    pub container_id: String,
    pub outcome: String,
    pub error_code: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// Everything observable about one game at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The runtime as `GET /api/v1/runtimes/{game}` shows it (`None`: 404).
    pub record: Option<Value>,
    pub rows: Vec<Row>,
    pub containers: Vec<Ctr>,
    /// Lines of `<state dir>/starts.log`: one per engine start.
    pub starts: usize,
}

/// `docker inspect` of the game's containers (this test's owner only).
/// On a swarm a port container is a service: its id, its `rtm.name`
/// label, its image, and the inspect of its newest task container on this
/// node (`Null` and not running when it has none).
pub fn containers(app: &TestApp, game: &str) -> Vec<Ctr> {
    if on_swarm() {
        return app
            .containers(game)
            .iter()
            .filter_map(|id| swarm_ctr(id))
            .collect();
    }
    app.containers(game)
        .iter()
        .filter_map(|id| {
            // A container may vanish between `ps` and `inspect`.
            let out = rtm_testkit::docker::docker(&["inspect", id]).ok()?;
            let v: Value = serde_json::from_str(&out).expect("inspect json");
            let c = v[0].clone();
            Some(Ctr {
                id: id.clone(),
                name: c["Name"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                running: c["State"]["Running"].as_bool().unwrap_or(false),
                image: c["Config"]["Image"].as_str().unwrap_or_default().to_owned(),
                inspect: c,
            })
        })
        .collect()
}

/// One service as a [`Ctr`] (`None` when it vanished meanwhile).
fn swarm_ctr(id: &str) -> Option<Ctr> {
    use rtm_testkit::docker::docker;
    let out = docker(&["service", "inspect", id]).ok()?;
    let v: Value = serde_json::from_str(&out).expect("service inspect json");
    let spec = &v[0]["Spec"];
    let filter = format!("label=com.docker.swarm.service.id={id}");
    // `docker ps` lists the newest first.
    let task = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])
        .expect("docker ps")
        .split_whitespace()
        .next()
        .map(str::to_owned);
    let inspect = task
        .and_then(|t| docker(&["inspect", &t]).ok())
        .map(|out| serde_json::from_str::<Value>(&out).expect("inspect json")[0].clone())
        .unwrap_or(Value::Null);
    let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default();
    Some(Ctr {
        id: id.to_owned(),
        name: spec["Labels"]["rtm.name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        running: inspect["State"]["Running"].as_bool().unwrap_or(false),
        // Swarm may pin the image by digest (`<ref>@sha256:…`).
        image: image.split('@').next().unwrap_or_default().to_owned(),
        inspect,
    })
}

/// Number of engine starts recorded in the game's state directory.
pub fn starts(app: &TestApp, game: &str) -> usize {
    std::fs::read_to_string(app.state_dir(game).join("starts.log"))
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

/// The game's operation rows, oldest first.
pub async fn rows(app: &TestApp, game: &str) -> Vec<Row> {
    app.operation_rows(game)
        .await
        .iter()
        .map(|r| Row {
            id: r.get("id"),
            op_kind: r.get("op_kind"),
            op_source: r.get("op_source"),
            source_ref: r.get("source_ref"),
            image_ref: r.get("image_ref"),
            container_id: r.get("container_id"),
            outcome: r.get("outcome"),
            error_code: r.get("error_code"),
            started_at: r.get("started_at"),
            finished_at: r.get("finished_at"),
        })
        .collect()
}

/// The runtime record through the GM API (`None` on 404).
pub async fn record(app: &TestApp, game: &str) -> Option<Value> {
    let (status, body) = app.runtime(game).await;
    match status {
        200 => Some(body),
        404 => {
            assert_eq!(body["error"]["code"], "not_found", "{body}");
            None
        }
        _ => panic!("GET runtime {game}: {status} {body}"),
    }
}

pub async fn snapshot(app: &TestApp, game: &str) -> Snapshot {
    Snapshot {
        record: record(app, game).await,
        rows: rows(app, game).await,
        containers: containers(app, game),
        starts: starts(app, game),
    }
}

/// Parses an RFC 3339 field of a JSON object (`None` when null/absent).
pub fn ts(v: &Value, field: &str) -> Option<OffsetDateTime> {
    v[field]
        .as_str()
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{field}={s}: {e}")))
}

/// The record's fields without the health snapshot (which the monitor
/// updates on its own), for "the record did not change" checks.
pub fn without_health(v: &Option<Value>) -> Option<Value> {
    v.clone().map(|mut v| {
        if let Some(o) = v.as_object_mut() {
            // Health is observed, not changed by a request: both fields
            // move on their own (pending → healthy) while a test runs.
            o.remove("health");
            o.remove("health_state");
        }
        v
    })
}

/// POST with an `Idempotency-Key` on `base` (the GM or admin URL).
pub async fn post_keyed(
    base: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
    key: &str,
) -> (u16, Value) {
    call(
        "POST",
        &format!("{base}{path}"),
        Some(token),
        body,
        &[("idempotency-key", key)],
    )
    .await
}

/// Starts `game` on `tag` and waits until its engine answers (one start
/// line in the state directory), so later steps act on a live engine.
pub async fn start_running(app: &TestApp, game: &str, tag: &str) {
    let before = starts(app, game);
    let (status, body) = app.start_game(game, &image(tag)).await;
    assert_eq!(status, 200, "start {game}: {body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    wait_engine_started(app, game, before + 1).await;
}

/// Waits until the engine of `game` has logged `n` starts.
pub async fn wait_engine_started(app: &TestApp, game: &str, n: usize) {
    wait_for(
        &format!("{game}: {n} engine start(s) in starts.log"),
        Duration::from_secs(20),
        || async move { (starts(app, game) >= n).then_some(()) },
    )
    .await;
}

/// Stops a running game (GM surface).
pub async fn stop_game(app: &TestApp, game: &str) {
    let (status, body) = app
        .gm_post(
            &format!("/api/v1/runtimes/{game}/stop"),
            Some(json!({"timeout_s": 5})),
        )
        .await;
    assert_eq!(status, 200, "stop {game}: {body}");
    assert_eq!(body["runtime"]["status"], "stopped", "{body}");
}

/// Removes a stopped game's container (admin surface).
pub async fn cleanup_game(app: &TestApp, game: &str) {
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{game}/cleanup"), None)
        .await;
    assert_eq!(status, 200, "cleanup {game}: {body}");
    assert_eq!(body["runtime"]["status"], "removed", "{body}");
}

/// Operation rows never overlap in time: each starts at or after the
/// previous one finished (the per-game lock serialises them).
pub fn assert_no_overlap(rows: &[Row]) {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.started_at, r.id));
    for w in sorted.windows(2) {
        let prev_end = w[0].finished_at.expect("finished_at");
        assert!(
            w[1].started_at >= prev_end,
            "operations overlap: {:?} ends after {:?} starts",
            w[0],
            w[1]
        );
    }
}

/// GET `/healthz` of the engine in container `id`, from the host (container
/// IP on the test network).
pub async fn engine_health(c: &Ctr) -> Option<Value> {
    let networks = c.inspect["NetworkSettings"]["Networks"].as_object()?;
    let ip = networks
        .values()
        .filter_map(|n| n["IPAddress"].as_str())
        .find(|ip| !ip.is_empty())?
        .to_owned();
    let url = format!("http://{ip}:8080/healthz");
    let req = hyper::Request::get(&url).body(hyper::Body::empty()).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), hyper::Client::new().request(req))
        .await
        .ok()?
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let bytes = hyper::body::to_bytes(resp.into_body()).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}
