//! Redis restarted mid-stream (with AOF persistence): the app keeps serving
//! REST while Redis is down and reports it in `/readyz`, reconnects by
//! itself, processes every entry exactly once, and publishes the health
//! changes it recorded meanwhile once Redis is back.

use std::time::Duration;

use rtm_testkit::redis::RedisServer;

use super::*;

/// `rtm_worker_runs_total{result="error",worker="relay"}` from `/metrics`.
async fn relay_errors(app: &TestApp) -> u64 {
    let (status, text) = call_raw("GET", &format!("{}/metrics", app.gm), None, None, &[]).await;
    assert_eq!(status, 200);
    text.lines()
        .find(|l| l.starts_with(r#"rtm_worker_runs_total{result="error",worker="relay"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

async fn readyz(app: &TestApp) -> (u16, Json) {
    call("GET", &format!("{}/readyz", app.gm), None, None, &[]).await
}

/// Health events of `game` with `event_type` on the app's health stream.
async fn health_events(lobby: &Lobby, stream: &str, game: &str, kind: &str) -> usize {
    rtm_testkit::redis::xrange(&lobby.client, stream)
        .await
        .iter()
        .filter(|(_, f)| {
            f.iter().any(|(k, v)| k == "game_id" && v == game)
                && f.iter().any(|(k, v)| k == "event_type" && v == kind)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_and_doubles_nothing() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--save", ""]);
    let url = redis.url();
    let app = spawn_app_with(|v| {
        v.insert("RTM_REDIS_URL".into(), url.clone());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    let started = watch_starts(&app);
    let v1 = image("1.0.0");
    let (g1, g2, g3) = (
        gid(&app, "redis-g1"),
        gid(&app, "redis-g2"),
        gid(&app, "redis-g3"),
    );
    let (g1, g2, g3) = (g1.as_str(), g2.as_str(), g3.as_str());
    let mut ids = vec![lobby.start(g1, &v1).await, lobby.start(g2, &v1).await];
    wait_rows(&app, 2, Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    // g1 healthy, and that change published, before the outage.
    wait_for(
        "g1 healthy on the stream",
        Duration::from_secs(30),
        || async {
            (health_events(&lobby, &app.health_stream, g1, "healthy").await == 1).then_some(())
        },
    )
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");

    // Redis goes down.
    tokio::task::block_in_place(|| redis.stop());
    let body = wait_for("/readyz 503", Duration::from_secs(20), || async {
        let (status, body) = readyz(&app).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["dependencies"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["dependencies"]["postgres"]["ok"], true, "{body}");
    assert_eq!(body["dependencies"]["docker"]["ok"], true, "{body}");
    // REST keeps serving.
    assert_runtime(&app, g1, "running", &v1).await;

    // g1's engine crashes while Redis is down: recorded, not yet published.
    std::fs::write(app.state_dir(g1).join("crash"), "7").expect("crash file");
    wait_for("g1 exited", Duration::from_secs(30), || async {
        let rt = runtime(&app, g1).await;
        (rt["status"] == "stopped" && rt["health"]["status"] == "exited").then_some(())
    })
    .await;
    // The change waits in the outbox, and the relay has tried (and failed)
    // to publish it: two failed passes after this point guarantee one that
    // began after the event was queued.
    let client = admin(&app).await;
    let queued: i64 = client
        .query_one(
            "SELECT count(*) FROM health_outbox WHERE game_id = $1 AND event_type = 'exited'",
            &[&g1],
        )
        .await
        .expect("outbox")
        .get(0);
    assert_eq!(queued, 1, "the exited change is queued");
    let failed = relay_errors(&app).await;
    wait_for(
        "two failed relay passes",
        Duration::from_secs(30),
        || async { (relay_errors(&app).await >= failed + 2).then_some(()) },
    )
    .await;

    // Redis comes back with its data; more entries arrive.
    tokio::task::block_in_place(|| redis.restart());
    ids.push(lobby.stop(g2).await);
    ids.push(lobby.start(g3, &v1).await);
    wait_rows(&app, ids.len(), Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    wait_for("/readyz 200", Duration::from_secs(20), || async {
        (readyz(&app).await.0 == 200).then_some(())
    })
    .await;

    // Every entry exactly once.
    let all = all_rows(&app).await;
    assert_eq!(all.len(), ids.len(), "{all:#?}");
    // (Different games: their rows may commit in any order.)
    let mut refs: Vec<&str> = all.iter().map(|r| r.source_ref.as_str()).collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    refs.sort_unstable();
    want.sort_unstable();
    assert_eq!(refs, want);
    assert!(all.iter().all(|r| r.outcome == "success"), "{all:#?}");
    assert_runtime(&app, g2, "stopped", &v1).await;
    assert_runtime(&app, g3, "running", &v1).await;
    assert_eq!(started.of(g2), 1);
    assert!(lobby.pending().await.is_empty());
    assert!(lobby.dead_letters().await.is_empty());

    // The crash reaches the health stream once the outbox is flushed,
    // exactly once.
    wait_for("outbox flushed", Duration::from_secs(20), || async {
        let n: i64 = client
            .query_one("SELECT count(*) FROM health_outbox", &[])
            .await
            .expect("outbox")
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    assert_eq!(
        health_events(&lobby, &app.health_stream, g1, "exited").await,
        1
    );
    let exited = rtm_testkit::redis::xrange(&lobby.client, &app.health_stream)
        .await
        .into_iter()
        .find(|(_, f)| {
            f.iter().any(|(k, v)| k == "game_id" && v == g1)
                && f.iter().any(|(k, v)| k == "event_type" && v == "exited")
        })
        .expect("exited event");
    let details = exited
        .1
        .iter()
        .find(|(k, _)| k == "details")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(details.contains("\"exit_code\":7"), "{exited:?}");
    drop(lobby);
    drop(app);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_starts_while_redis_is_down_and_catches_up() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    tokio::task::block_in_place(|| redis.stop());
    let app = spawn_app_with(|v| {
        v.insert("RTM_REDIS_URL".into(), url.clone());
    })
    .await;
    // Up, serving REST, not ready.
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["dependencies"]["redis"]["ok"], false, "{body}");
    let (status, _) = app.runtime("nothing-yet").await;
    assert_eq!(status, 404);

    tokio::task::block_in_place(|| redis.restart());
    let lobby = Lobby::new(&app).await;
    // Written before the group exists: processed all the same (group
    // created from id 0).
    let ids = [lobby.stop("late-1").await, lobby.stop("late-2").await];
    wait_rows(&app, 2, Duration::from_secs(30)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    wait_for("/readyz 200", Duration::from_secs(20), || async {
        (readyz(&app).await.0 == 200).then_some(())
    })
    .await;
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 2);
    for id in &ids {
        assert_eq!(all.iter().filter(|r| &r.source_ref == id).count(), 1);
    }
    drop(lobby);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_without_persistence_the_group_is_recreated() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|v| {
        v.insert("RTM_REDIS_URL".into(), url.clone());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    let first = lobby.stop("volatile-1").await;
    wait_rows(&app, 1, Duration::from_secs(30)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;

    // Redis loses everything: stream, group, pending list.
    tokio::task::block_in_place(|| redis.restart());
    assert!(lobby.group_info().await.is_none(), "data survived?");
    let later = [
        lobby.stop("volatile-2").await,
        lobby.stop("volatile-3").await,
    ];
    wait_rows(&app, 3, Duration::from_secs(30)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    for id in std::iter::once(&first).chain(&later) {
        assert_eq!(all.iter().filter(|r| &r.source_ref == id).count(), 1);
    }
    assert!(lobby.pending().await.is_empty());
    drop(lobby);
    drop(app);
}
