//! The domain's storage ports on [`PgStore`]: runtime records, the
//! operation log, health snapshots, the health outbox, retention and the
//! unit of work, with the keyset page clause their lists share.

use rtm_domain::ports::{
    HealthOutbox, HealthQuery, HealthSnapshots, OperationLog, OperationQuery, RecordQuery,
    Retention, RuntimeRecords, UnitOfWork,
};
use rtm_domain::{
    Commit, ContainerId, GameId, HealthEvent, HealthRefresh, HealthSnapshot, OpSource,
    OperationEntry, RecordedRequest, RuntimeRecord, StoreError,
};
use time::OffsetDateTime;

use crate::error::store_err;
use crate::rows::{
    self, JOINED_SNAPSHOT_COLUMNS, OPERATION_COLUMNS, RECORD_COLUMNS, SNAPSHOT_COLUMNS,
};

use super::{connection_lost, unanswered, Params, PgStore};

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
            request: rows::non_empty(row, "request")?,
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

    /// One statement for the whole batch: the conditions of
    /// [`HealthRefresh`] are its `WHERE`, so a refresh that lost a race
    /// with a commit (which holds the row lock) is simply not applied.
    /// Safe to retry: a refresh applied once is no longer newer.
    async fn refresh_health(&self, refreshes: &[HealthRefresh]) -> Result<Vec<GameId>, StoreError> {
        if refreshes.is_empty() {
            return Ok(Vec::new());
        }
        let mut games = Vec::with_capacity(refreshes.len());
        let mut containers = Vec::with_capacity(refreshes.len());
        let mut statuses = Vec::with_capacity(refreshes.len());
        let mut sources = Vec::with_capacity(refreshes.len());
        let mut details = Vec::with_capacity(refreshes.len());
        let mut observed = Vec::with_capacity(refreshes.len());
        let mut started = Vec::with_capacity(refreshes.len());
        for r in refreshes {
            let h = &r.snapshot;
            games.push(h.game_id.as_str().to_owned());
            containers.push(
                h.container_id
                    .as_ref()
                    .map_or("", ContainerId::as_str)
                    .to_owned(),
            );
            statuses.push(h.status.as_str());
            sources.push(h.source.as_str());
            details.push(rows::details_to_json(&h.details).to_string());
            observed.push(h.observed_at);
            started.push(r.started_at);
        }
        let mut p = Params::default();
        let sql = format!(
            "UPDATE health_snapshots h \
               SET source = v.source, details = v.details::jsonb, observed_at = v.observed_at \
             FROM unnest({}::text[], {}::text[], {}::text[], {}::text[], {}::text[], \
                         {}::timestamptz[], {}::timestamptz[]) \
                    AS v(game_id, container_id, status, source, details, observed_at, started_at) \
             JOIN runtime_records r ON r.game_id = v.game_id \
             WHERE h.game_id = v.game_id AND h.container_id = v.container_id \
               AND h.status = v.status AND h.observed_at < v.observed_at \
               AND r.status = 'running' AND r.current_container_id = v.container_id \
               AND r.started_at IS NOT DISTINCT FROM v.started_at \
             RETURNING h.game_id",
            p.push(games),
            p.push(containers),
            p.push(statuses),
            p.push(sources),
            p.push(details),
            p.push(observed),
            p.push(started),
        );
        self.query(&sql, &p)
            .await?
            .iter()
            .map(|r| rows::game(r, "game_id"))
            .collect()
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
