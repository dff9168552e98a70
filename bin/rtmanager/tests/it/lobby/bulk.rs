//! 1,000 entries for 100 games: exactly 1,000 rows, each entry id once as
//! `source_ref`, each game's rows in stream order, the expected final
//! states, nothing pending and nothing dead-lettered.
//!
//! The mix is cheap on Docker: per game one real start (100 containers),
//! then no-ops (start of a running game with the same image), and for odd
//! games one real stop followed by no-op stops. Throughput is printed,
//! never asserted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use fred::prelude::StreamsInterface;
use fred::types::Value;

use super::*;

const GAMES: usize = 100;
const PER_GAME: usize = 10;

fn game(i: usize) -> String {
    format!("bulk-{i:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_entries_for_a_hundred_games_make_exactly_a_thousand_rows() {
    let app = spawn_app_with(|v| {
        // The default concurrency (16): more does not help on 2 cores
        // and costs PostgreSQL connections shared with parallel tests.
        // 100 engines probed every 500 ms would compete with the work
        // measured here; health is not under test.
        v.insert("RTM_PROBE_INTERVAL".into(), "5s".into());
        v.insert("RTM_INSPECT_INTERVAL".into(), "5s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let v1 = image("1.0.0");

    // Round-robin by step so every game has work queued at once; written
    // in one pipeline (in order) so writing is not what gets measured.
    let mut plan: Vec<(String, &str)> = Vec::with_capacity(GAMES * PER_GAME);
    for step in 0..PER_GAME {
        for i in 0..GAMES {
            let stop = i % 2 == 1 && step >= 5;
            plan.push((game(i), if stop { "stop" } else { "start" }));
        }
    }
    let began = Instant::now();
    let pipe = lobby.client.pipeline();
    for (g, op) in &plan {
        let mut fields = vec![
            ("op".to_owned(), (*op).to_owned()),
            ("game_id".to_owned(), g.clone()),
        ];
        if *op == "start" {
            fields.push(("image_ref".to_owned(), v1.clone()));
        }
        let () = pipe
            .xadd(&lobby.stream, false, None, "*", fields)
            .await
            .expect("queue XADD");
    }
    let replies: Vec<Value> = pipe.all().await.expect("pipelined XADD");
    let all_ids: Vec<String> = replies
        .into_iter()
        .map(|v| v.as_string().expect("entry id"))
        .collect();
    assert_eq!(all_ids.len(), plan.len());
    let mut per_game: HashMap<String, Vec<String>> = HashMap::new();
    for ((g, _), id) in plan.iter().zip(&all_ids) {
        per_game.entry(g.clone()).or_default().push(id.clone());
    }
    let written = began.elapsed();

    let rows = wait_rows(&app, GAMES * PER_GAME, Duration::from_secs(180)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    let elapsed = began.elapsed();
    let n = all_ids.len();
    eprintln!(
        "lobby bulk: {n} entries for {GAMES} games written in {written:?}, all processed in \
         {elapsed:?}: {:.1} entries/s",
        n as f64 / elapsed.as_secs_f64()
    );

    // Exactly one row per entry.
    let rows_now = all_rows(&app).await;
    assert_eq!(rows_now.len(), n, "row count");
    assert_eq!(rows.len(), n);
    let ids: HashSet<&str> = all_ids.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    for r in &rows_now {
        assert_eq!(r.op_source, "lobby_stream", "{r:?}");
        assert_eq!(r.outcome, "success", "{r:?}");
        assert!(ids.contains(r.source_ref.as_str()), "unknown ref {r:?}");
        assert!(seen.insert(r.source_ref.clone()), "ref twice: {r:?}");
    }
    assert_eq!(seen.len(), n);

    // Each game's rows in stream order, with the right kinds.
    let mut by_game: HashMap<&str, Vec<&OpRow>> = HashMap::new();
    for r in &rows_now {
        by_game.entry(r.game_id.as_str()).or_default().push(r);
    }
    assert_eq!(by_game.len(), GAMES);
    for i in 0..GAMES {
        let g = game(i);
        let got: Vec<&str> = by_game[g.as_str()]
            .iter()
            .map(|r| r.source_ref.as_str())
            .collect();
        let want: Vec<&str> = per_game[&g].iter().map(String::as_str).collect();
        assert_eq!(got, want, "{g}: rows out of stream order");
        let kinds: Vec<&str> = by_game[g.as_str()]
            .iter()
            .map(|r| r.op_kind.as_str())
            .collect();
        let stops = if i % 2 == 1 { 5 } else { 0 };
        assert_eq!(kinds.iter().filter(|k| **k == "stop").count(), stops, "{g}");
    }

    // Final states: even games running, odd stopped; one container each,
    // one engine start each (the no-op starts did nothing on Docker).
    let owner = app.owner.owner().to_owned();
    let ps = rtm_testkit::docker::docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=rtm.owner={owner}"),
        "--format",
        "{{.Label \"rtm.game_id\"}} {{.State}}",
    ])
    .expect("docker ps");
    let states: Vec<(String, String)> = ps
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(g, s)| (g.to_owned(), s.to_owned()))
        .collect();
    assert_eq!(states.len(), GAMES, "one container per game: {ps}");
    let client = app.db.admin_client().await.expect("admin client");
    let records: HashMap<String, String> = client
        .query("SELECT game_id, status FROM runtime_records", &[])
        .await
        .expect("records")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for i in 0..GAMES {
        let g = game(i);
        let want = if i % 2 == 1 { "stopped" } else { "running" };
        assert_eq!(records.get(&g).map(String::as_str), Some(want), "{g}");
        let docker_state = states.iter().find(|(n, _)| *n == g).map(|(_, s)| s);
        let want_docker = if i % 2 == 1 { "exited" } else { "running" };
        assert_eq!(docker_state.map(String::as_str), Some(want_docker), "{g}");
        assert_eq!(starts(&app, &g).len(), 1, "{g}: engine starts");
    }
    // Spot-check the REST view of a few.
    assert_runtime(&app, &game(0), "running", &v1).await;
    assert_runtime(&app, &game(1), "stopped", &v1).await;

    assert!(lobby.pending().await.is_empty(), "pending left");
    assert!(lobby.dead_letters().await.is_empty(), "dead letters");
}
