//! Entries pending on a consumer that disappeared are claimed by the app
//! after `RTM_LOBBY_CLAIM_IDLE` and processed exactly once.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_claimed_and_processed_once() {
    let mut app = spawn_app_with(|v| {
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "1s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let started = watch_starts(&app);
    let instance = app.vars["RTM_INSTANCE_ID"].clone();
    let v1 = image("1.0.0");
    let (a, b, c) = (
        gid(&app, "claim-a"),
        gid(&app, "claim-b"),
        gid(&app, "claim-c"),
    );
    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());

    // While the app is down, another replica reads three entries and dies.
    app.stop().await;
    let entries = [
        (a, lobby.start(a, &v1).await),
        (b, lobby.start(b, &v1).await),
        (
            a,
            lobby
                .xadd(&[("op", "restart"), ("game_id", a), ("stop_timeout_s", "2")])
                .await,
        ),
    ];
    let ids: Vec<String> = entries.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(lobby.read_as("dead-consumer", 10, ">").await, ids);
    let p = lobby.pending().await;
    assert!(
        p.len() == 3 && p.iter().all(|p| p.consumer == "dead-consumer"),
        "{p:?}"
    );
    // An entry nobody read yet, for another game (across a claim, order
    // between a claimed entry and a newer one is not guaranteed).
    let fresh = lobby.start(c, &v1).await;

    app.start().await;
    wait_rows(&app, 4, Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;

    let all = all_rows(&app).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    let refs: Vec<&str> = all.iter().map(|r| r.source_ref.as_str()).collect();
    for id in ids.iter().chain([&fresh]) {
        assert_eq!(
            refs.iter().filter(|r| **r == id).count(),
            1,
            "{id}: {all:#?}"
        );
    }
    assert!(all
        .iter()
        .all(|r| r.op_source == "lobby_stream" && r.outcome == "success"));
    // a's entries kept their order (the claimer hands them over in id order).
    let a_rows: Vec<&str> = all
        .iter()
        .filter(|r| r.game_id == a)
        .map(|r| r.op_kind.as_str())
        .collect();
    assert_eq!(a_rows, ["start", "restart"]);
    assert_runtime(&app, a, "running", &v1).await;
    assert_runtime(&app, b, "running", &v1).await;
    assert_runtime(&app, c, "running", &v1).await;
    assert_eq!(started.of(a), 2, "a: start + restart, once each");
    assert_eq!(started.of(b), 1, "b: one start");
    assert!(lobby.pending().await.is_empty());
    assert!(lobby.dead_letters().await.is_empty());
    // The claimer worked under the app's own name.
    assert_ne!(instance, "dead-consumer");
}

/// A second replica of the same deployment (same database, stream and
/// group) under another consumer name.
async fn second_replica(app: &TestApp, name: &str) -> rtmanager::app::RunningApp {
    let mut vars = app.vars.clone();
    vars.insert("RTM_INSTANCE_ID".into(), name.to_owned());
    let config = rtmanager::config::Config::from_map(&vars, None).expect("config");
    rtmanager::app::start(config).await.expect("second replica")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_operation_is_not_claimed_away_by_another_replica() {
    // One delivery allowed: any claim of the held entry would make it a
    // dead letter. (2 s, not less: on a loaded 2-core machine a touch can
    // lag by a second.)
    let tweak = |v: &mut std::collections::HashMap<String, String>| {
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "2s".into());
        v.insert("RTM_LOBBY_MAX_DELIVERIES".into(), "1".into());
        v.insert("RTM_LOCK_WAIT".into(), "30s".into());
    };
    let app = spawn_app_with(tweak).await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let other = second_replica(&app, &format!("{}-b", app.owner.owner())).await;

    // The operation is stuck behind the test's lock for several claim
    // idle times (the scenario itself, not a synchronisation wait).
    let game = "claim-long";
    let held = hold_locks(&app, &[game]).await;
    let id = lobby.stop(game).await;
    wait_for("the operation waiting", Duration::from_secs(20), || async {
        (lock_waiters(&app, &[game]).await == 1).then_some(())
    })
    .await;
    let holder = lobby.pending().await[0].consumer.clone();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = lobby.pending().await;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].id.as_str(), p[0].consumer.as_str(), p[0].deliveries),
        (id.as_str(), holder.as_str(), 1),
        "the entry moved or was delivered again while in progress"
    );
    release_locks(&held).await;

    lobby.wait_drained(Duration::from_secs(20)).await;
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].source_ref, id);
    assert_eq!(all[0].error_code, "not_found");
    assert!(lobby.dead_letters().await.is_empty());

    // Both replicas share the stream: 20 entries for 10 games, each
    // processed exactly once by one of them, each game in order.
    let mut ids = Vec::new();
    for round in 0..2 {
        for i in 0..10 {
            let g = format!("shared-{i}");
            ids.push((g.clone(), round, lobby.stop(&g).await));
        }
    }
    wait_rows(&app, 1 + ids.len(), Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 1 + ids.len(), "{all:#?}");
    for (g, _, id) in &ids {
        assert_eq!(
            all.iter().filter(|r| &r.source_ref == id).count(),
            1,
            "{g} {id}"
        );
    }
    assert!(lobby.dead_letters().await.is_empty());
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_read_but_not_yet_started_is_not_claimed_by_another_replica() {
    // One game at a time: the app holds at most 256 entries in memory
    // (4 × the 64-entry batch) and its reader blocks with more in hand.
    // Claim idle 2 s, as in the test above: a touch every 2/3 s may lag by
    // a second on a loaded 2-core machine.
    let app = spawn_app_with(|v| {
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "2s".into());
        v.insert("RTM_LOBBY_CONCURRENCY".into(), "1".into());
        v.insert("RTM_LOCK_WAIT".into(), "60s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let instance = app.vars["RTM_INSTANCE_ID"].clone();

    // A backlog of one stalled game (its lock held by the test): stops of
    // an unknown game, cheap once released.
    let game = "backlog";
    let held = hold_locks(&app, &[game]).await;
    let fields: Vec<Vec<(String, String)>> = (0..400)
        .map(|_| {
            vec![
                ("op".into(), "stop".into()),
                ("game_id".into(), game.into()),
            ]
        })
        .collect();
    let ids = xadd_many(&app, &lobby, &fields).await;
    // The app has read more than it can hold.
    wait_for("the backlog read", Duration::from_secs(30), || async {
        (lobby.pending().await.len() >= 300).then_some(())
    })
    .await;
    let ours: std::collections::HashSet<String> = lobby
        .pending()
        .await
        .into_iter()
        .filter(|p| p.consumer == instance)
        .map(|p| p.id)
        .collect();
    // A second replica comes up (it reads what is left unread).
    let other = second_replica(&app, &format!("{}-b", app.owner.owner())).await;
    // Several claim idle times with the backlog stuck (the scenario).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let p = lobby.pending().await;
    let moved: Vec<&Pending> = p
        .iter()
        .filter(|p| ours.contains(&p.id) && (p.consumer != instance || p.deliveries != 1))
        .collect();
    assert!(
        moved.is_empty(),
        "{} of the {} entries delivered to the app were claimed away while it still had \
         them (first: {:?})",
        moved.len(),
        ours.len(),
        moved.first()
    );
    release_locks(&held).await;

    wait_rows(&app, ids.len(), Duration::from_secs(120)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    let all = all_rows(&app).await;
    // Exactly once (the order of one game split across two replicas is
    // not defined; the app's own share is in stream order).
    let mut refs: Vec<&str> = all.iter().map(|r| r.source_ref.as_str()).collect();
    let ours_in_rows: Vec<&str> = refs.iter().copied().filter(|r| ours.contains(*r)).collect();
    let ours_in_stream: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|r| ours.contains(*r))
        .collect();
    assert!(
        ours_in_rows == ours_in_stream,
        "the app's share out of order"
    );
    refs.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert!(refs == want, "rows not exactly once");
    assert!(lobby.dead_letters().await.is_empty());
    other.shutdown().await;
}
