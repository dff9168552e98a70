//! Ports: the traits through which the domain reaches the world.
//!
//! Every port is `Send + Sync + 'static` and its methods return
//! `impl Future + Send`, so services stay generic and runtime-agnostic (no
//! tokio or driver type appears here). Each method documents its contract;
//! adapters are tested against these contracts with the real services.
//!
//! Unless a method says otherwise, its errors mean what the error type
//! says (`StoreError::Unavailable`: the service could not be reached and
//! nothing is known to have happened; retry later) and a failed call has no
//! effect the domain relies on. Reads may be retried freely; which writes
//! are idempotent is stated on each.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    Commit, GameId, HealthEvent, HealthRefresh, HealthSnapshot, HealthStatus, LockError, OpKind,
    OpSource, OperationEntry, Outcome, ProbeError, PublishError, RecordedRequest, RuntimeRecord,
    RuntimeStatus, StoreError,
};

// ---------------------------------------------------------------- storage

/// Filter and keyset page for listing runtime records, ordered by `game_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// Only records in this status.
    pub status: Option<RuntimeStatus>,
    /// Only records whose `last_op_at` is strictly before this instant.
    pub last_op_before: Option<OffsetDateTime>,
    /// Keyset cursor: only games strictly after this id.
    pub after: Option<GameId>,
    /// At most this many records.
    pub limit: u32,
}

/// Filter and keyset page for the operation log, newest first
/// (`started_at DESC, id DESC`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationQuery {
    /// Only rows of this game (exact id).
    pub game_id: Option<GameId>,
    /// Only rows of this operation kind.
    pub kind: Option<OpKind>,
    /// Only rows with this outcome.
    pub outcome: Option<Outcome>,
    /// Only rows from this source.
    pub source: Option<OpSource>,
    /// Only rows that started at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Keyset cursor: the `id` of the last row of the previous page; only
    /// rows that sort strictly after it in `(started_at DESC, id DESC)`
    /// order are returned. (Comparing ids alone would skip a row whose
    /// operation started earlier but committed later.) An id that names no
    /// row yields an empty page.
    pub before_id: Option<i64>,
    /// At most this many rows.
    pub limit: u32,
}

/// Filter and keyset page for health snapshots, ordered by `game_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthQuery {
    /// Only snapshots in this status.
    pub status: Option<HealthStatus>,
    /// Keyset cursor: only games strictly after this id.
    pub after: Option<GameId>,
    /// At most this many snapshots.
    pub limit: u32,
}

/// `runtime_records` reads.
pub trait RuntimeRecords: Send + Sync + 'static {
    /// MUST return `Ok(None)` when the game has no record.
    fn get_record(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<RuntimeRecord>, StoreError>> + Send;

    /// The record and its health snapshot, read together in one consistent
    /// read (one round trip for a database): what a runtime view shows.
    /// MUST return `Ok(None)` when the game has no record, and `None` as
    /// the snapshot when the game has a record but no observation yet.
    fn get_record_with_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<(RuntimeRecord, Option<HealthSnapshot>)>, StoreError>> + Send;

    /// MUST apply every filter of `query` and return at most `query.limit`
    /// records ordered by `game_id`.
    fn list_records(
        &self,
        query: &RecordQuery,
    ) -> impl Future<Output = Result<Vec<RuntimeRecord>, StoreError>> + Send;

    /// Another game whose record is live (not `removed`) and whose id
    /// equals `game`'s case-insensitively (ASCII) but not exactly, if any:
    /// the two would share one name in Docker's embedded DNS.
    fn find_case_collision(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<GameId>, StoreError>> + Send;
}

/// `operation_log` reads.
pub trait OperationLog: Send + Sync + 'static {
    /// The finished row of `game` with this `(source, source_ref)`, if any.
    /// `source_ref` is never empty here.
    fn find_by_source_ref(
        &self,
        game: &GameId,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send;

    /// The finished row of *any* game with this `(source, source_ref)`, and
    /// the request it was recorded for. `source_ref` is never empty here.
    /// A reference names one request per source (V3's unique index), so a
    /// reference reused on another game is found too.
    fn find_source_ref(
        &self,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<RecordedRequest>, StoreError>> + Send;

    /// MUST return rows newest first (`started_at DESC, id DESC`), at most
    /// `query.limit`, honouring every filter.
    fn list_operations(
        &self,
        query: &OperationQuery,
    ) -> impl Future<Output = Result<Vec<OperationEntry>, StoreError>> + Send;
}

/// `health_snapshots` reads.
pub trait HealthSnapshots: Send + Sync + 'static {
    /// The game's latest snapshot, whichever container it is about. MUST
    /// return `Ok(None)` when the game was never observed (or its
    /// snapshot was deleted with a removed game).
    fn get_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<HealthSnapshot>, StoreError>> + Send;

    /// Applies each refresh whose condition holds (see [`HealthRefresh`])
    /// in one round trip, atomically per game; queues no event. Returns
    /// the games refreshed, in any order; the others changed meanwhile.
    /// An empty slice is a no-op.
    fn refresh_health(
        &self,
        refreshes: &[HealthRefresh],
    ) -> impl Future<Output = Result<Vec<GameId>, StoreError>> + Send;

    /// MUST apply every filter of `query` and return at most
    /// `query.limit` snapshots ordered by `game_id`.
    fn list_health(
        &self,
        query: &HealthQuery,
    ) -> impl Future<Output = Result<Vec<HealthSnapshot>, StoreError>> + Send;
}

/// The health-event outbox: changes committed with their snapshot and
/// waiting to be published.
pub trait HealthOutbox: Send + Sync + 'static {
    /// Unpublished events in commit order (ascending id), at most `limit`.
    fn pending_events(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<HealthEvent>, StoreError>> + Send;

    /// Marks events published; they are never returned again. Ids that
    /// are unknown or already marked are skipped, so marking is
    /// idempotent and an empty slice is a no-op.
    fn mark_published(&self, ids: &[i64]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many events wait to be published (for `/readyz` and metrics).
    fn pending_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Atomic writes: the only way the domain changes stored state (besides
/// [`Retention`]).
pub trait UnitOfWork: Send + Sync + 'static {
    /// Applies `commit` in one transaction: upsert the record, append the
    /// operation row (returned), upsert the snapshot and, when
    /// `publish`, queue its event in the outbox. All or nothing.
    ///
    /// MUST return `StoreError::AlreadyExists` when the operation's non-empty
    /// `(game_id, source, source_ref)` already has a row (nothing is written).
    /// Returns `Ok(None)` when `commit` carries no operation row. A commit
    /// is not idempotent: replaying one appends another row (which is why
    /// operations carry a `source_ref`).
    fn commit(
        &self,
        commit: Commit,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send;

    /// Cheap liveness check for `/readyz`: `Ok` when the store answered.
    /// Changes nothing.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Bounded deletions that keep the tables from growing without end (the
/// cleanup worker's retention pass). Each call deletes at most a batch, so
/// one statement never holds many locks or runs long.
pub trait Retention: Send + Sync + 'static {
    /// Deletes at most `limit` operation rows that started before `cutoff`,
    /// oldest first, and returns how many it deleted. MUST never delete the
    /// newest row of a game whose record exists and is not `removed` (a
    /// live game keeps at least its last operation in the audit).
    fn delete_operations_before(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes `game`'s record and health snapshot when the record is
    /// still `removed` with `last_op_at` before `cutoff`, in one
    /// transaction. MUST return `Ok(false)` (deleting nothing) otherwise,
    /// so a game started again meanwhile keeps its record.
    fn delete_removed_game(
        &self,
        game: &GameId,
        cutoff: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Everything the services need from storage. Implemented for every type
/// that implements its six parts; a host implements those.
pub trait Store:
    RuntimeRecords + OperationLog + HealthSnapshots + HealthOutbox + UnitOfWork + Retention
{
}
impl<
        T: RuntimeRecords + OperationLog + HealthSnapshots + HealthOutbox + UnitOfWork + Retention,
    > Store for T
{
}

// ---------------------------------------------------------------- locks

/// Per-game mutual exclusion that holds across RTM replicas.
pub trait GameLocks: Send + Sync + 'static {
    /// Proof of holding one game's lock; the lock is held until it is
    /// released or dropped.
    type Guard: GameLockGuard;

    /// Waits at most `wait` for the game's lock.
    ///
    /// MUST return `LockError::Timeout` when another holder keeps it beyond
    /// `wait`, and `LockError::Store(Unavailable)` when the lock service is
    /// unreachable. The lock is keyed by [`GameId::folded`]: games whose ids
    /// differ only in case share one lock (they would share one DNS name,
    /// so their collision check must not race); other games never block
    /// each other.
    fn acquire(
        &self,
        game: &GameId,
        wait: Duration,
    ) -> impl Future<Output = Result<Self::Guard, LockError>> + Send;
}

/// A held game lock. Dropping it without [`release`](GameLockGuard::release)
/// MUST still free the lock (e.g. by closing the session that holds it).
pub trait GameLockGuard: Send + Sync + 'static {
    /// Frees the lock now, so the next waiter need not wait for a drop.
    /// Cannot fail: when freeing fails the adapter MUST make sure the
    /// lock is freed anyway (e.g. by discarding the session).
    fn release(self) -> impl Future<Output = ()> + Send;
}

/// Leader election for singleton workers.
pub trait LeaderElection: Send + Sync + 'static {
    /// Leadership of one role, held until released, dropped or lost.
    type Lease: LeaderLease;

    /// Tries once to become the leader of `role`; `Ok(None)` when another
    /// replica leads it, `Err` when the election service is unreachable.
    /// Never waits for the current leader. At most one lease of a role is
    /// held across all replicas at a time.
    fn try_acquire(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<Self::Lease>, StoreError>> + Send;
}

/// Leadership of one role. Losing the underlying session loses it.
pub trait LeaderLease: Send + Sync + 'static {
    /// MUST return false once leadership may have been lost (connection
    /// closed or failing); the worker then stops acting.
    fn is_held(&self) -> impl Future<Output = bool> + Send;

    /// Gives leadership up so another replica can take it at its next
    /// try. Cannot fail; dropping the lease MUST release it too.
    fn release(self) -> impl Future<Output = ()> + Send;
}

// ---------------------------------------------------------------- runtime

mod runtime;
pub use runtime::{
    ContainerEvent, ContainerEventKind, ContainerInfo, ContainerLogs, ContainerRuntime,
    ContainerSpec, ContainerState, ContainerSummary, DockerHealth, FeedItem, LogLine, LogQuery,
    LogStream, LogTail,
};

// ---------------------------------------------------------------- health

/// Where to probe an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// `http://rtm-<game>:<port>`, reachable inside the engines' network.
    pub endpoint: String,
    /// The container's address on that network, reachable from the host
    /// too; preferred when known.
    pub ip: Option<IpAddr>,
    /// The engine's HTTP port (`RTM_ENGINE_PORT`).
    pub port: u16,
}

/// HTTP health probe of an engine.
pub trait EngineProbe: Send + Sync + 'static {
    /// `Ok` when the engine answered its health path with a 2xx within the
    /// configured timeout; otherwise the reason. Read-only and safe to
    /// repeat; the domain, not the probe, counts failures.
    fn probe(&self, target: &ProbeTarget) -> impl Future<Output = Result<(), ProbeError>> + Send;
}

/// Publishes health changes to `runtime:health_events`.
pub trait HealthPublisher: Send + Sync + 'static {
    /// MUST return `Err` unless the event is durably appended to the stream.
    /// Publishing is at-least-once: the relay may publish one event again
    /// after a crash, and consumers drop duplicates by its `event_id`.
    fn publish(&self, event: &HealthEvent)
        -> impl Future<Output = Result<(), PublishError>> + Send;
}

// ---------------------------------------------------------------- time

/// Wall clock and timers, injected so tests control time.
///
/// Every instant the domain stores (`started_at`, `observed_at`,
/// `last_op_at`) and every wait it makes (probe spread, the hold of an
/// unexplained 137) goes through it, so a test clock can make time stand
/// still or jump.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time, in UTC.
    fn now(&self) -> OffsetDateTime;
    /// Completes once `d` has passed by this clock. Cancel-safe: dropping
    /// the future simply stops the wait.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

// ---------------------------------------------------------------- telemetry

/// Hooks for metrics; the binary implements them with Prometheus.
/// Every method has a no-op default.
///
/// The hooks only count: they are called synchronously on the working
/// task, so they MUST be quick and never block, and nothing the domain
/// does depends on them (the outbox relay's wake-up is
/// [`RelayWake`](crate::health::RelayWake), not a metric).
pub trait Telemetry: Send + Sync + 'static {
    /// One operation was recorded with `outcome` after `elapsed` (time
    /// waiting for the game's lock included). Replays of an earlier
    /// operation and operations that were not recorded are not reported.
    fn operation_finished(
        &self,
        _kind: OpKind,
        _source: OpSource,
        _outcome: Outcome,
        _elapsed: Duration,
    ) {
    }
    /// The health monitor recorded an observation of `status`; `changed`
    /// when it queued an outbox event (the `(status, container)` pair
    /// changed). Coalesced and ignored observations are not reported.
    fn health_observed(&self, _status: HealthStatus, _changed: bool) {}
    /// `n` runtime calls of kind `call` (`list`, `inspect`…) made by one
    /// periodic pass (`inspect`, `probe`, `reconcile`).
    fn runtime_calls(&self, _pass: &'static str, _call: &'static str, _n: u64) {}
    /// The Docker event subscription opened (`true`) or ended (`false`).
    fn events_stream(&self, _connected: bool) {}
    /// The event follower subscribed again after its stream ended.
    fn events_resubscribed(&self) {}
}

/// Telemetry that records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTelemetry;
impl Telemetry for NoTelemetry {}

// ---------------------------------------------------------------- bundle

/// The set of adapter types a deployment wires together, so services (and
/// the HTTP layer) are generic over one parameter instead of six.
///
/// Adapters are cheap handles (pools, clients) and so `Clone`.
///
/// Usually a field-less marker type (`enum Prod {}` or a unit struct):
/// it is never instantiated by the domain, only named.
pub trait Ports: Send + Sync + 'static {
    /// Records, operation log, snapshots, outbox, atomic commits, retention.
    type Store: Store + Clone;
    /// The per-game locks shared by all replicas.
    type Locks: GameLocks + Clone;
    /// The engine containers.
    type Runtime: ContainerRuntime + Clone;
    /// The engines' HTTP health probe.
    type Probe: EngineProbe + Clone;
    /// Wall clock and timers.
    type Clock: Clock + Clone;
    /// Metrics hooks ([`NoTelemetry`] when the host has none).
    type Telemetry: Telemetry + Clone;
}

/// The adapter instances of a [`Ports`] set: what a host builds once and
/// hands to [`RuntimeService::new`](crate::service::RuntimeService::new)
/// and [`HealthMonitor::new`](crate::health::HealthMonitor::new).
pub struct Adapters<P: Ports> {
    /// The storage adapter.
    pub store: P::Store,
    /// The lock adapter.
    pub locks: P::Locks,
    /// The container runtime adapter.
    pub runtime: P::Runtime,
    /// The engine probe.
    pub probe: P::Probe,
    /// The clock.
    pub clock: P::Clock,
    /// The metrics hooks.
    pub telemetry: P::Telemetry,
}

impl<P: Ports> Clone for Adapters<P> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            locks: self.locks.clone(),
            runtime: self.runtime.clone(),
            probe: self.probe.clone(),
            clock: self.clock.clone(),
            telemetry: self.telemetry.clone(),
        }
    }
}

impl<P: Ports> std::fmt::Debug for Adapters<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adapters { .. }")
    }
}
