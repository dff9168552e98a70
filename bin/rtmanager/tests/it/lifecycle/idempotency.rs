//! `Idempotency-Key` (SPEC §5, docs/rest.md): a finished operation with the
//! same key, game and surface is answered again, not performed again.

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

    // The same key on another game is another operation.
    let (s3, other) = post_keyed(&app.gm, GM_TOKEN, &start(b), body(), key).await;
    assert_eq!(s3, 200, "{other}");
    assert_eq!(other["replayed"], false);
    assert_ne!(other["operation"]["id"], first["operation"]["id"]);
    assert_eq!(other["operation"]["game_id"], b);
    wait_engine_started(&app, b, 1).await;
    assert_eq!(app.containers(b).len(), 1);
    assert_eq!(rows(&app, b).await.len(), 1);

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
