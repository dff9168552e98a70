//! Reads on a thread's own pipelined connection, for threads that opt in
//! ([`pipeline_reads_on_this_thread`]): the HTTP workers.
//!
//! Why: actix-web's workers are single-threaded runtimes. A pooled
//! connection's driver task runs on the runtime that opened it, so a read
//! from a worker crosses threads twice (there and back), and each of a
//! worker's concurrent requests holds a pooled connection of its own. On
//! a small host those thread switches and PostgreSQL backends cost more
//! than the reads. A thread that opts in gets one connection per store,
//! opened on that thread (its driver task runs there too): every read the
//! thread makes shares it, and tokio-postgres pipelines concurrent reads —
//! they go out in one write and their answers come back in one read.
//!
//! Only single statements use it ([`PgStore::query`](super::PgStore)):
//! reads and idempotent deletes. Transactions (`commit`) always take a
//! pooled connection. A local connection that fails to open, times out or
//! is found closed is dropped, and the read falls back to the pool: the
//! local path can make a read faster, never fail where the pool would not.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::ClientWrapper;
use tokio_postgres::NoTls;

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

#[derive(Default)]
struct Local {
    enabled: bool,
    /// By store id: two stores (schemas) on one thread never share one.
    slots: HashMap<u64, Slot>,
}

/// One store's connection on this thread. The async mutex makes opening
/// it single-flight: the reads that find no connection wait for the one
/// being opened instead of each opening their own.
type Slot = Arc<tokio::sync::Mutex<Conn>>;

#[derive(Default)]
struct Conn {
    client: Option<Arc<ClientWrapper>>,
    /// No new connection is tried before this instant after one failed to
    /// open, so a database that is down costs each read one wait (the
    /// pool's), not two.
    resting_until: Option<Instant>,
}

/// How long a thread waits before it tries to open a local connection
/// again after one failed to open.
const REST: Duration = Duration::from_secs(1);

/// Makes the reads of every [`PgStore`](super::PgStore) made on the
/// calling thread go through one connection per store opened on this
/// thread (see the module docs). Call it once at the start of a
/// single-threaded runtime's thread, e.g. in an actix-web app factory.
pub fn pipeline_reads_on_this_thread() {
    LOCAL.with(|l| l.borrow_mut().enabled = true);
}

/// This thread's connection for store `id`, opening it when the thread
/// opted in and has none (or a closed one). `None`: use the pool.
pub(super) async fn client(id: u64, config: &tokio_postgres::Config) -> Option<Arc<ClientWrapper>> {
    let slot = LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        l.enabled.then(|| l.slots.entry(id).or_default().clone())
    })?;
    let mut conn = slot.lock().await;
    if let Some(client) = conn.client.as_ref().filter(|c| !c.is_closed()) {
        return Some(client.clone());
    }
    if conn
        .resting_until
        .is_some_and(|until| Instant::now() < until)
    {
        return None;
    }
    // `connect_timeout` is set on the config: a dead server fails fast.
    let (client, connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "thread-local read connection not opened; using the pool");
            conn.client = None;
            conn.resting_until = Some(Instant::now() + REST);
            return None;
        }
    };
    // Spawned from this thread's current-thread runtime: it runs here.
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "thread-local read connection ended");
        }
    });
    let client = Arc::new(ClientWrapper::new(client, driver));
    conn.client = Some(client.clone());
    conn.resting_until = None;
    Some(client)
}

/// Drops this thread's connection for store `id` (it failed); the next
/// read opens a new one. A read still waiting to open it is not held up.
pub(super) fn forget(id: u64) {
    let slot = LOCAL.with(|l| l.borrow().slots.get(&id).cloned());
    if let Some(slot) = slot {
        if let Ok(mut conn) = slot.try_lock() {
            conn.client = None;
        }
    }
}
