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

use fred::prelude::{ClientLike, StreamsInterface};
use fred::types::Value;

use super::*;

const GAMES: usize = 100;
const PER_GAME: usize = 10;

fn game(app: &TestApp, i: usize) -> String {
    gid(app, &format!("bulk-{i:03}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_entries_for_a_hundred_games_make_exactly_a_thousand_rows() {
    let app = spawn_app_with(|v| {
        // Docker is the bottleneck on 2 cores: a modest concurrency does
        // as well and keeps PostgreSQL connections (shared by every test
        // on the machine) for the others.
        v.insert("RTM_LOBBY_CONCURRENCY".into(), "8".into());
        v.insert("RTM_DATABASE_POOL_SIZE".into(), "8".into());
        // 100 engines probed every 500 ms would compete with the work
        // measured here; health is not under test.
        v.insert("RTM_PROBE_INTERVAL".into(), "5s".into());
        v.insert("RTM_INSPECT_INTERVAL".into(), "5s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let started = watch_starts(&app);
    let v1 = image("1.0.0");

    // Round-robin by step so every game has work queued at once; written
    // in one pipeline (in order) so writing is not what gets measured.
    let mut plan: Vec<(String, &str)> = Vec::with_capacity(GAMES * PER_GAME);
    for step in 0..PER_GAME {
        for i in 0..GAMES {
            let stop = i % 2 == 1 && step >= 5;
            plan.push((game(&app, i), if stop { "stop" } else { "start" }));
        }
    }
    // Its own client: a busy machine (the app shares this runtime) can
    // take longer than the helpers' 5 s command timeout for a batch.
    let config = fred::prelude::Config::from_url(&app.vars["RTM_REDIS_URL"]).expect("url");
    let writer = fred::prelude::Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(60))
        .build()
        .expect("redis client");
    writer.init().await.expect("redis connect");
    let began = Instant::now();
    let mut all_ids: Vec<String> = Vec::with_capacity(plan.len());
    for chunk in plan.chunks(100) {
        let pipe = writer.pipeline();
        for (g, op) in chunk {
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
        all_ids.extend(
            replies
                .into_iter()
                .map(|v| v.as_string().expect("entry id")),
        );
    }
    assert_eq!(all_ids.len(), plan.len());
    let mut per_game: HashMap<String, Vec<String>> = HashMap::new();
    for ((g, _), id) in plan.iter().zip(&all_ids) {
        per_game.entry(g.clone()).or_default().push(id.clone());
    }
    let written = began.elapsed();
    let _ = writer.quit().await;

    let rows = wait_rows(&app, GAMES * PER_GAME, Duration::from_secs(180)).await;
    lobby.wait_drained(Duration::from_secs(30)).await;
    let elapsed = began.elapsed();
    let n = all_ids.len();
    eprintln!(
        "lobby bulk: {n} entries for {GAMES} games written in {written:?}, all processed in \
         {elapsed:?}: {:.1} entries/s",
        n as f64 / elapsed.as_secs_f64()
    );

    // Where the time went (printed, not asserted): the first start/stop
    // of a game acts on Docker, the rest are no-ops.
    let client = admin(&app).await;
    for r in client
        .query(
            "SELECT op_kind, n = 1 AS real, count(*), \
                    round(avg(ms)::numeric, 1)::text, round(max(ms)::numeric, 1)::text \
             FROM (SELECT op_kind, \
                          row_number() OVER (PARTITION BY game_id, op_kind ORDER BY id) AS n, \
                          extract(epoch FROM finished_at - started_at) * 1000 AS ms \
                   FROM operation_log) t \
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("durations")
    {
        let (kind, real, count, avg, max): (String, bool, i64, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let what = if real { "docker" } else { "no-op" };
        eprintln!("  {kind:5} {what:6} x{count:4}: avg {avg} ms, max {max} ms");
    }

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
        let g = game(&app, i);
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
    let client = admin(&app).await;
    let records: HashMap<String, String> = client
        .query("SELECT game_id, status FROM runtime_records", &[])
        .await
        .expect("records")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let starts = started.all();
    for i in 0..GAMES {
        let g = game(&app, i);
        let want = if i % 2 == 1 { "stopped" } else { "running" };
        assert_eq!(records.get(&g).map(String::as_str), Some(want), "{g}");
        let docker_state = states.iter().find(|(n, _)| *n == g).map(|(_, s)| s);
        let want_docker = if i % 2 == 1 { "exited" } else { "running" };
        assert_eq!(docker_state.map(String::as_str), Some(want_docker), "{g}");
        assert_eq!(starts.get(&g), Some(&1), "{g}: engine starts");
    }
    // Spot-check the REST view of a few.
    assert_runtime(&app, &game(&app, 0), "running", &v1).await;
    assert_runtime(&app, &game(&app, 1), "stopped", &v1).await;

    assert!(lobby.pending().await.is_empty(), "pending left");
    assert!(lobby.dead_letters().await.is_empty(), "dead letters");
}
