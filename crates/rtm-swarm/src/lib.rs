//! # rtm-swarm
//!
//! The Docker Swarm adapter of the
//! [`ContainerRuntime`](rtm_domain::ports::ContainerRuntime) port, on
//! docker-api 0.14's transport: [`SwarmRuntime`] configured by
//! [`SwarmConfig`], which embeds the single-host adapter's
//! [`DockerConfig`](rtm_docker::DockerConfig) (same labels, owner rule,
//! lockdown, limits and log caps, parsed by rtm-docker's parsers).
//!
//! A port "container" is a service with one replica at most and restart
//! condition `none`; its id is the service id, stable across stop and
//! start. The mapping, what was checked against Docker 20.10 and where a
//! swarm gives less than one Docker engine are in `docs/swarm.md`.

mod api;
mod attach;
mod config;
mod error;
mod feed;
mod logs;
mod model;
mod names;
mod network;
mod runtime;
mod spec;
mod stop;

pub use config::{parse_constraint, parse_constraints, SwarmConfig, SwarmConfigError};
pub use model::LABEL_NAME;
pub use runtime::SwarmRuntime;
