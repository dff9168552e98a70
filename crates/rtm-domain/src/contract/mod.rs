//! Port contracts written once and run against every implementation: the
//! in-memory fakes (in this crate's tests) and the real adapters (in the
//! PostgreSQL, Docker and Redis crates' integration tests).
//!
//! Each suite is a module of generic `async fn`s, one per property, that
//! take the implementation under test and panic (assert) when it breaks
//! the contract documented on its port. A macro per suite turns the list
//! into `#[tokio::test]`s given a setup function, so both sides run the
//! same list and cannot drift:
//!
//! ```text
//! async fn subject() -> (TestDb, PgStore) { /* a fresh schema */ }
//! rtm_domain::store_contract!(subject);
//! ```
//!
//! The setup returns `(guard, subject)`: the guard (a test schema, an owner
//! label…) lives as long as the test. The caller needs `tokio` (with its
//! `macros` feature) among its dev-dependencies.
//!
//! This is test-support code, compiled for this crate's tests or with the
//! `contract` feature: a panic is how it reports a broken contract.

// A panic is the failure report of a contract, as in any test.
#![allow(clippy::unwrap_used)]

pub mod clock;
pub mod leader;
pub mod locks;
#[cfg(test)]
mod on_fakes;
pub mod probe;
pub mod publisher;
pub mod runtime;
pub mod store;

use time::OffsetDateTime;

use crate::GameId;

/// A valid game id (the contracts only use literal, valid ones).
fn gid(s: &str) -> GameId {
    GameId::parse(s).unwrap()
}

/// A fixed instant plus `secs`, at whole seconds so every store keeps it
/// exactly (PostgreSQL stores microseconds).
fn t(secs: i64) -> OffsetDateTime {
    time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::seconds(secs)
}

/// Expands to one `#[tokio::test]` per case of a suite (used by the
/// per-suite macros).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($suite:ident, $setup:path, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, subject) = $setup().await;
                // A case that waits for something that never comes fails
                // instead of hanging the test binary.
                let case = $crate::contract::$suite::$case(&subject);
                let limit = ::std::time::Duration::from_secs(180);
                if ::tokio::time::timeout(limit, case).await.is_err() {
                    panic!("contract case {} timed out", stringify!($case));
                }
            }
        )*
    };
}
