//! [`FakeRuntime`]: an in-memory container runtime that behaves like the
//! Docker adapter where the domain cares (unique names, `NotFound`, the
//! event feed that reconnects), with failure injection and scripted
//! engine behaviour (crashes, OOM kills, logs).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use time::OffsetDateTime;

mod control;

use super::{down, lock, FakeClock};
use crate::ports::{
    Clock, ContainerEvent, ContainerEventKind, ContainerInfo, ContainerLogs, ContainerRuntime,
    ContainerSpec, ContainerState, ContainerSummary, FeedItem, LogLine, LogQuery, LogTail,
};
use crate::{ContainerId, GameId, ImageRef, RuntimeError};

/// The [`ContainerRuntime`] methods, for failure injection and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeCall {
    /// [`ContainerRuntime::ping`].
    Ping,
    /// [`ContainerRuntime::ensure_image`].
    EnsureImage,
    /// [`ContainerRuntime::create`].
    Create,
    /// [`ContainerRuntime::start`].
    Start,
    /// [`ContainerRuntime::stop`].
    Stop,
    /// [`ContainerRuntime::remove`].
    Remove,
    /// [`ContainerRuntime::rename`].
    Rename,
    /// [`ContainerRuntime::inspect`].
    Inspect,
    /// [`ContainerRuntime::list`].
    List,
    /// [`ContainerRuntime::events`].
    Events,
    /// [`ContainerRuntime::logs`] and [`ContainerRuntime::follow_logs`].
    Logs,
}

impl RuntimeCall {
    /// Calls that change something in Docker.
    pub const MUTATING: &'static [RuntimeCall] = &[
        RuntimeCall::EnsureImage,
        RuntimeCall::Create,
        RuntimeCall::Start,
        RuntimeCall::Stop,
        RuntimeCall::Remove,
        RuntimeCall::Rename,
    ];
}

/// An in-memory container runtime that behaves like Docker where the
/// domain cares: names are unique, stopped containers are kept, actions
/// emit the events Docker would (`start`; `die` with exit code 0 on stop;
/// `destroy` on remove), and `since` replays past events at one-second
/// precision like Docker does.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<RuntimeState>>,
    clock: FakeClock,
}

#[derive(Debug, Default)]
struct RuntimeState {
    containers: BTreeMap<ContainerId, ContainerInfo>,
    images: HashSet<String>,
    /// Images whose pull fails (with this message).
    unpullable: HashMap<String, String>,
    /// Images whose engine exits with this code right after start.
    broken: HashMap<String, i64>,
    failures: HashMap<RuntimeCall, VecDeque<RuntimeError>>,
    unavailable: bool,
    calls: Vec<(RuntimeCall, String)>,
    /// State directories deleted through `remove_state`, in order.
    removed_states: Vec<String>,
    next_id: u64,
    next_ip: u32,
    log: Vec<ContainerEvent>,
    /// What each container wrote, oldest first.
    output: HashMap<ContainerId, Vec<LogLine>>,
    subscribers: Vec<Arc<Mutex<Chan>>>,
}

impl RuntimeState {
    /// Records the call and returns the injected failure, if any.
    fn enter(&mut self, call: RuntimeCall, arg: &str) -> Result<(), RuntimeError> {
        self.calls.push((call, arg.to_owned()));
        if self.unavailable {
            return Err(RuntimeError::Unavailable(down("docker")));
        }
        match self.failures.get_mut(&call).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn emit(&mut self, event: ContainerEvent) {
        self.log.push(event.clone());
        // A feed whose connection is down delivers nothing (the adapter's
        // inspect-on-reconnect is what catches up).
        if self.unavailable {
            return;
        }
        // Drop subscribers whose stream was dropped (we hold the last Arc).
        self.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &self.subscribers {
            lock(chan).push(FeedItem::Event(event.clone()));
        }
    }

    fn get_mut(&mut self, id: &ContainerId) -> Result<&mut ContainerInfo, RuntimeError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    /// The container as Docker reports it: the summary's address and
    /// health are the current ones (a stopped container has no address).
    fn view(info: &ContainerInfo) -> ContainerInfo {
        let mut v = info.clone();
        v.summary.ip = if info.summary.running { info.ip } else { None };
        v.summary.health = info.health;
        v
    }

    fn mark_exited(info: &mut ContainerInfo, code: i64, oom: bool, at: OffsetDateTime) {
        info.summary.running = false;
        info.state = ContainerState::Exited;
        info.exit_code = Some(code);
        info.oom_killed = oom;
        info.finished_at = Some(at);
        info.health = None;
    }
}

impl FakeRuntime {
    /// No image, no container; events are stamped with `clock`.
    pub fn new(clock: FakeClock) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }

    fn fresh_id(s: &mut RuntimeState) -> ContainerId {
        s.next_id += 1;
        // Docker ids are 64 hex digits; a recognisable prefix helps debugging.
        let hex = format!("fa4e{:060x}", s.next_id);
        ContainerId::new(hex).unwrap_or_else(|| unreachable!("non-empty by construction"))
    }

    fn fresh_ip(s: &mut RuntimeState) -> IpAddr {
        s.next_ip += 1;
        let n = s.next_ip;
        IpAddr::V4(Ipv4Addr::new(10, 88, (n >> 8) as u8, (n & 0xff) as u8))
    }

    fn event(&self, s: &mut RuntimeState, id: &ContainerId, kind: ContainerEventKind) {
        let game_id = s.containers.get(id).and_then(|c| c.summary.game_id.clone());
        s.emit(ContainerEvent {
            container_id: id.clone(),
            game_id,
            kind,
            at: self.clock.now(),
        });
    }
}

impl ContainerRuntime for FakeRuntime {
    fn ping(&self) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        std::future::ready(lock(&self.inner).enter(RuntimeCall::Ping, ""))
    }

    fn ensure_image(
        &self,
        image: &ImageRef,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let name = image.to_string();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::EnsureImage, &name).and_then(|()| {
            if s.images.contains(&name) {
                return Ok(());
            }
            match s.unpullable.get(&name) {
                Some(msg) => Err(RuntimeError::PullFailed(msg.clone())),
                None => {
                    s.images.insert(name);
                    Ok(())
                }
            }
        });
        std::future::ready(r)
    }

    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Create, &spec.name).and_then(|()| {
            if s.containers.values().any(|c| c.summary.name == spec.name) {
                return Err(RuntimeError::Conflict(format!(
                    "container name {:?} is already in use",
                    spec.name
                )));
            }
            let image = spec.image.to_string();
            if !s.images.contains(&image) {
                return Err(RuntimeError::Other(format!("no such image: {image}")));
            }
            // The address is assigned at the first start.
            let id = Self::fresh_id(&mut s);
            let info = ContainerInfo {
                summary: ContainerSummary {
                    id: id.clone(),
                    name: spec.name.clone(),
                    game_id: Some(spec.game_id.clone()),
                    image_ref: Some(image),
                    state_path: Some(spec.state_path.clone()).filter(|p| !p.is_empty()),
                    running: false,
                    created_at: now,
                    health: None,
                    ip: None,
                },
                state: ContainerState::Created,
                exit_code: None,
                oom_killed: false,
                health: None,
                ip: None,
                started_at: None,
                finished_at: None,
            };
            s.containers.insert(id.clone(), info);
            Ok(id)
        });
        std::future::ready(r)
    }

    fn start(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Start, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            if info.summary.running {
                return Ok(());
            }
            let ip = match info.ip {
                Some(ip) => ip,
                None => Self::fresh_ip(&mut s),
            };
            let info = s.get_mut(id)?;
            info.ip = Some(ip);
            info.summary.running = true;
            info.state = ContainerState::Running;
            info.exit_code = None;
            info.oom_killed = false;
            info.started_at = Some(now);
            info.finished_at = None;
            let image = info.summary.image_ref.clone().unwrap_or_default();
            self.event(&mut s, id, ContainerEventKind::Start);
            if let Some(&code) = s.broken.get(&image) {
                if let Ok(info) = s.get_mut(id) {
                    RuntimeState::mark_exited(info, code, false, now);
                }
                self.event(
                    &mut s,
                    id,
                    ContainerEventKind::Die {
                        exit_code: Some(code),
                    },
                );
            }
            Ok(())
        });
        std::future::ready(r)
    }

    fn stop(
        &self,
        id: &ContainerId,
        _grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Stop, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            if info.summary.running {
                RuntimeState::mark_exited(info, 0, false, now);
                self.event(&mut s, id, ContainerEventKind::Die { exit_code: Some(0) });
            }
            Ok(())
        });
        std::future::ready(r)
    }

    fn remove_state(&self, path: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = if s.unavailable {
            Err(RuntimeError::Unavailable(down("docker")))
        } else {
            s.removed_states.push(path.to_owned());
            Ok(())
        };
        std::future::ready(r)
    }

    fn remove(&self, id: &ContainerId) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Remove, id.as_str()).and_then(|()| {
            let info = s.get_mut(id)?;
            // Forced removal kills a running container first.
            if info.summary.running {
                RuntimeState::mark_exited(info, 137, false, now);
                self.event(
                    &mut s,
                    id,
                    ContainerEventKind::Die {
                        exit_code: Some(137),
                    },
                );
            }
            self.event(&mut s, id, ContainerEventKind::Destroy);
            s.containers.remove(id);
            Ok(())
        });
        std::future::ready(r)
    }

    fn rename(
        &self,
        id: &ContainerId,
        name: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s.enter(RuntimeCall::Rename, id.as_str()).and_then(|()| {
            let taken = s
                .containers
                .values()
                .any(|c| c.summary.name == name && &c.summary.id != id);
            if taken {
                return Err(RuntimeError::Conflict(format!(
                    "container name {name:?} is already in use"
                )));
            }
            s.get_mut(id)?.summary.name = name.to_owned();
            Ok(())
        });
        std::future::ready(r)
    }

    fn inspect(
        &self,
        id: &ContainerId,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s
            .enter(RuntimeCall::Inspect, id.as_str())
            .and_then(|()| s.get_mut(id).map(|c| RuntimeState::view(c)));
        std::future::ready(r)
    }

    fn list(
        &self,
        game: Option<&GameId>,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let arg = game.map(GameId::as_str).unwrap_or("");
        let r = s.enter(RuntimeCall::List, arg).map(|()| {
            s.containers
                .values()
                .filter(|c| game.is_none_or(|g| c.summary.game_id.as_ref() == Some(g)))
                .map(|c| RuntimeState::view(c).summary)
                .collect()
        });
        std::future::ready(r)
    }

    fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Future<Output = Result<ContainerLogs, RuntimeError>> + Send {
        let mut s = lock(&self.inner);
        let r = s
            .enter(RuntimeCall::Logs, id.as_str())
            .and_then(|()| s.get_mut(id).map(|_| ()))
            .map(|()| {
                let mut tail = LogTail::new(*query);
                for line in s.output.get(id).into_iter().flatten() {
                    tail.push(line.clone());
                }
                tail.finish()
            });
        std::future::ready(r)
    }

    /// The fake never waits for new lines: it yields what `logs` would
    /// (without the byte cap) and ends, as if the container stopped.
    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static {
        let uncapped = LogQuery {
            max_bytes: usize::MAX,
            ..*query
        };
        let items: VecDeque<_> = {
            let mut s = lock(&self.inner);
            match s
                .enter(RuntimeCall::Logs, id.as_str())
                .and_then(|()| s.get_mut(id).map(|_| ()))
            {
                Err(e) => VecDeque::from([Err(e)]),
                Ok(()) => {
                    let mut tail = LogTail::new(uncapped);
                    for line in s.output.get(id).into_iter().flatten() {
                        tail.push(line.clone());
                    }
                    tail.finish().lines.into_iter().map(Ok).collect()
                }
            }
        };
        LineStream { items }
    }

    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static {
        let mut s = lock(&self.inner);
        let chan = Arc::new(Mutex::new(Chan::default()));
        {
            let mut c = lock(&chan);
            c.push(FeedItem::Connected);
            if let Err(e) = s.enter(RuntimeCall::Events, "") {
                c.push(FeedItem::Lost(e));
            }
        }
        s.subscribers.push(Arc::clone(&chan));
        EventStream { chan }
    }
}

/// The shared queue behind one event feed (it never ends, as the port
/// promises).
#[derive(Debug, Default)]
struct Chan {
    queue: VecDeque<FeedItem>,
    waker: Option<Waker>,
}

impl Chan {
    fn push(&mut self, item: FeedItem) {
        self.queue.push_back(item);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The stream returned by [`FakeRuntime::events`].
#[derive(Debug)]
pub struct EventStream {
    chan: Arc<Mutex<Chan>>,
}

impl Stream for EventStream {
    type Item = FeedItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut c = lock(&self.chan);
        if let Some(item) = c.queue.pop_front() {
            Poll::Ready(Some(item))
        } else {
            c.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// The stream returned by [`FakeRuntime::follow_logs`].
#[derive(Debug)]
pub struct LineStream {
    items: VecDeque<Result<LogLine, RuntimeError>>,
}

impl Stream for LineStream {
    type Item = Result<LogLine, RuntimeError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.items.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakePorts;
    use futures_util::StreamExt;

    fn gid(s: &str) -> GameId {
        GameId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn runtime_actions_emit_docker_like_events_on_a_feed_that_reconnects() {
        fn kind(item: Option<FeedItem>) -> ContainerEventKind {
            match item {
                Some(FeedItem::Event(e)) => e.kind,
                other => panic!("expected an event, got {other:?}"),
            }
        }
        let ports = FakePorts::new();
        let rt = &ports.runtime;
        let image = ImageRef::parse("engine:1.0.0").unwrap();
        let mut events = rt.events();
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));
        rt.ensure_image(&image).await.unwrap();
        let spec = ContainerSpec {
            game_id: gid("g"),
            name: "rtm-g".into(),
            image: image.clone(),
            state_path: "/s/g".into(),
        };
        let id = rt.create(&spec).await.unwrap();
        assert!(matches!(
            rt.create(&spec).await,
            Err(RuntimeError::Conflict(_))
        ));
        rt.start(&id).await.unwrap();
        assert!(rt.inspect(&id).await.unwrap().ip.is_some());
        rt.stop(&id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(kind(events.next().await), ContainerEventKind::Start);
        assert_eq!(
            kind(events.next().await),
            ContainerEventKind::Die { exit_code: Some(0) }
        );

        // A broken connection: lost, then connected again at once.
        rt.break_feeds();
        assert!(matches!(events.next().await, Some(FeedItem::Lost(_))));
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));

        rt.fail_next(RuntimeCall::Inspect, RuntimeError::Other("boom".into()));
        assert!(matches!(rt.inspect(&id).await, Err(RuntimeError::Other(_))));
        assert!(rt.inspect(&id).await.is_ok());
        rt.set_unavailable(true);
        assert!(matches!(rt.ping().await, Err(RuntimeError::Unavailable(_))));
        assert!(matches!(
            events.next().await,
            Some(FeedItem::Lost(RuntimeError::Unavailable(_)))
        ));
        // A feed opened while Docker is down: its first attempt fails.
        let mut late = rt.events();
        assert!(matches!(late.next().await, Some(FeedItem::Connected)));
        assert!(matches!(late.next().await, Some(FeedItem::Lost(_))));
        rt.set_unavailable(false);
        assert!(matches!(events.next().await, Some(FeedItem::Connected)));
        assert!(matches!(late.next().await, Some(FeedItem::Connected)));
        assert_eq!(rt.calls(RuntimeCall::Create), 2);
        assert_eq!(rt.mutating_calls(), 5);
    }
}
