//! The event feed of a swarm, synthesized: Docker's container events are
//! node-local (a manager never sees a remote node's `die`), so the feed
//! lists the owned services and their tasks every
//! [`poll_interval`](crate::SwarmConfig::poll_interval) and turns what
//! changed into the port's events. What this process's own calls saw
//! (a task running after `start`, its end after `stop`, a service gone
//! after `remove`) arrives at once through the runtime's journal, so a
//! task that ran and ended between two polls is not missed.
//!
//! Both sources go through one [`Tracker`], which yields each event once:
//! `Start` once per task, `Die` once per task (after its `Start`, and
//! `Oom` before it when the task's own node said so), `Destroy` once per
//! service. The first poll only learns the present (the feed reports
//! from now on); then `Connected`. A failed poll yields `Lost` and
//! retries with a bounded back-off; the next good one yields `Connected`
//! and reports what changed meanwhile.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::Stream;
use rtm_domain::ports::{ContainerEvent, ContainerEventKind, FeedItem};
use rtm_domain::{ContainerId, GameId, RuntimeError};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::model::{self, Phase};
use crate::runtime::{SwarmRuntime, LABEL_LAST_END, LABEL_LAST_EXIT, LABEL_LAST_TASK};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Tasks remembered per service (a start replaces the task; a few are
/// plenty to drop duplicates).
const TASKS_KEPT: usize = 8;
/// Removed services remembered, so a late report does not destroy twice.
const GONE_KEPT: usize = 4096;

/// Something that happened to an owned service, as observed, dated when
/// it happened where that is known (`None`: when it is observed). The
/// date matters: the feed may learn of a task's end only after a later
/// start, and the monitor sets aside an exit dated before the record's
/// `started_at` instead of taking it for the end of that start.
#[derive(Debug, Clone)]
pub(crate) enum Observed {
    Running {
        service: String,
        game: Option<GameId>,
        task: String,
        at: Option<OffsetDateTime>,
    },
    Ended {
        service: String,
        game: Option<GameId>,
        task: String,
        exit: Option<i64>,
        oom: bool,
        at: Option<OffsetDateTime>,
    },
    Gone {
        service: String,
        game: Option<GameId>,
    },
}

#[derive(Debug, Default)]
struct Track {
    game: Option<GameId>,
    started: VecDeque<String>,
    ended: VecDeque<String>,
}

fn remember(q: &mut VecDeque<String>, task: &str) {
    q.push_back(task.to_owned());
    while q.len() > TASKS_KEPT {
        q.pop_front();
    }
}

/// Turns observations into events, each at most once.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    services: HashMap<String, Track>,
    gone: HashSet<String>,
    gone_order: VecDeque<String>,
}

impl Tracker {
    pub fn apply(&mut self, o: Observed, out: &mut Vec<ContainerEvent>) {
        let now = OffsetDateTime::now_utc();
        let event = |service: &str, game: &Option<GameId>, kind, at: Option<OffsetDateTime>| {
            ContainerId::new(service.to_owned()).map(|container_id| ContainerEvent {
                container_id,
                game_id: game.clone(),
                kind,
                at: at.unwrap_or(now),
            })
        };
        match o {
            Observed::Running {
                service,
                game,
                task,
                at,
            } => {
                if self.gone.contains(&service) {
                    return;
                }
                let t = self.services.entry(service.clone()).or_default();
                t.game = game;
                if !t.started.contains(&task) {
                    remember(&mut t.started, &task);
                    out.extend(event(&service, &t.game, ContainerEventKind::Start, at));
                }
            }
            Observed::Ended {
                service,
                game,
                task,
                exit,
                oom,
                at,
            } => {
                if self.gone.contains(&service) {
                    return;
                }
                let t = self.services.entry(service.clone()).or_default();
                t.game = game;
                if t.ended.contains(&task) {
                    return;
                }
                if !t.started.contains(&task) {
                    remember(&mut t.started, &task);
                    out.extend(event(&service, &t.game, ContainerEventKind::Start, at));
                }
                remember(&mut t.ended, &task);
                if oom {
                    out.extend(event(&service, &t.game, ContainerEventKind::Oom, at));
                }
                let die = ContainerEventKind::Die { exit_code: exit };
                out.extend(event(&service, &t.game, die, at));
            }
            Observed::Gone { service, game } => {
                if !self.gone.insert(service.clone()) {
                    return;
                }
                self.gone_order.push_back(service.clone());
                while self.gone_order.len() > GONE_KEPT {
                    if let Some(old) = self.gone_order.pop_front() {
                        self.gone.remove(&old);
                    }
                }
                let t = self.services.remove(&service).unwrap_or_default();
                let game = t.game.clone().or(game);
                // A task still running when its service went: it died
                // with it, code unknown.
                for task in &t.started {
                    if !t.ended.contains(task) {
                        let die = ContainerEventKind::Die { exit_code: None };
                        out.extend(event(&service, &game, die, None));
                    }
                }
                out.extend(event(&service, &game, ContainerEventKind::Destroy, None));
            }
        }
    }

    /// Whether the task's end was already reported (no need to ask its
    /// node about OOM again).
    fn ended(&self, service: &str, task: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|t| t.ended.iter().any(|e| e == task))
    }

    fn started_not_ended(&self, service: &str) -> Vec<String> {
        self.services
            .get(service)
            .map(|t| {
                t.started
                    .iter()
                    .filter(|s| !t.ended.contains(s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One look at every owned service and task, as observations.
async fn poll(rt: &SwarmRuntime, tracker: &Tracker) -> Result<Vec<Observed>, RuntimeError> {
    let services = rt.owned_services(None).await?;
    let ids = services.iter().map(|s| s.id.clone()).collect();
    let tasks = rt
        .inner
        .api
        .tasks(ids)
        .await
        .map_err(|e| crate::error::to_runtime(e, "list tasks"))?;
    let mut by_service = model::by_service(tasks);
    let mut out = Vec::new();
    let listed: HashSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
    for svc in &services {
        let game = svc.game_id();
        let mut tasks = by_service.remove(&svc.id).unwrap_or_default();
        tasks.sort_by(|a, b| (a.created(), &a.id).cmp(&(b.created(), &b.id)));
        for t in &tasks {
            let (service, task) = (svc.id.clone(), t.id.clone());
            match t.phase() {
                Phase::Running => out.push(Observed::Running {
                    service,
                    game: game.clone(),
                    task,
                    at: t.status_at(),
                }),
                Phase::Ended if !tracker.ended(&svc.id, &t.id) => {
                    let local = rt.local_facts(t).await;
                    out.push(Observed::Ended {
                        service,
                        game: game.clone(),
                        task,
                        exit: t.exit_code(),
                        oom: local.as_ref().is_some_and(|l| l.oom_killed),
                        at: model::ended_at(t, local.as_ref()),
                    });
                }
                // Its node is gone or it never ran: an end without a code,
                // reported only for a task seen running.
                Phase::Lost if tracker.started_not_ended(&svc.id).contains(&t.id) => {
                    out.push(Observed::Ended {
                        service,
                        game: game.clone(),
                        task,
                        exit: None,
                        oom: false,
                        at: model::ended_at(t, None),
                    })
                }
                _ => {}
            }
        }
        // Seen running, now deleted by Swarm (a scale to 0): the stop left
        // its exit on the service.
        for task in tracker.started_not_ended(&svc.id) {
            if tasks.iter().all(|t| t.id != task) {
                let kept = svc.label(LABEL_LAST_TASK) == Some(task.as_str());
                let exit = kept
                    .then(|| svc.label(LABEL_LAST_EXIT)?.parse().ok())
                    .flatten();
                let at = kept
                    .then(|| model::time_of(svc.label(LABEL_LAST_END)))
                    .flatten();
                out.push(Observed::Ended {
                    service: svc.id.clone(),
                    game: game.clone(),
                    task,
                    exit,
                    oom: false,
                    at,
                });
            }
        }
    }
    for (service, t) in &tracker.services {
        if !listed.contains(service.as_str()) {
            out.push(Observed::Gone {
                service: service.clone(),
                game: t.game.clone(),
            });
        }
    }
    Ok(out)
}

struct Feed {
    rt: SwarmRuntime,
    journal: broadcast::Receiver<Observed>,
    tracker: Tracker,
    pending: VecDeque<FeedItem>,
    opened: bool,
    connected: bool,
    backoff: Duration,
    next_poll: Instant,
}

impl Feed {
    fn push(&mut self, events: Vec<ContainerEvent>) {
        self.pending.extend(events.into_iter().map(FeedItem::Event));
    }

    /// One poll; its events, `Lost` or `Connected` go to `pending`.
    async fn tick(&mut self) {
        match poll(&self.rt, &self.tracker).await {
            Ok(observed) => {
                let mut events = Vec::new();
                // What this process saw before the poll answered comes
                // first: a stop's exit code, then the removal the poll
                // reports as a vanished service.
                self.drain_journal(&mut events);
                for o in observed {
                    self.tracker.apply(o, &mut events);
                }
                if !self.opened {
                    // The present is not news: the feed starts now.
                    events.clear();
                    self.opened = true;
                }
                if !self.connected {
                    self.connected = true;
                    self.pending.push_back(FeedItem::Connected);
                }
                self.push(events);
                self.backoff = BACKOFF_MIN;
                self.next_poll = Instant::now() + self.rt.config().poll_interval;
            }
            Err(e) => {
                if !self.opened {
                    // The first item is always `Connected`.
                    self.opened = true;
                    self.pending.push_back(FeedItem::Connected);
                    self.connected = true;
                }
                if self.connected {
                    self.connected = false;
                    self.pending.push_back(FeedItem::Lost(e));
                }
                self.next_poll = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn drain_journal(&mut self, events: &mut Vec<ContainerEvent>) {
        loop {
            match self.journal.try_recv() {
                Ok(o) => self.tracker.apply(o, events),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    }

    async fn next(&mut self) -> FeedItem {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            if !self.opened {
                self.tick().await;
                continue;
            }
            tokio::select! {
                biased;
                got = self.journal.recv() => match got {
                    Ok(o) => {
                        let mut events = Vec::new();
                        self.tracker.apply(o, &mut events);
                        self.push(events);
                    }
                    // Too slow to follow the journal: polling covers it.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(self.next_poll).await;
                    }
                },
                () = tokio::time::sleep_until(self.next_poll) => self.tick().await,
            }
        }
    }
}

pub(crate) fn feed(rt: SwarmRuntime) -> impl Stream<Item = FeedItem> + Send + 'static {
    let feed = Feed {
        journal: rt.inner.journal.subscribe(),
        rt,
        tracker: Tracker::default(),
        pending: VecDeque::new(),
        opened: false,
        connected: false,
        backoff: BACKOFF_MIN,
        next_poll: Instant::now(),
    };
    futures_util::stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await;
        Some((item, feed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &mut Tracker, o: Observed) -> Vec<ContainerEventKind> {
        let mut out = Vec::new();
        t.apply(o, &mut out);
        out.into_iter().map(|e| e.kind).collect()
    }

    fn running(task: &str) -> Observed {
        Observed::Running {
            service: "s".into(),
            game: None,
            task: task.into(),
            at: None,
        }
    }

    fn ended(task: &str, exit: Option<i64>, oom: bool) -> Observed {
        Observed::Ended {
            service: "s".into(),
            game: None,
            task: task.into(),
            exit,
            oom,
            at: None,
        }
    }

    fn gone() -> Observed {
        Observed::Gone {
            service: "s".into(),
            game: None,
        }
    }

    #[test]
    fn each_event_once_whatever_reports_it() {
        let mut t = Tracker::default();
        assert_eq!(kinds(&mut t, running("t1")), [ContainerEventKind::Start]);
        assert!(
            kinds(&mut t, running("t1")).is_empty(),
            "seen by poll and journal"
        );
        let die0 = ContainerEventKind::Die { exit_code: Some(0) };
        assert_eq!(kinds(&mut t, ended("t1", Some(0), false)), [die0]);
        assert!(kinds(&mut t, ended("t1", Some(0), false)).is_empty());
        assert_eq!(kinds(&mut t, gone()), [ContainerEventKind::Destroy]);
        assert!(kinds(&mut t, gone()).is_empty());
        assert!(
            kinds(&mut t, running("t2")).is_empty(),
            "a late report of a gone service"
        );
    }

    #[test]
    fn an_end_never_seen_running_starts_first_and_oom_precedes_die() {
        let mut t = Tracker::default();
        assert_eq!(
            kinds(&mut t, ended("t1", Some(137), true)),
            [
                ContainerEventKind::Start,
                ContainerEventKind::Oom,
                ContainerEventKind::Die {
                    exit_code: Some(137)
                }
            ]
        );
    }

    #[test]
    fn an_end_keeps_the_time_it_happened_not_the_time_it_was_seen() {
        let mut t = Tracker::default();
        let then = OffsetDateTime::now_utc() - Duration::from_secs(30);
        let mut out = Vec::new();
        t.apply(
            Observed::Ended {
                service: "s".into(),
                game: None,
                task: "t1".into(),
                exit: Some(137),
                oom: true,
                at: Some(then),
            },
            &mut out,
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out.iter().all(|e| e.at == then), "{out:?}");
        let before = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        t.apply(running("t2"), &mut out);
        assert!(out[0].at >= before, "undated: when seen");
    }

    #[test]
    fn a_service_gone_with_a_running_task_dies_unknown_then_is_destroyed() {
        let mut t = Tracker::default();
        kinds(&mut t, running("t1"));
        assert_eq!(
            kinds(&mut t, gone()),
            [
                ContainerEventKind::Die { exit_code: None },
                ContainerEventKind::Destroy
            ]
        );
    }
}
