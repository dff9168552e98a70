//! The output of a service's newest task (the port's `logs` and
//! `follow_logs`).
//!
//! - A task on this node: its container's logs through rtm-docker (whose
//!   owner check holds: task containers carry `rtm.owner`).
//! - A task elsewhere: the manager's `GET /tasks/{id}/logs`, which the
//!   task's node serves through Swarm, asked with rtm-docker's options and
//!   split into lines by rtm-docker's [`LogSplitter`] (task logs are framed
//!   like container logs): the stamp becomes [`LogLine::at`], the `since`
//!   cut is exact, memory is bounded by [`LogTail`].
//! - No task left (never started, or deleted by Swarm after a stop by
//!   scaling): no lines.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use rtm_domain::ports::{ContainerLogs, LogLine, LogQuery, LogTail};
use rtm_domain::{ContainerId, RuntimeError};

use rtm_docker::{log_options, LogSplitter};

use crate::api::SwarmApi;
use crate::error::to_runtime;
use crate::model;
use crate::runtime::SwarmRuntime;

/// How long a follow keeps reading after its task was seen ended.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

type Lines = Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send>>;

/// Where a service's output is read from.
pub(crate) enum Source {
    /// The task's container, on this node.
    Local(ContainerId),
    /// The task, on another node.
    Task(String),
    /// No task left.
    Nothing,
}

impl SwarmRuntime {
    pub(crate) async fn log_source(&self, id: &ContainerId) -> Result<Source, RuntimeError> {
        let svc = self.owned(id).await?;
        let tasks = self.tasks_of(&svc.id).await?;
        let Some(task) = model::newest(&tasks) else {
            return Ok(Source::Nothing);
        };
        if let Some(c) = self.local_container(task).await {
            if let Some(c) = ContainerId::new(c.to_owned()) {
                return Ok(Source::Local(c));
            }
        }
        Ok(match task.container_id() {
            Some(_) => Source::Task(task.id.clone()),
            None => Source::Nothing,
        })
    }
}

impl SwarmRuntime {
    /// Whether the task still runs (or may still: an unreachable manager
    /// does not end a follow).
    async fn task_running(&self, task: &str) -> bool {
        match self.api().task(task).await {
            Ok(t) => matches!(t.phase(), model::Phase::Running | model::Phase::Pending),
            Err(e) => !crate::error::is_not_found(&e),
        }
    }
}

/// The selected lines of task `task`.
pub(crate) async fn read_task(
    api: &SwarmApi,
    task: &str,
    query: &LogQuery,
) -> Result<ContainerLogs, RuntimeError> {
    let mut tail = LogTail::new(*query);
    if query.tail == 0 {
        return Ok(tail.finish());
    }
    let mut chunks = api.task_logs(task, &log_options(query, false));
    let mut splitter = LogSplitter::default();
    let mut lines = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| to_runtime(e, &format!("logs of task {task}")))?;
        splitter.feed(chunk, &mut lines);
        for line in lines.drain(..) {
            tail.push(line);
        }
    }
    splitter.finish(&mut lines);
    for line in lines {
        tail.push(line);
    }
    Ok(tail.finish())
}

/// The selected lines of task `task`, then every new one, as long as
/// Swarm streams them. A tokio task owns a runtime clone (the stream
/// borrows the client) and forwards lines into a small channel; it stops
/// when Swarm ends the stream or the reader drops it.
pub(crate) fn follow_task(rt: SwarmRuntime, task: String, query: LogQuery) -> Lines {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let mut chunks = rt.api().task_logs(&task, &log_options(&query, true));
        let mut splitter = LogSplitter::default();
        let mut lines = Vec::new();
        // Swarm keeps a task's log stream open after the task ended (seen
        // on 20.10), while the port's follow ends with the engine: the
        // task is looked at every poll interval, and once it is no longer
        // running the stream gets `DRAIN` more to deliver its last lines.
        let mut check = tokio::time::interval(rt.config().poll_interval);
        let mut ended: Option<tokio::time::Instant> = None;
        loop {
            let chunk = tokio::select! {
                chunk = chunks.next() => chunk,
                _ = check.tick() => {
                    match ended {
                        Some(at) if at.elapsed() >= DRAIN => break,
                        Some(_) => {}
                        None => {
                            if !rt.task_running(&task).await {
                                ended = Some(tokio::time::Instant::now());
                            }
                        }
                    }
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            match chunk {
                Ok(chunk) => splitter.feed(chunk, &mut lines),
                Err(e) => {
                    let _ = tx
                        .send(Err(to_runtime(e, &format!("logs of task {task}"))))
                        .await;
                    return;
                }
            }
            for line in lines.drain(..) {
                if LogTail::wanted(&query, &line) && tx.send(Ok(line)).await.is_err() {
                    // The reader dropped the stream: stop following.
                    return;
                }
            }
        }
        splitter.finish(&mut lines);
        for line in lines {
            if LogTail::wanted(&query, &line) && tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    }))
}
