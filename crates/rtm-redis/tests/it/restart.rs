//! Redis restarts under a running consumer, on a private redis-server.

use std::collections::HashMap;
use std::time::Duration;

use rtm_testkit::redis::{client, xadd, RedisServer};

use crate::support::{config, eventually, pending, spawn_consumer, TestHandler};

const WAIT: Duration = Duration::from_secs(30);

fn counts(handler: &TestHandler) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for c in handler.calls() {
        *m.entry(c.entry_id).or_insert(0) += 1;
    }
    m
}

/// Without persistence a restart loses the stream and the group: what Redis
/// held is gone (RTM cannot process what no longer exists), but the consumer
/// must notice, re-create the group and process everything added after.
#[tokio::test(flavor = "multi_thread")]
async fn restart_without_persistence_recreates_the_group() {
    let mut server = RedisServer::start();
    let url = server.url();
    let stream = "lobby:runtime_commands";
    let c = client(&url).await;
    let before = xadd(&c, stream, &[("op", "stop"), ("game_id", "g1")]).await;

    let handler = TestHandler::default();
    let running = spawn_consumer(&url, config(stream, "rtm-a"), handler.clone());
    eventually("first entry handled", WAIT, || async {
        handler.calls().len() == 1
    })
    .await;
    eventually("acked", WAIT, || async { running.stats.acked() == 1 }).await;

    server.stop();
    eventually("consumer sees the outage", WAIT, || async {
        !running.stats.connected()
    })
    .await;
    server.restart();

    let mut after = Vec::new();
    for g in ["g1", "g2", "g3"] {
        after.push(xadd(&c, stream, &[("op", "restart"), ("game_id", g)]).await);
    }
    eventually("entries after restart handled", WAIT, || async {
        handler.calls().len() == 4
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    assert!(running.stats.connected());

    let n = counts(&handler);
    assert_eq!(n.get(&before), Some(&1));
    for id in &after {
        assert_eq!(n.get(id), Some(&1), "entry {id} handled once");
    }
    running.shutdown().await;
}

/// With an append-only file nothing is lost and nothing is handled twice,
/// even for an entry whose acknowledgement had to wait for Redis to return.
#[tokio::test(flavor = "multi_thread")]
async fn restart_with_aof_loses_nothing_and_doubles_nothing() {
    let aof = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let mut server = RedisServer::start_with(&aof);
    let url = server.url();
    let stream = "lobby:runtime_commands";
    let c = client(&url).await;
    let mut ids = Vec::new();
    for g in ["g1", "g2", "g3"] {
        ids.push(xadd(&c, stream, &[("op", "stop"), ("game_id", g)]).await);
    }
    ids.push(xadd(&c, stream, &[("op", "stop"), ("game_id", "slow")]).await);

    let handler = TestHandler::default();
    handler.gate("slow");
    let running = spawn_consumer(&url, config(stream, "rtm-a"), handler.clone());
    eventually("fast entries acked", WAIT, || async {
        running.stats.acked() == 3
    })
    .await;
    eventually("slow entry running", WAIT, || async {
        handler.attempts().len() == 4
    })
    .await;

    server.stop();
    // The operation finishes while Redis is down: its XACK fails and is
    // retried until Redis is back.
    handler.open_gate();
    eventually("slow call returned", WAIT, || async {
        handler.calls().len() == 4
    })
    .await;
    server.restart();

    for g in ["g1", "g4"] {
        ids.push(xadd(&c, stream, &[("op", "restart"), ("game_id", g)]).await);
    }
    eventually("all handled", WAIT, || async { handler.calls().len() >= 6 }).await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    // Give a late duplicate (if any) the time of a few reads to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let n = counts(&handler);
    assert_eq!(n.len(), ids.len(), "handled: {n:?}");
    for id in &ids {
        assert_eq!(n.get(id), Some(&1), "entry {id} handled exactly once");
    }
    assert_eq!(running.stats.acked(), 6);
    running.shutdown().await;
}
