//! The [`HealthPublisher`] contract: an `Ok` publish is appended to the
//! stream exactly once, in call order, with the event as given.

use std::future::Future;

use crate::ports::HealthPublisher;
use crate::{
    ContainerId, GameId, HealthDetails, HealthEvent, HealthSnapshot, HealthSource, HealthStatus,
};

use super::t;

/// What a publisher case needs: the publisher and a way to read back
/// what reached the stream.
pub trait PublisherSubject: Send + Sync {
    /// The implementation under test.
    type Publisher: HealthPublisher;

    /// The publisher the cases drive.
    fn publisher(&self) -> &Self::Publisher;

    /// `(event id, game id, status)` of every entry on the stream, oldest
    /// first.
    fn published(&self) -> impl Future<Output = Vec<(i64, GameId, HealthStatus)>> + Send;
}

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl PublisherSubject)` on an empty stream.
#[macro_export]
macro_rules! publisher_contract {
    ($setup:path) => {
        $crate::__contract_tests!(publisher, $setup, [each_publish_is_appended_once_in_order,]);
    };
}

fn event(id: i64, game: &str, status: HealthStatus) -> HealthEvent {
    HealthEvent {
        id,
        snapshot: HealthSnapshot {
            game_id: GameId::parse(game).unwrap(),
            container_id: ContainerId::new("0123456789ab"),
            status,
            source: HealthSource::DockerEvent,
            details: HealthDetails::new().with("exit_code", 3i64),
            observed_at: t(id),
        },
    }
}

/// Every `Ok` publish is on the stream once, in the order published
/// (the same event published twice is two entries: the relay's
/// at-least-once delivery is the consumer's to deduplicate).
pub async fn each_publish_is_appended_once_in_order<S: PublisherSubject>(s: &S) {
    assert!(s.published().await.is_empty());
    let events = [
        event(3, "g1", HealthStatus::Exited),
        event(1, "g2", HealthStatus::Healthy),
        event(7, "g1", HealthStatus::Oom),
    ];
    for e in &events {
        s.publisher().publish(e).await.unwrap();
    }
    s.publisher().publish(&events[2]).await.unwrap();
    let want: Vec<_> = events
        .iter()
        .chain(std::iter::once(&events[2]))
        .map(|e| (e.id, e.snapshot.game_id.clone(), e.snapshot.status))
        .collect();
    assert_eq!(s.published().await, want);
}
