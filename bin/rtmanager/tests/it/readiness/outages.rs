//! A dependency that goes away for a while: RTM degrades, reports it
//! (`/readyz`, metrics), loses nothing, and recovers by itself without a
//! restart. PostgreSQL is cut with a TCP proxy between the app and the
//! server; Redis is a private server that is stopped and started again.
//! (Docker cannot be taken away on the shared engine; its adapter's own
//! tests cut a socket proxy.)

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::proxy::TcpProxy;
use super::*;

/// The PostgreSQL server the test databases live on (host:port of the
/// admin URL; the per-test URLs use the same server).
async fn pg_upstream() -> SocketAddr {
    let admin = rtm_testkit::pg::admin_url();
    let target = host_port(&admin).to_owned();
    let mut addrs = tokio::net::lookup_host(target.as_str())
        .await
        .unwrap_or_else(|e| panic!("resolve {target}: {e}"));
    addrs
        .next()
        .unwrap_or_else(|| panic!("resolve {target}: no address"))
}

/// The `host:port` part of `scheme://user:pass@host:port/db`.
fn host_port(url: &str) -> &str {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    after_at.split('/').next().unwrap_or(after_at)
}

/// `url` with its `host:port` replaced by `addr` (user, password and
/// database kept).
fn with_host(url: &str, addr: SocketAddr) -> String {
    url.replacen(host_port(url), &addr.to_string(), 1)
}

fn container_running(id: &str) -> bool {
    rtm_testkit::docker::docker(&["inspect", "-f", "{{.State.Running}}", id])
        .map(|s| s.trim() == "true")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_reported_and_recovered_without_a_restart() {
    let before = game("before");
    let during = game("during");
    let after = game("after");
    let queued = game("queued");
    let proxy = TcpProxy::start(pg_upstream().await).await;
    let proxy_addr = proxy.addr();
    let app = spawn_app_with(|v| {
        let url = with_host(&v["RTM_DATABASE_URL"], proxy_addr);
        v.insert("RTM_DATABASE_URL".into(), url);
    })
    .await;
    assert!(
        proxy.forwarded() > 0,
        "the app must reach PostgreSQL through the proxy"
    );
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;
    let (status, body) = app.start_game(&before, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    let before_ids = app.containers(&before);
    assert_eq!(before_ids.len(), 1);

    proxy.cut();

    // Reported: /readyz says which dependency is down, /healthz stays up.
    let body = wait_readyz(&app.gm, 503, Duration::from_secs(20)).await;
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["dependencies"]["postgres"]["ok"], false, "{body}");
    assert_eq!(body["dependencies"]["redis"]["ok"], true, "{body}");
    assert_eq!(body["dependencies"]["docker"]["ok"], true, "{body}");
    let (status, _) = readyz(&app.admin).await;
    assert_eq!(status, 503);
    let (status, _) = call("GET", &format!("{}/healthz", app.gm), None, None, &[]).await;
    assert_eq!(status, 200, "alive while a dependency is down");
    let _ = metrics_text(&app.gm).await; // still served

    // Operations fail cleanly, before touching Docker.
    let (status, body) = app.start_game(&during, &image("1.0.0")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(
        app.containers(&during).is_empty(),
        "nothing created in Docker"
    );
    let (status, body) = app
        .gm_post(
            &format!("/api/v1/runtimes/{before}/stop"),
            Some(json!({"timeout_s": 1})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(
        container_running(&before_ids[0]),
        "the engine was not stopped"
    );
    let (status, body) = app.runtime(&before).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");

    // Work that arrives meanwhile on the Lobby stream waits, it is not lost.
    let redis = rtm_testkit::redis::client(&rtm_testkit::redis::redis_url()).await;
    rtm_testkit::redis::xadd(
        &redis,
        &app.lobby_stream,
        &[
            ("op", "start"),
            ("game_id", queued.as_str()),
            ("image_ref", &image("1.0.0")),
        ],
    )
    .await;

    let probes_before = worker_runs(&app.gm, "probe").await;
    proxy.restore();

    // Recovered, same process.
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;
    let (status, body) = app.start_game(&after, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    assert_eq!(app.containers(&after).len(), 1);
    let queued_runtime = wait_for(
        "the queued Lobby start",
        Duration::from_secs(30),
        || async {
            let (s, v) = app.runtime(&queued).await;
            (s == 200 && v["status"] == "running").then_some(v)
        },
    )
    .await;
    assert_eq!(app.containers(&queued).len(), 1, "{queued_runtime}");
    let rows = app.operation_rows(&queued).await;
    assert_eq!(rows.len(), 1, "exactly one operation for the entry");
    assert_eq!(rows[0].get::<_, String>("op_source"), "lobby_stream");
    assert_eq!(rows[0].get::<_, String>("outcome"), "success");
    assert!(
        app.operation_rows(&during).await.is_empty(),
        "the refused start left no trace"
    );
    // The singleton workers took their leases back.
    wait_for("probe passes again", Duration::from_secs(20), || async {
        (worker_runs(&app.gm, "probe").await > probes_before).then_some(())
    })
    .await;
    wait_for("'after' healthy", Duration::from_secs(30), || async {
        let (_, v) = app.runtime(&after).await;
        (v["health"]["status"] == "healthy").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_reported_and_no_health_event_is_lost() {
    let while_down = game("while-down");
    let after_redis = game("after-redis");
    let mut server = tokio::task::spawn_blocking(rtm_testkit::redis::RedisServer::start)
        .await
        .expect("redis-server");
    let url = server.url();
    let app = spawn_app_with(|v| {
        v.insert("RTM_REDIS_URL".into(), url.clone());
    })
    .await;
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .expect("stop redis");

    let body = wait_readyz(&app.gm, 503, Duration::from_secs(20)).await;
    assert_eq!(body["dependencies"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["dependencies"]["postgres"]["ok"], true, "{body}");
    assert_eq!(body["dependencies"]["docker"]["ok"], true, "{body}");

    // REST operations do not need Redis.
    let (status, body) = app.start_game(&while_down, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    wait_for(
        "healthy while Redis is down",
        Duration::from_secs(30),
        || async {
            let (_, v) = app.runtime(&while_down).await;
            (v["health"]["status"] == "healthy").then_some(())
        },
    )
    .await;
    // The change waits in the outbox, and the metrics say so.
    wait_for(
        "outbox backlog reported",
        Duration::from_secs(20),
        || async {
            let text = metrics_text(&app.gm).await;
            (series(&text, "rtm_health_outbox_pending").unwrap_or(0.0) >= 1.0).then_some(())
        },
    )
    .await;

    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart redis");
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;

    // Published once Redis is back (the restarted server lost its data, so
    // everything on the stream now came from the outbox).
    let client = rtm_testkit::redis::client(&server.url()).await;
    let published = wait_for(
        "the health change published",
        Duration::from_secs(30),
        || async {
            let entries = rtm_testkit::redis::xrange(&client, &app.health_stream).await;
            entries
                .iter()
                .any(|(_, f)| f.iter().any(|(k, v)| k == "game_id" && *v == while_down))
                .then_some(entries)
        },
    )
    .await;
    assert!(!published.is_empty());
    wait_for("outbox drained", Duration::from_secs(20), || async {
        let text = metrics_text(&app.gm).await;
        (series(&text, "rtm_health_outbox_pending") == Some(0.0)).then_some(())
    })
    .await;

    // The Lobby consumer re-created its group on the empty server.
    rtm_testkit::redis::xadd(
        &client,
        &app.lobby_stream,
        &[
            ("op", "start"),
            ("game_id", after_redis.as_str()),
            ("image_ref", &image("1.0.0")),
        ],
    )
    .await;
    wait_for(
        "Lobby entry processed after the outage",
        Duration::from_secs(30),
        || async {
            let (s, v) = app.runtime(&after_redis).await;
            (s == 200 && v["status"] == "running").then_some(())
        },
    )
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_started_while_postgres_is_down_serves_once_it_is_back() {
    let early = game("early");
    let proxy = TcpProxy::start(pg_upstream().await).await;
    let proxy_addr = proxy.addr();
    // Migrated by a first start; the second starts with PostgreSQL away.
    let mut app = spawn_app_with(|v| {
        let url = with_host(&v["RTM_DATABASE_URL"], proxy_addr);
        v.insert("RTM_DATABASE_URL".into(), url);
    })
    .await;
    app.stop().await;
    app.vars
        .insert("RTM_MIGRATE_ON_START".into(), "false".into());
    proxy.cut();
    app.start().await; // listens without waiting for the database

    let body = wait_readyz(&app.gm, 503, Duration::from_secs(20)).await;
    assert_eq!(body["dependencies"]["postgres"]["ok"], false, "{body}");
    let (status, body) = app.start_game(&early, &image("1.0.0")).await;
    assert_eq!(status, 503, "{body}");
    assert!(app.containers(&early).is_empty());

    proxy.restore();
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;
    let (status, body) = app.start_game(&early, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    // The workers got their leases: the start-up reconcile ran.
    wait_for("a reconcile pass", Duration::from_secs(20), || async {
        (worker_runs(&app.gm, "reconcile").await >= 1.0).then_some(())
    })
    .await;
    wait_for("'early' healthy", Duration::from_secs(30), || async {
        let (_, v) = app.runtime(&early).await;
        (v["health"]["status"] == "healthy").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_postgres_is_reported_and_nothing_hangs() {
    let before = game("before");
    let during = game("during");
    let after = game("after");
    let proxy = TcpProxy::start(pg_upstream().await).await;
    let proxy_addr = proxy.addr();
    let app = spawn_app_with(|v| {
        let url = with_host(&v["RTM_DATABASE_URL"], proxy_addr);
        v.insert("RTM_DATABASE_URL".into(), url);
    })
    .await;
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;
    let (status, body) = app.start_game(&before, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");

    // A partition: connections stay open, nothing answers.
    proxy.stall();
    let body = wait_readyz(&app.gm, 503, Duration::from_secs(20)).await;
    assert_eq!(body["dependencies"]["postgres"]["ok"], false, "{body}");
    assert_eq!(body["dependencies"]["redis"]["ok"], true, "{body}");
    let (status, _) = call("GET", &format!("{}/healthz", app.gm), None, None, &[]).await;
    assert_eq!(status, 200);
    // Callers get an answer, not a hung request.
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(60),
        app.start_game(&during, &image("1.0.0")),
    )
    .await
    .expect("an operation answers while PostgreSQL is black-holed");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(
        app.containers(&during).is_empty(),
        "nothing created in Docker"
    );
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), app.runtime(&before))
        .await
        .expect("a read answers while PostgreSQL is black-holed");
    assert_eq!(status, 503, "{body}");

    proxy.restore();
    wait_readyz(&app.gm, 200, Duration::from_secs(30)).await;
    for game in [&during, &after] {
        let (status, body) = app.start_game(game, &image("1.0.0")).await;
        assert_eq!(status, 200, "{game}: {body}");
        assert_eq!(app.containers(game).len(), 1);
    }
}
