//! [`PgStore`]: the storage ports on a deadpool-postgres pool.
//!
//! Guarantees:
//! - `commit` is one transaction (record upsert, operation insert, snapshot
//!   upsert, outbox insert); any failure rolls all of it back. A duplicate
//!   non-empty `source_ref` hits V2's unique index and is `AlreadyExists`
//!   with nothing written, even when two replicas race.
//! - Lists use keyset pagination exactly as the query structs define it,
//!   with SQL built only from the filters present (so each combination
//!   gets its own cached plan and can use its index).
//! - Broken connections are replaced, so the store recovers by itself after
//!   a PostgreSQL restart: closed clients are dropped on checkout
//!   (`RecyclingMethod::Fast`, no round trip), and a session found ended on
//!   its first use is discarded and the read (or the `BEGIN`) retried once
//!   on a fresh connection. Calls made while it is down fail with
//!   `Unavailable`; a read (or a `BEGIN`) unanswered within
//!   `connect_timeout` (a black-holed server) fails the same way, its
//!   connection discarded.
//! - `game_id` ordering is byte order (`COLLATE "C"`), the same as
//!   `GameId`'s `Ord`, whatever the database's default collation.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rtm_domain::{HealthStatus, RuntimeStatus, StoreError};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::error::{pool_err, store_err};
use crate::{PgConfig, PgError};

mod commit;
mod console;
mod local;
mod ports;
pub use console::{GameCounts, GameSort, GamesFilter, GamesPage, HealthFilter, WorkerLeader};
pub use local::pipeline_reads_on_this_thread;

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: String,
    /// How long a read (or a `BEGIN`) may go unanswered before the
    /// database counts as unreachable: `connect_timeout`. Every read is an
    /// indexed point or keyset query, so a healthy server answers in
    /// milliseconds; a black-holed one must not hang the caller.
    round_trip: std::time::Duration,
    /// Identifies this store (and its clones) to the thread-local read
    /// connections (`local`), with the config they connect with.
    id: u64,
    driver: std::sync::Arc<tokio_postgres::Config>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Builds a pool whose connections live in the configured schema.
pub(crate) fn build_pool(
    config: &PgConfig,
    size: usize,
    recycling: RecyclingMethod,
) -> Result<Pool, PgError> {
    let pg = config.driver_config()?;
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: recycling,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.pool_wait_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()
        .map_err(PgError::Pool)
}

/// Owned query parameters, so the SQL can be assembled filter by filter.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a parameter and returns its placeholder (`$n`).
    fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl PgStore {
    /// Builds the store. Connections are opened lazily: this does not
    /// touch the network (call [`UnitOfWork::ping`](rtm_domain::ports::UnitOfWork::ping) to check).
    pub fn new(config: &PgConfig) -> Result<Self, PgError> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Self {
            pool: build_pool(config, config.pool_size, RecyclingMethod::Fast)?,
            schema: config.schema.clone(),
            round_trip: config.connect_timeout,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            driver: std::sync::Arc::new(config.driver_config()?),
        })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How many runtime records are in each status (statuses without a
    /// record are absent), for the `rtm_games` gauge. One aggregate over
    /// the status column: cheap at thousands of games.
    pub async fn record_counts(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        self.counts(
            "SELECT status, count(*) FROM runtime_records GROUP BY status",
            RuntimeStatus::parse,
        )
        .await
    }

    /// How many `running` games currently have each health status
    /// (statuses nobody has are absent), for the `rtm_games_health` gauge:
    /// "how many engines are sick right now". Stopped and removed games
    /// are left out: their `exited` or `container_disappeared` is expected.
    pub async fn health_counts(&self) -> Result<Vec<(HealthStatus, u64)>, StoreError> {
        self.counts(
            "SELECT h.status, count(*) FROM health_snapshots h \
             JOIN runtime_records r ON r.game_id = h.game_id \
             WHERE r.status = 'running' GROUP BY h.status",
            HealthStatus::parse,
        )
        .await
    }

    /// Rows of `(vocabulary value, count)` from a `GROUP BY` query.
    async fn counts<T, E: std::fmt::Display>(
        &self,
        sql: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Vec<(T, u64)>, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        self.query(sql, &Params::default())
            .await?
            .iter()
            .map(|row| {
                let value: String = row.try_get(0).map_err(|e| corrupt(&e))?;
                let n: i64 = row.try_get(1).map_err(|e| corrupt(&e))?;
                let value = parse(&value).map_err(|e| corrupt(&e))?;
                Ok((value, u64::try_from(n).unwrap_or_default()))
            })
            .collect()
    }

    /// Rows in `operation_log` (for tests and diagnostics of retention).
    pub async fn operation_count(&self) -> Result<u64, StoreError> {
        let n = self
            .count("SELECT count(*) FROM operation_log", &Params::default())
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// The single `count(*)` a statement answers.
    async fn count(&self, sql: &str, params: &Params) -> Result<i64, StoreError> {
        self.query(sql, params)
            .await?
            .first()
            .ok_or_else(|| StoreError::Corrupt("count(*) returned no row".into()))?
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// Runs one statement (prepared once per connection and cached).
    ///
    /// Every statement run through here is a read or a delete whose second
    /// run changes nothing more (outbox rows by id, an expired removed
    /// game), so a connection found lost on its first use is discarded and
    /// the statement runs once more on another. Writes that must not run
    /// twice go through `commit`, which retries only its `BEGIN`.
    async fn query(
        &self,
        sql: &str,
        params: &Params,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        if let Some(client) = local::client(self.id, &self.driver).await {
            let run = async {
                let stmt = client.prepare_cached(sql).await?;
                client.query(&stmt, &params.refs()).await
            };
            match tokio::time::timeout(self.round_trip, run).await {
                Err(_) => {
                    local::forget(self.id);
                    return Err(unanswered(self.round_trip));
                }
                Ok(Err(e)) if connection_lost(&e) => local::forget(self.id),
                Ok(result) => return result.map_err(store_err),
            }
        }
        let mut retried = false;
        loop {
            let conn = self.conn().await?;
            let run = async {
                let stmt = conn.prepare_cached(sql).await?;
                conn.query(&stmt, &params.refs()).await
            };
            let Ok(result) = tokio::time::timeout(self.round_trip, run).await else {
                drop(deadpool_postgres::Object::take(conn));
                return Err(unanswered(self.round_trip));
            };
            match result {
                Err(e) if !retried && connection_lost(&e) => {
                    drop(deadpool_postgres::Object::take(conn));
                    retried = true;
                }
                other => return other.map_err(store_err),
            }
        }
    }
}

/// A read or `BEGIN` that got no answer within `after`: the connection is
/// discarded and the database counts as unreachable.
pub(super) fn unanswered(after: std::time::Duration) -> StoreError {
    StoreError::Unavailable(format!("no answer within {after:?}").into())
}

/// Whether `e` says the connection itself is gone (closed socket, the
/// server terminating the session), not that the statement failed.
///
/// Pooled connections are recycled with deadpool's `Fast` check (is the
/// client closed?) instead of a round trip per checkout: at thousands of
/// reads a second that round trip doubled the cost of a `GET`. A session
/// the server ended a moment ago can still look open; its first use fails
/// with one of these, and the caller retries once on a fresh connection.
pub(super) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
}
