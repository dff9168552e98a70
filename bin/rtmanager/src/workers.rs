//! Background workers and their scheduling.
//!
//! Singleton workers (reconcile, TTL cleanup, inspect, probe, Docker
//! events, outbox relay) run on at most one replica: each loop holds a
//! leader lease for its role (a PostgreSQL session advisory lock on a
//! dedicated connection) and stops acting as soon as the lease may be lost.
//! A replica that is not the leader retries every few seconds, so a dead
//! leader's roles move within one retry period.
//!
//! Every loop ends promptly when the shutdown signal fires; a pass already
//! running is abandoned at its next await point, which is safe: every
//! operation commits atomically and the reconciler repairs the rest.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtm_domain::ports::{LeaderElection, LeaderLease};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

/// A cloneable shutdown signal: `true` once shutdown started.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending half: `trigger()` starts the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new signal pair.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown has been triggered (or the trigger dropped).
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleeps for `d` unless shutdown comes first; returns false on shutdown.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => !self.is_triggered(),
            () = self.wait() => false,
        }
    }
}

/// How often a follower retries for leadership, and how often a leader
/// re-checks its lease while a long-running task (the event follower) runs.
pub const LEADER_RETRY: Duration = Duration::from_secs(3);

/// What a periodic pass reports.
pub type PassResult = Result<String, String>;

/// Observes each pass and each change of leadership (metrics).
pub trait PassObserver: Send + Sync + 'static {
    fn pass_finished(&self, worker: &'static str, ok: bool, elapsed: Duration);
    /// This replica started (`true`) or stopped (`false`) leading `worker`.
    fn leading(&self, _worker: &'static str, _leading: bool) {}
}

/// Runs `pass` every `interval` while this replica leads `role`.
///
/// `jitter` spreads the passes of many replicas and keeps a fleet from
/// beating in phase: each sleep is `interval` plus up to `jitter`. A
/// `wake` signal cuts the sleep short (a permit left while a pass runs
/// starts the next pass at once).
#[allow(clippy::too_many_arguments)]
pub async fn periodic<L, F, Fut>(
    role: &'static str,
    leader: L,
    interval: Duration,
    jitter: Duration,
    wake: Option<Arc<Notify>>,
    mut shutdown: Shutdown,
    observer: impl PassObserver,
    mut pass: F,
) where
    L: LeaderElection,
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = PassResult> + Send,
{
    while !shutdown.is_triggered() {
        let Some(lease) = acquire(role, &leader, &mut shutdown).await else {
            return;
        };
        info!(worker = role, "leading");
        observer.leading(role, true);
        let mut tick: u64 = 0;
        loop {
            if !lease.is_held().await {
                warn!(worker = role, "leadership lost; standing by");
                break;
            }
            let started = Instant::now();
            let result = pass().await;
            let elapsed = started.elapsed();
            observer.pass_finished(role, result.is_ok(), elapsed);
            match result {
                Ok(summary) if summary.is_empty() => {}
                Ok(summary) => {
                    debug!(worker = role, %summary, ms = elapsed.as_millis() as u64, "pass")
                }
                Err(e) => warn!(worker = role, error = %e, "pass failed; retried next tick"),
            }
            tick = tick.wrapping_add(1);
            let pause = interval + spread(role, tick, jitter);
            let go_on = match &wake {
                Some(wake) => tokio::select! {
                    go_on = shutdown.sleep(pause) => go_on,
                    () = wake.notified() => !shutdown.is_triggered(),
                },
                None => shutdown.sleep(pause).await,
            };
            if !go_on {
                observer.leading(role, false);
                lease.release().await;
                return;
            }
        }
        observer.leading(role, false);
        lease.release().await;
    }
}

/// Runs the long-lived `task` while this replica leads `role`; the task
/// gets a future that completes on shutdown or when the lease is lost.
pub async fn long_running<L, F, Fut>(
    role: &'static str,
    leader: L,
    mut shutdown: Shutdown,
    observer: impl PassObserver,
    mut task: F,
) where
    L: LeaderElection,
    F: FnMut(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    while !shutdown.is_triggered() {
        let Some(lease) = acquire(role, &leader, &mut shutdown).await else {
            return;
        };
        info!(worker = role, "leading");
        observer.leading(role, true);
        let lease = std::sync::Arc::new(lease);
        let stop = {
            let lease = lease.clone();
            let mut shutdown = shutdown.clone();
            Box::pin(async move {
                loop {
                    if !shutdown.sleep(LEADER_RETRY).await {
                        return;
                    }
                    if !lease.is_held().await {
                        warn!(worker = role, "leadership lost; stopping");
                        return;
                    }
                }
            })
        };
        task(stop).await;
        observer.leading(role, false);
        if let Ok(lease) = std::sync::Arc::try_unwrap(lease) {
            lease.release().await;
        }
    }
}

/// Tries for leadership until it is granted or shutdown starts.
async fn acquire<L: LeaderElection>(
    role: &'static str,
    leader: &L,
    shutdown: &mut Shutdown,
) -> Option<L::Lease> {
    loop {
        match leader.try_acquire(role).await {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) => debug!(worker = role, "another replica leads"),
            Err(e) => warn!(worker = role, error = %e, "leader election failed"),
        }
        if !shutdown.sleep(LEADER_RETRY).await {
            return None;
        }
    }
}

/// A deterministic spread in `[0, jitter)` that differs by role and tick
/// (no random-number crate needed for de-phasing timers).
fn spread(role: &str, tick: u64, jitter: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (role, tick, std::process::id()).hash(&mut h);
    let frac = (h.finish() % 1000) as u32;
    jitter * frac / 1000
}
