//! Reads on a thread that opted in to its own pipelined connection
//! (`rtm_postgres::pipeline_reads_on_this_thread`, what the HTTP workers do).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rtm_domain::ports::{RuntimeRecords, UnitOfWork};
use rtm_domain::{Commit, RuntimeStatus};
use rtm_testkit::pg::TestDb;

use super::{gid, record, store};

/// The pids of the sessions this test's store opened (its schema is their
/// `application_name`).
async fn sessions(db: &TestDb) -> BTreeSet<i32> {
    let admin = db.admin_client().await.expect("admin");
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&db.schema()],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// 32 reads of `g1` at once; each must find the record.
async fn burst(store: &rtm_postgres::PgStore) {
    let game = gid("g1");
    let reads = (0..32).map(|_| store.get_record_with_health(&game));
    for found in futures_util::future::join_all(reads).await {
        let (record, _) = found.expect("read").expect("the record");
        assert_eq!(record.status, RuntimeStatus::Running);
    }
}

#[test]
fn an_opted_in_thread_reads_through_one_connection_and_survives_its_loss() {
    let setup = tokio::runtime::Runtime::new().expect("runtime");
    let (db, _cfg, store) = setup.block_on(store());
    setup.block_on(async {
        store
            .commit(Commit {
                record: Some(record("g1", RuntimeStatus::Running, 1)),
                operation: None,
                health: None,
            })
            .await
            .expect("seed");
    });
    let pooled = setup.block_on(sessions(&db));

    // A worker-like thread: a current-thread runtime that opted in.
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rtm_postgres::pipeline_reads_on_this_thread();
        rt.block_on(async {
            burst(&store).await;
            // 32 concurrent reads opened exactly one session: the thread's
            // own (through the pool they would have opened up to its size).
            let now = sessions(&db).await;
            let opened: Vec<_> = now.difference(&pooled).copied().collect();
            assert_eq!(opened.len(), 1, "pooled {pooled:?}, now {now:?}");
            assert!(pooled.is_subset(&now), "the pool's sessions are untouched");

            // The server ends that session: the next reads still succeed
            // (on the pool, then on a new local connection).
            let admin = db.admin_client().await.expect("admin");
            admin
                .execute("SELECT pg_terminate_backend($1)", &[&opened[0]])
                .await
                .expect("terminate");
            let deadline = Instant::now() + Duration::from_secs(10);
            while sessions(&db).await.contains(&opened[0]) {
                assert!(Instant::now() < deadline, "the session did not end");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            burst(&store).await;
            burst(&store).await;
            let after = sessions(&db).await;
            assert!(!after.contains(&opened[0]));
            let local: Vec<_> = after.difference(&pooled).collect();
            assert!(
                local.len() <= 2,
                "one new local session (and at most one pooled one for the fallback): {local:?}"
            );
        });
    });
    worker.join().expect("worker thread");
}
