//! [`Scheduler`]: the dispatcher's bookkeeping, pure (no tokio, no Redis),
//! so every rule of it has a plain unit test.
//!
//! It decides, for the entries delivered to this consumer:
//! - order: a game's commands start one at a time, in the order they were
//!   offered; games become ready in FIFO order;
//! - the concurrency cap: at most `concurrency` games run at once;
//! - duplicate suppression: an entry already held (queued or running, or
//!   in an acknowledgement / dead-letter task) is never run a second time;
//! - bounded holding: at most `max_held` entries are held, so a backlog
//!   stays in Redis, where the claimer and other replicas can see it;
//! - redeliveries: an entry acknowledged here recently is acknowledged
//!   again at once, not run; an entry delivered again while held is
//!   acknowledged once more when its task ends, since the redelivery may
//!   have landed in Redis after the first acknowledgement and put it back
//!   in the pending list.
//!
//! The async dispatch loop drives it: [`Scheduler::offer`] for each
//! delivery (while [`Scheduler::has_room`]), [`Scheduler::next_to_start`]
//! until `None`, and [`Scheduler::finished`] when a task it asked for ends.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};

use rtm_domain::service::OperationRequest;
use rtm_domain::GameId;

use super::delivery::Delivery;
use crate::entry::{DeadReason, StreamEntry};

/// How many acknowledged ids are remembered, so a redelivery of one is
/// acknowledged again at once, without even a database lookup.
const RECENT_ACKS: usize = 4096;

/// How many entries the dispatcher holds in memory at most (queued,
/// running, or in an acknowledgement / dead-letter task): four times a
/// read batch or the concurrency, whichever is larger, and at least 16.
pub(super) fn max_held(concurrency: usize, batch: usize) -> usize {
    (concurrency.max(1).max(batch) * 4).max(16)
}

/// What to do with an offered delivery.
#[derive(Debug)]
pub(super) enum Offer {
    /// Already held here: it is not run a second time. If its task ends
    /// acknowledged, [`Scheduler::finished`] asks for one more ack.
    Duplicate { id: String },
    /// Acknowledged here recently (its result stands): acknowledge it
    /// again in a task, do not run it; report the task's end.
    AckAgain { id: String },
    /// Queued behind its game's earlier entries: see
    /// [`Scheduler::next_to_start`].
    Queued,
    /// Dead-letter it in a task (outside the per-game queues); report the
    /// task's end.
    DeadLetter {
        entry: StreamEntry,
        reason: DeadReason,
        deliveries: u64,
        ack: bool,
    },
}

/// A command to run now; report its end with [`Scheduler::finished`].
#[derive(Debug)]
pub(super) struct Start {
    pub(super) id: String,
    pub(super) req: Box<OperationRequest>,
}

/// What follows the end of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    /// The entry was delivered again while held, and this task
    /// acknowledged it: acknowledge it once more (a task whose end is
    /// reported again). The entry stays held meanwhile.
    AckAgain,
    /// The entry is no longer held here (acknowledged, or left pending
    /// for a later delivery).
    Release,
}

/// Why an entry is held.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// A command of this game, queued or running.
    Command(GameId),
    /// An acknowledgement or dead-letter task.
    Task,
}

/// The dispatcher's state. See the module documentation.
#[derive(Debug)]
pub(super) struct Scheduler {
    concurrency: usize,
    max_held: usize,
    /// Every entry held here, and why.
    held: HashMap<String, Held>,
    /// Held entries delivered again meanwhile.
    redelivered: HashSet<String>,
    recent: RecentAcks,
    /// The queue of every game queued or running (a game is present until
    /// it has nothing queued and nothing running).
    queues: HashMap<GameId, VecDeque<(String, Box<OperationRequest>)>>,
    /// Games with a queued command and none running, in the order they
    /// became so.
    ready: VecDeque<GameId>,
    /// Games with a command running.
    running_games: usize,
}

impl Scheduler {
    /// At most `concurrency` (at least 1) games at once and `max_held`
    /// entries held.
    pub(super) fn new(concurrency: usize, max_held: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            max_held,
            held: HashMap::new(),
            redelivered: HashSet::new(),
            recent: RecentAcks::new(RECENT_ACKS),
            queues: HashMap::new(),
            ready: VecDeque::new(),
            running_games: 0,
        }
    }

    /// Whether another delivery may be offered (fewer than `max_held`
    /// entries held); when not, the dispatcher stops receiving.
    pub(super) fn has_room(&self) -> bool {
        self.held.len() < self.max_held
    }

    /// Takes a delivery in: see [`Offer`].
    pub(super) fn offer(&mut self, d: Delivery) -> Offer {
        if self.held.contains_key(d.id()) {
            let id = d.id().to_owned();
            self.redelivered.insert(id.clone());
            return Offer::Duplicate { id };
        }
        if self.recent.contains(d.id()) {
            let id = d.id().to_owned();
            self.held.insert(id.clone(), Held::Task);
            return Offer::AckAgain { id };
        }
        match d {
            Delivery::Command { id, req } => {
                let game = req.game_id.clone();
                self.held.insert(id.clone(), Held::Command(game.clone()));
                match self.queues.entry(game) {
                    Entry::Occupied(mut q) => q.get_mut().push_back((id, req)),
                    Entry::Vacant(v) => {
                        self.ready.push_back(v.key().clone());
                        v.insert(VecDeque::from([(id, req)]));
                    }
                }
                Offer::Queued
            }
            Delivery::Dead {
                entry,
                reason,
                deliveries,
                ack,
            } => {
                self.held.insert(entry.id.clone(), Held::Task);
                Offer::DeadLetter {
                    entry,
                    reason,
                    deliveries,
                    ack,
                }
            }
        }
    }

    /// The next command to run, if the concurrency cap allows one and a
    /// game without a running command has one queued.
    pub(super) fn next_to_start(&mut self) -> Option<Start> {
        while self.running_games < self.concurrency {
            let game = self.ready.pop_front()?;
            let Some((id, req)) = self.queues.get_mut(&game).and_then(VecDeque::pop_front) else {
                // Not expected (a ready game has a queued command); drop it.
                self.queues.remove(&game);
                continue;
            };
            self.running_games += 1;
            return Some(Start { id, req });
        }
        None
    }

    /// A task this scheduler asked for ended (a started command, an ack
    /// again, a dead letter); `acked` tells whether it acknowledged the
    /// entry. MUST be called exactly once per such task.
    pub(super) fn finished(&mut self, id: &str, acked: bool) -> Finish {
        let held = self.held.remove(id);
        let again = self.redelivered.remove(id);
        if acked {
            self.recent.insert(id.to_owned());
        }
        let finish = if acked && again {
            self.held.insert(id.to_owned(), Held::Task);
            Finish::AckAgain
        } else {
            Finish::Release
        };
        if let Some(Held::Command(game)) = held {
            self.running_games -= 1;
            if self.queues.get(&game).is_some_and(|q| !q.is_empty()) {
                self.ready.push_back(game);
            } else {
                self.queues.remove(&game);
            }
        }
        finish
    }

    /// Commands queued and not started (left pending at shutdown).
    pub(super) fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

/// Ids this dispatcher acknowledged, oldest evicted first.
#[derive(Debug)]
struct RecentAcks {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentAcks {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: String) {
        if self.set.contains(&id) {
            return;
        }
        if self.set.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.clone());
        self.order.push_back(id);
    }
}

#[cfg(test)]
mod tests;
