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
use std::time::Duration;

use prometheus::{
    Counter, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rtm_domain::ports::Telemetry;
use rtm_domain::{HealthStatus, OpKind, OpSource, Outcome, RuntimeStatus};

mod build;
mod process;
mod record;

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
mod tests;
