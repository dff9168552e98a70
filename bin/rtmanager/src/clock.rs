//! The production [`Clock`]: the system's wall clock and tokio timers.
//!
//! Readings are truncated to whole microseconds, PostgreSQL's `timestamptz`
//! precision: a time RTM answers right after an operation (the runtime in a
//! mutation response) is then exactly the one it stored and later serves.

use std::future::Future;
use std::time::Duration;

use rtm_domain::ports::Clock;
use time::OffsetDateTime;

/// Wall clock (UTC, microsecond precision) and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        // Infallible: the truncated value is a valid nanosecond count.
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_have_postgresql_precision() {
        for _ in 0..100 {
            assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
        }
    }

    /// The clock contract the fake clock passes too.
    mod contract {
        async fn setup() -> ((), super::SystemClock) {
            ((), super::SystemClock)
        }
        rtm_domain::clock_contract!(setup);
    }
}
