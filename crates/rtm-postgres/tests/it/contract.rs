//! The storage, lock and leader-election ports' contract suites (`rtm_domain::contract`)
//! against PostgreSQL: the very cases the in-memory fakes pass, each on a
//! fresh migrated schema.

mod store {
    use rtm_postgres::PgStore;
    use rtm_testkit::pg::TestDb;

    async fn setup() -> (TestDb, PgStore) {
        let (db, _cfg, store) = crate::store().await;
        (db, store)
    }
    rtm_domain::store_contract!(setup);
}

mod leader {
    use rtm_postgres::PgLeader;
    use rtm_testkit::pg::TestDb;

    async fn setup() -> (TestDb, PgLeader) {
        let (db, cfg) = crate::migrated().await;
        (db, PgLeader::new(&cfg).expect("leader"))
    }
    rtm_domain::leader_contract!(setup);
}

mod locks {
    use rtm_postgres::PgLocks;
    use rtm_testkit::pg::TestDb;

    async fn setup() -> (TestDb, PgLocks) {
        let (db, cfg) = crate::migrated().await;
        (db, PgLocks::new(&cfg).expect("locks"))
    }
    rtm_domain::locks_contract!(setup);
}
