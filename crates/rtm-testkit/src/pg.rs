//! [`TestDb`]: a fresh, empty PostgreSQL schema per test, owned by the
//! service role, dropped when the test ends.
//!
//! ```no_run
//! # async fn demo() {
//! let db = rtm_testkit::pg::TestDb::new().await;
//! // Connect as the least-privileged service role, inside the schema:
//! let (url, schema) = (db.url(), db.schema());
//! # let _ = (url, schema);
//! # }
//! ```
//!
//! Setup (once per process, serialized across processes by an advisory
//! lock, and idempotent): the login role `rtmanagerservice` (password
//! `rtmanagerservice`, created only if missing) and the database
//! `rtmanager_test` (kept apart from the `rtmanager` database that
//! `cargo xtask provision` creates for local runs). Each test then gets a
//! schema `rtmt_<unique>` created by the admin `AUTHORIZATION
//! rtmanagerservice`: the service role owns its schema and needs no right
//! on the database beyond CONNECT, which is exactly the production shape.
//!
//! The admin URL comes from `RTM_TEST_ADMIN_URL` (default
//! `postgres://rtm_admin:rtm_admin@127.0.0.1:5432/postgres`); a missing
//! PostgreSQL makes [`TestDb::new`] panic with a clear message, so tests
//! fail loudly instead of passing vacuously.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

/// The admin URL used when `RTM_TEST_ADMIN_URL` is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/postgres";
/// The service role tests connect as (the production role's name).
pub const SERVICE_ROLE: &str = "rtmanagerservice";
/// Its password for local use and tests (production sets its own).
pub const SERVICE_PASSWORD: &str = "rtmanagerservice";
/// The database holding every test schema.
pub const TEST_DATABASE: &str = "rtmanager_test";

/// A fresh schema for one test. Dropping it drops the schema (CASCADE).
#[derive(Debug)]
pub struct TestDb {
    url: String,
    admin_url: String,
    schema: String,
}

impl TestDb {
    /// Creates a fresh schema; panics (failing the test) when PostgreSQL is
    /// not reachable or the setup fails.
    pub async fn new() -> TestDb {
        match Self::try_new().await {
            Ok(db) => db,
            Err(e) => panic!("TestDb: cannot prepare a PostgreSQL schema (is PostgreSQL running? RTM_TEST_ADMIN_URL?): {e:#}"),
        }
    }

    /// Like [`TestDb::new`], returning the error instead of panicking.
    pub async fn try_new() -> Result<TestDb> {
        let admin = admin_url();
        static SETUP: OnceCell<()> = OnceCell::const_new();
        SETUP.get_or_try_init(|| setup(&admin)).await?;

        let admin_url = with_database(&admin, TEST_DATABASE)?;
        let schema = crate::unique("rtmt");
        let client = connect(&admin_url).await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\" AUTHORIZATION {SERVICE_ROLE}"
            ))
            .await
            .with_context(|| format!("creating schema {schema}"))?;
        let url = with_user(&admin_url, SERVICE_ROLE, SERVICE_PASSWORD)?;
        Ok(TestDb {
            url,
            admin_url,
            schema,
        })
    }

    /// URL for the service role on the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema to use (`RTM_DATABASE_SCHEMA`); empty until migrated.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Superuser URL on the same database, for tests that must act behind
    /// the service's back (terminate its sessions, corrupt a row…).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A superuser connection on the test database whose `search_path` is
    /// this schema (its connection task runs on the current runtime).
    pub async fn admin_client(&self) -> Result<Client> {
        let client = connect(&self.admin_url).await?;
        client
            .batch_execute(&format!("SET search_path = \"{}\"", self.schema))
            .await?;
        Ok(client)
    }
}

impl Drop for TestDb {
    /// Drops the schema from a thread with its own runtime: `Drop` cannot
    /// await, and the test's runtime may be shutting down (or be a
    /// current-thread runtime that this very thread is blocking). Failures
    /// are reported, never panicked on: a leaked `rtmt_*` schema is
    /// harmless and a panic in Drop would abort.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let schema = std::mem::take(&mut self.schema);
        let worker = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return Err(anyhow::Error::from(e)),
            };
            rt.block_on(async {
                let client = connect(&admin_url).await?;
                // Sessions of the test (pools not yet dropped) may still hold
                // locks on its tables; do not wait on them forever.
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    ))
                    .await
                    .with_context(|| format!("dropping schema {schema}"))?;
                Ok(())
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("TestDb: could not drop the test schema: {e:#}"),
            Err(_) => eprintln!("TestDb: the schema-dropping thread panicked"),
        }
    }
}

/// `RTM_TEST_ADMIN_URL` or the default.
pub fn admin_url() -> String {
    std::env::var("RTM_TEST_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects and drives the connection on the current runtime.
async fn connect(url: &str) -> Result<Client> {
    let mut cfg: tokio_postgres::Config = url.parse().context("parsing a PostgreSQL URL")?;
    cfg.connect_timeout(Duration::from_secs(10));
    let (client, connection) = cfg
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Role and database, once per process; an advisory lock (in the admin
/// URL's database) serializes concurrent test binaries, and every step
/// checks before creating, so reruns change nothing.
async fn setup(admin_url: &str) -> Result<()> {
    let client = connect(admin_url).await?;
    client
        .batch_execute("SELECT pg_advisory_lock(hashtextextended('rtm:testkit:setup', 0))")
        .await?;
    let role_exists = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[&SERVICE_ROLE],
        )
        .await?
        .get::<_, bool>(0);
    if !role_exists {
        client
            .batch_execute(&format!(
                "CREATE ROLE {SERVICE_ROLE} LOGIN PASSWORD '{SERVICE_PASSWORD}'"
            ))
            .await
            .context("creating the service role")?;
    }
    let db_exists = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&TEST_DATABASE],
        )
        .await?
        .get::<_, bool>(0);
    if !db_exists {
        client
            .batch_execute(&format!("CREATE DATABASE {TEST_DATABASE}"))
            .await
            .context("creating the test database")?;
    }
    client
        .batch_execute("SELECT pg_advisory_unlock(hashtextextended('rtm:testkit:setup', 0))")
        .await?;
    Ok(())
}

/// The same URL pointing at another database.
fn with_database(url: &str, db: &str) -> Result<String> {
    let (base, query) = split_query(url);
    let slash = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |s| s + 2))
        .context("RTM_TEST_ADMIN_URL must be a postgres:// URL")?;
    Ok(format!("{}/{db}{query}", &base[..slash]))
}

/// The same URL with other credentials.
fn with_user(url: &str, user: &str, password: &str) -> Result<String> {
    let scheme = url
        .find("://")
        .context("RTM_TEST_ADMIN_URL must be a postgres:// URL")?
        + 3;
    let rest = &url[scheme..];
    let host_part = match rest.find('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    Ok(format!("{}{user}:{password}@{host_part}", &url[..scheme]))
}

fn split_query(url: &str) -> (&str, &str) {
    match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rewrites() {
        let admin = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(
            with_database(admin, "x").unwrap(),
            "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_user("postgres://a:b@h:1/d", "u", "p").unwrap(),
            "postgres://u:p@h:1/d"
        );
        assert_eq!(
            with_user("postgres://h/d", "u", "p").unwrap(),
            "postgres://u:p@h/d"
        );
        assert_eq!(
            redact(admin),
            "postgres://***@127.0.0.1:5432/postgres?sslmode=disable"
        );
    }
}
