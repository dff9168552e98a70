//! The [`GameLocks`] contract: mutual exclusion per game (case-folded),
//! a bounded wait that ends in `Timeout`, and a lock freed by `release`
//! or by dropping its guard. Waits are short: a real adapter spends them
//! in wall time, a fake on its virtual clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::ports::{GameLockGuard, GameLocks};
use crate::LockError;

use super::gid;

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl GameLocks)` giving locks nobody holds.
#[macro_export]
macro_rules! locks_contract {
    ($setup:path) => {
        $crate::__contract_tests!(
            locks,
            $setup,
            [
                a_held_lock_times_out_others_and_frees_on_release,
                a_dropped_guard_frees_the_lock,
                ids_that_differ_only_in_case_share_one_lock,
                a_waiter_gets_the_lock_when_the_holder_releases,
            ]
        );
    };
}

/// How long a contender waits for a held lock before `Timeout`.
const SHORT: Duration = Duration::from_millis(300);
/// A wait long enough for a holder that releases soon.
const LONG: Duration = Duration::from_secs(20);

/// While one holder keeps a game's lock, another acquire of it times out
/// (also with a zero wait); other games are free; after `release` the
/// lock is free again.
pub async fn a_held_lock_times_out_others_and_frees_on_release<L: GameLocks>(locks: &L) {
    let g = gid("g1");
    let held = locks.acquire(&g, SHORT).await.unwrap();
    let second = locks.acquire(&g, SHORT).await.err();
    assert!(matches!(second, Some(LockError::Timeout)), "{second:?}");
    let zero = locks.acquire(&g, Duration::ZERO).await.err();
    assert!(matches!(zero, Some(LockError::Timeout)), "{zero:?}");
    let other = locks.acquire(&gid("g2"), SHORT).await.unwrap();
    other.release().await;
    held.release().await;
    let again = locks.acquire(&g, SHORT).await.unwrap();
    again.release().await;
}

/// Dropping a guard without `release` still frees the lock.
pub async fn a_dropped_guard_frees_the_lock<L: GameLocks>(locks: &L) {
    let g = gid("g1");
    drop(locks.acquire(&g, SHORT).await.unwrap());
    // The drop may free the lock asynchronously: a long wait covers it.
    let again = locks.acquire(&g, LONG).await.unwrap();
    again.release().await;
}

/// Games whose ids differ only in case share one lock.
pub async fn ids_that_differ_only_in_case_share_one_lock<L: GameLocks>(locks: &L) {
    let held = locks.acquire(&gid("Chess"), SHORT).await.unwrap();
    let other = locks.acquire(&gid("chess"), SHORT).await.err();
    assert!(matches!(other, Some(LockError::Timeout)), "{other:?}");
    held.release().await;
    let got = locks.acquire(&gid("CHESS"), SHORT).await.unwrap();
    got.release().await;
}

/// A contender waiting within its bound gets the lock once the holder
/// releases it.
pub async fn a_waiter_gets_the_lock_when_the_holder_releases<L: GameLocks>(locks: &L) {
    let g = gid("g1");
    let held = locks.acquire(&g, SHORT).await.unwrap();
    // Both run in this task: the holder lets the waiter start waiting
    // (a few scheduler turns), then releases.
    let holder = async {
        for _ in 0..8 {
            YieldNow(false).await;
        }
        held.release().await;
    };
    let ((), got) = futures_util::future::join(holder, locks.acquire(&g, LONG)).await;
    match got {
        Ok(guard) => guard.release().await,
        Err(e) => panic!("the waiter did not get the lock: {e:?}"),
    }
}

/// Returns `Pending` once (waking itself) so the other joined future runs.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
