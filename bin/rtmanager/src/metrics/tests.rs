//! Unit tests of the metrics: the domain's telemetry hooks, the gauges and
//! counters as rendered, independent registries.

use super::*;

fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn telemetry_hooks_feed_the_metrics() {
    let m = Metrics::new().expect("metrics");
    m.operation_finished(
        OpKind::Start,
        OpSource::GmRest,
        Outcome::Success,
        Duration::from_millis(30),
    );
    m.operation_finished(
        OpKind::Start,
        OpSource::GmRest,
        Outcome::Success,
        Duration::from_millis(70),
    );
    m.health_observed(HealthStatus::Healthy, false);
    m.health_observed(HealthStatus::Exited, true);
    let text = m.render().expect("render");
    assert_eq!(
        line_value(
            &text,
            r#"rtm_operations_total{op_kind="start",op_source="gm_rest",outcome="success"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        line_value(
            &text,
            r#"rtm_operation_duration_seconds_bucket{op_kind="start",outcome="success",le="0.05"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        line_value(
            &text,
            r#"rtm_operation_duration_seconds_count{op_kind="start",outcome="success"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        line_value(&text, r#"rtm_health_observations_total{status="healthy"}"#),
        Some(1.0)
    );
    assert_eq!(
        line_value(&text, r#"rtm_health_changes_total{status="healthy"}"#),
        Some(0.0)
    );
    assert_eq!(
        line_value(&text, r#"rtm_health_changes_total{status="exited"}"#),
        Some(1.0)
    );
}

#[test]
fn gauges_and_counters_render() {
    let m = Metrics::new().expect("metrics");
    m.set_games(&[(RuntimeStatus::Running, 7), (RuntimeStatus::Stopped, 2)]);
    m.set_lobby_backlog(4, 1);
    m.lobby_dead_letter();
    m.set_health_outbox_pending(9);
    m.worker_run("reconcile", WorkerResult::Ok);
    m.worker_run("reconcile", WorkerResult::NotLeader);
    m.worker_overrun("probe");
    m.docker_calls("inspect", "list", 1);
    m.docker_calls("inspect", "inspect", 2);
    m.http_request(
        "gm",
        "/api/v1/runtimes/{game_id}",
        404,
        Duration::from_millis(3),
    );
    m.set_games_health(&[(HealthStatus::Healthy, 5), (HealthStatus::ProbeFailed, 1)]);
    m.set_leader("reconcile", true);
    m.set_lobby_oldest_age(Some(Duration::from_millis(2500)));
    m.events_stream(true);
    m.events_resubscribed();
    m.retention_deleted(7, 1, 0);
    m.refresh_process();
    let text = m.render().expect("render");
    for (series, value) in [
        (r#"rtm_games{status="running"}"#, 7.0),
        (r#"rtm_games{status="stopped"}"#, 2.0),
        (r#"rtm_games{status="removed"}"#, 0.0),
        ("rtm_lobby_lag", 4.0),
        ("rtm_lobby_pending", 1.0),
        ("rtm_lobby_dead_letters_total", 1.0),
        ("rtm_health_outbox_pending", 9.0),
        (
            r#"rtm_worker_runs_total{result="ok",worker="reconcile"}"#,
            1.0,
        ),
        (
            r#"rtm_worker_runs_total{result="not_leader",worker="reconcile"}"#,
            1.0,
        ),
        (r#"rtm_worker_overruns_total{worker="probe"}"#, 1.0),
        (r#"rtm_docker_calls_total{call="list",pass="inspect"}"#, 1.0),
        (
            r#"rtm_docker_calls_total{call="inspect",pass="inspect"}"#,
            2.0,
        ),
        (
            r#"rtm_http_requests_total{route="/api/v1/runtimes/{game_id}",status="404",surface="gm"}"#,
            1.0,
        ),
        (
            r#"rtm_http_request_duration_seconds_bucket{route="/api/v1/runtimes/{game_id}",status="404",surface="gm",le="0.005"}"#,
            1.0,
        ),
        (
            r#"rtm_http_request_duration_seconds_bucket{route="/api/v1/runtimes/{game_id}",status="404",surface="gm",le="0.0025"}"#,
            0.0,
        ),
        (r#"rtm_games_health{status="healthy"}"#, 5.0),
        (r#"rtm_games_health{status="probe_failed"}"#, 1.0),
        (r#"rtm_games_health{status="exited"}"#, 0.0),
        (r#"rtm_worker_leader{worker="reconcile"}"#, 1.0),
        (r#"rtm_worker_leader{worker="events"}"#, 0.0),
        ("rtm_lobby_oldest_age_seconds", 2.5),
        ("rtm_docker_events_connected", 1.0),
        ("rtm_docker_events_resubscriptions_total", 1.0),
        (r#"rtm_retention_deleted_total{what="operations"}"#, 7.0),
        (r#"rtm_retention_deleted_total{what="states"}"#, 0.0),
    ] {
        assert_eq!(line_value(&text, series), Some(value), "{series}\n{text}");
    }
    let build = format!(
        r#"rtm_build_info{{profile="debug",version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(line_value(&text, &build), Some(1.0), "{text}");
    for series in ["process_resident_memory_bytes", "process_open_fds"] {
        let v = line_value(&text, series).unwrap_or_default();
        assert!(v > 0.0, "{series} = {v}\n{text}");
    }
    assert!(line_value(&text, "process_cpu_seconds_total").is_some_and(|v| v >= 0.0));
    for dep in ["postgres", "redis", "docker"] {
        assert!(
            text.contains(&format!(
                r#"rtm_dependency_errors_total{{dependency="{dep}",kind="unavailable"}}"#
            )),
            "{dep}\n{text}"
        );
    }
    let stamp = line_value(
        &text,
        r#"rtm_worker_last_run_timestamp_seconds{worker="reconcile"}"#,
    )
    .expect("stamped");
    assert!(stamp > 1.6e9, "{stamp}");
    assert!(Metrics::content_type().starts_with("text/plain"));
}

#[test]
fn registries_are_independent() {
    let a = Metrics::new().expect("a");
    let b = Metrics::new().expect("b");
    a.lobby_dead_letter();
    let text = b.render().expect("render");
    assert_eq!(line_value(&text, "rtm_lobby_dead_letters_total"), Some(0.0));
}
