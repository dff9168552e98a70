//! `rtm-engine-stub`: a tiny game engine for tests and the demo.
//!
//! It behaves like the engines RTM manages, and lets a test drive every
//! failure RTM must notice through files in its state directory:
//!
//! - serves `GET /healthz` on `ENGINE_PORT` (default 8080): `200` with
//!   `{"game_id":"<GAME_ID>","version":"<ENGINE_VERSION>"}`, or `503` with
//!   the same body plus `"status":"unhealthy"` while the control file
//!   `unhealthy` exists; other paths answer `404`, other methods `405`.
//!   HTTP/1.1 with keep-alive (a connection serves requests in turn until
//!   the client closes it, sends `Connection: close`, or leaves it idle
//!   for 60 s), as the HTTP servers of real engines do.
//! - on start appends `<version> <unix_ms>` to
//!   `$ENGINE_STATE_DIR/starts.log` (default dir `/var/lib/engine`); when
//!   that fails it exits with code 1, so a state directory the engine user
//!   cannot write shows up as a crash, not as a silent success.
//! - exits 0 at once on SIGTERM or SIGINT (a thread blocked on a pipe the
//!   signal handler writes to wakes the main thread; nothing polls for it).
//! - every 500 ms looks at control files in `$ENGINE_STATE_DIR` (idle, the
//!   engine wakes twice a second: a host running 1,000 of them spends its
//!   CPU on the games, not on the stubs):
//!   - `crash`: removes it, then exits with the code written in it (1 when
//!     it holds no integer). One-shot, so the next start of the same
//!     container (or of its successor on the same state dir) runs normally;
//!   - `oom`: removes it, then allocates and touches memory until the
//!     kernel OOM-kills the process (it stops growing at 4 GiB, a safety
//!     net for running it without a memory limit);
//!   - `unhealthy`: see `/healthz`; a state, not a one-shot;
//!   - `lockdown`: removes it, then tries to write outside `/tmp` and the
//!     state dir, to run from `/tmp` and to fork past the pids limit, and
//!     reports each refusal in `lockdown.result` (see `lockdown.rs`).
//!
//! It writes only to its state dir (and `/tmp` when probing), so it runs
//! under RTM's read-only root filesystem.
//! - `ENGINE_FAIL_AT_START=1` makes it exit with code 3 at once, before
//!   anything else (the `broken` image).
//!
//! - `rtm-engine-stub resolve <name>` is not the engine: a one-shot DNS A
//!   lookup against Docker's embedded DNS, for tests (`resolve.rs`).
//!
//! std only: it is linked statically and runs alone in a `FROM scratch`
//! image (`cargo xtask engine-image`).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod lockdown;
mod resolve;

/// How often the control files are checked. Termination does not wait
/// for it (see `signals`).
const POLL: Duration = Duration::from_millis(500);
/// Upper bound on a request head; anything longer is refused.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A slow or silent client never pins a thread for long.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive connection may stay idle before the stub closes
/// it: longer than the probe's own idle limit (30 s), so the client is the
/// one that closes and never sends on a connection closing under it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Where `oom` stops growing when no memory limit kills it first.
const OOM_CAP_BYTES: usize = 4 << 30;
const OOM_CHUNK_BYTES: usize = 1 << 20;

/// Set by the signal handler, read by the main loop.
static TERMINATE: AtomicBool = AtomicBool::new(false);

/// What the engine knows about itself, from its environment.
#[derive(Debug)]
struct Engine {
    game_id: String,
    version: String,
    state_dir: PathBuf,
    port: u16,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(lockdown::IDLE_ARG) {
        lockdown::idle_child();
        return ExitCode::SUCCESS;
    }
    // `resolve <name>`: a DNS lookup tool for tests, not the engine.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("resolve") {
        return resolve::main(&args[1..]);
    }
    if std::env::var("ENGINE_FAIL_AT_START").as_deref() == Ok("1") {
        eprintln!("rtm-engine-stub: ENGINE_FAIL_AT_START=1, exiting with 3");
        return ExitCode::from(3);
    }
    // The main thread runs the control loop; a signal unparks it at once.
    let main_thread = thread::current();
    match signals::install_termination_handler() {
        Ok(waiter) => {
            thread::spawn(move || {
                waiter.wait();
                TERMINATE.store(true, Ordering::SeqCst);
                main_thread.unpark();
            });
        }
        Err(e) => {
            eprintln!("rtm-engine-stub: cannot install the termination handler: {e}");
            return ExitCode::from(1);
        }
    }

    let engine = match Engine::from_env() {
        Ok(engine) => Arc::new(engine),
        Err(msg) => {
            eprintln!("rtm-engine-stub: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = engine.record_start() {
        eprintln!(
            "rtm-engine-stub: cannot append to {}: {e}",
            engine.starts_log().display()
        );
        return ExitCode::from(1);
    }
    let listener = match TcpListener::bind(("0.0.0.0", engine.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "rtm-engine-stub: cannot listen on port {}: {e}",
                engine.port
            );
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "rtm-engine-stub {} for game {:?} listening on :{} (state {})",
        engine.version,
        engine.game_id,
        engine.port,
        engine.state_dir.display()
    );

    let server_engine = Arc::clone(&engine);
    thread::spawn(move || serve(&listener, &server_engine));

    control_loop(&engine)
}

impl Engine {
    fn from_env() -> Result<Self, String> {
        let port = match std::env::var("ENGINE_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("ENGINE_PORT={p:?} is not a port number"))?,
            Err(_) => 8080,
        };
        Ok(Self {
            game_id: std::env::var("GAME_ID").unwrap_or_default(),
            version: std::env::var("ENGINE_VERSION").unwrap_or_else(|_| "dev".to_owned()),
            state_dir: std::env::var_os("ENGINE_STATE_DIR")
                .map_or_else(|| PathBuf::from("/var/lib/engine"), PathBuf::from),
            port,
        })
    }

    fn starts_log(&self) -> PathBuf {
        self.state_dir.join("starts.log")
    }

    fn control(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    fn record_start(&self) -> io::Result<()> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.starts_log())?;
        // One write call per line, so concurrent appenders never interleave.
        f.write_all(format!("{} {ms}\n", self.version).as_bytes())?;
        f.sync_all()
    }

    fn health_body(&self, unhealthy: bool) -> String {
        let mut body = format!(
            "{{\"game_id\":\"{}\",\"version\":\"{}\"",
            json_escape(&self.game_id),
            json_escape(&self.version)
        );
        if unhealthy {
            body.push_str(",\"status\":\"unhealthy\"");
        }
        body.push('}');
        body
    }
}

/// Polls the termination flag and the control files until one ends the
/// process.
fn control_loop(engine: &Engine) -> ExitCode {
    loop {
        if TERMINATE.load(Ordering::SeqCst) {
            eprintln!("rtm-engine-stub: terminating on signal");
            return ExitCode::SUCCESS;
        }
        let crash = engine.control("crash");
        if let Ok(content) = fs::read_to_string(&crash) {
            // Removed first: a crash is one-shot (see the module docs).
            let _ = fs::remove_file(&crash);
            let code = content.trim().parse::<u8>().unwrap_or(1);
            eprintln!("rtm-engine-stub: crash file found, exiting with {code}");
            return ExitCode::from(code);
        }
        let oom = engine.control("oom");
        if oom.exists() {
            let _ = fs::remove_file(&oom);
            eprintln!("rtm-engine-stub: oom file found, allocating until killed");
            eat_memory();
        }
        let probe = engine.control("lockdown");
        if probe.exists() {
            let _ = fs::remove_file(&probe);
            if let Err(e) = lockdown::probe(&engine.state_dir) {
                eprintln!("rtm-engine-stub: cannot write lockdown.result: {e}");
            }
        }
        thread::park_timeout(POLL);
    }
}

/// Allocates and touches memory until the kernel kills the process; then
/// (only without a memory limit) holds the memory until terminated.
fn eat_memory() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    while hoard.len() * OOM_CHUNK_BYTES < OOM_CAP_BYTES {
        // A non-zero fill writes every page, so the memory is really
        // resident (zeroed allocations may stay untouched).
        hoard.push(std::hint::black_box(vec![0xA5; OOM_CHUNK_BYTES]));
        if TERMINATE.load(Ordering::SeqCst) {
            return;
        }
    }
    while !TERMINATE.load(Ordering::SeqCst) {
        thread::park_timeout(POLL);
    }
    drop(std::hint::black_box(hoard));
}

/// Accepts connections forever, one short-lived thread each. When no
/// thread can be started (e.g. at the pids limit) the connection is
/// answered inline instead: `thread::spawn` would panic and take the
/// server down.
fn serve(listener: &TcpListener, engine: &Arc<Engine>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(engine);
        let inline = match stream.try_clone() {
            Ok(s) => s,
            Err(_) => continue,
        };
        let spawned = thread::Builder::new().spawn(move || {
            if let Err(e) = handle(stream, &shared) {
                eprintln!("rtm-engine-stub: connection error: {e}");
            }
        });
        if spawned.is_err() {
            if let Err(e) = handle(inline, engine) {
                eprintln!("rtm-engine-stub: connection error: {e}");
            }
        }
    }
}

/// Serves the requests of one connection in turn (HTTP/1.1 keep-alive),
/// until the client closes it, asks to close it, or leaves it idle for
/// [`IDLE_TIMEOUT`].
fn handle(mut stream: TcpStream, engine: &Engine) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(512);
    loop {
        let head = match read_head(&mut stream, &mut buf) {
            Ok(Head::Request(head)) => head,
            // Closed between requests, or idle too long: a normal end.
            Ok(Head::Closed) => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
            Ok(Head::Bad) => {
                return respond(
                    &mut stream,
                    plain(400, "Bad Request", "bad request\n"),
                    false,
                );
            }
        };
        let (reply, keep_alive) = answer(&head, engine);
        respond(&mut stream, reply, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// A response: status, reason, content type and body.
struct Reply {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

/// The reply to one request head, and whether the connection stays open
/// (HTTP/1.1 unless the client sent `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`).
fn answer(head: &str, engine: &Engine) -> (Reply, bool) {
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let connection = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        .map(|(_, value)| value.trim().to_ascii_lowercase());
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return (plain(400, "Bad Request", "bad request\n"), false);
    };
    if !version.starts_with("HTTP/1.") {
        return (
            plain(505, "HTTP Version Not Supported", "HTTP/1.x only\n"),
            false,
        );
    }
    let keep_alive = match connection.as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    let path = target.split('?').next().unwrap_or_default();
    let reply = match (method, path) {
        ("GET", "/healthz") => {
            let unhealthy = engine.control("unhealthy").exists();
            let body = engine.health_body(unhealthy);
            let (status, reason) = if unhealthy {
                (503, "Service Unavailable")
            } else {
                (200, "OK")
            };
            Reply {
                status,
                reason,
                content_type: "application/json",
                body,
            }
        }
        (_, "/healthz") => plain(405, "Method Not Allowed", "method not allowed\n"),
        _ => plain(404, "Not Found", "not found\n"),
    };
    (reply, keep_alive)
}

fn plain(status: u16, reason: &'static str, body: &str) -> Reply {
    Reply {
        status,
        reason,
        content_type: "text/plain",
        body: body.to_owned(),
    }
}

/// What the next request head on a connection turned out to be.
enum Head {
    Request(String),
    /// The client closed the connection before sending anything more.
    Closed,
    /// Cut short or too long.
    Bad,
}

/// Reads up to the blank line that ends the next request head; bytes
/// after it stay in `buf` for the next request. A request body, if any,
/// is ignored: the only route is a GET.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Head> {
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Ok(Head::Request(head));
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(Head::Bad);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(if buf.is_empty() {
                Head::Closed
            } else {
                Head::Bad
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn respond(stream: &mut TcpStream, reply: Reply, keep_alive: bool) -> io::Result<()> {
    let Reply {
        status,
        reason,
        content_type,
        body,
    } = reply;
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()?;
    if !keep_alive {
        // Half-close so the client sees the end of the response before
        // the socket goes away, even if it sent bytes we did not read.
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    Ok(())
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The one place that needs `unsafe`: std cannot install a signal handler.
mod signals {
    use std::io;
    use std::os::raw::{c_int, c_void};
    use std::sync::atomic::{AtomicI32, Ordering};

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    const EINTR: i32 = 4;

    /// The write end of the wake-up pipe, for the handler.
    static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

    extern "C" {
        /// libc's `signal(2)`; glibc gives it BSD semantics (the handler
        /// stays installed, interrupted syscalls restart).
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn pipe(fds: *mut c_int) -> c_int;
        fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
        fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
    }

    /// An atomic store and a `write(2)`: both async-signal-safe.
    #[allow(unsafe_code)]
    extern "C" fn on_terminate(_signum: c_int) {
        super::TERMINATE.store(true, Ordering::SeqCst);
        let fd = WAKE_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: `fd` is the pipe's write end, open for the process's
            // life; `byte` outlives the call. A full pipe (signals faster
            // than the waiter reads) loses nothing: one byte is enough.
            unsafe {
                write(fd, (&raw const byte).cast(), 1);
            }
        }
    }

    /// Blocks until a termination signal arrived.
    pub(super) struct Waiter(c_int);

    impl Waiter {
        #[allow(unsafe_code)]
        pub(super) fn wait(self) {
            let mut byte = 0u8;
            loop {
                // SAFETY: `self.0` is the pipe's read end; `byte` is a
                // valid one-byte buffer for the call's duration.
                let n = unsafe { read(self.0, (&raw mut byte).cast(), 1) };
                if n > 0 || io::Error::last_os_error().raw_os_error() != Some(EINTR) {
                    return;
                }
            }
        }
    }

    /// Installs [`on_terminate`] for SIGTERM and SIGINT; the returned
    /// [`Waiter`] returns once one of them arrived.
    #[allow(unsafe_code)]
    pub(super) fn install_termination_handler() -> io::Result<Waiter> {
        let mut fds: [c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a valid array of two ints for `pipe` to fill.
        if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        // SAFETY: `signal` is called with valid signal numbers and a handler
        // of the C ABI signature that only does async-signal-safe work.
        // Nothing else in the process installs handlers for these signals,
        // so there is no race over the previous one.
        unsafe {
            signal(SIGTERM, on_terminate);
            signal(SIGINT, on_terminate);
        }
        Ok(Waiter(fds[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }

    #[test]
    fn health_body_is_json() {
        let e = Engine {
            game_id: "g-1".into(),
            version: "1.0.0".into(),
            state_dir: PathBuf::from("/tmp"),
            port: 1,
        };
        assert_eq!(
            e.health_body(false),
            r#"{"game_id":"g-1","version":"1.0.0"}"#
        );
        assert_eq!(
            e.health_body(true),
            r#"{"game_id":"g-1","version":"1.0.0","status":"unhealthy"}"#
        );
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(find(b"GET / HTTP/1.1\r\n\r\n", b"\r\n\r\n"), Some(14));
        assert_eq!(find(b"GET", b"\r\n\r\n"), None);
    }
}
