//! The real `rtmanager` binary: a bad configuration stops it before
//! anything starts, with one line per bad variable; a good one runs,
//! logs one JSON line per operation, and SIGTERM stops it with exit 0.
//! Every child process is bounded in time and killed if the test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_rtmanager");

/// A child process killed on drop, with its output collected line by line.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(vars: &[(String, String)]) -> Proc {
        let mut child = Command::new(BIN)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rtmanager");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the exit, at most `timeout` (then kills it and fails).
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let both reader threads drain the pipes (each drops its
                // handle at EOF, which follows the exit; bounded anyway).
                let drained = Instant::now() + Duration::from_secs(5);
                while Instant::now() < drained
                    && (Arc::strong_count(&self.stdout) > 1 || Arc::strong_count(&self.stderr) > 1)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "rtmanager did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout().join("\n"),
                    self.stderr().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout").clone()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr").clone()
    }

    /// The JSON log lines so far.
    fn json_logs(&self) -> Vec<Value> {
        self.stdout()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects `pipe`'s lines on a thread (which drops its handle at EOF).
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    lines
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

#[test]
fn bad_configuration_stops_the_binary_naming_every_bad_variable() {
    let gm = free_addr();
    let admin = free_addr();
    let vars: Vec<(String, String)> = [
        ("RTM_PROBE_INTERVAL", "5 seconds"),
        ("RTM_GM_TOKEN", "short"),
        ("RTM_ADMIN_TOKEN", "a-valid-admin-token-0123"),
        // RTM_IMAGE_ALLOWLIST: missing (required)
        ("RTM_ENGINE_USER", "0:0"),
        ("RTM_DATABASE_SCHEMA", "bad;name"),
        ("RTM_REDIS_URL", "http://:hunter2secret@127.0.0.1:6379"),
        ("RTM_HTTP_ADDR", &gm.to_string()),
        ("RTM_ADMIN_HTTP_ADDR", &admin.to_string()),
        ("RTM_MIGRATE_ON_START", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut proc = Proc::spawn(&vars);
    let status = proc.wait(Duration::from_secs(20));
    let stderr = proc.stderr().join("\n");
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    for var in [
        "RTM_PROBE_INTERVAL",
        "RTM_GM_TOKEN",
        "RTM_IMAGE_ALLOWLIST",
        "RTM_ENGINE_USER",
        "RTM_DATABASE_SCHEMA",
        "RTM_REDIS_URL",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{var}:"))),
            "{var} not named:\n{stderr}"
        );
    }
    assert!(stderr.contains("(6 problems)"), "{stderr}");
    assert!(
        !stderr.contains("RTM_ADMIN_TOKEN"),
        "a good value is not reported:\n{stderr}"
    );
    assert!(
        !stderr.contains("hunter2secret"),
        "secrets never reach the output:\n{stderr}"
    );
    // Nothing started: no log line at all, no listener.
    assert!(proc.stdout().is_empty(), "{:?}", proc.stdout());
    let gm_refused = std::net::TcpStream::connect_timeout(&gm, Duration::from_secs(2)).is_err();
    assert!(gm_refused, "nothing listens on {gm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_logs_operations_and_exits_0_on_sigterm() {
    let bin = game("bin");
    // The in-process app provisions schema, owner, network and streams;
    // it is stopped and the binary takes over its configuration.
    let mut app = spawn_app().await;
    app.stop().await;
    let mut vars: Vec<(String, String)> = app
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.push(("RTM_LOG_FORMAT".into(), "json".into()));
    vars.push(("RUST_LOG".into(), "info".into()));
    vars.push(("RTM_PROBE_INTERVALL".into(), "1s".into())); // a typo
    let shutdown_timeout = Duration::from_secs(10); // RTM_SHUTDOWN_TIMEOUT
    assert_eq!(app.vars["RTM_SHUTDOWN_TIMEOUT"], "10s");
    // Killed on drop if the test fails.
    let mut proc = Proc::spawn(&vars);

    let started = wait_for(
        "the 'rtmanager started' line",
        Duration::from_secs(60),
        || {
            let logs = proc.json_logs();
            async move {
                logs.into_iter()
                    .find(|l| l["fields"]["message"] == "rtmanager started")
            }
        },
    )
    .await;
    // The start-up line says which build runs.
    assert_eq!(started["fields"]["version"], env!("CARGO_PKG_VERSION"));
    let gm = format!(
        "http://{}",
        started["fields"]["gm"].as_str().expect("gm addr")
    );
    let gm_addr: std::net::SocketAddr = started["fields"]["gm"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("gm addr");
    let admin_addr: std::net::SocketAddr = started["fields"]["admin"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("admin addr");
    assert!(
        proc.json_logs().iter().any(|l| l["level"] == "WARN"
            && l["fields"]["variables"]
                .as_str()
                .is_some_and(|v| v.contains("RTM_PROBE_INTERVALL"))),
        "a typo is warned about: {:?}",
        proc.stdout()
    );
    wait_readyz(&gm, 200, Duration::from_secs(30)).await;

    let (status, body) = call(
        "POST",
        &format!("{gm}/api/v1/runtimes/{bin}/start"),
        Some(GM_TOKEN),
        Some(serde_json::json!({ "image_ref": image("1.0.0") })),
        &[("idempotency-key", "bin-start-1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // One line per operation: game, op, source, outcome, duration.
    let line = wait_for("the operation's log line", Duration::from_secs(10), || {
        let logs = proc.json_logs();
        let bin = bin.clone();
        async move {
            logs.into_iter().find(|l| {
                l["fields"]["message"] == "operation finished"
                    && l["fields"]["game_id"] == bin.as_str()
            })
        }
    })
    .await;
    let f = &line["fields"];
    assert_eq!(f["op"], "start", "{line}");
    assert_eq!(f["source"], "gm_rest", "{line}");
    assert_eq!(f["outcome"], "success", "{line}");
    assert_eq!(f["source_ref"], "bin-start-1", "{line}");
    assert!(f["duration_ms"].is_u64(), "{line}");
    assert!(
        !proc.stdout().join("\n").contains(GM_TOKEN),
        "tokens never logged"
    );

    let pid = proc.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status =
        tokio::task::block_in_place(|| proc.wait(shutdown_timeout + Duration::from_secs(10)));
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after SIGTERM\n{}",
        proc.stdout().join("\n")
    );
    let logs = proc.json_logs();
    assert!(
        logs.iter().any(|l| l["fields"]["message"] == "stopped"),
        "{:?}",
        proc.stdout()
    );
    assert!(
        !logs.iter().any(|l| l["level"] == "ERROR"),
        "a clean stop logs no error: {:?}",
        proc.stdout()
    );
    assert!(refuses(gm_addr).await && refuses(admin_addr).await);
    // The engine outlives RTM.
    let ids = app.containers(&bin);
    assert_eq!(ids.len(), 1);
    let running = rtm_testkit::docker::docker(&["inspect", "-f", "{{.State.Running}}", &ids[0]])
        .expect("inspect");
    assert_eq!(running.trim(), "true");
}
