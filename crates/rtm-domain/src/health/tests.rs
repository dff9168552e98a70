//! Unit tests of the health monitor against the in-memory fakes: one test
//! per rule of SPEC §7 and of the module docs.

use std::time::Duration;

use super::*;
use crate::fakes::{FakePorts, RuntimeCall};
use crate::ports::{
    ContainerEvent, ContainerEventKind, ContainerRuntime, DockerHealth, HealthOutbox,
};
use crate::{DetailValue, ImageRef, ProbeError};

fn game(s: &str) -> GameId {
    GameId::parse(s).unwrap()
}

fn image(tag: &str) -> ImageRef {
    ImageRef::parse(&format!("engine:{tag}")).unwrap()
}

fn config() -> HealthConfig {
    HealthConfig {
        probe_failures: 3,
        ..HealthConfig::default()
    }
}

fn monitor(ports: &FakePorts) -> HealthMonitor<FakePorts> {
    HealthMonitor::new(ports.adapters(), config())
}

/// A game running on a fresh container, a little in the past.
fn running(ports: &FakePorts, name: &str) -> (GameId, ContainerId) {
    let g = game(name);
    let (_, id) = ports.seed_running(&g, &image("1.0.0"));
    ports.clock.advance(Duration::from_secs(10));
    (g, id)
}

fn die_event(ports: &FakePorts, g: &GameId, id: &ContainerId, code: i64) -> ContainerEvent {
    ContainerEvent {
        container_id: id.clone(),
        game_id: Some(g.clone()),
        kind: ContainerEventKind::Die {
            exit_code: Some(code),
        },
        at: ports.clock.now(),
    }
}

fn event_types(ports: &FakePorts) -> Vec<(String, HealthStatus)> {
    ports
        .store
        .events()
        .into_iter()
        .map(|e| (e.snapshot.game_id.to_string(), e.snapshot.status))
        .collect()
}

fn recorded(changed: bool, record: Option<RuntimeStatus>) -> ObserveOutcome {
    ObserveOutcome::Recorded { changed, record }
}

// ------------------------------------------------------------- exits

#[tokio::test]
async fn a_crash_stops_the_record_without_an_operation_row_and_publishes_once() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "crashy");
    let crash_at = ports.clock.now();
    ports.runtime.crash(&id, 3);

    let outcome = m.handle_event(die_event(&ports, &g, &id, 3)).await.unwrap();
    assert_eq!(outcome, Some(recorded(true, Some(RuntimeStatus::Stopped))));

    let record = ports.store.record(&g).unwrap();
    assert_eq!(record.status, RuntimeStatus::Stopped);
    assert_eq!(record.stopped_at, Some(crash_at));
    assert_eq!(record.last_op_at, crash_at);
    assert!(
        ports.store.operations().is_empty(),
        "observed exits write no operation row"
    );
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(
        (snap.status, snap.source),
        (HealthStatus::Exited, HealthSource::DockerEvent)
    );
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(3)));
    assert_eq!(snap.container_id.as_ref(), Some(&id));
    assert_eq!(
        event_types(&ports),
        [("crashy".to_owned(), HealthStatus::Exited)]
    );

    // The same exit seen again (inspect, a replay) changes nothing.
    assert_eq!(
        m.handle_event(die_event(&ports, &g, &id, 3)).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::NotApplicable))
    );
    assert_eq!(m.inspect_pass().await.unwrap().checked, 0);
    assert_eq!(ports.store.events().len(), 1);
}

#[tokio::test]
async fn the_die_of_rtms_own_stop_is_not_an_exit() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "stopped-by-rtm");
    // What the stop operation does under the lock: stop, then record.
    ports
        .runtime
        .stop(&id, Duration::from_secs(30))
        .await
        .unwrap();
    let die = die_event(&ports, &g, &id, 0);
    let mut record = ports.store.record(&g).unwrap();
    record.enter(RuntimeStatus::Stopped, ports.clock.now());
    ports.store.put_record(record.clone());

    assert_eq!(
        m.handle_event(die).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::NotApplicable))
    );
    assert_eq!(ports.store.record(&g), Some(record));
    assert!(ports.store.health(&g).is_none());
    assert!(ports.store.events().is_empty());
}

#[tokio::test]
async fn the_die_of_rtms_own_restart_is_ignored() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "restarted");
    ports
        .runtime
        .stop(&id, Duration::from_secs(1))
        .await
        .unwrap();
    let die = die_event(&ports, &g, &id, 0);
    ports.clock.advance(Duration::from_millis(200));
    ports.runtime.start(&id).await.unwrap();
    let mut record = ports.store.record(&g).unwrap();
    record.enter(RuntimeStatus::Running, ports.clock.now());
    ports.store.put_record(record.clone());

    // The container runs again when the event is handled; the event alone
    // decides (exit code 0), and it predates the restart.
    let inspects = ports.runtime.calls(RuntimeCall::Inspect);
    assert_eq!(
        m.handle_event(die.clone()).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::BeforeStart))
    );
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), inspects);
    // Even if it died again since, that old `die` predates the restart.
    ports.runtime.crash(&id, 1);
    assert_eq!(
        m.handle_event(die).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::BeforeStart))
    );
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );
    assert!(ports.store.events().is_empty());
}

#[tokio::test]
async fn events_of_the_container_a_patch_replaced_are_ignored() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, old) = running(&ports, "patched");
    // The patch replaced `old` by `new` and recorded it.
    let new = ports
        .runtime
        .spawn_running(&g, &image("1.0.1"), "/state/patched");
    let mut record = ports.store.record(&g).unwrap();
    record.container_id = Some(new.clone());
    record.enter(RuntimeStatus::Running, ports.clock.now());
    ports.store.put_record(record);
    ports.clock.advance(Duration::from_secs(1));

    ports.runtime.crash(&old, 0);
    assert_eq!(
        m.handle_event(die_event(&ports, &g, &old, 0))
            .await
            .unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::OtherContainer))
    );
    let destroy = ContainerEvent {
        container_id: old.clone(),
        game_id: Some(g.clone()),
        kind: ContainerEventKind::Destroy,
        at: ports.clock.now(),
    };
    ports.runtime.vanish(&old, false);
    assert_eq!(
        m.handle_event(destroy).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::OtherContainer))
    );
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );
    assert!(ports.store.events().is_empty());
}

#[tokio::test]
async fn an_oom_kill_is_reported_as_oom() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "hungry");
    ports.runtime.oom_kill(&id);
    let oom = ContainerEvent {
        kind: ContainerEventKind::Oom,
        ..die_event(&ports, &g, &id, 137)
    };
    // An `oom` event alone is not an exit.
    assert_eq!(m.handle_event(oom).await.unwrap(), None);
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );

    let outcome = m
        .handle_event(die_event(&ports, &g, &id, 137))
        .await
        .unwrap();
    assert_eq!(outcome, Some(recorded(true, Some(RuntimeStatus::Stopped))));
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(snap.status, HealthStatus::Oom);
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(137)));
}

#[tokio::test]
async fn oom_of_a_vanished_container_needs_the_oom_event() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g1, a) = running(&ports, "gone-after-oom");
    let (g2, b) = running(&ports, "gone-after-kill");
    // Both containers are already removed when their `die` is handled.
    ports.runtime.vanish(&a, false);
    ports.runtime.vanish(&b, false);
    let oom = ContainerEvent {
        kind: ContainerEventKind::Oom,
        ..die_event(&ports, &g1, &a, 137)
    };
    m.handle_event(oom).await.unwrap();
    m.handle_event(die_event(&ports, &g1, &a, 137))
        .await
        .unwrap();
    m.handle_event(die_event(&ports, &g2, &b, 137))
        .await
        .unwrap();
    assert_eq!(ports.store.health(&g1).unwrap().status, HealthStatus::Oom);
    let snap = ports.store.health(&g2).unwrap();
    assert_eq!(
        snap.status,
        HealthStatus::Exited,
        "137 alone is never an OOM"
    );
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(137)));
}

#[tokio::test]
async fn a_sigkill_137_without_oomkilled_is_an_exit() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "killed");
    ports.runtime.crash(&id, 137);
    m.handle_event(die_event(&ports, &g, &id, 137))
        .await
        .unwrap();
    assert_eq!(ports.store.health(&g).unwrap().status, HealthStatus::Exited);

    // The inspect source applies the same rule, one pass later: Docker
    // may still flag the 137 as an OOM kill.
    let (g2, id2) = running(&ports, "killed-unseen");
    ports.runtime.crash(&id2, 137);
    let summary = m.inspect_pass().await.unwrap();
    assert_eq!((summary.checked, summary.changed), (1, 0));
    assert!(
        ports.store.health(&g2).is_none(),
        "not judged at first sight"
    );
    let summary = m.inspect_pass().await.unwrap();
    assert_eq!((summary.checked, summary.changed), (1, 1));
    let snap = ports.store.health(&g2).unwrap();
    assert_eq!(
        (snap.status, snap.source),
        (HealthStatus::Exited, HealthSource::Inspect)
    );
    assert_eq!(
        ports.store.record(&g2).unwrap().status,
        RuntimeStatus::Stopped
    );
}

#[tokio::test]
async fn inspect_reports_oomkilled_as_oom() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "oom-unseen");
    ports.runtime.oom_kill(&id);
    m.inspect_pass().await.unwrap();
    assert_eq!(ports.store.health(&g).unwrap().status, HealthStatus::Oom);
}

#[tokio::test]
async fn inspect_waits_a_pass_for_an_oom_flag_docker_sets_late() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "oom-flagged-late");
    let (crashed, crashed_id) = running(&ports, "crashed");
    ports.runtime.oom_kill_exit_first(&id);
    ports.runtime.crash(&crashed_id, 3);
    m.inspect_pass().await.unwrap();
    assert!(ports.store.health(&g).is_none(), "137 not judged yet");
    assert_eq!(
        ports.store.health(&crashed).unwrap().status,
        HealthStatus::Exited,
        "any other code is judged at once"
    );
    ports.runtime.late_oom(&id, true);
    m.inspect_pass().await.unwrap();
    assert_eq!(ports.store.health(&g).unwrap().status, HealthStatus::Oom);
    assert_eq!(
        event_types(&ports),
        [
            ("crashed".to_owned(), HealthStatus::Exited),
            ("oom-flagged-late".to_owned(), HealthStatus::Oom),
        ]
    );
}

#[tokio::test]
async fn inspect_judges_at_once_a_137_whose_sigkill_the_runtime_reported() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "killed-unseen-die");
    // The `kill` was seen, its `die` missed by the feed.
    m.handle_event(ContainerEvent {
        kind: ContainerEventKind::Kill { signal: Some(9) },
        ..die_event(&ports, &g, &id, 137)
    })
    .await
    .unwrap();
    ports.runtime.crash(&id, 137);
    m.inspect_pass().await.unwrap();
    let snap = ports.store.health(&g).expect("judged at the first pass");
    assert_eq!(snap.status, HealthStatus::Exited);
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(137)));
}

// ------------------------------------------------------------- disappearance

#[tokio::test]
async fn a_destroyed_container_removes_the_record() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "destroyed");
    let destroy = ContainerEvent {
        kind: ContainerEventKind::Destroy,
        ..die_event(&ports, &g, &id, 0)
    };
    ports.runtime.vanish(&id, false);
    assert_eq!(
        m.handle_event(destroy).await.unwrap(),
        Some(recorded(true, Some(RuntimeStatus::Removed)))
    );
    let record = ports.store.record(&g).unwrap();
    assert_eq!(record.status, RuntimeStatus::Removed);
    assert!(record.removed_at.is_some());
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::ContainerDisappeared
    );
    assert!(ports.store.operations().is_empty());

    // A stopped game's container vanishing removes it too.
    let (g2, id2) = running(&ports, "stopped-then-gone");
    let mut r = ports.store.record(&g2).unwrap();
    r.enter(RuntimeStatus::Stopped, ports.clock.now());
    ports.store.put_record(r);
    ports.clock.advance(Duration::from_secs(1));
    let destroy = ContainerEvent {
        kind: ContainerEventKind::Destroy,
        ..die_event(&ports, &g2, &id2, 0)
    };
    assert_eq!(
        m.handle_event(destroy).await.unwrap(),
        Some(recorded(true, Some(RuntimeStatus::Removed)))
    );
}

#[tokio::test]
async fn inspect_finds_a_container_that_vanished_silently() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "silent");
    ports.runtime.vanish(&id, false);
    let summary = m.inspect_pass().await.unwrap();
    assert_eq!(summary.changed, 1);
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Removed
    );
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(
        (snap.status, snap.source),
        (HealthStatus::ContainerDisappeared, HealthSource::Inspect)
    );
}

#[tokio::test]
async fn an_unreachable_docker_skips_the_inspect_pass() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, _) = running(&ports, "unknown");
    ports.runtime.set_unavailable(true);
    let err = m.inspect_pass().await.unwrap_err();
    assert!(
        matches!(err, HealthError::Runtime(RuntimeError::Unavailable(_))),
        "{err:?}"
    );
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );
    assert!(ports.store.health(&g).is_none());
}

// ------------------------------------------------------------- rules

#[tokio::test]
async fn a_busy_game_is_reported_and_nothing_is_written() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "busy");
    ports.runtime.crash(&id, 1);
    let held = ports
        .locks
        .acquire(&g, Duration::from_secs(1))
        .await
        .unwrap();
    let err = m
        .handle_event(die_event(&ports, &g, &id, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HealthError::Busy(ref b) if b == &g),
        "{err:?}"
    );
    let summary = m.inspect_pass().await.unwrap();
    assert_eq!(summary.busy, 1);
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );
    held.release().await;
    // Inspect catches up once the lock is free.
    assert_eq!(m.inspect_pass().await.unwrap().changed, 1);
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Stopped
    );
}

#[tokio::test]
async fn observations_without_a_record_or_before_start_are_ignored() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "known");
    let obs = |status, at| Observation {
        game_id: g.clone(),
        container_id: id.clone(),
        status,
        source: HealthSource::Probe,
        details: HealthDetails::new(),
        observed_at: at,
    };
    let before = ports.store.record(&g).unwrap().started_at.unwrap() - Duration::from_secs(1);
    assert_eq!(
        m.observe(obs(HealthStatus::Healthy, before)).await.unwrap(),
        ObserveOutcome::Ignored(IgnoreReason::BeforeStart)
    );
    let mut unknown = obs(HealthStatus::Healthy, ports.clock.now());
    unknown.game_id = game("nobody");
    assert_eq!(
        m.observe(unknown).await.unwrap(),
        ObserveOutcome::Ignored(IgnoreReason::NoRecord)
    );
    // A late non-terminal result loses against a newer snapshot...
    let now = ports.clock.now();
    m.observe(obs(HealthStatus::ProbeFailed, now))
        .await
        .unwrap();
    assert_eq!(
        m.observe(obs(HealthStatus::Healthy, now - Duration::from_millis(1)))
            .await
            .unwrap(),
        ObserveOutcome::Ignored(IgnoreReason::Outdated)
    );
    // ...but a late exit is never dropped.
    let mut exit = obs(HealthStatus::Exited, now - Duration::from_millis(1));
    exit.source = HealthSource::Inspect;
    assert_eq!(
        m.observe(exit).await.unwrap(),
        recorded(true, Some(RuntimeStatus::Stopped))
    );
    // Probes only count while running.
    assert_eq!(
        m.observe(obs(HealthStatus::Healthy, ports.clock.now()))
            .await
            .unwrap(),
        ObserveOutcome::Ignored(IgnoreReason::NotApplicable)
    );
}

// ------------------------------------------------------------- probes

#[tokio::test]
async fn probe_failures_reach_the_threshold_then_recover() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "flaky");
    let ip = ports
        .runtime
        .container(&id)
        .unwrap()
        .ip
        .unwrap()
        .to_string();

    let s = m.probe_pass().await.unwrap();
    assert_eq!(
        (s.checked, s.changed),
        (1, 1),
        "the first success of a new container is a change"
    );
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );

    ports
        .probe
        .set(&ip, Err(ProbeError("connection refused".into())));
    for _ in 0..2 {
        let s = m.probe_pass().await.unwrap();
        assert_eq!(
            (s.probe_errors, s.recorded),
            (1, 0),
            "below the threshold nothing is recorded"
        );
    }
    let s = m.probe_pass().await.unwrap();
    assert_eq!(s.changed, 1);
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(
        (snap.status, snap.source),
        (HealthStatus::ProbeFailed, HealthSource::Probe)
    );
    assert_eq!(
        snap.details.get("consecutive_failures"),
        Some(&DetailValue::Int(3))
    );
    assert_eq!(
        snap.details.get("error"),
        Some(&DetailValue::Text("connection refused".into()))
    );

    // More failures: no new change.
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.changed, s.coalesced), (0, 1));

    ports.probe.set(&ip, Ok(()));
    let s = m.probe_pass().await.unwrap();
    assert_eq!(s.changed, 1);
    assert_eq!(
        event_types(&ports),
        [
            ("flaky".to_owned(), HealthStatus::Healthy),
            ("flaky".to_owned(), HealthStatus::ProbeFailed),
            ("flaky".to_owned(), HealthStatus::Healthy),
        ]
    );
    // The record never changes for probe results.
    assert_eq!(
        ports.store.record(&g).unwrap().status,
        RuntimeStatus::Running
    );
}

#[tokio::test]
async fn a_failure_streak_is_broken_by_a_success() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "wobbly");
    let ip = ports
        .runtime
        .container(&id)
        .unwrap()
        .ip
        .unwrap()
        .to_string();
    let fail = || Err(ProbeError("timeout".into()));
    for r in [fail(), fail(), Ok(()), fail(), fail()] {
        ports.probe.push(&ip, r);
    }
    for _ in 0..5 {
        m.probe_pass().await.unwrap();
    }
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );
    assert!(ports
        .store
        .events()
        .iter()
        .all(|e| e.snapshot.status == HealthStatus::Healthy));
}

#[tokio::test]
async fn unchanged_observations_are_coalesced_and_published_only_on_change() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, _) = running(&ports, "steady");
    let first = m.probe_pass().await.unwrap();
    assert_eq!(first.changed, 1);
    let written = ports.store.commits().len();
    for _ in 0..3 {
        let s = m.probe_pass().await.unwrap();
        assert_eq!((s.coalesced, s.recorded), (1, 0));
    }
    assert_eq!(
        ports.store.commits().len(),
        written,
        "coalesced: no database write"
    );

    // Past the refresh interval the snapshot is rewritten, but not
    // published, and without the game's lock or a transaction: the pass
    // writes its due refreshes in one conditional store call.
    ports.clock.advance(config().snapshot_refresh);
    let locks = ports.locks.acquisitions();
    let probed_at = ports.clock.now();
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.recorded, s.changed), (1, 0));
    assert_eq!(ports.store.commits().len(), written, "no commit");
    assert_eq!(ports.locks.acquisitions(), locks, "no lock");
    // It carries the probe's time (within the pass's spread).
    let at = ports.store.health(&g).unwrap().observed_at;
    assert!(probed_at <= at && at <= ports.clock.now(), "{at}");
    assert_eq!(ports.store.events().len(), 1);
    // Refreshed: fresh again.
    assert_eq!(m.probe_pass().await.unwrap().coalesced, 1);
}

#[tokio::test]
async fn a_refresh_that_lost_a_race_is_not_written_and_the_next_probe_takes_the_full_path() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, _) = running(&ports, "raced");
    assert_eq!(m.probe_pass().await.unwrap().changed, 1);
    // Another writer (another replica's monitor) recorded a failure since.
    let mut other = ports.store.health(&g).unwrap();
    other.status = HealthStatus::ProbeFailed;
    ports.store.put_health(other.clone());
    ports.clock.advance(config().snapshot_refresh);
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.recorded, s.ignored), (0, 1));
    assert_eq!(ports.store.health(&g), Some(other), "left as it was");
    // The next probe does not trust this monitor's memory any more: the
    // success is a change, committed and published.
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.recorded, s.changed), (1, 1));
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );
}

#[tokio::test]
async fn the_relay_is_woken_once_per_committed_change_and_not_otherwise() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ports = FakePorts::new();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    // Set before cloning: a clone shares the hook (the binary clones the
    // monitor into each worker).
    let m = monitor(&ports)
        .with_relay_wake(RelayWake::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .clone();
    let (g, id) = running(&ports, "wakes");
    assert_eq!(m.probe_pass().await.unwrap().changed, 1);
    assert_eq!(
        wakes.load(Ordering::SeqCst),
        1,
        "a new snapshot is a change"
    );

    // Coalesced and refreshed-but-unchanged observations queue no event.
    m.probe_pass().await.unwrap();
    ports.clock.advance(config().snapshot_refresh);
    assert_eq!(m.probe_pass().await.unwrap().changed, 0);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);

    ports.runtime.crash(&id, 3);
    m.handle_event(die_event(&ports, &g, &id, 3)).await.unwrap();
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(ports.store.events().len(), 2, "one wake per queued event");
}

#[tokio::test]
async fn a_restart_invalidates_coalescing() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "again");
    m.probe_pass().await.unwrap();
    // Another writer (the reconciler) recorded an exit; RTM then restarted
    // the same container: its started_at is new.
    ports.runtime.crash(&id, 1);
    m.inspect_pass().await.unwrap();
    ports.runtime.start(&id).await.unwrap();
    let mut r = ports.store.record(&g).unwrap();
    r.enter(RuntimeStatus::Running, ports.clock.now());
    ports.store.put_record(r);
    ports.clock.advance(Duration::from_secs(1));
    let s = m.probe_pass().await.unwrap();
    assert_eq!(s.changed, 1);
    assert_eq!(
        event_types(&ports)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        [
            HealthStatus::Healthy,
            HealthStatus::Exited,
            HealthStatus::Healthy
        ]
    );
}

#[tokio::test]
async fn probes_prefer_the_container_ip_and_follow_a_new_container() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, old) = running(&ports, "addr");
    m.probe_pass().await.unwrap();
    let first = ports.probe.calls().pop().unwrap();
    assert_eq!(first.ip, ports.runtime.container(&old).unwrap().ip);
    assert_eq!(first.endpoint, "http://rtm-addr:8080");
    assert_eq!(first.port, 8080);

    let new = ports
        .runtime
        .spawn_running(&g, &image("1.0.1"), "/state/addr");
    let mut r = ports.store.record(&g).unwrap();
    r.container_id = Some(new.clone());
    r.enter(RuntimeStatus::Running, ports.clock.now());
    ports.store.put_record(r);
    ports.clock.advance(Duration::from_secs(1));
    let inspects = ports.runtime.calls(RuntimeCall::Inspect);
    let s = m.probe_pass().await.unwrap();
    assert_eq!(s.changed, 1, "a new container's first success is a change");
    assert_eq!(
        ports.probe.calls().pop().unwrap().ip,
        ports.runtime.container(&new).unwrap().ip
    );
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), inspects + 1);
    // Cached afterwards: no inspect per probe.
    m.probe_pass().await.unwrap();
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), inspects + 1);
    assert_eq!(
        ports.runtime.mutating_calls(),
        0,
        "the monitor never acts on Docker"
    );
}

#[tokio::test]
async fn docker_unhealthy_wins_over_probe_successes_until_it_clears() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "docker-says");
    m.probe_pass().await.unwrap();
    ports.runtime.set_health(&id, Some(DockerHealth::Unhealthy));
    ports.clock.advance(Duration::from_secs(1));
    assert_eq!(m.inspect_pass().await.unwrap().changed, 1);
    ports.clock.advance(Duration::from_secs(1));
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.ignored, s.changed), (1, 0));
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::InspectUnhealthy
    );

    ports.runtime.set_health(&id, Some(DockerHealth::Healthy));
    m.inspect_pass().await.unwrap();
    ports.clock.advance(Duration::from_secs(1));
    assert_eq!(m.probe_pass().await.unwrap().changed, 1);
    assert_eq!(
        event_types(&ports)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        [
            HealthStatus::Healthy,
            HealthStatus::InspectUnhealthy,
            HealthStatus::Healthy
        ]
    );
}

#[tokio::test]
async fn a_health_status_event_reports_inspect_unhealthy() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "hc");
    let ev = ContainerEvent {
        kind: ContainerEventKind::Health(DockerHealth::Unhealthy),
        ..die_event(&ports, &g, &id, 0)
    };
    assert_eq!(
        m.handle_event(ev).await.unwrap(),
        Some(recorded(true, None))
    );
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(
        (snap.status, snap.source),
        (HealthStatus::InspectUnhealthy, HealthSource::DockerEvent)
    );
}

// ------------------------------------------------------------- relay

#[tokio::test]
async fn the_relay_publishes_in_order_and_retries_after_a_failure() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    for name in ["r1", "r2", "r3"] {
        let (g, id) = running(&ports, name);
        ports.runtime.crash(&id, 1);
        m.handle_event(die_event(&ports, &g, &id, 1)).await.unwrap();
    }
    assert_eq!(ports.store.pending_count().await.unwrap(), 3);

    // Redis down: nothing goes out, nothing is lost.
    ports.publisher.set_unavailable(true);
    let err = m.relay_once(&ports.publisher).await.unwrap_err();
    assert!(
        matches!(err, RelayError::Publish { published: 0, .. }),
        "{err:?}"
    );
    assert_eq!(ports.store.pending_count().await.unwrap(), 3);
    ports.publisher.set_unavailable(false);

    assert_eq!(m.relay_once(&ports.publisher).await.unwrap(), 3);
    let ids: Vec<i64> = ports.publisher.published().iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(ports.store.pending_count().await.unwrap(), 0);
    assert_eq!(m.relay_once(&ports.publisher).await.unwrap(), 0);
}

/// Fails exactly the `n`-th publish (1-based), delegating the rest.
struct FailNth {
    inner: crate::fakes::FakePublisher,
    n: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl crate::ports::HealthPublisher for FailNth {
    async fn publish(&self, event: &crate::HealthEvent) -> Result<(), crate::PublishError> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if call == self.n {
            return Err(crate::PublishError("XADD failed".into()));
        }
        self.inner.publish(event).await
    }
}

#[tokio::test]
async fn the_relay_stops_at_the_first_failure_keeping_order() {
    let ports = FakePorts::new();
    // Small batches: the relay drains batch after batch.
    let m = HealthMonitor::new(
        ports.adapters(),
        HealthConfig {
            relay_batch: 2,
            ..config()
        },
    );
    for name in ["o1", "o2", "o3", "o4", "o5"] {
        let (g, id) = running(&ports, name);
        ports.runtime.crash(&id, 1);
        m.handle_event(die_event(&ports, &g, &id, 1)).await.unwrap();
    }
    let publisher = FailNth {
        inner: ports.publisher.clone(),
        n: 3,
        calls: Default::default(),
    };
    let err = m.relay_once(&publisher).await.unwrap_err();
    assert!(
        matches!(err, RelayError::Publish { published: 2, .. }),
        "{err:?}"
    );
    assert_eq!(ports.store.pending_count().await.unwrap(), 3);
    assert_eq!(m.relay_once(&publisher).await.unwrap(), 3);
    let games: Vec<String> = ports
        .publisher
        .published()
        .iter()
        .map(|e| e.snapshot.game_id.to_string())
        .collect();
    assert_eq!(
        games,
        ["o1", "o2", "o3", "o4", "o5"],
        "in commit order, none twice"
    );
}

// ------------------------------------------------------------- follower

/// Yields to the follower task until `cond` holds (bounded).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_follower_inspects_after_every_connection() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    // Crashed before the follower started: only inspect can see it.
    let (early, early_id) = running(&ports, "early");
    ports.runtime.crash(&early_id, 2);
    let (g, id) = running(&ports, "late");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let m = m.clone();
        tokio::spawn(async move {
            m.follow_events(async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    until("the first inspect pass", || {
        ports.store.record(&early).map(|r| r.status) == Some(RuntimeStatus::Stopped)
    })
    .await;
    assert_eq!(ports.runtime.subscribers(), 1);

    ports.clock.advance(Duration::from_millis(300));
    ports.runtime.crash(&id, 9);
    until("the die event", || ports.store.health(&g).is_some()).await;

    // The connection breaks and comes back; meanwhile a container
    // vanished without a word (its `destroy` lost): the inspect pass the
    // follower runs on every `Connected` finds it.
    let (gone, gone_id) = running(&ports, "gone-while-lost");
    ports.runtime.vanish(&gone_id, false);
    ports.runtime.break_feeds();
    until("the inspect pass after reconnecting", || {
        ports.store.health(&gone).is_some()
    })
    .await;
    ports.clock.advance(Duration::from_secs(1));
    let (g2, id2) = running(&ports, "after");
    ports.runtime.crash(&id2, 4);
    until("the event after reconnecting", || {
        ports.store.health(&g2).is_some()
    })
    .await;

    stop_tx.send(()).unwrap();
    let stats = follower.await.unwrap();
    assert_eq!(stats.subscriptions, 2);
    assert_eq!(
        event_types(&ports),
        [
            ("early".to_owned(), HealthStatus::Exited),
            ("late".to_owned(), HealthStatus::Exited),
            (
                "gone-while-lost".to_owned(),
                HealthStatus::ContainerDisappeared
            ),
            ("after".to_owned(), HealthStatus::Exited),
        ],
        "each change published exactly once"
    );
}

/// Runs the follower until `stop` is sent; returns its join handle.
fn follow(
    m: &HealthMonitor<FakePorts>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<EventFollowerStats>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let m = m.clone();
    let follower = tokio::spawn(async move {
        m.follow_events(async {
            let _ = stop_rx.await;
        })
        .await
    });
    (stop_tx, follower)
}

#[tokio::test]
async fn an_oom_event_just_after_its_die_makes_it_an_oom_not_an_exit() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "oom-exit-first");
    let (stop, follower) = follow(&m);
    until("the subscription", || ports.runtime.subscribers() == 1).await;
    // `die` then `oom`, and `OOMKilled` never set: only holding the die
    // until the `oom` arrives tells an OOM kill.
    ports.runtime.oom_kill_exit_first(&id);
    ports.runtime.late_oom(&id, false);
    until("the judgement", || ports.store.health(&g).is_some()).await;
    stop.send(()).unwrap();
    follower.await.unwrap();
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(snap.status, HealthStatus::Oom);
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(137)));
    assert_eq!(
        event_types(&ports),
        [("oom-exit-first".to_owned(), HealthStatus::Oom)],
        "never an exited for the same death"
    );
}

#[tokio::test]
async fn a_held_sigkill_is_an_exit_after_the_grace_and_keeps_its_order() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (killed, killed_id) = running(&ports, "sigkilled");
    let (_, removed_id) = running(&ports, "killed-then-removed");
    let (stop, follower) = follow(&m);
    until("the subscription", || ports.runtime.subscribers() == 1).await;
    // `docker rm -f`: die 137, then destroy at once; the held die is
    // judged before the destroy.
    ports.runtime.crash(&removed_id, 137);
    ports.runtime.vanish(&removed_id, true);
    // A plain SIGKILL: judged once the grace is over (the fake clock
    // moves on with the follower's sleep).
    ports.runtime.crash(&killed_id, 137);
    until("the kill judged", || ports.store.health(&killed).is_some()).await;
    stop.send(()).unwrap();
    follower.await.unwrap();
    assert_eq!(
        ports.store.health(&killed).unwrap().status,
        HealthStatus::Exited
    );
    assert_eq!(
        event_types(&ports),
        [
            ("killed-then-removed".to_owned(), HealthStatus::Exited),
            (
                "killed-then-removed".to_owned(),
                HealthStatus::ContainerDisappeared
            ),
            ("sigkilled".to_owned(), HealthStatus::Exited),
        ]
    );
    assert!(
        ports.clock.sleeps().contains(&config().kill_grace),
        "held for the grace: {:?}",
        ports.clock.sleeps()
    );
}

#[tokio::test]
async fn a_sigkill_the_runtime_sent_is_an_exit_at_once_in_either_order() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (killed, killed_id) = running(&ports, "docker-killed");
    let (late, late_id) = running(&ports, "kill-reported-late");
    let inspects = || ports.runtime.calls(RuntimeCall::Inspect);
    let (stop, follower) = follow(&m);
    until("the subscription", || ports.runtime.subscribers() == 1).await;
    until("the inspect pass after subscribing", || {
        ports.runtime.calls(RuntimeCall::List) > 0
    })
    .await;
    let before = inspects();
    // `docker kill`: `kill` (signal 9), then `die` 137: explained.
    ports.runtime.docker_kill(&killed_id);
    until("the kill judged", || ports.store.health(&killed).is_some()).await;
    assert!(
        !ports.clock.sleeps().contains(&config().kill_grace),
        "nothing was held for the grace: {:?}",
        ports.clock.sleeps()
    );
    // Docker reporting the `die` of its own SIGKILL before the `kill`:
    // held, and judged as soon as the `kill` arrives.
    ports.runtime.crash(&late_id, 137);
    ports.runtime.signal(&late_id, 9);
    until("the late kill judged", || {
        ports.store.health(&late).is_some()
    })
    .await;
    stop.send(()).unwrap();
    follower.await.unwrap();
    assert_eq!(
        event_types(&ports),
        [
            ("docker-killed".to_owned(), HealthStatus::Exited),
            ("kill-reported-late".to_owned(), HealthStatus::Exited),
        ]
    );
    for g in [&killed, &late] {
        let snap = ports.store.health(g).unwrap();
        assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(137)));
    }
    // The held `die` was judged by the `kill`, not by an inspect once the
    // grace was over.
    assert_eq!(inspects(), before, "explained exits need no inspect");
}

#[tokio::test]
async fn a_sigkill_signal_other_than_9_or_an_oom_is_not_taken_for_an_explanation() {
    let ports = FakePorts::new();
    let m = monitor(&ports);

    // A stop's SIGTERM (15) explains nothing: a 137 after it is inspected.
    let (g1, c1) = running(&ports, "termed");
    ports.runtime.signal(&c1, 15);
    ports.runtime.oom_kill(&c1);
    m.handle_event(ContainerEvent {
        kind: ContainerEventKind::Kill { signal: Some(15) },
        ..die_event(&ports, &g1, &c1, 137)
    })
    .await
    .unwrap();
    let before = ports.runtime.calls(RuntimeCall::Inspect);
    m.handle_event(die_event(&ports, &g1, &c1, 137))
        .await
        .unwrap();
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), before + 1);
    assert_eq!(ports.store.health(&g1).unwrap().status, HealthStatus::Oom);

    // An `oom` and the runtime's SIGKILL both near the `die`: Docker's
    // word on OOM wins.
    let (g2, c2) = running(&ports, "both");
    let kill = ContainerEvent {
        kind: ContainerEventKind::Kill { signal: Some(9) },
        ..die_event(&ports, &g2, &c2, 137)
    };
    let oom = ContainerEvent {
        kind: ContainerEventKind::Oom,
        ..die_event(&ports, &g2, &c2, 137)
    };
    m.handle_event(kill).await.unwrap();
    m.handle_event(oom).await.unwrap();
    ports.runtime.crash(&c2, 137);
    m.handle_event(die_event(&ports, &g2, &c2, 137))
        .await
        .unwrap();
    assert_eq!(ports.store.health(&g2).unwrap().status, HealthStatus::Oom);

    // A SIGKILL sent long before (outside the window) explains nothing.
    let (g3, c3) = running(&ports, "long-ago");
    m.handle_event(ContainerEvent {
        kind: ContainerEventKind::Kill { signal: Some(9) },
        ..die_event(&ports, &g3, &c3, 137)
    })
    .await
    .unwrap();
    ports
        .clock
        .advance(config().oom_window + Duration::from_secs(1));
    ports.runtime.crash(&c3, 137);
    let before = ports.runtime.calls(RuntimeCall::Inspect);
    m.handle_event(die_event(&ports, &g3, &c3, 137))
        .await
        .unwrap();
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), before + 1);
    assert_eq!(
        ports.store.health(&g3).unwrap().status,
        HealthStatus::Exited
    );
}

#[tokio::test]
async fn a_feed_lost_while_docker_is_down_is_caught_up_when_it_is_back() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "crashed-while-down");
    let (stop, follower) = follow(&m);
    until("the subscription", || ports.runtime.subscribers() == 1).await;
    until("the first inspect pass", || {
        ports.runtime.calls(RuntimeCall::List) >= 1
    })
    .await;
    ports.runtime.set_unavailable(true);
    // The engine exits while Docker cannot be asked; its `die` is lost.
    ports.runtime.crash(&id, 2);
    let lists = ports.runtime.calls(RuntimeCall::List);
    ports.runtime.set_unavailable(false);
    until("the exit found by the pass after reconnecting", || {
        ports.store.health(&g).is_some()
    })
    .await;
    stop.send(()).unwrap();
    let stats = follower.await.unwrap();
    assert_eq!(stats.subscriptions, 2, "{stats:?}");
    assert!(ports.runtime.calls(RuntimeCall::List) > lists);
    assert_eq!(ports.store.health(&g).unwrap().status, HealthStatus::Exited);
    assert_eq!(
        event_types(&ports),
        [("crashed-while-down".to_owned(), HealthStatus::Exited)],
        "published once"
    );
}

// ------------------------------------------------------------- plumbing

#[test]
fn the_monitors_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let obs = Observation {
        game_id: game("g"),
        container_id: ContainerId::new("c").unwrap(),
        status: HealthStatus::Healthy,
        source: HealthSource::Probe,
        details: HealthDetails::new(),
        observed_at: ports.clock.now(),
    };
    send(m.observe(obs));
    send(m.inspect_pass());
    send(m.probe_pass());
    send(m.relay_once(&ports.publisher));
    send(m.follow_events(std::future::pending()));
    let ev = ContainerEvent {
        container_id: ContainerId::new("c").unwrap(),
        game_id: None,
        kind: ContainerEventKind::Start,
        at: ports.clock.now(),
    };
    send(m.handle_event(ev));
}

// ------------------------------------------------------------- with the operations service

#[tokio::test]
async fn rtms_own_operations_never_look_like_exits() {
    use crate::service::{OperationRequest, RuntimeService, ServiceConfig};
    use crate::transition::Command;

    let ports = FakePorts::new();
    let v1 = ImageRef::parse("rtm.local/engine-stub:1.0.0").unwrap();
    let v101 = ImageRef::parse("rtm.local/engine-stub:1.0.1").unwrap();
    ports.runtime.add_image(&v1.to_string());
    ports.runtime.add_image(&v101.to_string());
    let svc = RuntimeService::new(
        ports.adapters(),
        ServiceConfig {
            allowlist: crate::Allowlist::parse("rtm.local/*").unwrap(),
            lock_wait: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(30),
            patch_health_timeout: Duration::from_secs(60),
            patch_probe_interval: Duration::from_millis(500),
            engine_port: 8080,
            state_root: "/var/lib/rtmanager/games".into(),
            network: "rtm-engines".into(),
        },
    );
    let m = monitor(&ports);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let m = m.clone();
        tokio::spawn(async move {
            m.follow_events(async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    until("the subscription", || ports.runtime.subscribers() == 1).await;
    let g = game("own-ops");
    let run = |command| {
        let svc = &svc;
        let g = g.clone();
        async move {
            let out = svc
                .execute(OperationRequest::new(g, command, crate::OpSource::GmRest))
                .await
                .unwrap();
            assert!(out.succeeded(), "{out:?}");
        }
    };
    // After each operation the follower catches up before the next one,
    // so each operation's own events are judged against its own record.
    for command in [
        Command::Start { image: v1.clone() },
        Command::Restart,
        Command::Stop,
        Command::Start { image: v1.clone() },
        Command::Patch { image: v101 },
    ] {
        ports.clock.advance(Duration::from_secs(1));
        run(command).await;
        until("the follower", || ports.runtime.undelivered() == 0).await;
        assert!(
            ports.store.events().is_empty(),
            "{:?}",
            ports.store.events()
        );
    }
    let record = ports.store.record(&g).unwrap();
    assert_eq!(record.status, RuntimeStatus::Running);

    // Now a real crash: the follower handles events in order, so once it
    // is recorded every event of the operations above has been judged.
    ports.clock.advance(Duration::from_secs(1));
    let current = record.container_id.unwrap();
    ports.runtime.crash(&current, 5);
    until("the crash", || {
        ports.store.record(&g).map(|r| r.status) == Some(RuntimeStatus::Stopped)
    })
    .await;
    stop_tx.send(()).unwrap();
    let stats = follower.await.unwrap();
    assert!(stats.handled >= 8 && stats.failed == 0, "{stats:?}");
    assert_eq!(
        event_types(&ports),
        [("own-ops".to_owned(), HealthStatus::Exited)],
        "only the crash is an exit"
    );
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(snap.container_id.as_ref(), Some(&current));
    assert_eq!(snap.details.get("exit_code"), Some(&DetailValue::Int(5)));
}

#[tokio::test]
async fn passes_page_through_every_running_record() {
    let ports = FakePorts::new();
    let m = HealthMonitor::new(
        ports.adapters(),
        HealthConfig {
            page_size: 2,
            probe_concurrency: 2,
            ..config()
        },
    );
    for i in 0..5 {
        running(&ports, &format!("paged-{i}"));
    }
    // A stopped game is not looked at.
    let (stopped, _) = running(&ports, "paged-stopped");
    let mut r = ports.store.record(&stopped).unwrap();
    r.enter(RuntimeStatus::Stopped, ports.clock.now());
    ports.store.put_record(r);

    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.checked, s.changed), (5, 5));
    assert_eq!(ports.probe.calls().len(), 5);
    assert_eq!(m.inspect_pass().await.unwrap().checked, 5);
    // The probes were spread over the window, not fired at once.
    assert!(ports.clock.sleeps().iter().any(|d| *d > Duration::ZERO));
}

#[tokio::test]
async fn an_inspect_pass_over_healthy_games_is_one_list_and_inspects_only_changes() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let ids: Vec<(GameId, ContainerId)> = (0..10)
        .map(|i| running(&ports, &format!("many-{i}")))
        .collect();
    let (lists, inspects) = (
        ports.runtime.calls(RuntimeCall::List),
        ports.runtime.calls(RuntimeCall::Inspect),
    );
    let s = m.inspect_pass().await.unwrap();
    assert_eq!((s.checked, s.changed), (10, 0));
    assert_eq!(ports.runtime.calls(RuntimeCall::List), lists + 1);
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), inspects);

    // Three changes the event stream missed (no follower runs here): an
    // exit, an OOM kill and a container removed behind RTM's back.
    ports.runtime.crash(&ids[1].1, 3);
    ports.runtime.oom_kill(&ids[2].1);
    ports.runtime.vanish(&ids[3].1, false);
    ports.clock.advance(Duration::from_secs(1));
    let s = m.inspect_pass().await.unwrap();
    assert_eq!(s.changed, 3, "{s:?}");
    assert_eq!(ports.runtime.calls(RuntimeCall::List), lists + 2);
    assert_eq!(
        ports.runtime.calls(RuntimeCall::Inspect),
        inspects + 3,
        "one inspect per change, none for the seven healthy games"
    );
    let mut changes = event_types(&ports);
    changes.sort();
    assert_eq!(
        changes,
        [
            ("many-1".to_owned(), HealthStatus::Exited),
            ("many-2".to_owned(), HealthStatus::Oom),
            ("many-3".to_owned(), HealthStatus::ContainerDisappeared),
        ]
    );
    let exit = ports.store.health(&ids[1].0).unwrap();
    assert_eq!(exit.details.get("exit_code"), Some(&DetailValue::Int(3)));
    assert_eq!(
        ports.store.record(&ids[2].0).unwrap().status,
        RuntimeStatus::Stopped
    );
    assert_eq!(
        ports.store.record(&ids[3].0).unwrap().status,
        RuntimeStatus::Removed
    );
}

#[tokio::test]
async fn docker_unhealthy_is_seen_in_the_list_without_an_inspect() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let (g, id) = running(&ports, "listed-unhealthy");
    ports.runtime.set_health(&id, Some(DockerHealth::Unhealthy));
    let inspects = ports.runtime.calls(RuntimeCall::Inspect);
    let s = m.inspect_pass().await.unwrap();
    assert_eq!(s.changed, 1);
    assert_eq!(ports.runtime.calls(RuntimeCall::Inspect), inspects);
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::InspectUnhealthy
    );
}

#[tokio::test]
async fn a_probe_follows_a_moved_address_and_counts_failures_per_address() {
    let ports = FakePorts::new();
    let m = HealthMonitor::new(
        ports.adapters(),
        HealthConfig {
            probe_failures: 2,
            ..config()
        },
    );
    let (g, id) = running(&ports, "mover");
    let old = ports.runtime.container(&id).unwrap().ip.unwrap();
    m.probe_pass().await.unwrap();
    assert_eq!(ports.probe.calls().pop().unwrap().ip, Some(old));

    // The engine moves (restart, reconnect); another game's engine, which
    // fails, now answers at the old address.
    let new: IpAddr = "10.99.0.1".parse().unwrap();
    ports.runtime.readdress(&id, new);
    ports.probe.set(
        &old.to_string(),
        Err(ProbeError("404 at the old address".into())),
    );
    for _ in 0..3 {
        ports.clock.advance(Duration::from_secs(5));
        m.probe_pass().await.unwrap();
        assert_eq!(ports.probe.calls().pop().unwrap().ip, Some(new));
    }
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );

    // One failure at the old address, then a move: the count starts again.
    ports.runtime.readdress(&id, old);
    ports.clock.advance(Duration::from_secs(5));
    m.probe_pass().await.unwrap();
    ports.runtime.readdress(&id, new);
    ports
        .probe
        .set(&new.to_string(), Err(ProbeError("404 for real".into())));
    ports.clock.advance(Duration::from_secs(5));
    m.probe_pass().await.unwrap();
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );
    // A second failure at the current address is the real thing.
    ports.clock.advance(Duration::from_secs(5));
    let s = m.probe_pass().await.unwrap();
    assert_eq!(s.changed, 1);
    let snap = ports.store.health(&g).unwrap();
    assert_eq!(snap.status, HealthStatus::ProbeFailed);
    assert_eq!(
        snap.details.get("error"),
        Some(&DetailValue::Text("404 for real".into()))
    );
}

#[tokio::test]
async fn a_failure_is_not_committed_when_the_container_left_the_probed_address() {
    let ports = FakePorts::new();
    let m = HealthMonitor::new(
        ports.adapters(),
        HealthConfig {
            probe_failures: 1,
            ..config()
        },
    );
    let (g, id) = running(&ports, "left");
    m.probe_pass().await.unwrap();
    let events = ports.store.events().len();
    let ip = ports.runtime.container(&id).unwrap().ip.unwrap();
    ports
        .probe
        .set(&ip.to_string(), Err(ProbeError("timed out".into())));
    // The container leaves that address between the list and the check.
    ports.runtime.fail_next(
        RuntimeCall::Inspect,
        RuntimeError::NotFound("gone meanwhile".into()),
    );
    ports.clock.advance(Duration::from_secs(5));
    let s = m.probe_pass().await.unwrap();
    assert_eq!((s.probe_errors, s.ignored, s.changed), (1, 1, 0), "{s:?}");
    assert_eq!(ports.store.events().len(), events);
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::Healthy
    );
    // Still there and still failing next pass: now it is reported.
    ports.clock.advance(Duration::from_secs(5));
    assert_eq!(m.probe_pass().await.unwrap().changed, 1);
    assert_eq!(
        ports.store.health(&g).unwrap().status,
        HealthStatus::ProbeFailed
    );
}

#[tokio::test]
async fn a_die_is_judged_from_the_events_and_only_an_unexplained_137_is_inspected() {
    let ports = FakePorts::new();
    let m = monitor(&ports);
    let inspects = || ports.runtime.calls(RuntimeCall::Inspect);

    // A plain exit: the event's code, no inspect.
    let (g1, c1) = running(&ports, "plain");
    ports.runtime.crash(&c1, 2);
    let before = inspects();
    assert!(matches!(
        m.handle_event(die_event(&ports, &g1, &c1, 2))
            .await
            .unwrap(),
        Some(ObserveOutcome::Recorded { changed: true, .. })
    ));
    assert_eq!(inspects(), before);
    assert_eq!(
        ports.store.health(&g1).unwrap().status,
        HealthStatus::Exited
    );

    // An OOM kill: `oom` then `die` 137, no inspect.
    let (g2, c2) = running(&ports, "oom");
    ports.runtime.oom_kill(&c2);
    let at = ports.clock.now();
    m.handle_event(ContainerEvent {
        container_id: c2.clone(),
        game_id: Some(g2.clone()),
        kind: ContainerEventKind::Oom,
        at,
    })
    .await
    .unwrap();
    m.handle_event(die_event(&ports, &g2, &c2, 137))
        .await
        .unwrap();
    assert_eq!(inspects(), before);
    assert_eq!(ports.store.health(&g2).unwrap().status, HealthStatus::Oom);

    // An OOM kill whose `oom` event was missed: 137 alone is inspected,
    // and `OOMKilled` makes it an OOM.
    let (g3, c3) = running(&ports, "oom-missed");
    ports.runtime.oom_kill(&c3);
    m.handle_event(die_event(&ports, &g3, &c3, 137))
        .await
        .unwrap();
    assert_eq!(inspects(), before + 1);
    assert_eq!(ports.store.health(&g3).unwrap().status, HealthStatus::Oom);

    // A SIGKILL: 137, inspected, and an exit, never an OOM.
    let (g4, c4) = running(&ports, "killed");
    ports.runtime.crash(&c4, 137);
    m.handle_event(die_event(&ports, &g4, &c4, 137))
        .await
        .unwrap();
    assert_eq!(inspects(), before + 2);
    assert_eq!(
        ports.store.health(&g4).unwrap().status,
        HealthStatus::Exited
    );

    // A 137 of a container running again (restarted since): ignored.
    let (g5, c5) = running(&ports, "back");
    let die = die_event(&ports, &g5, &c5, 137);
    assert_eq!(
        m.handle_event(die).await.unwrap(),
        Some(ObserveOutcome::Ignored(IgnoreReason::Restarted))
    );

    // Each change was published once; the inspect pass after them finds
    // the records stopped and adds nothing.
    let published = ports.store.events().len();
    assert_eq!(published, 4);
    m.inspect_pass().await.unwrap();
    assert_eq!(ports.store.events().len(), published);
}
