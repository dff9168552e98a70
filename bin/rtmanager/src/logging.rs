//! Logging set-up: `tracing` as text or JSON lines on stdout, written to
//! read well in files and in a terminal alike.
//!
//! Guarantees:
//! - ANSI colours only when stdout is a terminal (and `NO_COLOR` is
//!   unset): a log file or a pipe never gets escape codes.
//! - `RUST_LOG` wins when set; otherwise `info`, with the chatty start-up
//!   notices of libraries (refinery's migration notices, PostgreSQL's
//!   "already exists, skipping", actix's worker banners) lowered to
//!   warnings, so a routine start logs only RTM's own lines.
//! - The configuration is logged once at start through its `Debug`, which
//!   redacts every secret (tokens, URL passwords).

use std::io::IsTerminal;

use crate::config::{Config, LogFormat};

/// Filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str =
    "info,refinery_core=warn,tokio_postgres::connection=warn,actix_server=warn";

/// Installs the global subscriber (a second call is a no-op).
pub fn init(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Logs the effective configuration once (secrets redacted by `Debug`).
pub fn log_config(config: &Config) {
    tracing::info!(config = ?config, "configuration");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_parses() {
        assert!(tracing_subscriber::EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }
}
