//! Readings of the process itself for the metrics: `/proc/self` (RSS,
//! CPU, open descriptors), the adapters' error counters, the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Every adapter's error counters as `(dependency, kind, count)`.
pub(super) fn error_counts() -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    out.extend(rtm_postgres::error_counts().map(|(k, n)| ("postgres", k, n)));
    out.extend(rtm_redis::error_counts().map(|(k, n)| ("redis", k, n)));
    out.extend(rtm_docker::error_counts().map(|(k, n)| ("docker", k, n)));
    out
}

/// What `/proc/self` says about this process.
pub(super) struct ProcSelf {
    pub(super) rss_bytes: u64,
    pub(super) cpu_seconds: f64,
    pub(super) open_fds: u64,
}

/// Linux reports CPU times in `USER_HZ` ticks, which the kernel ABI fixes
/// at 100 per second for user space on every architecture Rust targets
/// (`sysconf(_SC_CLK_TCK)` answers 100), so no libc call is needed.
pub(super) const USER_HZ: f64 = 100.0;

pub(super) fn read_proc_self() -> Option<ProcSelf> {
    // RSS from `status` (kB, no page-size lookup needed).
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    // utime and stime are fields 14 and 15 of `stat`; the command name
    // (field 2) may hold spaces, so count from its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // After the name, field 3 (state) is index 0, so field n is n - 3.
    let cpu_ticks = ticks(14 - 3)? + ticks(15 - 3)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcSelf {
        rss_bytes: rss_kb * 1024,
        cpu_seconds: cpu_ticks as f64 / USER_HZ,
        open_fds,
    })
}
