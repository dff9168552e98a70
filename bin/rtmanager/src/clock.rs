//! The production [`Clock`]: the system's wall clock and tokio timers.

use std::future::Future;
use std::time::Duration;

use rtm_domain::ports::Clock;
use time::OffsetDateTime;

/// Wall clock (UTC) and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}
