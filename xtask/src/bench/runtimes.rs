//! `cargo xtask bench --swarm`: the same latencies measured on both
//! runtime adapters in one invocation, printed side by side — the
//! single-host adapter (`RTM_RUNTIME=docker`) first, then the swarm
//! adapter (`RTM_RUNTIME=swarm`) on this machine's single-node swarm, each
//! with its own rtmanager child, owner, network, streams and schema, the
//! same `N`, image and production health settings.
//!
//! Per game, one at a time (so each figure is one operation's latency,
//! not a burst's queueing):
//! 1. **start**: a `start` entry XADDed to the Lobby stream → the game's
//!    `start` row's `finished_at` (what the single-host bench times its
//!    bursts to); then the wait until every game is `healthy` (on a swarm
//!    that proves the probes reach the tasks over the overlay network);
//! 2. **stop**: `POST …/stop` → its 200 (the engine stopped, the record
//!    `stopped`), then `POST …/start` of the stopped game → its 200;
//! 3. **kill**: `docker kill` of the engine's container (on a swarm, the
//!    running task's container on this node) → the `exited` entry
//!    received by a client following the health stream, next to Docker's
//!    own kill → `die` for the same kill (`Bench::kills`) and, on the
//!    swarm, to the task's end in the manager's task list (polled every
//!    20 ms: what the adapter's feed learns exits from).
//!
//! On a swarm rtmanager must be attached to the engines' overlay network
//! (docs/swarm.md, "Where rtmanager runs"): its `/readyz` fails otherwise.
//! It runs as a child process on the host, in the host's network
//! namespace, so the bench attaches that namespace the way the end-to-end
//! suites on the swarm and `cargo xtask up --swarm` do (crates/rtm-overlay),
//! with its own labels, by which the next `--swarm` run sweeps a killed
//! run's leftovers. Everything is removed at the end, also on failure: the
//! services (and their task containers), then the veth pair, the
//! placeholder container and the network.

use super::report::summary;
use super::tools::{redis_script, unix_ms};
use super::*;

/// Runs both adapters in turn and prints the table; each bench is cleaned
/// up before the next starts, also when it failed.
pub(super) fn run(bin: &Path, opts: &Options, profile: &str) -> Result<()> {
    let mut results = Vec::new();
    for (runtime, suffix) in [(Runtime::Docker, "-d"), (Runtime::Swarm, "-s")] {
        step(&format!(
            "{} games on the {} adapter",
            opts.games,
            name(runtime)
        ));
        let mut bench = Bench::new(opts, runtime, suffix)?;
        let report = bench.latencies(bin, opts);
        bench.cleanup();
        results.push(report.with_context(|| format!("on the {} adapter", name(runtime)))?);
    }
    print(&results[0], &results[1], opts, profile);
    Ok(())
}

fn name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Docker => "single-host",
        Runtime::Swarm => "swarm",
    }
}

impl Bench {
    fn latencies(&mut self, bin: &Path, opts: &Options) -> Result<Report> {
        fresh_schema()?;
        if self.runtime == Runtime::Swarm {
            step("attaching this host to an overlay network (crates/rtm-overlay)");
            crate::up::swarm::sweep_attachments(
                OVERLAY_PID_LABEL,
                OVERLAY_OWNER_LABEL,
                "cargo xtask bench --swarm",
            );
            let pid = std::process::id();
            let overlay = rtm_overlay::Attachment::create(&rtm_overlay::AttachSpec {
                network: format!("{}-ovl", self.owner),
                placeholder: format!("{}-ovlhold", self.owner),
                labels: vec![
                    format!("{OVERLAY_PID_LABEL}={pid}"),
                    format!("{OVERLAY_OWNER_LABEL}={}", self.owner),
                ],
                // The stub engine, its state on a tmpfs; it only holds the
                // network's namespace on this node.
                placeholder_image: IMAGE_OLD.to_owned(),
                placeholder_args: vec!["--tmpfs".into(), "/var/lib/engine".into()],
                seed: pid,
                docker_host: None,
            })?;
            println!(
                "{} ({}), this host at {}",
                overlay.name(),
                overlay.subnet(),
                overlay.host_address()
            );
            self.network = overlay.name().to_owned();
            self.overlay = Some(overlay);
        }
        step(&format!(
            "starting rtmanager ({}, owner {}, GM http://{})",
            name(self.runtime),
            self.owner,
            self.gm
        ));
        self.spawn(bin)?;
        let mut report = Report::default();
        let games: Vec<String> = (0..opts.games).map(|i| self.game(i)).collect();

        step(&format!(
            "{} starts via the Lobby stream, one at a time",
            games.len()
        ));
        for g in &games {
            report.lobby_start.push(self.lobby_start(g)?);
        }
        self.wait_healthy(&games)?;

        step(&format!(
            "stop {} games, then start them again, one at a time",
            games.len()
        ));
        self.stop_then_start(&games, &mut report)?;
        self.kills(&games, &mut report)?;
        Ok(report)
    }

    /// XADDs one `start` for `game` and waits for its row: the time from
    /// before the XADD to the row's `finished_at` (PostgreSQL's clock, the
    /// same machine).
    fn lobby_start(&mut self, game: &str) -> Result<Duration> {
        let t0_ms = unix_ms();
        redis_script(&format!(
            "XADD {} * op start game_id {game} image_ref {IMAGE_OLD}\n",
            self.lobby_stream
        ))?;
        let list = [game.to_owned()];
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.check_time()?;
            let (ok, failed, last_ms) = self.pg.start_rows(&list)?;
            if failed > 0 {
                bail!("the Lobby start of {game} failed (see {SCHEMA}.operation_log)");
            }
            if ok == 1 {
                let done = u64::try_from(last_ms).unwrap_or_default();
                return Ok(Duration::from_millis(done.saturating_sub(t0_ms)));
            }
            if Instant::now() > deadline {
                bail!("the Lobby start of {game} not done after 90 s");
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// `p50 / p99 (n)` of `samples`, in ms.
fn cell(samples: &[Duration]) -> String {
    match summary(samples) {
        Some([_, p50, _, p99, _]) => format!("{p50:.0} / {p99:.0} ({})", samples.len()),
        None => "-".into(),
    }
}

fn print(single: &Report, swarm: &Report, opts: &Options, profile: &str) {
    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    step(&format!(
        "results ({profile} build, {} games on each adapter, {} cores, unix time {when})",
        opts.games,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    println!(
        "\n{:<44} {:>22} {:>22} {:>12}",
        "latency, ms: p50 / p99 (n)", "single host", "swarm (1 node)", "p50 ratio"
    );
    for (measure, a, b) in [
        (
            "start: Lobby entry -> start row",
            &single.lobby_start,
            &swarm.lobby_start,
        ),
        ("stop: REST request -> stopped", &single.stop, &swarm.stop),
        (
            "start of a stopped game: REST",
            &single.restart_stopped,
            &swarm.restart_stopped,
        ),
        (
            "docker kill -> exited on the stream",
            &single.kill_visible,
            &swarm.kill_visible,
        ),
        (
            "docker kill -> die (Docker's, reference)",
            &single.kill_die,
            &swarm.kill_die,
        ),
        (
            "docker kill -> task ended in Swarm's list",
            &single.kill_task_end,
            &swarm.kill_task_end,
        ),
        (
            "die -> exited XADD (event times)",
            &single.die_to_xadd,
            &swarm.die_to_xadd,
        ),
    ] {
        let ratio = match (summary(a), summary(b)) {
            (Some(x), Some(y)) if x[1] > 0.0 => format!("{:.2}", y[1] / x[1]),
            _ => "-".into(),
        };
        println!("{measure:<44} {:>22} {:>22} {ratio:>12}", cell(a), cell(b));
    }
    println!(
        "\n{:<54} {:>4} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "in detail (ms)", "n", "min", "median", "p95", "p99", "max"
    );
    for (adapter, r) in [("single host", single), ("swarm", swarm)] {
        for (measure, samples) in [
            ("start: Lobby entry -> start row", &r.lobby_start),
            ("stop: REST", &r.stop),
            ("start of a stopped game: REST", &r.restart_stopped),
            ("docker kill -> exited on the stream", &r.kill_visible),
            ("docker kill -> die", &r.kill_die),
            (
                "docker kill -> task ended in Swarm's list",
                &r.kill_task_end,
            ),
            ("die -> exited XADD", &r.die_to_xadd),
        ] {
            if let Some([min, med, p95, p99, max]) = summary(samples) {
                println!(
                    "{:<54} {:>4} {min:>7.0} {med:>7.0} {p95:>7.0} {p99:>7.0} {max:>7.0}",
                    format!("{adapter}: {measure}"),
                    samples.len()
                );
            }
        }
    }
    println!(
        "exit events by source: single host {:?}, swarm {:?}",
        single.sources, swarm.sources
    );
}
