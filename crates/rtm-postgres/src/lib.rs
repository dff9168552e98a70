//! # rtm-postgres
//!
//! The PostgreSQL adapter of the Runtime Manager: the durable stores
//! ([`PgStore`]: runtime records, operation log, health snapshots, the
//! health-event outbox and the atomic [`UnitOfWork`](rtm_domain::ports::UnitOfWork)),
//! per-game advisory locks ([`PgLocks`]), leader election for singleton
//! workers ([`PgLeader`]) and the embedded refinery migrations
//! ([`migrate`]).
//!
//! Guarantees:
//! - every connection works inside one schema (`search_path=<schema>`,
//!   validated as a plain identifier), so several deployments or test runs
//!   can share a database;
//! - driver errors become port errors keeping their cause: SQLSTATE 23505
//!   is `AlreadyExists`, connection failures and pool timeouts are
//!   `Unavailable`, values the domain rejects are `Corrupt`;
//! - the pools recover by themselves after PostgreSQL restarts (each
//!   connection is verified before reuse and replaced when broken).
//!
//! The design is described in `docs/database.md`.

mod config;
mod error;
mod leader;
mod locks;
mod migrate;
mod rows;
mod store;

pub use config::{check_url, parse_schema, PgConfig};
pub use error::{error_counts, PgError, ERROR_KINDS};
pub use leader::{PgLeader, PgLease};
pub use locks::{PgLockGuard, PgLocks};
pub use migrate::{migrate, migrations, AppliedMigration, Report};
pub use store::{
    pipeline_reads_on_this_thread, GameCounts, GameSort, GamesFilter, GamesPage, HealthFilter,
    PgStore, WorkerLeader,
};
