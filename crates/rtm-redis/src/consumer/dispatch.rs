//! The dispatcher: the async loop that receives deliveries from the reader
//! and the claimer and runs them as tasks — handler calls (with retries,
//! then the ack), acknowledgements of redeliveries, dead letters. What to
//! run and when is decided by the pure [`Scheduler`]; this loop carries
//! its decisions out, touches every entry delivered to this consumer so
//! none looks idle, and at shutdown lets running tasks finish.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rtm_domain::service::{OperationError, OperationRequest};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::delivery::Delivery;
use super::retry::{sleep_or_stop, wait_stop, Backoff};
use super::schedule::{max_held, Finish, Offer, Scheduler, Start};
use super::{CommandHandler, Shared};
use crate::entry::{parse_entry, DeadReason, StreamEntry};

/// A task of the dispatcher ended.
struct Done {
    id: String,
    /// Whether the entry was acknowledged.
    acked: bool,
}

/// Runs the entries delivered on `rx` until stop: one running task per
/// game at most, at most `concurrency` games at once, entries of a game in
/// arrival order (see [`Scheduler`]).
pub(super) async fn dispatch<H: CommandHandler>(
    shared: Arc<Shared<H>>,
    mut rx: mpsc::Receiver<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    // Entries held in memory (queued or running) are bounded so a backlog
    // stays in Redis, where the claimer and other replicas can see it.
    let mut sched = Scheduler::new(cfg.concurrency, max_held(cfg.concurrency, cfg.batch));
    let mut tasks: JoinSet<Done> = JoinSet::new();
    // Tasks get their own receivers; `stop` itself is borrowed by the loop.
    let task_stop = stop.clone();
    let mut touch = tokio::time::interval(
        (cfg.claim_idle / 3).clamp(Duration::from_millis(50), Duration::from_secs(60)),
    );
    touch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Acknowledges an entry whose operation is known to be recorded.
    let spawn_ack = |tasks: &mut JoinSet<Done>, id: String| {
        let (s, mut st) = (shared.clone(), task_stop.clone());
        tasks.spawn(async move {
            let acked = s.ack_with_retry(&id, &mut st).await;
            if acked {
                s.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Done { id, acked }
        });
    };

    loop {
        // Start what the concurrency limit allows.
        while let Some(Start { id, req }) = sched.next_to_start() {
            let (s, st) = (shared.clone(), task_stop.clone());
            tasks.spawn(async move {
                let res = AssertUnwindSafe(run_command(&s, &id, *req, st))
                    .catch_unwind()
                    .await;
                let acked = res.unwrap_or_else(|_| {
                    // A bug in the handler: the entry stays pending and is
                    // claimed again after claim_idle (counted as a delivery).
                    error!(entry = %id, "handler panicked; entry left pending");
                    false
                });
                Done { id, acked }
            });
        }

        tokio::select! {
            biased;
            _ = wait_stop(&mut stop) => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Done { id, acked } = match done {
                    Ok(done) => done,
                    // Tasks catch panics themselves; a JoinError here means
                    // the task was cancelled, which only happens at drop.
                    Err(e) => {
                        error!(error = %e, "lobby task failed");
                        continue;
                    }
                };
                match sched.finished(&id, acked) {
                    Finish::AckAgain => {
                        debug!(entry = %id, "entry was delivered again while it ran; acknowledging again");
                        spawn_ack(&mut tasks, id);
                    }
                    Finish::Release => shared.untrack(&id),
                }
            }
            d = rx.recv(), if sched.has_room() => {
                let Some(d) = d else { break };
                match sched.offer(d) {
                    // Queued or running here: never a second run. It is
                    // acknowledged again when it ends.
                    Offer::Duplicate { id } => {
                        debug!(entry = %id, "entry already held; delivered again");
                    }
                    // Acknowledged here after its row was committed, then
                    // delivered again (a rewound group, a lost ack, a
                    // pending re-read that crossed the ack): its result
                    // stands; acknowledge it again, do not run it.
                    Offer::AckAgain { id } => {
                        info!(entry = %id, "entry already performed and acknowledged here; acknowledging its redelivery");
                        spawn_ack(&mut tasks, id);
                    }
                    Offer::Queued => {}
                    Offer::DeadLetter { entry, reason, deliveries, ack } => {
                        let (s, st) = (shared.clone(), task_stop.clone());
                        tasks.spawn(async move {
                            let acked = dead_letter(&s, &entry, &reason, deliveries, ack, st).await;
                            Done { id: entry.id, acked }
                        });
                    }
                }
            }
            _ = touch.tick() => {
                // Everything delivered to us, held here or not (yet).
                let ids = shared.tracked();
                if !ids.is_empty() {
                    let s = shared.clone();
                    // Detached: a slow Redis must not stall dispatching; the
                    // command timeout bounds it.
                    tokio::spawn(async move {
                        if let Err(e) = s.touch(ids).await {
                            debug!(error = %e, "touching held entries failed");
                        }
                    });
                }
            }
        }
    }

    // Shutdown: queued entries stay pending in Redis; running ones finish
    // (their retry loops see the stop and give up).
    let abandoned = sched.queued();
    if abandoned > 0 {
        info!(
            entries = abandoned,
            "leaving queued entries pending for the next start"
        );
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            error!(error = %e, "lobby task failed");
        }
    }
}

/// One attempt at an entry: its recorded result when its `source_ref`
/// already has a finished row (looked up without the game's lock, so a
/// redelivery is acknowledged even while the game is busy), else the
/// handler's run. `(outcome, replayed)`.
async fn attempt<H: CommandHandler>(
    shared: &Shared<H>,
    req: &OperationRequest,
) -> Result<(rtm_domain::Outcome, bool), OperationError> {
    if let Some(row) = shared.handler.recorded(req).await? {
        return Ok((row.outcome, true));
    }
    let outcome = shared.handler.handle(req.clone()).await?;
    Ok((outcome.operation.outcome, outcome.replayed))
}

/// Handles one command: retries transient errors with backoff (until stop),
/// then acknowledges. True when the entry was acknowledged.
async fn run_command<H: CommandHandler>(
    shared: &Shared<H>,
    id: &str,
    req: OperationRequest,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let mut backoff = Backoff::new(shared.cfg.retry_min, shared.cfg.retry_max);
    let game = req.game_id.clone();
    let op = req.command.clone();
    loop {
        match attempt(shared, &req).await {
            Ok((outcome, replayed)) => {
                shared.counters.processed.fetch_add(1, Ordering::Relaxed);
                let msg = "lobby command handled";
                if replayed {
                    info!(entry = id, game = %game, op = ?op, outcome = %outcome, replayed, "{msg}: already recorded, not performed again");
                } else {
                    debug!(entry = id, game = %game, op = ?op, outcome = %outcome, replayed, "{msg}");
                }
                break;
            }
            Err(e) => {
                shared
                    .counters
                    .transient_failures
                    .fetch_add(1, Ordering::Relaxed);
                shared.counters.error("handler", &e);
                let wait = backoff.next();
                warn!(entry = id, game = %game, error = %e, retry_in = ?wait, "transient failure; will retry");
                if sleep_or_stop(wait, &mut stop).await {
                    info!(entry = id, "stopping; entry left pending");
                    return false;
                }
            }
        }
    }
    let acked = shared.ack_with_retry(id, &mut stop).await;
    if acked {
        shared.counters.acked.fetch_add(1, Ordering::Relaxed);
    }
    acked
}

/// Whether an entry over the delivery limit was in fact performed: its
/// `source_ref` has a finished row. Retries lookup failures (the entry
/// stays pending and touched meanwhile); `None` when stopped first.
async fn over_limit_but_recorded<H: CommandHandler>(
    shared: &Shared<H>,
    entry: &StreamEntry,
    stop: &mut watch::Receiver<bool>,
) -> Option<bool> {
    // Only a well-formed entry can have a row (classify checks the format
    // first), so a parse failure here means "not recorded".
    let Ok(req) = parse_entry(entry) else {
        return Some(false);
    };
    let mut backoff = Backoff::new(shared.cfg.retry_min, shared.cfg.retry_max);
    loop {
        match shared.handler.recorded(&req).await {
            Ok(row) => return Some(row.is_some()),
            Err(e) => {
                shared.counters.error("recorded lookup", &e);
                warn!(entry = %entry.id, error = %e, "cannot tell whether an over-delivered entry was performed; retrying");
                if sleep_or_stop(backoff.next(), stop).await {
                    return None;
                }
            }
        }
    }
}

/// Copies the entry to the dead-letter stream, then acknowledges it; an
/// entry over the delivery limit whose operation is recorded is only
/// acknowledged (its result stands: it is no failure). True when the entry
/// was acknowledged.
async fn dead_letter<H: CommandHandler>(
    shared: &Shared<H>,
    entry: &StreamEntry,
    reason: &DeadReason,
    deliveries: u64,
    ack: bool,
    mut stop: watch::Receiver<bool>,
) -> bool {
    if matches!(reason, DeadReason::MaxDeliveries { .. }) {
        match over_limit_but_recorded(shared, entry, &mut stop).await {
            None => return false,
            Some(true) => {
                info!(entry = %entry.id, deliveries, "over-delivered entry is already recorded; acknowledging it instead of dead-lettering");
                shared.counters.processed.fetch_add(1, Ordering::Relaxed);
                let acked = shared.ack_with_retry(&entry.id, &mut stop).await;
                if acked {
                    shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                }
                return acked;
            }
            Some(false) => {}
        }
    }
    warn!(entry = %entry.id, reason = %reason, "dead-lettering lobby entry");
    let mut backoff = Backoff::new(shared.cfg.retry_min, shared.cfg.retry_max);
    loop {
        match shared.add_dead(entry, reason, deliveries).await {
            Ok(()) => break,
            Err(e) => {
                shared.counters.error("dead letter", &e);
                if sleep_or_stop(backoff.next(), &mut stop).await {
                    return false;
                }
            }
        }
    }
    shared
        .counters
        .dead_lettered
        .fetch_add(1, Ordering::Relaxed);
    ack && shared.ack_with_retry(&entry.id, &mut stop).await
}
