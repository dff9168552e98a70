//! Every contract suite run against the in-memory fakes: the same cases
//! the adapters' integration tests run against PostgreSQL, Docker and
//! Redis, so a fake that drifts from its adapter fails here.

use std::future::Future;

use crate::contract::publisher::PublisherSubject;
use crate::contract::runtime::RuntimeSubject;
use crate::fakes::{FakeClock, FakeLocks, FakePublisher, FakeRuntime, FakeStore};
use crate::ports::ContainerSpec;
use crate::{ContainerId, GameId, HealthStatus, ImageRef};

mod store {
    async fn setup() -> ((), crate::fakes::FakeStore) {
        ((), super::FakeStore::new())
    }
    crate::store_contract!(setup);
}

mod clock {
    async fn setup() -> ((), crate::fakes::FakeClock) {
        ((), super::FakeClock::default())
    }
    crate::clock_contract!(setup);
}

mod leader {
    async fn setup() -> ((), crate::fakes::FakeLeader) {
        ((), crate::fakes::FakeLeader::new())
    }
    crate::leader_contract!(setup);
}

mod locks {
    async fn setup() -> ((), crate::fakes::FakeLocks) {
        ((), super::FakeLocks::new(super::FakeClock::default()))
    }
    crate::locks_contract!(setup);
}

mod runtime {
    async fn setup() -> ((), super::Runtime) {
        ((), super::Runtime::default())
    }
    crate::runtime_contract!(setup);
}

mod probe {
    async fn setup() -> ((), super::Probe) {
        ((), super::Probe::default())
    }
    crate::probe_contract!(setup);
}

mod publisher {
    async fn setup() -> ((), crate::fakes::FakePublisher) {
        ((), super::FakePublisher::new())
    }
    crate::publisher_contract!(setup);
}

/// A [`FakeRuntime`] and a counter for fresh game ids.
#[derive(Debug)]
struct Runtime {
    rt: FakeRuntime,
    games: std::sync::atomic::AtomicU32,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            rt: FakeRuntime::new(FakeClock::default()),
            games: 0.into(),
        }
    }
}

impl RuntimeSubject for Runtime {
    type Runtime = FakeRuntime;

    fn runtime(&self) -> &FakeRuntime {
        &self.rt
    }

    fn spec(&self) -> ContainerSpec {
        let n = self
            .games
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let game = GameId::parse(&format!("g{n}")).unwrap();
        ContainerSpec {
            name: game.container_name(),
            image: ImageRef::parse("rtm.local/engine-stub:1.0.0").unwrap(),
            state_path: format!("/state/{game}"),
            game_id: game,
        }
    }

    /// The fake's engine is up as soon as it starts.
    fn wait_started(&self, _id: &ContainerId) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

impl PublisherSubject for FakePublisher {
    type Publisher = FakePublisher;

    fn publisher(&self) -> &FakePublisher {
        self
    }

    fn published(&self) -> impl Future<Output = Vec<(i64, GameId, HealthStatus)>> + Send {
        let seen = FakePublisher::published(self)
            .into_iter()
            .map(|e| (e.id, e.snapshot.game_id, e.snapshot.status))
            .collect();
        std::future::ready(seen)
    }
}

/// A [`FakeProbe`] scripted with the words the HTTP probe uses, one
/// address per target.
#[derive(Debug, Default)]
struct Probe {
    probe: crate::fakes::FakeProbe,
    targets: std::sync::atomic::AtomicU8,
}

impl Probe {
    fn next_target(&self) -> crate::ports::ProbeTarget {
        let n = self
            .targets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::ports::ProbeTarget {
            endpoint: format!("http://rtm-g{n}:8080"),
            ip: Some(std::net::IpAddr::from([10, 0, 0, n])),
            port: 8080,
        }
    }
}

impl crate::contract::probe::ProbeSubject for Probe {
    type Probe = crate::fakes::FakeProbe;

    fn probe(&self) -> &Self::Probe {
        &self.probe
    }

    fn answering(&self, status: u16) -> impl Future<Output = crate::ports::ProbeTarget> + Send {
        let target = self.next_target();
        let ip = target.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let result = if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(crate::ProbeError(format!(
                "http://{ip}:8080/healthz answered HTTP {status}"
            )))
        };
        self.probe.set(&ip, result);
        std::future::ready(target)
    }

    fn refusing(&self) -> impl Future<Output = crate::ports::ProbeTarget> + Send {
        let target = self.next_target();
        let refused = || Err(crate::ProbeError("connection refused".into()));
        if let Some(ip) = target.ip {
            self.probe.set(&ip.to_string(), refused());
        }
        self.probe.set(&target.endpoint, refused());
        std::future::ready(target)
    }
}
