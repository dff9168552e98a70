//! `GET /admin/v1/health?status=` lists the games whose current snapshot
//! has that status, as the monitor recorded them from real engines.

use super::*;

/// The `game_id`s of one page of `/admin/v1/health` with `query`.
async fn listed(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let (status, page) = app.admin_get(&format!("/admin/v1/health{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    let ids = page["health"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {page}"))
        .iter()
        .map(|h| h["game_id"].as_str().expect("game_id").to_owned())
        .collect();
    (ids, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_health_list_filters_by_status() {
    let app = spawn_app().await;
    // Prefixes keep the listing order (by game id) predictable.
    let fine = game("hl-a-fine");
    let crashed = game("hl-b-crashed");
    let failing = game("hl-c-failing");
    for g in [&fine, &crashed, &failing] {
        start_healthy(&app, g, "1.0.0").await;
    }
    control(&app, &crashed, "crash", "4");
    control(&app, &failing, "unhealthy", "");
    wait_health(&app, &crashed, "exited").await;
    wait_health(&app, &failing, "probe_failed").await;
    let (_, view) = app.runtime(&fine).await;
    assert_eq!(view["health"]["status"], "healthy", "{view}");

    let (ids, page) = listed(&app, "?status=healthy").await;
    assert_eq!(ids, [fine.as_str()], "{page}");
    let (ids, page) = listed(&app, "?status=exited").await;
    assert_eq!(ids, [crashed.as_str()], "{page}");
    let item = &page["health"][0];
    assert_eq!(item["status"], "exited");
    assert_eq!(item["details"]["exit_code"], 4, "{page}");
    let (_, crashed_view) = app.runtime(&crashed).await;
    assert_eq!(item["container_id"], crashed_view["container_id"], "{page}");
    let (ids, page) = listed(&app, "?status=probe_failed").await;
    assert_eq!(ids, [failing.as_str()], "{page}");
    assert_eq!(page["health"][0]["source"], "probe");
    for empty in ["oom", "inspect_unhealthy", "container_disappeared"] {
        let (ids, page) = listed(&app, &format!("?status={empty}")).await;
        assert!(ids.is_empty(), "{empty}: {page}");
    }

    // Unfiltered: all three by game id, page by page.
    let (ids, _) = listed(&app, "").await;
    assert_eq!(ids, [fine.as_str(), crashed.as_str(), failing.as_str()]);
    let (ids, page) = listed(&app, "?limit=2").await;
    assert_eq!(ids, [fine.as_str(), crashed.as_str()]);
    assert_eq!(page["next_after"], crashed.as_str());
    let (ids, page) = listed(&app, &format!("?limit=2&after={crashed}")).await;
    assert_eq!(ids, [failing.as_str()]);
    assert_eq!(page["next_after"], Value::Null);

    let (status, body) = app.admin_get("/admin/v1/health?status=sick").await;
    assert_eq!(status, 400, "{body}");
}
