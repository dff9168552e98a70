//! Wiring: the production adapters plugged into the domain, the REST
//! listeners, the Lobby consumer and the background workers, and the
//! graceful shutdown of all of it.
//!
//! `start` returns once everything listens; `RunningApp::shutdown` stops
//! taking work (HTTP listeners, stream reads, worker ticks), lets in-flight
//! operations finish within `RTM_SHUTDOWN_TIMEOUT`, and abandons the rest
//! cleanly (they are atomic; the reconciler repairs what Docker kept).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use rtm_docker::DockerRuntime;
use rtm_domain::health::{HealthConfig, HealthMonitor, RelayWake};
use rtm_domain::ports::{
    Adapters, ContainerRuntime, HealthOutbox, OperationLog, Ports, UnitOfWork,
};
use rtm_domain::service::{OperationError, OperationOutcome, OperationRequest, RuntimeService};
use rtm_domain::OperationEntry;
use rtm_postgres::{PgConfig, PgLeader, PgLocks, PgStore};
use rtm_probe::{HttpProbe, ProbeConfig};
use rtm_redis::{CommandHandler, HealthStreamConfig, LobbyConsumer, RedisHealthPublisher};
use rtm_swarm::SwarmRuntime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::http::{self, probe_fn, AppState, DependencyStatus, Readiness, Tokens};
use crate::metrics::{Metrics, WorkerResult};
use crate::runtime::EngineRuntime;
use crate::workers::{self, PassObserver, ShutdownTrigger};

mod background;
use background::{spawn_workers, WorkerDeps};

/// The production adapter set.
#[derive(Debug)]
pub struct Prod;

impl Ports for Prod {
    type Store = PgStore;
    type Locks = PgLocks;
    type Runtime = EngineRuntime;
    type Probe = HttpProbe;
    type Clock = SystemClock;
    type Telemetry = Metrics;
}

/// A started application.
#[allow(missing_debug_implementations)] // actix's server handles have no Debug
pub struct RunningApp {
    /// Where the GM surface listens (the real port when 0 was asked).
    pub gm_addr: std::net::SocketAddr,
    /// Where the admin surface listens.
    pub admin_addr: std::net::SocketAddr,
    /// The domain service, for tests that want to drive it directly.
    pub service: Arc<RuntimeService<Prod>>,
    trigger: ShutdownTrigger,
    servers: Vec<actix_web::dev::ServerHandle>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    shutdown_timeout: Duration,
}

/// The Lobby consumer's handler: the domain service itself, and the
/// operation log for the lock-free "already recorded?" check of
/// redelivered entries.
struct ServiceHandler {
    service: Arc<RuntimeService<Prod>>,
    store: PgStore,
}

impl CommandHandler for ServiceHandler {
    fn handle(
        &self,
        req: OperationRequest,
    ) -> impl std::future::Future<Output = Result<OperationOutcome, OperationError>> + Send {
        let service = self.service.clone();
        async move { service.execute(req).await }
    }

    fn recorded(
        &self,
        req: &OperationRequest,
    ) -> impl std::future::Future<Output = Result<Option<OperationEntry>, OperationError>> + Send
    {
        let store = self.store.clone();
        let (game, source) = (req.game_id.clone(), req.source);
        let source_ref = req.source_ref.clone().filter(|r| !r.is_empty());
        async move {
            let Some(source_ref) = source_ref else {
                return Ok(None);
            };
            Ok(store.find_by_source_ref(&game, source, &source_ref).await?)
        }
    }
}

impl PassObserver for Metrics {
    fn pass_finished(&self, worker: &'static str, ok: bool, _elapsed: Duration) {
        self.worker_run(
            worker,
            if ok {
                WorkerResult::Ok
            } else {
                WorkerResult::Error
            },
        );
    }

    fn pass_overran(&self, worker: &'static str) {
        self.worker_overrun(worker);
    }

    fn leading(&self, worker: &'static str, leading: bool) {
        self.set_leader(worker, leading);
    }
}

/// Sets up `tracing` (see [`crate::logging`]).
pub fn init_tracing(format: LogFormat) {
    crate::logging::init(format);
}

/// Completes on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn health_config(config: &Config) -> HealthConfig {
    let h = &config.health;
    HealthConfig {
        probe_failures: h.probe_failures,
        probe_concurrency: h.probe_concurrency,
        // Spread one pass's probes over most of what the interval leaves
        // after the last probe's timeout, so a pass (whose next one starts
        // an interval after it started) ends within its slot even when
        // the last engines hang.
        probe_spread: (h.probe_interval.saturating_sub(h.probe_timeout) * 4 / 5)
            .min(Duration::from_secs(30)),
        snapshot_refresh: h.inspect_interval,
        engine_port: config.docker.engine_port,
        ..HealthConfig::default()
    }
}

/// Applies the migrations, retrying while PostgreSQL is not reachable yet
/// (a replica often starts before its database): up to ~60 s.
async fn migrate_on_start(pg: &PgConfig) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0;
    loop {
        match rtm_postgres::migrate(pg).await {
            Ok(report) => {
                info!(?report, "migrations applied");
                return Ok(());
            }
            Err(e) if attempts < 20 => {
                warn!(error = %e, "migrations could not run yet; retrying");
                attempts += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("applying migrations (RTM_MIGRATE_ON_START)"),
        }
    }
}

/// Starts everything; returns once the listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    crate::logging::log_config(&config);
    let pg = &config.postgres;
    if config.migrate_on_start {
        migrate_on_start(pg).await?;
    }
    let store = PgStore::new(pg).context("PostgreSQL pool")?;
    let locks = PgLocks::new(pg).context("PostgreSQL locks")?;
    let leader = PgLeader::new(pg)
        .context("PostgreSQL leader election")?
        .with_instance(&config.instance_id);
    let runtime = match config.swarm_config() {
        None => EngineRuntime::Docker(
            DockerRuntime::new(config.docker.clone()).context("Docker client")?,
        ),
        Some(swarm) => {
            EngineRuntime::Swarm(SwarmRuntime::new(swarm).context("Docker Swarm client")?)
        }
    };
    info!(runtime = runtime.name(), "container runtime");
    let probe = HttpProbe::new(ProbeConfig {
        path: config.health.probe_path.clone(),
        timeout: config.health.probe_timeout,
    });
    let metrics = Metrics::new().context("metrics registry")?;
    let health_changed = Arc::new(Notify::new());
    let adapters = Adapters::<Prod> {
        store: store.clone(),
        locks,
        runtime: runtime.clone(),
        probe,
        clock: SystemClock,
        telemetry: metrics.clone(),
    };
    let service = Arc::new(RuntimeService::new(
        adapters.clone(),
        config.service_config(),
    ));
    // The relay runs as soon as this replica commits a health change, so
    // the event reaches the stream at once instead of at the relay's next
    // tick (the tick remains for changes committed by other replicas).
    let wake = health_changed.clone();
    let monitor = Arc::new(
        HealthMonitor::new(adapters, health_config(&config))
            .with_relay_wake(RelayWake::new(move || wake.notify_one())),
    );

    let redis_url = config.redis_url.expose();
    let publisher = RedisHealthPublisher::new(
        redis_url,
        HealthStreamConfig::new(config.health.stream.clone(), config.health.stream_maxlen),
    )
    .context("Redis health publisher")?;
    let lobby = config.lobby.clone();
    let dead_stream = lobby.dead_stream();
    let consumer = LobbyConsumer::new(
        redis_url,
        lobby,
        ServiceHandler {
            service: service.clone(),
            store: store.clone(),
        },
    )
    .context("Redis Lobby consumer")?;
    let lobby_stats = consumer.stats();
    let console = crate::console::ProdConsole {
        store: store.clone(),
        reader: rtm_redis::StreamReader::new(redis_url, &rtm_redis::ClientSettings::default())
            .context("Redis console reader")?,
        health_stream: config.health.stream.clone(),
        dead_stream,
    };

    let readiness = Readiness::new(
        vec![
            probe_fn("postgres", {
                let store = store.clone();
                move || {
                    let store = store.clone();
                    async move {
                        let status = DependencyStatus::from_result(store.ping().await);
                        match store.pending_count().await {
                            Ok(n) => status.with("health_outbox_pending", n),
                            Err(_) => status,
                        }
                    }
                }
            }),
            probe_fn("redis", {
                let publisher = publisher.clone();
                let stats = lobby_stats.clone();
                move || {
                    let publisher = publisher.clone();
                    let stats = stats.clone();
                    async move {
                        let mut status = DependencyStatus::from_result(publisher.ping().await)
                            .with("lobby_consumer_connected", stats.connected())
                            .with("lobby_dead_lettered", stats.dead_lettered());
                        if let Ok(Some(info)) = stats.group_info().await {
                            status = status
                                .with("lobby_pending", info.pending)
                                .with("lobby_lag", info.lag);
                        }
                        status
                    }
                }
            }),
            probe_fn("docker", {
                let runtime = runtime.clone();
                move || {
                    let runtime = runtime.clone();
                    async move { DependencyStatus::from_result(runtime.ping().await) }
                }
            }),
        ],
        http::DEFAULT_CHECK_TIMEOUT,
    );
    let state = web::Data::new(
        AppState::new(
            service.clone(),
            store.clone(),
            Tokens::from(&config.http),
            readiness,
            metrics.clone(),
        )
        .with_console(Arc::new(console)),
    );
    let servers = http::bind_servers(
        state,
        config.http.gm_addr,
        config.http.admin_addr,
        config.shutdown_timeout,
        // Each HTTP worker reads through its own pipelined connection.
        rtm_postgres::pipeline_reads_on_this_thread,
    )
    .context("binding the HTTP listeners")?;

    let (trigger, shutdown) = workers::shutdown_pair();
    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
    let server_handles = vec![servers.gm.handle(), servers.admin.handle()];
    let (gm_addr, admin_addr) = (servers.gm_addr, servers.admin_addr);
    tasks.push((
        "http-gm",
        tokio::spawn(async move {
            if let Err(e) = servers.gm.await {
                warn!(error = %e, "GM listener stopped");
            }
        }),
    ));
    tasks.push((
        "http-admin",
        tokio::spawn(async move {
            if let Err(e) = servers.admin.await {
                warn!(error = %e, "admin listener stopped");
            }
        }),
    ));

    // The Lobby consumer runs on every replica (the consumer group shares
    // the entries out).
    tasks.push(("lobby", {
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = consumer.run(async move { stop.wait().await }).await {
                warn!(error = %e, "Lobby consumer stopped");
            }
        })
    }));

    let deps = WorkerDeps {
        leader,
        service: service.clone(),
        monitor,
        publisher,
        metrics,
        store,
        lobby_stats,
        health_changed,
    };
    spawn_workers(&config, &mut tasks, &shutdown, deps);

    info!(
        version = env!("CARGO_PKG_VERSION"), gm = %gm_addr, admin = %admin_addr,
        instance = %config.instance_id, owner = %config.docker.owner,
        "rtmanager started"
    );
    Ok(RunningApp {
        gm_addr,
        admin_addr,
        service,
        trigger,
        servers: server_handles,
        tasks,
        shutdown_timeout: config.shutdown_timeout,
    })
}

impl RunningApp {
    /// Graceful shutdown: stop taking work, let in-flight work finish for
    /// at most `RTM_SHUTDOWN_TIMEOUT`, abandon the rest.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        let stops = self.servers.iter().map(|h| h.stop(true));
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let _ = tokio::time::timeout_at(deadline, futures_util::future::join_all(stops)).await;
        for (name, task) in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                warn!(
                    task = name,
                    "did not stop in time; abandoned (the reconciler repairs)"
                );
                abort.abort();
            }
        }
    }
}
