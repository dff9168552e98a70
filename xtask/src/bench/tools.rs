//! Small helpers of the bench: the external tools it drives (`docker`,
//! `redis-cli`, SQL as the admin), `/proc` readings, and the admin
//! PostgreSQL session ([`Pg`]) it reads the service's rows with.

use super::*;

pub(super) fn ensure_ok(what: &str, game: &str, r: &Response) -> Result<()> {
    if r.status != 200 {
        bail!("{what} {game}: HTTP {}: {}", r.status, r.body);
    }
    Ok(())
}

/// A string field of a flat JSON object, without a JSON crate (xtask
/// stays light): the first `"name":"value"`.
pub(super) fn json_str(body: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = body.find(&key)? + key.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

pub(super) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) fn docker(args: &[&str]) -> Result<String> {
    run_tool("docker", args)
}

pub(super) fn redis(args: &[&str]) -> Result<String> {
    let url = std::env::var("RTM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut all = vec!["-u", url.as_str()];
    all.extend(args);
    run_tool("redis-cli", &all)
}

pub(super) fn run_tool(tool: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The admin's URL for the `rtmanager` database.
pub(super) fn admin_url() -> String {
    std::env::var("RTM_ADMIN_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| match u.rsplit_once('/') {
            Some((base, _)) => format!("{base}/rtmanager"),
            None => u,
        })
        .unwrap_or_else(|| ADMIN_URL.to_owned())
}

/// Runs `sql` as the admin in the `rtmanager` database.
pub(super) fn sql(sql: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .context("connecting to PostgreSQL as the admin")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.batch_execute(sql).await.context("bench schema")?;
        Ok(())
    })
}

/// utime + stime of `pid`, in seconds (from `/proc/<pid>/stat`).
pub(super) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc stat")?
            .parse::<f64>()?)
    };
    let hz = 100.0; // USER_HZ on Linux
    Ok((ticks(14)? + ticks(15)?) / hz)
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Per-second rates of the counters that grew between two scrapes.
pub(super) fn rates(
    before: &[(String, f64)],
    after: &[(String, f64)],
    over: Duration,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(name, v)| {
            let was = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| *b);
            (name.clone(), (v - was) / over.as_secs_f64())
        })
        .collect()
}

/// Runs Redis commands, one a line, through one `redis-cli` (so a burst
/// of XADDs is not a burst of process starts).
pub(super) fn redis_script(script: &str) -> Result<()> {
    use std::io::Write;
    let url = std::env::var("RTM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut child = Command::new("redis-cli")
        .args(["-u", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running redis-cli")?;
    child
        .stdin
        .take()
        .context("redis-cli stdin")?
        .write_all(script.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("redis-cli failed ({status})");
    }
    Ok(())
}

/// An admin session on the `rtmanager` database for the bench's reads.
pub(super) struct Pg {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Pg {
    pub(super) fn connect() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
                .await
                .context("connecting to PostgreSQL as the admin")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            anyhow::Ok(client)
        })?;
        Ok(Self { rt, client })
    }

    /// Takes the bench's session-level advisory lock for as long as this
    /// session lives, or fails: two benches on one database would drop
    /// each other's schema (`rtmanager_bench`, dropped and created by each
    /// run), and each would measure the other's load. The two-key form:
    /// its key space does not overlap the one-key locks rtmanager takes.
    ///
    /// Tried for up to 3 s: the session of this process's previous bench
    /// (`--swarm` runs two in turn) may not have ended on the server yet.
    pub(super) fn lock_bench(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // "rtmb" in ASCII, and 0.
            let row = self.rt.block_on(
                self.client
                    .query_one("SELECT pg_try_advisory_lock(1920232802, 0)", &[]),
            )?;
            if row.get::<_, bool>(0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "another `cargo xtask bench` runs against this database (it owns the \
                     schema {SCHEMA}); wait until it is done"
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Successful and failed Lobby `start` rows of `games`, and the last
    /// one's `finished_at` (Unix ms).
    pub(super) fn start_rows(&self, games: &[String]) -> Result<(i64, i64, i64)> {
        let row = self.rt.block_on(self.client.query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE outcome = 'success'), \
                        count(*) FILTER (WHERE outcome = 'failure'), \
                        coalesce((extract(epoch FROM max(finished_at)) * 1000)::bigint, 0) \
                 FROM {SCHEMA}.operation_log \
                 WHERE op_kind = 'start' AND op_source = 'lobby_stream' AND game_id = ANY($1)"
            ),
            &[&games],
        ))?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    /// How many of `games` have a `healthy` snapshot.
    pub(super) fn healthy(&self, games: &[String]) -> Result<i64> {
        let row = self.rt.block_on(self.client.query_one(
            &format!(
                "SELECT count(*) FROM {SCHEMA}.health_snapshots \
                 WHERE status = 'healthy' AND game_id = ANY($1)"
            ),
            &[&games],
        ))?;
        Ok(row.get(0))
    }
}
