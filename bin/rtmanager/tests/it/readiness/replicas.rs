//! Two replicas on one database, one Redis and one Docker host: each
//! singleton worker runs on one of them only, Lobby entries are handled
//! once across both, concurrent REST starts of one game through both make
//! one container, and a stopped leader's workers move to the other.

use std::time::Duration;

use rtmanager::app::RunningApp;

use super::*;

const SINGLETONS: [&str; 3] = ["probe", "inspect", "relay"];

/// `(runs on a, runs on b)` of `worker`.
async fn runs(a: &str, b: &str, worker: &str) -> (f64, f64) {
    (worker_runs(a, worker).await, worker_runs(b, worker).await)
}

/// Waits for a few passes of every singleton in total, then says which
/// replica ran each: `true` = a only, `false` = b only; fails when one ran
/// on both.
async fn singleton_leaders(a: &str, b: &str) -> Vec<(&'static str, bool)> {
    let mut before = Vec::new();
    for worker in SINGLETONS {
        before.push(runs(a, b, worker).await);
    }
    let after = wait_for("singleton passes", Duration::from_secs(20), || async {
        let mut after = Vec::new();
        for worker in SINGLETONS {
            after.push(runs(a, b, worker).await);
        }
        before
            .iter()
            .zip(&after)
            .all(|((a0, b0), (a1, b1))| a1 + b1 >= a0 + b0 + 3.0)
            .then_some(after)
    })
    .await;
    SINGLETONS
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(worker, ((a0, b0), (a1, b1)))| match (a1 > a0, b1 > b0) {
            (true, false) => (*worker, true),
            (false, true) => (*worker, false),
            _ => panic!("{worker} ran on both replicas: a {a0}->{a1}, b {b0}->{b1}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_without_doing_anything_twice() {
    let shared = game("shared");
    let mut a = spawn_app().await;
    let b: RunningApp = spawn_replica(&a, "b", |_| {}).await;
    let mut b = Some(b);
    let b_gm = format!("http://{}", b.as_ref().expect("b").gm_addr);
    wait_readyz(&b_gm, 200, Duration::from_secs(30)).await;
    // A game, so that the probe and inspect passes have work.
    let (status, body) = a.start_game(&shared, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");

    // Singletons: one replica each.
    let leaders = singleton_leaders(&a.gm, &b_gm).await;
    // The start-up reconcile ran once, on one replica only (the other
    // never got the lease: the interval is an hour).
    let (ra, rb) = runs(&a.gm, &b_gm, "reconcile").await;
    assert_eq!(ra + rb, 1.0, "reconcile runs: a {ra}, b {rb}");

    // Lobby entries: each handled exactly once across the two consumers.
    let redis = rtm_testkit::redis::client(&rtm_testkit::redis::redis_url()).await;
    let games: Vec<String> = (0..6).map(|i| game(&format!("lobby{i}"))).collect();
    for game in &games {
        rtm_testkit::redis::xadd(
            &redis,
            &a.lobby_stream,
            &[
                ("op", "start"),
                ("game_id", game),
                ("image_ref", &image("1.0.0")),
            ],
        )
        .await;
    }
    for game in &games {
        wait_for(
            &format!("{game} running"),
            Duration::from_secs(60),
            || async {
                let (s, v) = a.runtime(game).await;
                (s == 200 && v["status"] == "running").then_some(())
            },
        )
        .await;
    }
    for game in &games {
        assert_eq!(
            a.operation_rows(game).await.len(),
            1,
            "{game}: one operation"
        );
        assert_eq!(a.containers(game).len(), 1, "{game}: one container");
    }

    // Concurrent starts of one game through both replicas.
    for i in 0..3 {
        let game = game(&format!("race{i}"));
        let url_a = format!("{}/api/v1/runtimes/{game}/start", a.gm);
        let url_b = format!("{b_gm}/api/v1/runtimes/{game}/start");
        let body = serde_json::json!({ "image_ref": image("1.0.0") });
        let (ra, rb) = tokio::join!(
            call("POST", &url_a, Some(GM_TOKEN), Some(body.clone()), &[]),
            call("POST", &url_b, Some(GM_TOKEN), Some(body), &[]),
        );
        for (status, body) in [&ra, &rb] {
            assert!(
                *status == 200
                    || (*status == 409 && body["error"]["code"] == "operation_in_progress"),
                "{game}: {status} {body}"
            );
        }
        assert!(ra.0 == 200 || rb.0 == 200, "{game}: {ra:?} {rb:?}");
        assert_eq!(
            a.containers(&game).len(),
            1,
            "{game}: exactly one container"
        );
        let (_, v) = a.runtime(&game).await;
        assert_eq!(v["status"], "running", "{v}");
        for row in a.operation_rows(&game).await {
            assert_eq!(row.get::<_, String>("outcome"), "success", "{game}");
        }
    }

    // Stop the probe leader: the other replica takes its workers over.
    let (_, probe_on_a) = leaders[0];
    let (survivor, stopped_workers): (String, Vec<&str>) = if probe_on_a {
        a.stop().await;
        (
            b_gm.clone(),
            leaders.iter().filter(|l| l.1).map(|l| l.0).collect(),
        )
    } else {
        b.take().expect("b").shutdown().await;
        (
            a.gm.clone(),
            leaders.iter().filter(|l| !l.1).map(|l| l.0).collect(),
        )
    };
    assert!(stopped_workers.contains(&"probe"));
    for worker in stopped_workers {
        let before = worker_runs(&survivor, worker).await;
        wait_for(
            &format!("{worker} taken over"),
            Duration::from_secs(20),
            || async { (worker_runs(&survivor, worker).await > before).then_some(()) },
        )
        .await;
    }
    if let Some(b) = b.take() {
        b.shutdown().await;
    }
}
