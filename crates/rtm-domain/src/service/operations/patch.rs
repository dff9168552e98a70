//! Patch: replace a game's running engine by one of another image,
//! health-gated, and roll back to the previous engine when the new one
//! does not come up (SPEC §5). Also the rollback the reconciler finishes
//! after a crash mid-patch.

use std::time::Duration;

use tracing::warn;

use super::{runtime_failure, Acted, Failed, RuntimeService};
use crate::ports::{Clock, ContainerRuntime, ContainerState, EngineProbe, Ports, ProbeTarget};
use crate::service::OperationRequest;
use crate::{
    ContainerId, ErrorCode, GameId, ImageRef, OpError, RuntimeError, RuntimeRecord, RuntimeStatus,
};

/// How many times each step of a patch rollback is tried before the
/// rollback is recorded as incomplete (and left to the reconciler).
const ROLLBACK_ATTEMPTS: u32 = 10;
/// Pause between two tries of a rollback step.
const ROLLBACK_PAUSE: Duration = Duration::from_millis(500);

impl<P: Ports> RuntimeService<P> {
    /// Replaces the running container by one of `to`, health-gated, rolling
    /// back to `from` when the new engine does not come up in time.
    pub(super) async fn patch(
        &self,
        req: &OperationRequest,
        record: Option<&RuntimeRecord>,
        old: ContainerId,
        from: ImageRef,
        to: ImageRef,
    ) -> Result<Acted, Failed> {
        let game = &req.game_id;
        let rt = &self.adapters.runtime;
        rt.ensure_image(&to)
            .await
            .map_err(|e| runtime_failure("pull", &e))?;
        rt.stop(&old, self.grace(req))
            .await
            .or_else(|e| {
                if matches!(e, RuntimeError::NotFound(_)) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| runtime_failure("stop", &e))?;
        // From here the old engine is down: every failure path restarts it.
        let parked = game.parked_container_name();
        // The new container, once created: the rollback must make sure it
        // is gone even when the failure came after its creation.
        let created: std::sync::Mutex<Option<ContainerId>> = std::sync::Mutex::new(None);
        let swap = async {
            match rt.rename(&old, &parked).await {
                Ok(()) => {}
                Err(RuntimeError::Conflict(_)) => {
                    self.clear_name(game, &parked, Some(&old)).await?;
                    rt.rename(&old, &parked)
                        .await
                        .map_err(|e| runtime_failure("rename", &e))?;
                }
                Err(e) => return Err(Failed::new(runtime_failure("rename", &e))),
            }
            let new = self.create_and_start(game, &to).await?;
            if let Ok(mut slot) = created.lock() {
                *slot = Some(new.clone());
            }
            match self.wait_healthy(game, &new).await {
                Ok(()) => Ok(new),
                Err(reason) => Err(Failed::new(OpError::new(
                    ErrorCode::PatchRolledBack,
                    format!("{to} did not become healthy ({reason}); rolled back to {from}"),
                ))),
            }
        };
        let swapped = swap.await;
        let new = created.lock().ok().and_then(|mut slot| slot.take());
        match swapped {
            Ok(new) => {
                if let Err(e) = self.remove_if_present(&old).await {
                    warn!(game_id = %game, container = %old, error = %e,
                        "could not remove the replaced container; the reconciler will");
                }
                Ok(Acted {
                    record: self.next_record(
                        game,
                        record,
                        RuntimeStatus::Running,
                        Some(new.clone()),
                        Some(to),
                    ),
                    container: Some(new),
                })
            }
            Err(mut failed) => {
                match self.roll_back(game, &old, new.as_ref()).await {
                    Ok(()) => {
                        if failed.error.code != ErrorCode::PatchRolledBack {
                            failed.error = OpError::new(
                                ErrorCode::PatchRolledBack,
                                format!("{}; rolled back to {from}", failed.error),
                            );
                        }
                        failed.record = Some(self.next_record(
                            game,
                            record,
                            RuntimeStatus::Running,
                            Some(old.clone()),
                            Some(from),
                        ));
                    }
                    Err(rollback) => {
                        warn!(game_id = %game, error = %rollback, "patch rollback incomplete; the reconciler finishes it");
                        failed.error = OpError::new(
                            ErrorCode::PatchRollbackIncomplete,
                            format!(
                                "{}; the rollback to {from} could not finish ({rollback}); \
                                 the reconciler restarts the previous engine",
                                failed.error
                            ),
                        );
                        // The previous engine is not running now: say so.
                        // The record keeps binding it, and this row's code
                        // tells the reconciler (and TTL cleanup) that it is
                        // to be restarted, not cleaned up.
                        failed.record = Some(self.next_record(
                            game,
                            record,
                            RuntimeStatus::Stopped,
                            Some(old.clone()),
                            Some(from),
                        ));
                    }
                }
                failed.container = Some(old);
                Err(failed)
            }
        }
    }

    /// Puts the previous engine back after a failed patch, whatever state
    /// Docker is in: the new container is removed (a removal already in
    /// progress is waited out by the adapter; one already gone is fine),
    /// the old one takes its canonical name back (a name still held for a
    /// moment is retried) and is started. Each step is retried within
    /// [`ROLLBACK_ATTEMPTS`]; `Err` says which step could not finish.
    ///
    /// Rename before start: Docker's embedded DNS registers a container's
    /// name when it starts and does not follow a rename of a running one
    /// (seen on 20.10: `rtm-<game>` resolved to nothing after a running
    /// parked engine was renamed back), so starting under the parked name
    /// would leave `engine_endpoint` dead.
    pub(in crate::service) async fn roll_back(
        &self,
        game: &GameId,
        old: &ContainerId,
        new: Option<&ContainerId>,
    ) -> Result<(), OpError> {
        let rt = &self.adapters.runtime;
        let canonical = game.container_name();
        if let Some(new) = new {
            self.retrying("remove the new container", || async {
                self.remove_if_present(new).await
            })
            .await?;
        }
        // Anything else under the canonical name (e.g. a create that
        // answered with an error after all) must go too: old and new share
        // the state directory and must never run together.
        self.retrying("clear the canonical name", || async {
            self.clear_name(game, &canonical, Some(old))
                .await
                .map_err(|f| RuntimeError::Other(f.error.message))
        })
        .await?;
        self.retrying("rename the previous engine back", || async {
            let info = rt.inspect(old).await?;
            if info.summary.name == canonical {
                return Ok(());
            }
            match rt.rename(old, &canonical).await {
                Err(RuntimeError::Conflict(e)) => {
                    // Docker may hold a removed container's name a moment
                    // longer; or a stray container took it. Clear and retry.
                    if let Err(f) = self.clear_name(game, &canonical, Some(old)).await {
                        warn!(game_id = %game, error = %f.error, "could not clear the canonical name");
                    }
                    Err(RuntimeError::Conflict(e))
                }
                other => other,
            }
        })
        .await?;
        self.retrying("start the previous engine", || async {
            rt.start(old).await
        })
        .await
    }

    /// Runs `step` until it succeeds, at most [`ROLLBACK_ATTEMPTS`] times,
    /// pausing [`ROLLBACK_PAUSE`] between tries. `NotFound` is final: the
    /// container the step needs is gone, retrying cannot bring it back.
    async fn retrying<F, Fut>(&self, what: &str, step: F) -> Result<(), OpError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), RuntimeError>>,
    {
        let mut attempt = 1;
        loop {
            match step().await {
                Ok(()) => return Ok(()),
                Err(e @ RuntimeError::NotFound(_)) => {
                    return Err(runtime_failure(what, &e));
                }
                Err(e) if attempt >= ROLLBACK_ATTEMPTS => {
                    return Err(runtime_failure(what, &e));
                }
                Err(e) => {
                    warn!(error = %e, attempt, "{what}: retrying");
                    attempt += 1;
                    self.adapters.clock.sleep(ROLLBACK_PAUSE).await;
                }
            }
        }
    }

    /// Probes the new container until it answers, it exits, or
    /// `patch_health_timeout` passes. Returns the last reason on failure.
    async fn wait_healthy(&self, game: &GameId, id: &ContainerId) -> Result<(), String> {
        let clock = &self.adapters.clock;
        let deadline = clock.now() + self.config.patch_health_timeout;
        loop {
            let reason = match self.adapters.runtime.inspect(id).await {
                Ok(info)
                    if !matches!(
                        info.state,
                        ContainerState::Running | ContainerState::Created
                    ) =>
                {
                    return Err(format!(
                        "the engine exited (status {}, exit code {})",
                        info.state,
                        info.exit_code
                            .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                    ));
                }
                Ok(info) => {
                    let target = ProbeTarget {
                        endpoint: self.config.engine_endpoint(game),
                        ip: info.ip,
                        port: self.config.engine_port,
                    };
                    match self.adapters.probe.probe(&target).await {
                        Ok(()) => return Ok(()),
                        Err(e) => e.to_string(),
                    }
                }
                Err(RuntimeError::NotFound(_)) => {
                    return Err("the new engine container vanished".to_owned());
                }
                Err(e) => e.to_string(),
            };
            if clock.now() >= deadline {
                return Err(format!(
                    "timed out after {:?}: {reason}",
                    self.config.patch_health_timeout
                ));
            }
            clock.sleep(self.config.patch_probe_interval).await;
        }
    }
}
