//! [`FakeLocks`]: per-game locks in memory, keyed like the PostgreSQL
//! adapter's, with bounded waits measured on the [`FakeClock`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{down, lock, FakeClock};
use crate::ports::{Clock, GameLockGuard, GameLocks};
use crate::{GameId, LockError, StoreError};

/// Per-game locks in memory, with the bounded-wait contract of
/// [`GameLocks::acquire`] measured on the [`FakeClock`].
#[derive(Debug, Clone)]
pub struct FakeLocks {
    inner: Arc<Mutex<LockState>>,
    clock: FakeClock,
}

#[derive(Debug, Default)]
struct LockState {
    /// Held locks by [`GameId::folded`], like the PostgreSQL adapter.
    held: HashSet<String>,
    unavailable: bool,
    acquisitions: usize,
}

/// A held [`FakeLocks`] lock; dropping it frees the game.
#[derive(Debug)]
pub struct FakeLockGuard {
    inner: Arc<Mutex<LockState>>,
    game: GameId,
}

impl Drop for FakeLockGuard {
    fn drop(&mut self) {
        lock(&self.inner).held.remove(&self.game.folded());
    }
}

impl GameLockGuard for FakeLockGuard {
    fn release(self) -> impl Future<Output = ()> + Send {
        drop(self);
        std::future::ready(())
    }
}

impl FakeLocks {
    /// No lock held; waits are measured on `clock`.
    pub fn new(clock: FakeClock) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }

    /// Makes `acquire` fail with `LockError::Store(Unavailable)` while `down`.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }

    /// Whether `game`'s lock (case-folded, as the real one) is held.
    pub fn is_locked(&self, game: &GameId) -> bool {
        lock(&self.inner).held.contains(&game.folded())
    }

    /// How many locks were granted so far.
    pub fn acquisitions(&self) -> usize {
        lock(&self.inner).acquisitions
    }

    fn try_take(&self, game: &GameId) -> Result<Option<FakeLockGuard>, LockError> {
        let mut s = lock(&self.inner);
        if s.unavailable {
            return Err(LockError::Store(StoreError::Unavailable(down(
                "lock service",
            ))));
        }
        if !s.held.insert(game.folded()) {
            return Ok(None);
        }
        s.acquisitions += 1;
        Ok(Some(FakeLockGuard {
            inner: Arc::clone(&self.inner),
            game: game.clone(),
        }))
    }
}

impl GameLocks for FakeLocks {
    type Guard = FakeLockGuard;

    fn acquire(
        &self,
        game: &GameId,
        wait: Duration,
    ) -> impl Future<Output = Result<FakeLockGuard, LockError>> + Send {
        let this = self.clone();
        let game = game.clone();
        async move {
            // Poll in small virtual-time steps: every step yields, so a
            // holder running in another task gets to finish and release,
            // and the whole wait costs at most ~33 polls.
            let step = (wait / 32).max(Duration::from_millis(1));
            let mut waited = Duration::ZERO;
            loop {
                if let Some(guard) = this.try_take(&game)? {
                    return Ok(guard);
                }
                if waited >= wait {
                    return Err(LockError::Timeout);
                }
                this.clock.sleep(step).await;
                waited += step;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakePorts;

    fn gid(s: &str) -> GameId {
        GameId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn locks_time_out_and_free_on_drop() {
        let ports = FakePorts::new();
        let g = gid("g");
        let wait = Duration::from_secs(5);
        let held = ports.locks.acquire(&g, wait).await.unwrap();
        let before = ports.clock.now();
        let second = ports.locks.acquire(&g, wait).await;
        assert!(matches!(second, Err(LockError::Timeout)));
        assert!(
            ports.clock.now() - before >= wait,
            "the wait is measured on the fake clock"
        );
        // Another game is not blocked.
        let other = ports.locks.acquire(&gid("h"), wait).await.unwrap();
        other.release().await;
        drop(held);
        assert!(!ports.locks.is_locked(&g));
        ports.locks.acquire(&g, wait).await.unwrap().release().await;
        ports.locks.set_unavailable(true);
        assert!(matches!(
            ports.locks.acquire(&g, wait).await,
            Err(LockError::Store(StoreError::Unavailable(_)))
        ));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_the_holder_releases() {
        let ports = FakePorts::new();
        let g = gid("g");
        let held = ports
            .locks
            .acquire(&g, Duration::from_secs(1))
            .await
            .unwrap();
        let clock = ports.clock.clone();
        // The holder works for 3 virtual seconds (yielding), then releases.
        let holder = tokio::spawn(async move {
            for _ in 0..3 {
                clock.sleep(Duration::from_secs(1)).await;
            }
            held.release().await;
        });
        let got = ports.locks.acquire(&g, Duration::from_secs(5)).await;
        assert!(got.is_ok(), "{got:?}");
        holder.await.unwrap();
    }
}
