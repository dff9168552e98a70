//! `cargo xtask bench`: measures what the tests must not assert — how fast
//! RTM reports a dead engine, how long its operations take, what watching
//! healthy engines costs — against the real services on this machine.
//!
//! It brings the services up like `ci` (services, provision, engine
//! images), builds `rtmanager` (release unless `--debug`) and runs it as a
//! child process with its own identity so it never touches anything else:
//! its own `RTM_OWNER`, Docker network, state root, Redis streams and
//! PostgreSQL schema (`rtmanager_bench`, created here and dropped after).
//! Health settings are the production defaults (probe 5 s, inspect 15 s).
//!
//! Phases, each bounded in time:
//! 1. idle CPU of rtmanager without games (baseline);
//! 2. `start` of N games over REST, then the wait for their `healthy`;
//! 3. steady-state CPU with N healthy games (probe and inspect passes);
//! 4. `patch` (1.0.0 → 1.0.1, health-gated) of half of them, `stop` of the
//!    other half, `start` of the stopped half again;
//! 5. `docker kill` of each engine in turn, timing until its `exited`
//!    event is readable on the health stream (`kill → visible`), and from
//!    the event's own Docker time to the Redis entry id's time
//!    (`die → XADD`, the pipeline without the tools' overhead).
//!
//! Everything it created is removed at the end, also on failure (a drop
//! guard): rtmanager stopped, containers of its owner label, the network,
//! the streams, the schema, the state root.
//!
//! Options: `--games N` (default 20), `--window S` (steady-state CPU
//! window, default 30), `--debug` (debug build).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tokio_postgres::NoTls;

use crate::http::{request, Response};

const GM_TOKEN: &str = "bench-gm-token-0123456789";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const ADMIN_URL: &str = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/rtmanager";
const SERVICE_ROLE: &str = "rtmanagerservice";
const SCHEMA: &str = "rtmanager_bench";
const IMAGE_OLD: &str = "rtm.local/engine-stub:1.0.0";
const IMAGE_NEW: &str = "rtm.local/engine-stub:1.0.1";
/// The whole run must end within this (builds excluded).
const BUDGET: Duration = Duration::from_secs(15 * 60);

struct Options {
    games: usize,
    window: Duration,
    release: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        games: 20,
        window: Duration::from_secs(30),
        release: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--games" => {
                o.games = it.next().context("--games N")?.parse()?;
                if !(2..=200).contains(&o.games) {
                    bail!("--games: 2 to 200");
                }
            }
            "--window" => {
                let s: u64 = it.next().context("--window SECONDS")?.parse()?;
                if !(5..=600).contains(&s) {
                    bail!("--window: 5 to 600 seconds");
                }
                o.window = Duration::from_secs(s);
            }
            "--debug" => o.release = false,
            other => bail!("bench: unexpected argument {other:?}"),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let root = crate::workspace_root();
    step("services, role and schema, engine images");
    crate::services::run(&[])?;
    crate::db::provision(&[])?;
    crate::engine_image::run(&[])?;
    let profile = if opts.release { "release" } else { "debug" };
    step(&format!("building rtmanager ({profile})"));
    let mut build = vec!["build", "--quiet", "-p", "rtmanager"];
    if opts.release {
        build.push("--release");
    }
    crate::cargo(&root, &build)?;
    let bin = target_dir(&root).join(profile).join("rtmanager");

    let mut bench = Bench::new(&opts)?;
    let result = bench.run_all(&bin, &opts);
    bench.cleanup();
    let report = result?;
    report.print(&opts, profile);
    Ok(())
}

/// `CARGO_TARGET_DIR` when set (relative to the workspace), else `target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

fn step(what: &str) {
    println!("\n==> {what}");
}

/// Everything the bench created, removed on `cleanup` (and on drop).
struct Bench {
    tag: String,
    owner: String,
    network: String,
    state_root: PathBuf,
    lobby_stream: String,
    health_stream: String,
    gm: String,
    admin: String,
    child: Option<Child>,
    cleaned: bool,
    deadline: Instant,
}

impl Bench {
    fn new(opts: &Options) -> Result<Self> {
        let tag = format!("rtmbench-{}", std::process::id());
        let _ = opts;
        Ok(Self {
            owner: tag.clone(),
            network: tag.clone(),
            state_root: std::env::temp_dir().join(&tag),
            lobby_stream: format!("{tag}:lobby"),
            health_stream: format!("{tag}:health_events"),
            gm: format!("127.0.0.1:{}", free_port()?),
            admin: format!("127.0.0.1:{}", free_port()?),
            child: None,
            cleaned: false,
            deadline: Instant::now() + BUDGET,
            tag,
        })
    }

    fn run_all(&mut self, bin: &Path, opts: &Options) -> Result<Report> {
        step(&format!("schema {SCHEMA}"));
        sql(&format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; \
             CREATE SCHEMA {SCHEMA} AUTHORIZATION {SERVICE_ROLE}"
        ))?;
        step(&format!(
            "starting rtmanager (owner {}, GM http://{})",
            self.owner, self.gm
        ));
        self.spawn(bin)?;
        let mut report = Report::default();

        step("idle CPU (no games)");
        sleep(Duration::from_secs(2));
        report.idle_cpu = self.cpu_rate(Duration::from_secs(10))?;

        let games: Vec<String> = (0..opts.games)
            .map(|i| format!("{}-g{i:03}", self.tag))
            .collect();
        step(&format!("start {} games", games.len()));
        for g in &games {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/start"),
                &format!(r#"{{"image_ref":"{IMAGE_OLD}"}}"#),
            )?;
            ensure_ok("start", g, &r)?;
            report.start.push(took);
        }
        self.wait_events(&games, "healthy")?;

        step(&format!(
            "steady state: {} healthy games for {:?}",
            games.len(),
            opts.window
        ));
        report.steady_cpu = self.cpu_rate(opts.window)?;

        let (patched, stopped) = games.split_at(games.len() / 2);
        step(&format!("patch {} games to 1.0.1", patched.len()));
        for g in patched {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/patch"),
                &format!(r#"{{"image_ref":"{IMAGE_NEW}"}}"#),
            )?;
            ensure_ok("patch", g, &r)?;
            report.patch.push(took);
        }
        step(&format!("stop {} games", stopped.len()));
        for g in stopped {
            let (took, r) = self.timed_post(&format!("/api/v1/runtimes/{g}/stop"), "{}")?;
            ensure_ok("stop", g, &r)?;
            report.stop.push(took);
        }
        step(&format!("start the {} stopped games again", stopped.len()));
        for g in stopped {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/start"),
                &format!(r#"{{"image_ref":"{IMAGE_OLD}"}}"#),
            )?;
            ensure_ok("start", g, &r)?;
            report.restart_stopped.push(took);
        }

        step(&format!("docker kill each of the {} engines", games.len()));
        for g in &games {
            let container = self.container_of(g)?;
            let mut last = self.last_stream_id()?;
            // A random pause, so kills do not phase-lock with the relay's
            // 500 ms poll (each wait ends right after a relay tick).
            sleep(Duration::from_millis(u64::from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
                    % 700,
            )));
            let t0 = Instant::now();
            docker(&["kill", &container])?;
            let event = loop {
                self.check_time()?;
                let fresh = self.read_after(&last, Duration::from_secs(2))?;
                if let Some(e) = fresh
                    .iter()
                    .find(|e| e.game_id == *g && e.event_type == "exited")
                {
                    break e.clone();
                }
                if let Some(e) = fresh.last() {
                    last = e.id.clone();
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("no exited event for {g} within 60 s of docker kill");
                }
            };
            report.kill_visible.push(t0.elapsed());
            if event.source == "docker_event" {
                if let Some(d) = event.die_to_xadd() {
                    report.die_to_xadd.push(d);
                }
            }
            *report.sources.entry(event.source.clone()).or_default() += 1;
        }
        Ok(report)
    }

    fn spawn(&mut self, bin: &Path) -> Result<()> {
        std::fs::create_dir_all(&self.state_root)?;
        let mut cmd = Command::new(bin);
        for (k, v) in [
            ("RTM_DATABASE_SCHEMA", SCHEMA.to_owned()),
            ("RTM_MIGRATE_ON_START", "true".into()),
            ("RTM_HTTP_ADDR", self.gm.clone()),
            ("RTM_ADMIN_HTTP_ADDR", self.admin.clone()),
            ("RTM_GM_TOKEN", GM_TOKEN.into()),
            ("RTM_ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("RTM_IMAGE_ALLOWLIST", "rtm.local/engine-stub".into()),
            ("RTM_OWNER", self.owner.clone()),
            ("RTM_INSTANCE_ID", format!("{}-a", self.tag)),
            ("RTM_DOCKER_NETWORK", self.network.clone()),
            ("RTM_STATE_ROOT", self.state_root.display().to_string()),
            ("RTM_LOBBY_STREAM", self.lobby_stream.clone()),
            ("RTM_HEALTH_STREAM", self.health_stream.clone()),
            ("RUST_LOG", "warn".into()),
        ] {
            cmd.env(k, v);
        }
        // Only the bench's own settings: an operator's RTM_* must not
        // point it at their deployment.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("RTM_")
                && !matches!(
                    k.as_str(),
                    "RTM_DATABASE_URL" | "RTM_REDIS_URL" | "RTM_DOCKER_HOST"
                )
                && cmd.get_envs().all(|(e, _)| e.to_string_lossy() != k)
            {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                bail!("rtmanager exited during start-up ({status})");
            }
            if matches!(request(&self.gm, "GET", "/readyz", None, None), Ok(r) if r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("rtmanager did not become ready within 60 s");
            }
            sleep(Duration::from_millis(200));
        }
    }

    fn check_time(&mut self) -> Result<()> {
        if Instant::now() > self.deadline {
            bail!("bench exceeded its {BUDGET:?} budget");
        }
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok())
            .flatten()
        {
            bail!("rtmanager exited ({status})");
        }
        Ok(())
    }

    fn timed_post(&mut self, path: &str, body: &str) -> Result<(Duration, Response)> {
        self.check_time()?;
        let t0 = Instant::now();
        let r = request(&self.gm, "POST", path, Some(GM_TOKEN), Some(body))?;
        Ok((t0.elapsed(), r))
    }

    fn container_of(&self, game: &str) -> Result<String> {
        let r = request(
            &self.gm,
            "GET",
            &format!("/api/v1/runtimes/{game}"),
            Some(GM_TOKEN),
            None,
        )?;
        json_str(&r.body, "container_id")
            .with_context(|| format!("no container for {game}: {}", r.body))
    }

    /// Waits until every game has an event of `kind` on the stream.
    fn wait_events(&mut self, games: &[String], kind: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            self.check_time()?;
            let seen = self.read_after("-", Duration::ZERO)?;
            let missing = games
                .iter()
                .filter(|g| {
                    !seen
                        .iter()
                        .any(|e| &e.game_id == *g && e.event_type == kind)
                })
                .count();
            if missing == 0 {
                println!(
                    "all {} games {kind} after {:.1}s",
                    games.len(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("{missing} games never became {kind}");
            }
            sleep(Duration::from_millis(250));
        }
    }

    fn last_stream_id(&self) -> Result<String> {
        let out = redis(&["XREVRANGE", &self.health_stream, "+", "-", "COUNT", "1"])?;
        Ok(out.lines().next().unwrap_or("0-0").trim().to_owned())
    }

    /// Entries after `after` (exclusive; `-` for all), waiting up to
    /// `block` for one to arrive when there are none yet.
    fn read_after(&self, after: &str, block: Duration) -> Result<Vec<Entry>> {
        if !block.is_zero() {
            let from = if after == "-" { "0-0" } else { after };
            redis(&[
                "XREAD",
                "BLOCK",
                &block.as_millis().to_string(),
                "STREAMS",
                &self.health_stream,
                from,
            ])?;
        }
        let start = if after == "-" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let out = redis(&["XRANGE", &self.health_stream, &start, "+"])?;
        Ok(parse_entries(&out))
    }

    /// CPU time rtmanager used per wall second over `window`.
    fn cpu_rate(&mut self, window: Duration) -> Result<f64> {
        let pid = self.child.as_ref().context("rtmanager not running")?.id();
        let before = cpu_seconds(pid)?;
        let t0 = Instant::now();
        while t0.elapsed() < window {
            self.check_time()?;
            sleep(Duration::from_millis(500));
        }
        let after = cpu_seconds(pid)?;
        Ok((after - before) / t0.elapsed().as_secs_f64())
    }

    fn cleanup(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        step("cleanup");
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(ids) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=rtm.owner={}", self.owner),
        ]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                if let Err(e) = docker(&args) {
                    eprintln!("cleanup: {e:#}");
                }
            }
        }
        let _ = docker(&["network", "rm", &self.network]);
        // The Lobby consumer group lives in the stream key; `:dead` is the
        // dead-letter stream.
        let dead = format!("{}:dead", self.lobby_stream);
        if let Err(e) = redis(&["DEL", &self.lobby_stream, &dead, &self.health_stream]) {
            eprintln!("cleanup: {e:#}");
        }
        if let Err(e) = sql(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")) {
            eprintln!("cleanup: {e:#}");
        }
        // Engines write as 65534; the directory is ours (root) to remove.
        let _ = std::fs::remove_dir_all(&self.state_root);
        println!(
            "removed containers of {}, network, streams, schema",
            self.owner
        );
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn ensure_ok(what: &str, game: &str, r: &Response) -> Result<()> {
    if r.status != 200 {
        bail!("{what} {game}: HTTP {}: {}", r.status, r.body);
    }
    Ok(())
}

/// A string field of a flat JSON object, without a JSON crate (xtask
/// stays light): the first `"name":"value"`.
fn json_str(body: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = body.find(&key)? + key.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn docker(args: &[&str]) -> Result<String> {
    run_tool("docker", args)
}

fn redis(args: &[&str]) -> Result<String> {
    let url = std::env::var("RTM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut all = vec!["-u", url.as_str()];
    all.extend(args);
    run_tool("redis-cli", &all)
}

fn run_tool(tool: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `sql` as the admin in the `rtmanager` database.
fn sql(sql: &str) -> Result<()> {
    let url = std::env::var("RTM_ADMIN_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| match u.rsplit_once('/') {
            Some((base, _)) => format!("{base}/rtmanager"),
            None => u,
        })
        .unwrap_or_else(|| ADMIN_URL.to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, NoTls)
            .await
            .context("connecting to PostgreSQL as the admin")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.batch_execute(sql).await.context("bench schema")?;
        Ok(())
    })
}

/// utime + stime of `pid`, in seconds (from `/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc stat")?
            .parse::<f64>()?)
    };
    let hz = 100.0; // USER_HZ on Linux
    Ok((ticks(14)? + ticks(15)?) / hz)
}

/// One health stream entry (only what the bench needs).
#[derive(Debug, Clone, Default)]
struct Entry {
    id: String,
    game_id: String,
    event_type: String,
    source: String,
    observed_at: String,
}

impl Entry {
    /// From Docker's event time (`observed_at`, ms) to the Redis entry
    /// id's time (ms): the die → relay → XADD pipeline.
    fn die_to_xadd(&self) -> Option<Duration> {
        let xadd_ms: u64 = self.id.split('-').next()?.parse().ok()?;
        let observed_ms = rfc3339_utc_ms(&self.observed_at)?;
        xadd_ms.checked_sub(observed_ms).map(Duration::from_millis)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to Unix milliseconds.
fn rfc3339_utc_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 24 + hh) * 60 + mm) * 60 + ss;
    u64::try_from(total * 1000 + ms).ok()
}

/// `redis-cli` (non-tty, raw) prints XRANGE as one line per element: an
/// entry id, then field and value lines. An entry id is `<ms>-<seq>`; no
/// field value of the health stream looks like one (`event_id` has no
/// dash, times have colons), so ids delimit the entries.
fn parse_entries(out: &str) -> Vec<Entry> {
    let is_id = |l: &str| {
        l.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines = out.lines().map(str::trim_end).peekable();
    while let Some(line) = lines.next() {
        if is_id(line) {
            entries.push(Entry {
                id: line.to_owned(),
                ..Entry::default()
            });
            continue;
        }
        let Some(e) = entries.last_mut() else {
            continue;
        };
        let value = lines.next().unwrap_or_default().to_owned();
        match line {
            "game_id" => e.game_id = value,
            "event_type" => e.event_type = value,
            "source" => e.source = value,
            "observed_at" => e.observed_at = value,
            _ => {}
        }
    }
    entries
}

#[derive(Debug, Default)]
struct Report {
    idle_cpu: f64,
    steady_cpu: f64,
    start: Vec<Duration>,
    restart_stopped: Vec<Duration>,
    patch: Vec<Duration>,
    stop: Vec<Duration>,
    kill_visible: Vec<Duration>,
    die_to_xadd: Vec<Duration>,
    sources: std::collections::BTreeMap<String, usize>,
}

/// min, median, p95, max in milliseconds (nearest-rank percentiles).
fn summary(samples: &[Duration]) -> Option<[f64; 4]> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some([v[0], rank(0.5), rank(0.95), v[v.len() - 1]])
}

impl Report {
    fn print(&self, opts: &Options, profile: &str) {
        let when = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        step(&format!(
            "results ({profile} build, {} games, {} cores, unix time {when})",
            opts.games,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        println!(
            "{:<34} {:>3} {:>9} {:>9} {:>9} {:>9}",
            "measure (ms)", "n", "min", "median", "p95", "max"
        );
        for (name, samples) in [
            ("kill -> exited visible on stream", &self.kill_visible),
            ("die -> XADD (event timestamps)", &self.die_to_xadd),
            ("start (new container)", &self.start),
            ("start (stopped container)", &self.restart_stopped),
            ("stop", &self.stop),
            ("patch (health-gated)", &self.patch),
        ] {
            if let Some([min, med, p95, max]) = summary(samples) {
                println!(
                    "{name:<34} {:>3} {min:>9.0} {med:>9.0} {p95:>9.0} {max:>9.0}",
                    samples.len()
                );
            }
        }
        println!("exit events by source: {:?}", self.sources);
        println!(
            "rtmanager CPU: idle {:.1}% of a core, {} healthy games {:.1}% (window {:?}, probe every 5 s, inspect every 15 s)",
            self.idle_cpu * 100.0,
            opts.games,
            self.steady_cpu * 100.0,
            opts.window
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_xrange_output() {
        let out = "1700000000123-0\nevent_id\n7\ngame_id\ng1\ncontainer_id\nabc\n\
                   event_type\nexited\nsource\ndocker_event\ndetails\n{\"exit_code\":137}\n\
                   observed_at\n2023-11-14T22:13:20.000Z\n1700000000200-1\nevent_id\n8\n\
                   game_id\ng2\nevent_type\nhealthy\n";
        let e = parse_entries(out);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].game_id, "g1");
        assert_eq!(e[0].event_type, "exited");
        assert_eq!(e[0].source, "docker_event");
        assert_eq!(e[0].die_to_xadd(), Some(Duration::from_millis(123)));
        assert_eq!(e[1].id, "1700000000200-1");
        assert_eq!(e[1].event_type, "healthy");
    }

    #[test]
    fn rfc3339_to_millis() {
        assert_eq!(rfc3339_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ms("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500)
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(summary(&s), Some([1.0, 10.0, 19.0, 20.0]));
    }
}
