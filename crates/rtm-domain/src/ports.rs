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

use futures_core::Stream;
use time::OffsetDateTime;

use crate::{
    Commit, ContainerId, GameId, HealthEvent, HealthSnapshot, HealthStatus, ImageRef, LockError,
    OpKind, OpSource, OperationEntry, Outcome, ProbeError, PublishError, RecordedRequest,
    RuntimeError, RuntimeRecord, RuntimeStatus, StoreError,
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

/// What the domain asks the container runtime to create.
///
/// The adapter adds its own labels (`rtm.managed`, `rtm.owner`) and those
/// derived from here (`rtm.game_id`, `rtm.image_ref`, `rtm.state_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The game the container runs (its `rtm.game_id` label).
    pub game_id: GameId,
    /// The container name (`rtm-<game>`): also its DNS name on the
    /// engines' network.
    pub name: String,
    /// The engine image; already present ([`ContainerRuntime::ensure_image`]).
    pub image: ImageRef,
    /// Host directory of the game's state; created (owned by `user`) if missing.
    pub state_path: String,
}

/// Docker's own health check result, when the image defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerHealth {
    /// Within the health check's start period; no verdict yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// The health check failed its configured number of times in a row.
    Unhealthy,
}

/// One RTM-owned container, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The runtime's id of the container.
    pub id: ContainerId,
    /// The current name (`rtm-<game>`, or `rtmold-<game>` while parked
    /// by a patch). MUST NOT carry Docker's leading `/`: the adapter strips
    /// it once, so the domain compares names as they are.
    pub name: String,
    /// From the `rtm.game_id` label; `None` if the label is not a valid id.
    pub game_id: Option<GameId>,
    /// The `rtm.image_ref` label; `None` when the label is missing or empty.
    pub image_ref: Option<String>,
    /// The `rtm.state_path` label: the game's host state directory;
    /// `None` when the label is missing or empty.
    pub state_path: Option<String>,
    /// Whether the container is running now (not created, paused,
    /// exited or dead).
    pub running: bool,
    /// When the runtime created the container.
    pub created_at: OffsetDateTime,
    /// Docker's own health-check result, when the image defines one.
    pub health: Option<DockerHealth>,
    /// The address on the engines' network *now* (Docker's list carries
    /// it, so one list gives every container's current address: a
    /// restart, a start or a network reconnect moves it).
    pub ip: Option<IpAddr>,
}

/// Where a container is in its life cycle, as the runtime reports it
/// (Docker's `State.Status`). [`ContainerState::as_str`] gives the
/// runtime's own word, which health details record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created and never started (or not started again since).
    Created,
    /// Its process runs.
    Running,
    /// Frozen by a pause.
    Paused,
    /// Being restarted by the runtime's restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// The runtime failed to stop or remove it.
    Dead,
    /// The runtime reported no state, or one this version does not know.
    Unknown,
}

impl ContainerState {
    /// The runtime's word for the state (`running`, `exited`…);
    /// `unknown` for [`ContainerState::Unknown`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the process ended, so an exit code means something.
    pub fn has_exited(self) -> bool {
        matches!(self, Self::Exited | Self::Dead)
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One RTM-owned container, as inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// What a list says about it.
    pub summary: ContainerSummary,
    /// Where the container is in the runtime's life cycle (Docker's
    /// `State.Status`).
    pub state: ContainerState,
    /// The exit code of the last run, once it exited.
    pub exit_code: Option<i64>,
    /// Docker's `State.OOMKilled`: the kernel's OOM killer ended the last
    /// run. The only word on OOM the domain trusts besides `oom` events.
    pub oom_killed: bool,
    /// Same as `summary.health` (kept here for existing callers).
    pub health: Option<DockerHealth>,
    /// Address on the engines' network; same as `summary.ip`.
    pub ip: Option<IpAddr>,
    /// When the last run started; `None` if it never ran.
    pub started_at: Option<OffsetDateTime>,
    /// When the last run ended; `None` while running or never run.
    pub finished_at: Option<OffsetDateTime>,
}

/// What happened to a container, from the runtime's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEventKind {
    /// The container started (or was restarted).
    Start,
    /// The container's process ended.
    Die {
        /// Its exit code, when the runtime reported one.
        exit_code: Option<i64>,
    },
    /// The kernel's OOM killer hit the container. Docker may send it just
    /// before or just after the matching `Die`.
    Oom,
    /// The container was removed.
    Destroy,
    /// Docker's own health check changed its verdict.
    Health(DockerHealth),
}

/// One event of an owned container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container it happened to.
    pub container_id: ContainerId,
    /// From the `rtm.game_id` label; `None` if the label is not a valid id.
    pub game_id: Option<GameId>,
    /// What happened.
    pub kind: ContainerEventKind,
    /// When the runtime saw it (nanosecond precision where available).
    pub at: OffsetDateTime,
}

/// One item of [`ContainerRuntime::events`].
#[derive(Debug)]
pub enum FeedItem {
    /// The feed is (again) subscribed. Events from before it, or from
    /// while it was lost, may be missing: check the containers.
    Connected,
    /// The connection broke (why); the runtime is reconnecting, and a
    /// `Connected` follows once it is back.
    Lost(RuntimeError),
    /// Something happened to an owned container.
    Event(ContainerEvent),
}

/// Which output of the engine a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The engine's standard output.
    Stdout,
    /// The engine's standard error.
    Stderr,
}

impl LogStream {
    /// `"stdout"` or `"stderr"`, as the admin API names them.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a container's output, without its line break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which output it was written to.
    pub stream: LogStream,
    /// When the runtime recorded the line, where it says.
    pub at: Option<OffsetDateTime>,
    /// The line as text (invalid UTF-8 replaced).
    pub text: String,
}

/// Which lines of a container's output to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many lines, the newest.
    pub tail: u32,
    /// Only lines recorded strictly after this instant.
    pub since: Option<OffsetDateTime>,
    /// At most this many bytes of text in all; the oldest lines beyond it
    /// are dropped (and the answer says so).
    pub max_bytes: usize,
}

/// The lines read, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLogs {
    /// The selected lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Whether `max_bytes` dropped lines that `tail` and `since` selected.
    pub truncated: bool,
}

/// Keeps the lines a [`LogQuery`] selects while they are read oldest
/// first, in bounded memory: at most `tail` lines and `max_bytes` of text
/// are held at any time. Shared by the adapters so they cut alike.
#[derive(Debug)]
pub struct LogTail {
    query: LogQuery,
    lines: std::collections::VecDeque<LogLine>,
    bytes: usize,
    /// Lines that passed `since` so far.
    seen: u64,
}

impl LogTail {
    /// An empty tail that keeps what `query` selects.
    pub fn new(query: LogQuery) -> Self {
        Self {
            query,
            lines: std::collections::VecDeque::new(),
            bytes: 0,
            seen: 0,
        }
    }

    /// Whether `line` passes the `since` filter (a line without a time
    /// passes: the runtime already applied `since` as well as it could).
    pub fn wanted(query: &LogQuery, line: &LogLine) -> bool {
        match (query.since, line.at) {
            (Some(since), Some(at)) => at > since,
            _ => true,
        }
    }

    /// Adds the next (newer) line.
    pub fn push(&mut self, line: LogLine) {
        if !Self::wanted(&self.query, &line) || self.query.tail == 0 {
            return;
        }
        self.seen += 1;
        self.bytes += line.text.len();
        self.lines.push_back(line);
        while self.lines.len() > self.query.tail as usize || self.bytes > self.query.max_bytes {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.lines.pop_front() {
            self.bytes -= old.text.len();
        }
    }

    /// The lines kept, oldest first; `truncated` when the byte cap (not
    /// `tail`) left out lines that `since` and `tail` selected.
    pub fn finish(self) -> ContainerLogs {
        // Truncated when the byte cap, not the tail, left lines out.
        let asked = self.seen.min(u64::from(self.query.tail));
        ContainerLogs {
            truncated: (self.lines.len() as u64) < asked,
            lines: self.lines.into(),
        }
    }
}

/// The engine containers (Docker today, an orchestrator's services later).
///
/// The adapter owns the label scheme and its owner value: it MUST never
/// list, inspect, stop, rename or remove a container that does not carry
/// its owner label (such a container is reported as `NotFound`).
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Cheap liveness check for `/readyz`: `Ok` when the runtime answered;
    /// `Unavailable` otherwise. Changes nothing.
    fn ping(&self) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Makes sure `image` is present locally, pulling it when absent.
    /// MUST return `PullFailed` when the pull fails. Idempotent: a
    /// present image is not pulled again.
    fn ensure_image(
        &self,
        image: &ImageRef,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates (does not start) a container: network (created if missing),
    /// state directory bind mount, limits, hardening, labels, env.
    /// MUST return `Conflict` when the name is taken. Not idempotent: the
    /// caller removes a leftover `rtm-<game>` first.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send;

    /// Starts a created or stopped container. Starting a running one is Ok
    /// (idempotent); a missing one is `NotFound`. Returns once the runtime
    /// reports it started, not once the engine is healthy.
    fn start(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// SIGTERM, then SIGKILL after `grace`; returns once it is stopped.
    /// Stopping a stopped container is Ok; a missing one is `NotFound`.
    fn stop(
        &self,
        id: &ContainerId,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes the container (forcefully). A missing one is `NotFound`.
    /// When the runtime is already removing it (another caller), MUST wait
    /// until it is gone and return `Ok` (or `Conflict` after a bounded wait).
    fn remove(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Renames the container. `Conflict` when the name is taken by
    /// another container; a missing one is `NotFound`.
    fn rename(
        &self,
        id: &ContainerId,
        name: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The container's current state. Its name MUST NOT carry the
    /// runtime's own prefix (Docker's leading `/`). MUST return `NotFound` for a
    /// missing or foreign container (so a vanished engine is told apart
    /// from an unreachable runtime, which is `Unavailable`).
    fn inspect(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send;

    /// Every owned container (running or not), of one game when `game` is
    /// set, in one call: state, labels, Docker health and address of each.
    /// Foreign containers are never listed. Names MUST NOT carry the
    /// runtime's own prefix (Docker's leading `/`).
    fn list(
        &self,
        game: Option<&GameId>,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, RuntimeError>> + Send;

    /// The last lines of an owned container's stdout and stderr, as
    /// `query` selects them, oldest first; never more than
    /// `query.max_bytes` of text. MUST return `NotFound` for a missing or
    /// foreign container and `Unavailable` when the runtime is unreachable.
    fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Future<Output = Result<ContainerLogs, RuntimeError>> + Send;

    /// Like [`logs`](ContainerRuntime::logs) (without the byte cap), then
    /// every new line as it is written. The stream ends when the container
    /// stops; dropping it ends the follow. Ownership is checked first: a
    /// missing or foreign container yields one `Err(NotFound)`.
    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static;

    /// The feed of owned containers' events, from now on, for as long as
    /// the stream is held. It never ends on its own: the runtime owns the
    /// connection — when it breaks the feed yields [`FeedItem::Lost`],
    /// reconnects by itself with a bounded back-off, resumes where it left
    /// off, drops what the resumption replays (no event is yielded twice)
    /// and yields [`FeedItem::Connected`] again. The first item is
    /// `Connected` once the subscription is being opened. What happened
    /// while the feed was not connected may be missing: the caller checks
    /// the containers themselves after each `Connected` (an inspect pass).
    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static;

    /// Deletes a game's host state directory (`path`, as recorded in its
    /// runtime record) and everything in it. A missing directory is Ok.
    /// Only called for `removed` games when the operator opted in
    /// (`RTM_STATE_RETENTION`). The default refuses: a runtime that cannot
    /// delete state says so instead of pretending.
    fn remove_state(&self, path: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let err = RuntimeError::Other(format!(
            "state directory {path}: removal is not supported by this runtime"
        ));
        std::future::ready(Err(err))
    }
}

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
