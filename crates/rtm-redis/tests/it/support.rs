//! Shared test fixtures: a recording command handler, a running consumer
//! handle, and bounded polling.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtm_domain::service::{OperationError, OperationOutcome, OperationRequest};
use rtm_domain::transition::Command;
use rtm_domain::{OpKind, OperationEntry, Outcome};
use rtm_redis::{CommandHandler, LobbyConfig, LobbyConsumer, LobbyStats, RedisError};
use time::OffsetDateTime;
use tokio::sync::{oneshot, Semaphore};

/// One successful handler call.
#[derive(Debug, Clone)]
pub struct Call {
    pub entry_id: String,
    pub game: String,
    pub req: OperationRequest,
}

#[derive(Debug, Default)]
struct State {
    /// Successful calls, in completion order.
    calls: Mutex<Vec<Call>>,
    /// Every call's entry id, in start order (failed ones too).
    attempts: Mutex<Vec<String>>,
    /// Entries whose operation counts as recorded without a call here
    /// (recorded by a consumer that died before its ack).
    preset: Mutex<HashSet<String>>,
    /// Game -> number of calls still to fail with a transient error.
    fail_first: Mutex<HashMap<String, usize>>,
    /// Games whose calls wait for `gate` before returning.
    gated: Mutex<HashSet<String>>,
    active_games: Mutex<HashSet<String>>,
    overlap: AtomicBool,
    active: AtomicUsize,
    max_active: AtomicUsize,
    delay_ms: AtomicUsize,
}

/// Records every call; can fail the first calls of a game, hold a game's
/// calls on a gate, and add a small delay so concurrency is real.
#[derive(Debug, Clone)]
pub struct TestHandler {
    state: Arc<State>,
    gate: Arc<Semaphore>,
}

impl Default for TestHandler {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl TestHandler {
    pub fn fail_first(&self, game: &str, n: usize) {
        self.state
            .fail_first
            .lock()
            .unwrap()
            .insert(game.to_owned(), n);
    }
    pub fn gate(&self, game: &str) {
        self.state.gated.lock().unwrap().insert(game.to_owned());
    }
    pub fn open_gate(&self) {
        self.gate.add_permits(1_000_000);
    }
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as usize, Ordering::Relaxed);
    }
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }
    pub fn attempts(&self) -> Vec<String> {
        self.state.attempts.lock().unwrap().clone()
    }
    /// Makes `entry_id` look recorded, as a commit by another consumer.
    pub fn preset_recorded(&self, entry_id: &str) {
        self.state
            .preset
            .lock()
            .unwrap()
            .insert(entry_id.to_owned());
    }
    pub fn overlapped(&self) -> bool {
        self.state.overlap.load(Ordering::Relaxed)
    }
    pub fn max_active(&self) -> usize {
        self.state.max_active.load(Ordering::Relaxed)
    }
}

impl CommandHandler for TestHandler {
    fn handle(
        &self,
        req: OperationRequest,
    ) -> impl Future<Output = Result<OperationOutcome, OperationError>> + Send {
        let state = self.state.clone();
        let gate = self.gate.clone();
        async move {
            let game = req.game_id.to_string();
            let entry_id = req
                .source_ref
                .clone()
                .expect("lobby requests carry the entry id");
            state.attempts.lock().unwrap().push(entry_id.clone());
            if !state.active_games.lock().unwrap().insert(game.clone()) {
                state.overlap.store(true, Ordering::Relaxed);
            }
            let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_active.fetch_max(now, Ordering::SeqCst);

            let delay = state.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            }
            let fail = {
                let mut f = state.fail_first.lock().unwrap();
                match f.get_mut(&game) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                }
            };
            if !fail && state.gated.lock().unwrap().contains(&game) {
                let _permit = gate.acquire().await.expect("gate never closes");
            }

            state.active.fetch_sub(1, Ordering::SeqCst);
            state.active_games.lock().unwrap().remove(&game);
            if fail {
                return Err(OperationError::InProgress(req.game_id.clone()));
            }
            let out = outcome(&req);
            state.calls.lock().unwrap().push(Call {
                entry_id,
                game,
                req,
            });
            Ok(out)
        }
    }

    /// Like the operation log: an entry that had a successful call (or was
    /// preset) is recorded.
    fn recorded(
        &self,
        req: &OperationRequest,
    ) -> impl Future<Output = Result<Option<OperationEntry>, OperationError>> + Send {
        let state = self.state.clone();
        let req = req.clone();
        async move {
            let entry_id = req.source_ref.clone().unwrap_or_default();
            let done = state.preset.lock().unwrap().contains(&entry_id)
                || state
                    .calls
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|c| c.entry_id == entry_id);
            Ok(done.then(|| outcome(&req).operation))
        }
    }
}

/// A recorded success, built by hand as the domain would return it.
fn outcome(req: &OperationRequest) -> OperationOutcome {
    let now = OffsetDateTime::now_utc();
    let (kind, image) = match &req.command {
        Command::Start { image } => (OpKind::Start, Some(image.to_string())),
        Command::Patch { image } => (OpKind::Patch, Some(image.to_string())),
        Command::Stop => (OpKind::Stop, None),
        Command::Restart => (OpKind::Restart, None),
        Command::Cleanup => (OpKind::CleanupContainer, None),
    };
    OperationOutcome {
        operation: OperationEntry {
            id: 1,
            game_id: req.game_id.clone(),
            kind,
            source: req.source,
            source_ref: req.source_ref.clone(),
            image_ref: image,
            container_id: None,
            outcome: Outcome::Success,
            error: None,
            started_at: now,
            finished_at: Some(now),
        },
        record: None,
        replayed: false,
    }
}

/// Short timings so tests run fast; claim_idle long enough not to
/// interfere unless a test shortens it.
pub fn config(stream: &str, consumer: &str) -> LobbyConfig {
    let mut c = LobbyConfig::new(stream, "rtmanager", consumer);
    c.block = Duration::from_millis(200);
    c.retry_min = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(200);
    c.claim_idle = Duration::from_secs(30);
    c.client.command_timeout = Duration::from_secs(2);
    c.client.reconnect_max = Duration::from_millis(300);
    c
}

/// A consumer running in its own task.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RedisError>>,
    pub stats: LobbyStats,
}

pub fn spawn_consumer(url: &str, cfg: LobbyConfig, handler: TestHandler) -> Running {
    let consumer = LobbyConsumer::new(url, cfg, handler).expect("valid consumer config");
    let stats = consumer.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task,
        stats,
    }
}

impl Running {
    /// Graceful shutdown; fails the test if it takes more than 20 s.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().expect("not yet stopped").send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("consumer stops within 20 s")
            .expect("consumer task did not panic")
            .expect("run returns Ok");
    }

    /// Kills the consumer as a crash would: the task is aborted.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `check` every 20 ms until it holds; panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The group's pending count (0 when the group does not exist).
pub async fn pending(stats: &LobbyStats) -> Option<u64> {
    stats.group_info().await.ok().flatten().map(|g| g.pending)
}
