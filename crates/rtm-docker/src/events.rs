//! The event feed of the runtime port: Docker's event stream, kept
//! connected, as a `'static` stream of [`FeedItem`]s.
//!
//! docker-api 0.14's `Docker::events` borrows the client for the stream's
//! whole life, and the port needs a `'static` stream. So a tokio task owns
//! a client clone and the borrowing stream, and forwards mapped items into
//! a bounded channel whose receiver is the stream handed out.
//!
//! Semantics (the port's contract, and Docker's quirks behind it):
//! - filters: `type=container`, `label=rtm.owner=<owner>`, events `start`,
//!   `die`, `oom`, `kill`, `destroy`, `health_status`; anything else is
//!   dropped;
//! - `Connected` first, as the subscription is being opened; when Docker
//!   ends the connection or it fails, `Lost(why)`, a back-off (0.5 s
//!   doubling to 30 s; back to 0.5 s after a subscription that delivered
//!   something), then a new subscription and `Connected` again — forever,
//!   until the stream is dropped;
//! - a resubscription resumes with `since` = the latest event time seen.
//!   Docker takes `since` in whole seconds (docker-api truncates it), so
//!   the resumption replays the start of that second: events up to the
//!   resume point that were already yielded are dropped (a bounded memory
//!   of the last 4,096 events, keyed by container, kind and nanosecond
//!   time), so nothing is yielded twice. Live events are never dropped;
//! - the task stops as soon as the stream is dropped (it watches the
//!   channel), so abandoned feeds do not hold connections;
//! - backpressure: the channel holds 1024 items; a slow consumer slows the
//!   reading of Docker's connection, it never loses events.
//!
//! The stream must be polled inside a tokio runtime. When one is current at
//! subscription time the task starts at once (the connection opens before
//! the first poll, which helps "subscribe first, then list").

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use docker_api::opts::{EventFilter, EventFilterType, EventsOpts};
use docker_api::Docker;
use futures_util::{Future, Stream, StreamExt};
use rtm_domain::ports::{ContainerEvent, FeedItem};
use rtm_domain::RuntimeError;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::convert::{self, LABEL_OWNER};
use crate::error::to_runtime;

type Pump = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many mapped items wait for the consumer before Docker's connection
/// is read more slowly.
const BUFFER: usize = 1024;
/// Back-off before resubscribing: starts here, doubles after each
/// subscription that delivered nothing, never exceeds [`RESUBSCRIBE_MAX`].
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(30);
/// How many recent events are remembered to drop a resumption's replays.
const DEDUPE_CAPACITY: usize = 4096;

enum State {
    /// No runtime was current at subscription: start on first poll.
    Pending(Pump, mpsc::Receiver<FeedItem>),
    Running(mpsc::Receiver<FeedItem>),
}

pub(crate) fn feed(docker: Docker, owner: String) -> impl Stream<Item = FeedItem> + Send + 'static {
    let (tx, rx) = mpsc::channel(BUFFER);
    let pump: Pump = Box::pin(pump(docker, owner, tx));
    let state = match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(pump);
            State::Running(rx)
        }
        Err(_) => State::Pending(pump, rx),
    };
    futures_util::stream::unfold(state, |state| async move {
        let mut rx = match state {
            State::Pending(pump, rx) => {
                tokio::spawn(pump);
                rx
            }
            State::Running(rx) => rx,
        };
        let item = rx.recv().await?;
        Some((item, State::Running(rx)))
    })
}

fn options(owner: &str, since: Option<OffsetDateTime>) -> EventsOpts {
    let mut b = EventsOpts::builder().filter(vec![
        EventFilter::Type(EventFilterType::Container),
        EventFilter::Label(format!("{LABEL_OWNER}={owner}")),
        EventFilter::Event("start".to_owned()),
        EventFilter::Event("die".to_owned()),
        EventFilter::Event("oom".to_owned()),
        EventFilter::Event("kill".to_owned()),
        EventFilter::Event("destroy".to_owned()),
        // Docker matches `health_status` against `health_status: <result>`.
        EventFilter::Event("health_status".to_owned()),
    ]);
    if let Some(since) = since {
        if let Some(t) = chrono::DateTime::from_timestamp(since.unix_timestamp(), 0) {
            b = b.since(&t);
        }
    }
    b.build()
}

/// Keeps subscriptions open until the consumer drops the stream.
async fn pump(docker: Docker, owner: String, tx: mpsc::Sender<FeedItem>) {
    let mut resume = Resume::default();
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        if tx.send(FeedItem::Connected).await.is_err() {
            return;
        }
        let Some((lost, delivered)) = subscription(&docker, &owner, &mut resume, &tx).await else {
            return;
        };
        tracing::warn!(error = %lost, ?backoff, "docker event stream lost; resubscribing");
        if tx.send(FeedItem::Lost(lost)).await.is_err() {
            return;
        }
        if delivered {
            backoff = RESUBSCRIBE_MIN;
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = next_backoff(backoff, RESUBSCRIBE_MAX);
    }
}

/// One subscription, until it breaks: `Some((why, delivered anything))`,
/// or `None` when the consumer went away.
async fn subscription(
    docker: &Docker,
    owner: &str,
    resume: &mut Resume,
    tx: &mpsc::Sender<FeedItem>,
) -> Option<(RuntimeError, bool)> {
    let replay_until = resume.since;
    let opts = options(owner, resume.since);
    let mut events = docker.events(&opts);
    let mut delivered = false;
    loop {
        let next = tokio::select! {
            // The consumer dropped the stream: close Docker's connection.
            () = tx.closed() => return None,
            next = events.next() => next,
        };
        match next {
            None => {
                let why = RuntimeError::Unavailable("docker ended the event stream".into());
                return Some((why, delivered));
            }
            Some(Err(e)) => return Some((to_runtime(e, "docker events"), delivered)),
            Some(Ok(msg)) => {
                let Some(event) = convert::container_event(&msg, owner) else {
                    continue;
                };
                delivered = true;
                if !resume.fresh(&event, replay_until) {
                    continue;
                }
                tx.send(FeedItem::Event(event)).await.ok()?;
            }
        }
    }
}

/// Where a resubscription resumes, and what it may replay.
#[derive(Debug)]
struct Resume {
    /// The latest event time yielded.
    since: Option<OffsetDateTime>,
    recent: RecentEvents,
}

impl Default for Resume {
    fn default() -> Self {
        Self {
            since: None,
            recent: RecentEvents::new(DEDUPE_CAPACITY),
        }
    }
}

impl Resume {
    /// Whether `event` is to be yielded: not a replay of one already
    /// yielded. Only events at or before `replay_until` (the current
    /// subscription's resume point) can be replays.
    fn fresh(&mut self, event: &ContainerEvent, replay_until: Option<OffsetDateTime>) -> bool {
        let new = self.recent.insert(event_key(event));
        let in_replay = replay_until.is_some_and(|until| event.at <= until);
        if in_replay && !new {
            return false;
        }
        self.since = Some(self.since.map_or(event.at, |s| s.max(event.at)));
        true
    }
}

/// The identity of an event for replay detection.
type EventKey = (String, String, i128);

fn event_key(e: &ContainerEvent) -> EventKey {
    (
        e.container_id.as_str().to_owned(),
        format!("{:?}", e.kind),
        e.at.unix_timestamp_nanos(),
    )
}

/// A bounded set of recently seen events (oldest forgotten first).
#[derive(Debug)]
struct RecentEvents {
    capacity: usize,
    order: VecDeque<EventKey>,
    set: HashSet<EventKey>,
}

impl RecentEvents {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Remembers `key`; false when it was already there.
    fn insert(&mut self, key: EventKey) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

fn next_backoff(current: Duration, max: Duration) -> Duration {
    current
        .saturating_mul(2)
        .min(max)
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use rtm_domain::ports::ContainerEventKind;
    use rtm_domain::ContainerId;

    use super::*;

    fn event(container: &str, kind: ContainerEventKind, at_ms: i64) -> ContainerEvent {
        ContainerEvent {
            container_id: ContainerId::new(container).unwrap(),
            game_id: None,
            kind,
            at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
                + time::Duration::milliseconds(at_ms),
        }
    }

    #[test]
    fn recent_events_forget_the_oldest() {
        let mut r = RecentEvents::new(2);
        let k = |n: i128| ("c".to_owned(), "Start".to_owned(), n);
        assert!(r.insert(k(1)));
        assert!(!r.insert(k(1)));
        assert!(r.insert(k(2)));
        assert!(r.insert(k(3)));
        assert!(r.insert(k(1)), "evicted, so new again");
    }

    #[test]
    fn a_resumption_drops_its_replays_and_keeps_everything_else() {
        let mut resume = Resume::default();
        let start = event("a", ContainerEventKind::Start, 100);
        let die = event("a", ContainerEventKind::Die { exit_code: Some(3) }, 400);
        // First subscription: nothing to replay.
        assert!(resume.fresh(&start, None));
        assert!(resume.fresh(&die, None));
        assert_eq!(resume.since, Some(die.at));
        // The resumption replays the whole second: both again, dropped.
        let until = resume.since;
        assert!(!resume.fresh(&start, until));
        assert!(!resume.fresh(&die, until));
        // Another event of that second, missed while lost: kept.
        let missed = event("b", ContainerEventKind::Die { exit_code: Some(1) }, 300);
        assert!(resume.fresh(&missed, until));
        // Live events are never dropped, even with a key seen before.
        let live_again = event("a", ContainerEventKind::Start, 100);
        assert!(resume.fresh(&live_again, None));
        assert_eq!(resume.since, Some(die.at), "never moves back");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let mut b = RESUBSCRIBE_MIN;
        for _ in 0..20 {
            b = next_backoff(b, RESUBSCRIBE_MAX);
        }
        assert_eq!(b, RESUBSCRIBE_MAX);
        assert_eq!(
            next_backoff(Duration::from_secs(1), RESUBSCRIBE_MAX),
            Duration::from_secs(2)
        );
    }
}
