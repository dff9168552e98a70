//! The health publisher writes exactly the SPEC §7 fields and trims the
//! stream; it fails while Redis is down and recovers by itself.

use std::time::Duration;

use rtm_domain::ports::HealthPublisher;
use rtm_domain::{
    ContainerId, GameId, HealthDetails, HealthEvent, HealthSnapshot, HealthSource, HealthStatus,
};
use rtm_redis::{HealthStreamConfig, RedisHealthPublisher};
use rtm_testkit::redis::{client, redis_url, xrange, KeyGuard, RedisServer};
use time::macros::datetime;

use crate::support::eventually;

fn event(id: i64) -> HealthEvent {
    HealthEvent {
        id,
        snapshot: HealthSnapshot {
            game_id: GameId::parse("chess-42").unwrap(),
            container_id: ContainerId::new("0123456789ab"),
            status: HealthStatus::Exited,
            source: HealthSource::DockerEvent,
            details: HealthDetails::new()
                .with("exit_code", 3i64)
                .with("oom_killed", false),
            observed_at: datetime!(2026-11-28 21:53:41.123 +02:00),
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_the_contract_fields() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("health");
    let publisher =
        RedisHealthPublisher::new(&url, HealthStreamConfig::new(&stream, 1000)).unwrap();

    publisher.publish(&event(7)).await.expect("published");

    let c = client(&url).await;
    let entries = xrange(&c, &stream).await;
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].1;
    let expected: Vec<(String, String)> = [
        ("event_id", "7"),
        ("game_id", "chess-42"),
        ("container_id", "0123456789ab"),
        ("event_type", "exited"),
        ("source", "docker_event"),
        ("details", r#"{"exit_code":3,"oom_killed":false}"#),
        ("observed_at", "2026-11-28T19:53:41.123Z"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(fields, &expected);
    let details: serde_json::Value = serde_json::from_str(&fields[5].1).unwrap();
    assert!(details.is_object());
    publisher.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trims_with_approximate_maxlen() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("health");
    let publisher = RedisHealthPublisher::new(&url, HealthStreamConfig::new(&stream, 10)).unwrap();
    for i in 0..1000 {
        publisher.publish(&event(i)).await.expect("published");
    }
    let c = client(&url).await;
    let entries = xrange(&c, &stream).await;
    // `~` trims whole radix-tree nodes (100 entries by default), so the
    // length stays near the cap, never near the 1000 written.
    assert!(
        entries.len() >= 10,
        "trimmed below the cap: {}",
        entries.len()
    );
    assert!(entries.len() <= 200, "not trimmed: {}", entries.len());
    // The newest event is always kept.
    let last = &entries.last().unwrap().1;
    assert_eq!(last[0], ("event_id".to_owned(), "999".to_owned()));
    publisher.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_while_redis_is_down_and_recovers_without_being_recreated() {
    let mut server = RedisServer::start();
    let mut config = HealthStreamConfig::new("runtime:health_events", 100);
    config.client.command_timeout = Duration::from_millis(500);
    config.client.reconnect_max = Duration::from_millis(200);
    let publisher = RedisHealthPublisher::new(&server.url(), config).unwrap();
    publisher
        .publish(&event(1))
        .await
        .expect("published while up");

    server.stop();
    let err = publisher.publish(&event(2)).await;
    assert!(err.is_err(), "publish must fail while Redis is down");
    assert!(!publisher.is_connected());

    server.restart();
    eventually(
        "publish works again after restart",
        Duration::from_secs(20),
        || {
            let p = publisher.clone();
            async move { p.publish(&event(3)).await.is_ok() }
        },
    )
    .await;
    let c = client(&server.url()).await;
    let entries = xrange(&c, "runtime:health_events").await;
    // Without persistence the restarted Redis holds only what came after.
    let ids: Vec<_> = entries.iter().map(|(_, f)| f[0].1.clone()).collect();
    assert!(
        ids.contains(&"3".to_owned()),
        "published after restart: {ids:?}"
    );
    assert!(
        !ids.contains(&"2".to_owned()),
        "a publish that returned Err must not be written later: {ids:?}"
    );
    publisher.quit().await;
}
