//! Redis restarts under a running consumer, on a private redis-server.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use rtm_testkit::redis::{client, xadd, RedisServer};

use crate::support::{config, eventually, pending, spawn_consumer, TestHandler};

const WAIT: Duration = Duration::from_secs(30);
/// A private server that keeps everything across a restart.
const AOF: [&str; 6] = [
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

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
    let mut server = RedisServer::start_with(&AOF);
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

/// Our pending entries as `(id, consumer, deliveries)`, oldest first.
async fn pending_rows(c: &fred::prelude::Client, stream: &str) -> Vec<(String, String, u64)> {
    let v: fred::prelude::Value = c
        .xpending(stream, "rtmanager", ("-", "+", 100u64))
        .await
        .expect("xpending");
    let fred::prelude::Value::Array(rows) = v else {
        panic!("xpending reply {v:?}")
    };
    rows.iter()
        .map(|r| match r {
            fred::prelude::Value::Array(cols) => (
                cols[0].as_string().expect("id"),
                cols[1].as_string().expect("consumer"),
                cols[3].as_u64().expect("deliveries"),
            ),
            other => panic!("xpending row {other:?}"),
        })
        .collect()
}

/// A read that fails may have lost a reply whose entries Redis counts as
/// delivered: after Redis is back the consumer fetches exactly its pending
/// entries it does not hold and handles them, and the entries it holds are
/// not counted as delivered again (a history re-read would: with a low
/// delivery limit a long backlog would turn into dead letters).
#[tokio::test(flavor = "multi_thread")]
async fn after_a_failed_read_unseen_entries_are_handled_and_held_ones_not_recounted() {
    let mut server = RedisServer::start_with(&AOF);
    let url = server.url();
    let stream = "lobby:runtime_commands";
    let c = client(&url).await;
    // An entry read by nobody this test runs: pending for a ghost.
    let _: Value = c
        .xgroup_create(stream, "rtmanager", "0", true)
        .await
        .expect("group");
    let unseen = xadd(&c, stream, &[("op", "stop"), ("game_id", "other")]).await;
    let _: Value = c
        .xreadgroup("rtmanager", "ghost", Some(1), None, false, stream, ">")
        .await
        .expect("read as the ghost");

    let handler = TestHandler::default();
    handler.gate("slow");
    let mut cfg = config(stream, "rtm-a");
    // Long enough that only the recovery can find the unseen entry.
    cfg.claim_idle = Duration::from_secs(300);
    let running = spawn_consumer(&url, cfg, handler.clone());
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(xadd(&c, stream, &[("op", "stop"), ("game_id", "slow")]).await);
    }
    eventually("the first slow entry running", WAIT, || async {
        handler.attempts().len() == 1
    })
    .await;
    eventually("all five delivered to rtm-a", WAIT, || async {
        pending_rows(&c, stream)
            .await
            .iter()
            .filter(|(_, consumer, _)| consumer == "rtm-a")
            .count()
            == 5
    })
    .await;
    // A reply lost in a broken connection: the entry is rtm-a's (one
    // delivery, as a read would leave it), and rtm-a never saw it.
    let _: Value = c
        .xclaim(
            stream,
            "rtmanager",
            "rtm-a",
            0,
            vec![unseen.clone()],
            None,
            None,
            None,
            false,
            true,
        )
        .await
        .expect("xclaim");

    // Down long enough for the blocking read to fail (its BLOCK plus the
    // command timeout); a shorter outage is retried inside the client.
    server.stop();
    eventually("a failed read", WAIT, || async {
        running
            .stats
            .last_error()
            .is_some_and(|e| e.starts_with("xreadgroup"))
    })
    .await;
    server.restart();
    eventually("the unseen entry handled", WAIT, || async {
        handler.calls().iter().any(|call| call.entry_id == unseen)
    })
    .await;
    let rows = pending_rows(&c, stream).await;
    assert_eq!(
        rows,
        held.iter()
            .map(|id| (id.clone(), "rtm-a".to_owned(), 1))
            .collect::<Vec<_>>(),
        "held entries stay rtm-a's with one delivery"
    );

    handler.open_gate();
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    let n = counts(&handler);
    assert_eq!(n.get(&unseen), Some(&1));
    for id in &held {
        assert_eq!(n.get(id), Some(&1), "entry {id} handled exactly once");
    }
    running.shutdown().await;
}
