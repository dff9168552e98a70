//! Translation of docker-api errors into the port's [`RuntimeError`].
//!
//! docker-api 0.14 reports an HTTP error status either as its own
//! `Error::Fault` or wrapped from containers-api (`Error::Error(Fault)`),
//! and a transport failure as `Hyper`/`IO` at either level; [`classify`]
//! folds both shapes into one [`Failure`], so callers match on what
//! happened, not on how the crate nested it.

use std::sync::atomic::{AtomicU64, Ordering};

use docker_api::conn::Error as ConnError;
use docker_api::Error as DockerError;
use rtm_domain::RuntimeError;

/// What a docker-api error means for us. Shared with the Swarm adapter,
/// which talks to Docker through the same client.
#[derive(Debug)]
pub enum Failure {
    /// Docker answered with this HTTP status and message.
    Status(u16, String),
    /// Docker could not be reached, or the connection broke.
    Unreachable,
    /// Anything else (bad JSON, invalid URL…).
    Other,
}

/// A macro rather than a function because docker-api does not re-export
/// the `hyper` it uses, so its error type cannot be named here without a
/// direct dependency on hyper.
macro_rules! classify_hyper {
    ($h:expr) => {{
        let h = $h;
        // Connect errors cover a missing socket and a refused connection;
        // closed / incomplete / canceled mean Docker went away mid-request.
        if h.is_connect()
            || h.is_closed()
            || h.is_incomplete_message()
            || h.is_canceled()
            || h.is_timeout()
        {
            Failure::Unreachable
        } else {
            Failure::Other
        }
    }};
}

/// Folds docker-api's error shapes into one [`Failure`].
pub fn classify(e: &DockerError) -> Failure {
    match e {
        DockerError::Fault { code, message } => Failure::Status(code.as_u16(), message.clone()),
        DockerError::Error(inner) => classify_conn(inner),
        DockerError::Hyper(h) => classify_hyper!(h),
        DockerError::IO(_) => Failure::Unreachable,
        _ => Failure::Other,
    }
}

fn classify_conn(e: &ConnError) -> Failure {
    match e {
        ConnError::Fault { code, message } => Failure::Status(code.as_u16(), message.clone()),
        ConnError::Hyper(h) => classify_hyper!(h),
        ConnError::IO(_) => Failure::Unreachable,
        // docker-api's log streams wrap the request's error once more.
        ConnError::Any(inner) => match inner.downcast_ref::<DockerError>() {
            Some(e) => classify(e),
            None => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Whether a 409 answer to a removal says another removal of the same
/// container is already under way (Docker: "removal of container … is
/// already in progress", e.g. an operator's `docker rm -f` racing ours).
/// The container is then as good as gone: the caller waits for it.
pub(crate) fn is_removal_in_progress(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("removal") && m.contains("already in progress")
}

/// The default translation: 404 → `NotFound`, 409 → `Conflict`,
/// unreachable → `Unavailable` (keeping the cause), the rest → `Other`.
/// `what` names the object, for the message. Counted in
/// [`error_counts`]; the Swarm adapter translates with it too, so the
/// metric covers both runtimes.
pub fn to_runtime(e: DockerError, what: &str) -> RuntimeError {
    let failure = classify(&e);
    let kind = match &failure {
        Failure::Status(404, _) => 0,
        Failure::Status(409, _) => 1,
        Failure::Status(..) => 2,
        Failure::Unreachable => 3,
        Failure::Other => 4,
    };
    ERRORS[kind].fetch_add(1, Ordering::Relaxed);
    match failure {
        Failure::Status(404, msg) => RuntimeError::NotFound(format!("{what}: {msg}")),
        Failure::Status(409, msg) => RuntimeError::Conflict(format!("{what}: {msg}")),
        Failure::Status(code, msg) => {
            RuntimeError::Other(format!("{what}: docker answered {code}: {msg}"))
        }
        Failure::Unreachable => RuntimeError::Unavailable(Box::new(e)),
        Failure::Other => RuntimeError::Other(format!("{what}: {}", rtm_domain::error_chain(&e))),
    }
}

/// The kinds [`error_counts`] reports, in its order: Docker's 404 and 409,
/// any other error status, unreachable, anything else.
pub const ERROR_KINDS: [&str; 5] = ["not_found", "conflict", "status", "unavailable", "other"];

static ERRORS: [AtomicU64; 5] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// docker-api errors translated since the process started, by kind
/// (every kind present, zeros included), for the
/// `rtm_docker_errors_total` metric. Per process: in production one
/// process is one replica.
pub fn error_counts() -> [(&'static str, u64); 5] {
    std::array::from_fn(|i| (ERROR_KINDS[i], ERRORS[i].load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_in_progress_is_recognised_by_docker_s_message() {
        // The text of moby's daemon/delete.go (20.10).
        assert!(is_removal_in_progress(
            "removal of container 0123abcd is already in progress"
        ));
        assert!(!is_removal_in_progress(
            "You cannot remove a running container 0123abcd. Stop the container before attempting removal or force remove"
        ));
        assert!(!is_removal_in_progress(
            "Conflict. The container name \"/rtm-g\" is already in use"
        ));
    }
}
