//! The audit and list endpoints (SPEC §9, docs/rest.md): newest first,
//! keyset pagination that covers every row exactly once, and the admin
//! filters.

use serde_json::json;

use super::*;

/// Follows `next_before` from `first_url` (which has a `?`) until null.
async fn all_pages(base: &str, token: &str, first_url: &str) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut url = first_url.to_owned();
    for _ in 0..100 {
        let (s, v) = call("GET", &format!("{base}{url}"), Some(token), None, &[]).await;
        assert_eq!(s, 200, "{url}: {v}");
        let ids: Vec<i64> = v["operations"]
            .as_array()
            .expect("operations")
            .iter()
            .map(|o| o["id"].as_i64().expect("id"))
            .collect();
        pages.push(ids);
        match v["next_before"].as_i64() {
            Some(b) => url = format!("{first_url}&before={b}"),
            None => {
                assert!(v["next_before"].is_null(), "{v}");
                return pages;
            }
        }
    }
    panic!("pagination of {first_url} does not end");
}

#[tokio::test]
async fn operations_are_listed_newest_first_and_paginated() {
    let app = spawn_app().await;
    let (g, h) = (gid(&app, "list-g"), gid(&app, "list-h"));
    let (g, h) = (g.as_str(), h.as_str());
    start_running(&app, g, "1.0.0").await;
    start_running(&app, h, "1.0.0").await;
    stop_game(&app, g).await;
    let (s, _) = app
        .gm_post(
            &format!("/api/v1/runtimes/{g}/patch"),
            Some(json!({"image_ref": image("1.0.1")})),
        )
        .await;
    assert_eq!(s, 409);
    let since = time::OffsetDateTime::now_utc();
    let (s, _) = app
        .gm_post(&format!("/api/v1/runtimes/{g}/restart"), None)
        .await;
    assert_eq!(s, 200);
    stop_game(&app, g).await;
    stop_game(&app, g).await; // a no-op, still a row
    cleanup_game(&app, g).await;

    let rows_g = rows(&app, g).await;
    assert_eq!(rows_g.len(), 7, "{rows_g:?}");
    let mut newest_first: Vec<i64> = rows_g.iter().map(|r| r.id).collect();
    newest_first.reverse();

    // Every page size covers every row exactly once, newest first.
    for limit in [1, 2, 3, 7, 50] {
        let pages = all_pages(
            &app.gm,
            GM_TOKEN,
            &format!("/api/v1/runtimes/{g}/operations?limit={limit}"),
        )
        .await;
        assert!(pages.iter().all(|p| p.len() <= limit), "{pages:?}");
        let flat: Vec<i64> = pages.concat();
        assert_eq!(flat, newest_first, "limit {limit}: {pages:?}");
    }
    // Default page; the admin surface lists the same.
    let (s, v) = gm_get(&app, &format!("/api/v1/runtimes/{g}/operations")).await;
    assert_eq!(s, 200);
    let ids: Vec<i64> = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, newest_first);
    let first = &v["operations"][0];
    assert_eq!(first["op_kind"], "cleanup_container");
    assert_eq!(first["op_source"], "admin_rest");
    assert_eq!(first["game_id"], g);
    let (s, v2) = app
        .admin_get(&format!("/admin/v1/runtimes/{g}/operations"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v2["operations"], v["operations"]);
    // A game without any row: an empty list, not 404.
    let (s, v) = gm_get(
        &app,
        &format!("/api/v1/runtimes/{}/operations", gid(&app, "list-none")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["operations"], json!([]));
    assert!(v["next_before"].is_null());
    // Bad parameters.
    for q in ["limit=0", "limit=501", "limit=x", "before=x", "bogus=1"] {
        let (s, v) = gm_get(&app, &format!("/api/v1/runtimes/{g}/operations?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{q}: {v}");
    }

    // Admin: every game's operations, filtered.
    let admin_ids = |q: String| {
        let app = &app;
        async move {
            let pages = all_pages(
                &app.admin,
                ADMIN_TOKEN,
                &format!("/admin/v1/operations?limit=2&{q}"),
            )
            .await;
            pages.concat()
        }
    };
    let all: Vec<i64> = {
        let mut v: Vec<i64> = rows_g
            .iter()
            .chain(rows(&app, h).await.iter())
            .map(|r| r.id)
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };
    assert_eq!(admin_ids(String::new()).await, all);
    assert_eq!(admin_ids(format!("game_id={g}")).await, newest_first);
    let stops: Vec<i64> = rows_g
        .iter()
        .rev()
        .filter(|r| r.op_kind == "stop")
        .map(|r| r.id)
        .collect();
    assert_eq!(stops.len(), 3);
    assert_eq!(
        admin_ids(format!("game_id={g}&op_kind=stop&outcome=success")).await,
        stops
    );
    let failed: Vec<i64> = rows_g
        .iter()
        .rev()
        .filter(|r| r.outcome == "failure")
        .map(|r| r.id)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(admin_ids("outcome=failure".into()).await, failed);
    let since_s = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent: Vec<i64> = rows_g
        .iter()
        .rev()
        .filter(|r| r.started_at >= since)
        .map(|r| r.id)
        .collect();
    assert_eq!(recent.len(), 4, "{rows_g:?}");
    assert_eq!(
        admin_ids(format!("game_id={g}&since={}", since_s.replace('+', "%2B"))).await,
        recent
    );
    assert_eq!(
        admin_ids(format!("game_id={h}&op_source=gm_rest"))
            .await
            .len(),
        1
    );
    for q in [
        "op_kind=bogus",
        "outcome=maybe",
        "since=yesterday",
        "game_id=-x",
        "nope=1",
    ] {
        let (s, v) = app.admin_get(&format!("/admin/v1/operations?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{q}: {v}");
    }
}

#[tokio::test]
async fn admin_lists_runtimes_by_status() {
    let app = spawn_app().await;
    let (r, s, x) = (
        gid(&app, "st-running"),
        gid(&app, "st-stopped"),
        gid(&app, "st-removed"),
    );
    let (r, s, x) = (r.as_str(), s.as_str(), x.as_str());
    for g in [r, s, x] {
        start_running(&app, g, "1.0.0").await;
    }
    stop_game(&app, s).await;
    stop_game(&app, x).await;
    cleanup_game(&app, x).await;

    let list = |q: &'static str| {
        let app = &app;
        async move {
            let mut games = Vec::new();
            let mut url = format!("/admin/v1/runtimes?limit=1{q}");
            for _ in 0..20 {
                let (st, v) = app.admin_get(&url).await;
                assert_eq!(st, 200, "{url}: {v}");
                for rt in v["runtimes"].as_array().expect("runtimes") {
                    assert!(rt.get("health").is_none(), "no health in the list: {rt}");
                    games.push((
                        rt["game_id"].as_str().unwrap().to_owned(),
                        rt["status"].as_str().unwrap().to_owned(),
                    ));
                }
                match v["next_after"].as_str() {
                    Some(a) => url = format!("/admin/v1/runtimes?limit=1{q}&after={a}"),
                    None => return games,
                }
            }
            panic!("runtimes pagination does not end");
        }
    };
    let pair = |g: &str, st: &str| (g.to_owned(), st.to_owned());
    assert_eq!(
        list("").await,
        vec![pair(x, "removed"), pair(r, "running"), pair(s, "stopped")]
    );
    assert_eq!(list("&status=running").await, vec![pair(r, "running")]);
    assert_eq!(list("&status=stopped").await, vec![pair(s, "stopped")]);
    assert_eq!(list("&status=removed").await, vec![pair(x, "removed")]);
    let (st, v) = app.admin_get("/admin/v1/runtimes?status=zombie").await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request");
    // Cleanup is per game; there is no bulk cleanup route.
    let (st, v) = app.admin_post("/admin/v1/cleanup", None).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    // Cleanup of a removed game is a recorded no-op.
    let (st, v) = app
        .admin_post(&format!("/admin/v1/runtimes/{x}/cleanup"), Some(json!({})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["runtime"]["status"], "removed");
}
