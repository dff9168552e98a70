//! `cargo xtask bench`: measures what the tests must not assert — what
//! rtmanager costs and how fast it reacts at the scale it is built for
//! (1,000 games on one host), each figure printed next to a reference
//! taken in the same run and the goal it is held to.
//!
//! It brings the services up like `ci` (services, provision, engine
//! images), builds `rtmanager` (release unless `--debug`) and runs it as a
//! child process with its own identity so it never touches anything else:
//! its own `RTM_OWNER`, Docker network, state root, Redis streams and
//! PostgreSQL schema (`rtmanager_bench`, created here and dropped after).
//! Health settings are the production defaults (probe 5 s, inspect 15 s).
//!
//! Phases, each bounded in time:
//! 1. idle CPU and RSS without games; one template game started over REST
//!    (its container is the shape the direct reference copies);
//! 2. for each size of the curve (`N/10`, `3N/10`, `N`; just `N` below
//!    100): the direct reference — the same number of containers created
//!    and started through the Docker API by 8 workers, then removed — and
//!    the same number of `start` entries XADDed to the Lobby stream at
//!    once, timed to the last `start` row; the wait for every game's
//!    `healthy`; steady-state CPU and RSS over the window; three full
//!    reconcile passes (`POST /admin/v1/reconcile`);
//! 3. at `N`: `GET /api/v1/runtimes/{id}` under wrk (16 connections) next
//!    to pgbench (16 clients) on the same table; `patch`/`stop`/`start` of
//!    a sample; a forced unhealthy engine for a sample, timed to
//!    `probe_failed` on the stream; `docker kill` of a sample, timed to the
//!    `exited` entry, next to Docker's own kill → `die` for the same kills.
//!
//! Everything it created is removed at the end, also on failure (a drop
//! guard): rtmanager stopped, containers of its owner labels, the network,
//! the streams, the schema, the state root.
//!
//! Options: `--games N` (default 20, at most 1,000: a Linux bridge holds
//! 1,024 ports and the direct reference shares the engines' network),
//! `--window S` (steady-state CPU window, default 30), `--debug`.

mod reference;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tokio_postgres::NoTls;

use crate::http::{request, Response};
use report::{parse_entries, Entry, Report, Stage};

const GM_TOKEN: &str = "bench-gm-token-0123456789";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const ADMIN_URL: &str = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/rtmanager";
const SERVICE_ROLE: &str = "rtmanagerservice";
const SCHEMA: &str = "rtmanager_bench";
const IMAGE_OLD: &str = "rtm.local/engine-stub:1.0.0";
const IMAGE_NEW: &str = "rtm.local/engine-stub:1.0.1";
/// The engine settings rtmanager runs with here (its defaults).
const STATE_MOUNT: &str = "/var/lib/engine";
const ENGINE_USER: &str = "65534:65534";
/// Production health settings (SPEC §10 defaults), for the probe budget.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
const PROBE_FAILURES: u32 = 3;
/// Samples at the final size.
const KILLS: usize = 40;
const PROBE_SAMPLE: usize = 20;
const OP_SAMPLE: usize = 10;

pub(crate) struct Options {
    pub games: usize,
    pub window: Duration,
    pub release: bool,
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
                if !(2..=1000).contains(&o.games) {
                    bail!("--games: 2 to 1000");
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

/// The sizes of the curve: `N/10`, `3N/10` and `N` (only `N` below 100).
fn stage_sizes(n: usize) -> Vec<usize> {
    let mut sizes = if n >= 100 {
        vec![n / 10, 3 * n / 10, n]
    } else {
        vec![n]
    };
    sizes.dedup();
    sizes
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
    /// Owner label of the direct reference's containers: rtmanager never
    /// sees them.
    ref_owner: String,
    network: String,
    state_root: PathBuf,
    lobby_stream: String,
    health_stream: String,
    gm: String,
    admin: String,
    child: Option<Child>,
    cleaned: bool,
    deadline: Instant,
    budget: Duration,
    pg: Pg,
}

impl Bench {
    fn new(opts: &Options) -> Result<Self> {
        let tag = format!("rtmbench-{}", std::process::id());
        // Starting, reconciling and removing 2 × N containers dominates.
        let budget = Duration::from_secs(10 * 60 + 2 * opts.games as u64);
        Ok(Self {
            owner: tag.clone(),
            ref_owner: format!("{tag}-ref"),
            network: tag.clone(),
            state_root: std::env::temp_dir().join(&tag),
            lobby_stream: format!("{tag}:lobby"),
            health_stream: format!("{tag}:health_events"),
            gm: format!("127.0.0.1:{}", free_port()?),
            admin: format!("127.0.0.1:{}", free_port()?),
            child: None,
            cleaned: false,
            deadline: Instant::now() + budget,
            budget,
            pg: Pg::connect()?,
            tag,
        })
    }

    fn game(&self, i: usize) -> String {
        format!("{}-g{i:04}", self.tag)
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
        let mut report = Report {
            probe_budget: PROBE_INTERVAL * PROBE_FAILURES,
            probe_interval: PROBE_INTERVAL,
            ..Report::default()
        };

        step("idle CPU and RSS (no games)");
        sleep(Duration::from_secs(2));
        report.idle_cpu = self.cpu_rate(Duration::from_secs(10))?;
        report.idle_rss_mib = self.rss_mib()?;

        let games: Vec<String> = (0..opts.games).map(|i| self.game(i)).collect();
        step("template game (its container is the direct reference's shape)");
        let (took, r) = self.timed_post(
            &format!("/api/v1/runtimes/{}/start", games[0]),
            &format!(r#"{{"image_ref":"{IMAGE_OLD}"}}"#),
        )?;
        ensure_ok("start", &games[0], &r)?;
        report.start.push(took);
        let template = reference::Template::of(&self.container_of(&games[0])?)?;

        let mut started = 1;
        for size in stage_sizes(opts.games) {
            let new = &games[started..size];
            let mut stage = Stage {
                games: size,
                new_games: new.len(),
                ..Stage::default()
            };
            step(&format!(
                "{size} games: direct reference, {} containers through the Docker API",
                new.len()
            ));
            let (direct, ids) = reference::direct_burst(
                &template,
                new,
                &self.ref_owner,
                &self.state_root.join("ref"),
                STATE_MOUNT,
                ENGINE_USER,
            )?;
            stage.direct_burst = direct;
            println!("{} created and started in {direct:.1?}", ids.len());
            reference::remove_all(&ids);

            step(&format!(
                "{size} games: {} starts via the Lobby stream",
                new.len()
            ));
            stage.lobby_burst = self.lobby_burst(new)?;
            println!(
                "{} started in {:.1?} ({:.3} x direct)",
                new.len(),
                stage.lobby_burst,
                stage.lobby_burst.as_secs_f64() / direct.as_secs_f64()
            );
            started = size;
            self.wait_healthy(&games[..size])?;

            step(&format!(
                "{size} games: steady state for {:?}, then 3 reconcile passes",
                opts.window
            ));
            sleep(Duration::from_secs(2));
            let calls_before = self.docker_calls();
            let t0 = Instant::now();
            stage.cpu = self.cpu_rate(opts.window)?;
            stage.rss_mib = self.rss_mib()?;
            report.docker_calls = rates(&calls_before, &self.docker_calls(), t0.elapsed());
            for _ in 0..3 {
                let t0 = Instant::now();
                let r = request(
                    &self.admin,
                    "POST",
                    "/admin/v1/reconcile",
                    Some(ADMIN_TOKEN),
                    Some(""),
                )?;
                if r.status != 200 {
                    bail!("reconcile: HTTP {}: {}", r.status, r.body);
                }
                stage.reconcile.push(t0.elapsed());
            }
            report.stages.push(stage);
        }

        let prefix = format!("{}-g", self.tag);
        step("GET /api/v1/runtimes/{id} under wrk, next to pgbench on the same table");
        report.pgbench_tps = reference::pgbench(SCHEMA, &prefix, opts.games, 10)?;
        report.get_rps = reference::wrk_get(&self.gm, GM_TOKEN, &prefix, opts.games, 10)?;

        let sample = &games[1..games.len().min(1 + OP_SAMPLE)];
        self.operations(sample, &mut report)?;
        let probed: Vec<String> = games
            .iter()
            .skip(1 + OP_SAMPLE)
            .take(PROBE_SAMPLE)
            .cloned()
            .collect();
        self.probe_detection(&probed, &mut report)?;
        let killed = &games[games.len().saturating_sub(KILLS)..];
        self.kills(killed, &mut report)?;
        Ok(report)
    }

    /// XADDs one `start` per game at once and waits for their rows: the
    /// time from the first XADD to the last row's `finished_at`.
    fn lobby_burst(&mut self, games: &[String]) -> Result<Duration> {
        let script: String = games
            .iter()
            .map(|g| {
                format!(
                    "XADD {} * op start game_id {g} image_ref {IMAGE_OLD}\n",
                    self.lobby_stream
                )
            })
            .collect();
        let t0_ms = unix_ms();
        redis_script(&script)?;
        let list: Vec<String> = games.to_vec();
        let wait = Duration::from_secs(60) + games.len() as u32 * Duration::from_secs(2);
        let deadline = Instant::now() + wait;
        loop {
            self.check_time()?;
            let (ok, failed, last_ms) = self.pg.start_rows(&list)?;
            if failed > 0 {
                bail!("{failed} Lobby starts failed (see {SCHEMA}.operation_log)");
            }
            if ok == games.len() as i64 {
                let last = u64::try_from(last_ms).unwrap_or_default();
                return Ok(Duration::from_millis(last.saturating_sub(t0_ms)));
            }
            if Instant::now() > deadline {
                bail!("{ok} of {} Lobby starts done after {wait:?}", games.len());
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every game's snapshot says `healthy`.
    fn wait_healthy(&mut self, games: &[String]) -> Result<()> {
        let started = Instant::now();
        let wait = Duration::from_secs(120) + games.len() as u32 * Duration::from_millis(200);
        loop {
            self.check_time()?;
            let healthy = self.pg.healthy(games)?;
            if healthy == games.len() as i64 {
                println!(
                    "all {} games healthy after {:.1}s",
                    games.len(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() > wait {
                bail!(
                    "{} of {} games healthy after {wait:?}",
                    healthy,
                    games.len()
                );
            }
            sleep(Duration::from_millis(500));
        }
    }

    /// `patch` half of `sample`, `stop` the other half, `start` those again.
    fn operations(&mut self, sample: &[String], report: &mut Report) -> Result<()> {
        let (patched, stopped) = sample.split_at(sample.len() / 2);
        step(&format!("patch {} games to 1.0.1", patched.len()));
        for g in patched {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/patch"),
                &format!(r#"{{"image_ref":"{IMAGE_NEW}"}}"#),
            )?;
            ensure_ok("patch", g, &r)?;
            report.patch.push(took);
        }
        step(&format!(
            "stop {} games, then start them again",
            stopped.len()
        ));
        for g in stopped {
            let (took, r) = self.timed_post(&format!("/api/v1/runtimes/{g}/stop"), "{}")?;
            ensure_ok("stop", g, &r)?;
            report.stop.push(took);
        }
        for g in stopped {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/start"),
                &format!(r#"{{"image_ref":"{IMAGE_OLD}"}}"#),
            )?;
            ensure_ok("start", g, &r)?;
            report.restart_stopped.push(took);
        }
        Ok(())
    }

    /// Turns each engine of `games` unhealthy at once (the stub's
    /// `unhealthy` control file) and times each `probe_failed` entry.
    fn probe_detection(&mut self, games: &[String], report: &mut Report) -> Result<()> {
        step(&format!(
            "{} engines turn unhealthy: time to probe_failed (budget {:?})",
            games.len(),
            report.probe_budget
        ));
        let mut last = self.last_stream_id()?;
        let t0_ms = unix_ms();
        for g in games {
            std::fs::write(self.state_root.join(g).join("unhealthy"), b"")?;
        }
        let mut pending: Vec<&String> = games.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !pending.is_empty() {
            self.check_time()?;
            if Instant::now() > deadline {
                bail!("{} engines never reported probe_failed", pending.len());
            }
            let fresh = self.read_after(&last, Duration::from_secs(2))?;
            for e in &fresh {
                if e.event_type == "probe_failed" {
                    if let Some(i) = pending.iter().position(|g| **g == e.game_id) {
                        pending.swap_remove(i);
                        let at = e.xadd_ms().unwrap_or_default();
                        report
                            .probe_failed
                            .push(Duration::from_millis(at.saturating_sub(t0_ms)));
                    }
                }
            }
            if let Some(e) = fresh.last() {
                last = e.id.clone();
            }
        }
        for g in games {
            let _ = std::fs::remove_file(self.state_root.join(g).join("unhealthy"));
        }
        Ok(())
    }

    /// `docker kill` of each game in turn: the time to its `exited` entry,
    /// next to Docker's own kill → `die` for the same kill.
    fn kills(&mut self, games: &[String], report: &mut Report) -> Result<()> {
        step(&format!(
            "docker kill {} engines, one at a time",
            games.len()
        ));
        let dies = reference::DieEvents::follow(&self.owner)?;
        for g in games {
            let container = self.container_of(g)?;
            let mut last = self.last_stream_id()?;
            // A random pause, so kills do not phase-lock with any periodic
            // work of rtmanager's.
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
            if let Some(at) = dies.wait_for(&format!("rtm-{g}"), Duration::from_secs(5)) {
                report.kill_die.push(at.saturating_duration_since(t0));
            }
            if event.source == "docker_event" {
                if let Some(d) = event.die_to_xadd() {
                    report.die_to_xadd.push(d);
                }
            }
            *report.sources.entry(event.source.clone()).or_default() += 1;
        }
        Ok(())
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
            bail!("bench exceeded its {:?} budget", self.budget);
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

    fn pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().context("rtmanager not running")?.id())
    }

    /// rtmanager's resident set (`VmRSS`), in MiB.
    fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }

    /// rtmanager's own count of its Docker calls (every `rtm_docker_calls*`
    /// series of `/metrics`), when it exports one.
    fn docker_calls(&self) -> Vec<(String, f64)> {
        let Ok(r) = request(&self.gm, "GET", "/metrics", None, None) else {
            return Vec::new();
        };
        r.body
            .lines()
            .filter(|l| l.starts_with("rtm_docker_calls"))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// CPU time rtmanager used per wall second over `window`.
    fn cpu_rate(&mut self, window: Duration) -> Result<f64> {
        let pid = self.pid()?;
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
        for owner in [&self.owner, &self.ref_owner] {
            if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("label=rtm.owner={owner}")])
            {
                let ids: Vec<String> = ids.split_whitespace().map(str::to_owned).collect();
                reference::remove_all(&ids);
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
            "removed containers of {} and {}, network, streams, schema",
            self.owner, self.ref_owner
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

/// The admin's URL for the `rtmanager` database.
fn admin_url() -> String {
    std::env::var("RTM_ADMIN_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| match u.rsplit_once('/') {
            Some((base, _)) => format!("{base}/rtmanager"),
            None => u,
        })
        .unwrap_or_else(|| ADMIN_URL.to_owned())
}

/// Runs `sql` as the admin in the `rtmanager` database.
fn sql(sql: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Per-second rates of the counters that grew between two scrapes.
fn rates(before: &[(String, f64)], after: &[(String, f64)], over: Duration) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(name, v)| {
            let was = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| *b);
            (name.clone(), (v - was) / over.as_secs_f64())
        })
        .collect()
}

/// Runs Redis commands, one a line, through one `redis-cli` (so a burst
/// of XADDs is not a burst of process starts).
fn redis_script(script: &str) -> Result<()> {
    use std::io::Write;
    let url = std::env::var("RTM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut child = Command::new("redis-cli")
        .args(["-u", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running redis-cli")?;
    child
        .stdin
        .take()
        .context("redis-cli stdin")?
        .write_all(script.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("redis-cli failed ({status})");
    }
    Ok(())
}

/// An admin session on the `rtmanager` database for the bench's reads.
struct Pg {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Pg {
    fn connect() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
                .await
                .context("connecting to PostgreSQL as the admin")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            anyhow::Ok(client)
        })?;
        Ok(Self { rt, client })
    }

    /// Successful and failed Lobby `start` rows of `games`, and the last
    /// one's `finished_at` (Unix ms).
    fn start_rows(&self, games: &[String]) -> Result<(i64, i64, i64)> {
        let row = self.rt.block_on(self.client.query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE outcome = 'success'), \
                        count(*) FILTER (WHERE outcome = 'failure'), \
                        coalesce((extract(epoch FROM max(finished_at)) * 1000)::bigint, 0) \
                 FROM {SCHEMA}.operation_log \
                 WHERE op_kind = 'start' AND op_source = 'lobby_stream' AND game_id = ANY($1)"
            ),
            &[&games],
        ))?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    /// How many of `games` have a `healthy` snapshot.
    fn healthy(&self, games: &[String]) -> Result<i64> {
        let row = self.rt.block_on(self.client.query_one(
            &format!(
                "SELECT count(*) FROM {SCHEMA}.health_snapshots \
                 WHERE status = 'healthy' AND game_id = ANY($1)"
            ),
            &[&games],
        ))?;
        Ok(row.get(0))
    }
}
