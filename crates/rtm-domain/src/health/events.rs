//! The `docker_event` source: turning container events into observations,
//! and following the runtime's event feed.
//!
//! The runtime keeps its feed connected by itself (reconnecting, resuming
//! and dropping replays are its business, behind the port): the follower
//! sees `Connected`, events, and `Lost` when the connection broke. After
//! every `Connected` it runs an inspect pass (which catches whatever
//! happened before the subscription or while it was lost) while the feed
//! keeps being read, then handles what arrived meanwhile.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use time::OffsetDateTime;

use super::{
    HealthError, HealthMonitor, IgnoreReason, Observation, ObserveOutcome, SIGKILL, SIGKILL_EXIT,
};
use crate::ports::{
    Clock, ContainerEvent, ContainerEventKind, ContainerRuntime, DockerHealth, FeedItem, Ports,
    Telemetry,
};
use crate::{ContainerId, GameId, HealthDetails, HealthSource, HealthStatus};

/// What [`HealthMonitor::follow_events`] did before it was shut down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFollowerStats {
    /// Times the feed was connected (the first one included).
    pub subscriptions: u32,
    /// Events handled.
    pub handled: u64,
    /// Events whose handling failed (busy game, database error); the
    /// inspect pass catches up on them.
    pub failed: u64,
}

impl<P: Ports> HealthMonitor<P> {
    /// Handles one container event.
    ///
    /// - `die`: judged from the events alone, and committed at once: an
    ///   `oom` event for the container within
    ///   [`oom_window`](super::HealthConfig::oom_window) of it → `oom`;
    ///   else a SIGKILL the runtime sent it (a `kill` event with signal 9)
    ///   within that window → `exited` with 137; else an exit code other
    ///   than 137 → `exited` with that code. Only 137 with neither (a
    ///   SIGKILL from outside the runtime, or an OOM kill whose `oom`
    ///   event was missed) is ambiguous: the container is inspected,
    ///   `OOMKilled` → `oom`, otherwise `exited`; running again → ignored
    ///   (restarted since); gone → `exited` with the event's code.
    /// - `oom` and `kill` alone are not exits: remembered briefly, not
    ///   recorded.
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
            ContainerEventKind::Kill { signal } => {
                if signal == Some(SIGKILL) {
                    let window = self.config.oom_window;
                    let mut s = self.state();
                    s.sigkills.retain(|_, at| *at + window >= event.at);
                    s.sigkills.insert(id, event.at);
                }
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
                    s.sigkills.remove(&id);
                }
                (
                    HealthStatus::ContainerDisappeared,
                    HealthDetails::new().with("reason", "container destroyed"),
                )
            }
            ContainerEventKind::Die { exit_code } => {
                let (oom_seen, sigkill_sent) = self.explained(&id, event.at);
                match (oom_seen, exit_code) {
                    // Docker emits `oom` around the `die` of an OOM kill
                    // (usually before it; see `Follower::take` for after).
                    (true, _) => (HealthStatus::Oom, exit_details(exit_code)),
                    // The runtime itself sent the SIGKILL (`docker kill`,
                    // a stop's escalation): the 137 is explained.
                    (false, _) if sigkill_sent => (HealthStatus::Exited, exit_details(exit_code)),
                    // Only a SIGKILL gives 137 (an OOM kill is one), so any
                    // other code is a plain exit: the event says it all.
                    (false, Some(code)) if code != SIGKILL_EXIT => {
                        (HealthStatus::Exited, exit_details(exit_code))
                    }
                    // 137 with neither: a SIGKILL from outside the runtime,
                    // or an OOM kill whose `oom` event this follower did
                    // not see (lost by Docker, or before the subscription).
                    // Only `OOMKilled` tells them apart; never guess from
                    // 137.
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

    /// Whether an `oom` event, and whether a SIGKILL sent by the runtime,
    /// was seen for `container` within the OOM window of `at` (either
    /// side: Docker may report either just after the `die`).
    pub(super) fn explained(&self, container: &ContainerId, at: OffsetDateTime) -> (bool, bool) {
        let window = self.config.oom_window;
        let near = |seen: Option<&OffsetDateTime>| {
            seen.is_some_and(|seen| (*seen - at).unsigned_abs() <= window)
        };
        let s = self.state();
        (near(s.ooms.get(container)), near(s.sigkills.get(container)))
    }

    /// Whether `event` is a `die` only `OOMKilled` can explain (137, or
    /// no code) with neither an `oom` nor the runtime's SIGKILL seen.
    fn is_unexplained_kill(&self, event: &ContainerEvent) -> bool {
        let ContainerEventKind::Die { exit_code } = event.kind else {
            return false;
        };
        if exit_code.is_some_and(|code| code != SIGKILL_EXIT) {
            return false;
        }
        self.explained(&event.container_id, event.at) == (false, false)
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

    /// Follows the runtime's event feed until `shutdown` resolves (see the
    /// module docs). Never returns early: the feed reconnects by itself.
    pub async fn follow_events(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> EventFollowerStats {
        let mut follower = Follower {
            stats: EventFollowerStats::default(),
            held: Vec::new(),
            queued: VecDeque::new(),
        };
        {
            let work = pin!(self.follow_loop(&mut follower));
            let shutdown = pin!(shutdown);
            // Whichever finishes first; `follow_loop` only ends with a
            // feed that ends, which the port says never happens.
            let _ = select(work, shutdown).await;
        }
        // This replica no longer follows (shutdown or lost leadership).
        self.adapters.telemetry.events_stream(false);
        follower.stats
    }

    async fn follow_loop(&self, f: &mut Follower) {
        let mut feed = pin!(self.adapters.runtime.events());
        while let Some(item) = f.next_item(self, feed.as_mut()).await {
            match item {
                FeedItem::Event(event) => f.take(self, event).await,
                FeedItem::Lost(e) => {
                    tracing::warn!(error = %e, "docker event feed lost; the runtime reconnects");
                    self.adapters.telemetry.events_stream(false);
                    // Nothing more will explain a held `die` before the
                    // next inspect pass: judge them now.
                    f.judge_held(self, true).await;
                }
                FeedItem::Connected => {
                    f.stats.subscriptions += 1;
                    if f.stats.subscriptions > 1 {
                        self.adapters.telemetry.events_resubscribed();
                    }
                    // Inspect while the feed keeps being read; what it
                    // delivers meanwhile is handled right after, in order.
                    let buffered = self.inspect_while_buffering(feed.as_mut()).await;
                    let lost = buffered
                        .iter()
                        .any(|item| matches!(item, FeedItem::Lost(_)));
                    if !lost {
                        self.adapters.telemetry.events_stream(true);
                    }
                    f.queued.extend(buffered);
                }
            }
        }
        tracing::error!("the runtime's event feed ended; events are no longer followed");
    }

    /// Runs an inspect pass while collecting what the feed delivers.
    async fn inspect_while_buffering<S>(&self, mut feed: Pin<&mut S>) -> Vec<FeedItem>
    where
        S: Stream<Item = FeedItem>,
    {
        let mut buffered = Vec::new();
        let mut inspect = pin!(self.inspect_pass());
        let mut feed_open = true;
        let result = loop {
            if !feed_open {
                break inspect.as_mut().await;
            }
            match select(inspect.as_mut(), feed.next()).await {
                Either::Left((result, _)) => break result,
                Either::Right((Some(item), _)) => buffered.push(item),
                Either::Right((None, _)) => feed_open = false,
            }
        };
        match result {
            Ok(summary) => tracing::debug!(?summary, "inspect pass after subscribing"),
            Err(e) => tracing::warn!(error = %e, "inspect pass after subscribing failed"),
        }
        buffered
    }
}

/// The event follower's memory.
#[derive(Debug)]
struct Follower {
    stats: EventFollowerStats,
    /// `die`s with 137 that nothing explained yet, in arrival order, each
    /// with the time it is judged: Docker may emit the `oom` of an OOM
    /// kill (or the `kill` of its own SIGKILL) just after the `die` (see
    /// the module docs of `health`).
    held: Vec<(ContainerEvent, OffsetDateTime)>,
    /// Feed items that arrived during an inspect pass, handled next.
    queued: VecDeque<FeedItem>,
}

impl Follower {
    /// The next feed item (queued ones first); judges held `die`s as they
    /// fall due meanwhile. `None` when the feed ended.
    async fn next_item<P: Ports, S>(
        &mut self,
        monitor: &HealthMonitor<P>,
        mut feed: Pin<&mut S>,
    ) -> Option<FeedItem>
    where
        S: Stream<Item = FeedItem>,
    {
        if let Some(item) = self.queued.pop_front() {
            return Some(item);
        }
        loop {
            let Some(due) = self.next_due() else {
                return feed.next().await;
            };
            let wait = (due - monitor.adapters.clock.now())
                .try_into()
                .unwrap_or(Duration::ZERO);
            match select(feed.next(), pin!(monitor.adapters.clock.sleep(wait))).await {
                Either::Left((item, _)) => return item,
                Either::Right(((), _)) => self.judge_held(monitor, false).await,
            }
        }
    }

    /// Handles one event.
    async fn take<P: Ports>(&mut self, monitor: &HealthMonitor<P>, event: ContainerEvent) {
        self.stats.handled += 1;
        // A later event of a held container: the held `die` goes first, so
        // one container's events are judged in order (a late `oom` or
        // `kill` first of all, so that it explains the `die`).
        if let Some(at) = self
            .held
            .iter()
            .position(|(held, _)| held.container_id == event.container_id)
        {
            let (die, _) = self.held.remove(at);
            if matches!(
                event.kind,
                ContainerEventKind::Oom | ContainerEventKind::Kill { .. }
            ) {
                self.handle(monitor, event).await;
                self.handle(monitor, die).await;
                return;
            }
            self.handle(monitor, die).await;
        }
        if monitor.is_unexplained_kill(&event) {
            let due = monitor.adapters.clock.now() + monitor.config.kill_grace;
            self.held.push((event, due));
            return;
        }
        self.handle(monitor, event).await;
    }

    async fn handle<P: Ports>(&mut self, monitor: &HealthMonitor<P>, event: ContainerEvent) {
        let game = event.game_id.clone();
        match monitor.handle_event(event).await {
            Ok(_) => {}
            // An operation of RTM's own holds the game (a stop, a patch):
            // usually it caused the event, and its outcome is what the
            // record will say; the inspect pass re-checks either way.
            Err(e @ HealthError::Busy(_)) => {
                self.stats.failed += 1;
                tracing::debug!(error = %e, "docker event not judged during an operation; inspect will check");
            }
            Err(e) => {
                self.stats.failed += 1;
                tracing::warn!(game_id = game.as_ref().map_or("", GameId::as_str), error = %e,
                    "docker event not recorded; inspect will catch up");
            }
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

fn exit_details(code: Option<i64>) -> HealthDetails {
    match code {
        Some(code) => HealthDetails::new().with("exit_code", code),
        None => HealthDetails::new(),
    }
}
