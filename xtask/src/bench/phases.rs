//! The measured phases of the bench that drive rtmanager through its
//! inputs: the Lobby burst, the wait for `healthy`, the REST operations
//! on a sample, the forced probe failures and the `docker kill`s.

use super::tools::{redis_script, unix_ms};
use super::*;

impl Bench {
    /// XADDs one `start` per game at once and waits for their rows: the
    /// time from the first XADD to the last row's `finished_at`, and how
    /// many times the rows were read (each read is a transaction of the
    /// bench's own in PostgreSQL's counts).
    pub(super) fn lobby_burst(&mut self, games: &[String]) -> Result<(Duration, i64)> {
        let script: String = games
            .iter()
            .map(|g| {
                format!(
                    "XADD {} * op start game_id {g} image_ref {IMAGE_OLD}\n",
                    self.lobby_stream
                )
            })
            .collect();
        let t0_ms = unix_ms();
        redis_script(&script)?;
        let list: Vec<String> = games.to_vec();
        let wait = Duration::from_secs(60) + games.len() as u32 * Duration::from_secs(2);
        let deadline = Instant::now() + wait;
        let mut reads = 0;
        loop {
            self.check_time()?;
            let (ok, failed, last_ms) = self.pg.start_rows(&list)?;
            reads += 1;
            if failed > 0 {
                bail!("{failed} Lobby starts failed (see {SCHEMA}.operation_log)");
            }
            if ok == games.len() as i64 {
                let last = u64::try_from(last_ms).unwrap_or_default();
                return Ok((Duration::from_millis(last.saturating_sub(t0_ms)), reads));
            }
            if Instant::now() > deadline {
                bail!("{ok} of {} Lobby starts done after {wait:?}", games.len());
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every game's snapshot says `healthy`.
    pub(super) fn wait_healthy(&mut self, games: &[String]) -> Result<()> {
        let started = Instant::now();
        let wait = Duration::from_secs(120) + games.len() as u32 * Duration::from_millis(200);
        loop {
            self.check_time()?;
            let healthy = self.pg.healthy(games)?;
            if healthy == games.len() as i64 {
                println!(
                    "all {} games healthy after {:.1}s",
                    games.len(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() > wait {
                bail!(
                    "{} of {} games healthy after {wait:?}",
                    healthy,
                    games.len()
                );
            }
            sleep(Duration::from_millis(500));
        }
    }

    /// `patch` half of `sample`, `stop` the other half, `start` those again.
    pub(super) fn operations(&mut self, sample: &[String], report: &mut Report) -> Result<()> {
        let (patched, stopped) = sample.split_at(sample.len() / 2);
        step(&format!("patch {} games to 1.0.1", patched.len()));
        for g in patched {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/patch"),
                &format!(r#"{{"image_ref":"{IMAGE_NEW}"}}"#),
            )?;
            ensure_ok("patch", g, &r)?;
            report.patch.push(took);
        }
        step(&format!(
            "stop {} games, then start them again",
            stopped.len()
        ));
        self.stop_then_start(stopped, report)
    }

    /// `stop` each game over REST, then `start` each again, one request at
    /// a time, timing each into `report.stop` and `report.restart_stopped`.
    pub(super) fn stop_then_start(&mut self, games: &[String], report: &mut Report) -> Result<()> {
        for g in games {
            let (took, r) = self.timed_post(&format!("/api/v1/runtimes/{g}/stop"), "{}")?;
            ensure_ok("stop", g, &r)?;
            report.stop.push(took);
        }
        for g in games {
            let (took, r) = self.timed_post(
                &format!("/api/v1/runtimes/{g}/start"),
                &format!(r#"{{"image_ref":"{IMAGE_OLD}"}}"#),
            )?;
            ensure_ok("start", g, &r)?;
            report.restart_stopped.push(took);
        }
        Ok(())
    }

    /// Turns each engine of `games` unhealthy at once (the stub's
    /// `unhealthy` control file) and times each `probe_failed` entry.
    pub(super) fn probe_detection(&mut self, games: &[String], report: &mut Report) -> Result<()> {
        step(&format!(
            "{} engines turn unhealthy: time to probe_failed (budget {:?})",
            games.len(),
            report.probe_budget
        ));
        let mut last = self.last_stream_id()?;
        let t0_ms = unix_ms();
        for g in games {
            std::fs::write(self.state_root.join(g).join("unhealthy"), b"")?;
        }
        let mut pending: Vec<&String> = games.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !pending.is_empty() {
            self.check_time()?;
            if Instant::now() > deadline {
                bail!("{} engines never reported probe_failed", pending.len());
            }
            let fresh = self.read_after(&last, Duration::from_secs(2))?;
            for e in &fresh {
                if e.event_type == "probe_failed" {
                    if let Some(i) = pending.iter().position(|g| **g == e.game_id) {
                        pending.swap_remove(i);
                        let at = e.xadd_ms().unwrap_or_default();
                        report
                            .probe_failed
                            .push(Duration::from_millis(at.saturating_sub(t0_ms)));
                    }
                }
            }
            if let Some(e) = fresh.last() {
                last = e.id.clone();
            }
        }
        for g in games {
            let _ = std::fs::remove_file(self.state_root.join(g).join("unhealthy"));
        }
        Ok(())
    }

    /// `docker kill` of each game in turn: the time to its `exited` entry,
    /// next to Docker's own kill → `die` for the same kill and, on a
    /// swarm, to the end of the task in the manager's task list.
    pub(super) fn kills(&mut self, games: &[String], report: &mut Report) -> Result<()> {
        step(&format!(
            "docker kill {} engines, one at a time",
            games.len()
        ));
        let dies = reference::DieEvents::follow(&self.owner)?;
        let entries = reference::StreamFollower::follow(&self.health_stream)?;
        for g in games {
            let engine = self.engine_container(g)?;
            let mut last = self.last_stream_id()?;
            // A random pause, so kills do not phase-lock with any periodic
            // work of rtmanager's.
            sleep(Duration::from_millis(u64::from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
                    % 700,
            )));
            let t0 = Instant::now();
            // Swarm's own view, polled beside rtmanager's feed from the
            // moment of the kill.
            let task_end = engine
                .task
                .as_deref()
                .map(|task| reference::TaskEnd::watch(task, Duration::from_secs(30)));
            docker(&["kill", &engine.id])?;
            // When a client following the stream got the entry (the
            // follower thread's clock, like Docker's `die` below).
            let Some(visible) = entries.wait_for(g, "exited", Duration::from_secs(60)) else {
                bail!("no exited event for {g} within 60 s of docker kill");
            };
            report
                .kill_visible
                .push(visible.saturating_duration_since(t0));
            // Then its details (source, times), read at leisure.
            let event = loop {
                self.check_time()?;
                let fresh = self.read_after(&last, Duration::from_secs(2))?;
                if let Some(e) = fresh
                    .iter()
                    .find(|e| e.game_id == *g && e.event_type == "exited")
                {
                    break e.clone();
                }
                if let Some(e) = fresh.last() {
                    last = e.id.clone();
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("no exited event for {g} within 60 s of docker kill");
                }
            };
            if let Some(at) = dies.wait_for(&engine.name, Duration::from_secs(5)) {
                report.kill_die.push(at.saturating_duration_since(t0));
            }
            if let Some(at) = task_end.and_then(reference::TaskEnd::join) {
                report.kill_task_end.push(at.saturating_duration_since(t0));
            }
            if event.source == "docker_event" {
                if let Some(d) = event.die_to_xadd() {
                    report.die_to_xadd.push(d);
                }
            }
            *report.sources.entry(event.source.clone()).or_default() += 1;
        }
        Ok(())
    }
}
