//! [`PgConfig`]: where the database is and how to talk to it, and the
//! one place that turns it into driver configuration.
//!
//! The schema name is validated here as a plain lowercase identifier, so
//! it can be placed into `search_path` and DDL without quoting tricks and
//! can never smuggle SQL.

use std::time::Duration;

use crate::PgError;

/// Connection settings shared by the store, the locks and the leader.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user:pass@host:port/db` (libpq key/value strings work too).
    pub url: String,
    /// Schema holding RTM's tables (`RTM_DATABASE_SCHEMA`).
    pub schema: String,
    /// Connections of the store's pool.
    pub pool_size: usize,
    /// Connections of the game-lock pool: an upper bound on games being
    /// operated on at once by this replica (each held lock pins one).
    pub lock_pool_size: usize,
    /// Bound on establishing one connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a free pooled connection; past it a call fails
    /// with `Unavailable` instead of queueing forever.
    pub pool_wait_timeout: Duration,
}

impl std::fmt::Debug for PgConfig {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("lock_pool_size", &self.lock_pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgConfig {
    /// Settings with defaults fit for one replica managing ~1,000 games.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: schema.into(),
            pool_size: 16,
            lock_pool_size: 32,
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Duration::from_secs(5),
        }
    }

    /// Checks the schema name and parses the URL.
    pub fn validate(&self) -> Result<(), PgError> {
        self.driver_config().map(|_| ())
    }

    /// The driver configuration: URL, connect timeout, and every session
    /// placed in the schema through the startup packet. Startup options
    /// are the session default, so even `RESET ALL` keeps the schema.
    pub(crate) fn driver_config(&self) -> Result<tokio_postgres::Config, PgError> {
        validate_schema(&self.schema)?;
        let mut cfg: tokio_postgres::Config = self.url.parse().map_err(PgError::InvalidUrl)?;
        let search_path = format!("-c search_path={}", self.schema);
        let options = match cfg.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {search_path}"),
            _ => search_path,
        };
        cfg.options(&options);
        cfg.connect_timeout(self.connect_timeout);
        if cfg.get_application_name().is_none() {
            cfg.application_name("rtmanager");
        }
        Ok(cfg)
    }
}

/// A schema name RTM accepts: 1–63 characters of `[a-z0-9_]`, starting with
/// a letter or `_`, and not a `pg_` system name.
pub(crate) fn validate_schema(schema: &str) -> Result<(), PgError> {
    let bad = || PgError::InvalidSchema(schema.to_owned());
    let first = schema.chars().next().ok_or_else(bad)?;
    if schema.len() > 63
        || !(first.is_ascii_lowercase() || first == '_')
        || !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || schema.starts_with("pg_")
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["rtmanager", "_x", "a1_b2", &"s".repeat(63)] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "A",
            "a-b",
            "a;drop",
            "a b",
            "pg_catalog",
            "\"x\"",
            &"s".repeat(64),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_path_goes_into_startup_options() {
        let cfg = PgConfig::new(
            "postgres://u:p@127.0.0.1:5432/db?options=-c%20work_mem%3D4MB",
            "rtm",
        )
        .driver_config()
        .expect("valid config");
        assert_eq!(
            cfg.get_options(),
            Some("-c work_mem=4MB -c search_path=rtm")
        );
        assert!(PgConfig::new("postgres://u:p@h/db", "Bad")
            .validate()
            .is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let dbg = format!(
            "{:?}",
            PgConfig::new("postgres://user:secret@h:5432/db", "s")
        );
        assert!(
            !dbg.contains("secret") && dbg.contains("user:***@h"),
            "{dbg}"
        );
    }
}
