//! What the Swarm mapping adds to the port contract: a stop and a start
//! keep the service id while the task (and its container) is new; a stop
//! through the orchestrator keeps the exit code after Swarm deletes the
//! task; a rename leaves the running task alone and names the next one;
//! an exit, an OOM kill and a removal reach the feed with their details,
//! an end dated when it happened even when the feed learns of it late.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rtm_domain::ports::{
    ContainerEvent, ContainerEventKind, ContainerRuntime, ContainerState, FeedItem,
};
use rtm_domain::{ContainerId, RuntimeError};
use rtm_swarm::{SwarmConfig, SwarmConfigError, SwarmRuntime};

use crate::{
    docker, task_containers, test_config, wait_exited, wait_file, write_control, Env, DEADLINE,
};

#[tokio::test]
async fn stop_and_start_keep_the_service_id_and_run_a_new_task() {
    let env = Env::new();
    let (spec, id) = env.running("1.0.0").await;
    let first = task_containers(&id);
    assert_eq!(first.len(), 1, "{first:?}");

    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let stopped = env.rt.inspect(&id).await.expect("inspect");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_code, Some(0));
    assert!(stopped.started_at.is_some() && stopped.finished_at.is_some());

    std::fs::remove_file(std::path::Path::new(&spec.state_path).join("starts.log")).unwrap();
    env.rt.start(&id).await.expect("start again");
    wait_file(&spec, "starts.log").await;
    let info = env.rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.summary.id, id, "the port's id is the service's");
    assert!(info.summary.running);
    assert!(info.ip.is_some());
    let now = task_containers(&id);
    assert_eq!(
        now.len(),
        2,
        "the stopped task stays until replaced: {now:?}"
    );
    let new: Vec<_> = now.iter().filter(|c| !first.contains(c)).collect();
    assert_eq!(new.len(), 1, "a new task, with a new container: {now:?}");

    // Again, with two ended tasks in Swarm's history now: the start waits
    // for the task it caused, not for an older one.
    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    env.rt.start(&id).await.expect("a third start");
    assert!(env.rt.inspect(&id).await.unwrap().summary.running);
    assert_eq!(task_containers(&id).len(), 3);
}

#[tokio::test]
async fn a_stop_through_the_orchestrator_keeps_the_exit_code_after_the_task_is_gone() {
    let env = Env::with(|c| c.local_engine = false);
    let (_spec, id) = env.running("1.0.0").await;
    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    // Swarm deletes a task scaled away (and its container) soon after.
    let deadline = Instant::now() + DEADLINE;
    while !task_containers(&id).is_empty() {
        assert!(Instant::now() < deadline, "the task was never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = env.rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.state, ContainerState::Exited);
    assert_eq!(info.exit_code, Some(0), "kept on the service: {info:?}");
    env.rt
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("again: Ok");
    env.rt.start(&id).await.expect("start after a scale to 0");
    assert!(env.rt.inspect(&id).await.expect("inspect").summary.running);
}

#[tokio::test]
async fn a_rename_leaves_the_running_task_alone_and_names_the_next_one() {
    let env = Env::new();
    let (spec, id) = env.running("1.0.0").await;
    let before = task_containers(&id);
    let parked = spec.game_id.parked_container_name();
    env.rt.rename(&id, &parked).await.expect("rename");
    // Give Swarm time to redeploy if a label change did that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(task_containers(&id), before, "no redeploy");
    assert!(env.rt.inspect(&id).await.unwrap().summary.running);
    assert_eq!(env.rt.inspect(&id).await.unwrap().summary.name, parked);

    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    env.rt.start(&id).await.expect("start");
    let ip = env.rt.inspect(&id).await.unwrap().ip.expect("an address");
    let net = env.rt.config().docker.network.clone();
    // The engines' DNS, asked from the overlay network (dnsrr: the name is
    // the task's own address, and only while it runs).
    assert_eq!(resolve(&net, &parked), Some(ip.to_string()));
    assert_eq!(resolve(&net, &spec.name), None, "the old name is free");
}

/// What `name` resolves to on `network`, asked from a one-shot container
/// of the stub image (`rtm-engine-stub resolve`); `None`: no address.
fn resolve(network: &str, name: &str) -> Option<String> {
    let image = rtm_testkit::docker::engine_image("1.0.0");
    let args = ["run", "--rm", "--network", network, &image, "resolve", name];
    docker(&args).ok().map(|out| out.trim().to_owned())
}

/// Waits for the next event of `id` that is not a `Start`.
async fn next_end(
    feed: &mut (impl futures_util::Stream<Item = FeedItem> + Unpin),
    id: &ContainerId,
) -> Vec<ContainerEventKind> {
    let mut kinds = vec![];
    let deadline = Instant::now() + DEADLINE;
    while !kinds
        .iter()
        .any(|k| matches!(k, ContainerEventKind::Die { .. }))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, feed.next())
            .await
            .expect("an event in time");
        match item {
            Some(FeedItem::Event(e)) if &e.container_id == id => {
                if !matches!(e.kind, ContainerEventKind::Start) {
                    kinds.push(e.kind);
                }
            }
            Some(FeedItem::Lost(e)) => panic!("the feed was lost: {e}"),
            Some(_) => {}
            None => panic!("the feed ended"),
        }
    }
    kinds
}

#[tokio::test]
async fn an_exit_is_reported_by_the_feed_with_its_code_and_inspect_agrees() {
    let env = Env::new();
    let mut feed = Box::pin(env.rt.events());
    assert!(matches!(feed.next().await, Some(FeedItem::Connected)));
    let (spec, id) = env.running("1.0.0").await;
    write_control(&spec, "crash", "42\n");
    let kinds = next_end(&mut feed, &id).await;
    assert_eq!(
        kinds,
        [ContainerEventKind::Die {
            exit_code: Some(42)
        }]
    );
    let info = wait_exited(&env.rt, &id).await;
    assert_eq!(info.exit_code, Some(42));
    assert!(!info.oom_killed);
    // Restart condition none: Swarm did not start it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!env.rt.inspect(&id).await.unwrap().summary.running);
}

#[tokio::test]
async fn an_end_learnt_after_a_later_start_is_dated_when_it_happened() {
    // Polls far apart: the end below happens, and the service starts
    // again, before the feed's next look at the tasks.
    let env = Env::with(|c| c.poll_interval = Duration::from_secs(10));
    let mut feed = Box::pin(env.rt.events());
    assert!(matches!(feed.next().await, Some(FeedItem::Connected)));
    let (_spec, id) = env.running("1.0.0").await;
    let first = task_containers(&id);
    docker(&["stop", "-t", "5", &first[0]]).expect("stop behind its back");
    let ended_by = time::OffsetDateTime::now_utc();
    env.rt.start(&id).await.expect("start again");
    let events = events_until(&mut feed, &id, |e| {
        matches!(e.kind, ContainerEventKind::Die { .. })
    })
    .await;
    let die = events.last().expect("a die");
    assert!(
        matches!(die.kind, ContainerEventKind::Die { exit_code: Some(_) }),
        "{die:?}"
    );
    // Dated by its end, not by when the poll saw it: the monitor sets
    // aside an exit dated before the record's `started_at`, so this late
    // report is not taken for the end of the new start.
    assert!(die.at <= ended_by, "{die:?} after {ended_by}");
    assert!(env.rt.inspect(&id).await.unwrap().summary.running);
}

#[tokio::test]
async fn an_oom_kill_on_this_node_is_reported_as_oom() {
    let env = Env::with(|c| c.docker.memory_bytes = 16 * 1024 * 1024);
    let mut feed = Box::pin(env.rt.events());
    assert!(matches!(feed.next().await, Some(FeedItem::Connected)));
    let (spec, id) = env.running("1.0.0").await;
    write_control(&spec, "oom", "");
    let kinds = next_end(&mut feed, &id).await;
    assert_eq!(
        kinds,
        [
            ContainerEventKind::Oom,
            ContainerEventKind::Die {
                exit_code: Some(137)
            }
        ]
    );
    let info = wait_exited(&env.rt, &id).await;
    assert!(info.oom_killed, "{info:?}");
}

#[tokio::test]
async fn another_process_s_removal_is_seen_by_polling() {
    let env = Env::new();
    // A second adapter with the same owner: its feed learns only from the
    // task list, as another rtmanager replica's would.
    let other = SwarmRuntime::new(env.rt.config().clone()).expect("valid config");
    let mut feed = Box::pin(other.events());
    assert!(matches!(feed.next().await, Some(FeedItem::Connected)));
    let (_spec, id) = env.running("1.0.0").await;
    let seen = kinds(
        events_until(&mut feed, &id, |e| {
            matches!(e.kind, ContainerEventKind::Start)
        })
        .await,
    );
    assert_eq!(seen, [ContainerEventKind::Start]);
    env.rt
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    env.rt.remove(&id).await.expect("remove");
    let seen = kinds(
        events_until(&mut feed, &id, |e| {
            matches!(e.kind, ContainerEventKind::Destroy)
        })
        .await,
    );
    // The stop and the removal may fall between two polls: then the feed
    // saw the task run but not end, and cannot know the code.
    assert!(
        matches!(
            seen.as_slice(),
            [
                ContainerEventKind::Die {
                    exit_code: Some(0) | None
                },
                ContainerEventKind::Destroy
            ]
        ),
        "die, then destroy, once each: {seen:?}"
    );
    let missing = env.rt.inspect(&id).await;
    assert!(
        matches!(missing, Err(RuntimeError::NotFound(_))),
        "{missing:?}"
    );
}

fn kinds(events: Vec<ContainerEvent>) -> Vec<ContainerEventKind> {
    events.into_iter().map(|e| e.kind).collect()
}

/// The events of `id` up to the first that `last` accepts.
async fn events_until(
    feed: &mut (impl futures_util::Stream<Item = FeedItem> + Unpin),
    id: &ContainerId,
    last: impl Fn(&ContainerEvent) -> bool,
) -> Vec<ContainerEvent> {
    let mut events = vec![];
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, feed.next())
            .await
            .expect("in time")
        {
            Some(FeedItem::Event(e)) if &e.container_id == id => {
                let done = last(&e);
                events.push(e);
                if done {
                    return events;
                }
            }
            Some(FeedItem::Lost(e)) => panic!("lost: {e}"),
            Some(_) => {}
            None => panic!("the feed ended"),
        }
    }
}

#[test]
fn construction_refuses_weaker_isolation_unless_accepted() {
    let guard = rtm_testkit::docker::OwnerGuard::new();
    let config = test_config(&guard, "rtm-engines", |c: &mut SwarmConfig| {
        c.accept_weaker_isolation = false;
    });
    let refused = SwarmRuntime::new(config);
    assert!(
        matches!(refused, Err(SwarmConfigError::WeakerIsolation)),
        "{:?}",
        refused.err()
    );
    let message = SwarmConfigError::WeakerIsolation.to_string();
    assert!(message.contains("no-new-privileges") && message.contains("swap"));
}

/// The domain's patch, step by step on the adapter: the old engine is
/// stopped and parked as `rtmold-<game>`, a new service takes
/// `rtm-<game>` and its DNS name; the rollback removes the new one, gives
/// the old one its name back and starts it, under the same service id.
#[tokio::test]
async fn a_patch_parks_the_old_service_and_a_rollback_restores_it() {
    let env = Env::new();
    let (spec, old) = env.running("1.0.0").await;
    let net = env.rt.config().docker.network.clone();
    let parked = spec.game_id.parked_container_name();

    env.rt
        .stop(&old, Duration::from_secs(20))
        .await
        .expect("stop old");
    env.rt.rename(&old, &parked).await.expect("park old");
    let new_spec = rtm_domain::ports::ContainerSpec {
        image: rtm_domain::ImageRef::parse(&rtm_testkit::docker::engine_image("1.0.1")).unwrap(),
        ..spec.clone()
    };
    let new = env
        .rt
        .create(&new_spec)
        .await
        .expect("the name is free again");
    assert_ne!(new, old);
    env.rt.start(&new).await.expect("start new");
    let new_ip = env.rt.inspect(&new).await.unwrap().ip.expect("an address");
    assert_eq!(resolve(&net, &spec.name), Some(new_ip.to_string()));
    let names: Vec<_> = env
        .rt
        .list(Some(&spec.game_id))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.running))
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&(spec.name.clone(), true)), "{names:?}");
    assert!(names.contains(&(parked.clone(), false)), "{names:?}");

    // Rollback.
    env.rt.remove(&new).await.expect("remove new");
    env.rt
        .rename(&old, &spec.name)
        .await
        .expect("old name back");
    env.rt.start(&old).await.expect("start old again");
    let info = env.rt.inspect(&old).await.unwrap();
    assert!(info.summary.running);
    assert_eq!(info.summary.name, spec.name);
    assert_eq!(
        info.summary.image_ref.as_deref(),
        Some(spec.image.to_string().as_str())
    );
    assert_eq!(
        resolve(&net, &spec.name),
        Some(info.ip.expect("ip").to_string())
    );
}

/// Removes a network this test had the adapter create, once Swarm has
/// let go of it (bounded: 60 tries, 30 s).
struct OwnNetwork(String);

impl Drop for OwnNetwork {
    fn drop(&mut self) {
        for _ in 0..60 {
            if docker(&["network", "rm", &self.0]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("could not remove network {}", self.0);
    }
}

#[tokio::test]
async fn the_adapter_creates_its_overlay_network_and_again_after_it_was_removed() {
    let name = rtm_testkit::unique("rtmswarm-own").replace('_', "-");
    let net = OwnNetwork(name.clone());
    let env = Env::with(|c| c.docker.network = name.clone());
    let (_, first) = env.running("1.0.0").await;
    let created = crate::inspect_json("network", &name);
    assert_eq!(created["Driver"], "overlay");
    assert_eq!(created["Attachable"], true);
    assert_eq!(created["Labels"]["rtm.managed"], "true");

    env.rt.remove(&first).await.expect("remove");
    let deadline = Instant::now() + DEADLINE;
    while docker(&["network", "rm", &name]).is_err() {
        assert!(Instant::now() < deadline, "the network stayed in use");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The adapter still believes the network exists: the create fails
    // once, and succeeds after the network is made again.
    let (_, second) = env.running("1.0.0").await;
    assert!(env.rt.inspect(&second).await.unwrap().ip.is_some());
    drop(env);
    drop(net);
}
