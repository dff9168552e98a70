//! The REST surfaces (SPEC §9): the GM API under `/api/v1` and the admin
//! API under `/admin/v1`, each served on its own listen address, plus the
//! unauthenticated `/healthz`, `/readyz` and `/metrics` on both.
//!
//! Wiring: `app::start` builds one [`AppState`] and calls
//! [`bind_servers`], which serves [`gm_routes`] and [`admin_routes`] on
//! their two addresses with that shared state.
//!
//! Guarantees:
//! - Authentication runs as middleware on the whole `/api/v1` or
//!   `/admin/v1` scope, before any extractor or handler: an
//!   unauthenticated caller learns nothing, not even which routes exist.
//! - Every error response, including those actix produces itself
//!   (unknown route, wrong method, oversized body, bad query string), is
//!   the JSON error shape; no plain-text error leaks out.
//! - Bodies are limited to [`BODY_LIMIT`] bytes.
//! - Every request is counted in `rtm_http_requests_total` and timed in
//!   `rtm_http_request_duration_seconds` by surface, route *pattern* and
//!   status, and logged once (target `rtmanager::access`).
//! - Generic to every route, present or added later, as long as it is a
//!   `web::resource` inside a surface's scope: a wrong method is 405 with
//!   `Allow`, `HEAD` is served where `GET` is, a malformed `X-Request-Id`
//!   is 400 and a valid one is echoed (see `observe`).

pub mod auth;
pub mod dto;
pub mod error;
mod handlers;
pub mod logs;
pub mod readiness;
#[cfg(test)]
mod tests;
pub mod ui;

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::web;
use rtm_domain::ports::Ports;
use rtm_domain::service::RuntimeService;
use rtm_domain::OpSource;

// Re-exported for the wiring in `main`.
#[allow(unused_imports)]
pub use auth::{Caller, Tokens};
#[allow(unused_imports)]
pub use readiness::{probe_fn, DependencyStatus, Readiness, ReadinessProbe, DEFAULT_CHECK_TIMEOUT};

use crate::metrics::Metrics;
use error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What the handlers share: the service, the store for reads, the tokens,
/// the readiness checks and the metrics.
pub struct AppState<P: Ports> {
    pub service: Arc<RuntimeService<P>>,
    pub store: P::Store,
    pub tokens: Tokens,
    pub readiness: Readiness,
    pub metrics: Metrics,
    /// The operator console's reads (`ui`); `None` answers them with 503.
    pub console: Option<ui::Console>,
}

impl<P: Ports> AppState<P> {
    pub fn new(
        service: Arc<RuntimeService<P>>,
        store: P::Store,
        tokens: Tokens,
        readiness: Readiness,
        metrics: Metrics,
    ) -> Self {
        Self {
            service,
            store,
            tokens,
            readiness,
            metrics,
            console: None,
        }
    }

    /// Registers the console's reads (see [`ui::ConsoleSource`]).
    pub fn with_console(mut self, console: ui::Console) -> Self {
        self.console = Some(console);
        self
    }
}

impl<P: Ports> std::fmt::Debug for AppState<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .field("tokens", &self.tokens)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

/// The two running listeners (see [`bind_servers`]).
#[allow(missing_debug_implementations)] // actix's `Server` has no Debug
pub struct Servers {
    /// The GM listener; await it (or its handle) to serve.
    pub gm: actix_web::dev::Server,
    /// The admin listener.
    pub admin: actix_web::dev::Server,
    /// Where the GM listener is bound (useful with port 0 in tests).
    pub gm_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
}

/// Binds both listeners on `http`'s addresses with the shared `state`.
///
/// Signals are left to the caller (`disable_signals`): on SIGTERM it
/// stops taking work and calls `server.handle().stop(true)`, which
/// finishes in-flight requests for at most `shutdown_timeout`.
/// `worker_start` runs once on each worker thread as it starts (the
/// host's per-thread set-up, e.g. the store's thread-local reads).
pub fn bind_servers<P: Ports>(
    state: web::Data<AppState<P>>,
    gm_addr: std::net::SocketAddr,
    admin_addr: std::net::SocketAddr,
    shutdown_timeout: std::time::Duration,
    worker_start: fn(),
) -> std::io::Result<Servers> {
    use actix_web::{App, HttpServer};
    // Two workers per listener are plenty: handlers are async and the
    // work happens in the service, not in HTTP parsing.
    const WORKERS: usize = 2;
    let grace = shutdown_timeout.as_secs().max(1);
    let gm_state = state.clone();
    // actix calls the factory once on each worker thread, as it starts.
    let gm = HttpServer::new(move || {
        worker_start();
        App::new()
            .app_data(gm_state.clone())
            .configure(gm_routes::<P>)
    })
    .workers(WORKERS)
    .disable_signals()
    .shutdown_timeout(grace)
    .bind(gm_addr)?;
    let admin_state = state;
    let admin = HttpServer::new(move || {
        worker_start();
        App::new()
            .app_data(admin_state.clone())
            .configure(admin_routes::<P>)
    })
    .workers(WORKERS)
    .disable_signals()
    .shutdown_timeout(grace)
    .bind(admin_addr)?;
    let bound = |addrs: Vec<std::net::SocketAddr>, asked| addrs.first().copied().unwrap_or(asked);
    let (gm_bound, admin_bound) = (bound(gm.addrs(), gm_addr), bound(admin.addrs(), admin_addr));
    Ok(Servers {
        gm: gm.run(),
        admin: admin.run(),
        gm_addr: gm_bound,
        admin_addr: admin_bound,
    })
}

/// What differs between the two surfaces.
pub trait Surface: 'static {
    /// `gm` or `admin`: the `surface` label of the HTTP metrics.
    const NAME: &'static str;
    /// Whose token the surface accepts.
    const CALLER: Caller;
    /// How its operations are recorded.
    const SOURCE: OpSource;
    /// Whether `patch` accepts `force`.
    const ADMIN: bool;
}

/// The GM surface (`/api/v1`, `gm_rest`).
#[derive(Debug)]
pub enum Gm {}

impl Surface for Gm {
    const NAME: &'static str = "gm";
    const CALLER: Caller = Caller::Gm;
    const SOURCE: OpSource = OpSource::GmRest;
    const ADMIN: bool = false;
}

/// The admin surface (`/admin/v1`, `admin_rest`).
#[derive(Debug)]
pub enum Admin {}

impl Surface for Admin {
    const NAME: &'static str = "admin";
    const CALLER: Caller = Caller::Admin;
    const SOURCE: OpSource = OpSource::AdminRest;
    const ADMIN: bool = true;
}

/// The GM listener's routes.
pub fn gm_routes<P: Ports>(cfg: &mut web::ServiceConfig) {
    let api = web::scope("/api/v1")
        .wrap(from_fn(auth::require_token::<P, Gm>))
        .configure(game_routes::<P, Gm>);
    surface::<P, Gm>(cfg, api);
}

/// The admin listener's routes.
pub fn admin_routes<P: Ports>(cfg: &mut web::ServiceConfig) {
    let api = web::scope("/admin/v1")
        .wrap(from_fn(auth::require_token::<P, Admin>))
        .configure(game_routes::<P, Admin>)
        .configure(admin_only_routes::<P>)
        .configure(ui::api_routes::<P>);
    // The console's public static shell; registered first, so it is
    // matched before the catch-all scope of `surface`.
    cfg.service(ui::shell_scope::<P>());
    surface::<P, Admin>(cfg, api);
}

/// The outer scope of a listener: probes, extractor error handlers, the
/// JSON-errors-and-metrics middleware and the authenticated `api` scope.
fn surface<P: Ports, S: Surface>(
    cfg: &mut web::ServiceConfig,
    api: actix_web::Scope<
        impl actix_web::dev::ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<impl MessageBody + 'static>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
    >,
) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(observe::<P, S>))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(error::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            // Resources, not bare `.route`s: a wrong method is then 405
            // with `Allow` (from actix), not 404.
            .service(web::resource("/healthz").route(web::get().to(handlers::healthz)))
            .service(web::resource("/readyz").route(web::get().to(handlers::readyz::<P>)))
            .service(web::resource("/metrics").route(web::get().to(handlers::metrics::<P>)))
            .service(api)
            .default_service(web::to(handlers::no_route)),
    );
}

/// Routes both surfaces share (relative to `/api/v1` or `/admin/v1`).
/// Resources (not bare routes) so a wrong method is 405, not 404.
fn game_routes<P: Ports, S: Surface>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/runtimes/{game_id}").route(web::get().to(handlers::get_runtime::<P>)),
    )
    .service(
        web::resource("/runtimes/{game_id}/start").route(web::post().to(handlers::start::<P, S>)),
    )
    .service(
        web::resource("/runtimes/{game_id}/stop").route(web::post().to(handlers::stop::<P, S>)),
    )
    .service(
        web::resource("/runtimes/{game_id}/restart")
            .route(web::post().to(handlers::restart::<P, S>)),
    )
    .service(
        web::resource("/runtimes/{game_id}/patch").route(web::post().to(handlers::patch::<P, S>)),
    )
    .service(
        web::resource("/runtimes/{game_id}/operations")
            .route(web::get().to(handlers::game_operations::<P>)),
    );
}

/// Routes of the admin surface only.
fn admin_only_routes<P: Ports>(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/runtimes").route(web::get().to(handlers::list_runtimes::<P>)))
        .service(
            web::resource("/runtimes/{game_id}/cleanup")
                .route(web::post().to(handlers::cleanup::<P, Admin>)),
        )
        .service(web::resource("/runtimes/{game_id}/logs").route(web::get().to(logs::logs::<P>)))
        .service(web::resource("/reconcile").route(web::post().to(handlers::reconcile::<P>)))
        .service(web::resource("/operations").route(web::get().to(handlers::list_operations::<P>)))
        .service(web::resource("/health").route(web::get().to(handlers::list_health::<P>)));
}

/// Outermost middleware of a listener, so every route (present or added
/// later) gets the same edge without being listed anywhere:
/// - `HEAD` is served as `GET` (actix-http's encoder drops the body of a
///   response to `HEAD` and keeps its `Content-Length`);
/// - a malformed `X-Request-Id` is 400; a valid one is echoed;
/// - any non-JSON error response (actix's own 404/405/413/400 texts)
///   becomes the JSON error shape, keeping actix's `Allow` on a 405;
/// - the request is counted and logged once (the access log, target
///   `rtmanager::access`: method, route pattern, status, duration,
///   surface and request id; never a header value such as the token).
async fn observe<P: Ports, S: Surface>(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState<P>>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let res = match handlers::request_id(req.headers()) {
        Err(e) => req.error_response(e),
        Ok(request_id) => match next.call(req).await {
            Ok(res) => with_request_id(json_errors(res.map_into_boxed_body()), request_id),
            Err(e) => {
                // Inner services answer errors as responses; an `Err`
                // here is unexpected. The request is gone, so count and
                // log it without a route.
                let status = e.as_response_error().status_code();
                if let Some(m) = &metrics {
                    m.http_request(S::NAME, "unmatched", status.as_u16(), started.elapsed());
                }
                access_log(S::NAME, &method, "unmatched", status, started, None);
                return Err(error::from_actix_status(status, None).into());
            }
        },
    };
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    if let Some(m) = &metrics {
        m.http_request(S::NAME, &route, res.status().as_u16(), started.elapsed());
    }
    let request_id = res
        .headers()
        .get(&handlers::REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    access_log(S::NAME, &method, &route, res.status(), started, request_id);
    Ok(res)
}

/// The access-log line of one request.
fn access_log(
    surface: &str,
    method: &Method,
    route: &str,
    status: actix_web::http::StatusCode,
    started: std::time::Instant,
    request_id: Option<&str>,
) {
    tracing::info!(
        target: "rtmanager::access",
        surface,
        method = %method,
        route,
        status = status.as_u16(),
        // Microsecond resolution is plenty; more digits are only noise.
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        request_id = request_id.unwrap_or(""),
        "request"
    );
}

/// Replaces actix's plain-text error bodies by the JSON error shape.
fn json_errors(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    if !needs_json_error(&res) {
        return res;
    }
    let status = res.status();
    // Client-error texts of actix are safe and useful ("payload reached
    // size limit"); server-side ones are replaced.
    let detail = res
        .response()
        .error()
        .filter(|_| status.is_client_error())
        .map(|e| e.to_string());
    // actix lists the resource's methods in `Allow` on a 405; GET implies
    // HEAD here (see `observe`).
    let allow = res.headers().get(header::ALLOW).map(|v| {
        let v = v.to_str().unwrap_or("");
        let mut methods: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        methods.join(", ")
    });
    let api_error = error::from_actix_status(status, detail);
    let (http_req, _) = res.into_parts();
    let mut response = actix_web::ResponseError::error_response(&api_error);
    if let Some(allow) = allow.and_then(|a| header::HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(http_req, response)
}

/// Echoes the caller's `X-Request-Id` on the response.
fn with_request_id(
    mut res: ServiceResponse<BoxBody>,
    request_id: Option<String>,
) -> ServiceResponse<BoxBody> {
    if let Some(v) = request_id.and_then(|id| header::HeaderValue::from_str(&id).ok()) {
        res.headers_mut().insert(handlers::REQUEST_ID.clone(), v);
    }
    res
}

/// An error status whose body is not already our JSON error.
fn needs_json_error(res: &ServiceResponse<BoxBody>) -> bool {
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return false;
    }
    if res
        .response()
        .error()
        .is_some_and(|e| e.as_error::<ApiError>().is_some())
    {
        return false;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    !is_json
}
