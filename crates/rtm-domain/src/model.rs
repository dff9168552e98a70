//! The durable records: runtime record, operation-log entry, health
//! snapshot and health event, plus the atomic [`Commit`] that writes them.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use crate::{
    ContainerId, ErrorCode, GameId, HealthSource, HealthStatus, ImageRef, OpKind, OpSource,
    Outcome, RuntimeStatus,
};

/// One game's latest known runtime (`runtime_records`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRecord {
    /// The game this record describes; one record per game.
    pub game_id: GameId,
    /// Where the game is in the SPEC §4 state machine.
    pub status: RuntimeStatus,
    /// The container bound to the game; kept after `stopped` and `removed`
    /// so the audit trail can name it.
    pub container_id: Option<ContainerId>,
    /// The image of the bound container, normalised; kept after
    /// `stopped` and `removed` like `container_id`. `None` when no image
    /// is known.
    pub image_ref: Option<ImageRef>,
    /// `http://rtm-<game_id>:<port>`: the address other services use.
    pub engine_endpoint: String,
    /// Host directory of the game's state.
    pub state_path: String,
    /// The Docker network the engine is attached to.
    pub docker_network: String,
    /// When RTM last saw the engine start (stamped after the runtime's
    /// start returned). Observations older than it are about a previous
    /// life of the container and are ignored.
    pub started_at: Option<OffsetDateTime>,
    /// When the record last entered `stopped` (an operation or an
    /// observed exit).
    pub stopped_at: Option<OffsetDateTime>,
    /// When the record last entered `removed`.
    pub removed_at: Option<OffsetDateTime>,
    /// When the last status change happened: what the TTL cleanup and
    /// the retention of removed games measure from.
    pub last_op_at: OffsetDateTime,
    /// When the record was first written; never changes.
    pub created_at: OffsetDateTime,
}

impl RuntimeRecord {
    /// Moves the record to `status` at `at`, stamping the matching
    /// timestamp and `last_op_at` (SPEC §4 rules). `created_at` never changes.
    pub fn enter(&mut self, status: RuntimeStatus, at: OffsetDateTime) {
        self.status = status;
        self.last_op_at = at;
        match status {
            RuntimeStatus::Running => self.started_at = Some(at),
            RuntimeStatus::Stopped => self.stopped_at = Some(at),
            RuntimeStatus::Removed => self.removed_at = Some(at),
        }
    }
}

/// A finished operation to append to `operation_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperation {
    /// The game operated on.
    pub game_id: GameId,
    /// What was done.
    pub kind: OpKind,
    /// Who asked for it.
    pub source: OpSource,
    /// Idempotency reference (stream entry id, `Idempotency-Key`); `None` when none.
    pub source_ref: Option<String>,
    /// Image the operation was about, normalised; `None` when none.
    pub image_ref: Option<String>,
    /// Container the operation acted on or produced; `None` when none.
    pub container_id: Option<ContainerId>,
    /// What was asked, in a canonical text form (game, operation and
    /// parameters; see `OperationRequest::fingerprint`), so a reused
    /// `source_ref` is replayed only for the same request. `None` for
    /// operations RTM starts itself (no reference to reuse).
    pub request: Option<String>,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// Why it failed; `None` on success.
    pub error: Option<OpError>,
    /// When the operation took the game's lock (queueing for the lock
    /// is not part of it, so two rows of one game never overlap).
    pub started_at: OffsetDateTime,
    /// When it finished, just before its commit.
    pub finished_at: OffsetDateTime,
}

/// The row an idempotency reference already names, with the request it
/// was recorded for (`None` for rows written before V3 kept it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The row the reference names.
    pub entry: OperationEntry,
    /// Its [`NewOperation::request`] fingerprint; `None` for rows older
    /// than V3.
    pub request: Option<String>,
}

/// A stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// What callers branch on; part of the REST and stream contracts.
    pub code: ErrorCode,
    /// What operators read (Docker's or PostgreSQL's own words included);
    /// not a contract, and not shown to REST callers for `internal`.
    pub message: String,
}

impl OpError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A row of `operation_log` as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEntry {
    /// The row's id, increasing in insertion order; the keyset cursor of
    /// [`OperationQuery`](crate::ports::OperationQuery).
    pub id: i64,
    /// The game operated on.
    pub game_id: GameId,
    /// What was done.
    pub kind: OpKind,
    /// Who asked for it.
    pub source: OpSource,
    /// The idempotency reference; `None` when none.
    pub source_ref: Option<String>,
    /// The image the operation was about; `None` when none.
    pub image_ref: Option<String>,
    /// The container it acted on or produced; `None` when none.
    pub container_id: Option<ContainerId>,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// `None` on success.
    pub error: Option<OpError>,
    /// When the operation took the game's lock.
    pub started_at: OffsetDateTime,
    /// `None` only for rows written by another tool: RTM always finishes
    /// the row in the same transaction.
    pub finished_at: Option<OffsetDateTime>,
}

/// A small JSON-like value for health `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailValue {
    /// A JSON integer (exit codes, counts).
    Int(i64),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON string (error messages, Docker states).
    Text(String),
}

impl From<i64> for DetailValue {
    fn from(v: i64) -> Self {
        DetailValue::Int(v)
    }
}
impl From<bool> for DetailValue {
    fn from(v: bool) -> Self {
        DetailValue::Bool(v)
    }
}
impl From<&str> for DetailValue {
    fn from(v: &str) -> Self {
        DetailValue::Text(v.to_owned())
    }
}
impl From<String> for DetailValue {
    fn from(v: String) -> Self {
        DetailValue::Text(v)
    }
}

/// The `details` object of a health observation (exit code, probe error…).
/// Adapters render it as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthDetails(BTreeMap<String, DetailValue>);

impl HealthDetails {
    /// No details (`{}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field (builder style).
    ///
    /// ```
    /// use rtm_domain::{DetailValue, HealthDetails};
    /// let d = HealthDetails::new().with("exit_code", 3i64);
    /// assert_eq!(d.get("exit_code"), Some(&DetailValue::Int(3)));
    /// ```
    pub fn with(mut self, key: &str, value: impl Into<DetailValue>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// The value of field `key`, if set.
    pub fn get(&self, key: &str) -> Option<&DetailValue> {
        self.0.get(key)
    }

    /// Every field, ordered by key (so rendering is deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DetailValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl FromIterator<(String, DetailValue)> for HealthDetails {
    fn from_iter<T: IntoIterator<Item = (String, DetailValue)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The latest health observation of a game (`health_snapshots`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// The game observed.
    pub game_id: GameId,
    /// `None` when no container is known.
    pub container_id: Option<ContainerId>,
    /// What was observed.
    pub status: HealthStatus,
    /// Which source observed it.
    pub source: HealthSource,
    /// Evidence for the status (exit code, probe error, Docker state…).
    pub details: HealthDetails,
    /// When it was observed: the event's time, or when the inspect or
    /// probe began.
    pub observed_at: OffsetDateTime,
}

/// A change of health to publish on `runtime:health_events`, as stored in
/// the outbox until it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Monotonic outbox id; published as `event_id` so consumers can drop
    /// the rare duplicate (at-least-once after an RTM crash mid-publish).
    pub id: i64,
    /// The snapshot as committed with the change.
    pub snapshot: HealthSnapshot,
}

/// Everything one operation or observation writes, applied atomically by
/// [`crate::ports::UnitOfWork::commit`]: the record change, the
/// operation-log row, and the health snapshot with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Upserted whole when present.
    pub record: Option<RuntimeRecord>,
    /// Appended to `operation_log` when present (operations always carry
    /// one; observations never do).
    pub operation: Option<NewOperation>,
    /// Upserted as the game's snapshot when present, and queued in the
    /// outbox when it is a change.
    pub health: Option<HealthWrite>,
}

/// A refresh of a snapshot that still says the same thing (same
/// container, same status): a new `observed_at`, `source` and `details`,
/// never an event. The store applies it only while the game's snapshot
/// has that container and status and is older, and its record is
/// `running` that container since `started_at`; otherwise something
/// changed meanwhile and the observation takes the full path (lock, fresh
/// reads, commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRefresh {
    /// What the snapshot says now (its `container_id` and `status` are
    /// the ones it must still have).
    pub snapshot: HealthSnapshot,
    /// The record's `started_at` the observation was judged against.
    pub started_at: Option<OffsetDateTime>,
}

/// A snapshot upsert, and whether it is a change to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthWrite {
    /// The game's new latest snapshot.
    pub snapshot: HealthSnapshot,
    /// When true the snapshot is also queued in the outbox for
    /// `runtime:health_events`.
    pub publish: bool,
}

impl HealthWrite {
    /// Writes `snapshot` over `previous`, publishing it exactly when it
    /// changes the game's health: another status, or another container
    /// (SPEC §7: every *change* is one event).
    pub fn over(previous: Option<&HealthSnapshot>, snapshot: HealthSnapshot) -> Self {
        let publish = previous
            .is_none_or(|p| p.status != snapshot.status || p.container_id != snapshot.container_id);
        Self { snapshot, publish }
    }
}
