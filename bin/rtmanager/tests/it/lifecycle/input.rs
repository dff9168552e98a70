//! Bad input changes nothing (SPEC §3, §9): malformed requests are refused
//! before any side effect and leave no row; a disallowed image is a
//! *business* failure, recorded, with no container; authentication comes
//! first and a token works only on its own surface.

use serde_json::json;

use super::*;

/// Everything this test's app could have changed.
#[derive(Debug, PartialEq)]
struct World {
    records: Vec<Option<Value>>,
    rows: i64,
    containers: Vec<String>,
}

async fn world(app: &TestApp, games: &[&str]) -> World {
    let mut records = Vec::new();
    for g in games {
        records.push(without_health(&record(app, g).await));
    }
    let client = app.db.admin_client().await.expect("admin client");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM operation_log", &[])
        .await
        .expect("count")
        .get(0);
    // On a swarm, services: a created service has no container yet.
    let containers = app.all_containers();
    World {
        records,
        rows,
        containers,
    }
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let app = spawn_app().await;
    let live = gid(&app, "input-live");
    let live = live.as_str();
    let fresh = gid(&app, "input-new");
    let fresh = fresh.as_str();
    start_running(&app, live, "1.0.0").await;
    let games = [live, fresh];
    let before = world(&app, &games).await;
    let start_url = |g: &str| format!("{}/api/v1/runtimes/{g}/start", app.gm);
    let good = json!({"image_ref": image("1.0.0")}).to_string();

    // (url, body, status, code)
    let long = "a".repeat(64);
    let mut cases: Vec<(String, String, u16, &str)> = Vec::new();
    for bad in ["-x", long.as_str(), "a%2Fb", ".x", "a%20b", "%C3%A9t%C3%A9"] {
        cases.push((start_url(bad), good.clone(), 400, "invalid_game_id"));
        cases.push((
            format!("{}/api/v1/runtimes/{bad}/stop", app.gm),
            String::new(),
            400,
            "invalid_game_id",
        ));
    }
    for g in games {
        for (body, code) in [
            ("{".to_owned(), "invalid_request"),
            ("not json".to_owned(), "invalid_request"),
            (
                json!({"image_ref": image("1.0.0"), "extra": 1}).to_string(),
                "invalid_request",
            ),
            ("{}".to_owned(), "invalid_request"),
            (json!({"image_ref": 7}).to_string(), "invalid_request"),
            (
                json!({"image_ref": "rtm.local/Engine-Stub:1.0.0"}).to_string(),
                "invalid_image_ref",
            ),
            (
                json!({"image_ref": "rtm.local/engine-stub:1.0.0:x"}).to_string(),
                "invalid_image_ref",
            ),
            (json!({"image_ref": "::"}).to_string(), "invalid_image_ref"),
        ] {
            cases.push((start_url(g), body, 400, code));
        }
        cases.push((
            format!("{}/api/v1/runtimes/{g}/stop", app.gm),
            json!({"timeout_s": -1}).to_string(),
            400,
            "invalid_request",
        ));
        cases.push((
            format!("{}/api/v1/runtimes/{g}/stop", app.gm),
            json!({"timeout_s": 3601}).to_string(),
            400,
            "invalid_request",
        ));
    }
    for (url, body, status, code) in &cases {
        let (s, text) = call_raw("POST", url, Some(GM_TOKEN), Some(body.clone()), &[]).await;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(s, *status, "POST {url} {body}: {text}");
        assert_eq!(v["error"]["code"], *code, "POST {url} {body}: {text}");
        assert!(v["operation"].is_null(), "not recorded: {text}");
        assert_eq!(world(&app, &games).await, before, "after POST {url} {body}");
    }

    // Authentication before anything else.
    let admin_start = |g: &str| format!("{}/admin/v1/runtimes/{g}/start", app.admin);
    let auth_cases = [
        (start_url(live), None, 401, "unauthorized"),
        (start_url(live), Some("wrong-token"), 401, "unauthorized"),
        (start_url("-x"), Some("wrong-token"), 401, "unauthorized"),
        (start_url(live), Some(ADMIN_TOKEN), 403, "forbidden"),
        (admin_start(live), Some(GM_TOKEN), 403, "forbidden"),
        (admin_start(fresh), Some(GM_TOKEN), 403, "forbidden"),
        (admin_start(live), Some("wrong-token"), 401, "unauthorized"),
        (
            format!("{}/admin/v1/runtimes/{live}/cleanup", app.admin),
            Some(GM_TOKEN),
            403,
            "forbidden",
        ),
    ];
    for (url, token, status, code) in auth_cases {
        let body = Some(json!({"image_ref": image("2.0.0")}));
        let (s, v) = call("POST", &url, token, body, &[]).await;
        assert_eq!(s, status, "{url} with {token:?}: {v}");
        assert_eq!(v["error"]["code"], code, "{url}: {v}");
        assert_eq!(
            world(&app, &games).await,
            before,
            "after {url} with {token:?}"
        );
    }
    let (s, _) = call(
        "GET",
        &format!("{}/api/v1/runtimes/{live}", app.gm),
        Some(ADMIN_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        "GET",
        &format!("{}/admin/v1/runtimes", app.admin),
        Some(GM_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 403);
    let (s, text) = call_raw(
        "GET",
        &format!("{}/api/v1/runtimes/{live}", app.gm),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(s, 401, "{text}");

    // A disallowed image: a recorded business failure, nothing else.
    let mut rows_before = before.rows;
    for bad in [
        "ghcr.io.evil.com/rtm.local/engine-stub:1.0.0",
        "docker.io/library/alpine",
        "alpine:3",
        "rtm.local.evil.com/engine-stub:1.0.0",
        "rtm.local/engine-stub-evil:1.0.0",
        "evil.com/rtm.local/engine-stub:1.0.0",
    ] {
        for g in games {
            let (s, v) = app.start_game(g, bad).await;
            assert_eq!(s, 422, "{bad} on {g}: {v}");
            assert_eq!(v["error"]["code"], "image_not_allowed", "{v}");
            assert_eq!(v["operation"]["outcome"], "failure", "{v}");
            assert_eq!(v["operation"]["error_code"], "image_not_allowed", "{v}");
            rows_before += 1;
            let now = world(&app, &games).await;
            assert_eq!(now.rows, rows_before, "one recorded row for {bad}");
            assert_eq!(now.records, before.records, "{bad} on {g}");
            assert_eq!(now.containers, before.containers, "{bad} on {g}");
            let last = rows(&app, g).await.pop().expect("row");
            assert_eq!(
                (
                    last.op_kind.as_str(),
                    last.outcome.as_str(),
                    last.error_code.as_str()
                ),
                ("start", "failure", "image_not_allowed")
            );
        }
    }
    // The patch path checks the allow-list too.
    let (s, v) = app
        .gm_post(
            &format!("/api/v1/runtimes/{live}/patch"),
            Some(json!({"image_ref": "docker.io/library/alpine:1.0.1"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "image_not_allowed", "{v}");
    let now = world(&app, &games).await;
    assert_eq!(now.containers, before.containers);
    assert_eq!(now.records, before.records);
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_cleanly() {
    // Loopback port 1: nothing listens, the pull fails at once, and no
    // traffic leaves the machine.
    let app = spawn_app_with(|v| {
        v.insert(
            "RTM_IMAGE_ALLOWLIST".into(),
            "rtm.local/engine-stub,127.0.0.1:1/*".into(),
        );
    })
    .await;
    let g = gid(&app, "pull-fail");
    let g = g.as_str();
    let (s, v) = app.start_game(g, "127.0.0.1:1/engine:1.0.0").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "image_pull_failed", "{v}");
    assert_eq!(v["operation"]["outcome"], "failure", "{v}");
    assert!(app.containers(g).is_empty());
    assert!(
        record(&app, g).await.is_none(),
        "no record for a failed first start"
    );
    let r = rows(&app, g).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (
            r[0].op_kind.as_str(),
            r[0].outcome.as_str(),
            r[0].error_code.as_str()
        ),
        ("start", "failure", "image_pull_failed")
    );
    assert_eq!(r[0].image_ref, "127.0.0.1:1/engine:1.0.0");
}
