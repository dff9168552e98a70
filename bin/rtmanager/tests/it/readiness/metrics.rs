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

/// Value of `name` or a panic naming what is missing.
fn must(text: &str, name: &str) -> f64 {
    series(text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_series_answer_with_sensible_values() {
    let g = game("oc1");
    let app = spawn_app().await;
    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    // A refusal on an unknown game: audited, and a 404 for the latency
    // histogram's status label.
    let ghost = game("oc-ghost");
    let (status, body) = app
        .gm_post(&format!("/api/v1/runtimes/{ghost}/stop"), None)
        .await;
    assert_eq!(status, 404, "{body}");

    // The game turns healthy, this single replica leads every worker and
    // follows Docker's events; the gauges task refreshes every 5 s.
    let text = wait_for(
        "health, leaders and events",
        Duration::from_secs(30),
        || async {
            let text = metrics_text(&app.admin).await;
            let leads_all = rtmanager::metrics::WORKERS.iter().all(|w| {
                series(&text, &format!(r#"rtm_worker_leader{{worker="{w}"}}"#)) == Some(1.0)
            });
            (leads_all
                && series(&text, r#"rtm_games_health{status="healthy"}"#) == Some(1.0)
                && series(&text, "rtm_docker_events_connected") == Some(1.0)
                && series(&text, "process_cpu_seconds_total").is_some_and(|v| v > 0.0))
            .then_some(text)
        },
    )
    .await;

    // Health by status: the only running game is healthy; the other
    // statuses are present at 0.
    for status in ["probe_failed", "exited", "oom", "inspect_unhealthy"] {
        assert_eq!(
            must(&text, &format!(r#"rtm_games_health{{status="{status}"}}"#)),
            0.0,
            "{status}"
        );
    }
    assert_eq!(
        must(
            &text,
            &format!(
                r#"rtm_build_info{{profile="debug",version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // Process metrics: a real process, not zeros.
    let rss = must(&text, "process_resident_memory_bytes");
    assert!(rss > 1_000_000.0 && rss < 64e9, "rss {rss}");
    let fds = must(&text, "process_open_fds");
    assert!(fds >= 3.0, "fds {fds}");
    assert!(must(&text, "process_start_time_seconds") > 1.6e9);
    // Nothing resubscribed yet on a healthy Docker; the counter exists.
    assert_eq!(must(&text, "rtm_docker_events_resubscriptions_total"), 0.0);
    // Nothing waits in the Lobby stream of this test.
    assert_eq!(must(&text, "rtm_lobby_oldest_age_seconds"), 0.0);
    // Latency by route and status: the start (200) and the refusal (404).
    assert!(
        must(
            &text,
            r#"rtm_http_request_duration_seconds_count{route="/api/v1/runtimes/{game_id}/start",status="200",surface="gm"}"#
        ) >= 1.0
    );
    assert_eq!(
        must(
            &text,
            r#"rtm_http_request_duration_seconds_count{route="/api/v1/runtimes/{game_id}/stop",status="404",surface="gm"}"#
        ),
        1.0
    );
    let sum = must(
        &text,
        r#"rtm_http_request_duration_seconds_sum{route="/api/v1/runtimes/{game_id}/start",status="200",surface="gm"}"#,
    );
    assert!(sum > 0.0 && sum < 600.0, "{sum}");
    // Errors by dependency and kind: every kind is exported from the start.
    for (dep, kinds) in [
        ("postgres", &rtm_postgres::ERROR_KINDS[..]),
        ("redis", &rtm_redis::ERROR_KINDS[..]),
        ("docker", &rtm_docker::ERROR_KINDS[..]),
    ] {
        for kind in kinds {
            let v = must(
                &text,
                &format!(r#"rtm_dependency_errors_total{{dependency="{dep}",kind="{kind}"}}"#),
            );
            assert!(v >= 0.0);
        }
    }
    for what in ["operations", "games", "states"] {
        must(
            &text,
            &format!(r#"rtm_retention_deleted_total{{what="{what}"}}"#),
        );
    }
}

/// The repository root (for docs/).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every metric name (`rtm_…`, `process_…`) a PromQL text mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["rtm_", "process_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix).map(|i| i + from) {
            let boundary =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .map_or(text.len(), |n| i + n);
            if boundary {
                names.insert(text[i..end].to_owned());
            }
            from = end.max(i + 1);
        }
    }
    names
}

/// The PromQL expressions of the Grafana dashboard.
fn dashboard_exprs() -> Vec<String> {
    let path = repo_root().join("docs/grafana/rtmanager.json");
    let text = std::fs::read_to_string(&path).expect("docs/grafana/rtmanager.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= panels.len(), "every panel has a query");
    exprs
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        r#"sum(rate(rtm_operations_total{outcome="failure"}[5m])) / x_rtm_not
           and process_open_fds > 1 and RtmAlert"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["process_open_fds", "rtm_operations_total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_use_only_exported_series() {
    let mut wanted = std::collections::BTreeSet::new();
    for expr in dashboard_exprs() {
        wanted.extend(metric_names(&expr));
    }
    let alerts = std::fs::read_to_string(repo_root().join("docs/prometheus/alerts.yml"))
        .expect("docs/prometheus/alerts.yml");
    let from_alerts = metric_names(&alerts);
    assert!(from_alerts.len() >= 8, "{from_alerts:?}");
    wanted.extend(from_alerts);

    // Traffic that creates the series of open vocabularies (operation
    // outcomes, latency histograms by route).
    let g = game("dash");
    let app = spawn_app().await;
    let (status, body) = app.start_game(&g, &image("1.0.0")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .start_game(&game("dash-x"), "docker.io/library/alpine:3.19")
        .await;
    assert_eq!(status, 422, "{body}");
    let text = wait_for("every worker ran", Duration::from_secs(30), || async {
        let text = metrics_text(&app.admin).await;
        rtmanager::metrics::WORKERS
            .iter()
            .filter(|w| **w != "events")
            .all(|w| {
                series(
                    &text,
                    &format!(r#"rtm_worker_runs_total{{result="ok",worker="{w}"}}"#),
                )
                .is_some()
            })
            .then_some(text)
    })
    .await;
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{text}"
    );
}

/// Runs promtool; a missing promtool fails the test (CI installs Debian's
/// `prometheus` package through `cargo xtask services`).
fn promtool(args: &[&str]) -> String {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("promtool not found: install Debian's prometheus package (cargo xtask services)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_and_dashboard_queries_pass_promtool() {
    let check = promtool(&["check", "rules", "docs/prometheus/alerts.yml"]);
    assert!(check.contains("SUCCESS"), "{check}");
    let tests = promtool(&["test", "rules", "docs/prometheus/alerts_test.yml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");
    // Every alert has a rule test.
    let alerts = std::fs::read_to_string(repo_root().join("docs/prometheus/alerts.yml"))
        .expect("alerts.yml");
    let cases = std::fs::read_to_string(repo_root().join("docs/prometheus/alerts_test.yml"))
        .expect("alerts_test.yml");
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                cases.contains(&format!(
                    "alertname: {name}\n        exp_alerts:\n          - exp_labels"
                )),
                "no firing test case for {name}"
            );
        }
    }
    // The dashboard's queries parse: check them as recording rules.
    let dir = tempdir();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs().iter().enumerate() {
        rules += &format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(expr).expect("json string")
        );
    }
    let path = dir.join("dashboard_rules.yml");
    std::fs::write(&path, rules).expect("write rules");
    let check = promtool(&["check", "rules", path.to_str().expect("utf-8 path")]);
    assert!(check.contains("SUCCESS"), "{check}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system temp dir.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(rtm_testkit::unique("rtm-promtool"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
