//! The REST error shape and the mapping from domain error codes to HTTP
//! statuses (SPEC §9).
//!
//! Every error response of both surfaces is
//! `{"error": {"code": "<ErrorCode>", "message": "..."}}`, optionally with
//! the recorded `operation` (and `runtime`) when an operation was recorded
//! as a failure. Unexpected errors are logged once with their whole cause
//! chain and answered with an opaque `internal` message, so internals
//! (SQL, Docker messages, paths) never leak to callers.

use std::error::Error as StdError;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use rtm_domain::service::OperationError;
use rtm_domain::{ErrorCode, GameId, StoreError};
use serde::Serialize;

use super::dto::{OperationView, RuntimeView};

/// The HTTP status of each error code (documented in `docs/rest.md`).
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidGameId | ErrorCode::InvalidImageRef => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict
        | ErrorCode::AlreadyRunning
        | ErrorCode::OperationInProgress
        | ErrorCode::GameIdConflict => StatusCode::CONFLICT,
        ErrorCode::ImageNotAllowed
        | ErrorCode::PatchNotAllowed
        | ErrorCode::ImagePullFailed
        | ErrorCode::PatchRolledBack
        | ErrorCode::PatchRollbackIncomplete
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::ContainerStartFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::DockerUnavailable | ErrorCode::DatabaseUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The message callers see for `internal`: details stay in the logs.
pub const INTERNAL_MESSAGE: &str = "internal error; see the service logs";

/// An error answered to a REST caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// The recorded failed operation, when there is one.
    operation: Option<Box<(OperationView, Option<RuntimeView>, bool)>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<&'a OperationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'a Option<RuntimeView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'static str,
    message: &'a str,
}

impl ApiError {
    /// An error with the status of its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_for(code),
            code,
            message: message.into(),
            operation: None,
        }
    }

    /// An error whose status is not the code's own (405, 413 on
    /// `invalid_request`).
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            operation: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `internal`: logs `err` with its whole cause chain, answers an
    /// opaque message.
    pub fn internal(context: &str, err: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %error_chain(err), "{context}");
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }

    /// A failure recorded in the operation log.
    pub fn recorded(
        code: ErrorCode,
        message: String,
        operation: OperationView,
        runtime: Option<RuntimeView>,
        replayed: bool,
    ) -> Self {
        Self {
            status: status_for(code),
            code,
            message,
            operation: Some(Box::new((operation, runtime, replayed))),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// A storage failure on a read: `database_unavailable` (503, logged as
    /// a warning) or `internal` (500, logged as an error).
    pub fn store(context: &str, err: &StoreError) -> Self {
        Self::store_impl(None, context, err)
    }

    /// [`ApiError::store`] about one game: the log line carries its id.
    pub fn store_of(game: &GameId, context: &str, err: &StoreError) -> Self {
        Self::store_impl(Some(game), context, err)
    }

    fn store_impl(game: Option<&GameId>, context: &str, err: &StoreError) -> Self {
        match err.code() {
            ErrorCode::DatabaseUnavailable => {
                match game {
                    Some(g) => tracing::warn!(game_id = %g, error = %error_chain(err), "{context}"),
                    None => tracing::warn!(error = %error_chain(err), "{context}"),
                }
                Self::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable",
                )
            }
            _ => match game {
                Some(g) => {
                    tracing::error!(game_id = %g, error = %error_chain(err), "{context}");
                    Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
                }
                None => Self::internal(context, err),
            },
        }
    }

    /// An operation that could not be recorded.
    pub fn operation(err: &OperationError) -> Self {
        Self::operation_impl(None, err)
    }

    /// [`ApiError::operation`] of an operation on `game`.
    pub fn operation_of(game: &GameId, err: &OperationError) -> Self {
        Self::operation_impl(Some(game), err)
    }

    fn operation_impl(game: Option<&GameId>, err: &OperationError) -> Self {
        match err {
            OperationError::InProgress(game) => Self::new(
                ErrorCode::OperationInProgress,
                format!("another operation on game {game} is in progress; retry later"),
            ),
            OperationError::Store(e) => Self::store_impl(game, "operation not recorded", e),
            OperationError::KeyReused { .. } => {
                Self::new(ErrorCode::IdempotencyKeyReused, err.to_string())
            }
            OperationError::Runtime(e) => {
                match game {
                    Some(g) => tracing::warn!(game_id = %g, error = %error_chain(e),
                        "container runtime failed"),
                    None => tracing::warn!(error = %error_chain(e), "container runtime failed"),
                }
                Self::new(
                    ErrorCode::DockerUnavailable,
                    "the Docker engine is unavailable",
                )
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let (operation, runtime, replayed) = match &self.operation {
            Some(b) => (Some(&b.0), Some(&b.1), Some(b.2)),
            None => (None, None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &self.message,
            },
            operation,
            runtime,
            replayed,
        };
        let mut res = HttpResponse::build(self.status);
        if self.code == ErrorCode::Unauthorized {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = retry_after(self.code, self.status) {
            res.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        res.json(body)
    }
}

/// Seconds after which a retry may succeed: another operation holds the
/// game (they last seconds), or a dependency is down (`503`).
pub const RETRY_AFTER_BUSY_S: u32 = 1;
/// See [`RETRY_AFTER_BUSY_S`].
pub const RETRY_AFTER_UNAVAILABLE_S: u32 = 5;

/// The `Retry-After` of an error, when a plain retry may succeed.
pub fn retry_after(code: ErrorCode, status: StatusCode) -> Option<u32> {
    if code == ErrorCode::OperationInProgress {
        Some(RETRY_AFTER_BUSY_S)
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        Some(RETRY_AFTER_UNAVAILABLE_S)
    } else {
        None
    }
}

/// The workspace's one chain formatter (re-exported for the handlers).
pub use rtm_domain::error_chain;

/// The `invalid_request` body for any error actix itself produced
/// (extractors, routing, payload limits), keeping its status where it is
/// a client error and never its plain-text body.
pub fn from_actix_status(status: StatusCode, detail: Option<String>) -> ApiError {
    let message = |default: &str| detail.clone().unwrap_or_else(|| default.to_owned());
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found(message("no such route")),
        StatusCode::UNAUTHORIZED => {
            ApiError::new(ErrorCode::Unauthorized, message("missing or invalid token"))
        }
        StatusCode::FORBIDDEN => ApiError::new(ErrorCode::Forbidden, message("forbidden")),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::with_status(
            status,
            ErrorCode::InvalidRequest,
            message("method not allowed on this route"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::with_status(
            status,
            ErrorCode::InvalidRequest,
            message("request body too large"),
        ),
        s if s.is_client_error() => {
            ApiError::with_status(s, ErrorCode::InvalidRequest, message("bad request"))
        }
        // Server-side details (actix's own 5xx texts) stay out of bodies.
        s if s == StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::with_status(s, ErrorCode::Internal, "service unavailable")
        }
        _ => ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE),
    }
}

/// Error handler of `web::QueryConfig`: a bad query string is
/// `invalid_request` with serde's explanation.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    ApiError::invalid_request(format!("invalid query string: {err}")).into()
}

/// Error handler of `web::PathConfig`.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid_request(format!("invalid path: {err}")).into()
}

/// Error handler of `web::JsonConfig` (for JSON extractors added later;
/// the built-in routes parse their bodies themselves).
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidRequest,
            format!("{err}"),
        )
        .into(),
        E::ContentType => {
            ApiError::invalid_request("the body must be JSON (Content-Type: application/json)")
                .into()
        }
        other => ApiError::invalid_request(format!("invalid JSON body: {other}")).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_fitting_status() {
        for &code in ErrorCode::ALL {
            let status = status_for(code);
            let expected = match code.as_str() {
                "invalid_request" | "invalid_game_id" | "invalid_image_ref" => 400,
                "unauthorized" => 401,
                "forbidden" => 403,
                "not_found" => 404,
                "conflict" | "already_running" | "operation_in_progress" | "game_id_conflict" => {
                    409
                }
                "image_not_allowed"
                | "patch_not_allowed"
                | "image_pull_failed"
                | "patch_rolled_back"
                | "patch_rollback_incomplete"
                | "idempotency_key_reused"
                | "container_start_failed" => 422,
                "docker_unavailable" | "database_unavailable" => 503,
                "internal" => 500,
                other => panic!("unmapped code {other}"),
            };
            assert_eq!(status.as_u16(), expected, "{code}");
        }
    }

    #[test]
    fn error_chain_joins_sources() {
        let inner = std::io::Error::other("connection refused");
        let err = StoreError::Unavailable(Box::new(inner));
        // Every level once: `Unavailable` prints its cause and exposes
        // no source.
        assert_eq!(
            error_chain(&err),
            "database unavailable: connection refused"
        );
    }
}
