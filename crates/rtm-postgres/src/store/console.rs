//! Read-only queries for the operator console (`/admin/ui/`): aggregate
//! counts, the filtered and sorted games table, and which session leads
//! each singleton worker.
//!
//! These are reads an operator's screen needs and the domain does not, so
//! they are inherent methods of [`PgStore`] rather than port methods.
//! Guarantees:
//! - every user value is a bind parameter; the only SQL assembled from
//!   input is the `ORDER BY` clause, chosen from the closed [`GameSort`]
//!   enum;
//! - a games page is one statement (rows and the total with
//!   `count(*) OVER ()`), plus one for the page's health snapshots;
//! - leadership is read from `pg_locks` (granted advisory locks of the
//!   leader keys, see `leader.rs`) joined to `pg_stat_activity`, whose
//!   `application_name` names the replica (`PgLeader::with_instance`).

use rtm_domain::{HealthSnapshot, HealthStatus, RuntimeRecord, RuntimeStatus, StoreError};
use time::OffsetDateTime;

use super::{Params, PgStore};
use crate::error::corrupt;
use crate::rows::{self, RECORD_COLUMNS, SNAPSHOT_COLUMNS};

/// How the games table is ordered (the game id always breaks ties, so a
/// page boundary is stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GameSort {
    #[default]
    GameId,
    Status,
    Health,
    /// The age of the last health observation.
    Observed,
    Started,
    LastOp,
    Image,
}

impl GameSort {
    pub const ALL: &'static [GameSort] = &[
        GameSort::GameId,
        GameSort::Status,
        GameSort::Health,
        GameSort::Observed,
        GameSort::Started,
        GameSort::LastOp,
        GameSort::Image,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GameSort::GameId => "game_id",
            GameSort::Status => "status",
            GameSort::Health => "health",
            GameSort::Observed => "observed_at",
            GameSort::Started => "started_at",
            GameSort::LastOp => "last_op_at",
            GameSort::Image => "image_ref",
        }
    }

    pub fn parse(s: &str) -> Option<GameSort> {
        GameSort::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    fn column(self) -> &'static str {
        match self {
            GameSort::GameId => "r.game_id COLLATE \"C\"",
            GameSort::Status => "r.status",
            GameSort::Health => "h.status",
            GameSort::Observed => "h.observed_at",
            GameSort::Started => "r.started_at",
            GameSort::LastOp => "r.last_op_at",
            GameSort::Image => "r.current_image_ref",
        }
    }
}

/// The health filter of the games table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthFilter {
    Is(HealthStatus),
    /// No snapshot yet.
    Unknown,
}

/// A filtered, sorted page of games (offset paging: the table is sorted
/// by arbitrary columns, and at thousands of rows an offset costs little).
#[derive(Debug, Clone, Default)]
pub struct GamesFilter {
    pub status: Option<RuntimeStatus>,
    pub health: Option<HealthFilter>,
    /// A substring of the image reference (repository or tag), matched
    /// case-insensitively.
    pub image: Option<String>,
    /// Games whose id starts with this (case-sensitive, like ids).
    pub id_prefix: Option<String>,
    pub sort: GameSort,
    pub descending: bool,
    pub limit: u32,
    pub offset: u64,
}

/// One page of the games table.
#[derive(Debug, Clone)]
pub struct GamesPage {
    pub games: Vec<(RuntimeRecord, Option<HealthSnapshot>)>,
    /// How many games match the filter.
    pub total: u64,
}

/// Aggregate counts for the overview.
#[derive(Debug, Clone, Default)]
pub struct GameCounts {
    pub by_status: Vec<(RuntimeStatus, u64)>,
    /// Health of the games that are not `removed`; `None` = no snapshot.
    pub by_health: Vec<(Option<HealthStatus>, u64)>,
}

/// Who holds a singleton worker's leader lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLeader {
    pub role: String,
    /// Some session holds the lock.
    pub held: bool,
    /// The leader session's `application_name` (`rtmanager-leader:<instance>`
    /// when set by `PgLeader::with_instance`); `None` when nobody leads, or when the holder's session belongs to
    /// another database role (`pg_stat_activity` hides it).
    pub holder: Option<String>,
    /// When the leader's session started (it takes the lock right after).
    pub since: Option<OffsetDateTime>,
}

/// `LIKE` pattern text with its wildcards escaped (the default escape `\`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn count(row: &tokio_postgres::Row, idx: usize) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(idx).map_err(|e| corrupt(e.to_string()))?;
    Ok(u64::try_from(n).unwrap_or_default())
}

impl PgStore {
    /// Counts by status (all records) and by health (records not
    /// `removed`, with `None` for those without a snapshot).
    pub async fn console_counts(&self) -> Result<GameCounts, StoreError> {
        let by_status = self.record_counts().await?;
        let rows = self
            .query(
                "SELECT h.status, count(*) FROM runtime_records r \
                 LEFT JOIN health_snapshots h ON h.game_id = r.game_id \
                 WHERE r.status <> 'removed' GROUP BY h.status",
                &Params::default(),
            )
            .await?;
        let mut by_health = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: Option<String> = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
            let status = status
                .map(|s| HealthStatus::parse(&s).map_err(|e| corrupt(e.to_string())))
                .transpose()?;
            by_health.push((status, count(row, 1)?));
        }
        Ok(GameCounts {
            by_status,
            by_health,
        })
    }

    /// A page of the games table with each game's health snapshot.
    pub async fn console_games(&self, q: &GamesFilter) -> Result<GamesPage, StoreError> {
        let mut p = Params::default();
        let cols: Vec<String> = RECORD_COLUMNS
            .split(',')
            .map(|c| format!("r.{}", c.trim()))
            .collect();
        let mut sql = format!(
            "SELECT {}, count(*) OVER () AS total FROM runtime_records r \
             LEFT JOIN health_snapshots h ON h.game_id = r.game_id WHERE true",
            cols.join(", ")
        );
        if let Some(status) = q.status {
            sql += &format!(" AND r.status = {}", p.push(status.as_str()));
        }
        match q.health {
            Some(HealthFilter::Is(h)) => sql += &format!(" AND h.status = {}", p.push(h.as_str())),
            Some(HealthFilter::Unknown) => sql += " AND h.status IS NULL",
            None => {}
        }
        if let Some(image) = q.image.as_deref().filter(|s| !s.is_empty()) {
            sql += &format!(
                " AND r.current_image_ref ILIKE {}",
                p.push(format!("%{}%", like_escape(image)))
            );
        }
        if let Some(prefix) = q.id_prefix.as_deref().filter(|s| !s.is_empty()) {
            sql += &format!(
                " AND r.game_id LIKE {}",
                p.push(format!("{}%", like_escape(prefix)))
            );
        }
        let dir = if q.descending { "DESC" } else { "ASC" };
        // NULLs (never started, no snapshot) go last whatever the direction.
        sql += &format!(
            " ORDER BY {} {dir} NULLS LAST, r.game_id COLLATE \"C\" {dir} LIMIT {} OFFSET {}",
            q.sort.column(),
            p.push(i64::from(q.limit)),
            p.push(i64::try_from(q.offset).unwrap_or(i64::MAX)),
        );
        let rows = self.query(&sql, &p).await?;
        let total = match rows.first() {
            Some(row) => count(row, rows_total_index(row))?,
            None => 0,
        };
        let records = rows
            .iter()
            .map(rows::record)
            .collect::<Result<Vec<_>, _>>()?;
        let health = self.snapshots_of(&records).await?;
        let games = records
            .into_iter()
            .map(|r| {
                let h = health.iter().find(|h| h.game_id == r.game_id).cloned();
                (r, h)
            })
            .collect();
        Ok(GamesPage { games, total })
    }

    async fn snapshots_of(
        &self,
        records: &[RuntimeRecord],
    ) -> Result<Vec<HealthSnapshot>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = records.iter().map(|r| r.game_id.to_string()).collect();
        let mut p = Params::default();
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM health_snapshots WHERE game_id = ANY({})",
            p.push(ids)
        );
        self.query(&sql, &p)
            .await?
            .iter()
            .map(|r| rows::snapshot(r, rows::SNAPSHOT))
            .collect()
    }

    /// Who leads each of `roles` in this schema (see the module doc).
    pub async fn console_leaders(&self, roles: &[&str]) -> Result<Vec<WorkerLeader>, StoreError> {
        let mut p = Params::default();
        let keys: Vec<String> = roles
            .iter()
            .map(|r| format!("rtm:leader:{}:{r}", self.schema()))
            .collect();
        // An advisory lock on a bigint key shows in pg_locks as
        // classid = high 32 bits, objid = low 32 bits, objsubid = 1.
        let sql = format!(
            "SELECT l.pid IS NOT NULL, a.application_name, a.backend_start \
             FROM unnest({}::text[]) WITH ORDINALITY AS k(key, n) \
             LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(k.key, 0) \
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             ORDER BY k.n",
            p.push(keys)
        );
        let rows = self.query(&sql, &p).await?;
        let mut out: Vec<WorkerLeader> = Vec::with_capacity(roles.len());
        for (row, role) in rows.iter().zip(roles) {
            let held: bool = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
            let holder: Option<String> = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
            let since: Option<OffsetDateTime> =
                row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
            out.push(WorkerLeader {
                role: (*role).to_owned(),
                held,
                holder,
                since,
            });
        }
        Ok(out)
    }
}

fn rows_total_index(row: &tokio_postgres::Row) -> usize {
    row.columns().len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("a%b_c\\d"), "a\\%b\\_c\\\\d");
        assert_eq!(like_escape("engine-stub:1.2"), "engine-stub:1.2");
    }

    #[test]
    fn sort_names_round_trip() {
        for s in GameSort::ALL {
            assert_eq!(GameSort::parse(s.as_str()), Some(*s));
        }
        assert_eq!(GameSort::parse("nope"), None);
    }
}
