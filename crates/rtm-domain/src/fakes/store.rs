//! [`FakeStore`]: the storage ports in memory (records, operation log,
//! snapshots, outbox, retention) with the atomic, idempotent
//! [`UnitOfWork::commit`] of the PostgreSQL adapter.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::{down, lock};
use crate::ports::{
    HealthOutbox, HealthQuery, HealthSnapshots, OperationLog, OperationQuery, RecordQuery,
    Retention, RuntimeRecords, UnitOfWork,
};
use crate::{
    Commit, GameId, HealthEvent, HealthRefresh, HealthSnapshot, OpSource, OperationEntry,
    RecordedRequest, RuntimeRecord, RuntimeStatus, StoreError,
};

/// In-memory storage: records, operation log, snapshots and outbox.
#[derive(Debug, Clone, Default)]
pub struct FakeStore {
    inner: Arc<Mutex<StoreState>>,
}

#[derive(Debug, Default)]
struct StoreState {
    records: BTreeMap<GameId, RuntimeRecord>,
    operations: Vec<OperationEntry>,
    /// The request fingerprint of each operation row that has one, by row id.
    requests: BTreeMap<i64, String>,
    health: BTreeMap<GameId, HealthSnapshot>,
    /// Outbox, ascending id; the flag says published.
    outbox: Vec<(HealthEvent, bool)>,
    next_op_id: i64,
    next_event_id: i64,
    unavailable: bool,
    fail_commits: usize,
    commits: Vec<Commit>,
}

impl StoreState {
    fn check_up(&self) -> Result<(), StoreError> {
        if self.unavailable {
            Err(StoreError::Unavailable(down("database")))
        } else {
            Ok(())
        }
    }
}

impl FakeStore {
    /// Empty and up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with `StoreError::Unavailable` while `down`.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).unavailable = down;
    }

    /// Makes the next `n` commits fail with `Unavailable` (nothing written).
    pub fn fail_next_commits(&self, n: usize) {
        lock(&self.inner).fail_commits = n;
    }

    /// Writes a record directly (test setup), bypassing `commit`.
    pub fn put_record(&self, record: RuntimeRecord) {
        lock(&self.inner)
            .records
            .insert(record.game_id.clone(), record);
    }

    /// Writes a snapshot directly (test setup), without an outbox event.
    pub fn put_health(&self, snapshot: HealthSnapshot) {
        lock(&self.inner)
            .health
            .insert(snapshot.game_id.clone(), snapshot);
    }

    /// `game`'s record, if any.
    pub fn record(&self, game: &GameId) -> Option<RuntimeRecord> {
        lock(&self.inner).records.get(game).cloned()
    }

    /// `game`'s health snapshot, if any.
    pub fn health(&self, game: &GameId) -> Option<HealthSnapshot> {
        lock(&self.inner).health.get(game).cloned()
    }

    /// Every operation row, in insertion (id) order.
    pub fn operations(&self) -> Vec<OperationEntry> {
        lock(&self.inner).operations.clone()
    }

    /// Every outbox event ever queued, in id order, published or not.
    pub fn events(&self) -> Vec<HealthEvent> {
        lock(&self.inner)
            .outbox
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Every successful commit, in order.
    pub fn commits(&self) -> Vec<Commit> {
        lock(&self.inner).commits.clone()
    }
}

impl RuntimeRecords for FakeStore {
    fn get_record(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<RuntimeRecord>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| s.records.get(game).cloned());
        std::future::ready(r)
    }

    fn get_record_with_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<(RuntimeRecord, Option<HealthSnapshot>)>, StoreError>> + Send
    {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .get(game)
                .map(|r| (r.clone(), s.health.get(game).cloned()))
        });
        std::future::ready(r)
    }

    fn list_records(
        &self,
        query: &RecordQuery,
    ) -> impl Future<Output = Result<Vec<RuntimeRecord>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .values()
                .filter(|r| query.status.is_none_or(|st| r.status == st))
                .filter(|r| query.last_op_before.is_none_or(|t| r.last_op_at < t))
                .filter(|r| query.after.as_ref().is_none_or(|a| &r.game_id > a))
                .take(query.limit as usize)
                .cloned()
                .collect()
        });
        std::future::ready(r)
    }

    fn find_case_collision(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<GameId>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.records
                .values()
                .find(|r| {
                    r.status != RuntimeStatus::Removed
                        && &r.game_id != game
                        && r.game_id.folded() == game.folded()
                })
                .map(|r| r.game_id.clone())
        });
        std::future::ready(r)
    }
}

impl OperationLog for FakeStore {
    fn find_by_source_ref(
        &self,
        game: &GameId,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.operations
                .iter()
                .find(|o| {
                    &o.game_id == game
                        && o.source == source
                        && o.source_ref.as_deref() == Some(source_ref)
                        && o.finished_at.is_some()
                })
                .cloned()
        });
        std::future::ready(r)
    }

    fn find_source_ref(
        &self,
        source: OpSource,
        source_ref: &str,
    ) -> impl Future<Output = Result<Option<RecordedRequest>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.operations
                .iter()
                .find(|o| {
                    o.source == source
                        && o.source_ref.as_deref() == Some(source_ref)
                        && o.finished_at.is_some()
                })
                .map(|o| RecordedRequest {
                    entry: o.clone(),
                    request: s.requests.get(&o.id).cloned(),
                })
        });
        std::future::ready(r)
    }

    fn list_operations(
        &self,
        query: &OperationQuery,
    ) -> impl Future<Output = Result<Vec<OperationEntry>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            let cursor = query.before_id.and_then(|b| {
                s.operations
                    .iter()
                    .find(|o| o.id == b)
                    .map(|o| (o.started_at, o.id))
            });
            let mut rows: Vec<OperationEntry> = s
                .operations
                .iter()
                .filter(|o| query.game_id.as_ref().is_none_or(|g| &o.game_id == g))
                .filter(|o| query.kind.is_none_or(|k| o.kind == k))
                .filter(|o| query.outcome.is_none_or(|x| o.outcome == x))
                .filter(|o| query.source.is_none_or(|x| o.source == x))
                .filter(|o| query.since.is_none_or(|t| o.started_at >= t))
                .filter(|o| {
                    // Same contract as the adapter: strictly after the
                    // cursor row in (started_at DESC, id DESC) order.
                    query.before_id.is_none_or(|_| {
                        cursor.is_some_and(|(t, id)| (o.started_at, o.id) < (t, id))
                    })
                })
                .cloned()
                .collect();
            rows.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            rows.truncate(query.limit as usize);
            rows
        });
        std::future::ready(r)
    }
}

impl HealthSnapshots for FakeStore {
    fn get_health(
        &self,
        game: &GameId,
    ) -> impl Future<Output = Result<Option<HealthSnapshot>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| s.health.get(game).cloned());
        std::future::ready(r)
    }

    fn refresh_health(
        &self,
        refreshes: &[HealthRefresh],
    ) -> impl Future<Output = Result<Vec<GameId>, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            let mut done = Vec::new();
            for r in refreshes {
                let new = &r.snapshot;
                let game = &new.game_id;
                let runs = s.records.get(game).is_some_and(|rec| {
                    rec.status == RuntimeStatus::Running
                        && rec.container_id == new.container_id
                        && rec.started_at == r.started_at
                });
                let Some(old) = s.health.get_mut(game) else {
                    continue;
                };
                if runs
                    && old.container_id == new.container_id
                    && old.status == new.status
                    && old.observed_at < new.observed_at
                {
                    *old = new.clone();
                    done.push(game.clone());
                }
            }
            done
        });
        std::future::ready(r)
    }

    fn list_health(
        &self,
        query: &HealthQuery,
    ) -> impl Future<Output = Result<Vec<HealthSnapshot>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.health
                .values()
                .filter(|h| query.status.is_none_or(|st| h.status == st))
                .filter(|h| query.after.as_ref().is_none_or(|a| &h.game_id > a))
                .take(query.limit as usize)
                .cloned()
                .collect()
        });
        std::future::ready(r)
    }
}

impl HealthOutbox for FakeStore {
    fn pending_events(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<HealthEvent>, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            s.outbox
                .iter()
                .filter(|(_, published)| !published)
                .take(limit as usize)
                .map(|(e, _)| e.clone())
                .collect()
        });
        std::future::ready(r)
    }

    fn mark_published(&self, ids: &[i64]) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            for (e, published) in &mut s.outbox {
                if ids.contains(&e.id) {
                    *published = true;
                }
            }
        });
        std::future::ready(r)
    }

    fn pending_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let s = lock(&self.inner);
        let r = s
            .check_up()
            .map(|()| s.outbox.iter().filter(|(_, p)| !p).count() as u64);
        std::future::ready(r)
    }
}

impl Retention for FakeStore {
    fn delete_operations_before(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            // The newest row (highest id) of each live game is kept.
            let mut newest: BTreeMap<GameId, i64> = BTreeMap::new();
            for op in &s.operations {
                let live = s
                    .records
                    .get(&op.game_id)
                    .is_some_and(|r| r.status != RuntimeStatus::Removed);
                if live {
                    let e = newest.entry(op.game_id.clone()).or_insert(op.id);
                    *e = (*e).max(op.id);
                }
            }
            let mut doomed: Vec<(OffsetDateTime, i64)> = s
                .operations
                .iter()
                .filter(|op| op.started_at < cutoff && newest.get(&op.game_id) != Some(&op.id))
                .map(|op| (op.started_at, op.id))
                .collect();
            doomed.sort();
            doomed.truncate(limit as usize);
            let ids: std::collections::BTreeSet<i64> =
                doomed.into_iter().map(|(_, id)| id).collect();
            s.operations.retain(|op| !ids.contains(&op.id));
            ids.len() as u64
        });
        std::future::ready(r)
    }

    fn delete_removed_game(
        &self,
        game: &GameId,
        cutoff: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.check_up().map(|()| {
            let expired = s
                .records
                .get(game)
                .is_some_and(|r| r.status == RuntimeStatus::Removed && r.last_op_at < cutoff);
            if expired {
                s.records.remove(game);
                s.health.remove(game);
            }
            expired
        });
        std::future::ready(r)
    }
}

impl UnitOfWork for FakeStore {
    fn commit(
        &self,
        commit: Commit,
    ) -> impl Future<Output = Result<Option<OperationEntry>, StoreError>> + Send {
        let mut s = lock(&self.inner);
        std::future::ready(apply_commit(&mut s, commit))
    }

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(lock(&self.inner).check_up())
    }
}

/// The whole transaction, checked before anything is written so a refusal
/// leaves the state untouched (all or nothing).
fn apply_commit(s: &mut StoreState, commit: Commit) -> Result<Option<OperationEntry>, StoreError> {
    s.check_up()?;
    if s.fail_commits > 0 {
        s.fail_commits -= 1;
        return Err(StoreError::Unavailable(down("database")));
    }
    if let Some(op) = &commit.operation {
        // V2's index (per game) and V3's (per source, rows with a request).
        if let Some(source_ref) = &op.source_ref {
            let duplicate = s.operations.iter().any(|o| {
                o.source == op.source
                    && o.source_ref.as_ref() == Some(source_ref)
                    && (o.game_id == op.game_id
                        || (op.request.is_some() && s.requests.contains_key(&o.id)))
            });
            if duplicate {
                return Err(StoreError::AlreadyExists(format!(
                    "operation ({}, {}, {source_ref}) already recorded",
                    op.game_id, op.source
                )));
            }
        }
    }
    s.commits.push(commit.clone());
    if let Some(mut record) = commit.record {
        // An upsert keeps the first write's `created_at`, as the
        // adapter's `ON CONFLICT DO UPDATE` does.
        if let Some(old) = s.records.get(&record.game_id) {
            record.created_at = old.created_at;
        }
        s.records.insert(record.game_id.clone(), record);
    }
    let entry = commit.operation.map(|op| {
        s.next_op_id += 1;
        let entry = OperationEntry {
            id: s.next_op_id,
            game_id: op.game_id,
            kind: op.kind,
            source: op.source,
            source_ref: op.source_ref,
            image_ref: op.image_ref,
            container_id: op.container_id,
            outcome: op.outcome,
            error: op.error,
            started_at: op.started_at,
            finished_at: Some(op.finished_at),
        };
        if let Some(request) = op.request {
            s.requests.insert(entry.id, request);
        }
        s.operations.push(entry.clone());
        entry
    });
    if let Some(write) = commit.health {
        s.health
            .insert(write.snapshot.game_id.clone(), write.snapshot.clone());
        if write.publish {
            s.next_event_id += 1;
            let event = HealthEvent {
                id: s.next_event_id,
                snapshot: write.snapshot,
            };
            s.outbox.push((event, false));
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::fakes::FakePorts;
    use crate::ports::Clock;
    use crate::{
        HealthDetails, HealthSource, HealthStatus, HealthWrite, ImageRef, NewOperation, OpKind,
        Outcome,
    };

    fn gid(s: &str) -> GameId {
        GameId::parse(s).unwrap()
    }

    fn op(game: &str, source_ref: &str, at: OffsetDateTime) -> NewOperation {
        NewOperation {
            game_id: gid(game),
            kind: OpKind::Start,
            source: OpSource::GmRest,
            source_ref: (!source_ref.is_empty()).then(|| source_ref.to_owned()),
            image_ref: None,
            container_id: None,
            request: None,
            outcome: Outcome::Success,
            error: None,
            started_at: at,
            finished_at: at,
        }
    }

    #[tokio::test]
    async fn commit_is_all_or_nothing_and_refuses_duplicate_refs() {
        let ports = FakePorts::new();
        let (record, _) = ports.seed_running(&gid("g1"), &ImageRef::parse("engine:1.0.0").unwrap());
        let now = ports.clock.now();
        let snapshot = HealthSnapshot {
            game_id: gid("g1"),
            container_id: None,
            status: HealthStatus::Healthy,
            source: HealthSource::Probe,
            details: HealthDetails::new(),
            observed_at: now,
        };
        let c = Commit {
            record: Some(record.clone()),
            operation: Some(op("g1", "ref-1", now)),
            health: Some(HealthWrite {
                snapshot: snapshot.clone(),
                publish: true,
            }),
        };
        let entry = ports.store.commit(c.clone()).await.unwrap().unwrap();
        assert_eq!(entry.id, 1);
        assert_eq!(ports.store.events().len(), 1);

        let dup = ports.store.commit(c).await;
        assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
        assert_eq!(ports.store.operations().len(), 1);
        assert_eq!(
            ports.store.events().len(),
            1,
            "a refused commit writes nothing"
        );

        // No source_ref is never a duplicate.
        for _ in 0..2 {
            ports
                .store
                .commit(Commit {
                    record: None,
                    operation: Some(op("g1", "", now)),
                    health: None,
                })
                .await
                .unwrap();
        }
        assert_eq!(ports.store.operations().len(), 3);
        let found = ports
            .store
            .find_by_source_ref(&gid("g1"), OpSource::GmRest, "ref-1")
            .await
            .unwrap();
        assert_eq!(found.map(|e| e.id), Some(1));
    }

    #[tokio::test]
    async fn keyset_queries_page_in_order() {
        let store = FakeStore::new();
        let t = OffsetDateTime::UNIX_EPOCH;
        for (i, g) in ["c", "a", "b"].iter().enumerate() {
            store
                .commit(Commit {
                    record: None,
                    operation: Some(op(g, "", t + Duration::from_secs(i as u64))),
                    health: None,
                })
                .await
                .unwrap();
        }
        let q = OperationQuery {
            limit: 2,
            ..Default::default()
        };
        let page1 = store.list_operations(&q).await.unwrap();
        assert_eq!(page1.iter().map(|o| o.id).collect::<Vec<_>>(), vec![3, 2]);
        let q = OperationQuery {
            limit: 2,
            before_id: Some(2),
            ..Default::default()
        };
        let page2 = store.list_operations(&q).await.unwrap();
        assert_eq!(page2.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1]);

        let ports = FakePorts::new();
        let image = ImageRef::parse("engine:1.0.0").unwrap();
        for g in ["b", "a", "c"] {
            ports.seed_running(&gid(g), &image);
        }
        let q = RecordQuery {
            limit: 2,
            ..Default::default()
        };
        let p1 = ports.store.list_records(&q).await.unwrap();
        assert_eq!(
            p1.iter().map(|r| r.game_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let q = RecordQuery {
            limit: 2,
            after: Some(gid("b")),
            ..Default::default()
        };
        let p2 = ports.store.list_records(&q).await.unwrap();
        assert_eq!(
            p2.iter().map(|r| r.game_id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
    }
}
