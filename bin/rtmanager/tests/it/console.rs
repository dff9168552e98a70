//! The operator console's JSON reads and static shell against the real
//! service: the games table's filters, sort and paging; the overview's
//! counts, Lobby intake and worker leaders; a game's health history; the
//! shell's headers; and the token on every data call.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

fn game(prefix: &str) -> String {
    rtm_testkit::unique(prefix).replace('_', "-")
}

fn ids(v: &Value) -> Vec<String> {
    v["games"]
        .as_array()
        .unwrap_or_else(|| panic!("games list: {v}"))
        .iter()
        .map(|g| g["game_id"].as_str().expect("game_id").to_owned())
        .collect()
}

async fn games(app: &TestApp, query: &str) -> Value {
    let (status, v) = app.admin_get(&format!("/admin/v1/games?{query}")).await;
    assert_eq!(status, 200, "games?{query}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_games_table_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let p = game("cg");
    let (a, b, c) = (format!("{p}-a"), format!("{p}-b"), format!("{p}-c"));
    for (g, tag) in [(&a, "1.0.0"), (&b, "1.0.1"), (&c, "1.0.0")] {
        let (status, body) = app.start_game(g, &image(tag)).await;
        assert_eq!(status, 200, "start {g}: {body}");
    }
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{b}/stop"), None)
        .await;
    assert_eq!(status, 200, "stop {b}: {body}");

    let all = games(&app, &format!("prefix={p}")).await;
    assert_eq!(ids(&all), [a.as_str(), b.as_str(), c.as_str()]);
    assert_eq!(all["total"], 3);
    assert_eq!(
        ids(&games(&app, &format!("prefix={p}&status=running")).await),
        [a.as_str(), c.as_str()]
    );
    assert_eq!(
        ids(&games(&app, &format!("prefix={p}&status=stopped")).await),
        [b.as_str()]
    );
    // The image filter matches a substring of the reference: the tag here.
    assert_eq!(
        ids(&games(&app, &format!("prefix={p}&image=1.0.1")).await),
        [b.as_str()]
    );
    assert_eq!(
        ids(&games(&app, &format!("prefix={p}&image=ENGINE-STUB")).await).len(),
        3
    );
    // A LIKE wildcard in the filter is a literal character.
    assert_eq!(games(&app, "image=%25").await["total"], 0);
    assert_eq!(
        ids(&games(&app, &format!("prefix={p}&sort=game_id&order=desc")).await),
        [c.as_str(), b.as_str(), a.as_str()]
    );
    // Paging: the total stays, the window moves.
    let page1 = games(&app, &format!("prefix={p}&limit=2")).await;
    assert_eq!(
        (ids(&page1), &page1["total"]),
        (vec![a.clone(), b.clone()], &Value::from(3))
    );
    let page2 = games(&app, &format!("prefix={p}&limit=2&offset=2")).await;
    assert_eq!(ids(&page2), [c.as_str()]);
    assert_eq!(page2["total"], 3);
    // Each row carries its health snapshot; running games become healthy.
    wait_for("both running games healthy in the table", WAIT, || async {
        let v = games(&app, &format!("prefix={p}&health=healthy&status=running")).await;
        (ids(&v) == [a.clone(), c.clone()]).then_some(())
    })
    .await;
    let v = games(&app, &format!("prefix={p}&health=healthy&status=running")).await;
    assert_eq!(v["games"][0]["health"]["status"], "healthy", "{v}");
    assert!(v["games"][0]["health"]["observed_at"].is_string(), "{v}");
    // Sorting by the last operation puts the stopped game last ascending.
    let by_op = games(&app, &format!("prefix={p}&sort=last_op_at")).await;
    assert_eq!(ids(&by_op).last(), Some(&b), "{by_op}");

    for bad in [
        "status=sick",
        "health=sick",
        "sort=random",
        "order=up",
        "prefix=a%20b",
        "limit=0",
        "offset=x",
        "colour=red",
    ] {
        let (status, v) = app.admin_get(&format!("/admin/v1/games?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{bad}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_and_names_each_workers_leader() {
    let app = spawn_app().await;
    let p = game("co");
    let (a, b) = (format!("{p}-a"), format!("{p}-b"));
    for g in [&a, &b] {
        let (status, body) = app.start_game(g, &image("1.0.0")).await;
        assert_eq!(status, 200, "start {g}: {body}");
    }
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{b}/stop"), None)
        .await;
    assert_eq!(status, 200, "stop {b}: {body}");
    let instance = app.vars["RTM_INSTANCE_ID"].clone();

    let v = wait_for("every worker led by this replica", WAIT, || async {
        let (status, v) = app.admin_get("/admin/v1/overview").await;
        assert_eq!(status, 200, "{v}");
        let workers = v["workers"].as_array().expect("workers").clone();
        workers
            .iter()
            .all(|w| w["led"] == true && w["leader"] == instance.as_str())
            .then_some(v)
    })
    .await;
    let names: Vec<&str> = v["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, rtmanager::http::ui::WORKER_ROLES);
    assert!(v["workers"][0]["since"].is_string(), "{v}");
    // The schema is this test's own: the counts are exactly its games.
    assert_eq!(v["games"]["total"], 2, "{v}");
    assert_eq!(v["games"]["by_status"]["running"], 1, "{v}");
    assert_eq!(v["games"]["by_status"]["stopped"], 1, "{v}");
    assert_eq!(v["games"]["by_status"]["removed"], 0, "{v}");
    let health_total: u64 = v["games"]["by_health"]
        .as_object()
        .expect("by_health")
        .values()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(health_total, 2, "every non-removed game counted once: {v}");
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["lobby"]["dead_letters"], 0, "{v}");
    assert!(
        v["lobby"]["pending"].is_u64() || v["lobby"]["pending"].is_null(),
        "{v}"
    );
    for dep in ["postgres", "redis", "docker"] {
        assert_eq!(v["dependencies"][dep]["ok"], true, "{dep}: {v}");
    }

    // A second replica leads nothing while the first holds every lock,
    // and takes the workers over once the first is gone.
    let mut app = app;
    let replica = spawn_replica(&app, "b", |_| {}).await;
    let admin_b = format!("http://{}", replica.admin_addr);
    app.stop().await;
    let replica_id = format!("{}-b", app.owner.owner());
    wait_for(
        "the replica leads every worker",
        Duration::from_secs(60),
        || async {
            let (status, v) = call(
                "GET",
                &format!("{admin_b}/admin/v1/overview"),
                Some(ADMIN_TOKEN),
                None,
                &[],
            )
            .await;
            assert_eq!(status, 200, "{v}");
            v["workers"]
                .as_array()
                .expect("workers")
                .iter()
                .all(|w| w["leader"] == replica_id.as_str())
                .then_some(())
        },
    )
    .await;
    replica.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_games_health_history_comes_from_the_health_stream() {
    let app = spawn_app().await;
    let g = game("ch");
    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "start {g}: {body}");
    let v = wait_for("a healthy event in the history", WAIT, || async {
        let (status, v) = app
            .admin_get(&format!("/admin/v1/runtimes/{g}/health-history"))
            .await;
        assert_eq!(status, 200, "{v}");
        (v["events"].as_array().is_some_and(|e| !e.is_empty())).then_some(v)
    })
    .await;
    assert_eq!(v["stream_error"], Value::Null, "{v}");
    let ev = &v["events"][0];
    assert_eq!(ev["event_type"], "healthy", "{v}");
    assert_eq!(ev["source"], "probe", "{v}");
    assert!(ev["details"].is_object(), "{v}");
    let (_, rt) = app.runtime(&g).await;
    assert_eq!(ev["container_id"], rt["container_id"], "{v} {rt}");

    // Another game's history is empty, and bad input is refused.
    let (status, v) = app
        .admin_get("/admin/v1/runtimes/nobody-here/health-history")
        .await;
    assert_eq!((status, &v["events"]), (200, &Value::Array(vec![])), "{v}");
    for bad in [
        "/admin/v1/runtimes/-x/health-history",
        "/admin/v1/runtimes/x/health-history?limit=0",
    ] {
        let (status, v) = app.admin_get(bad).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_is_public_and_the_data_needs_the_admin_token() {
    let app = spawn_app().await;
    let (status, html) =
        call_raw("GET", &format!("{}/admin/ui/", app.admin), None, None, &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(!html.contains(ADMIN_TOKEN));
    for asset in ["app.js", "app.css"] {
        let (status, body) = call_raw(
            "GET",
            &format!("{}/admin/ui/{asset}", app.admin),
            None,
            None,
            &[],
        )
        .await;
        assert_eq!(status, 200, "{asset}: {body}");
    }
    let (status, v) = call(
        "GET",
        &format!("{}/admin/ui/nope.js", app.admin),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (404, &Value::from("not_found")),
        "{v}"
    );
    // The console's reads sit behind the admin token like the rest.
    for path in [
        "/admin/v1/overview",
        "/admin/v1/games",
        "/admin/v1/runtimes/g/health-history",
    ] {
        let (status, v) = call("GET", &format!("{}{path}", app.admin), None, None, &[]).await;
        assert_eq!(status, 401, "{path}: {v}");
        let (status, v) = call(
            "GET",
            &format!("{}{path}", app.admin),
            Some(GM_TOKEN),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    // The GM listener has no console.
    let (status, _) = call_raw("GET", &format!("{}/admin/ui/", app.gm), None, None, &[]).await;
    assert_eq!(status, 404);
}
