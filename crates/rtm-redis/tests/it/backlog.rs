//! What the metrics read from the Lobby stream: the age of the oldest
//! entry RTM still owes work, and the dead-letter stream's cap.

use std::time::Duration;

use fred::prelude::StreamsInterface;
use rtm_testkit::redis::{client, redis_url, xadd, KeyGuard};

use crate::support::{config, eventually, pending, spawn_consumer, TestHandler};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn oldest_waiting_age_follows_the_entry_held_in_work() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    xadd(&c, &stream, &[("op", "stop"), ("game_id", "held")]).await;

    let handler = TestHandler::default();
    handler.gate("held");
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("the entry is pending", WAIT, || async {
        pending(&running.stats).await == Some(1)
    })
    .await;
    // Held in work: its age grows past a second (polled, bounded).
    eventually("an age of at least 1 s", WAIT, || async {
        matches!(
            running.stats.oldest_waiting_age().await,
            Ok(Some(age)) if age >= Duration::from_secs(1)
        )
    })
    .await;
    let age = running
        .stats
        .oldest_waiting_age()
        .await
        .unwrap()
        .expect("an entry waits");
    assert!(age < Duration::from_secs(60), "{age:?}");

    // Handled and acknowledged: nothing waits any more.
    handler.open_gate();
    eventually("nothing waits", WAIT, || async {
        matches!(running.stats.oldest_waiting_age().await, Ok(None))
    })
    .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oldest_waiting_age_of_a_missing_stream_is_none() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let consumer =
        rtm_redis::LobbyConsumer::new(&url, config(&stream, "rtm-a"), TestHandler::default())
            .expect("consumer");
    assert!(matches!(
        consumer.stats().oldest_waiting_age().await,
        Ok(None)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dead_letter_stream_is_capped() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    // 300 malformed entries, all dead-lettered, with a cap of 10:
    // `MAXLEN ~` trims whole stream nodes (100 entries by default), so the
    // stream ends far below 300 though maybe above 10.
    const N: usize = 300;
    for _ in 0..N {
        xadd(&c, &stream, &[("op", "jump"), ("game_id", "g1")]).await;
    }
    let mut cfg = config(&stream, "rtm-a");
    cfg.dead_maxlen = 10;
    let running = spawn_consumer(&url, cfg, TestHandler::default());
    eventually("all dead-lettered", WAIT, || async {
        running.stats.dead_lettered() == N as u64
    })
    .await;
    let len: u64 = c.xlen(&dead).await.expect("XLEN");
    assert!((10..=200).contains(&len), "dead-letter stream length {len}");
    running.shutdown().await;
}
