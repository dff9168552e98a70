//! Integration tests of the PostgreSQL adapter against the real
//! PostgreSQL (`RTM_TEST_ADMIN_URL`): each test gets a fresh schema owned by
//! the service role through `rtm_testkit::pg::TestDb`, so they run in
//! parallel and prove the adapter works with least privilege.

mod migrations;

use rtm_postgres::PgConfig;
use rtm_testkit::pg::TestDb;

/// A fresh, empty schema and a config pointing at it.
async fn fresh() -> (TestDb, PgConfig) {
    let db = TestDb::new().await;
    let cfg = PgConfig::new(db.url(), db.schema());
    (db, cfg)
}

/// A fresh schema with every migration applied.
#[allow(dead_code)]
async fn migrated() -> (TestDb, PgConfig) {
    let (db, cfg) = fresh().await;
    rtm_postgres::migrate(&cfg).await.expect("migrations apply");
    (db, cfg)
}
