//! End-to-end tests of the health monitor (SPEC §7, docs/health.md): the
//! real app watching real engine-stub containers, driven through the
//! stub's control files (`crash`, `unhealthy`, `oom`) and the Docker CLI.
//!
//! Every test checks the three outputs of an observation together: the
//! health snapshot (`GET` runtime `health`), the runtime record, and the
//! `runtime:health_events` stream — exactly the expected change events,
//! each with the SPEC §7 fields — plus the absence of `operation_log` rows
//! for what RTM only *observed*.
//!
//! "Exactly" needs a moment of quiet after the last expected event, which
//! [`settle`] provides without fixed sleeps: it waits until the inspect,
//! probe and relay workers have each completed a few more passes (read
//! from the app's own `rtm_worker_runs_total` metric), so any duplicate
//! the monitor were to produce would be on the stream by then.

mod addressing;
mod exits;
mod listing;
mod operations;
mod passes;
mod probe;
mod resilience;

use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::*;

/// How long a health change may take to show up (probe every 500 ms,
/// inspect every 1 s, relay every 500 ms in the test settings).
const CHANGE: Duration = Duration::from_secs(20);

/// A unique game id (container names are global to the Docker host, and
/// tests run in parallel).
fn game(prefix: &str) -> String {
    rtm_testkit::unique(prefix).replace('_', "-")
}

/// One parsed entry of the health stream. Parsing checks the SPEC §7 shape:
/// every field present, `details` a JSON object, `observed_at` RFC 3339 in
/// UTC, `event_id` a positive integer.
#[derive(Debug, Clone, PartialEq)]
struct HealthEvent {
    stream_id: String,
    event_id: u64,
    game_id: String,
    container_id: String,
    event_type: String,
    source: String,
    details: Value,
    observed_at: OffsetDateTime,
}

impl HealthEvent {
    fn parse(stream_id: String, fields: Vec<(String, String)>) -> Self {
        let get = |name: &str| -> String {
            let found: Vec<&String> = fields
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "entry {stream_id}: field {name} must appear once: {fields:?}"
            );
            found[0].clone()
        };
        let known = [
            "event_id",
            "game_id",
            "container_id",
            "event_type",
            "source",
            "details",
            "observed_at",
        ];
        for (k, _) in &fields {
            assert!(
                known.contains(&k.as_str()),
                "entry {stream_id}: unexpected field {k}"
            );
        }
        let event_id: u64 = get("event_id")
            .parse()
            .unwrap_or_else(|e| panic!("entry {stream_id}: event_id: {e}"));
        assert!(event_id > 0, "entry {stream_id}: event_id {event_id}");
        let details_text = get("details");
        let details: Value = serde_json::from_str(&details_text)
            .unwrap_or_else(|e| panic!("entry {stream_id}: details {details_text:?}: {e}"));
        assert!(
            details.is_object(),
            "entry {stream_id}: details is not a JSON object: {details_text}"
        );
        let observed_text = get("observed_at");
        let observed_at = OffsetDateTime::parse(&observed_text, &Rfc3339)
            .unwrap_or_else(|e| panic!("entry {stream_id}: observed_at {observed_text:?}: {e}"));
        assert!(
            observed_at.offset().is_utc() && observed_text.ends_with('Z'),
            "entry {stream_id}: observed_at not in UTC: {observed_text}"
        );
        let event_type = get("event_type");
        assert!(
            [
                "healthy",
                "probe_failed",
                "exited",
                "oom",
                "inspect_unhealthy",
                "container_disappeared"
            ]
            .contains(&event_type.as_str()),
            "entry {stream_id}: event_type {event_type}"
        );
        let source = get("source");
        assert!(
            ["docker_event", "inspect", "probe"].contains(&source.as_str()),
            "entry {stream_id}: source {source}"
        );
        Self {
            event_id,
            game_id: get("game_id"),
            container_id: get("container_id"),
            event_type,
            source,
            details,
            observed_at,
            stream_id,
        }
    }
}

/// The Redis the app publishes to.
fn redis_url_of(app: &TestApp) -> String {
    app.vars
        .get("RTM_REDIS_URL")
        .cloned()
        .unwrap_or_else(rtm_testkit::redis::redis_url)
}

/// Every entry of the app's health stream (all games), oldest first.
async fn all_events(app: &TestApp) -> Vec<HealthEvent> {
    let client = rtm_testkit::redis::client(&redis_url_of(app)).await;
    let entries = rtm_testkit::redis::xrange(&client, &app.health_stream).await;
    let _ = fred::prelude::ClientLike::quit(&client).await;
    entries
        .into_iter()
        .map(|(id, fields)| HealthEvent::parse(id, fields))
        .collect()
}

/// The stream's entries for `game`, oldest first.
async fn events(app: &TestApp, game: &str) -> Vec<HealthEvent> {
    all_events(app)
        .await
        .into_iter()
        .filter(|e| e.game_id == game)
        .collect()
}

/// The event types of `events`, for readable assertions.
fn types(events: &[HealthEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// Waits until the stream holds an event of `event_type` for `game`;
/// returns the game's events at that point.
async fn wait_event(app: &TestApp, game: &str, event_type: &str) -> Vec<HealthEvent> {
    wait_for(
        &format!("a {event_type} event for {game} on the health stream"),
        CHANGE,
        || async {
            let evs = events(app, game).await;
            evs.iter()
                .any(|e| e.event_type == event_type)
                .then_some(evs)
        },
    )
    .await
}

/// Waits until the runtime's health snapshot has `status`; returns the
/// runtime view.
async fn wait_health(app: &TestApp, game: &str, status: &str) -> Value {
    wait_until(&format!("health {status} for {game}"), CHANGE, || async {
        let (code, v) = app.runtime(game).await;
        if code == 200 && v["health"]["status"] == status {
            Ok(v)
        } else {
            Err(format!("{code} {v}"))
        }
    })
    .await
}

/// Starts `game` on `tag` and waits for its first `healthy` event;
/// returns the runtime view (with the container id).
async fn start_healthy(app: &TestApp, game: &str, tag: &str) -> Value {
    let (status, body) = app.start_game(game, &image(tag)).await;
    assert_eq!(status, 200, "start {game}: {body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    let evs = wait_event(app, game, "healthy").await;
    assert_eq!(types(&evs), ["healthy"], "{evs:#?}");
    let (_, view) = app.runtime(game).await;
    let container = view["container_id"].as_str().expect("container id");
    assert_eq!(evs[0].container_id, container);
    assert_eq!(evs[0].source, "probe");
    view
}

/// Writes a control file of the engine stub into the game's state dir.
fn control(app: &TestApp, game: &str, file: &str, content: &str) {
    let path = app.state_dir(game).join(file);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sums `rtm_worker_runs_total` of `worker` over every result.
async fn worker_runs(app: &TestApp, worker: &str) -> f64 {
    let (status, text) = call_raw("GET", &format!("{}/metrics", app.gm), None, None, &[]).await;
    assert_eq!(status, 200, "metrics: {text}");
    let needle = format!("worker=\"{worker}\"");
    text.lines()
        .filter(|l| l.starts_with("rtm_worker_runs_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the inspect, probe and relay workers each completed at
/// least `passes` more passes: everything the monitor would do about the
/// current state of the engines has been done and published by then.
async fn settle(app: &TestApp, passes: u32) {
    let workers = ["inspect", "probe", "relay"];
    let mut base = Vec::new();
    for w in workers {
        base.push(worker_runs(app, w).await);
    }
    wait_for(
        "the health workers to run a few more passes",
        Duration::from_secs(30),
        || {
            let base = base.clone();
            async move {
                for (w, b) in workers.iter().zip(&base) {
                    if worker_runs(app, w).await < b + f64::from(passes) {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
}

/// `operation_log` kinds of `game`, oldest first.
async fn op_kinds(app: &TestApp, game: &str) -> Vec<String> {
    app.operation_rows(game)
        .await
        .iter()
        .map(|r| r.get::<_, String>("op_kind"))
        .collect()
}

/// Rows still waiting in the outbox (published rows are deleted).
async fn outbox_pending(app: &TestApp) -> i64 {
    let client = app.db.admin_client().await.expect("admin client");
    client
        .query_one("SELECT count(*) FROM health_outbox", &[])
        .await
        .expect("outbox count")
        .get(0)
}

/// Checks that an event describes the runtime's current snapshot.
fn assert_event_matches_snapshot(ev: &HealthEvent, view: &Value) {
    let h = &view["health"];
    assert_eq!(ev.event_type, h["status"], "{ev:#?} vs {view}");
    assert_eq!(ev.source, h["source"], "{ev:#?} vs {view}");
    assert_eq!(ev.container_id, h["container_id"], "{ev:#?} vs {view}");
}

/// `docker <args>`, panicking on failure.
fn docker(args: &[&str]) -> String {
    rtm_testkit::docker::docker(args).unwrap_or_else(|e| panic!("docker {args:?}: {e:#}"))
}
