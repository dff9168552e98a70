//! The health monitor (SPEC §7): turns what the three sources see
//! (Docker events, periodic inspect, HTTP probes) into health snapshots,
//! outbox events and — for exits and vanished containers — record
//! transitions, and relays the outbox to `runtime:health_events`.
//!
//! Guarantees:
//! - Every observation is judged under the game's lock against a fresh
//!   record, so it never races an operation: an observation about a
//!   container the record no longer binds (the one a patch replaced), or
//!   made before the record's `started_at` (a `die` caused by RTM's own
//!   restart), is ignored, and an exit seen while the record is already
//!   `stopped`/`removed` was RTM's own stop and is ignored too.
//! - An accepted observation is written in one [`UnitOfWork::commit`]:
//!   the record change (observed exits move `running` → `stopped` with no
//!   operation-log row, SPEC §4) together with the snapshot and, when the
//!   `(status, container)` pair changed, its outbox event. So no change is
//!   lost while Redis is down: [`HealthMonitor::relay_once`] publishes the
//!   outbox in commit order once Redis is back.
//! - OOM is only ever reported from Docker's own word: an `oom` event
//!   seen just before the `die`, or the `OOMKilled` flag (inspected for
//!   every exit an event did not explain: a 137 without `oom`, or an exit
//!   found by the inspect pass); never inferred from exit code 137.
//!   Docker can learn of an OOM kill just *after* the exit (containerd
//!   sends the task's exit and OOM events separately; dockerd then emits
//!   `die` before `oom` and sets `OOMKilled` late), so a 137 that Docker
//!   does not (yet) call an OOM is judged once more a moment later before
//!   it is reported as `exited`.
//!
//! The monitor holds only soft, in-memory state (probe failure counters,
//! a snapshot cache used to coalesce repeated
//! observations); losing it on restart costs at most one extra write per
//! game. It has no tokio dependency: it waits through [`Clock::sleep`] and
//! runs concurrent work with `futures-util`.
//!
//! See `docs/health.md` for the operator's view.

mod events;
mod passes;
mod relay;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use crate::ports::{
    Adapters, Clock, GameLockGuard, GameLocks, HealthSnapshots, Ports, RuntimeRecords, Telemetry,
    UnitOfWork,
};
use crate::transition::{self, Observed};
use crate::{
    Commit, ContainerId, GameId, HealthDetails, HealthSnapshot, HealthSource, HealthStatus,
    HealthWrite, LockError, RuntimeError, RuntimeStatus, StoreError,
};

pub use events::EventFollowerStats;
pub use passes::PassSummary;
pub use relay::{RelayError, RelayWake};

/// The exit code of a process killed by SIGKILL (128 + 9): what both
/// `docker kill` and the kernel's OOM killer leave.
const SIGKILL_EXIT: i64 = 137;

/// SIGKILL's number, as a runtime's `kill` event reports it.
const SIGKILL: i64 = 9;

/// Settings of the health monitor (from `RTM_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `RTM_PROBE_FAILURES`: consecutive probe failures that make a game
    /// `probe_failed`.
    pub probe_failures: u32,
    /// How many probes of one pass run at the same time.
    pub probe_concurrency: usize,
    /// Probes of one pass start spread over this window, each game at a
    /// stable offset within it, so 1,000 games never become 1,000
    /// simultaneous requests. Keep it below `RTM_PROBE_INTERVAL` minus
    /// `RTM_PROBE_TIMEOUT`, so a pass ends within its interval (the next
    /// one starts an interval after this one started).
    pub probe_spread: Duration,
    /// How many inspects of one pass run at the same time.
    pub inspect_concurrency: usize,
    /// A pass observation that changes nothing rewrites the snapshot at
    /// most this often (`RTM_INSPECT_INTERVAL` is a good value).
    pub snapshot_refresh: Duration,
    /// How long an observation waits for the game's lock (an operation in
    /// progress) before giving up; the next pass catches up. Kept short
    /// (default 1 s, not `RTM_LOCK_WAIT`) because the event follower
    /// handles events one at a time and must not stall behind a long stop.
    pub lock_wait: Duration,
    /// `RTM_ENGINE_PORT`: the port probed on the container's IP.
    pub engine_port: u16,
    /// Page size when listing running records.
    pub page_size: u32,
    /// How far apart (by the runtime's clock, either way) an `oom` event,
    /// or a runtime's `kill` with SIGKILL, and a `die` of the same
    /// container may be and still explain it; also how long such events
    /// are remembered.
    pub oom_window: Duration,
    /// How long the event follower holds a `die` with 137 that nothing
    /// explains yet (no `oom`, no SIGKILL sent by the runtime: a SIGKILL
    /// from elsewhere, or an OOM kill whose `oom` Docker emits just after
    /// the `die`) before judging it: a late `oom` within this time makes
    /// it an `oom`, a late `kill` an exit. It delays the report of such a
    /// SIGKILL by as much; other exits are not delayed.
    pub kill_grace: Duration,
    /// How many outbox events the relay reads at a time.
    pub relay_batch: u32,
}

impl Default for HealthConfig {
    /// SPEC §10 defaults (`RTM_PROBE_FAILURES=3`, `RTM_INSPECT_INTERVAL=15s`
    /// as the refresh, `RTM_PROBE_INTERVAL=5s` for the spread,
    /// `RTM_ENGINE_PORT=8080`) and the values documented in `docs/health.md`.
    fn default() -> Self {
        Self {
            probe_failures: 3,
            probe_concurrency: 32,
            probe_spread: Duration::from_secs(4),
            inspect_concurrency: 8,
            snapshot_refresh: Duration::from_secs(15),
            lock_wait: Duration::from_secs(1),
            engine_port: 8080,
            page_size: 500,
            oom_window: Duration::from_secs(10),
            kill_grace: Duration::from_millis(250),
            relay_batch: 100,
        }
    }
}

/// One thing a source saw about a game's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The game the container belongs to (its `rtm.game_id` label).
    pub game_id: GameId,
    /// The container observed; judged against the one the record binds.
    pub container_id: ContainerId,
    /// What was seen.
    pub status: HealthStatus,
    /// Who saw it.
    pub source: HealthSource,
    /// Evidence stored with the snapshot (exit code, probe error…).
    pub details: HealthDetails,
    /// When it was seen: the event's time, or the instant the inspect or
    /// probe *began* (so a result that straddles a restart counts as
    /// older than the restart).
    pub observed_at: OffsetDateTime,
}

/// What [`HealthMonitor::observe`] did with an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveOutcome {
    /// The snapshot (and maybe the record) was written.
    Recorded {
        /// The `(status, container)` pair differs from the previous
        /// snapshot: an event was queued for publication.
        changed: bool,
        /// The status the record entered, for exits and disappearances.
        record: Option<RuntimeStatus>,
    },
    /// Nothing new, and the snapshot was refreshed recently: not written.
    Coalesced,
    /// The rules dropped it (see [`IgnoreReason`]); nothing was written.
    Ignored(IgnoreReason),
}

/// Why an observation was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The game has no runtime record.
    NoRecord,
    /// The record binds another container (e.g. the one a patch replaced
    /// it with) or none.
    OtherContainer,
    /// Made before the record's `started_at`: RTM (re)started the engine
    /// since, so this is about a previous life (e.g. the `die` of RTM's own
    /// restart).
    BeforeStart,
    /// The record is not in a status this observation applies to (an exit
    /// while `stopped` is RTM's own stop; probes only count while running).
    NotApplicable,
    /// Older than the current snapshot of the same container.
    Outdated,
    /// A probe result while Docker's own health check says `unhealthy`:
    /// Docker's verdict stands until it changes, so the two sources do not
    /// make the health flap.
    DockerUnhealthy,
    /// The container is running again (restarted since the event).
    Restarted,
    /// The event named no game.
    Unknown,
    /// A probe reached an address the game's container no longer has (it
    /// moved, stopped or vanished during the pass): the result is about
    /// whatever answers there now, not about this game.
    Moved,
}

/// Errors of the health monitor.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// An operation held the game's lock beyond the monitor's wait; the
    /// observation was not judged. Retry later (the next pass does).
    #[error("game {0} is busy (an operation holds its lock)")]
    Busy(GameId),
    /// The store failed; the observation may not have been recorded.
    /// The next pass observes again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container runtime is unreachable; the pass was skipped.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl HealthError {
    fn from_lock(game: &GameId, e: LockError) -> Self {
        match e {
            LockError::Timeout => HealthError::Busy(game.clone()),
            LockError::Store(e) => HealthError::Store(e),
        }
    }
}

/// The last snapshot this monitor wrote for a game, used to coalesce
/// repeated observations without touching the database.
#[derive(Debug, Clone)]
struct CachedSnapshot {
    container: ContainerId,
    /// The record's `started_at` at the time: a restart (same container,
    /// new `started_at`) invalidates the entry.
    started_at: Option<OffsetDateTime>,
    status: HealthStatus,
    written_at: OffsetDateTime,
}

/// Consecutive probe failures of a game's current container at one
/// address: failures at an address the container has left say nothing
/// about it, so a new address starts a new count.
#[derive(Debug, Clone)]
struct ProbeCounter {
    container: ContainerId,
    ip: Option<IpAddr>,
    failures: u32,
}

/// Soft state shared by the monitor's tasks. A std Mutex is enough: it is
/// never held across an `.await`.
#[derive(Debug, Default)]
struct MonitorState {
    snapshots: HashMap<GameId, CachedSnapshot>,
    probes: HashMap<GameId, ProbeCounter>,
    /// Containers whose Docker health check currently says `unhealthy`.
    docker_unhealthy: HashSet<ContainerId>,
    /// Containers with a recent `oom` event, and when.
    ooms: HashMap<ContainerId, OffsetDateTime>,
    /// Containers the runtime recently sent a SIGKILL (a `kill` event
    /// with signal 9), and when.
    sigkills: HashMap<ContainerId, OffsetDateTime>,
    /// Containers an inspect pass found exited with 137 and no `OOMKilled`
    /// yet: judged at the next pass (see `passes::inspect_disagreement`).
    unsettled_kills: HashSet<ContainerId>,
}

/// Watches the engines' health. Cheap to clone; clones share their soft
/// state, so the event follower and the passes can run as separate tasks.
///
/// The host drives it: it runs [`follow_events`](Self::follow_events) as
/// a long-lived task, calls [`inspect_pass`](Self::inspect_pass) and
/// [`probe_pass`](Self::probe_pass) on timers, and
/// [`relay_once`](Self::relay_once) (under leader election) when woken by
/// its [`RelayWake`] or on a timer. The monitor has no timers of its own.
///
/// ```
/// # #[cfg(feature = "fakes")]
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use rtm_domain::fakes::FakePorts;
/// use rtm_domain::health::{HealthConfig, HealthMonitor, RelayWake};
/// use rtm_domain::{GameId, HealthStatus, ImageRef, ProbeError};
///
/// let ports = FakePorts::new();
/// let game = GameId::parse("chess-42")?;
/// ports.seed_running(&game, &ImageRef::parse("ghcr.io/acme/engine:1.4.2")?);
///
/// let woken = Arc::new(AtomicBool::new(false));
/// let flag = woken.clone();
/// let monitor = HealthMonitor::new(ports.adapters(), HealthConfig::default())
///     .with_relay_wake(RelayWake::new(move || flag.store(true, Ordering::SeqCst)));
///
/// // The first probe answer is a change: snapshot + outbox event + wake-up.
/// let pass = monitor.probe_pass().await?;
/// assert_eq!((pass.checked, pass.changed), (1, 1));
/// assert_eq!(ports.store.health(&game).map(|s| s.status), Some(HealthStatus::Healthy));
/// assert!(woken.load(Ordering::SeqCst));
///
/// // The relay publishes the outbox in commit order.
/// assert_eq!(monitor.relay_once(&ports.publisher).await?, 1);
/// assert_eq!(ports.publisher.published().len(), 1);
///
/// // A failing probe counts; `probe_failures` in a row make a change.
/// ports.probe.set_default(Err(ProbeError("connection refused".into())));
/// for _ in 0..HealthConfig::default().probe_failures {
///     monitor.probe_pass().await?;
/// }
/// assert_eq!(ports.store.health(&game).map(|s| s.status), Some(HealthStatus::ProbeFailed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HealthMonitor<P: Ports> {
    adapters: Adapters<P>,
    config: HealthConfig,
    state: Arc<Mutex<MonitorState>>,
    /// Called after this monitor committed an outbox event.
    relay_wake: Option<RelayWake>,
}

impl<P: Ports> Clone for HealthMonitor<P> {
    fn clone(&self) -> Self {
        Self {
            adapters: self.adapters.clone(),
            config: self.config.clone(),
            state: Arc::clone(&self.state),
            relay_wake: self.relay_wake.clone(),
        }
    }
}

impl<P: Ports> std::fmt::Debug for HealthMonitor<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<P: Ports> HealthMonitor<P> {
    /// A monitor acting through `adapters` with `config`, with empty soft
    /// state and no relay hook. Does no I/O.
    pub fn new(adapters: Adapters<P>, config: HealthConfig) -> Self {
        Self {
            adapters,
            config,
            state: Arc::default(),
            relay_wake: None,
        }
    }

    /// Calls `wake` whenever this monitor (or a clone made after this
    /// call) commits a health change, i.e. queues an outbox event, so the
    /// host's relay can publish it at once. Without a hook the relay only
    /// learns of events by polling [`relay_once`](Self::relay_once).
    #[must_use]
    pub fn with_relay_wake(mut self, wake: RelayWake) -> Self {
        self.relay_wake = Some(wake);
        self
    }

    /// The settings it was built with.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, MonitorState> {
        // The state is a cache: data left by a panicking holder is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Judges one observation under the game's lock and records it when it
    /// applies (see the module docs for the rules).
    ///
    /// Returns [`HealthError::Busy`] when an operation holds the lock
    /// beyond [`HealthConfig::lock_wait`]; nothing was written and the
    /// caller may retry (the periodic inspect catches up anyway).
    pub async fn observe(&self, obs: Observation) -> Result<ObserveOutcome, HealthError> {
        let guard = self
            .adapters
            .locks
            .acquire(&obs.game_id, self.config.lock_wait)
            .await
            .map_err(|e| HealthError::from_lock(&obs.game_id, e))?;
        let result = self.observe_locked(&obs).await;
        guard.release().await;
        match &result {
            Ok(ObserveOutcome::Recorded { changed, .. }) => {
                self.adapters
                    .telemetry
                    .health_observed(obs.status, *changed);
                if *changed {
                    if let Some(wake) = &self.relay_wake {
                        wake.wake();
                    }
                    tracing::info!(
                        game_id = %obs.game_id,
                        container = obs.container_id.short(),
                        status = %obs.status,
                        source = %obs.source,
                        "health changed"
                    );
                }
            }
            Ok(ObserveOutcome::Ignored(reason)) => tracing::debug!(
                game_id = %obs.game_id,
                status = %obs.status,
                ?reason,
                "health observation ignored"
            ),
            Ok(ObserveOutcome::Coalesced) | Err(_) => {}
        }
        result
    }

    async fn observe_locked(&self, obs: &Observation) -> Result<ObserveOutcome, HealthError> {
        use IgnoreReason::*;
        let store = &self.adapters.store;
        let Some(record) = store.get_record(&obs.game_id).await? else {
            return Ok(ObserveOutcome::Ignored(NoRecord));
        };
        if record.container_id.as_ref() != Some(&obs.container_id) {
            return Ok(ObserveOutcome::Ignored(OtherContainer));
        }
        // RTM stamps `started_at` after the runtime's start returned, so an
        // exit seen at that very instant (only a coarse clock can tie
        // them) is the end of the previous life too.
        let exit = matches!(obs.status, HealthStatus::Exited | HealthStatus::Oom);
        if record
            .started_at
            .is_some_and(|s| obs.observed_at < s || (exit && obs.observed_at == s))
        {
            return Ok(ObserveOutcome::Ignored(BeforeStart));
        }
        let observed = match obs.status {
            HealthStatus::Exited | HealthStatus::Oom => Some(Observed::Exited),
            HealthStatus::ContainerDisappeared => Some(Observed::Disappeared),
            HealthStatus::Healthy | HealthStatus::ProbeFailed | HealthStatus::InspectUnhealthy => {
                None
            }
        };
        let next_record = match observed {
            Some(o) => match transition::observe(record.status, o) {
                Some(next) => {
                    let mut r = record.clone();
                    r.enter(next, obs.observed_at);
                    Some(r)
                }
                None => return Ok(ObserveOutcome::Ignored(NotApplicable)),
            },
            None if record.status != RuntimeStatus::Running => {
                return Ok(ObserveOutcome::Ignored(NotApplicable));
            }
            None => None,
        };

        let previous = store.get_health(&obs.game_id).await?;
        let same_container = previous
            .as_ref()
            .filter(|p| p.container_id.as_ref() == Some(&obs.container_id));
        if observed.is_none() {
            // Among the non-terminal statuses the latest word wins; a
            // terminal one is never dropped for being late, or an exit
            // seen after a probe failure would leave the record running.
            if let Some(p) = same_container {
                if obs.observed_at < p.observed_at {
                    return Ok(ObserveOutcome::Ignored(Outdated));
                }
                let docker_says_unhealthy = p.status == HealthStatus::InspectUnhealthy
                    && self.state().docker_unhealthy.contains(&obs.container_id);
                if obs.source == HealthSource::Probe && docker_says_unhealthy {
                    return Ok(ObserveOutcome::Ignored(DockerUnhealthy));
                }
            }
        }
        let write = HealthWrite::over(
            previous.as_ref(),
            HealthSnapshot {
                game_id: obs.game_id.clone(),
                container_id: Some(obs.container_id.clone()),
                status: obs.status,
                source: obs.source,
                details: obs.details.clone(),
                observed_at: obs.observed_at,
            },
        );
        let changed = write.publish;
        let entered = next_record.as_ref().map(|r| r.status);
        let started_at = record.started_at;
        store
            .commit(Commit {
                record: next_record,
                operation: None,
                health: Some(write),
            })
            .await?;
        let now = self.adapters.clock.now();
        self.state().snapshots.insert(
            obs.game_id.clone(),
            CachedSnapshot {
                container: obs.container_id.clone(),
                started_at,
                status: obs.status,
                written_at: now,
            },
        );
        Ok(ObserveOutcome::Recorded {
            changed,
            record: entered,
        })
    }
}
