//! The service's configuration: every `RTM_*` variable (SPEC §10), parsed
//! and validated once at start.
//!
//! Guarantees:
//! - [`Config::from_lookup`] reads from an injectable source, so tests never
//!   touch the process environment.
//! - Validation collects **every** problem before failing: an operator fixes
//!   a bad deployment in one round, not one variable per restart. Each
//!   problem is one line naming the variable, the bad value and what is
//!   expected ([`ConfigErrors`]).
//! - An empty value counts as unset (the default applies, or a required
//!   variable is reported missing); surrounding whitespace is trimmed.
//! - Secrets (tokens, URL passwords) never appear in `Debug` output, so the
//!   whole `Config` may be logged at start.
//!
//! Formats: durations are `<digits><unit>` with unit `ms`, `s`, `m`, `h`
//! (`500ms`, `5s`, `10m`, `24h`); sizes are `<digits>[k|m|g]` in bytes with
//! binary multiples (`512k` = 512 KiB, `256m` = 256 MiB, `1g` = 1 GiB, a bare
//! number is bytes; the suffix is case-insensitive).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rtm_domain::service::ServiceConfig;
use rtm_domain::Allowlist;

// ---------------------------------------------------------------- defaults

/// Every variable the service reads, so unknown `RTM_*` names (typos) can be
/// reported.
pub const KNOWN_VARIABLES: &[&str] = &[
    "RTM_DATABASE_URL",
    "RTM_DATABASE_SCHEMA",
    "RTM_DATABASE_POOL_SIZE",
    "RTM_DATABASE_LOCK_POOL_SIZE",
    "RTM_MIGRATE_ON_START",
    "RTM_REDIS_URL",
    "RTM_DOCKER_HOST",
    "RTM_HTTP_ADDR",
    "RTM_ADMIN_HTTP_ADDR",
    "RTM_GM_TOKEN",
    "RTM_ADMIN_TOKEN",
    "RTM_INSTANCE_ID",
    "RTM_OWNER",
    "RTM_IMAGE_ALLOWLIST",
    "RTM_DOCKER_NETWORK",
    "RTM_DOCKER_CONCURRENCY",
    "RTM_STATE_ROOT",
    "RTM_ENGINE_PORT",
    "RTM_ENGINE_STATE_MOUNT",
    "RTM_ENGINE_USER",
    "RTM_ENGINE_MEMORY",
    "RTM_ENGINE_CPUS",
    "RTM_ENGINE_LOG_MAX_SIZE",
    "RTM_ENGINE_LOG_MAX_FILES",
    "RTM_ENGINE_CAP_ADD",
    "RTM_ENGINE_TMPFS_SIZE",
    "RTM_ENGINE_PIDS_LIMIT",
    "RTM_REGISTRY_AUTH_FILE",
    "RTM_PULL_TIMEOUT",
    "RTM_LOBBY_STREAM",
    "RTM_LOBBY_GROUP",
    "RTM_LOBBY_CLAIM_IDLE",
    "RTM_LOBBY_MAX_DELIVERIES",
    "RTM_LOBBY_CONCURRENCY",
    "RTM_LOBBY_DEAD_MAXLEN",
    "RTM_HEALTH_STREAM",
    "RTM_HEALTH_STREAM_MAXLEN",
    "RTM_PROBE_INTERVAL",
    "RTM_PROBE_TIMEOUT",
    "RTM_PROBE_FAILURES",
    "RTM_PROBE_PATH",
    "RTM_PROBE_CONCURRENCY",
    "RTM_INSPECT_INTERVAL",
    "RTM_DOCKER_EVENTS",
    "RTM_CLEANUP_INTERVAL",
    "RTM_STOPPED_RETENTION",
    "RTM_AUDIT_RETENTION",
    "RTM_REMOVED_RETENTION",
    "RTM_STATE_RETENTION",
    "RTM_RECONCILE_INTERVAL",
    "RTM_STOP_TIMEOUT",
    "RTM_LOCK_WAIT",
    "RTM_PATCH_HEALTH_TIMEOUT",
    "RTM_LOG_FORMAT",
    "RTM_SHUTDOWN_TIMEOUT",
];

/// Local-use default of `RTM_DATABASE_URL` (the role `cargo xtask provision`
/// creates).
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://rtmanagerservice:rtmanagerservice@127.0.0.1:5432/rtmanager";

/// Shortest accepted bearer token: 16 characters make guessing hopeless
/// even without rate limiting.
pub const MIN_TOKEN_LEN: usize = 16;

/// Docker refuses memory limits below 6 MiB.
const MIN_ENGINE_MEMORY: u64 = 6 * 1024 * 1024;

/// Upper bound of `RTM_ENGINE_CPUS`; a larger value is a typo, not a host.
const MAX_ENGINE_CPUS: u64 = 1024;

// ---------------------------------------------------------------- types

/// A secret string: shown as `[redacted]` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL that may carry a password: `Debug` shows it with the
/// password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The URL with its password, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (if any) replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host…` with `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last '@' before the first '/' of the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

/// Where the Docker Engine API listens (`RTM_DOCKER_HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    /// A Unix socket path (`/var/run/docker.sock` or `unix:///…`).
    Unix(PathBuf),
    /// `tcp://host:port` (plain HTTP: use only on a trusted network).
    Tcp { host: String, port: u16 },
}

/// The engine container's user (`RTM_ENGINE_USER`), never root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineUser {
    pub uid: u32,
    pub gid: u32,
}

impl fmt::Display for EngineUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// Log line format (`RTM_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// PostgreSQL settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `RTM_DATABASE_URL`.
    pub url: SecretUrl,
    /// `RTM_DATABASE_SCHEMA`: a plain identifier (safe to quote into SQL).
    pub schema: String,
    /// `RTM_DATABASE_POOL_SIZE`.
    pub pool_size: usize,
    /// `RTM_DATABASE_LOCK_POOL_SIZE`: connections that hold per-game locks;
    /// it caps how many games one replica operates on at the same time.
    pub lock_pool_size: usize,
    /// `RTM_MIGRATE_ON_START`.
    pub migrate_on_start: bool,
}

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `RTM_REDIS_URL`.
    pub url: SecretUrl,
}

/// Docker and engine-container settings.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `RTM_DOCKER_HOST`.
    pub host: DockerHost,
    /// `RTM_DOCKER_NETWORK`.
    pub network: String,
    /// `RTM_DOCKER_CONCURRENCY`: container creates and starts sent to
    /// Docker at once.
    pub concurrency: usize,
    /// `RTM_STATE_ROOT`: absolute host directory of per-game state.
    pub state_root: String,
    pub engine: EngineConfig,
    /// `RTM_REGISTRY_AUTH_FILE`: Docker-style credentials for pulls
    /// (checked at start; re-read by the adapter when it changes).
    pub registry_auth_file: Option<PathBuf>,
    /// `RTM_PULL_TIMEOUT`.
    pub pull_timeout: Duration,
}

/// What every engine container gets.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `RTM_ENGINE_PORT`.
    pub port: u16,
    /// `RTM_ENGINE_STATE_MOUNT`: absolute path inside the container.
    pub state_mount: String,
    /// `RTM_ENGINE_USER`.
    pub user: EngineUser,
    /// `RTM_ENGINE_MEMORY`, bytes.
    pub memory_bytes: u64,
    /// `RTM_ENGINE_CPUS` × 10⁹ (Docker's `NanoCpus`).
    pub nano_cpus: u64,
    /// `RTM_ENGINE_LOG_MAX_SIZE`, bytes (json-file `max-size`).
    pub log_max_size: u64,
    /// `RTM_ENGINE_LOG_MAX_FILES` (json-file `max-file`).
    pub log_max_files: u32,
    /// `RTM_ENGINE_CAP_ADD`: capabilities added back after dropping all.
    pub cap_add: Vec<String>,
    /// `RTM_ENGINE_TMPFS_SIZE`, bytes: the size cap of `/tmp`.
    pub tmpfs_bytes: u64,
    /// `RTM_ENGINE_PIDS_LIMIT`.
    pub pids_limit: u32,
}

/// Lobby command stream settings (SPEC §6).
#[derive(Debug, Clone)]
pub struct LobbyConfig {
    /// `RTM_LOBBY_STREAM`.
    pub stream: String,
    /// `RTM_LOBBY_GROUP`.
    pub group: String,
    /// `RTM_LOBBY_CLAIM_IDLE`.
    pub claim_idle: Duration,
    /// `RTM_LOBBY_MAX_DELIVERIES`.
    pub max_deliveries: u32,
    /// `RTM_LOBBY_CONCURRENCY`: commands carried out at once.
    pub concurrency: usize,
    /// `RTM_LOBBY_DEAD_MAXLEN`: the dead-letter stream's approximate cap.
    pub dead_maxlen: u64,
}

/// Health observation and publication settings (SPEC §7).
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// `RTM_HEALTH_STREAM`.
    pub stream: String,
    /// `RTM_HEALTH_STREAM_MAXLEN`.
    pub stream_maxlen: u64,
    /// `RTM_PROBE_INTERVAL`.
    pub probe_interval: Duration,
    /// `RTM_PROBE_TIMEOUT`.
    pub probe_timeout: Duration,
    /// `RTM_PROBE_FAILURES`.
    pub probe_failures: u32,
    /// `RTM_PROBE_PATH`.
    pub probe_path: String,
    /// `RTM_PROBE_CONCURRENCY`: probes in flight at once.
    pub probe_concurrency: usize,
    /// `RTM_INSPECT_INTERVAL`.
    pub inspect_interval: Duration,
    /// `RTM_DOCKER_EVENTS`: follow Docker's event stream (default). When
    /// false, exits and disappearances are seen by the inspect pass only
    /// (tests of that pass; diagnosing an event stream).
    pub docker_events: bool,
}

/// Background worker settings (SPEC §8).
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// `RTM_CLEANUP_INTERVAL`.
    pub cleanup_interval: Duration,
    /// `RTM_STOPPED_RETENTION`.
    pub stopped_retention: Duration,
    /// `RTM_AUDIT_RETENTION`: operation rows older than this are deleted.
    pub audit_retention: Duration,
    /// `RTM_REMOVED_RETENTION`: removed games older than this are forgotten.
    pub removed_retention: Duration,
    /// `RTM_STATE_RETENTION`: unset = a removed game's state directory is
    /// never deleted.
    pub state_retention: Option<Duration>,
    /// `RTM_RECONCILE_INTERVAL`.
    pub reconcile_interval: Duration,
}

/// Operation settings (SPEC §5).
#[derive(Debug, Clone)]
pub struct OperationsConfig {
    /// `RTM_STOP_TIMEOUT`.
    pub stop_timeout: Duration,
    /// `RTM_LOCK_WAIT`.
    pub lock_wait: Duration,
    /// `RTM_PATCH_HEALTH_TIMEOUT`.
    pub patch_health_timeout: Duration,
}

/// The two REST surfaces (SPEC §9).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `RTM_HTTP_ADDR`: the GM surface.
    pub gm_addr: SocketAddr,
    /// `RTM_ADMIN_HTTP_ADDR`: the admin surface.
    pub admin_addr: SocketAddr,
    /// `RTM_GM_TOKEN`.
    pub gm_token: Secret,
    /// `RTM_ADMIN_TOKEN`.
    pub admin_token: Secret,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RTM_INSTANCE_ID`: this replica's stable name.
    pub instance_id: String,
    /// `RTM_OWNER`: the `rtm.owner` label value.
    pub owner: String,
    /// `RTM_IMAGE_ALLOWLIST`: never empty.
    pub allowlist: Allowlist,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub docker: DockerConfig,
    pub lobby: LobbyConfig,
    pub health: HealthConfig,
    pub workers: WorkersConfig,
    pub operations: OperationsConfig,
    pub http: HttpConfig,
    /// `RTM_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RTM_SHUTDOWN_TIMEOUT`: how long in-flight work may take to finish
    /// after SIGTERM before it is abandoned to the reconciler.
    pub shutdown_timeout: Duration,
}

// ---------------------------------------------------------------- errors

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every problem found, in variable order of [`KNOWN_VARIABLES`]'s reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- parsers

/// Parses `500ms`, `5s`, `10m`, `24h`, `90d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (use 500ms, 5s, 10m, 24h)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `1024`, `512k`, `256m`, `1g` into bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (use 512k, 256m, 1g, or bytes)");
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        Some(_) => (s, 0),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `true`, `false`, `1`, `0` (the words case-insensitively).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (use true, false, 1 or 0)")),
    }
}

/// Parses a positive decimal CPU count (`1`, `0.5`, `2.25`) into nano CPUs,
/// in integer arithmetic so `0.1` is exactly 100 000 000.
pub fn parse_cpus(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a positive decimal number of CPUs (e.g. 1, 0.5, 2.25)");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !all_digits(int)
        || !all_digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("{s:?} has more than 9 decimal places"));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    if whole > MAX_ENGINE_CPUS {
        return Err(format!("{s:?} is more than {MAX_ENGINE_CPUS} CPUs"));
    }
    let frac_nanos: u64 = if frac.is_empty() {
        0
    } else {
        // Right-pad to 9 digits: "25" → 250_000_000.
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let nanos = whole * 1_000_000_000 + frac_nanos;
    if nanos == 0 {
        return Err(format!("{s:?} must be greater than 0"));
    }
    Ok(nanos)
}

/// Parses `uid:gid`, both numeric and neither 0 (root).
pub fn parse_engine_user(s: &str) -> Result<EngineUser, String> {
    let bad = || format!("{s:?} is not a numeric uid:gid (e.g. 65534:65534)");
    let (uid, gid) = s.split_once(':').ok_or_else(bad)?;
    let num = |p: &str| -> Result<u32, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse().map_err(|_| bad())
    };
    let user = EngineUser {
        uid: num(uid)?,
        gid: num(gid)?,
    };
    if user.uid == 0 || user.gid == 0 {
        return Err(format!(
            "{s:?} runs engines as root (uid or gid 0); use a non-root user such as 65534:65534"
        ));
    }
    Ok(user)
}

/// Parses a socket path, `unix:///path` or `tcp://host:port`.
pub fn parse_docker_host(s: &str) -> Result<DockerHost, String> {
    let unix = |p: &str| {
        if p.starts_with('/') {
            Ok(DockerHost::Unix(PathBuf::from(p)))
        } else {
            Err(format!(
                "{s:?} is not an absolute socket path, unix:///path or tcp://host:port"
            ))
        }
    };
    if let Some(path) = s.strip_prefix("unix://") {
        return unix(path);
    }
    if let Some(hostport) = s.strip_prefix("tcp://") {
        let hostport = hostport.trim_end_matches('/');
        let bad = || format!("{s:?} is not tcp://host:port");
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        return Ok(DockerHost::Tcp {
            host: host.to_owned(),
            port,
        });
    }
    unix(s)
}

/// A plain SQL identifier: `[a-z_][a-z0-9_]*`, at most 63 bytes (so it
/// needs no quoting and cannot inject SQL).
pub fn parse_identifier(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a plain identifier (lowercase letters, digits and '_', not starting with a digit, at most 63 characters)"
        ))
    }
}

/// A name made of `[A-Za-z0-9_.-]`, starting alphanumeric, at most `max`
/// characters: Docker network names, label values, consumer names.
fn parse_name(s: &str, max: usize) -> Result<String, String> {
    let ok = s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} must be 1-{max} characters of letters, digits, '_', '.' and '-', starting with a letter or digit"
        ))
    }
}

/// A Redis key: printable ASCII without spaces.
fn parse_key(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} must be printable ASCII without spaces"))
    }
}

fn parse_absolute_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.len() > 1 && !s.split('/').any(|c| c == "..") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!(
            "{s:?} must be an absolute path other than / (without '..')"
        ))
    }
}

fn parse_url(s: &str, schemes: &[&str]) -> Result<SecretUrl, String> {
    let shown = redact_url(s);
    match s.split_once("://") {
        Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => {
            Ok(SecretUrl::new(s))
        }
        _ => Err(format!(
            "{shown:?} is not a URL starting with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// A driver's complaint about a URL, without the URL itself (which may
/// carry a password): the innermost cause's text.
fn driver_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn parse_token(s: &str) -> Result<Secret, String> {
    // The value is a secret: never echo it, not even in an error.
    if s.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "must be at least {MIN_TOKEN_LEN} characters (got {})",
            s.chars().count()
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(Secret::new(s))
}

/// A whole number in `min..=max`, converted to the field's type (the range
/// guarantees it fits).
fn parse_number<T: TryFrom<u64>>(s: &str, min: u64, max: u64) -> Result<T, String> {
    let n: u64 = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().map_err(|_| format!("{s:?} is too large"))?
    } else {
        return Err(format!("{s:?} is not a whole number"));
    };
    if n < min || n > max {
        return Err(format!("{s:?} must be between {min} and {max}"));
    }
    T::try_from(n).map_err(|_| format!("{s:?} is too large"))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (use text or json)")),
    }
}

// ---------------------------------------------------------------- loading

/// Reads variables, applies defaults and records every problem.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The parsed value, or `None` after recording why not.
    fn get<T>(
        &mut self,
        var: &'static str,
        default: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = match (self.raw(var), default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                self.fail(var, "is required but not set".to_owned());
                return None;
            }
        };
        match parse(&value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.fail(var, message);
                None
            }
        }
    }

    fn duration(&mut self, var: &'static str, default: &str, positive: bool) -> Option<Duration> {
        self.get(var, Some(default), |s| {
            let d = parse_duration(s)?;
            if positive && d.is_zero() {
                Err(format!("{s:?} must be greater than zero"))
            } else {
                Ok(d)
            }
        })
    }

    fn fail(&mut self, variable: &'static str, message: String) {
        self.errors.push(ConfigError { variable, message });
    }
}

impl Config {
    /// Reads the process environment; the instance id defaults to the host
    /// name.
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Self::from_lookup(&|k| std::env::var(k).ok(), host_name())
    }

    /// Reads a map (tests, embedding).
    pub fn from_map(
        vars: &HashMap<String, String>,
        host_name: Option<String>,
    ) -> Result<Config, ConfigErrors> {
        Self::from_lookup(&|k| vars.get(k).cloned(), host_name)
    }

    /// Reads every variable through `lookup`. `host_name` is the default
    /// of `RTM_INSTANCE_ID` (`rtmanager` when `None`).
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        host_name: Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut r = Reader {
            lookup,
            errors: Vec::new(),
        };

        let db_url = r.get("RTM_DATABASE_URL", Some(DEFAULT_DATABASE_URL), |s| {
            let url = parse_url(s, &["postgres", "postgresql"])?;
            // As the driver will parse it (the schema is checked on its own).
            rtm_postgres::PgConfig::new(s, "rtmanager")
                .validate()
                .map_err(|e| {
                    format!(
                        "{:?} is not a valid PostgreSQL URL: {}",
                        url.redacted(),
                        driver_reason(&e)
                    )
                })?;
            Ok(url)
        });
        let schema = r.get("RTM_DATABASE_SCHEMA", Some("rtmanager"), parse_identifier);
        let pool_size = r.get("RTM_DATABASE_POOL_SIZE", Some("16"), |s| {
            parse_number::<usize>(s, 1, 1024)
        });
        let lock_pool_size = r.get("RTM_DATABASE_LOCK_POOL_SIZE", Some("32"), |s| {
            parse_number::<usize>(s, 1, 1024)
        });
        let migrate = r.get("RTM_MIGRATE_ON_START", Some("false"), parse_bool);
        let redis_url = r.get("RTM_REDIS_URL", Some("redis://127.0.0.1:6379"), |s| {
            let url = parse_url(s, &["redis", "rediss"])?;
            rtm_redis::check_url(s).map_err(|e| {
                format!(
                    "{:?} is not a valid Redis URL: {}",
                    url.redacted(),
                    driver_reason(&e)
                )
            })?;
            Ok(url)
        });
        let docker_host = r.get(
            "RTM_DOCKER_HOST",
            Some("/var/run/docker.sock"),
            parse_docker_host,
        );
        let gm_addr = r.get("RTM_HTTP_ADDR", Some("127.0.0.1:8080"), parse_addr);
        let admin_addr = r.get("RTM_ADMIN_HTTP_ADDR", Some("127.0.0.1:8081"), parse_addr);
        let gm_token = r.get("RTM_GM_TOKEN", None, parse_token);
        let admin_token = r.get("RTM_ADMIN_TOKEN", None, parse_token);
        let default_instance = host_name
            .as_deref()
            .and_then(|h| parse_name(h, 200).ok())
            .unwrap_or_else(|| "rtmanager".to_owned());
        let instance_id = r.get("RTM_INSTANCE_ID", Some(&default_instance), |s| {
            parse_name(s, 200)
        });
        let owner = r.get("RTM_OWNER", Some("rtmanager"), |s| parse_name(s, 63));
        let allowlist = r.get("RTM_IMAGE_ALLOWLIST", None, |s| {
            let list = Allowlist::parse(s).map_err(|e| e.to_string())?;
            if list.is_empty() {
                Err("lists no entry (use comma-separated host/repository entries, e.g. ghcr.io/acme/engine or ghcr.io/acme/*)".to_owned())
            } else {
                Ok(list)
            }
        });
        let network = r.get("RTM_DOCKER_NETWORK", Some("rtm-engines"), |s| {
            parse_name(s, 64)
        });
        let docker_concurrency = r.get("RTM_DOCKER_CONCURRENCY", Some("8"), |s| {
            parse_number::<usize>(s, 1, 256)
        });
        let state_root = r.get(
            "RTM_STATE_ROOT",
            Some("/var/lib/rtmanager/games"),
            parse_absolute_path,
        );
        let engine_port = r.get("RTM_ENGINE_PORT", Some("8080"), |s| {
            parse_number::<u16>(s, 1, 65535)
        });
        let state_mount = r.get(
            "RTM_ENGINE_STATE_MOUNT",
            Some("/var/lib/engine"),
            parse_absolute_path,
        );
        let engine_user = r.get("RTM_ENGINE_USER", Some("65534:65534"), parse_engine_user);
        let memory = r.get("RTM_ENGINE_MEMORY", Some("512m"), |s| {
            let n = parse_size(s)?;
            if n < MIN_ENGINE_MEMORY {
                Err(format!("{s:?} is below Docker's minimum of 6m"))
            } else {
                Ok(n)
            }
        });
        let cpus = r.get("RTM_ENGINE_CPUS", Some("1"), parse_cpus);
        let log_max_size = r.get("RTM_ENGINE_LOG_MAX_SIZE", Some("10m"), |s| {
            let n = parse_size(s)?;
            if n < 1024 {
                Err(format!("{s:?} must be at least 1k"))
            } else {
                Ok(n)
            }
        });
        let log_max_files = r.get("RTM_ENGINE_LOG_MAX_FILES", Some("3"), |s| {
            parse_number::<u32>(s, 1, 100)
        });
        let cap_add = r.get("RTM_ENGINE_CAP_ADD", Some(""), |s| {
            rtm_docker::parse_capabilities(s).map_err(|e| e.to_string())
        });
        let tmpfs_size = r.get("RTM_ENGINE_TMPFS_SIZE", Some("64m"), |s| {
            let n = parse_size(s)?;
            if n < 1024 * 1024 {
                Err(format!("{s:?} must be at least 1m"))
            } else {
                Ok(n)
            }
        });
        let pids_limit = r.get("RTM_ENGINE_PIDS_LIMIT", Some("256"), |s| {
            parse_number::<u32>(s, u64::from(rtm_docker::MIN_PIDS_LIMIT), 1_000_000)
        });
        let registry_auth_file = r.get("RTM_REGISTRY_AUTH_FILE", Some(""), |s| {
            if s.is_empty() {
                return Ok(None);
            }
            let path = PathBuf::from(parse_absolute_path(s)?);
            // Read now so a bad file stops the start with its reason (the
            // error names the file and the problem, never a secret).
            rtm_docker::RegistryAuths::load(&path).map_err(|e| e.to_string())?;
            Ok(Some(path))
        });
        let pull_timeout = r.duration("RTM_PULL_TIMEOUT", "10m", true);
        let lobby_stream = r.get(
            "RTM_LOBBY_STREAM",
            Some("lobby:runtime_commands"),
            parse_key,
        );
        let lobby_group = r.get("RTM_LOBBY_GROUP", Some("rtmanager"), parse_key);
        let claim_idle = r.duration("RTM_LOBBY_CLAIM_IDLE", "5m", true);
        let max_deliveries = r.get("RTM_LOBBY_MAX_DELIVERIES", Some("5"), |s| {
            parse_number::<u32>(s, 1, 1000)
        });
        let lobby_concurrency = r.get("RTM_LOBBY_CONCURRENCY", Some("16"), |s| {
            parse_number::<usize>(s, 1, 1024)
        });
        let health_stream = r.get(
            "RTM_HEALTH_STREAM",
            Some("runtime:health_events"),
            parse_key,
        );
        let health_maxlen = r.get("RTM_HEALTH_STREAM_MAXLEN", Some("100000"), |s| {
            parse_number::<u64>(s, 1, u64::MAX)
        });
        let probe_interval = r.duration("RTM_PROBE_INTERVAL", "5s", true);
        let probe_timeout = r.duration("RTM_PROBE_TIMEOUT", "1s", true);
        let probe_failures = r.get("RTM_PROBE_FAILURES", Some("3"), |s| {
            parse_number::<u32>(s, 1, 1000)
        });
        let probe_path = r.get("RTM_PROBE_PATH", Some("/healthz"), |s| {
            if s.starts_with('/') && s.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "{s:?} must be a URL path starting with / (printable ASCII, no spaces)"
                ))
            }
        });
        let probe_concurrency = r.get("RTM_PROBE_CONCURRENCY", Some("32"), |s| {
            parse_number::<usize>(s, 1, 4096)
        });
        let inspect_interval = r.duration("RTM_INSPECT_INTERVAL", "15s", true);
        let docker_events = r.get("RTM_DOCKER_EVENTS", Some("true"), parse_bool);
        let cleanup_interval = r.duration("RTM_CLEANUP_INTERVAL", "1m", true);
        let stopped_retention = r.duration("RTM_STOPPED_RETENTION", "24h", false);
        let audit_retention = r.duration("RTM_AUDIT_RETENTION", "90d", true);
        let removed_retention = r.duration("RTM_REMOVED_RETENTION", "30d", true);
        // Unset means never: a game's state is its data, deleted only when
        // the operator asks for it.
        let state_retention = match r.raw("RTM_STATE_RETENTION") {
            None => Some(None),
            Some(_) => r.duration("RTM_STATE_RETENTION", "", true).map(Some),
        };
        let dead_maxlen = r.get("RTM_LOBBY_DEAD_MAXLEN", Some("10000"), |s| {
            parse_number::<u64>(s, 1, u64::MAX)
        });
        let reconcile_interval = r.duration("RTM_RECONCILE_INTERVAL", "1m", true);
        let stop_timeout = r.duration("RTM_STOP_TIMEOUT", "30s", false);
        let lock_wait = r.duration("RTM_LOCK_WAIT", "5s", true);
        let patch_health_timeout = r.duration("RTM_PATCH_HEALTH_TIMEOUT", "60s", true);
        let log_format = r.get("RTM_LOG_FORMAT", Some("text"), parse_log_format);
        let shutdown_timeout = r.duration("RTM_SHUTDOWN_TIMEOUT", "30s", true);

        // Cross-variable rules, checked only when both values parsed.
        if let (Some(gm), Some(admin)) = (&gm_token, &admin_token) {
            if gm.expose() == admin.expose() {
                r.fail(
                    "RTM_ADMIN_TOKEN",
                    "must differ from RTM_GM_TOKEN (a GM token must never work on the admin surface)"
                        .to_owned(),
                );
            }
        }
        if let (Some(gm), Some(admin)) = (gm_addr, admin_addr) {
            // Port 0 asks the OS for a free port per listener (tests).
            if gm == admin && gm.port() != 0 {
                r.fail(
                    "RTM_ADMIN_HTTP_ADDR",
                    format!(
                        "{admin} is also RTM_HTTP_ADDR; the two surfaces need separate addresses"
                    ),
                );
            }
        }

        // Every `?` below is reached only when no error was recorded, i.e.
        // when every value above parsed.
        if !r.errors.is_empty() {
            return Err(ConfigErrors(r.errors));
        }
        let build = || -> Option<Config> {
            Some(Config {
                instance_id: instance_id?,
                owner: owner?,
                allowlist: allowlist?,
                database: DatabaseConfig {
                    url: db_url?,
                    schema: schema?,
                    pool_size: pool_size?,
                    lock_pool_size: lock_pool_size?,
                    migrate_on_start: migrate?,
                },
                redis: RedisConfig { url: redis_url? },
                docker: DockerConfig {
                    host: docker_host?,
                    network: network?,
                    concurrency: docker_concurrency?,
                    state_root: state_root?,
                    engine: EngineConfig {
                        port: engine_port?,
                        state_mount: state_mount?,
                        user: engine_user?,
                        memory_bytes: memory?,
                        nano_cpus: cpus?,
                        log_max_size: log_max_size?,
                        log_max_files: log_max_files?,
                        cap_add: cap_add?,
                        tmpfs_bytes: tmpfs_size?,
                        pids_limit: pids_limit?,
                    },
                    registry_auth_file: registry_auth_file?,
                    pull_timeout: pull_timeout?,
                },
                lobby: LobbyConfig {
                    stream: lobby_stream?,
                    group: lobby_group?,
                    claim_idle: claim_idle?,
                    max_deliveries: max_deliveries?,
                    concurrency: lobby_concurrency?,
                    dead_maxlen: dead_maxlen?,
                },
                health: HealthConfig {
                    stream: health_stream?,
                    stream_maxlen: health_maxlen?,
                    probe_interval: probe_interval?,
                    probe_timeout: probe_timeout?,
                    probe_failures: probe_failures?,
                    probe_path: probe_path?,
                    probe_concurrency: probe_concurrency?,
                    inspect_interval: inspect_interval?,
                    docker_events: docker_events?,
                },
                workers: WorkersConfig {
                    cleanup_interval: cleanup_interval?,
                    stopped_retention: stopped_retention?,
                    audit_retention: audit_retention?,
                    removed_retention: removed_retention?,
                    state_retention: state_retention?,
                    reconcile_interval: reconcile_interval?,
                },
                operations: OperationsConfig {
                    stop_timeout: stop_timeout?,
                    lock_wait: lock_wait?,
                    patch_health_timeout: patch_health_timeout?,
                },
                http: HttpConfig {
                    gm_addr: gm_addr?,
                    admin_addr: admin_addr?,
                    gm_token: gm_token?,
                    admin_token: admin_token?,
                },
                log_format: log_format?,
                shutdown_timeout: shutdown_timeout?,
            })
        };
        build().ok_or_else(|| {
            // Unreachable by construction (see above); still an error, not a panic.
            ConfigErrors(vec![ConfigError {
                variable: "RTM_*",
                message: "internal error: a value was neither parsed nor reported".to_owned(),
            }])
        })
    }

    /// The operations service's settings.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            allowlist: self.allowlist.clone(),
            lock_wait: self.operations.lock_wait,
            stop_timeout: self.operations.stop_timeout,
            patch_health_timeout: self.operations.patch_health_timeout,
            // The patch gate polls more often than the steady-state probe so
            // a healthy engine is accepted quickly, but never more often
            // than every 200 ms.
            patch_probe_interval: self
                .health
                .probe_interval
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(200)),
            engine_port: self.docker.engine.port,
            state_root: self.docker.state_root.clone(),
            network: self.docker.network.clone(),
        }
    }
}

/// The checks of `rtmanager check-config` beyond parsing: what the
/// configuration names on this host's filesystem. Reads metadata only;
/// connects to nothing and creates nothing. Values that do not parse are
/// skipped (parsing reports them), so this runs whether or not the rest
/// of the configuration is valid and every problem is reported at once.
///
/// - `RTM_DOCKER_HOST` as a Unix socket: the path exists and is a socket
///   (a `tcp://` host is not contacted);
/// - `RTM_STATE_ROOT`: a directory when it exists; when it does not, its
///   nearest existing ancestor is a directory (the service creates the rest).
pub fn check_host(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigError> {
    use std::os::unix::fs::FileTypeExt;
    let value = |var: &str, default: &str| {
        lookup(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let mut errors = Vec::new();
    if let Ok(DockerHost::Unix(path)) =
        parse_docker_host(&value("RTM_DOCKER_HOST", "/var/run/docker.sock"))
    {
        match std::fs::metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {}
            Ok(_) => errors.push(ConfigError {
                variable: "RTM_DOCKER_HOST",
                message: format!("{} exists but is not a socket", path.display()),
            }),
            Err(e) => errors.push(ConfigError {
                variable: "RTM_DOCKER_HOST",
                message: format!("{}: {e}", path.display()),
            }),
        }
    }
    if let Ok(root) = parse_absolute_path(&value("RTM_STATE_ROOT", "/var/lib/rtmanager/games")) {
        let root = std::path::Path::new(&root);
        match root
            .ancestors()
            .find(|p| p.exists())
            .map(|p| (p, p.is_dir()))
        {
            Some((_, true)) => {}
            Some((p, false)) => errors.push(ConfigError {
                variable: "RTM_STATE_ROOT",
                message: format!("{} is not a directory", p.display()),
            }),
            None => errors.push(ConfigError {
                variable: "RTM_STATE_ROOT",
                message: format!("no part of {} exists", root.display()),
            }),
        }
    }
    errors
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a listen address (e.g. 127.0.0.1:8080 or [::1]:8080)"))
}

/// The host name: `/etc/hostname`, else `$HOSTNAME`.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
}

/// Variables of the `rtmanager ctl` client, not of the service: an
/// operator's shell often holds them next to the service's, so the
/// service never reports them (`RTM_ADMIN_TOKEN` is both).
pub const CLIENT_VARIABLES: &[&str] = &["RTM_ADMIN_URL"];

/// `RTM_*` names among `names` that the service does not read (likely
/// typos). `RTM_TEST_*` (the test suites' own variables) and the client's
/// [`CLIENT_VARIABLES`] are not reported.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("RTM_") && !n.starts_with("RTM_TEST_"))
        .filter(|n| !KNOWN_VARIABLES.contains(&n.as_str()))
        .filter(|n| !CLIENT_VARIABLES.contains(&n.as_str()))
        .collect();
    unknown.sort();
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    const GM: &str = "gm-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    fn minimal() -> HashMap<String, String> {
        [
            ("RTM_GM_TOKEN", GM),
            ("RTM_ADMIN_TOKEN", ADMIN),
            (
                "RTM_IMAGE_ALLOWLIST",
                "rtm.local/engine-stub, ghcr.io/acme/*",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn load(extra: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let mut vars = minimal();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_map(&vars, Some("host-1".to_owned()))
    }

    fn errors(extra: &[(&str, &str)]) -> Vec<String> {
        match load(extra) {
            Ok(_) => panic!("expected errors for {extra:?}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load(&[]).expect("minimal config is valid");
        assert_eq!(c.database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.database.schema, "rtmanager");
        assert_eq!(c.database.pool_size, 16);
        assert_eq!(c.database.lock_pool_size, 32);
        assert!(!c.database.migrate_on_start);
        assert_eq!(c.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(
            c.docker.host,
            DockerHost::Unix(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(c.http.gm_addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(c.http.admin_addr, "127.0.0.1:8081".parse().expect("addr"));
        assert_eq!(c.http.gm_token.expose(), GM);
        assert_eq!(c.http.admin_token.expose(), ADMIN);
        assert_eq!(c.instance_id, "host-1");
        assert_eq!(c.owner, "rtmanager");
        assert_eq!(c.docker.network, "rtm-engines");
        assert_eq!(c.docker.concurrency, 8);
        assert_eq!(c.docker.state_root, "/var/lib/rtmanager/games");
        let e = &c.docker.engine;
        assert_eq!(e.port, 8080);
        assert_eq!(e.state_mount, "/var/lib/engine");
        assert_eq!(
            e.user,
            EngineUser {
                uid: 65534,
                gid: 65534
            }
        );
        assert_eq!(e.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(e.nano_cpus, 1_000_000_000);
        assert_eq!(e.log_max_size, 10 * 1024 * 1024);
        assert_eq!(e.log_max_files, 3);
        assert!(e.cap_add.is_empty());
        assert_eq!(e.tmpfs_bytes, 64 * 1024 * 1024);
        assert_eq!(e.pids_limit, 256);
        assert_eq!(c.docker.registry_auth_file, None);
        assert_eq!(c.docker.pull_timeout, Duration::from_secs(600));
        assert_eq!(c.lobby.stream, "lobby:runtime_commands");
        assert_eq!(c.lobby.group, "rtmanager");
        assert_eq!(c.lobby.claim_idle, Duration::from_secs(300));
        assert_eq!(c.lobby.max_deliveries, 5);
        assert_eq!(c.lobby.concurrency, 16);
        assert_eq!(c.health.stream, "runtime:health_events");
        assert_eq!(c.health.stream_maxlen, 100_000);
        assert_eq!(c.health.probe_interval, Duration::from_secs(5));
        assert_eq!(c.health.probe_timeout, Duration::from_secs(1));
        assert_eq!(c.health.probe_failures, 3);
        assert_eq!(c.health.probe_path, "/healthz");
        assert_eq!(c.health.probe_concurrency, 32);
        assert_eq!(c.health.inspect_interval, Duration::from_secs(15));
        assert_eq!(c.workers.cleanup_interval, Duration::from_secs(60));
        assert_eq!(c.workers.stopped_retention, Duration::from_secs(86_400));
        assert_eq!(c.workers.audit_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(
            c.workers.removed_retention,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(c.workers.state_retention, None);
        assert_eq!(c.lobby.dead_maxlen, 10_000);
        assert_eq!(c.workers.reconcile_interval, Duration::from_secs(60));
        assert_eq!(c.operations.stop_timeout, Duration::from_secs(30));
        assert_eq!(c.operations.lock_wait, Duration::from_secs(5));
        assert_eq!(c.operations.patch_health_timeout, Duration::from_secs(60));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));

        let s = c.service_config();
        assert_eq!(s.lock_wait, Duration::from_secs(5));
        assert_eq!(s.stop_timeout, Duration::from_secs(30));
        assert_eq!(s.patch_health_timeout, Duration::from_secs(60));
        assert_eq!(s.patch_probe_interval, Duration::from_secs(1));
        assert_eq!(s.engine_port, 8080);
        assert_eq!(s.state_root, "/var/lib/rtmanager/games");
        assert_eq!(s.network, "rtm-engines");
        let img = rtm_domain::ImageRef::parse("rtm.local/engine-stub:1.0.0").expect("image");
        assert!(s.allowlist.allows(&img));
    }

    #[test]
    fn every_variable_is_read() {
        let auth =
            std::env::temp_dir().join(format!("rtm-config-auth-{}.json", std::process::id()));
        std::fs::write(
            &auth,
            r#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}}}"#,
        )
        .expect("write auth file");
        let auth_path = auth.display().to_string();
        let c = load(&[
            ("RTM_ENGINE_CAP_ADD", "net_bind_service, CAP_SYS_NICE"),
            ("RTM_ENGINE_TMPFS_SIZE", "16m"),
            ("RTM_ENGINE_PIDS_LIMIT", "64"),
            ("RTM_REGISTRY_AUTH_FILE", &auth_path),
            ("RTM_PULL_TIMEOUT", "90s"),
            ("RTM_DATABASE_URL", "postgresql://u:p@db:5433/x"),
            ("RTM_DATABASE_SCHEMA", "rtm_test_1"),
            ("RTM_DATABASE_POOL_SIZE", "4"),
            ("RTM_DATABASE_LOCK_POOL_SIZE", "8"),
            ("RTM_MIGRATE_ON_START", "1"),
            ("RTM_REDIS_URL", "rediss://:pw@cache:6380/2"),
            ("RTM_DOCKER_HOST", "tcp://10.0.0.5:2375"),
            ("RTM_HTTP_ADDR", "0.0.0.0:9000"),
            ("RTM_ADMIN_HTTP_ADDR", "[::1]:9001"),
            ("RTM_INSTANCE_ID", "rtm-a"),
            ("RTM_OWNER", "owner.x"),
            ("RTM_DOCKER_NETWORK", "net1"),
            ("RTM_STATE_ROOT", "/srv/games/"),
            ("RTM_ENGINE_PORT", "9999"),
            ("RTM_ENGINE_STATE_MOUNT", "/data"),
            ("RTM_ENGINE_USER", "1000:1001"),
            ("RTM_ENGINE_MEMORY", "1g"),
            ("RTM_ENGINE_CPUS", "0.25"),
            ("RTM_ENGINE_LOG_MAX_SIZE", "512k"),
            ("RTM_ENGINE_LOG_MAX_FILES", "7"),
            ("RTM_LOBBY_STREAM", "s1"),
            ("RTM_LOBBY_GROUP", "g1"),
            ("RTM_LOBBY_CLAIM_IDLE", "30s"),
            ("RTM_LOBBY_MAX_DELIVERIES", "9"),
            ("RTM_LOBBY_CONCURRENCY", "2"),
            ("RTM_DOCKER_CONCURRENCY", "3"),
            ("RTM_HEALTH_STREAM", "h1"),
            ("RTM_HEALTH_STREAM_MAXLEN", "10"),
            ("RTM_PROBE_INTERVAL", "500ms"),
            ("RTM_PROBE_TIMEOUT", "250ms"),
            ("RTM_PROBE_FAILURES", "1"),
            ("RTM_PROBE_PATH", "/health"),
            ("RTM_PROBE_CONCURRENCY", "8"),
            ("RTM_INSPECT_INTERVAL", "2s"),
            ("RTM_CLEANUP_INTERVAL", "10s"),
            ("RTM_STOPPED_RETENTION", "0s"),
            ("RTM_AUDIT_RETENTION", "7d"),
            ("RTM_REMOVED_RETENTION", "12h"),
            ("RTM_STATE_RETENTION", "2d"),
            ("RTM_LOBBY_DEAD_MAXLEN", "50"),
            ("RTM_RECONCILE_INTERVAL", "3m"),
            ("RTM_STOP_TIMEOUT", "1s"),
            ("RTM_LOCK_WAIT", "100ms"),
            ("RTM_PATCH_HEALTH_TIMEOUT", "2m"),
            ("RTM_LOG_FORMAT", "json"),
            ("RTM_SHUTDOWN_TIMEOUT", "1h"),
        ])
        .expect("valid");
        assert_eq!(c.database.url.expose(), "postgresql://u:p@db:5433/x");
        assert_eq!(c.database.schema, "rtm_test_1");
        assert_eq!(c.database.pool_size, 4);
        assert_eq!(c.database.lock_pool_size, 8);
        assert!(c.database.migrate_on_start);
        assert_eq!(c.redis.url.expose(), "rediss://:pw@cache:6380/2");
        assert_eq!(
            c.docker.host,
            DockerHost::Tcp {
                host: "10.0.0.5".into(),
                port: 2375
            }
        );
        assert_eq!(c.http.gm_addr.port(), 9000);
        assert_eq!(c.http.admin_addr, "[::1]:9001".parse().expect("addr"));
        assert_eq!(c.instance_id, "rtm-a");
        assert_eq!(c.owner, "owner.x");
        assert_eq!(c.docker.network, "net1");
        assert_eq!(c.docker.concurrency, 3);
        assert_eq!(c.docker.state_root, "/srv/games");
        assert_eq!(c.docker.engine.port, 9999);
        assert_eq!(c.docker.engine.state_mount, "/data");
        assert_eq!(c.docker.engine.user.to_string(), "1000:1001");
        assert_eq!(c.docker.engine.memory_bytes, 1 << 30);
        assert_eq!(c.docker.engine.nano_cpus, 250_000_000);
        assert_eq!(c.docker.engine.log_max_size, 512 * 1024);
        assert_eq!(c.docker.engine.log_max_files, 7);
        assert_eq!(
            c.docker.engine.cap_add,
            vec!["NET_BIND_SERVICE", "SYS_NICE"]
        );
        assert_eq!(c.docker.engine.tmpfs_bytes, 16 << 20);
        assert_eq!(c.docker.engine.pids_limit, 64);
        assert_eq!(c.docker.registry_auth_file.as_deref(), Some(auth.as_path()));
        assert_eq!(c.docker.pull_timeout, Duration::from_secs(90));
        std::fs::remove_file(&auth).expect("remove auth file");
        assert_eq!(c.lobby.stream, "s1");
        assert_eq!(c.lobby.group, "g1");
        assert_eq!(c.lobby.claim_idle, Duration::from_secs(30));
        assert_eq!(c.lobby.max_deliveries, 9);
        assert_eq!(c.lobby.concurrency, 2);
        assert_eq!(c.health.stream, "h1");
        assert_eq!(c.health.stream_maxlen, 10);
        assert_eq!(c.health.probe_interval, Duration::from_millis(500));
        assert_eq!(c.health.probe_timeout, Duration::from_millis(250));
        assert_eq!(c.health.probe_failures, 1);
        assert_eq!(c.health.probe_path, "/health");
        assert_eq!(c.health.probe_concurrency, 8);
        assert_eq!(c.health.inspect_interval, Duration::from_secs(2));
        assert_eq!(c.workers.cleanup_interval, Duration::from_secs(10));
        assert_eq!(c.workers.stopped_retention, Duration::ZERO);
        assert_eq!(c.workers.audit_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.workers.removed_retention, Duration::from_secs(12 * 3600));
        assert_eq!(
            c.workers.state_retention,
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(c.lobby.dead_maxlen, 50);
        assert_eq!(c.workers.reconcile_interval, Duration::from_secs(180));
        assert_eq!(c.operations.stop_timeout, Duration::from_secs(1));
        assert_eq!(c.operations.lock_wait, Duration::from_millis(100));
        assert_eq!(c.operations.patch_health_timeout, Duration::from_secs(120));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3600));
        assert_eq!(
            c.service_config().patch_probe_interval,
            Duration::from_millis(500)
        );
        assert_eq!(c.service_config().state_root, "/srv/games");
    }

    #[test]
    fn every_variable_in_the_table_is_known() {
        // A variable read but not listed would be reported as a typo.
        let source = include_str!("config.rs");
        for var in KNOWN_VARIABLES {
            assert!(source.contains(&format!("\"{var}\"")), "{var}");
        }
        assert_eq!(
            unknown_variables(
                [
                    "RTM_GM_TOKEN",
                    "RTM_PROBE_INTERVALL",
                    "RTM_TEST_ADMIN_URL",
                    "RTM_ADMIN_URL",
                    "PATH"
                ]
                .map(String::from)
            ),
            vec!["RTM_PROBE_INTERVALL".to_owned()]
        );
    }

    #[test]
    fn every_variable_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        for var in KNOWN_VARIABLES.iter().chain(CLIENT_VARIABLES) {
            assert!(
                doc.contains(&format!("| `{var}` |")),
                "{var} missing from docs/configuration.md"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        for bad in [
            "", "5", "s", "5 s", "5sec", "-5s", "1.5s", "5D", "5S", "1m30s", "ms", "d",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(
                e.contains("is not a duration (use 500ms, 5s, 10m, 24h)"),
                "{e}"
            );
        }
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("9999999999999999999h")
            .expect_err("overflow")
            .contains("too large"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("256m"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("256M"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        for bad in ["", "m", "1.5g", "1gb", "-1m", "1 m", "1t", "0x10"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999999g")
            .expect_err("overflow")
            .contains("too large"));
    }

    #[test]
    fn bools() {
        for (s, v) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(s), Ok(v));
        }
        for bad in ["yes", "on", "2", ""] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1"), Ok(1_000_000_000));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2.25"), Ok(2_250_000_000));
        assert_eq!(parse_cpus("0.1"), Ok(100_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        for bad in [
            "0", "0.0", "", ".", "1.", "-1", "1e3", "one", "1.2.3", "1025",
        ] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert!(parse_cpus("0.0000000001")
            .expect_err("precision")
            .contains("9 decimal"));
    }

    #[test]
    fn engine_users() {
        assert_eq!(
            parse_engine_user("65534:65534"),
            Ok(EngineUser {
                uid: 65534,
                gid: 65534
            })
        );
        for bad in ["65534", "a:b", ":1", "1:", "1:2:3", "-1:1", "99999999999:1"] {
            assert!(
                parse_engine_user(bad)
                    .expect_err(bad)
                    .contains("is not a numeric uid:gid"),
                "{bad}"
            );
        }
        for root in ["0:0", "0:1000", "1000:0"] {
            assert!(parse_engine_user(root).expect_err(root).contains("root"));
        }
    }

    #[test]
    fn docker_hosts() {
        assert_eq!(
            parse_docker_host("/var/run/docker.sock"),
            Ok(DockerHost::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            parse_docker_host("unix:///run/d.sock"),
            Ok(DockerHost::Unix("/run/d.sock".into()))
        );
        assert_eq!(
            parse_docker_host("tcp://docker:2376"),
            Ok(DockerHost::Tcp {
                host: "docker".into(),
                port: 2376
            })
        );
        for bad in [
            "docker.sock",
            "unix://rel",
            "tcp://docker",
            "tcp://:2375",
            "tcp://h:0",
            "tcp://h:x",
            "http://h:1",
        ] {
            assert!(parse_docker_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_and_names() {
        assert!(parse_identifier("rtmanager").is_ok());
        assert!(parse_identifier("_x9").is_ok());
        for bad in ["", "9x", "Rtm", "a-b", "a;drop", "a\"b", &"x".repeat(64)] {
            assert!(parse_identifier(bad).is_err(), "{bad}");
        }
        assert!(parse_name("rtm-engines", 64).is_ok());
        for bad in ["", "-x", "a b", "a/b"] {
            assert!(parse_name(bad, 64).is_err(), "{bad}");
        }
        assert!(parse_key("lobby:runtime_commands").is_ok());
        assert!(parse_key("a b").is_err());
        assert!(parse_absolute_path("/x/").is_ok());
        for bad in ["x", "/", "/a/../b", ""] {
            assert!(parse_absolute_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_variables_are_reported_missing() {
        let e = Config::from_map(&HashMap::new(), None).expect_err("nothing set");
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "RTM_GM_TOKEN: is required but not set",
                "RTM_ADMIN_TOKEN: is required but not set",
                "RTM_IMAGE_ALLOWLIST: is required but not set",
            ]
        );
        // An empty value is unset.
        let mut vars = minimal();
        vars.insert("RTM_GM_TOKEN".into(), "  ".into());
        let e = Config::from_map(&vars, None).expect_err("empty token");
        assert_eq!(e.0[0].to_string(), "RTM_GM_TOKEN: is required but not set");
    }

    #[test]
    fn token_rules() {
        let e = errors(&[("RTM_GM_TOKEN", "short")]);
        assert_eq!(
            e,
            vec!["RTM_GM_TOKEN: must be at least 16 characters (got 5)"]
        );
        let e = errors(&[("RTM_ADMIN_TOKEN", GM)]);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("RTM_ADMIN_TOKEN: must differ from RTM_GM_TOKEN"));
        let e = errors(&[("RTM_ADMIN_TOKEN", "with space 0123456789")]);
        assert!(e[0].contains("printable ASCII"));
    }

    #[test]
    fn allowlist_rules() {
        let e = errors(&[("RTM_IMAGE_ALLOWLIST", "   ")]);
        // Whitespace-only is empty, hence unset.
        assert_eq!(e, vec!["RTM_IMAGE_ALLOWLIST: is required but not set"]);
        let e = errors(&[("RTM_IMAGE_ALLOWLIST", " , ")]);
        assert!(
            e[0].starts_with("RTM_IMAGE_ALLOWLIST: lists no entry"),
            "{e:?}"
        );
        let e = errors(&[("RTM_IMAGE_ALLOWLIST", "ghcr.io/acme/engine:1.0")]);
        assert!(
            e[0].starts_with("RTM_IMAGE_ALLOWLIST: invalid allow-list entry"),
            "{e:?}"
        );
    }

    #[test]
    fn retention_values_are_checked() {
        assert_eq!(
            errors(&[("RTM_AUDIT_RETENTION", "0d")]),
            vec!["RTM_AUDIT_RETENTION: \"0d\" must be greater than zero"]
        );
        assert_eq!(
            errors(&[("RTM_STATE_RETENTION", "forever")]),
            vec!["RTM_STATE_RETENTION: \"forever\" is not a duration (use 500ms, 5s, 10m, 24h)"]
        );
        assert_eq!(
            errors(&[("RTM_LOBBY_DEAD_MAXLEN", "0")]),
            vec![format!(
                "RTM_LOBBY_DEAD_MAXLEN: \"0\" must be between 1 and {}",
                u64::MAX
            )]
        );
        // An empty value is the same as unset: never delete state.
        let c = load(&[("RTM_STATE_RETENTION", " ")]).expect("valid");
        assert_eq!(c.workers.state_retention, None);
    }

    #[test]
    fn lockdown_and_registry_rules() {
        let e = errors(&[
            ("RTM_ENGINE_CAP_ADD", "NET_BIND_SERVICE,ALL"),
            ("RTM_ENGINE_TMPFS_SIZE", "512k"),
            ("RTM_ENGINE_PIDS_LIMIT", "2"),
            ("RTM_REGISTRY_AUTH_FILE", "/nonexistent/rtm/config.json"),
            ("RTM_PULL_TIMEOUT", "0s"),
        ]);
        assert_eq!(e.len(), 5, "every problem at once: {e:?}");
        assert!(
            e[0].starts_with("RTM_ENGINE_CAP_ADD: ALL is not allowed"),
            "{e:?}"
        );
        assert_eq!(e[1], "RTM_ENGINE_TMPFS_SIZE: \"512k\" must be at least 1m");
        assert!(
            e[2].starts_with("RTM_ENGINE_PIDS_LIMIT: \"2\" must be between 8"),
            "{e:?}"
        );
        assert!(
            e[3].starts_with(
                "RTM_REGISTRY_AUTH_FILE: registry auth file /nonexistent/rtm/config.json: cannot read"
            ),
            "{e:?}"
        );
        assert!(e[4].starts_with("RTM_PULL_TIMEOUT:"), "{e:?}");
        assert!(
            errors(&[("RTM_ENGINE_CAP_ADD", "SYS_ADMINN")])[0].contains("not a Linux capability")
        );

        // A file that parses badly is named with its problem, and its
        // secrets are not echoed.
        let bad = std::env::temp_dir().join(format!("rtm-config-bad-{}.json", std::process::id()));
        std::fs::write(
            &bad,
            r#"{"auths": {"ghcr.io": {"username": "u", "pass": "hunter2"}}}"#,
        )
        .expect("write");
        let e = errors(&[("RTM_REGISTRY_AUTH_FILE", &bad.display().to_string())]);
        std::fs::remove_file(&bad).expect("remove");
        assert_eq!(
            e,
            vec![format!(
                "RTM_REGISTRY_AUTH_FILE: registry auth file {}: entry \"ghcr.io\": \"username\" without \"password\"",
                bad.display()
            )]
        );
    }

    #[test]
    fn all_problems_are_collected_in_one_message() {
        let err = load(&[
            ("RTM_PROBE_INTERVAL", "5 seconds"),
            ("RTM_ENGINE_USER", "0:0"),
            ("RTM_ENGINE_CPUS", "0"),
            ("RTM_ENGINE_MEMORY", "1m"),
            ("RTM_DATABASE_SCHEMA", "rtm; drop table x"),
            ("RTM_ADMIN_HTTP_ADDR", "127.0.0.1:8080"),
            ("RTM_MIGRATE_ON_START", "yes"),
            ("RTM_DATABASE_URL", "mysql://root:hunter2@db/x"),
            ("RTM_ENGINE_PORT", "70000"),
            ("RTM_LOG_FORMAT", "xml"),
            ("RTM_LOCK_WAIT", "0s"),
        ])
        .expect_err("many problems");
        let text = err.to_string();
        assert_eq!(
            text,
            "invalid configuration (11 problems):\n  \
             RTM_DATABASE_URL: \"mysql://root:***@db/x\" is not a URL starting with postgres:// or postgresql://\n  \
             RTM_DATABASE_SCHEMA: \"rtm; drop table x\" is not a plain identifier (lowercase letters, digits and '_', not starting with a digit, at most 63 characters)\n  \
             RTM_MIGRATE_ON_START: \"yes\" is not a boolean (use true, false, 1 or 0)\n  \
             RTM_ENGINE_PORT: \"70000\" must be between 1 and 65535\n  \
             RTM_ENGINE_USER: \"0:0\" runs engines as root (uid or gid 0); use a non-root user such as 65534:65534\n  \
             RTM_ENGINE_MEMORY: \"1m\" is below Docker's minimum of 6m\n  \
             RTM_ENGINE_CPUS: \"0\" must be greater than 0\n  \
             RTM_PROBE_INTERVAL: \"5 seconds\" is not a duration (use 500ms, 5s, 10m, 24h)\n  \
             RTM_LOCK_WAIT: \"0s\" must be greater than zero\n  \
             RTM_LOG_FORMAT: \"xml\" is not a log format (use text or json)\n  \
             RTM_ADMIN_HTTP_ADDR: 127.0.0.1:8080 is also RTM_HTTP_ADDR; the two surfaces need separate addresses"
        );
        assert!(!text.contains("hunter2"));
        assert_eq!(
            errors(&[("RTM_HTTP_ADDR", "localhost")]),
            vec!["RTM_HTTP_ADDR: \"localhost\" is not a listen address (e.g. 127.0.0.1:8080 or [::1]:8080)"]
        );
        let one = load(&[("RTM_PROBE_FAILURES", "x")]).expect_err("one problem");
        assert_eq!(
            one.to_string(),
            "invalid configuration (1 problem):\n  RTM_PROBE_FAILURES: \"x\" is not a whole number"
        );
    }

    #[test]
    fn urls_are_parsed_as_the_drivers_parse_them() {
        // Right scheme, but the drivers would refuse them at connect time.
        let e = errors(&[
            (
                "RTM_DATABASE_URL",
                "postgres://u:pg-secret-pw@db:notaport/x",
            ),
            ("RTM_REDIS_URL", "redis://:redis-secret-pw@cache:notaport"),
        ]);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("RTM_DATABASE_URL: \"postgres://u:***@db:notaport/x\" is not a valid PostgreSQL URL"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(
                "RTM_REDIS_URL: \"redis://:***@cache:notaport\" is not a valid Redis URL"
            ),
            "{e:?}"
        );
        for line in &e {
            assert!(!line.contains("secret-pw"), "{line}");
        }
        assert!(load(&[
            (
                "RTM_DATABASE_URL",
                "postgresql://u:p@db:5433/x?sslmode=disable"
            ),
            ("RTM_REDIS_URL", "rediss://:p@cache:6380/2"),
        ])
        .is_ok());
    }

    #[test]
    fn the_environment_check_looks_at_the_filesystem_only() {
        let dir = std::env::temp_dir().join(format!("rtm-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("a-file");
        std::fs::write(&file, "x").expect("file");
        let socket = dir.join("d.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
        let with = |docker: &std::path::Path, root: &std::path::Path| {
            let vars: HashMap<String, String> = [
                ("RTM_DOCKER_HOST", docker.display().to_string()),
                ("RTM_STATE_ROOT", root.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let e = check_host(&|k| vars.get(k).cloned());
            if e.is_empty() {
                Ok(())
            } else {
                Err(e.iter().map(ToString::to_string).collect::<Vec<_>>())
            }
        };
        // A missing state root is fine when its parent is a directory.
        assert_eq!(with(&socket, &dir.join("games/not-yet")), Ok(()));
        let e = with(&dir.join("missing.sock"), &file.join("games")).expect_err("both bad");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("RTM_DOCKER_HOST: "), "{e:?}");
        assert!(e[1].starts_with("RTM_STATE_ROOT: ") && e[1].ends_with("is not a directory"));
        let e = with(&file, &dir).expect_err("not a socket");
        assert!(e[0].ends_with("exists but is not a socket"), "{e:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = load(&[
            ("RTM_DATABASE_URL", "postgres://u:db-secret-pw@h/d"),
            ("RTM_REDIS_URL", "redis://:redis-secret-pw@h:6379"),
        ])
        .expect("valid");
        let debug = format!("{c:?}");
        for secret in [GM, ADMIN, "db-secret-pw", "redis-secret-pw"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("postgres://u:***@h/d"));
        assert!(debug.contains("[redacted]"));
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("redis://user@h"), "redis://user@h");
        assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
    }

    #[test]
    fn instance_id_falls_back_to_rtmanager() {
        let c = Config::from_map(&minimal(), None).expect("valid");
        assert_eq!(c.instance_id, "rtmanager");
        // A host name that is not a valid consumer name is not used.
        let c = Config::from_map(&minimal(), Some("bad host".into())).expect("valid");
        assert_eq!(c.instance_id, "rtmanager");
    }
}
