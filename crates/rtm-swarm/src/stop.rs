//! Stopping a task, the two ways a manager can: on its own node by
//! stopping the task's container with the request's grace (its end stays
//! listed with its real exit code), elsewhere through the orchestrator
//! (scale to 0), keeping the end on the service because Swarm deletes a
//! task scaled away.

use std::time::Duration;

use rtm_domain::RuntimeError;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{classify, to_runtime, Failure};
use crate::feed::Observed;
use crate::model::{self, Phase, Service, Task};
use crate::runtime::{SwarmRuntime, LABEL_LAST_END, LABEL_LAST_EXIT, LABEL_LAST_TASK, TASK_POLL};

/// Beyond a stop's grace: time for the node to report the task's end.
const STOP_MARGIN: Duration = Duration::from_secs(30);
/// How often a stop through the orchestrator looks for the task's end.
/// Swarm's task reaper deletes a task scaled away in its next batch
/// (swarmkit batches every 250 ms), taking the exit code with it; at the
/// wait's usual 100 ms, one slow answer from the manager (seen under CI
/// load) was enough to miss it.
const END_POLL: Duration = Duration::from_millis(20);

impl SwarmRuntime {
    /// Reports the end of `task` (its exit code, when it ended and, on
    /// this node, OOM).
    async fn observe_end(
        &self,
        svc: &Service,
        task: &Task,
        exit: Option<i64>,
        at: Option<OffsetDateTime>,
    ) {
        let local = self.local_facts(task).await;
        self.publish(Observed::Ended {
            service: svc.id.clone(),
            game: svc.game_id(),
            task: task.id.clone(),
            exit,
            oom: local.as_ref().is_some_and(|l| l.oom_killed),
            at: model::ended_at(task, local.as_ref()).or(at),
        });
    }

    /// Stops through the orchestrator (scale to 0: the task's node stops
    /// it with the service's grace), keeps the end on the service, as
    /// Swarm deletes the task soon after.
    pub(crate) async fn stop_by_scaling(
        &self,
        svc: &Service,
        task: &Task,
    ) -> Result<(), RuntimeError> {
        let what = format!("stop service {}", svc.id);
        self.update(&svc.id, &what, |spec| {
            spec["Mode"] = json!({ "Replicated": { "Replicas": 0 } });
        })
        .await?;
        let limit = self.inner.config.stop_grace + STOP_MARGIN;
        // `Some(code)`: seen ended; `None`: deleted before it was seen.
        let end = self
            .wait_tasks(&svc.id, (limit, END_POLL), &what, |tasks| {
                match tasks.iter().find(|t| t.id == task.id) {
                    None => Some(None),
                    Some(t) if matches!(t.phase(), Phase::Ended | Phase::Lost) => {
                        Some(Some(t.clone()))
                    }
                    Some(_) => None,
                }
            })
            .await?;
        let exit = end.as_ref().and_then(Task::exit_code);
        let last = exit.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        // Deleted before seen ended: it ended by now, before any later
        // start.
        let ended = end
            .as_ref()
            .and_then(|t| model::ended_at(t, None))
            .unwrap_or_else(OffsetDateTime::now_utc);
        let ended_text = ended.format(&Rfc3339).unwrap_or_default();
        self.update(&svc.id, &what, |spec| {
            if let Some(l) = spec.get_mut("Labels").and_then(Value::as_object_mut) {
                l.insert(LABEL_LAST_TASK.into(), json!(task.id));
                l.insert(LABEL_LAST_EXIT.into(), json!(last));
                l.insert(LABEL_LAST_END.into(), json!(ended_text));
            }
        })
        .await?;
        self.observe_end(svc, end.as_ref().unwrap_or(task), exit, Some(ended))
            .await;
        Ok(())
    }

    /// Stops the task's container on this node with the request's grace:
    /// the task ends `complete`/`failed` with its real exit code and stays
    /// listed (with its logs) until the next start replaces it.
    pub(crate) async fn stop_here(
        &self,
        svc: &Service,
        task: &Task,
        container: &str,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let what = format!("stop service {}", svc.id);
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        match self
            .api()
            .raw_post(&format!("/containers/{container}/stop?t={secs}"))
            .await
        {
            Ok(()) => {}
            Err(e) if matches!(classify(&e), Failure::Status(304 | 404, _)) => {}
            Err(e) => return Err(to_runtime(e, &what)),
        }
        let ended = self
            .wait_tasks(&svc.id, (grace + STOP_MARGIN, TASK_POLL), &what, |tasks| {
                tasks
                    .iter()
                    .find(|t| t.id == task.id && matches!(t.phase(), Phase::Ended | Phase::Lost))
                    .cloned()
            })
            .await?;
        self.observe_end(svc, &ended, ended.exit_code(), None).await;
        Ok(())
    }
}
