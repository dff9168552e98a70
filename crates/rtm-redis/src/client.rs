//! Building fred clients the same way everywhere: an explicit reconnect
//! policy (fred never reconnects without one), a first connection that
//! follows that policy too (so RTM starts while Redis is still down), and a
//! default command timeout (so a command issued during an outage fails
//! instead of waiting in fred's queue forever; fred never writes a command
//! whose caller already timed out).

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};
use rtm_domain::redact_url;

use crate::RedisError;

/// Connection settings shared by every client of this crate.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Applied to every command that does not set its own timeout.
    pub command_timeout: Duration,
    /// First delay between reconnection attempts; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Timeout of one TCP connection attempt.
    pub connect_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

/// A Redis URL the clients of this crate cannot use. The URL is shown
/// redacted ([`rtm_domain::redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    #[error("{url:?} is not a URL starting with redis:// or rediss://")]
    Scheme { url: String },
    /// fred refuses it; `reason` is fred's complaint, which never quotes
    /// the URL.
    #[error("{url:?} is not a valid Redis URL: {reason}")]
    Invalid {
        url: String,
        reason: String,
        #[source]
        source: fred::error::Error,
    },
}

/// Parses `url` exactly as `build` does, without building anything: the
/// one parser of `RTM_REDIS_URL` (`rtmanager check-config` and the
/// start-up validation). Only `redis://` and `rediss://` (TLS) URLs are
/// accepted: fred's cluster and sentinel schemes need settings RTM does
/// not have.
pub fn check_url(url: &str) -> Result<(), RedisUrlError> {
    let scheme_ok = ["redis://", "rediss://"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
    if !scheme_ok {
        return Err(RedisUrlError::Scheme {
            url: redact_url(url),
        });
    }
    Config::from_url(url)
        .map(|_| ())
        .map_err(|source| RedisUrlError::Invalid {
            url: redact_url(url),
            reason: source.details().to_owned(),
            source,
        })
}

/// Builds a client for `url` (not yet connected).
pub(crate) fn build(url: &str, settings: &ClientSettings) -> Result<Client, RedisError> {
    let mut config = Config::from_url(url).map_err(RedisError::Config)?;
    // Retry the first connection with the reconnect policy instead of
    // failing construction: RTM must come up (and report not-ready) while
    // Redis is down, then catch up by itself.
    config.fail_fast = false;
    let mut builder = Builder::from_config(config);
    // max_attempts 0 = retry forever; fred's default is no reconnection.
    builder.set_policy(ReconnectPolicy::new_exponential(
        0,
        millis(settings.reconnect_min),
        millis(settings.reconnect_max),
        2,
    ));
    builder.with_performance_config(|p| p.default_command_timeout = settings.command_timeout);
    builder.with_connection_config(|c| {
        c.connection_timeout = settings.connect_timeout;
        c.internal_command_timeout = settings.connect_timeout;
    });
    builder.build().map_err(RedisError::Config)
}

/// Builds a client and spawns its connection task. MUST be called inside a
/// Tokio runtime. Commands sent before the connection is up wait for it (up
/// to their timeout).
pub(crate) fn connect(url: &str, settings: &ClientSettings) -> Result<Client, RedisError> {
    let client = build(url, settings)?;
    // The connection task runs until `quit`; its handle is not needed
    // because the client reports its state itself (`is_connected`).
    drop(client.connect());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_as_the_clients_parse_them() {
        for ok in ["redis://127.0.0.1:6379", "rediss://:p@cache:6380/2"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://h:1", "redis://", "", "redis-cluster://h:1"] {
            assert!(
                matches!(check_url(bad), Err(RedisUrlError::Scheme { .. })),
                "{bad}"
            );
        }
        let e = check_url("redis://:redis-secret-pw@cache:notaport").expect_err("port");
        let text = e.to_string();
        assert!(
            text.starts_with("\"redis://:***@cache:notaport\" is not a valid Redis URL: "),
            "{text}"
        );
        assert!(!text.contains("redis-secret-pw"), "{text}");
    }
}
