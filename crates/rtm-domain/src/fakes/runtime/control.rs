//! The test controls of [`FakeRuntime`]: failure injection, call
//! counters, seeding containers and images, and scripted engine behaviour
//! (crashes, OOM kills, vanishing containers, Docker health, logs, broken
//! event feeds). What the port itself does is in the parent module.

use std::net::IpAddr;
use std::sync::Arc;

use super::{FakeRuntime, RuntimeCall, RuntimeState};
use crate::fakes::{down, lock};
use crate::ports::{
    Clock, ContainerEvent, ContainerEventKind, ContainerInfo, ContainerState, ContainerSummary,
    DockerHealth, FeedItem, LogLine, LogStream,
};
use crate::{ContainerId, GameId, ImageRef, RuntimeError};

impl FakeRuntime {
    /// State directories deleted through `remove_state`, in order.
    pub fn removed_states(&self) -> Vec<String> {
        lock(&self.inner).removed_states.clone()
    }

    /// Makes every call fail with `Unavailable` while `down`. The open
    /// event feeds yield `Lost` when it goes down and `Connected` when it
    /// is back, as the Docker adapter's reconnecting feed does.
    pub fn set_unavailable(&self, down: bool) {
        let mut s = lock(&self.inner);
        if s.unavailable == down {
            return;
        }
        s.unavailable = down;
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &s.subscribers {
            lock(chan).push(if down {
                FeedItem::Lost(RuntimeError::Unavailable(self::down("docker")))
            } else {
                FeedItem::Connected
            });
        }
    }

    /// Makes the next call to `call` fail with `error` (queued: several
    /// injections fail several calls).
    pub fn fail_next(&self, call: RuntimeCall, error: RuntimeError) {
        lock(&self.inner)
            .failures
            .entry(call)
            .or_default()
            .push_back(error);
    }

    /// Marks an image as present locally (no pull needed).
    pub fn add_image(&self, image: &str) {
        lock(&self.inner).images.insert(image.to_owned());
    }

    /// Whether `image` is present (added, or pulled by `ensure_image`).
    pub fn has_image(&self, image: &str) -> bool {
        lock(&self.inner).images.contains(image)
    }

    /// Makes pulling `image` fail with `message`.
    pub fn set_unpullable(&self, image: &str, message: &str) {
        lock(&self.inner)
            .unpullable
            .insert(image.to_owned(), message.to_owned());
    }

    /// Containers of `image` exit with `exit_code` right after they start
    /// (like the `broken` engine stub).
    pub fn set_broken(&self, image: &str, exit_code: i64) {
        lock(&self.inner).broken.insert(image.to_owned(), exit_code);
    }

    /// How many times `call` was made (failed calls included).
    pub fn calls(&self, call: RuntimeCall) -> usize {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(c, _)| *c == call)
            .count()
    }

    /// Every call with its main argument (container id, name or image).
    pub fn call_log(&self) -> Vec<(RuntimeCall, String)> {
        lock(&self.inner).calls.clone()
    }

    /// How many calls changed (or tried to change) something.
    pub fn mutating_calls(&self) -> usize {
        lock(&self.inner)
            .calls
            .iter()
            .filter(|(c, _)| RuntimeCall::MUTATING.contains(c))
            .count()
    }

    /// The container as `inspect` would show it, if it exists.
    pub fn container(&self, id: &ContainerId) -> Option<ContainerInfo> {
        lock(&self.inner).containers.get(id).map(RuntimeState::view)
    }

    /// Gives the container another address, as a restart, a start after a
    /// stop or a network reconnect does on Docker (emits nothing).
    pub fn readdress(&self, id: &ContainerId, ip: IpAddr) {
        if let Ok(info) = lock(&self.inner).get_mut(id) {
            info.ip = Some(ip);
        }
    }

    /// Every container, in no particular order.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        lock(&self.inner).containers.values().cloned().collect()
    }

    /// Adds (or replaces) a container as-is, e.g. one left by a crash.
    pub fn insert(&self, info: ContainerInfo) {
        lock(&self.inner)
            .containers
            .insert(info.summary.id.clone(), info);
    }

    /// Creates and starts a container for `game` outside the domain (test
    /// setup), returning its id. Emits no event.
    pub fn spawn_running(&self, game: &GameId, image: &ImageRef, state_path: &str) -> ContainerId {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        let id = Self::fresh_id(&mut s);
        let ip = Self::fresh_ip(&mut s);
        s.images.insert(image.to_string());
        let info = ContainerInfo {
            summary: ContainerSummary {
                id: id.clone(),
                name: game.container_name(),
                game_id: Some(game.clone()),
                image_ref: Some(image.to_string()),
                state_path: Some(state_path.to_owned()).filter(|p| !p.is_empty()),
                running: true,
                created_at: now,
                health: None,
                ip: Some(ip),
            },
            state: ContainerState::Running,
            exit_code: None,
            oom_killed: false,
            health: None,
            ip: Some(ip),
            started_at: Some(now),
            finished_at: None,
        };
        s.containers.insert(id.clone(), info);
        id
    }

    /// The engine exits on its own with `exit_code` (emits `die`).
    pub fn crash(&self, id: &ContainerId, exit_code: i64) {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            RuntimeState::mark_exited(info, exit_code, false, now);
            self.event(
                &mut s,
                id,
                ContainerEventKind::Die {
                    exit_code: Some(exit_code),
                },
            );
        }
    }

    /// `docker kill`: the runtime sends SIGKILL (a `kill` event with
    /// signal 9), then the engine dies with 137 (`die`); no `OOMKilled`.
    pub fn docker_kill(&self, id: &ContainerId) {
        self.signal(id, 9);
        self.crash(id, 137);
    }

    /// The runtime reports having sent `signal` to the container (a
    /// `kill` event) and nothing else happens; with
    /// [`FakeRuntime::crash`] before it, models Docker reporting the
    /// `die` of its own SIGKILL before the `kill`.
    pub fn signal(&self, id: &ContainerId, signal: i64) {
        // A `kill` reported after the `die` is stamped after it.
        self.clock.advance(std::time::Duration::from_millis(3));
        let mut s = lock(&self.inner);
        if s.get_mut(id).is_ok() {
            self.event(
                &mut s,
                id,
                ContainerEventKind::Kill {
                    signal: Some(signal),
                },
            );
        }
    }

    /// The kernel OOM-kills the engine: `oom` then `die` with 137, and
    /// inspect shows `OOMKilled`.
    pub fn oom_kill(&self, id: &ContainerId) {
        let now = self.clock.now();
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            RuntimeState::mark_exited(info, 137, true, now);
            self.event(&mut s, id, ContainerEventKind::Oom);
            self.event(
                &mut s,
                id,
                ContainerEventKind::Die {
                    exit_code: Some(137),
                },
            );
        }
    }

    /// An OOM kill as Docker reports it when containerd's exit event
    /// overtakes its OOM event: `die` with 137 and no `OOMKilled` yet;
    /// [`FakeRuntime::late_oom`] delivers the rest.
    pub fn oom_kill_exit_first(&self, id: &ContainerId) {
        self.crash(id, 137);
    }

    /// The late half of [`FakeRuntime::oom_kill_exit_first`]: `oom` is
    /// emitted, and with `flag` inspect shows `OOMKilled` from now on (some
    /// Docker versions never set it once the exit is recorded).
    pub fn late_oom(&self, id: &ContainerId, flag: bool) {
        // Docker stamps it a few milliseconds after the `die`.
        self.clock.advance(std::time::Duration::from_millis(5));
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            info.oom_killed = flag;
            self.event(&mut s, id, ContainerEventKind::Oom);
        }
    }

    /// Someone removes the container behind RTM's back (emits `destroy`
    /// when `with_event`, else it silently vanishes, as if the event was
    /// missed).
    pub fn vanish(&self, id: &ContainerId, with_event: bool) {
        let mut s = lock(&self.inner);
        if with_event {
            self.event(&mut s, id, ContainerEventKind::Destroy);
        }
        s.containers.remove(id);
    }

    /// Sets Docker's own health-check result (emits `health_status` when
    /// it is a change).
    pub fn set_health(&self, id: &ContainerId, health: Option<DockerHealth>) {
        let mut s = lock(&self.inner);
        if let Ok(info) = s.get_mut(id) {
            let changed = info.health != health;
            info.health = health;
            if let (true, Some(h)) = (changed, health) {
                self.event(&mut s, id, ContainerEventKind::Health(h));
            }
        }
    }

    /// Appends a line to the container's output, stamped with the clock.
    pub fn write_log(&self, id: &ContainerId, stream: LogStream, text: &str) {
        let at = self.clock.now();
        lock(&self.inner)
            .output
            .entry(id.clone())
            .or_default()
            .push(LogLine {
                stream,
                at: Some(at),
                text: text.to_owned(),
            });
    }

    /// Injects an arbitrary event (recorded for `since` replays too).
    pub fn emit(&self, event: ContainerEvent) {
        lock(&self.inner).emit(event);
    }

    /// Breaks every open event feed's connection, which reconnects at
    /// once: each yields `Lost`, then `Connected`.
    pub fn break_feeds(&self) {
        let mut s = lock(&self.inner);
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        for chan in &s.subscribers {
            let mut c = lock(chan);
            c.push(FeedItem::Lost(RuntimeError::Unavailable(
                "connection reset".into(),
            )));
            c.push(FeedItem::Connected);
        }
    }

    /// How many events wait in open streams, not yet taken by their
    /// subscriber (0 once a follower has caught up).
    pub fn undelivered(&self) -> usize {
        let s = lock(&self.inner);
        s.subscribers.iter().map(|c| lock(c).queue.len()).sum()
    }

    /// How many event feeds are open (held by someone).
    pub fn subscribers(&self) -> usize {
        let mut s = lock(&self.inner);
        s.subscribers.retain(|c| Arc::strong_count(c) > 1);
        s.subscribers.len()
    }
}
