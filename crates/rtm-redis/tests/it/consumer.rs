//! The Lobby consumer against the shared Redis (unique stream per test).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fred::prelude::StreamsInterface;
use fred::types::Value;
use rtm_domain::transition::Command;
use rtm_domain::{ImageRef, OpSource};
use rtm_testkit::redis::{client, redis_url, xadd, xrange, KeyGuard};

use crate::support::{config, eventually, pending, spawn_consumer, TestHandler};

const IMAGE: &str = "ghcr.io/acme/engine:1.0.0";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn each_op_is_handled_then_acknowledged() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let start = xadd(
        &c,
        &stream,
        &[
            ("op", "start"),
            ("game_id", "g1"),
            ("image_ref", IMAGE),
            ("request_id", "r-1"),
        ],
    )
    .await;
    let stop = xadd(
        &c,
        &stream,
        &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "7")],
    )
    .await;
    let restart = xadd(&c, &stream, &[("op", "restart"), ("game_id", "g1")]).await;
    let patch = xadd(
        &c,
        &stream,
        &[
            ("op", "patch"),
            ("game_id", "g1"),
            ("image_ref", "ghcr.io/acme/engine:1.0.1"),
        ],
    )
    .await;

    let handler = TestHandler::default();
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("4 calls", WAIT, || async { handler.calls().len() == 4 }).await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;

    let calls = handler.calls();
    let ids: Vec<_> = calls.iter().map(|c| c.entry_id.clone()).collect();
    assert_eq!(ids, [start.clone(), stop, restart, patch]);
    assert_eq!(
        calls[0].req.command,
        Command::Start {
            image: ImageRef::parse(IMAGE).unwrap()
        }
    );
    assert_eq!(calls[0].req.request_id.as_deref(), Some("r-1"));
    assert_eq!(calls[0].req.source, OpSource::LobbyStream);
    assert_eq!(calls[0].req.source_ref.as_deref(), Some(start.as_str()));
    assert_eq!(calls[1].req.command, Command::Stop);
    assert_eq!(calls[1].req.stop_timeout, Some(Duration::from_secs(7)));
    assert_eq!(calls[2].req.command, Command::Restart);
    assert!(matches!(calls[3].req.command, Command::Patch { .. }));
    assert_eq!(running.stats.acked(), 4);
    assert_eq!(running.stats.processed(), 4);
    assert_eq!(running.stats.dead_lettered(), 0);
    assert!(running.stats.connected());
    let info = running
        .stats
        .group_info()
        .await
        .unwrap()
        .expect("group exists");
    assert_eq!(info.lag, Some(0));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thousand_entries_for_hundred_games_exactly_once_in_order() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..1000 {
        let game = format!("game-{}", i % 100);
        let op = if i % 2 == 0 { "stop" } else { "restart" };
        let id = xadd(&c, &stream, &[("op", op), ("game_id", &game)]).await;
        expected.entry(game).or_default().push(id);
    }

    let handler = TestHandler::default();
    handler.delay(Duration::from_millis(2));
    let mut cfg = config(&stream, "rtm-a");
    cfg.concurrency = 16;
    let running = spawn_consumer(&url, cfg, handler.clone());
    eventually("1000 calls", Duration::from_secs(60), || async {
        handler.calls().len() >= 1000
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;

    let calls = handler.calls();
    assert_eq!(calls.len(), 1000, "each entry handled exactly once");
    let unique: HashSet<_> = calls.iter().map(|c| c.entry_id.clone()).collect();
    assert_eq!(unique.len(), 1000);
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for call in &calls {
        seen.entry(call.game.clone())
            .or_default()
            .push(call.entry_id.clone());
    }
    assert_eq!(seen, expected, "each game's entries in stream order");
    assert!(!handler.overlapped(), "two entries of one game ran at once");
    assert!(handler.max_active() > 1, "games ran concurrently");
    assert!(
        handler.max_active() <= 16,
        "concurrency limit exceeded: {}",
        handler.max_active()
    );
    assert_eq!(running.stats.acked(), 1000);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_and_hold_back_the_game() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let a1 = xadd(&c, &stream, &[("op", "stop"), ("game_id", "a")]).await;
    let a2 = xadd(&c, &stream, &[("op", "restart"), ("game_id", "a")]).await;
    let b1 = xadd(&c, &stream, &[("op", "stop"), ("game_id", "b")]).await;

    let handler = TestHandler::default();
    handler.fail_first("a", 3);
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("3 calls succeed", WAIT, || async {
        handler.calls().len() == 3
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;

    let attempts = handler.attempts();
    let a_attempts: Vec<_> = attempts
        .iter()
        .filter(|id| **id == a1 || **id == a2)
        .cloned()
        .collect();
    assert_eq!(
        a_attempts,
        [a1.clone(), a1.clone(), a1.clone(), a1.clone(), a2.clone()],
        "a1 retried until Ok; a2 waited for it"
    );
    let calls = handler.calls();
    let a_calls: Vec<_> = calls
        .iter()
        .filter(|c| c.game == "a")
        .map(|c| c.entry_id.clone())
        .collect();
    assert_eq!(a_calls, [a1, a2]);
    assert_eq!(calls.iter().filter(|c| c.entry_id == b1).count(), 1);
    assert_eq!(running.stats.transient_failures(), 3);
    assert_eq!(running.stats.acked(), 3);
    assert!(running
        .stats
        .last_error()
        .is_some_and(|e| e.contains("in progress")));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_entry_stays_pending_until_ok() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    xadd(&c, &stream, &[("op", "stop"), ("game_id", "a")]).await;

    let handler = TestHandler::default();
    handler.fail_first("a", usize::MAX);
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("several attempts", WAIT, || async {
        handler.attempts().len() >= 3
    })
    .await;
    assert_eq!(
        pending(&running.stats).await,
        Some(1),
        "not acknowledged while failing"
    );
    assert_eq!(running.stats.acked(), 0);
    handler.fail_first("a", 0);
    eventually("acknowledged once Ok", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    assert_eq!(handler.calls().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_entries_are_dead_lettered_and_never_block() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let first = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;
    let bad: Vec<(&[(&str, &str)], &str)> = vec![
        (&[("op", "jump"), ("game_id", "g1")], "unknown_op"),
        (&[("game_id", "g1")], "missing_op"),
        (&[("op", "stop")], "missing_game_id"),
        (&[("op", "stop"), ("game_id", "-bad")], "invalid_game_id"),
        (&[("op", "start"), ("game_id", "g1")], "missing_image_ref"),
        (
            &[
                ("op", "patch"),
                ("game_id", "g1"),
                ("image_ref", "Not A Ref"),
            ],
            "invalid_image_ref",
        ),
        (
            &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "-3")],
            "invalid_stop_timeout",
        ),
    ];
    let mut bad_ids = Vec::new();
    for (fields, _) in &bad {
        bad_ids.push(xadd(&c, &stream, fields).await);
    }
    let last = xadd(
        &c,
        &stream,
        &[("op", "restart"), ("game_id", "g1"), ("x_extra", "ignored")],
    )
    .await;

    let handler = TestHandler::default();
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("valid entries handled", WAIT, || async {
        handler.calls().len() == 2
    })
    .await;
    eventually("all dead-lettered", WAIT, || async {
        running.stats.dead_lettered() == 7
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;

    let ids: Vec<_> = handler.calls().iter().map(|c| c.entry_id.clone()).collect();
    assert_eq!(ids, [first, last]);
    let letters = xrange(&c, &dead).await;
    assert_eq!(letters.len(), 7);
    let by_entry: HashMap<String, HashMap<String, String>> = letters
        .into_iter()
        .map(|(_, f)| {
            let m: HashMap<_, _> = f.into_iter().collect();
            (m["dead_entry_id"].clone(), m)
        })
        .collect();
    for ((fields, reason), id) in bad.iter().zip(&bad_ids) {
        let letter = by_entry
            .get(id)
            .unwrap_or_else(|| panic!("no dead letter for {id}"));
        assert_eq!(letter["dead_reason"], *reason, "entry {fields:?}");
        assert_eq!(letter["dead_consumer"], "rtm-a");
        assert_eq!(letter["dead_deliveries"], "1");
        assert!(letter["dead_at"].ends_with('Z'));
        assert!(!letter["dead_detail"].is_empty());
        for (k, v) in fields.iter() {
            assert_eq!(
                letter.get(*k).map(String::as_str),
                Some(*v),
                "original field {k} kept"
            );
        }
    }
    running.shutdown().await;
}

/// Delivers `id` to `consumer` `times` times in total (one read, then
/// claims), as repeated crashes of that consumer would.
async fn deliver_repeatedly(c: &fred::prelude::Client, stream: &str, consumer: &str, times: usize) {
    let _: Value = c
        .xgroup_create(stream, "rtmanager", "0", true)
        .await
        .expect("group created");
    let _: Value = c
        .xreadgroup("rtmanager", consumer, Some(100), None, false, stream, ">")
        .await
        .expect("read");
    let v: Value = c
        .xpending(stream, "rtmanager", ("-", "+", 100u64))
        .await
        .expect("xpending");
    let Value::Array(rows) = v else {
        panic!("xpending reply {v:?}")
    };
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|r| match r {
            Value::Array(cols) => cols[0].as_string(),
            _ => None,
        })
        .collect();
    for _ in 1..times {
        let _: Value = c
            .xclaim(
                stream,
                "rtmanager",
                consumer,
                0,
                ids.clone(),
                None,
                None,
                None,
                false,
                false,
            )
            .await
            .expect("xclaim");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_delivered_too_often_are_dead_lettered() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let poison = xadd(
        &c,
        &stream,
        &[("op", "stop"), ("game_id", "g1"), ("request_id", "p")],
    )
    .await;
    // Delivered 5 times already (the limit); the consumer's own re-read on
    // start is the 6th delivery.
    deliver_repeatedly(&c, &stream, "rtm-a", 5).await;
    let after = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;

    let handler = TestHandler::default();
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("later entry handled", WAIT, || async {
        handler.calls().len() == 1
    })
    .await;
    eventually("poison dead-lettered", WAIT, || async {
        running.stats.dead_lettered() == 1
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;

    assert_eq!(handler.calls()[0].entry_id, after);
    assert!(
        !handler.attempts().contains(&poison),
        "poison entry never reaches the handler"
    );
    let letters = xrange(&c, &dead).await;
    assert_eq!(letters.len(), 1);
    let m: HashMap<_, _> = letters[0].1.iter().cloned().collect();
    assert_eq!(m["dead_reason"], "max_deliveries");
    assert_eq!(m["dead_entry_id"], poison);
    assert_eq!(m["dead_deliveries"], "6");
    assert_eq!(m["request_id"], "p");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewound_entry_already_acknowledged_is_acknowledged_again_not_rerun() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let a = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;
    let b = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g2")]).await;

    let handler = TestHandler::default();
    // Claims far later than the deadlines: only the `>` read can deliver.
    let mut cfg = config(&stream, "rtm-a");
    cfg.claim_idle = Duration::from_secs(600);
    let running = spawn_consumer(&url, cfg, handler.clone());
    eventually("both handled and acknowledged", WAIT, || async {
        running.stats.acked() == 2 && pending(&running.stats).await == Some(0)
    })
    .await;

    // The window is replayed (twice): both entries are delivered again.
    for round in 1..=2u64 {
        let _: Value = c
            .xgroup_setid(&stream, "rtmanager", "0-0")
            .await
            .expect("XGROUP SETID");
        eventually("redeliveries acknowledged", WAIT, || async {
            running.stats.acked() == 2 + 2 * round && pending(&running.stats).await == Some(0)
        })
        .await;
    }
    // Completion order: the two games ran concurrently.
    let mut calls: Vec<_> = handler.calls().iter().map(|c| c.entry_id.clone()).collect();
    calls.sort();
    assert_eq!(calls, [a, b], "each entry performed once");
    assert_eq!(running.stats.dead_lettered(), 0);
    assert!(xrange(&c, &dead).await.is_empty());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_entry_over_the_delivery_limit_is_acknowledged_not_dead_lettered() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let done = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;
    let poison = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g2")]).await;
    // A consumer committed `done`'s row, never acknowledged it, and both
    // entries were delivered to it 6 times (over the limit of 5).
    deliver_repeatedly(&c, &stream, "rtm-dead", 6).await;

    let handler = TestHandler::default();
    handler.preset_recorded(&done);
    let mut cfg = config(&stream, "rtm-alive");
    cfg.claim_idle = Duration::from_millis(300);
    let running = spawn_consumer(&url, cfg, handler.clone());
    eventually("both settled", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    // The unrecorded one is still a poison entry.
    let letters = xrange(&c, &dead).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let m: HashMap<_, _> = letters[0].1.iter().cloned().collect();
    assert_eq!(m["dead_entry_id"], poison);
    assert_eq!(m["dead_reason"], "max_deliveries");
    assert_eq!(running.stats.dead_lettered(), 1);
    assert_eq!(running.stats.acked(), 1, "the recorded entry acknowledged");
    assert!(handler.attempts().is_empty(), "nothing performed again");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_consumer_gets_its_pending_entry_again_on_restart() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let id = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;

    // The handler runs (the operation would be recorded) and never returns:
    // the consumer is killed before it could acknowledge.
    let stuck = TestHandler::default();
    stuck.gate("g1");
    let first = spawn_consumer(&url, config(&stream, "rtm-a"), stuck.clone());
    eventually("handler entered", WAIT, || async {
        stuck.attempts().len() == 1
    })
    .await;
    first.abort().await;

    let handler = TestHandler::default();
    let second = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("redelivered", WAIT, || async { handler.calls().len() == 1 }).await;
    eventually("nothing pending", WAIT, || async {
        pending(&second.stats).await == Some(0)
    })
    .await;
    assert_eq!(
        handler.calls()[0].entry_id,
        id,
        "same entry id, so the domain replays it"
    );
    assert_eq!(stuck.attempts(), [id]);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_consumers_entries_are_claimed_after_claim_idle() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let mut ids = Vec::new();
    for g in ["g1", "g2", "g3"] {
        ids.push(xadd(&c, &stream, &[("op", "stop"), ("game_id", g)]).await);
    }
    // "rtm-dead" read them and died.
    deliver_repeatedly(&c, &stream, "rtm-dead", 1).await;

    let handler = TestHandler::default();
    let mut cfg = config(&stream, "rtm-alive");
    cfg.claim_idle = Duration::from_millis(300);
    let running = spawn_consumer(&url, cfg, handler.clone());
    eventually("claimed and handled", WAIT, || async {
        handler.calls().len() == 3
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    let mut got: Vec<_> = handler.calls().iter().map(|c| c.entry_id.clone()).collect();
    got.sort();
    assert_eq!(got, ids);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_operation_is_not_claimed_from_under_its_consumer() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;

    let slow = TestHandler::default();
    slow.gate("g1");
    let mut cfg = config(&stream, "rtm-a");
    cfg.claim_idle = Duration::from_millis(300);
    let a = spawn_consumer(&url, cfg.clone(), slow.clone());
    eventually("a started the entry", WAIT, || async {
        slow.attempts().len() == 1
    })
    .await;

    let other = TestHandler::default();
    cfg.consumer = "rtm-b".into();
    let b = spawn_consumer(&url, cfg, other.clone());
    // Several claim intervals of b pass while a's operation runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        other.attempts().is_empty(),
        "b claimed an entry a is still working on"
    );
    // Still a's, and still one delivery: keeping an entry does not count
    // towards max_deliveries (else a long operation would turn into a
    // dead letter on the next restart).
    let v: Value = c
        .xpending(&stream, "rtmanager", ("-", "+", 10u64))
        .await
        .unwrap();
    let Value::Array(rows) = v else {
        panic!("xpending {v:?}")
    };
    let Value::Array(cols) = &rows[0] else {
        panic!("xpending row")
    };
    assert_eq!(cols[1].as_string().as_deref(), Some("rtm-a"));
    assert_eq!(cols[3].as_u64(), Some(1), "delivery count of a held entry");
    slow.open_gate();
    eventually("a finished", WAIT, || async {
        pending(&a.stats).await == Some(0)
    })
    .await;
    assert_eq!(slow.calls().len(), 1);
    assert!(other.attempts().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_running_calls_finish_and_leaves_the_rest_pending() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let first = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;
    let second = xadd(&c, &stream, &[("op", "restart"), ("game_id", "g1")]).await;

    let handler = TestHandler::default();
    handler.gate("g1");
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("first running", WAIT, || async {
        handler.attempts().len() == 1
    })
    .await;
    let stats = running.stats.clone();
    let opener = handler.clone();
    let shutdown = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !shutdown.is_finished(),
        "run returned while a handler call was running"
    );
    opener.open_gate();
    shutdown.await.unwrap();

    let ids: Vec<_> = handler.calls().iter().map(|c| c.entry_id.clone()).collect();
    assert_eq!(
        ids,
        [first],
        "the running call finished, the queued one did not start"
    );
    let c2 = client(&url).await;
    let v: Value = c2
        .xpending(&stream, "rtmanager", ("-", "+", 10u64))
        .await
        .unwrap();
    let Value::Array(rows) = v else {
        panic!("xpending {v:?}")
    };
    assert_eq!(
        rows.len(),
        1,
        "the queued entry stays pending for the next start"
    );
    let Value::Array(cols) = &rows[0] else {
        panic!()
    };
    assert_eq!(cols[0].as_string().as_deref(), Some(second.as_str()));
    drop(stats);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_entry_trimmed_away_is_dead_lettered() {
    let url = redis_url();
    let mut keys = KeyGuard::new(&url);
    let stream = keys.unique_key("lobby");
    let dead = keys.key(format!("{stream}:dead"));
    let c = client(&url).await;
    let gone = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;
    deliver_repeatedly(&c, &stream, "rtm-a", 1).await;
    // Trimmed (here deleted) before rtm-a came back to it.
    let _: Value = c.xdel(&stream, gone.as_str()).await.unwrap();
    let kept = xadd(&c, &stream, &[("op", "stop"), ("game_id", "g1")]).await;

    let handler = TestHandler::default();
    let running = spawn_consumer(&url, config(&stream, "rtm-a"), handler.clone());
    eventually("live entry handled", WAIT, || async {
        handler.calls().len() == 1
    })
    .await;
    eventually("trimmed entry dead-lettered", WAIT, || async {
        running.stats.dead_lettered() == 1
    })
    .await;
    eventually("nothing pending", WAIT, || async {
        pending(&running.stats).await == Some(0)
    })
    .await;
    assert_eq!(handler.calls()[0].entry_id, kept);
    let letters = xrange(&c, &dead).await;
    let m: HashMap<_, _> = letters[0].1.iter().cloned().collect();
    assert_eq!(m["dead_reason"], "trimmed");
    assert_eq!(m["dead_entry_id"], gone);
    assert!(!m.contains_key("op"), "no original fields survive a trim");
    running.shutdown().await;
}
