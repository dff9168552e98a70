//! Reading a game's container output (the admin logs endpoint): resolve
//! the game's *current* container from its record, then ask the runtime.
//!
//! Read-only: no lock, no operation row. A game with no record, or whose
//! record is `removed` (its container is gone even if the id is kept for
//! the audit), has no logs to read (`LogsError::NoContainer`).

use std::pin::Pin;

use futures_core::Stream;

use super::RuntimeService;
use crate::ports::{ContainerLogs, ContainerRuntime, LogLine, LogQuery, Ports, RuntimeRecords};
use crate::{ContainerId, ErrorCode, GameId, RuntimeError, RuntimeStatus, StoreError};

/// A followed container's lines (boxed: the port's stream type names the
/// borrow it was made from, though it holds none).
pub type LogFollow = Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static>>;

/// Why a game's logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// No record, a removed record, or a container the runtime no longer has.
    #[error("game {0} has no container")]
    NoContainer(GameId),
    /// Reading the game's record failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime failed to read the container's output (other than
    /// `NotFound`, which is `NoContainer`).
    #[error(transparent)]
    Runtime(RuntimeError),
}

impl LogsError {
    /// The code a caller sees: `not_found` for `NoContainer`,
    /// `docker_unavailable` when the runtime is unreachable, the store's
    /// code for a store failure, `internal` otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            LogsError::NoContainer(_) => ErrorCode::NotFound,
            LogsError::Store(e) => e.code(),
            LogsError::Runtime(RuntimeError::Unavailable(_)) => ErrorCode::DockerUnavailable,
            LogsError::Runtime(_) => ErrorCode::Internal,
        }
    }

    fn from_runtime(game: &GameId, e: RuntimeError) -> Self {
        match e {
            // Vanished since the record was written: the reconciler will
            // mark it removed; for the reader it is simply gone.
            RuntimeError::NotFound(_) => LogsError::NoContainer(game.clone()),
            e => LogsError::Runtime(e),
        }
    }
}

impl<P: Ports> RuntimeService<P> {
    /// The game's current container, if it has one.
    async fn current_container(&self, game: &GameId) -> Result<ContainerId, LogsError> {
        let record = self.adapters.store.get_record(game).await?;
        record
            .filter(|r| r.status != RuntimeStatus::Removed)
            .and_then(|r| r.container_id)
            .ok_or_else(|| LogsError::NoContainer(game.clone()))
    }

    /// The last lines of the game's current container, oldest first.
    pub async fn container_logs(
        &self,
        game: &GameId,
        query: &LogQuery,
    ) -> Result<(ContainerId, ContainerLogs), LogsError> {
        let id = self.current_container(game).await?;
        let logs = self
            .adapters
            .runtime
            .logs(&id, query)
            .await
            .map_err(|e| LogsError::from_runtime(game, e))?;
        Ok((id, logs))
    }

    /// The game's current container and a stream of its lines: the
    /// selected tail, then every new line until the container stops.
    pub async fn follow_container_logs(
        &self,
        game: &GameId,
        query: &LogQuery,
    ) -> Result<(ContainerId, LogFollow), LogsError> {
        let id = self.current_container(game).await?;
        // Checked up front so a gone container is a 404, not an error in
        // the middle of an already started stream.
        self.adapters
            .runtime
            .inspect(&id)
            .await
            .map_err(|e| LogsError::from_runtime(game, e))?;
        let stream: LogFollow = Box::pin(self.adapters.runtime.follow_logs(&id, query));
        Ok((id, stream))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use time::Duration;

    use super::*;
    use crate::fakes::FakePorts;
    use crate::ports::{LogStream, LogTail};
    use crate::service::{OperationRequest, ServiceConfig};
    use crate::transition::Command;
    use crate::{Allowlist, ImageRef, OpSource};

    fn line(text: &str, at: i64) -> LogLine {
        LogLine {
            stream: LogStream::Stdout,
            at: Some(time::OffsetDateTime::UNIX_EPOCH + Duration::seconds(at)),
            text: text.to_owned(),
        }
    }

    fn select(lines: &[LogLine], tail: u32, since: Option<i64>, max_bytes: usize) -> ContainerLogs {
        let mut t = LogTail::new(LogQuery {
            tail,
            since: since.map(|s| time::OffsetDateTime::UNIX_EPOCH + Duration::seconds(s)),
            max_bytes,
        });
        for l in lines {
            t.push(l.clone());
        }
        t.finish()
    }

    fn texts(logs: &ContainerLogs) -> Vec<&str> {
        logs.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn the_tail_keeps_the_newest_lines_within_the_byte_cap() {
        let lines: Vec<_> = (1..=5).map(|i| line(&format!("line{i}"), i)).collect();
        let all = select(&lines, 200, None, 1 << 20);
        assert_eq!(texts(&all), ["line1", "line2", "line3", "line4", "line5"]);
        assert!(!all.truncated);
        // The tail alone is not a truncation.
        let two = select(&lines, 2, None, 1 << 20);
        assert_eq!(texts(&two), ["line4", "line5"]);
        assert!(!two.truncated);
        // `since` is exclusive.
        let after = select(&lines, 200, Some(3), 1 << 20);
        assert_eq!(texts(&after), ["line4", "line5"]);
        // 12 bytes hold two 5-byte lines, not three.
        let capped = select(&lines, 200, None, 12);
        assert_eq!(texts(&capped), ["line4", "line5"]);
        assert!(capped.truncated);
        // The cap cuts only what the tail asked for.
        let exact = select(&lines, 2, None, 10);
        assert_eq!(texts(&exact), ["line4", "line5"]);
        assert!(!exact.truncated);
        assert!(select(&lines, 0, None, 1 << 20).lines.is_empty());
    }

    fn service(fakes: &FakePorts) -> RuntimeService<FakePorts> {
        RuntimeService::new(
            fakes.adapters(),
            ServiceConfig {
                allowlist: Allowlist::parse("rtm.local/*").expect("allowlist"),
                lock_wait: std::time::Duration::from_secs(5),
                stop_timeout: std::time::Duration::from_secs(30),
                patch_health_timeout: std::time::Duration::from_secs(60),
                patch_probe_interval: std::time::Duration::from_millis(500),
                engine_port: 8080,
                state_root: "/var/lib/rtmanager/games".into(),
                network: "rtm-engines".into(),
            },
        )
    }

    const QUERY: LogQuery = LogQuery {
        tail: 200,
        since: None,
        max_bytes: 1 << 20,
    };

    #[tokio::test]
    async fn logs_come_from_the_current_container_only() {
        let fakes = FakePorts::new();
        let image = ImageRef::parse("rtm.local/engine-stub:1.0.0").expect("image");
        fakes.runtime.add_image(&image.to_string());
        let svc = service(&fakes);
        let g = GameId::parse("g1").expect("id");

        let e = svc.container_logs(&g, &QUERY).await.expect_err("no record");
        assert_eq!(e.code(), ErrorCode::NotFound);

        let run = |command| {
            svc.execute(OperationRequest::new(
                g.clone(),
                command,
                OpSource::AdminRest,
            ))
        };
        assert!(run(Command::Start { image })
            .await
            .expect("start")
            .succeeded());
        let id = fakes
            .store
            .record(&g)
            .and_then(|r| r.container_id)
            .expect("container");
        fakes.runtime.write_log(&id, LogStream::Stdout, "hello");
        fakes.runtime.write_log(&id, LogStream::Stderr, "oops");
        let (got, logs) = svc.container_logs(&g, &QUERY).await.expect("logs");
        assert_eq!(got, id);
        assert_eq!(texts(&logs), ["hello", "oops"]);
        assert_eq!(logs.lines[1].stream, LogStream::Stderr);
        let (_, follow) = svc.follow_container_logs(&g, &QUERY).await.expect("follow");
        let followed: Vec<_> = follow.map(|l| l.expect("line").text).collect().await;
        assert_eq!(followed, ["hello", "oops"]);

        fakes.runtime.set_unavailable(true);
        let e = svc
            .container_logs(&g, &QUERY)
            .await
            .expect_err("docker down");
        assert_eq!(e.code(), ErrorCode::DockerUnavailable);
        fakes.runtime.set_unavailable(false);

        // A stopped game keeps its container and its logs; a removed one
        // has none, though the record still names the old container.
        assert!(run(Command::Stop).await.expect("stop").succeeded());
        assert!(svc.container_logs(&g, &QUERY).await.is_ok());
        assert!(run(Command::Cleanup).await.expect("cleanup").succeeded());
        assert_eq!(
            fakes.store.record(&g).and_then(|r| r.container_id),
            Some(id)
        );
        let e = svc.container_logs(&g, &QUERY).await.expect_err("removed");
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(svc.follow_container_logs(&g, &QUERY).await.is_err());
    }
}
