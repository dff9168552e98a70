//! Commands for different games run concurrently; commands for one game
//! run one at a time in stream order, and a stalled game (its lock held
//! elsewhere: a transient failure) delays only its own later entries.
//!
//! Concurrency is observed deterministically: with the locks of two games
//! held by the test, the app's operations on both wait for them *at the
//! same time* (two ungranted advisory locks in `pg_locks`), while a third
//! game is processed meanwhile.

use std::time::Duration;

use super::happy::id_key;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn games_run_concurrently_and_each_game_runs_in_stream_order() {
    let app = spawn_app_with(|v| {
        // Long enough that both blocked operations are seen waiting.
        v.insert("RTM_LOCK_WAIT".into(), "30s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let started = watch_starts(&app);
    let v1 = image("1.0.0");
    let (a, b, c) = (
        gid(&app, "order-a"),
        gid(&app, "order-b"),
        gid(&app, "order-c"),
    );
    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());

    let held = hold_locks(&app, &[a, b]).await;
    let mut entries: Vec<(&str, &str, String)> = Vec::new();
    entries.push((a, "start", lobby.start(a, &v1).await));
    entries.push((b, "start", lobby.start(b, &v1).await));
    entries.push((
        a,
        "restart",
        lobby.xadd(&[("op", "restart"), ("game_id", a)]).await,
    ));
    entries.push((c, "start", lobby.start(c, &v1).await));
    entries.push((a, "stop", lobby.stop(a).await));
    entries.push((b, "stop", lobby.stop(b).await));
    entries.push((c, "stop", lobby.stop(c).await));

    // a and b wait for their locks at the same time...
    wait_for(
        "the operations of both locked games waiting at once",
        Duration::from_secs(20),
        || async { (lock_waiters(&app, &[a, b]).await == 2).then_some(()) },
    )
    .await;
    // ...while c, behind them in the stream, is carried out entirely.
    wait_for("game c processed", Duration::from_secs(30), || async {
        (rows(&app, c).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        lock_waiters(&app, &[a, b]).await,
        2,
        "a and b still waiting"
    );
    assert!(rows(&app, a).await.is_empty(), "a ran under a held lock");
    assert!(rows(&app, b).await.is_empty(), "b ran under a held lock");
    // a's later entries were read (c's, behind them, were) and wait behind
    // its first one, unacknowledged.
    let pending: Vec<String> = lobby.pending().await.into_iter().map(|p| p.id).collect();
    for (g, _, id) in &entries {
        if *g != c {
            assert!(pending.contains(id), "{g} entry {id} not pending");
        }
    }

    release_locks(&held).await;
    wait_rows(&app, entries.len(), Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;

    let all = all_rows(&app).await;
    assert_eq!(all.len(), entries.len(), "{all:#?}");
    for g in [a, b, c] {
        let got: Vec<(String, String)> = all
            .iter()
            .filter(|r| r.game_id == g)
            .map(|r| (r.op_kind.clone(), r.source_ref.clone()))
            .collect();
        let want: Vec<(String, String)> = entries
            .iter()
            .filter(|(eg, _, _)| *eg == g)
            .map(|(_, k, id)| ((*k).to_owned(), id.clone()))
            .collect();
        assert_eq!(got, want, "{g}: rows not in stream order");
        let ids: Vec<(u64, u64)> = got.iter().map(|(_, id)| id_key(id)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{g}: {got:?}");
    }
    assert!(
        all.iter().all(|r| r.outcome == "success"),
        "every op succeeds in stream order: {all:#?}"
    );
    for g in [a, b, c] {
        assert_runtime(&app, g, "stopped", &v1).await;
    }
    assert_eq!(started.of(a), 2, "a: start, then restart");
    assert!(lobby.dead_letters().await.is_empty());
}
