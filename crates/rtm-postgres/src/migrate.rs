//! The embedded refinery migrations (`migrations/` at the workspace root)
//! and [`migrate`], which applies them.
//!
//! Guarantees: migrations run in the configured schema only (the session's
//! `search_path` is that schema alone, so refinery's history table
//! `refinery_schema_history` lives there too and an unqualified `CREATE`
//! can land nowhere else); they run under a session advisory lock keyed by
//! the schema, so replicas starting together apply each migration exactly
//! once while the others wait and then find nothing left to do.

use tokio_postgres::NoTls;

use crate::{PgConfig, PgError};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// One migration applied by a [`migrate`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
}

/// What a [`migrate`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Migrations applied by this call, in order; empty when the schema
    /// was already up to date.
    pub applied: Vec<AppliedMigration>,
}

/// Every embedded migration `(version, name)`, in order.
pub fn migrations() -> Vec<AppliedMigration> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| AppliedMigration {
            version: i64::from(m.version()),
            name: m.name().to_owned(),
        })
        .collect()
}

/// Applies the pending migrations to `config.schema`.
///
/// The schema must exist (it is provisioned, owned by the service role;
/// migrations never create it). Safe to call from several processes at
/// once: they serialize on an advisory lock.
pub async fn migrate(config: &PgConfig) -> Result<Report, PgError> {
    let pg = config.driver_config()?;
    let (mut client, connection) = pg.connect(NoTls).await.map_err(PgError::Connect)?;
    // The connection task ends when `client` is dropped at the end of this
    // function, which also ends the session and so frees the lock even if
    // an error returns early.
    let conn_task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection ended");
        }
    });

    let result = async {
        let exists = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&config.schema],
            )
            .await
            .map_err(|source| PgError::Sql {
                step: "schema check",
                source,
            })?;
        if !exists.get::<_, bool>(0) {
            return Err(PgError::SchemaMissing(config.schema.clone()));
        }
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&migrate_lock_key(&config.schema)],
            )
            .await
            .map_err(|source| PgError::Sql {
                step: "migration lock",
                source,
            })?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(PgError::Migrate)?;
        client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&migrate_lock_key(&config.schema)],
            )
            .await
            .map_err(|source| PgError::Sql {
                step: "migration unlock",
                source,
            })?;
        Ok(Report {
            applied: report
                .applied_migrations()
                .iter()
                .map(|m| AppliedMigration {
                    version: i64::from(m.version()),
                    name: m.name().to_owned(),
                })
                .collect(),
        })
    }
    .await;

    drop(client);
    // The task only drives the socket; its own end is not interesting.
    let _ = conn_task.await;
    result
}

pub(crate) fn migrate_lock_key(schema: &str) -> String {
    format!("rtm:migrate:{schema}")
}
