//! `cargo xtask services`: makes PostgreSQL, Redis and (when installed)
//! the Docker daemon answer on this machine, for tests and the demo.
//!
//! Idempotent: a service that already answers is left alone, so a second
//! run changes nothing. On a Debian machine as root, missing servers are
//! installed with apt-get (and the test tools `docker-registry` and
//! `htpasswd`); elsewhere the task says what is missing. Every
//! wait is bounded. Finally the superuser `rtm_admin`/`rtm_admin` (the
//! tests' `RTM_TEST_ADMIN_URL`) is created through the `postgres` OS user
//! when it cannot log in yet, and schemathesis (PyPI, pinned) is installed
//! into a virtualenv under `target/` for `cargo xtask schemathesis`, and
//! the Docker engine is made a single-node swarm (for `crates/rtm-swarm`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const PG_ADDR: &str = "127.0.0.1:5432";
const REDIS_ADDR: &str = "127.0.0.1:6379";
const DOCKER_SOCK: &str = "/var/run/docker.sock";
const ADMIN_URL: &str = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/postgres";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("services: unexpected argument {a:?}");
    }
    servers()?;
    swarm()?;
    schemathesis()
}

/// Makes this machine's Docker engine a single-node swarm, for the Swarm
/// adapter's tests (`crates/rtm-swarm`): `docker swarm init` on loopback
/// when the engine is not in a swarm yet. Idempotent; the single-host
/// tests run on the same engine unchanged (a swarm adds the `ingress` and
/// `docker_gwbridge` networks, nothing the tests' own networks collide
/// with). An engine that is a swarm *worker* is left alone: its tests
/// will say they need a manager.
pub fn swarm() -> Result<()> {
    let state = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .context("docker info")?;
    let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
    if state == "inactive" {
        sh(
            "docker",
            &["swarm", "init", "--advertise-addr", "127.0.0.1"],
            &[],
        )?;
    }
    println!(
        "services: Docker swarm {}",
        if state == "inactive" {
            "initialised (single node)"
        } else {
            state.as_str()
        }
    );
    Ok(())
}

/// What `cargo xtask up` needs: the servers, the admin role and the
/// connection capacity (not the CI-only tools).
pub fn servers() -> Result<()> {
    install_missing()?;
    postgres()?;
    redis()?;
    docker()?;
    admin_role()?;
    connection_capacity()?;
    println!("services: PostgreSQL on {PG_ADDR}, Redis on {REDIS_ADDR} ready");
    Ok(())
}

/// Installs the PostgreSQL and Redis servers when they are neither
/// answering nor installed, and the test tools when missing: the
/// Distribution registry (`docker-registry`) and `htpasswd`
/// (`apache2-utils`, for the registry's bcrypt password file), which the
/// registry tests start on loopback; promtool (alert-rule tests),
/// chromium (the console's browser test), and `ip`/`nsenter` (the swarm
/// pass's overlay attachment) likewise (Debian, as root).
fn install_missing() -> Result<()> {
    let mut missing = vec![];
    if !pg_answers() && pg_version().is_none() {
        missing.push("postgresql");
    }
    if !redis_answers() && which("redis-server").is_none() {
        missing.push("redis-server");
    }
    // The console's browser test drives Debian's headless chromium (no
    // driver package: it speaks the DevTools protocol directly).
    if which("chromium").is_none() {
        missing.push("chromium");
    }
    // promtool (Debian ships it in `prometheus`) checks and unit-tests
    // docs/prometheus/alerts.yml in the readiness tests.
    if which("promtool").is_none() {
        missing.push("prometheus");
    }
    // The swarm end-to-end pass and `up --swarm` attach this host to the
    // engines' overlay network with `ip` and `nsenter` (rtm-overlay).
    if which("ip").is_none() {
        missing.push("iproute2");
    }
    if which("nsenter").is_none() {
        missing.push("util-linux");
    }
    if which("docker-registry").is_none() {
        missing.push("docker-registry");
    }
    if which("htpasswd").is_none() {
        missing.push("apache2-utils");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if missing == ["prometheus"] && (which("apt-get").is_none() || !is_root()) {
        // Only the rule tests need it; they fail with a clear message.
        eprintln!(
            "services: promtool missing; install Prometheus' promtool for the alert-rule tests"
        );
        return Ok(());
    }
    if which("apt-get").is_none() || !is_root() {
        bail!(
            "services: {} missing; install them (this task installs them only on Debian as root)",
            missing.join(", ")
        );
    }
    sh("apt-get", &["update"], &[])?;
    let mut install = vec!["install", "-y"];
    install.extend(&missing);
    sh(
        "apt-get",
        &install,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )
}

fn postgres() -> Result<()> {
    if pg_answers() {
        return Ok(());
    }
    let version = pg_version().context("PostgreSQL server not found under /usr/lib/postgresql")?;
    let cluster = PathBuf::from(format!("/etc/postgresql/{version}/main"));
    if !cluster.exists() {
        sh("pg_createcluster", &[&version, "main"], &[])?;
    }
    // "Already running" (e.g. started by the package's postinst and still
    // starting up) is an error for pg_ctlcluster but fine for us: what
    // counts is whether the server answers within the wait below.
    if let Err(e) = sh(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "start"],
        &[],
    ) {
        eprintln!("services: {e:#}; waiting for PostgreSQL anyway");
    }
    wait_for("PostgreSQL", Duration::from_secs(60), pg_answers)
}

fn redis() -> Result<()> {
    if redis_answers() {
        return Ok(());
    }
    sh(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &[],
    )?;
    wait_for("Redis", Duration::from_secs(30), redis_answers)
}

/// Starts dockerd in the background when it is installed but silent. A
/// machine without Docker is reported, not failed: only the Docker tests
/// need it, and they fail loudly on their own.
fn docker() -> Result<()> {
    if docker_answers() {
        return Ok(());
    }
    let Some(dockerd) = which("dockerd") else {
        eprintln!("services: dockerd is not installed; Docker-backed tests will fail");
        return Ok(());
    };
    if !is_root() {
        bail!("services: Docker is not answering and only root can start dockerd");
    }
    let log =
        std::fs::File::create("/var/log/rtm-dockerd.log").context("creating the dockerd log")?;
    println!(
        "+ {} (background, log /var/log/rtm-dockerd.log)",
        dockerd.display()
    );
    Command::new(&dockerd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd")?;
    wait_for("Docker", Duration::from_secs(60), docker_answers)
}

/// Creates the superuser the tests and `provision` use, if it cannot log
/// in yet (peer authentication as the `postgres` OS user).
fn admin_role() -> Result<()> {
    if admin_can_login() {
        return Ok(());
    }
    if !is_root() {
        bail!("services: cannot log in as rtm_admin and only root can create it");
    }
    let sql = "DO $$ BEGIN \
         IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rtm_admin') THEN \
           CREATE ROLE rtm_admin LOGIN SUPERUSER PASSWORD 'rtm_admin'; \
         ELSE ALTER ROLE rtm_admin LOGIN SUPERUSER PASSWORD 'rtm_admin'; END IF; END $$;\n";
    println!("+ su postgres -c psql  # create role rtm_admin");
    let mut child = Command::new("su")
        .args([
            "postgres",
            "-s",
            "/bin/sh",
            "-c",
            "psql -X -q -v ON_ERROR_STOP=1 -d postgres",
        ])
        .current_dir("/")
        .stdin(Stdio::piped())
        .spawn()
        .context("running psql as postgres")?;
    child
        .stdin
        .take()
        .context("psql stdin")?
        .write_all(sql.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("creating rtm_admin failed: {status}");
    }
    wait_for("rtm_admin login", Duration::from_secs(10), admin_can_login)
}

/// Enough connections for the test suite and local multi-replica runs.
/// Each rtmanager holds a store pool, a lock pool and one session per
/// leader role; the end-to-end tests run several apps at once. Debian's
/// default of 100 is too tight for that.
const MIN_CONNECTIONS: u32 = 400;

/// Raises `max_connections` to [`MIN_CONNECTIONS`] when it is lower
/// (`ALTER SYSTEM` + one restart of the local cluster). Idempotent: once
/// raised, nothing is restarted again.
fn connection_capacity() -> Result<()> {
    let current = admin_query("SHOW max_connections")?
        .parse::<u32>()
        .context("max_connections is not a number")?;
    if current >= MIN_CONNECTIONS {
        return Ok(());
    }
    let version = pg_version().context("PostgreSQL server not found under /usr/lib/postgresql")?;
    if !is_root() {
        bail!("services: max_connections is {current}; raise it to {MIN_CONNECTIONS} (needs root)");
    }
    println!("services: raising max_connections from {current} to {MIN_CONNECTIONS}");
    admin_query(&format!(
        "ALTER SYSTEM SET max_connections = {MIN_CONNECTIONS}"
    ))?;
    sh(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "restart"],
        &[],
    )?;
    wait_for("PostgreSQL", Duration::from_secs(60), pg_answers)?;
    wait_for("rtm_admin login", Duration::from_secs(10), admin_can_login)
}

/// Runs one statement as `rtm_admin`; returns the first column of the
/// first row as text (empty when none).
fn admin_query(sql: &str) -> Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut cfg: tokio_postgres::Config = ADMIN_URL.parse()?;
        cfg.connect_timeout(Duration::from_secs(5));
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let rows = client.simple_query(sql).await?;
        let first = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        Ok(first.unwrap_or_default())
    })
}

fn admin_can_login() -> bool {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return false;
    };
    rt.block_on(async {
        let Ok(mut cfg) = ADMIN_URL.parse::<tokio_postgres::Config>() else {
            return false;
        };
        cfg.connect_timeout(Duration::from_secs(5));
        match cfg.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    })
}

// ------------------------------------------------------------ probes

fn tcp(addr: &str) -> Option<TcpStream> {
    let addr: SocketAddr = addr.parse().ok()?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(s)
}

/// PostgreSQL answers when `pg_isready` says so (it tells "starting up"
/// from "accepting"); without it, when the server replies to an
/// SSLRequest, which it does only once it accepts sessions.
fn pg_answers() -> bool {
    if let Some(p) = which("pg_isready") {
        return Command::new(p)
            .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    }
    let Some(mut s) = tcp(PG_ADDR) else {
        return false;
    };
    // SSLRequest: length 8, code 80877103.
    if s.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    s.read_exact(&mut b).is_ok() && (b[0] == b'N' || b[0] == b'S')
}

fn redis_answers() -> bool {
    let Some(mut s) = tcp(REDIS_ADDR) else {
        return false;
    };
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn docker_answers() -> bool {
    use std::os::unix::net::UnixStream;
    let Ok(mut s) = UnixStream::connect(DOCKER_SOCK) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

// ------------------------------------------------------------ helpers

fn wait_for(what: &str, limit: Duration, ready: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() > deadline {
            bail!("{what} did not answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("services: {what} answers");
    Ok(())
}

/// The newest installed PostgreSQL server version (`/usr/lib/postgresql/<v>/bin/postgres`).
fn pg_version() -> Option<String> {
    let mut versions: Vec<(u32, String)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.parse().ok()?;
            e.path().join("bin/postgres").exists().then_some((n, name))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, v)| v)
}

/// The schemathesis version CI runs (`cargo xtask schemathesis`): pinned,
/// because its command-line flags change between releases.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Where schemathesis is installed: a virtualenv under `target/`, so the
/// machine's Python is left alone and `cargo clean` removes it.
pub fn schemathesis_bin() -> PathBuf {
    crate::workspace_root().join("target/schemathesis-venv/bin/st")
}

/// Installs schemathesis (PyPI) into [`schemathesis_bin`]'s virtualenv
/// unless that exact version is already there.
fn schemathesis() -> Result<()> {
    let st = schemathesis_bin();
    let installed = Command::new(&st)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS_VERSION));
    if installed {
        return Ok(());
    }
    let venv = st
        .parent()
        .and_then(Path::parent)
        .context("schemathesis path")?
        .to_path_buf();
    let python = which("python3").context(
        "python3 not found: schemathesis (used by `cargo xtask ci`) needs Python 3.9+ with venv",
    )?;
    let venv_s = venv.to_string_lossy().into_owned();
    sh(&python.to_string_lossy(), &["-m", "venv", &venv_s], &[])?;
    let pip = venv.join("bin/pip").to_string_lossy().into_owned();
    let spec = format!("schemathesis=={SCHEMATHESIS_VERSION}");
    sh(&pip, &["install", "--quiet", &spec], &[])
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    // Root's tools live in sbin, which a non-login PATH may lack.
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(cmd))
        .find(|p| p.is_file());
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command, echoing it, failing on a non-zero exit.
fn sh(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let exe = which(cmd).with_context(|| format!("{cmd} not found"))?;
    println!("+ {cmd} {}", args.join(" "));
    let status = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !status.success() {
        bail!("{cmd} {} failed: {status}", args.join(" "));
    }
    Ok(())
}
