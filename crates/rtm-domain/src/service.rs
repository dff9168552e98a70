//! The operations service: carries out SPEC §5's operations through the
//! ports, under the per-game lock, with one operation-log row per
//! operation written in the same transaction as the record change.

mod cleanup;
mod logs;
mod operations;
mod reconcile;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use cleanup::{CleanupSummary, RetentionConfig, RetentionSummary};
pub use logs::{LogFollow, LogsError};
pub use operations::RuntimeService;

use crate::transition::Command;
use crate::{
    ErrorCode, GameId, OpError, OpSource, OperationEntry, Outcome, RuntimeRecord, StoreError,
};

/// Settings of the operations service (from `RTM_*`).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `RTM_IMAGE_ALLOWLIST`.
    pub allowlist: crate::Allowlist,
    /// `RTM_LOCK_WAIT`: how long an operation waits for the game's lock.
    pub lock_wait: Duration,
    /// `RTM_STOP_TIMEOUT`: default grace period of stop and restart.
    pub stop_timeout: Duration,
    /// `RTM_PATCH_HEALTH_TIMEOUT`: how long a patched engine has to answer
    /// its health probe before the patch is rolled back.
    pub patch_health_timeout: Duration,
    /// How often the patch health gate probes while it waits.
    pub patch_probe_interval: Duration,
    /// `RTM_ENGINE_PORT`.
    pub engine_port: u16,
    /// `RTM_STATE_ROOT`: host directory holding `<game_id>/` state dirs.
    pub state_root: String,
    /// `RTM_DOCKER_NETWORK`.
    pub network: String,
}

impl ServiceConfig {
    /// `http://rtm-<game_id>:<port>`.
    pub fn engine_endpoint(&self, game: &GameId) -> String {
        format!("http://{}:{}", game.container_name(), self.engine_port)
    }

    /// `<state_root>/<game_id>`.
    pub fn state_path(&self, game: &GameId) -> String {
        format!("{}/{}", self.state_root.trim_end_matches('/'), game)
    }
}

/// One operation to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRequest {
    /// The game to operate on.
    pub game_id: GameId,
    /// What to do.
    pub command: Command,
    /// Who asks: recorded in the row, and the scope of `source_ref`.
    pub source: OpSource,
    /// Idempotency reference: the Lobby entry id or the REST
    /// `Idempotency-Key`. A reference that already has a finished row for
    /// this game and source returns that row's result without acting.
    pub source_ref: Option<String>,
    /// Grace period for stop/restart; `RTM_STOP_TIMEOUT` when `None`.
    pub stop_timeout: Option<Duration>,
    /// Patch only: skip the semantic-version rule (admin surface).
    pub force: bool,
    /// The caller's correlation id, copied into logs.
    pub request_id: Option<String>,
}

impl OperationRequest {
    /// A request with no reference, timeout, force or request id.
    pub fn new(game_id: GameId, command: Command, source: OpSource) -> Self {
        Self {
            game_id,
            command,
            source,
            source_ref: None,
            stop_timeout: None,
            force: false,
            request_id: None,
        }
    }

    /// The request in a canonical text form: game, operation and every
    /// parameter that changes what it does. An idempotency reference
    /// replays only a request with the same fingerprint (SPEC §5).
    ///
    /// ```
    /// use rtm_domain::service::OperationRequest;
    /// use rtm_domain::transition::Command;
    /// use rtm_domain::{GameId, OpSource};
    /// let g = GameId::parse("g1").unwrap();
    /// let stop = OperationRequest::new(g.clone(), Command::Stop, OpSource::GmRest);
    /// assert_eq!(stop.fingerprint(), "stop game=g1 image= stop_timeout_ms= force=false");
    /// let restart = OperationRequest::new(g, Command::Restart, OpSource::GmRest);
    /// assert_ne!(stop.fingerprint(), restart.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        let image = match &self.command {
            Command::Start { image } | Command::Patch { image } => image.to_string(),
            Command::Stop | Command::Restart | Command::Cleanup => String::new(),
        };
        let timeout = self
            .stop_timeout
            .map(|t| t.as_millis().to_string())
            .unwrap_or_default();
        format!(
            "{} game={} image={image} stop_timeout_ms={timeout} force={}",
            operations::op_kind(&self.command),
            self.game_id,
            self.force
        )
    }
}

/// The result of an operation that was recorded (or replayed): success or
/// a failure with a stable code. Either way exactly one row exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationOutcome {
    /// The operation-log row: the new one, or the earlier one on replay.
    pub operation: OperationEntry,
    /// The game's record after the operation (current on replay).
    pub record: Option<RuntimeRecord>,
    /// True when `source_ref` had already been processed.
    pub replayed: bool,
}

impl OperationOutcome {
    /// Whether the recorded operation succeeded.
    pub fn succeeded(&self) -> bool {
        self.operation.outcome == Outcome::Success
    }

    /// The recorded failure, if the operation failed.
    pub fn error(&self) -> Option<&OpError> {
        self.operation.error.as_ref()
    }
}

/// An operation that could not even be recorded: nothing was done.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Another operation holds the game's lock beyond `RTM_LOCK_WAIT`.
    #[error("another operation on game {0} is in progress")]
    InProgress(GameId),
    /// PostgreSQL failed; nothing was done to the runtime, or what was
    /// done is left for the reconciler (logged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container runtime could not be listed (reconcile only;
    /// operations record runtime failures instead).
    #[error(transparent)]
    Runtime(crate::RuntimeError),
    /// The idempotency reference already names a different request (row
    /// `operation_id`); nothing was done and nothing recorded, since the
    /// reference cannot name two rows.
    #[error("idempotency reference {source_ref:?} was already used for another request (operation {operation_id}: {recorded})")]
    KeyReused {
        /// The reused reference.
        source_ref: String,
        /// The row it already names.
        operation_id: i64,
        /// The fingerprint that row was recorded for.
        recorded: String,
    },
}

/// What one reconcile pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Games looked at (every game with a container or a live record).
    pub games: u32,
    /// Of those, games whose listed container disagreed with their record,
    /// checked again under their lock.
    pub checked: u32,
    /// Running containers adopted (`reconcile_adopt`).
    pub adopted: u32,
    /// Extra containers removed (`reconcile_dispose`).
    pub disposed: u32,
    /// Records moved to `removed` because their container vanished.
    pub removed: u32,
    /// Running records whose container had exited, moved to `stopped`.
    pub observed_exits: u32,
    /// Parked containers given their canonical name back.
    pub renamed: u32,
    /// Games skipped because an operation held them.
    pub skipped_busy: u32,
    /// Games whose repair failed (retried next pass).
    pub errors: u32,
}

impl ReconcileSummary {
    /// Whether the pass changed anything.
    pub fn changed(&self) -> bool {
        self.adopted + self.disposed + self.removed + self.observed_exits + self.renamed > 0
    }
}

impl OperationError {
    /// The code a caller sees: `operation_in_progress`,
    /// `database_unavailable`/`internal` (from the store),
    /// `docker_unavailable` or `idempotency_key_reused`.
    pub fn code(&self) -> ErrorCode {
        match self {
            OperationError::InProgress(_) => ErrorCode::OperationInProgress,
            OperationError::Store(e) => e.code(),
            OperationError::Runtime(_) => ErrorCode::DockerUnavailable,
            OperationError::KeyReused { .. } => ErrorCode::IdempotencyKeyReused,
        }
    }
}
