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
use rtm_domain::ports::{
    HealthOutbox, HealthQuery, HealthSnapshots, OperationLog, OperationQuery, RecordQuery,
    Retention, RuntimeRecords, UnitOfWork,
};
use rtm_domain::{
    Commit, GameId, HealthEvent, HealthSnapshot, HealthStatus, OpSource, OperationEntry,
    RecordedRequest, RuntimeRecord, RuntimeStatus, StoreError,
};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::error::{pool_err, store_err};
use crate::rows::{
    self, JOINED_SNAPSHOT_COLUMNS, OPERATION_COLUMNS, RECORD_COLUMNS, SNAPSHOT_COLUMNS,
};
use crate::{PgConfig, PgError};

mod console;
pub use console::{GameCounts, GameSort, GamesFilter, GamesPage, HealthFilter, WorkerLeader};

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
    /// touch the network (call [`UnitOfWork::ping`] to check).
    pub fn new(config: &PgConfig) -> Result<Self, PgError> {
        Ok(Self {
            pool: build_pool(config, config.pool_size, RecyclingMethod::Fast)?,
            schema: config.schema.clone(),
            round_trip: config.connect_timeout,
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
fn unanswered(after: std::time::Duration) -> StoreError {
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
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
}

impl RuntimeRecords for PgStore {
    async fn get_record(&self, game: &GameId) -> Result<Option<RuntimeRecord>, StoreError> {
        let mut p = Params::default();
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM runtime_records WHERE game_id = {}",
            p.push(game.as_str().to_owned())
        );
        self.query(&sql, &p)
            .await?
            .first()
            .map(rows::record)
            .transpose()
    }

    async fn get_record_with_health(
        &self,
        game: &GameId,
    ) -> Result<Option<(RuntimeRecord, Option<HealthSnapshot>)>, StoreError> {
        let mut p = Params::default();
        // One statement, so the two rows are one consistent snapshot of
        // the database and one round trip.
        let sql = format!(
            "SELECT r.{}, {JOINED_SNAPSHOT_COLUMNS} FROM runtime_records r \
             LEFT JOIN health_snapshots h ON h.game_id = r.game_id \
             WHERE r.game_id = {}",
            RECORD_COLUMNS.replace(", ", ", r."),
            p.push(game.as_str().to_owned())
        );
        self.query(&sql, &p)
            .await?
            .first()
            .map(rows::record_with_health)
            .transpose()
    }

    async fn list_records(&self, q: &RecordQuery) -> Result<Vec<RuntimeRecord>, StoreError> {
        let mut p = Params::default();
        let mut sql = format!("SELECT {RECORD_COLUMNS} FROM runtime_records WHERE true");
        if let Some(status) = q.status {
            sql += &format!(" AND status = {}", p.push(status.as_str()));
        }
        if let Some(before) = q.last_op_before {
            sql += &format!(" AND last_op_at < {}", p.push(before));
        }
        page_by_game(&mut sql, &mut p, q.after.as_ref(), q.limit);
        self.query(&sql, &p)
            .await?
            .iter()
            .map(rows::record)
            .collect()
    }

    async fn find_case_collision(&self, game: &GameId) -> Result<Option<GameId>, StoreError> {
        let mut p = Params::default();
        // `lower` folds ASCII the way GameId::folded does (ids are ASCII);
        // V3's index on lower(game_id) serves it.
        let sql = format!(
            "SELECT game_id FROM runtime_records \
             WHERE lower(game_id) = lower({g}) AND game_id <> {g} AND status <> 'removed' \
             ORDER BY game_id LIMIT 1",
            g = p.push(game.as_str().to_owned()),
        );
        self.query(&sql, &p)
            .await?
            .first()
            .map(|row| {
                let id: String = row.try_get(0).map_err(store_err)?;
                GameId::parse(&id).map_err(|e| {
                    StoreError::Corrupt(format!("runtime_records.game_id {id:?}: {e}"))
                })
            })
            .transpose()
    }
}

impl OperationLog for PgStore {
    async fn find_by_source_ref(
        &self,
        game: &GameId,
        source: OpSource,
        source_ref: &str,
    ) -> Result<Option<OperationEntry>, StoreError> {
        let mut p = Params::default();
        // Same predicate as the partial unique index, so it serves this.
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operation_log \
             WHERE game_id = {} AND op_source = {} AND source_ref = {} \
               AND source_ref <> '' AND finished_at IS NOT NULL \
             ORDER BY id LIMIT 1",
            p.push(game.as_str().to_owned()),
            p.push(source.as_str()),
            p.push(source_ref.to_owned()),
        );
        self.query(&sql, &p)
            .await?
            .first()
            .map(rows::operation)
            .transpose()
    }

    async fn find_source_ref(
        &self,
        source: OpSource,
        source_ref: &str,
    ) -> Result<Option<RecordedRequest>, StoreError> {
        let mut p = Params::default();
        // Served by V3's (op_source, source_ref) index. The oldest row is
        // the one the reference first named.
        let sql = format!(
            "SELECT {OPERATION_COLUMNS}, request FROM operation_log \
             WHERE op_source = {} AND source_ref = {} \
               AND source_ref <> '' AND finished_at IS NOT NULL \
             ORDER BY id LIMIT 1",
            p.push(source.as_str()),
            p.push(source_ref.to_owned()),
        );
        let rows = self.query(&sql, &p).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(RecordedRequest {
            entry: rows::operation(row)?,
            request: row.try_get("request").map_err(store_err)?,
        }))
    }

    async fn list_operations(&self, q: &OperationQuery) -> Result<Vec<OperationEntry>, StoreError> {
        let mut p = Params::default();
        let mut sql = format!("SELECT {OPERATION_COLUMNS} FROM operation_log WHERE true");
        if let Some(game) = &q.game_id {
            sql += &format!(" AND game_id = {}", p.push(game.as_str().to_owned()));
        }
        if let Some(kind) = q.kind {
            sql += &format!(" AND op_kind = {}", p.push(kind.as_str()));
        }
        if let Some(outcome) = q.outcome {
            sql += &format!(" AND outcome = {}", p.push(outcome.as_str()));
        }
        if let Some(source) = q.source {
            sql += &format!(" AND op_source = {}", p.push(source.as_str()));
        }
        if let Some(since) = q.since {
            sql += &format!(" AND started_at >= {}", p.push(since));
        }
        if let Some(before) = q.before_id {
            // Page by the sort key itself, (started_at, id), so a row that
            // started earlier but committed later (a higher id) is never
            // skipped or repeated at a page boundary.
            sql += &format!(
                " AND (started_at, id) < (SELECT started_at, id FROM operation_log WHERE id = {})",
                p.push(before)
            );
        }
        sql += &format!(
            " ORDER BY started_at DESC, id DESC LIMIT {}",
            p.push(i64::from(q.limit))
        );
        self.query(&sql, &p)
            .await?
            .iter()
            .map(rows::operation)
            .collect()
    }
}

impl HealthSnapshots for PgStore {
    async fn get_health(&self, game: &GameId) -> Result<Option<HealthSnapshot>, StoreError> {
        let mut p = Params::default();
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM health_snapshots WHERE game_id = {}",
            p.push(game.as_str().to_owned())
        );
        self.query(&sql, &p)
            .await?
            .first()
            .map(|r| rows::snapshot(r, rows::SNAPSHOT))
            .transpose()
    }

    async fn list_health(&self, q: &HealthQuery) -> Result<Vec<HealthSnapshot>, StoreError> {
        let mut p = Params::default();
        let mut sql = format!("SELECT {SNAPSHOT_COLUMNS} FROM health_snapshots WHERE true");
        if let Some(status) = q.status {
            sql += &format!(" AND status = {}", p.push(status.as_str()));
        }
        page_by_game(&mut sql, &mut p, q.after.as_ref(), q.limit);
        self.query(&sql, &p)
            .await?
            .iter()
            .map(|r| rows::snapshot(r, rows::SNAPSHOT))
            .collect()
    }
}

impl HealthOutbox for PgStore {
    async fn pending_events(&self, limit: u32) -> Result<Vec<HealthEvent>, StoreError> {
        let mut p = Params::default();
        let sql = format!(
            "SELECT id, game_id, container_id, event_type, source, details, observed_at \
             FROM health_outbox ORDER BY id LIMIT {}",
            p.push(i64::from(limit))
        );
        self.query(&sql, &p)
            .await?
            .iter()
            .map(rows::event)
            .collect()
    }

    /// Published events are deleted: every row left is pending, so the
    /// table stays as small as the backlog (see docs/database.md).
    async fn mark_published(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut p = Params::default();
        let sql = format!(
            "DELETE FROM health_outbox WHERE id = ANY({})",
            p.push(ids.to_vec())
        );
        self.query(&sql, &p).await.map(|_| ())
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let n = self
            .count("SELECT count(*) FROM health_outbox", &Params::default())
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

impl Retention for PgStore {
    async fn delete_operations_before(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Oldest first through operation_log_started_id_idx; a row is kept
        // when it is the newest of a game whose record is live (no newer
        // row of the game exists and the record is not removed).
        let mut p = Params::default();
        let sql = format!(
            "DELETE FROM operation_log WHERE id IN ( \
               SELECT o.id FROM operation_log o \
               WHERE o.started_at < {} \
                 AND (EXISTS (SELECT 1 FROM operation_log n \
                              WHERE n.game_id = o.game_id AND n.id > o.id) \
                      OR NOT EXISTS (SELECT 1 FROM runtime_records r \
                              WHERE r.game_id = o.game_id AND r.status <> 'removed')) \
               ORDER BY o.started_at, o.id LIMIT {})",
            p.push(cutoff),
            p.push(i64::from(limit))
        );
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(&sql).await.map_err(store_err)?;
        conn.execute(&stmt, &p.refs()).await.map_err(store_err)
    }

    async fn delete_removed_game(
        &self,
        game: &GameId,
        cutoff: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement, so record and snapshot go together or not at all.
        let mut p = Params::default();
        let sql = format!(
            "WITH gone AS ( \
               DELETE FROM runtime_records \
               WHERE game_id = {} AND status = 'removed' AND last_op_at < {} \
               RETURNING game_id), \
             snap AS (DELETE FROM health_snapshots \
               WHERE game_id IN (SELECT game_id FROM gone)) \
             SELECT count(*) FROM gone",
            p.push(game.as_str().to_owned()),
            p.push(cutoff)
        );
        Ok(self.count(&sql, &p).await? > 0)
    }
}

impl UnitOfWork for PgStore {
    async fn commit(&self, commit: Commit) -> Result<Option<OperationEntry>, StoreError> {
        // `BEGIN` is safe to retry (nothing is written yet), so a
        // connection found lost then is replaced once, like a read's.
        let mut retried = false;
        loop {
            let mut conn = self.conn().await?;
            let lost = match tokio::time::timeout(self.round_trip, conn.transaction()).await {
                Ok(Ok(tx)) => return Self::write_commit(tx, &commit).await,
                Ok(Err(e)) if !retried && connection_lost(&e) => Some(e),
                Ok(Err(e)) => return Err(store_err(e)),
                Err(_) => None,
            };
            drop(deadpool_postgres::Object::take(conn));
            let Some(lost) = lost else {
                return Err(unanswered(self.round_trip));
            };
            tracing::debug!(error = %lost, "replacing a lost connection before a commit");
            retried = true;
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        match tokio::time::timeout(self.round_trip, conn.simple_query("SELECT 1")).await {
            Ok(answer) => answer.map(drop).map_err(store_err),
            Err(_) => {
                drop(deadpool_postgres::Object::take(conn));
                Err(unanswered(self.round_trip))
            }
        }
    }
}

impl PgStore {
    /// Writes `commit` in `tx` and commits. Dropping an uncommitted
    /// transaction rolls it back, so every `?` below leaves nothing written.
    async fn write_commit(
        tx: deadpool_postgres::Transaction<'_>,
        commit: &Commit,
    ) -> Result<Option<OperationEntry>, StoreError> {
        if let Some(r) = &commit.record {
            // created_at is kept from the first insert (SPEC §4: it never
            // changes), whatever the caller sends.
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO runtime_records (game_id, status, current_container_id, \
                       current_image_ref, engine_endpoint, state_path, docker_network, \
                       started_at, stopped_at, removed_at, last_op_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (game_id) DO UPDATE SET \
                       status = EXCLUDED.status, \
                       current_container_id = EXCLUDED.current_container_id, \
                       current_image_ref = EXCLUDED.current_image_ref, \
                       engine_endpoint = EXCLUDED.engine_endpoint, \
                       state_path = EXCLUDED.state_path, \
                       docker_network = EXCLUDED.docker_network, \
                       started_at = EXCLUDED.started_at, \
                       stopped_at = EXCLUDED.stopped_at, \
                       removed_at = EXCLUDED.removed_at, \
                       last_op_at = EXCLUDED.last_op_at",
                )
                .await
                .map_err(store_err)?;
            let container = r.container_id.as_ref().map(|c| c.as_str().to_owned());
            let image = r.image_ref.as_ref().map(|i| i.to_string());
            tx.execute(
                &stmt,
                &[
                    &r.game_id.as_str(),
                    &r.status.as_str(),
                    &container,
                    &image,
                    &r.engine_endpoint,
                    &r.state_path,
                    &r.docker_network,
                    &r.started_at,
                    &r.stopped_at,
                    &r.removed_at,
                    &r.last_op_at,
                    &r.created_at,
                ],
            )
            .await
            .map_err(store_err)?;
        }

        let entry = match &commit.operation {
            None => None,
            Some(op) => {
                let stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO operation_log (game_id, op_kind, op_source, source_ref, \
                           image_ref, container_id, outcome, error_code, error_message, \
                           started_at, finished_at, request) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         RETURNING {OPERATION_COLUMNS}"
                    ))
                    .await
                    .map_err(store_err)?;
                let (code, message) = match &op.error {
                    Some(e) => (e.code.as_str(), e.message.as_str()),
                    None => ("", ""),
                };
                let row = tx
                    .query_one(
                        &stmt,
                        &[
                            &op.game_id.as_str(),
                            &op.kind.as_str(),
                            &op.source.as_str(),
                            &op.source_ref,
                            &op.image_ref,
                            &op.container_id,
                            &op.outcome.as_str(),
                            &code,
                            &message,
                            &op.started_at,
                            &op.finished_at,
                            &op.request,
                        ],
                    )
                    .await
                    .map_err(store_err)?;
                Some(rows::operation(&row)?)
            }
        };

        if let Some(h) = &commit.health {
            let s = &h.snapshot;
            let details = rows::details_to_json(&s.details);
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO health_snapshots (game_id, container_id, status, source, \
                       details, observed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (game_id) DO UPDATE SET \
                       container_id = EXCLUDED.container_id, status = EXCLUDED.status, \
                       source = EXCLUDED.source, details = EXCLUDED.details, \
                       observed_at = EXCLUDED.observed_at",
                )
                .await
                .map_err(store_err)?;
            let params: [&(dyn ToSql + Sync); 6] = [
                &s.game_id.as_str(),
                &s.container_id,
                &s.status.as_str(),
                &s.source.as_str(),
                &details,
                &s.observed_at,
            ];
            tx.execute(&stmt, &params).await.map_err(store_err)?;
            if h.publish {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO health_outbox (game_id, container_id, event_type, source, \
                           details, observed_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .await
                    .map_err(store_err)?;
                tx.execute(&stmt, &params).await.map_err(store_err)?;
            }
        }

        tx.commit().await.map_err(store_err)?;
        Ok(entry)
    }
}

/// Appends the keyset page clause of the lists ordered by game id: games
/// strictly after `after`, byte order (`COLLATE "C"`, the order of
/// `GameId`'s `Ord` whatever the database's collation), at most `limit`.
fn page_by_game(sql: &mut String, p: &mut Params, after: Option<&GameId>, limit: u32) {
    if let Some(after) = after {
        *sql += &format!(
            " AND game_id COLLATE \"C\" > {}",
            p.push(after.as_str().to_owned())
        );
    }
    *sql += &format!(
        " ORDER BY game_id COLLATE \"C\" LIMIT {}",
        p.push(i64::from(limit))
    );
}
