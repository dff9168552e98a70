//! [`FakeLeader`]: in-memory leader election, one lease per role, with a
//! switch that revokes a lease as a lost session would.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::{down, lock};
use crate::ports::{LeaderElection, LeaderLease};
use crate::StoreError;

/// In-memory leader election: one lease per role at a time.
#[derive(Debug, Clone, Default)]
pub struct FakeLeader {
    inner: Arc<Mutex<LeaderState>>,
}

#[derive(Debug, Default)]
struct LeaderState {
    /// Role → generation of the current lease; a revoked lease's
    /// generation no longer matches.
    held: HashMap<String, u64>,
    generation: u64,
    unavailable: bool,
}

/// A lease of [`FakeLeader`].
#[derive(Debug)]
pub struct FakeLease {
    inner: Arc<Mutex<LeaderState>>,
    role: String,
    generation: u64,
}

impl FakeLeader {
    /// No role held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes leadership of `role` away from its holder (a lost session).
    pub fn revoke(&self, role: &str) {
        lock(&self.inner).held.remove(role);
    }

    /// Makes `try_acquire` fail as an unreachable database does while
    /// `down`.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }
}

impl LeaderElection for FakeLeader {
    type Lease = FakeLease;

    fn try_acquire(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<FakeLease>, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = if s.unavailable {
            Err(StoreError::Unavailable(down("database")))
        } else if s.held.contains_key(role) {
            Ok(None)
        } else {
            s.generation += 1;
            let generation = s.generation;
            s.held.insert(role.to_owned(), generation);
            Ok(Some(FakeLease {
                inner: Arc::clone(&self.inner),
                role: role.to_owned(),
                generation,
            }))
        };
        std::future::ready(r)
    }
}

impl FakeLease {
    fn held(&self) -> bool {
        let s = lock(&self.inner);
        !s.unavailable && s.held.get(&self.role) == Some(&self.generation)
    }
}

impl Drop for FakeLease {
    fn drop(&mut self) {
        let mut s = lock(&self.inner);
        if s.held.get(&self.role) == Some(&self.generation) {
            s.held.remove(&self.role);
        }
    }
}

impl LeaderLease for FakeLease {
    fn is_held(&self) -> impl Future<Output = bool> + Send {
        std::future::ready(self.held())
    }

    fn release(self) -> impl Future<Output = ()> + Send {
        drop(self);
        std::future::ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leader_leases_are_exclusive_and_revocable() {
        let leader = FakeLeader::new();
        let lease = leader.try_acquire("cleanup").await.unwrap().unwrap();
        assert!(leader.try_acquire("cleanup").await.unwrap().is_none());
        assert!(lease.is_held().await);
        leader.revoke("cleanup");
        assert!(!lease.is_held().await);
        let again = leader.try_acquire("cleanup").await.unwrap().unwrap();
        drop(lease); // the stale lease must not free the new holder's role
        assert!(again.is_held().await);
    }
}
