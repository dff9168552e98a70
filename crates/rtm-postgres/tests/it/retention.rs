//! The retention port and the gauges' aggregates against real PostgreSQL:
//! bounded batches, a live game's last audit row kept, removed games
//! forgotten only while still removed and old enough.

use rtm_domain::ports::{
    HealthSnapshots, OperationLog, OperationQuery, Retention, RuntimeRecords, UnitOfWork,
};
use rtm_domain::{Commit, HealthStatus, OpKind, OpSource, RuntimeStatus};

use crate::{commit_health, commit_op, gid, op, record, snap, store, t};

async fn ops_of(s: &rtm_postgres::PgStore) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = s
        .list_operations(&OperationQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list operations")
        .into_iter()
        .map(|o| (o.game_id.as_str().to_owned(), o.started_at.unix_timestamp()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn old_operations_go_in_batches_but_a_live_games_last_row_stays() {
    let (_db, _cfg, s) = store().await;
    for (g, status) in [
        ("live", RuntimeStatus::Stopped),
        ("gone", RuntimeStatus::Removed),
    ] {
        let mut r = record(g, RuntimeStatus::Running, 10);
        r.status = status;
        s.commit(Commit {
            record: Some(r),
            operation: None,
            health: None,
        })
        .await
        .unwrap();
    }
    // live: rows at 1, 2, 3; gone: 1, 2; ghost (no record, refusals): 1..=5;
    // fresh: a row after the cutoff.
    for at in 1..=3 {
        s.commit(commit_op(op(
            "live",
            OpKind::Stop,
            OpSource::GmRest,
            "",
            at,
        )))
        .await
        .unwrap();
    }
    for at in 1..=2 {
        s.commit(commit_op(op(
            "gone",
            OpKind::Stop,
            OpSource::GmRest,
            "",
            at,
        )))
        .await
        .unwrap();
    }
    for at in 1..=5 {
        s.commit(commit_op(op(
            "ghost",
            OpKind::Stop,
            OpSource::GmRest,
            "",
            at,
        )))
        .await
        .unwrap();
    }
    s.commit(commit_op(op(
        "fresh",
        OpKind::Start,
        OpSource::GmRest,
        "",
        500,
    )))
    .await
    .unwrap();
    assert_eq!(s.operation_count().await.unwrap(), 11);

    // Batches of 3, oldest first: 9 rows qualify (all but live@3 and fresh).
    let cutoff = t(100);
    let mut batches = vec![];
    for _ in 0..10 {
        let n = s.delete_operations_before(cutoff, 3).await.unwrap();
        batches.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(batches, vec![3, 3, 3, 0]);
    assert_eq!(
        ops_of(&s).await,
        vec![
            ("fresh".to_owned(), t(500).unix_timestamp()),
            ("live".to_owned(), t(3).unix_timestamp())
        ]
    );
}

#[tokio::test]
async fn a_removed_game_is_forgotten_only_when_still_removed_and_old_enough() {
    let (_db, _cfg, s) = store().await;
    for (g, status, at) in [
        ("old", RuntimeStatus::Removed, 10),
        ("young", RuntimeStatus::Removed, 200),
        ("stopped", RuntimeStatus::Stopped, 10),
    ] {
        let mut r = record(g, RuntimeStatus::Running, at);
        r.status = status;
        s.commit(Commit {
            record: Some(r),
            operation: None,
            health: None,
        })
        .await
        .unwrap();
        s.commit(commit_health(snap(g, HealthStatus::Exited, at), false))
            .await
            .unwrap();
    }
    let cutoff = t(100);
    assert!(s.delete_removed_game(&gid("old"), cutoff).await.unwrap());
    assert_eq!(s.get_record(&gid("old")).await.unwrap(), None);
    assert_eq!(s.get_health(&gid("old")).await.unwrap(), None);
    // Twice: nothing left to delete.
    assert!(!s.delete_removed_game(&gid("old"), cutoff).await.unwrap());
    // Too young, or not removed: untouched, snapshot included.
    for g in ["young", "stopped"] {
        assert!(!s.delete_removed_game(&gid(g), cutoff).await.unwrap());
        assert!(s.get_record(&gid(g)).await.unwrap().is_some(), "{g}");
        assert!(s.get_health(&gid(g)).await.unwrap().is_some(), "{g}");
    }
}

#[tokio::test]
async fn health_counts_cover_running_games_only() {
    let (_db, _cfg, s) = store().await;
    for (g, status, health) in [
        ("a", RuntimeStatus::Running, HealthStatus::Healthy),
        ("b", RuntimeStatus::Running, HealthStatus::Healthy),
        ("c", RuntimeStatus::Running, HealthStatus::ProbeFailed),
        ("d", RuntimeStatus::Stopped, HealthStatus::Exited),
        ("f", RuntimeStatus::Running, HealthStatus::Exited),
        (
            "e",
            RuntimeStatus::Removed,
            HealthStatus::ContainerDisappeared,
        ),
    ] {
        let mut r = record(g, RuntimeStatus::Running, 1);
        r.status = status;
        s.commit(Commit {
            record: Some(r),
            operation: None,
            health: None,
        })
        .await
        .unwrap();
        s.commit(commit_health(snap(g, health, 1), false))
            .await
            .unwrap();
    }
    let mut counts = s.health_counts().await.unwrap();
    counts.sort_by_key(|(h, _)| h.as_str());
    assert_eq!(
        counts,
        vec![
            (HealthStatus::Exited, 1),
            (HealthStatus::Healthy, 2),
            (HealthStatus::ProbeFailed, 1),
        ]
    );
}

#[tokio::test]
async fn translated_errors_are_counted_by_kind() {
    let (_db, _cfg, s) = store().await;
    let before = rtm_postgres::error_counts();
    s.commit(commit_op(op(
        "g",
        OpKind::Start,
        OpSource::LobbyStream,
        "ref-1",
        1,
    )))
    .await
    .unwrap();
    let dup = s
        .commit(commit_op(op(
            "g",
            OpKind::Start,
            OpSource::LobbyStream,
            "ref-1",
            2,
        )))
        .await;
    assert!(dup.is_err());
    let after = rtm_postgres::error_counts();
    let kind = |c: &[(&str, u64); 4], k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    // Other tests of this binary run in parallel: at least one more.
    assert!(kind(&after, "already_exists") > kind(&before, "already_exists"));
    assert_eq!(
        after.map(|(k, _)| k),
        ["unavailable", "already_exists", "corrupt", "other"]
    );
}
