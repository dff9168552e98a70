//! The storage ports' contract ([`RuntimeRecords`], [`OperationLog`],
//! [`HealthSnapshots`], [`HealthOutbox`], [`UnitOfWork`], [`Retention`]):
//! upserts, filters, keyset pages, the all-or-nothing commit and the
//! uniqueness of `source_ref`. Every case starts from an empty store.
//!
//! [`RuntimeRecords`]: crate::ports::RuntimeRecords
//! [`OperationLog`]: crate::ports::OperationLog
//! [`HealthSnapshots`]: crate::ports::HealthSnapshots
//! [`HealthOutbox`]: crate::ports::HealthOutbox
//! [`Retention`]: crate::ports::Retention

use crate::ports::{HealthQuery, OperationQuery, RecordQuery, Store, UnitOfWork};
use crate::{
    Commit, ContainerId, ErrorCode, GameId, HealthDetails, HealthRefresh, HealthSnapshot,
    HealthSource, HealthStatus, HealthWrite, ImageRef, NewOperation, OpError, OpKind, OpSource,
    OperationEntry, Outcome, RuntimeRecord, RuntimeStatus, StoreError,
};

use super::{gid, t};

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl Store)` giving an empty store.
#[macro_export]
macro_rules! store_contract {
    ($setup:path) => {
        $crate::__contract_tests!(
            store,
            $setup,
            [
                record_upsert_replaces_all_but_created_at,
                list_records_filters_and_pages_by_game_id,
                operations_are_listed_newest_first_with_filters_and_cursor,
                duplicate_source_ref_is_already_exists_and_writes_nothing,
                a_reference_names_one_request_per_source_across_games,
                find_by_source_ref_matches_game_source_and_ref,
                case_collisions_are_live_records_of_another_spelling,
                health_snapshots_upsert_filter_and_page,
                a_refresh_applies_only_while_nothing_changed,
                record_with_health_reads_both_or_the_record_alone,
                outbox_holds_published_changes_until_marked,
                retention_keeps_the_newest_operation_of_a_live_game,
                retention_deletes_only_expired_removed_games,
            ]
        );
    };
}

fn record(game: &str, status: RuntimeStatus, last_op: i64) -> RuntimeRecord {
    RuntimeRecord {
        game_id: gid(game),
        status,
        container_id: ContainerId::new(format!("c-{game}")),
        image_ref: Some(ImageRef::parse("rtm.local/engine-stub:1.0.0").unwrap()),
        engine_endpoint: format!("http://rtm-{game}:8080"),
        state_path: format!("/var/lib/rtmanager/games/{game}"),
        docker_network: "rtm-engines".into(),
        started_at: Some(t(0)),
        stopped_at: None,
        removed_at: None,
        last_op_at: t(last_op),
        created_at: t(0),
    }
}

fn op(game: &str, kind: OpKind, source: OpSource, source_ref: &str, started: i64) -> NewOperation {
    NewOperation {
        game_id: gid(game),
        kind,
        source,
        source_ref: (!source_ref.is_empty()).then(|| source_ref.to_owned()),
        image_ref: Some("rtm.local/engine-stub:1.0.0".into()),
        container_id: ContainerId::new(format!("c-{game}")),
        request: None,
        outcome: Outcome::Success,
        error: None,
        started_at: t(started),
        finished_at: t(started + 1),
    }
}

fn snap(game: &str, status: HealthStatus, at: i64) -> HealthSnapshot {
    HealthSnapshot {
        game_id: gid(game),
        container_id: ContainerId::new(format!("c-{game}")),
        status,
        source: HealthSource::Probe,
        details: HealthDetails::new()
            .with("attempt", 3i64)
            .with("error", "refused"),
        observed_at: t(at),
    }
}

async fn put_record<S: UnitOfWork>(s: &S, r: RuntimeRecord) {
    let c = Commit {
        record: Some(r),
        operation: None,
        health: None,
    };
    s.commit(c).await.unwrap();
}

async fn put_op<S: UnitOfWork>(s: &S, o: NewOperation) -> OperationEntry {
    let c = Commit {
        record: None,
        operation: Some(o),
        health: None,
    };
    s.commit(c).await.unwrap().expect("an operation row")
}

async fn put_health<S: UnitOfWork>(s: &S, h: HealthSnapshot, publish: bool) {
    let c = Commit {
        record: None,
        operation: None,
        health: Some(HealthWrite {
            snapshot: h,
            publish,
        }),
    };
    s.commit(c).await.unwrap();
}

async fn all_ops<S: Store>(s: &S) -> Vec<OperationEntry> {
    let q = OperationQuery {
        limit: 1000,
        ..Default::default()
    };
    s.list_operations(&q).await.unwrap()
}

/// A record upsert replaces every field but `created_at`, which keeps
/// the first write's value.
pub async fn record_upsert_replaces_all_but_created_at<S: Store>(s: &S) {
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), None);
    let r = record("g1", RuntimeStatus::Running, 10);
    put_record(s, r.clone()).await;
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), Some(r.clone()));

    let mut next = r.clone();
    next.enter(RuntimeStatus::Stopped, t(20));
    next.container_id = None;
    next.image_ref = None;
    next.created_at = t(999);
    put_record(s, next.clone()).await;
    let got = s.get_record(&gid("g1")).await.unwrap();
    assert_eq!(
        got,
        Some(RuntimeRecord {
            created_at: t(0),
            ..next
        })
    );
}

/// `list_records` applies each filter, orders by `game_id` (byte order)
/// and pages by keyset.
pub async fn list_records_filters_and_pages_by_game_id<S: Store>(s: &S) {
    for (g, st, at) in [
        ("b", RuntimeStatus::Stopped, 5),
        ("a", RuntimeStatus::Running, 1),
        ("Z", RuntimeStatus::Stopped, 50),
        ("c", RuntimeStatus::Stopped, 100),
        ("d", RuntimeStatus::Removed, 1),
    ] {
        put_record(s, record(g, st, at)).await;
    }
    let list = |q: RecordQuery| async move {
        let v = s.list_records(&q).await.unwrap();
        v.into_iter()
            .map(|r| r.game_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let all = RecordQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(all.clone()).await, ["Z", "a", "b", "c", "d"]);

    let mut pages = vec![];
    let mut after = None;
    loop {
        let q = RecordQuery {
            limit: 2,
            after: after.clone(),
            ..Default::default()
        };
        let page = list(q).await;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|g| gid(g));
        pages.push(page);
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, vec![vec!["Z", "a"], vec!["b", "c"], vec!["d"]]);

    let stopped = RecordQuery {
        status: Some(RuntimeStatus::Stopped),
        ..all.clone()
    };
    assert_eq!(list(stopped.clone()).await, ["Z", "b", "c"]);
    let old_stopped = RecordQuery {
        last_op_before: Some(t(50)),
        ..stopped
    };
    assert_eq!(list(old_stopped).await, ["b"], "strictly before");
}

/// `list_operations` returns rows newest first (`started_at DESC, id
/// DESC`), honours every filter, and its cursor continues after the
/// cursor row in that order (not by id alone).
pub async fn operations_are_listed_newest_first_with_filters_and_cursor<S: Store>(s: &S) {
    let mut failed = op("g2", OpKind::Start, OpSource::LobbyStream, "1-0", 30);
    failed.outcome = Outcome::Failure;
    failed.error = Some(OpError::new(ErrorCode::ImageNotAllowed, "not on the list"));
    let inputs = vec![
        op("g1", OpKind::Start, OpSource::GmRest, "", 10),
        op("g1", OpKind::Stop, OpSource::GmRest, "k1", 20),
        failed,
        op("g1", OpKind::Restart, OpSource::AdminRest, "", 20), // ties with k1
        op("g2", OpKind::Stop, OpSource::AutoTtl, "", 5),       // committed last
    ];
    let mut ids = vec![];
    for o in inputs {
        let e = put_op(s, o.clone()).await;
        assert_eq!(
            (
                e.game_id,
                e.kind,
                e.source,
                e.source_ref,
                e.outcome,
                e.error
            ),
            (
                o.game_id,
                o.kind,
                o.source,
                o.source_ref,
                o.outcome,
                o.error
            )
        );
        assert_eq!((e.image_ref, e.container_id), (o.image_ref, o.container_id));
        assert_eq!(
            (e.started_at, e.finished_at),
            (o.started_at, Some(o.finished_at))
        );
        ids.push(e.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");

    let list = |q: OperationQuery| async move {
        let v = s.list_operations(&q).await.unwrap();
        v.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let all = OperationQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        list(all.clone()).await,
        [ids[2], ids[3], ids[1], ids[0], ids[4]]
    );
    // Pages of two, each continuing after the previous page's last row.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let q = OperationQuery {
            limit: 2,
            before_id: cursor,
            ..Default::default()
        };
        let page = list(q).await;
        if page.is_empty() {
            break;
        }
        cursor = page.last().copied();
        seen.extend(page);
        assert!(seen.len() <= 5, "paging repeats rows: {seen:?}");
    }
    assert_eq!(seen, [ids[2], ids[3], ids[1], ids[0], ids[4]]);
    let unknown = OperationQuery {
        before_id: Some(ids[4] + 1000),
        ..all.clone()
    };
    assert_eq!(
        list(unknown).await,
        [],
        "an unknown cursor gives an empty page"
    );

    let g1 = OperationQuery {
        game_id: Some(gid("g1")),
        ..all.clone()
    };
    assert_eq!(list(g1.clone()).await, [ids[3], ids[1], ids[0]]);
    let stops = OperationQuery {
        kind: Some(OpKind::Stop),
        ..all.clone()
    };
    assert_eq!(list(stops).await, [ids[1], ids[4]]);
    let failures = OperationQuery {
        outcome: Some(Outcome::Failure),
        ..all.clone()
    };
    assert_eq!(list(failures).await, [ids[2]]);
    let gm = OperationQuery {
        source: Some(OpSource::GmRest),
        ..all.clone()
    };
    assert_eq!(list(gm).await, [ids[1], ids[0]]);
    let since = OperationQuery {
        since: Some(t(20)),
        ..all.clone()
    };
    assert_eq!(
        list(since).await,
        [ids[2], ids[3], ids[1]],
        "since is inclusive"
    );
    let combined = OperationQuery {
        kind: Some(OpKind::Restart),
        source: Some(OpSource::AdminRest),
        since: Some(t(20)),
        before_id: Some(ids[2]),
        ..g1
    };
    assert_eq!(list(combined).await, [ids[3]]);
    let one = OperationQuery { limit: 1, ..all };
    assert_eq!(list(one).await, [ids[2]]);
}

/// A commit whose operation repeats a non-empty `(game, source,
/// source_ref)` is `AlreadyExists` and writes nothing at all; no
/// reference, another source or another game is not a repeat.
pub async fn duplicate_source_ref_is_already_exists_and_writes_nothing<S: Store>(s: &S) {
    put_op(s, op("g1", OpKind::Start, OpSource::GmRest, "key", 1)).await;
    for _ in 0..2 {
        put_op(s, op("g1", OpKind::Start, OpSource::GmRest, "", 1)).await;
    }
    put_op(s, op("g1", OpKind::Start, OpSource::AdminRest, "key", 1)).await;
    put_op(s, op("g2", OpKind::Start, OpSource::GmRest, "key", 1)).await;

    let dup = Commit {
        record: Some(record("g1", RuntimeStatus::Running, 1)),
        operation: Some(op("g1", OpKind::Stop, OpSource::GmRest, "key", 2)),
        health: Some(HealthWrite {
            snapshot: snap("g1", HealthStatus::Healthy, 2),
            publish: true,
        }),
    };
    let err = s.commit(dup).await;
    assert!(matches!(err, Err(StoreError::AlreadyExists(_))), "{err:?}");
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), None);
    assert_eq!(s.get_health(&gid("g1")).await.unwrap(), None);
    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert_eq!(all_ops(s).await.len(), 5);
}

/// A reference with a recorded request names one request per source,
/// across games (V3's index); rows without a request are not constrained
/// across games, and `find_source_ref` finds the first row.
pub async fn a_reference_names_one_request_per_source_across_games<S: Store>(s: &S) {
    let mut first = op("g1", OpKind::Start, OpSource::GmRest, "k", 1);
    first.request = Some("start game=g1 image=x".into());
    let e = put_op(s, first.clone()).await;
    let found = s.find_source_ref(OpSource::GmRest, "k").await.unwrap();
    let found = found.expect("the reference is found");
    assert_eq!((found.entry, found.request), (e.clone(), first.request));
    let other_source = s.find_source_ref(OpSource::AdminRest, "k").await.unwrap();
    assert!(other_source.is_none());

    let mut other = op("g2", OpKind::Stop, OpSource::GmRest, "k", 2);
    other.request = Some("stop game=g2".into());
    let refused = s.commit(commit_of(other.clone())).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyExists(_))),
        "{refused:?}"
    );
    assert_eq!(all_ops(s).await.len(), 1, "nothing written");
    other.source = OpSource::AdminRest;
    put_op(s, other).await;
    let mut legacy = op("g3", OpKind::Stop, OpSource::GmRest, "k", 3);
    legacy.request = None;
    put_op(s, legacy).await;
    let found = s.find_source_ref(OpSource::GmRest, "k").await.unwrap();
    assert_eq!(found.map(|f| f.entry), Some(e), "the first row it named");
}

fn commit_of(o: NewOperation) -> Commit {
    Commit {
        record: None,
        operation: Some(o),
        health: None,
    }
}

/// `find_by_source_ref` finds the row of exactly that game, source and
/// reference.
pub async fn find_by_source_ref_matches_game_source_and_ref<S: Store>(s: &S) {
    let e = put_op(s, op("g1", OpKind::Start, OpSource::LobbyStream, "17-3", 1)).await;
    let find = |g: &'static str, src: OpSource, r: &'static str| async move {
        s.find_by_source_ref(&gid(g), src, r).await.unwrap()
    };
    assert_eq!(find("g1", OpSource::LobbyStream, "17-3").await, Some(e));
    assert_eq!(find("g1", OpSource::GmRest, "17-3").await, None);
    assert_eq!(find("g2", OpSource::LobbyStream, "17-3").await, None);
    assert_eq!(find("g1", OpSource::LobbyStream, "17-4").await, None);
}

/// A case collision is a live (not removed) record of another spelling of
/// the same id; a game is never its own collision.
pub async fn case_collisions_are_live_records_of_another_spelling<S: Store>(s: &S) {
    for (g, status) in [
        ("cx", RuntimeStatus::Running),
        ("Gone", RuntimeStatus::Removed),
        ("Dd", RuntimeStatus::Stopped),
    ] {
        put_record(s, record(g, status, 1)).await;
    }
    let find = |g: &'static str| async move { s.find_case_collision(&gid(g)).await.unwrap() };
    assert_eq!(find("CX").await, Some(gid("cx")));
    assert_eq!(find("cX").await, Some(gid("cx")));
    assert_eq!(find("cx").await, None);
    assert_eq!(find("dd").await, Some(gid("Dd")));
    assert_eq!(find("gone").await, None);
    assert_eq!(find("cy").await, None);
}

/// Snapshots are upserted whole per game, filtered by status and paged
/// by `game_id`.
pub async fn health_snapshots_upsert_filter_and_page<S: Store>(s: &S) {
    for (g, st) in [
        ("b", HealthStatus::Healthy),
        ("a", HealthStatus::ProbeFailed),
        ("c", HealthStatus::ProbeFailed),
    ] {
        put_health(s, snap(g, st, 1), false).await;
    }
    let mut latest = snap("a", HealthStatus::Oom, 9);
    latest.source = HealthSource::DockerEvent;
    latest.details = HealthDetails::new()
        .with("exit_code", 137i64)
        .with("oom_killed", true);
    put_health(s, latest.clone(), false).await;
    assert_eq!(s.get_health(&gid("a")).await.unwrap(), Some(latest));
    assert_eq!(s.get_health(&gid("zz")).await.unwrap(), None);

    let list = |q: HealthQuery| async move {
        let v = s.list_health(&q).await.unwrap();
        v.into_iter()
            .map(|h| h.game_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let all = HealthQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(list(all.clone()).await, ["a", "b", "c"]);
    let failed = HealthQuery {
        status: Some(HealthStatus::ProbeFailed),
        ..all.clone()
    };
    assert_eq!(list(failed).await, ["c"]);
    let page = HealthQuery {
        after: Some(gid("a")),
        limit: 1,
        ..all
    };
    assert_eq!(list(page).await, ["b"]);
}

/// A refresh rewrites `observed_at`, `source` and `details` of a snapshot
/// only while the snapshot and the record still say what it was judged
/// against; it never queues an event.
pub async fn a_refresh_applies_only_while_nothing_changed<S: Store>(s: &S) {
    assert_eq!(s.refresh_health(&[]).await.unwrap(), Vec::<GameId>::new());
    let games = [
        "fresh",
        "status",
        "container",
        "restarted",
        "stopped",
        "newer",
        "nosnap",
    ];
    for g in games {
        put_record(s, record(g, RuntimeStatus::Running, 1)).await;
        if g != "nosnap" {
            put_health(s, snap(g, HealthStatus::Healthy, 5), false).await;
        }
    }
    // What changed meanwhile, one thing per game.
    put_health(s, snap("status", HealthStatus::ProbeFailed, 6), false).await;
    let mut other = snap("container", HealthStatus::Healthy, 5);
    other.container_id = ContainerId::new("c-other");
    put_health(s, other, false).await;
    let mut restarted = record("restarted", RuntimeStatus::Running, 2);
    restarted.started_at = Some(t(2));
    put_record(s, restarted).await;
    put_record(s, record("stopped", RuntimeStatus::Stopped, 2)).await;
    put_health(s, snap("newer", HealthStatus::Healthy, 30), false).await;
    let before: Vec<_> = {
        let mut v = Vec::new();
        for g in games {
            v.push(s.get_health(&gid(g)).await.unwrap());
        }
        v
    };

    let refresh = |g: &str| {
        let mut snapshot = snap(g, HealthStatus::Healthy, 20);
        snapshot.details = HealthDetails::new().with("attempt", 1i64);
        snapshot.source = HealthSource::Inspect;
        HealthRefresh {
            snapshot,
            started_at: Some(t(0)),
        }
    };
    let all: Vec<_> = games.iter().map(|g| refresh(g)).collect();
    let done = s.refresh_health(&all).await.unwrap();
    assert_eq!(done, [gid("fresh")]);
    assert_eq!(
        s.get_health(&gid("fresh")).await.unwrap(),
        Some(refresh("fresh").snapshot)
    );
    for (g, was) in games.iter().zip(before).skip(1) {
        assert_eq!(s.get_health(&gid(g)).await.unwrap(), was, "{g}");
    }
    assert_eq!(s.pending_count().await.unwrap(), 0, "no event");
    // Applied once: the same refresh again is not newer.
    assert!(s.refresh_health(&all[..1]).await.unwrap().is_empty());
}

/// `get_record_with_health` needs a record; the snapshot is optional.
pub async fn record_with_health_reads_both_or_the_record_alone<S: Store>(s: &S) {
    assert_eq!(s.get_record_with_health(&gid("g1")).await.unwrap(), None);
    put_health(s, snap("orphan", HealthStatus::Healthy, 1), false).await;
    let orphan = s.get_record_with_health(&gid("orphan")).await.unwrap();
    assert_eq!(orphan, None, "a snapshot without a record is not a runtime");

    let r = record("g1", RuntimeStatus::Running, 10);
    put_record(s, r.clone()).await;
    let got = s.get_record_with_health(&gid("g1")).await.unwrap();
    assert_eq!(got, Some((r.clone(), None)));
    let h = snap("g1", HealthStatus::Oom, 12);
    put_health(s, h.clone(), false).await;
    let got = s.get_record_with_health(&gid("g1")).await.unwrap();
    assert_eq!(got, Some((r, Some(h))));
}

/// Published changes wait in the outbox, in commit order, until marked;
/// marking is idempotent.
pub async fn outbox_holds_published_changes_until_marked<S: Store>(s: &S) {
    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert!(s.pending_events(10).await.unwrap().is_empty());
    put_health(s, snap("g1", HealthStatus::Healthy, 1), true).await;
    put_health(s, snap("g1", HealthStatus::Healthy, 2), false).await;
    put_health(s, snap("g2", HealthStatus::Exited, 3), true).await;
    put_health(s, snap("g1", HealthStatus::ProbeFailed, 4), true).await;
    assert_eq!(s.pending_count().await.unwrap(), 3);

    let events = s.pending_events(10).await.unwrap();
    let seen: Vec<_> = events.iter().map(|e| e.snapshot.clone()).collect();
    assert_eq!(
        seen,
        [
            snap("g1", HealthStatus::Healthy, 1),
            snap("g2", HealthStatus::Exited, 3),
            snap("g1", HealthStatus::ProbeFailed, 4),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.pending_events(1).await.unwrap(), events[..1].to_vec());

    s.mark_published(&[events[0].id, events[2].id])
        .await
        .unwrap();
    s.mark_published(&[]).await.unwrap();
    assert_eq!(s.pending_events(10).await.unwrap(), events[1..2].to_vec());
    assert_eq!(s.pending_count().await.unwrap(), 1);
    s.mark_published(&[events[0].id]).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 1);
}

/// Retention deletes old rows oldest first, in bounded batches, but never
/// the newest row of a live game.
pub async fn retention_keeps_the_newest_operation_of_a_live_game<S: Store>(s: &S) {
    put_record(s, record("live", RuntimeStatus::Stopped, 3)).await;
    put_record(s, record("gone", RuntimeStatus::Removed, 3)).await;
    let live_old = put_op(s, op("live", OpKind::Start, OpSource::GmRest, "", 1)).await;
    let live_newest = put_op(s, op("live", OpKind::Stop, OpSource::GmRest, "", 3)).await;
    let gone_1 = put_op(s, op("gone", OpKind::Start, OpSource::GmRest, "", 2)).await;
    let gone_2 = put_op(
        s,
        op("gone", OpKind::CleanupContainer, OpSource::GmRest, "", 4),
    )
    .await;
    let fresh = put_op(s, op("gone", OpKind::Start, OpSource::GmRest, "", 100)).await;

    // Oldest first, at most `limit`.
    assert_eq!(s.delete_operations_before(t(50), 2).await.unwrap(), 2);
    let left: Vec<i64> = all_ops(s).await.into_iter().map(|e| e.id).collect();
    assert_eq!(left, [fresh.id, gone_2.id, live_newest.id]);
    assert!(!left.contains(&live_old.id) && !left.contains(&gone_1.id));
    // The live game's newest row stays however old it is.
    assert_eq!(s.delete_operations_before(t(50), 10).await.unwrap(), 1);
    let left: Vec<i64> = all_ops(s).await.into_iter().map(|e| e.id).collect();
    assert_eq!(left, [fresh.id, live_newest.id]);
    assert_eq!(s.delete_operations_before(t(50), 10).await.unwrap(), 0);
}

/// `delete_removed_game` deletes a record (and its snapshot) only while it
/// is `removed` with `last_op_at` before the cutoff.
pub async fn retention_deletes_only_expired_removed_games<S: Store>(s: &S) {
    put_record(s, record("old", RuntimeStatus::Removed, 10)).await;
    put_health(s, snap("old", HealthStatus::Exited, 10), false).await;
    put_record(s, record("recent", RuntimeStatus::Removed, 100)).await;
    put_record(s, record("stopped", RuntimeStatus::Stopped, 10)).await;

    assert!(!s.delete_removed_game(&gid("recent"), t(50)).await.unwrap());
    assert!(!s.delete_removed_game(&gid("stopped"), t(50)).await.unwrap());
    assert!(!s.delete_removed_game(&gid("missing"), t(50)).await.unwrap());
    assert!(
        !s.delete_removed_game(&gid("old"), t(10)).await.unwrap(),
        "strictly before"
    );
    assert!(s.delete_removed_game(&gid("old"), t(50)).await.unwrap());
    assert_eq!(s.get_record(&gid("old")).await.unwrap(), None);
    assert_eq!(s.get_health(&gid("old")).await.unwrap(), None);
    assert!(s.get_record(&gid("recent")).await.unwrap().is_some());
    assert!(s.get_record(&gid("stopped")).await.unwrap().is_some());
}
