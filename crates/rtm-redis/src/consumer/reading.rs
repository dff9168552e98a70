//! The reader: the consumer's `XREADGROUP` loop, on its own connection.
//! It drains this consumer's own pending entries first (from `0`), then
//! reads new ones (`>`), marks every entry it receives as delivered here
//! (so it is touched, see [`Shared::track`]) and hands it to the
//! dispatcher. After a failed read it fetches only the pending entries it
//! does not hold, never the history (see [`Shared::unseen_pending`]).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::delivery::{classify, Delivery};
use super::retry::{sleep_or_stop, stopped, wait_stop, Backoff};
use super::{CommandHandler, Shared};

/// Reads our pending entries (from `0`) then new ones (`>`), forever.
/// After a read error it fetches the pending entries it does not hold
/// first: a reply lost in a broken connection left them delivered but
/// unseen.
pub(super) async fn reader<H: CommandHandler>(
    shared: Arc<Shared<H>>,
    tx: mpsc::Sender<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let mut backoff = Backoff::new(cfg.retry_min, cfg.retry_max);
    let mut need_group = true;
    // Some(cursor): draining our own pending entries after `cursor`.
    let mut pending_cursor: Option<String> = Some("0".to_owned());
    // A read failed: fetch our pending entries we do not hold first.
    let mut recover = false;
    while !stopped(&stop) {
        if need_group {
            match shared.ensure_group().await {
                Ok(()) => need_group = false,
                Err(e) => {
                    warn!(error = %e, "cannot create the consumer group; retrying");
                    shared.counters.error("xgroup create", &e);
                    if sleep_or_stop(backoff.next(), &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if recover {
            let unseen = tokio::select! {
                r = shared.unseen_pending() => r,
                _ = wait_stop(&mut stop) => return,
            };
            match unseen {
                Ok(unseen) => {
                    recover = false;
                    if !unseen.is_empty() {
                        info!(
                            entries = unseen.len(),
                            "pending entries delivered but never received; handling them"
                        );
                    }
                    shared.track(unseen.iter().map(|(e, _)| e.id.as_str()));
                    for (entry, deliveries) in unseen {
                        let d = classify(entry, deliveries, cfg.max_deliveries);
                        tokio::select! {
                            r = tx.send(d) => if r.is_err() { return },
                            _ = wait_stop(&mut stop) => return,
                        }
                    }
                }
                Err(e) => {
                    if e.is_no_group() {
                        need_group = true;
                    }
                    warn!(error = %e, "listing unseen pending entries failed; retrying");
                    shared.counters.error("xpending", &e);
                    if sleep_or_stop(backoff.next(), &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let id = pending_cursor.clone().unwrap_or_else(|| ">".to_owned());
        let read = tokio::select! {
            r = shared.read_group(&id) => r,
            _ = wait_stop(&mut stop) => return,
        };
        let entries = match read {
            Ok(entries) => entries,
            Err(e) => {
                if e.is_no_group() {
                    warn!(stream = %cfg.stream, "consumer group missing (Redis lost its data?); re-creating it");
                    need_group = true;
                } else {
                    warn!(error = %e, "XREADGROUP failed; retrying");
                }
                shared.counters.error("xreadgroup", &e);
                // Before anything was read, the history re-read simply
                // starts over; afterwards, see `recover`.
                if pending_cursor.as_deref() != Some("0") {
                    pending_cursor = None;
                    recover = true;
                }
                if sleep_or_stop(backoff.next(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        // Delivered to us from now on: keep them from looking idle.
        shared.track(entries.iter().map(|e| e.id.as_str()));

        let counts = match (&pending_cursor, entries.first(), entries.last()) {
            (None, _, _) | (_, None, _) | (_, _, None) => HashMap::new(),
            (Some(_), Some(first), Some(last)) => {
                match shared
                    .own_delivery_counts(&first.id, &last.id, entries.len())
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        // Unknown counts: handle the entries anyway; the
                        // limit is checked again at the next delivery.
                        warn!(error = %e, "XPENDING failed; delivery counts unknown for this batch");
                        shared.counters.error("xpending", &e);
                        HashMap::new()
                    }
                }
            }
        };
        if let Some(cursor) = pending_cursor.as_mut() {
            match entries.last() {
                Some(last) => *cursor = last.id.clone(),
                None => {
                    debug!("own pending entries drained; reading new entries");
                    pending_cursor = None;
                    continue;
                }
            }
        }
        for entry in entries {
            // A new entry has been delivered exactly once.
            let deliveries = counts.get(&entry.id).copied().unwrap_or(1);
            let d = classify(entry, deliveries, cfg.max_deliveries);
            tokio::select! {
                r = tx.send(d) => if r.is_err() { return },
                _ = wait_stop(&mut stop) => return,
            }
        }
    }
}
