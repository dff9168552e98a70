//! The outbox relay: publishes committed health changes to
//! `runtime:health_events` in commit order.
//!
//! An event is marked published only after the publisher confirmed it was
//! appended, and the relay stops at the first failure so a game's events
//! never overtake each other: the next call retries from the same event.
//! If RTM dies between the append and the mark, the event is published
//! again (at-least-once); consumers drop the duplicate by `event_id`.
//! Run one relay at a time (the binary runs it under leader election), or
//! two relays may interleave and duplicate.

use super::HealthMonitor;
use crate::ports::{HealthOutbox, HealthPublisher, Ports};
use crate::{PublishError, StoreError};

/// Why a relay call stopped early; `published` events went out before.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("health event relay: reading or marking the outbox failed after {published} events")]
    Store {
        published: usize,
        #[source]
        source: StoreError,
    },
    #[error("health event relay: publishing failed after {published} events")]
    Publish {
        published: usize,
        #[source]
        source: PublishError,
    },
}

impl<P: Ports> HealthMonitor<P> {
    /// Publishes pending outbox events in order, batch after batch, until
    /// the outbox is drained or a step fails. Returns how many went out.
    pub async fn relay_once<H: HealthPublisher>(&self, publisher: &H) -> Result<usize, RelayError> {
        let store = &self.adapters.store;
        let batch = self.config.relay_batch.max(1);
        let mut published = 0;
        loop {
            let events = store
                .pending_events(batch)
                .await
                .map_err(|source| RelayError::Store { published, source })?;
            let full = events.len() >= batch as usize;
            for event in &events {
                publisher
                    .publish(event)
                    .await
                    .map_err(|source| RelayError::Publish { published, source })?;
                store
                    .mark_published(&[event.id])
                    .await
                    .map_err(|source| RelayError::Store { published, source })?;
                published += 1;
            }
            if !full {
                return Ok(published);
            }
        }
    }
}
