//! # rtm-domain
//!
//! The pure core of the Runtime Manager: validated identifiers
//! ([`GameId`], [`ImageRef`]), the runtime state machine
//! ([`transition`]), the operation and health vocabularies, the closed
//! [`ErrorCode`] set, the [`ports`] through which it reaches PostgreSQL,
//! Docker, Redis and engines, and the services that carry out operations.
//!
//! It does no I/O of its own and depends on no driver, so another service
//! can embed it and bring its own adapters.
//!
//! ```
//! use rtm_domain::{GameId, ImageRef, Allowlist};
//! let game = GameId::parse("chess-42")?;
//! let image = ImageRef::parse("ghcr.io/acme/engine:1.4.2")?;
//! let allow = Allowlist::parse("ghcr.io/acme/*")?;
//! assert!(allow.allows(&image));
//! assert_eq!(game.container_name(), "rtm-chess-42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Embedding
//!
//! A host (the `rtmanager` binary, or another service) brings one adapter
//! per port and names them in a [`Ports`](ports::Ports) set. The traits it
//! implements, all in [`ports`]:
//!
//! - storage: [`RuntimeRecords`](ports::RuntimeRecords),
//!   [`OperationLog`](ports::OperationLog),
//!   [`HealthSnapshots`](ports::HealthSnapshots),
//!   [`HealthOutbox`](ports::HealthOutbox),
//!   [`UnitOfWork`](ports::UnitOfWork) and [`Retention`](ports::Retention)
//!   (together [`Store`](ports::Store), implemented automatically);
//! - [`GameLocks`](ports::GameLocks) and its
//!   [`GameLockGuard`](ports::GameLockGuard): per-game mutual exclusion
//!   across every replica;
//! - [`ContainerRuntime`](ports::ContainerRuntime): the engine containers;
//! - [`EngineProbe`](ports::EngineProbe): the engines' HTTP health check;
//! - [`Clock`](ports::Clock): wall clock and timers;
//! - [`Telemetry`](ports::Telemetry): metrics hooks, optional
//!   ([`NoTelemetry`](ports::NoTelemetry) records nothing).
//!
//! Two more are used by the host's own loops, not by the services:
//! [`HealthPublisher`](ports::HealthPublisher) (given to
//! [`HealthMonitor::relay_once`](health::HealthMonitor::relay_once)) and
//! [`LeaderElection`](ports::LeaderElection) with
//! [`LeaderLease`](ports::LeaderLease) (to run singleton workers, such as
//! the relay, on one replica). The monitor tells the relay there is work
//! through an explicit hook, [`RelayWake`](health::RelayWake).
//!
//! The host then builds one [`RuntimeService`](service::RuntimeService)
//! (operations, reconciler, cleanup, container logs) and one
//! [`HealthMonitor`](health::HealthMonitor) from the same
//! [`Adapters`](ports::Adapters), and runs their loops on its own
//! executor: the domain spawns nothing, starts no timer and needs no
//! particular runtime. Each port method documents its contract (what it
//! MUST return, its errors, whether it is idempotent); the `fakes` module
//! (feature `fakes`) holds in-memory implementations that keep those
//! contracts, for tests of the host's own code.
//!
//! A host wiring its own set (here the fakes, and no metrics):
//!
//! ```
//! # #[cfg(feature = "fakes")]
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rtm_domain::fakes::{FakeClock, FakeLocks, FakeProbe, FakeRuntime, FakeStore};
//! use rtm_domain::health::{HealthConfig, HealthMonitor};
//! use rtm_domain::ports::{Adapters, NoTelemetry, Ports};
//! use rtm_domain::service::{OperationRequest, RuntimeService, ServiceConfig};
//! use rtm_domain::transition::Command;
//! use rtm_domain::{Allowlist, GameId, HealthStatus, ImageRef, OpSource};
//!
//! /// The host's choice of adapters: a marker type, never instantiated.
//! enum Host {}
//! impl Ports for Host {
//!     type Store = FakeStore;
//!     type Locks = FakeLocks;
//!     type Runtime = FakeRuntime;
//!     type Probe = FakeProbe;
//!     type Clock = FakeClock;
//!     type Telemetry = NoTelemetry;
//! }
//!
//! let clock = FakeClock::default();
//! let store = FakeStore::new();
//! let adapters = Adapters::<Host> {
//!     store: store.clone(),
//!     locks: FakeLocks::new(clock.clone()),
//!     runtime: FakeRuntime::new(clock.clone()),
//!     probe: FakeProbe::new(),
//!     clock,
//!     telemetry: NoTelemetry,
//! };
//! let config = ServiceConfig {
//!     allowlist: Allowlist::parse("ghcr.io/acme/*")?,
//!     lock_wait: Duration::from_secs(5),
//!     stop_timeout: Duration::from_secs(30),
//!     patch_health_timeout: Duration::from_secs(60),
//!     patch_probe_interval: Duration::from_millis(500),
//!     engine_port: 8080,
//!     state_root: "/srv/games".into(),
//!     network: "engines".into(),
//! };
//! let service = Arc::new(RuntimeService::new(adapters.clone(), config));
//! let monitor = HealthMonitor::new(adapters, HealthConfig::default());
//!
//! let game = GameId::parse("chess-42")?;
//! let image = ImageRef::parse("ghcr.io/acme/engine:1.4.2")?;
//! let start = OperationRequest::new(game.clone(), Command::Start { image }, OpSource::GmRest);
//! assert!(service.execute(start).await?.succeeded());
//!
//! monitor.probe_pass().await?;
//! assert_eq!(store.health(&game).map(|s| s.status), Some(HealthStatus::Healthy));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod error;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod health;
mod ids;
mod image;
mod model;
mod names;
pub mod ports;
mod redact;
pub mod service;
pub mod transition;
mod vocab;

pub use error::{
    error_chain, BoxError, ErrorCode, LockError, ProbeError, PublishError, RuntimeError, StoreError,
};
pub use ids::{ContainerId, GameId, GameIdError};
pub use image::{
    check_patch, Allowlist, AllowlistError, ImageRef, ImageRefError, PatchRefusal, SemVer,
};
pub use model::{
    Commit, DetailValue, HealthDetails, HealthEvent, HealthRefresh, HealthSnapshot, HealthWrite,
    NewOperation, OpError, OperationEntry, RecordedRequest, RuntimeRecord,
};
pub use names::is_plain_name;
pub use redact::redact_url;
pub use vocab::{
    HealthSource, HealthStatus, OpKind, OpSource, Outcome, RuntimeStatus, UnknownValue,
};
