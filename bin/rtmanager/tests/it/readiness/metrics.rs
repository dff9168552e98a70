//! `GET /metrics`: the Prometheus text exposition counts what the app did.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_latencies_and_worker_runs() {
    let m1 = game("m1");
    let m2 = game("m2");
    let m3 = game("m3");
    let app = spawn_app().await;
    for game in [&m1, &m2] {
        let (status, body) = app.start_game(game, &image("1.0.0")).await;
        assert_eq!(status, 200, "{body}");
    }
    // A replay of the same start is a no-op success, recorded too.
    let (status, body) = app.start_game(&m1, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    // A refused one is a recorded failure.
    let (status, body) = app.start_game(&m3, "docker.io/library/alpine:3.19").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .admin_post(
            &format!("/admin/v1/runtimes/{m2}/stop"),
            Some(serde_json::json!({"timeout_s": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The workers run on their own schedule: wait for each to have run.
    let text = wait_for("every worker ran", Duration::from_secs(20), || async {
        let text = metrics_text(&app.admin).await;
        ["reconcile", "inspect", "probe", "cleanup", "relay"]
            .iter()
            .all(|w| {
                series(
                    &text,
                    &format!(r#"rtm_worker_runs_total{{result="ok",worker="{w}"}}"#),
                )
                .is_some_and(|n| n >= 1.0)
            })
            .then_some(text)
    })
    .await;

    let ops = |src: &str, kind: &str, outcome: &str| {
        series(
            &text,
            &format!(
                r#"rtm_operations_total{{op_kind="{kind}",op_source="{src}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(ops("gm_rest", "start", "success"), Some(3.0), "{text}");
    assert_eq!(ops("gm_rest", "start", "failure"), Some(1.0), "{text}");
    assert_eq!(ops("admin_rest", "stop", "success"), Some(1.0), "{text}");
    assert_eq!(ops("gm_rest", "stop", "success"), None, "{text}");

    // The latency histogram: cumulative buckets ending in +Inf = count.
    let hist = |suffix: &str| {
        series(
            &text,
            &format!(r#"rtm_operation_duration_seconds_{suffix}"#),
        )
    };
    assert_eq!(
        hist(r#"count{op_kind="start",outcome="success"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        hist(r#"bucket{op_kind="start",outcome="success",le="+Inf"}"#),
        Some(3.0),
        "{text}"
    );
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"rtm_operation_duration_seconds_bucket{op_kind="start",outcome="success","#,
            )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(buckets.len() > 5, "{text}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "buckets are cumulative: {buckets:?}"
    );
    assert!(hist(r#"sum{op_kind="start",outcome="success"}"#).is_some_and(|s| s > 0.0));

    // Health, per-request and gauge families are exposed too.
    for family in [
        "rtm_health_observations_total",
        "rtm_health_changes_total",
        "rtm_http_requests_total",
        "rtm_games",
        "rtm_lobby_lag",
        "rtm_lobby_pending",
        "rtm_lobby_dead_letters_total",
        "rtm_health_outbox_pending",
        "rtm_worker_last_run_timestamp_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        series(&text, r#"rtm_http_requests_total{route="/api/v1/runtimes/{game_id}/start",status="200",surface="gm"}"#)
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );

    // Runtime records by status (m1 running, m2 stopped; m3 was refused
    // before any record existed), refreshed every few seconds.
    wait_for("rtm_games by status", Duration::from_secs(20), || async {
        let text = metrics_text(&app.gm).await;
        (series(&text, r#"rtm_games{status="running"}"#) == Some(1.0)
            && series(&text, r#"rtm_games{status="stopped"}"#) == Some(1.0)
            && series(&text, r#"rtm_games{status="removed"}"#) == Some(0.0))
        .then_some(())
    })
    .await;

    // Content type: Prometheus text format, on both surfaces, no token.
    for base in [&app.gm, &app.admin] {
        let url: hyper::Uri = format!("{base}/metrics").parse().expect("uri");
        let resp = hyper::Client::new().get(url).await.expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
            "content type {ct:?}"
        );
    }
}
