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
//!
//! The monitor tells the host's relay that there is something to publish
//! through an explicit [`RelayWake`] hook (not through the metrics), so a
//! change this process commits goes out at once instead of at the relay's
//! next poll.

use std::sync::Arc;

use super::HealthMonitor;
use crate::ports::{HealthOutbox, HealthPublisher, Ports};
use crate::{PublishError, StoreError};

/// Why a relay call stopped early; `published` events went out before.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the outbox or marking an event published failed; the
    /// unmarked event is published again by the next call.
    #[error("health event relay: reading or marking the outbox failed after {published} events")]
    Store {
        /// Events published (and marked) by this call before the failure.
        published: usize,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The publisher did not confirm an append; the event stays pending
    /// and the next call starts from it, so order is kept.
    #[error("health event relay: publishing failed after {published} events")]
    Publish {
        /// Events published (and marked) by this call before the failure.
        published: usize,
        /// The publisher's error.
        #[source]
        source: PublishError,
    },
}

/// The hook the monitor calls after it committed a health change (an
/// outbox event) of its own, so the host can run
/// [`HealthMonitor::relay_once`] at once.
///
/// It is a wake-up, not a delivery: it carries no event, may be called
/// while a relay is already running, and several calls may be merged into
/// one relay run (the relay drains the whole outbox). It is called after
/// the commit and after the game's lock is released, on the observing
/// task, so it must return quickly and never block (notify a task, do not
/// publish from here). A host without it still relays by polling.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use rtm_domain::health::RelayWake;
///
/// let wakes = Arc::new(AtomicUsize::new(0));
/// let counter = wakes.clone();
/// let wake = RelayWake::new(move || {
///     counter.fetch_add(1, Ordering::Relaxed);
/// });
/// wake.wake();
/// assert_eq!(wakes.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone)]
pub struct RelayWake(Arc<dyn Fn() + Send + Sync>);

impl RelayWake {
    /// A hook that calls `f` on every wake-up.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Signals that the outbox has a new event.
    pub fn wake(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for RelayWake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayWake(..)")
    }
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
