//! # rtm-redis
//!
//! The Redis adapter of the Runtime Manager, built on fred 10:
//!
//! - [`RedisHealthPublisher`] implements the domain port
//!   [`rtm_domain::ports::HealthPublisher`]: one `XADD` per health change on
//!   `runtime:health_events` (SPEC §7), trimmed with `MAXLEN ~`.
//! - [`LobbyConsumer`] consumes the Lobby's command stream (SPEC §6) through
//!   a consumer group and hands each well-formed entry to a
//!   [`CommandHandler`] (the binary plugs the domain's `RuntimeService` in).
//!   An entry is acknowledged only after the handler returned `Ok`, so
//!   delivery is at-least-once and the entry id (the operation's
//!   `source_ref`) makes the effect exactly-once.
//! - [`parse_entry`] turns stream fields into an
//!   [`rtm_domain::service::OperationRequest`] or a typed [`Malformed`]
//!   reason; it is pure and unit-tested.
//!
//! - [`StreamReader`] serves the operator console's reads (a game's recent
//!   health changes, the dead-letter count).
//!
//! Every fred client this crate creates has an explicit reconnect policy
//! (fred's default is to never reconnect) and a command timeout, so a Redis
//! outage turns into `Err`s and retries, never into a hang or a dead client.
//! The wire contract is documented in `docs/lobby-stream.md`.

mod client;
mod consumer;
mod entry;
mod error;
mod publisher;
mod reader;
mod resp;

pub use client::{check_url, ClientSettings, RedisUrlError};
pub use consumer::{CommandHandler, GroupInfo, LobbyConfig, LobbyConsumer, LobbyStats};
pub use entry::{parse_entry, DeadReason, Malformed, StreamEntry, MAX_STOP_TIMEOUT_S};
pub use error::{error_counts, RedisError, ERROR_KINDS};
pub use publisher::{HealthStreamConfig, RedisHealthPublisher};
pub use reader::{HealthEntry, StreamReader};
