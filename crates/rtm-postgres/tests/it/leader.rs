//! Leader election: one leader per role and schema, leadership lost with
//! the session, and taken over by another replica afterwards.

use std::time::{Duration, Instant};

use rtm_domain::ports::{LeaderElection, LeaderLease};
use rtm_postgres::PgLeader;

use crate::migrated;

#[tokio::test]
async fn only_one_leader_per_role_until_released() {
    let (_db, cfg) = migrated().await;
    let (a, b) = (PgLeader::new(&cfg).unwrap(), PgLeader::new(&cfg).unwrap());
    let lease = a
        .try_acquire("cleanup")
        .await
        .unwrap()
        .expect("first leads");
    assert!(lease.is_held().await);
    assert!(b.try_acquire("cleanup").await.unwrap().is_none());
    assert!(
        a.try_acquire("cleanup").await.unwrap().is_none(),
        "not re-entrant"
    );
    // Another role is independent.
    let other = b
        .try_acquire("reconciler")
        .await
        .unwrap()
        .expect("other role");
    other.release().await;

    lease.release().await;
    let next = b
        .try_acquire("cleanup")
        .await
        .unwrap()
        .expect("free after release");
    assert!(next.is_held().await);
    drop(next);
    // A dropped lease frees the role too (its session closes).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = a.try_acquire("cleanup").await.unwrap() {
            assert!(l.is_held().await);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dropped lease never freed the role"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn losing_the_session_loses_leadership_and_another_takes_over() {
    let (db, cfg) = migrated().await;
    let (a, b) = (PgLeader::new(&cfg).unwrap(), PgLeader::new(&cfg).unwrap());
    let lease = a.try_acquire("reconciler").await.unwrap().expect("leads");
    assert!(lease.is_held().await);
    assert!(b.try_acquire("reconciler").await.unwrap().is_none());

    // Kill the leader's session behind its back (only this test uses this
    // application_name).
    let admin = db.admin_client().await.unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&cfg.schema],
        )
        .await
        .unwrap()
        .get(0);
    // At least the lease's session (sessions that already closed may still
    // be ending and be counted too).
    assert!(killed >= 1, "the lease's session was found");

    let deadline = Instant::now() + Duration::from_secs(10);
    while lease.is_held().await {
        assert!(Instant::now() < deadline, "is_held stayed true");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let next = loop {
        if let Some(l) = b.try_acquire("reconciler").await.unwrap() {
            break l;
        }
        assert!(Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(next.is_held().await);
    assert!(!lease.is_held().await);
    lease.release().await; // harmless on a dead session
    next.release().await;
}
