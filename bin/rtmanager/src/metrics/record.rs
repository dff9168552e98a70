//! The setters and counters the wiring, the workers and the HTTP layer
//! feed [`Metrics`] through (the domain's own hooks are the
//! [`Telemetry`](rtm_domain::ports::Telemetry) impl in the parent).

use super::process::{error_counts, read_proc_self, saturating_i64, unix_now};
use super::*;

impl Metrics {
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
