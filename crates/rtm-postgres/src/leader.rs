//! [`PgLeader`]: leader election for singleton workers (cleanup,
//! reconciler) with a PostgreSQL session advisory lock.
//!
//! Each lease owns a dedicated connection opened outside every pool (a
//! pooled connection could be recycled or shared; leadership must live and
//! die with one session). The key is
//! `hashtextextended('rtm:leader:<schema>:<role>', 0)`. Leadership is lost
//! exactly when that session ends, so [`LeaderLease::is_held`] answers
//! false as soon as the connection is closed or a `SELECT 1` on it fails or
//! stalls; the worker then stops acting and tries to acquire again later.
//! Dropping a lease closes its connection, which frees the lock.

use std::time::Duration;

use rtm_domain::ports::{LeaderElection, LeaderLease};
use rtm_domain::StoreError;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::error::store_err;
use crate::{PgConfig, PgError};

/// Leader election in one schema. Cheap to clone.
#[derive(Clone)]
pub struct PgLeader {
    pg: tokio_postgres::Config,
    schema: String,
    probe_timeout: Duration,
}

impl std::fmt::Debug for PgLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLeader")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgLeader {
    pub fn new(config: &PgConfig) -> Result<Self, PgError> {
        Ok(Self {
            pg: config.driver_config()?,
            schema: config.schema.clone(),
            probe_timeout: config.connect_timeout,
        })
    }

    /// Names the leader sessions `rtmanager-leader:<instance>`
    /// (`application_name`, truncated by PostgreSQL to 63 bytes), so the
    /// console can tell which replica leads each worker.
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.pg
            .application_name(format!("rtmanager-leader:{instance}"));
        self
    }
}

/// Leadership of one role, tied to one PostgreSQL session.
pub struct PgLease {
    client: Client,
    conn_task: JoinHandle<()>,
    key: String,
    probe_timeout: Duration,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease").field("key", &self.key).finish()
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        // Closing the socket ends the session and so the leadership.
        self.conn_task.abort();
    }
}

impl LeaderElection for PgLeader {
    type Lease = PgLease;

    async fn try_acquire(&self, role: &str) -> Result<Option<PgLease>, StoreError> {
        let (client, connection) = self.pg.connect(NoTls).await.map_err(store_err)?;
        let conn_task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "leader connection ended");
            }
        });
        let lease = PgLease {
            client,
            conn_task,
            key: format!("rtm:leader:{}:{role}", self.schema),
            probe_timeout: self.probe_timeout,
        };
        // On any error `lease` drops and closes the connection.
        let got: bool = lease
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&lease.key],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(store_err)?;
        Ok(got.then_some(lease))
    }
}

impl LeaderLease for PgLease {
    async fn is_held(&self) -> bool {
        if self.client.is_closed() || self.conn_task.is_finished() {
            return false;
        }
        matches!(
            tokio::time::timeout(self.probe_timeout, self.client.simple_query("SELECT 1")).await,
            Ok(Ok(_))
        )
    }

    async fn release(self) {
        if let Err(e) = self
            .client
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await
        {
            tracing::debug!(error = %e, key = %self.key, "leader unlock failed; closing the session anyway");
        }
        // Drop closes the connection.
    }
}
