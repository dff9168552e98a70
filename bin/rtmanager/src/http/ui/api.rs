//! Handlers of the console's JSON reads (see `docs/rest.md`, "Console").
//!
//! Every query parameter is validated before any read; a bad one is a 400
//! `invalid_request` naming it.

use actix_web::{web, HttpResponse};
use futures_util::future::join4;
use rtm_domain::ports::Ports;
use rtm_domain::{ErrorCode, HealthStatus, RuntimeStatus};
use rtm_postgres::{GameSort, GamesFilter, HealthFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::super::dto::{self, RuntimeView};
use super::super::error::ApiError;
use super::super::AppState;
use super::Console;

type State<P> = web::Data<AppState<P>>;

/// The leader-elected workers started by `app.rs` (`spawn_workers`), in
/// the order the overview lists them.
pub const WORKER_ROLES: &[&str] = &[
    "reconcile",
    "cleanup",
    "inspect",
    "probe",
    "relay",
    "events",
];

/// Largest `offset` of the games table.
const MAX_OFFSET: u64 = 1_000_000;
/// Longest image filter.
const MAX_IMAGE_FILTER: usize = 255;
/// Health-history entries returned at most, and stream entries scanned.
const MAX_HISTORY: usize = 200;
/// Newest health-stream entries a history request scans.
pub const HISTORY_SCAN: u64 = 5_000;

fn console<P: Ports>(state: &AppState<P>) -> Result<&Console, ApiError> {
    state.console.as_ref().ok_or_else(|| {
        ApiError::with_status(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "the console reads are not configured on this listener",
        )
    })
}

/// A number from the readiness details, if present.
fn detail(deps: &Map<String, Value>, dep: &str, key: &str) -> Value {
    deps.get(dep)
        .and_then(|d| d.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

#[derive(Debug, Serialize)]
struct WorkerView {
    name: String,
    /// Some replica holds the worker's leader lock.
    led: bool,
    /// The leader's instance id (`RTM_INSTANCE_ID`), when visible.
    leader: Option<String>,
    since: Option<String>,
}

/// `GET /admin/v1/overview`.
pub async fn overview<P: Ports>(state: State<P>) -> Result<HttpResponse, ApiError> {
    let console = console(&state)?;
    let (counts, leaders, report, dead) = join4(
        console.counts(),
        console.leaders(WORKER_ROLES),
        state.readiness.report(),
        console.dead_letters(),
    )
    .await;
    let counts = counts.map_err(|e| ApiError::store("counting games", &e))?;
    let leaders = leaders.map_err(|e| ApiError::store("reading worker leadership", &e))?;

    let mut by_status: Map<String, Value> = RuntimeStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), Value::from(0)))
        .collect();
    let mut total = 0u64;
    for (s, n) in &counts.by_status {
        by_status.insert(s.as_str().to_owned(), Value::from(*n));
        total += n;
    }
    let mut by_health: Map<String, Value> = HealthStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), Value::from(0)))
        .collect();
    by_health.insert("unknown".to_owned(), Value::from(0));
    for (s, n) in &counts.by_health {
        let key = s.map_or("unknown", HealthStatus::as_str);
        by_health.insert(key.to_owned(), Value::from(*n));
    }
    let deps = &report.dependencies;
    let workers: Vec<WorkerView> = leaders
        .into_iter()
        .map(|l| WorkerView {
            name: l.role,
            led: l.held,
            leader: l.holder.map(|h| {
                h.strip_prefix("rtmanager-leader:")
                    .map_or(h.clone(), str::to_owned)
            }),
            since: l.since.map(dto::rfc3339),
        })
        .collect();
    let body = serde_json::json!({
        "games": {
            "total": total,
            "by_status": by_status,
            "by_health": by_health,
        },
        "lobby": {
            "lag": detail(deps, "redis", "lobby_lag"),
            "pending": detail(deps, "redis", "lobby_pending"),
            "dead_letters": dead.as_ref().ok(),
            "dead_letters_error": dead.as_ref().err(),
            "consumer_connected": detail(deps, "redis", "lobby_consumer_connected"),
        },
        "health_outbox_pending": detail(deps, "postgres", "health_outbox_pending"),
        "ready": report.is_ready(),
        "dependencies": deps,
        "workers": workers,
    });
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// `GET /admin/v1/games` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamesQuery {
    pub status: Option<String>,
    pub health: Option<String>,
    pub image: Option<String>,
    pub prefix: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// A query parameter's value: absent is `None`; an empty value is an
/// error, as on every other endpoint (docs/rest.md: leave a filter out
/// rather than sending it empty).
fn given<'a>(name: &str, v: &'a Option<String>) -> Result<Option<&'a str>, ApiError> {
    match v.as_deref() {
        Some("") => Err(ApiError::invalid_request(format!(
            "{name}: empty value; leave the parameter out instead"
        ))),
        other => Ok(other),
    }
}

/// Validates the games query into the store's filter.
pub fn games_filter(q: &GamesQuery) -> Result<GamesFilter, ApiError> {
    let health = match given("health", &q.health)? {
        None => None,
        Some("unknown") => Some(HealthFilter::Unknown),
        Some(_) => dto::q_health_status(&q.health)
            .map_err(|_| {
                let all: Vec<&str> = HealthStatus::ALL.iter().map(|h| h.as_str()).collect();
                ApiError::invalid_request(format!(
                    "health: must be one of {}, unknown",
                    all.join(", ")
                ))
            })?
            .map(HealthFilter::Is),
    };
    let image = match given("image", &q.image)? {
        Some(s) if s.len() > MAX_IMAGE_FILTER || s.chars().any(char::is_control) => {
            return Err(ApiError::invalid_request(format!(
                "image: at most {MAX_IMAGE_FILTER} printable characters"
            )))
        }
        other => other.map(str::to_owned),
    };
    let prefix = match given("prefix", &q.prefix)? {
        Some(s)
            if s.len() > 63
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) =>
        {
            return Err(ApiError::invalid_request(
                "prefix: at most 63 characters of [A-Za-z0-9_.-]",
            ))
        }
        other => other.map(str::to_owned),
    };
    let sort = match given("sort", &q.sort)? {
        None => GameSort::default(),
        Some(s) => GameSort::parse(s).ok_or_else(|| {
            let all: Vec<&str> = GameSort::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid_request(format!("sort: {s:?} is not one of {}", all.join(", ")))
        })?,
    };
    let descending = match given("order", &q.order)? {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::invalid_request(format!(
                "order: {o:?} is not one of asc, desc"
            )))
        }
    };
    let offset = match given("offset", &q.offset)? {
        None => 0,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n <= MAX_OFFSET => n,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "offset: {s:?} must be a whole number between 0 and {MAX_OFFSET}"
                )))
            }
        },
    };
    Ok(GamesFilter {
        status: dto::q_runtime_status(&q.status)?,
        health,
        image,
        id_prefix: prefix,
        sort,
        descending,
        limit: dto::q_limit(&q.limit)?,
        offset,
    })
}

/// `GET /admin/v1/games?status=&health=&image=&prefix=&sort=&order=&limit=&offset=`.
pub async fn games<P: Ports>(
    state: State<P>,
    query: web::Query<GamesQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = games_filter(&query)?;
    let console = console(&state)?;
    let page = console
        .games(&filter)
        .await
        .map_err(|e| ApiError::store("listing games", &e))?;
    let games: Vec<RuntimeView> = page
        .games
        .iter()
        .map(|(r, h)| RuntimeView::new(r, h.as_ref()))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "games": games,
        "total": page.total,
        "offset": filter.offset,
        "limit": filter.limit,
    })))
}

/// `GET /admin/v1/runtimes/{game_id}/health-history` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub limit: Option<String>,
}

/// `GET /admin/v1/runtimes/{game_id}/health-history?limit=`: the game's
/// recent health changes from the health stream, newest first. When the
/// stream cannot be read the answer is still 200, with an empty list and
/// `stream_error` saying why (the rest of the game's page stays usable).
pub async fn health_history<P: Ports>(
    state: State<P>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let max = match given("limit", &query.limit)? {
        None => 50,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "limit: {s:?} must be a whole number between 1 and {MAX_HISTORY}"
                )))
            }
        },
    };
    let console = console(&state)?;
    let (events, error) = match console.health_history(&game, max).await {
        Ok(entries) => (entries.iter().map(history_item).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "game_id": game.as_str(),
        "events": events,
        "scanned": HISTORY_SCAN,
        "stream_error": error,
    })))
}

/// A health-stream entry as JSON: its fields, with `details` parsed.
fn history_item(e: &rtm_redis::HealthEntry) -> Value {
    let field = |k: &str| e.fields.get(k).cloned().map_or(Value::Null, Value::from);
    let details = e
        .fields
        .get("details")
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .unwrap_or_else(|| Value::Object(Map::new()));
    serde_json::json!({
        "stream_id": e.id,
        "event_type": field("event_type"),
        "source": field("source"),
        "container_id": field("container_id"),
        "observed_at": field("observed_at"),
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> GamesQuery {
        let mut q = GamesQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "status" => q.status = v,
                "health" => q.health = v,
                "image" => q.image = v,
                "prefix" => q.prefix = v,
                "sort" => q.sort = v,
                "order" => q.order = v,
                "limit" => q.limit = v,
                "offset" => q.offset = v,
                _ => panic!("unknown key {k}"),
            }
        }
        q
    }

    #[test]
    fn games_query_is_validated() {
        let f = games_filter(&q(&[
            ("status", "running"),
            ("health", "unknown"),
            ("image", "stub:1"),
            ("prefix", "g-1"),
            ("sort", "last_op_at"),
            ("order", "desc"),
            ("limit", "20"),
            ("offset", "40"),
        ]))
        .expect("valid");
        assert_eq!(f.status, Some(RuntimeStatus::Running));
        assert_eq!(f.health, Some(HealthFilter::Unknown));
        assert_eq!(f.sort, GameSort::LastOp);
        assert!(f.descending);
        assert_eq!((f.limit, f.offset), (20, 40));
        let f = games_filter(&q(&[("health", "probe_failed")])).expect("valid");
        assert_eq!(f.health, Some(HealthFilter::Is(HealthStatus::ProbeFailed)));

        for bad in [
            ("status", "sick"),
            ("health", "sick"),
            ("prefix", "a b"),
            ("prefix", "%"),
            ("sort", "random"),
            ("order", "up"),
            ("limit", "0"),
            ("offset", "-1"),
            ("offset", "1000001"),
            ("prefix", ""),
            ("image", ""),
            ("image", "\u{8c}stub"),
        ] {
            let e = games_filter(&q(&[bad])).expect_err("refused");
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{bad:?}");
        }
        let long = "x".repeat(MAX_IMAGE_FILTER + 1);
        assert!(games_filter(&q(&[("image", &long)])).is_err());
    }
}
