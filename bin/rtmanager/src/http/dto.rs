//! Wire types of the REST API: request bodies and query strings (parsed
//! strictly: unknown fields are rejected) and the JSON views of records,
//! operations and health snapshots.
//!
//! Domain types derive no `Serialize`; these views are the only place
//! their JSON shape is decided. Timestamps are RFC 3339 in UTC; empty
//! strings of the storage layer (no container, no reference) are `null`.
//!
//! Request bodies and path parameters are here; query strings are in
//! `query`, the views in `views`, both re-exported from this module.

use std::time::Duration;

use rtm_domain::{ErrorCode, GameId, ImageRef};
use serde::Deserialize;

use super::error::ApiError;

mod query;
mod views;

pub use query::{
    q_before, q_game, q_health_status, q_limit, q_op_kind, q_op_source, q_outcome,
    q_runtime_status, q_since, q_vocab, GameOperationsQuery, HealthQueryParams, OperationsQuery,
    RuntimesQuery,
};
pub use views::{
    current_health, details_json, health_state, rfc3339, split_page, HealthItem, HealthPage,
    HealthView, MutationView, OperationView, OperationsPage, ReconcileView, RuntimeView,
    RuntimesPage, HEALTH_NOT_RUNNING, HEALTH_PENDING,
};

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

#[cfg(test)]
mod tests;
