//! [`Metrics::new`]: every metric the service exports, created and
//! registered in a fresh registry, with the series of closed vocabularies
//! created at zero.

use super::process::{error_counts, unix_now};
use super::*;

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
}
