//! The reconciler (SPEC §8): one pass compares the containers carrying
//! RTM's owner label with the records and repairs every disagreement, so
//! that after a crash of RTM at any point of any operation, Docker and the
//! database agree again.
//!
//! Cost: one pass is one container list and a keyset walk of the
//! `running`/`stopped` records; only games on which the two disagree (the
//! changes since the last pass, or an operation in flight) are looked at
//! again under their lock, with a fresh record and a fresh list of that
//! game's containers. A pass over 1,000 games in agreement is one Docker
//! call and takes no lock.
//!
//! Per game, under the game's lock (a busy game is skipped and retried on
//! the next pass), with a fresh record and a fresh container list:
//! - the container to keep is the running one (the bound one first, then
//!   the canonically named, then the newest), else the bound stopped one;
//! - a running container the record does not bind as `running` is adopted
//!   (`reconcile_adopt`), the record rebuilt from its labels;
//! - every other container of the game is removed (`reconcile_dispose`);
//! - a `running`/`stopped` record left without a container becomes
//!   `removed` with health `container_disappeared` (`reconcile_dispose`);
//! - a `running` record whose container is not running becomes `stopped`
//!   (an observed exit: a health snapshot, no operation row);
//! - a kept container parked under a patch's temporary name gets its
//!   canonical name back;
//! - a patch rollback left unfinished (the newest row says
//!   `patch_rollback_incomplete`, or a `running` record binds a stopped
//!   parked container and nothing else runs) is finished: the previous
//!   engine is renamed back and started (`reconcile_adopt`), never
//!   disposed of;
//! - a running container is not adopted when another live game's id
//!   differs from its game's only in case (one DNS name for two engines,
//!   SPEC §3): it is disposed of instead.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, warn};

use crate::ports::{
    Clock, ContainerRuntime, ContainerSummary, GameLockGuard, GameLocks, HealthSnapshots,
    OperationLog, OperationQuery, Ports, RecordQuery, RuntimeRecords, Telemetry, UnitOfWork,
};
use crate::service::operations::RuntimeService;
use crate::service::{OperationError, ReconcileSummary};
use crate::{
    Commit, ContainerId, ErrorCode, GameId, HealthDetails, HealthSnapshot, HealthSource,
    HealthStatus, HealthWrite, ImageRef, LockError, NewOperation, OpKind, OpSource, Outcome,
    RuntimeError, RuntimeRecord, RuntimeStatus,
};

/// How long a reconcile pass waits for a busy game before skipping it.
const RECONCILE_LOCK_WAIT: Duration = Duration::from_millis(500);
const PAGE: u32 = 500;

enum GameError {
    Busy,
    Failed(String),
}

impl From<crate::StoreError> for GameError {
    fn from(e: crate::StoreError) -> Self {
        GameError::Failed(e.to_string())
    }
}

impl From<RuntimeError> for GameError {
    fn from(e: RuntimeError) -> Self {
        GameError::Failed(e.to_string())
    }
}

impl<P: Ports> RuntimeService<P> {
    /// A reconcile pass on the timer (`auto_reconcile`).
    pub async fn reconcile(&self) -> Result<ReconcileSummary, OperationError> {
        self.reconcile_as(OpSource::AutoReconcile).await
    }

    /// A reconcile pass recorded with `source` (e.g. `admin_rest`).
    ///
    /// `Err` only when Docker or PostgreSQL cannot be listed at all; a game
    /// that fails is counted in `errors` and retried next pass.
    pub async fn reconcile_as(&self, source: OpSource) -> Result<ReconcileSummary, OperationError> {
        let rt = &self.adapters.runtime;
        let telemetry = &self.adapters.telemetry;
        telemetry.runtime_calls("reconcile", "list", 1);
        let containers = rt.list(None).await.map_err(OperationError::Runtime)?;
        let mut listed: BTreeMap<GameId, Vec<&ContainerSummary>> = BTreeMap::new();
        for c in &containers {
            if let Some(g) = &c.game_id {
                listed.entry(g.clone()).or_default().push(c);
            }
        }
        let mut records: BTreeMap<GameId, RuntimeRecord> = BTreeMap::new();
        for status in [RuntimeStatus::Running, RuntimeStatus::Stopped] {
            let mut after = None;
            loop {
                let page = self
                    .adapters
                    .store
                    .list_records(&RecordQuery {
                        status: Some(status),
                        after: after.clone(),
                        limit: PAGE,
                        ..RecordQuery::default()
                    })
                    .await?;
                let full = page.len() == PAGE as usize;
                after = page.last().map(|r| r.game_id.clone());
                records.extend(page.into_iter().map(|r| (r.game_id.clone(), r)));
                if !full {
                    break;
                }
            }
        }
        let games: BTreeSet<&GameId> = listed.keys().chain(records.keys()).collect();
        let mut summary = ReconcileSummary {
            games: games.len() as u32,
            ..ReconcileSummary::default()
        };
        for game in games {
            let containers = listed.get(game).map(Vec::as_slice).unwrap_or_default();
            if agrees(game, containers, records.get(game)) {
                continue;
            }
            // The two lists disagree (or were taken while an operation
            // changed the game): look again under the game's lock.
            summary.checked += 1;
            match self.reconcile_game(game, source, &mut summary).await {
                Ok(()) => {}
                Err(GameError::Busy) => summary.skipped_busy += 1,
                Err(GameError::Failed(e)) => {
                    summary.errors += 1;
                    warn!(game_id = %game, error = %e, "reconcile of one game failed; retried next pass");
                }
            }
        }
        if summary.changed() {
            info!(?summary, %source, "reconcile pass repaired disagreements");
        }
        Ok(summary)
    }

    async fn reconcile_game(
        &self,
        game: &GameId,
        source: OpSource,
        summary: &mut ReconcileSummary,
    ) -> Result<(), GameError> {
        let guard = match self.adapters.locks.acquire(game, RECONCILE_LOCK_WAIT).await {
            Ok(g) => g,
            Err(LockError::Timeout) => return Err(GameError::Busy),
            Err(LockError::Store(e)) => return Err(e.into()),
        };
        let result = self.reconcile_locked(game, source, summary).await;
        guard.release().await;
        result
    }

    async fn reconcile_locked(
        &self,
        game: &GameId,
        source: OpSource,
        summary: &mut ReconcileSummary,
    ) -> Result<(), GameError> {
        let store = &self.adapters.store;
        let rt = &self.adapters.runtime;
        let calls = |call, n| self.adapters.telemetry.runtime_calls("reconcile", call, n);
        let mut record = store.get_record(game).await?;
        calls("list", 1);
        let containers = rt.list(Some(game)).await?;
        let bound = record
            .as_ref()
            .filter(|r| r.status != RuntimeStatus::Removed)
            .and_then(|r| r.container_id.clone());
        let mut keep = choose_keep(game, &containers, bound.as_ref()).cloned();

        // A patch rollback left unfinished: the previous engine is what the
        // game runs, whatever else is around (it is never garbage).
        let restore = self
            .unfinished_rollback(game, record.as_ref(), &containers, keep.as_ref())
            .await?;
        if restore.is_some() {
            keep = restore.clone();
        }

        // Adopt a running container the record does not describe, unless
        // another live game's id differs from this one only in case: the
        // two engines would share one DNS name (SPEC §3), so the container
        // is disposed of like an extra one instead.
        if let Some(k) = keep.as_ref().filter(|k| k.running) {
            let described = record.as_ref().is_some_and(|r| {
                r.status == RuntimeStatus::Running && r.container_id.as_ref() == Some(&k.id)
            });
            if !described {
                if let Some(other) = store.find_case_collision(game).await? {
                    warn!(game_id = %game, container = %k.id, other_game = %other,
                        "not adopting a container whose game id differs from a live game's only in case; removing it");
                    keep = None;
                } else {
                    record = Some(self.adopt(game, k, record.as_ref(), source).await?);
                    summary.adopted += 1;
                }
            }
        }

        // Remove every other container of the game.
        for c in containers
            .iter()
            .filter(|c| Some(&c.id) != keep.as_ref().map(|k| &k.id))
        {
            calls("remove", 1);
            match rt.remove(&c.id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let op = self.new_op(
                game,
                OpKind::ReconcileDispose,
                source,
                c.image_ref.as_deref().unwrap_or_default(),
                Some(&c.id),
            );
            self.adapters
                .store
                .commit(Commit {
                    record: None,
                    operation: Some(op),
                    health: None,
                })
                .await?;
            summary.disposed += 1;
        }

        let Some(current) = record else { return Ok(()) };
        if let Some(k) = &restore {
            self.finish_rollback(game, k, current, source).await?;
            summary.adopted += 1;
            summary.renamed += 1;
            return Ok(());
        }
        match (&keep, current.status) {
            // A record whose container vanished.
            (None, RuntimeStatus::Running | RuntimeStatus::Stopped) => {
                let now = self.adapters.clock.now();
                let mut next = current.clone();
                next.enter(RuntimeStatus::Removed, now);
                let container = current.container_id.clone();
                let health = self
                    .health_write(
                        game,
                        container.as_ref(),
                        HealthStatus::ContainerDisappeared,
                        HealthDetails::new().with("reason", "no container found by the reconciler"),
                    )
                    .await?;
                let image = current
                    .image_ref
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let op = self.new_op(
                    game,
                    OpKind::ReconcileDispose,
                    source,
                    &image,
                    container.as_ref(),
                );
                store
                    .commit(Commit {
                        record: Some(next),
                        operation: Some(op),
                        health: Some(health),
                    })
                    .await?;
                summary.removed += 1;
            }
            // A running record whose container is not running: an exit
            // nobody reported.
            (Some(k), RuntimeStatus::Running) if !k.running => {
                calls("inspect", 1);
                let info = rt.inspect(&k.id).await?;
                let now = self.adapters.clock.now();
                let mut next = current.clone();
                next.enter(RuntimeStatus::Stopped, now);
                let (status, mut details) = if info.oom_killed {
                    (HealthStatus::Oom, HealthDetails::new())
                } else {
                    (HealthStatus::Exited, HealthDetails::new())
                };
                if let Some(code) = info.exit_code {
                    details = details.with("exit_code", code);
                }
                let health = self
                    .health_write(game, Some(&k.id), status, details)
                    .await?;
                store
                    .commit(Commit {
                        record: Some(next),
                        operation: None,
                        health: Some(health),
                    })
                    .await?;
                summary.observed_exits += 1;
            }
            _ => {}
        }

        // Give a parked container its canonical name back.
        if let Some(k) = &keep {
            let canonical = game.container_name();
            if k.name != canonical {
                calls("rename", 1);
                rt.rename(&k.id, &canonical).await?;
                summary.renamed += 1;
            }
        }
        Ok(())
    }

    /// The previous engine of a patch whose rollback did not finish, if the
    /// game has one: the container the record binds, not running, when
    /// - the game's newest operation row is a `patch` that failed with
    ///   `patch_rollback_incomplete` (RTM gave up restoring it), or
    /// - the record is `running`, the container is parked under the patch's
    ///   temporary name and no other container of the game runs (RTM died
    ///   between parking it and committing the patch).
    async fn unfinished_rollback(
        &self,
        game: &GameId,
        record: Option<&RuntimeRecord>,
        containers: &[ContainerSummary],
        keep: Option<&ContainerSummary>,
    ) -> Result<Option<ContainerSummary>, GameError> {
        let Some(r) = record.filter(|r| r.status != RuntimeStatus::Removed) else {
            return Ok(None);
        };
        let Some(bound) = containers
            .iter()
            .find(|c| Some(&c.id) == r.container_id.as_ref() && !c.running)
        else {
            return Ok(None);
        };
        let parked = bound.name == game.parked_container_name();
        if parked && r.status == RuntimeStatus::Running && keep.is_some_and(|k| k.id == bound.id) {
            return Ok(Some(bound.clone()));
        }
        if self.rollback_incomplete(game).await? {
            return Ok(Some(bound.clone()));
        }
        Ok(None)
    }

    /// Whether the game's newest operation row is a patch whose rollback
    /// RTM could not finish (`patch_rollback_incomplete`).
    pub(super) async fn rollback_incomplete(
        &self,
        game: &GameId,
    ) -> Result<bool, crate::StoreError> {
        let newest = self
            .adapters
            .store
            .list_operations(&OperationQuery {
                game_id: Some(game.clone()),
                limit: 1,
                ..OperationQuery::default()
            })
            .await?;
        Ok(newest.first().is_some_and(|op| {
            op.kind == OpKind::Patch
                && op
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == ErrorCode::PatchRollbackIncomplete)
        }))
    }

    /// Finishes a rollback: the previous engine takes its canonical name
    /// back and runs; the record says `running` on it (`reconcile_adopt`).
    /// Every other container of the game is already gone.
    async fn finish_rollback(
        &self,
        game: &GameId,
        k: &ContainerSummary,
        current: RuntimeRecord,
        source: OpSource,
    ) -> Result<(), GameError> {
        let rt = &self.adapters.runtime;
        let canonical = game.container_name();
        // Rename first: Docker's DNS registers the name at start.
        if k.name != canonical {
            rt.rename(&k.id, &canonical).await?;
        }
        rt.start(&k.id).await?;
        let now = self.adapters.clock.now();
        let mut next = current;
        next.container_id = Some(k.id.clone());
        next.engine_endpoint = self.config.engine_endpoint(game);
        next.enter(RuntimeStatus::Running, now);
        let image = next
            .image_ref
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| k.image_ref.clone())
            .unwrap_or_default();
        let op = self.new_op(game, OpKind::ReconcileAdopt, source, &image, Some(&k.id));
        self.adapters
            .store
            .commit(Commit {
                record: Some(next),
                operation: Some(op),
                health: None,
            })
            .await?;
        info!(game_id = %game, container = %k.id, "reconciler finished a patch rollback: the previous engine runs again");
        Ok(())
    }

    /// Rebuilds the record from the container's labels; status `running`.
    async fn adopt(
        &self,
        game: &GameId,
        c: &ContainerSummary,
        current: Option<&RuntimeRecord>,
        source: OpSource,
    ) -> Result<RuntimeRecord, GameError> {
        let image = ImageRef::parse(c.image_ref.as_deref().unwrap_or_default()).map_err(|e| {
            GameError::Failed(format!(
                "container {} has a bad rtm.image_ref label: {e}",
                c.id
            ))
        })?;
        let now = self.adapters.clock.now();
        let mut record = current.cloned().unwrap_or_else(|| RuntimeRecord {
            game_id: game.clone(),
            status: RuntimeStatus::Running,
            container_id: None,
            image_ref: None,
            engine_endpoint: String::new(),
            state_path: String::new(),
            docker_network: String::new(),
            started_at: None,
            stopped_at: None,
            removed_at: None,
            last_op_at: now,
            created_at: now,
        });
        record.container_id = Some(c.id.clone());
        record.image_ref = Some(image.clone());
        record.engine_endpoint = self.config.engine_endpoint(game);
        record.docker_network = self.config.network.clone();
        record.state_path = c
            .state_path
            .clone()
            .unwrap_or_else(|| self.config.state_path(game));
        record.enter(RuntimeStatus::Running, now);
        let op = self.new_op(
            game,
            OpKind::ReconcileAdopt,
            source,
            &image.to_string(),
            Some(&c.id),
        );
        self.adapters
            .store
            .commit(Commit {
                record: Some(record.clone()),
                operation: Some(op),
                health: None,
            })
            .await?;
        info!(game_id = %game, container = %c.id, image = %image, "reconciler adopted a running container");
        Ok(record)
    }

    fn new_op(
        &self,
        game: &GameId,
        kind: OpKind,
        source: OpSource,
        image: &str,
        container: Option<&ContainerId>,
    ) -> NewOperation {
        let now = self.adapters.clock.now();
        NewOperation {
            game_id: game.clone(),
            kind,
            source,
            source_ref: None,
            image_ref: (!image.is_empty()).then(|| image.to_owned()),
            container_id: container.cloned(),
            request: None,
            outcome: Outcome::Success,
            error: None,
            started_at: now,
            finished_at: now,
        }
    }

    /// A snapshot seen by the reconciler (source `inspect`), published when
    /// it changes the game's health.
    async fn health_write(
        &self,
        game: &GameId,
        container: Option<&ContainerId>,
        status: HealthStatus,
        details: HealthDetails,
    ) -> Result<HealthWrite, GameError> {
        let previous = self.adapters.store.get_health(game).await?;
        let snapshot = HealthSnapshot {
            game_id: game.clone(),
            container_id: container.cloned(),
            status,
            source: HealthSource::Inspect,
            details,
            observed_at: self.adapters.clock.now(),
        };
        Ok(HealthWrite::over(previous.as_ref(), snapshot))
    }
}

/// Whether the two lists already agree on `game`, so that a look under its
/// lock would change nothing: exactly one container, canonically named,
/// bound by a `running` record while it runs or by a `stopped` one while
/// it does not. Everything else is checked (and repaired) under the lock.
fn agrees(game: &GameId, containers: &[&ContainerSummary], record: Option<&RuntimeRecord>) -> bool {
    let ([c], Some(r)) = (containers, record) else {
        return false;
    };
    let state_agrees = match r.status {
        RuntimeStatus::Running => c.running,
        RuntimeStatus::Stopped => !c.running,
        RuntimeStatus::Removed => false,
    };
    state_agrees && r.container_id.as_ref() == Some(&c.id) && c.name == game.container_name()
}

/// The container the game should keep: the running one (bound first, then
/// canonically named, then newest), else the bound one.
fn choose_keep<'a>(
    game: &GameId,
    containers: &'a [ContainerSummary],
    bound: Option<&ContainerId>,
) -> Option<&'a ContainerSummary> {
    let canonical = game.container_name();
    let rank = |c: &ContainerSummary| (Some(&c.id) == bound, c.name == canonical, c.created_at);
    containers
        .iter()
        .filter(|c| c.running)
        .max_by_key(|c| rank(c))
        .or_else(|| containers.iter().find(|c| Some(&c.id) == bound))
}
