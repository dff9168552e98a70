//! The Runtime Manager service as a library, so the end-to-end tests can
//! start the real application in-process (`app::start`) against real
//! PostgreSQL, Redis and Docker. `main.rs` is a thin shell around it.

pub mod app;
pub mod clock;
pub mod config;
pub mod console;
pub mod ctl;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod runtime;
pub mod workers;
