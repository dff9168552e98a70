//! `spawn_app()` and the helpers every end-to-end test uses.

#![allow(dead_code)] // each test module uses a different subset

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use rtm_testkit::docker::{ensure_engine_images, shared_network, OwnerGuard, TestNetwork};
use rtm_testkit::pg::TestDb;
use rtm_testkit::swarm::{shared_overlay, OverlayNetwork, ServiceGuard};
use rtmanager::app::{self, RunningApp};
use rtmanager::config::Config;
use serde_json::Value;

pub const GM_TOKEN: &str = "test-gm-token-0123456789";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Whether the suites run against the Swarm adapter: `RTM_TEST_RUNTIME=swarm`
/// (`docker`, empty or unset: one Docker engine; anything else panics, so
/// a typo never runs the wrong pass silently). See docs/swarm.md,
/// "End-to-end suites on the swarm".
pub fn on_swarm() -> bool {
    match std::env::var("RTM_TEST_RUNTIME").as_deref() {
        Ok("swarm") => true,
        Ok("docker" | "") | Err(_) => false,
        Ok(other) => panic!("RTM_TEST_RUNTIME={other:?}: use docker or swarm"),
    }
}

/// `true` (after saying so on stderr) when the suites run on a swarm and
/// the calling test's subject does not exist there; the caller returns at
/// once. `why` names the docs/swarm.md section that says so.
pub fn skip_on_swarm(test: &str, why: &str) -> bool {
    if on_swarm() {
        eprintln!("SKIPPED on swarm: {test}: {why}");
        return true;
    }
    false
}

/// The engines' network of a test: a bridge network on one engine, an
/// attachable overlay network this process is attached to on a swarm.
#[derive(Debug, Clone)]
pub enum EnginesNetwork {
    Bridge(Arc<TestNetwork>),
    Overlay(Arc<OverlayNetwork>),
}

impl EnginesNetwork {
    pub fn name(&self) -> &str {
        match self {
            Self::Bridge(n) => n.name(),
            Self::Overlay(n) => n.name(),
        }
    }
}

/// `rtm.local/engine-stub:<tag>` (built when missing).
pub fn image(tag: &str) -> String {
    rtm_testkit::docker::engine_image(tag)
}

/// A running rtmanager and everything it owns. Dropping it removes the
/// test's containers, schema and state directory (the app's tasks end with
/// the test's runtime; call [`TestApp::stop`] for a graceful stop).
pub struct TestApp {
    pub app: Option<RunningApp>,
    pub gm: String,
    pub admin: String,
    pub vars: HashMap<String, String>,
    pub lobby_stream: String,
    pub health_stream: String,
    pub db: TestDb,
    // Declared before `owner` and `network`: on a swarm the services go
    // first (their task containers with them), then the owner's
    // containers, then the network.
    services: Option<ServiceGuard>,
    // Declared before `network`: containers go before their network.
    pub owner: OwnerGuard,
    pub network: EnginesNetwork,
    keys: rtm_testkit::redis::KeyGuard,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Starts rtmanager with test settings (fast health intervals, reconcile
/// and TTL cleanup effectively only at start).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with `tweak` editing the `RTM_*` variables first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_logs();
    tokio::task::spawn_blocking(ensure_engine_images)
        .await
        .expect("engine images");
    let db = TestDb::new().await;
    let swarm = on_swarm();
    let network = if swarm {
        EnginesNetwork::Overlay(
            tokio::task::spawn_blocking(shared_overlay)
                .await
                .expect("overlay"),
        )
    } else {
        EnginesNetwork::Bridge(shared_network())
    };
    let owner = OwnerGuard::new();
    let mut keys = rtm_testkit::redis::KeyGuard::new(&rtm_testkit::redis::redis_url());
    let lobby_stream = keys.unique_key("e2e_lobby");
    keys.key(format!("{lobby_stream}:dead"));
    let health_stream = keys.unique_key("e2e_health");
    let mut vars: HashMap<String, String> = [
        ("RTM_DATABASE_URL", db.url().to_owned()),
        ("RTM_DATABASE_SCHEMA", db.schema().to_owned()),
        ("RTM_MIGRATE_ON_START", "true".into()),
        ("RTM_REDIS_URL", rtm_testkit::redis::redis_url()),
        ("RTM_HTTP_ADDR", "127.0.0.1:0".into()),
        ("RTM_ADMIN_HTTP_ADDR", "127.0.0.1:0".into()),
        ("RTM_GM_TOKEN", GM_TOKEN.into()),
        ("RTM_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("RTM_IMAGE_ALLOWLIST", "rtm.local/engine-stub".into()),
        ("RTM_OWNER", owner.owner().to_owned()),
        ("RTM_INSTANCE_ID", format!("{}-a", owner.owner())),
        ("RTM_DOCKER_NETWORK", network.name().to_owned()),
        ("RTM_STATE_ROOT", owner.state_root().display().to_string()),
        ("RTM_LOBBY_STREAM", lobby_stream.clone()),
        ("RTM_HEALTH_STREAM", health_stream.clone()),
        ("RTM_PROBE_INTERVAL", "500ms".into()),
        ("RTM_PROBE_TIMEOUT", "1s".into()),
        ("RTM_INSPECT_INTERVAL", "1s".into()),
        ("RTM_RECONCILE_INTERVAL", "1h".into()),
        ("RTM_CLEANUP_INTERVAL", "1h".into()),
        ("RTM_STOP_TIMEOUT", "5s".into()),
        ("RTM_PATCH_HEALTH_TIMEOUT", "10s".into()),
        ("RTM_SHUTDOWN_TIMEOUT", "10s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if swarm {
        // docs/swarm.md: Docker 20.10's service API cannot express two
        // lockdown fields; this machine runs without swap. The feed polls
        // every second (the default), well inside the suites' waits.
        vars.insert("RTM_RUNTIME".into(), "swarm".into());
        vars.insert("RTM_SWARM_ACCEPT_WEAKER_ISOLATION".into(), "true".into());
    }
    tweak(&mut vars);
    let mut test = TestApp {
        app: None,
        gm: String::new(),
        admin: String::new(),
        vars,
        lobby_stream,
        health_stream,
        db,
        services: swarm.then(|| ServiceGuard::new(owner.owner())),
        owner,
        network,
        keys,
    };
    test.start().await;
    test
}

impl TestApp {
    /// Starts (or starts again) the application with `self.vars`.
    pub async fn start(&mut self) {
        assert!(self.app.is_none(), "already running");
        let config = Config::from_map(&self.vars, None)
            .unwrap_or_else(|e| panic!("test configuration: {e}"));
        let app = app::start(config).await.expect("rtmanager starts");
        self.gm = format!("http://{}", app.gm_addr);
        self.admin = format!("http://{}", app.admin_addr);
        self.app = Some(app);
        if on_swarm() {
            // The adapter's readiness fails unless this process is attached
            // to the overlay network (docs/swarm.md, "Where rtmanager
            // runs"): every swarm test starts from a passing check.
            let url = format!("{}/readyz", self.gm);
            wait_until("/readyz 200 on the swarm", Duration::from_secs(30), || {
                let url = url.clone();
                async move {
                    let (status, body) = call("GET", &url, None, None, &[]).await;
                    (status == 200)
                        .then_some(())
                        .ok_or(format!("{status} {body}"))
                }
            })
            .await;
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().expect("running")
    }

    /// `GET <gm>/api/v1/runtimes/{game}`: `(status, body)`.
    pub async fn runtime(&self, game: &str) -> (u16, Value) {
        gm_get(self, &format!("/api/v1/runtimes/{game}")).await
    }

    /// POST to the GM surface: `(status, body)`.
    pub async fn gm_post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", self.gm),
            Some(GM_TOKEN),
            body,
            &[],
        )
        .await
    }

    /// POST to the admin surface.
    pub async fn admin_post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", self.admin),
            Some(ADMIN_TOKEN),
            body,
            &[],
        )
        .await
    }

    /// GET on the admin surface.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        call(
            "GET",
            &format!("{}{path}", self.admin),
            Some(ADMIN_TOKEN),
            None,
            &[],
        )
        .await
    }

    /// `POST /api/v1/runtimes/{game}/start` with `image_ref`.
    pub async fn start_game(&self, game: &str, image_ref: &str) -> (u16, Value) {
        self.gm_post(
            &format!("/api/v1/runtimes/{game}/start"),
            Some(serde_json::json!({ "image_ref": image_ref })),
        )
        .await
    }

    /// Rows of `operation_log` for `game`, oldest first, read directly.
    pub async fn operation_rows(&self, game: &str) -> Vec<tokio_postgres::Row> {
        let client = self.db.admin_client().await.expect("admin client");
        client
            .query(
                "SELECT * FROM operation_log WHERE game_id = $1 ORDER BY id",
                &[&game],
            )
            .await
            .expect("operation rows")
    }

    /// Ids of this test's containers for `game` (`docker ps -a`): on a
    /// swarm, the port's containers are services, so their service ids
    /// (what rtmanager records as `container_id`).
    pub fn containers(&self, game: &str) -> Vec<String> {
        if on_swarm() {
            return rtm_testkit::docker::docker(&[
                "service",
                "ls",
                "--filter",
                &format!("label=rtm.owner={}", self.owner.owner()),
                "--filter",
                &format!("label=rtm.game_id={game}"),
                "--format",
                "{{.ID}}",
            ])
            .expect("docker service ls")
            .split_whitespace()
            .map(service_id)
            .collect();
        }
        rtm_testkit::docker::docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=rtm.owner={}", self.owner.owner()),
            "--filter",
            &format!("label=rtm.game_id={game}"),
        ])
        .expect("docker ps")
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// The Docker container behind a runtime container id (a recorded
    /// `container_id`), for `docker kill/inspect/stop/rm`: the id itself on
    /// one engine; on a swarm, where the id is a service's, the service's
    /// newest task container on this node (waits ≤ 10 s for one).
    pub async fn docker_container(&self, id: &str) -> String {
        if !on_swarm() {
            return id.to_owned();
        }
        let filter = format!("label=com.docker.swarm.service.id={id}");
        wait_until(
            &format!("a task container of service {id}"),
            Duration::from_secs(10),
            || {
                let filter = filter.clone();
                async move {
                    let out = rtm_testkit::docker::docker(&[
                        "ps",
                        "-aq",
                        "--no-trunc",
                        "--filter",
                        &filter,
                    ])
                    .map_err(|e| format!("{e:#}"))?;
                    // `docker ps` lists the newest first.
                    out.split_whitespace()
                        .next()
                        .map(str::to_owned)
                        .ok_or_else(|| "none".to_owned())
                }
            },
        )
        .await
    }

    /// Runs an engine behind rtmanager's back, as another tool would:
    /// `docker run -d --name <name> <args>` on one engine; on a swarm, the
    /// same as a service (`docker service create`, one replica, restart
    /// condition none, each `--label` on the service and on its container,
    /// `rtm.name` = `name`). `args` may hold `--label k=v`, `-e K=V`,
    /// `--user u`, `--tmpfs path`, `--network n`, then the image. Returns
    /// the id (a service id on a swarm).
    pub fn run_behind_back(&self, name: &str, args: &[&str]) -> String {
        use rtm_testkit::docker::docker;
        if !on_swarm() {
            let mut all = vec!["run", "-d", "--name", name];
            all.extend_from_slice(args);
            return docker(&all).expect("docker run").trim().to_owned();
        }
        let rtm_name = format!("rtm.name={name}");
        // A service's name is a DNS label: no `_` or `.`.
        let service_name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(63)
            .collect();
        let mut all: Vec<String> = [
            "service",
            "create",
            "-d",
            "-q",
            // Local images: no registry to pin a digest from.
            "--no-resolve-image",
            "--restart-condition",
            "none",
            "--name",
            service_name.as_str(),
            "--label",
            rtm_name.as_str(),
            "--container-label",
            rtm_name.as_str(),
        ]
        .map(str::to_owned)
        .to_vec();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || (*it.next().expect("a value after the option")).to_owned();
            match *arg {
                "--label" => {
                    let v = value();
                    all.extend(["--label".into(), v.clone(), "--container-label".into(), v]);
                }
                "-e" => all.extend(["--env".into(), value()]),
                "--tmpfs" => all.extend([
                    "--mount".into(),
                    format!("type=tmpfs,destination={}", value()),
                ]),
                "--user" | "--network" => all.extend([(*arg).to_owned(), value()]),
                other if other.starts_with('-') => panic!("run_behind_back: {other} not mapped"),
                image => all.push(image.to_owned()),
            }
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        docker(&all)
            .expect("docker service create")
            .trim()
            .to_owned()
    }

    /// Removes a runtime container behind rtmanager's back (`docker rm -f`;
    /// on a swarm `docker service rm`: the port's container is the service).
    pub fn remove_behind_back(&self, id: &str) {
        let args = if on_swarm() {
            ["service", "rm", id]
        } else {
            ["rm", "-f", id]
        };
        rtm_testkit::docker::docker(&args).expect("remove behind rtmanager's back");
    }

    /// Renames a runtime container behind rtmanager's back (`docker
    /// rename`; on a swarm the name is the service's `rtm.name` label).
    pub fn rename_behind_back(&self, id: &str, name: &str) {
        if on_swarm() {
            let label = format!("rtm.name={name}");
            rtm_testkit::docker::docker(&["service", "update", "-d", "--label-add", &label, id])
                .expect("docker service update");
        } else {
            rtm_testkit::docker::docker(&["rename", id, name]).expect("docker rename");
        }
    }

    /// Ids of this test's containers under the name `name` (any state):
    /// on a swarm, services labelled `rtm.name=<name>`.
    pub fn containers_named(&self, name: &str) -> Vec<String> {
        let owner = format!("label=rtm.owner={}", self.owner.owner());
        let out = if on_swarm() {
            rtm_testkit::docker::docker(&[
                "service",
                "ls",
                "-q",
                "--filter",
                &owner,
                "--filter",
                &format!("label=rtm.name={name}"),
            ])
        } else {
            rtm_testkit::docker::docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("name=^/{name}$"),
                "--filter",
                &owner,
            ])
        };
        out.expect("docker ps")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Ids of all of this test's containers (services on a swarm), sorted.
    pub fn all_containers(&self) -> Vec<String> {
        let owner = format!("label=rtm.owner={}", self.owner.owner());
        let out = if on_swarm() {
            rtm_testkit::docker::docker(&["service", "ls", "-q", "--filter", &owner])
        } else {
            rtm_testkit::docker::docker(&["ps", "-aq", "--no-trunc", "--filter", &owner])
        };
        let mut ids: Vec<String> = out
            .expect("docker ps")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    }

    /// The host state directory of `game`.
    pub fn state_dir(&self, game: &str) -> std::path::PathBuf {
        self.owner.state_root().join(game)
    }
}

/// The full id of a service (`service ls` prints a short one).
fn service_id(short: &str) -> String {
    rtm_testkit::docker::docker(&["service", "inspect", "--format", "{{.ID}}", short])
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|_| short.to_owned())
}

/// GET on the GM surface.
pub async fn gm_get(app: &TestApp, path: &str) -> (u16, Value) {
    call(
        "GET",
        &format!("{}{path}", app.gm),
        Some(GM_TOKEN),
        None,
        &[],
    )
    .await
}

/// One HTTP request; returns the status and the JSON body (`Null` when the
/// body is empty or not JSON).
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (status, text) = call_raw(method, url, token, body.map(|b| b.to_string()), headers).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// One HTTP request with a raw body; returns the status and the body text.
pub async fn call_raw(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(hyper::Body::from(body.unwrap_or_default()))
        .expect("request");
    let client = hyper::Client::new();
    let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {url} timed out"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let bytes = hyper::body::to_bytes(resp.into_body())
        .await
        .expect("response body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Like [`wait_for`], but `probe` says what it saw instead of `None`, and
/// a timeout reports the last thing seen: a failure tells what the state
/// was, not only what it was not.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `probe` every 100 ms until it yields `Some`, failing the test with
/// `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- added for readiness (two replicas) --------------------------------

/// Starts another replica of `app`'s deployment: the same schema, owner,
/// network, state root and streams, with instance id `<owner>-<suffix>`
/// and its own ports; `tweak` edits its variables first. The caller stops
/// it with `RunningApp::shutdown`.
pub async fn spawn_replica(
    app: &TestApp,
    suffix: &str,
    tweak: impl FnOnce(&mut HashMap<String, String>),
) -> RunningApp {
    let mut vars = app.vars.clone();
    vars.insert(
        "RTM_INSTANCE_ID".into(),
        format!("{}-{suffix}", app.owner.owner()),
    );
    vars.insert("RTM_HTTP_ADDR".into(), "127.0.0.1:0".into());
    vars.insert("RTM_ADMIN_HTTP_ADDR".into(), "127.0.0.1:0".into());
    tweak(&mut vars);
    let config =
        Config::from_map(&vars, None).unwrap_or_else(|e| panic!("replica configuration: {e}"));
    app::start(config).await.expect("replica starts")
}
