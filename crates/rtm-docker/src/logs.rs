//! Reading a container's output through the Engine API's `/logs`
//! endpoint (the port's `logs` and `follow_logs`).
//!
//! - Ownership first: the container is inspected and must carry our owner
//!   label (a foreign one is `NotFound`), then its full id is used.
//! - Docker is asked for `stdout`, `stderr` and `timestamps`; the stamp
//!   that prefixes each line is parsed into [`LogLine::at`] and removed.
//!   Docker's own `since` has whole-second precision, so it is sent
//!   rounded down and the exact (exclusive) cut is made here. `tail` is
//!   sent as is: cutting lines off the front does not change which are
//!   the newest.
//! - Memory is bounded while reading ([`LogTail`]): at most `tail` lines
//!   and `max_bytes` of text are held, however much Docker sends.
//! - A follow runs in a tokio task that owns a client clone (docker-api's
//!   stream borrows its container handle) and forwards lines into a small
//!   channel; it stops when Docker ends the stream (the container stopped)
//!   or as soon as the consumer drops the stream.

use docker_api::conn::TtyChunk;
use docker_api::opts::LogsOpts;
use futures_util::{Stream, StreamExt};
use rtm_domain::ports::{ContainerLogs, LogLine, LogQuery, LogStream, LogTail};
use rtm_domain::{ContainerId, RuntimeError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::error::to_runtime;
use crate::runtime::DockerRuntime;

type Item = Result<LogLine, RuntimeError>;

/// Lines a follow buffers for a slow reader before it reads Docker slower.
const FOLLOW_BUFFER: usize = 256;

/// Docker's log options for `query` (both streams, with timestamps, the
/// tail; `since` in whole seconds, which Docker rounds down: the caller
/// cuts exactly with [`LogTail`](rtm_domain::ports::LogTail)). Shared with
/// the Swarm adapter, whose task logs take the same options.
pub fn log_options(query: &LogQuery, follow: bool) -> LogsOpts {
    let mut b = LogsOpts::builder()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(follow)
        .n_lines(query.tail as usize);
    if let Some(since) = query.since {
        if let Some(t) = chrono::DateTime::from_timestamp(since.unix_timestamp(), 0) {
            b = b.since(&t);
        }
    }
    b.build()
}

/// Splits Docker's multiplexed log frames into lines, per stream (a frame
/// is usually one line, but nothing promises it), parsing each line's
/// timestamp. Shared with the Swarm adapter (task logs are framed alike).
#[derive(Debug, Default)]
pub struct LogSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LogSplitter {
    /// Adds a frame; appends the lines it completes to `out`.
    pub fn feed(&mut self, chunk: TtyChunk, out: &mut Vec<LogLine>) {
        let (stream, buf, bytes) = match chunk {
            TtyChunk::StdOut(b) => (LogStream::Stdout, &mut self.stdout, b),
            TtyChunk::StdErr(b) => (LogStream::Stderr, &mut self.stderr, b),
            // Never sent by `/logs`.
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

    /// Appends what is left without a final line break.
    pub fn finish(self, out: &mut Vec<LogLine>) {
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

/// `<RFC 3339 stamp> <text>` → a line; a line without a parsable stamp is
/// kept whole, without a time.
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

pub(crate) async fn read(
    rt: &DockerRuntime,
    id: &ContainerId,
    query: &LogQuery,
) -> Result<ContainerLogs, RuntimeError> {
    let mut tail = LogTail::new(*query);
    if query.tail == 0 {
        rt.owned_id(id).await?;
        return Ok(tail.finish());
    }
    let full = rt.owned_id(id).await?;
    let container = rt.docker().containers().get(full);
    let opts = log_options(query, false);
    let mut chunks = container.logs(&opts);
    let mut splitter = LogSplitter::default();
    let mut lines = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| to_runtime(e, &format!("logs of container {id}")))?;
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

pub(crate) fn follow(
    rt: DockerRuntime,
    id: ContainerId,
    query: LogQuery,
) -> impl Stream<Item = Item> + Send + 'static {
    let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
    // Started on the first poll, which is inside the caller's runtime.
    let pump = Some(Box::pin(pump(rt, id, query, tx)));
    futures_util::stream::unfold((pump, rx), |(pump, mut rx)| async move {
        if let Some(pump) = pump {
            tokio::spawn(pump);
        }
        let item = rx.recv().await?;
        Some((item, (None, rx)))
    })
    // Polling an ended follow again yields `None` again.
    .fuse()
}

async fn pump(rt: DockerRuntime, id: ContainerId, query: LogQuery, tx: mpsc::Sender<Item>) {
    let full = match rt.owned_id(&id).await {
        Ok(full) => full,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let container = rt.docker().containers().get(full);
    let opts = log_options(&query, true);
    let mut chunks = container.logs(&opts);
    let mut splitter = LogSplitter::default();
    let mut lines = Vec::new();
    loop {
        let next = tokio::select! {
            // The reader went away: close Docker's connection.
            () = tx.closed() => return,
            next = chunks.next() => next,
        };
        match next {
            None => break,
            Some(Ok(chunk)) => splitter.feed(chunk, &mut lines),
            Some(Err(e)) => {
                let _ = tx
                    .send(Err(to_runtime(e, &format!("logs of container {id}"))))
                    .await;
                return;
            }
        }
        for line in lines.drain(..) {
            if LogTail::wanted(&query, &line) && tx.send(Ok(line)).await.is_err() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_stamped_lines_per_stream() {
        let mut s = LogSplitter::default();
        let mut out = Vec::new();
        s.feed(
            TtyChunk::StdOut(b"2026-12-01T10:00:00.5Z hello\n2026-12-01T10:00:01Z wor".to_vec()),
            &mut out,
        );
        s.feed(
            TtyChunk::StdErr(b"2026-12-01T10:00:02Z oops\r\n".to_vec()),
            &mut out,
        );
        s.feed(TtyChunk::StdOut(b"ld\n".to_vec()), &mut out);
        s.feed(TtyChunk::StdOut(b"no stamp".to_vec()), &mut out);
        s.finish(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|l| (l.stream, l.at.map(|t| t.unix_timestamp()), l.text.as_str()))
            .collect();
        let base = time::macros::datetime!(2026-12-01 10:00 UTC).unix_timestamp();
        assert_eq!(
            got,
            [
                (LogStream::Stdout, Some(base), "hello"),
                (LogStream::Stderr, Some(base + 2), "oops"),
                (LogStream::Stdout, Some(base + 1), "world"),
                (LogStream::Stdout, None, "no stamp"),
            ]
        );
    }
}
