//! Malformed and poison entries: copied to `<stream>:dead` with the reason
//! and the original fields, acknowledged, and never blocking the entries
//! behind them. A business refusal (an image off the allow-list) is a
//! recorded failed operation, not a dead letter.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The dead letter of entry `id`: exactly one.
fn dead_of<'a>(dead: &'a [(String, Vec<(String, String)>)], id: &str) -> &'a [(String, String)] {
    let found: Vec<_> = dead
        .iter()
        .filter(|(_, f)| field(f, "dead_entry_id") == Some(id))
        .collect();
    assert_eq!(found.len(), 1, "dead letters of {id}: {dead:#?}");
    &found[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_dead_lettered_and_do_not_block_the_rest() {
    let app = spawn_app().await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let v1 = image("1.0.0");
    let g_id = gid(&app, "poison-g");
    let g = g_id.as_str();
    let instance = app.vars["RTM_INSTANCE_ID"].clone();
    let long_request_id = "r".repeat(257);

    // (fields, expected dead_reason)
    let poison: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("game_id", g), ("image_ref", &v1)], "missing_op"),
        (vec![("op", "jump"), ("game_id", g)], "unknown_op"),
        (
            vec![("op", "Start"), ("game_id", g), ("image_ref", &v1)],
            "unknown_op",
        ),
        (
            vec![
                ("op", "start"),
                ("game_id", "-bad game!"),
                ("image_ref", &v1),
            ],
            "invalid_game_id",
        ),
        (vec![("op", "stop")], "missing_game_id"),
        (vec![("op", "start"), ("game_id", g)], "missing_image_ref"),
        (
            vec![
                ("op", "start"),
                ("game_id", g),
                ("image_ref", "UPPER/Case::x"),
            ],
            "invalid_image_ref",
        ),
        (
            vec![("op", "stop"), ("game_id", g), ("stop_timeout_s", "soon")],
            "invalid_stop_timeout",
        ),
        (
            vec![
                ("op", "start"),
                ("game_id", g),
                ("image_ref", &v1),
                ("stop_timeout_s", "-1"),
            ],
            "invalid_stop_timeout",
        ),
        (
            vec![("op", "stop"), ("game_id", g), ("op", "start")],
            "duplicate_field",
        ),
        (
            vec![("op", "stop"), ("game_id", g), ("stop_timeout_s", "3601")],
            "invalid_stop_timeout",
        ),
        (
            vec![
                ("op", "stop"),
                ("game_id", g),
                ("request_id", &long_request_id),
            ],
            "invalid_request_id",
        ),
    ];
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let mut dead_ids: Vec<(String, Fields, &str)> = Vec::new();
    for (fields, reason) in &poison {
        let id = lobby.xadd(fields).await;
        dead_ids.push((id, fields.clone(), reason));
    }
    // Well-formed entries behind them, for the same game: a refused start
    // (recorded failure), then a real start and stop.
    // A value that is not UTF-8 (written raw: the helpers take &str).
    let not_utf8: String = lobby
        .client
        .xadd(
            &lobby.stream,
            false,
            None,
            "*",
            vec![
                ("op", fred::types::Value::from("stop")),
                (
                    "game_id",
                    fred::types::Value::Bytes(vec![0x67, 0xff, 0xfe].into()),
                ),
            ],
        )
        .await
        .expect("XADD raw bytes");
    let refused = lobby.start(g, "docker.io/library/nginx:1.25").await;
    let started = lobby.start(g, &v1).await;
    // A major-version patch is refused: a failed row, not a dead letter.
    let major = lobby
        .xadd(&[
            ("op", "patch"),
            ("game_id", g),
            ("image_ref", &image("2.0.0")),
        ])
        .await;
    let stopped = lobby
        .xadd(&[("op", "stop"), ("game_id", g), ("stop_timeout_s", "2")])
        .await;

    wait_rows(&app, 4, Duration::from_secs(60)).await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    let dead = wait_for("every dead letter", Duration::from_secs(10), || async {
        let d = lobby.dead_letters().await;
        (d.len() > poison.len()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), poison.len() + 1, "{dead:#?}");
    let d = dead_of(&dead, &not_utf8);
    assert_eq!(field(d, "dead_reason"), Some("invalid_encoding"), "{d:?}");
    assert_eq!(field(d, "op"), Some("stop"), "{d:?}");

    for (id, fields, reason) in &dead_ids {
        let d = dead_of(&dead, id);
        assert_eq!(field(d, "dead_reason"), Some(*reason), "{id}: {d:?}");
        assert!(!field(d, "dead_detail").unwrap_or("").is_empty(), "{d:?}");
        assert_eq!(field(d, "dead_consumer"), Some(instance.as_str()));
        assert_eq!(field(d, "dead_deliveries"), Some("1"), "{d:?}");
        let at = field(d, "dead_at").expect("dead_at");
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[19] == b'.',
            "dead_at {at:?}"
        );
        // The original fields come first, in order and unchanged.
        let original: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(&d[..original.len()], &original[..], "{id}: fields");
    }

    // Dead letters have no row; the well-formed entries have one each.
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    for (id, _, _) in &dead_ids {
        assert!(all.iter().all(|r| &r.source_ref != id), "row for dead {id}");
    }
    let by_ref: HashMap<&str, &OpRow> = all.iter().map(|r| (r.source_ref.as_str(), r)).collect();
    let r = by_ref[refused.as_str()];
    assert_eq!(
        (
            r.op_kind.as_str(),
            r.outcome.as_str(),
            r.error_code.as_str()
        ),
        ("start", "failure", "image_not_allowed"),
        "{r:?}"
    );
    assert!(dead
        .iter()
        .all(|(_, f)| field(f, "dead_entry_id") != Some(&refused)));
    assert_eq!(by_ref[started.as_str()].outcome, "success");
    let r = by_ref[major.as_str()];
    assert_eq!(
        (
            r.op_kind.as_str(),
            r.outcome.as_str(),
            r.error_code.as_str()
        ),
        ("patch", "failure", "patch_not_allowed"),
        "{r:?}"
    );
    assert!(dead
        .iter()
        .all(|(_, f)| field(f, "dead_entry_id") != Some(&major)));
    assert_eq!(by_ref[stopped.as_str()].outcome, "success");
    assert_eq!(by_ref[stopped.as_str()].op_kind, "stop");
    assert_runtime(&app, g, "stopped", &v1).await;
    assert!(lobby.pending().await.is_empty());

    // The readiness report counts them.
    let (_, ready) = call("GET", &format!("{}/readyz", app.gm), None, None, &[]).await;
    assert_eq!(
        ready["dependencies"]["redis"]["lobby_dead_lettered"],
        poison.len() + 1,
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_delivered_too_often_is_dead_lettered_and_never_run() {
    let mut app = spawn_app_with(|v| {
        v.insert("RTM_LOBBY_MAX_DELIVERIES".into(), "2".into());
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "1s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let instance = app.vars["RTM_INSTANCE_ID"].clone();
    let v1 = image("1.0.0");
    app.stop().await;

    // A well-formed entry that "crashed the app" three times: delivered to
    // the app's consumer name three times, never acknowledged.
    let poison = lobby.start("poison-many", &v1).await;
    assert_eq!(
        lobby.read_as(&instance, 10, ">").await,
        vec![poison.clone()]
    );
    for _ in 0..2 {
        assert_eq!(
            lobby.read_as(&instance, 10, "0").await,
            vec![poison.clone()]
        );
    }
    // The same on a replica that is gone: found by the claimer.
    let claimed = lobby.start("poison-claimed", &v1).await;
    assert_eq!(
        lobby.read_as("dead-consumer", 10, ">").await,
        vec![claimed.clone()]
    );
    for _ in 0..2 {
        assert_eq!(
            lobby.read_as("dead-consumer", 10, "0").await,
            vec![claimed.clone()]
        );
    }
    let p = lobby.pending().await;
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|p| p.deliveries == 3), "{p:?}");
    // An entry behind them.
    let behind_game = gid(&app, "poison-behind");
    let behind = lobby.start(&behind_game, &v1).await;

    app.start().await;
    wait_rows(&app, 1, Duration::from_secs(60)).await;
    let dead = wait_for("two dead letters", Duration::from_secs(20), || async {
        let d = lobby.dead_letters().await;
        (d.len() >= 2).then_some(d)
    })
    .await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let d = dead_of(&dead, &claimed);
    assert_eq!(field(d, "dead_reason"), Some("max_deliveries"), "{d:?}");
    assert_eq!(field(d, "game_id"), Some("poison-claimed"));
    assert!(
        app.containers("poison-claimed").is_empty(),
        "claimed poison ran"
    );
    let d = dead_of(&dead, &poison);
    assert_eq!(field(d, "dead_reason"), Some("max_deliveries"), "{d:?}");
    let n: u64 = field(d, "dead_deliveries")
        .and_then(|n| n.parse().ok())
        .expect("dead_deliveries");
    assert!(n > 2, "{d:?}");
    assert_eq!(field(d, "op"), Some("start"));
    assert_eq!(field(d, "game_id"), Some("poison-many"));
    assert_eq!(field(d, "image_ref"), Some(v1.as_str()));

    let all = all_rows(&app).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].source_ref, behind);
    assert_eq!(all[0].outcome, "success");
    assert!(app.containers("poison-many").is_empty(), "poison entry ran");
    let (status, _) = app.runtime("poison-many").await;
    assert_eq!(status, 404);
    assert_runtime(&app, &behind_game, "running", &v1).await;
    assert!(lobby.pending().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_trimmed_before_processing_are_dead_lettered_as_trimmed() {
    let mut app = spawn_app_with(|v| {
        v.insert("RTM_LOBBY_CLAIM_IDLE".into(), "1s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    lobby.wait_group().await;
    let instance = app.vars["RTM_INSTANCE_ID"].clone();
    app.stop().await;

    // One pending on the app's own name, one on a dead consumer; both
    // deleted from the stream before anyone processed them. A stop of an
    // unknown game is cheap: a recorded `not_found` failure.
    let own = lobby.stop("trim-own").await;
    assert_eq!(lobby.read_as(&instance, 10, ">").await, vec![own.clone()]);
    let other = lobby.stop("trim-other").await;
    assert_eq!(
        lobby.read_as("dead-consumer", 10, ">").await,
        vec![other.clone()]
    );
    let deleted: u64 = lobby
        .client
        .xdel(&lobby.stream, vec![own.clone(), other.clone()])
        .await
        .expect("XDEL");
    assert_eq!(deleted, 2);
    let behind = lobby.stop("trim-behind").await;

    app.start().await;
    wait_rows(&app, 1, Duration::from_secs(30)).await;
    let dead = wait_for(
        "both trimmed dead letters",
        Duration::from_secs(20),
        || async {
            let d = lobby.dead_letters().await;
            (d.len() >= 2).then_some(d)
        },
    )
    .await;
    lobby.wait_drained(Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    for id in [&own, &other] {
        let d = dead_of(&dead, id);
        assert_eq!(field(d, "dead_reason"), Some("trimmed"), "{d:?}");
        assert_eq!(field(d, "op"), None, "no original field survives: {d:?}");
    }
    let all = all_rows(&app).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].source_ref, behind);
    assert_eq!(
        (all[0].outcome.as_str(), all[0].error_code.as_str()),
        ("failure", "not_found")
    );
    assert!(
        lobby.pending().await.is_empty(),
        "{:?}",
        lobby.pending().await
    );
}
