//! End-to-end tests of the operational contract (SPEC §9, §10): bad
//! configuration stops the binary with one message per bad variable;
//! `/healthz`, `/readyz` and `/metrics`; PostgreSQL and Redis outages are
//! reported and recovered from without a restart and without losing work;
//! graceful shutdown (in-process and of the real binary on SIGTERM); two
//! replicas sharing one database never double-execute anything.

mod binary;
mod metrics;
mod outages;
mod proxy;
mod replicas;
mod retention;
mod shutdown;

use std::time::Duration;

use crate::support::*;

/// A game id unique to this run: container names (`rtm-<game_id>`) are
/// global on the shared Docker engine, whatever the owner label, so two
/// tests (or two test processes) must never use the same game id.
pub fn game(name: &str) -> String {
    rtm_testkit::unique(name)
}

/// `GET <base>/readyz`: `(status, body)`.
pub async fn readyz(base: &str) -> (u16, serde_json::Value) {
    call("GET", &format!("{base}/readyz"), None, None, &[]).await
}

/// `GET <base>/metrics` as text.
pub async fn metrics_text(base: &str) -> String {
    let (status, text) = call_raw("GET", &format!("{base}/metrics"), None, None, &[]).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of one series in a Prometheus text exposition, e.g.
/// `rtm_worker_runs_total{result="ok",worker="probe"}`; `None` when absent.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `rtm_worker_runs_total{result="ok",worker=<worker>}` (0 when absent).
pub async fn worker_runs(base: &str, worker: &str) -> f64 {
    let text = metrics_text(base).await;
    series(
        &text,
        &format!(r#"rtm_worker_runs_total{{result="ok",worker="{worker}"}}"#),
    )
    .unwrap_or(0.0)
}

/// Waits until `/readyz` answers `status`; returns the body.
pub async fn wait_readyz(base: &str, status: u16, timeout: Duration) -> serde_json::Value {
    wait_for(&format!("/readyz {status}"), timeout, || async {
        let (s, body) = readyz(base).await;
        (s == status).then_some(body)
    })
    .await
}

/// True when nothing accepts TCP connections at `addr` any more.
pub async fn refuses(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Err(_))
    )
}
