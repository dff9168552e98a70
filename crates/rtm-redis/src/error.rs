//! The adapter's error type: fred errors sorted into what callers act on
//! (bad configuration, Redis unreachable, Redis refusing a command, a reply
//! of an unexpected shape). Each prints fred's error (with its own chain)
//! in its message and exposes no `source`, so it reads once (see
//! `rtm_domain::error_chain`).

use std::sync::atomic::{AtomicU64, Ordering};

use rtm_domain::error_chain;

/// The kinds [`error_counts`] reports, in its order.
pub const ERROR_KINDS: [&str; 3] = ["config", "unavailable", "command"];

static ERRORS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// fred errors translated since the process started, by kind (every kind
/// present, zeros included), for the `rtm_redis_errors_total` metric. Per
/// process: in production one process is one replica.
pub fn error_counts() -> [(&'static str, u64); 3] {
    std::array::from_fn(|i| (ERROR_KINDS[i], ERRORS[i].load(Ordering::Relaxed)))
}

/// Errors of the Redis adapter.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL or client settings are invalid; retrying will not help.
    #[error("invalid redis configuration: {}", error_chain(.0))]
    Config(fred::error::Error),
    /// Redis cannot be reached (connection refused or lost, timeout).
    #[error("redis unavailable: {}", error_chain(.0))]
    Unavailable(fred::error::Error),
    /// Redis answered the command with an error (e.g. `NOGROUP`).
    #[error("redis command failed: {}", error_chain(.0))]
    Command(fred::error::Error),
    /// Redis answered with a reply this adapter does not understand.
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
}

impl RedisError {
    /// Sorts a fred error: connection-level kinds are `Unavailable`, server
    /// replies are `Command`.
    pub(crate) fn from_fred(e: fred::error::Error) -> Self {
        use fred::error::ErrorKind as K;
        let (i, err) = match e.kind() {
            K::Config | K::Url => (0, RedisError::Config(e)),
            K::IO | K::Timeout | K::Canceled | K::Routing | K::Backpressure => {
                (1, RedisError::Unavailable(e))
            }
            _ => (2, RedisError::Command(e)),
        };
        // "no such key" answers XINFO on a stream nobody wrote yet: an
        // answer the callers expect, not a failure worth counting.
        let expected =
            matches!(&err, RedisError::Command(e) if e.details().contains("no such key"));
        if !expected {
            ERRORS[i].fetch_add(1, Ordering::Relaxed);
        }
        err
    }

    /// True for Redis' `NOGROUP` reply: the stream or its group is missing
    /// (e.g. Redis restarted without persistence).
    pub(crate) fn is_no_group(&self) -> bool {
        matches!(self, RedisError::Command(e) if e.details().starts_with("NOGROUP"))
    }
}
