//! Happy path of each Lobby op (start, restart, patch, stop): one
//! `lobby_stream` row per entry whose `source_ref` is the entry id, the
//! entry acknowledged only once that row exists, and the runtime in the
//! right state with the right container.

use std::time::{Duration, Instant};

use super::*;

/// `1732822421123-0` as a comparable pair.
pub fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (
        ms.parse().expect("entry ms"),
        seq.parse().expect("entry seq"),
    )
}

/// Appends `fields` and follows the entry until it is acknowledged.
///
/// First, deterministically: the game's lock is held by the test while the
/// entry arrives, so the operation cannot finish; once the app waits for
/// that lock, the entry must be pending and have no row. Then, after the
/// lock is released, every sample checks that an acknowledged entry already
/// has its row (Redis is read first, then SQL: an ack seen before its
/// commit would show as "acked, no row"). Returns the entry id and its
/// single row.
pub async fn run_entry(app: &TestApp, lobby: &Lobby, fields: &[(&str, &str)]) -> (String, OpRow) {
    let game = fields
        .iter()
        .find(|(k, _)| *k == "game_id")
        .map(|(_, v)| *v)
        .expect("game_id");
    let sql = admin(app).await;
    let held = hold_locks(app, &[game]).await;
    let id = lobby.xadd(fields).await;
    // The app queues its waiters for one game in process and sends one to
    // PostgreSQL, which may be a health observation rather than this
    // operation: wait for the entry's delivery too.
    wait_for(
        "the operation waiting for the game's lock",
        Duration::from_secs(20),
        || async {
            let (_, _, last_delivered) = lobby.group_info().await?;
            let delivered = id_key(&last_delivered) >= id_key(&id);
            (delivered && lock_waiters(app, &[game]).await == 1).then_some(())
        },
    )
    .await;
    assert!(
        lobby.pending().await.iter().any(|p| p.id == id),
        "entry {id} acknowledged while its operation could not run"
    );
    assert!(query_rows(&sql, Some(&id)).await.is_empty());
    release_locks(&held).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, last_delivered) = lobby.group_info().await.expect("group");
        assert!(id_key(&last_delivered) >= id_key(&id), "delivered");
        let pending = lobby.pending().await.iter().any(|p| p.id == id);
        let rows = query_rows(&sql, Some(&id)).await;
        assert!(rows.len() <= 1, "entry {id} has {} rows", rows.len());
        if !pending {
            assert_eq!(
                rows.len(),
                1,
                "entry {id} ({fields:?}) was acknowledged without an operation row"
            );
            return (id, rows[0].clone());
        }
        assert!(
            Instant::now() < deadline,
            "entry {id} ({fields:?}) not acknowledged in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[track_caller]
fn assert_row(row: &OpRow, entry: &str, game: &str, kind: &str) {
    assert_eq!(row.op_source, "lobby_stream", "{row:?}");
    assert_eq!(row.source_ref, entry, "{row:?}");
    assert_eq!(row.game_id, game, "{row:?}");
    assert_eq!(row.op_kind, kind, "{row:?}");
    assert_eq!(row.outcome, "success", "{row:?}");
    assert_eq!(row.error_code, "", "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_op_is_recorded_with_the_entry_id_and_acknowledged_after_its_row() {
    let app = spawn_app_with(|v| {
        // Longer than the lock is held in `run_entry`: one attempt.
        v.insert("RTM_LOCK_WAIT".into(), "20s".into());
    })
    .await;
    let lobby = Lobby::new(&app).await;
    let game_id = gid(&app, "lobby-happy");
    let game = game_id.as_str();
    let (v1, v2) = (image("1.0.0"), image("1.0.1"));

    // start
    let (entry, row) = run_entry(
        &app,
        &lobby,
        &[
            ("op", "start"),
            ("game_id", game),
            ("image_ref", &v1),
            ("request_id", "lobby-req-1"),
            ("trace_id", "ignored-extra-field"),
        ],
    )
    .await;
    assert_row(&row, &entry, game, "start");
    assert_eq!(row.image_ref, v1);
    let c1 = assert_runtime(&app, game, "running", &v1).await;
    assert_eq!(row.container_id, c1);
    engine_starts(&app, game, 1).await;
    let started_1 = inspect(&c1, "{{.State.StartedAt}}");

    // restart (running: same container, stopped and started again)
    let (entry, row) = run_entry(
        &app,
        &lobby,
        &[
            ("op", "restart"),
            ("game_id", game),
            ("stop_timeout_s", "3"),
        ],
    )
    .await;
    assert_row(&row, &entry, game, "restart");
    assert_eq!(assert_runtime(&app, game, "running", &v1).await, c1);
    assert_eq!(row.container_id, c1);
    assert_ne!(inspect(&c1, "{{.State.StartedAt}}"), started_1);
    // The restart started the engine again.
    engine_starts(&app, game, 2).await;

    // patch to 1.0.1: a new container of the new image replaces the old one
    // (which must be healthy first: the patch gate probes the new one).
    wait_for("healthy before patch", Duration::from_secs(30), || async {
        (runtime(&app, game).await["health"]["status"] == "healthy").then_some(())
    })
    .await;
    let (entry, row) = run_entry(
        &app,
        &lobby,
        &[("op", "patch"), ("game_id", game), ("image_ref", &v2)],
    )
    .await;
    assert_row(&row, &entry, game, "patch");
    assert_eq!(row.image_ref, v2);
    let c2 = assert_runtime(&app, game, "running", &v2).await;
    assert_ne!(c2, c1, "patch runs a new container");
    assert_eq!(row.container_id, c2);
    let log = engine_starts(&app, game, 3).await;
    assert!(log[2].starts_with("1.0.1 "), "{log:?}");

    // stop: the container is kept, not running
    let (entry, row) = run_entry(
        &app,
        &lobby,
        &[("op", "stop"), ("game_id", game), ("stop_timeout_s", "0")],
    )
    .await;
    assert_row(&row, &entry, game, "stop");
    assert_eq!(assert_runtime(&app, game, "stopped", &v2).await, c2);

    // Exactly one row per entry, all from the stream, nothing pending or
    // dead-lettered.
    let all = rows(&app, game).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all.iter().all(|r| r.op_source == "lobby_stream"));
    assert!(lobby.pending().await.is_empty());
    assert!(lobby.dead_letters().await.is_empty());

    // The REST view of the operations shows the same references.
    let (status, body) = gm_get(&app, &format!("/api/v1/runtimes/{game}/operations")).await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    for r in &all {
        assert!(
            text.contains(&r.source_ref),
            "{} not in {text}",
            r.source_ref
        );
    }
}
