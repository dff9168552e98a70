//! [`StreamReader`]: the read-only stream queries of the operator console:
//! one game's recent health changes from `runtime:health_events`, and the
//! length of the Lobby's dead-letter stream.
//!
//! The health stream is shared by every game and capped
//! (`RTM_HEALTH_STREAM_MAXLEN`), so a game's history is found by reading
//! the newest `scan` entries (`XREVRANGE … COUNT scan`) and keeping that
//! game's: bounded work per call, and "history" means "among the most
//! recent changes of the whole platform". Reads never write.

use std::collections::HashMap;

use fred::prelude::{Client, StreamsInterface};

use crate::client::{self, ClientSettings};
use crate::RedisError;

/// One entry of the health stream, as published (see `publisher.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEntry {
    /// The stream entry id (`<ms>-<seq>`).
    pub id: String,
    /// The entry's fields (`game_id`, `event_type`, `source`, `details`,
    /// `observed_at`, …).
    pub fields: HashMap<String, String>,
}

/// Read-only stream queries. Cheap to clone (one shared connection).
#[derive(Clone)]
pub struct StreamReader {
    client: Client,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader").finish_non_exhaustive()
    }
}

impl StreamReader {
    /// Creates the reader and starts connecting in the background. MUST be
    /// called inside a Tokio runtime. Fails only on a bad URL.
    pub fn new(redis_url: &str, settings: &ClientSettings) -> Result<Self, RedisError> {
        Ok(Self {
            client: client::connect(redis_url, settings)?,
        })
    }

    /// The newest entries of `stream` whose `game_id` is `game`, newest
    /// first, at most `max`, looking at the newest `scan` entries only.
    /// A missing stream is an empty history.
    pub async fn game_history(
        &self,
        stream: &str,
        game: &str,
        scan: u64,
        max: usize,
    ) -> Result<Vec<HealthEntry>, RedisError> {
        let entries: Vec<(String, HashMap<String, String>)> = self
            .client
            .xrevrange_values(stream, "+", "-", Some(scan))
            .await
            .map_err(RedisError::from_fred)?;
        Ok(entries
            .into_iter()
            .filter(|(_, f)| f.get("game_id").is_some_and(|g| g == game))
            .take(max)
            .map(|(id, fields)| HealthEntry { id, fields })
            .collect())
    }

    /// `XLEN stream` (0 when it does not exist).
    pub async fn len(&self, stream: &str) -> Result<u64, RedisError> {
        self.client
            .xlen(stream)
            .await
            .map_err(RedisError::from_fred)
    }
}
