//! The storage ports against their contracts: round trips, filters,
//! keyset pagination, atomic commits, idempotency races, error mapping and
//! recovery after PostgreSQL drops the store's sessions.

use std::time::Duration;

use rtm_domain::ports::{
    HealthOutbox, HealthQuery, HealthSnapshots, OperationLog, OperationQuery, RecordQuery,
    RuntimeRecords, UnitOfWork,
};
use rtm_domain::{
    Commit, DetailValue, ErrorCode, HealthStatus, HealthWrite, OpError, OpKind, OpSource, Outcome,
    RuntimeStatus, StoreError,
};
use rtm_postgres::{PgConfig, PgStore};

use crate::{commit_health, commit_op, gid, op, record, snap, store, t};

#[tokio::test]
async fn record_roundtrip_and_upsert_keeps_created_at() {
    let (_db, _cfg, s) = store().await;
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), None);

    let r = record("g1", RuntimeStatus::Running, 10);
    s.commit(Commit {
        record: Some(r.clone()),
        operation: None,
        health: None,
    })
    .await
    .unwrap();
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), Some(r.clone()));

    let mut next = r.clone();
    next.enter(RuntimeStatus::Stopped, t(20));
    next.container_id = None;
    next.image_ref = None;
    next.created_at = t(999); // must be ignored
    s.commit(Commit {
        record: Some(next.clone()),
        operation: None,
        health: None,
    })
    .await
    .unwrap();
    let got = s.get_record(&gid("g1")).await.unwrap().unwrap();
    assert_eq!(got.created_at, t(0));
    assert_eq!(got.status, RuntimeStatus::Stopped);
    assert_eq!(got.stopped_at, Some(t(20)));
    assert_eq!(got.container_id, None);
    assert_eq!(got.image_ref, None);
    assert_eq!(
        got,
        rtm_domain::RuntimeRecord {
            created_at: t(0),
            ..next
        }
    );
}

#[tokio::test]
async fn list_records_filters_and_pages_by_game_id() {
    let (_db, _cfg, s) = store().await;
    // Byte order: upper case sorts before lower case.
    let specs = [
        ("b", RuntimeStatus::Stopped, 5),
        ("a", RuntimeStatus::Running, 1),
        ("Z", RuntimeStatus::Stopped, 50),
        ("c", RuntimeStatus::Stopped, 100),
        ("d", RuntimeStatus::Removed, 1),
    ];
    for (g, st, at) in specs {
        let mut r = record(g, RuntimeStatus::Running, at);
        r.status = st;
        s.commit(Commit {
            record: Some(r),
            operation: None,
            health: None,
        })
        .await
        .unwrap();
    }
    let ids = |v: Vec<rtm_domain::RuntimeRecord>| {
        v.into_iter()
            .map(|r| r.game_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let all = RecordQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_records(&all).await.unwrap()),
        ["Z", "a", "b", "c", "d"]
    );

    // Keyset pages of 2.
    let mut pages = vec![];
    let mut after = None;
    for _ in 0..10 {
        let page = s
            .list_records(&RecordQuery {
                limit: 2,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.game_id.clone());
        pages.push(ids(page));
    }
    assert_eq!(pages, vec![vec!["Z", "a"], vec!["b", "c"], vec!["d"]]);

    let stopped = RecordQuery {
        status: Some(RuntimeStatus::Stopped),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_records(&stopped).await.unwrap()),
        ["Z", "b", "c"]
    );
    // The cleanup worker's query: stopped and last_op_at strictly before.
    let stale = RecordQuery {
        last_op_before: Some(t(50)),
        ..stopped.clone()
    };
    assert_eq!(ids(s.list_records(&stale).await.unwrap()), ["b"]);
    let after_b = RecordQuery {
        after: Some(gid("b")),
        ..stopped
    };
    assert_eq!(ids(s.list_records(&after_b).await.unwrap()), ["c"]);
    assert!(s
        .list_records(&RecordQuery {
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn operations_roundtrip_filter_and_page_newest_first() {
    let (_db, _cfg, s) = store().await;
    let mut failed = op("g2", OpKind::Start, OpSource::LobbyStream, "1-0", 30);
    failed.outcome = Outcome::Failure;
    failed.error = Some(OpError::new(ErrorCode::ImageNotAllowed, "not on the list"));
    let inputs = vec![
        op("g1", OpKind::Start, OpSource::GmRest, "", 10),
        op("g1", OpKind::Stop, OpSource::GmRest, "k1", 20),
        failed.clone(),
        op("g1", OpKind::Restart, OpSource::AdminRest, "", 20), // same started_at as k1
        op("g2", OpKind::Stop, OpSource::AutoTtl, "", 5),
    ];
    let mut entries = vec![];
    for o in inputs {
        let e = s
            .commit(commit_op(o.clone()))
            .await
            .unwrap()
            .expect("entry returned");
        assert_eq!(e.game_id, o.game_id);
        assert_eq!(e.kind, o.kind);
        assert_eq!(e.error, o.error);
        assert_eq!(e.started_at, o.started_at);
        assert_eq!(e.finished_at, Some(o.finished_at));
        entries.push(e);
    }
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");

    let list = |q: OperationQuery| {
        let s = s.clone();
        async move {
            s.list_operations(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let all = OperationQuery {
        limit: 100,
        ..Default::default()
    };
    // started_at DESC, then id DESC among equal started_at (20: restart then stop).
    assert_eq!(
        list(all.clone()).await,
        vec![ids[2], ids[3], ids[1], ids[0], ids[4]]
    );
    // The full rows come back as committed.
    let read = s.list_operations(&all).await.unwrap();
    assert!(entries.iter().all(|e| read.contains(e)));

    // Keyset: the rows after the cursor row in (started_at DESC, id DESC)
    // order. ids[2] started later than ids[3] but has a lower id: comparing
    // ids alone would repeat it here.
    assert_eq!(
        list(OperationQuery {
            before_id: Some(ids[3]),
            ..all.clone()
        })
        .await,
        vec![ids[1], ids[0], ids[4]]
    );
    // Walking pages of two yields the full order, each row exactly once.
    let mut walked = vec![];
    let mut cursor = None;
    for _ in 0..10 {
        let page = list(OperationQuery {
            limit: 2,
            before_id: cursor,
            ..all.clone()
        })
        .await;
        if page.is_empty() {
            break;
        }
        cursor = page.last().copied();
        walked.extend(page);
    }
    assert_eq!(walked, vec![ids[2], ids[3], ids[1], ids[0], ids[4]]);
    // A cursor naming no row yields an empty page, not everything.
    assert!(list(OperationQuery {
        before_id: Some(i64::MAX),
        ..all.clone()
    })
    .await
    .is_empty());

    let g1 = OperationQuery {
        game_id: Some(gid("g1")),
        ..all.clone()
    };
    assert_eq!(list(g1.clone()).await, vec![ids[3], ids[1], ids[0]]);
    assert_eq!(
        list(OperationQuery {
            kind: Some(OpKind::Stop),
            ..all.clone()
        })
        .await,
        vec![ids[1], ids[4]]
    );
    assert_eq!(
        list(OperationQuery {
            outcome: Some(Outcome::Failure),
            ..all.clone()
        })
        .await,
        vec![ids[2]]
    );
    assert_eq!(
        list(OperationQuery {
            source: Some(OpSource::GmRest),
            ..all.clone()
        })
        .await,
        vec![ids[1], ids[0]]
    );
    assert_eq!(
        list(OperationQuery {
            since: Some(t(20)),
            ..all.clone()
        })
        .await,
        vec![ids[2], ids[3], ids[1]]
    );
    assert_eq!(
        list(OperationQuery {
            kind: Some(OpKind::Restart),
            source: Some(OpSource::AdminRest),
            since: Some(t(20)),
            // The newest row (started at 30) as the cursor: the restart
            // (started at 20) follows it.
            before_id: Some(ids[2]),
            ..g1
        })
        .await,
        vec![ids[3]]
    );
}

#[tokio::test]
async fn case_collisions_are_live_records_of_another_spelling() {
    let (_db, _cfg, s) = store().await;
    for (g, status) in [
        ("cx", RuntimeStatus::Running),
        ("Gone", RuntimeStatus::Removed),
        ("Dd", RuntimeStatus::Stopped),
    ] {
        s.commit(Commit {
            record: Some(record(g, status, 1)),
            operation: None,
            health: None,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.find_case_collision(&gid("CX")).await.unwrap(),
        Some(gid("cx"))
    );
    assert_eq!(
        s.find_case_collision(&gid("cX")).await.unwrap(),
        Some(gid("cx"))
    );
    // A game is never its own collision.
    assert_eq!(s.find_case_collision(&gid("cx")).await.unwrap(), None);
    // A stopped game is live; a removed one is not.
    assert_eq!(
        s.find_case_collision(&gid("dd")).await.unwrap(),
        Some(gid("Dd"))
    );
    assert_eq!(s.find_case_collision(&gid("gone")).await.unwrap(), None);
    assert_eq!(s.find_case_collision(&gid("cy")).await.unwrap(), None);
}

#[tokio::test]
async fn a_reference_names_one_request_per_source_across_games() {
    let (_db, _cfg, s) = store().await;
    let mut first = op("g1", OpKind::Start, OpSource::GmRest, "k", 1);
    first.request = Some("start game=g1 image=x stop_timeout_ms= force=false".into());
    let e = s.commit(commit_op(first.clone())).await.unwrap().unwrap();
    let found = s
        .find_source_ref(OpSource::GmRest, "k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.entry, e);
    assert_eq!(found.request, first.request);
    // Found from any game, but only on its own source.
    assert!(s
        .find_source_ref(OpSource::AdminRest, "k")
        .await
        .unwrap()
        .is_none());
    // Another game may not record the same reference (V3's index) ...
    let mut other = op("g2", OpKind::Stop, OpSource::GmRest, "k", 2);
    other.request = Some("stop game=g2 image= stop_timeout_ms= force=false".into());
    assert!(matches!(
        s.commit(commit_op(other.clone())).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let g2_rows = s
        .list_operations(&OperationQuery {
            game_id: Some(gid("g2")),
            limit: 10,
            ..OperationQuery::default()
        })
        .await
        .unwrap();
    assert!(g2_rows.is_empty(), "nothing written: {g2_rows:?}");
    // ... while another source may.
    other.source = OpSource::AdminRest;
    s.commit(commit_op(other)).await.unwrap().unwrap();
    // Rows without a request (before V3) are not constrained across games.
    let mut legacy = op("g3", OpKind::Stop, OpSource::GmRest, "k", 3);
    legacy.request = None;
    s.commit(commit_op(legacy)).await.unwrap().unwrap();
    assert_eq!(
        s.find_source_ref(OpSource::GmRest, "k")
            .await
            .unwrap()
            .unwrap()
            .entry,
        e,
        "the first row the reference named"
    );
}

#[tokio::test]
async fn find_by_source_ref_returns_only_the_finished_matching_row() {
    let (db, _cfg, s) = store().await;
    let e = s
        .commit(commit_op(op(
            "g1",
            OpKind::Start,
            OpSource::LobbyStream,
            "17-3",
            1,
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.find_by_source_ref(&gid("g1"), OpSource::LobbyStream, "17-3")
            .await
            .unwrap(),
        Some(e)
    );
    assert_eq!(
        s.find_by_source_ref(&gid("g1"), OpSource::GmRest, "17-3")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.find_by_source_ref(&gid("g2"), OpSource::LobbyStream, "17-3")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.find_by_source_ref(&gid("g1"), OpSource::LobbyStream, "17-4")
            .await
            .unwrap(),
        None
    );

    // An unfinished row (written by another tool) is not "the earlier result".
    let admin = db.admin_client().await.unwrap();
    admin
        .batch_execute(
            "INSERT INTO operation_log (game_id, op_kind, op_source, source_ref, outcome, started_at)
             VALUES ('g1', 'stop', 'gm_rest', 'open', 'success', now())",
        )
        .await
        .unwrap();
    assert_eq!(
        s.find_by_source_ref(&gid("g1"), OpSource::GmRest, "open")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn duplicate_source_ref_is_already_exists_and_writes_nothing() {
    let (_db, _cfg, s) = store().await;
    s.commit(commit_op(op(
        "g1",
        OpKind::Start,
        OpSource::GmRest,
        "key",
        1,
    )))
    .await
    .unwrap();
    // Empty references are never constrained.
    for _ in 0..2 {
        s.commit(commit_op(op("g1", OpKind::Start, OpSource::GmRest, "", 1)))
            .await
            .unwrap();
    }
    // The same reference from another source or game is another operation.
    s.commit(commit_op(op(
        "g1",
        OpKind::Start,
        OpSource::AdminRest,
        "key",
        1,
    )))
    .await
    .unwrap();
    s.commit(commit_op(op(
        "g2",
        OpKind::Start,
        OpSource::GmRest,
        "key",
        1,
    )))
    .await
    .unwrap();

    let dup = Commit {
        record: Some(record("g1", RuntimeStatus::Running, 1)),
        operation: Some(op("g1", OpKind::Stop, OpSource::GmRest, "key", 2)),
        health: Some(HealthWrite {
            snapshot: snap("g1", HealthStatus::Healthy, 2),
            publish: true,
        }),
    };
    let err = s.commit(dup).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(s.get_record(&gid("g1")).await.unwrap(), None);
    assert_eq!(s.get_health(&gid("g1")).await.unwrap(), None);
    assert_eq!(s.pending_count().await.unwrap(), 0);
    let n = s
        .list_operations(&OperationQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_with_one_source_ref_have_one_winner() {
    let (_db, _cfg, s) = store().await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut r = record("race", RuntimeStatus::Running, i);
                r.engine_endpoint = format!("winner-{i}");
                let c = Commit {
                    record: Some(r),
                    operation: Some(op(
                        "race",
                        OpKind::Start,
                        OpSource::LobbyStream,
                        "1700-0",
                        i,
                    )),
                    health: Some(HealthWrite {
                        snapshot: snap("race", HealthStatus::Healthy, i),
                        publish: true,
                    }),
                };
                (i, s.commit(c).await)
            })
        })
        .collect();
    let mut winners = vec![];
    for task in tasks {
        let (i, res) = task.await.unwrap();
        match res {
            Ok(Some(e)) => winners.push((i, e)),
            Err(StoreError::AlreadyExists(_)) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one commit wins");
    let (i, entry) = &winners[0];
    // Only the winner's writes are visible.
    assert_eq!(
        s.get_record(&gid("race"))
            .await
            .unwrap()
            .unwrap()
            .engine_endpoint,
        format!("winner-{i}")
    );
    assert_eq!(
        s.get_health(&gid("race"))
            .await
            .unwrap()
            .unwrap()
            .observed_at,
        t(*i)
    );
    assert_eq!(s.pending_count().await.unwrap(), 1);
    assert_eq!(
        s.find_by_source_ref(&gid("race"), OpSource::LobbyStream, "1700-0")
            .await
            .unwrap()
            .as_ref(),
        Some(entry)
    );
}

#[tokio::test]
async fn a_failing_part_rolls_back_the_whole_commit() {
    let (db, _cfg, s) = store().await;
    // Make the last step (the outbox insert) fail for one game only.
    let admin = db.admin_client().await.unwrap();
    admin
        .batch_execute(
            "ALTER TABLE health_outbox ADD CONSTRAINT test_poison CHECK (game_id <> 'poison')",
        )
        .await
        .unwrap();
    let c = Commit {
        record: Some(record("poison", RuntimeStatus::Running, 1)),
        operation: Some(op("poison", OpKind::Start, OpSource::GmRest, "k", 1)),
        health: Some(HealthWrite {
            snapshot: snap("poison", HealthStatus::Healthy, 1),
            publish: true,
        }),
    };
    let err = s.commit(c.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert_eq!(s.get_record(&gid("poison")).await.unwrap(), None);
    assert_eq!(s.get_health(&gid("poison")).await.unwrap(), None);
    assert_eq!(
        s.find_by_source_ref(&gid("poison"), OpSource::GmRest, "k")
            .await
            .unwrap(),
        None
    );
    assert!(s
        .list_operations(&OperationQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());

    // Without publishing, the same commit goes through whole.
    let ok = Commit {
        health: Some(HealthWrite {
            publish: false,
            ..c.health.clone().unwrap()
        }),
        ..c
    };
    let entry = s.commit(ok).await.unwrap().unwrap();
    assert_eq!(entry.source_ref.as_deref(), Some("k"));
    assert!(s.get_record(&gid("poison")).await.unwrap().is_some());
    assert!(s.get_health(&gid("poison")).await.unwrap().is_some());
    assert_eq!(s.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn health_snapshots_upsert_filter_and_page() {
    let (db, _cfg, s) = store().await;
    for (g, st) in [
        ("b", HealthStatus::Healthy),
        ("a", HealthStatus::ProbeFailed),
        ("c", HealthStatus::ProbeFailed),
    ] {
        s.commit(commit_health(snap(g, st, 1), false))
            .await
            .unwrap();
    }
    let mut latest = snap("a", HealthStatus::Oom, 9);
    latest.source = rtm_domain::HealthSource::DockerEvent;
    latest.details = rtm_domain::HealthDetails::new()
        .with("exit_code", 137i64)
        .with("oom_killed", true);
    s.commit(commit_health(latest.clone(), false))
        .await
        .unwrap();
    assert_eq!(s.get_health(&gid("a")).await.unwrap(), Some(latest));
    assert_eq!(s.get_health(&gid("zz")).await.unwrap(), None);

    let ids = |v: Vec<rtm_domain::HealthSnapshot>| {
        v.into_iter()
            .map(|h| h.game_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s
            .list_health(&HealthQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        ids(s
            .list_health(&HealthQuery {
                status: Some(HealthStatus::ProbeFailed),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()),
        ["c"]
    );
    assert_eq!(
        ids(s
            .list_health(&HealthQuery {
                after: Some(gid("a")),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()),
        ["b"]
    );

    // Details written by another tool: read leniently.
    let admin = db.admin_client().await.unwrap();
    admin
        .batch_execute(r#"UPDATE health_snapshots SET details = '{"n": 5, "f": 2.5, "x": null, "s": "t", "b": false}' WHERE game_id = 'b'"#)
        .await
        .unwrap();
    let b = s.get_health(&gid("b")).await.unwrap().unwrap();
    assert_eq!(b.details.get("n"), Some(&DetailValue::Int(5)));
    assert_eq!(b.details.get("f"), Some(&DetailValue::Text("2.5".into())));
    assert_eq!(b.details.get("x"), Some(&DetailValue::Text("null".into())));
    assert_eq!(b.details.get("s"), Some(&DetailValue::Text("t".into())));
    assert_eq!(b.details.get("b"), Some(&DetailValue::Bool(false)));
}

#[tokio::test]
async fn record_with_health_reads_both_or_the_record_alone() {
    let (_db, _cfg, s) = store().await;
    assert_eq!(s.get_record_with_health(&gid("g1")).await.unwrap(), None);

    // A snapshot without a record (an observation of a game whose record
    // is gone) is not a runtime.
    s.commit(commit_health(
        snap("orphan", HealthStatus::Healthy, 1),
        false,
    ))
    .await
    .unwrap();
    assert_eq!(
        s.get_record_with_health(&gid("orphan")).await.unwrap(),
        None
    );

    let r = record("g1", RuntimeStatus::Running, 10);
    s.commit(Commit {
        record: Some(r.clone()),
        operation: None,
        health: None,
    })
    .await
    .unwrap();
    assert_eq!(
        s.get_record_with_health(&gid("g1")).await.unwrap(),
        Some((r.clone(), None))
    );

    let mut h = snap("g1", HealthStatus::Oom, 12);
    h.details = rtm_domain::HealthDetails::new()
        .with("exit_code", 137i64)
        .with("oom_killed", true);
    s.commit(commit_health(h.clone(), false)).await.unwrap();
    assert_eq!(
        s.get_record_with_health(&gid("g1")).await.unwrap(),
        Some((r, Some(h)))
    );
}

#[tokio::test]
async fn outbox_holds_published_changes_until_marked() {
    let (_db, _cfg, s) = store().await;
    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert!(s.pending_events(10).await.unwrap().is_empty());
    s.commit(commit_health(snap("g1", HealthStatus::Healthy, 1), true))
        .await
        .unwrap();
    s.commit(commit_health(snap("g1", HealthStatus::Healthy, 2), false))
        .await
        .unwrap();
    s.commit(commit_health(snap("g2", HealthStatus::Exited, 3), true))
        .await
        .unwrap();
    s.commit(commit_health(
        snap("g1", HealthStatus::ProbeFailed, 4),
        true,
    ))
    .await
    .unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 3);

    let events = s.pending_events(10).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.snapshot.game_id.to_string(),
                e.snapshot.status,
                e.snapshot.observed_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("g1".to_owned(), HealthStatus::Healthy, t(1)),
            ("g2".to_owned(), HealthStatus::Exited, t(3)),
            ("g1".to_owned(), HealthStatus::ProbeFailed, t(4)),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[0].snapshot, snap("g1", HealthStatus::Healthy, 1));
    assert_eq!(s.pending_events(1).await.unwrap(), events[..1].to_vec());

    s.mark_published(&[events[0].id, events[2].id])
        .await
        .unwrap();
    s.mark_published(&[]).await.unwrap();
    assert_eq!(s.pending_events(10).await.unwrap(), events[1..2].to_vec());
    assert_eq!(s.pending_count().await.unwrap(), 1);
    // Marking again (a retry after a crash) is harmless.
    s.mark_published(&[events[0].id]).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_stored_values_are_corrupt() {
    let (db, _cfg, s) = store().await;
    let admin = db.admin_client().await.unwrap();
    admin
        .batch_execute(
            "INSERT INTO runtime_records (game_id, status, engine_endpoint, state_path, docker_network, last_op_at, created_at)
             VALUES ('-not-an-id', 'running', 'e', 's', 'n', now(), now());
             INSERT INTO operation_log (game_id, op_kind, op_source, outcome, error_code, started_at)
             VALUES ('g1', 'start', 'gm_rest', 'failure', 'no_such_code', now());",
        )
        .await
        .unwrap();
    let err = s
        .list_records(&RecordQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("game_id")),
        "{err:?}"
    );
    let err = s
        .list_operations(&OperationQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("error_code")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let mut cfg = PgConfig::new(
        "postgres://rtmanagerservice:x@127.0.0.1:1/rtmanager",
        "rtmanager",
    );
    cfg.connect_timeout = Duration::from_secs(2);
    let s = PgStore::new(&cfg).unwrap();
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = s.get_record(&gid("g")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::DatabaseUnavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_recovers_after_its_sessions_are_killed() {
    let (db, cfg, s) = store().await;
    // Fill the pool with several live connections.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.ping().await })
        })
        .collect();
    for w in warm {
        w.await.unwrap().unwrap();
    }
    s.commit(commit_op(op("g1", OpKind::Start, OpSource::GmRest, "", 1)))
        .await
        .unwrap();

    let admin = db.admin_client().await.unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&cfg.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the store had sessions to kill");
    // Wait until PostgreSQL has really ended them (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&cfg.schema],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "backends did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same store instance works again: broken connections are
    // detected on checkout and replaced.
    s.ping().await.unwrap();
    let ops = s
        .list_operations(&OperationQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ops.len(), 1);
    s.commit(commit_op(op("g1", OpKind::Stop, OpSource::GmRest, "", 2)))
        .await
        .unwrap();
}
