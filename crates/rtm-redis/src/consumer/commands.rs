//! Every Redis command the Lobby consumer sends, as methods of its shared
//! state: the group's creation, the reads, `XPENDING`/`XRANGE` lookups,
//! acknowledgements, dead letters and the touch that keeps our entries
//! from looking idle. Each translates fred errors into [`RedisError`].

use std::collections::{HashMap, HashSet};

use fred::prelude::{ClientLike, StreamsInterface};
use fred::types::config::Options;
use fred::types::Value;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{info, warn};

use super::retry::{sleep_or_stop, Backoff};
use super::{CommandHandler, Shared};
use crate::entry::{DeadReason, StreamEntry};
use crate::publisher::format_observed_at;
use crate::resp;
use crate::RedisError;

/// Upper bound of `XPENDING` pages when recovering unseen entries.
const MAX_RECOVER_PAGES: usize = 100;

impl<H: CommandHandler> Shared<H> {
    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`; an existing group is fine.
    /// From `0`, not `$`: commands written before the group existed (first
    /// deployment, or after Redis lost the group) must not be skipped; any
    /// already-processed one is a harmless replay (entry id = source_ref).
    pub(super) async fn ensure_group(&self) -> Result<(), RedisError> {
        let r: Result<Value, _> = self
            .cmd
            .xgroup_create(&*self.cfg.stream, &*self.cfg.group, "0", true)
            .await;
        match r.map_err(RedisError::from_fred) {
            Ok(_) => {
                info!(stream = %self.cfg.stream, group = %self.cfg.group, "created consumer group");
                Ok(())
            }
            Err(RedisError::Command(e)) if e.details().starts_with("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One `XREADGROUP` on the dedicated connection. `id` is `0`-style for
    /// our own pending entries (no blocking), `>` for new ones.
    pub(super) async fn read_group(&self, id: &str) -> Result<Vec<StreamEntry>, RedisError> {
        let new = id == ">";
        let block = new.then(|| u64::try_from(self.cfg.block.as_millis()).unwrap_or(u64::MAX));
        // The blocking read must outlive its BLOCK time; the usual command
        // timeout comes on top.
        let opts = Options {
            timeout: Some(self.cfg.block + self.cfg.client.command_timeout),
            ..Options::default()
        };
        let v: Value = self
            .read
            .with_options(&opts)
            .xreadgroup(
                &*self.cfg.group,
                &*self.cfg.consumer,
                Some(self.cfg.batch.max(1) as u64),
                block,
                false,
                &*self.cfg.stream,
                id,
            )
            .await
            .map_err(RedisError::from_fred)?;
        resp::xread(&v)
    }

    /// Delivery counts of our own pending entries `first..=last`.
    pub(super) async fn own_delivery_counts(
        &self,
        first: &str,
        last: &str,
        count: usize,
    ) -> Result<HashMap<String, u64>, RedisError> {
        let v: Value = self
            .cmd
            .xpending(
                &*self.cfg.stream,
                &*self.cfg.group,
                (first, last, count as u64, &*self.cfg.consumer),
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(resp::xpending(&v)?
            .into_iter()
            .map(|r| (r.id, r.deliveries))
            .collect())
    }

    /// Our own pending entries this consumer does not hold (delivered by
    /// a read whose reply was lost), with their delivery counts, in id
    /// order. Bodies are fetched by id (`XRANGE`), which, unlike a history
    /// read, counts no delivery; an entry trimmed away comes back without
    /// a body (and is dead-lettered as such).
    pub(super) async fn unseen_pending(&self) -> Result<Vec<(StreamEntry, u64)>, RedisError> {
        let held: HashSet<String> = self.tracked().into_iter().collect();
        let page = self.cfg.batch.max(1) as u64;
        let mut out = Vec::new();
        let mut start = "-".to_owned();
        for _ in 0..MAX_RECOVER_PAGES {
            let v: Value = self
                .cmd
                .xpending(
                    &*self.cfg.stream,
                    &*self.cfg.group,
                    (start.as_str(), "+", page, &*self.cfg.consumer),
                )
                .await
                .map_err(RedisError::from_fred)?;
            let rows = resp::xpending(&v)?;
            let full = rows.len() as u64 >= page;
            let Some(last) = rows.last().map(|r| r.id.clone()) else {
                break;
            };
            for row in rows.into_iter().filter(|r| !held.contains(&r.id)) {
                let v: Value = self
                    .cmd
                    .xrange(&*self.cfg.stream, row.id.as_str(), row.id.as_str(), Some(1))
                    .await
                    .map_err(RedisError::from_fred)?;
                let entry = resp::entries(&v)?
                    .into_iter()
                    .next()
                    .unwrap_or(StreamEntry {
                        id: row.id,
                        fields: None,
                        invalid_utf8: false,
                    });
                out.push((entry, row.deliveries));
            }
            if !full {
                break;
            }
            start = format!("({last}");
        }
        Ok(out)
    }

    /// The delivery count of `id`, whoever's pending entry it is; `None`
    /// when it is no longer pending.
    pub(super) async fn delivery_count(&self, id: &str) -> Result<Option<u64>, RedisError> {
        let v: Value = self
            .cmd
            .xpending(&*self.cfg.stream, &*self.cfg.group, (id, id, 1u64))
            .await
            .map_err(RedisError::from_fred)?;
        Ok(resp::xpending(&v)?.into_iter().next().map(|r| r.deliveries))
    }

    /// `XACK`; a missing group counts as acknowledged.
    pub(super) async fn ack(&self, id: &str) -> Result<(), RedisError> {
        let r: Result<Value, _> = self.cmd.xack(&*self.cfg.stream, &*self.cfg.group, id).await;
        match r.map_err(RedisError::from_fred) {
            Ok(_) => Ok(()),
            // The group (and its pending list) is gone: Redis lost its data.
            // There is nothing left to acknowledge.
            Err(e) if e.is_no_group() => {
                warn!(
                    entry = id,
                    "group missing while acknowledging; nothing to acknowledge"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Acknowledges, retrying until it worked or stop is requested (the
    /// entry then stays pending and its redelivery is a harmless replay).
    pub(super) async fn ack_with_retry(&self, id: &str, stop: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = Backoff::new(self.cfg.retry_min, self.cfg.retry_max);
        loop {
            match self.ack(id).await {
                Ok(()) => return true,
                Err(e) => {
                    warn!(entry = id, error = %e, "acknowledge failed; retrying");
                    self.counters.error("xack", &e);
                    if sleep_or_stop(backoff.next(), stop).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Copies `entry` to `<stream>:dead` with the reason, this consumer and
    /// the delivery count, capped with `MAXLEN ~`.
    pub(super) async fn add_dead(
        &self,
        entry: &StreamEntry,
        reason: &DeadReason,
        deliveries: u64,
    ) -> Result<(), RedisError> {
        let mut fields: Vec<(String, String)> = entry.fields.clone().unwrap_or_default();
        fields.extend([
            ("dead_reason".to_owned(), reason.code().to_owned()),
            ("dead_detail".to_owned(), reason.to_string()),
            ("dead_entry_id".to_owned(), entry.id.clone()),
            ("dead_consumer".to_owned(), self.cfg.consumer.clone()),
            ("dead_deliveries".to_owned(), deliveries.to_string()),
            (
                "dead_at".to_owned(),
                format_observed_at(OffsetDateTime::now_utc()),
            ),
        ]);
        let _: Value = self
            .cmd
            .xadd(
                &*self.dead_stream,
                false,
                ("MAXLEN", "~", self.cfg.dead_maxlen),
                "*",
                fields,
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(())
    }

    /// Resets the idle time of entries held in memory, without counting a
    /// delivery, so no claimer (ours or another replica's) takes them.
    pub(super) async fn touch(&self, ids: Vec<String>) -> Result<(), RedisError> {
        let _: Value = self
            .cmd
            .xclaim(
                &*self.cfg.stream,
                &*self.cfg.group,
                &*self.cfg.consumer,
                0,
                ids,
                None,
                None,
                None,
                false,
                true,
            )
            .await
            .map_err(RedisError::from_fred)?;
        Ok(())
    }
}
