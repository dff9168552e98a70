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

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod error;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod health;
mod ids;
mod image;
mod model;
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
    Commit, DetailValue, HealthDetails, HealthEvent, HealthSnapshot, HealthWrite, NewOperation,
    OpError, OperationEntry, RecordedRequest, RuntimeRecord,
};
pub use redact::redact_url;
pub use vocab::{
    HealthSource, HealthStatus, OpKind, OpSource, Outcome, RuntimeStatus, UnknownValue,
};
