//! The JSON views of records, operations, health snapshots and pages, and
//! the rules they share (RFC 3339 times, `null` for empty storage strings,
//! the health state shown next to a record).

use rtm_domain::service::ReconcileSummary;
use rtm_domain::{
    DetailValue, HealthDetails, HealthSnapshot, HealthStatus, OperationEntry, RuntimeRecord,
    RuntimeStatus,
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// RFC 3339 in UTC (`2030-01-01T00:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 fails only for years
    // outside 0..=9999, which no clock of ours produces; fall back to the
    // debug form rather than failing the response.
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A game's runtime record and, when known, its health snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeView {
    pub game_id: String,
    pub status: &'static str,
    pub container_id: Option<String>,
    pub image_ref: Option<String>,
    pub engine_endpoint: String,
    pub state_path: String,
    pub docker_network: String,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub removed_at: Option<String>,
    pub last_op_at: String,
    pub created_at: String,
    /// Absent in lists (ask `/admin/v1/health`); `null` when nothing was
    /// observed of the current engine (see [`current_health`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Option<HealthView>>,
    /// Absent in lists; see [`health_state`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_state: Option<&'static str>,
}

/// `health_state` of a running game nothing was observed of yet.
pub const HEALTH_PENDING: &str = "pending";
/// `health_state` of a game that is not running and whose engine left no
/// observation worth showing (its last one said `healthy`, or none).
pub const HEALTH_NOT_RUNNING: &str = "not_running";

/// The snapshot a runtime view may show: only one of the record's current
/// engine — same container, observed at or after its latest start (a
/// restart keeps the container, a patch replaces it). A stopped or removed
/// game never shows `healthy`: that observation was of an engine that is
/// gone; its `exited`/`oom`/... observation explains why it stopped and
/// is kept.
pub fn current_health<'a>(
    record: &RuntimeRecord,
    health: Option<&'a HealthSnapshot>,
) -> Option<&'a HealthSnapshot> {
    let h = health?;
    let container = record.container_id.as_ref()?;
    if h.container_id.as_ref() != Some(container) {
        return None;
    }
    if record
        .started_at
        .is_some_and(|started| h.observed_at < started)
    {
        return None;
    }
    if record.status != RuntimeStatus::Running && h.status == HealthStatus::Healthy {
        return None;
    }
    Some(h)
}

/// One word for a view's health: the shown snapshot's status, else
/// `pending` (running, the current engine not observed yet) or
/// `not_running`.
pub fn health_state(record: &RuntimeRecord, shown: Option<&HealthSnapshot>) -> &'static str {
    match shown {
        Some(h) => h.status.as_str(),
        None if record.status == RuntimeStatus::Running => HEALTH_PENDING,
        None => HEALTH_NOT_RUNNING,
    }
}

impl RuntimeView {
    /// The record with the health of its current engine (see
    /// [`current_health`]).
    pub fn new(record: &RuntimeRecord, health: Option<&HealthSnapshot>) -> Self {
        let mut view = Self::without_health(record);
        let shown = current_health(record, health);
        view.health = Some(shown.map(HealthView::new));
        view.health_state = Some(health_state(record, shown));
        view
    }

    /// The record alone (list items).
    pub fn without_health(r: &RuntimeRecord) -> Self {
        Self {
            game_id: r.game_id.to_string(),
            status: r.status.as_str(),
            container_id: r.container_id.as_ref().map(ToString::to_string),
            image_ref: r.image_ref.as_ref().map(ToString::to_string),
            engine_endpoint: r.engine_endpoint.clone(),
            state_path: r.state_path.clone(),
            docker_network: r.docker_network.clone(),
            started_at: r.started_at.map(rfc3339),
            stopped_at: r.stopped_at.map(rfc3339),
            removed_at: r.removed_at.map(rfc3339),
            last_op_at: rfc3339(r.last_op_at),
            created_at: rfc3339(r.created_at),
            health: None,
            health_state: None,
        }
    }
}

/// A health snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub status: &'static str,
    pub source: &'static str,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub observed_at: String,
    pub container_id: Option<String>,
}

impl HealthView {
    pub fn new(h: &HealthSnapshot) -> Self {
        Self {
            status: h.status.as_str(),
            source: h.source.as_str(),
            details: details_json(&h.details),
            observed_at: rfc3339(h.observed_at),
            container_id: h.container_id.as_ref().map(ToString::to_string),
        }
    }
}

/// A health snapshot in a list: with its game.
#[derive(Debug, Clone, Serialize)]
pub struct HealthItem {
    pub game_id: String,
    #[serde(flatten)]
    pub health: HealthView,
}

pub fn details_json(d: &HealthDetails) -> serde_json::Map<String, serde_json::Value> {
    d.iter()
        .map(|(k, v)| {
            let v = match v {
                DetailValue::Int(i) => serde_json::Value::from(*i),
                DetailValue::Bool(b) => serde_json::Value::from(*b),
                DetailValue::Text(t) => serde_json::Value::from(t.as_str()),
            };
            (k.to_owned(), v)
        })
        .collect()
}

/// An `operation_log` row.
#[derive(Debug, Clone, Serialize)]
pub struct OperationView {
    pub id: i64,
    pub game_id: String,
    pub op_kind: &'static str,
    pub op_source: &'static str,
    pub source_ref: Option<String>,
    pub image_ref: Option<String>,
    pub container_id: Option<String>,
    pub outcome: &'static str,
    pub error_code: Option<&'static str>,
    pub error_message: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl OperationView {
    pub fn new(o: &OperationEntry) -> Self {
        Self {
            id: o.id,
            game_id: o.game_id.to_string(),
            op_kind: o.kind.as_str(),
            op_source: o.source.as_str(),
            source_ref: o.source_ref.clone(),
            image_ref: o.image_ref.clone(),
            container_id: o.container_id.as_ref().map(ToString::to_string),
            outcome: o.outcome.as_str(),
            error_code: o.error.as_ref().map(|e| e.code.as_str()),
            error_message: o.error.as_ref().map(|e| e.message.clone()),
            started_at: rfc3339(o.started_at),
            finished_at: o.finished_at.map(rfc3339),
        }
    }
}

/// The answer to a successful mutation.
#[derive(Debug, Serialize)]
pub struct MutationView {
    pub operation: OperationView,
    pub runtime: Option<RuntimeView>,
    pub replayed: bool,
}

/// A page of operations, newest first.
#[derive(Debug, Serialize)]
pub struct OperationsPage {
    pub operations: Vec<OperationView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// A page of runtime records by `game_id`.
#[derive(Debug, Serialize)]
pub struct RuntimesPage {
    pub runtimes: Vec<RuntimeView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// A page of health snapshots by `game_id`.
#[derive(Debug, Serialize)]
pub struct HealthPage {
    pub health: Vec<HealthItem>,
    pub next_after: Option<String>,
}

/// What a reconcile pass did.
#[derive(Debug, Serialize)]
pub struct ReconcileView {
    pub games: u32,
    pub adopted: u32,
    pub disposed: u32,
    pub removed: u32,
    pub observed_exits: u32,
    pub renamed: u32,
    pub skipped_busy: u32,
    pub errors: u32,
}

impl From<&ReconcileSummary> for ReconcileView {
    fn from(s: &ReconcileSummary) -> Self {
        Self {
            games: s.games,
            adopted: s.adopted,
            disposed: s.disposed,
            removed: s.removed,
            observed_exits: s.observed_exits,
            renamed: s.renamed,
            skipped_busy: s.skipped_busy,
            errors: s.errors,
        }
    }
}

/// Splits a fetched page of `limit + 1` items into the page and the
/// cursor of the next one (`cursor` of its last item), `None` on the last
/// page: fetching one extra row tells "exactly `limit` left" from "more
/// left" without a count query.
pub fn split_page<T, C>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl FnOnce(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = limit as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}
