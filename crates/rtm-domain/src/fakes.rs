//! In-memory implementations of every port, for unit tests of the domain's
//! services (and of other crates' services, through the `fakes` feature).
//!
//! They are *fakes*, not mocks: each keeps real state and honours the
//! contract documented on its port (atomic [`UnitOfWork::commit`] with the
//! idempotency rule, keyset queries, lock timeouts, `NotFound` for missing
//! containers…), so a test asserts outcomes rather than call scripts. On top
//! of the contract each fake offers test controls: failure injection, an
//! "everything is down" switch, call counters, event injection.
//!
//! Every fake is a cheap `Clone` handle on shared state. The state sits
//! behind a std `Mutex`, which is enough here: no lock is ever held across
//! an `.await`. A poisoned mutex (a test thread panicked while holding it) is
//! recovered rather than propagated so one failing test does not cascade.
//!
//! Time is virtual: [`FakeClock::sleep`] advances the clock and yields once,
//! so retry loops and timeouts run instantly and deterministically. These
//! fakes are not meant for production and are compiled only for tests or
//! with the `fakes` feature.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use time::OffsetDateTime;

use crate::ports::{
    Adapters, Clock, ContainerEvent, ContainerEventKind, ContainerInfo, ContainerLogs,
    ContainerRuntime, ContainerSpec, ContainerSummary, DockerHealth, EngineProbe, FeedItem,
    GameLockGuard, GameLocks, HealthOutbox, HealthPublisher, HealthQuery, HealthSnapshots,
    LeaderElection, LeaderLease, LogLine, LogQuery, LogStream, LogTail, OperationLog,
    OperationQuery, Ports, ProbeTarget, RecordQuery, Retention, RuntimeRecords, Telemetry,
    UnitOfWork,
};
use crate::{
    Commit, ContainerId, GameId, HealthEvent, HealthSnapshot, HealthStatus, ImageRef, LockError,
    OpKind, OpSource, OperationEntry, Outcome, ProbeError, PublishError, RecordedRequest,
    RuntimeError, RuntimeRecord, RuntimeStatus, StoreError,
};

/// Locks a std mutex, recovering the data if a panicking test poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A future that returns `Pending` once (waking itself) so other tasks run.
#[derive(Debug, Default)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The error the "down" switches inject.
fn down(what: &str) -> crate::BoxError {
    format!("{what} is down (fake)").into()
}

// ================================================================ clock

/// A settable virtual clock. `sleep(d)` advances it by `d` and yields once.
#[derive(Debug, Clone)]
pub struct FakeClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    now: OffsetDateTime,
    sleeps: Vec<Duration>,
}

impl FakeClock {
    /// A clock reading `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// A clock at 2030-01-01T00:00:00Z (a fixed, readable instant).
    pub fn at_epoch_2030() -> Self {
        Self::new(time::macros::datetime!(2030-01-01 00:00:00 UTC))
    }

    pub fn set(&self, now: OffsetDateTime) {
        lock(&self.inner).now = now;
    }

    pub fn advance(&self, d: Duration) {
        let mut s = lock(&self.inner);
        s.now += d;
    }

    /// Every duration passed to [`Clock::sleep`], in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.inner).sleeps.clone()
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::at_epoch_2030()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        lock(&self.inner).now
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        {
            let mut s = lock(&self.inner);
            s.now += d;
            s.sleeps.push(d);
        }
        YieldNow::default()
    }
}

// ================================================================ store

/// In-memory storage: records, operation log, snapshots and outbox.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<StoreState>>,
}

#[derive(Debug, Default)]
struct StoreState {
    records: BTreeMap<GameId, RuntimeRecord>,
    operations: Vec<OperationEntry>,
    /// The request fingerprint of each operation row, by row id.
    requests: BTreeMap<i64, String>,
    health: BTreeMap<GameId, HealthSnapshot>,
    /// Outbox, ascending id; the flag says published.
    outbox: Vec<(HealthEvent, bool)>,
    next_op_id: i64,
    next_event_id: i64,
    unavailable: bool,
    fail_commits: usize,
    commits: Vec<Commit>,
}

impl StoreState {
    fn check_up(&self) -> Result<(), StoreError> {
        if self.unavailable {
            Err(StoreError::Unavailable(down("database")))
        } else {
            Ok(())
        }
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with `StoreError::Unavailable` while `down`.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }

    /// Makes the next `n` commits fail with `Unavailable` (nothing written).
    pub fn fail_next_commits(&self, n: usize) {
        lock(&self.inner).fail_commits = n;
    }

    /// Writes a record directly (test setup), bypassing `commit`.
    pub fn put_record(&self, record: RuntimeRecord) {
        lock(&self.inner)
            .records
            .insert(record.game_id.clone(), record);
    }

    /// Writes a snapshot directly (test setup), without an outbox event.
    pub fn put_health(&self, snapshot: HealthSnapshot) {
        lock(&self.inner)
            .health
            .insert(snapshot.game_id.clone(), snapshot);
    }

    pub fn record(&self, game: &GameId) -> Option<RuntimeRecord> {
        lock(&self.inner).records.get(game).cloned()
    }

    pub fn health(&self, game: &GameId) -> Option<HealthSnapshot> {
        lock(&self.inner).health.get(game).cloned()
    }

    /// Every operation row, in insertion (id) order.
    pub fn operations(&self) -> Vec<OperationEntry> {
        lock(&self.inner).operations.clone()
    }

    /// Every outbox event ever queued, in id order, published or not.
    pub fn events(&self) -> Vec<HealthEvent> {
        lock(&self.inner)
            .outbox
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Every successful commit, in order.
    pub fn commits(&self) -> Vec<Commit> {
        lock(&self.inner).commits.clone()
    }
}

impl RuntimeRecords for MemStore {
    fn get_record(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<RuntimeRecord>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| s.records.get(game).cloned());
        std::future::ready(r)
    }

    fn get_record_with_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<(RuntimeRecord, Option<HealthSnapshot>)>, StoreError>> + Send
    {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .get(game)
                .map(|r| (r.clone(), s.health.get(game).cloned()))
        });
        std::future::ready(r)
    }

    fn list_records(
        &self,
        query: &RecordQuery,
    ) -> impl Future<Output = Result<Vec<RuntimeRecord>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .values()
                .filter(|r| query.status.is_none_or(|st| r.status == st))
                .filter(|r| query.last_op_before.is_none_or(|t| r.last_op_at < t))
                .filter(|r| query.after.as_ref().is_none_or(|a| &r.game_id > a))
                .take(query.limit as usize)
                .cloned()
                .collect()
        });
        std::future::ready(r)
    }

    fn find_case_collision(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<GameId>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .values()
                .find(|r| {
                    r.status != RuntimeStatus::Removed
                        && &r.game_id != game
                        && r.game_id.folded() == game.folded()
                })
                .map(|r| r.game_id.clone())
        });
        std::future::ready(r)
    }
}

impl OperationLog for MemStore {
    fn find_by_source_ref(
        &self,
        game: &GameId,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.operations
                .iter()
                .find(|o| {
                    &o.game_id == game
                        && o.source == source
                        && o.source_ref == source_ref
                        && o.finished_at.is_some()
                })
                .cloned()
        });
        std::future::ready(r)
    }

    fn find_source_ref(
        &self,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<RecordedRequest>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.operations
                .iter()
                .find(|o| {
                    o.source == source && o.source_ref == source_ref && o.finished_at.is_some()
                })
                .map(|o| RecordedRequest {
                    entry: o.clone(),
                    request: s.requests.get(&o.id).cloned().unwrap_or_default(),
                })
        });
        std::future::ready(r)
    }

    fn list_operations(
        &self,
        query: &OperationQuery,
    ) -> impl Future<Output = Result<Vec<OperationEntry>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            let cursor = query.before_id.and_then(|b| {
                s.operations
                    .iter()
                    .find(|o| o.id == b)
                    .map(|o| (o.started_at, o.id))
            });
            let mut rows: Vec<OperationEntry> = s
                .operations
                .iter()
                .filter(|o| query.game_id.as_ref().is_none_or(|g| &o.game_id == g))
                .filter(|o| query.kind.is_none_or(|k| o.kind == k))
                .filter(|o| query.outcome.is_none_or(|x| o.outcome == x))
                .filter(|o| query.source.is_none_or(|x| o.source == x))
                .filter(|o| query.since.is_none_or(|t| o.started_at >= t))
                .filter(|o| {
                    // Same contract as the adapter: strictly after the
                    // cursor row in (started_at DESC, id DESC) order.
                    query.before_id.is_none_or(|_| {
                        cursor.is_some_and(|(t, id)| (o.started_at, o.id) < (t, id))
                    })
                })
                .cloned()
                .collect();
            rows.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            rows.truncate(query.limit as usize);
            rows
        });
        std::future::ready(r)
    }
}

impl HealthSnapshots for MemStore {
    fn get_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<HealthSnapshot>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| s.health.get(game).cloned());
        std::future::ready(r)
    }

    fn list_health(
        &self,
        query: &HealthQuery,
    ) -> impl Future<Output = Result<Vec<HealthSnapshot>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.health
                .values()
                .filter(|h| query.status.is_none_or(|st| h.status == st))
                .filter(|h| query.after.as_ref().is_none_or(|a| &h.game_id > a))
                .take(query.limit as usize)
                .cloned()
                .collect()
        });
        std::future::ready(r)
    }
}

impl HealthOutbox for MemStore {
    fn pending_events(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<HealthEvent>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.outbox
                .iter()
                .filter(|(_, published)| !published)
                .take(limit as usize)
                .map(|(e, _)| e.clone())
                .collect()
        });
        std::future::ready(r)
    }

    fn mark_published(&self, ids: &[i64]) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            for (e, published) in &mut s.outbox {
                if ids.contains(&e.id) {
                    *published = true;
                }
            }
        });
        std::future::ready(r)
    }

    fn pending_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s
            .check_up()
            .map(|()| s.outbox.iter().filter(|(_, p)| !p).count() as u64);
        std::future::ready(r)
    }
}

impl Retention for MemStore {
    fn delete_operations_before(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            // The newest row (highest id) of each live game is kept.
            let mut newest: BTreeMap<GameId, i64> = BTreeMap::new();
            for op in &s.operations {
                let live = s
                    .records
                    .get(&op.game_id)
                    .is_some_and(|r| r.status != RuntimeStatus::Removed);
                if live {
                    let e = newest.entry(op.game_id.clone()).or_insert(op.id);
                    *e = (*e).max(op.id);
                }
            }
            let mut doomed: Vec<(OffsetDateTime, i64)> = s
                .operations
                .iter()
                .filter(|op| op.started_at < cutoff && newest.get(&op.game_id) != Some(&op.id))
                .map(|op| (op.started_at, op.id))
                .collect();
            doomed.sort();
            doomed.truncate(limit as usize);
            let ids: std::collections::BTreeSet<i64> =
                doomed.into_iter().map(|(_, id)| id).collect();
            s.operations.retain(|op| !ids.contains(&op.id));
            ids.len() as u64
        });
        std::future::ready(r)
    }

    fn delete_removed_game(
        &self,
        game: &GameId,
        cutoff: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            let expired = s
                .records
                .get(game)
                .is_some_and(|r| r.status == RuntimeStatus::Removed && r.last_op_at < cutoff);
            if expired {
                s.records.remove(game);
                s.health.remove(game);
            }
            expired
        });
        std::future::ready(r)
    }
}

impl UnitOfWork for MemStore {
    fn commit(
        &self,
        commit: Commit,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send {
        let mut s = lock(&self.inner);
        std::future::ready(apply_commit(&mut s, commit))
    }

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(lock(&self.inner).check_up())
    }
}

/// The whole transaction, checked before anything is written so a refusal
/// leaves the state untouched (all or nothing).
fn apply_commit(s: &mut StoreState, commit: Commit) -> Result<Option<OperationEntry>, StoreError> {
    s.check_up()?;
    if s.fail_commits > 0 {
        s.fail_commits -= 1;
        return Err(StoreError::Unavailable(down("database")));
    }
    if let Some(op) = &commit.operation {
        // V2's index (per game) and V3's (per source, rows with a request).
        let duplicate = !op.source_ref.is_empty()
            && s.operations.iter().any(|o| {
                o.source == op.source
                    && o.source_ref == op.source_ref
                    && (o.game_id == op.game_id
                        || (!op.request.is_empty()
                            && s.requests.get(&o.id).is_some_and(|r| !r.is_empty())))
            });
        if duplicate {
            return Err(StoreError::AlreadyExists(format!(
                "operation ({}, {}, {}) already recorded",
                op.game_id, op.source, op.source_ref
            )));
        }
    }
    s.commits.push(commit.clone());
    if let Some(record) = commit.record {
        s.records.insert(record.game_id.clone(), record);
    }
    let entry = commit.operation.map(|op| {
        s.next_op_id += 1;
        let entry = OperationEntry {
            id: s.next_op_id,
            game_id: op.game_id,
            kind: op.kind,
            source: op.source,
            source_ref: op.source_ref,
            image_ref: op.image_ref,
            container_id: op.container_id,
            outcome: op.outcome,
            error: op.error,
            started_at: op.started_at,
            finished_at: Some(op.finished_at),
        };
        s.requests.insert(entry.id, op.request);
        s.operations.push(entry.clone());
        entry
    });
    if let Some(write) = commit.health {
        s.health
            .insert(write.snapshot.game_id.clone(), write.snapshot.clone());
        if write.publish {
            s.next_event_id += 1;
            let event = HealthEvent {
                id: s.next_event_id,
                snapshot: write.snapshot,
            };
            s.outbox.push((event, false));
        }
    }
    Ok(entry)
}

// ================================================================ locks

/// Per-game locks in memory, with the bounded-wait contract of
/// [`GameLocks::acquire`] measured on the [`FakeClock`].
#[derive(Debug, Clone)]
pub struct MemLocks {
    inner: Arc<Mutex<LockState>>,
    clock: FakeClock,
}

#[derive(Debug, Default)]
struct LockState {
    /// Held locks by [`GameId::folded`], like the PostgreSQL adapter.
    held: HashSet<String>,
    unavailable: bool,
    acquisitions: usize,
}

/// A held [`MemLocks`] lock; dropping it frees the game.
#[derive(Debug)]
pub struct MemLockGuard {
    inner: Arc<Mutex<LockState>>,
    game: GameId,
}

impl Drop for MemLockGuard {
    fn drop(&mut self) {
        lock(&self.inner).held.remove(&self.game.folded());
    }
}

impl GameLockGuard for MemLockGuard {
    fn release(self) -> impl Future<Output = ()> + Send {
        drop(self);
        std::future::ready(())
    }
}

impl MemLocks {
    pub fn new(clock: FakeClock) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }

    /// Makes `acquire` fail with `LockError::Store(Unavailable)` while `down`.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }

    pub fn is_locked(&self, game: &GameId) -> bool {
        lock(&self.inner).held.contains(&game.folded())
    }

    /// How many locks were granted so far.
    pub fn acquisitions(&self) -> usize {
        lock(&self.inner).acquisitions
    }

    fn try_take(&self, game: &GameId) -> Result<Option<MemLockGuard>, LockError> {
        let mut s = lock(&self.inner);
        if s.unavailable {
            return Err(LockError::Store(StoreError::Unavailable(down(
                "lock service",
            ))));
        }
        if !s.held.insert(game.folded()) {
            return Ok(None);
        }
        s.acquisitions += 1;
        Ok(Some(MemLockGuard {
            inner: Arc::clone(&self.inner),
            game: game.clone(),
        }))
    }
}

impl GameLocks for MemLocks {
    type Guard = MemLockGuard;

    fn acquire(
        &self,
        game: &GameId,
        wait: Duration,
    ) -> impl Future<Output = Result<MemLockGuard, LockError>> + Send {
        let this = self.clone();
        let game = game.clone();
        async move {
            // Poll in small virtual-time steps: every step yields, so a
            // holder running in another task gets to finish and release,
            // and the whole wait costs at most ~33 polls.
            let step = (wait / 32).max(Duration::from_millis(1));
            let mut waited = Duration::ZERO;
            loop {
                if let Some(guard) = this.try_take(&game)? {
                    return Ok(guard);
                }
                if waited >= wait {
                    return Err(LockError::Timeout);
                }
                this.clock.sleep(step).await;
                waited += step;
            }
        }
    }
}

/// In-memory leader election: one lease per role at a time.
#[derive(Debug, Clone, Default)]
pub struct MemLeader {
    inner: Arc<Mutex<LeaderState>>,
}

#[derive(Debug, Default)]
struct LeaderState {
    /// Role → generation of the current lease; a revoked lease's
    /// generation no longer matches.
    held: HashMap<String, u64>,
    generation: u64,
    unavailable: bool,
}

/// A lease of [`MemLeader`].
#[derive(Debug)]
pub struct MemLease {
    inner: Arc<Mutex<LeaderState>>,
    role: String,
    generation: u64,
}

impl MemLeader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes leadership of `role` away from its holder (a lost session).
    pub fn revoke(&self, role: &str) {
        lock(&self.inner).held.remove(role);
    }

    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }
}

impl LeaderElection for MemLeader {
    type Lease = MemLease;

    fn try_acquire(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<MemLease>, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = if s.unavailable {
            Err(StoreError::Unavailable(down("database")))
        } else if s.held.contains_key(role) {
            Ok(None)
        } else {
            s.generation += 1;
            let generation = s.generation;
            s.held.insert(role.to_owned(), generation);
            Ok(Some(MemLease {
                inner: Arc::clone(&self.inner),
                role: role.to_owned(),
                generation,
            }))
        };
        std::future::ready(r)
    }
}

impl MemLease {
    fn held(&self) -> bool {
        let s = lock(&self.inner);
        !s.unavailable && s.held.get(&self.role) == Some(&self.generation)
    }
}

impl Drop for MemLease {
    fn drop(&mut self) {
        let mut s = lock(&self.inner);
        if s.held.get(&self.role) == Some(&self.generation) {
            s.held.remove(&self.role);
        }
    }
}

impl LeaderLease for MemLease {
    fn is_held(&self) -> impl Future<Output = bool> + Send {
        std::future::ready(self.held())
    }

    fn release(self) -> impl Future<Output = ()> + Send {
        drop(self);
        std::future::ready(())
    }
}

// ================================================================ runtime

/// The [`ContainerRuntime`] methods, for failure injection and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeCall {
    Ping,
    EnsureImage,
    Create,
    Start,
    Stop,
    Remove,
    Rename,
    Inspect,
    List,
    Events,
    Logs,
}

impl RuntimeCall {
    /// Calls that change something in Docker.
    pub const MUTATING: &'static [RuntimeCall] = &[
        RuntimeCall::EnsureImage,
        RuntimeCall::Create,
        RuntimeCall::Start,
        RuntimeCall::Stop,
        RuntimeCall::Remove,
        RuntimeCall::Rename,
    ];
}

/// An in-memory container runtime that behaves like Docker where the
/// domain cares: names are unique, stopped containers are kept, actions
/// emit the events Docker would (`start`; `die` with exit code 0 on stop;
/// `destroy` on remove), and `since` replays past events at one-second
/// precision like Docker does.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<RuntimeState>>,
    clock: FakeClock,
}

#[derive(Debug, Default)]
struct RuntimeState {
    containers: BTreeMap<ContainerId, ContainerInfo>,
    images: HashSet<String>,
    /// Images whose pull fails (with this message).
    unpullable: HashMap<String, String>,
    /// Images whose engine exits with this code right after start.
    broken: HashMap<String, i64>,
    failures: HashMap<RuntimeCall, VecDeque<RuntimeError>>,
    unavailable: bool,
    calls: Vec<(RuntimeCall, String)>,
    /// State directories deleted through `remove_state`, in order.
    removed_states: Vec<String>,
    next_id: u64,
    next_ip: u32,
    log: Vec<ContainerEvent>,
    /// What each container wrote, oldest first.
    output: HashMap<ContainerId, Vec<LogLine>>,
    subscribers: Vec<Arc<Mutex<Chan>>>,
}

impl RuntimeState {
    /// Records the call and returns the injected failure, if any.
    fn enter(&mut self, call: RuntimeCall, arg: &str) -> Result<(), RuntimeError> {
        self.calls.push((call, arg.to_owned()));
        if self.unavailable {
            return Err(RuntimeError::Unavailable(down("docker")));
        }
        match self.failures.get_mut(&call).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn emit(&mut self, event: ContainerEvent) {
        self.log.push(event.clone());
        // A feed whose connection is down delivers nothing (the adapter's
        // inspect-on-reconnect is what catches up).
        if self.unavailable {
            return;
        }
        // Drop subscribers whose stream was dropped (we hold the last Arc).
        self.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &self.subscribers {
            lock(chan).push(FeedItem::Event(event.clone()));
        }
    }

    fn get_mut(&mut self, id: &ContainerId) -> Result<&mut ContainerInfo, RuntimeError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    /// The container as Docker reports it: the summary's address and
    /// health are the current ones (a stopped container has no address).
    fn view(info: &ContainerInfo) -> ContainerInfo {
        let mut v = info.clone();
        v.summary.ip = if info.summary.running { info.ip } else { None };
        v.summary.health = info.health;
        v
    }

    fn mark_exited(info: &mut ContainerInfo, code: i64, oom: bool, at: OffsetDateTime) {
        info.summary.running = false;
        info.status = "exited".into();
        info.exit_code = Some(code);
        info.oom_killed = oom;
        info.finished_at = Some(at);
        info.health = None;
    }
}

impl FakeRuntime {
    pub fn new(clock: FakeClock) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }

    /// State directories deleted through `remove_state`, in order.
    pub fn removed_states(&self) -> Vec<String> {
        lock(&self.inner).removed_states.clone()
    }

    /// Makes every call fail with `Unavailable` while `down`. The open
    /// event feeds yield `Lost` when it goes down and `Connected` when it
    /// is back, as the Docker adapter's reconnecting feed does.
    pub fn set_unavailable(&self, down: bool) {
        let mut s = lock(&self.inner);
        if s.unavailable == down {
            return;
        }
        s.unavailable = down;
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &s.subscribers {
            lock(chan).push(if down {
                FeedItem::Lost(RuntimeError::Unavailable(self::down("docker")))
            } else {
                FeedItem::Connected
            });
        }
    }

    /// Makes the next call to `call` fail with `error` (queued: several
    /// injections fail several calls).
    pub fn fail_next(&self, call: RuntimeCall, error: RuntimeError) {
        lock(&self.inner)
            .failures
            .entry(call)
            .or_default()
            .push_back(error);
    }

    /// Marks an image as present locally (no pull needed).
    pub fn add_image(&self, image: &str) {
        lock(&self.inner).images.insert(image.to_owned());
    }

    pub fn has_image(&self, image: &str) -> bool {
        lock(&self.inner).images.contains(image)
    }

    /// Makes pulling `image` fail with `message`.
    pub fn set_unpullable(&self, image: &str, message: &str) {
        lock(&self.inner)
            .unpullable
            .insert(image.to_owned(), message.to_owned());
    }

    /// Containers of `image` exit with `exit_code` right after they start
    /// (like the `broken` engine stub).
    pub fn set_broken(&self, image: &str, exit_code: i64) {
        lock(&self.inner).broken.insert(image.to_owned(), exit_code);
    }

    /// How many times `call` was made (failed calls included).
    pub fn calls(&self, call: RuntimeCall) -> usize {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(c, _)| *c == call)
            .count()
    }

    /// Every call with its main argument (container id, name or image).
    pub fn call_log(&self) -> Vec<(RuntimeCall, String)> {
        lock(&self.inner).calls.clone()
    }

    /// How many calls changed (or tried to change) something.
    pub fn mutating_calls(&self) -> usize {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(c, _)| RuntimeCall::MUTATING.contains(c))
            .count()
    }

    pub fn container(&self, id: &ContainerId) -> Option<ContainerInfo> {
        lock(&self.inner).containers.get(id).map(RuntimeState::view)
    }

    /// Gives the container another address, as a restart, a start after a
    /// stop or a network reconnect does on Docker (emits nothing).
    pub fn readdress(&self, id: &ContainerId, ip: IpAddr) {
        if let Ok(info) = lock(&self.inner).get_mut(id) {
            info.ip = Some(ip);
        }
    }

    pub fn containers(&self) -> Vec<ContainerInfo> {
        lock(&self.inner).containers.values().cloned().collect()
    }

    /// Adds (or replaces) a container as-is, e.g. one left by a crash.
    pub fn insert(&self, info: ContainerInfo) {
        lock(&self.inner)
            .containers
            .insert(info.summary.id.clone(), info);
    }

    /// Creates and starts a container for `game` outside the domain (test
    /// setup), returning its id. Emits no event.
    pub fn spawn_running(&self, game: &GameId, image: &ImageRef, state_path: &str) -> ContainerId {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let id = Self::fresh_id(&mut s);
        let ip = Self::fresh_ip(&mut s);
        s.images.insert(image.to_string());
        let info = ContainerInfo {
            summary: ContainerSummary {
                id: id.clone(),
                name: game.container_name(),
                game_id: Some(game.clone()),
                image_ref: image.to_string(),
                state_path: state_path.to_owned(),
                running: true,
                created_at: now,
                health: None,
                ip: Some(ip),
            },
            status: "running".into(),
            exit_code: None,
            oom_killed: false,
            health: None,
            ip: Some(ip),
            started_at: Some(now),
            finished_at: None,
        };
        s.containers.insert(id.clone(), info);
        id
    }

    fn fresh_id(s: &mut RuntimeState) -> ContainerId {
        s.next_id += 1;
        // Docker ids are 64 hex digits; a recognisable prefix helps debugging.
        let hex = format!("fa4e{:060x}", s.next_id);
        ContainerId::new(hex).unwrap_or_else(|| unreachable!("non-empty by construction"))
    }

    fn fresh_ip(s: &mut RuntimeState) -> IpAddr {
        s.next_ip += 1;
        let n = s.next_ip;
        IpAddr::V4(Ipv4Addr::new(10, 88, (n >> 8) as u8, (n & 0xff) as u8))
    }

    fn event(&self, s: &mut RuntimeState, id: &ContainerId, kind: ContainerEventKind) {
        let game_id = s.containers.get(id).and_then(|c| c.summary.game_id.clone());
        s.emit(ContainerEvent {
            container_id: id.clone(),
            game_id,
            kind,
            at: self.clock.now(),
        });
    }

    /// The engine exits on its own with `exit_code` (emits `die`).
    pub fn crash(&self, id: &ContainerId, exit_code: i64) {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            RuntimeState::mark_exited(info, exit_code, false, now);
            self.event(
                &mut s,
                id,
                ContainerEventKind::Die {
                    exit_code: Some(exit_code),
                },
            );
        }
    }

    /// The kernel OOM-kills the engine: `oom` then `die` with 137, and
    /// inspect shows `OOMKilled`.
    pub fn oom_kill(&self, id: &ContainerId) {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            RuntimeState::mark_exited(info, 137, true, now);
            self.event(&mut s, id, ContainerEventKind::Oom);
            self.event(
                &mut s,
                id,
                ContainerEventKind::Die {
                    exit_code: Some(137),
                },
            );
        }
    }

    /// An OOM kill as Docker reports it when containerd's exit event
    /// overtakes its OOM event: `die` with 137 and no `OOMKilled` yet;
    /// [`FakeRuntime::late_oom`] delivers the rest.
    pub fn oom_kill_exit_first(&self, id: &ContainerId) {
        self.crash(id, 137);
    }

    /// The late half of [`FakeRuntime::oom_kill_exit_first`]: `oom` is
    /// emitted, and with `flag` inspect shows `OOMKilled` from now on (some
    /// Docker versions never set it once the exit is recorded).
    pub fn late_oom(&self, id: &ContainerId, flag: bool) {
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            info.oom_killed = flag;
            self.event(&mut s, id, ContainerEventKind::Oom);
        }
    }

    /// Someone removes the container behind RTM's back (emits `destroy`
    /// when `with_event`, else it silently vanishes, as if the event was
    /// missed).
    pub fn vanish(&self, id: &ContainerId, with_event: bool) {
        let mut s = lock(&self.inner);
        if with_event {
            self.event(&mut s, id, ContainerEventKind::Destroy);
        }
        s.containers.remove(id);
    }

    /// Sets Docker's own health-check result (emits `health_status` when
    /// it is a change).
    pub fn set_health(&self, id: &ContainerId, health: Option<DockerHealth>) {
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            let changed = info.health != health;
            info.health = health;
            if let (true, Some(h)) = (changed, health) {
                self.event(&mut s, id, ContainerEventKind::Health(h));
            }
        }
    }

    /// Injects an arbitrary event (recorded for `since` replays too).
    /// Appends a line to the container's output, stamped with the clock.
    pub fn write_log(&self, id: &ContainerId, stream: LogStream, text: &str) {
        let at = self.clock.now();
        lock(&self.inner)
            .output
            .entry(id.clone())
            .or_default()
            .push(LogLine {
                stream,
                at: Some(at),
                text: text.to_owned(),
            });
    }

    pub fn emit(&self, event: ContainerEvent) {
        lock(&self.inner).emit(event);
    }

    /// Breaks every open event feed's connection, which reconnects at
    /// once: each yields `Lost`, then `Connected`.
    pub fn break_feeds(&self) {
        let mut s = lock(&self.inner);
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &s.subscribers {
            let mut c = lock(chan);
            c.push(FeedItem::Lost(RuntimeError::Unavailable(
                "connection reset".into(),
            )));
            c.push(FeedItem::Connected);
        }
    }

    /// How many events wait in open streams, not yet taken by their
    /// subscriber (0 once a follower has caught up).
    pub fn undelivered(&self) -> usize {
        let s = lock(&self.inner);
        s.subscribers.iter().map(|c| lock(c).queue.len()).sum()
    }

    /// How many event feeds are open (held by someone).
    pub fn subscribers(&self) -> usize {
        let mut s = lock(&self.inner);
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        s.subscribers.len()
    }
}

impl ContainerRuntime for FakeRuntime {
    fn ping(&self) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        std::future::ready(lock(&self.inner).enter(RuntimeCall::Ping, ""))
    }

    fn ensure_image(
        &self,
        image: &ImageRef,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let name = image.to_string();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::EnsureImage, &name).and_then(|()| {
            if s.images.contains(&name) {
                return Ok(());
            }
            match s.unpullable.get(&name) {
                Some(msg) => Err(RuntimeError::PullFailed(msg.clone())),
                None => {
                    s.images.insert(name);
                    Ok(())
                }
            }
        });
        std::future::ready(r)
    }

    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Create, &spec.name).and_then(|()| {
            if s.containers.values().any(|c| c.summary.name == spec.name) {
                return Err(RuntimeError::Conflict(format!(
                    "container name {:?} is already in use",
                    spec.name
                )));
            }
            let image = spec.image.to_string();
            if !s.images.contains(&image) {
                return Err(RuntimeError::Other(format!("no such image: {image}")));
            }
            // The address is assigned at the first start.
            let id = Self::fresh_id(&mut s);
            let info = ContainerInfo {
                summary: ContainerSummary {
                    id: id.clone(),
                    name: spec.name.clone(),
                    game_id: Some(spec.game_id.clone()),
                    image_ref: image,
                    state_path: spec.state_path.clone(),
                    running: false,
                    created_at: now,
                    health: None,
                    ip: None,
                },
                status: "created".into(),
                exit_code: None,
                oom_killed: false,
                health: None,
                ip: None,
                started_at: None,
                finished_at: None,
            };
            s.containers.insert(id.clone(), info);
            Ok(id)
        });
        std::future::ready(r)
    }

    fn start(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Start, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            if info.summary.running {
                return Ok(());
            }
            let ip = match info.ip {
                Some(ip) => ip,
                None => Self::fresh_ip(&mut s),
            };
            let info = s.get_mut(id)?;
            info.ip = Some(ip);
            info.summary.running = true;
            info.status = "running".into();
            info.exit_code = None;
            info.oom_killed = false;
            info.started_at = Some(now);
            info.finished_at = None;
            let image = info.summary.image_ref.clone();
            self.event(&mut s, id, ContainerEventKind::Start);
            if let Some(&code) = s.broken.get(&image) {
                if let Ok(info) = s.get_mut(id) {
                    RuntimeState::mark_exited(info, code, false, now);
                }
                self.event(
                    &mut s,
                    id,
                    ContainerEventKind::Die {
                        exit_code: Some(code),
                    },
                );
            }
            Ok(())
        });
        std::future::ready(r)
    }

    fn stop(
        &self,
        id: &ContainerId,
        _grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Stop, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            if info.summary.running {
                RuntimeState::mark_exited(info, 0, false, now);
                self.event(&mut s, id, ContainerEventKind::Die { exit_code: Some(0) });
            }
            Ok(())
        });
        std::future::ready(r)
    }

    fn remove_state(&self, path: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = if s.unavailable {
            Err(RuntimeError::Unavailable(down("docker")))
        } else {
            s.removed_states.push(path.to_owned());
            Ok(())
        };
        std::future::ready(r)
    }

    fn remove(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Remove, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            // Forced removal kills a running container first.
            if info.summary.running {
                RuntimeState::mark_exited(info, 137, false, now);
                self.event(
                    &mut s,
                    id,
                    ContainerEventKind::Die {
                        exit_code: Some(137),
                    },
                );
            }
            self.event(&mut s, id, ContainerEventKind::Destroy);
            s.containers.remove(id);
            Ok(())
        });
        std::future::ready(r)
    }

    fn rename(
        &self,
        id: &ContainerId,
        name: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Rename, id.as_str()).and_then(|()| {
            let taken = s
                .containers
                .values()
                .any(|c| c.summary.name == name && &c.summary.id != id);
            if taken {
                return Err(RuntimeError::Conflict(format!(
                    "container name {name:?} is already in use"
                )));
            }
            s.get_mut(id)?.summary.name = name.to_owned();
            Ok(())
        });
        std::future::ready(r)
    }

    fn inspect(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s
            .enter(RuntimeCall::Inspect, id.as_str())
            .and_then(|()| s.get_mut(id).map(|c| RuntimeState::view(c)));
        std::future::ready(r)
    }

    fn list(
        &self,
        game: Option<&GameId>,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let arg = game.map(GameId::as_str).unwrap_or("");
        let r = s.enter(RuntimeCall::List, arg).map(|()| {
            s.containers
                .values()
                .filter(|c| game.is_none_or(|g| c.summary.game_id.as_ref() == Some(g)))
                .map(|c| RuntimeState::view(c).summary)
                .collect()
        });
        std::future::ready(r)
    }

    fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Future<Output = Result<ContainerLogs, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s
            .enter(RuntimeCall::Logs, id.as_str())
            .and_then(|()| s.get_mut(id).map(|_| ()))
            .map(|()| {
                let mut tail = LogTail::new(*query);
                for line in s.output.get(id).into_iter().flatten() {
                    tail.push(line.clone());
                }
                tail.finish()
            });
        std::future::ready(r)
    }

    /// The fake never waits for new lines: it yields what `logs` would
    /// (without the byte cap) and ends, as if the container stopped.
    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static {
        let uncapped = LogQuery {
            max_bytes: usize::MAX,
            ..*query
        };
        let items: VecDeque<_> = {
            let mut s = lock(&self.inner);
            match s
                .enter(RuntimeCall::Logs, id.as_str())
                .and_then(|()| s.get_mut(id).map(|_| ()))
            {
                Err(e) => VecDeque::from([Err(e)]),
                Ok(()) => {
                    let mut tail = LogTail::new(uncapped);
                    for line in s.output.get(id).into_iter().flatten() {
                        tail.push(line.clone());
                    }
                    tail.finish().lines.into_iter().map(Ok).collect()
                }
            }
        };
        LineStream { items }
    }

    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static {
        let mut s = lock(&self.inner);
        let chan = Arc::new(Mutex::new(Chan::default()));
        {
            let mut c = lock(&chan);
            c.push(FeedItem::Connected);
            if let Err(e) = s.enter(RuntimeCall::Events, "") {
                c.push(FeedItem::Lost(e));
            }
        }
        s.subscribers.push(Arc::clone(&chan));
        EventStream { chan }
    }
}

/// The shared queue behind one event feed (it never ends, as the port
/// promises).
#[derive(Debug, Default)]
struct Chan {
    queue: VecDeque<FeedItem>,
    waker: Option<Waker>,
}

impl Chan {
    fn push(&mut self, item: FeedItem) {
        self.queue.push_back(item);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The stream returned by [`FakeRuntime::events`].
#[derive(Debug)]
pub struct EventStream {
    chan: Arc<Mutex<Chan>>,
}

impl Stream for EventStream {
    type Item = FeedItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut c = lock(&self.chan);
        if let Some(item) = c.queue.pop_front() {
            Poll::Ready(Some(item))
        } else {
            c.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// The stream returned by [`FakeRuntime::follow_logs`].
#[derive(Debug)]
pub struct LineStream {
    items: VecDeque<Result<LogLine, RuntimeError>>,
}

impl Stream for LineStream {
    type Item = Result<LogLine, RuntimeError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.items.pop_front())
    }
}

// ================================================================ probe

/// A scripted engine probe.
///
/// Results are looked up by the target's IP (as text) first, then by its
/// endpoint; each key has a queue of one-shot results and then a sticky
/// one. Targets with no script get the default (`Ok` unless changed).
#[derive(Debug, Clone)]
pub struct FakeProbe {
    inner: Arc<Mutex<ProbeState>>,
}

#[derive(Debug)]
struct ProbeState {
    queued: HashMap<String, VecDeque<Result<(), ProbeError>>>,
    sticky: HashMap<String, Result<(), ProbeError>>,
    default: Result<(), ProbeError>,
    calls: Vec<ProbeTarget>,
}

impl Default for FakeProbe {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ProbeState {
                queued: HashMap::new(),
                sticky: HashMap::new(),
                default: Ok(()),
                calls: Vec::new(),
            })),
        }
    }
}

impl FakeProbe {
    pub fn new() -> Self {
        Self::default()
    }

    /// The result for targets without a script.
    pub fn set_default(&self, result: Result<(), ProbeError>) {
        lock(&self.inner).default = result;
    }

    /// The lasting result for `key` (an IP as text, or an endpoint).
    pub fn set(&self, key: &str, result: Result<(), ProbeError>) {
        lock(&self.inner).sticky.insert(key.to_owned(), result);
    }

    /// A one-shot result for `key`, used before the lasting one.
    pub fn push(&self, key: &str, result: Result<(), ProbeError>) {
        lock(&self.inner)
            .queued
            .entry(key.to_owned())
            .or_default()
            .push_back(result);
    }

    /// Every target probed, in order.
    pub fn calls(&self) -> Vec<ProbeTarget> {
        lock(&self.inner).calls.clone()
    }

    fn answer(&self, target: &ProbeTarget) -> Result<(), ProbeError> {
        let mut s = lock(&self.inner);
        s.calls.push(target.clone());
        let keys: Vec<String> = target
            .ip
            .map(|ip| ip.to_string())
            .into_iter()
            .chain(std::iter::once(target.endpoint.clone()))
            .collect();
        for key in &keys {
            if let Some(r) = s.queued.get_mut(key).and_then(VecDeque::pop_front) {
                return r;
            }
        }
        for key in &keys {
            if let Some(r) = s.sticky.get(key) {
                return r.clone();
            }
        }
        s.default.clone()
    }
}

impl EngineProbe for FakeProbe {
    fn probe(&self, target: &ProbeTarget) -> impl Future<Output = Result<(), ProbeError>> + Send {
        std::future::ready(self.answer(target))
    }
}

// ================================================================ publisher

/// A health publisher that keeps what it published, with failure injection.
#[derive(Debug, Clone, Default)]
pub struct FakePublisher {
    inner: Arc<Mutex<PublisherState>>,
}

#[derive(Debug, Default)]
struct PublisherState {
    published: Vec<HealthEvent>,
    fail_next: usize,
    down: bool,
    attempts: usize,
}

impl FakePublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every publish fail while `down` (Redis unreachable).
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).down = down;
    }

    /// Makes the next `n` publishes fail.
    pub fn fail_next(&self, n: usize) {
        lock(&self.inner).fail_next = n;
    }

    /// Everything published, in order (duplicates included).
    pub fn published(&self) -> Vec<HealthEvent> {
        lock(&self.inner).published.clone()
    }

    /// Publish attempts, failed ones included.
    pub fn attempts(&self) -> usize {
        lock(&self.inner).attempts
    }
}

impl HealthPublisher for FakePublisher {
    fn publish(
        &self,
        event: &HealthEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let mut s = lock(&self.inner);
        s.attempts += 1;
        let r = if s.down {
            Err(PublishError(down("redis")))
        } else if s.fail_next > 0 {
            s.fail_next -= 1;
            Err(PublishError("injected publish failure (fake)".into()))
        } else {
            s.published.push(event.clone());
            Ok(())
        };
        std::future::ready(r)
    }
}

// ================================================================ telemetry

/// Telemetry that remembers what it was told.
#[derive(Debug, Clone, Default)]
pub struct FakeTelemetry {
    inner: Arc<Mutex<TelemetryState>>,
}

#[derive(Debug, Default)]
struct TelemetryState {
    operations: Vec<(OpKind, OpSource, Outcome)>,
    health: Vec<(HealthStatus, bool)>,
}

impl FakeTelemetry {
    pub fn operations(&self) -> Vec<(OpKind, OpSource, Outcome)> {
        lock(&self.inner).operations.clone()
    }

    /// `(status, changed)` of every accepted health observation.
    pub fn health(&self) -> Vec<(HealthStatus, bool)> {
        lock(&self.inner).health.clone()
    }
}

impl Telemetry for FakeTelemetry {
    fn operation_finished(
        &self,
        kind: OpKind,
        source: OpSource,
        outcome: Outcome,
        _elapsed: Duration,
    ) {
        lock(&self.inner).operations.push((kind, source, outcome));
    }

    fn health_observed(&self, status: HealthStatus, changed: bool) {
        lock(&self.inner).health.push((status, changed));
    }
}

// ================================================================ bundle

/// Every fake, sharing one [`FakeClock`], and the [`Ports`] set naming them.
#[derive(Debug, Clone)]
pub struct FakePorts {
    pub store: MemStore,
    pub locks: MemLocks,
    pub runtime: FakeRuntime,
    pub probe: FakeProbe,
    pub clock: FakeClock,
    pub telemetry: FakeTelemetry,
    pub publisher: FakePublisher,
    pub leader: MemLeader,
}

impl Ports for FakePorts {
    type Store = MemStore;
    type Locks = MemLocks;
    type Runtime = FakeRuntime;
    type Probe = FakeProbe;
    type Clock = FakeClock;
    type Telemetry = FakeTelemetry;
}

impl Default for FakePorts {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePorts {
    /// Fresh fakes; the clock reads 2030-01-01T00:00:00Z.
    pub fn new() -> Self {
        let clock = FakeClock::default();
        Self {
            store: MemStore::new(),
            locks: MemLocks::new(clock.clone()),
            runtime: FakeRuntime::new(clock.clone()),
            probe: FakeProbe::new(),
            clock,
            telemetry: FakeTelemetry::default(),
            publisher: FakePublisher::new(),
            leader: MemLeader::new(),
        }
    }

    /// The adapters a service is built from; they share state with `self`.
    pub fn adapters(&self) -> Adapters<FakePorts> {
        Adapters {
            store: self.store.clone(),
            locks: self.locks.clone(),
            runtime: self.runtime.clone(),
            probe: self.probe.clone(),
            clock: self.clock.clone(),
            telemetry: self.telemetry.clone(),
        }
    }

    /// Test setup: a running container of `image` for `game` and a
    /// matching `running` record (endpoint on port 8080, started now).
    pub fn seed_running(&self, game: &GameId, image: &ImageRef) -> (RuntimeRecord, ContainerId) {
        let state_path = format!("/state/{game}");
        let id = self.runtime.spawn_running(game, image, &state_path);
        let now = self.clock.now();
        let record = RuntimeRecord {
            game_id: game.clone(),
            status: RuntimeStatus::Running,
            container_id: Some(id.clone()),
            image_ref: Some(image.clone()),
            engine_endpoint: format!("http://{}:8080", game.container_name()),
            state_path,
            docker_network: "rtm-engines".into(),
            started_at: Some(now),
            stopped_at: None,
            removed_at: None,
            last_op_at: now,
            created_at: now,
        };
        self.store.put_record(record.clone());
        (record, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HealthDetails, HealthSource, HealthWrite, NewOperation};
    use futures_util::StreamExt;

    fn gid(s: &str) -> GameId {
        GameId::parse(s).unwrap()
    }

    fn op(game: &str, source_ref: &str, at: OffsetDateTime) -> NewOperation {
        NewOperation {
            game_id: gid(game),
            kind: OpKind::Start,
            source: OpSource::GmRest,
            source_ref: source_ref.into(),
            image_ref: String::new(),
            container_id: String::new(),
            request: String::new(),
            outcome: Outcome::Success,
            error: None,
            started_at: at,
            finished_at: at,
        }
    }

    #[tokio::test]
    async fn commit_is_all_or_nothing_and_refuses_duplicate_refs() {
        let ports = FakePorts::new();
        let (record, _) = ports.seed_running(&gid("g1"), &ImageRef::parse("engine:1.0.0").unwrap());
        let now = ports.clock.now();
        let snapshot = HealthSnapshot {
            game_id: gid("g1"),
            container_id: String::new(),
            status: HealthStatus::Healthy,
            source: HealthSource::Probe,
            details: HealthDetails::new(),
            observed_at: now,
        };
        let c = Commit {
            record: Some(record.clone()),
            operation: Some(op("g1", "ref-1", now)),
            health: Some(HealthWrite {
                snapshot: snapshot.clone(),
                publish: true,
            }),
        };
        let entry = ports.store.commit(c.clone()).await.unwrap().unwrap();
        assert_eq!(entry.id, 1);
        assert_eq!(ports.store.events().len(), 1);

        let dup = ports.store.commit(c).await;
        assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
        assert_eq!(ports.store.operations().len(), 1);
        assert_eq!(
            ports.store.events().len(),
            1,
            "a refused commit writes nothing"
        );

        // An empty source_ref is never a duplicate.
        for _ in 0..2 {
            ports
                .store
                .commit(Commit {
                    record: None,
                    operation: Some(op("g1", "", now)),
                    health: None,
                })
                .await
                .unwrap();
        }
        assert_eq!(ports.store.operations().len(), 3);
        let found = ports
            .store
            .find_by_source_ref(&gid("g1"), OpSource::GmRest, "ref-1")
            .await
            .unwrap();
        assert_eq!(found.map(|e| e.id), Some(1));
    }

    #[tokio::test]
    async fn keyset_queries_page_in_order() {
        let store = MemStore::new();
        let t = OffsetDateTime::UNIX_EPOCH;
        for (i, g) in ["c", "a", "b"].iter().enumerate() {
            store
                .commit(Commit {
                    record: None,
                    operation: Some(op(g, "", t + Duration::from_secs(i as u64))),
                    health: None,
                })
                .await
                .unwrap();
        }
        let q = OperationQuery {
            limit: 2,
            ..Default::default()
        };
        let page1 = store.list_operations(&q).await.unwrap();
        assert_eq!(page1.iter().map(|o| o.id).collect::<Vec<_>>(), vec![3, 2]);
        let q = OperationQuery {
            limit: 2,
            before_id: Some(2),
            ..Default::default()
        };
        let page2 = store.list_operations(&q).await.unwrap();
        assert_eq!(page2.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1]);

        let ports = FakePorts::new();
        let image = ImageRef::parse("engine:1.0.0").unwrap();
        for g in ["b", "a", "c"] {
            ports.seed_running(&gid(g), &image);
        }
        let q = RecordQuery {
            limit: 2,
            ..Default::default()
        };
        let p1 = ports.store.list_records(&q).await.unwrap();
        assert_eq!(
            p1.iter().map(|r| r.game_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let q = RecordQuery {
            limit: 2,
            after: Some(gid("b")),
            ..Default::default()
        };
        let p2 = ports.store.list_records(&q).await.unwrap();
        assert_eq!(
            p2.iter().map(|r| r.game_id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
    }

    #[tokio::test]
    async fn locks_time_out_and_free_on_drop() {
        let ports = FakePorts::new();
        let g = gid("g");
        let wait = Duration::from_secs(5);
        let held = ports.locks.acquire(&g, wait).await.unwrap();
        let before = ports.clock.now();
        let second = ports.locks.acquire(&g, wait).await;
        assert!(matches!(second, Err(LockError::Timeout)));
        assert!(
            ports.clock.now() - before >= wait,
            "the wait is measured on the fake clock"
        );
        // Another game is not blocked.
        let other = ports.locks.acquire(&gid("h"), wait).await.unwrap();
        other.release().await;
        drop(held);
        assert!(!ports.locks.is_locked(&g));
        ports.locks.acquire(&g, wait).await.unwrap().release().await;
        ports.locks.set_unavailable(true);
        assert!(matches!(
            ports.locks.acquire(&g, wait).await,
            Err(LockError::Store(StoreError::Unavailable(_)))
        ));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_the_holder_releases() {
        let ports = FakePorts::new();
        let g = gid("g");
        let held = ports
            .locks
            .acquire(&g, Duration::from_secs(1))
            .await
            .unwrap();
        let clock = ports.clock.clone();
        // The holder works for 3 virtual seconds (yielding), then releases.
        let holder = tokio::spawn(async move {
            for _ in 0..3 {
                clock.sleep(Duration::from_secs(1)).await;
            }
            held.release().await;
        });
        let got = ports.locks.acquire(&g, Duration::from_secs(5)).await;
        assert!(got.is_ok(), "{got:?}");
        holder.await.unwrap();
    }

    #[tokio::test]
    async fn runtime_actions_emit_docker_like_events_on_a_feed_that_reconnects() {
        fn kind(item: Option<FeedItem>) -> ContainerEventKind {
            match item {
                Some(FeedItem::Event(e)) => e.kind,
                other => panic!("expected an event, got {other:?}"),
            }
        }
        let ports = FakePorts::new();
        let rt = &ports.runtime;
        let image = ImageRef::parse("engine:1.0.0").unwrap();
        let mut events = rt.events();
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));
        rt.ensure_image(&image).await.unwrap();
        let spec = ContainerSpec {
            game_id: gid("g"),
            name: "rtm-g".into(),
            image: image.clone(),
            state_path: "/s/g".into(),
        };
        let id = rt.create(&spec).await.unwrap();
        assert!(matches!(
            rt.create(&spec).await,
            Err(RuntimeError::Conflict(_))
        ));
        rt.start(&id).await.unwrap();
        assert!(rt.inspect(&id).await.unwrap().ip.is_some());
        rt.stop(&id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(kind(events.next().await), ContainerEventKind::Start);
        assert_eq!(
            kind(events.next().await),
            ContainerEventKind::Die { exit_code: Some(0) }
        );

        // A broken connection: lost, then connected again at once.
        rt.break_feeds();
        assert!(matches!(events.next().await, Some(FeedItem::Lost(_))));
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));

        rt.fail_next(RuntimeCall::Inspect, RuntimeError::Other("boom".into()));
        assert!(matches!(rt.inspect(&id).await, Err(RuntimeError::Other(_))));
        assert!(rt.inspect(&id).await.is_ok());
        rt.set_unavailable(true);
        assert!(matches!(rt.ping().await, Err(RuntimeError::Unavailable(_))));
        assert!(matches!(
            events.next().await,
            Some(FeedItem::Lost(RuntimeError::Unavailable(_)))
        ));
        // A feed opened while Docker is down: its first attempt fails.
        let mut late = rt.events();
        assert!(matches!(late.next().await, Some(FeedItem::Connected)));
        assert!(matches!(late.next().await, Some(FeedItem::Lost(_))));
        rt.set_unavailable(false);
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));
        assert!(matches!(late.next().await, Some(FeedItem::Connected)));
        assert_eq!(rt.calls(RuntimeCall::Create), 2);
        assert_eq!(rt.mutating_calls(), 5);
    }

    #[tokio::test]
    async fn probe_scripts_prefer_ip_then_endpoint() {
        let probe = FakeProbe::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = ProbeTarget {
            endpoint: "http://rtm-g:8080".into(),
            ip: Some(ip),
            port: 8080,
        };
        probe.set("http://rtm-g:8080", Err(ProbeError("refused".into())));
        assert!(probe.probe(&t).await.is_err());
        probe.push("10.0.0.1", Ok(()));
        assert!(probe.probe(&t).await.is_ok());
        assert!(probe.probe(&t).await.is_err());
        assert_eq!(probe.calls().len(), 3);
    }

    #[tokio::test]
    async fn leader_leases_are_exclusive_and_revocable() {
        let leader = MemLeader::new();
        let lease = leader.try_acquire("cleanup").await.unwrap().unwrap();
        assert!(leader.try_acquire("cleanup").await.unwrap().is_none());
        assert!(lease.is_held().await);
        leader.revoke("cleanup");
        assert!(!lease.is_held().await);
        let again = leader.try_acquire("cleanup").await.unwrap().unwrap();
        drop(lease); // the stale lease must not free the new holder's role
        assert!(again.is_held().await);
    }
}
