//! The health-publisher contract suite (`rtm_domain::contract::publisher`)
//! against the real Redis: the very cases the in-memory fake passes, each
//! on its own stream key, read back with `XRANGE`.

use rtm_domain::contract::publisher::PublisherSubject;
use rtm_domain::{GameId, HealthStatus};
use rtm_redis::{HealthStreamConfig, RedisHealthPublisher};
use rtm_testkit::redis::{client, redis_url, xrange, KeyGuard};

/// A publisher on a fresh stream, and where to read it back.
struct Subject {
    publisher: RedisHealthPublisher,
    url: String,
    stream: String,
}

impl PublisherSubject for Subject {
    type Publisher = RedisHealthPublisher;

    fn publisher(&self) -> &RedisHealthPublisher {
        &self.publisher
    }

    /// Parses the SPEC §7 fields `event_id`, `game_id`, `event_type`.
    async fn published(&self) -> Vec<(i64, GameId, HealthStatus)> {
        let c = client(&self.url).await;
        let entries = xrange(&c, &self.stream).await;
        entries
            .into_iter()
            .map(|(_, fields)| {
                let field = |name: &str| {
                    let found = fields.iter().find(|(k, _)| k == name);
                    found.map(|(_, v)| v.clone()).unwrap()
                };
                (
                    field("event_id").parse().unwrap(),
                    GameId::parse(&field("game_id")).unwrap(),
                    HealthStatus::parse(&field("event_type")).unwrap(),
                )
            })
            .collect()
    }
}

/// The key guard deletes the stream when the case ends.
async fn setup() -> (KeyGuard, Subject) {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("health");
    let publisher =
        RedisHealthPublisher::new(&url, HealthStreamConfig::new(&stream, 1000)).unwrap();
    let subject = Subject {
        publisher,
        url,
        stream,
    };
    (keys, subject)
}

rtm_domain::publisher_contract!(setup);
