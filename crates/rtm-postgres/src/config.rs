//! [`PgConfig`]: where the database is and how to talk to it, and the
//! one place that turns it into driver configuration.
//!
//! Both settings are parsed here and nowhere else ([`check_url`],
//! [`parse_schema`]); the binary's environment reader calls these. The
//! schema name is a plain lowercase identifier, so it can be placed into
//! `search_path` and DDL without quoting tricks and can never smuggle SQL.
//! The URL must be a `postgres://` URL (not a libpq key/value string), so
//! its password can always be redacted from logs.

use std::time::Duration;

use rtm_domain::redact_url;

use crate::PgError;

/// Connection settings shared by the store, the locks and the leader.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user:pass@host:port/db` or `postgresql://…` (see
    /// [`check_url`]); `Debug` hides the password.
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
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("lock_pool_size", &self.lock_pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .finish()
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
        parse_schema(&self.schema)?;
        let mut cfg = parse_url(&self.url)?;
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

/// Parses a database URL exactly as the pools will: a `postgres://` or
/// `postgresql://` URL the driver accepts. Errors show the URL redacted.
pub fn check_url(url: &str) -> Result<(), PgError> {
    parse_url(url).map(|_| ())
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let scheme_ok = ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
    if !scheme_ok {
        return Err(PgError::UrlScheme {
            url: redact_url(url),
        });
    }
    url.parse().map_err(|source: tokio_postgres::Error| {
        // The innermost cause: the driver's complaint without the URL.
        let mut cause: &(dyn std::error::Error + 'static) = &source;
        while let Some(next) = cause.source() {
            cause = next;
        }
        PgError::InvalidUrl {
            url: redact_url(url),
            reason: cause.to_string(),
            source,
        }
    })
}

/// Parses a schema name RTM accepts (`RTM_DATABASE_SCHEMA`): 1–63
/// characters of `[a-z0-9_]`, starting with a letter or `_`, and not a
/// `pg_` system name (PostgreSQL refuses to create those).
pub fn parse_schema(schema: &str) -> Result<String, PgError> {
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
    Ok(schema.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["rtmanager", "_x", "a1_b2", &"s".repeat(63)] {
            assert_eq!(parse_schema(ok).ok().as_deref(), Some(ok));
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
            assert!(parse_schema(bad).is_err(), "{bad}");
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
    fn urls_are_parsed_as_the_driver_parses_them() {
        assert!(check_url("postgresql://u:p@db:5433/x?sslmode=disable").is_ok());
        let e = check_url("mysql://root:hunter2@db/x").expect_err("scheme");
        assert_eq!(
            e.to_string(),
            "\"mysql://root:***@db/x\" is not a URL starting with postgres:// or postgresql://"
        );
        for bad in ["postgres://", "host=db user=u password=pw", ""] {
            let e = check_url(bad).expect_err(bad);
            assert!(matches!(e, PgError::UrlScheme { .. }), "{bad}");
            // A key=value string may carry a password: never echoed.
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        let e = check_url("postgres://u:pg-secret-pw@db:notaport/x").expect_err("port");
        let text = e.to_string();
        assert!(
            text.starts_with("\"postgres://u:***@db:notaport/x\" is not a valid PostgreSQL URL: "),
            "{text}"
        );
        assert!(!text.contains("pg-secret-pw"), "{text}");
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
