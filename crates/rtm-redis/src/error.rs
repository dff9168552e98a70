//! The adapter's error type: fred errors sorted into what callers act on
//! (bad configuration, Redis unreachable, Redis refusing a command, a reply
//! of an unexpected shape), keeping fred's error as the `#[source]`.

/// Errors of the Redis adapter.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL or client settings are invalid; retrying will not help.
    #[error("invalid redis configuration: {0}")]
    Config(#[source] fred::error::Error),
    /// Redis cannot be reached (connection refused or lost, timeout).
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] fred::error::Error),
    /// Redis answered the command with an error (e.g. `NOGROUP`).
    #[error("redis command failed: {0}")]
    Command(#[source] fred::error::Error),
    /// Redis answered with a reply this adapter does not understand.
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
}

impl RedisError {
    /// Sorts a fred error: connection-level kinds are `Unavailable`, server
    /// replies are `Command`.
    pub(crate) fn from_fred(e: fred::error::Error) -> Self {
        use fred::error::ErrorKind as K;
        match e.kind() {
            K::Config | K::Url => RedisError::Config(e),
            K::IO | K::Timeout | K::Canceled | K::Routing | K::Backpressure => {
                RedisError::Unavailable(e)
            }
            _ => RedisError::Command(e),
        }
    }

    /// True for Redis' `NOGROUP` reply: the stream or its group is missing
    /// (e.g. Redis restarted without persistence).
    pub(crate) fn is_no_group(&self) -> bool {
        matches!(self, RedisError::Command(e) if e.details().starts_with("NOGROUP"))
    }
}
