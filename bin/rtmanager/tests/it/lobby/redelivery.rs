//! Redelivery of an entry whose operation is already recorded (SPEC §5,
//! §6; docs/lobby-stream.md "Redelivery"): a rewound group, a lost ack
//! after a failover, or a claim from a consumer that died after its commit
//! deliver the same entry id again. The recorded result stands: the entry
//! is acknowledged promptly by whichever path delivered it, with no second
//! Docker action, no second row and no dead letter.
//!
//! "Promptly" is checked structurally, not by timing: the claim idle time
//! is far longer than the tests' deadlines, so only the path under test
//! (a new read `>`, or the claim a test makes happen) can deliver the
//! entry, and an entry left pending would stay so.

use std::time::Duration;

use super::happy::id_key;
use super::*;

impl Lobby {
    /// `XGROUP SETID <stream> rtmanager <id>`: the group's next `>` read
    /// delivers every entry after `id` again.
    pub async fn rewind(&self, id: &str) {
        let _: Value = self
            .client
            .xgroup_setid(&self.stream, GROUP, id)
            .await
            .unwrap_or_else(|e| panic!("XGROUP SETID {} {id}: {e}", self.stream));
    }

    /// Waits until the group delivered `id` again after a rewind (its
    /// last-delivered id is back at or past it) and nothing is pending or
    /// unread any more.
    pub async fn wait_redelivered_and_drained(&self, id: &str, timeout: Duration) {
        wait_for(
            &format!("{id} delivered again and acknowledged"),
            timeout,
            || async {
                // Not the lag: Redis cannot tell it after a SETID.
                match self.group_info().await {
                    Some((0, _, last)) if id_key(&last) >= id_key(id) => Some(()),
                    _ => None,
                }
            },
        )
        .await
    }
}

/// Settings shared by these tests: claims only after 10 minutes (longer
/// than any deadline here), and one delivery allowed, so any path that
/// judged a recorded entry by its delivery count would dead-letter it.
fn tweak(v: &mut std::collections::HashMap<String, String>) {
    v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "10m".into());
    v.insert("RTM_LOBBY_MAX_DELIVERIES".into(), "1".into());
    v.insert("RTM_LOCK_WAIT".into(), "30s".into());
}

/// The game's single start: one row for `entry`, one container, one
/// engine start, the game running, nothing dead-lettered.
async fn assert_started_once(app: &TestApp, lobby: &Lobby, game: &str, entry: &str, c1: &str) {
    let all = rows(app, game).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].source_ref, entry, "{all:#?}");
    assert_eq!(
        (all[0].op_kind.as_str(), all[0].outcome.as_str()),
        ("start", "success")
    );
    assert_eq!(
        assert_runtime(app, game, "running", &image("1.0.0")).await,
        c1
    );
    assert_eq!(starts(app, game).len(), 1, "{game}: one engine start");
    let dead = lobby.dead_letters().await;
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    assert!(lobby.pending().await.is_empty());
}

/// Starts `game` through the stream and waits for its row and its ack;
/// returns the entry id and the container.
async fn start_and_settle(app: &TestApp, lobby: &Lobby, game: &str) -> (String, String) {
    let id = lobby.start(game, &image("1.0.0")).await;
    wait_rows(app, 1, Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    let c1 = assert_runtime(app, game, "running", &image("1.0.0")).await;
    (id, c1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_entry_that_was_acknowledged_is_acknowledged_again_not_rerun() {
    let app = spawn_app_with(tweak).await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let game_id = gid(&app, "redeliver-acked");
    let game = game_id.as_str();
    let (id, c1) = start_and_settle(&app, &lobby, game).await;

    // Replay the window: the same entry id is read (`>`) again. Twice, so
    // a redelivery of an entry already re-acknowledged is covered too.
    for _ in 0..2 {
        lobby.rewind("0-0").await;
        lobby
            .wait_redelivered_and_drained(&id, Duration::from_secs(30))
            .await;
        assert_started_once(&app, &lobby, game, &id, &c1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_entry_that_is_still_running_runs_once_and_is_acknowledged() {
    let app = spawn_app_with(tweak).await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let game_id = gid(&app, "redeliver-running");
    let game = game_id.as_str();

    // The first delivery is in flight: its operation waits for the game's
    // lock, held by the test.
    let held = hold_locks(&app, &[game]).await;
    let id = lobby.start(game, &image("1.0.0")).await;
    wait_for(
        "the start waiting for the lock",
        Duration::from_secs(30),
        || async {
            let pending = lobby.pending().await.iter().any(|p| p.id == id);
            (pending && lock_waiters(&app, &[game]).await >= 1).then_some(())
        },
    )
    .await;
    // Delivered again while it runs: the app reads it a second time (the
    // group's last-delivered id, set back to 0-0, reaches it again; Redis
    // resets the delivery count of a pending entry read by `>` to 1, so
    // the count does not show it).
    lobby.rewind("0-0").await;
    wait_for("the second delivery", Duration::from_secs(30), || async {
        let (_, _, last) = lobby.group_info().await?;
        let pending = lobby.pending().await.iter().any(|p| p.id == id);
        (pending && id_key(&last) >= id_key(&id)).then_some(())
    })
    .await;
    assert!(
        rows(&app, game).await.is_empty(),
        "performed while the lock was held"
    );
    release_locks(&held).await;

    wait_rows(&app, 1, Duration::from_secs(60)).await;
    lobby
        .wait_redelivered_and_drained(&id, Duration::from_secs(30))
        .await;
    let c1 = assert_runtime(&app, game, "running", &image("1.0.0")).await;
    assert_started_once(&app, &lobby, game, &id, &c1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_entry_claimed_from_a_dead_consumer_is_acknowledged_not_rerun() {
    // Claims after 1 s here: the claim is the path under test. Three
    // deliveries allowed: `a` is claimed within the limit (the operation's
    // own replay acknowledges it), `b` beyond it (the delivery limit must
    // not dead-letter an entry that succeeded).
    let mut app = spawn_app_with(|v| {
        tweak(v);
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "1s".into());
        v.insert("RTM_LOBBY_MAX_DELIVERIES".into(), "3".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let (a_id, b_id) = (gid(&app, "redeliver-ca"), gid(&app, "redeliver-cb"));
    let (a, b) = (a_id.as_str(), b_id.as_str());
    let (ea, ca) = start_and_settle(&app, &lobby, a).await;
    let eb = lobby.start(b, &image("1.0.0")).await;
    wait_rows(&app, 2, Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    let cb = assert_runtime(&app, b, "running", &image("1.0.0")).await;

    // Another replica had read both entries, committed their rows and died
    // before acknowledging: the entries are pending on it. (The app is
    // stopped meanwhile, so it is a fresh consumer that claims them, with
    // no memory of having acknowledged them.) `b` was delivered to the
    // dead consumer several times (its pending list re-read): its claim
    // is over the limit.
    app.stop().await;
    lobby.rewind("0-0").await;
    assert_eq!(
        lobby.read_as("dead-consumer", 10, ">").await,
        vec![ea.clone(), eb.clone()]
    );
    for _ in 0..3 {
        let _ = lobby.read_as("dead-consumer", 1, &ea).await;
    }
    let pending = lobby.pending().await;
    assert!(
        pending.len() == 2 && pending.iter().all(|p| p.consumer == "dead-consumer"),
        "{pending:?}"
    );
    assert!(
        pending.iter().any(|p| p.id == eb && p.deliveries >= 4),
        "{pending:?}"
    );

    app.start().await;
    wait_for(
        "the claimed entries acknowledged",
        Duration::from_secs(60),
        || async { lobby.pending().await.is_empty().then_some(()) },
    )
    .await;
    assert_started_once(&app, &lobby, a, &ea, &ca).await;
    assert_started_once(&app, &lobby, b, &eb, &cb).await;
    assert_eq!(all_rows(&app).await.len(), 2);
}
