//! # rtm-docker
//!
//! The Docker adapter of the [`ContainerRuntime`](rtm_domain::ports::ContainerRuntime)
//! port, on docker-api 0.14: [`DockerRuntime`] configured by
//! [`DockerConfig`].
//!
//! It owns the label scheme (`rtm.managed`, `rtm.game_id`, `rtm.owner`,
//! `rtm.image_ref`, `rtm.state_path`) and never touches a container without
//! its owner label. Every docker-api limit stays inside this crate; they are
//! listed in `docs/docker.md`. Docker errors become port errors here:
//! 404 → `NotFound`, 409 → `Conflict`, an unreachable engine →
//! `Unavailable` (with its cause), pull failures → `PullFailed`.

mod config;
mod convert;
mod error;
mod events;
mod logs;
mod runtime;

pub use config::{DockerConfig, DockerConfigError};
pub use runtime::DockerRuntime;

/// The label keys this adapter writes on every container it creates.
pub mod labels {
    pub use crate::convert::{
        LABEL_GAME_ID as GAME_ID, LABEL_IMAGE_REF as IMAGE_REF, LABEL_MANAGED as MANAGED,
        LABEL_OWNER as OWNER, LABEL_STATE_PATH as STATE_PATH,
    };
}
