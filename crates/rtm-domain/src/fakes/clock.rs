//! [`FakeClock`]: virtual time. `sleep` advances the clock and yields once,
//! so retry loops and timeouts run instantly and deterministically.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::{lock, YieldNow};
use crate::ports::Clock;

/// A settable virtual clock. `sleep(d)` advances it by `d` and yields once.
#[derive(Debug, Clone)]
pub struct FakeClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    now: OffsetDateTime,
    sleeps: Vec<Duration>,
}

impl FakeClock {
    /// A clock reading `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// A clock at 2030-01-01T00:00:00Z (a fixed, readable instant).
    pub fn at_epoch_2030() -> Self {
        Self::new(time::macros::datetime!(2030-01-01 00:00:00 UTC))
    }

    /// Moves the clock to `now` (backwards too).
    pub fn set(&self, now: OffsetDateTime) {
        lock(&self.inner).now = now;
    }

    /// Moves the clock `d` forward.
    pub fn advance(&self, d: Duration) {
        let mut s = lock(&self.inner);
        s.now += d;
    }

    /// Every duration passed to [`Clock::sleep`], in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.inner).sleeps.clone()
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::at_epoch_2030()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        lock(&self.inner).now
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        {
            let mut s = lock(&self.inner);
            s.now += d;
            s.sleeps.push(d);
        }
        YieldNow::default()
    }
}
