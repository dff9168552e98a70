//! Prometheus metrics of the service, served as text on `GET /metrics`.
//!
//! [`Metrics`] owns a private registry (never the process-global one, so
//! tests and embedded uses can create as many as they like) and every
//! metric the service exports. It is a cheap `Clone` handle (an `Arc`) and
//! implements the domain's [`Telemetry`] port, so the services feed it
//! without knowing about Prometheus.
//!
//! Label values come only from closed vocabularies (operation kinds,
//! sources, outcomes, health statuses, worker names, route patterns, error
//! kinds), never from request data, so the number of series stays bounded.
//! Series of closed vocabularies are created at zero when the registry is
//! built, so every series a dashboard or alert names exists from the first
//! scrape (the dashboard test checks exactly that).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Counter, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rtm_domain::ports::Telemetry;
use rtm_domain::{HealthStatus, OpKind, OpSource, Outcome, RuntimeStatus};

/// Operation latency buckets, seconds: from a no-op replay (milliseconds)
/// to a patch waiting out its health gate (minutes).
const OPERATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// HTTP latency buckets, seconds: reads answer in milliseconds, mutations
/// wait for Docker (seconds), a patch for its health gate (a minute).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every leader-elected worker, for `rtm_worker_leader{worker}`.
pub const WORKERS: &[&str] = &[
    "reconcile",
    "cleanup",
    "inspect",
    "probe",
    "relay",
    "events",
];

/// What the retention pass deletes, for `rtm_retention_deleted_total{what}`.
const RETENTION_KINDS: &[&str] = &["operations", "games", "states"];

/// Why the metrics could not be created (a duplicate or invalid name:
/// a programming error, reported rather than panicking).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The service's metrics; clone freely.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// The name the wiring uses for `Ports::Telemetry`.
pub type PromTelemetry = Metrics;

struct Inner {
    registry: Registry,
    operations_total: IntCounterVec,
    operation_duration: HistogramVec,
    health_observations: IntCounterVec,
    health_changes: IntCounterVec,
    games: IntGaugeVec,
    lobby_lag: IntGauge,
    lobby_pending: IntGauge,
    lobby_dead_letters: IntCounter,
    health_outbox_pending: IntGauge,
    worker_runs: IntCounterVec,
    worker_last_run: GaugeVec,
    worker_overruns: IntCounterVec,
    docker_calls: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    games_health: IntGaugeVec,
    worker_leader: IntGaugeVec,
    events_connected: IntGauge,
    events_resubscriptions: IntCounter,
    lobby_oldest_age: Gauge,
    dependency_errors: IntCounterVec,
    /// What the adapters' process-wide error counters read when this
    /// registry last looked (so each registry counts from its creation).
    errors_seen: std::sync::Mutex<Vec<(&'static str, &'static str, u64)>>,
    retention_deleted: IntCounterVec,
    process_rss: IntGauge,
    process_cpu: Counter,
    process_fds: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

/// How a worker run ended, for `rtm_worker_runs_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerResult {
    /// The run completed.
    Ok,
    /// The run failed (logged).
    Error,
    /// Another replica leads this worker; nothing was done.
    NotLeader,
}

impl WorkerResult {
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerResult::Ok => "ok",
            WorkerResult::Error => "error",
            WorkerResult::NotLeader => "not_leader",
        }
    }
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let operations_total = IntCounterVec::new(
            Opts::new(
                "rtm_operations_total",
                "Operations recorded, by kind, source and outcome.",
            ),
            &["op_kind", "op_source", "outcome"],
        )?;
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "rtm_operation_duration_seconds",
                "Wall time of recorded operations, lock wait included.",
            )
            .buckets(OPERATION_BUCKETS.to_vec()),
            &["op_kind", "outcome"],
        )?;
        let health_observations = IntCounterVec::new(
            Opts::new(
                "rtm_health_observations_total",
                "Health observations accepted, by status.",
            ),
            &["status"],
        )?;
        let health_changes = IntCounterVec::new(
            Opts::new(
                "rtm_health_changes_total",
                "Health changes (published events), by new status.",
            ),
            &["status"],
        )?;
        let games = IntGaugeVec::new(
            Opts::new("rtm_games", "Runtime records by status."),
            &["status"],
        )?;
        let lobby_lag = IntGauge::new(
            "rtm_lobby_lag",
            "Lobby stream entries not yet delivered to RTM's consumer group.",
        )?;
        let lobby_pending = IntGauge::new(
            "rtm_lobby_pending",
            "Lobby stream entries delivered but not yet acknowledged.",
        )?;
        let lobby_dead_letters = IntCounter::new(
            "rtm_lobby_dead_letters_total",
            "Lobby entries moved to the dead-letter stream.",
        )?;
        let health_outbox_pending = IntGauge::new(
            "rtm_health_outbox_pending",
            "Health events committed but not yet published to Redis.",
        )?;
        let worker_runs = IntCounterVec::new(
            Opts::new(
                "rtm_worker_runs_total",
                "Background worker runs, by result.",
            ),
            &["worker", "result"],
        )?;
        let worker_last_run = GaugeVec::new(
            Opts::new(
                "rtm_worker_last_run_timestamp_seconds",
                "Unix time of each worker's last completed run.",
            ),
            &["worker"],
        )?;
        let worker_overruns = IntCounterVec::new(
            Opts::new(
                "rtm_worker_overruns_total",
                "Periodic passes that lasted beyond their interval (the next pass started late).",
            ),
            &["worker"],
        )?;
        let docker_calls = IntCounterVec::new(
            Opts::new(
                "rtm_docker_calls_total",
                "Docker API calls made by the periodic passes, by pass and call.",
            ),
            &["pass", "call"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "rtm_http_requests_total",
                "HTTP requests, by surface, route pattern and status code.",
            ),
            &["surface", "route", "status"],
        )?;

        registry.register(Box::new(operations_total.clone()))?;
        registry.register(Box::new(operation_duration.clone()))?;
        registry.register(Box::new(health_observations.clone()))?;
        registry.register(Box::new(health_changes.clone()))?;
        registry.register(Box::new(games.clone()))?;
        registry.register(Box::new(lobby_lag.clone()))?;
        registry.register(Box::new(lobby_pending.clone()))?;
        registry.register(Box::new(lobby_dead_letters.clone()))?;
        registry.register(Box::new(health_outbox_pending.clone()))?;
        registry.register(Box::new(worker_runs.clone()))?;
        registry.register(Box::new(worker_last_run.clone()))?;
        registry.register(Box::new(worker_overruns.clone()))?;
        registry.register(Box::new(docker_calls.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;

        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "rtm_http_request_duration_seconds",
                "HTTP request latency, by surface, route pattern and status code.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["surface", "route", "status"],
        )?;
        let games_health = IntGaugeVec::new(
            Opts::new(
                "rtm_games_health",
                "Running games, by their current health (latest snapshot).",
            ),
            &["status"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "rtm_build_info",
                "Always 1; labels describe the running build.",
            ),
            &["version", "profile"],
        )?;
        let worker_leader = IntGaugeVec::new(
            Opts::new(
                "rtm_worker_leader",
                "1 while this replica leads the worker, else 0.",
            ),
            &["worker"],
        )?;
        let events_connected = IntGauge::new(
            "rtm_docker_events_connected",
            "1 while this replica's Docker event subscription is open, else 0.",
        )?;
        let events_resubscriptions = IntCounter::new(
            "rtm_docker_events_resubscriptions_total",
            "Docker event subscriptions opened again after the stream ended.",
        )?;
        let lobby_oldest_age = Gauge::new(
            "rtm_lobby_oldest_age_seconds",
            "Age of the oldest Lobby entry not yet handled (pending or undelivered); 0 when none.",
        )?;
        let dependency_errors = IntCounterVec::new(
            Opts::new(
                "rtm_dependency_errors_total",
                "Errors from PostgreSQL, Redis and Docker, by dependency and kind.",
            ),
            &["dependency", "kind"],
        )?;
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "rtm_retention_deleted_total",
                "What the retention pass deleted: operation rows, removed games, state directories.",
            ),
            &["what"],
        )?;
        let process_rss = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?;
        let process_cpu = Counter::new(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds.",
        )?;
        let process_fds = IntGauge::new("process_open_fds", "Open file descriptors.")?;
        let process_start = Gauge::new(
            "process_start_time_seconds",
            "Unix time this metrics registry (the process) started.",
        )?;
        for c in [
            Box::new(http_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(games_health.clone()),
            Box::new(build_info.clone()),
            Box::new(worker_leader.clone()),
            Box::new(events_connected.clone()),
            Box::new(events_resubscriptions.clone()),
            Box::new(lobby_oldest_age.clone()),
            Box::new(dependency_errors.clone()),
            Box::new(retention_deleted.clone()),
            Box::new(process_rss.clone()),
            Box::new(process_cpu.clone()),
            Box::new(process_fds.clone()),
            Box::new(process_start.clone()),
        ] {
            registry.register(c)?;
        }
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ])
            .set(1);
        process_start.set(unix_now());
        for status in HealthStatus::ALL {
            games_health.with_label_values(&[status.as_str()]).set(0);
        }
        for worker in WORKERS {
            worker_leader.with_label_values(&[worker]).set(0);
        }
        for what in RETENTION_KINDS {
            retention_deleted.with_label_values(&[what]);
        }
        let errors_seen = error_counts();
        for (dependency, kind, _) in &errors_seen {
            dependency_errors.with_label_values(&[dependency, kind]);
        }

        // Series of closed vocabularies start at zero, so dashboards and
        // `rate()` see them before the first event.
        for status in RuntimeStatus::ALL {
            games.with_label_values(&[status.as_str()]).set(0);
        }
        for status in HealthStatus::ALL {
            health_observations.with_label_values(&[status.as_str()]);
            health_changes.with_label_values(&[status.as_str()]);
        }

        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                operations_total,
                operation_duration,
                health_observations,
                health_changes,
                games,
                lobby_lag,
                lobby_pending,
                lobby_dead_letters,
                health_outbox_pending,
                worker_runs,
                worker_last_run,
                worker_overruns,
                docker_calls,
                http_requests,
                http_duration,
                games_health,
                worker_leader,
                events_connected,
                events_resubscriptions,
                lobby_oldest_age,
                dependency_errors,
                errors_seen: std::sync::Mutex::new(errors_seen),
                retention_deleted,
                process_rss,
                process_cpu,
                process_fds,
            }),
        })
    }

    /// The registry, to add collectors of other components.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let families = self.inner.registry.gather();
        let mut buf = Vec::new();
        TextEncoder::new().encode(&families, &mut buf)?;
        // The text encoder writes UTF-8 only; a failure here would be a bug
        // in the encoder, reported rather than panicking.
        String::from_utf8(buf)
            .map_err(|e| MetricsError(prometheus::Error::Msg(format!("non-UTF-8 output: {e}"))))
    }

    /// The content type of [`render`](Self::render)'s output.
    pub fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }

    /// Sets `rtm_games{status}` from a count per status (statuses missing
    /// from `counts` are set to 0).
    pub fn set_games(&self, counts: &[(RuntimeStatus, u64)]) {
        for status in RuntimeStatus::ALL {
            let n = counts
                .iter()
                .filter(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .sum::<u64>();
            self.inner
                .games
                .with_label_values(&[status.as_str()])
                .set(saturating_i64(n));
        }
    }

    /// Sets `rtm_games_health{status}` from a count per health status
    /// (statuses missing from `counts` are set to 0).
    pub fn set_games_health(&self, counts: &[(HealthStatus, u64)]) {
        for status in HealthStatus::ALL {
            let n = counts
                .iter()
                .filter(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .sum::<u64>();
            self.inner
                .games_health
                .with_label_values(&[status.as_str()])
                .set(saturating_i64(n));
        }
    }

    /// `rtm_lobby_oldest_age_seconds` (`None`: nothing waits, 0).
    pub fn set_lobby_oldest_age(&self, age: Option<Duration>) {
        self.inner
            .lobby_oldest_age
            .set(age.map_or(0.0, |a| a.as_secs_f64()));
    }

    /// `rtm_worker_leader{worker}`.
    pub fn set_leader(&self, worker: &'static str, leading: bool) {
        self.inner
            .worker_leader
            .with_label_values(&[worker])
            .set(i64::from(leading));
    }

    /// Adds what a retention pass deleted.
    pub fn retention_deleted(&self, operations: u64, games: u64, states: u64) {
        for (what, n) in [
            ("operations", operations),
            ("games", games),
            ("states", states),
        ] {
            self.inner
                .retention_deleted
                .with_label_values(&[what])
                .inc_by(n);
        }
    }

    /// Brings `rtm_dependency_errors_total` up to the adapters' counters.
    pub fn refresh_dependency_errors(&self) {
        let now = error_counts();
        let Ok(mut seen) = self.inner.errors_seen.lock() else {
            return;
        };
        for ((dependency, kind, n), (_, _, before)) in now.iter().zip(seen.iter()) {
            self.inner
                .dependency_errors
                .with_label_values(&[dependency, kind])
                .inc_by(n.saturating_sub(*before));
        }
        *seen = now;
    }

    /// Reads this process's RSS, CPU time and open descriptors from
    /// `/proc/self` (Linux; elsewhere the gauges stay at 0).
    pub fn refresh_process(&self) {
        if let Some(p) = read_proc_self() {
            self.inner.process_rss.set(saturating_i64(p.rss_bytes));
            let delta = p.cpu_seconds - self.inner.process_cpu.get();
            if delta > 0.0 {
                self.inner.process_cpu.inc_by(delta);
            }
            self.inner.process_fds.set(saturating_i64(p.open_fds));
        }
    }

    /// `rtm_lobby_lag` and `rtm_lobby_pending`.
    pub fn set_lobby_backlog(&self, lag: u64, pending: u64) {
        self.inner.lobby_lag.set(saturating_i64(lag));
        self.inner.lobby_pending.set(saturating_i64(pending));
    }

    /// One more entry in the Lobby dead-letter stream.
    pub fn lobby_dead_letter(&self) {
        self.inner.lobby_dead_letters.inc();
    }

    /// `rtm_health_outbox_pending`.
    pub fn set_health_outbox_pending(&self, n: u64) {
        self.inner.health_outbox_pending.set(saturating_i64(n));
    }

    /// Counts a worker run; a run that did work (`Ok`) also stamps
    /// `rtm_worker_last_run_timestamp_seconds`.
    pub fn worker_run(&self, worker: &'static str, result: WorkerResult) {
        self.inner
            .worker_runs
            .with_label_values(&[worker, result.as_str()])
            .inc();
        if result == WorkerResult::Ok {
            let now = unix_now();
            self.inner
                .worker_last_run
                .with_label_values(&[worker])
                .set(now);
        }
    }

    /// Counts a periodic pass that overran its interval.
    pub fn worker_overrun(&self, worker: &'static str) {
        self.inner
            .worker_overruns
            .with_label_values(&[worker])
            .inc();
    }

    /// Counts the Docker calls one pass made (`call`: `list`, `inspect`,
    /// …), so a dashboard shows that a pass costs O(changes).
    pub fn docker_calls(&self, pass: &'static str, call: &'static str, n: u64) {
        self.inner
            .docker_calls
            .with_label_values(&[pass, call])
            .inc_by(n);
    }

    /// Counts an HTTP request and its latency. `route` is the matched
    /// route *pattern* (e.g. `/api/v1/runtimes/{game_id}`), never the raw
    /// path.
    pub fn http_request(&self, surface: &'static str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [surface, route, status.as_str()];
        self.inner.http_requests.with_label_values(&labels).inc();
        self.inner
            .http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Every adapter's error counters as `(dependency, kind, count)`.
fn error_counts() -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    out.extend(rtm_postgres::error_counts().map(|(k, n)| ("postgres", k, n)));
    out.extend(rtm_redis::error_counts().map(|(k, n)| ("redis", k, n)));
    out.extend(rtm_docker::error_counts().map(|(k, n)| ("docker", k, n)));
    out
}

/// What `/proc/self` says about this process.
struct ProcSelf {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
}

/// Linux reports CPU times in `USER_HZ` ticks, which the kernel ABI fixes
/// at 100 per second for user space on every architecture Rust targets
/// (`sysconf(_SC_CLK_TCK)` answers 100), so no libc call is needed.
const USER_HZ: f64 = 100.0;

fn read_proc_self() -> Option<ProcSelf> {
    // RSS from `status` (kB, no page-size lookup needed).
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    // utime and stime are fields 14 and 15 of `stat`; the command name
    // (field 2) may hold spaces, so count from its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // After the name, field 3 (state) is index 0, so field n is n - 3.
    let cpu_ticks = ticks(14 - 3)? + ticks(15 - 3)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcSelf {
        rss_bytes: rss_kb * 1024,
        cpu_seconds: cpu_ticks as f64 / USER_HZ,
        open_fds,
    })
}

impl Telemetry for Metrics {
    fn operation_finished(
        &self,
        kind: OpKind,
        source: OpSource,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        self.inner
            .operations_total
            .with_label_values(&[kind.as_str(), source.as_str(), outcome.as_str()])
            .inc();
        self.inner
            .operation_duration
            .with_label_values(&[kind.as_str(), outcome.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    fn events_stream(&self, connected: bool) {
        self.inner.events_connected.set(i64::from(connected));
    }

    fn events_resubscribed(&self) {
        self.inner.events_resubscriptions.inc();
    }

    fn health_observed(&self, status: HealthStatus, changed: bool) {
        self.inner
            .health_observations
            .with_label_values(&[status.as_str()])
            .inc();
        if changed {
            self.inner
                .health_changes
                .with_label_values(&[status.as_str()])
                .inc();
        }
    }

    fn runtime_calls(&self, pass: &'static str, call: &'static str, n: u64) {
        self.docker_calls(pass, call, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn telemetry_hooks_feed_the_metrics() {
        let m = Metrics::new().expect("metrics");
        m.operation_finished(
            OpKind::Start,
            OpSource::GmRest,
            Outcome::Success,
            Duration::from_millis(30),
        );
        m.operation_finished(
            OpKind::Start,
            OpSource::GmRest,
            Outcome::Success,
            Duration::from_millis(70),
        );
        m.health_observed(HealthStatus::Healthy, false);
        m.health_observed(HealthStatus::Exited, true);
        let text = m.render().expect("render");
        assert_eq!(
            line_value(
                &text,
                r#"rtm_operations_total{op_kind="start",op_source="gm_rest",outcome="success"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"rtm_operation_duration_seconds_bucket{op_kind="start",outcome="success",le="0.05"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"rtm_operation_duration_seconds_count{op_kind="start",outcome="success"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(&text, r#"rtm_health_observations_total{status="healthy"}"#),
            Some(1.0)
        );
        assert_eq!(
            line_value(&text, r#"rtm_health_changes_total{status="healthy"}"#),
            Some(0.0)
        );
        assert_eq!(
            line_value(&text, r#"rtm_health_changes_total{status="exited"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn gauges_and_counters_render() {
        let m = Metrics::new().expect("metrics");
        m.set_games(&[(RuntimeStatus::Running, 7), (RuntimeStatus::Stopped, 2)]);
        m.set_lobby_backlog(4, 1);
        m.lobby_dead_letter();
        m.set_health_outbox_pending(9);
        m.worker_run("reconcile", WorkerResult::Ok);
        m.worker_run("reconcile", WorkerResult::NotLeader);
        m.worker_overrun("probe");
        m.docker_calls("inspect", "list", 1);
        m.docker_calls("inspect", "inspect", 2);
        m.http_request(
            "gm",
            "/api/v1/runtimes/{game_id}",
            404,
            Duration::from_millis(3),
        );
        m.set_games_health(&[(HealthStatus::Healthy, 5), (HealthStatus::ProbeFailed, 1)]);
        m.set_leader("reconcile", true);
        m.set_lobby_oldest_age(Some(Duration::from_millis(2500)));
        m.events_stream(true);
        m.events_resubscribed();
        m.retention_deleted(7, 1, 0);
        m.refresh_process();
        let text = m.render().expect("render");
        for (series, value) in [
            (r#"rtm_games{status="running"}"#, 7.0),
            (r#"rtm_games{status="stopped"}"#, 2.0),
            (r#"rtm_games{status="removed"}"#, 0.0),
            ("rtm_lobby_lag", 4.0),
            ("rtm_lobby_pending", 1.0),
            ("rtm_lobby_dead_letters_total", 1.0),
            ("rtm_health_outbox_pending", 9.0),
            (
                r#"rtm_worker_runs_total{result="ok",worker="reconcile"}"#,
                1.0,
            ),
            (
                r#"rtm_worker_runs_total{result="not_leader",worker="reconcile"}"#,
                1.0,
            ),
            (r#"rtm_worker_overruns_total{worker="probe"}"#, 1.0),
            (r#"rtm_docker_calls_total{call="list",pass="inspect"}"#, 1.0),
            (
                r#"rtm_docker_calls_total{call="inspect",pass="inspect"}"#,
                2.0,
            ),
            (
                r#"rtm_http_requests_total{route="/api/v1/runtimes/{game_id}",status="404",surface="gm"}"#,
                1.0,
            ),
            (
                r#"rtm_http_request_duration_seconds_bucket{route="/api/v1/runtimes/{game_id}",status="404",surface="gm",le="0.005"}"#,
                1.0,
            ),
            (
                r#"rtm_http_request_duration_seconds_bucket{route="/api/v1/runtimes/{game_id}",status="404",surface="gm",le="0.0025"}"#,
                0.0,
            ),
            (r#"rtm_games_health{status="healthy"}"#, 5.0),
            (r#"rtm_games_health{status="probe_failed"}"#, 1.0),
            (r#"rtm_games_health{status="exited"}"#, 0.0),
            (r#"rtm_worker_leader{worker="reconcile"}"#, 1.0),
            (r#"rtm_worker_leader{worker="events"}"#, 0.0),
            ("rtm_lobby_oldest_age_seconds", 2.5),
            ("rtm_docker_events_connected", 1.0),
            ("rtm_docker_events_resubscriptions_total", 1.0),
            (r#"rtm_retention_deleted_total{what="operations"}"#, 7.0),
            (r#"rtm_retention_deleted_total{what="states"}"#, 0.0),
        ] {
            assert_eq!(line_value(&text, series), Some(value), "{series}\n{text}");
        }
        let build = format!(
            r#"rtm_build_info{{profile="debug",version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(line_value(&text, &build), Some(1.0), "{text}");
        for series in ["process_resident_memory_bytes", "process_open_fds"] {
            let v = line_value(&text, series).unwrap_or_default();
            assert!(v > 0.0, "{series} = {v}\n{text}");
        }
        assert!(line_value(&text, "process_cpu_seconds_total").is_some_and(|v| v >= 0.0));
        for dep in ["postgres", "redis", "docker"] {
            assert!(
                text.contains(&format!(
                    r#"rtm_dependency_errors_total{{dependency="{dep}",kind="unavailable"}}"#
                )),
                "{dep}\n{text}"
            );
        }
        let stamp = line_value(
            &text,
            r#"rtm_worker_last_run_timestamp_seconds{worker="reconcile"}"#,
        )
        .expect("stamped");
        assert!(stamp > 1.6e9, "{stamp}");
        assert!(Metrics::content_type().starts_with("text/plain"));
    }

    #[test]
    fn registries_are_independent() {
        let a = Metrics::new().expect("a");
        let b = Metrics::new().expect("b");
        a.lobby_dead_letter();
        let text = b.render().expect("render");
        assert_eq!(line_value(&text, "rtm_lobby_dead_letters_total"), Some(0.0));
    }
}
