//! The closed error-code vocabulary and the errors of the ports.
//!
//! [`ErrorCode`] is what REST bodies, dead letters and
//! `operation_log.error_code` carry. Adding a code is a contract change:
//! document it in `docs/` and the OpenAPI file in the same commit.
//!
//! Errors read once: an error either prints its cause in its message or
//! exposes it as `source`, never both. The port errors that wrap another
//! crate's error ([`StoreError`], [`RuntimeError`], [`PublishError`])
//! print the wrapped error's whole chain (see [`error_chain`]) and expose
//! no source, so a log line, a stored message and [`error_chain`] each
//! show every cause exactly once.

use std::error::Error as StdError;
use std::fmt;

macro_rules! codes {
    ($($(#[$m:meta])* $variant:ident => $text:literal),+ $(,)?) => {
        /// Stable, documented error codes (SPEC §5, §9).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($(#[$m])* $variant),+ }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The stable snake_case spelling carried by REST bodies,
            /// dead letters and `operation_log.error_code`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }

            /// The code spelled `s` exactly (as [`as_str`](Self::as_str)
            /// spells it), or `None` for an unknown spelling.
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
    #[error("database unavailable: {}", error_chain(&**.0))]
    Unavailable(BoxError),
    /// A uniqueness rule was violated (e.g. an idempotency reference
    /// recorded concurrently).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Stored data does not satisfy the domain's rules.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {}", error_chain(&**.0))]
    Other(BoxError),
}

/// Errors of the per-game lock port.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock was not free within the allowed wait.
    #[error("lock wait timed out")]
    Timeout,
    /// The lock service failed; whether the lock is free is unknown.
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
    #[error("docker unavailable: {}", error_chain(&**.0))]
    Unavailable(BoxError),
    /// Docker answered with an error not covered above.
    #[error("docker error: {0}")]
    Other(String),
}

/// Errors of the health-event publisher port.
#[derive(Debug, thiserror::Error)]
#[error("publish failed: {}", error_chain(&**.0))]
pub struct PublishError(pub BoxError);

/// An engine probe failure, with a human reason (timeout, refused, HTTP 500…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// A boxed error cause; the wrapping port error prints its whole chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `err` and its sources, joined with `: ` (at most 16 levels), skipping a
/// source whose text the chain already shows (some third-party errors,
/// hyper's among them, print their cause *and* expose it). The one way
/// errors are turned into text for logs and stored messages.
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// let e = rtm_domain::StoreError::Unavailable(Box::new(io));
/// assert_eq!(rtm_domain::error_chain(&e), "database unavailable: connection refused");
/// ```
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    for _ in 0..16 {
        let Some(e) = source else { break };
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

impl StoreError {
    /// The code a caller sees for this failure: `database_unavailable`
    /// (retry later) when the database could not be reached, `internal`
    /// for everything else.
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_wrapped_cause_reads_once_with_its_whole_chain() {
        // A cause with a source of its own: both levels, each once.
        let inner: BoxError = Box::new(Outer(std::io::Error::other("refused")));
        let e = StoreError::Unavailable(inner);
        assert_eq!(e.to_string(), "database unavailable: outer: refused");
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(error_chain(&e), "database unavailable: outer: refused");
        let e = LockError::Store(StoreError::Other("boom".into()));
        assert_eq!(error_chain(&e), "database error: boom");
        let e = RuntimeError::Unavailable(Box::new(std::io::Error::other("no socket")));
        assert_eq!(error_chain(&e), "docker unavailable: no socket");
    }

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
