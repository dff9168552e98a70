//! The `rtmanager` child process under test and the observations of it:
//! spawning it, timing requests, reading its streams, CPU and RSS, its
//! Docker call counters, and the cleanup of everything the bench created.

use super::tools::{cpu_seconds, json_str, redis};
use super::*;

/// A game's engine container, as `docker kill` and `docker events` name it.
pub(super) struct EngineContainer {
    pub id: String,
    /// Its name (`die` events carry it).
    pub name: String,
    /// On a swarm, the id of the task it runs.
    pub task: Option<String>,
}

impl Bench {
    pub(super) fn spawn(&mut self, bin: &Path) -> Result<()> {
        std::fs::create_dir_all(&self.state_root)?;
        let mut cmd = Command::new(bin);
        for (k, v) in [
            ("RTM_DATABASE_SCHEMA", SCHEMA.to_owned()),
            ("RTM_MIGRATE_ON_START", "true".into()),
            ("RTM_HTTP_ADDR", self.gm.clone()),
            ("RTM_ADMIN_HTTP_ADDR", self.admin.clone()),
            ("RTM_GM_TOKEN", GM_TOKEN.into()),
            ("RTM_ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("RTM_IMAGE_ALLOWLIST", "rtm.local/engine-stub".into()),
            ("RTM_OWNER", self.owner.clone()),
            ("RTM_INSTANCE_ID", format!("{}-a", self.tag)),
            ("RTM_DOCKER_NETWORK", self.network.clone()),
            ("RTM_STATE_ROOT", self.state_root.display().to_string()),
            ("RTM_LOBBY_STREAM", self.lobby_stream.clone()),
            ("RTM_HEALTH_STREAM", self.health_stream.clone()),
            ("RUST_LOG", "warn".into()),
        ] {
            cmd.env(k, v);
        }
        if self.runtime == Runtime::Swarm {
            // docs/swarm.md: Docker 20.10's service API cannot express two
            // lockdown fields; this machine runs without swap. The feed
            // polls at its default (RTM_SWARM_POLL_INTERVAL, 1 s).
            cmd.env("RTM_RUNTIME", "swarm");
            cmd.env("RTM_SWARM_ACCEPT_WEAKER_ISOLATION", "true");
        }
        // Only the bench's own settings: an operator's RTM_* must not
        // point it at their deployment.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("RTM_")
                && !matches!(
                    k.as_str(),
                    "RTM_DATABASE_URL" | "RTM_REDIS_URL" | "RTM_DOCKER_HOST"
                )
                && cmd.get_envs().all(|(e, _)| e.to_string_lossy() != k)
            {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                bail!("rtmanager exited during start-up ({status})");
            }
            if matches!(request(&self.gm, "GET", "/readyz", None, None), Ok(r) if r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("rtmanager did not become ready within 60 s");
            }
            sleep(Duration::from_millis(200));
        }
    }

    pub(super) fn check_time(&mut self) -> Result<()> {
        if Instant::now() > self.deadline {
            bail!("bench exceeded its {:?} budget", self.budget);
        }
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok())
            .flatten()
        {
            bail!("rtmanager exited ({status})");
        }
        Ok(())
    }

    pub(super) fn timed_post(&mut self, path: &str, body: &str) -> Result<(Duration, Response)> {
        self.check_time()?;
        let t0 = Instant::now();
        let r = request(&self.gm, "POST", path, Some(GM_TOKEN), Some(body))?;
        Ok((t0.elapsed(), r))
    }

    /// The Docker container of `game`'s engine, to `docker kill`. On a
    /// swarm the record's id is the service's; the engine is its running
    /// task's container on this node.
    pub(super) fn engine_container(&self, game: &str) -> Result<EngineContainer> {
        let id = self.container_of(game)?;
        if self.runtime == Runtime::Docker {
            return Ok(EngineContainer {
                id,
                name: format!("rtm-{game}"),
                task: None,
            });
        }
        let out = docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.swarm.service.id={id}"),
            "--filter",
            "status=running",
            "--format",
            "{{.ID}} {{.Names}} {{.Label \"com.docker.swarm.task.id\"}}",
        ])?;
        let mut running = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>());
        match (running.next().as_deref(), running.next()) {
            (Some([c, name, task]), None) => Ok(EngineContainer {
                id: (*c).to_owned(),
                name: (*name).to_owned(),
                task: Some((*task).to_owned()),
            }),
            _ => bail!("service {id} of {game}: not one running task container: {out:?}"),
        }
    }

    pub(super) fn container_of(&self, game: &str) -> Result<String> {
        let r = request(
            &self.gm,
            "GET",
            &format!("/api/v1/runtimes/{game}"),
            Some(GM_TOKEN),
            None,
        )?;
        json_str(&r.body, "container_id")
            .with_context(|| format!("no container for {game}: {}", r.body))
    }

    pub(super) fn last_stream_id(&self) -> Result<String> {
        let out = redis(&["XREVRANGE", &self.health_stream, "+", "-", "COUNT", "1"])?;
        Ok(out.lines().next().unwrap_or("0-0").trim().to_owned())
    }

    /// Entries after `after` (exclusive; `-` for all), waiting up to
    /// `block` for one to arrive when there are none yet.
    pub(super) fn read_after(&self, after: &str, block: Duration) -> Result<Vec<Entry>> {
        if !block.is_zero() {
            let from = if after == "-" { "0-0" } else { after };
            redis(&[
                "XREAD",
                "BLOCK",
                &block.as_millis().to_string(),
                "STREAMS",
                &self.health_stream,
                from,
            ])?;
        }
        let start = if after == "-" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let out = redis(&["XRANGE", &self.health_stream, &start, "+"])?;
        Ok(parse_entries(&out))
    }

    pub(super) fn pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().context("rtmanager not running")?.id())
    }

    /// rtmanager's resident set (`VmRSS`), in MiB.
    pub(super) fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }

    /// rtmanager's own count of its Docker calls (every `rtm_docker_calls*`
    /// series of `/metrics`), when it exports one.
    pub(super) fn docker_calls(&self) -> Vec<(String, f64)> {
        let Ok(r) = request(&self.gm, "GET", "/metrics", None, None) else {
            return Vec::new();
        };
        r.body
            .lines()
            .filter(|l| l.starts_with("rtm_docker_calls"))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// CPU time rtmanager used per wall second over `window`.
    pub(super) fn cpu_rate(&mut self, window: Duration) -> Result<f64> {
        let pid = self.pid()?;
        let before = cpu_seconds(pid)?;
        let t0 = Instant::now();
        while t0.elapsed() < window {
            self.check_time()?;
            sleep(Duration::from_millis(500));
        }
        let after = cpu_seconds(pid)?;
        Ok((after - before) / t0.elapsed().as_secs_f64())
    }

    pub(super) fn cleanup(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        step("cleanup");
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.runtime == Runtime::Swarm {
            // The owner's services, then a bounded wait (30 s) until Swarm
            // removed their task containers: the network is free after.
            crate::up::swarm::remove_services(&self.owner);
        }
        for owner in [&self.owner, &self.ref_owner] {
            if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("label=rtm.owner={owner}")])
            {
                let ids: Vec<String> = ids.split_whitespace().map(str::to_owned).collect();
                reference::remove_all(&ids);
            }
        }
        match self.overlay.take() {
            // The last holder: its drop removes the veth pair, the
            // placeholder and the network (each step bounded).
            Some(overlay) => drop(overlay),
            // Retried while endpoints of just-removed containers linger
            // (bounded, 30 s); Docker 20.10 can keep phantom endpoints
            // after a 1,000-container run, which only a dockerd restart
            // clears: then say so rather than leave it unnoticed.
            None => {
                if !rtm_overlay::remove_network(None, &self.network) {
                    eprintln!(
                        "bench: could not remove the network {} (docker network rm {0}; \
                         \"has active endpoints\" with no container left is Docker's, \
                         cleared by a dockerd restart)",
                        self.network
                    );
                }
            }
        }
        // The Lobby consumer group lives in the stream key; `:dead` is the
        // dead-letter stream.
        let dead = format!("{}:dead", self.lobby_stream);
        if let Err(e) = redis(&["DEL", &self.lobby_stream, &dead, &self.health_stream]) {
            eprintln!("cleanup: {e:#}");
        }
        if let Err(e) = sql(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")) {
            eprintln!("cleanup: {e:#}");
        }
        // Engines write as 65534; the directory is ours (root) to remove.
        let _ = std::fs::remove_dir_all(&self.state_root);
        println!(
            "removed {}containers of {} and {}, network, streams, schema",
            if self.runtime == Runtime::Swarm {
                "services, "
            } else {
                ""
            },
            self.owner,
            self.ref_owner
        );
    }
}
