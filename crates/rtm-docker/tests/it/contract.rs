//! The container-runtime contract suite (`rtm_domain::contract::runtime`)
//! against the real Docker engine with the engine stub image: the very
//! cases the in-memory fake passes. Each case has its own owner label (an
//! [`Env`]), so `list` sees only that case's containers.

use std::path::PathBuf;

use rtm_docker::DockerRuntime;
use rtm_domain::contract::runtime::RuntimeSubject;
use rtm_domain::ports::{ContainerRuntime, ContainerSpec};
use rtm_domain::ContainerId;

use crate::{poll_async, Env};

impl RuntimeSubject for Env {
    type Runtime = DockerRuntime;

    fn runtime(&self) -> &DockerRuntime {
        &self.rt
    }

    fn spec(&self) -> ContainerSpec {
        Env::spec(self, "1.0.0")
    }

    /// The stub writes `starts.log` in its state directory once it runs.
    async fn wait_started(&self, id: &ContainerId) {
        let info = self.rt.inspect(id).await.expect("inspect");
        let state = info.summary.state_path.expect("the rtm.state_path label");
        let log = PathBuf::from(state).join("starts.log");
        poll_async("starts.log", || {
            let log = log.clone();
            async move { std::fs::read_to_string(&log).ok().filter(|s| !s.is_empty()) }
        })
        .await;
    }
}

async fn setup() -> ((), Env) {
    ((), Env::new())
}

rtm_domain::runtime_contract!(setup);
