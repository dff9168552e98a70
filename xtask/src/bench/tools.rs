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
    let (_, secs) = stat_seconds(&stat, 14..=15).context("bad /proc stat")?;
    Ok(secs)
}

/// The command name of a `/proc/<pid>/stat` line and the sum of its time
/// `fields` (numbered as in proc(5): 14 utime, 15 stime, 16 cutime, 17
/// cstime), in seconds.
fn stat_seconds(stat: &str, fields: std::ops::RangeInclusive<usize>) -> Option<(String, f64)> {
    // The name is in parentheses and may itself hold spaces and `)`.
    let open = stat.find('(')?;
    let (comm, rest) = stat[open + 1..].rsplit_once(')')?;
    let after: Vec<&str> = rest.split_whitespace().collect();
    let mut ticks = 0.0;
    for i in fields {
        // `rest` starts at field 3 (state).
        ticks += after.get(i - 3)?.parse::<f64>().ok()?;
    }
    let hz = 100.0; // USER_HZ on Linux
    Some((comm.to_owned(), ticks / hz))
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

    /// Transactions PostgreSQL has ended in this database so far (all
    /// sessions; PostgreSQL publishes a session's counts seconds late, so
    /// over a burst of half a minute or more this is close, not exact).
    pub(super) fn transactions(&self) -> Result<i64> {
        let row = self.rt.block_on(self.client.query_one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database \
             WHERE datname = current_database()",
            &[],
        ))?;
        Ok(row.get(0))
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

/// CPU seconds used so far: by the whole machine (busy time of all cores,
/// from `/proc/stat`) and by each process (`/proc/<pid>/stat`, its own
/// time plus its reaped children's). Two marks around a burst tell who
/// paid for it ([`CpuMark::since`]).
#[derive(Debug, Default, Clone)]
pub(super) struct CpuMark {
    machine: f64,
    procs: std::collections::HashMap<u32, (String, f64)>,
}

/// What a burst cost: busy CPU seconds of the machine and of each group of
/// processes ([`group`]).
#[derive(Debug, Default, Clone)]
pub(super) struct CpuUse {
    pub machine: f64,
    pub by: std::collections::BTreeMap<String, f64>,
}

impl CpuUse {
    pub(super) fn add(&mut self, other: &Self) {
        self.machine += other.machine;
        for (group, used) in &other.by {
            *self.by.entry(group.clone()).or_insert(0.0) += used;
        }
    }
}

impl CpuMark {
    pub(super) fn take() -> Result<Self> {
        let mut procs = std::collections::HashMap::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between the listing and the read.
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some(used) = stat_seconds(&stat, 14..=17) {
                    procs.insert(pid, used);
                }
            }
        }
        Ok(Self {
            machine: machine_busy_seconds()?,
            procs,
        })
    }

    /// What was used between `before` and `self`. A process that ended in
    /// between is counted in its parent's reaped-children time when the
    /// parent lived on (runc in its shim, iptables in dockerd).
    pub(super) fn since(&self, before: &Self) -> CpuUse {
        let mut by = std::collections::BTreeMap::new();
        for (pid, (comm, now)) in &self.procs {
            // Same process when the group matches: a kernel worker's name
            // changes with the work it runs (`kworker/1:2-events`).
            let group = group(comm);
            let was = before
                .procs
                .get(pid)
                .filter(|(c, _)| self::group(c) == group)
                .map_or(0.0, |(_, t)| *t);
            *by.entry(group).or_insert(0.0) += now - was;
        }
        CpuUse {
            machine: self.machine - before.machine,
            by,
        }
    }
}

/// Groups the processes a burst involves: per-CPU kernel threads by kind,
/// everything else by command name.
fn group(comm: &str) -> String {
    match comm.split_once('/') {
        Some((kind, _)) => kind.to_owned(),
        None => comm.to_owned(),
    }
}

/// Busy CPU seconds of all cores since boot: user, nice, system, irq and
/// softirq from `/proc/stat` (not idle, iowait, nor steal: time the
/// hypervisor gave to another guest is not work done here).
fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("bad /proc/stat")?;
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: f64 = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0.0))
        .sum();
    Ok(busy / 100.0)
}

/// Waits (at most `max`) until the machine's load holds steady: two
/// seconds in a row each within a tenth of a core of the second before.
/// Removing a burst's containers leaves work behind (dying processes,
/// containerd's garbage collection, the kernel's network namespace
/// cleanup); a burst measured on top of it would pay for the previous one.
/// Quiet is not idle: the games already running are probed, and from a few
/// hundred containers the kernel alone keeps most of a core busy. Returns
/// how long it waited and the load of the last second, in cores.
pub(super) fn settle(max: Duration) -> Result<(Duration, f64)> {
    let t0 = Instant::now();
    let mut steady = 0;
    let mut load = f64::NAN;
    while t0.elapsed() < max && steady < 2 {
        let before = machine_busy_seconds()?;
        let second = Instant::now();
        sleep(Duration::from_secs(1));
        let was = load;
        load = (machine_busy_seconds()? - before) / second.elapsed().as_secs_f64();
        steady = if (load - was).abs() < 0.1 {
            steady + 1
        } else {
            0
        };
    }
    Ok((t0.elapsed(), load))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_all_four_times() {
        // A name with a space and a parenthesis; utime..cstime 100+50+20+5.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 100 50 20 5 20 0 1 0 7 0 0";
        let (comm, secs) = stat_seconds(stat, 14..=17).unwrap();
        assert_eq!(comm, "a (b) c");
        assert!((secs - 1.75).abs() < 1e-9, "{secs}");
        assert_eq!(stat_seconds(stat, 14..=15).unwrap().1, 1.5);
        assert_eq!(stat_seconds("42 (short) S 1 2", 14..=17), None);
    }

    #[test]
    fn kernel_workers_are_one_group_whatever_they_run() {
        let mut before = CpuMark::default();
        before.procs.insert(7, ("kworker/1:2-events".into(), 1.0));
        let mut after = CpuMark {
            machine: 3.0,
            ..CpuMark::default()
        };
        after
            .procs
            .insert(7, ("kworker/1:2-mm_percpu_wq".into(), 1.5));
        after.procs.insert(9, ("dockerd".into(), 2.0));
        let used = after.since(&before);
        assert_eq!(used.by.get("kworker"), Some(&0.5));
        assert_eq!(used.by.get("dockerd"), Some(&2.0));
        assert_eq!(used.machine, 3.0);
    }
}
