//! `GET /admin/v1/runtimes/{game_id}/logs`: the current container's last
//! lines (the engine stub writes its start-up and termination lines to
//! stderr), its errors, and `follow`.

use serde_json::Value;

use super::*;

fn game(app: &TestApp, base: &str) -> String {
    format!(
        "{base}-{}",
        app.owner.owner().trim_start_matches("rtmtest_")
    )
}

async fn logs(app: &TestApp, game: &str, query: &str) -> (u16, Value) {
    app.admin_get(&format!("/admin/v1/runtimes/{game}/logs{query}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_of_the_current_container_oldest_first() {
    let app = spawn_app().await;
    let g = game(&app, "logs");
    let (status, _) = logs(&app, &g, "").await;
    assert_eq!(status, 404, "no record, no logs");

    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    let container = body["runtime"]["container_id"]
        .as_str()
        .expect("container")
        .to_owned();
    let first = wait_for("the start-up line", Duration::from_secs(60), || async {
        let (status, body) = logs(&app, &g, "").await;
        assert_eq!(status, 200, "{body}");
        body["lines"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|l| {
                        l["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("listening on"))
                    })
                    .cloned()
            })
            .map(|line| (body, line))
    })
    .await;
    let (body, line) = first;
    assert_eq!(body["game_id"], g.as_str());
    assert_eq!(body["container_id"], container.as_str());
    assert_eq!(body["truncated"], false);
    assert_eq!(line["stream"], "stderr");
    let at = line["time"].as_str().expect("a time").to_owned();

    // A stop writes one more line; `tail=1` is that line alone.
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{g}/stop"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, all) = logs(&app, &g, "?tail=5000").await;
    assert_eq!(status, 200, "{all}");
    let lines = all["lines"].as_array().expect("lines").clone();
    let last = lines.last().expect("a line").clone();
    assert!(
        last["text"].as_str().expect("text").contains("terminating"),
        "{all}"
    );
    let (_, one) = logs(&app, &g, "?tail=1").await;
    assert_eq!(one["lines"], serde_json::json!([last]));
    // `since` is exclusive: the start-up line is not repeated.
    let since = rtm_testkit_encode(&at);
    let (status, after) = logs(&app, &g, &format!("?since={since}")).await;
    assert_eq!(status, 200, "{after}");
    let after = after["lines"].as_array().expect("lines").clone();
    assert!(!after.iter().any(|l| l == &line), "{after:?}");
    assert_eq!(after.last(), Some(&last));

    // Bad parameters change nothing and say what is wrong.
    for q in [
        "?tail=5001",
        "?tail=-1",
        "?tail=x",
        "?since=yesterday",
        "?follow=maybe",
        "?lines=3",
    ] {
        let (status, body) = logs(&app, &g, q).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{q}: {body}");
    }
    let (status, body) = logs(&app, "bad/id", "").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = logs(&app, "-bad", "").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_game_id");

    // The admin surface only, with the admin token only.
    let (status, _) = gm_get(&app, &format!("/api/v1/runtimes/{g}/logs")).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        "GET",
        &format!("{}/admin/v1/runtimes/{g}/logs", app.admin),
        Some(GM_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 403);

    // Removed: the record keeps the container id, but there are no logs.
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{g}/cleanup"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = logs(&app, &g, "").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

/// `+` and `:` of an RFC 3339 time, percent-encoded for a query string.
fn rtm_testkit_encode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_streams_until_the_container_stops() {
    let app = spawn_app().await;
    let g = game(&app, "follow");
    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    wait_for("the start-up line", Duration::from_secs(60), || async {
        let (_, body) = logs(&app, &g, "").await;
        body["lines"]
            .as_array()
            .filter(|l| !l.is_empty())
            .map(|_| ())
    })
    .await;
    let url = format!(
        "{}/admin/v1/runtimes/{g}/logs?follow=true&tail=5000",
        app.admin
    );
    // The follow runs until the engine stops; the stop comes from here.
    let follow =
        tokio::spawn(async move { call_raw("GET", &url, Some(ADMIN_TOKEN), None, &[]).await });
    // Whether the follow opens before or after the stop, its answer holds
    // both lines and ends (a stopped container's follow ends at once).
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{g}/stop"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, text) = tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .expect("the follow ended with the container")
        .expect("follow task");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("listening on"), "{text}");
    assert!(text.contains("terminating on signal"), "{text}");
    assert!(text.ends_with('\n'), "{text:?}");
}
