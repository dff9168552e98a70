//! Integration tests of the PostgreSQL adapter against the real
//! PostgreSQL (`RTM_TEST_ADMIN_URL`): each test gets a fresh schema owned by
//! the service role through `rtm_testkit::pg::TestDb`, so they run in
//! parallel and prove the adapter works with least privilege.

mod contract;
mod leader;
mod locks;
mod migrations;
mod reads;
mod retention;
mod store;

use rtm_domain::{
    Commit, ContainerId, GameId, HealthDetails, HealthSnapshot, HealthSource, HealthStatus,
    HealthWrite, ImageRef, NewOperation, OpKind, OpSource, Outcome, RuntimeRecord, RuntimeStatus,
};
use rtm_postgres::{PgConfig, PgStore};
use rtm_testkit::pg::TestDb;
use time::OffsetDateTime;

/// A fresh, empty schema and a config pointing at it.
async fn fresh() -> (TestDb, PgConfig) {
    let db = TestDb::new().await;
    let cfg = PgConfig::new(db.url(), db.schema());
    (db, cfg)
}

/// A fresh schema with every migration applied. The URL carries the
/// schema as `application_name`, so a test can find (and kill) exactly its
/// own sessions while other tests run beside it.
async fn migrated() -> (TestDb, PgConfig) {
    let (db, mut cfg) = fresh().await;
    cfg.url = format!("{}?application_name={}", db.url(), db.schema());
    rtm_postgres::migrate(&cfg).await.expect("migrations apply");
    (db, cfg)
}

/// A migrated schema and a store on it.
async fn store() -> (TestDb, PgConfig, PgStore) {
    let (db, cfg) = migrated().await;
    let store = PgStore::new(&cfg).expect("store");
    (db, cfg, store)
}

fn gid(s: &str) -> GameId {
    GameId::parse(s).expect("valid game id")
}

/// A fixed instant plus `secs` (microsecond precision, as stored).
fn t(secs: i64) -> OffsetDateTime {
    time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::seconds(secs)
}

fn record(game: &str, status: RuntimeStatus, last_op: i64) -> RuntimeRecord {
    RuntimeRecord {
        game_id: gid(game),
        status,
        container_id: ContainerId::new(format!("c-{game}")),
        image_ref: Some(ImageRef::parse("rtm.local/engine-stub:1.0.0").expect("image")),
        engine_endpoint: format!("http://rtm-{game}:8080"),
        state_path: format!("/var/lib/rtmanager/games/{game}"),
        docker_network: "rtm-engines".into(),
        started_at: Some(t(0)),
        stopped_at: None,
        removed_at: None,
        last_op_at: t(last_op),
        created_at: t(0),
    }
}

fn op(game: &str, kind: OpKind, source: OpSource, source_ref: &str, started: i64) -> NewOperation {
    NewOperation {
        game_id: gid(game),
        kind,
        source,
        source_ref: (!source_ref.is_empty()).then(|| source_ref.to_owned()),
        image_ref: Some("rtm.local/engine-stub:1.0.0".into()),
        container_id: ContainerId::new(format!("c-{game}")),
        request: None,
        outcome: Outcome::Success,
        error: None,
        started_at: t(started),
        finished_at: t(started + 1),
    }
}

fn snap(game: &str, status: HealthStatus, at: i64) -> HealthSnapshot {
    HealthSnapshot {
        game_id: gid(game),
        container_id: ContainerId::new(format!("c-{game}")),
        status,
        source: HealthSource::Probe,
        details: HealthDetails::new()
            .with("attempt", 3i64)
            .with("error", "refused"),
        observed_at: t(at),
    }
}

fn commit_op(op: NewOperation) -> Commit {
    Commit {
        record: None,
        operation: Some(op),
        health: None,
    }
}

fn commit_health(s: HealthSnapshot, publish: bool) -> Commit {
    Commit {
        record: None,
        operation: None,
        health: Some(HealthWrite {
            snapshot: s,
            publish,
        }),
    }
}
