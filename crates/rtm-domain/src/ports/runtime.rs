//! The container runtime port ([`ContainerRuntime`]) and its value types:
//! what the domain asks to create, what a list, an inspect, the event feed
//! and the logs report. Runtime quirks (Docker's state words, the leading
//! `/` of names, empty labels) are the adapter's to convert; nothing here
//! carries them.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use futures_core::Stream;
use time::OffsetDateTime;

use crate::{ContainerId, GameId, ImageRef, RuntimeError};

/// What the domain asks the container runtime to create.
///
/// The adapter adds its own labels (`rtm.managed`, `rtm.owner`) and those
/// derived from here (`rtm.game_id`, `rtm.image_ref`, `rtm.state_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The game the container runs (its `rtm.game_id` label).
    pub game_id: GameId,
    /// The container name (`rtm-<game>`): also its DNS name on the
    /// engines' network.
    pub name: String,
    /// The engine image; already present ([`ContainerRuntime::ensure_image`]).
    pub image: ImageRef,
    /// Host directory of the game's state; created (owned by `user`) if missing.
    pub state_path: String,
}

/// Docker's own health check result, when the image defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerHealth {
    /// Within the health check's start period; no verdict yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// The health check failed its configured number of times in a row.
    Unhealthy,
}

/// One RTM-owned container, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The runtime's id of the container.
    pub id: ContainerId,
    /// The current name (`rtm-<game>`, or `rtmold-<game>` while parked
    /// by a patch). MUST NOT carry Docker's leading `/`: the adapter strips
    /// it once, so the domain compares names as they are.
    pub name: String,
    /// From the `rtm.game_id` label; `None` if the label is not a valid id.
    pub game_id: Option<GameId>,
    /// The `rtm.image_ref` label; `None` when the label is missing or empty.
    pub image_ref: Option<String>,
    /// The `rtm.state_path` label: the game's host state directory;
    /// `None` when the label is missing or empty.
    pub state_path: Option<String>,
    /// Whether the container is running now (not created, paused,
    /// exited or dead).
    pub running: bool,
    /// When the runtime created the container.
    pub created_at: OffsetDateTime,
    /// Docker's own health-check result, when the image defines one.
    pub health: Option<DockerHealth>,
    /// The address on the engines' network *now* (Docker's list carries
    /// it, so one list gives every container's current address: a
    /// restart, a start or a network reconnect moves it).
    pub ip: Option<IpAddr>,
}

/// Where a container is in its life cycle, as the runtime reports it
/// (Docker's `State.Status`). [`ContainerState::as_str`] gives the
/// runtime's own word, which health details record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created and never started (or not started again since).
    Created,
    /// Its process runs.
    Running,
    /// Frozen by a pause.
    Paused,
    /// Being restarted by the runtime's restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// The runtime failed to stop or remove it.
    Dead,
    /// The runtime reported no state, or one this version does not know.
    Unknown,
}

impl ContainerState {
    /// The runtime's word for the state (`running`, `exited`…);
    /// `unknown` for [`ContainerState::Unknown`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the process ended, so an exit code means something.
    pub fn has_exited(self) -> bool {
        matches!(self, Self::Exited | Self::Dead)
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One RTM-owned container, as inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// What a list says about it.
    pub summary: ContainerSummary,
    /// Where the container is in the runtime's life cycle (Docker's
    /// `State.Status`).
    pub state: ContainerState,
    /// The exit code of the last run, once it exited.
    pub exit_code: Option<i64>,
    /// Docker's `State.OOMKilled`: the kernel's OOM killer ended the last
    /// run. The only word on OOM the domain trusts besides `oom` events.
    pub oom_killed: bool,
    /// Same as `summary.health` (kept here for existing callers).
    pub health: Option<DockerHealth>,
    /// Address on the engines' network; same as `summary.ip`.
    pub ip: Option<IpAddr>,
    /// When the last run started; `None` if it never ran.
    pub started_at: Option<OffsetDateTime>,
    /// When the last run ended; `None` while running or never run.
    pub finished_at: Option<OffsetDateTime>,
}

/// What happened to a container, from the runtime's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEventKind {
    /// The container started (or was restarted).
    Start,
    /// The container's process ended.
    Die {
        /// Its exit code, when the runtime reported one.
        exit_code: Option<i64>,
    },
    /// The kernel's OOM killer hit the container. Docker may send it just
    /// before or just after the matching `Die`.
    Oom,
    /// The runtime itself sent the container a signal (Docker's `kill`
    /// event: a `docker kill`, or a stop's SIGTERM and, after the grace,
    /// SIGKILL). A SIGKILL sent this way explains an exit with 137
    /// without waiting for OOM news. Runtimes that cannot tell never send
    /// it.
    Kill {
        /// The signal's number, when the runtime reported one.
        signal: Option<i64>,
    },
    /// The container was removed.
    Destroy,
    /// Docker's own health check changed its verdict.
    Health(DockerHealth),
}

/// One event of an owned container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container it happened to.
    pub container_id: ContainerId,
    /// From the `rtm.game_id` label; `None` if the label is not a valid id.
    pub game_id: Option<GameId>,
    /// What happened.
    pub kind: ContainerEventKind,
    /// When the runtime saw it (nanosecond precision where available).
    pub at: OffsetDateTime,
}

/// One item of [`ContainerRuntime::events`].
#[derive(Debug)]
pub enum FeedItem {
    /// The feed is (again) subscribed. Events from before it, or from
    /// while it was lost, may be missing: check the containers.
    Connected,
    /// The connection broke (why); the runtime is reconnecting, and a
    /// `Connected` follows once it is back.
    Lost(RuntimeError),
    /// Something happened to an owned container.
    Event(ContainerEvent),
}

/// Which output of the engine a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The engine's standard output.
    Stdout,
    /// The engine's standard error.
    Stderr,
}

impl LogStream {
    /// `"stdout"` or `"stderr"`, as the admin API names them.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a container's output, without its line break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which output it was written to.
    pub stream: LogStream,
    /// When the runtime recorded the line, where it says.
    pub at: Option<OffsetDateTime>,
    /// The line as text (invalid UTF-8 replaced).
    pub text: String,
}

/// Which lines of a container's output to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many lines, the newest.
    pub tail: u32,
    /// Only lines recorded strictly after this instant.
    pub since: Option<OffsetDateTime>,
    /// At most this many bytes of text in all; the oldest lines beyond it
    /// are dropped (and the answer says so).
    pub max_bytes: usize,
}

/// The lines read, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLogs {
    /// The selected lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Whether `max_bytes` dropped lines that `tail` and `since` selected.
    pub truncated: bool,
}

/// Keeps the lines a [`LogQuery`] selects while they are read oldest
/// first, in bounded memory: at most `tail` lines and `max_bytes` of text
/// are held at any time. Shared by the adapters so they cut alike.
#[derive(Debug)]
pub struct LogTail {
    query: LogQuery,
    lines: std::collections::VecDeque<LogLine>,
    bytes: usize,
    /// Lines that passed `since` so far.
    seen: u64,
}

impl LogTail {
    /// An empty tail that keeps what `query` selects.
    pub fn new(query: LogQuery) -> Self {
        Self {
            query,
            lines: std::collections::VecDeque::new(),
            bytes: 0,
            seen: 0,
        }
    }

    /// Whether `line` passes the `since` filter (a line without a time
    /// passes: the runtime already applied `since` as well as it could).
    pub fn wanted(query: &LogQuery, line: &LogLine) -> bool {
        match (query.since, line.at) {
            (Some(since), Some(at)) => at > since,
            _ => true,
        }
    }

    /// Adds the next (newer) line.
    pub fn push(&mut self, line: LogLine) {
        if !Self::wanted(&self.query, &line) || self.query.tail == 0 {
            return;
        }
        self.seen += 1;
        self.bytes += line.text.len();
        self.lines.push_back(line);
        while self.lines.len() > self.query.tail as usize || self.bytes > self.query.max_bytes {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.lines.pop_front() {
            self.bytes -= old.text.len();
        }
    }

    /// The lines kept, oldest first; `truncated` when the byte cap (not
    /// `tail`) left out lines that `since` and `tail` selected.
    pub fn finish(self) -> ContainerLogs {
        // Truncated when the byte cap, not the tail, left lines out.
        let asked = self.seen.min(u64::from(self.query.tail));
        ContainerLogs {
            truncated: (self.lines.len() as u64) < asked,
            lines: self.lines.into(),
        }
    }
}

/// The engine containers (Docker today, an orchestrator's services later).
///
/// The adapter owns the label scheme and its owner value: it MUST never
/// list, inspect, stop, rename or remove a container that does not carry
/// its owner label (such a container is reported as `NotFound`).
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Cheap liveness check for `/readyz`: `Ok` when the runtime answered;
    /// `Unavailable` otherwise. Changes nothing.
    fn ping(&self) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Makes sure `image` is present locally, pulling it when absent.
    /// MUST return `PullFailed` when the pull fails. Idempotent: a
    /// present image is not pulled again.
    fn ensure_image(
        &self,
        image: &ImageRef,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates (does not start) a container: network (created if missing),
    /// state directory bind mount, limits, hardening, labels, env.
    /// MUST return `Conflict` when the name is taken. Not idempotent: the
    /// caller removes a leftover `rtm-<game>` first.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send;

    /// Starts a created or stopped container. Starting a running one is Ok
    /// (idempotent); a missing one is `NotFound`. Returns once the runtime
    /// reports it started, not once the engine is healthy.
    fn start(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// SIGTERM, then SIGKILL after `grace`; returns once it is stopped.
    /// Stopping a stopped container is Ok; a missing one is `NotFound`.
    fn stop(
        &self,
        id: &ContainerId,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes the container (forcefully). A missing one is `NotFound`.
    /// When the runtime is already removing it (another caller), MUST wait
    /// until it is gone and return `Ok` (or `Conflict` after a bounded wait).
    fn remove(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Renames the container. `Conflict` when the name is taken by
    /// another container; a missing one is `NotFound`.
    fn rename(
        &self,
        id: &ContainerId,
        name: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The container's current state. Its name MUST NOT carry the
    /// runtime's own prefix (Docker's leading `/`). MUST return `NotFound` for a
    /// missing or foreign container (so a vanished engine is told apart
    /// from an unreachable runtime, which is `Unavailable`).
    fn inspect(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send;

    /// Every owned container (running or not), of one game when `game` is
    /// set, in one call: state, labels, Docker health and address of each.
    /// Foreign containers are never listed. Names MUST NOT carry the
    /// runtime's own prefix (Docker's leading `/`).
    fn list(
        &self,
        game: Option<&GameId>,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, RuntimeError>> + Send;

    /// The last lines of an owned container's stdout and stderr, as
    /// `query` selects them, oldest first; never more than
    /// `query.max_bytes` of text. MUST return `NotFound` for a missing or
    /// foreign container and `Unavailable` when the runtime is unreachable.
    fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Future<Output = Result<ContainerLogs, RuntimeError>> + Send;

    /// Like [`logs`](ContainerRuntime::logs) (without the byte cap), then
    /// every new line as it is written. The stream ends when the container
    /// stops; dropping it ends the follow. Ownership is checked first: a
    /// missing or foreign container yields one `Err(NotFound)`.
    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static;

    /// The feed of owned containers' events, from now on, for as long as
    /// the stream is held. It never ends on its own: the runtime owns the
    /// connection — when it breaks the feed yields [`FeedItem::Lost`],
    /// reconnects by itself with a bounded back-off, resumes where it left
    /// off, drops what the resumption replays (no event is yielded twice)
    /// and yields [`FeedItem::Connected`] again. The first item is
    /// `Connected` once the subscription is being opened. What happened
    /// while the feed was not connected may be missing: the caller checks
    /// the containers themselves after each `Connected` (an inspect pass).
    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static;

    /// Deletes a game's host state directory (`path`, as recorded in its
    /// runtime record) and everything in it. A missing directory is Ok.
    /// Only called for `removed` games when the operator opted in
    /// (`RTM_STATE_RETENTION`). The default refuses: a runtime that cannot
    /// delete state says so instead of pretending.
    fn remove_state(&self, path: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let err = RuntimeError::Other(format!(
            "state directory {path}: removal is not supported by this runtime"
        ));
        std::future::ready(Err(err))
    }
}
