//! The [`LeaderElection`] contract: one lease per role at a time (not
//! re-entrant), roles independent of each other, a role free again once
//! its lease is released. Losing the session is adapter-specific and
//! stays in the adapter's tests.
//!
//! [`LeaderElection`]: crate::ports::LeaderElection

use crate::ports::{LeaderElection, LeaderLease};

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl LeaderElection)` with no role held.
#[macro_export]
macro_rules! leader_contract {
    ($setup:path) => {
        $crate::__contract_tests!(leader, $setup, [one_lease_per_role_until_released,]);
    };
}

/// The first `try_acquire` of a role leads and holds; a second one (even
/// from the same handle) is `None`; another role is free; after
/// `release` the role can be taken again.
pub async fn one_lease_per_role_until_released<L: LeaderElection>(leader: &L) {
    let lease = leader.try_acquire("cleanup").await.unwrap();
    let lease = lease.expect("the first caller leads");
    assert!(lease.is_held().await);
    let second = leader.try_acquire("cleanup").await.unwrap();
    assert!(second.is_none(), "not re-entrant");

    let other = leader.try_acquire("reconciler").await.unwrap();
    let other = other.expect("another role is independent");
    assert!(other.is_held().await);
    other.release().await;

    lease.release().await;
    let next = leader.try_acquire("cleanup").await.unwrap();
    let next = next.expect("free after release");
    assert!(next.is_held().await);
    next.release().await;
}
