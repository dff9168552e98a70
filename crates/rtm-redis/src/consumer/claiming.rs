//! The claimer: every `claim_idle / 2` it takes over entries pending on
//! any consumer for longer than `claim_idle` (`XAUTOCLAIM`) and hands
//! them to the dispatcher. It touches this consumer's own unfinished
//! entries right before each pass, and skips the pass when that touch
//! fails, so it never claims an entry this consumer still holds.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::StreamsInterface;
use fred::types::Value;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::delivery::{classify, Delivery};
use super::retry::{sleep_or_stop, wait_stop};
use super::{CommandHandler, Shared};
use crate::entry::{DeadReason, Malformed, StreamEntry};
use crate::resp;
use crate::RedisError;

/// Upper bound of `XAUTOCLAIM` pages per pass, so one pass always ends.
const MAX_CLAIM_PAGES: usize = 100;

/// The pause between two claim passes.
fn claim_interval(claim_idle: Duration) -> Duration {
    (claim_idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// Every `claim_idle / 2`, takes over entries idle longer than `claim_idle`
/// (from dead consumers, or orphaned by a crashed task of our own).
pub(super) async fn claimer<H: CommandHandler>(
    shared: Arc<Shared<H>>,
    tx: mpsc::Sender<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let min_idle = u64::try_from(cfg.claim_idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        if sleep_or_stop(claim_interval(cfg.claim_idle), &mut stop).await {
            return;
        }
        // Touch our own unfinished entries first, in this task: XAUTOCLAIM
        // cannot skip our own consumer, and on a starved machine the
        // dispatcher's periodic touch can lag past `claim_idle`; claiming
        // an entry we still hold would count a delivery for nothing (and
        // with a low delivery limit turn a running entry into a dead
        // letter). Another replica's claimer is kept off by the periodic
        // touch alone.
        let ours = shared.tracked();
        if !ours.is_empty() {
            if let Err(e) = shared.touch(ours).await {
                // Claiming now could take our own held entries.
                debug!(error = %e, "touching held entries before claiming failed; no claim this pass");
                shared.counters.error("xclaim", &e);
                continue;
            }
        }
        let mut cursor = "0-0".to_owned();
        for _ in 0..MAX_CLAIM_PAGES {
            let r: Result<Value, _> = shared
                .cmd
                .xautoclaim(
                    &*cfg.stream,
                    &*cfg.group,
                    &*cfg.consumer,
                    min_idle,
                    cursor.as_str(),
                    Some(cfg.batch.max(1) as u64),
                    false,
                )
                .await;
            let page = r
                .map_err(RedisError::from_fred)
                .and_then(|v| resp::xautoclaim(&v));
            let (next, claimed, deleted) = match page {
                Ok(p) => p,
                Err(e) => {
                    // NOGROUP included: the reader re-creates the group.
                    debug!(error = %e, "XAUTOCLAIM failed; next pass");
                    shared.counters.error("xautoclaim", &e);
                    break;
                }
            };
            shared.track(claimed.iter().map(|e| e.id.as_str()));
            let mut out = Vec::with_capacity(claimed.len() + deleted.len());
            for entry in claimed {
                info!(entry = %entry.id, "claimed an idle pending entry");
                let deliveries = match shared.delivery_count(&entry.id).await {
                    Ok(Some(n)) => n,
                    // Gone from the pending list meanwhile (acknowledged by
                    // its old owner): nothing to do.
                    Ok(None) => {
                        shared.untrack(&entry.id);
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "XPENDING failed; delivery count unknown");
                        1
                    }
                };
                out.push(classify(entry, deliveries, cfg.max_deliveries));
            }
            // Redis 7 already dropped these from the pending list: record
            // that they were never processed.
            for id in deleted {
                let entry = StreamEntry {
                    id,
                    fields: None,
                    invalid_utf8: false,
                };
                out.push(Delivery::Dead {
                    entry,
                    reason: DeadReason::Malformed(Malformed::Trimmed),
                    deliveries: 0,
                    ack: false,
                });
            }
            for d in out {
                tokio::select! {
                    r = tx.send(d) => if r.is_err() { return },
                    _ = wait_stop(&mut stop) => return,
                }
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_interval_is_half_the_idle_time_within_bounds() {
        assert_eq!(
            claim_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            claim_interval(Duration::from_millis(300)),
            Duration::from_millis(150)
        );
        assert_eq!(
            claim_interval(Duration::from_millis(10)),
            Duration::from_millis(50)
        );
    }
}
