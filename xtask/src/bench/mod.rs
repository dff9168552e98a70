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
//!    100): the stage's new games started in rounds of at most 100, each
//!    side of a round once the machine's load holds steady: the direct
//!    reference — the same number of
//!    containers created and started through the Docker API by 8 workers,
//!    then removed — and then the same number of `start` entries XADDed
//!    to the Lobby stream at once, timed to the last `start` row (the CPU
//!    each burst cost, by process, is recorded beside it); the wait for
//!    every game's `healthy`; steady-state CPU and RSS over the window;
//!    three full reconcile passes (`POST /admin/v1/reconcile`);
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
//! `--window S` (steady-state CPU window, default 30), `--debug`, and
//! `--swarm`: instead of the phases above, the runtime comparison of
//! [`runtimes`] (start, stop and kill → event latencies on the single-host
//! adapter, then on the swarm adapter, one table; at most 50 games).

mod child;
mod phases;
mod reference;
mod report;
mod runtimes;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tokio_postgres::NoTls;

use crate::http::{request, Response};
use report::{parse_entries, Entry, Report, Stage};
use tools::{docker, ensure_ok, free_port, rates, settle, sql, CpuMark, Pg};

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
/// Most games of `--swarm`: the overlay network's tasks get addresses
/// from a /25 (crates/rtm-overlay), and each game runs two tasks.
const SWARM_MAX_GAMES: usize = 50;
/// Labels on `--swarm`'s overlay network and placeholder: the bench's pid
/// and its rtmanager's owner, for the sweep of a killed run's leftovers.
const OVERLAY_PID_LABEL: &str = "rtm.xtask.bench.pid";
const OVERLAY_OWNER_LABEL: &str = "rtm.xtask.bench.owner";

pub(crate) struct Options {
    pub games: usize,
    pub window: Duration,
    pub release: bool,
    /// The runtime comparison ([`runtimes`]) instead of the phases.
    pub swarm: bool,
}

/// The runtime adapter the rtmanager under test runs (`RTM_RUNTIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runtime {
    Docker,
    Swarm,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        games: 20,
        window: Duration::from_secs(30),
        release: true,
        swarm: false,
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
            "--swarm" => o.swarm = true,
            other => bail!("bench: unexpected argument {other:?}"),
        }
    }
    if o.swarm && o.games > SWARM_MAX_GAMES {
        bail!("--swarm: at most {SWARM_MAX_GAMES} games");
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
    if opts.swarm {
        return runtimes::run(&bin, &opts, profile);
    }

    let mut bench = Bench::new(&opts, Runtime::Docker, "")?;
    let result = bench.run_all(&bin, &opts);
    bench.cleanup();
    let report = result?;
    report.print(&opts, profile);
    Ok(())
}

/// Drops and recreates the bench's schema, owned by the service role
/// (rtmanager applies the migrations at its start).
fn fresh_schema() -> Result<()> {
    step(&format!("schema {SCHEMA}"));
    sql(&format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; \
         CREATE SCHEMA {SCHEMA} AUTHORIZATION {SERVICE_ROLE}"
    ))
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
    runtime: Runtime,
    /// On a swarm: the overlay network this host is attached to (dropped
    /// last in `cleanup`, which removes it with its veth and placeholder).
    overlay: Option<rtm_overlay::Attachment>,
}

impl Bench {
    /// `suffix` tells apart the benches of one run (`rtmbench-<pid><suffix>`).
    fn new(opts: &Options, runtime: Runtime, suffix: &str) -> Result<Self> {
        let tag = format!("rtmbench-{}{suffix}", std::process::id());
        // Starting, reconciling and removing 2 × N containers dominates.
        let budget = Duration::from_secs(10 * 60 + 2 * opts.games as u64);
        let pg = Pg::connect()?;
        pg.lock_bench()?;
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
            pg,
            runtime,
            overlay: None,
            tag,
        })
    }

    fn game(&self, i: usize) -> String {
        format!("{}-g{i:04}", self.tag)
    }

    fn run_all(&mut self, bin: &Path, opts: &Options) -> Result<Report> {
        fresh_schema()?;
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
                "{size} games: {} starts, in rounds of at most {ROUND}: direct through the Docker API, then via the Lobby stream",
                new.len()
            ));
            let calls0 = self.docker_calls();
            for round in new.chunks(ROUND) {
                self.burst_round(&template, round, &mut stage)?;
            }
            stage.burst_calls = rates(&calls0, &self.docker_calls(), Duration::from_secs(1))
                .into_iter()
                .filter(|(_, n)| *n > 0.0)
                .map(|(k, n)| (k, n / new.len().max(1) as f64))
                .collect();
            println!(
                "{} started in {:.1?} ({:.3} x direct: {:.1?})",
                new.len(),
                stage.lobby_burst,
                stage.lobby_burst.as_secs_f64() / stage.direct_burst.as_secs_f64(),
                stage.direct_burst,
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
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Lets the machine settle before a burst (see [`settle`]); the load
/// it settled at, in cores.
fn quiet(what: &str) -> Result<f64> {
    let (waited, load) = settle(Duration::from_secs(30))?;
    if waited >= Duration::from_secs(30) {
        println!("load still moving after {waited:.0?} before {what} ({load:.2} cores); measuring anyway");
    }
    Ok(load)
}

/// Starts per round of the start bursts (see [`Bench::burst_round`]).
const ROUND: usize = 100;

impl Bench {
    /// One round of the start bursts: `games.len()` containers created and
    /// started directly through the Docker API (then removed), then the
    /// same number of games started via the Lobby stream, each once the
    /// machine's load holds steady ([`quiet`]); adds both wall times, the
    /// CPU and the PostgreSQL transactions each cost to `stage`. A stage's
    /// bursts alternate in rounds so a drift in what Docker and the kernel
    /// pay per container (their heaps, the host's memory management) falls
    /// on both sides alike: one burst against another a minute later
    /// differ by 10 % and more on their own.
    fn burst_round(
        &mut self,
        template: &reference::Template,
        games: &[String],
        stage: &mut Stage,
    ) -> Result<()> {
        stage.direct_background += quiet("a direct round")?;
        let tx0 = self.pg.transactions()?;
        let cpu0 = CpuMark::take()?;
        let (direct, ids) = reference::direct_burst(
            template,
            games,
            &self.ref_owner,
            &self.state_root.join("ref"),
            STATE_MOUNT,
            ENGINE_USER,
        )?;
        stage.direct_cpu.add(&CpuMark::take()?.since(&cpu0));
        stage.direct_burst += direct;
        stage.direct_transactions += self.pg.transactions()? - tx0;
        reference::remove_all(&ids);
        stage.lobby_background += quiet("a Lobby round")?;
        stage.rounds += 1;
        let tx0 = self.pg.transactions()?;
        let cpu0 = CpuMark::take()?;
        let (lobby, reads) = self.lobby_burst(games)?;
        stage.lobby_cpu.add(&CpuMark::take()?.since(&cpu0));
        stage.lobby_burst += lobby;
        // Less the bench's own reads of the rows.
        stage.lobby_transactions += self.pg.transactions()? - tx0 - reads;
        println!(
            "round of {}: direct {direct:.1?}, via the Lobby {lobby:.1?} ({:.3} x)",
            games.len(),
            lobby.as_secs_f64() / direct.as_secs_f64()
        );
        Ok(())
    }
}
