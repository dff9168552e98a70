//! [`RedisHealthPublisher`]: the domain's `HealthPublisher` port on a Redis
//! stream (SPEC §7).
//!
//! One health change is one entry:
//! `XADD <stream> MAXLEN ~ <maxlen> * event_id .. game_id .. container_id ..
//! event_type .. source .. details <JSON object> observed_at <RFC 3339 UTC>`.
//! `publish` returns `Ok` only when Redis answered the `XADD` with an entry
//! id; while Redis is down it returns `Err` within the command timeout and
//! the caller (the domain's outbox relay) retries later. The client
//! reconnects by itself, so the same publisher works again after Redis is
//! back.

use std::future::Future;
use std::sync::Arc;

use fred::prelude::{Client, ClientLike, StreamsInterface};
use fred::types::Value;
use rtm_domain::ports::HealthPublisher;
use rtm_domain::{DetailValue, HealthDetails, HealthEvent, PublishError};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::client::{self, ClientSettings};
use crate::RedisError;

/// `2026-11-28T19:53:41.123Z`: RFC 3339, UTC, millisecond precision.
const RFC3339_MILLIS_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Settings of the health stream.
#[derive(Debug, Clone)]
pub struct HealthStreamConfig {
    /// `RTM_HEALTH_STREAM` (default `runtime:health_events`).
    pub stream: String,
    /// `RTM_HEALTH_STREAM_MAXLEN` (default 100 000): approximate cap.
    pub maxlen: u64,
    pub client: ClientSettings,
}

impl HealthStreamConfig {
    pub fn new(stream: impl Into<String>, maxlen: u64) -> Self {
        Self {
            stream: stream.into(),
            maxlen,
            client: ClientSettings::default(),
        }
    }
}

/// Publishes health events with `XADD`. Cheap to clone (one shared
/// connection).
#[derive(Clone)]
pub struct RedisHealthPublisher {
    client: Client,
    stream: Arc<str>,
    maxlen: i64,
}

impl std::fmt::Debug for RedisHealthPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealthPublisher")
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl RedisHealthPublisher {
    /// Creates the publisher and starts connecting in the background; it
    /// does not wait for Redis (publish fails until Redis is reachable).
    /// MUST be called inside a Tokio runtime. Fails only on a bad URL.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rtm_redis::RedisError> {
    /// use rtm_redis::{HealthStreamConfig, RedisHealthPublisher};
    /// let publisher = RedisHealthPublisher::new(
    ///     "redis://127.0.0.1:6379",
    ///     HealthStreamConfig::new("runtime:health_events", 100_000),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn new(redis_url: &str, config: HealthStreamConfig) -> Result<Self, RedisError> {
        let client = client::connect(redis_url, &config.client)?;
        Ok(Self {
            client,
            stream: config.stream.into(),
            // XADD takes a signed count; a cap beyond i64 is no cap at all.
            maxlen: i64::try_from(config.maxlen).unwrap_or(i64::MAX),
        })
    }

    /// Whether the connection is currently up (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// A `PING` round trip (for `/readyz`).
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.client
            .ping::<Value>(None)
            .await
            .map(drop)
            .map_err(RedisError::from_fred)
    }

    /// Appends one event; returns the new entry id.
    pub async fn publish_event(&self, event: &HealthEvent) -> Result<String, RedisError> {
        let fields = event_fields(event);
        let id: Value = self
            .client
            .xadd(
                &*self.stream,
                false,
                ("MAXLEN", "~", self.maxlen),
                "*",
                fields,
            )
            .await
            .map_err(RedisError::from_fred)?;
        match id {
            Value::String(s) => Ok(s.to_string()),
            other => Err(RedisError::Protocol(format!(
                "XADD answered {other:?} instead of an entry id"
            ))),
        }
    }

    /// Closes the connection.
    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}

impl HealthPublisher for RedisHealthPublisher {
    fn publish(
        &self,
        event: &HealthEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let fut = self.publish_event(event);
        async move { fut.await.map(drop).map_err(|e| PublishError(Box::new(e))) }
    }
}

/// The stream fields of one event, in the documented order.
pub(crate) fn event_fields(event: &HealthEvent) -> Vec<(&'static str, String)> {
    let s = &event.snapshot;
    vec![
        ("event_id", event.id.to_string()),
        ("game_id", s.game_id.to_string()),
        // The stream contract writes "no container" as "".
        (
            "container_id",
            s.container_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        ("event_type", s.status.as_str().to_owned()),
        ("source", s.source.as_str().to_owned()),
        ("details", details_json(&s.details)),
        // Exactly as REST renders the snapshot's `observed_at` (RFC 3339
        // UTC, the stored microseconds, trailing zeros dropped), so a
        // consumer can compare the two as strings.
        ("observed_at", format_as_rest(s.observed_at)),
    ]
}

/// `details` as a JSON object text (`{}` when empty).
pub(crate) fn details_json(details: &HealthDetails) -> String {
    let map: serde_json::Map<String, serde_json::Value> = details
        .iter()
        .map(|(k, v)| {
            let v = match v {
                DetailValue::Int(i) => serde_json::Value::from(*i),
                DetailValue::Bool(b) => serde_json::Value::from(*b),
                DetailValue::Text(t) => serde_json::Value::from(t.as_str()),
            };
            (k.to_owned(), v)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// RFC 3339 in UTC with milliseconds and a `Z` suffix.
pub(crate) fn format_observed_at(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(RFC3339_MILLIS_UTC)
        // Formatting can only fail for years outside 0..=9999, which no
        // clock RTM runs under produces; fall back to the full RFC 3339
        // rendering rather than panicking.
        .unwrap_or_else(|_| at.to_string())
}

/// RFC 3339 in UTC with the fraction the value has (trailing zeros
/// dropped, none for a whole second): the REST API's rendering.
pub(crate) fn format_as_rest(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        // As above: only years outside 0..=9999 fail.
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtm_domain::{GameId, HealthSnapshot, HealthSource, HealthStatus};
    use time::macros::datetime;

    #[test]
    fn observed_at_is_rfc3339_utc_millis() {
        let at = datetime!(2026-11-28 21:53:41.123456 +02:00);
        assert_eq!(format_observed_at(at), "2026-11-28T19:53:41.123Z");
        assert_eq!(
            format_observed_at(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000Z"
        );
    }

    #[test]
    fn details_render_as_a_json_object() {
        let d = HealthDetails::new()
            .with("exit_code", 3i64)
            .with("oom_killed", false)
            .with("error", "connection \"refused\"");
        let v: serde_json::Value = serde_json::from_str(&details_json(&d)).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"exit_code": 3, "oom_killed": false, "error": "connection \"refused\""})
        );
        assert_eq!(details_json(&HealthDetails::new()), "{}");
    }

    #[test]
    fn fields_follow_the_contract() {
        let event = HealthEvent {
            id: 42,
            snapshot: HealthSnapshot {
                game_id: GameId::parse("g1").expect("valid id"),
                container_id: rtm_domain::ContainerId::new("abc"),
                status: HealthStatus::Exited,
                source: HealthSource::DockerEvent,
                details: HealthDetails::new().with("exit_code", 3i64),
                observed_at: datetime!(2026-11-28 19:53:41.123 UTC),
            },
        };
        let names: Vec<_> = event_fields(&event).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "game_id",
                "container_id",
                "event_type",
                "source",
                "details",
                "observed_at"
            ]
        );
        assert_eq!(event_fields(&event)[0].1, "42");
        assert_eq!(event_fields(&event)[3].1, "exited");
        assert_eq!(event_fields(&event)[4].1, "docker_event");
        assert_eq!(event_fields(&event)[6].1, "2026-11-28T19:53:41.123Z");
    }

    #[test]
    fn observed_at_has_the_precision_of_rest() {
        let at = datetime!(2026-11-28 21:53:41.123456 +02:00);
        assert_eq!(format_as_rest(at), "2026-11-28T19:53:41.123456Z");
        assert_eq!(
            format_as_rest(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05Z"
        );
    }
}
