//! [`LobbyConsumer`]: the Lobby command stream (SPEC §6) through a Redis
//! consumer group.
//!
//! Guarantees:
//! - An entry is acknowledged (`XACK`) only after the [`CommandHandler`]
//!   returned `Ok` (the operation row is committed, success or recorded
//!   business failure). Delivery is at-least-once; the entry id is the
//!   operation's `source_ref`, so a redelivery replays the recorded result.
//! - A redelivered entry whose `source_ref` already has a finished row
//!   (the Lobby replayed a window, a failover lost an ack, a claim took it
//!   from a consumer that died after its commit) is not performed again:
//!   it is acknowledged at once, whichever path delivered it (new read,
//!   pending drain, claim) and however often it was delivered. The row is
//!   looked up without the game's lock ([`CommandHandler::recorded`]): a
//!   finished row never changes, so a busy game does not delay the ack,
//!   and the delivery limit never dead-letters an entry that succeeded.
//!   An entry still queued or running here is not run a second time; it is
//!   acknowledged again once it finished, since a redelivery that landed
//!   after its first ack put it back in the pending list.
//! - A game's entries are handled one at a time, in the order this consumer
//!   received them; different games run concurrently up to `concurrency`.
//! - A transient handler error (`InProgress`, `Store`) is retried with a
//!   capped exponential backoff; the entry stays pending and the game's
//!   later entries wait behind it. Other games are not affected.
//! - Malformed entries, pending entries whose body was trimmed, and entries
//!   delivered more than `max_deliveries` times are copied to
//!   `<stream>:dead` and then acknowledged; they never block anything.
//! - On start the consumer first re-reads its own pending entries (id `0`),
//!   then new ones (`>`). After a failed read (a reply lost with a broken
//!   connection leaves entries delivered but unseen) it fetches only its
//!   pending entries it does not hold, by id (`XPENDING` + `XRANGE`): a
//!   re-read of the history would count every entry it still holds as
//!   delivered once more (Redis increments the delivery count of history
//!   reads), pushing held entries towards the delivery limit.
//! - A claimer takes over entries idle longer than `claim_idle`
//!   (`XAUTOCLAIM`); every entry delivered to this consumer and
//!   not yet finished (running, queued, or still waiting to be received
//!   behind a backlog) is "touched" (`XCLAIM … JUSTID`, which does not
//!   count as a delivery) so a slow operation, a long retry or a long
//!   backlog is never claimed from under it; the claimer touches them
//!   right before each pass too, so it never claims this consumer's own.
//! - The blocking `XREADGROUP` has its own connection; every client
//!   reconnects by itself. When Redis comes back without the group (a
//!   restart without persistence) the group is re-created (from id `0`, so
//!   commands written meanwhile are not skipped).
//! - Shutdown stops reading, lets running handler calls finish and leaves
//!   everything else pending for the next start.
//!
//! The pieces, one concept each:
//! - [`reading`]: the `XREADGROUP` loop (own pending entries, then new
//!   ones; after a failed read, the unseen pending ones).
//! - [`claiming`]: the `XAUTOCLAIM` loop, touching our own entries first.
//! - [`dispatch`]: the async loop that runs handler calls, acknowledgements
//!   and dead letters as tasks, driven by the pure [`schedule::Scheduler`]
//!   (per-game order, the concurrency cap, duplicate suppression, bounded
//!   holding, redeliveries).
//! - [`commands`]: every Redis command the consumer sends.
//! - [`stats`]: [`LobbyStats`], the counters and group state for `/readyz`
//!   and metrics.
//! - [`delivery`] (what the reader and claimer hand the dispatcher) and
//!   [`retry`] (backoff, stop signal).

mod claiming;
mod commands;
mod delivery;
mod dispatch;
mod reading;
mod retry;
mod schedule;
mod stats;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Client, ClientLike};
use rtm_domain::service::{OperationError, OperationOutcome, OperationRequest};
use rtm_domain::OperationEntry;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::client::{self, ClientSettings};
use crate::RedisError;

use stats::Counters;
pub use stats::{GroupInfo, LobbyStats};

/// What the consumer calls for each well-formed entry. The binary
/// implements it with the domain's `RuntimeService::execute`.
///
/// `Ok` (success or a recorded failure) acknowledges the entry; `Err` is
/// transient and the entry is retried.
pub trait CommandHandler: Send + Sync + 'static {
    fn handle(
        &self,
        req: OperationRequest,
    ) -> impl Future<Output = Result<OperationOutcome, OperationError>> + Send;

    /// The finished row of `req`'s `(game, source, source_ref)`, if any,
    /// read WITHOUT the game's lock (a finished row is final). MUST return
    /// `Ok(None)` only when no such row exists; `Err` is transient.
    fn recorded(
        &self,
        req: &OperationRequest,
    ) -> impl Future<Output = Result<Option<OperationEntry>, OperationError>> + Send;
}

/// Settings of the Lobby consumer.
#[derive(Debug, Clone)]
pub struct LobbyConfig {
    /// `RTM_LOBBY_STREAM` (default `lobby:runtime_commands`).
    pub stream: String,
    /// `RTM_LOBBY_GROUP` (default `rtmanager`).
    pub group: String,
    /// `RTM_INSTANCE_ID`: this replica's stable consumer name.
    pub consumer: String,
    /// `RTM_LOBBY_CLAIM_IDLE` (default 5 min): entries pending on another
    /// consumer for longer are taken over.
    pub claim_idle: Duration,
    /// `RTM_LOBBY_MAX_DELIVERIES` (default 5): an entry delivered more often
    /// is dead-lettered.
    pub max_deliveries: u64,
    /// `RTM_LOBBY_CONCURRENCY` (default 16): games handled at once.
    pub concurrency: usize,
    /// How long one `XREADGROUP` blocks waiting for new entries (default 2 s).
    pub block: Duration,
    /// Entries per `XREADGROUP`/`XAUTOCLAIM` call (default 64).
    pub batch: usize,
    /// Backoff of transient failures (handler `Err`, Redis errors):
    /// starts at `retry_min`, doubles, capped at `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// `RTM_LOBBY_DEAD_MAXLEN` (default 10,000): the dead-letter stream is
    /// trimmed to about this many entries (`MAXLEN ~`), oldest first.
    pub dead_maxlen: u64,
    pub client: ClientSettings,
}

impl LobbyConfig {
    /// The documented defaults for everything but the names.
    pub fn new(
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        Self {
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            claim_idle: Duration::from_secs(300),
            max_deliveries: 5,
            concurrency: 16,
            block: Duration::from_secs(2),
            batch: 64,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            dead_maxlen: 10_000,
            client: ClientSettings::default(),
        }
    }

    /// `<stream>:dead`.
    pub fn dead_stream(&self) -> String {
        format!("{}:dead", self.stream)
    }
}

/// Consumes the Lobby command stream. See the module documentation.
pub struct LobbyConsumer<H> {
    shared: Arc<Shared<H>>,
}

impl<H> std::fmt::Debug for LobbyConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyConsumer")
            .field("config", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

struct Shared<H> {
    cfg: LobbyConfig,
    /// Everything but the blocking read: acks, dead letters, claims, XPENDING.
    cmd: Client,
    /// Only the blocking `XREADGROUP`, so it never delays the others.
    read: Client,
    handler: H,
    counters: Arc<Counters>,
    dead_stream: String,
    /// Every entry delivered to this consumer (read or claimed) and not yet
    /// finished, wherever it waits: in the reader's hands, in the channel,
    /// queued or running in the dispatcher. The dispatcher touches all of
    /// them, not only those it holds: with a backlog it stops receiving,
    /// and entries delivered but not yet received must not look idle to
    /// another replica's claimer (which would run them out of order, or
    /// dead-letter them as over-delivered while this consumer still runs
    /// them). A std Mutex: never held across an `.await`.
    delivered: Mutex<HashSet<String>>,
}

impl<H: CommandHandler> LobbyConsumer<H> {
    /// Creates the consumer and starts connecting in the background (it does
    /// not wait for Redis). MUST be called inside a Tokio runtime. Fails only
    /// on a bad URL or configuration.
    ///
    /// ```no_run
    /// # use rtm_redis::{CommandHandler, LobbyConfig, LobbyConsumer};
    /// # async fn f<H: CommandHandler>(handler: H) -> Result<(), rtm_redis::RedisError> {
    /// let config = LobbyConfig::new("lobby:runtime_commands", "rtmanager", "rtm-1");
    /// let consumer = LobbyConsumer::new("redis://127.0.0.1:6379", config, handler)?;
    /// let stats = consumer.stats(); // for /readyz and /metrics
    /// consumer.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
    /// # Ok(()) }
    /// ```
    pub fn new(redis_url: &str, config: LobbyConfig, handler: H) -> Result<Self, RedisError> {
        if config.stream.is_empty() || config.group.is_empty() || config.consumer.is_empty() {
            return Err(RedisError::Protocol(
                "lobby stream, group and consumer names must not be empty".into(),
            ));
        }
        let cmd = client::connect(redis_url, &config.client)?;
        let read = client::connect(redis_url, &config.client)?;
        let dead_stream = config.dead_stream();
        Ok(Self {
            shared: Arc::new(Shared {
                cfg: config,
                cmd,
                read,
                handler,
                counters: Arc::new(Counters::default()),
                dead_stream,
                delivered: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// A handle on this consumer's counters and group state.
    pub fn stats(&self) -> LobbyStats {
        LobbyStats {
            counters: self.shared.counters.clone(),
            cmd: self.shared.cmd.clone(),
            read: self.shared.read.clone(),
            stream: self.shared.cfg.stream.as_str().into(),
            group: self.shared.cfg.group.as_str().into(),
        }
    }

    /// Consumes until `shutdown` resolves, then stops reading, waits for the
    /// running handler calls (entries not started stay pending) and closes
    /// its connections. Redis outages are retried, never returned.
    ///
    /// Dropping the returned future instead aborts everything at once; the
    /// entries in flight then stay pending and are redelivered.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RedisError> {
        let shared = self.shared;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel(shared.cfg.batch.max(1));
        let mut guard = AbortOnDrop {
            tasks: Vec::new(),
            clients: vec![shared.cmd.clone(), shared.read.clone()],
        };
        let reader = tokio::spawn(reading::reader(shared.clone(), tx.clone(), stop_rx.clone()));
        guard.tasks.push(reader.abort_handle());
        let claimer = tokio::spawn(claiming::claimer(shared.clone(), tx, stop_rx.clone()));
        guard.tasks.push(claimer.abort_handle());
        let dispatcher = tokio::spawn(dispatch::dispatch(shared.clone(), rx, stop_rx));
        guard.tasks.push(dispatcher.abort_handle());
        info!(
            stream = %shared.cfg.stream,
            group = %shared.cfg.group,
            consumer = %shared.cfg.consumer,
            "lobby consumer started"
        );

        shutdown.await;
        info!("lobby consumer stopping");
        // The receivers outlive this send (the tasks hold them), so it
        // cannot fail while they run; if they already ended, nothing waits.
        let _ = stop_tx.send(true);
        for (name, task) in [
            ("reader", reader),
            ("claimer", claimer),
            ("dispatcher", dispatcher),
        ] {
            if let Err(e) = task.await {
                error!(task = name, error = %e, "lobby consumer task failed");
            }
        }
        guard.tasks.clear();
        for c in std::mem::take(&mut guard.clients) {
            let _ = c.quit().await;
        }
        info!("lobby consumer stopped");
        Ok(())
    }
}

/// Aborts the consumer's tasks and closes its connections when `run` is
/// dropped before it finished.
struct AbortOnDrop {
    tasks: Vec<tokio::task::AbortHandle>,
    clients: Vec<Client>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if self.clients.is_empty() {
            return;
        }
        // Closing needs an await; outside a runtime the process is ending
        // anyway and the sockets close with it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let clients = std::mem::take(&mut self.clients);
            rt.spawn(async move {
                for c in clients {
                    let _ = c.quit().await;
                }
            });
        }
    }
}

impl<H> Shared<H> {
    /// Records entries as delivered to this consumer (see `delivered`).
    fn track<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut set) = self.delivered.lock() {
            set.extend(ids.into_iter().map(str::to_owned));
        }
    }

    /// The entry is finished here (acknowledged, or left for later).
    fn untrack(&self, id: &str) {
        if let Ok(mut set) = self.delivered.lock() {
            set.remove(id);
        }
    }

    fn tracked(&self) -> Vec<String> {
        self.delivered
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}
