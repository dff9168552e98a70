//! The background workers of a running app: what they share
//! ([`WorkerDeps`]) and [`spawn_workers`], which starts every
//! leader-elected and per-replica loop on the shutdown signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtm_domain::health::HealthMonitor;
use rtm_domain::ports::HealthOutbox;
use rtm_domain::service::{RetentionConfig, RuntimeService};
use rtm_postgres::{PgLeader, PgStore};
use rtm_redis::RedisHealthPublisher;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::workers::{self, Shutdown};

use super::Prod;

/// A pass's result as the workers log it: the summary's debug form, or
/// the error's message.
fn summary<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> workers::PassResult {
    r.map(|s| format!("{s:?}")).map_err(|e| e.to_string())
}

/// What the background workers share.
pub(super) struct WorkerDeps {
    pub(super) leader: PgLeader,
    pub(super) service: Arc<RuntimeService<Prod>>,
    pub(super) monitor: Arc<HealthMonitor<Prod>>,
    pub(super) publisher: RedisHealthPublisher,
    pub(super) metrics: Metrics,
    pub(super) store: PgStore,
    pub(super) lobby_stats: rtm_redis::LobbyStats,
    /// Notified when this replica commits a health change.
    pub(super) health_changed: Arc<Notify>,
}

pub(super) fn spawn_workers(
    config: &Config,
    tasks: &mut Vec<(&'static str, JoinHandle<()>)>,
    shutdown: &Shutdown,
    deps: WorkerDeps,
) {
    let WorkerDeps {
        leader,
        service,
        monitor,
        publisher,
        metrics,
        store,
        lobby_stats,
        health_changed,
    } = deps;
    let (leader, service, monitor, publisher, metrics) =
        (&leader, &service, &monitor, &publisher, &metrics);
    let w = &config.workers;
    let h = &config.health;
    let jitter = |d: Duration| d / 10;

    macro_rules! periodic {
        ($name:literal, $interval:expr, $body:expr) => {
            periodic!($name, $interval, None, $body)
        };
        ($name:literal, $interval:expr, $wake:expr, $body:expr) => {{
            let interval: Duration = $interval;
            tasks.push((
                $name,
                tokio::spawn(workers::periodic(
                    $name,
                    leader.clone(),
                    interval,
                    jitter(interval),
                    $wake,
                    shutdown.clone(),
                    metrics.clone(),
                    $body,
                )),
            ));
        }};
    }

    let svc = service.clone();
    periodic!("reconcile", w.reconcile_interval, move || {
        let svc = svc.clone();
        async move {
            svc.reconcile()
                .await
                .map(|s| {
                    if s.changed() {
                        format!("{s:?}")
                    } else {
                        String::new()
                    }
                })
                .map_err(|e| e.to_string())
        }
    });
    // The cleanup worker removes expired containers (SPEC §8), then
    // applies the retention of the audit log, removed games and (opt-in)
    // their state directories.
    let svc = service.clone();
    let stopped = w.stopped_retention;
    let retention = RetentionConfig {
        audit: w.audit_retention,
        removed: w.removed_retention,
        state: w.state_retention,
    };
    let m = metrics.clone();
    periodic!("cleanup", w.cleanup_interval, move || {
        let svc = svc.clone();
        let m = m.clone();
        async move {
            let ttl = svc
                .cleanup_expired(stopped)
                .await
                .map_err(|e| e.to_string())?;
            let purged = svc
                .purge_expired(&retention)
                .await
                .map_err(|e| e.to_string())?;
            m.retention_deleted(
                purged.operations,
                u64::from(purged.games),
                u64::from(purged.states),
            );
            Ok(format!("{ttl:?} {purged:?}"))
        }
    });
    let mon = monitor.clone();
    periodic!("inspect", h.inspect_interval, move || {
        let mon = mon.clone();
        async move { summary(mon.inspect_pass().await) }
    });
    let mon = monitor.clone();
    periodic!("probe", h.probe_interval, move || {
        let mon = mon.clone();
        async move { summary(mon.probe_pass().await) }
    });
    // The relay runs as soon as this replica commits a health change, and
    // polls the outbox for changes committed elsewhere. (The outbox gauge
    // is refreshed by the per-replica gauges task.)
    let mon = monitor.clone();
    let relay_publisher = publisher.clone();
    periodic!(
        "relay",
        Duration::from_millis(500),
        Some(health_changed),
        move || {
            let mon = mon.clone();
            let publisher = relay_publisher.clone();
            async move {
                mon.relay_once(&publisher)
                    .await
                    .map(|n| {
                        if n > 0 {
                            format!("published {n}")
                        } else {
                            String::new()
                        }
                    })
                    .map_err(|e| e.to_string())
            }
        }
    );

    if h.docker_events {
        let mon = monitor.clone();
        tasks.push((
            "events",
            tokio::spawn(workers::long_running(
                "events",
                leader.clone(),
                shutdown.clone(),
                metrics.clone(),
                move |stop| {
                    let mon = mon.clone();
                    async move {
                        let stats = mon.follow_events(stop).await;
                        info!(?stats, "event follower stopped");
                    }
                },
            )),
        ));
    } else {
        warn!("RTM_DOCKER_EVENTS=false: exits are seen by the inspect pass only");
    }

    // Per-replica gauges: this consumer's view of the group, and the
    // database-wide counts (every replica reports them, so a dashboard
    // needs no leader to see them).
    let mut stop = shutdown.clone();
    let metrics = metrics.clone();
    tasks.push((
        "gauges",
        tokio::spawn(async move {
            let seen = AtomicU64::new(0);
            loop {
                // A dependency that hangs (black-holed) must not hold up
                // shutdown: the refresh is abandoned when it starts.
                let refresh = async {
                    if let Ok(Some(info)) = lobby_stats.group_info().await {
                        metrics.set_lobby_backlog(info.lag.unwrap_or(0), info.pending);
                    }
                    if let Ok(counts) = store.record_counts().await {
                        metrics.set_games(&counts);
                    }
                    if let Ok(counts) = store.health_counts().await {
                        metrics.set_games_health(&counts);
                    }
                    if let Ok(age) = lobby_stats.oldest_waiting_age().await {
                        metrics.set_lobby_oldest_age(age);
                    }
                    metrics.refresh_dependency_errors();
                    metrics.refresh_process();
                    if let Ok(n) = store.pending_count().await {
                        metrics.set_health_outbox_pending(n);
                    }
                    let dead = lobby_stats.dead_lettered();
                    for _ in seen.swap(dead, Ordering::Relaxed)..dead {
                        metrics.lobby_dead_letter();
                    }
                };
                tokio::select! {
                    () = refresh => {}
                    () = stop.wait() => return,
                }
                if !stop.sleep(Duration::from_secs(5)).await {
                    return;
                }
            }
        }),
    ));
}
