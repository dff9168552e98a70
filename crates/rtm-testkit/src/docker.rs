//! Docker helpers for integration tests: the engine stub images, unique
//! owner labels, one shared network per test binary, and drop guards that
//! remove what a test created.
//!
//! ```no_run
//! use rtm_testkit::docker::{ensure_engine_images, engine_image, shared_network, OwnerGuard};
//! ensure_engine_images();                 // builds rtm.local/engine-stub:* when needed
//! let net = shared_network();             // keep it alive for the whole test
//! let owner = OwnerGuard::new();          // declared after `net`: dropped first
//! let image = engine_image("1.0.0");      // "rtm.local/engine-stub:1.0.0"
//! // ... DockerConfig { owner: owner.owner().into(), network: net.name().into(), .. }
//! # let _ = image;
//! ```
//!
//! Guarantees:
//! - [`ensure_engine_images`] runs `cargo xtask engine-image` at most once
//!   per process, and never concurrently with another process doing the
//!   same (a lock directory in the temp dir, with stale-holder detection).
//!   The xtask rebuilds only what changed, so this is cheap when the images
//!   are current. When the xtask itself fails (e.g. it does not compile)
//!   but every image exists, the existing images are used with a warning. `RTM_TEST_SKIP_IMAGE_BUILD=1` only checks that the images
//!   exist (for CI jobs that built them beforehand).
//! - [`OwnerGuard`] removes, on drop, every container labelled with its
//!   owner and its state root directory, even when the test panicked.
//! - [`shared_network`] hands out one user network per test binary
//!   (Docker's default address pools hold only ~30 of them, so a network per
//!   test would exhaust them); it is removed when the last test holding it
//!   drops it. Leftovers of killed test processes are swept on creation.
//! - [`DockerStarts`] counts Docker's `start` events of one owner's
//!   containers, per game, from a subscription opened before the test
//!   acts; a count includes every start Docker reported before the call.
//!
//! Everything goes through the `docker` CLI: drop guards cannot `.await`,
//! and the CLI is synchronous and always present where Docker is. A missing
//! Docker makes these helpers panic with a clear message, so tests fail
//! loudly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Repository of the stub images (see `cargo xtask engine-image`).
pub const ENGINE_REPOSITORY: &str = "rtm.local/engine-stub";
/// Tags of the healthy stub images, each reporting that version.
pub const ENGINE_VERSIONS: &[&str] = &["1.0.0", "1.0.1", "1.1.0", "2.0.0"];
/// Tag of the image whose engine exits with code 3 right after start.
pub const BROKEN_TAG: &str = "broken";
/// Label key marking networks made by this module (value: creator's pid).
const NETWORK_PID_LABEL: &str = "rtm.testkit.pid";
/// Prefix of owners made by [`unique_owner`]; used to sweep leftovers.
const OWNER_PREFIX: &str = "rtmtest";
/// How long to wait for another process building the images.
const BUILD_LOCK_WAIT: Duration = Duration::from_secs(15 * 60);

/// `rtm.local/engine-stub:<tag>`.
pub fn engine_image(tag: &str) -> String {
    format!("{ENGINE_REPOSITORY}:{tag}")
}

/// The Docker socket tests should use: `RTM_TEST_DOCKER_HOST`, else
/// `/var/run/docker.sock`.
pub fn docker_host() -> String {
    std::env::var("RTM_TEST_DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}

/// A fresh `rtm.owner` label value, so a test only ever sees its own
/// containers. Embeds the pid, which lets later runs sweep leftovers.
pub fn unique_owner() -> String {
    crate::unique(OWNER_PREFIX)
}

// ---------------------------------------------------------------- images

/// Makes sure every stub image exists and is current; panics (failing the
/// test) when it cannot.
pub fn ensure_engine_images() {
    if let Err(e) = try_ensure_engine_images() {
        panic!("cannot prepare the engine stub images (is Docker running?): {e:#}");
    }
}

/// Like [`ensure_engine_images`], returning the error. The outcome is
/// computed once per process and shared by every caller.
pub fn try_ensure_engine_images() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    // `get_or_init` blocks concurrent callers until the first one is done,
    // so threads of one test binary never build twice.
    DONE.get_or_init(|| build_images().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_images() -> Result<()> {
    if std::env::var("RTM_TEST_SKIP_IMAGE_BUILD").as_deref() == Ok("1") {
        return check_images_exist();
    }
    let _lock = DirLock::acquire(
        &std::env::temp_dir().join("rtm-engine-image.lock"),
        BUILD_LOCK_WAIT,
    )?;
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["run", "--quiet", "-p", "xtask", "--", "engine-image"])
        .stdin(Stdio::null())
        .output()
        .context("running `cargo run -p xtask -- engine-image`")?;
    if !out.status.success() {
        let why = format!(
            "`cargo xtask engine-image` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The xtask binary compiles the whole automation crate, which may be
        // mid-edit in a shared checkout. Images that already exist are
        // good enough then (the stub rarely changes); missing ones are not.
        return match check_images_exist() {
            Ok(()) => {
                eprintln!("warning: using existing engine stub images; {why}");
                Ok(())
            }
            Err(missing) => Err(missing.context(why)),
        };
    }
    check_images_exist()
}

fn check_images_exist() -> Result<()> {
    for tag in ENGINE_VERSIONS.iter().chain([&BROKEN_TAG]) {
        let image = engine_image(tag);
        docker(&["image", "inspect", "--format", "{{.Id}}", &image]).with_context(|| {
            format!("image {image} is missing (run `cargo xtask engine-image`)")
        })?;
    }
    Ok(())
}

/// The workspace root: this crate lives at `<root>/crates/rtm-testkit`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// A cross-process lock: a directory created atomically, holding the
/// owner's pid. A holder that died (no `/proc/<pid>`) is taken over, so a
/// killed test run never blocks the next one.
#[derive(Debug)]
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn acquire(path: &Path, wait: Duration) -> Result<Self> {
        let deadline = Instant::now() + wait;
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    fs::write(path.join("pid"), std::process::id().to_string())?;
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Self::is_stale(path) {
                        // Two waiters may both judge it stale and one may
                        // then remove the other's fresh lock. The worst
                        // outcome is two concurrent builds, one of which
                        // may fail; that needs a killed run *and* a race.
                        let _ = fs::remove_dir_all(path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        bail!("timed out waiting for lock {}", path.display());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock {}", path.display()))
                }
            }
        }
    }
}

impl DirLock {
    /// A lock whose holder is dead, or that never got a pid file within
    /// 10 s of its creation (the holder died in between).
    fn is_stale(path: &Path) -> bool {
        match fs::read_to_string(path.join("pid")) {
            Ok(pid) => !pid_alive(pid.trim()),
            Err(_) => fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(10)),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn pid_alive(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && Path::new("/proc").join(pid).exists()
}

// ---------------------------------------------------------------- owners

/// A unique owner label for one test, and a state root directory for its
/// games. Dropping it force-removes every container with that owner label
/// and deletes the state root.
#[derive(Debug)]
pub struct OwnerGuard {
    owner: String,
    state_root: PathBuf,
}

impl OwnerGuard {
    pub fn new() -> Self {
        let owner = unique_owner();
        let state_root = std::env::temp_dir().join("rtm-test-state").join(&owner);
        Self { owner, state_root }
    }

    /// The `rtm.owner` value to configure the adapter with.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// A directory for this test's game state (`RTM_STATE_ROOT`); not
    /// created here: the adapter creates game directories below it.
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }
}

impl Default for OwnerGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        if let Err(e) = remove_owned_containers(&self.owner) {
            eprintln!("OwnerGuard: cleaning containers of {}: {e:#}", self.owner);
        }
        if self.state_root.exists() {
            if let Err(e) = fs::remove_dir_all(&self.state_root) {
                eprintln!("OwnerGuard: removing {}: {e}", self.state_root.display());
            }
        }
    }
}

/// Force-removes every container (running or not) labelled
/// `rtm.owner=<owner>`; returns how many there were.
pub fn remove_owned_containers(owner: &str) -> Result<usize> {
    let ids = docker_lines(&["ps", "-aq", "--filter", &format!("label=rtm.owner={owner}")])?;
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.iter().map(String::as_str));
        docker(&args)?;
    }
    Ok(ids.len())
}

// ---------------------------------------------------------------- network

/// A user network shared by the tests of one binary; removed when the last
/// holder drops it.
#[derive(Debug)]
pub struct TestNetwork {
    name: String,
}

impl TestNetwork {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        if let Err(e) = docker(&["network", "rm", &self.name]) {
            eprintln!("TestNetwork: removing {}: {e:#}", self.name);
        }
    }
}

/// The network of this test binary, created on first use. Hold the `Arc`
/// for the whole test, and declare it *before* the [`OwnerGuard`] so the
/// containers are gone when it drops. Panics when Docker is unreachable.
pub fn shared_network() -> Arc<TestNetwork> {
    match try_shared_network() {
        Ok(net) => net,
        Err(e) => panic!("cannot create the test network (is Docker running?): {e:#}"),
    }
}

/// Like [`shared_network`], returning the error.
pub fn try_shared_network() -> Result<Arc<TestNetwork>> {
    static CURRENT: Mutex<Weak<TestNetwork>> = Mutex::new(Weak::new());
    // A std Mutex is enough: it is never held across an `.await`, and
    // holding it while creating the network makes concurrent first callers
    // share one network instead of racing to create two.
    let mut current = CURRENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(net) = current.upgrade() {
        return Ok(net);
    }
    sweep_leftovers();
    let name = crate::unique("rtmtest-net").replace('_', "-");
    docker(&[
        "network",
        "create",
        "--label",
        &format!("{NETWORK_PID_LABEL}={}", std::process::id()),
        &name,
    ])?;
    let net = Arc::new(TestNetwork { name });
    *current = Arc::downgrade(&net);
    Ok(net)
}

/// Removes containers and networks left by test processes that no longer
/// exist (killed runs never drop their guards). Best effort.
fn sweep_leftovers() {
    let Ok(containers) = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        "label=rtm.owner",
        "--format",
        "{{.ID}} {{.Label \"rtm.owner\"}}",
    ]) else {
        return;
    };
    for line in containers {
        let Some((id, owner)) = line.split_once(' ') else {
            continue;
        };
        // Owners look like `rtmtest_<pid>_<n>_<nanos>`.
        let mut parts = owner.split('_');
        if parts.next() == Some(OWNER_PREFIX) && parts.next().is_some_and(|pid| !pid_alive(pid)) {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
    let Ok(networks) = docker_lines(&[
        "network",
        "ls",
        "--filter",
        &format!("label={NETWORK_PID_LABEL}"),
        "--format",
        &format!("{{{{.Name}}}} {{{{.Label \"{NETWORK_PID_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    for line in networks {
        if let Some((name, pid)) = line.split_once(' ') {
            if !pid_alive(pid) {
                let _ = docker(&["network", "rm", name]);
            }
        }
    }
}

// ---------------------------------------------------------------- starts

/// The marker label of [`DockerStarts::all`]'s own probe container; no
/// `rtm.owner`, so no adapter under test ever looks at it.
const MARKER_LABEL: &str = "rtm-test.marker";

/// Docker's own count of the container starts of one owner, per game: a
/// `docker events` subscription (opened by [`DockerStarts::watch`], so
/// nothing is lost to Docker's short in-memory event history) that records
/// every `start` of a container labelled with the owner.
///
/// This counts what the service did to Docker. An engine's own record of
/// its starts (the stub's `starts.log`) misses a start that a stop follows
/// at once: Docker's init forwards the `SIGTERM` to an engine that may not
/// have installed its handler yet, and it dies (143) before it writes
/// (measured: 8 of 60 start-then-stop pairs on a loaded machine).
#[derive(Debug)]
pub struct DockerStarts {
    owner: String,
    child: std::process::Child,
    /// `(action, owner, game_id, marker)` of each event read so far.
    seen: Arc<Mutex<Vec<[String; 4]>>>,
}

impl DockerStarts {
    /// Subscribes from now on; panics (failing the test) when the docker
    /// CLI cannot be run.
    pub fn watch(owner: &str) -> Self {
        let since = unix_now();
        let format = format!(
            "{{{{.Action}}}}\t{{{{index .Actor.Attributes \"rtm.owner\"}}}}\t\
             {{{{index .Actor.Attributes \"rtm.game_id\"}}}}\t\
             {{{{index .Actor.Attributes \"{MARKER_LABEL}\"}}}}"
        );
        let mut child = cli()
            .args(["events", "--since", &since, "--format", &format])
            .args(["--filter", "type=container"])
            .args(["--filter", "event=start", "--filter", "event=create"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running docker events");
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut f = line.splitn(4, '\t').map(str::to_owned);
                let event = std::array::from_fn(|_| f.next().unwrap_or_default());
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(event);
            }
        });
        Self {
            owner: owner.to_owned(),
            child,
            seen,
        }
    }

    /// How many times Docker started a container of `game` (of this
    /// owner) since [`DockerStarts::watch`], up to now.
    pub fn of(&self, game: &str) -> usize {
        self.all().get(game).copied().unwrap_or(0)
    }

    /// How many times Docker started a container of each game (of this
    /// owner) since [`DockerStarts::watch`], up to now: it first creates a
    /// marker container and waits (≤ 30 s) until the subscription has
    /// delivered its event, which Docker sends after every earlier one.
    pub fn all(&self) -> std::collections::HashMap<String, usize> {
        let marker = crate::unique("marker");
        let id = docker(&[
            "create",
            "--label",
            &format!("{MARKER_LABEL}={marker}"),
            &engine_image("1.0.0"),
        ])
        .expect("docker create (marker)");
        let deadline = Instant::now() + Duration::from_secs(30);
        let counts = loop {
            {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.iter().any(|[_, _, _, m]| *m == marker) {
                    let mut counts = std::collections::HashMap::new();
                    for [action, owner, game, _] in seen.iter() {
                        if action == "start" && *owner == self.owner {
                            *counts.entry(game.clone()).or_insert(0) += 1;
                        }
                    }
                    break counts;
                }
            }
            if Instant::now() >= deadline {
                let _ = docker(&["rm", "-f", id.trim()]);
                panic!("docker events did not deliver the marker within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Err(e) = docker(&["rm", "-f", id.trim()]) {
            eprintln!("DockerStarts: removing the marker container: {e:#}");
        }
        counts
    }
}

impl Drop for DockerStarts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Now, as `docker events --since` takes it (seconds.nanoseconds).
fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

// ---------------------------------------------------------------- CLI

/// Runs `docker <args>`; `Err` with its stderr when it fails.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = cli()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the docker CLI")?;
    if !out.status.success() {
        bail!(
            "docker {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The docker CLI, talking to the same engine as the adapters under test.
pub(crate) fn cli() -> Command {
    let mut cmd = Command::new("docker");
    if let Ok(host) = std::env::var("RTM_TEST_DOCKER_HOST") {
        let url = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host
        };
        cmd.env("DOCKER_HOST", url);
    }
    cmd
}

fn docker_lines(args: &[&str]) -> Result<Vec<String>> {
    Ok(docker(args)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
