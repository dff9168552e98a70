//! [`PgLocks`]: per-game mutual exclusion across RTM replicas with
//! PostgreSQL session advisory locks.
//!
//! Design (see docs/database.md):
//! - The lock key is `hashtextextended('rtm:game:<schema>:<folded id>', 0)`,
//!   so deployments in different schemas of one database never collide.
//!   The id is folded to lower case (`GameId::folded`): ids that differ
//!   only in case share one DNS name, so they share one lock and their
//!   collision check cannot race (SPEC §3).
//! - A held lock pins one connection of a dedicated pool (the store's pool
//!   stays free for the operation's own writes). `lock_pool_size` therefore
//!   bounds how many games one replica operates on at once.
//! - Waiting is bounded: first an uncontended `pg_try_advisory_lock`; when
//!   taken, `pg_advisory_lock` under `lock_timeout` = the remaining budget,
//!   whose SQLSTATE 55P03 becomes [`LockError::Timeout`].
//! - Waiters for the same game in this process queue on an in-process
//!   mutex first (within the same budget), so 50 requests for one game hold
//!   one connection, not 50. Map entries are removed when nobody uses them.
//! - Release unlocks and returns the connection to the pool. A guard
//!   dropped without release (panic, cancelled task) detaches its
//!   connection from the pool and closes it: PostgreSQL ends the session
//!   and with it the lock. Pooled connections also run
//!   `pg_advisory_unlock_all()` before reuse, as a second line of defence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use deadpool_postgres::{Object, Pool, RecyclingMethod, Timeouts};
use rtm_domain::ports::{GameLockGuard, GameLocks};
use rtm_domain::{GameId, LockError};
use tokio::sync::{Mutex as TokioMutex, OwnedMutexGuard};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use crate::error::{pool_err, store_err};
use crate::store::build_pool;
use crate::{PgConfig, PgError};

type LocalMap = Arc<StdMutex<HashMap<String, Arc<TokioMutex<()>>>>>;

/// Game locks of one replica. Cheap to clone (shares the pool and the
/// in-process queue).
#[derive(Clone)]
pub struct PgLocks {
    pool: Pool,
    schema: Arc<str>,
    local: LocalMap,
    connect_timeout: Duration,
}

impl std::fmt::Debug for PgLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLocks")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgLocks {
    /// Builds the lock service with its own pool of `lock_pool_size`
    /// connections (opened lazily).
    pub fn new(config: &PgConfig) -> Result<Self, PgError> {
        // Reset anything a previous holder may have left on the session
        // before a connection is reused (lock_timeout after an error path,
        // a lock after a failed unlock).
        let recycle =
            RecyclingMethod::Custom("RESET lock_timeout; SELECT pg_advisory_unlock_all()".into());
        Ok(Self {
            pool: build_pool(config, config.lock_pool_size, recycle)?,
            schema: Arc::from(config.schema.as_str()),
            local: LocalMap::default(),
            connect_timeout: config.connect_timeout,
        })
    }

    /// How many games have local waiters or holders right now (entries are
    /// dropped as soon as a game is unused; exposed for tests and metrics).
    pub fn tracked_games(&self) -> usize {
        lock_map(&self.local).len()
    }

    /// Connections of the lock pool currently handed out (held locks and
    /// waiters at the PostgreSQL stage).
    pub fn connections_in_use(&self) -> usize {
        let s = self.pool.status();
        s.size.saturating_sub(s.available)
    }

    fn key(&self, game: &GameId) -> String {
        format!("rtm:game:{}:{}", self.schema, game.folded())
    }
}

/// The map is only ever held for a few non-async statements, so a
/// poisoned lock (a panic there) leaves consistent data: keep using it.
fn lock_map(map: &LocalMap) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TokioMutex<()>>>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// This task's turn for one game among the waiters of this process.
struct LocalTurn {
    map: LocalMap,
    key: String,
    slot: Option<Arc<TokioMutex<()>>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl LocalTurn {
    async fn wait(map: &LocalMap, key: &str, deadline: Instant) -> Result<Self, LockError> {
        let slot = lock_map(map).entry(key.to_owned()).or_default().clone();
        let mut turn = LocalTurn {
            map: map.clone(),
            key: key.to_owned(),
            slot: Some(slot.clone()),
            guard: None,
        };
        match tokio::time::timeout_at(deadline, slot.lock_owned()).await {
            Ok(guard) => {
                turn.guard = Some(guard);
                Ok(turn)
            }
            // `turn` drops here and removes the entry if it was the last user.
            Err(_) => Err(LockError::Timeout),
        }
    }
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        self.guard.take();
        self.slot.take();
        // Clones are only made under the map lock, so a count of 1 (the
        // map's own) seen under it means nobody waits or holds.
        let mut map = lock_map(&self.map);
        if map
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// A held game lock. Release it with [`GameLockGuard::release`]; dropping
/// it closes its session instead, which frees the lock too.
pub struct PgLockGuard {
    conn: Option<Object>,
    key: String,
    // Dropped after `conn` is dealt with (fields drop after `Drop::drop`),
    // so the next local waiter starts once the session lock is released.
    _turn: LocalTurn,
}

impl std::fmt::Debug for PgLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockGuard")
            .field("key", &self.key)
            .finish()
    }
}

impl PgLockGuard {
    /// Gives the connection back to the pool untouched (it holds no lock).
    fn disarm(mut self) {
        drop(self.conn.take());
    }
}

impl Drop for PgLockGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detach from the pool and drop: the connection task is aborted,
            // the socket closes and PostgreSQL ends the session, releasing
            // its advisory locks. No await needed, so this works in Drop.
            drop(Object::take(conn));
        }
    }
}

impl GameLockGuard for PgLockGuard {
    async fn release(mut self) {
        let Some(conn) = self.conn.take() else { return };
        let unlocked = conn
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await;
        match unlocked {
            Ok(row) if row.try_get::<_, bool>(0).unwrap_or(false) => drop(conn),
            other => {
                // Unsure whether the lock is gone: end the session, which is.
                tracing::warn!(key = %self.key, result = ?other.map(|_| ()), "advisory unlock failed; closing the session");
                drop(Object::take(conn));
            }
        }
    }
}

impl GameLocks for PgLocks {
    type Guard = PgLockGuard;

    async fn acquire(&self, game: &GameId, wait: Duration) -> Result<PgLockGuard, LockError> {
        let deadline = Instant::now() + wait;
        let key = self.key(game);
        let turn = LocalTurn::wait(&self.local, &key, deadline).await?;

        // The pool wait shares the budget, with a small floor so a waiter
        // whose turn came at the last moment can still take a free slot.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeouts = Timeouts {
            wait: Some(remaining.max(Duration::from_millis(50))),
            create: Some(self.connect_timeout),
            recycle: Some(self.connect_timeout),
        };
        let conn = self
            .pool
            .timeout_get(&timeouts)
            .await
            .map_err(|e| LockError::Store(pool_err(e)))?;
        // From here on, a cancelled or failed acquire drops the guard and so
        // closes the session: a lock granted late can never leak.
        let guard = PgLockGuard {
            conn: Some(conn),
            key,
            _turn: turn,
        };
        let conn = guard.conn.as_ref().ok_or_else(|| {
            LockError::Store(rtm_domain::StoreError::Corrupt(
                "lock connection vanished".into(),
            ))
        })?;

        let got: bool = conn
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&guard.key],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| LockError::Store(store_err(e)))?;
        if got {
            return Ok(guard);
        }

        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining < Duration::from_millis(1) {
            guard.disarm();
            return Err(LockError::Timeout);
        }
        // lock_timeout takes whole milliseconds; 0 would mean "no limit".
        let ms = remaining.as_millis().clamp(1, i32::MAX as u128).to_string();
        conn.query_one("SELECT set_config('lock_timeout', $1, false)", &[&ms])
            .await
            .map_err(|e| LockError::Store(store_err(e)))?;
        let locked = conn
            .query_one(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&guard.key],
            )
            .await;
        let timed_out = match &locked {
            Ok(_) => false,
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => true,
            Err(_) => false,
        };
        if let Err(e) = locked {
            if !timed_out {
                return Err(LockError::Store(store_err(e)));
            }
        }
        // Put the session back to its default; if that fails the guard's
        // drop closes the session rather than reuse a half-reset one.
        conn.batch_execute("RESET lock_timeout")
            .await
            .map_err(|e| LockError::Store(store_err(e)))?;
        if timed_out {
            guard.disarm();
            return Err(LockError::Timeout);
        }
        Ok(guard)
    }
}
