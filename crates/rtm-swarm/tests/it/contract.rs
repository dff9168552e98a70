//! The container-runtime contract suite (`rtm_domain::contract::runtime`)
//! against the single-node swarm with the engine stub image: the very
//! cases the in-memory fake and the Docker adapter pass. Each case has its
//! own owner label (an [`Env`]), so `list` sees only that case's services.

use rtm_domain::contract::runtime::RuntimeSubject;
use rtm_domain::ports::{ContainerRuntime, ContainerSpec};
use rtm_domain::ContainerId;
use rtm_swarm::SwarmRuntime;

use crate::{wait_file, Env};

impl RuntimeSubject for Env {
    type Runtime = SwarmRuntime;

    fn runtime(&self) -> &SwarmRuntime {
        &self.rt
    }

    fn spec(&self) -> ContainerSpec {
        Env::spec(self, "1.0.0")
    }

    /// The stub writes `starts.log` in its state directory once it runs.
    async fn wait_started(&self, id: &ContainerId) {
        let info = self.rt.inspect(id).await.expect("inspect");
        let state = info.summary.state_path.expect("the rtm.state_path label");
        let spec = ContainerSpec {
            state_path: state,
            ..Env::spec(self, "1.0.0")
        };
        wait_file(&spec, "starts.log").await;
    }
}

async fn setup() -> ((), Env) {
    ((), Env::new())
}

rtm_domain::runtime_contract!(setup);
