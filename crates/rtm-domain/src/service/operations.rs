//! [`RuntimeService`]: SPEC §5's operations carried out through the ports.
//!
//! Every operation follows one shape: take the game's lock (bounded wait,
//! else `operation_in_progress` and nothing happens), replay an earlier
//! result when `source_ref` already has a row, plan with the pure
//! [`transition::plan`], act on the container runtime, then commit the
//! record change and exactly one operation-log row in one transaction. A
//! refusal or a runtime failure is a *recorded* failure; only a lock
//! timeout or a database failure leaves no row (and then nothing was done,
//! or what was done is logged and left to the reconciler).

use std::time::Duration;

use tracing::{info, warn};

use crate::ports::{
    Adapters, Clock, ContainerRuntime, GameLockGuard, GameLocks, OperationLog, Ports,
    RuntimeRecords, Telemetry, UnitOfWork,
};
use crate::service::{OperationError, OperationOutcome, OperationRequest, ServiceConfig};
use crate::transition::{self, Action, Command, Refusal, Transition};
mod containers;
mod patch;

use crate::{
    check_patch, Commit, ContainerId, ErrorCode, GameId, ImageRef, LockError, NewOperation,
    OpError, OpKind, Outcome, RecordedRequest, RuntimeError, RuntimeRecord, RuntimeStatus,
    StoreError,
};

/// Carries out operations (start, stop, restart, patch, cleanup) and
/// reconcile passes through the ports.
///
/// Build one per process from the host's [`Adapters`] and share it (an
/// `Arc`): it holds no state of its own between calls, so every method
/// may run concurrently; the per-game lock serialises what must be.
///
/// ```
/// # #[cfg(feature = "fakes")]
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use std::time::Duration;
/// use rtm_domain::fakes::FakePorts;
/// use rtm_domain::service::{OperationRequest, RuntimeService, ServiceConfig};
/// use rtm_domain::transition::Command;
/// use rtm_domain::{Allowlist, ErrorCode, GameId, ImageRef, OpSource, RuntimeStatus};
///
/// let ports = FakePorts::new();
/// let config = ServiceConfig {
///     allowlist: Allowlist::parse("ghcr.io/acme/*")?,
///     lock_wait: Duration::from_secs(5),
///     stop_timeout: Duration::from_secs(30),
///     patch_health_timeout: Duration::from_secs(60),
///     patch_probe_interval: Duration::from_millis(500),
///     engine_port: 8080,
///     state_root: "/var/lib/rtmanager/games".into(),
///     network: "rtm-engines".into(),
/// };
/// let service = RuntimeService::new(ports.adapters(), config);
/// let game = GameId::parse("chess-42")?;
///
/// let image = ImageRef::parse("ghcr.io/acme/engine:1.4.2")?;
/// let start = OperationRequest {
///     source_ref: Some("1700000000000-0".into()), // the Lobby entry id
///     ..OperationRequest::new(game.clone(), Command::Start { image }, OpSource::LobbyStream)
/// };
/// let outcome = service.execute(start.clone()).await?;
/// assert!(outcome.succeeded());
/// let record = outcome.record.expect("a start leaves a record");
/// assert_eq!(record.status, RuntimeStatus::Running);
/// assert_eq!(record.engine_endpoint, "http://rtm-chess-42:8080");
///
/// // The same reference again is a replay: same row, nothing done.
/// let again = service.execute(start).await?;
/// assert!(again.replayed);
/// assert_eq!(again.operation.id, outcome.operation.id);
///
/// // A refusal is a recorded failure with a stable code, not an `Err`.
/// let other = ImageRef::parse("docker.io/evil/engine:1.0.0")?;
/// let refused = service
///     .execute(OperationRequest::new(game, Command::Patch { image: other }, OpSource::GmRest))
///     .await?;
/// assert_eq!(refused.error().map(|e| e.code), Some(ErrorCode::ImageNotAllowed));
/// assert_eq!(ports.store.operations().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RuntimeService<P: Ports> {
    pub(super) adapters: Adapters<P>,
    pub(super) config: ServiceConfig,
}

impl<P: Ports> std::fmt::Debug for RuntimeService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a successful action leaves behind.
struct Acted {
    record: RuntimeRecord,
    container: Option<ContainerId>,
}

/// A failed action: the error to record and the record as it now stands
/// (`None` when the action changed nothing the record describes).
struct Failed {
    error: OpError,
    record: Option<RuntimeRecord>,
    container: Option<ContainerId>,
}

impl Failed {
    fn new(error: OpError) -> Self {
        Self {
            error,
            record: None,
            container: None,
        }
    }
}

impl From<OpError> for Failed {
    fn from(error: OpError) -> Self {
        Failed::new(error)
    }
}

/// Maps a runtime error met during `step` to a recorded error.
fn runtime_failure(step: &str, err: &RuntimeError) -> OpError {
    let code = match err {
        RuntimeError::Unavailable(_) => ErrorCode::DockerUnavailable,
        RuntimeError::PullFailed(_) => ErrorCode::ImagePullFailed,
        RuntimeError::NotFound(_) | RuntimeError::Conflict(_) | RuntimeError::Other(_) => {
            if matches!(step, "create" | "start") {
                ErrorCode::ContainerStartFailed
            } else {
                ErrorCode::Internal
            }
        }
    };
    OpError::new(code, format!("{step}: {err}"))
}

/// Whether `earlier` was recorded for the request `req` (fingerprint
/// `request`). Rows written before V3 kept no fingerprint: their game,
/// operation and image are compared instead.
fn same_request(req: &OperationRequest, request: &str, earlier: &RecordedRequest) -> bool {
    if let Some(recorded) = &earlier.request {
        return recorded == request;
    }
    let e = &earlier.entry;
    e.game_id == req.game_id
        && e.kind == op_kind(&req.command)
        && match &req.command {
            Command::Start { image } | Command::Patch { image } => {
                e.image_ref.as_deref() == Some(image.to_string().as_str())
            }
            Command::Stop | Command::Restart | Command::Cleanup => true,
        }
}

pub(super) fn op_kind(command: &Command) -> OpKind {
    match command {
        Command::Start { .. } => OpKind::Start,
        Command::Stop => OpKind::Stop,
        Command::Restart => OpKind::Restart,
        Command::Patch { .. } => OpKind::Patch,
        Command::Cleanup => OpKind::CleanupContainer,
    }
}

fn refusal_error(refusal: Refusal) -> OpError {
    let code = match refusal {
        Refusal::NotFound => ErrorCode::NotFound,
        Refusal::AlreadyRunning => ErrorCode::AlreadyRunning,
        Refusal::Conflict(_) => ErrorCode::Conflict,
    };
    OpError::new(code, refusal.to_string())
}

impl<P: Ports> RuntimeService<P> {
    /// A service acting through `adapters` with `config`. Does no I/O:
    /// nothing is checked until the first call.
    pub fn new(adapters: Adapters<P>, config: ServiceConfig) -> Self {
        Self { adapters, config }
    }

    /// The settings it was built with.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Runs one operation: lock the game, replay or plan, act, record.
    ///
    /// A recorded failure is `Ok` with a failed outcome; `Err` means nothing
    /// was recorded (lock timeout, database failure).
    pub async fn execute(&self, req: OperationRequest) -> Result<OperationOutcome, OperationError> {
        let clock = &self.adapters.clock;
        let requested_at = clock.now();
        let kind = op_kind(&req.command);
        let guard = match self
            .adapters
            .locks
            .acquire(&req.game_id, self.config.lock_wait)
            .await
        {
            Ok(guard) => guard,
            Err(LockError::Timeout) => {
                info!(game_id = %req.game_id, op = %kind, source = %req.source,
                    request_id = req.request_id.as_deref().unwrap_or(""),
                    "operation refused: another operation holds the game");
                return Err(OperationError::InProgress(req.game_id));
            }
            Err(LockError::Store(e)) => return Err(e.into()),
        };
        // The operation begins once it holds the game: its row's interval
        // then never overlaps another row of the game (time spent queued
        // for the lock is not part of the operation; it still counts in
        // the duration logged and measured below).
        let started_at = clock.now();
        let result = self.execute_locked(&req, started_at).await;
        guard.release().await;

        let elapsed = (clock.now() - requested_at)
            .try_into()
            .unwrap_or(Duration::ZERO);
        match &result {
            Ok(outcome) => {
                let op = &outcome.operation;
                if !outcome.replayed {
                    self.adapters
                        .telemetry
                        .operation_finished(kind, req.source, op.outcome, elapsed);
                }
                // A recorded failure is a WARN (an operator looks at it); a
                // success or a replay of a failure stays INFO.
                macro_rules! finished {
                    ($level:ident) => {
                        $level!(
                            game_id = %req.game_id, op = %kind, source = %req.source,
                            source_ref = req.source_ref.as_deref().unwrap_or(""),
                            request_id = req.request_id.as_deref().unwrap_or(""),
                            outcome = %op.outcome,
                            error_code = op.error.as_ref().map_or("", |e| e.code.as_str()),
                            error = op.error.as_ref().map_or("", |e| e.message.as_str()),
                            replayed = outcome.replayed,
                            duration_ms = elapsed.as_millis() as u64,
                            "operation finished"
                        )
                    };
                }
                if op.outcome == Outcome::Failure && !outcome.replayed {
                    finished!(warn);
                } else {
                    finished!(info);
                }
            }
            Err(e) => warn!(
                game_id = %req.game_id, op = %kind, source = %req.source,
                request_id = req.request_id.as_deref().unwrap_or(""),
                error = %e, duration_ms = elapsed.as_millis() as u64,
                "operation not recorded"
            ),
        }
        result
    }

    async fn execute_locked(
        &self,
        req: &OperationRequest,
        started_at: time::OffsetDateTime,
    ) -> Result<OperationOutcome, OperationError> {
        let store = &self.adapters.store;
        let source_ref = req.source_ref.as_deref().filter(|r| !r.is_empty());
        let request = req.fingerprint();
        if let Some(r) = source_ref {
            if let Some(earlier) = store.find_source_ref(req.source, r).await? {
                return self.replay(req, &request, r, earlier).await;
            }
        }
        let record = store.get_record(&req.game_id).await?;
        let requested_image = match &req.command {
            Command::Start { image } | Command::Patch { image } => Some(image),
            _ => None,
        };
        let image_text = requested_image
            .or(record.as_ref().and_then(|r| r.image_ref.as_ref()))
            .map(ToString::to_string);

        let result = match self.plan(req, record.as_ref()) {
            Ok(transition) => match self.dns_name_conflict(req, &transition).await? {
                None => self.act(req, record.as_ref(), transition).await,
                Some(error) => Err(Failed::new(error)),
            },
            Err(error) => Err(Failed::new(error)),
        };
        let finished_at = self.adapters.clock.now();
        let (outcome, error, new_record, container) = match result {
            Ok(acted) => (Outcome::Success, None, Some(acted.record), acted.container),
            Err(failed) => (
                Outcome::Failure,
                Some(failed.error),
                failed.record,
                failed.container,
            ),
        };
        let container_id =
            container.or_else(|| record.as_ref().and_then(|r| r.container_id.clone()));
        let operation = NewOperation {
            game_id: req.game_id.clone(),
            kind: op_kind(&req.command),
            source: req.source,
            source_ref: source_ref.map(str::to_owned),
            image_ref: image_text,
            container_id,
            request: source_ref.map(|_| request.clone()),
            outcome,
            error,
            started_at,
            finished_at,
        };
        let commit = Commit {
            record: new_record.clone(),
            operation: Some(operation),
            health: None,
        };
        match store.commit(commit).await {
            Ok(Some(entry)) => Ok(OperationOutcome {
                operation: entry,
                record: new_record.or(record),
                replayed: false,
            }),
            Ok(None) => Err(StoreError::Other("commit returned no operation row".into()).into()),
            Err(StoreError::AlreadyExists(what)) => {
                // Another replica recorded the same reference between our
                // check and our commit; its result stands.
                warn!(game_id = %req.game_id, %what, "idempotency reference recorded concurrently");
                let r = source_ref.unwrap_or_default();
                match store.find_source_ref(req.source, r).await? {
                    Some(earlier) => self.replay(req, &request, r, earlier).await,
                    None => Err(StoreError::AlreadyExists(what).into()),
                }
            }
            Err(e) => {
                warn!(game_id = %req.game_id, error = %e,
                    "operation acted but could not be recorded; the reconciler will repair");
                Err(e.into())
            }
        }
    }

    /// Answers a reference that already has a row: the earlier result when
    /// it was recorded for this very request, else a refusal that changes
    /// nothing (SPEC §5).
    async fn replay(
        &self,
        req: &OperationRequest,
        request: &str,
        source_ref: &str,
        earlier: RecordedRequest,
    ) -> Result<OperationOutcome, OperationError> {
        if !same_request(req, request, &earlier) {
            let recorded = earlier.request.unwrap_or_else(|| {
                format!("{} game={}", earlier.entry.kind, earlier.entry.game_id)
            });
            return Err(OperationError::KeyReused {
                source_ref: source_ref.to_owned(),
                operation_id: earlier.entry.id,
                recorded,
            });
        }
        let earlier = earlier.entry;
        let record = self.adapters.store.get_record(&earlier.game_id).await?;
        Ok(OperationOutcome {
            operation: earlier,
            record,
            replayed: true,
        })
    }

    /// A start that would bring up `rtm-<game>` while another live game's id
    /// differs only in case is refused (SPEC §3): Docker's embedded DNS is
    /// case-insensitive, so both engines would answer one `engine_endpoint`.
    /// Checked under the game's lock, which is keyed by the folded id, so
    /// two such starts cannot both pass.
    async fn dns_name_conflict(
        &self,
        req: &OperationRequest,
        transition: &Transition,
    ) -> Result<Option<OpError>, OperationError> {
        if !matches!(req.command, Command::Start { .. })
            || matches!(transition.action, Action::Nothing)
        {
            return Ok(None);
        }
        let other = self
            .adapters
            .store
            .find_case_collision(&req.game_id)
            .await?;
        Ok(other.map(|other| {
            OpError::new(
                ErrorCode::GameIdConflict,
                format!(
                    "game {other} is live and its id differs from {} only in case; \
                     Docker's DNS would give both engines one name",
                    req.game_id
                ),
            )
        }))
    }

    /// Validation and planning: pure checks before any side effect.
    fn plan(
        &self,
        req: &OperationRequest,
        record: Option<&RuntimeRecord>,
    ) -> Result<Transition, OpError> {
        if let Command::Start { image } | Command::Patch { image } = &req.command {
            if !self.config.allowlist.allows(image) {
                return Err(OpError::new(
                    ErrorCode::ImageNotAllowed,
                    format!("{} is not on the image allow-list", image.name()),
                ));
            }
        }
        let transition = transition::plan(record, &req.command).map_err(refusal_error)?;
        if let (Action::Patch { from, .. }, Command::Patch { image }) =
            (&transition.action, &req.command)
        {
            check_patch(from, image, req.force)
                .map_err(|r| OpError::new(ErrorCode::PatchNotAllowed, r.to_string()))?;
        }
        Ok(transition)
    }

    fn grace(&self, req: &OperationRequest) -> Duration {
        req.stop_timeout.unwrap_or(self.config.stop_timeout)
    }

    /// The record after a successful transition into `next`.
    fn next_record(
        &self,
        game: &GameId,
        current: Option<&RuntimeRecord>,
        next: RuntimeStatus,
        container: Option<ContainerId>,
        image: Option<ImageRef>,
    ) -> RuntimeRecord {
        let now = self.adapters.clock.now();
        let mut record = current.cloned().unwrap_or_else(|| RuntimeRecord {
            game_id: game.clone(),
            status: next,
            container_id: None,
            image_ref: None,
            engine_endpoint: self.config.engine_endpoint(game),
            state_path: self.config.state_path(game),
            docker_network: self.config.network.clone(),
            started_at: None,
            stopped_at: None,
            removed_at: None,
            last_op_at: now,
            created_at: now,
        });
        if container.is_some() {
            record.container_id = container;
        }
        if image.is_some() {
            record.image_ref = image;
        }
        record.engine_endpoint = self.config.engine_endpoint(game);
        record.docker_network = self.config.network.clone();
        record.enter(next, now);
        record
    }

    async fn act(
        &self,
        req: &OperationRequest,
        record: Option<&RuntimeRecord>,
        transition: Transition,
    ) -> Result<Acted, Failed> {
        let game = &req.game_id;
        let rt = &self.adapters.runtime;
        let next = transition.next;
        let done = |container: Option<ContainerId>, image: Option<ImageRef>| Acted {
            record: self.next_record(game, record, next, container.clone(), image),
            container,
        };
        let record_image = record.and_then(|r| r.image_ref.clone());
        match transition.action {
            Action::Nothing => {
                let mut acted = done(None, None);
                // A no-op does not *enter* the status it is already in
                // (SPEC §4): only `last_op_at` moves, so `started_at` still
                // says when the engine started.
                if let Some(r) = record.filter(|r| r.status == next) {
                    acted.record.started_at = r.started_at;
                    acted.record.stopped_at = r.stopped_at;
                    acted.record.removed_at = r.removed_at;
                }
                Ok(acted)
            }
            Action::CreateAndStart { replace } => {
                let image = match &req.command {
                    Command::Start { image } | Command::Patch { image } => image.clone(),
                    Command::Restart | Command::Stop | Command::Cleanup => {
                        record_image.clone().ok_or_else(|| {
                            OpError::new(ErrorCode::Conflict, "the record names no image to run")
                        })?
                    }
                };
                if let Some(old) = replace {
                    self.remove_if_present(&old)
                        .await
                        .map_err(|e| runtime_failure("remove", &e))?;
                }
                let id = self.create_and_start(game, &image).await?;
                Ok(done(Some(id), Some(image)))
            }
            Action::StartExisting { container } => {
                let id = self
                    .start_existing(game, &container, record_image.as_ref())
                    .await?;
                Ok(done(Some(id), None))
            }
            Action::Stop { container } => {
                match rt.stop(&container, self.grace(req)).await {
                    Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                    Err(e) => return Err(runtime_failure("stop", &e).into()),
                }
                Ok(done(Some(container), None))
            }
            Action::Restart { container } => {
                match rt.stop(&container, self.grace(req)).await {
                    Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                    Err(e) => return Err(runtime_failure("stop", &e).into()),
                }
                let id = self
                    .start_existing(game, &container, record_image.as_ref())
                    .await?;
                Ok(done(Some(id), None))
            }
            Action::Remove { container } => {
                self.remove_if_present(&container)
                    .await
                    .map_err(|e| runtime_failure("remove", &e))?;
                Ok(done(Some(container), None))
            }
            Action::Patch { container, from } => {
                let Command::Patch { image } = &req.command else {
                    return Err(OpError::new(
                        ErrorCode::Internal,
                        "patch planned for another command",
                    )
                    .into());
                };
                self.patch(req, record, container, from, image.clone())
                    .await
            }
        }
    }
}
