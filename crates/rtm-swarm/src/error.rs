//! docker-api errors → the port's [`RuntimeError`], as in rtm-docker
//! (404 → `NotFound`, 409 → `Conflict`, unreachable → `Unavailable`),
//! plus Swarm's own answer to a stale service version.
//!
//! What an error means is rtm-docker's one classification
//! ([`rtm_docker::classify`]): both adapters use the same client.

use docker_api::Error as DockerError;

/// `to_runtime` is rtm-docker's translation too, so
/// `rtm_docker_errors_total` counts this adapter's errors as well.
pub(crate) use rtm_docker::{classify, to_runtime, Failure};

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
