//! Unit tests of the operations service and the reconciler, with the
//! in-memory fakes of every port (`crate::fakes`).

use std::time::Duration;

use crate::fakes::{FakePorts, RuntimeCall};
use crate::ports::{Clock, ContainerRuntime};
use crate::service::{
    OperationError, OperationOutcome, OperationRequest, RuntimeService, ServiceConfig,
};
use crate::transition::Command;
use crate::{
    Allowlist, ContainerId, ErrorCode, GameId, HealthStatus, ImageRef, OpKind, OpSource, Outcome,
    ProbeError, RuntimeError, RuntimeStatus,
};

const V1: &str = "rtm.local/engine-stub:1.0.0";
const V101: &str = "rtm.local/engine-stub:1.0.1";
const V110: &str = "rtm.local/engine-stub:1.1.0";
const V2: &str = "rtm.local/engine-stub:2.0.0";

fn img(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

fn game(s: &str) -> GameId {
    GameId::parse(s).unwrap()
}

fn config() -> ServiceConfig {
    ServiceConfig {
        allowlist: Allowlist::parse("rtm.local/*").unwrap(),
        lock_wait: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(30),
        patch_health_timeout: Duration::from_secs(60),
        patch_probe_interval: Duration::from_millis(500),
        engine_port: 8080,
        state_root: "/var/lib/rtmanager/games".into(),
        network: "rtm-engines".into(),
    }
}

struct Harness {
    fakes: FakePorts,
    svc: RuntimeService<FakePorts>,
}

impl Harness {
    fn new() -> Self {
        let fakes = FakePorts::new();
        for i in [V1, V101, V110, V2] {
            fakes.runtime.add_image(&img(i).to_string());
        }
        let svc = RuntimeService::new(fakes.adapters(), config());
        Self { fakes, svc }
    }

    async fn run(&self, g: &str, command: Command) -> OperationOutcome {
        self.svc
            .execute(OperationRequest::new(game(g), command, OpSource::GmRest))
            .await
            .expect("operation recorded")
    }

    async fn start(&self, g: &str, image: &str) -> OperationOutcome {
        self.run(g, Command::Start { image: img(image) }).await
    }

    /// Brings `g` into `status` through the service itself.
    async fn bring(&self, g: &str, status: Option<RuntimeStatus>) {
        let Some(status) = status else { return };
        assert!(self.start(g, V1).await.succeeded());
        if status != RuntimeStatus::Running {
            assert!(self.run(g, Command::Stop).await.succeeded());
        }
        if status == RuntimeStatus::Removed {
            assert!(self.run(g, Command::Cleanup).await.succeeded());
        }
    }

    fn status(&self, g: &str) -> Option<RuntimeStatus> {
        self.fakes.store.record(&game(g)).map(|r| r.status)
    }

    fn running_containers(&self, g: &str) -> Vec<ContainerId> {
        self.fakes
            .runtime
            .containers()
            .into_iter()
            .filter(|c| c.summary.game_id.as_ref() == Some(&game(g)) && c.summary.running)
            .map(|c| c.summary.id)
            .collect()
    }

    fn ops(&self) -> Vec<crate::OperationEntry> {
        self.fakes.store.operations()
    }
}

/// One cell of SPEC §4 through the service: from `from`, run `command`,
/// expect `want` (Ok(status after) or Err(error code)).
async fn check(
    from: Option<RuntimeStatus>,
    command: Command,
    want: Result<RuntimeStatus, ErrorCode>,
) {
    let h = Harness::new();
    h.bring("g", from).await;
    let rows_before = h.ops().len();
    let before = h.fakes.store.record(&game("g"));
    let out = h.run("g", command.clone()).await;
    assert_eq!(
        h.ops().len(),
        rows_before + 1,
        "exactly one row for {from:?} {command:?}"
    );
    match want {
        Ok(status) => {
            assert!(out.succeeded(), "{from:?} {command:?}: {:?}", out.error());
            assert_eq!(h.status("g"), Some(status), "{from:?} {command:?}");
            let rec = h.fakes.store.record(&game("g")).unwrap();
            assert!(before
                .as_ref()
                .is_none_or(|b| rec.last_op_at >= b.last_op_at));
            assert_eq!(
                h.running_containers("g").len(),
                usize::from(status == RuntimeStatus::Running)
            );
        }
        Err(code) => {
            assert_eq!(
                out.error().map(|e| e.code),
                Some(code),
                "{from:?} {command:?}"
            );
            assert_eq!(
                h.fakes.store.record(&game("g")),
                before,
                "a refusal changes nothing"
            );
        }
    }
}

#[tokio::test]
async fn every_cell_of_the_state_table_through_the_service() {
    use RuntimeStatus::*;
    let same = || Command::Start { image: img(V1) };
    let other = || Command::Start { image: img(V2) };
    let patch = || Command::Patch { image: img(V101) };

    check(None, same(), Ok(Running)).await;
    check(None, Command::Stop, Err(ErrorCode::NotFound)).await;
    check(None, Command::Restart, Err(ErrorCode::NotFound)).await;
    check(None, patch(), Err(ErrorCode::NotFound)).await;
    check(None, Command::Cleanup, Err(ErrorCode::NotFound)).await;

    check(Some(Running), same(), Ok(Running)).await;
    check(Some(Running), other(), Err(ErrorCode::AlreadyRunning)).await;
    check(Some(Running), Command::Stop, Ok(Stopped)).await;
    check(Some(Running), Command::Restart, Ok(Running)).await;
    check(Some(Running), patch(), Ok(Running)).await;
    check(Some(Running), Command::Cleanup, Err(ErrorCode::Conflict)).await;

    check(Some(Stopped), same(), Ok(Running)).await;
    check(Some(Stopped), other(), Ok(Running)).await;
    check(Some(Stopped), Command::Stop, Ok(Stopped)).await;
    check(Some(Stopped), Command::Restart, Ok(Running)).await;
    check(Some(Stopped), patch(), Err(ErrorCode::Conflict)).await;
    check(Some(Stopped), Command::Cleanup, Ok(Removed)).await;

    check(Some(Removed), same(), Ok(Running)).await;
    check(Some(Removed), Command::Stop, Ok(Removed)).await;
    check(Some(Removed), Command::Restart, Err(ErrorCode::Conflict)).await;
    check(Some(Removed), patch(), Err(ErrorCode::Conflict)).await;
    check(Some(Removed), Command::Cleanup, Ok(Removed)).await;
}

#[tokio::test]
async fn start_creates_a_labelled_container_and_records_it() {
    let h = Harness::new();
    let out = h.start("chess-1", V1).await;
    assert!(out.succeeded());
    let rec = out.record.clone().unwrap();
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.engine_endpoint, "http://rtm-chess-1:8080");
    assert_eq!(rec.state_path, "/var/lib/rtmanager/games/chess-1");
    assert_eq!(rec.docker_network, "rtm-engines");
    assert_eq!(rec.image_ref, Some(img(V1)));
    let id = rec.container_id.clone().unwrap();
    let info = h.fakes.runtime.container(&id).unwrap();
    assert_eq!(info.summary.name, "rtm-chess-1");
    assert!(info.summary.running);
    let op = &out.operation;
    assert_eq!(
        (op.kind, op.source, op.outcome),
        (OpKind::Start, OpSource::GmRest, Outcome::Success)
    );
    assert_eq!(op.container_id.as_ref(), Some(&id));
    assert_eq!(op.image_ref, Some(img(V1).to_string()));
    assert!(op.finished_at.is_some());
}

#[tokio::test]
async fn start_of_the_same_image_while_running_touches_nothing() {
    let h = Harness::new();
    h.start("g", V1).await;
    let mutations = h.fakes.runtime.mutating_calls();
    assert!(h.start("g", V1).await.succeeded());
    assert_eq!(h.fakes.runtime.mutating_calls(), mutations);
}

#[tokio::test]
async fn a_no_op_moves_only_last_op_at() {
    let h = Harness::new();
    let rec = |h: &Harness| h.fakes.store.record(&game("g")).unwrap();
    let tick = |h: &Harness| h.fakes.clock.advance(Duration::from_secs(1));
    h.start("g", V1).await;
    tick(&h);
    let before = rec(&h);
    assert!(h.start("g", V1).await.succeeded());
    let after = rec(&h);
    assert!(after.last_op_at > before.last_op_at);
    assert_eq!(after.started_at, before.started_at, "no-op start");
    tick(&h);
    assert!(h.run("g", Command::Stop).await.succeeded());
    tick(&h);
    let before = rec(&h);
    assert!(h.run("g", Command::Stop).await.succeeded());
    let after = rec(&h);
    assert!(after.last_op_at > before.last_op_at);
    assert_eq!(after.stopped_at, before.stopped_at, "no-op stop");
    tick(&h);
    assert!(h.run("g", Command::Cleanup).await.succeeded());
    tick(&h);
    let before = rec(&h);
    for command in [Command::Stop, Command::Cleanup] {
        assert!(h.run("g", command).await.succeeded());
    }
    let after = rec(&h);
    assert!(after.last_op_at > before.last_op_at);
    assert_eq!(after.removed_at, before.removed_at, "no-op stop/cleanup");
    assert_eq!(
        (after.started_at, after.stopped_at),
        (before.started_at, before.stopped_at)
    );
}

#[tokio::test]
async fn stop_keeps_the_container() {
    let h = Harness::new();
    let id = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    let mut req = OperationRequest::new(game("g"), Command::Stop, OpSource::LobbyStream);
    req.stop_timeout = Some(Duration::from_secs(3));
    let out = h.svc.execute(req).await.unwrap();
    assert!(out.succeeded());
    let info = h.fakes.runtime.container(&id).expect("kept");
    assert!(!info.summary.running);
    // The fake does not model the grace period; the end-to-end tests
    // against Docker check it.
    assert_eq!(h.fakes.runtime.calls(RuntimeCall::Stop), 1);
    assert!(out.record.unwrap().stopped_at.is_some());
}

#[tokio::test]
async fn restart_keeps_the_container_and_moves_started_at() {
    let h = Harness::new();
    let first = h.start("g", V1).await.record.unwrap();
    h.fakes.clock.advance(Duration::from_secs(10));
    let after = h.run("g", Command::Restart).await.record.unwrap();
    assert_eq!(after.container_id, first.container_id);
    assert!(after.started_at > first.started_at);
    assert_eq!(
        after.created_at, first.created_at,
        "created_at never changes"
    );
}

#[tokio::test]
async fn start_of_another_image_on_a_stopped_game_recreates_the_container() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.run("g", Command::Stop).await;
    let rec = h.start("g", V2).await.record.unwrap();
    assert_ne!(rec.container_id.as_ref(), Some(&old));
    assert!(
        h.fakes.runtime.container(&old).is_none(),
        "old container removed"
    );
    assert_eq!(rec.image_ref, Some(img(V2)));
}

#[tokio::test]
async fn patch_swaps_the_container_and_removes_the_old_one() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    assert!(out.succeeded(), "{:?}", out.error());
    let rec = out.record.unwrap();
    let new = rec.container_id.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!(rec.image_ref, Some(img(V101)));
    assert_eq!(
        rec.state_path, "/var/lib/rtmanager/games/g",
        "state carries over"
    );
    assert!(h.fakes.runtime.container(&old).is_none());
    assert_eq!(
        h.fakes.runtime.container(&new).unwrap().summary.name,
        "rtm-g"
    );
    assert_eq!(out.operation.container_id.as_ref(), Some(&new));
}

/// The pull is not part of a patch's downtime: the new image is pulled
/// before the old engine is stopped.
#[tokio::test]
async fn a_patch_pulls_the_new_image_before_stopping_the_old_engine() {
    let h = Harness::new();
    h.start("g", V1).await;
    let before = h.fakes.runtime.call_log().len();
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    assert!(out.succeeded(), "{:?}", out.error());
    let log = h.fakes.runtime.call_log()[before..].to_vec();
    let pull = log
        .iter()
        .position(|(c, arg)| *c == RuntimeCall::EnsureImage && *arg == img(V101).to_string())
        .expect("the new image is ensured");
    let stop = log
        .iter()
        .position(|(c, _)| *c == RuntimeCall::Stop)
        .expect("the old engine is stopped");
    assert!(pull < stop, "pull before stop: {log:?}");
}

/// A patch whose image cannot be pulled never stops the old engine.
#[tokio::test]
async fn a_patch_whose_pull_fails_leaves_the_old_engine_running() {
    let h = Harness::new();
    // Absent from the fake's images, so the patch has to pull it.
    let absent = img("rtm.local/engine-stub:1.0.9");
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.fakes
        .runtime
        .set_unpullable(&absent.to_string(), "unauthorized: authentication required");
    let stops = h.fakes.runtime.calls(RuntimeCall::Stop);
    let out = h.run("g", Command::Patch { image: absent }).await;
    let err = out.error().unwrap();
    assert_eq!(err.code, ErrorCode::ImagePullFailed);
    assert!(err.message.contains("unauthorized"), "{}", err.message);
    assert_eq!(h.fakes.runtime.calls(RuntimeCall::Stop), stops, "no stop");
    assert_eq!(h.running_containers("g"), vec![old.clone()]);
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.container_id.as_ref(), Some(&old));
    assert_eq!(rec.image_ref, Some(img(V1)));
}

#[tokio::test]
async fn a_patch_that_never_becomes_healthy_rolls_back() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.fakes
        .probe
        .set_default(Err(ProbeError("connection refused".into())));
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::PatchRolledBack)
    );
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.container_id.as_ref(), Some(&old));
    assert_eq!(rec.image_ref, Some(img(V1)));
    assert_eq!(h.running_containers("g"), vec![old.clone()]);
    let info = h.fakes.runtime.container(&old).unwrap();
    assert_eq!(
        info.summary.name, "rtm-g",
        "old container got its name back"
    );
    assert_eq!(
        h.fakes.runtime.containers().len(),
        1,
        "the failed container is gone"
    );
    assert_eq!(out.operation.kind, OpKind::Patch);
    assert_eq!(out.operation.outcome, Outcome::Failure);
}

#[tokio::test]
async fn a_patch_to_an_engine_that_exits_rolls_back_without_waiting() {
    let h = Harness::new();
    h.fakes.runtime.set_broken(&img(V101).to_string(), 3);
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    let err = out.error().unwrap();
    assert_eq!(err.code, ErrorCode::PatchRolledBack);
    assert!(err.message.contains("exited"), "{}", err.message);
    assert_eq!(h.running_containers("g"), vec![old]);
}

#[tokio::test]
async fn patch_rules_minor_needs_force_and_the_repository_never_changes() {
    let h = Harness::new();
    h.start("g", V1).await;
    let out = h.run("g", Command::Patch { image: img(V110) }).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::PatchNotAllowed)
    );
    let mut forced = OperationRequest::new(
        game("g"),
        Command::Patch { image: img(V110) },
        OpSource::AdminRest,
    );
    forced.force = true;
    assert!(h.svc.execute(forced).await.unwrap().succeeded());

    h.fakes
        .runtime
        .add_image(&img("rtm.local/other:1.1.1").to_string());
    let mut other = OperationRequest::new(
        game("g"),
        Command::Patch {
            image: img("rtm.local/other:1.1.1"),
        },
        OpSource::AdminRest,
    );
    other.force = true;
    let out = h.svc.execute(other).await.unwrap();
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::PatchNotAllowed)
    );
}

#[tokio::test]
async fn an_image_off_the_allowlist_is_a_recorded_failure_with_no_docker_call() {
    let h = Harness::new();
    let out = h
        .start("g", "ghcr.io.evil.com/rtm.local/engine-stub:1.0.0")
        .await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::ImageNotAllowed)
    );
    assert_eq!(h.fakes.runtime.mutating_calls(), 0);
    assert_eq!(h.ops().len(), 1);
    assert!(h.status("g").is_none());
}

#[tokio::test]
async fn a_repeated_source_ref_replays_the_first_result() {
    let h = Harness::new();
    let mut req = OperationRequest::new(
        game("g"),
        Command::Start { image: img(V1) },
        OpSource::LobbyStream,
    );
    req.source_ref = Some("1700000000000-0".into());
    let first = h.svc.execute(req.clone()).await.unwrap();
    let calls = h.fakes.runtime.mutating_calls();
    // Even after the game moved on, the reference answers with its own row.
    h.run("g", Command::Stop).await;
    let again = h.svc.execute(req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.operation, first.operation);
    assert_eq!(
        h.fakes.runtime.mutating_calls(),
        calls + 1,
        "only the stop acted"
    );
    assert_eq!(
        h.ops().iter().filter(|o| o.kind == OpKind::Start).count(),
        1
    );
}

#[tokio::test]
async fn a_held_lock_refuses_with_operation_in_progress_and_records_nothing() {
    let h = Harness::new();
    let locks = h.fakes.locks.clone();
    let held = crate::ports::GameLocks::acquire(&locks, &game("g"), Duration::ZERO)
        .await
        .unwrap();
    let err = h
        .svc
        .execute(OperationRequest::new(
            game("g"),
            Command::Start { image: img(V1) },
            OpSource::GmRest,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, OperationError::InProgress(_)));
    assert_eq!(err.code(), ErrorCode::OperationInProgress);
    assert!(h.ops().is_empty());
    assert_eq!(h.fakes.runtime.mutating_calls(), 0);
    crate::ports::GameLockGuard::release(held).await;
    assert!(h.start("g", V1).await.succeeded());
}

#[tokio::test]
async fn a_row_starts_when_the_operation_holds_the_game() {
    let h = Harness::new();
    let held = crate::ports::GameLocks::acquire(&h.fakes.locks, &game("g"), Duration::ZERO)
        .await
        .unwrap();
    let queued_at = crate::ports::Clock::now(&h.fakes.clock);
    let release = async {
        // The queued start waits (its lock polls advance the fake clock).
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        crate::ports::GameLockGuard::release(held).await;
        crate::ports::Clock::now(&h.fakes.clock)
    };
    let (out, released_at) = tokio::join!(h.start("g", V1), release);
    assert!(out.succeeded());
    assert!(released_at > queued_at, "the start did wait");
    assert!(
        out.operation.started_at >= released_at,
        "row starts at {} although the lock was free only at {released_at}",
        out.operation.started_at
    );
}

#[tokio::test]
async fn a_pull_failure_is_image_pull_failed_and_leaves_no_container() {
    let h = Harness::new();
    let absent = "rtm.local/engine-stub:9.9.9";
    h.fakes
        .runtime
        .set_unpullable(&img(absent).to_string(), "manifest unknown");
    let out = h.start("g", absent).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::ImagePullFailed)
    );
    assert!(h.fakes.runtime.containers().is_empty());
    assert!(h.status("g").is_none());
}

#[tokio::test]
async fn docker_down_is_a_recorded_docker_unavailable() {
    let h = Harness::new();
    h.fakes.runtime.set_unavailable(true);
    let out = h.start("g", V1).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::DockerUnavailable)
    );
    assert!(h.status("g").is_none());
    h.fakes.runtime.set_unavailable(false);
    assert!(h.start("g", V1).await.succeeded());
}

#[tokio::test]
async fn a_container_that_fails_to_start_is_removed() {
    let h = Harness::new();
    h.fakes.runtime.fail_next(
        RuntimeCall::Start,
        RuntimeError::Other("exec format error".into()),
    );
    let out = h.start("g", V1).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::ContainerStartFailed)
    );
    assert!(h.fakes.runtime.containers().is_empty());
}

#[tokio::test]
async fn database_down_fails_before_any_docker_action() {
    let h = Harness::new();
    h.fakes.store.set_unavailable(true);
    let err = h
        .svc
        .execute(OperationRequest::new(
            game("g"),
            Command::Start { image: img(V1) },
            OpSource::GmRest,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DatabaseUnavailable);
    assert_eq!(h.fakes.runtime.mutating_calls(), 0);
}

#[tokio::test]
async fn a_leftover_container_from_an_interrupted_start_is_replaced() {
    let h = Harness::new();
    // A crash after create/start but before the commit leaves rtm-g behind.
    let leftover = h
        .fakes
        .runtime
        .spawn_running(&game("g"), &img(V1), "/state/g");
    let out = h.start("g", V1).await;
    assert!(out.succeeded(), "{:?}", out.error());
    assert!(h.fakes.runtime.container(&leftover).is_none());
    assert_eq!(h.running_containers("g").len(), 1);
}

#[tokio::test]
async fn reconcile_adopts_disposes_and_marks_vanished_records() {
    let h = Harness::new();
    // Orphan: a running container nobody recorded.
    let orphan = h
        .fakes
        .runtime
        .spawn_running(&game("orphan"), &img(V1), "/s/orphan");
    // Vanished: a running record whose container is gone.
    let (_, vanished) = h.fakes.seed_running(&game("vanished"), &img(V1));
    h.fakes.runtime.vanish(&vanished, false);
    // Extra: a stopped container of a game whose record is removed.
    h.bring("gone", Some(RuntimeStatus::Removed)).await;
    let extra = {
        let id = h
            .fakes
            .runtime
            .spawn_running(&game("gone"), &img(V1), "/s/gone");
        h.fakes.runtime.crash(&id, 0);
        id
    };
    // Exited: a running record whose container exited unnoticed.
    let (_, exited) = h.fakes.seed_running(&game("exited"), &img(V1));
    h.fakes.runtime.crash(&exited, 7);

    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!(
        (
            summary.adopted,
            summary.disposed,
            summary.removed,
            summary.observed_exits
        ),
        (1, 1, 1, 1)
    );

    let adopted = h.fakes.store.record(&game("orphan")).unwrap();
    assert_eq!(adopted.status, RuntimeStatus::Running);
    assert_eq!(adopted.container_id, Some(orphan));
    assert_eq!(adopted.image_ref, Some(img(V1)));
    assert!(h.fakes.runtime.container(&extra).is_none());
    assert_eq!(h.status("vanished"), Some(RuntimeStatus::Removed));
    assert_eq!(
        h.fakes.store.health(&game("vanished")).map(|s| s.status),
        Some(HealthStatus::ContainerDisappeared)
    );
    assert_eq!(h.status("exited"), Some(RuntimeStatus::Stopped));
    let snap = h.fakes.store.health(&game("exited")).unwrap();
    assert_eq!(snap.status, HealthStatus::Exited);
    assert_eq!(
        snap.details.get("exit_code"),
        Some(&crate::DetailValue::Int(7))
    );

    let kinds = |k: OpKind| {
        h.ops()
            .iter()
            .filter(|o| o.kind == k && o.source == OpSource::AutoReconcile)
            .count()
    };
    assert_eq!(kinds(OpKind::ReconcileAdopt), 1);
    assert_eq!(
        kinds(OpKind::ReconcileDispose),
        2,
        "the extra container and the vanished record"
    );

    // A second pass finds nothing to do.
    let again = h.svc.reconcile().await.unwrap();
    assert!(!again.changed(), "{again:?}");
}

#[tokio::test]
async fn reconcile_finishes_a_patch_interrupted_by_a_crash() {
    let h = Harness::new();
    let (_, old) = h.fakes.seed_running(&game("g"), &img(V1));
    // RTM stopped and parked the old engine, started the new one, then died.
    h.fakes
        .runtime
        .stop(&old, Duration::from_secs(1))
        .await
        .unwrap();
    h.fakes.runtime.rename(&old, "rtmold-g").await.unwrap();
    let new = h
        .fakes
        .runtime
        .spawn_running(&game("g"), &img(V101), "/state/g");

    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!((summary.adopted, summary.disposed), (1, 1));
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.container_id, Some(new));
    assert_eq!(rec.image_ref, Some(img(V101)));
    assert!(h.fakes.runtime.container(&old).is_none());
}

#[tokio::test]
async fn reconcile_restores_a_parked_container_name() {
    let h = Harness::new();
    let (_, old) = h.fakes.seed_running(&game("g"), &img(V1));
    // Crash right after parking: old stopped under the temporary name.
    h.fakes
        .runtime
        .stop(&old, Duration::from_secs(1))
        .await
        .unwrap();
    h.fakes.runtime.rename(&old, "rtmold-g").await.unwrap();
    // The record still says running: the patch never committed, so the
    // previous engine is what the game runs. It is renamed back and
    // started, not recorded as an exit (issue 13 §8).
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!(
        (summary.observed_exits, summary.renamed, summary.adopted),
        (0, 1, 1)
    );
    assert_eq!(
        h.fakes.runtime.container(&old).unwrap().summary.name,
        "rtm-g"
    );
    assert_eq!(h.running_containers("g"), vec![old.clone()]);
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.container_id, Some(old));
    // A second pass has nothing left to do.
    assert!(!h.svc.reconcile().await.unwrap().changed());
}

#[tokio::test]
async fn reconcile_skips_a_game_an_operation_holds() {
    let h = Harness::new();
    h.fakes.runtime.spawn_running(&game("g"), &img(V1), "/s/g");
    let held = crate::ports::GameLocks::acquire(&h.fakes.locks, &game("g"), Duration::ZERO)
        .await
        .unwrap();
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!((summary.skipped_busy, summary.adopted), (1, 0));
    crate::ports::GameLockGuard::release(held).await;
    assert_eq!(h.svc.reconcile().await.unwrap().adopted, 1);
}

#[tokio::test]
async fn ttl_cleanup_removes_only_games_stopped_beyond_retention() {
    let h = Harness::new();
    h.bring("old", Some(RuntimeStatus::Stopped)).await;
    h.fakes.clock.advance(Duration::from_secs(3600));
    h.bring("recent", Some(RuntimeStatus::Stopped)).await;
    h.bring("live", Some(RuntimeStatus::Running)).await;
    let summary = h
        .svc
        .cleanup_expired(Duration::from_secs(1800))
        .await
        .unwrap();
    assert_eq!(summary.removed, 1);
    assert_eq!(h.status("old"), Some(RuntimeStatus::Removed));
    assert_eq!(h.status("recent"), Some(RuntimeStatus::Stopped));
    assert_eq!(h.status("live"), Some(RuntimeStatus::Running));
    let ttl = h
        .ops()
        .into_iter()
        .filter(|o| o.source == OpSource::AutoTtl)
        .collect::<Vec<_>>();
    assert_eq!(ttl.len(), 1);
    assert_eq!(ttl[0].kind, OpKind::CleanupContainer);
}

#[tokio::test]
async fn a_reconcile_pass_in_agreement_is_one_list_and_checks_only_the_changes() {
    use crate::fakes::RuntimeCall;
    let h = Harness::new();
    for i in 0..20 {
        h.fakes.seed_running(&game(&format!("ok-{i}")), &img(V1));
    }
    h.bring("parked", Some(RuntimeStatus::Stopped)).await;
    let calls = h.fakes.runtime.call_log().len();
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!((summary.games, summary.checked), (21, 0), "{summary:?}");
    assert!(!summary.changed());
    assert_eq!(
        h.fakes.runtime.call_log()[calls..],
        [(RuntimeCall::List, String::new())],
        "one list, nothing per game"
    );

    // One change among them: only that game is looked at again.
    let exited = h
        .fakes
        .store
        .record(&game("ok-7"))
        .unwrap()
        .container_id
        .unwrap();
    h.fakes.runtime.crash(&exited, 3);
    let calls = h.fakes.runtime.call_log().len();
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!(
        (summary.checked, summary.observed_exits),
        (1, 1),
        "{summary:?}"
    );
    assert_eq!(h.status("ok-7"), Some(RuntimeStatus::Stopped));
    let log = &h.fakes.runtime.call_log()[calls..];
    assert_eq!(
        log.iter().filter(|(c, _)| *c == RuntimeCall::List).count(),
        2,
        "the pass's list and the changed game's own: {log:?}"
    );
    assert_eq!(
        log.iter()
            .filter(|(c, _)| *c == RuntimeCall::Inspect)
            .count(),
        1,
        "{log:?}"
    );
    // And the next pass is quiet again.
    assert_eq!(h.svc.reconcile().await.unwrap().checked, 0);
}

fn retention(
    audit_s: u64,
    removed_s: u64,
    state_s: Option<u64>,
) -> crate::service::RetentionConfig {
    crate::service::RetentionConfig {
        audit: Duration::from_secs(audit_s),
        removed: Duration::from_secs(removed_s),
        state: state_s.map(Duration::from_secs),
    }
}

#[tokio::test]
async fn retention_deletes_old_audit_rows_but_keeps_a_live_games_last_row() {
    let h = Harness::new();
    h.bring("live", Some(RuntimeStatus::Stopped)).await; // start + stop
    h.bring("gone", Some(RuntimeStatus::Removed)).await; // start + stop + cleanup
                                                         // Refusals on an unknown game are audited too.
    for _ in 0..3 {
        assert!(!h.run("ghost", Command::Stop).await.succeeded());
    }
    let before = h.ops().len();
    assert_eq!(before, 2 + 3 + 3);
    h.fakes.clock.advance(Duration::from_secs(3600));
    h.bring("fresh", Some(RuntimeStatus::Running)).await;

    let summary = h
        .svc
        .purge_expired(&retention(1800, 86_400, None))
        .await
        .unwrap();
    // Everything older than the cutoff goes except live's newest row.
    assert_eq!(summary.operations, (before - 1) as u64);
    let left: Vec<_> = h
        .ops()
        .into_iter()
        .map(|o| (o.game_id.to_string(), o.kind))
        .collect();
    assert_eq!(
        left,
        vec![
            ("live".to_owned(), OpKind::Stop),
            ("fresh".to_owned(), OpKind::Start)
        ]
    );
    // The removed game is younger than its retention: still known.
    assert_eq!(h.status("gone"), Some(RuntimeStatus::Removed));
    assert_eq!((summary.games, summary.states), (0, 0));
    // A second pass finds nothing more to delete.
    let again = h
        .svc
        .purge_expired(&retention(1800, 86_400, None))
        .await
        .unwrap();
    assert_eq!(again, crate::service::RetentionSummary::default());
}

#[tokio::test]
async fn retention_forgets_removed_games_and_deletes_state_only_when_opted_in() {
    let h = Harness::new();
    h.bring("old1", Some(RuntimeStatus::Removed)).await;
    h.bring("old2", Some(RuntimeStatus::Removed)).await;
    h.fakes.clock.advance(Duration::from_secs(7200));
    h.bring("young", Some(RuntimeStatus::Removed)).await;
    h.bring("stopped", Some(RuntimeStatus::Stopped)).await;

    // Without RTM_STATE_RETENTION: records go, state directories stay.
    let summary = h
        .svc
        .purge_expired(&retention(86_400, 3600, None))
        .await
        .unwrap();
    assert_eq!(
        (summary.games, summary.states, summary.skipped),
        (1 + 1, 0, 0)
    );
    assert_eq!(h.status("old1"), None);
    assert_eq!(h.fakes.store.health(&game("old1")), None);
    assert_eq!(h.status("young"), Some(RuntimeStatus::Removed));
    assert_eq!(h.status("stopped"), Some(RuntimeStatus::Stopped));
    assert!(h.fakes.runtime.removed_states().is_empty());

    // Opted in: the state goes with the record, and only once both
    // retentions passed (here the longer state retention decides).
    h.fakes.clock.advance(Duration::from_secs(3600));
    let opted = retention(86_400, 1800, Some(7200));
    let summary = h.svc.purge_expired(&opted).await.unwrap();
    assert_eq!((summary.games, summary.states), (0, 0), "young is 1 h old");
    h.fakes.clock.advance(Duration::from_secs(3601));
    let summary = h.svc.purge_expired(&opted).await.unwrap();
    assert_eq!((summary.games, summary.states), (1, 1));
    assert_eq!(h.status("young"), None);
    assert_eq!(
        h.fakes.runtime.removed_states(),
        vec!["/var/lib/rtmanager/games/young".to_owned()]
    );
}

#[tokio::test]
async fn retention_keeps_a_removed_game_whose_state_cannot_be_deleted() {
    let h = Harness::new();
    h.bring("g", Some(RuntimeStatus::Removed)).await;
    h.fakes.clock.advance(Duration::from_secs(7200));
    h.fakes.runtime.set_unavailable(true);
    let summary = h
        .svc
        .purge_expired(&retention(86_400, 3600, Some(3600)))
        .await
        .unwrap();
    assert_eq!((summary.games, summary.skipped), (0, 1));
    assert_eq!(h.status("g"), Some(RuntimeStatus::Removed));
    h.fakes.runtime.set_unavailable(false);
    let summary = h
        .svc
        .purge_expired(&retention(86_400, 3600, Some(3600)))
        .await
        .unwrap();
    assert_eq!((summary.games, summary.states), (1, 1));
}

#[tokio::test]
async fn retention_skips_a_busy_removed_game() {
    let h = Harness::new();
    h.bring("g", Some(RuntimeStatus::Removed)).await;
    h.fakes.clock.advance(Duration::from_secs(7200));
    let mut cfg = config();
    cfg.lock_wait = Duration::ZERO;
    let svc = RuntimeService::new(h.fakes.adapters(), cfg);
    let held = crate::ports::GameLocks::acquire(&h.fakes.locks, &game("g"), Duration::ZERO)
        .await
        .unwrap();
    let summary = svc
        .purge_expired(&retention(86_400, 3600, None))
        .await
        .unwrap();
    assert_eq!((summary.games, summary.skipped), (0, 1));
    crate::ports::GameLockGuard::release(held).await;
    let summary = svc
        .purge_expired(&retention(86_400, 3600, None))
        .await
        .unwrap();
    assert_eq!(summary.games, 1);
}

// ------------------------------------------------ issue 13 §8: rollback

#[tokio::test]
async fn a_rollback_waits_out_a_removal_docker_is_already_doing() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.fakes
        .probe
        .set_default(Err(ProbeError("connection refused".into())));
    // The first tries to remove the new container meet a busy Docker.
    for _ in 0..3 {
        h.fakes.runtime.fail_next(
            crate::fakes::RuntimeCall::Remove,
            RuntimeError::Conflict("removal of container x is already in progress".into()),
        );
    }
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    assert_eq!(
        out.error().map(|e| e.code),
        Some(ErrorCode::PatchRolledBack),
        "{:?}",
        out.error()
    );
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.container_id.as_ref(), Some(&old));
    assert_eq!(h.running_containers("g"), vec![old.clone()]);
    assert_eq!(h.fakes.runtime.containers().len(), 1);
    assert_eq!(
        h.fakes.runtime.container(&old).unwrap().summary.name,
        "rtm-g"
    );
}

#[tokio::test]
async fn a_rollback_that_cannot_finish_says_so_and_the_reconciler_finishes_it() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.fakes
        .probe
        .set_default(Err(ProbeError("connection refused".into())));
    // Docker refuses every try to remove the new container.
    for _ in 0..10 {
        h.fakes.runtime.fail_next(
            crate::fakes::RuntimeCall::Remove,
            RuntimeError::Other("device or resource busy".into()),
        );
    }
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    let err = out.error().unwrap();
    assert_eq!(err.code, ErrorCode::PatchRollbackIncomplete, "{err}");
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.status, RuntimeStatus::Stopped, "the old engine is down");
    assert_eq!(rec.container_id.as_ref(), Some(&old));
    assert_eq!(rec.image_ref, Some(img(V1)));
    assert_eq!(
        h.fakes.runtime.container(&old).unwrap().summary.name,
        "rtmold-g"
    );

    // TTL cleanup leaves it alone, however long it waits.
    h.fakes.clock.advance(Duration::from_secs(7200));
    let cleaned = h
        .svc
        .cleanup_expired(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((cleaned.removed, cleaned.skipped), (0, 1));
    assert!(h.fakes.runtime.container(&old).is_some());

    // The reconciler removes the failed new engine and restores the old one.
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!((summary.adopted, summary.disposed), (1, 1), "{summary:?}");
    let rec = h.fakes.store.record(&game("g")).unwrap();
    assert_eq!(rec.status, RuntimeStatus::Running);
    assert_eq!(rec.container_id.as_ref(), Some(&old));
    assert_eq!(rec.image_ref, Some(img(V1)));
    assert_eq!(h.running_containers("g"), vec![old.clone()]);
    assert_eq!(h.fakes.runtime.containers().len(), 1);
    assert_eq!(
        h.fakes.runtime.container(&old).unwrap().summary.name,
        "rtm-g"
    );
    assert!(!h.svc.reconcile().await.unwrap().changed());
}

#[tokio::test]
async fn a_patch_whose_new_container_vanishes_rolls_back_without_waiting_for_the_gate() {
    let h = Harness::new();
    let old = h.start("g", V1).await.record.unwrap().container_id.unwrap();
    h.fakes
        .probe
        .set_default(Err(ProbeError("connection refused".into())));
    // Inspecting the new container finds nothing (someone removed it).
    // The first inspect of the gate is the first inspect of the patch.
    h.fakes.runtime.fail_next(
        crate::fakes::RuntimeCall::Inspect,
        RuntimeError::NotFound("gone".into()),
    );
    let before = h.fakes.clock.now();
    let out = h.run("g", Command::Patch { image: img(V101) }).await;
    let err = out.error().unwrap();
    assert_eq!(err.code, ErrorCode::PatchRolledBack);
    assert!(err.message.contains("vanished"), "{}", err.message);
    assert!(
        h.fakes.clock.now() - before < config().patch_health_timeout,
        "the gate did not wait out its timeout"
    );
    assert_eq!(h.running_containers("g"), vec![old]);
}

// ------------------------------------------- issue 13 §4: case collisions

#[tokio::test]
async fn a_start_whose_id_differs_from_a_live_game_only_in_case_is_refused() {
    let h = Harness::new();
    assert!(h.start("cx", V1).await.succeeded());
    let rows = h.ops().len();
    let out = h.start("CX", V1).await;
    let err = out.error().unwrap();
    assert_eq!(err.code, ErrorCode::GameIdConflict);
    assert!(err.message.contains("cx"), "{}", err.message);
    assert_eq!(h.ops().len(), rows + 1, "a failed row");
    assert_eq!(out.operation.outcome, Outcome::Failure);
    assert!(h.running_containers("CX").is_empty());
    assert!(h.status("CX").is_none());
    // A stopped game is still live: its name comes back with a start.
    assert!(h.run("cx", Command::Stop).await.succeeded());
    assert_eq!(
        h.start("CX", V1).await.error().map(|e| e.code),
        Some(ErrorCode::GameIdConflict)
    );
    // Once removed, the other spelling may start.
    assert!(h.run("cx", Command::Cleanup).await.succeeded());
    assert!(h.start("CX", V1).await.succeeded());
    assert_eq!(
        h.start("cx", V1).await.error().map(|e| e.code),
        Some(ErrorCode::GameIdConflict)
    );
    // The same game itself is never its own collision.
    assert!(h.start("CX", V1).await.succeeded());
}

#[tokio::test]
async fn ids_that_differ_only_in_case_share_one_lock() {
    let h = Harness::new();
    let held = crate::ports::GameLocks::acquire(&h.fakes.locks, &game("cx"), Duration::ZERO)
        .await
        .unwrap();
    let err = h
        .svc
        .execute(OperationRequest::new(
            game("CX"),
            Command::Start { image: img(V1) },
            OpSource::GmRest,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, OperationError::InProgress(_)), "{err:?}");
    crate::ports::GameLockGuard::release(held).await;
}

#[tokio::test]
async fn reconcile_never_adopts_a_container_into_a_dns_collision() {
    let h = Harness::new();
    assert!(h.start("cx", V1).await.succeeded());
    let stray = h
        .fakes
        .runtime
        .spawn_running(&game("CX"), &img(V1), "/state/CX");
    let summary = h.svc.reconcile().await.unwrap();
    assert_eq!((summary.adopted, summary.disposed), (0, 1), "{summary:?}");
    assert!(h.fakes.runtime.container(&stray).is_none());
    assert!(h.status("CX").is_none());
    assert_eq!(h.status("cx"), Some(RuntimeStatus::Running));
}

// ---------------------------------------- issue 13 §5: reused references

fn keyed(g: &str, command: Command, key: &str) -> OperationRequest {
    let mut req = OperationRequest::new(game(g), command, OpSource::GmRest);
    req.source_ref = Some(key.into());
    req
}

#[tokio::test]
async fn a_reference_reused_for_another_request_is_refused_and_changes_nothing() {
    let h = Harness::new();
    let first = h
        .svc
        .execute(keyed("g1", Command::Start { image: img(V1) }, "k1"))
        .await
        .unwrap();
    assert!(first.succeeded());
    let rows = h.ops().len();
    let calls = h.fakes.runtime.mutating_calls();
    let refused = |r: Result<OperationOutcome, OperationError>| match r {
        Err(OperationError::KeyReused { operation_id, .. }) => operation_id,
        other => panic!("expected KeyReused, got {other:?}"),
    };
    // Another operation, another image, another parameter, another game.
    let mut stop = keyed("g1", Command::Stop, "k1");
    assert_eq!(
        refused(h.svc.execute(stop.clone()).await),
        first.operation.id
    );
    let other_image = keyed("g1", Command::Start { image: img(V101) }, "k1");
    refused(h.svc.execute(other_image).await);
    stop.stop_timeout = Some(Duration::from_secs(3));
    refused(h.svc.execute(stop).await);
    refused(
        h.svc
            .execute(keyed("g2", Command::Start { image: img(V1) }, "k1"))
            .await,
    );
    assert_eq!(h.ops().len(), rows, "no row");
    assert_eq!(h.fakes.runtime.mutating_calls(), calls, "no Docker action");
    assert_eq!(h.status("g1"), Some(RuntimeStatus::Running));
    assert!(h.status("g2").is_none());
    // The very same request still replays; the same key on the other
    // surface is another reference.
    let again = h
        .svc
        .execute(keyed("g1", Command::Start { image: img(V1) }, "k1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.operation, first.operation);
    let mut admin = keyed("g1", Command::Stop, "k1");
    admin.source = OpSource::AdminRest;
    assert!(!h.svc.execute(admin).await.unwrap().replayed);
}
