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
    pub game_id: GameId,
    pub status: RuntimeStatus,
    /// The container bound to the game; kept after `stopped` and `removed`
    /// so the audit trail can name it.
    pub container_id: Option<ContainerId>,
    pub image_ref: Option<ImageRef>,
    /// `http://rtm-<game_id>:<port>`: the address other services use.
    pub engine_endpoint: String,
    /// Host directory of the game's state.
    pub state_path: String,
    pub docker_network: String,
    pub started_at: Option<OffsetDateTime>,
    pub stopped_at: Option<OffsetDateTime>,
    pub removed_at: Option<OffsetDateTime>,
    pub last_op_at: OffsetDateTime,
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
    pub game_id: GameId,
    pub kind: OpKind,
    pub source: OpSource,
    /// Idempotency reference (stream entry id, `Idempotency-Key`); empty when none.
    pub source_ref: String,
    /// Image the operation was about, normalised; empty when none.
    pub image_ref: String,
    /// Container the operation acted on or produced; empty when none.
    pub container_id: String,
    /// What was asked, in a canonical text form (game, operation and
    /// parameters; see `OperationRequest::fingerprint`), so a reused
    /// `source_ref` is replayed only for the same request. Empty for
    /// operations RTM starts itself (no reference to reuse).
    pub request: String,
    pub outcome: Outcome,
    pub error: Option<OpError>,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
}

/// The row an idempotency reference already names, with the request it
/// was recorded for (empty for rows written before V3 kept it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub entry: OperationEntry,
    pub request: String,
}

/// A stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub code: ErrorCode,
    pub message: String,
}

impl OpError {
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
    pub id: i64,
    pub game_id: GameId,
    pub kind: OpKind,
    pub source: OpSource,
    pub source_ref: String,
    pub image_ref: String,
    pub container_id: String,
    pub outcome: Outcome,
    /// `None` on success.
    pub error: Option<OpError>,
    pub started_at: OffsetDateTime,
    /// `None` only for rows written by another tool: RTM always finishes
    /// the row in the same transaction.
    pub finished_at: Option<OffsetDateTime>,
}

/// A small JSON-like value for health `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailValue {
    Int(i64),
    Bool(bool),
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

    pub fn get(&self, key: &str) -> Option<&DetailValue> {
        self.0.get(key)
    }

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
    pub game_id: GameId,
    /// Empty when no container is known.
    pub container_id: String,
    pub status: HealthStatus,
    pub source: HealthSource,
    pub details: HealthDetails,
    pub observed_at: OffsetDateTime,
}

/// A change of health to publish on `runtime:health_events`, as stored in
/// the outbox until it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Monotonic outbox id; published as `event_id` so consumers can drop
    /// the rare duplicate (at-least-once after an RTM crash mid-publish).
    pub id: i64,
    pub snapshot: HealthSnapshot,
}

/// Everything one operation or observation writes, applied atomically by
/// [`crate::ports::UnitOfWork::commit`]: the record change, the
/// operation-log row, and the health snapshot with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Upserted whole when present.
    pub record: Option<RuntimeRecord>,
    pub operation: Option<NewOperation>,
    pub health: Option<HealthWrite>,
}

/// A snapshot upsert, and whether it is a change to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthWrite {
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
