//! In-memory implementations of every port, for unit tests of the domain's
//! services (and of other crates' services, through the `fakes` feature).
//!
//! They are *fakes*, not mocks: each keeps real state and honours the
//! contract documented on its port (atomic
//! [`UnitOfWork::commit`](crate::ports::UnitOfWork::commit) with the
//! idempotency rule, keyset queries, lock timeouts, `NotFound` for missing
//! containers…), so a test asserts outcomes rather than call scripts. On top
//! of the contract each fake offers test controls: failure injection, an
//! "everything is down" switch, call counters, event injection.
//!
//! One file per fake, each named `Fake<Port>` (`FakeStore`, `FakeLocks`,
//! `FakeRuntime`…); [`FakePorts`] bundles them.
//!
//! Every fake is a cheap `Clone` handle on shared state. The state sits
//! behind a std `Mutex`, which is enough here: no lock is ever held across
//! an `.await`. A poisoned mutex (a test thread panicked while holding it) is
//! recovered rather than propagated so one failing test does not cascade.
//!
//! Time is virtual: [`FakeClock::sleep`] advances the clock and yields once,
//! so retry loops and timeouts run instantly and deterministically. These
//! fakes are not meant for production and are compiled only for tests or
//! with the `fakes` feature.

mod clock;
mod leader;
mod locks;
mod probe;
mod publisher;
mod runtime;
mod store;
mod telemetry;

pub use clock::FakeClock;
pub use leader::{FakeLeader, FakeLease};
pub use locks::{FakeLockGuard, FakeLocks};
pub use probe::FakeProbe;
pub use publisher::FakePublisher;
pub use runtime::{EventStream, FakeRuntime, LineStream, RuntimeCall};
pub use store::FakeStore;
pub use telemetry::FakeTelemetry;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use crate::ports::{Adapters, Clock, Ports};
use crate::{ContainerId, GameId, ImageRef, RuntimeRecord, RuntimeStatus};

/// Locks a std mutex, recovering the data if a panicking test poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A future that returns `Pending` once (waking itself) so other tasks run.
#[derive(Debug, Default)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The error the "down" switches inject.
fn down(what: &str) -> crate::BoxError {
    format!("{what} is down (fake)").into()
}

/// Every fake, sharing one [`FakeClock`], and the [`Ports`] set naming them.
#[derive(Debug, Clone)]
pub struct FakePorts {
    /// Records, operation log, snapshots and outbox.
    pub store: FakeStore,
    /// Per-game locks (on the shared clock).
    pub locks: FakeLocks,
    /// Containers and their event feed (on the shared clock).
    pub runtime: FakeRuntime,
    /// Scripted engine probe answers.
    pub probe: FakeProbe,
    /// The one clock every fake reads.
    pub clock: FakeClock,
    /// What the domain reported to the metrics hooks.
    pub telemetry: FakeTelemetry,
    /// Health events published, in order.
    pub publisher: FakePublisher,
    /// Leader leases by role.
    pub leader: FakeLeader,
}

impl Ports for FakePorts {
    type Store = FakeStore;
    type Locks = FakeLocks;
    type Runtime = FakeRuntime;
    type Probe = FakeProbe;
    type Clock = FakeClock;
    type Telemetry = FakeTelemetry;
}

impl Default for FakePorts {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePorts {
    /// Fresh fakes; the clock reads 2030-01-01T00:00:00Z.
    pub fn new() -> Self {
        let clock = FakeClock::default();
        Self {
            store: FakeStore::new(),
            locks: FakeLocks::new(clock.clone()),
            runtime: FakeRuntime::new(clock.clone()),
            probe: FakeProbe::new(),
            clock,
            telemetry: FakeTelemetry::default(),
            publisher: FakePublisher::new(),
            leader: FakeLeader::new(),
        }
    }

    /// The adapters a service is built from; they share state with `self`.
    pub fn adapters(&self) -> Adapters<FakePorts> {
        Adapters {
            store: self.store.clone(),
            locks: self.locks.clone(),
            runtime: self.runtime.clone(),
            probe: self.probe.clone(),
            clock: self.clock.clone(),
            telemetry: self.telemetry.clone(),
        }
    }

    /// Test setup: a running container of `image` for `game` and a
    /// matching `running` record (endpoint on port 8080, started now).
    pub fn seed_running(&self, game: &GameId, image: &ImageRef) -> (RuntimeRecord, ContainerId) {
        let state_path = format!("/state/{game}");
        let id = self.runtime.spawn_running(game, image, &state_path);
        let now = self.clock.now();
        let record = RuntimeRecord {
            game_id: game.clone(),
            status: RuntimeStatus::Running,
            container_id: Some(id.clone()),
            image_ref: Some(image.clone()),
            engine_endpoint: format!("http://{}:8080", game.container_name()),
            state_path,
            docker_network: "rtm-engines".into(),
            started_at: Some(now),
            stopped_at: None,
            removed_at: None,
            last_op_at: now,
            created_at: now,
        };
        self.store.put_record(record.clone());
        (record, id)
    }
}
