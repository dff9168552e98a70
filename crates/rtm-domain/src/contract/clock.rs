//! The [`Clock`] contract: readings are UTC at PostgreSQL's precision
//! (whole microseconds, so a stored instant reads back equal), and a
//! `sleep(d)` ends no earlier than `d` after it began.

use std::time::Duration;

use time::UtcOffset;

use crate::ports::Clock;

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl Clock)`.
#[macro_export]
macro_rules! clock_contract {
    ($setup:path) => {
        $crate::__contract_tests!(
            clock,
            $setup,
            [
                readings_are_utc_whole_microseconds,
                a_sleep_lasts_at_least_its_duration,
            ]
        );
    };
}

/// Every reading is UTC and a whole number of microseconds.
pub async fn readings_are_utc_whole_microseconds<C: Clock>(clock: &C) {
    for _ in 0..100 {
        let now = clock.now();
        assert_eq!(now.offset(), UtcOffset::UTC, "{now}");
        assert_eq!(now.nanosecond() % 1_000, 0, "{now}");
    }
}

/// After `sleep(d)` the clock reads at least `d` later (and never earlier
/// than before the sleep).
pub async fn a_sleep_lasts_at_least_its_duration<C: Clock>(clock: &C) {
    for d in [Duration::from_millis(1), Duration::from_millis(20)] {
        let before = clock.now();
        clock.sleep(d).await;
        let after = clock.now();
        // One microsecond of slack: readings are truncated to microseconds.
        assert!(
            after - before >= d - Duration::from_micros(1),
            "slept {d:?}: {before} -> {after}"
        );
    }
}
