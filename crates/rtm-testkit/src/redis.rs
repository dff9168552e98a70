//! Redis helpers for integration tests: the test Redis URL, unique stream
//! names, a helper that `XADD`s a map of fields, a guard that deletes the
//! test's keys on drop, and [`RedisServer`], a private `redis-server` child
//! on a free loopback port that can be stopped and restarted on the same
//! port (for reconnection tests) and is killed on drop.
//!
//! Everything here panics with a clear message when Redis is missing: a
//! test that needs Redis must fail loudly, never skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy, StreamsInterface};
use fred::types::Value;

/// `RTM_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("RTM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh connected client (with reconnection) for test set-up and checks.
/// Panics when Redis is unreachable.
pub async fn client(url: &str) -> Client {
    let config = Config::from_url(url).unwrap_or_else(|e| panic!("bad redis url {url}: {e}"));
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
        .unwrap_or_else(|e| panic!("cannot build redis client: {e}"));
    client
        .init()
        .await
        .unwrap_or_else(|e| panic!("redis at {url} is required for this test: {e}"));
    client
}

/// Appends one entry with these fields; returns its id.
pub async fn xadd(client: &Client, stream: &str, fields: &[(&str, &str)]) -> String {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let id: String = client
        .xadd(stream, false, None, "*", fields)
        .await
        .unwrap_or_else(|e| panic!("XADD {stream}: {e}"));
    id
}

/// Every entry of a stream as `(id, fields)`, oldest first.
pub async fn xrange(client: &Client, stream: &str) -> Vec<(String, Vec<(String, String)>)> {
    let v: Value = client
        .xrange(stream, "-", "+", None)
        .await
        .unwrap_or_else(|e| panic!("XRANGE {stream}: {e}"));
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|e| match e {
            Value::Array(mut parts) if parts.len() == 2 => {
                let body = parts.pop()?;
                let id = parts.pop()?.as_string()?;
                let Value::Array(flat) = body else {
                    return Some((id, Vec::new()));
                };
                let fields = flat
                    .chunks_exact(2)
                    .filter_map(|p| Some((p[0].as_string()?, p[1].as_string()?)))
                    .collect();
                Some((id, fields))
            }
            _ => None,
        })
        .collect()
}

/// Deletes the registered keys when dropped (through `redis-cli`, since a
/// drop cannot await). Register every key a test creates.
#[derive(Debug)]
pub struct KeyGuard {
    url: String,
    keys: Vec<String>,
}

impl KeyGuard {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            keys: Vec::new(),
        }
    }

    /// Registers `key` and returns it.
    pub fn key(&mut self, key: impl Into<String>) -> String {
        let key = key.into();
        self.keys.push(key.clone());
        key
    }

    /// A unique key `<prefix>_<unique>` (e.g. `unique_key("lobby")`), registered.
    pub fn unique_key(&mut self, prefix: &str) -> String {
        self.key(crate::unique(prefix))
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let status = Command::new("redis-cli")
            .arg("-u")
            .arg(&self.url)
            .arg("DEL")
            .args(&self.keys)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("warning: could not delete test keys {:?}", self.keys);
        }
    }
}

/// A private `redis-server` on a free loopback port, with its own data
/// directory; killed and its directory removed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence (`--save "" --appendonly no`).
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with these extra arguments (after `--port`, `--bind`
    /// and `--dir`).
    pub fn start_with(args: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(crate::unique("rtm-redis"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut server = Self {
            port,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server gracefully (SIGTERM: an append-only file is flushed)
    /// and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    /// Kills the server (SIGKILL: nothing is flushed).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts it again on the same port with other extra arguments.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.stop();
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server is required for this test: {e}"));
        self.child = Some(child);
        // Ready when it answers PING; bounded in time.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "PING"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
                .unwrap_or(false);
            if pong {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
