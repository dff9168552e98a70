//! The references the bench measures rtmanager against, in the same run:
//!
//! - **direct create+start**: the same containers, created and started
//!   through the Docker Engine API by 8 worker threads, two calls each
//!   (`POST /containers/create`, `POST /containers/{id}/start`). "The same"
//!   is taken literally: the create body is the `Config` and `HostConfig`
//!   of a container rtmanager itself created (image, limits, lockdown,
//!   labels, log caps, bind mount, network), with only the name, the game
//!   id, the state directory and the owner label changed — the owner is
//!   the bench's own reference owner, so rtmanager never sees them;
//! - **pgbench**: a prepared single-row `SELECT` of `runtime_records` by
//!   `game_id`, 16 clients, against the bench's own schema;
//! - **wrk**: the load generator for rtmanager's `GET`, 16 connections.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::http::unix_request;

/// Worker threads of the direct reference (the issue's "8 parallel workers").
const WORKERS: usize = 8;

/// Where the Docker Engine API listens (`RTM_DOCKER_HOST` when it is a
/// socket path, the default otherwise).
fn docker_socket() -> String {
    std::env::var("RTM_DOCKER_HOST")
        .ok()
        .map(|h| h.trim_start_matches("unix://").to_owned())
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

fn api(method: &str, path: &str, body: Option<&str>) -> Result<Value> {
    let r = unix_request(&docker_socket(), method, path, body)?;
    if !(200..300).contains(&r.status) {
        bail!("Docker API {method} {path}: {} {}", r.status, r.body.trim());
    }
    if r.body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&r.body).with_context(|| format!("Docker API {method} {path}: bad JSON"))
}

/// A create body for containers shaped like `template` (an rtmanager
/// container's id).
pub(super) struct Template {
    body: Value,
    network: String,
}

impl Template {
    pub(super) fn of(container: &str) -> Result<Self> {
        let inspect = api("GET", &format!("/containers/{container}/json"), None)?;
        let mut body = inspect["Config"].clone();
        let obj = body
            .as_object_mut()
            .context("inspect without a Config object")?;
        // Docker assigns these per container.
        obj.remove("Hostname");
        obj.insert("HostConfig".into(), inspect["HostConfig"].clone());
        let network = inspect["HostConfig"]["NetworkMode"]
            .as_str()
            .context("template without a network")?
            .to_owned();
        Ok(Self { body, network })
    }

    /// The body of one reference container.
    fn body_for(&self, game: &str, owner: &str, state_path: &Path, mount: &str) -> Value {
        let mut body = self.body.clone();
        body["Labels"]["rtm.owner"] = json!(owner);
        body["Labels"]["rtm.game_id"] = json!(game);
        body["Labels"]["rtm.state_path"] = json!(state_path.display().to_string());
        if let Some(env) = body["Env"].as_array_mut() {
            for e in env.iter_mut() {
                if e.as_str().is_some_and(|s| s.starts_with("GAME_ID=")) {
                    *e = json!(format!("GAME_ID={game}"));
                }
            }
        }
        body["HostConfig"]["Binds"] = json!([format!("{}:{mount}", state_path.display())]);
        body["NetworkingConfig"] = json!({ "EndpointsConfig": { self.network.clone(): {} } });
        body
    }
}

/// Creates and starts one container per name in `games` with 8 workers;
/// returns the wall time and the created ids. State directories are made
/// (owned by the engine user) before the clock starts, as rtmanager's
/// adapter makes its own inside the measured start.
pub(super) fn direct_burst(
    template: &Template,
    games: &[String],
    owner: &str,
    state_root: &Path,
    mount: &str,
    user: &str,
) -> Result<(Duration, Vec<String>)> {
    let bodies: Vec<(String, String)> = games
        .iter()
        .map(|g| {
            let dir = state_root.join(g);
            std::fs::create_dir_all(&dir)?;
            let status = Command::new("chown").arg(user).arg(&dir).status()?;
            if !status.success() {
                bail!("chown {user} {}", dir.display());
            }
            let name = format!("rtmref-{g}");
            Ok((name, template.body_for(g, owner, &dir, mount).to_string()))
        })
        .collect::<Result<_>>()?;
    let next = AtomicUsize::new(0);
    let ids = Mutex::new(Vec::with_capacity(games.len()));
    let errors = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, body)) = bodies.get(i) else {
                    return;
                };
                let created = api(
                    "POST",
                    &format!("/containers/create?name={name}"),
                    Some(body),
                )
                .and_then(|v| {
                    v["Id"]
                        .as_str()
                        .map(str::to_owned)
                        .context("create answered no Id")
                })
                .and_then(|id| {
                    api("POST", &format!("/containers/{id}/start"), Some(""))?;
                    Ok(id)
                });
                match created {
                    Ok(id) => lock(&ids).push(id),
                    Err(e) => lock(&errors).push(format!("{name}: {e:#}")),
                }
            });
        }
    });
    let took = t0.elapsed();
    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = errors.first() {
        remove_all(&ids);
        bail!(
            "direct reference: {} failures, first: {first}",
            errors.len()
        );
    }
    Ok((took, ids))
}

/// Removes containers (force, with volumes) with 8 workers; best effort.
pub(super) fn remove_all(ids: &[String]) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                if let Err(e) = api("DELETE", &format!("/containers/{id}?force=1&v=1"), None) {
                    eprintln!("removing reference container {id}: {e:#}");
                }
            });
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// pgbench's transactions per second for a prepared single-row select of
/// `runtime_records` by one of `games`' ids, 16 clients, for `secs`.
pub(super) fn pgbench(schema: &str, game_prefix: &str, n: usize, secs: u64) -> Result<f64> {
    let dir = std::env::temp_dir().join(format!("rtmbench-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("select.sql");
    std::fs::write(
        &script,
        format!(
            "\\set i random(0, {})\n\
             SELECT * FROM {schema}.runtime_records WHERE game_id = '{game_prefix}' || lpad(:i::text, 4, '0');\n",
            n - 1
        ),
    )?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "16", "-j", "2", "-T"])
        .arg(secs.to_string())
        .arg("-f")
        .arg(&script)
        .arg("host=127.0.0.1 port=5432 user=rtm_admin password=rtm_admin dbname=rtmanager")
        .output()
        .context("running pgbench (PostgreSQL's client tools)")?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // "tps = 12345.678901 (without initial connection time)"
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}

/// wrk's requests per second for `GET /api/v1/runtimes/{id}` over random
/// ids of `games`, 16 connections on 2 threads, for `secs`. Non-2xx
/// answers make it fail: a fast error is not a read.
pub(super) fn wrk_get(
    addr: &str,
    token: &str,
    game_prefix: &str,
    n: usize,
    secs: u64,
) -> Result<f64> {
    ensure_wrk()?;
    let dir = std::env::temp_dir().join(format!("rtmbench-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("get.lua");
    std::fs::write(
        &script,
        format!(
            r#"math.randomseed(os.time())
request = function()
  local path = string.format("/api/v1/runtimes/{game_prefix}%04d", math.random(0, {last}))
  return wrk.format("GET", path, {{ ["Authorization"] = "Bearer {token}" }})
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx-or-3xx: %d\n", summary.errors.status))
end
"#,
            last = n - 1
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t2", "-c16", "--latency", "-d"])
        .arg(format!("{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .context("running wrk")?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    if let Some(bad) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("non-2xx-or-3xx: "))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&b| b > 0)
    {
        bail!("wrk: {bad} answers were not 200: {text}");
    }
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Requests/sec:")
                .and_then(|v| v.trim().parse().ok())
        })
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

/// wrk is a Debian package; the bench installs it on first use.
fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get install wrk")?;
    if !status.success() {
        bail!("apt-get install wrk failed ({status})");
    }
    Ok(())
}

/// Docker's own `kill` → `die` latency is read from `docker events`,
/// which this follows for the bench's owner label.
pub(super) struct DieEvents {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<(String, Instant)>,
}

impl DieEvents {
    pub(super) fn follow(owner: &str) -> Result<Self> {
        use std::io::BufRead;
        let mut child = Command::new("docker")
            .args(["events", "--filter", "event=die", "--filter"])
            .arg(format!("label=rtm.owner={owner}"))
            .args(["--format", "{{.Actor.Attributes.name}}"])
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .context("docker events")?;
        let stdout = child.stdout.take().context("docker events stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((line.trim().to_owned(), Instant::now())).is_err() {
                    return;
                }
            }
        });
        Ok(Self { child, rx })
    }

    /// When the `die` of container `name` arrived, waiting up to `wait`.
    pub(super) fn wait_for(&self, name: &str, wait: Duration) -> Option<Instant> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok((n, at)) if n == name => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for DieEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The end of a Swarm task as the manager's API reports it: a thread
/// polls `GET /tasks/{id}` every 20 ms until the task's state is no
/// longer `running` (bounded by `wait`) — the earliest a client polling
/// the task list, like the swarm adapter's feed, could learn of it.
pub(super) struct TaskEnd {
    handle: std::thread::JoinHandle<Option<Instant>>,
}

impl TaskEnd {
    pub(super) fn watch(task: &str, wait: Duration) -> Self {
        let path = format!("/tasks/{task}");
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                let state = api("GET", &path, None).ok()?;
                if state["Status"]["State"].as_str() != Some("running") {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        Self { handle }
    }

    /// When the task was seen ended; `None` if not within the wait.
    pub(super) fn join(self) -> Option<Instant> {
        self.handle.join().ok().flatten()
    }
}

/// The health stream as a client following it sees it: a thread blocked
/// in `XREAD` on its own connection timestamps each entry as it arrives,
/// exactly as [`DieEvents`] timestamps Docker's `die` lines. So "kill →
/// exited readable" and Docker's "kill → die" are measured alike, without
/// the process spawns of `redis-cli` in either.
pub(super) struct StreamFollower {
    rx: std::sync::mpsc::Receiver<(String, String, Instant)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StreamFollower {
    /// Follows `stream` from its current end.
    pub(super) fn follow(stream: &str) -> Result<Self> {
        use std::sync::atomic::AtomicBool;
        let mut conn = RespConn::connect()?;
        // The id of the newest entry now: follow from there.
        let mut last = match conn.call(&["XREVRANGE", stream, "+", "-", "COUNT", "1"])? {
            Resp::Array(entries) => entries
                .first()
                .and_then(|e| e.nth(0))
                .and_then(Resp::text)
                .unwrap_or("0-0")
                .to_owned(),
            _ => "0-0".to_owned(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let stream = stream.to_owned();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let reply = conn.call(&["XREAD", "BLOCK", "500", "STREAMS", &stream, &last]);
                let Ok(reply) = reply else { return };
                let at = Instant::now();
                // [[stream, [[id, [field, value, …]], …]]] or nil.
                let entries = reply.nth(0).and_then(|s| s.nth(1));
                let Some(Resp::Array(entries)) = entries else {
                    continue;
                };
                for entry in entries {
                    let Some(id) = entry.nth(0).and_then(Resp::text) else {
                        continue;
                    };
                    last = id.to_owned();
                    let field = |name: &str| match entry.nth(1) {
                        Some(Resp::Array(kv)) => kv
                            .chunks(2)
                            .find(|p| p[0].text() == Some(name))
                            .and_then(|p| p.get(1))
                            .and_then(Resp::text)
                            .map(str::to_owned),
                        _ => None,
                    };
                    let (Some(game), Some(kind)) = (field("game_id"), field("event_type")) else {
                        continue;
                    };
                    if tx.send((game, kind, at)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Self { rx, stop })
    }

    /// When an entry of `game` with this `event_type` arrived, waiting up
    /// to `wait`; entries of other games or types are skipped.
    pub(super) fn wait_for(&self, game: &str, event_type: &str, wait: Duration) -> Option<Instant> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok((g, t, at)) if g == game && t == event_type => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for StreamFollower {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A RESP2 reply, as much of it as the follower reads.
#[derive(Debug)]
enum Resp {
    Text(String),
    Int,
    Nil,
    Array(Vec<Resp>),
}

impl Resp {
    fn nth(&self, i: usize) -> Option<&Resp> {
        match self {
            Resp::Array(items) => items.get(i),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Resp::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// One plain connection to Redis (`RTM_REDIS_URL`, without TLS), for the
/// follower only: xtask stays free of a Redis client crate.
struct RespConn {
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl RespConn {
    fn connect() -> Result<Self> {
        let url =
            std::env::var("RTM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let rest = url
            .strip_prefix("redis://")
            .with_context(|| format!("the bench follows plain redis:// only, not {url}"))?;
        let (auth, addr) = match rest.rsplit_once('@') {
            Some((auth, addr)) => (Some(auth.to_owned()), addr),
            None => (None, rest),
        };
        let addr = addr.split('/').next().unwrap_or(addr);
        let stream =
            std::net::TcpStream::connect(addr).with_context(|| format!("Redis at {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            reader: std::io::BufReader::new(stream),
        };
        if let Some(auth) = auth {
            let args: Vec<&str> = match auth.split_once(':') {
                Some(("", pass)) => vec!["AUTH", pass],
                Some((user, pass)) => vec!["AUTH", user, pass],
                None => vec!["AUTH", auth.as_str()],
            };
            let mut cmd = args;
            cmd.retain(|a| !a.is_empty());
            conn.call(&cmd)?;
        }
        Ok(conn)
    }

    fn call(&mut self, args: &[&str]) -> Result<Resp> {
        use std::io::Write;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
        self.reader.get_mut().write_all(req.as_bytes())?;
        self.read()
    }

    fn read(&mut self) -> Result<Resp> {
        use std::io::{BufRead, Read};
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("Redis closed the connection");
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let n = || {
            rest.parse::<i64>()
                .with_context(|| format!("RESP length {rest:?}"))
        };
        Ok(match kind {
            "+" => Resp::Text(rest.to_owned()),
            "-" => bail!("Redis: {rest}"),
            ":" => Resp::Int,
            "$" if n()? < 0 => Resp::Nil,
            "$" => {
                let mut buf = vec![0; usize::try_from(n()?)? + 2];
                self.reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Resp::Text(String::from_utf8_lossy(&buf).into_owned())
            }
            "*" if n()? < 0 => Resp::Nil,
            "*" => {
                let len = usize::try_from(n()?)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.read()?);
                }
                Resp::Array(items)
            }
            _ => bail!("unexpected RESP line {line:?}"),
        })
    }
}
