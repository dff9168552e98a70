//! The closed error-code vocabulary and the errors of the ports.
//!
//! [`ErrorCode`] is what REST bodies, dead letters and
//! `operation_log.error_code` carry. Adding a code is a contract change:
//! document it in `docs/` and the OpenAPI file in the same commit.

use std::fmt;

macro_rules! codes {
    ($($(#[$m:meta])* $variant:ident => $text:literal),+ $(,)?) => {
        /// Stable, documented error codes (SPEC §5, §9).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($(#[$m])* $variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    /// The request is malformed (bad JSON, unknown field, bad value).
    InvalidRequest => "invalid_request",
    /// `game_id` is not 1–63 characters of `[A-Za-z0-9_.-]` starting alphanumeric.
    InvalidGameId => "invalid_game_id",
    /// `image_ref` is not a Docker image reference.
    InvalidImageRef => "invalid_image_ref",
    /// Missing or wrong bearer token.
    Unauthorized => "unauthorized",
    /// A valid token for another surface (e.g. the GM token on the admin API).
    Forbidden => "forbidden",
    /// No runtime record for the game (or no such resource).
    NotFound => "not_found",
    /// The operation is not allowed in the game's current status.
    Conflict => "conflict",
    /// `start` with another image while the game is running.
    AlreadyRunning => "already_running",
    /// Another operation holds the game's lock beyond `RTM_LOCK_WAIT`.
    OperationInProgress => "operation_in_progress",
    /// Another live (not `removed`) game's id differs from this one only in
    /// case: Docker's embedded DNS would give both engines one name.
    GameIdConflict => "game_id_conflict",
    /// The idempotency reference already belongs to a different request
    /// (another game, operation or parameters); nothing was done.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// The image's registry/repository is not on `RTM_IMAGE_ALLOWLIST`.
    ImageNotAllowed => "image_not_allowed",
    /// The image is absent and could not be pulled.
    ImagePullFailed => "image_pull_failed",
    /// The patch changes more than the patch version (or the repository).
    PatchNotAllowed => "patch_not_allowed",
    /// The patched engine did not become healthy; the previous image runs again.
    PatchRolledBack => "patch_rolled_back",
    /// The patched engine failed and the previous one could not be put back
    /// yet (Docker kept refusing); the record still names the previous
    /// engine and the reconciler finishes the rollback.
    PatchRollbackIncomplete => "patch_rollback_incomplete",
    /// The engine container could not be created or started.
    ContainerStartFailed => "container_start_failed",
    /// The Docker engine is unreachable or failing.
    DockerUnavailable => "docker_unavailable",
    /// PostgreSQL is unreachable or failing.
    DatabaseUnavailable => "database_unavailable",
    /// Anything unexpected; details are in the logs.
    Internal => "internal",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the storage ports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool timed out.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A uniqueness rule was violated (e.g. an idempotency reference
    /// recorded concurrently).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Stored data does not satisfy the domain's rules.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(#[source] BoxError),
}

/// Errors of the per-game lock port.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock was not free within the allowed wait.
    #[error("lock wait timed out")]
    Timeout,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of the container runtime port.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No such container (or it is not ours: RTM never sees others').
    #[error("container not found: {0}")]
    NotFound(String),
    /// The name is taken, or the container is in a state that forbids the call.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Pulling the image failed (the message is Docker's).
    #[error("image pull failed: {0}")]
    PullFailed(String),
    /// Docker is unreachable.
    #[error("docker unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Docker answered with an error not covered above.
    #[error("docker error: {0}")]
    Other(String),
}

/// Errors of the health-event publisher port.
#[derive(Debug, thiserror::Error)]
#[error("publish failed: {0}")]
pub struct PublishError(#[source] pub BoxError);

/// An engine probe failure, with a human reason (timeout, refused, HTTP 500…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// A boxed error cause, kept so logs show the whole chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Unavailable(_) => ErrorCode::DatabaseUnavailable,
            _ => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip_and_are_snake_case() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert!(c
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
