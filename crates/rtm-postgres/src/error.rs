//! Errors of this adapter and their translation into the domain's port
//! errors.
//!
//! [`PgError`] covers setup (configuration, pool building, migrations); the
//! port methods return the domain's [`StoreError`], built here from driver
//! errors so the translation rules live in one place:
//! SQLSTATE 23505 → `AlreadyExists`; closed connections, I/O failures,
//! connection-class SQLSTATEs (08xxx, 57P0x, 53300) and pool timeouts →
//! `Unavailable`; anything else → `Other`. The cause is always kept.
//!
//! Every translated error is also counted by kind ([`error_counts`]), for
//! the `rtm_postgres_errors_total` metric. The counters are per process:
//! in production one process is one replica.

use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::PoolError;
use rtm_domain::StoreError;
use tokio_postgres::error::SqlState;

/// Setup errors: bad configuration, unreachable database at start,
/// failed migrations.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The schema is not a plain lowercase identifier (see
    /// [`parse_schema`](crate::parse_schema)).
    #[error("{0:?} is not a plain identifier (lowercase letters, digits and '_', not starting with a digit or pg_, at most 63 characters)")]
    InvalidSchema(String),
    /// The URL is not a `postgres://` URL (shown redacted).
    #[error("{url:?} is not a URL starting with postgres:// or postgresql://")]
    UrlScheme { url: String },
    /// The driver cannot parse the URL (shown redacted; `reason` is the
    /// driver's innermost complaint, which never quotes the URL).
    #[error("{url:?} is not a valid PostgreSQL URL: {reason}")]
    InvalidUrl {
        url: String,
        reason: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] tokio_postgres::Error),
    #[error("schema {0:?} does not exist: provision it first (cargo xtask provision)")]
    SchemaMissing(String),
    #[error("database error during {step}")]
    Sql {
        step: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migration failed")]
    Migrate(#[source] refinery::Error),
}

/// The kinds [`error_counts`] reports, in its order.
pub const ERROR_KINDS: [&str; 4] = ["unavailable", "already_exists", "corrupt", "other"];

static ERRORS: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Store errors handed to callers since the process started, by kind
/// (every kind present, zeros included).
pub fn error_counts() -> [(&'static str, u64); 4] {
    std::array::from_fn(|i| (ERROR_KINDS[i], ERRORS[i].load(Ordering::Relaxed)))
}

/// Counts `e` and hands it back.
fn counted(e: StoreError) -> StoreError {
    let i = match &e {
        StoreError::Unavailable(_) => 0,
        StoreError::AlreadyExists(_) => 1,
        StoreError::Corrupt(_) => 2,
        StoreError::Other(_) => 3,
    };
    ERRORS[i].fetch_add(1, Ordering::Relaxed);
    e
}

/// Translates a driver error into the port error.
pub(crate) fn store_err(e: tokio_postgres::Error) -> StoreError {
    counted(classify(e))
}

fn classify(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        if *code == SqlState::UNIQUE_VIOLATION {
            let what = e
                .as_db_error()
                .and_then(|d| d.constraint())
                .unwrap_or("unique constraint")
                .to_owned();
            return StoreError::AlreadyExists(what);
        }
        if is_unavailable_code(code) {
            return StoreError::Unavailable(Box::new(e));
        }
        return StoreError::Other(Box::new(e));
    }
    // No SQLSTATE: the failure is below SQL (socket closed, I/O error,
    // connect failure, protocol error), i.e. the database is unreachable.
    StoreError::Unavailable(Box::new(e))
}

/// SQLSTATEs meaning "the server or the connection is going away", not
/// "your statement is wrong".
fn is_unavailable_code(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("57P") // admin/crash shutdown, cannot connect now
        || c == "53300" // too many connections
        || c == "53100" // disk full
}

/// Translates a pool error: every way of not getting a connection is
/// `Unavailable`.
pub(crate) fn pool_err(e: PoolError) -> StoreError {
    counted(match e {
        PoolError::Backend(e) => match classify(e) {
            // A failure to create a connection is never a uniqueness or
            // statement problem.
            StoreError::Unavailable(e) | StoreError::Other(e) => StoreError::Unavailable(e),
            other => other,
        },
        other => StoreError::Unavailable(Box::new(other)),
    })
}

/// A stored value the domain does not accept.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    counted(StoreError::Corrupt(what.to_string()))
}
