//! The event subscription as a `'static` stream.
//!
//! docker-api 0.14's `Docker::events` borrows the client for the stream's
//! whole life, and the port needs a `'static` stream. So a tokio task owns
//! a client clone and the borrowing stream, and forwards mapped events into
//! a bounded channel whose receiver is the stream handed out.
//!
//! Semantics:
//! - filters: `type=container`, `label=rtm.owner=<owner>`, events `start`,
//!   `die`, `oom`, `destroy`, `health_status`; anything else is dropped;
//! - `since` is sent with whole-second precision (docker-api truncates it),
//!   rounded down, so a resubscription may replay events the caller has
//!   seen: the caller dedupes (container id, kind, time);
//! - the stream ends when Docker ends the connection, and yields one `Err`
//!   first when the connection failed; it never reconnects by itself;
//! - the task stops as soon as the stream is dropped (it watches the
//!   channel), so abandoned subscriptions do not hold connections;
//! - backpressure: the channel holds 1024 events; a slow consumer slows the
//!   reading of Docker's connection, it never loses events.
//!
//! The stream must be polled inside a tokio runtime. When one is current at
//! subscription time the task starts at once (the connection opens before
//! the first poll, which helps "subscribe first, then list").

use std::pin::Pin;

use docker_api::opts::{EventFilter, EventFilterType, EventsOpts};
use docker_api::Docker;
use futures_util::{Future, Stream, StreamExt};
use rtm_domain::ports::ContainerEvent;
use rtm_domain::RuntimeError;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::convert::{self, LABEL_OWNER};
use crate::error::to_runtime;

type Item = Result<ContainerEvent, RuntimeError>;
type Pump = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many mapped events wait for the consumer before Docker's connection
/// is read more slowly.
const BUFFER: usize = 1024;

enum State {
    /// No runtime was current at subscription: start on first poll.
    Pending(Pump, mpsc::Receiver<Item>),
    Running(mpsc::Receiver<Item>),
}

pub(crate) fn subscribe(
    docker: Docker,
    owner: String,
    since: Option<OffsetDateTime>,
) -> impl Stream<Item = Item> + Send + 'static {
    let (tx, rx) = mpsc::channel(BUFFER);
    let pump: Pump = Box::pin(pump(docker, owner, since, tx));
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

async fn pump(
    docker: Docker,
    owner: String,
    since: Option<OffsetDateTime>,
    tx: mpsc::Sender<Item>,
) {
    let opts = options(&owner, since);
    let mut events = docker.events(&opts);
    loop {
        let next = tokio::select! {
            // The consumer dropped the stream: close Docker's connection.
            () = tx.closed() => return,
            next = events.next() => next,
        };
        match next {
            None => return,
            Some(Ok(msg)) => {
                if let Some(event) = convert::container_event(&msg, &owner) {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "docker event stream failed");
                let _ = tx.send(Err(to_runtime(e, "docker events"))).await;
                return;
            }
        }
    }
}
