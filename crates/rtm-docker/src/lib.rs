//! # rtm-docker
//!
//! The Docker adapter of the [`ContainerRuntime`](rtm_domain::ports::ContainerRuntime)
//! port, on docker-api 0.14: [`DockerRuntime`] configured by
//! [`DockerConfig`], whose settings are parsed by this crate's parsers
//! only ([`DockerHost::parse`], [`EngineUser::parse`], …).
//!
//! It owns the label scheme (`rtm.managed`, `rtm.game_id`, `rtm.owner`,
//! `rtm.image_ref`, `rtm.state_path`) and never touches a container without
//! its owner label. Every docker-api limit stays inside this crate; they are
//! listed in `docs/docker.md`. Docker errors become port errors here:
//! 404 → `NotFound`, 409 → `Conflict`, an unreachable engine →
//! `Unavailable` (with its cause), pull failures → `PullFailed`.
//!
//! Every engine container is locked down (`create.rs`): all capabilities
//! dropped, read-only root filesystem, a size-capped `noexec` tmpfs at
//! `/tmp`, a pids limit and Docker's init. Pulls carry the registry's
//! credentials from a Docker-style auth file (`auth.rs`), are bounded in
//! time and log their progress (`pull.rs`).

mod auth;
mod config;
mod convert;
mod create;
mod error;
mod events;
mod logs;
mod pull;
mod runtime;

pub use auth::{Credential, CredentialsFile, RegistryAuthError, RegistryAuths};
pub use config::{
    check_memory, check_pids_limit, check_tmpfs, parse_capabilities, parse_network, parse_owner,
    parse_state_mount, DockerConfig, DockerConfigError, DockerHost, Endpoint, EngineUser,
    MIN_LOG_MAX_SIZE, MIN_MEMORY_BYTES, MIN_PIDS_LIMIT, MIN_TMPFS_BYTES,
};
pub use create::CreateClient;
pub use error::{classify, error_counts, to_runtime, Failure, ERROR_KINDS};
pub use logs::{log_options, LogSplitter};
pub use runtime::DockerRuntime;

/// The label keys this adapter writes on every container it creates.
pub mod labels {
    pub use crate::convert::{
        LABEL_GAME_ID as GAME_ID, LABEL_IMAGE_REF as IMAGE_REF, LABEL_MANAGED as MANAGED,
        LABEL_OWNER as OWNER, LABEL_STATE_PATH as STATE_PATH,
    };
}
