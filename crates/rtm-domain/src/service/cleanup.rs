//! TTL cleanup (SPEC §8): containers of games stopped for longer than the
//! retention are removed through the ordinary `cleanup_container`
//! operation (source `auto_ttl`), so they are locked, recorded and
//! idempotent like any other operation.
//!
//! Retention (bounded growth): the same worker deletes audit rows older
//! than `RTM_AUDIT_RETENTION` in bounded batches (never a live game's last
//! row), forgets `removed` games older than `RTM_REMOVED_RETENTION`
//! (record and health snapshot) and, only when the operator opted in with
//! `RTM_STATE_RETENTION`, deletes such a game's state directory first.

use std::time::Duration;

use tracing::warn;

use crate::ports::{
    Clock, ContainerRuntime, GameLockGuard, GameLocks, RecordQuery, Retention, RuntimeRecords,
};
use crate::service::operations::RuntimeService;
use crate::service::{OperationError, OperationRequest};
use crate::transition::Command;
use crate::{LockError, OpSource, RuntimeStatus};

/// What one cleanup pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupSummary {
    /// Containers removed (records now `removed`).
    pub removed: u32,
    /// Games skipped: busy, or the operation failed (retried next pass).
    pub skipped: u32,
}

/// At most this many games per pass, so one pass stays short; the rest
/// wait for the next tick.
const MAX_PER_PASS: u32 = 500;

/// Audit rows deleted per statement, and statements per pass: a pass
/// deletes at most 50,000 rows, in statements short enough not to hold
/// back concurrent writers; a larger backlog drains over several passes.
const AUDIT_BATCH: u32 = 5_000;
const AUDIT_BATCHES_PER_PASS: u32 = 10;

/// How long data is kept (from `RTM_*_RETENTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `RTM_AUDIT_RETENTION`: operation rows older than this are deleted.
    pub audit: Duration,
    /// `RTM_REMOVED_RETENTION`: `removed` games whose last operation is
    /// older than this lose their record and health snapshot.
    pub removed: Duration,
    /// `RTM_STATE_RETENTION`: when set, a `removed` game's state directory
    /// is deleted once its last operation is older than this *and* older
    /// than `removed` (the directory goes with the record, so the record is
    /// never forgotten while its data still exists). `None`: never.
    pub state: Option<Duration>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionSummary {
    /// Operation rows deleted.
    pub operations: u64,
    /// Removed games forgotten (record and snapshot).
    pub games: u32,
    /// State directories deleted.
    pub states: u32,
    /// Removed games left for the next pass (busy, or their state could
    /// not be deleted).
    pub skipped: u32,
}

impl<P: crate::ports::Ports> RuntimeService<P> {
    /// Removes the containers of games `stopped` with `last_op_at` older
    /// than `retention`.
    pub async fn cleanup_expired(
        &self,
        retention: Duration,
    ) -> Result<CleanupSummary, OperationError> {
        let cutoff = self.adapters.clock.now() - retention;
        let expired = self
            .adapters
            .store
            .list_records(&RecordQuery {
                status: Some(RuntimeStatus::Stopped),
                last_op_before: Some(cutoff),
                after: None,
                limit: MAX_PER_PASS,
            })
            .await?;
        let mut summary = CleanupSummary::default();
        for record in expired {
            // A stopped game whose patch rollback did not finish is the
            // reconciler's to restart, not garbage.
            if self.rollback_incomplete(&record.game_id).await? {
                summary.skipped += 1;
                continue;
            }
            let req =
                OperationRequest::new(record.game_id.clone(), Command::Cleanup, OpSource::AutoTtl);
            match self.execute(req).await {
                Ok(outcome) if outcome.succeeded() => summary.removed += 1,
                Ok(_) => summary.skipped += 1,
                Err(OperationError::InProgress(_)) => summary.skipped += 1,
                Err(e) => {
                    warn!(game_id = %record.game_id, error = %e, "ttl cleanup stopped early");
                    return Err(e);
                }
            }
        }
        Ok(summary)
    }
}

impl<P: crate::ports::Ports> RuntimeService<P> {
    /// One retention pass (see the module docs). Errors of the store end
    /// the pass (retried next tick); a state directory that cannot be
    /// deleted keeps its game for the next pass.
    pub async fn purge_expired(
        &self,
        retention: &RetentionConfig,
    ) -> Result<RetentionSummary, OperationError> {
        let now = self.adapters.clock.now();
        let store = &self.adapters.store;
        let mut summary = RetentionSummary::default();

        let audit_cutoff = now - retention.audit;
        for _ in 0..AUDIT_BATCHES_PER_PASS {
            let n = store
                .delete_operations_before(audit_cutoff, AUDIT_BATCH)
                .await?;
            summary.operations += n;
            if n < u64::from(AUDIT_BATCH) {
                break;
            }
        }

        // With state removal on, a game is forgotten only once both
        // retentions passed: its record is how RTM finds the directory.
        let age = match retention.state {
            Some(state) => retention.removed.max(state),
            None => retention.removed,
        };
        let cutoff = now - age;
        let expired = store
            .list_records(&RecordQuery {
                status: Some(RuntimeStatus::Removed),
                last_op_before: Some(cutoff),
                after: None,
                limit: MAX_PER_PASS,
            })
            .await?;
        for record in expired {
            // Under the game's lock, so no operation (a new start reusing
            // the state directory) runs between the check and the delete.
            let guard = match self
                .adapters
                .locks
                .acquire(&record.game_id, self.config.lock_wait)
                .await
            {
                Ok(guard) => guard,
                Err(LockError::Timeout) => {
                    summary.skipped += 1;
                    continue;
                }
                Err(LockError::Store(e)) => return Err(e.into()),
            };
            let result = self.forget_removed(&record, retention, cutoff).await;
            guard.release().await;
            match result {
                Ok(Forgot::Game { state }) => {
                    summary.games += 1;
                    summary.states += u32::from(state);
                }
                Ok(Forgot::Nothing) => {}
                Ok(Forgot::Kept) => summary.skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(summary)
    }

    async fn forget_removed(
        &self,
        record: &crate::RuntimeRecord,
        retention: &RetentionConfig,
        cutoff: time::OffsetDateTime,
    ) -> Result<Forgot, OperationError> {
        // Re-read under the lock: the game may have been started again.
        let current = self.adapters.store.get_record(&record.game_id).await?;
        let Some(current) = current else {
            return Ok(Forgot::Nothing);
        };
        if current.status != RuntimeStatus::Removed || current.last_op_at >= cutoff {
            return Ok(Forgot::Nothing);
        }
        let mut state = false;
        if retention.state.is_some() && !current.state_path.is_empty() {
            if let Err(e) = self
                .adapters
                .runtime
                .remove_state(&current.state_path)
                .await
            {
                warn!(game_id = %current.game_id, error = %e,
                    "state directory not deleted; retried next pass");
                return Ok(Forgot::Kept);
            }
            state = true;
        }
        let deleted = self
            .adapters
            .store
            .delete_removed_game(&current.game_id, cutoff)
            .await?;
        Ok(if deleted {
            Forgot::Game { state }
        } else {
            Forgot::Nothing
        })
    }
}

/// What [`RuntimeService::forget_removed`] did with one game.
enum Forgot {
    /// Record and snapshot deleted (and the state directory when `state`).
    Game { state: bool },
    /// The game no longer qualifies (started again, or already gone).
    Nothing,
    /// Kept for the next pass (its state could not be deleted).
    Kept,
}
