//! The per-game lock (SPEC §5) seen from outside: concurrent requests on
//! one game never create two containers and their operations never
//! interleave; a request that waits too long gets `operation_in_progress`
//! and leaves no row.

use futures_util::future::join_all;
use serde_json::json;

use super::*;

/// Whether some session holds RTM's advisory lock of `game` right now
/// (the key is the one `PgLocks` derives; see rtm-postgres `locks.rs`).
async fn lock_held(app: &TestApp, game: &str) -> bool {
    let client = app.db.admin_client().await.expect("admin client");
    let key = format!("rtm:game:{}:{game}", app.db.schema());
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            &[&key],
        )
        .await
        .expect("pg_locks");
    row.get::<_, i64>(0) > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_starts_make_one_container() {
    let app = spawn_app_with(|v| {
        v.insert("RTM_LOCK_WAIT".into(), "20s".into());
    })
    .await;
    let g = gid(&app, "herd");
    let g = g.as_str();
    let img = image("1.0.0");
    let answers = join_all((0..50).map(|_| app.start_game(g, &img))).await;

    let mut ids = Vec::new();
    for (status, body) in &answers {
        match status {
            200 => {
                assert_eq!(body["operation"]["outcome"], "success", "{body}");
                assert_eq!(body["runtime"]["status"], "running", "{body}");
                ids.push(body["operation"]["id"].as_i64().expect("id"));
            }
            409 => {
                assert_eq!(body["error"]["code"], "operation_in_progress", "{body}");
                assert!(body["operation"].is_null(), "not recorded: {body}");
            }
            _ => panic!("unexpected answer {status} {body}"),
        }
    }
    wait_engine_started(&app, g, 1).await;
    let snap = snapshot(&app, g).await;
    assert_eq!(snap.containers.len(), 1, "{:?}", snap.containers);
    let c = &snap.containers[0];
    assert!(c.running);
    assert_eq!(snap.starts, 1, "the engine started once");
    let rec = snap.record.clone().unwrap();
    assert_eq!(rec["container_id"], c.id.as_str());

    // One success row per 200 answer (the no-op starts are recorded too),
    // each naming the one container; none for the 409s; no overlap.
    ids.sort_unstable();
    let row_ids: Vec<i64> = snap.rows.iter().map(|r| r.id).collect();
    assert_eq!(row_ids, ids);
    assert!(!ids.is_empty());
    for r in &snap.rows {
        assert_eq!(
            (r.op_kind.as_str(), r.outcome.as_str()),
            ("start", "success")
        );
        assert_eq!(r.container_id, c.id);
    }
    assert_no_overlap(&snap.rows);
    // The first row created the container: Docker's creation time lies
    // within it (the others started after it finished).
    let created = time::OffsetDateTime::parse(
        c.inspect["Created"].as_str().expect("Created"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("Created");
    let first = &snap.rows[0];
    assert!(
        first.started_at <= created && created <= first.finished_at.unwrap(),
        "container created at {created} outside the first row {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mix_of_operations_never_interleaves() {
    let app = spawn_app_with(|v| {
        v.insert("RTM_LOCK_WAIT".into(), "25s".into());
    })
    .await;
    let g = gid(&app, "mix");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let p = |what: &str| format!("/api/v1/runtimes/{g}/{what}");
    let requests = [
        ("stop", Some(json!({"timeout_s": 5}))),
        ("restart", None),
        ("patch", Some(json!({"image_ref": image("1.0.1")}))),
        ("stop", Some(json!({"timeout_s": 5}))),
        ("restart", None),
        ("start", Some(json!({"image_ref": image("1.0.0")}))),
        ("patch", Some(json!({"image_ref": image("1.0.1")}))),
        ("stop", None),
    ];
    let paths: Vec<String> = requests.iter().map(|(what, _)| p(what)).collect();
    let answers = join_all(
        requests
            .iter()
            .zip(&paths)
            .map(|((_, body), path)| app.gm_post(path, body.clone())),
    )
    .await;
    for (status, body) in &answers {
        // Every answer is a recorded outcome: a success or a refusal in
        // the status the game happened to be in.
        assert!(
            matches!(status, 200 | 409 | 422),
            "unexpected {status} {body}"
        );
        assert!(body["operation"]["id"].is_i64(), "{status} {body}");
    }
    let snap = snapshot(&app, g).await;
    assert_eq!(snap.rows.len(), 1 + requests.len(), "{:?}", snap.rows);
    assert_no_overlap(&snap.rows);

    // Docker agrees with the record.
    let rec = snap.record.clone().unwrap();
    assert_eq!(snap.containers.len(), 1, "{:?}", snap.containers);
    let c = &snap.containers[0];
    assert_eq!(rec["container_id"], c.id.as_str());
    assert_eq!(rec["image_ref"], c.image.as_str());
    assert_eq!(c.name, format!("rtm-{g}"));
    match rec["status"].as_str() {
        Some("running") => assert!(c.running, "{rec}"),
        Some("stopped") => assert!(!c.running, "{rec}"),
        other => panic!("unexpected status {other:?}"),
    }
}

/// How many sessions wait (ungranted) for RTM's advisory lock of `game`.
async fn lock_waiters(app: &TestApp, game: &str) -> i64 {
    let client = app.db.admin_client().await.expect("admin client");
    let key = format!("rtm:game:{}:{game}", app.db.schema());
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            &[&key],
        )
        .await
        .expect("pg_locks");
    row.get::<_, i64>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_during_a_start_waits_its_turn() {
    let app = std::sync::Arc::new(
        spawn_app_with(|v| {
            v.insert("RTM_LOCK_WAIT".into(), "20s".into());
        })
        .await,
    );
    let g = gid(&app, "start-then-stop");
    let g = g.as_str();
    // The test holds the game's lock, so the start queues for it in
    // PostgreSQL (a state that lasts, unlike "the start is running right
    // now", which a poll can miss). Waiting there, the start keeps this
    // replica's in-process turn for the game, so the stop sent next can
    // only run after the start, however the two requests race: on release
    // the start runs and the stop waits for the whole of it.
    let holder = app.db.admin_client().await.expect("admin client");
    let key = format!("rtm:game:{}:{g}", app.db.schema());
    holder
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .await
        .expect("take the lock");
    let start = {
        let a = app.clone();
        let game = g.to_owned();
        tokio::spawn(async move { a.start_game(&game, &image("1.0.0")).await })
    };
    wait_for(
        "the start queued for the lock",
        Duration::from_secs(20),
        || async { (lock_waiters(&app, g).await == 1).then_some(()) },
    )
    .await;
    let stop = {
        let a = app.clone();
        let path = format!("/api/v1/runtimes/{g}/stop");
        tokio::spawn(async move { a.gm_post(&path, Some(json!({"timeout_s": 5}))).await })
    };
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .expect("release the lock");
    let (status, body) = stop.await.expect("stop task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["status"], "stopped", "{body}");
    let (s_status, s_body) = start.await.expect("start task");
    assert_eq!(s_status, 200, "{s_body}");

    let snap = snapshot(&app, g).await;
    let kinds: Vec<(&str, &str)> = snap
        .rows
        .iter()
        .map(|r| (r.op_kind.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(kinds, [("start", "success"), ("stop", "success")]);
    assert_no_overlap(&snap.rows);
    let rec = snap.record.unwrap();
    assert_eq!(rec["status"], "stopped");
    assert_eq!(snap.containers.len(), 1, "kept: {:?}", snap.containers);
    assert!(!snap.containers[0].running);
    assert_eq!(rec["container_id"], snap.containers[0].id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operation_that_cannot_get_the_lock_is_refused_without_a_trace() {
    let app = spawn_app_with(|v| {
        v.insert("RTM_LOCK_WAIT".into(), "300ms".into());
    })
    .await;
    let g = gid(&app, "busy");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let before = snapshot(&app, g).await;

    // Another holder (as another replica would) keeps the game's lock.
    let holder = app.db.admin_client().await.expect("admin client");
    let key = format!("rtm:game:{}:{g}", app.db.schema());
    holder
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .await
        .expect("take the lock");
    assert!(lock_held(&app, g).await);
    for (what, body) in [
        ("stop", Some(json!({"timeout_s": 5}))),
        ("restart", None),
        ("start", Some(json!({"image_ref": image("1.0.0")}))),
    ] {
        let (status, body) = app
            .gm_post(&format!("/api/v1/runtimes/{g}/{what}"), body)
            .await;
        assert_eq!(status, 409, "{what}: {body}");
        assert_eq!(body["error"]["code"], "operation_in_progress", "{body}");
        assert!(body["operation"].is_null(), "not recorded: {body}");
    }
    let during = snapshot(&app, g).await;
    assert_eq!(during.rows, before.rows, "no row for a refused lock");
    assert_eq!(
        without_health(&during.record),
        without_health(&before.record)
    );
    assert_eq!(during.containers.len(), 1);
    assert_eq!(during.containers[0].id, before.containers[0].id);
    assert!(during.containers[0].running);

    // Once released, the same request goes through.
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .expect("release the lock");
    stop_game(&app, g).await;
    assert_eq!(rows(&app, g).await.len(), before.rows.len() + 1);
}
