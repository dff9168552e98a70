//! The operator console: a small single-page dashboard under `/admin/ui/`
//! on the admin listener, and the admin JSON reads it needs beyond the
//! existing API (`/admin/v1/overview`, `/admin/v1/games`,
//! `/admin/v1/runtimes/{game_id}/health-history`).
//!
//! Guarantees:
//! - The static shell (HTML, one script, one stylesheet) is embedded in the
//!   binary and public: it holds no data. Every data call goes to
//!   `/admin/v1/…` with the admin bearer token, which the page keeps in
//!   `sessionStorage` (never in a URL or a cookie); the JSON reads here sit
//!   behind the same token middleware as the rest of `/admin/v1`.
//! - The shell is served with a strict Content-Security-Policy (same-origin
//!   script, style and fetch only; no inline script; no framing), so a game
//!   id or an engine log line can never run as script; the page builds its
//!   DOM with `textContent` only.
//! - The console reads come from a [`ConsoleSource`], registered by the
//!   wiring (`AppState::with_console`); without one (HTTP unit tests with
//!   the domain fakes) those reads answer 503 and the rest of the API is
//!   unaffected.

mod api;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use futures_util::future::BoxFuture;
use rtm_domain::ports::Ports;
use rtm_domain::{GameId, StoreError};

pub use api::{HISTORY_SCAN, WORKER_ROLES};

use super::Admin;

/// Read-only data the console needs and the domain ports do not offer:
/// aggregate counts, the filtered games table, worker leadership, a game's
/// health history and the dead-letter count. Object-safe so the wiring can
/// hand in any implementation.
pub trait ConsoleSource: Send + Sync + 'static {
    /// Counts by status and by health.
    fn counts(&self) -> BoxFuture<'_, Result<rtm_postgres::GameCounts, StoreError>>;
    /// One page of the games table.
    fn games<'a>(
        &'a self,
        q: &'a rtm_postgres::GamesFilter,
    ) -> BoxFuture<'a, Result<rtm_postgres::GamesPage, StoreError>>;
    /// Who leads each of `roles`.
    fn leaders<'a>(
        &'a self,
        roles: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<rtm_postgres::WorkerLeader>, StoreError>>;
    /// The game's most recent health changes, newest first. `Err` is a
    /// human reason (the health stream is unreachable).
    fn health_history<'a>(
        &'a self,
        game: &'a GameId,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<rtm_redis::HealthEntry>, String>>;
    /// Entries in the Lobby's dead-letter stream.
    fn dead_letters(&self) -> BoxFuture<'_, Result<u64, String>>;
}

/// The shared handle the handlers see.
pub type Console = Arc<dyn ConsoleSource>;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Same-origin everything, nothing inline, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // The shell changes only with the binary; revalidate to pick up an
        // upgrade without a stale script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `/admin/ui` → `/admin/ui/` (the shell's relative asset paths need the
/// slash).
async fn to_slash() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/admin/ui/"))
        .finish()
}

/// The public static shell, with the listener's JSON-errors-and-metrics
/// middleware (an unknown asset is the usual JSON 404).
pub fn shell_scope<P: Ports>() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/admin/ui")
        .wrap(from_fn(super::observe::<P, Admin>))
        .service(web::resource("").route(web::get().to(to_slash)))
        .service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/app.js").route(web::get().to(app_js)))
        .service(web::resource("/app.css").route(web::get().to(app_css)))
        .default_service(web::to(super::handlers::no_route))
}

/// The console's JSON reads, relative to the authenticated `/admin/v1`.
pub fn api_routes<P: Ports>(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/overview").route(web::get().to(api::overview::<P>)))
        .service(web::resource("/games").route(web::get().to(api::games::<P>)))
        .service(
            web::resource("/runtimes/{game_id}/health-history")
                .route(web::get().to(api::health_history::<P>)),
        );
}
