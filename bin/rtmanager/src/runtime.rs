//! [`EngineRuntime`]: the container runtime chosen by `RTM_RUNTIME`, one
//! type for the wiring (`Prod::Runtime`). Each method delegates to the
//! chosen adapter; streams are wrapped in `Either`, so nothing is boxed
//! and no behaviour is added here.

use std::time::Duration;

use futures_util::future::Either;
use futures_util::Stream;
use rtm_docker::DockerRuntime;
use rtm_domain::ports::{
    ContainerInfo, ContainerLogs, ContainerRuntime, ContainerSpec, ContainerSummary, FeedItem,
    LogLine, LogQuery,
};
use rtm_domain::{ContainerId, GameId, ImageRef, RuntimeError};
use rtm_swarm::SwarmRuntime;

/// One Docker engine or a Docker Swarm.
#[derive(Debug, Clone)]
pub enum EngineRuntime {
    /// `RTM_RUNTIME=docker`.
    Docker(DockerRuntime),
    /// `RTM_RUNTIME=swarm`.
    Swarm(SwarmRuntime),
}

impl EngineRuntime {
    /// `docker` or `swarm`, for logs and `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Docker(_) => "docker",
            Self::Swarm(_) => "swarm",
        }
    }
}

/// Calls the same method on whichever adapter is chosen.
macro_rules! delegate {
    ($self:ident, $rt:ident => $call:expr) => {
        match $self {
            EngineRuntime::Docker($rt) => $call,
            EngineRuntime::Swarm($rt) => $call,
        }
    };
}

impl ContainerRuntime for EngineRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.ping().await)
    }

    async fn ensure_image(&self, image: &ImageRef) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.ensure_image(image).await)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        delegate!(self, rt => rt.create(spec).await)
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.start(id).await)
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.stop(id, grace).await)
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.remove(id).await)
    }

    async fn rename(&self, id: &ContainerId, name: &str) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.rename(id, name).await)
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo, RuntimeError> {
        delegate!(self, rt => rt.inspect(id).await)
    }

    async fn list(&self, game: Option<&GameId>) -> Result<Vec<ContainerSummary>, RuntimeError> {
        delegate!(self, rt => rt.list(game).await)
    }

    async fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> Result<ContainerLogs, RuntimeError> {
        delegate!(self, rt => rt.logs(id, query).await)
    }

    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static {
        match self {
            Self::Docker(rt) => Either::Left(rt.follow_logs(id, query)),
            Self::Swarm(rt) => Either::Right(rt.follow_logs(id, query)),
        }
    }

    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static {
        match self {
            Self::Docker(rt) => Either::Left(rt.events()),
            Self::Swarm(rt) => Either::Right(rt.events()),
        }
    }

    async fn remove_state(&self, path: &str) -> Result<(), RuntimeError> {
        delegate!(self, rt => rt.remove_state(path).await)
    }
}
