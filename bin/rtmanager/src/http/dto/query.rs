//! Query strings of the REST lists, parsed strictly, and the `q_*`
//! readers of their parameters (limits, cursors, games, vocabulary words,
//! times).

use rtm_domain::{GameId, HealthStatus, OpKind, OpSource, Outcome, RuntimeStatus};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::http::error::ApiError;

use super::{DEFAULT_LIMIT, MAX_LIMIT};

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
