//! The `inspect` and `probe` sources: periodic passes over the running
//! records. The binary's workers call them on their timers (under leader
//! election); each pass is self-contained and safe to run concurrently with
//! operations and with the other pass.
//!
//! Cost control for ~1,000 games:
//! - a pass observation that changes nothing (same status, same container,
//!   same `started_at` as the snapshot this monitor last wrote) skips the
//!   lock and the database unless the snapshot is older than
//!   [`snapshot_refresh`](super::HealthConfig::snapshot_refresh); the
//!   probe pass then writes all such due refreshes at its end in one
//!   conditional store call ([`HealthSnapshots::refresh_health`]), still
//!   without the lock;
//! - each pass starts from one label-filtered container list (state,
//!   Docker health, current address of every container) and inspects only
//!   the containers whose listed state disagrees with their record, so a
//!   pass over healthy games costs one Docker call;
//! - probes run at most `probe_concurrency` at a time and start spread over
//!   `probe_spread`: each game has a stable offset in that window (a hash
//!   of its id), so load is even and each game is probed at a regular
//!   cadence rather than all at the start of the pass. Offsets take one of
//!   [`PROBE_SLOTS`] values, so the probes of one slot go out on one timer
//!   wakeup: at 1,000 games, 40 wakeups a pass instead of 1,000 (each
//!   wakeup of an idle process costs the kernel a context switch and, on a
//!   host with 1,000 container cgroups, scheduler bookkeeping that grows
//!   with them).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use super::{
    CachedSnapshot, HealthError, HealthMonitor, IgnoreReason, Observation, ObserveOutcome,
    ProbeCounter, SIGKILL_EXIT,
};
use crate::ports::{
    Clock, ContainerRuntime, ContainerSummary, DockerHealth, EngineProbe, HealthSnapshots, Ports,
    ProbeTarget, RecordQuery, RuntimeRecords, Telemetry,
};
use crate::{
    ContainerId, GameId, HealthDetails, HealthRefresh, HealthSnapshot, HealthSource, HealthStatus,
    RuntimeError, RuntimeRecord, RuntimeStatus,
};

/// What one inspect or probe pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// Running records looked at.
    pub checked: usize,
    /// Probe attempts that failed (probe pass only).
    pub probe_errors: usize,
    /// Observations written (snapshot refreshed or changed).
    pub recorded: usize,
    /// Of those, health changes (queued for publication).
    pub changed: usize,
    /// Unchanged observations not written (recently refreshed).
    pub coalesced: usize,
    /// Observations dropped by the rules (stale container, restarted…).
    pub ignored: usize,
    /// Games skipped because an operation held their lock.
    pub busy: usize,
    /// Games whose check failed (database or runtime error); logged.
    pub errors: usize,
}

impl PassSummary {
    fn count(&mut self, game: &GameId, result: Result<Option<ObserveOutcome>, HealthError>) {
        match result {
            Ok(None) => {}
            Ok(Some(ObserveOutcome::Recorded { changed, .. })) => {
                self.recorded += 1;
                self.changed += usize::from(changed);
            }
            Ok(Some(ObserveOutcome::Coalesced)) => self.coalesced += 1,
            Ok(Some(ObserveOutcome::Ignored(_))) => self.ignored += 1,
            Err(HealthError::Busy(_)) => self.busy += 1,
            Err(e) => {
                self.errors += 1;
                tracing::warn!(game_id = %game, error = %e, "health check of a game failed");
            }
        }
    }
}

/// How many distinct start times the probes of one pass have (see the
/// module docs); at the defaults (a 3.2 s spread) one slot is 80 ms.
pub(crate) const PROBE_SLOTS: u32 = 40;

/// A stable position of `game` within `spread`, one of [`PROBE_SLOTS`]
/// (FNV-1a of the id, so it does not change between passes or restarts).
fn spread_offset(game: &GameId, spread: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in game.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let slot = u32::try_from(h % u64::from(PROBE_SLOTS)).unwrap_or(0);
    spread * slot / PROBE_SLOTS
}

impl<P: Ports> HealthMonitor<P> {
    /// Every `running` record, page by page.
    async fn running_records(&self) -> Result<Vec<RuntimeRecord>, HealthError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let query = RecordQuery {
                status: Some(RuntimeStatus::Running),
                after,
                limit: self.config.page_size.max(1),
                ..RecordQuery::default()
            };
            let page = self.adapters.store.list_records(&query).await?;
            let full = page.len() >= query.limit as usize;
            let next = page.last().map(|r| r.game_id.clone());
            // A cursor that does not advance would loop forever.
            let advanced = next.is_some() && next > query.after;
            after = next;
            all.extend(page);
            if !full || !advanced {
                return Ok(all);
            }
        }
    }

    /// Forgets soft state of games that no longer run.
    fn prune(&self, running: &[RuntimeRecord]) {
        let games: HashSet<&GameId> = running.iter().map(|r| &r.game_id).collect();
        let containers: HashSet<&ContainerId> = running
            .iter()
            .filter_map(|r| r.container_id.as_ref())
            .collect();
        let mut s = self.state();
        s.probes.retain(|g, _| games.contains(g));
        s.snapshots.retain(|g, _| games.contains(g));
        s.docker_unhealthy.retain(|c| containers.contains(c));
        s.unsettled_kills.retain(|c| containers.contains(c));
    }

    /// Whether an unchanged observation may be skipped: this monitor wrote
    /// the same status for the same container and the same `started_at`
    /// less than `snapshot_refresh` ago.
    fn coalescible(&self, record: &RuntimeRecord, obs: &Observation) -> bool {
        self.cached(record, obs) == Cached::Fresh
    }

    /// What this monitor's last write for the game says about `obs`.
    fn cached(&self, record: &RuntimeRecord, obs: &Observation) -> Cached {
        let now = self.adapters.clock.now();
        let refresh = self.config.snapshot_refresh;
        match self.state().snapshots.get(&record.game_id) {
            Some(c)
                if c.container == obs.container_id
                    && c.started_at == record.started_at
                    && c.status == obs.status =>
            {
                if c.written_at + refresh > now {
                    Cached::Fresh
                } else {
                    Cached::Due
                }
            }
            _ => Cached::Other,
        }
    }

    /// Writes a probe pass's due refreshes in one store call (see
    /// [`HealthRefresh`]). A refresh the store did not apply lost a race
    /// with a change (an operation, another writer): the game's cache
    /// entry is dropped, so its next observation takes the full path.
    async fn write_refreshes(&self, due: Vec<HealthRefresh>, summary: &mut PassSummary) {
        if due.is_empty() {
            return;
        }
        let done = match self.adapters.store.refresh_health(&due).await {
            Ok(done) => done.into_iter().collect::<HashSet<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, games = due.len(), "snapshot refresh failed");
                summary.errors += due.len();
                return;
            }
        };
        let now = self.adapters.clock.now();
        for r in due {
            let h = r.snapshot;
            if done.contains(&h.game_id) {
                summary.recorded += 1;
                self.adapters.telemetry.health_observed(h.status, false);
                if let Some(container) = h.container_id {
                    self.state().snapshots.insert(
                        h.game_id,
                        CachedSnapshot {
                            container,
                            started_at: r.started_at,
                            status: h.status,
                            written_at: now,
                        },
                    );
                }
            } else {
                summary.ignored += 1;
                self.state().snapshots.remove(&h.game_id);
            }
        }
    }

    /// Whether Docker's `unhealthy` verdict, already recorded by this
    /// monitor for this container and start, stands against probe results.
    fn vetoed_by_docker(&self, record: &RuntimeRecord, container: &ContainerId) -> bool {
        let s = self.state();
        s.docker_unhealthy.contains(container)
            && s.snapshots.get(&record.game_id).is_some_and(|c| {
                &c.container == container
                    && c.started_at == record.started_at
                    && c.status == HealthStatus::InspectUnhealthy
            })
    }

    /// `observe`, skipped when coalescible.
    async fn observe_from_pass(
        &self,
        record: &RuntimeRecord,
        obs: Observation,
    ) -> Result<Option<ObserveOutcome>, HealthError> {
        if self.coalescible(record, &obs) {
            return Ok(Some(ObserveOutcome::Coalesced));
        }
        self.observe(obs).await.map(Some)
    }

    /// Every owned container, by id, from one list call (state, Docker
    /// health and current address of each).
    async fn listed(
        &self,
        pass: &'static str,
    ) -> Result<HashMap<ContainerId, ContainerSummary>, HealthError> {
        self.adapters.telemetry.runtime_calls(pass, "list", 1);
        let listed = self.adapters.runtime.list(None).await?;
        Ok(listed.into_iter().map(|c| (c.id.clone(), c)).collect())
    }

    /// Checks every `running` record against one container list: not
    /// running → `exited` (or `oom` when `OOMKilled`) with the exit code;
    /// Docker health `unhealthy` → `inspect_unhealthy`; missing →
    /// `container_disappeared`.
    ///
    /// Cost: one list, plus one inspect per container whose listed state
    /// disagrees with its record (an exit needs the exit code and the
    /// `OOMKilled` flag, which only inspect gives; a missing one is
    /// confirmed by inspect before it is reported). A pass over 1,000
    /// healthy games is one Docker call.
    ///
    /// Returns `Err(Runtime)` and skips the rest of the pass when Docker is
    /// unreachable: "unreachable" says nothing about the engines.
    pub async fn inspect_pass(&self) -> Result<PassSummary, HealthError> {
        // Records first, then the list: a container a listed record binds
        // existed before the list was taken, so one absent from the list
        // went away since (or the record moved on, which `observe` sees).
        let records = self.running_records().await?;
        self.prune(&records);
        let listed = self.listed("inspect").await?;
        let mut summary = PassSummary {
            checked: records.len(),
            ..PassSummary::default()
        };
        let listed = &listed;
        let mut results = stream::iter(records)
            .map(|record| async move {
                let seen = record.container_id.as_ref().and_then(|c| listed.get(c));
                let (inspected, result) = self.inspect_one(&record, seen).await;
                (inspected, result, record.game_id)
            })
            .buffer_unordered(self.config.inspect_concurrency.max(1));
        let mut inspects = 0;
        while let Some((inspected, result, game)) = results.next().await {
            inspects += u64::from(inspected);
            match result {
                Err(HealthError::Runtime(e @ RuntimeError::Unavailable(_))) => {
                    tracing::warn!(error = %e, "docker unreachable; inspect pass skipped");
                    self.adapters
                        .telemetry
                        .runtime_calls("inspect", "inspect", inspects);
                    return Err(HealthError::Runtime(e));
                }
                other => summary.count(&game, other),
            }
        }
        self.adapters
            .telemetry
            .runtime_calls("inspect", "inspect", inspects);
        Ok(summary)
    }

    /// Judges one record against its listed container (`None`: not
    /// listed). Returns whether it had to inspect, and the outcome.
    async fn inspect_one(
        &self,
        record: &RuntimeRecord,
        seen: Option<&ContainerSummary>,
    ) -> (bool, Result<Option<ObserveOutcome>, HealthError>) {
        let Some(container) = record.container_id.clone() else {
            return (
                false,
                Ok(Some(ObserveOutcome::Ignored(IgnoreReason::OtherContainer))),
            );
        };
        if let Some(c) = seen.filter(|c| c.running) {
            // The record and the list agree: only Docker's own health
            // check can have something to say.
            return (
                false,
                self.judge_docker_health(record, &container, c.health).await,
            );
        }
        // Not running, or not listed at all: only inspect knows why.
        (true, self.inspect_disagreement(record, container).await)
    }

    async fn inspect_disagreement(
        &self,
        record: &RuntimeRecord,
        container: ContainerId,
    ) -> Result<Option<ObserveOutcome>, HealthError> {
        let game = record.game_id.clone();
        let observed_at = self.adapters.clock.now();
        let obs = |status, details| Observation {
            game_id: game.clone(),
            container_id: container.clone(),
            status,
            source: HealthSource::Inspect,
            details,
            observed_at,
        };
        let info = match self.adapters.runtime.inspect(&container).await {
            Ok(info) => info,
            Err(RuntimeError::NotFound(_)) => {
                let details = HealthDetails::new().with("reason", "container not found by inspect");
                return self
                    .observe(obs(HealthStatus::ContainerDisappeared, details))
                    .await
                    .map(Some);
            }
            Err(e) => return Err(e.into()),
        };
        if info.summary.running {
            // Started again since the list was taken.
            return self
                .judge_docker_health(record, &container, info.health)
                .await;
        }
        // A SIGKILL the runtime sent (its `kill` event) explains a 137.
        let sigkill_sent = info
            .finished_at
            .is_some_and(|at| self.explained(&container, at).1);
        if !info.oom_killed && info.exit_code == Some(SIGKILL_EXIT) && !sigkill_sent {
            // A SIGKILL from elsewhere, or an OOM kill Docker has not
            // flagged yet (see the module docs of `health`): first sight is
            // not judged; the next pass inspects it again (the record
            // still says running).
            if self.state().unsettled_kills.insert(container.clone()) {
                tracing::debug!(game_id = %game, container = container.short(),
                    "exit 137 without OOMKilled; judged at the next pass");
                return Ok(None);
            }
        }
        self.state().unsettled_kills.remove(&container);
        let status = if info.oom_killed {
            HealthStatus::Oom
        } else {
            HealthStatus::Exited
        };
        let details = match info.exit_code {
            Some(code) => HealthDetails::new().with("exit_code", code),
            None => HealthDetails::new(),
        }
        .with("docker_status", info.state.as_str());
        self.observe(obs(status, details)).await.map(Some)
    }

    /// A running container: Docker health `unhealthy` →
    /// `inspect_unhealthy` (and a veto on probe results); anything else
    /// lifts the veto.
    async fn judge_docker_health(
        &self,
        record: &RuntimeRecord,
        container: &ContainerId,
        health: Option<DockerHealth>,
    ) -> Result<Option<ObserveOutcome>, HealthError> {
        if health != Some(DockerHealth::Unhealthy) {
            self.state().docker_unhealthy.remove(container);
            return Ok(None);
        }
        self.state().docker_unhealthy.insert(container.clone());
        let obs = Observation {
            game_id: record.game_id.clone(),
            container_id: container.clone(),
            status: HealthStatus::InspectUnhealthy,
            source: HealthSource::Inspect,
            details: HealthDetails::new().with("docker_health", "unhealthy"),
            observed_at: self.adapters.clock.now(),
        };
        self.observe_from_pass(record, obs).await
    }

    /// Probes every `running` record's engine (bounded concurrency, spread
    /// over `probe_spread`). `probe_failures` consecutive failures →
    /// `probe_failed`; a success → `healthy` (published when it is a
    /// change: the first success of a new container, or a recovery).
    ///
    /// Addressing: the pass starts from one container list, so each probe
    /// targets the address the container has *now* (a restart, a start, an
    /// adopt or a network reconnect moves it), at one Docker call per pass.
    /// A container that is not listed running is not probed (the inspect
    /// pass and the events report it). Failures count per (container,
    /// address): a new address starts a new count. Before a result that
    /// would *change* the game's health is committed, the container is
    /// inspected once more: if it no longer runs at the probed address,
    /// the probe reached someone else and its result is dropped
    /// ([`IgnoreReason::Moved`]).
    pub async fn probe_pass(&self) -> Result<PassSummary, HealthError> {
        let records = self.running_records().await?;
        self.prune(&records);
        let listed = self.listed("probe").await?;
        let spread = self.config.probe_spread;
        let mut summary = PassSummary {
            checked: records.len(),
            ..PassSummary::default()
        };
        let mut plan: Vec<(Duration, RuntimeRecord, ContainerId, Option<IpAddr>)> = records
            .into_iter()
            .filter_map(|r| {
                let c = listed.get(r.container_id.as_ref()?).filter(|c| c.running)?;
                let (id, ip) = (c.id.clone(), c.ip);
                Some((spread_offset(&r.game_id, spread), r, id, ip))
            })
            .collect();
        plan.sort_by_key(|(offset, ..)| *offset);
        let clock = &self.adapters.clock;
        let start = clock.now();
        let mut results = stream::iter(plan)
            .map(|(offset, record, container, ip)| async move {
                let elapsed = Duration::try_from(clock.now() - start).unwrap_or_default();
                if offset > elapsed {
                    clock.sleep(offset - elapsed).await;
                }
                let one = self.probe_one(&record, container, ip).await;
                (one, record.game_id)
            })
            .buffer_unordered(self.config.probe_concurrency.max(1));
        let mut inspects = 0;
        let mut due = Vec::new();
        while let Some((one, game)) = results.next().await {
            summary.probe_errors += usize::from(one.failed);
            inspects += u64::from(one.inspected);
            match one.refresh {
                Some(r) => due.push(r),
                None => summary.count(&game, one.result),
            }
        }
        drop(results);
        self.adapters
            .telemetry
            .runtime_calls("probe", "inspect", inspects);
        self.write_refreshes(due, &mut summary).await;
        Ok(summary)
    }

    /// Probes one engine at `ip` (the container's listed address).
    async fn probe_one(
        &self,
        record: &RuntimeRecord,
        container: ContainerId,
        ip: Option<IpAddr>,
    ) -> ProbeOne {
        let target = ProbeTarget {
            endpoint: record.engine_endpoint.clone(),
            ip,
            port: self.config.engine_port,
        };
        let observed_at = self.adapters.clock.now();
        let result = self.adapters.probe.probe(&target).await;
        let failed = result.is_err();
        let done = |inspected, result| ProbeOne {
            failed,
            inspected,
            result,
            refresh: None,
        };
        let verdict = {
            let mut s = self.state();
            let counter = s
                .probes
                .entry(record.game_id.clone())
                .or_insert_with(|| ProbeCounter {
                    container: container.clone(),
                    ip,
                    failures: 0,
                });
            if counter.container != container || counter.ip != ip {
                *counter = ProbeCounter {
                    container: container.clone(),
                    ip,
                    failures: 0,
                };
            }
            match result {
                Ok(()) => {
                    counter.failures = 0;
                    Some((HealthStatus::Healthy, HealthDetails::new()))
                }
                Err(e) => {
                    counter.failures = counter.failures.saturating_add(1);
                    (counter.failures >= self.config.probe_failures.max(1)).then(|| {
                        let details = HealthDetails::new()
                            .with("error", e.0)
                            .with("consecutive_failures", i64::from(counter.failures));
                        (HealthStatus::ProbeFailed, details)
                    })
                }
            }
        };
        let Some((status, details)) = verdict else {
            return done(false, Ok(None));
        };
        if self.vetoed_by_docker(record, &container) {
            // Saves a lock and two reads per probe of an unhealthy engine;
            // `observe` would drop the result for the same reason.
            return done(
                false,
                Ok(Some(ObserveOutcome::Ignored(IgnoreReason::DockerUnhealthy))),
            );
        }
        let obs = Observation {
            game_id: record.game_id.clone(),
            container_id: container.clone(),
            status,
            source: HealthSource::Probe,
            details,
            observed_at,
        };
        match self.cached(record, &obs) {
            Cached::Fresh => return done(false, Ok(Some(ObserveOutcome::Coalesced))),
            // No change, only time to say so again: written with the
            // pass's other refreshes, in one statement, without the lock.
            Cached::Due => {
                return ProbeOne {
                    refresh: Some(HealthRefresh {
                        snapshot: HealthSnapshot {
                            game_id: obs.game_id,
                            container_id: Some(obs.container_id),
                            status: obs.status,
                            source: obs.source,
                            details: obs.details,
                            observed_at: obs.observed_at,
                        },
                        started_at: record.started_at,
                    }),
                    ..done(false, Ok(None))
                }
            }
            Cached::Other => {}
        }
        let mut inspected = false;
        if !self.already_says(record, &container, status) {
            // A change is about to be committed: make sure the probe
            // reached this game's container (see `probe_pass`).
            inspected = true;
            let here = match self.adapters.runtime.inspect(&container).await {
                Ok(info) => info.summary.running && info.ip == ip,
                // Gone or failing: not this probe's to report.
                Err(_) => false,
            };
            if !here {
                self.state().probes.remove(&record.game_id);
                return done(true, Ok(Some(ObserveOutcome::Ignored(IgnoreReason::Moved))));
            }
        }
        done(inspected, self.observe(obs).await.map(Some))
    }

    /// Whether this monitor last wrote `status` for this container and
    /// start: then a probe result of that status is no change.
    fn already_says(
        &self,
        record: &RuntimeRecord,
        container: &ContainerId,
        status: HealthStatus,
    ) -> bool {
        self.state()
            .snapshots
            .get(&record.game_id)
            .is_some_and(|c| {
                &c.container == container && c.started_at == record.started_at && c.status == status
            })
    }
}

/// What probing one engine did.
struct ProbeOne {
    /// The probe itself failed.
    failed: bool,
    /// The container was inspected to check the probe's attribution.
    inspected: bool,
    result: Result<Option<ObserveOutcome>, HealthError>,
    /// An unchanged result due to be written again: the pass writes these
    /// together (`result` is then unused).
    refresh: Option<HealthRefresh>,
}

/// This monitor's last write for a game, against a new observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    /// Says the same, written less than `snapshot_refresh` ago.
    Fresh,
    /// Says the same, written longer ago: to be refreshed.
    Due,
    /// Says something else, or nothing.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_spread_and_within_the_window() {
        let spread = Duration::from_secs(4);
        let offsets: Vec<Duration> = (0..1000)
            .map(|i| spread_offset(&GameId::parse(&format!("game-{i}")).unwrap(), spread))
            .collect();
        assert!(offsets.iter().all(|o| *o < spread));
        let g = GameId::parse("game-7").unwrap();
        assert_eq!(spread_offset(&g, spread), spread_offset(&g, spread));
        // Roughly even: each second of the window gets a fair share.
        for second in 0..4 {
            let n = offsets.iter().filter(|o| o.as_secs() == second).count();
            assert!((150..350).contains(&n), "second {second}: {n}");
        }
        assert_eq!(spread_offset(&g, Duration::ZERO), Duration::ZERO);
        // Slotted: probes due together share one timer wakeup, and every
        // slot is used.
        let slots: HashSet<Duration> = offsets.iter().copied().collect();
        assert_eq!(slots.len(), PROBE_SLOTS as usize);
        assert!(slots
            .iter()
            .all(|o| (o.as_nanos() * u128::from(PROBE_SLOTS)) % spread.as_nanos() == 0));
    }
}
