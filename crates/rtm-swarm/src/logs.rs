//! The output of a service's newest task (the port's `logs` and
//! `follow_logs`).
//!
//! - A task on this node: its container's logs through rtm-docker (whose
//!   owner check holds: task containers carry `rtm.owner`).
//! - A task elsewhere: the manager's `GET /tasks/{id}/logs`, which the
//!   task's node serves through Swarm, asked with `timestamps` and split
//!   into lines here with rtm-docker's rules (a short copy: its reader is
//!   private to it): the stamp becomes [`LogLine::at`], the `since` cut is
//!   exact, memory is bounded by [`LogTail`].
//! - No task left (never started, or deleted by Swarm after a stop by
//!   scaling): no lines.

use std::pin::Pin;

use docker_api::conn::TtyChunk;
use docker_api::opts::LogsOpts;
use futures_util::{Stream, StreamExt};
use rtm_domain::ports::{ContainerLogs, LogLine, LogQuery, LogStream, LogTail};
use rtm_domain::{ContainerId, RuntimeError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

fn options(query: &LogQuery, follow: bool) -> LogsOpts {
    let mut b = LogsOpts::builder()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(follow)
        .n_lines(query.tail as usize);
    if let Some(since) = query.since {
        // Docker's `since` is whole seconds: rounded down, cut exactly here.
        if let Some(t) = chrono::DateTime::from_timestamp(since.unix_timestamp(), 0) {
            b = b.since(&t);
        }
    }
    b.build()
}

/// Frames → lines, per stream.
#[derive(Debug, Default)]
struct Splitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Splitter {
    fn feed(&mut self, chunk: TtyChunk, out: &mut Vec<LogLine>) {
        let (stream, buf, bytes) = match chunk {
            TtyChunk::StdOut(b) => (LogStream::Stdout, &mut self.stdout, b),
            TtyChunk::StdErr(b) => (LogStream::Stderr, &mut self.stderr, b),
            TtyChunk::StdIn(_) => return,
        };
        buf.extend_from_slice(&bytes);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let rest = buf.split_off(nl + 1);
            let mut raw = std::mem::replace(buf, rest);
            raw.pop();
            out.push(parse_line(stream, &raw));
        }
    }

    fn finish(self, out: &mut Vec<LogLine>) {
        for (stream, raw) in [
            (LogStream::Stdout, self.stdout),
            (LogStream::Stderr, self.stderr),
        ] {
            if !raw.is_empty() {
                out.push(parse_line(stream, &raw));
            }
        }
    }
}

/// `<RFC 3339 stamp> <text>`; a line without a stamp is kept whole. Swarm
/// may put its own `key=value,…` details between the stamp and the text
/// only when asked (`details`), which the adapter never does.
fn parse_line(stream: LogStream, raw: &[u8]) -> LogLine {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    if let Some((stamp, rest)) = text.split_once(' ') {
        if let Ok(at) = OffsetDateTime::parse(stamp, &Rfc3339) {
            return LogLine {
                stream,
                at: Some(at),
                text: rest.to_owned(),
            };
        }
    }
    LogLine {
        stream,
        at: None,
        text: text.to_owned(),
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
    let mut chunks = api.task_logs(task, &options(query, false));
    let mut splitter = Splitter::default();
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
        let mut chunks = rt.api().task_logs(&task, &options(&query, true));
        let mut splitter = Splitter::default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_stamped_lines_per_stream() {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        s.feed(
            TtyChunk::StdOut(b"2026-12-01T22:00:00.5Z hello\n2026-12-01T22:00:01Z wo".to_vec()),
            &mut out,
        );
        s.feed(TtyChunk::StdErr(b"no stamp\n".to_vec()), &mut out);
        s.feed(TtyChunk::StdOut(b"rld\n".to_vec()), &mut out);
        s.finish(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|l| (l.stream, l.at.is_some(), l.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (LogStream::Stdout, true, "hello"),
                (LogStream::Stderr, false, "no stamp"),
                (LogStream::Stdout, true, "world"),
            ]
        );
    }
}
