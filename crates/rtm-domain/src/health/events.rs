//! The `docker_event` source: turning container events into observations,
//! and following the event stream across broken connections.
//!
//! Docker keeps only its last events and its stream neither reconnects nor
//! resumes, so [`HealthMonitor::follow_events`] subscribes *first*, then
//! runs an inspect pass (which catches whatever happened before the
//! subscription), then handles events. When the stream breaks it backs
//! off, resubscribes with `since` = the last event time it saw, and
//! inspects again. `since` has one-second precision, so the replay repeats
//! events already handled; a bounded set of recent `(container, kind,
//! time)` keys drops them. Only events up to the resume point can be
//! replays, so only those are checked: a live event is never dropped.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use time::OffsetDateTime;

use super::{HealthError, HealthMonitor, IgnoreReason, Observation, ObserveOutcome, SIGKILL_EXIT};
use crate::ports::{
    Clock, ContainerEvent, ContainerEventKind, ContainerRuntime, DockerHealth, Ports, Telemetry,
};
use crate::{ContainerId, GameId, HealthDetails, HealthSource, HealthStatus, RuntimeError};

/// What [`HealthMonitor::follow_events`] did before it was shut down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFollowerStats {
    /// Subscriptions opened (the first one included).
    pub subscriptions: u32,
    /// Events handled.
    pub handled: u64,
    /// Replayed events dropped as already seen.
    pub duplicates: u64,
    /// Events whose handling failed (busy game, database error); the
    /// inspect pass catches up on them.
    pub failed: u64,
}

/// The identity of an event for replay detection.
type EventKey = (String, String, i128);

fn event_key(e: &ContainerEvent) -> EventKey {
    (
        e.container_id.as_str().to_owned(),
        format!("{:?}", e.kind),
        e.at.unix_timestamp_nanos(),
    )
}

/// A bounded set of recently seen events (oldest forgotten first). A key
/// is `(container, kind with its exit code or health, nanosecond time)`.
#[derive(Debug)]
struct RecentEvents {
    capacity: usize,
    order: VecDeque<EventKey>,
    set: HashSet<EventKey>,
}

impl RecentEvents {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Remembers `key`; false when it was already there (a replay).
    fn insert(&mut self, key: EventKey) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

impl<P: Ports> HealthMonitor<P> {
    /// Handles one container event.
    ///
    /// - `die`: judged from the events alone, and committed at once: an
    ///   `oom` event for the container within
    ///   [`oom_window`](super::HealthConfig::oom_window) before it → `oom`;
    ///   an exit code other than 137 → `exited` with that code. Only 137
    ///   without a preceding `oom` (a SIGKILL, or an OOM kill whose `oom`
    ///   event was missed) is ambiguous: the container is inspected,
    ///   `OOMKilled` → `oom`, otherwise `exited`; running again → ignored
    ///   (restarted since); gone → `exited` with the event's code.
    /// - `oom` alone is not an exit: remembered briefly, not recorded.
    /// - `destroy` → `container_disappeared`.
    /// - `health_status: unhealthy` → `inspect_unhealthy`; other health
    ///   statuses lift Docker's veto on probe results.
    /// - `start`: resets the container's probe failure count.
    ///
    /// `Ok(None)` when the event leads to no observation.
    pub async fn handle_event(
        &self,
        event: ContainerEvent,
    ) -> Result<Option<ObserveOutcome>, HealthError> {
        let Some(game_id) = event.game_id.clone() else {
            return Ok(Some(ObserveOutcome::Ignored(IgnoreReason::Unknown)));
        };
        let id = event.container_id.clone();
        let (status, details) = match event.kind {
            ContainerEventKind::Start => {
                let mut s = self.state();
                if s.probes.get(&game_id).is_some_and(|c| c.container == id) {
                    s.probes.remove(&game_id);
                }
                // Docker restarts its health check with the process.
                s.docker_unhealthy.remove(&id);
                return Ok(None);
            }
            ContainerEventKind::Oom => {
                let window = self.config.oom_window;
                let mut s = self.state();
                s.ooms.retain(|_, at| *at + window >= event.at);
                s.ooms.insert(id, event.at);
                return Ok(None);
            }
            ContainerEventKind::Health(DockerHealth::Unhealthy) => {
                self.state().docker_unhealthy.insert(id.clone());
                (
                    HealthStatus::InspectUnhealthy,
                    HealthDetails::new().with("docker_health", "unhealthy"),
                )
            }
            ContainerEventKind::Health(DockerHealth::Healthy | DockerHealth::Starting) => {
                self.state().docker_unhealthy.remove(&id);
                return Ok(None);
            }
            ContainerEventKind::Destroy => {
                {
                    let mut s = self.state();
                    s.docker_unhealthy.remove(&id);
                    s.ooms.remove(&id);
                }
                (
                    HealthStatus::ContainerDisappeared,
                    HealthDetails::new().with("reason", "container destroyed"),
                )
            }
            ContainerEventKind::Die { exit_code } => {
                let window = self.config.oom_window;
                let oom_seen = self
                    .state()
                    .ooms
                    .get(&id)
                    .is_some_and(|at| *at <= event.at && *at + window >= event.at);
                match (oom_seen, exit_code) {
                    // Docker emits `oom` before the `die` of an OOM kill.
                    (true, _) => (HealthStatus::Oom, exit_details(exit_code)),
                    // Only a SIGKILL gives 137 (an OOM kill is one), so any
                    // other code is a plain exit: the event says it all.
                    (false, Some(code)) if code != SIGKILL_EXIT => {
                        (HealthStatus::Exited, exit_details(exit_code))
                    }
                    // 137 without an `oom` before it: a SIGKILL, or an OOM
                    // kill whose `oom` event this follower did not see
                    // (lost by Docker, or before the subscription). Only
                    // `OOMKilled` tells them apart; never guess from 137.
                    (false, _) => match self.die_by_inspect(&id, exit_code).await {
                        Some(judged) => judged,
                        None => return Ok(Some(ObserveOutcome::Ignored(IgnoreReason::Restarted))),
                    },
                }
            }
        };
        let outcome = self
            .observe(Observation {
                game_id,
                container_id: event.container_id,
                status,
                source: HealthSource::DockerEvent,
                details,
                observed_at: event.at,
            })
            .await?;
        Ok(Some(outcome))
    }

    /// Whether `event` is a `die` only `OOMKilled` can explain (137, or
    /// no code) with no `oom` seen before it.
    fn is_unexplained_kill(&self, event: &ContainerEvent) -> bool {
        let ContainerEventKind::Die { exit_code } = event.kind else {
            return false;
        };
        if exit_code.is_some_and(|code| code != SIGKILL_EXIT) {
            return false;
        }
        let window = self.config.oom_window;
        !self
            .state()
            .ooms
            .get(&event.container_id)
            .is_some_and(|at| *at <= event.at && *at + window >= event.at)
    }

    /// Judges an ambiguous `die` by inspecting the container: `None` when
    /// it runs again (restarted since the event).
    async fn die_by_inspect(
        &self,
        id: &ContainerId,
        exit_code: Option<i64>,
    ) -> Option<(HealthStatus, HealthDetails)> {
        match self.adapters.runtime.inspect(id).await {
            Ok(info) if info.summary.running => None,
            Ok(info) => {
                let code = info.exit_code.or(exit_code);
                let status = if info.oom_killed {
                    HealthStatus::Oom
                } else {
                    HealthStatus::Exited
                };
                Some((status, exit_details(code)))
            }
            // Gone already (or Docker is failing right now): only an `oom`
            // event seen just before would make it an OOM, and that case
            // was decided without inspecting; so this is a plain exit.
            Err(e) => {
                tracing::debug!(error = %e, container = id.short(), "die not inspectable; judged from the event");
                Some((HealthStatus::Exited, exit_details(exit_code)))
            }
        }
    }

    /// Follows Docker's events until `shutdown` resolves (see the module
    /// docs). Never returns early: a broken stream is resubscribed with a
    /// bounded, growing back-off.
    pub async fn follow_events(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> EventFollowerStats {
        let mut follower = Follower {
            recent: RecentEvents::new(self.config.dedupe_capacity),
            since: None,
            replay_until: None,
            stats: EventFollowerStats::default(),
            delivered: false,
            held: Vec::new(),
        };
        {
            let work = pin!(self.follow_loop(&mut follower));
            let shutdown = pin!(shutdown);
            // Whichever finishes first; `follow_loop` never does on its own.
            let _ = select(work, shutdown).await;
        }
        // This replica no longer follows (shutdown or lost leadership).
        self.adapters.telemetry.events_stream(false);
        follower.stats
    }

    async fn follow_loop(&self, f: &mut Follower) {
        let mut backoff = self.config.resubscribe_min;
        loop {
            let mut stream = pin!(self.adapters.runtime.events(f.since));
            f.stats.subscriptions += 1;
            if f.stats.subscriptions > 1 {
                self.adapters.telemetry.events_resubscribed();
            }
            f.delivered = false;
            f.replay_until = f.since;
            // Subscribe first, then inspect: the stream is polled (so the
            // subscription is open) while the pass runs, and what it
            // delivers meanwhile is handled right after.
            let (buffered, open) = self.inspect_while_buffering(stream.as_mut()).await;
            // The subscription survived the inspect pass: it is connected
            // (a refused one ends at once, before this point).
            self.adapters.telemetry.events_stream(open);
            let mut broken = !open;
            for item in buffered {
                if !f.take(self, item).await {
                    broken = true;
                    break;
                }
            }
            if !broken {
                loop {
                    let item = match f.next_due() {
                        None => stream.next().await,
                        Some(due) => {
                            let wait = (due - self.adapters.clock.now())
                                .try_into()
                                .unwrap_or(Duration::ZERO);
                            match select(stream.next(), pin!(self.adapters.clock.sleep(wait))).await
                            {
                                Either::Left((item, _)) => item,
                                Either::Right(((), _)) => {
                                    f.judge_held(self, false).await;
                                    continue;
                                }
                            }
                        }
                    };
                    let Some(item) = item else { break };
                    if !f.take(self, item).await {
                        break;
                    }
                }
            }
            // What the stream can no longer explain is judged now.
            f.judge_held(self, true).await;
            self.adapters.telemetry.events_stream(false);
            if f.delivered {
                backoff = self.config.resubscribe_min;
            }
            tracing::info!(?backoff, "docker event stream ended; resubscribing");
            self.adapters.clock.sleep(backoff).await;
            backoff = next_backoff(backoff, self.config.resubscribe_max);
        }
    }

    /// Runs an inspect pass while collecting what the stream delivers.
    /// Returns the collected items and whether the stream is still open.
    async fn inspect_while_buffering<S>(&self, mut stream: Pin<&mut S>) -> (Vec<S::Item>, bool)
    where
        S: Stream,
    {
        let mut buffered = Vec::new();
        let mut inspect = pin!(self.inspect_pass());
        let result = loop {
            match select(inspect.as_mut(), stream.next()).await {
                Either::Left((result, _)) => break result,
                Either::Right((Some(item), _)) => buffered.push(item),
                Either::Right((None, _)) => {
                    let result = inspect.as_mut().await;
                    match result {
                        Ok(summary) => tracing::debug!(?summary, "inspect pass after subscribing"),
                        Err(e) => {
                            tracing::warn!(error = %e, "inspect pass after subscribing failed")
                        }
                    }
                    return (buffered, false);
                }
            }
        };
        match result {
            Ok(summary) => tracing::debug!(?summary, "inspect pass after subscribing"),
            Err(e) => tracing::warn!(error = %e, "inspect pass after subscribing failed"),
        }
        (buffered, true)
    }
}

/// The event follower's memory across subscriptions.
#[derive(Debug)]
struct Follower {
    recent: RecentEvents,
    /// The latest event time seen: where a resubscription resumes.
    since: Option<OffsetDateTime>,
    /// The resume point of the current subscription: events up to it may
    /// be replays.
    replay_until: Option<OffsetDateTime>,
    stats: EventFollowerStats,
    /// Whether the current subscription delivered anything.
    delivered: bool,
    /// `die`s with 137 and no `oom` before them, in arrival order, each
    /// with the time it is judged: Docker may emit the `oom` of an OOM
    /// kill just after its `die` (see the module docs of `health`).
    held: Vec<(ContainerEvent, OffsetDateTime)>,
}

impl Follower {
    /// Handles one stream item; false when the stream broke.
    async fn take<P: Ports>(
        &mut self,
        monitor: &HealthMonitor<P>,
        item: Result<ContainerEvent, RuntimeError>,
    ) -> bool {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "docker event stream failed");
                return false;
            }
        };
        self.delivered = true;
        // Only a resubscription's replay window can repeat events; live
        // events are never dropped, even if two share a key.
        let fresh = self.recent.insert(event_key(&event));
        let in_replay = self.replay_until.is_some_and(|until| event.at <= until);
        if in_replay && !fresh {
            self.stats.duplicates += 1;
            return true;
        }
        self.since = Some(self.since.map_or(event.at, |s| s.max(event.at)));
        self.stats.handled += 1;
        // A later event of a held container: the held `die` goes first, so
        // one container's events are judged in order (a late `oom` first
        // of all, so that it explains the `die`).
        if let Some(at) = self
            .held
            .iter()
            .position(|(held, _)| held.container_id == event.container_id)
        {
            let (die, _) = self.held.remove(at);
            if event.kind == ContainerEventKind::Oom {
                self.handle(monitor, event).await;
                self.handle(monitor, die).await;
                return true;
            }
            self.handle(monitor, die).await;
        }
        if monitor.is_unexplained_kill(&event) {
            let due = monitor.adapters.clock.now() + monitor.config.kill_grace;
            self.held.push((event, due));
            return true;
        }
        self.handle(monitor, event).await;
        true
    }

    async fn handle<P: Ports>(&mut self, monitor: &HealthMonitor<P>, event: ContainerEvent) {
        let game = event.game_id.clone();
        if let Err(e) = monitor.handle_event(event).await {
            self.stats.failed += 1;
            tracing::warn!(game_id = game.as_ref().map_or("", GameId::as_str), error = %e,
                "docker event not recorded; inspect will catch up");
        }
    }

    /// When the earliest held `die` is due.
    fn next_due(&self) -> Option<OffsetDateTime> {
        self.held.iter().map(|(_, due)| *due).min()
    }

    /// Judges the held `die`s that are due (all of them with `all`).
    async fn judge_held<P: Ports>(&mut self, monitor: &HealthMonitor<P>, all: bool) {
        let now = monitor.adapters.clock.now();
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, due)| all || *due <= now);
        self.held = wait;
        for (die, _) in due {
            self.handle(monitor, die).await;
        }
    }
}

fn next_backoff(current: Duration, max: Duration) -> Duration {
    current
        .saturating_mul(2)
        .min(max)
        .max(Duration::from_millis(1))
}

fn exit_details(code: Option<i64>) -> HealthDetails {
    match code {
        Some(code) => HealthDetails::new().with("exit_code", code),
        None => HealthDetails::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_events_forget_the_oldest() {
        let mut r = RecentEvents::new(2);
        let k = |n: i128| ("c".to_owned(), "Start".to_owned(), n);
        assert!(r.insert(k(1)));
        assert!(!r.insert(k(1)));
        assert!(r.insert(k(2)));
        assert!(r.insert(k(3)));
        assert!(r.insert(k(1)), "evicted, so new again");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let max = Duration::from_secs(30);
        let mut b = Duration::from_millis(500);
        for _ in 0..20 {
            b = next_backoff(b, max);
        }
        assert_eq!(b, max);
        assert_eq!(
            next_backoff(Duration::from_secs(1), max),
            Duration::from_secs(2)
        );
    }
}
