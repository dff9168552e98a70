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
//!   reads), pushing held entries towards the delivery limit. A claimer takes over entries idle longer than
//!   `claim_idle` (`XAUTOCLAIM`); every entry delivered to this consumer and
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Client, ClientLike, StreamsInterface};
use fred::types::config::Options;
use fred::types::Value;
use futures_util::FutureExt;
use rtm_domain::service::{OperationError, OperationOutcome, OperationRequest};
use rtm_domain::{GameId, OperationEntry};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::client::{self, ClientSettings};
use crate::entry::{parse_entry, DeadReason, Malformed, StreamEntry};
use crate::publisher::format_observed_at;
use crate::resp;
use crate::RedisError;

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

/// The group's backlog, from `XINFO GROUPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInfo {
    /// Entries delivered but not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group; `None` when Redis cannot
    /// tell (e.g. after deletions inside the unread range).
    pub lag: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
    transient_failures: AtomicU64,
    // A std Mutex is enough: it is never held across an `.await`.
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(format!("{what}: {e}"));
        }
    }
}

/// A cheap, cloneable view of a consumer for `/readyz` and metrics.
#[derive(Clone)]
pub struct LobbyStats {
    counters: Arc<Counters>,
    cmd: Client,
    read: Client,
    stream: Arc<str>,
    group: Arc<str>,
}

impl std::fmt::Debug for LobbyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyStats")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl LobbyStats {
    /// Both connections (commands and blocking reads) are up.
    pub fn connected(&self) -> bool {
        self.cmd.is_connected() && self.read.is_connected()
    }
    /// Entries whose operation is recorded: the handler returned `Ok`, or
    /// a redelivered entry was found already recorded.
    pub fn processed(&self) -> u64 {
        self.counters.processed.load(Ordering::Relaxed)
    }
    /// Entries acknowledged after processing (dead letters not included).
    pub fn acked(&self) -> u64 {
        self.counters.acked.load(Ordering::Relaxed)
    }
    /// Entries copied to the dead-letter stream.
    pub fn dead_lettered(&self) -> u64 {
        self.counters.dead_lettered.load(Ordering::Relaxed)
    }
    /// Handler calls that returned a transient `Err` (each retried).
    pub fn transient_failures(&self) -> u64 {
        self.counters.transient_failures.load(Ordering::Relaxed)
    }
    /// The last error seen (Redis or handler), for diagnostics.
    pub fn last_error(&self) -> Option<String> {
        self.counters.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// The group's pending count and lag (`XINFO GROUPS`); `Ok(None)` when
    /// the stream or the group does not exist (yet).
    pub async fn group_info(&self) -> Result<Option<GroupInfo>, RedisError> {
        let reply: Result<Value, _> = self.cmd.xinfo_groups(&*self.stream).await;
        let reply = match reply.map_err(RedisError::from_fred) {
            Ok(v) => v,
            Err(RedisError::Command(e)) if e.details().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(resp::xinfo_groups(&reply)?
            .into_iter()
            .find(|g| g.name == *self.group)
            .map(|g| GroupInfo {
                pending: g.pending,
                lag: g.lag,
            }))
    }

    /// The age of the oldest entry RTM still owes work: the oldest one
    /// delivered but not acknowledged, or else the first not yet delivered
    /// to the group. `Ok(None)` when there is none (or no stream/group).
    /// Entry ids carry their creation time in milliseconds (ids are
    /// generated by Redis, `*`), so this is the Lobby's wait in time.
    pub async fn oldest_waiting_age(&self) -> Result<Option<Duration>, RedisError> {
        let reply: Result<Value, _> = self.cmd.xinfo_groups(&*self.stream).await;
        let reply = match reply.map_err(RedisError::from_fred) {
            Ok(v) => v,
            Err(RedisError::Command(e)) if e.details().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(group) = resp::xinfo_groups(&reply)?
            .into_iter()
            .find(|g| g.name == *self.group)
        else {
            return Ok(None);
        };
        let mut oldest: Option<u64> = None;
        if group.pending > 0 {
            let v: Value = self
                .cmd
                .xpending(&*self.stream, &*self.group, ("-", "+", 1u64))
                .await
                .map_err(RedisError::from_fred)?;
            oldest = resp::xpending(&v)?
                .first()
                .and_then(|r| resp::id_millis(&r.id));
        }
        if oldest.is_none() {
            let start = match &group.last_delivered {
                Some(id) => format!("({id}"),
                None => "-".to_owned(),
            };
            let v: Value = self
                .cmd
                .xrange(&*self.stream, start, "+", Some(1))
                .await
                .map_err(RedisError::from_fred)?;
            oldest = resp::first_id(&v).and_then(|id| resp::id_millis(&id));
        }
        let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0);
        Ok(oldest.map(|ms| Duration::from_millis(now_ms.saturating_sub(ms))))
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
        let reader = tokio::spawn(reader(shared.clone(), tx.clone(), stop_rx.clone()));
        guard.tasks.push(reader.abort_handle());
        let claimer = tokio::spawn(claimer(shared.clone(), tx, stop_rx.clone()));
        guard.tasks.push(claimer.abort_handle());
        let dispatcher = tokio::spawn(dispatch(shared.clone(), rx, stop_rx));
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

// ---------------------------------------------------------------- helpers

/// Capped exponential backoff.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max: max.max(min),
        }
    }
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Sleeps for `d` unless stop is (or becomes) requested; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = wait_stop(stop) => {}
    }
    stopped(stop)
}

/// Resolves once stop is requested (or its sender is gone).
async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    // Err means the sender was dropped: treat it as a stop, too.
    let _ = stop.wait_for(|s| *s).await;
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// What the reader and the claimer hand to the dispatcher.
enum Delivery {
    Command {
        id: String,
        req: Box<OperationRequest>,
    },
    Dead {
        entry: StreamEntry,
        reason: DeadReason,
        deliveries: u64,
        ack: bool,
    },
}

impl Delivery {
    fn id(&self) -> &str {
        match self {
            Delivery::Command { id, .. } => id,
            Delivery::Dead { entry, .. } => &entry.id,
        }
    }
}

/// Sorts one received entry: malformed first (the more specific reason),
/// then the delivery limit.
fn classify(entry: StreamEntry, deliveries: u64, max: u64) -> Delivery {
    match parse_entry(&entry) {
        Err(m) => Delivery::Dead {
            entry,
            reason: DeadReason::Malformed(m),
            deliveries,
            ack: true,
        },
        Ok(_) if deliveries > max => Delivery::Dead {
            entry,
            reason: DeadReason::MaxDeliveries { deliveries, max },
            deliveries,
            ack: true,
        },
        Ok(req) => Delivery::Command {
            id: entry.id,
            req: Box::new(req),
        },
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

impl<H: CommandHandler> Shared<H> {
    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`; an existing group is fine.
    /// From `0`, not `$`: commands written before the group existed (first
    /// deployment, or after Redis lost the group) must not be skipped; any
    /// already-processed one is a harmless replay (entry id = source_ref).
    async fn ensure_group(&self) -> Result<(), RedisError> {
        let r: Result<Value, _> = self
            .cmd
            .xgroup_create(&*self.cfg.stream, &*self.cfg.group, "0", true)
            .await;
        match r.map_err(RedisError::from_fred) {
            Ok(_) => {
                info!(stream = %self.cfg.stream, group = %self.cfg.group, "created consumer group");
                Ok(())
            }
            Err(RedisError::Command(e)) if e.details().starts_with("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One `XREADGROUP` on the dedicated connection. `id` is `0`-style for
    /// our own pending entries (no blocking), `>` for new ones.
    async fn read_group(&self, id: &str) -> Result<Vec<StreamEntry>, RedisError> {
        let new = id == ">";
        let block = new.then(|| u64::try_from(self.cfg.block.as_millis()).unwrap_or(u64::MAX));
        // The blocking read must outlive its BLOCK time; the usual command
        // timeout comes on top.
        let opts = Options {
            timeout: Some(self.cfg.block + self.cfg.client.command_timeout),
            ..Options::default()
        };
        let v: Value = self
            .read
            .with_options(&opts)
            .xreadgroup(
                &*self.cfg.group,
                &*self.cfg.consumer,
                Some(self.cfg.batch.max(1) as u64),
                block,
                false,
                &*self.cfg.stream,
                id,
            )
            .await
            .map_err(RedisError::from_fred)?;
        resp::xread(&v)
    }

    /// Delivery counts of our own pending entries `first..=last`.
    async fn own_delivery_counts(
        &self,
        first: &str,
        last: &str,
        count: usize,
    ) -> Result<HashMap<String, u64>, RedisError> {
        let v: Value = self
            .cmd
            .xpending(
                &*self.cfg.stream,
                &*self.cfg.group,
                (first, last, count as u64, &*self.cfg.consumer),
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(resp::xpending(&v)?
            .into_iter()
            .map(|r| (r.id, r.deliveries))
            .collect())
    }

    /// Our own pending entries this consumer does not hold (delivered by
    /// a read whose reply was lost), with their delivery counts, in id
    /// order. Bodies are fetched by id (`XRANGE`), which, unlike a history
    /// read, counts no delivery; an entry trimmed away comes back without
    /// a body (and is dead-lettered as such).
    async fn unseen_pending(&self) -> Result<Vec<(StreamEntry, u64)>, RedisError> {
        let held: HashSet<String> = self.tracked().into_iter().collect();
        let page = self.cfg.batch.max(1) as u64;
        let mut out = Vec::new();
        let mut start = "-".to_owned();
        for _ in 0..MAX_RECOVER_PAGES {
            let v: Value = self
                .cmd
                .xpending(
                    &*self.cfg.stream,
                    &*self.cfg.group,
                    (start.as_str(), "+", page, &*self.cfg.consumer),
                )
                .await
                .map_err(RedisError::from_fred)?;
            let rows = resp::xpending(&v)?;
            let full = rows.len() as u64 >= page;
            let Some(last) = rows.last().map(|r| r.id.clone()) else {
                break;
            };
            for row in rows.into_iter().filter(|r| !held.contains(&r.id)) {
                let v: Value = self
                    .cmd
                    .xrange(&*self.cfg.stream, row.id.as_str(), row.id.as_str(), Some(1))
                    .await
                    .map_err(RedisError::from_fred)?;
                let entry = resp::entries(&v)?
                    .into_iter()
                    .next()
                    .unwrap_or(StreamEntry {
                        id: row.id,
                        fields: None,
                        invalid_utf8: false,
                    });
                out.push((entry, row.deliveries));
            }
            if !full {
                break;
            }
            start = format!("({last}");
        }
        Ok(out)
    }

    async fn delivery_count(&self, id: &str) -> Result<Option<u64>, RedisError> {
        let v: Value = self
            .cmd
            .xpending(&*self.cfg.stream, &*self.cfg.group, (id, id, 1u64))
            .await
            .map_err(RedisError::from_fred)?;
        Ok(resp::xpending(&v)?.into_iter().next().map(|r| r.deliveries))
    }

    async fn ack(&self, id: &str) -> Result<(), RedisError> {
        let r: Result<Value, _> = self.cmd.xack(&*self.cfg.stream, &*self.cfg.group, id).await;
        match r.map_err(RedisError::from_fred) {
            Ok(_) => Ok(()),
            // The group (and its pending list) is gone: Redis lost its data.
            // There is nothing left to acknowledge.
            Err(e) if e.is_no_group() => {
                warn!(
                    entry = id,
                    "group missing while acknowledging; nothing to acknowledge"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Acknowledges, retrying until it worked or stop is requested (the
    /// entry then stays pending and its redelivery is a harmless replay).
    async fn ack_with_retry(&self, id: &str, stop: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = Backoff::new(self.cfg.retry_min, self.cfg.retry_max);
        loop {
            match self.ack(id).await {
                Ok(()) => return true,
                Err(e) => {
                    warn!(entry = id, error = %e, "acknowledge failed; retrying");
                    self.counters.error("xack", &e);
                    if sleep_or_stop(backoff.next(), stop).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn add_dead(
        &self,
        entry: &StreamEntry,
        reason: &DeadReason,
        deliveries: u64,
    ) -> Result<(), RedisError> {
        let mut fields: Vec<(String, String)> = entry.fields.clone().unwrap_or_default();
        fields.extend([
            ("dead_reason".to_owned(), reason.code().to_owned()),
            ("dead_detail".to_owned(), reason.to_string()),
            ("dead_entry_id".to_owned(), entry.id.clone()),
            ("dead_consumer".to_owned(), self.cfg.consumer.clone()),
            ("dead_deliveries".to_owned(), deliveries.to_string()),
            (
                "dead_at".to_owned(),
                format_observed_at(OffsetDateTime::now_utc()),
            ),
        ]);
        let _: Value = self
            .cmd
            .xadd(
                &*self.dead_stream,
                false,
                ("MAXLEN", "~", self.cfg.dead_maxlen),
                "*",
                fields,
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(())
    }

    /// Resets the idle time of entries held in memory, without counting a
    /// delivery, so no claimer (ours or another replica's) takes them.
    async fn touch(&self, ids: Vec<String>) -> Result<(), RedisError> {
        let _: Value = self
            .cmd
            .xclaim(
                &*self.cfg.stream,
                &*self.cfg.group,
                &*self.cfg.consumer,
                0,
                ids,
                None,
                None,
                None,
                false,
                true,
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- reader

/// Reads our pending entries (from `0`) then new ones (`>`), forever.
/// After any read error it re-reads its pending entries: a reply lost in a
/// broken connection left them delivered but unseen.
async fn reader<H: CommandHandler>(
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

// ---------------------------------------------------------------- claimer

/// Upper bound of `XAUTOCLAIM` pages per pass, so one pass always ends.
const MAX_CLAIM_PAGES: usize = 100;
/// Upper bound of `XPENDING` pages when recovering unseen entries.
const MAX_RECOVER_PAGES: usize = 100;

fn claim_interval(claim_idle: Duration) -> Duration {
    (claim_idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(30))
}

/// Every `claim_idle / 2`, takes over entries idle longer than `claim_idle`
/// (from dead consumers, or orphaned by a crashed task of our own).
async fn claimer<H: CommandHandler>(
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

// ---------------------------------------------------------------- dispatcher

/// A task of the dispatcher ended.
struct Done {
    /// The game whose command task this was; `None` for acknowledgement
    /// and dead-letter tasks, which run outside the per-game queues.
    game: Option<GameId>,
    id: String,
    /// Whether the entry was acknowledged.
    acked: bool,
}

/// How many acknowledged ids are remembered, so a redelivery of one is
/// acknowledged again at once, without even a database lookup.
const RECENT_ACKS: usize = 4096;

/// Ids this dispatcher acknowledged, oldest evicted first.
#[derive(Default)]
struct RecentAcks {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentAcks {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: String) {
        if self.set.contains(&id) {
            return;
        }
        if self.set.len() >= RECENT_ACKS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.clone());
        self.order.push_back(id);
    }
}

/// Owns the per-game queues: one running task per game at most, at most
/// `concurrency` games at once, entries of a game in arrival order.
async fn dispatch<H: CommandHandler>(
    shared: Arc<Shared<H>>,
    mut rx: mpsc::Receiver<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let concurrency = cfg.concurrency.max(1);
    // Entries held in memory (queued or running) are bounded so a backlog
    // stays in Redis, where the claimer and other replicas can see it.
    let max_held = (concurrency.max(cfg.batch) * 4).max(16);
    let mut held: HashSet<String> = HashSet::new();
    // Held entries delivered again meanwhile (a rewound group, a pending
    // re-read): the redelivery may have landed in Redis after the first
    // acknowledgement, putting the entry back in the pending list, so
    // they are acknowledged once more when their task ends.
    let mut redelivered: HashSet<String> = HashSet::new();
    let mut recent = RecentAcks::default();
    let mut queues: HashMap<GameId, VecDeque<(String, Box<OperationRequest>)>> = HashMap::new();
    let mut scheduled: HashSet<GameId> = HashSet::new();
    let mut ready: VecDeque<GameId> = VecDeque::new();
    let mut running_games = 0usize;
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
            Done {
                game: None,
                id,
                acked,
            }
        });
    };

    loop {
        // Start what the concurrency limit allows.
        while running_games < concurrency {
            let Some(game) = ready.pop_front() else { break };
            let Some((id, req)) = queues.get_mut(&game).and_then(VecDeque::pop_front) else {
                scheduled.remove(&game);
                continue;
            };
            running_games += 1;
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
                Done {
                    game: Some(game),
                    id,
                    acked,
                }
            });
        }

        tokio::select! {
            biased;
            _ = wait_stop(&mut stop) => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Done { game, id, acked } = match done {
                    Ok(done) => done,
                    // Tasks catch panics themselves; a JoinError here means
                    // the task was cancelled, which only happens at drop.
                    Err(e) => {
                        error!(error = %e, "lobby task failed");
                        continue;
                    }
                };
                held.remove(&id);
                let again = redelivered.remove(&id);
                if acked {
                    recent.insert(id.clone());
                }
                if acked && again {
                    debug!(entry = %id, "entry was delivered again while it ran; acknowledging again");
                    held.insert(id.clone());
                    spawn_ack(&mut tasks, id);
                } else {
                    shared.untrack(&id);
                }
                if let Some(game) = game {
                    running_games -= 1;
                    if queues.get(&game).is_some_and(|q| !q.is_empty()) {
                        ready.push_back(game);
                    } else {
                        queues.remove(&game);
                        scheduled.remove(&game);
                    }
                }
            }
            d = rx.recv(), if held.len() < max_held => {
                let Some(d) = d else { break };
                if held.contains(d.id()) {
                    // Queued or running here: never a second run. It is
                    // acknowledged again when it ends (see `redelivered`).
                    debug!(entry = d.id(), "entry already held; delivered again");
                    redelivered.insert(d.id().to_owned());
                    continue;
                }
                if recent.contains(d.id()) {
                    // Acknowledged here after its row was committed, then
                    // delivered again (a rewound group, a lost ack, a
                    // pending re-read that crossed the ack): its result
                    // stands; acknowledge it again, do not run it.
                    info!(entry = d.id(), "entry already performed and acknowledged here; acknowledging its redelivery");
                    held.insert(d.id().to_owned());
                    spawn_ack(&mut tasks, d.id().to_owned());
                    continue;
                }
                held.insert(d.id().to_owned());
                match d {
                    Delivery::Command { id, req } => {
                        let game = req.game_id.clone();
                        queues.entry(game.clone()).or_default().push_back((id, req));
                        if scheduled.insert(game.clone()) {
                            ready.push_back(game);
                        }
                    }
                    Delivery::Dead { entry, reason, deliveries, ack } => {
                        let (s, st) = (shared.clone(), task_stop.clone());
                        tasks.spawn(async move {
                            let acked = dead_letter(&s, &entry, &reason, deliveries, ack, st).await;
                            Done { game: None, id: entry.id, acked }
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
    let abandoned: usize = queues.values().map(VecDeque::len).sum();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }

    #[test]
    fn classify_prefers_malformed_then_delivery_limit() {
        let good = StreamEntry::new("1-0", &[("op", "stop"), ("game_id", "g1")]);
        assert!(matches!(
            classify(good.clone(), 5, 5),
            Delivery::Command { .. }
        ));
        match classify(good, 6, 5) {
            Delivery::Dead { reason, ack, .. } => {
                assert_eq!(
                    reason,
                    DeadReason::MaxDeliveries {
                        deliveries: 6,
                        max: 5
                    }
                );
                assert!(ack);
            }
            Delivery::Command { .. } => panic!("poison entry accepted"),
        }
        let bad = StreamEntry::new("2-0", &[("op", "jump"), ("game_id", "g1")]);
        match classify(bad, 9, 5) {
            Delivery::Dead { reason, .. } => assert_eq!(reason.code(), "unknown_op"),
            Delivery::Command { .. } => panic!("malformed entry accepted"),
        }
    }

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
