//! Game locks: exclusion across replicas (two `PgLocks` = two replicas),
//! bounded waits, independence of games, no leak on drop, and 50 local
//! waiters on one game sharing one connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtm_domain::ports::{GameLockGuard, GameLocks};
use rtm_domain::{LockError, StoreError};
use rtm_postgres::{PgConfig, PgLocks};

use crate::{gid, migrated};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(20);

/// Polls `f` until it is true (bounded).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_replicas_exclude_each_other_and_time_out() {
    let (_db, cfg) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let g = gid("g1");

    let held = a.acquire(&g, SHORT).await.unwrap();
    // Another replica (the PostgreSQL stage) and this replica (the local
    // stage) both give up after the wait.
    assert!(matches!(
        b.acquire(&g, SHORT).await,
        Err(LockError::Timeout)
    ));
    assert!(matches!(
        a.acquire(&g, SHORT).await,
        Err(LockError::Timeout)
    ));
    assert!(matches!(
        b.acquire(&g, Duration::ZERO).await,
        Err(LockError::Timeout)
    ));
    // A different game is free meanwhile.
    let other = b.acquire(&gid("g2"), SHORT).await.unwrap();
    other.release().await;

    held.release().await;
    let again = b.acquire(&g, SHORT).await.unwrap();
    assert!(matches!(
        a.acquire(&g, SHORT).await,
        Err(LockError::Timeout)
    ));
    again.release().await;
    a.acquire(&g, SHORT).await.unwrap().release().await;
    // A zero wait still takes a free lock (one try).
    a.acquire(&g, Duration::ZERO).await.unwrap().release().await;

    // Timeouts left no state behind, and released connections went back.
    assert_eq!(a.tracked_games(), 0);
    assert_eq!(b.tracked_games(), 0);
    assert_eq!(a.connections_in_use(), 0);
    assert_eq!(b.connections_in_use(), 0);
}

#[tokio::test]
async fn a_waiter_gets_the_lock_when_the_holder_releases() {
    let (db, cfg) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let g = gid("g1");
    let held = a.acquire(&g, SHORT).await.unwrap();
    let waiter = tokio::spawn({
        let (b, g) = (b.clone(), g.clone());
        async move { b.acquire(&g, LONG).await }
    });
    // Wait until the waiter is queued on this game's advisory lock in
    // PostgreSQL (an ungranted lock on its key), then release.
    let admin = db.admin_client().await.unwrap();
    let key = format!("rtm:game:{}:{}", cfg.schema, g.as_str());
    eventually("the waiter queued in PostgreSQL", || {
        let (admin, key) = (&admin, key.clone());
        async move {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
                    &[&key],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == 1
        }
    })
    .await;
    assert!(!waiter.is_finished());
    held.release().await;
    waiter.await.unwrap().unwrap().release().await;
}

#[tokio::test]
async fn a_dropped_guard_frees_the_lock() {
    let (_db, cfg) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let g = gid("g1");
    let held = a.acquire(&g, SHORT).await.unwrap();
    assert!(matches!(
        b.acquire(&g, SHORT).await,
        Err(LockError::Timeout)
    ));
    drop(held); // no release: the session is closed instead
                // Other replica and this one both get it.
    b.acquire(&g, LONG).await.unwrap().release().await;
    a.acquire(&g, LONG).await.unwrap().release().await;
    assert_eq!(a.tracked_games(), 0);
}

#[tokio::test]
async fn a_cancelled_acquire_leaks_nothing() {
    let (_db, cfg) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let g = gid("g1");
    let held = b.acquire(&g, SHORT).await.unwrap();
    // Cancel an acquire while it waits in PostgreSQL.
    let r = tokio::time::timeout(Duration::from_millis(200), a.acquire(&g, LONG)).await;
    assert!(r.is_err(), "still waiting when cancelled");
    held.release().await;
    // The cancelled waiter must not have ended up holding the lock.
    b.acquire(&g, LONG).await.unwrap().release().await;
    eventually("local entry gone", || async { a.tracked_games() == 0 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_local_waiters_share_one_connection_and_exclude_each_other() {
    let (_db, mut cfg) = migrated().await;
    cfg.lock_pool_size = 3;
    cfg.pool_wait_timeout = Duration::from_secs(1);
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let g = gid("hot");
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    // Hold the lock while 50 tasks (25 per replica) queue up.
    let first = a.acquire(&g, SHORT).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let locks = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (g, inside, max_inside, done) =
                (g.clone(), inside.clone(), max_inside.clone(), done.clone());
            tokio::spawn(async move {
                let guard = locks.acquire(&g, Duration::from_secs(60)).await?;
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<_, LockError>(())
            })
        })
        .collect();
    eventually("all 50 queued", || async {
        a.tracked_games() == 1 && b.tracked_games() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // At most one connection per replica is busy for this game, so the
    // pools still serve other games.
    assert!(a.connections_in_use() <= 1, "{}", a.connections_in_use());
    assert!(b.connections_in_use() <= 1, "{}", b.connections_in_use());
    a.acquire(&gid("cold"), Duration::from_secs(5))
        .await
        .unwrap()
        .release()
        .await;
    b.acquire(&gid("cold"), Duration::from_secs(5))
        .await
        .unwrap()
        .release()
        .await;

    first.release().await;
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 50);
    assert_eq!(
        max_inside.load(Ordering::SeqCst),
        1,
        "holders never overlapped"
    );
    assert_eq!(a.tracked_games() + b.tracked_games(), 0);
}

#[tokio::test]
async fn ids_that_differ_only_in_case_share_one_lock_across_replicas() {
    let (_db, cfg) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg).unwrap(), PgLocks::new(&cfg).unwrap());
    let held = a.acquire(&gid("cx"), SHORT).await.unwrap();
    // Another replica, the other spelling: the same DNS name, the same lock.
    assert!(matches!(
        b.acquire(&gid("CX"), SHORT).await,
        Err(LockError::Timeout)
    ));
    // The same replica too (its in-process queue is keyed the same way).
    assert!(matches!(
        a.acquire(&gid("Cx"), SHORT).await,
        Err(LockError::Timeout)
    ));
    // Another game is free.
    b.acquire(&gid("cy"), SHORT).await.unwrap().release().await;
    held.release().await;
    b.acquire(&gid("CX"), SHORT).await.unwrap().release().await;
}

#[tokio::test]
async fn schemas_do_not_share_locks() {
    let (_db1, cfg1) = migrated().await;
    let (_db2, cfg2) = migrated().await;
    let (a, b) = (PgLocks::new(&cfg1).unwrap(), PgLocks::new(&cfg2).unwrap());
    let held = a.acquire(&gid("g"), SHORT).await.unwrap();
    b.acquire(&gid("g"), SHORT).await.unwrap().release().await;
    held.release().await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let mut cfg = PgConfig::new(
        "postgres://rtmanagerservice:x@127.0.0.1:1/rtmanager",
        "rtmanager",
    );
    cfg.connect_timeout = Duration::from_secs(2);
    let locks = PgLocks::new(&cfg).unwrap();
    let err = locks
        .acquire(&gid("g"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    assert_eq!(locks.tracked_games(), 0);
}
