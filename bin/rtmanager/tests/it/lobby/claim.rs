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
    let instance = app.vars["RTM_INSTANCE_ID"].clone();
    let v1 = image("1.0.0");
    let (a, b) = ("claim-a", "claim-b");

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
    let fresh = lobby.start("claim-c", &v1).await;

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
    assert_runtime(&app, "claim-c", "running", &v1).await;
    assert_eq!(starts(&app, a).len(), 2, "a: start + restart, once each");
    assert_eq!(starts(&app, b).len(), 1, "b: one start");
    assert!(lobby.pending().await.is_empty());
    assert!(lobby.dead_letters().await.is_empty());
    // The claimer worked under the app's own name.
    assert_ne!(instance, "dead-consumer");
}
