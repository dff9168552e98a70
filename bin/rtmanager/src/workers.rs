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
use std::time::Duration;

use rtm_domain::ports::{LeaderElection, LeaderLease};
use tokio::sync::{watch, Notify};
// tokio's clock, so tests can run the schedule on paused time.
use tokio::time::Instant;
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
        self.sleep_until(Instant::now() + d).await
    }

    /// Sleeps until `deadline` unless shutdown comes first; returns false
    /// on shutdown.
    pub async fn sleep_until(&mut self, deadline: Instant) -> bool {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => !self.is_triggered(),
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

    /// A pass lasted beyond its slot, so the next one starts late (at once,
    /// when this one ends).
    fn pass_overran(&self, _worker: &'static str) {}
    /// This replica started (`true`) or stopped (`false`) leading `worker`.
    fn leading(&self, _worker: &'static str, _leading: bool) {}
}

/// The fixed-rate schedule of a periodic worker.
///
/// Pass `k + 1` starts `interval` (± `jitter / 2`) after pass `k`
/// *started*, whatever the pass lasted, so the cadence does not drift by
/// the pass's own duration (a probe pass lasts most of its interval: with
/// a sleep *after* each pass, every game was probed every ~1.8 intervals).
/// A pass that overruns its slot delays the next one, which starts as
/// soon as it ends; missed slots are not made up in a burst (the
/// behaviour of tokio's `MissedTickBehavior::Delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cadence {
    interval: Duration,
    jitter: Duration,
}

impl Cadence {
    /// When the pass after one that started at `started` begins, given the
    /// time `now` it ended and this slot's jitter draw `spread` in
    /// `[0, jitter)`; and whether it overran (ended after that time).
    fn next(&self, started: Instant, spread: Duration, now: Instant) -> (Instant, bool) {
        // Centre the jitter on the interval so the mean period is exact.
        let half = (self.jitter / 2).min(self.interval);
        let slot = self.interval - half + spread.min(self.jitter);
        let due = started + slot;
        if now > due {
            (now, true)
        } else {
            (due, false)
        }
    }
}

/// Runs `pass` at a fixed rate of one per `interval` while this replica
/// leads `role`: a pass starts an interval after the previous one
/// started; an overrun delays the next pass, never bursts.
///
/// `jitter` spreads the passes of many replicas and keeps a fleet from
/// beating in phase: each period is `interval` ± `jitter / 2`. A `wake`
/// signal starts a pass at once (a permit left while a pass runs starts
/// the next pass as soon as it ends); the schedule then counts from it.
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
    let cadence = Cadence { interval, jitter };
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
            let (due, overran) = cadence.next(started, spread(role, tick, jitter), Instant::now());
            if overran {
                observer.pass_overran(role);
                debug!(
                    worker = role,
                    ms = elapsed.as_millis() as u64,
                    "pass overran its interval; the next one starts now"
                );
            }
            let go_on = match &wake {
                Some(wake) => tokio::select! {
                    go_on = shutdown.sleep_until(due) => go_on,
                    () = wake.notified() => !shutdown.is_triggered(),
                },
                None => shutdown.sleep_until(due).await,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rtm_domain::StoreError;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_next_pass_counts_from_the_start_of_the_previous_one() {
        let c = Cadence {
            interval: SECOND,
            jitter: Duration::ZERO,
        };
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // A pass that used 400 ms of its slot leaves 600 ms, not 1 s.
        assert_eq!(
            c.next(t0, Duration::ZERO, t0 + ms(400)),
            (t0 + SECOND, false)
        );
        // Ending exactly on time is not an overrun.
        assert_eq!(
            c.next(t0, Duration::ZERO, t0 + SECOND),
            (t0 + SECOND, false)
        );
        // An overrun: the next pass starts when this one ends, not earlier.
        assert_eq!(
            c.next(t0, Duration::ZERO, t0 + ms(2500)),
            (t0 + ms(2500), true)
        );
    }

    #[test]
    fn jitter_is_centred_on_the_interval() {
        let c = Cadence {
            interval: SECOND,
            jitter: Duration::from_millis(100),
        };
        let t0 = Instant::now();
        let (early, _) = c.next(t0, Duration::ZERO, t0);
        let (late, _) = c.next(t0, Duration::from_millis(99), t0);
        assert_eq!(early - t0, Duration::from_millis(950));
        assert_eq!(late - t0, Duration::from_millis(1049));
        // A draw out of range is clamped to the window.
        let (clamped, _) = c.next(t0, Duration::from_secs(9), t0);
        assert_eq!(clamped - t0, Duration::from_millis(1050));
        // The draws of many ticks average to the interval: no drift.
        let n: u32 = 1000;
        let total: Duration = (0..u64::from(n))
            .map(|tick| c.next(t0, spread("probe", tick, c.jitter), t0).0 - t0)
            .sum();
        let mean = total / n;
        assert!(
            mean > Duration::from_millis(990) && mean < Duration::from_millis(1010),
            "mean period {mean:?}"
        );
    }

    /// A leader that always leads.
    struct Always;
    struct Held;

    impl LeaderLease for Held {
        async fn is_held(&self) -> bool {
            true
        }
        async fn release(self) {}
    }

    impl LeaderElection for Always {
        type Lease = Held;
        async fn try_acquire(&self, _role: &str) -> Result<Option<Held>, StoreError> {
            Ok(Some(Held))
        }
    }

    #[derive(Clone, Default)]
    struct Overruns(Arc<Mutex<Vec<&'static str>>>);

    impl PassObserver for Overruns {
        fn pass_finished(&self, _: &'static str, _: bool, _: Duration) {}
        fn pass_overran(&self, worker: &'static str) {
            self.0.lock().unwrap().push(worker);
        }
    }

    /// Runs `periodic` on paused time with passes lasting `durations` (in
    /// ms) and returns when each pass started, in ms after the first.
    async fn run(durations: &'static [u64], wake: Option<Arc<Notify>>) -> (Vec<u64>, Overruns) {
        let (trigger, shutdown) = shutdown_pair();
        let trigger = Arc::new(trigger);
        let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let observer = Overruns::default();
        let pass = {
            let starts = starts.clone();
            let trigger = trigger.clone();
            move || {
                let starts = starts.clone();
                let trigger = trigger.clone();
                async move {
                    let n = {
                        let mut s = starts.lock().unwrap();
                        s.push(Instant::now());
                        s.len()
                    };
                    tokio::time::sleep(Duration::from_millis(durations[n - 1])).await;
                    if n == durations.len() {
                        trigger.trigger();
                    }
                    Ok(String::new())
                }
            }
        };
        periodic(
            "test",
            Always,
            SECOND,
            Duration::ZERO,
            wake,
            shutdown,
            observer.clone(),
            pass,
        )
        .await;
        let starts = starts.lock().unwrap();
        let t0 = starts[0];
        let ms = starts
            .iter()
            .map(|s| u64::try_from((*s - t0).as_millis()).unwrap())
            .collect();
        (ms, observer)
    }

    #[tokio::test(start_paused = true)]
    async fn passes_run_at_a_fixed_rate_and_an_overrun_delays_without_a_burst() {
        let (starts, overruns) = run(&[300, 300, 2500, 300, 900, 100], None).await;
        // Fixed rate from each start; the 2.5 s pass pushes the next one to
        // its end (4.5 s), and the schedule goes on from there: the two
        // missed slots are not made up.
        assert_eq!(starts, vec![0, 1000, 2000, 4500, 5500, 6500]);
        assert_eq!(*overruns.0.lock().unwrap(), vec!["test"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_starts_a_pass_at_once() {
        let wake = Arc::new(Notify::new());
        // A permit left before the first pass ends starts the second pass
        // as soon as the first one ends.
        wake.notify_one();
        let (starts, overruns) = run(&[200, 200, 200], Some(wake)).await;
        assert_eq!(starts, vec![0, 200, 1200]);
        assert!(overruns.0.lock().unwrap().is_empty());
    }
}
