//! `cargo xtask provision` and `cargo xtask migrate`.
//!
//! provision (idempotent, as the admin `RTM_ADMIN_DATABASE_URL`, default
//! the local `rtm_admin`): the service role, database and schema named by
//! `RTM_DATABASE_URL` (user, password, database) and `RTM_DATABASE_SCHEMA`
//! — by default role `rtmanagerservice` (password `rtmanagerservice`, for
//! local use only: production creates the role with its own secret),
//! database `rtmanager`, schema `rtmanager`. Least privilege: the role is
//! a plain LOGIN role (no superuser, CREATEDB or CREATEROLE), owns its
//! schema and nothing else, and may only CONNECT (and use temp tables) in
//! the database; `public` gives it nothing. An existing role keeps its
//! password, so rerunning never clobbers a secret set by operators.
//!
//! migrate: applies the embedded migrations with the same settings the
//! binary reads, and prints what it applied.

use anyhow::{bail, Context, Result};
use tokio_postgres::{Client, NoTls};

const DEFAULT_ADMIN_URL: &str = "postgres://rtm_admin:rtm_admin@127.0.0.1:5432/postgres";
const DEFAULT_DATABASE_URL: &str =
    "postgres://rtmanagerservice:rtmanagerservice@127.0.0.1:5432/rtmanager";
const DEFAULT_SCHEMA: &str = "rtmanager";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")
}

/// A plain lowercase identifier, safe to splice into DDL unquoted.
fn ident(kind: &str, s: &str) -> Result<String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("{kind} {s:?} must be a lowercase identifier ([a-z_][a-z0-9_]*)");
    }
    Ok(s.to_owned())
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL as the admin (RTM_ADMIN_DATABASE_URL)")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn with_database(url: &str, db: &str) -> Result<String> {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let slash = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .context("RTM_ADMIN_DATABASE_URL must be a postgres://host/db URL")?;
    Ok(format!("{}/{db}{query}", &base[..slash]))
}

async fn exists(c: &Client, sql: &str, name: &str) -> Result<bool> {
    Ok(c.query_one(sql, &[&name]).await?.get::<_, bool>(0))
}

pub fn provision(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("provision: unexpected argument {a:?}");
    }
    provision_schema(None)
}

/// Provisions like [`provision`], into `schema` instead of
/// `RTM_DATABASE_SCHEMA` when given (the schemathesis run's own schema,
/// the swarm demo's).
pub fn provision_schema(schema: Option<&str>) -> Result<()> {
    let admin_url = env_or("RTM_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL);
    let service: tokio_postgres::Config = env_or("RTM_DATABASE_URL", DEFAULT_DATABASE_URL)
        .parse()
        .context("parsing RTM_DATABASE_URL")?;
    let role = ident(
        "role",
        service.get_user().context("RTM_DATABASE_URL has no user")?,
    )?;
    let password = service
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .context("RTM_DATABASE_URL has no password")?;
    let db = ident(
        "database",
        service
            .get_dbname()
            .context("RTM_DATABASE_URL has no database")?,
    )?;
    let schema = match schema {
        Some(s) => ident("schema", s)?,
        None => ident("schema", &env_or("RTM_DATABASE_SCHEMA", DEFAULT_SCHEMA))?,
    };

    runtime()?.block_on(async {
        let admin = connect(&admin_url).await?;
        // Serialize concurrent provisioners (CREATE ROLE/DATABASE race).
        admin
            .batch_execute("SELECT pg_advisory_lock(hashtextextended('rtm:provision', 0))")
            .await?;
        if exists(
            &admin,
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &role,
        )
        .await?
        {
            println!("provision: role {role} exists (password left unchanged)");
        } else {
            admin
                .batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
                    literal(&password)
                ))
                .await
                .context("creating the service role")?;
            println!("provision: created role {role}");
        }
        if exists(
            &admin,
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &db,
        )
        .await?
        {
            println!("provision: database {db} exists");
        } else {
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .context("creating the database")?;
            println!("provision: created database {db}");
        }
        admin
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
                 GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}; \
                 ALTER ROLE {role} IN DATABASE {db} SET search_path = {schema}"
            ))
            .await
            .context("granting database rights")?;

        let in_db = connect(&with_database(&admin_url, &db)?).await?;
        in_db
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}; \
                 REVOKE CREATE ON SCHEMA public FROM PUBLIC"
            ))
            .await
            .context("creating the schema")?;
        let owner: String = in_db
            .query_one(
                "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .await?
            .get(0);
        if owner != role {
            bail!("schema {schema} exists but is owned by {owner}, not {role}");
        }
        admin
            .batch_execute("SELECT pg_advisory_unlock(hashtextextended('rtm:provision', 0))")
            .await?;
        println!("provision: schema {db}.{schema} owned by {role}");
        Ok(())
    })
}

pub fn migrate(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("migrate: unexpected argument {a:?}");
    }
    let cfg = rtm_postgres::PgConfig::new(
        env_or("RTM_DATABASE_URL", DEFAULT_DATABASE_URL),
        env_or("RTM_DATABASE_SCHEMA", DEFAULT_SCHEMA),
    );
    let report = runtime()?
        .block_on(rtm_postgres::migrate(&cfg))
        .with_context(|| format!("migrating schema {}", cfg.schema))?;
    if report.applied.is_empty() {
        println!("migrate: schema {} is up to date", cfg.schema);
    }
    for m in &report.applied {
        println!("migrate: applied V{}__{}", m.version, m.name);
    }
    Ok(())
}

/// Drops `schema` (and everything in it) from the service database, as
/// the admin: the clean-up of a throw-away schema (`cargo xtask
/// schemathesis`).
pub fn drop_schema(schema: &str) -> Result<()> {
    let schema = ident("schema", schema)?;
    let admin_url = env_or("RTM_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL);
    let service: tokio_postgres::Config = env_or("RTM_DATABASE_URL", DEFAULT_DATABASE_URL)
        .parse()
        .context("parsing RTM_DATABASE_URL")?;
    let database = service
        .get_dbname()
        .context("RTM_DATABASE_URL has no database")?
        .to_owned();
    runtime()?.block_on(async {
        let c = connect(&with_database(&admin_url, &database)?).await?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .with_context(|| format!("dropping schema {schema}"))
    })
}
