//! [`PgStore::write_commit`]: the SQL of one domain `Commit` (record
//! upsert, operation insert, snapshot upsert, outbox insert) in one
//! transaction.

use rtm_domain::{Commit, ContainerId, OperationEntry, StoreError};
use tokio_postgres::types::ToSql;

use crate::error::store_err;
use crate::rows::{self, OPERATION_COLUMNS};

use super::PgStore;

impl PgStore {
    /// Writes `commit` in `tx` and commits. Dropping an uncommitted
    /// transaction rolls it back, so every `?` below leaves nothing written.
    pub(super) async fn write_commit(
        tx: deadpool_postgres::Transaction<'_>,
        commit: &Commit,
    ) -> Result<Option<OperationEntry>, StoreError> {
        if let Some(r) = &commit.record {
            // created_at is kept from the first insert (SPEC §4: it never
            // changes), whatever the caller sends.
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO runtime_records (game_id, status, current_container_id, \
                       current_image_ref, engine_endpoint, state_path, docker_network, \
                       started_at, stopped_at, removed_at, last_op_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (game_id) DO UPDATE SET \
                       status = EXCLUDED.status, \
                       current_container_id = EXCLUDED.current_container_id, \
                       current_image_ref = EXCLUDED.current_image_ref, \
                       engine_endpoint = EXCLUDED.engine_endpoint, \
                       state_path = EXCLUDED.state_path, \
                       docker_network = EXCLUDED.docker_network, \
                       started_at = EXCLUDED.started_at, \
                       stopped_at = EXCLUDED.stopped_at, \
                       removed_at = EXCLUDED.removed_at, \
                       last_op_at = EXCLUDED.last_op_at",
                )
                .await
                .map_err(store_err)?;
            let container = r.container_id.as_ref().map(|c| c.as_str().to_owned());
            let image = r.image_ref.as_ref().map(|i| i.to_string());
            tx.execute(
                &stmt,
                &[
                    &r.game_id.as_str(),
                    &r.status.as_str(),
                    &container,
                    &image,
                    &r.engine_endpoint,
                    &r.state_path,
                    &r.docker_network,
                    &r.started_at,
                    &r.stopped_at,
                    &r.removed_at,
                    &r.last_op_at,
                    &r.created_at,
                ],
            )
            .await
            .map_err(store_err)?;
        }

        let entry = match &commit.operation {
            None => None,
            Some(op) => {
                let stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO operation_log (game_id, op_kind, op_source, source_ref, \
                           image_ref, container_id, outcome, error_code, error_message, \
                           started_at, finished_at, request) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         RETURNING {OPERATION_COLUMNS}"
                    ))
                    .await
                    .map_err(store_err)?;
                let (code, message) = match &op.error {
                    Some(e) => (e.code.as_str(), e.message.as_str()),
                    None => ("", ""),
                };
                let row = tx
                    .query_one(
                        &stmt,
                        &[
                            &op.game_id.as_str(),
                            &op.kind.as_str(),
                            &op.source.as_str(),
                            &op.source_ref.as_deref().unwrap_or(""),
                            &op.image_ref.as_deref().unwrap_or(""),
                            &op.container_id.as_ref().map_or("", ContainerId::as_str),
                            &op.outcome.as_str(),
                            &code,
                            &message,
                            &op.started_at,
                            &op.finished_at,
                            &op.request.as_deref().unwrap_or(""),
                        ],
                    )
                    .await
                    .map_err(store_err)?;
                Some(rows::operation(&row)?)
            }
        };

        if let Some(h) = &commit.health {
            let s = &h.snapshot;
            let details = rows::details_to_json(&s.details);
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO health_snapshots (game_id, container_id, status, source, \
                       details, observed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (game_id) DO UPDATE SET \
                       container_id = EXCLUDED.container_id, status = EXCLUDED.status, \
                       source = EXCLUDED.source, details = EXCLUDED.details, \
                       observed_at = EXCLUDED.observed_at",
                )
                .await
                .map_err(store_err)?;
            let container = s.container_id.as_ref().map_or("", ContainerId::as_str);
            let params: [&(dyn ToSql + Sync); 6] = [
                &s.game_id.as_str(),
                &container,
                &s.status.as_str(),
                &s.source.as_str(),
                &details,
                &s.observed_at,
            ];
            tx.execute(&stmt, &params).await.map_err(store_err)?;
            if h.publish {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO health_outbox (game_id, container_id, event_type, source, \
                           details, observed_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .await
                    .map_err(store_err)?;
                tx.execute(&stmt, &params).await.map_err(store_err)?;
            }
        }

        tx.commit().await.map_err(store_err)?;
        Ok(entry)
    }
}
