//! The real `rtmanager` binary's command line (SPEC §10, issue 13.6) and
//! its `ctl` client (issue 11.2), plus the admin logs endpoint the client
//! and the dashboard read (issue 11.3). Every child process runs with a
//! deadline and is killed when it overruns.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

mod command_line;
mod ctl;
mod logs;

const BIN: &str = env!("CARGO_BIN_EXE_rtmanager");

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with exactly `vars` as its environment, waits at most
/// `timeout` (then kills it and fails the test). Output goes through files
/// so a chatty child can never block on a full pipe.
pub fn run_bin(args: &[&str], vars: &HashMap<String, String>, timeout: Duration) -> Output {
    let dir = std::env::temp_dir().join(rtm_testkit::unique("rtm-cli-out"));
    std::fs::create_dir_all(&dir).expect("output dir");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn rtmanager");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rtmanager {args:?} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                read(&out_path),
                read(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        code: status.code(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Like [`run_bin`], off the async runtime (the in-process app keeps
/// serving while the child runs).
pub async fn run_bin_async(
    args: &[&str],
    vars: &HashMap<String, String>,
    timeout: Duration,
) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let vars = vars.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bin(&args, &vars, timeout)
    })
    .await
    .expect("child runner")
}

/// The tables of `db`'s schema (none until migrations ran).
pub async fn tables(app_db: &rtm_testkit::pg::TestDb) -> Vec<String> {
    let client = app_db.admin_client().await.expect("admin connection");
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&app_db.schema()],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}
