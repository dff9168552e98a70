//! TTL cleanup (SPEC §8): containers of games stopped for longer than the
//! retention are removed through the ordinary `cleanup_container`
//! operation (source `auto_ttl`), so they are locked, recorded and
//! idempotent like any other operation.

use std::time::Duration;

use tracing::warn;

use crate::ports::{Clock, RecordQuery, RuntimeRecords};
use crate::service::operations::RuntimeService;
use crate::service::{OperationError, OperationRequest};
use crate::transition::Command;
use crate::{OpSource, RuntimeStatus};

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
