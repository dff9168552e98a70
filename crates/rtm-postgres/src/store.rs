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
//! - Broken connections are found before reuse (`RecyclingMethod::Verified`)
//!   and replaced, so the store recovers by itself after a PostgreSQL
//!   restart; calls made while it is down fail with `Unavailable`.
//! - `game_id` ordering is byte order (`COLLATE "C"`), the same as
//!   `GameId`'s `Ord`, whatever the database's default collation.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rtm_domain::ports::{
    HealthOutbox, HealthQuery, HealthSnapshots, OperationLog, OperationQuery, RecordQuery,
    RuntimeRecords, UnitOfWork,
};
use rtm_domain::{
    Commit, GameId, HealthEvent, HealthSnapshot, OpSource, OperationEntry, RecordedRequest,
    RuntimeRecord, RuntimeStatus, StoreError,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::error::{pool_err, store_err};
use crate::rows::{self, OPERATION_COLUMNS, RECORD_COLUMNS, SNAPSHOT_COLUMNS};
use crate::{PgConfig, PgError};

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: String,
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
            pool: build_pool(config, config.pool_size, RecyclingMethod::Verified)?,
            schema: config.schema.clone(),
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
        let rows = self
            .query(
                "SELECT status, count(*) FROM runtime_records GROUP BY status",
                &Params::default(),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row
                    .try_get(0)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let n: i64 = row
                    .try_get(1)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let status = RuntimeStatus::parse(&status)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((status, u64::try_from(n).unwrap_or_default()))
            })
            .collect()
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn query(
        &self,
        sql: &str,
        params: &Params,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(store_err)?;
        conn.query(&stmt, &params.refs()).await.map_err(store_err)
    }
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
            .map(|r| rows::snapshot(r, "status"))
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
            .map(|r| rows::snapshot(r, "status"))
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
        let rows = self
            .query("SELECT count(*) FROM health_outbox", &Params::default())
            .await?;
        let n: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("count(*) returned no row".into()))?
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

impl UnitOfWork for PgStore {
    async fn commit(&self, commit: Commit) -> Result<Option<OperationEntry>, StoreError> {
        let mut conn = self.conn().await?;
        // Dropping an uncommitted transaction rolls it back, so every `?`
        // below leaves nothing written.
        let tx = conn.transaction().await.map_err(store_err)?;

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

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1").await.map_err(store_err)?;
        Ok(())
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
