//! Request handlers of both surfaces.
//!
//! Every mutation validates everything (game id, `Idempotency-Key`, body,
//! image reference) before it calls the service, so a bad request never
//! has a side effect. Handlers are generic over the adapters (`P`) and,
//! for what differs between the surfaces, over the [`Surface`] (operation
//! source, `force` on patch).

use actix_web::http::header::{self, HeaderName};
use actix_web::{web, HttpRequest, HttpResponse};
use rtm_domain::ports::{
    HealthQuery, HealthSnapshots, OperationLog, OperationQuery, Ports, RecordQuery, RuntimeRecords,
};
use rtm_domain::service::OperationRequest;
use rtm_domain::transition::Command;
use rtm_domain::{ErrorCode, GameId, OpSource, Outcome};

use super::dto::{
    self, AdminPatchBody, EmptyBody, GameOperationsQuery, HealthItem, HealthPage,
    HealthQueryParams, HealthView, MutationView, OperationView, OperationsPage, OperationsQuery,
    PatchBody, ReconcileView, RuntimeView, RuntimesPage, RuntimesQuery, StartBody, StopBody,
};
use super::error::ApiError;
use super::{AppState, Surface};

type State<P> = web::Data<AppState<P>>;

/// Longest `Idempotency-Key` (and `X-Request-Id`) accepted.
pub const MAX_KEY_LEN: usize = 200;

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub(super) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// 1–200 printable ASCII characters (space allowed inside).
fn valid_key(v: &[u8]) -> bool {
    (1..=MAX_KEY_LEN).contains(&v.len()) && v.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// The `Idempotency-Key` header: absent, or exactly one valid value.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all(&IDEMPOTENCY_KEY);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "Idempotency-Key: give the header at most once",
        ));
    }
    let bytes = first.as_bytes();
    if !valid_key(bytes) {
        return Err(ApiError::invalid_request(format!(
            "Idempotency-Key: must be 1-{MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    // Printable ASCII is valid UTF-8.
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// `X-Request-Id`: absent, or exactly one value of 1–200 printable ASCII
/// characters (as `Idempotency-Key`), else `invalid_request`. Checked for
/// every request by the listener's middleware, which echoes it; copied
/// into the operation's logs.
pub fn request_id(headers: &header::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(&REQUEST_ID);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "X-Request-Id: give the header at most once",
        ));
    }
    let bytes = first.as_bytes();
    if !valid_key(bytes) {
        return Err(ApiError::invalid_request(format!(
            "X-Request-Id: must be 1-{MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Builds the request common to every mutation.
fn operation_request(
    req: &HttpRequest,
    game: GameId,
    command: Command,
    source: OpSource,
) -> Result<OperationRequest, ApiError> {
    let mut op = OperationRequest::new(game, command, source);
    op.source_ref = idempotency_key(req)?;
    op.request_id = request_id(req.headers())?;
    Ok(op)
}

/// Runs an operation and answers: 200 with the operation on success, the
/// code's status with the recorded operation on a recorded failure.
async fn run<P: Ports>(
    state: &AppState<P>,
    op: OperationRequest,
) -> Result<HttpResponse, ApiError> {
    let game = op.game_id.clone();
    let outcome = state
        .service
        .execute(op)
        .await
        .map_err(|e| ApiError::operation_of(&game, &e))?;
    // The operation is done whatever happens next: a failure to read the
    // health snapshot only leaves `health` null (and is logged).
    let health = match &outcome.record {
        Some(record) => match state.store.get_health(&record.game_id).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(game_id = %record.game_id, error = %super::error::error_chain(&e),
                    "health snapshot not read after operation");
                None
            }
        },
        None => None,
    };
    let runtime = outcome
        .record
        .as_ref()
        .map(|r| RuntimeView::new(r, health.as_ref()));
    let operation = OperationView::new(&outcome.operation);
    match (outcome.operation.outcome, outcome.operation.error.as_ref()) {
        (Outcome::Success, _) => Ok(HttpResponse::Ok().json(MutationView {
            operation,
            runtime,
            replayed: outcome.replayed,
        })),
        (Outcome::Failure, Some(err)) => Err(ApiError::recorded(
            err.code,
            // `internal` is opaque to callers (docs/rest.md): Docker's or
            // the database's own words stay in operation_log and the logs.
            if err.code == ErrorCode::Internal {
                super::error::INTERNAL_MESSAGE.to_owned()
            } else {
                err.message.clone()
            },
            operation,
            runtime,
            outcome.replayed,
        )),
        // A failed row without a code was not written by RTM (it always
        // records one); report it as what it is.
        (Outcome::Failure, None) => Err(ApiError::recorded(
            ErrorCode::Internal,
            "the operation failed without an error code".to_owned(),
            operation,
            runtime,
            outcome.replayed,
        )),
    }
}

// ---------------------------------------------------------------- reads

/// `GET …/runtimes/{game_id}`.
pub async fn get_runtime<P: Ports>(
    state: State<P>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let found = state
        .store
        .get_record_with_health(&game)
        .await
        .map_err(|e| ApiError::store_of(&game, "reading a runtime record", &e))?;
    match found {
        Some((r, health)) => Ok(HttpResponse::Ok().json(RuntimeView::new(&r, health.as_ref()))),
        None => Err(ApiError::not_found(format!("no runtime for game {game}"))),
    }
}

/// `GET …/runtimes/{game_id}/operations?limit=&before=`: the game's audit,
/// newest first (an unknown game has an empty audit, not a 404: failed
/// starts are recorded without a record).
pub async fn game_operations<P: Ports>(
    state: State<P>,
    path: web::Path<String>,
    query: web::Query<GameOperationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let limit = dto::q_limit(&query.limit)?;
    let before_id = dto::q_before(&query.before)?;
    let q = OperationQuery {
        game_id: Some(game),
        before_id,
        limit: limit + 1,
        ..OperationQuery::default()
    };
    operations_page(&state, &q, limit).await
}

async fn operations_page<P: Ports>(
    state: &AppState<P>,
    q: &OperationQuery,
    limit: u32,
) -> Result<HttpResponse, ApiError> {
    let rows = state
        .store
        .list_operations(q)
        .await
        .map_err(|e| ApiError::store("listing operations", &e))?;
    let (rows, next_before) = dto::split_page(rows, limit, |o| o.id);
    Ok(HttpResponse::Ok().json(OperationsPage {
        operations: rows.iter().map(OperationView::new).collect(),
        next_before,
    }))
}

/// `GET /admin/v1/runtimes?status=&limit=&after=`.
pub async fn list_runtimes<P: Ports>(
    state: State<P>,
    query: web::Query<RuntimesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = dto::q_limit(&query.limit)?;
    let q = RecordQuery {
        status: dto::q_runtime_status(&query.status)?,
        after: dto::q_game("after", &query.after)?,
        limit: limit + 1,
        ..RecordQuery::default()
    };
    let rows = state
        .store
        .list_records(&q)
        .await
        .map_err(|e| ApiError::store("listing runtime records", &e))?;
    let (rows, next_after) = dto::split_page(rows, limit, |r| r.game_id.to_string());
    Ok(HttpResponse::Ok().json(RuntimesPage {
        runtimes: rows.iter().map(RuntimeView::without_health).collect(),
        next_after,
    }))
}

/// `GET /admin/v1/operations?game_id=&op_kind=&op_source=&outcome=&since=&limit=&before=`.
pub async fn list_operations<P: Ports>(
    state: State<P>,
    query: web::Query<OperationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = dto::q_limit(&query.limit)?;
    let q = OperationQuery {
        game_id: dto::q_game("game_id", &query.game_id)?,
        kind: dto::q_op_kind(&query.op_kind)?,
        source: dto::q_op_source(&query.op_source)?,
        outcome: dto::q_outcome(&query.outcome)?,
        since: dto::q_since(&query.since)?,
        before_id: dto::q_before(&query.before)?,
        limit: limit + 1,
    };
    operations_page(&state, &q, limit).await
}

/// `GET /admin/v1/health?status=&limit=&after=`.
pub async fn list_health<P: Ports>(
    state: State<P>,
    query: web::Query<HealthQueryParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = dto::q_limit(&query.limit)?;
    let q = HealthQuery {
        status: dto::q_health_status(&query.status)?,
        after: dto::q_game("after", &query.after)?,
        limit: limit + 1,
    };
    let rows = state
        .store
        .list_health(&q)
        .await
        .map_err(|e| ApiError::store("listing health snapshots", &e))?;
    let (rows, next_after) = dto::split_page(rows, limit, |h| h.game_id.to_string());
    Ok(HttpResponse::Ok().json(HealthPage {
        health: rows
            .iter()
            .map(|h| HealthItem {
                game_id: h.game_id.to_string(),
                health: HealthView::new(h),
            })
            .collect(),
        next_after,
    }))
}

// ---------------------------------------------------------------- mutations

/// `POST …/runtimes/{game_id}/start` `{"image_ref": "..."}`.
pub async fn start<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let body: StartBody = dto::parse_body(content_type(&req), &body, None)?;
    let image = dto::parse_image_ref(&body.image_ref)?;
    let op = operation_request(&req, game, Command::Start { image }, S::SOURCE)?;
    run(&state, op).await
}

/// `POST …/runtimes/{game_id}/stop` `{"timeout_s": 10}` (body optional).
pub async fn stop<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    stop_or_restart::<P, S>(state, req, path, body, Command::Stop).await
}

/// `POST …/runtimes/{game_id}/restart` `{"timeout_s": 10}` (body optional).
pub async fn restart<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    stop_or_restart::<P, S>(state, req, path, body, Command::Restart).await
}

async fn stop_or_restart<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let body: StopBody = dto::parse_body(content_type(&req), &body, Some(StopBody::default()))?;
    let timeout = dto::stop_timeout(&body)?;
    let mut op = operation_request(&req, game, command, S::SOURCE)?;
    op.stop_timeout = timeout;
    run(&state, op).await
}

/// `POST …/runtimes/{game_id}/patch` `{"image_ref": "..."}` (admin: also
/// `"force": true`).
pub async fn patch<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let ct = content_type(&req);
    // The GM body has no `force`: sending it there is an unknown field.
    let (image_ref, force) = if S::ADMIN {
        let b: AdminPatchBody = dto::parse_body(ct, &body, None)?;
        (b.image_ref, b.force)
    } else {
        let b: PatchBody = dto::parse_body(ct, &body, None)?;
        (b.image_ref, false)
    };
    let image = dto::parse_image_ref(&image_ref)?;
    let mut op = operation_request(&req, game, Command::Patch { image }, S::SOURCE)?;
    op.force = force;
    run(&state, op).await
}

/// `POST /admin/v1/runtimes/{game_id}/cleanup` (no body, or `{}`).
pub async fn cleanup<P: Ports, S: Surface>(
    state: State<P>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let game = dto::parse_game_id(&path)?;
    let _: EmptyBody = dto::parse_body(content_type(&req), &body, Some(EmptyBody::default()))?;
    let op = operation_request(&req, game, Command::Cleanup, S::SOURCE)?;
    run(&state, op).await
}

/// `POST /admin/v1/reconcile` (no body, or `{}`): one pass now, recorded
/// as `admin_rest`. Not keyed by `Idempotency-Key`: a second pass right
/// after the first finds nothing to repair.
pub async fn reconcile<P: Ports>(
    state: State<P>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let _: EmptyBody = dto::parse_body(content_type(&req), &body, Some(EmptyBody::default()))?;
    let summary = state
        .service
        .reconcile_as(OpSource::AdminRest)
        .await
        .map_err(|e| ApiError::operation(&e))?;
    Ok(HttpResponse::Ok().json(ReconcileView::from(&summary)))
}

// ---------------------------------------------------------------- probes

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when every dependency answered, else 503.
pub async fn readyz<P: Ports>(state: State<P>) -> HttpResponse {
    let report = state.readiness.report().await;
    let mut res = if report.is_ready() {
        HttpResponse::Ok()
    } else {
        let mut res = HttpResponse::ServiceUnavailable();
        res.insert_header((
            header::RETRY_AFTER,
            super::error::RETRY_AFTER_UNAVAILABLE_S.to_string(),
        ));
        res
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(report)
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics<P: Ports>(state: State<P>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal("rendering metrics", &e))?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::Metrics::content_type())
        .body(text))
}

/// Any path no route matches.
pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}
