//! What the bench measured, and the one table that prints each figure
//! next to its reference from the same run and the goal it is held to
//! (docs/benchmarks.md explains each row).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::tools::CpuUse;
use super::{step, Options};

/// One size of the growth curve: what `N` healthy games cost.
#[derive(Debug, Clone, Default)]
pub(super) struct Stage {
    pub games: usize,
    /// Starts of this stage's new games through the Lobby stream: from the
    /// first XADD to the last `start` row's `finished_at`.
    pub lobby_burst: Duration,
    /// The same number of containers, same shape, created and started
    /// directly through the Docker Engine API by 8 workers.
    pub direct_burst: Duration,
    pub new_games: usize,
    /// CPU used during each burst (not only by the burst: the games
    /// already running are probed meanwhile).
    pub direct_cpu: CpuUse,
    pub lobby_cpu: CpuUse,
    /// Rounds of the bursts, and the sums over them of the machine's load
    /// (cores) each side started on.
    pub rounds: usize,
    pub direct_background: f64,
    pub lobby_background: f64,
    /// PostgreSQL transactions during each side's bursts (all sessions but
    /// the bench's own reads): rtmanager's background in both, its starts
    /// in the Lobby side's.
    pub direct_transactions: i64,
    pub lobby_transactions: i64,
    /// rtmanager's counted Docker calls during the Lobby burst, per start.
    pub burst_calls: Vec<(String, f64)>,
    pub cpu: f64,
    pub rss_mib: f64,
    pub reconcile: Vec<Duration>,
}

#[derive(Debug, Default)]
pub(super) struct Report {
    pub idle_cpu: f64,
    pub idle_rss_mib: f64,
    pub stages: Vec<Stage>,
    pub start: Vec<Duration>,
    /// `--swarm`: one game's Lobby `start` entry → its `start` row.
    pub lobby_start: Vec<Duration>,
    pub restart_stopped: Vec<Duration>,
    pub patch: Vec<Duration>,
    pub stop: Vec<Duration>,
    pub kill_visible: Vec<Duration>,
    /// Docker's own `docker kill` → `die` event, for the same kills.
    pub kill_die: Vec<Duration>,
    /// On a swarm, `docker kill` → the task no longer `running` in the
    /// manager's task list (what the swarm adapter's feed polls).
    pub kill_task_end: Vec<Duration>,
    pub die_to_xadd: Vec<Duration>,
    pub sources: std::collections::BTreeMap<String, usize>,
    /// `unhealthy` control file written → `probe_failed` on the stream.
    pub probe_failed: Vec<Duration>,
    pub probe_budget: Duration,
    pub probe_interval: Duration,
    pub get_rps: f64,
    pub pgbench_tps: f64,
    pub docker_calls: Vec<(String, f64)>,
}

/// `name value<unit>, …` of metric series and their counts or rates.
fn counts(series: &[(String, f64)], unit: &str) -> String {
    series
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}{unit}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// min, median, p95, p99, max in milliseconds (nearest-rank percentiles).
pub(super) fn summary(samples: &[Duration]) -> Option<[f64; 5]> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some([v[0], rank(0.5), rank(0.95), rank(0.99), v[v.len() - 1]])
}

fn pct(samples: &[Duration], i: usize) -> Option<f64> {
    summary(samples).map(|s| s[i])
}

const P50: usize = 1;
const P99: usize = 3;
const MAX: usize = 4;

/// A goal row: the figure, its reference, the goal and whether it held.
struct Row {
    measure: String,
    value: String,
    reference: String,
    goal: String,
    held: Option<bool>,
}

impl Report {
    pub(super) fn print(&self, opts: &Options, profile: &str) {
        let when = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        step(&format!(
            "results ({profile} build, {} games, {} cores, unix time {when})",
            opts.games,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        self.print_goals(opts);
        self.print_curve();
        self.print_bursts();
        self.print_latencies();
        println!("exit events by source: {:?}", self.sources);
        if !self.docker_calls.is_empty() {
            println!(
                "Docker calls by rtmanager in the steady state: {}",
                counts(&self.docker_calls, "/s")
            );
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let last = self.stages.last();
        let (lobby, direct, new_games) = self
            .stages
            .iter()
            .fold((Duration::ZERO, Duration::ZERO, 0), |(l, d, n), s| {
                (l + s.lobby_burst, d + s.direct_burst, n + s.new_games)
            });
        if !direct.is_zero() {
            let ratio = lobby.as_secs_f64() / direct.as_secs_f64();
            rows.push(Row {
                measure: format!("{new_games} starts via the Lobby stream (wall)"),
                value: format!("{:.1} s", lobby.as_secs_f64()),
                reference: format!(
                    "direct create+start, 8 workers: {:.1} s",
                    direct.as_secs_f64()
                ),
                goal: format!("ratio {ratio:.3} <= 1.05"),
                held: Some(ratio <= 1.05),
            });
        }
        if let (Some(p50), Some(p99), Some(docker99)) = (
            pct(&self.kill_visible, P50),
            pct(&self.kill_visible, P99),
            pct(&self.kill_die, P99),
        ) {
            rows.push(Row {
                measure: "docker kill -> exited on stream p50/p99".into(),
                value: format!("{p50:.0} / {p99:.0} ms"),
                reference: format!("docker kill -> die p99: {docker99:.0} ms"),
                goal: format!("p99 <= {:.0} ms", docker99 + 100.0),
                held: Some(p99 <= docker99 + 100.0),
            });
        }
        if let Some(p50) = pct(&self.die_to_xadd, P50) {
            rows.push(Row {
                measure: "Docker die -> exited XADD p50".into(),
                value: format!("{p50:.0} ms"),
                reference: "-".into(),
                goal: "<= 30 ms".into(),
                held: Some(p50 <= 30.0),
            });
        }
        if let (Some(p50), Some(max)) = (pct(&self.probe_failed, P50), pct(&self.probe_failed, MAX))
        {
            let limit = (self.probe_budget + self.probe_interval).as_secs_f64() * 1000.0;
            rows.push(Row {
                measure: "unhealthy -> probe_failed p50/max".into(),
                value: format!("{:.1} / {:.1} s", p50 / 1000.0, max / 1000.0),
                reference: format!(
                    "budget interval x failures: {:.0} s",
                    self.probe_budget.as_secs_f64()
                ),
                goal: format!("max <= {:.0} s", limit / 1000.0),
                held: Some(max <= limit),
            });
        }
        if let Some(s) = last {
            rows.push(Row {
                measure: format!("RSS / CPU with {} healthy games", s.games),
                value: format!("{:.0} MiB / {:.2} %", s.rss_mib, s.cpu * 100.0),
                reference: format!(
                    "idle: {:.0} MiB / {:.2} %",
                    self.idle_rss_mib,
                    self.idle_cpu * 100.0
                ),
                goal: "<= 64 MiB, <= 5 % of a core".into(),
                held: Some(s.rss_mib <= 64.0 && s.cpu <= 0.05),
            });
            if let (Some(p50), Some(max)) = (pct(&s.reconcile, P50), pct(&s.reconcile, MAX)) {
                rows.push(Row {
                    measure: format!("full reconcile pass at {} games p50/max", s.games),
                    value: format!("{p50:.0} / {max:.0} ms"),
                    reference: "-".into(),
                    goal: "<= 2000 ms".into(),
                    held: Some(max <= 2000.0),
                });
            }
        }
        if self.pgbench_tps > 0.0 {
            let ratio = self.get_rps / self.pgbench_tps;
            rows.push(Row {
                measure: "GET /api/v1/runtimes/{id}, 16 connections".into(),
                value: format!("{:.0} req/s", self.get_rps),
                reference: format!(
                    "pgbench prepared select by game_id, 16 clients: {:.0}/s",
                    self.pgbench_tps
                ),
                goal: format!("ratio {ratio:.2} >= 0.5"),
                held: Some(ratio >= 0.5),
            });
        }
        rows
    }

    fn print_goals(&self, opts: &Options) {
        println!(
            "\n{:<44} {:<18} {:<56} {:<22} verdict",
            "measure", "rtmanager", "reference (same run)", "goal"
        );
        for r in self.rows() {
            let verdict = match r.held {
                Some(true) => "held",
                Some(false) => "MISSED",
                None => "-",
            };
            println!(
                "{:<44} {:<18} {:<56} {:<22} {verdict}",
                r.measure, r.value, r.reference, r.goal
            );
        }
        let _ = opts;
    }

    fn print_curve(&self) {
        println!(
            "\n{:>6} {:>9} {:>11} {:>9} {:>10} {:>16} {:>13}",
            "games", "RSS MiB", "KiB/game", "CPU %", "CPU %/100", "reconcile p50 ms", "start ratio"
        );
        for s in &self.stages {
            let per_game_kib = if s.games > 0 {
                (s.rss_mib - self.idle_rss_mib).max(0.0) * 1024.0 / s.games as f64
            } else {
                0.0
            };
            let per_100 = if s.games > 0 {
                (s.cpu - self.idle_cpu).max(0.0) * 100.0 * 100.0 / s.games as f64
            } else {
                0.0
            };
            let ratio = if s.direct_burst.is_zero() {
                f64::NAN
            } else {
                s.lobby_burst.as_secs_f64() / s.direct_burst.as_secs_f64()
            };
            println!(
                "{:>6} {:>9.1} {:>11.1} {:>9.2} {:>10.3} {:>16.0} {:>13.3}",
                s.games,
                s.rss_mib,
                per_game_kib,
                s.cpu * 100.0,
                per_100,
                pct(&s.reconcile, P50).unwrap_or(f64::NAN),
                ratio
            );
        }
    }

    /// Who paid for each step's bursts: CPU milliseconds per start, whole
    /// machine and by process group (each group costing at least 1 ms a
    /// start on either side, largest first), direct next to via
    /// rtmanager; PostgreSQL transactions per start; rtmanager's counted
    /// Docker calls per start during its bursts.
    fn print_bursts(&self) {
        for s in self.stages.iter().filter(|s| s.new_games > 0) {
            let n = s.new_games as f64;
            let ms =
                |cpu: &CpuUse, group: &str| cpu.by.get(group).copied().unwrap_or(0.0) * 1000.0 / n;
            let mut groups: Vec<&String> = s
                .direct_cpu
                .by
                .keys()
                .chain(s.lobby_cpu.by.keys())
                .collect();
            groups.sort();
            groups.dedup();
            // Largest first by what the groups cost via rtmanager.
            groups.sort_by(|a, b| ms(&s.lobby_cpu, b).total_cmp(&ms(&s.lobby_cpu, a)));
            let rounds = s.rounds.max(1) as f64;
            println!(
                "\n{} starts in {} rounds, CPU ms per start: machine {:.1} direct, {:.1} via RTM (wall {:.1} s, {:.1} s; load before a round {:.2} and {:.2} cores)",
                s.new_games,
                s.rounds,
                s.direct_cpu.machine * 1000.0 / n,
                s.lobby_cpu.machine * 1000.0 / n,
                s.direct_burst.as_secs_f64(),
                s.lobby_burst.as_secs_f64(),
                s.direct_background / rounds,
                s.lobby_background / rounds,
            );
            let shown: Vec<String> = groups
                .iter()
                .filter(|g| ms(&s.direct_cpu, g).max(ms(&s.lobby_cpu, g)) >= 1.0)
                .map(|g| format!("{g} {:.1}/{:.1}", ms(&s.direct_cpu, g), ms(&s.lobby_cpu, g)))
                .collect();
            println!("  by process (direct/via RTM): {}", shown.join(", "));
            println!(
                "  PostgreSQL transactions per start (direct/via RTM): {:.1}/{:.1}",
                s.direct_transactions as f64 / n,
                s.lobby_transactions as f64 / n
            );
            if !s.burst_calls.is_empty() {
                println!(
                    "  counted Docker calls per start: {}",
                    counts(&s.burst_calls, "")
                );
            }
        }
    }

    fn print_latencies(&self) {
        println!(
            "\n{:<34} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "latency (ms)", "n", "min", "median", "p95", "p99", "max"
        );
        for (name, samples) in [
            ("kill -> exited visible on stream", &self.kill_visible),
            ("docker kill -> die (reference)", &self.kill_die),
            ("die -> XADD (event timestamps)", &self.die_to_xadd),
            ("unhealthy -> probe_failed", &self.probe_failed),
            ("start (new container, REST)", &self.start),
            ("start (stopped container)", &self.restart_stopped),
            ("stop", &self.stop),
            ("patch (health-gated)", &self.patch),
        ] {
            if let Some([min, med, p95, p99, max]) = summary(samples) {
                println!(
                    "{name:<34} {:>4} {min:>8.0} {med:>8.0} {p95:>8.0} {p99:>8.0} {max:>8.0}",
                    samples.len()
                );
            }
        }
    }
}

/// One health stream entry (only what the bench needs).
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    pub id: String,
    pub game_id: String,
    pub event_type: String,
    pub source: String,
    pub observed_at: String,
}

impl Entry {
    /// From Docker's event time (`observed_at`, ms) to the Redis entry
    /// id's time (ms): the die → relay → XADD pipeline.
    pub(super) fn die_to_xadd(&self) -> Option<Duration> {
        let observed_ms = rfc3339_utc_ms(&self.observed_at)?;
        self.xadd_ms()?
            .checked_sub(observed_ms)
            .map(Duration::from_millis)
    }

    /// The time in the entry id: when Redis appended it (Unix ms).
    pub(super) fn xadd_ms(&self) -> Option<u64> {
        self.id.split('-').next()?.parse().ok()
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` to Unix milliseconds.
pub(super) fn rfc3339_utc_ms(s: &str) -> Option<u64> {
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
pub(super) fn parse_entries(out: &str) -> Vec<Entry> {
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
        assert_eq!(e[1].xadd_ms(), Some(1_700_000_000_200));
        assert_eq!(e[1].event_type, "healthy");
    }

    #[test]
    fn rfc3339_to_millis() {
        assert_eq!(rfc3339_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ms("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500)
        );
        assert_eq!(
            rfc3339_utc_ms("2023-11-14T22:13:20.123456Z"),
            Some(1_700_000_000_123)
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(summary(&s), Some([1.0, 10.0, 19.0, 20.0, 20.0]));
        let s: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(summary(&s).map(|v| v[3]), Some(198.0));
    }

    #[test]
    fn goals_compare_against_the_same_runs_references() {
        let report = Report {
            stages: vec![Stage {
                games: 10,
                new_games: 10,
                lobby_burst: Duration::from_millis(1040),
                direct_burst: Duration::from_millis(1000),
                ..Stage::default()
            }],
            kill_visible: vec![Duration::from_millis(150)],
            kill_die: vec![Duration::from_millis(60)],
            ..Report::default()
        };
        let rows = report.rows();
        assert_eq!(rows[0].held, Some(true), "1.04 <= 1.05");
        assert_eq!(rows[1].held, Some(true), "150 <= 60 + 100");
        let slow = Report {
            kill_visible: vec![Duration::from_millis(161)],
            kill_die: vec![Duration::from_millis(60)],
            ..Report::default()
        };
        assert_eq!(slow.rows()[0].held, Some(false));
    }
}
