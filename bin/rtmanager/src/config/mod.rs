//! The service's configuration: every `RTM_*` variable (SPEC §10), read
//! once at start by a thin environment reader that hands each value to the
//! parser of the crate owning the setting.
//!
//! Guarantees:
//! - Each setting has one parser, in the crate that uses it: the database
//!   URL and schema in rtm-postgres, the Redis URL in rtm-redis, the Docker
//!   host, engine user, names, mount and limits in rtm-docker, the
//!   allow-list in rtm-domain. The reader fills those crates' own typed
//!   settings ([`PgConfig`], [`DockerConfig`], [`LobbyConfig`]), so nothing
//!   is formatted back into a string to be parsed again.
//! - [`Config::from_lookup`] reads from an injectable source, so tests never
//!   touch the process environment.
//! - Validation collects **every** problem before failing: an operator fixes
//!   a bad deployment in one round, not one variable per restart. Each
//!   problem is one line naming the variable, the bad value and what is
//!   expected ([`ConfigErrors`]).
//! - An empty value counts as unset (the default applies, or a required
//!   variable is reported missing); surrounding whitespace is trimmed.
//! - The reader records every variable it reads ([`known_variables`]): that
//!   record, not a hand-kept list, is what typo warnings and the
//!   documentation test compare against.
//! - Secrets (tokens, URL passwords) never appear in `Debug` output, so the
//!   whole `Config` may be logged at start.
//!
//! Formats (`format.rs`): durations are `<digits><unit>` with unit `ms`,
//! `s`, `m`, `h`, `d` (`500ms`, `5s`, `10m`, `24h`); sizes are
//! `<digits>[k|m|g]` in bytes with binary multiples (`512k` = 512 KiB,
//! `256m` = 256 MiB, `1g` = 1 GiB, a bare number is bytes; the suffix is
//! case-insensitive).

mod check;
mod error;
mod format;
mod load;
mod reader;
mod secret;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use rtm_docker::DockerConfig;
use rtm_domain::service::ServiceConfig;
use rtm_domain::Allowlist;
use rtm_postgres::PgConfig;
use rtm_redis::LobbyConfig;

pub use check::{check_host, host_name};
pub use error::{ConfigError, ConfigErrors};
pub use format::{
    parse_bool, parse_cpus, parse_duration, parse_runtime, parse_size, RuntimeKind, MIN_TOKEN_LEN,
};
pub use reader::{known_variables, unknown_variables, Lookup, CLIENT_VARIABLES};
pub use secret::{Secret, SecretUrl};

/// Local-use default of `RTM_DATABASE_URL` (the role `cargo xtask provision`
/// creates).
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://rtmanagerservice:rtmanagerservice@127.0.0.1:5432/rtmanager";

/// Which container runtime runs the engines (`RTM_RUNTIME`), with what
/// only that runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// One Docker engine (`docker`, the default): rtm-docker.
    Docker,
    /// A Docker Swarm, through a manager's Engine API (`swarm`): rtm-swarm.
    Swarm(SwarmSettings),
}

/// The `RTM_SWARM_*` settings (read whatever `RTM_RUNTIME` says, so a typo
/// is caught either way; used only with `swarm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmSettings {
    /// `RTM_SWARM_CONSTRAINTS`: placement constraints of engine tasks.
    pub constraints: Vec<String>,
    /// `RTM_SWARM_POLL_INTERVAL`: how often the event feed lists tasks.
    pub poll_interval: Duration,
    /// `RTM_SWARM_START_TIMEOUT`: longest a start waits for its task.
    pub start_timeout: Duration,
    /// `RTM_SWARM_ACCEPT_WEAKER_ISOLATION`: required `true` with `swarm`
    /// (see docs/swarm.md).
    pub accept_weaker_isolation: bool,
}

/// Log line format (`RTM_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Health observation and publication settings (SPEC §7), handed by the
/// wiring to the health monitor, the probe and the health publisher.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// `RTM_HEALTH_STREAM`.
    pub stream: String,
    /// `RTM_HEALTH_STREAM_MAXLEN`.
    pub stream_maxlen: u64,
    /// `RTM_PROBE_INTERVAL`.
    pub probe_interval: Duration,
    /// `RTM_PROBE_TIMEOUT`.
    pub probe_timeout: Duration,
    /// `RTM_PROBE_FAILURES`.
    pub probe_failures: u32,
    /// `RTM_PROBE_PATH`.
    pub probe_path: String,
    /// `RTM_PROBE_CONCURRENCY`: probes in flight at once.
    pub probe_concurrency: usize,
    /// `RTM_INSPECT_INTERVAL`.
    pub inspect_interval: Duration,
    /// `RTM_DOCKER_EVENTS`: follow Docker's event stream (default). When
    /// false, exits and disappearances are seen by the inspect pass only
    /// (tests of that pass; diagnosing an event stream).
    pub docker_events: bool,
}

/// Background worker settings (SPEC §8).
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// `RTM_CLEANUP_INTERVAL`.
    pub cleanup_interval: Duration,
    /// `RTM_STOPPED_RETENTION`.
    pub stopped_retention: Duration,
    /// `RTM_AUDIT_RETENTION`: operation rows older than this are deleted.
    pub audit_retention: Duration,
    /// `RTM_REMOVED_RETENTION`: removed games older than this are forgotten.
    pub removed_retention: Duration,
    /// `RTM_STATE_RETENTION`: unset = a removed game's state directory is
    /// never deleted.
    pub state_retention: Option<Duration>,
    /// `RTM_RECONCILE_INTERVAL`.
    pub reconcile_interval: Duration,
}

/// Operation settings (SPEC §5).
#[derive(Debug, Clone)]
pub struct OperationsConfig {
    /// `RTM_STOP_TIMEOUT`.
    pub stop_timeout: Duration,
    /// `RTM_LOCK_WAIT`.
    pub lock_wait: Duration,
    /// `RTM_PATCH_HEALTH_TIMEOUT`.
    pub patch_health_timeout: Duration,
}

/// The two REST surfaces (SPEC §9).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `RTM_HTTP_ADDR`: the GM surface.
    pub gm_addr: SocketAddr,
    /// `RTM_ADMIN_HTTP_ADDR`: the admin surface.
    pub admin_addr: SocketAddr,
    /// `RTM_GM_TOKEN`.
    pub gm_token: Secret,
    /// `RTM_ADMIN_TOKEN`.
    pub admin_token: Secret,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RTM_INSTANCE_ID`: this replica's stable name (also the Lobby
    /// consumer's name, `lobby.consumer`).
    pub instance_id: String,
    /// `RTM_IMAGE_ALLOWLIST`: never empty.
    pub allowlist: Allowlist,
    /// `RTM_DATABASE_URL`, `RTM_DATABASE_SCHEMA`, `RTM_DATABASE_POOL_SIZE`,
    /// `RTM_DATABASE_LOCK_POOL_SIZE` (its `Debug` hides the password).
    pub postgres: PgConfig,
    /// `RTM_MIGRATE_ON_START`.
    pub migrate_on_start: bool,
    /// `RTM_REDIS_URL`.
    pub redis_url: SecretUrl,
    /// `RTM_DOCKER_*`, `RTM_OWNER`, `RTM_ENGINE_*`, `RTM_REGISTRY_AUTH_FILE`,
    /// `RTM_PULL_TIMEOUT`: the Docker adapter's own settings.
    pub docker: DockerConfig,
    /// `RTM_RUNTIME` and, for `swarm`, the `RTM_SWARM_*` settings.
    pub runtime: RuntimeChoice,
    /// `RTM_STATE_ROOT`: absolute host directory of per-game state.
    pub state_root: String,
    /// `RTM_LOBBY_*` (SPEC §6): the Lobby consumer's own settings.
    pub lobby: LobbyConfig,
    pub health: HealthSettings,
    pub workers: WorkersConfig,
    pub operations: OperationsConfig,
    pub http: HttpConfig,
    /// `RTM_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RTM_SHUTDOWN_TIMEOUT`: how long in-flight work may take to finish
    /// after SIGTERM before it is abandoned to the reconciler.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// The Swarm adapter's settings, when `RTM_RUNTIME=swarm`: the Docker
    /// settings, the swarm's own, and `RTM_STOP_TIMEOUT` as the grace of
    /// stops delivered by another node's agent.
    pub fn swarm_config(&self) -> Option<rtm_swarm::SwarmConfig> {
        let RuntimeChoice::Swarm(s) = &self.runtime else {
            return None;
        };
        Some(rtm_swarm::SwarmConfig {
            docker: self.docker.clone(),
            stop_grace: self.operations.stop_timeout,
            start_timeout: s.start_timeout,
            poll_interval: s.poll_interval,
            constraints: s.constraints.clone(),
            accept_weaker_isolation: s.accept_weaker_isolation,
            local_engine: true,
        })
    }

    /// The operations service's settings.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            allowlist: self.allowlist.clone(),
            lock_wait: self.operations.lock_wait,
            stop_timeout: self.operations.stop_timeout,
            patch_health_timeout: self.operations.patch_health_timeout,
            // The patch gate polls more often than the steady-state probe so
            // a healthy engine is accepted quickly, but never more often
            // than every 200 ms.
            patch_probe_interval: self
                .health
                .probe_interval
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(200)),
            engine_port: self.docker.engine_port,
            state_root: self.state_root.clone(),
            network: self.docker.network.clone(),
        }
    }
}
