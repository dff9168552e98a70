//! Tests of the HTTP layer through actix's test service, with the domain's
//! in-memory fakes behind the real `RuntimeService`: authentication, the
//! error shape, DTO validation (nothing happens on a bad request), status
//! mapping, idempotency, pagination and the probes.
//!
//! End-to-end tests against real PostgreSQL and Docker live in the
//! binary's integration tests.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, Method};
use actix_web::{test, web, App};
use rtm_domain::fakes::FakePorts;
use rtm_domain::ports::{Clock, GameLocks};
use rtm_domain::service::{RuntimeService, ServiceConfig};
use rtm_domain::{
    Allowlist, ContainerId, GameId, HealthDetails, HealthSnapshot, HealthSource, HealthStatus,
    ImageRef, OpSource, Outcome,
};
use serde_json::{json, Value};

use super::*;
use crate::config::Secret;

const GM: &str = "gm-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const IMAGE_1: &str = "rtm.local/engine-stub:1.0.0";
const IMAGE_2: &str = "rtm.local/engine-stub:1.0.1";

struct Harness {
    fakes: FakePorts,
    state: web::Data<AppState<FakePorts>>,
}

fn service_config() -> ServiceConfig {
    ServiceConfig {
        allowlist: Allowlist::parse("rtm.local/engine-stub").expect("allowlist"),
        lock_wait: Duration::from_millis(100),
        stop_timeout: Duration::from_secs(5),
        patch_health_timeout: Duration::from_secs(5),
        patch_probe_interval: Duration::from_millis(200),
        engine_port: 8080,
        state_root: "/state".into(),
        network: "rtm-engines".into(),
    }
}

fn harness_with(readiness: Readiness) -> Harness {
    let fakes = FakePorts::new();
    let service = Arc::new(RuntimeService::new(fakes.adapters(), service_config()));
    let state = web::Data::new(AppState::new(
        service,
        fakes.store.clone(),
        Tokens {
            gm: Secret::new(GM),
            admin: Secret::new(ADMIN),
        },
        readiness,
        Metrics::new().expect("metrics"),
    ));
    Harness { fakes, state }
}

fn harness() -> Harness {
    harness_with(Readiness::new(vec![], DEFAULT_CHECK_TIMEOUT))
}

/// A response, read whole.
struct Reply {
    status: u16,
    headers: header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts the JSON error shape with `code` and returns the body.
    fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type().starts_with("application/json"),
            "content type {:?}: {}",
            self.content_type(),
            self.text
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        body
    }
}

#[derive(Clone, Copy, PartialEq)]
enum On {
    Gm,
    Admin,
}

async fn read(res: ServiceResponse<BoxBody>) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn send(h: &Harness, on: On, req: test::TestRequest) -> Reply {
    let req = req.to_request();
    let res = match on {
        On::Gm => {
            let app = test::init_service(
                App::new()
                    .app_data(h.state.clone())
                    .configure(gm_routes::<FakePorts>),
            )
            .await;
            test::call_service(&app, req).await.map_into_boxed_body()
        }
        On::Admin => {
            let app = test::init_service(
                App::new()
                    .app_data(h.state.clone())
                    .configure(admin_routes::<FakePorts>),
            )
            .await;
            test::call_service(&app, req).await.map_into_boxed_body()
        }
    };
    read(res).await
}

fn token(on: On) -> &'static str {
    match on {
        On::Gm => GM,
        On::Admin => ADMIN,
    }
}

fn prefix(on: On) -> &'static str {
    match on {
        On::Gm => "/api/v1",
        On::Admin => "/admin/v1",
    }
}

fn get(on: On, path: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(&format!("{}{path}", prefix(on)))
        .insert_header((header::AUTHORIZATION, format!("Bearer {}", token(on))))
}

fn post(on: On, path: &str, body: Option<Value>) -> test::TestRequest {
    let req = test::TestRequest::post()
        .uri(&format!("{}{path}", prefix(on)))
        .insert_header((header::AUTHORIZATION, format!("Bearer {}", token(on))));
    match body {
        Some(b) => req.set_json(b),
        None => req,
    }
}

fn header_of(r: &Reply, name: header::HeaderName) -> &str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<absent>")
}

fn gid(s: &str) -> GameId {
    GameId::parse(s).expect("game id")
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("image")
}

async fn start(h: &Harness, on: On, game: &str) -> Reply {
    send(
        h,
        on,
        post(
            on,
            &format!("/runtimes/{game}/start"),
            Some(json!({ "image_ref": IMAGE_1 })),
        ),
    )
    .await
}

// ---------------------------------------------------------------- probes

#[actix_web::test]
async fn healthz_and_metrics_need_no_token_on_both_listeners() {
    let h = harness();
    for on in [On::Gm, On::Admin] {
        let r = send(&h, on, test::TestRequest::get().uri("/healthz")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({ "status": "ok" }));
        let r = send(&h, on, test::TestRequest::get().uri("/metrics")).await;
        assert_eq!(r.status, 200);
        assert!(
            r.content_type().starts_with("text/plain"),
            "{}",
            r.content_type()
        );
        // Families without a series yet (operations) are omitted by the
        // encoder; the pre-set gauges are always there.
        assert!(r.text.contains("# TYPE rtm_games gauge"), "{}", r.text);
    }
    // The requests above were counted by surface and route pattern.
    let text = h.state.metrics.render().expect("render");
    assert!(
        text.contains(
            r#"rtm_http_requests_total{route="/healthz",status="200",surface="admin"} 1"#
        ),
        "{text}"
    );
}

#[actix_web::test]
async fn readyz_reports_every_dependency() {
    let h = harness_with(Readiness::new(
        vec![
            probe_fn("postgres", || async { DependencyStatus::ok() }),
            probe_fn("redis", || async {
                DependencyStatus::ok().with("outbox_pending", 0)
            }),
            probe_fn("docker", || async { DependencyStatus::ok() }),
        ],
        DEFAULT_CHECK_TIMEOUT,
    ));
    let r = send(&h, On::Gm, test::TestRequest::get().uri("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["dependencies"]["postgres"]["ok"], true);
    assert_eq!(body["dependencies"]["redis"]["outbox_pending"], 0);
    assert_eq!(body["dependencies"]["docker"]["ok"], true);

    let h = harness_with(Readiness::new(
        vec![
            probe_fn("postgres", || async { DependencyStatus::ok() }),
            probe_fn("docker", || async {
                DependencyStatus::failed("connection refused")
            }),
        ],
        DEFAULT_CHECK_TIMEOUT,
    ));
    let r = send(&h, On::Admin, test::TestRequest::get().uri("/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["dependencies"]["docker"]["ok"], false);
    assert_eq!(
        body["dependencies"]["docker"]["error"],
        "connection refused"
    );
}

// ---------------------------------------------------------------- auth

#[actix_web::test]
async fn tokens_work_only_on_their_surface() {
    let h = harness();
    let path = "/runtimes/g1";
    // No token, a wrong one, another scheme: 401 with a challenge.
    for auth in [
        None,
        Some("Bearer nope-nope-nope-nope"),
        Some("Basic Zm9vOmJhcg=="),
    ] {
        for on in [On::Gm, On::Admin] {
            let mut req = test::TestRequest::get().uri(&format!("{}{path}", prefix(on)));
            if let Some(a) = auth {
                req = req.insert_header((header::AUTHORIZATION, a));
            }
            let r = send(&h, on, req).await;
            r.error(401, "unauthorized");
            assert_eq!(
                r.headers
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer")
            );
        }
    }
    // The other surface's token: 403.
    let r = send(
        &h,
        On::Admin,
        test::TestRequest::get()
            .uri("/admin/v1/runtimes")
            .insert_header((header::AUTHORIZATION, format!("Bearer {GM}"))),
    )
    .await;
    r.error(403, "forbidden");
    let r = send(
        &h,
        On::Gm,
        test::TestRequest::get()
            .uri("/api/v1/runtimes/g1")
            .insert_header((header::AUTHORIZATION, format!("Bearer {ADMIN}"))),
    )
    .await;
    r.error(403, "forbidden");
    // The right token reaches the handler (an unknown game: 404).
    send(&h, On::Gm, get(On::Gm, path))
        .await
        .error(404, "not_found");
    send(&h, On::Admin, get(On::Admin, path))
        .await
        .error(404, "not_found");
}

#[actix_web::test]
async fn authentication_comes_before_validation_and_routing() {
    let h = harness();
    // A bad body, a bad id and an unknown route all answer 401 first.
    for uri in [
        "/api/v1/runtimes/-bad-/start",
        "/api/v1/no/such/route",
        "/api/v1/runtimes/g1/start",
    ] {
        let r = send(
            &h,
            On::Gm,
            test::TestRequest::post()
                .uri(uri)
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload("{not json"),
        )
        .await;
        r.error(401, "unauthorized");
    }
    assert!(h.fakes.store.operations().is_empty());
}

#[actix_web::test]
async fn actix_errors_are_json_too() {
    let h = harness();
    // Unknown route, inside and outside the API scope.
    send(&h, On::Gm, get(On::Gm, "/nope"))
        .await
        .error(404, "not_found");
    send(&h, On::Gm, test::TestRequest::get().uri("/nope"))
        .await
        .error(404, "not_found");
    // An admin-only route does not exist on the GM surface.
    send(&h, On::Gm, post(On::Gm, "/reconcile", None))
        .await
        .error(404, "not_found");
    // Wrong method.
    let r = send(
        &h,
        On::Gm,
        get(On::Gm, "/runtimes/g1/start").method(Method::DELETE),
    )
    .await;
    r.error(405, "invalid_request");
    // Oversized body.
    let big = format!(r#"{{"image_ref":"{}"}}"#, "a".repeat(BODY_LIMIT));
    let r = send(
        &h,
        On::Gm,
        post(On::Gm, "/runtimes/g1/start", None)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(big),
    )
    .await;
    r.error(413, "invalid_request");
    // Unknown query parameter.
    let r = send(&h, On::Gm, get(On::Gm, "/runtimes/g1/operations?sort=asc")).await;
    let body = r.error(400, "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sort")),
        "{body}"
    );
    assert!(h.fakes.store.operations().is_empty());
}

// ---------------------------------------------------------------- the edge

#[actix_web::test]
async fn a_wrong_method_is_405_with_allow_on_every_route() {
    let h = harness();
    // Every documented route and a method it does not serve. `Allow` comes
    // from the routing table itself, so routes added later get it too.
    for (on, path, method, allow) in [
        (On::Gm, "/api/v1/runtimes/g1", Method::POST, "GET, HEAD"),
        (On::Gm, "/api/v1/runtimes/g1/start", Method::GET, "POST"),
        (On::Gm, "/api/v1/runtimes/g1/stop", Method::DELETE, "POST"),
        (On::Gm, "/api/v1/runtimes/g1/restart", Method::PUT, "POST"),
        (On::Gm, "/api/v1/runtimes/g1/patch", Method::PATCH, "POST"),
        (
            On::Gm,
            "/api/v1/runtimes/g1/operations",
            Method::POST,
            "GET, HEAD",
        ),
        (On::Admin, "/admin/v1/runtimes", Method::DELETE, "GET, HEAD"),
        (
            On::Admin,
            "/admin/v1/runtimes/g1/cleanup",
            Method::GET,
            "POST",
        ),
        (On::Admin, "/admin/v1/reconcile", Method::GET, "POST"),
        (On::Admin, "/admin/v1/operations", Method::POST, "GET, HEAD"),
        (On::Admin, "/admin/v1/health", Method::OPTIONS, "GET, HEAD"),
        (On::Gm, "/healthz", Method::POST, "GET, HEAD"),
        (On::Admin, "/readyz", Method::PUT, "GET, HEAD"),
        (On::Gm, "/metrics", Method::DELETE, "GET, HEAD"),
    ] {
        let req = test::TestRequest::default()
            .method(method.clone())
            .uri(path)
            .insert_header((header::AUTHORIZATION, format!("Bearer {}", token(on))));
        let r = send(&h, on, req).await;
        r.error(405, "invalid_request");
        assert_eq!(header_of(&r, header::ALLOW), allow, "{method} {path}");
    }
    assert!(h.fakes.store.operations().is_empty());
}

#[actix_web::test]
async fn head_is_served_wherever_get_is() {
    let h = harness();
    assert_eq!(start(&h, On::Gm, "g1").await.status, 200);
    for (on, path) in [
        (On::Gm, "/api/v1/runtimes/g1"),
        (On::Gm, "/api/v1/runtimes/g1/operations"),
        (On::Admin, "/admin/v1/runtimes"),
        (On::Admin, "/admin/v1/health"),
        (On::Admin, "/admin/v1/operations"),
        (On::Gm, "/healthz"),
        (On::Admin, "/metrics"),
    ] {
        let req = test::TestRequest::default()
            .method(Method::HEAD)
            .uri(path)
            .insert_header((header::AUTHORIZATION, format!("Bearer {}", token(on))));
        let r = send(&h, on, req).await;
        assert_eq!(r.status, 200, "HEAD {path}: {}", r.text);
    }
    // HEAD on a POST-only route is not a way to run it.
    let req = test::TestRequest::default()
        .method(Method::HEAD)
        .uri("/api/v1/runtimes/g1/stop")
        .insert_header((header::AUTHORIZATION, format!("Bearer {GM}")));
    let r = send(&h, On::Gm, req).await;
    assert_eq!(r.status, 405);
    assert_eq!(header_of(&r, header::ALLOW), "POST");
    assert_eq!(h.fakes.store.operations().len(), 1);
}

#[actix_web::test]
async fn request_id_is_echoed_and_checked() {
    let h = harness();
    let r = send(
        &h,
        On::Gm,
        get(On::Gm, "/runtimes/g1").insert_header(("x-request-id", "req-42")),
    )
    .await;
    r.error(404, "not_found");
    assert_eq!(
        header_of(&r, header::HeaderName::from_static("x-request-id")),
        "req-42"
    );
    let r = send(
        &h,
        On::Admin,
        test::TestRequest::get()
            .uri("/healthz")
            .insert_header(("x-request-id", "probe 1")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        header_of(&r, header::HeaderName::from_static("x-request-id")),
        "probe 1"
    );
    // No id, no echo.
    let r = send(&h, On::Gm, get(On::Gm, "/runtimes/g1")).await;
    assert!(r.headers.get("x-request-id").is_none());
    // The documented limits hold: 1-200 printable ASCII characters.
    let long = "r".repeat(201);
    for bad in [long.as_str(), "", "tab\there"] {
        let r = send(
            &h,
            On::Gm,
            post(
                On::Gm,
                "/runtimes/g1/start",
                Some(json!({ "image_ref": IMAGE_1 })),
            )
            .insert_header(("x-request-id", bad)),
        )
        .await;
        let body = r.error(400, "invalid_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("X-Request-Id:")),
            "{body}"
        );
        assert!(r.headers.get("x-request-id").is_none());
    }
    let ok = "r".repeat(200);
    let r = send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g1/start",
            Some(json!({ "image_ref": IMAGE_1 })),
        )
        .insert_header(("x-request-id", ok.as_str())),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.fakes.store.operations().len(), 1);
}

#[actix_web::test]
async fn bodies_must_be_json_objects() {
    let h = harness();
    for body in [
        format!(r#"["{IMAGE_1}"]"#),
        format!(r#""{IMAGE_1}""#),
        "null".to_owned(),
        "42".to_owned(),
        "[]".to_owned(),
    ] {
        for path in [
            "/runtimes/g1/start",
            "/runtimes/g1/patch",
            "/runtimes/g1/stop",
        ] {
            let r = send(
                &h,
                On::Gm,
                post(On::Gm, path, None)
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload(body.clone()),
            )
            .await;
            let e = r.error(400, "invalid_request");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("JSON object")),
                "{path} {body}: {e}"
            );
        }
        let r = send(
            &h,
            On::Admin,
            post(On::Admin, "/reconcile", None)
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.clone()),
        )
        .await;
        r.error(400, "invalid_request");
    }
    assert!(h.fakes.store.operations().is_empty());
}

#[actix_web::test]
async fn empty_query_values_are_errors() {
    let h = harness();
    for (on, path, param) in [
        (On::Admin, "/runtimes?limit=", "limit"),
        (On::Admin, "/runtimes?status=", "status"),
        (On::Admin, "/runtimes?after=", "after"),
        (On::Admin, "/operations?game_id=", "game_id"),
        (On::Admin, "/operations?op_kind=", "op_kind"),
        (On::Admin, "/operations?op_source=", "op_source"),
        (On::Admin, "/operations?outcome=", "outcome"),
        (On::Admin, "/operations?since=", "since"),
        (On::Admin, "/operations?before=", "before"),
        (On::Admin, "/health?status=", "status"),
        (On::Admin, "/health?after=", "after"),
        (On::Gm, "/runtimes/g1/operations?limit=", "limit"),
        (On::Gm, "/runtimes/g1/operations?before=", "before"),
    ] {
        let body = send(&h, on, get(on, path))
            .await
            .error(400, "invalid_request");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("{param}:")),
            "{path}: {message}"
        );
    }
}

// ---------------------------------------------------------------- validation

#[actix_web::test]
async fn bad_requests_have_no_side_effect() {
    let h = harness();
    let json_ct = (header::CONTENT_TYPE, "application/json");
    let cases: Vec<(test::TestRequest, u16, &str)> = vec![
        (
            post(
                On::Gm,
                "/runtimes/-bad/start",
                Some(json!({ "image_ref": IMAGE_1 })),
            ),
            400,
            "invalid_game_id",
        ),
        (
            post(
                On::Gm,
                &format!("/runtimes/{}/start", "x".repeat(64)),
                Some(json!({ "image_ref": IMAGE_1 })),
            ),
            400,
            "invalid_game_id",
        ),
        (
            post(
                On::Gm,
                "/runtimes/g1/start",
                Some(json!({ "image_ref": "Bad Image" })),
            ),
            400,
            "invalid_image_ref",
        ),
        (
            post(
                On::Gm,
                "/runtimes/g1/start",
                Some(json!({ "image_ref": IMAGE_1, "extra": 1 })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/start", Some(json!({}))),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/start", None),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/start", None)
                .insert_header(json_ct)
                .set_payload("{"),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/start", None)
                .insert_header((header::CONTENT_TYPE, "text/plain"))
                .set_payload(format!(r#"{{"image_ref":"{IMAGE_1}"}}"#)),
            400,
            "invalid_request",
        ),
        (
            post(
                On::Gm,
                "/runtimes/g1/stop",
                Some(json!({ "timeout_s": 3601 })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                On::Gm,
                "/runtimes/g1/stop",
                Some(json!({ "timeout_s": "10" })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                On::Gm,
                "/runtimes/g1/restart",
                Some(json!({ "force": true })),
            ),
            400,
            "invalid_request",
        ),
        (
            // `force` exists only on the admin surface.
            post(
                On::Gm,
                "/runtimes/g1/patch",
                Some(json!({ "image_ref": IMAGE_2, "force": true })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/stop", None)
                .insert_header(("Idempotency-Key", "k".repeat(201))),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/stop", None).insert_header(("Idempotency-Key", "")),
            400,
            "invalid_request",
        ),
        (
            post(On::Gm, "/runtimes/g1/stop", None)
                .append_header(("Idempotency-Key", "a"))
                .append_header(("Idempotency-Key", "b")),
            400,
            "invalid_request",
        ),
    ];
    for (req, status, code) in cases {
        send(&h, On::Gm, req).await.error(status, code);
    }
    let cases: Vec<(test::TestRequest, u16, &str)> = vec![
        (
            post(
                On::Admin,
                "/runtimes/g1/patch",
                Some(json!({ "image_ref": IMAGE_2, "force": "yes" })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                On::Admin,
                "/runtimes/g1/cleanup",
                Some(json!({ "now": true })),
            ),
            400,
            "invalid_request",
        ),
        (
            post(On::Admin, "/reconcile", Some(json!({ "dry_run": true }))),
            400,
            "invalid_request",
        ),
    ];
    for (req, status, code) in cases {
        send(&h, On::Admin, req).await.error(status, code);
    }
    assert!(h.fakes.store.operations().is_empty());
    assert_eq!(h.fakes.runtime.mutating_calls(), 0);
}

// ---------------------------------------------------------------- mutations

#[actix_web::test]
async fn start_records_the_operation_and_returns_the_runtime() {
    let h = harness();
    let r = start(&h, On::Gm, "g1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["replayed"], false);
    let op = &body["operation"];
    assert_eq!(op["game_id"], "g1");
    assert_eq!(op["op_kind"], "start");
    assert_eq!(op["op_source"], "gm_rest");
    assert_eq!(op["outcome"], "success");
    assert_eq!(op["error_code"], Value::Null);
    assert_eq!(op["source_ref"], Value::Null);
    assert_eq!(op["image_ref"], IMAGE_1);
    assert!(op["id"].is_i64());
    assert!(op["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let rt = &body["runtime"];
    assert_eq!(rt["status"], "running");
    assert_eq!(rt["image_ref"], IMAGE_1);
    assert_eq!(rt["engine_endpoint"], "http://rtm-g1:8080");
    assert_eq!(rt["state_path"], "/state/g1");
    assert_eq!(rt["docker_network"], "rtm-engines");
    assert!(rt["container_id"].is_string());
    assert_eq!(rt["stopped_at"], Value::Null);
    assert!(rt.get("health").is_some());

    let r = send(&h, On::Gm, get(On::Gm, "/runtimes/g1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let view = r.json();
    assert_eq!(view["status"], "running");
    assert_eq!(view["created_at"], rt["created_at"]);

    let ops = h.fakes.store.operations();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].source, OpSource::GmRest);
}

#[actix_web::test]
async fn idempotency_key_replays_the_first_result() {
    let h = harness();
    let req = || {
        post(
            On::Gm,
            "/runtimes/g1/start",
            Some(json!({ "image_ref": IMAGE_1 })),
        )
        .insert_header(("Idempotency-Key", "req-42"))
    };
    let first = send(&h, On::Gm, req()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = send(&h, On::Gm, req()).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let (a, b) = (first.json(), second.json());
    assert_eq!(a["replayed"], false);
    assert_eq!(b["replayed"], true);
    assert_eq!(a["operation"]["id"], b["operation"]["id"]);
    assert_eq!(b["operation"]["source_ref"], "req-42");
    assert_eq!(h.fakes.store.operations().len(), 1);
}

#[actix_web::test]
async fn recorded_failures_carry_their_code_and_operation() {
    let h = harness();
    // Not on the allow-list: a recorded failure, 422.
    let r = send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g1/start",
            Some(json!({ "image_ref": "docker.io/library/nginx:1.25" })),
        ),
    )
    .await;
    let body = r.error(422, "image_not_allowed");
    assert_eq!(body["operation"]["outcome"], "failure");
    assert_eq!(body["operation"]["error_code"], "image_not_allowed");
    assert_eq!(
        body["operation"]["image_ref"],
        "docker.io/library/nginx:1.25"
    );
    assert_eq!(body["replayed"], false);
    // Stop of an unknown game: not_found, recorded.
    let body = send(&h, On::Gm, post(On::Gm, "/runtimes/ghost/stop", None))
        .await
        .error(404, "not_found");
    assert_eq!(body["operation"]["op_kind"], "stop");
    assert_eq!(body["runtime"], Value::Null);
    // Start of another image while running: already_running, 409.
    assert_eq!(start(&h, On::Gm, "g2").await.status, 200);
    let body = send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g2/start",
            Some(json!({ "image_ref": IMAGE_2 })),
        ),
    )
    .await
    .error(409, "already_running");
    assert_eq!(body["runtime"]["status"], "running");
    // Patch of a stopped game: conflict, 409.
    assert_eq!(
        send(&h, On::Gm, post(On::Gm, "/runtimes/g2/stop", None))
            .await
            .status,
        200
    );
    send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g2/patch",
            Some(json!({ "image_ref": IMAGE_2 })),
        ),
    )
    .await
    .error(409, "conflict");
    // A failed pull: image_pull_failed, 422.
    h.fakes
        .runtime
        .set_unpullable("rtm.local/engine-stub:9.9.9", "manifest unknown");
    send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g3/start",
            Some(json!({ "image_ref": "rtm.local/engine-stub:9.9.9" })),
        ),
    )
    .await
    .error(422, "image_pull_failed");
}

#[actix_web::test]
async fn a_recorded_internal_failure_answers_an_opaque_message() {
    let h = harness();
    assert_eq!(start(&h, On::Gm, "g1").await.status, 200);
    // A stop that Docker refuses with its own words: recorded `internal`.
    h.fakes.runtime.fail_next(
        rtm_domain::fakes::RuntimeCall::Stop,
        rtm_domain::RuntimeError::Other("docker answered 500: driver overlay2 said secret".into()),
    );
    let r = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/stop", None)).await;
    let body = r.error(500, "internal");
    assert_eq!(
        body["error"]["message"],
        crate::http::error::INTERNAL_MESSAGE,
        "{body}"
    );
    // The detail is recorded: operation_log keeps Docker's words.
    let ops = h.fakes.store.operations();
    let recorded = ops
        .last()
        .and_then(|o| o.error.as_ref())
        .expect("a recorded error");
    assert_eq!(recorded.code, rtm_domain::ErrorCode::Internal);
    assert!(recorded.message.contains("secret"), "{recorded:?}");
}

#[actix_web::test]
async fn stop_restart_patch_and_cleanup() {
    let h = harness();
    assert_eq!(start(&h, On::Admin, "g1").await.status, 200);
    // Patch: GM may move the patch version; a minor bump needs admin force.
    let r = send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g1/patch",
            Some(json!({ "image_ref": IMAGE_2 })),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["runtime"]["image_ref"], IMAGE_2);
    send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g1/patch",
            Some(json!({ "image_ref": "rtm.local/engine-stub:1.1.0" })),
        ),
    )
    .await
    .error(422, "patch_not_allowed");
    let r = send(
        &h,
        On::Admin,
        post(
            On::Admin,
            "/runtimes/g1/patch",
            Some(json!({ "image_ref": "rtm.local/engine-stub:1.1.0", "force": true })),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["operation"]["op_source"], "admin_rest");
    // Restart with a timeout, stop with an empty body.
    let r = send(
        &h,
        On::Gm,
        post(
            On::Gm,
            "/runtimes/g1/restart",
            Some(json!({ "timeout_s": 3 })),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/stop", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["runtime"]["status"], "stopped");
    // Cleanup (admin only) removes the stopped game's container.
    send(&h, On::Gm, post(On::Gm, "/runtimes/g1/cleanup", None))
        .await
        .error(404, "not_found");
    let r = send(
        &h,
        On::Admin,
        post(On::Admin, "/runtimes/g1/cleanup", Some(json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["operation"]["op_kind"], "cleanup_container");
    assert_eq!(body["runtime"]["status"], "removed");
}

#[actix_web::test]
async fn a_held_lock_is_operation_in_progress() {
    let h = harness();
    assert_eq!(start(&h, On::Gm, "g1").await.status, 200);
    let guard = h
        .fakes
        .locks
        .acquire(&gid("g1"), Duration::from_secs(1))
        .await
        .expect("lock");
    let r = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/stop", None)).await;
    let body = r.error(409, "operation_in_progress");
    assert!(body.get("operation").is_none(), "{body}");
    assert_eq!(header_of(&r, header::RETRY_AFTER), "1");
    drop(guard);
    assert_eq!(h.fakes.store.operations().len(), 1);
}

#[actix_web::test]
async fn database_down_is_503_without_internals() {
    let h = harness();
    assert_eq!(start(&h, On::Gm, "g1").await.status, 200);
    h.fakes.store.set_unavailable(true);
    let r = send(&h, On::Gm, get(On::Gm, "/runtimes/g1")).await;
    let body = r.error(503, "database_unavailable");
    assert!(!body.to_string().contains("fake"), "{body}");
    assert_eq!(header_of(&r, header::RETRY_AFTER), "5");
    let r = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/stop", None)).await;
    r.error(503, "database_unavailable");
    assert_eq!(header_of(&r, header::RETRY_AFTER), "5");
    send(&h, On::Admin, get(On::Admin, "/operations"))
        .await
        .error(503, "database_unavailable");
}

#[actix_web::test]
async fn reconcile_returns_its_summary() {
    let h = harness();
    // A running container without a record: adopted.
    h.fakes
        .runtime
        .spawn_running(&gid("orphan"), &image(IMAGE_1), "/state/orphan");
    let r = send(&h, On::Admin, post(On::Admin, "/reconcile", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["adopted"], 1, "{body}");
    for key in [
        "games",
        "disposed",
        "removed",
        "observed_exits",
        "renamed",
        "skipped_busy",
        "errors",
    ] {
        assert!(body[key].is_u64(), "{key}: {body}");
    }
    let ops = h.fakes.store.operations();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].source, OpSource::AdminRest);
    // Docker down: 503 docker_unavailable.
    h.fakes.runtime.set_unavailable(true);
    send(&h, On::Admin, post(On::Admin, "/reconcile", None))
        .await
        .error(503, "docker_unavailable");
}

// ---------------------------------------------------------------- lists

#[actix_web::test]
async fn lists_page_with_keysets() {
    let h = harness();
    for g in ["a1", "b2", "c3"] {
        assert_eq!(start(&h, On::Gm, g).await.status, 200);
    }
    assert_eq!(
        send(&h, On::Gm, post(On::Gm, "/runtimes/b2/stop", None))
            .await
            .status,
        200
    );

    // Runtimes by game id.
    let r = send(&h, On::Admin, get(On::Admin, "/runtimes?limit=2")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page = r.json();
    let ids: Vec<&str> = page["runtimes"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v["game_id"].as_str())
        .collect();
    assert_eq!(ids, ["a1", "b2"]);
    assert_eq!(page["next_after"], "b2");
    assert!(page["runtimes"][0].get("health").is_none());
    let page = send(&h, On::Admin, get(On::Admin, "/runtimes?limit=2&after=b2"))
        .await
        .json();
    assert_eq!(page["runtimes"][0]["game_id"], "c3");
    assert_eq!(page["next_after"], Value::Null);
    let page = send(&h, On::Admin, get(On::Admin, "/runtimes?status=stopped"))
        .await
        .json();
    assert_eq!(page["runtimes"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["runtimes"][0]["game_id"], "b2");

    // A game's audit, newest first.
    let page = send(&h, On::Gm, get(On::Gm, "/runtimes/b2/operations?limit=1"))
        .await
        .json();
    assert_eq!(page["operations"][0]["op_kind"], "stop");
    let before = page["next_before"].as_i64().expect("next page");
    let page = send(
        &h,
        On::Gm,
        get(
            On::Gm,
            &format!("/runtimes/b2/operations?limit=1&before={before}"),
        ),
    )
    .await
    .json();
    assert_eq!(page["operations"][0]["op_kind"], "start");
    assert_eq!(page["next_before"], Value::Null);
    // An unknown game has an empty audit.
    let page = send(&h, On::Gm, get(On::Gm, "/runtimes/zz/operations"))
        .await
        .json();
    assert_eq!(page["operations"], json!([]));

    // Every operation, filtered.
    let page = send(
        &h,
        On::Admin,
        get(
            On::Admin,
            "/operations?op_kind=start&outcome=success&op_source=gm_rest&since=2000-01-01T00:00:00Z",
        ),
    )
    .await
    .json();
    assert_eq!(
        page["operations"].as_array().map(Vec::len),
        Some(3),
        "{page}"
    );
    let page = send(&h, On::Admin, get(On::Admin, "/operations?game_id=b2"))
        .await
        .json();
    assert_eq!(page["operations"].as_array().map(Vec::len), Some(2));
    let page = send(&h, On::Admin, get(On::Admin, "/operations?outcome=failure"))
        .await
        .json();
    assert_eq!(page["operations"], json!([]));
    let page = send(
        &h,
        On::Admin,
        get(On::Admin, "/operations?since=2999-01-01T00:00:00Z"),
    )
    .await
    .json();
    assert_eq!(page["operations"], json!([]));
}

#[actix_web::test]
async fn bad_query_values_name_the_parameter() {
    let h = harness();
    for (on, path, param) in [
        (On::Admin, "/runtimes?limit=0", "limit"),
        (On::Admin, "/runtimes?limit=501", "limit"),
        (On::Admin, "/runtimes?status=dead", "status"),
        (On::Admin, "/runtimes?after=-x", "after"),
        (On::Admin, "/operations?op_kind=boom", "op_kind"),
        (On::Admin, "/operations?outcome=maybe", "outcome"),
        (On::Admin, "/operations?op_source=me", "op_source"),
        (On::Admin, "/operations?since=yesterday", "since"),
        (On::Admin, "/operations?before=x", "before"),
        (On::Admin, "/operations?game_id=-x", "game_id"),
        (On::Admin, "/health?status=sick", "status"),
        (On::Gm, "/runtimes/g1/operations?before=-1", "before"),
        (On::Gm, "/runtimes/g1/operations?limit=many", "limit"),
    ] {
        let body = send(&h, on, get(on, path))
            .await
            .error(400, "invalid_request");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("{param}:")),
            "{path}: {message}"
        );
    }
}

#[actix_web::test]
async fn health_is_listed_and_shown_with_the_runtime() {
    let h = harness();
    let started = start(&h, On::Gm, "g1").await.json();
    assert_eq!(start(&h, On::Gm, "g2").await.status, 200);
    let c1 = started["runtime"]["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();
    // Observed after the start (the fake clock reads 2030-01-01T00:00:00Z).
    let at = time::macros::datetime!(2030-01-01 00:00:05 UTC);
    h.fakes.store.put_health(HealthSnapshot {
        game_id: gid("g1"),
        container_id: ContainerId::new(c1.clone()),
        status: HealthStatus::Exited,
        source: HealthSource::DockerEvent,
        details: HealthDetails::new().with("exit_code", 3i64),
        observed_at: at,
    });
    h.fakes.store.put_health(HealthSnapshot {
        game_id: gid("g2"),
        container_id: None,
        status: HealthStatus::Healthy,
        source: HealthSource::Probe,
        details: HealthDetails::new(),
        observed_at: at,
    });
    let view = send(&h, On::Gm, get(On::Gm, "/runtimes/g1")).await.json();
    assert_eq!(
        view["health"],
        json!({
            "status": "exited",
            "source": "docker_event",
            "details": { "exit_code": 3 },
            "observed_at": "2030-01-01T00:00:05Z",
            "container_id": c1,
        })
    );
    assert_eq!(view["health_state"], "exited");
    let page = send(&h, On::Admin, get(On::Admin, "/health?status=exited"))
        .await
        .json();
    assert_eq!(page["health"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["health"][0]["game_id"], "g1");
    assert_eq!(page["health"][0]["status"], "exited");
    let page = send(&h, On::Admin, get(On::Admin, "/health?limit=1"))
        .await
        .json();
    assert_eq!(page["next_after"], "g1");
    assert_eq!(page["health"][0]["container_id"], c1.as_str());
    let page = send(&h, On::Admin, get(On::Admin, "/health?after=g1"))
        .await
        .json();
    assert_eq!(page["health"][0]["game_id"], "g2");
    assert_eq!(page["health"][0]["container_id"], Value::Null);
    assert_eq!(page["next_after"], Value::Null);
}

/// `health`/`health_state` of `game`'s view on the GM surface.
async fn view_health(h: &Harness, game: &str) -> (Value, String) {
    let view = send(h, On::Gm, get(On::Gm, &format!("/runtimes/{game}")))
        .await
        .json();
    let state = view["health_state"]
        .as_str()
        .unwrap_or("<absent>")
        .to_owned();
    (view["health"].clone(), state)
}

fn snapshot(
    game: &str,
    container: &str,
    status: HealthStatus,
    at: time::OffsetDateTime,
) -> HealthSnapshot {
    HealthSnapshot {
        game_id: gid(game),
        container_id: ContainerId::new(container),
        status,
        source: HealthSource::Probe,
        details: HealthDetails::new(),
        observed_at: at,
    }
}

#[actix_web::test]
async fn a_view_shows_only_the_health_of_the_current_engine() {
    let h = harness();
    let started = start(&h, On::Gm, "g1").await.json();
    let container = started["runtime"]["container_id"]
        .as_str()
        .expect("container id")
        .to_owned();
    let t0 = h.fakes.clock.now();
    // Nothing observed yet: pending.
    assert_eq!(view_health(&h, "g1").await, (Value::Null, "pending".into()));
    // An observation of the current engine is shown.
    let later = t0 + Duration::from_secs(1);
    h.fakes
        .store
        .put_health(snapshot("g1", &container, HealthStatus::Healthy, later));
    let (health, state) = view_health(&h, "g1").await;
    assert_eq!(
        (health["status"].clone(), state.as_str()),
        (json!("healthy"), "healthy")
    );
    // One of another container (the engine before a patch) is not.
    h.fakes
        .store
        .put_health(snapshot("g1", "0ld0ld", HealthStatus::Healthy, later));
    assert_eq!(view_health(&h, "g1").await, (Value::Null, "pending".into()));
    // Nor one of this container from before its latest start (a restart
    // keeps the container).
    h.fakes.store.put_health(snapshot(
        "g1",
        &container,
        HealthStatus::Healthy,
        t0 - Duration::from_secs(1),
    ));
    assert_eq!(view_health(&h, "g1").await, (Value::Null, "pending".into()));

    // A stopped game never shows `healthy`, but keeps why it stopped.
    h.fakes.clock.advance(Duration::from_secs(10));
    let stopped = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/stop", None)).await;
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    h.fakes
        .store
        .put_health(snapshot("g1", &container, HealthStatus::Healthy, later));
    assert_eq!(
        view_health(&h, "g1").await,
        (Value::Null, "not_running".into())
    );
    h.fakes
        .store
        .put_health(snapshot("g1", &container, HealthStatus::Exited, later));
    let (health, state) = view_health(&h, "g1").await;
    assert_eq!(
        (health["status"].clone(), state.as_str()),
        (json!("exited"), "exited")
    );

    // After a restart, the old observation is hidden until a new one.
    h.fakes.clock.advance(Duration::from_secs(10));
    let restarted = send(&h, On::Gm, post(On::Gm, "/runtimes/g1/restart", None)).await;
    assert_eq!(restarted.status, 200, "{}", restarted.text);
    assert_eq!(restarted.json()["runtime"]["health_state"], "pending");
    assert_eq!(view_health(&h, "g1").await, (Value::Null, "pending".into()));
    h.fakes.store.put_health(snapshot(
        "g1",
        &container,
        HealthStatus::ProbeFailed,
        h.fakes.clock.now() + Duration::from_secs(1),
    ));
    assert_eq!(view_health(&h, "g1").await.1, "probe_failed");
}

#[actix_web::test]
async fn recorded_outcomes_are_counted_by_the_domain_telemetry() {
    // The service reports through the `Telemetry` port; with the fakes
    // that is `FakeTelemetry`. This pins the source the HTTP layer passes.
    let h = harness();
    assert_eq!(start(&h, On::Admin, "g1").await.status, 200);
    assert_eq!(
        h.fakes.telemetry.operations(),
        vec![(
            rtm_domain::OpKind::Start,
            OpSource::AdminRest,
            Outcome::Success
        )]
    );
}

// ---------------------------------------------------------------- docs

// `test` is actix's test module here, hence the full path of the attribute.
#[core::prelude::v1::test]
fn openapi_documents_every_code_and_route() {
    let doc = include_str!("../../../../docs/openapi.yaml");
    let enum_start = doc.find("    ErrorCode:").expect("ErrorCode schema");
    let enum_block = &doc[enum_start..];
    let enum_block = &enum_block[..enum_block.find("    Error:").expect("next schema")];
    let listed: Vec<&str> = enum_block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    let all: Vec<&str> = rtm_domain::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, all, "docs/openapi.yaml ErrorCode enum");
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/runtimes/{game_id}",
        "/api/v1/runtimes/{game_id}/start",
        "/api/v1/runtimes/{game_id}/stop",
        "/api/v1/runtimes/{game_id}/restart",
        "/api/v1/runtimes/{game_id}/patch",
        "/api/v1/runtimes/{game_id}/operations",
        "/admin/v1/runtimes",
        "/admin/v1/runtimes/{game_id}",
        "/admin/v1/runtimes/{game_id}/start",
        "/admin/v1/runtimes/{game_id}/stop",
        "/admin/v1/runtimes/{game_id}/restart",
        "/admin/v1/runtimes/{game_id}/patch",
        "/admin/v1/runtimes/{game_id}/operations",
        "/admin/v1/runtimes/{game_id}/cleanup",
        "/admin/v1/runtimes/{game_id}/logs",
        "/admin/v1/reconcile",
        "/admin/v1/operations",
        "/admin/v1/health",
        "/admin/v1/overview",
        "/admin/v1/games",
        "/admin/v1/runtimes/{game_id}/health-history",
    ] {
        assert!(
            doc.contains(&format!("\n  {path}:\n")),
            "{path} missing from docs/openapi.yaml"
        );
    }
    let rest = include_str!("../../../../docs/rest.md");
    for code in all {
        assert!(
            rest.contains(&format!("| `{code}` |")),
            "{code} missing from docs/rest.md"
        );
    }
}

// ---------------------------------------------------------------- real listeners

/// One raw HTTP/1.1 exchange over TCP (no client crate needed).
async fn raw_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
    raw(addr, "GET", path, token).await
}

async fn raw(addr: std::net::SocketAddr, method: &str, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

#[actix_web::test]
async fn both_listeners_serve_their_own_surface() {
    let h = harness();
    let any = "127.0.0.1:0".parse().expect("addr");
    let servers =
        bind_servers(h.state.clone(), any, any, Duration::from_secs(1), || {}).expect("bind");
    assert_ne!(servers.gm_addr.port(), 0);
    assert_ne!(servers.gm_addr, servers.admin_addr);
    let (gm, admin) = (servers.gm.handle(), servers.admin.handle());
    let gm_task = actix_web::rt::spawn(servers.gm);
    let admin_task = actix_web::rt::spawn(servers.admin);

    let r = raw_get(servers.gm_addr, "/healthz", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = raw_get(servers.admin_addr, "/healthz", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = raw_get(servers.gm_addr, "/api/v1/runtimes/g1", Some(GM)).await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains(r#""code":"not_found""#), "{r}");
    let r = raw_get(servers.gm_addr, "/admin/v1/runtimes", Some(ADMIN)).await;
    assert!(
        r.starts_with("HTTP/1.1 404"),
        "the admin API is not on the GM port: {r}"
    );
    let r = raw_get(servers.admin_addr, "/admin/v1/runtimes", Some(GM)).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let r = raw_get(servers.admin_addr, "/admin/v1/runtimes", Some(ADMIN)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // HEAD on a real listener: GET's status and headers, no body.
    let r = raw(
        servers.admin_addr,
        "HEAD",
        "/admin/v1/runtimes",
        Some(ADMIN),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let (head, body) = r.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{r}"
    );
    assert_eq!(body, "", "HEAD has no body: {r}");

    gm.stop(true).await;
    admin.stop(true).await;
    gm_task.await.expect("gm task").expect("gm server");
    admin_task.await.expect("admin task").expect("admin server");
}

// ---------------------------------------------------------------- console

#[actix_web::test]
async fn the_console_shell_is_public_and_its_reads_need_a_source() {
    let h = harness();
    let r = send(&h, On::Admin, test::TestRequest::get().uri("/admin/ui/")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type().starts_with("text/html"),
        "{}",
        r.content_type()
    );
    let csp = r
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let r = send(&h, On::Admin, test::TestRequest::get().uri("/admin/ui")).await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.headers.get(header::LOCATION).map(|v| v.as_bytes()),
        Some(&b"/admin/ui/"[..])
    );
    send(
        &h,
        On::Admin,
        test::TestRequest::get().uri("/admin/ui/missing.js"),
    )
    .await
    .error(404, "not_found");
    send(&h, On::Gm, test::TestRequest::get().uri("/admin/ui/"))
        .await
        .error(404, "not_found");
    // Without a console source (these fakes) the reads answer 503; the
    // token is still checked first.
    for path in ["/overview", "/games", "/runtimes/g1/health-history"] {
        send(&h, On::Admin, get(On::Admin, path))
            .await
            .error(503, "internal");
        send(
            &h,
            On::Admin,
            test::TestRequest::get().uri(&format!("/admin/v1{path}")),
        )
        .await
        .error(401, "unauthorized");
    }
    // Bad input is refused before the source is needed.
    send(&h, On::Admin, get(On::Admin, "/games?sort=random"))
        .await
        .error(400, "invalid_request");
}
