//! Wire types of the REST API: request bodies and query strings (parsed
//! strictly: unknown fields are rejected) and the JSON views of records,
//! operations and health snapshots.
//!
//! Domain types derive no `Serialize`; these views are the only place
//! their JSON shape is decided. Timestamps are RFC 3339 in UTC; empty
//! strings of the storage layer (no container, no reference) are `null`.

use std::time::Duration;

use rtm_domain::service::ReconcileSummary;
use rtm_domain::{
    DetailValue, ErrorCode, GameId, HealthDetails, HealthSnapshot, HealthStatus, ImageRef, OpKind,
    OpSource, OperationEntry, Outcome, RuntimeRecord, RuntimeStatus,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::error::ApiError;

/// Longest accepted `timeout_s`: an hour is already far beyond any sane
/// engine shutdown.
pub const MAX_TIMEOUT_S: u64 = 3600;
/// Default page size of every list.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size of every list.
pub const MAX_LIMIT: u32 = 500;

// ---------------------------------------------------------------- bodies

/// `start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub image_ref: String,
}

/// `stop` and `restart` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    pub timeout_s: Option<u64>,
}

/// `patch` on the GM surface.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    pub image_ref: String,
}

/// `patch` on the admin surface.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminPatchBody {
    pub image_ref: String,
    #[serde(default)]
    pub force: bool,
}

/// `cleanup` (admin) and `reconcile` (admin) take no body: only an empty
/// JSON object is accepted besides an empty body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Parses a JSON body. An empty body is `default` when given, else an
/// error; a non-empty one must be declared JSON.
pub fn parse_body<T: for<'de> Deserialize<'de>>(
    content_type: Option<&str>,
    body: &[u8],
    default: Option<T>,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return default.ok_or_else(|| ApiError::invalid_request("a JSON body is required"));
    }
    let is_json = content_type.is_some_and(|ct| {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    });
    if !is_json {
        return Err(ApiError::invalid_request(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    // Through a `Value` first: serde would otherwise read a struct from a
    // JSON array too (`["img"]` as a start), and the contract is objects.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_request(
            "invalid JSON body: the body must be a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}

/// Validates `timeout_s`.
pub fn stop_timeout(body: &StopBody) -> Result<Option<Duration>, ApiError> {
    match body.timeout_s {
        None => Ok(None),
        Some(s) if s <= MAX_TIMEOUT_S => Ok(Some(Duration::from_secs(s))),
        Some(s) => Err(ApiError::invalid_request(format!(
            "timeout_s must be between 0 and {MAX_TIMEOUT_S} (got {s})"
        ))),
    }
}

pub fn parse_game_id(s: &str) -> Result<GameId, ApiError> {
    GameId::parse(s).map_err(|e| ApiError::new(ErrorCode::InvalidGameId, e.to_string()))
}

/// Longest `image_ref` accepted over REST. Docker's own limit is 255 for
/// the *normalised* name (`docker.io/library/` may be added, 18 bytes)
/// without the tag and digest, which no JSON-schema length can express;
/// 200 in all keeps every schema-valid reference valid (and real
/// references are far shorter).
pub const MAX_IMAGE_REF_LEN: usize = 200;

pub fn parse_image_ref(s: &str) -> Result<ImageRef, ApiError> {
    if s.len() > MAX_IMAGE_REF_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidImageRef,
            format!("image_ref is longer than {MAX_IMAGE_REF_LEN} characters"),
        ));
    }
    ImageRef::parse(s).map_err(|e| ApiError::new(ErrorCode::InvalidImageRef, e.to_string()))
}

// ---------------------------------------------------------------- queries

/// `GET /api/v1/runtimes/{game_id}/operations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameOperationsQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// `GET /admin/v1/runtimes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimesQuery {
    pub status: Option<String>,
    pub limit: Option<String>,
    pub after: Option<String>,
}

/// `GET /admin/v1/operations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    pub game_id: Option<String>,
    pub op_kind: Option<String>,
    pub op_source: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// `GET /admin/v1/health`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQueryParams {
    pub status: Option<String>,
    pub limit: Option<String>,
    pub after: Option<String>,
}

/// Query values are strings on the wire; each parser names its parameter
/// in the error so the caller knows which one to fix.
pub fn q_limit(v: &Option<String>) -> Result<u32, ApiError> {
    match v.as_deref() {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_request(format!(
                "limit: {s:?} must be a whole number between 1 and {MAX_LIMIT}"
            ))),
        },
    }
}

pub fn q_before(v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ApiError::invalid_request(format!(
                "before: {s:?} must be a positive operation id"
            ))),
        },
    }
}

pub fn q_game(name: &str, v: &Option<String>) -> Result<Option<GameId>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => GameId::parse(s)
            .map(Some)
            .map_err(|e| ApiError::invalid_request(format!("{name}: {e}"))),
    }
}

pub fn q_vocab<T>(
    name: &str,
    v: &Option<String>,
    parse: fn(&str) -> Result<T, rtm_domain::UnknownValue>,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<Option<T>, ApiError>
where
    T: Copy,
{
    match v.as_deref() {
        None => Ok(None),
        Some(s) => parse(s).map(Some).map_err(|_| {
            let allowed: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
            ApiError::invalid_request(format!(
                "{name}: {s:?} is not one of {}",
                allowed.join(", ")
            ))
        }),
    }
}

pub fn q_runtime_status(v: &Option<String>) -> Result<Option<RuntimeStatus>, ApiError> {
    q_vocab(
        "status",
        v,
        RuntimeStatus::parse,
        RuntimeStatus::ALL,
        RuntimeStatus::as_str,
    )
}

pub fn q_health_status(v: &Option<String>) -> Result<Option<HealthStatus>, ApiError> {
    q_vocab(
        "status",
        v,
        HealthStatus::parse,
        HealthStatus::ALL,
        HealthStatus::as_str,
    )
}

pub fn q_op_kind(v: &Option<String>) -> Result<Option<OpKind>, ApiError> {
    q_vocab("op_kind", v, OpKind::parse, OpKind::ALL, OpKind::as_str)
}

pub fn q_op_source(v: &Option<String>) -> Result<Option<OpSource>, ApiError> {
    q_vocab(
        "op_source",
        v,
        OpSource::parse,
        OpSource::ALL,
        OpSource::as_str,
    )
}

pub fn q_outcome(v: &Option<String>) -> Result<Option<Outcome>, ApiError> {
    q_vocab("outcome", v, Outcome::parse, Outcome::ALL, Outcome::as_str)
}

pub fn q_since(v: &Option<String>) -> Result<Option<OffsetDateTime>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).map(Some).map_err(|_| {
            ApiError::invalid_request(format!(
                "since: {s:?} is not an RFC 3339 timestamp (e.g. 2030-01-01T00:00:00Z)"
            ))
        }),
    }
}

// ---------------------------------------------------------------- views

/// RFC 3339 in UTC (`2030-01-01T00:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 fails only for years
    // outside 0..=9999, which no clock of ours produces; fall back to the
    // debug form rather than failing the response.
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
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
    if h.container_id != container.as_str() {
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
            container_id: non_empty(&h.container_id),
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
            source_ref: non_empty(&o.source_ref),
            image_ref: non_empty(&o.image_ref),
            container_id: non_empty(&o.container_id),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_strict() {
        let json = Some("application/json");
        let b: StartBody = parse_body(json, br#"{"image_ref":"x"}"#, None).expect("ok");
        assert_eq!(b.image_ref, "x");
        let e = parse_body::<StartBody>(json, br#"{"image_ref":"x","y":1}"#, None)
            .expect_err("unknown field");
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
        assert!(e.to_string().contains("unknown field `y`"), "{e}");
        let e = parse_body::<StartBody>(json, b"", None).expect_err("required");
        assert!(e.to_string().contains("required"));
        let e = parse_body::<StartBody>(Some("text/plain"), br#"{"image_ref":"x"}"#, None)
            .expect_err("content type");
        assert!(e.to_string().contains("Content-Type"));
        let e = parse_body::<StartBody>(None, br#"{"image_ref":"x"}"#, None).expect_err("none");
        assert!(e.to_string().contains("Content-Type"));
        let e = parse_body::<StartBody>(json, b"{", None).expect_err("bad json");
        assert!(e.to_string().contains("invalid JSON body"));
        let s: StopBody = parse_body(None, b"", Some(StopBody::default())).expect("empty");
        assert_eq!(s.timeout_s, None);
        let s: StopBody = parse_body(
            Some("application/json; charset=utf-8"),
            br#"{"timeout_s":10}"#,
            None,
        )
        .expect("ok");
        assert_eq!(stop_timeout(&s).expect("ok"), Some(Duration::from_secs(10)));
        assert!(stop_timeout(&StopBody {
            timeout_s: Some(3601)
        })
        .is_err());
        let e = parse_body::<StopBody>(json, br#"{"timeout_s":-1}"#, None).expect_err("neg");
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
        let p: AdminPatchBody = parse_body(json, br#"{"image_ref":"x"}"#, None).expect("ok");
        assert!(!p.force);
        assert!(parse_body::<PatchBody>(json, br#"{"image_ref":"x","force":true}"#, None).is_err());
    }

    #[test]
    fn query_values_name_their_parameter() {
        assert_eq!(q_limit(&None).expect("default"), 50);
        assert_eq!(q_limit(&Some("500".into())).expect("max"), 500);
        for bad in ["0", "501", "x", "-1"] {
            let e = q_limit(&Some(bad.into())).expect_err(bad);
            assert!(e.to_string().starts_with("invalid_request: limit:"), "{e}");
        }
        assert!(q_before(&Some("0".into()))
            .expect_err("zero")
            .to_string()
            .contains("before:"));
        assert!(q_since(&Some("yesterday".into()))
            .expect_err("since")
            .to_string()
            .contains("since:"));
        assert!(q_since(&Some("2030-01-01T00:00:00Z".into()))
            .expect("ok")
            .is_some());
        let e = q_op_kind(&Some("explode".into())).expect_err("kind");
        assert!(e
            .to_string()
            .contains("op_kind: \"explode\" is not one of start, stop"));
        assert!(q_game("game_id", &Some("-x".into()))
            .expect_err("game")
            .to_string()
            .contains("game_id:"));
    }

    #[test]
    fn image_refs_longer_than_the_documented_limit_are_refused() {
        let name = format!("rtm.local/{}", "a".repeat(MAX_IMAGE_REF_LEN - 10));
        assert_eq!(name.len(), MAX_IMAGE_REF_LEN);
        assert!(parse_image_ref(&name).is_ok());
        let e = parse_image_ref(&format!("{name}a")).expect_err("too long");
        assert_eq!(e.code(), ErrorCode::InvalidImageRef);
    }

    #[test]
    fn pages_split() {
        assert_eq!(
            split_page(vec![1, 2, 3], 2, |x| x * 10),
            (vec![1, 2], Some(20))
        );
        assert_eq!(split_page(vec![1, 2], 2, |x| x * 10), (vec![1, 2], None));
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let t = OffsetDateTime::parse("2030-01-01T02:00:00+02:00", &Rfc3339).expect("t");
        assert_eq!(rfc3339(t), "2030-01-01T00:00:00Z");
    }
}
