//! The `lockdown` control file: the engine tries what a locked-down
//! container must refuse, and writes what happened to
//! `$ENGINE_STATE_DIR/lockdown.result`, one `key=outcome` line each
//! (`ok`, or the OS error):
//!
//! - `write_root`, `write_etc`, `write_etc_hosts`, `write_binary`: create
//!   or append to files outside `/tmp` and the state dir (expected:
//!   read-only file system);
//! - `write_tmp`: a file in `/tmp` (expected: `ok`);
//! - `exec_tmp`: run a copy of itself from `/tmp` (expected: permission
//!   denied, the tmpfs is `noexec`);
//! - `spawned`, `spawn_error`: how many idle children it could start
//!   before the first refusal (expected: fewer than the pids limit, and
//!   "resource temporarily unavailable"); the children are then ended and
//!   reaped, so the engine keeps serving;
//! - `pid1`: the name of PID 1 (Docker's init is `docker-init`).
//!
//! The result is written to a temporary name and renamed, so a reader
//! never sees half of it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The argument that makes the binary an idle child (see [`idle_child`]).
pub const IDLE_ARG: &str = "--idle-child";

/// Safety net when no pids limit stops the spawning.
const MAX_CHILDREN: usize = 4096;

/// Runs the probes and writes `lockdown.result` in `state_dir`.
pub fn probe(state_dir: &Path) -> io::Result<()> {
    let mut lines = Vec::new();
    let mut record = |key: &str, outcome: io::Result<()>| {
        let shown = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        lines.push(format!("{key}={shown}"));
    };
    record("write_root", create("/lockdown-probe"));
    record("write_etc", create("/etc/lockdown-probe"));
    record("write_etc_hosts", append("/etc/hosts"));
    record("write_binary", append("/rtm-engine-stub"));
    record("write_tmp", create("/tmp/lockdown-probe"));
    record("exec_tmp", exec_from_tmp());
    let (spawned, error) = spawn_until_refused();
    lines.push(format!("spawned={spawned}"));
    lines.push(format!(
        "spawn_error={}",
        error.map_or_else(|| "none".to_owned(), |e| e.to_string())
    ));
    let pid1 = fs::read_to_string("/proc/1/comm").unwrap_or_else(|e| e.to_string());
    lines.push(format!("pid1={}", pid1.trim()));

    let tmp = state_dir.join("lockdown.result.tmp");
    fs::write(&tmp, lines.join("\n") + "\n")?;
    fs::rename(&tmp, state_dir.join("lockdown.result"))
}

fn create(path: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    f.write_all(b"probe\n")
}

fn append(path: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.write_all(b"")
}

/// Copies the running binary to `/tmp` and tries to run the copy.
fn exec_from_tmp() -> io::Result<()> {
    let copy = "/tmp/lockdown-exe";
    fs::copy("/proc/self/exe", copy)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(copy, fs::Permissions::from_mode(0o755))?;
    let r = Command::new(copy)
        .arg(IDLE_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ());
    let _ = fs::remove_file(copy);
    r
}

/// Starts idle children until the kernel refuses one (or the safety
/// net); then ends them all by closing their stdin and reaps them.
fn spawn_until_refused() -> (usize, Option<io::Error>) {
    let mut children: Vec<Child> = Vec::new();
    let mut error = None;
    while children.len() < MAX_CHILDREN {
        match Command::new("/proc/self/exe")
            .arg(IDLE_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let spawned = children.len();
    for child in &mut children {
        // EOF on stdin ends the child (see `idle_child`).
        drop(child.stdin.take());
    }
    for mut child in children {
        let _ = child.wait();
    }
    (spawned, error)
}

/// The child's whole life: wait for stdin to close, then exit.
pub fn idle_child() {
    let _ = io::copy(&mut io::stdin(), &mut io::sink());
}
