//! `Idempotency-Key` (SPEC §5, docs/rest.md): a finished operation with the
//! same key, surface and request (game, operation, parameters) is answered
//! again, not performed again; the key reused for a different request is
//! refused with `idempotency_key_reused` and changes nothing.

use serde_json::json;

use super::*;

#[tokio::test]
async fn the_same_key_replays_instead_of_acting() {
    let app = spawn_app().await;
    let (a, b) = (gid(&app, "idem-a"), gid(&app, "idem-b"));
    let (a, b) = (a.as_str(), b.as_str());
    let start = |g: &str| format!("/api/v1/runtimes/{g}/start");
    let body = || Some(json!({"image_ref": image("1.0.0")}));
    let key = "start-1";

    let (s1, first) = post_keyed(&app.gm, GM_TOKEN, &start(a), body(), key).await;
    assert_eq!(s1, 200, "{first}");
    assert_eq!(first["replayed"], false);
    assert_eq!(first["operation"]["source_ref"], key);
    wait_engine_started(&app, a, 1).await;
    let before = snapshot(&app, a).await;

    // Stop the game (no key): a replayed start must not start it again.
    stop_game(&app, a).await;
    let stopped = snapshot(&app, a).await;

    let (s2, second) = post_keyed(&app.gm, GM_TOKEN, &start(a), body(), key).await;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(second["replayed"], true, "{second}");
    assert_eq!(second["operation"]["id"], first["operation"]["id"]);
    assert_eq!(
        second["operation"], first["operation"],
        "the earlier result"
    );
    // ... with the game's current runtime.
    assert_eq!(second["runtime"]["status"], "stopped", "{second}");
    let after = snapshot(&app, a).await;
    assert_eq!(after.rows, stopped.rows, "no new row");
    assert_eq!(after.containers.len(), 1);
    assert_eq!(after.containers[0].id, before.containers[0].id);
    assert!(!after.containers[0].running, "not started again");
    assert_eq!(after.starts, before.starts);
    assert_eq!(
        without_health(&after.record),
        without_health(&stopped.record)
    );

    // The same key on another game is a different request: refused, and
    // nothing happens to either game (issue 13 §5).
    let (s3, other) = post_keyed(&app.gm, GM_TOKEN, &start(b), body(), key).await;
    assert_eq!(s3, 422, "{other}");
    assert_eq!(other["error"]["code"], "idempotency_key_reused", "{other}");
    assert!(other.get("operation").is_none(), "not recorded: {other}");
    assert!(app.containers(b).is_empty());
    assert!(rows(&app, b).await.is_empty());
    assert_eq!(rows(&app, a).await, stopped.rows);

    // The same key on the other surface is another operation too: it acts.
    let (s4, admin) = post_keyed(
        &app.admin,
        ADMIN_TOKEN,
        &format!("/admin/v1/runtimes/{a}/start"),
        body(),
        key,
    )
    .await;
    assert_eq!(s4, 200, "{admin}");
    assert_eq!(admin["replayed"], false);
    assert_eq!(admin["operation"]["op_source"], "admin_rest");
    assert_eq!(admin["runtime"]["status"], "running");
    wait_engine_started(&app, a, before.starts + 1).await;
    assert_eq!(rows(&app, a).await.len(), stopped.rows.len() + 1);
}

#[tokio::test]
async fn a_recorded_failure_replays_with_its_status() {
    let app = spawn_app().await;
    let g = gid(&app, "idem-fail");
    let g = g.as_str();
    let path = format!("/api/v1/runtimes/{g}/stop");
    let (s1, first) = post_keyed(&app.gm, GM_TOKEN, &path, None, "stop-1").await;
    assert_eq!(s1, 404, "{first}");
    assert_eq!(first["error"]["code"], "not_found");
    assert_eq!(first["replayed"], false);
    let id = first["operation"]["id"].clone();
    assert!(id.is_i64(), "{first}");

    let (s2, second) = post_keyed(&app.gm, GM_TOKEN, &path, None, "stop-1").await;
    assert_eq!(s2, 404, "{second}");
    assert_eq!(second["error"]["code"], "not_found");
    assert_eq!(second["replayed"], true);
    assert_eq!(second["operation"]["id"], id);
    assert_eq!(rows(&app, g).await.len(), 1);

    // A bad key is a bad request, before anything happens.
    for bad in ["", &"k".repeat(201)] {
        let (s, body) = call(
            "POST",
            &format!("{}{path}", app.gm),
            Some(GM_TOKEN),
            None,
            &[("idempotency-key", bad)],
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    assert_eq!(rows(&app, g).await.len(), 1);
}

/// Issue 13 §5: `start` with key k, then `stop` with k answered `200
/// replayed` and the game kept running. A key names one request: reused
/// for another operation, other parameters or another game it is refused
/// (422, not recorded, no Docker action); the same request still replays.
#[tokio::test]
async fn a_key_reused_for_a_different_request_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (g, h) = (gid(&app, "reuse-g"), gid(&app, "reuse-h"));
    let (g, h) = (g.as_str(), h.as_str());
    let key = "k-start-1";
    let (s, first) = post_keyed(
        &app.gm,
        GM_TOKEN,
        &format!("/api/v1/runtimes/{g}/start"),
        Some(json!({"image_ref": image("1.0.0")})),
        key,
    )
    .await;
    assert_eq!(s, 200, "{first}");
    wait_engine_started(&app, g, 1).await;
    let before = snapshot(&app, g).await;

    let refused = [
        // Another operation on the same game: the reported defect.
        (format!("/api/v1/runtimes/{g}/stop"), None),
        (
            format!("/api/v1/runtimes/{g}/stop"),
            Some(json!({"timeout_s": 1})),
        ),
        (format!("/api/v1/runtimes/{g}/restart"), None),
        // The same operation with another parameter.
        (
            format!("/api/v1/runtimes/{g}/start"),
            Some(json!({"image_ref": image("1.0.1")})),
        ),
        (
            format!("/api/v1/runtimes/{g}/patch"),
            Some(json!({"image_ref": image("1.0.1")})),
        ),
        // The same request on another game.
        (
            format!("/api/v1/runtimes/{h}/start"),
            Some(json!({"image_ref": image("1.0.0")})),
        ),
    ];
    for (path, body) in refused {
        let (status, body) = post_keyed(&app.gm, GM_TOKEN, &path, body, key).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(
            body["error"]["code"], "idempotency_key_reused",
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(key), "{path}: {message}");
        assert!(
            body.get("operation").is_none(),
            "{path}: not recorded: {body}"
        );
        assert!(body.get("replayed").is_none(), "{path}: {body}");
    }

    // Nothing changed: the game still runs its first engine, no row, no
    // container for the other game.
    let after = snapshot(&app, g).await;
    assert_eq!(after.rows, before.rows, "no new row");
    assert_eq!(after.starts, before.starts, "no engine start");
    assert_eq!(after.containers.len(), 1);
    assert_eq!(after.containers[0].id, before.containers[0].id);
    assert!(after.containers[0].running, "still running");
    assert_eq!(after.record.as_ref().unwrap()["status"], "running");
    assert!(app.containers(h).is_empty());
    assert!(rows(&app, h).await.is_empty());
    assert_eq!(record(&app, h).await, None);

    // The very same request still replays the first result.
    let (s, again) = post_keyed(
        &app.gm,
        GM_TOKEN,
        &format!("/api/v1/runtimes/{g}/start"),
        Some(json!({"image_ref": image("1.0.0")})),
        key,
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["operation"], first["operation"]);

    // A fresh key does what it says.
    let (s, stopped) = post_keyed(
        &app.gm,
        GM_TOKEN,
        &format!("/api/v1/runtimes/{g}/stop"),
        None,
        "k-stop-1",
    )
    .await;
    assert_eq!(s, 200, "{stopped}");
    assert_eq!(stopped["runtime"]["status"], "stopped");
}
