//! docker-api errors → the port's [`RuntimeError`], as in rtm-docker
//! (404 → `NotFound`, 409 → `Conflict`, unreachable → `Unavailable`),
//! plus Swarm's own answer to a stale service version.
//!
//! A short copy of rtm-docker's private `error.rs` rules rather than a
//! dependency on it: that module is not part of rtm-docker's API.

use containers_api::conn::hyper;
use docker_api::conn::Error as ConnError;
use docker_api::Error as DockerError;
use rtm_domain::RuntimeError;

/// What a docker-api error means for us.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Docker answered with this HTTP status and message.
    Status(u16, String),
    /// Docker could not be reached, or the connection broke.
    Unreachable,
    /// Anything else (bad JSON…).
    Other,
}

fn classify_hyper(h: &hyper::Error) -> Failure {
    if h.is_connect() || h.is_closed() || h.is_incomplete_message() || h.is_canceled() {
        Failure::Unreachable
    } else {
        Failure::Other
    }
}

pub(crate) fn classify(e: &DockerError) -> Failure {
    match e {
        DockerError::Fault { code, message } => Failure::Status(code.as_u16(), message.clone()),
        DockerError::Error(ConnError::Fault { code, message }) => {
            Failure::Status(code.as_u16(), message.clone())
        }
        DockerError::Error(ConnError::Hyper(h)) | DockerError::Hyper(h) => classify_hyper(h),
        DockerError::Error(ConnError::IO(_)) | DockerError::IO(_) => Failure::Unreachable,
        // docker-api's log streams wrap the request's error once more.
        DockerError::Error(ConnError::Any(inner)) => match inner.downcast_ref::<DockerError>() {
            Some(e) => classify(e),
            None => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Whether Docker refused a service update because the version sent is
/// no longer the service's (another update landed in between): Swarm
/// answers 500 "update out of sequence", and the caller re-reads and
/// retries.
pub(crate) fn is_out_of_sequence(e: &DockerError) -> bool {
    matches!(classify(e), Failure::Status(_, m) if m.contains("out of sequence"))
}

/// Whether the error is Docker's 404.
pub(crate) fn is_not_found(e: &DockerError) -> bool {
    matches!(classify(e), Failure::Status(404, _))
}

/// The default translation; `what` names the object, for the message.
pub(crate) fn to_runtime(e: DockerError, what: &str) -> RuntimeError {
    match classify(&e) {
        Failure::Status(404, msg) => RuntimeError::NotFound(format!("{what}: {msg}")),
        Failure::Status(409, msg) => RuntimeError::Conflict(format!("{what}: {msg}")),
        Failure::Status(code, msg) => {
            RuntimeError::Other(format!("{what}: docker answered {code}: {msg}"))
        }
        Failure::Unreachable => RuntimeError::Unavailable(Box::new(e)),
        Failure::Other => RuntimeError::Other(format!("{what}: {}", rtm_domain::error_chain(&e))),
    }
}
