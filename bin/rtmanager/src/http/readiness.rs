//! `GET /readyz`: is every dependency (PostgreSQL, Redis, Docker)
//! reachable right now?
//!
//! The checks themselves are injected ([`ReadinessProbe`]) so this module
//! knows no driver; the wiring provides a store ping, a Redis ping and a
//! Docker ping. Guarantees: checks run concurrently, each bounded by the
//! same short timeout (a hung dependency answers "timed out", it never
//! hangs the endpoint), and the answer is 200 only when every check passed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture};
use rtm_domain::error_chain;
use serde::Serialize;

/// The outcome of one dependency check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DependencyStatus {
    pub ok: bool,
    /// Why the check failed (short, no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Extra information (e.g. Lobby lag, outbox backlog) shown as-is.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl DependencyStatus {
    pub fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            details: serde_json::Map::new(),
        }
    }

    /// `ok` or `failed` with the error and its causes: drivers put the
    /// useful part in the source (tokio-postgres says only "db error" at
    /// the top, the server's "too many clients already" below), and an
    /// operator reading `/readyz` needs the cause.
    pub fn from_result<E: std::error::Error + 'static>(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::ok(),
            Err(e) => Self::failed(error_chain(&e)),
        }
    }

    /// Adds a detail (builder style).
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// One dependency check.
pub trait ReadinessProbe: Send + Sync {
    /// The dependency's name in the `/readyz` body (`postgres`, `redis`,
    /// `docker`).
    fn name(&self) -> &'static str;

    /// Checks the dependency once. The caller bounds it with a timeout.
    fn check(&self) -> BoxFuture<'_, DependencyStatus>;
}

/// A probe from a closure.
pub struct FnProbe<F> {
    name: &'static str,
    f: F,
}

impl<F> std::fmt::Debug for FnProbe<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnProbe").field("name", &self.name).finish()
    }
}

impl<F, Fut> ReadinessProbe for FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = DependencyStatus> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self) -> BoxFuture<'_, DependencyStatus> {
        Box::pin((self.f)())
    }
}

/// Wraps a closure returning a future into a probe, e.g.
/// `probe_fn("postgres", move || { let s = store.clone(); async move { DependencyStatus::from_result(s.ping().await) } })`.
pub fn probe_fn<F, Fut>(name: &'static str, f: F) -> Arc<dyn ReadinessProbe>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = DependencyStatus> + Send + 'static,
{
    Arc::new(FnProbe { name, f })
}

/// The set of checks `/readyz` runs.
#[derive(Clone)]
pub struct Readiness {
    probes: Vec<Arc<dyn ReadinessProbe>>,
    timeout: Duration,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.probes.iter().map(|p| p.name()).collect();
        f.debug_struct("Readiness")
            .field("probes", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `/readyz` body.
#[derive(Debug, Serialize)]
pub struct ReadinessReport {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// One entry per dependency, in probe order.
    pub dependencies: serde_json::Map<String, serde_json::Value>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// Default bound of each check: short, so a load balancer's own timeout
/// (often 5 s) never fires first.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new(probes: Vec<Arc<dyn ReadinessProbe>>, timeout: Duration) -> Self {
        Self { probes, timeout }
    }

    /// Runs every check concurrently, each bounded by the timeout.
    pub async fn report(&self) -> ReadinessReport {
        let timeout = self.timeout;
        let results = join_all(self.probes.iter().map(|p| async move {
            let started = Instant::now();
            let status = match tokio::time::timeout(timeout, p.check()).await {
                Ok(s) => s,
                Err(_) => {
                    DependencyStatus::failed(format!("timed out after {} ms", timeout.as_millis()))
                }
            };
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            (p.name(), status.with("latency_ms", elapsed_ms))
        }))
        .await;
        let ready = results.iter().all(|(_, s)| s.ok);
        let dependencies = results
            .into_iter()
            .map(|(name, s)| {
                // Serializing a struct of strings, bools and JSON values
                // cannot fail; `Null` keeps the report whole regardless.
                let v = serde_json::to_value(&s).unwrap_or(serde_json::Value::Null);
                (name.to_owned(), v)
            })
            .collect();
        ReadinessReport {
            status: if ready { "ready" } else { "not_ready" },
            dependencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_concurrently_and_are_bounded() {
        let readiness = Readiness::new(
            vec![
                probe_fn("postgres", || async { DependencyStatus::ok() }),
                probe_fn("redis", || async {
                    DependencyStatus::failed("connection refused").with("lag", 3)
                }),
                probe_fn("docker", std::future::pending::<DependencyStatus>),
            ],
            Duration::from_millis(50),
        );
        let report = readiness.report().await;
        assert!(!report.is_ready());
        let deps = serde_json::Value::Object(report.dependencies);
        assert_eq!(deps["postgres"]["ok"], true);
        assert!(deps["postgres"].get("error").is_none());
        assert_eq!(deps["redis"]["ok"], false);
        assert_eq!(deps["redis"]["error"], "connection refused");
        assert_eq!(deps["redis"]["lag"], 3);
        assert_eq!(deps["docker"]["ok"], false);
        assert_eq!(deps["docker"]["error"], "timed out after 50 ms");
    }

    #[test]
    fn a_failure_shows_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("FATAL: sorry, too many clients already")]
        struct Server;
        #[derive(Debug, thiserror::Error)]
        #[error("db error")]
        struct Driver(#[source] Server);
        #[derive(Debug, thiserror::Error)]
        #[error("database unavailable: {0}")]
        struct Port(#[source] Driver);
        let status = DependencyStatus::from_result(Err::<(), _>(Port(Driver(Server))));
        assert!(!status.ok);
        assert_eq!(
            status.error.as_deref(),
            Some("database unavailable: db error: FATAL: sorry, too many clients already")
        );
    }

    #[tokio::test]
    async fn all_ok_is_ready() {
        let readiness = Readiness::new(
            vec![probe_fn("postgres", || async { DependencyStatus::ok() })],
            DEFAULT_CHECK_TIMEOUT,
        );
        assert!(readiness.report().await.is_ready());
        assert!(Readiness::new(vec![], DEFAULT_CHECK_TIMEOUT)
            .report()
            .await
            .is_ready());
    }
}
