//! The [`ContainerRuntime`] contract: create / start / stop / remove /
//! rename / inspect / list semantics — `Conflict` on a taken name,
//! `NotFound` for a missing container, idempotent start and stop, `list`
//! filtered by game, the event feed's `start` / `die` / `destroy`, `logs`
//! of a missing container. What only the Docker adapter can show (hardening,
//! the owner label hiding foreign containers, the event feed's
//! reconnection) stays in its own tests.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;

use crate::ports::{
    ContainerEventKind, ContainerRuntime, ContainerSpec, ContainerState, FeedItem, LogQuery,
};
use crate::{ContainerId, RuntimeError};

/// What a runtime case needs: the runtime and fresh specs of an image
/// that runs (and exits 0 on SIGTERM, like the engine stub).
pub trait RuntimeSubject: Send + Sync {
    /// The implementation under test.
    type Runtime: ContainerRuntime;

    /// The runtime the cases drive.
    fn runtime(&self) -> &Self::Runtime;

    /// A spec for a new game, unique to this call.
    fn spec(&self) -> ContainerSpec;

    /// Waits until the started container `id` is really up (the engine
    /// is serving), so stopping it tests a graceful stop.
    fn wait_started(&self, id: &ContainerId) -> impl Future<Output = ()> + Send;
}

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl RuntimeSubject)` with no container yet.
#[macro_export]
macro_rules! runtime_contract {
    ($setup:path) => {
        $crate::__contract_tests!(
            runtime,
            $setup,
            [
                a_taken_name_is_a_conflict,
                start_and_stop_are_idempotent_and_inspect_follows,
                a_missing_container_is_not_found,
                remove_forgets_a_running_container,
                list_filters_by_game,
                the_event_feed_reports_start_die_and_destroy_in_order,
                logs_of_a_missing_container_are_not_found,
            ]
        );
    };
}

/// An id no runtime knows (the shape of a Docker id).
fn missing_id() -> ContainerId {
    ContainerId::new(format!("{:064x}", 0xdead_beef_u64)).unwrap()
}

async fn created<S: RuntimeSubject>(s: &S) -> (ContainerSpec, ContainerId) {
    let spec = s.spec();
    s.runtime().ensure_image(&spec.image).await.unwrap();
    let id = s.runtime().create(&spec).await.unwrap();
    (spec, id)
}

/// `create` and `rename` refuse a taken name with `Conflict`; a rename
/// frees the old name.
pub async fn a_taken_name_is_a_conflict<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let (spec, id) = created(s).await;
    let again = rt.create(&spec).await;
    assert!(matches!(again, Err(RuntimeError::Conflict(_))), "{again:?}");
    let (_, other) = created(s).await;
    let taken = rt.rename(&other, &spec.name).await;
    assert!(matches!(taken, Err(RuntimeError::Conflict(_))), "{taken:?}");

    let parked = spec.game_id.parked_container_name();
    rt.rename(&id, &parked).await.unwrap();
    assert_eq!(rt.inspect(&id).await.unwrap().summary.name, parked);
    rt.rename(&other, &spec.name).await.unwrap();
    assert_eq!(rt.inspect(&other).await.unwrap().summary.name, spec.name);
}

/// A created container is not running; start makes it run (again: Ok);
/// stop ends it gracefully with exit code 0 (again: Ok); it can start
/// again.
pub async fn start_and_stop_are_idempotent_and_inspect_follows<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let (spec, id) = created(s).await;
    let info = rt.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Created);
    assert!(!info.summary.running);
    assert_eq!(info.summary.id, id);
    assert_eq!(info.summary.name, spec.name);
    assert_eq!(info.summary.game_id.as_ref(), Some(&spec.game_id));
    assert_eq!(info.summary.image_ref, Some(spec.image.to_string()));
    assert_eq!(
        info.summary.state_path.as_deref(),
        Some(spec.state_path.as_str())
    );

    rt.start(&id).await.unwrap();
    s.wait_started(&id).await;
    rt.start(&id).await.unwrap();
    let info = rt.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert!(info.summary.running);
    assert!(info.started_at.is_some());
    assert!(info.ip.is_some(), "a running engine has an address");

    rt.stop(&id, Duration::from_secs(20)).await.unwrap();
    let info = rt.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Exited);
    assert!(!info.summary.running);
    assert_eq!(info.exit_code, Some(0), "a graceful stop");
    assert!(!info.oom_killed);
    assert!(info.finished_at.is_some());
    rt.stop(&id, Duration::from_secs(1)).await.unwrap();

    rt.start(&id).await.unwrap();
    assert!(rt.inspect(&id).await.unwrap().summary.running);
}

/// Every call on a container that does not exist is `NotFound`.
pub async fn a_missing_container_is_not_found<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let id = missing_id();
    let grace = Duration::from_secs(1);
    let results = [
        ("start", rt.start(&id).await.map(drop)),
        ("stop", rt.stop(&id, grace).await.map(drop)),
        ("remove", rt.remove(&id).await.map(drop)),
        ("rename", rt.rename(&id, "rtm-nobody-here").await.map(drop)),
        ("inspect", rt.inspect(&id).await.map(drop)),
    ];
    for (call, r) in results {
        assert!(matches!(r, Err(RuntimeError::NotFound(_))), "{call}: {r:?}");
    }
}

/// `remove` removes a running container too; it is then `NotFound` and
/// no longer listed.
pub async fn remove_forgets_a_running_container<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let (spec, id) = created(s).await;
    rt.start(&id).await.unwrap();
    rt.remove(&id).await.unwrap();
    let gone = rt.inspect(&id).await;
    assert!(matches!(gone, Err(RuntimeError::NotFound(_))), "{gone:?}");
    let again = rt.remove(&id).await;
    assert!(matches!(again, Err(RuntimeError::NotFound(_))), "{again:?}");
    assert!(rt.list(Some(&spec.game_id)).await.unwrap().is_empty());
    assert!(rt.list(None).await.unwrap().iter().all(|c| c.id != id));
}

/// `list` shows every owned container, running or not, and only the
/// given game's when asked.
pub async fn list_filters_by_game<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let (a, a_id) = created(s).await;
    let (b, b_id) = created(s).await;
    rt.start(&b_id).await.unwrap();

    let mut all: Vec<ContainerId> = rt
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    all.sort();
    let mut want = vec![a_id.clone(), b_id.clone()];
    want.sort();
    assert_eq!(all, want);

    let of_a = rt.list(Some(&a.game_id)).await.unwrap();
    assert_eq!(of_a.len(), 1);
    assert_eq!(of_a[0].id, a_id);
    assert_eq!(of_a[0].name, a.name);
    assert!(!of_a[0].running);
    assert_eq!(
        of_a[0].ip, None,
        "a container that never ran has no address"
    );
    let of_b = rt.list(Some(&b.game_id)).await.unwrap();
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0].id, b_id);
    assert!(of_b[0].running);
    assert_eq!(of_b[0].game_id.as_ref(), Some(&b.game_id));
}

/// The feed opens with `Connected`, then reports a container's `start`,
/// its `die` with exit code 0 on a graceful stop, and its `destroy` on
/// removal, in that order and with its game id (Docker's own health
/// events, and the runtime's report of the signals it sent, may come
/// between).
pub async fn the_event_feed_reports_start_die_and_destroy_in_order<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let mut feed = Box::pin(rt.events());
    let first = feed.next().await;
    assert!(matches!(first, Some(FeedItem::Connected)), "{first:?}");
    let (spec, id) = created(s).await;
    rt.start(&id).await.unwrap();
    s.wait_started(&id).await;
    rt.stop(&id, Duration::from_secs(20)).await.unwrap();
    rt.remove(&id).await.unwrap();

    let mut kinds = vec![];
    while kinds.len() < 3 {
        match feed.next().await {
            Some(FeedItem::Event(e)) if e.container_id == id => {
                assert_eq!(e.game_id.as_ref(), Some(&spec.game_id), "{e:?}");
                if !matches!(
                    e.kind,
                    ContainerEventKind::Health(_) | ContainerEventKind::Kill { .. }
                ) {
                    kinds.push(e.kind);
                }
            }
            Some(FeedItem::Event(_) | FeedItem::Connected) => {}
            Some(FeedItem::Lost(e)) => panic!("the feed was lost: {e}"),
            None => panic!("the feed ended; seen {kinds:?}"),
        }
    }
    let die = ContainerEventKind::Die { exit_code: Some(0) };
    assert_eq!(
        kinds,
        [ContainerEventKind::Start, die, ContainerEventKind::Destroy]
    );
}

/// `logs` and `follow_logs` of a container that does not exist are
/// `NotFound` (the follow yields that one error and ends).
pub async fn logs_of_a_missing_container_are_not_found<S: RuntimeSubject>(s: &S) {
    let rt = s.runtime();
    let id = missing_id();
    let query = LogQuery {
        tail: 10,
        since: None,
        max_bytes: 4096,
    };
    let logs = rt.logs(&id, &query).await;
    assert!(matches!(logs, Err(RuntimeError::NotFound(_))), "{logs:?}");
    let mut follow = Box::pin(rt.follow_logs(&id, &query));
    let first = follow.next().await;
    assert!(
        matches!(first, Some(Err(RuntimeError::NotFound(_)))),
        "{first:?}"
    );
    let end = follow.next().await;
    assert!(end.is_none(), "{end:?}");
}
