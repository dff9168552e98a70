//! Loading: every `RTM_*` variable read through the [`Reader`], in a fixed
//! order, each handed to the parser of the crate that owns the setting
//! (rtm-postgres, rtm-redis, rtm-docker, rtm-domain) or, for the binary's
//! own settings, to a format of `format.rs`. Every problem is collected
//! before failing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rtm_docker::DockerConfig;
use rtm_domain::Allowlist;
use rtm_postgres::PgConfig;
use rtm_redis::LobbyConfig;

use super::error::{ConfigError, ConfigErrors};
use super::format::{
    parse_absolute_path, parse_addr, parse_bool, parse_cpus, parse_key, parse_log_format,
    parse_name, parse_number, parse_runtime, parse_size, parse_size_at_least, parse_token,
    RuntimeKind,
};
use super::reader::{Lookup, Reader};
use super::secret::{Secret, SecretUrl};
use super::{
    Config, HealthSettings, HttpConfig, OperationsConfig, RuntimeChoice, SwarmSettings,
    WorkersConfig, DEFAULT_DATABASE_URL,
};

impl Config {
    /// Reads the process environment; the instance id defaults to the host
    /// name.
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Self::from_lookup(&|k| std::env::var(k).ok(), super::host_name())
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
        lookup: Lookup<'_>,
        host_name: Option<String>,
    ) -> Result<Config, ConfigErrors> {
        load(lookup, host_name).0
    }
}

/// The configuration (or every problem) and the variables read.
pub(super) fn load(
    lookup: Lookup<'_>,
    host_name: Option<String>,
) -> (Result<Config, ConfigErrors>, Vec<&'static str>) {
    let mut r = Reader::new(lookup);
    let config = read(&mut r, host_name);
    let (errors, read) = r.finish();
    let result = match config {
        Some(config) if errors.is_empty() => Ok(config),
        // A value was neither parsed nor reported: unreachable by
        // construction (every `None` below is reported), still an error.
        None if errors.is_empty() => Err(ConfigErrors(vec![ConfigError {
            variable: "RTM_*",
            message: "internal error: a value was neither parsed nor reported".to_owned(),
        }])),
        _ => Err(ConfigErrors(errors)),
    };
    (result, read)
}

/// Reads every variable (each one whatever the others hold, so the reader
/// records them all), then assembles the configuration when all parsed.
fn read(r: &mut Reader<'_>, host_name: Option<String>) -> Option<Config> {
    let postgres = read_postgres(r);
    let migrate_on_start = r.get("RTM_MIGRATE_ON_START", Some("false"), parse_bool);
    let redis_url = r.get("RTM_REDIS_URL", Some("redis://127.0.0.1:6379"), |s| {
        rtm_redis::check_url(s).map_err(|e| e.to_string())?;
        Ok(SecretUrl::new(s))
    });
    let docker_host = r.get("RTM_DOCKER_HOST", Some("/var/run/docker.sock"), |s| {
        rtm_docker::DockerHost::parse(s).map_err(|e| e.to_string())
    });
    let http = read_http(r);
    let default_instance = host_name
        .as_deref()
        .and_then(|h| parse_name(h, 200).ok())
        .unwrap_or_else(|| "rtmanager".to_owned());
    let instance_id = r.get("RTM_INSTANCE_ID", Some(&default_instance), |s| {
        parse_name(s, 200)
    });
    let owner = r.get("RTM_OWNER", Some("rtmanager"), |s| {
        rtm_docker::parse_owner(s).map_err(|e| e.to_string())
    });
    let allowlist = r.get("RTM_IMAGE_ALLOWLIST", None, |s| {
        let list = Allowlist::parse(s).map_err(|e| e.to_string())?;
        if list.is_empty() {
            Err("lists no entry (use comma-separated host/repository entries, e.g. ghcr.io/acme/engine or ghcr.io/acme/*)".to_owned())
        } else {
            Ok(list)
        }
    });
    let docker = read_docker(r);
    let runtime = read_runtime(r);
    let lobby = read_lobby(r);
    let health = read_health(r);
    let workers = read_workers(r);
    let operations = read_operations(r);
    let log_format = r.get("RTM_LOG_FORMAT", Some("text"), parse_log_format);
    let shutdown_timeout = r.duration("RTM_SHUTDOWN_TIMEOUT", "30s", true);
    let http = check_http(r, http);

    // Every `?` below is reached only when no error was recorded, i.e.
    // when every value above parsed.
    if !r.errors().is_empty() {
        return None;
    }
    let instance_id = instance_id?;
    let (docker, state_root) = docker?;
    let docker = DockerConfig {
        host: docker_host?,
        owner: owner?,
        ..docker
    };
    let mut lobby = lobby?;
    lobby.consumer = instance_id.clone();
    Some(Config {
        instance_id,
        allowlist: allowlist?,
        postgres: postgres?,
        migrate_on_start: migrate_on_start?,
        redis_url: redis_url?,
        docker,
        runtime: runtime?,
        state_root,
        lobby,
        health: health?,
        workers: workers?,
        operations: operations?,
        http: http?,
        log_format: log_format?,
        shutdown_timeout: shutdown_timeout?,
    })
}

/// `RTM_RUNTIME` and the `RTM_SWARM_*` settings (all read, so each is
/// checked and recorded whichever runtime is chosen).
fn read_runtime(r: &mut Reader<'_>) -> Option<RuntimeChoice> {
    let kind = r.get("RTM_RUNTIME", Some("docker"), parse_runtime);
    let constraints = r.get("RTM_SWARM_CONSTRAINTS", Some(""), |s| {
        rtm_swarm::parse_constraints(s).map_err(|e| e.to_string())
    });
    let poll_interval = r.duration("RTM_SWARM_POLL_INTERVAL", "1s", true);
    let start_timeout = r.duration("RTM_SWARM_START_TIMEOUT", "60s", true);
    let accept = r.get(
        "RTM_SWARM_ACCEPT_WEAKER_ISOLATION",
        Some("false"),
        parse_bool,
    );
    if kind? == RuntimeKind::Docker {
        return Some(RuntimeChoice::Docker);
    }
    if accept == Some(false) {
        // The adapter's own refusal, reported with the other problems.
        let refusal = rtm_swarm::SwarmConfigError::WeakerIsolation;
        r.fail("RTM_SWARM_ACCEPT_WEAKER_ISOLATION", refusal.to_string());
    }
    Some(RuntimeChoice::Swarm(SwarmSettings {
        constraints: constraints?,
        poll_interval: poll_interval?,
        start_timeout: start_timeout?,
        accept_weaker_isolation: accept?,
    }))
}

fn read_postgres(r: &mut Reader<'_>) -> Option<PgConfig> {
    let url = r.get("RTM_DATABASE_URL", Some(DEFAULT_DATABASE_URL), |s| {
        rtm_postgres::check_url(s).map_err(|e| e.to_string())?;
        Ok(s.to_owned())
    });
    let schema = r.get("RTM_DATABASE_SCHEMA", Some("rtmanager"), |s| {
        rtm_postgres::parse_schema(s).map_err(|e| e.to_string())
    });
    let pool_size = r.get("RTM_DATABASE_POOL_SIZE", Some("16"), |s| {
        parse_number::<usize>(s, 1, 1024)
    });
    let lock_pool_size = r.get("RTM_DATABASE_LOCK_POOL_SIZE", Some("32"), |s| {
        parse_number::<usize>(s, 1, 1024)
    });
    let mut pg = PgConfig::new(url?, schema?);
    pg.pool_size = pool_size?;
    pg.lock_pool_size = lock_pool_size?;
    Some(pg)
}

/// The two surfaces' addresses and tokens, each `None` when it did not
/// parse; [`check_http`] applies the rules between them.
type HttpParts = (
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<Secret>,
    Option<Secret>,
);

fn read_http(r: &mut Reader<'_>) -> HttpParts {
    (
        r.get("RTM_HTTP_ADDR", Some("127.0.0.1:8080"), parse_addr),
        r.get("RTM_ADMIN_HTTP_ADDR", Some("127.0.0.1:8081"), parse_addr),
        r.get("RTM_GM_TOKEN", None, parse_token),
        r.get("RTM_ADMIN_TOKEN", None, parse_token),
    )
}

/// The cross-variable rules of the REST surfaces, checked only when both
/// values parsed (after every variable, so they are reported last).
fn check_http(r: &mut Reader<'_>, parts: HttpParts) -> Option<HttpConfig> {
    let (gm_addr, admin_addr, gm_token, admin_token) = parts;
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
                format!("{admin} is also RTM_HTTP_ADDR; the two surfaces need separate addresses"),
            );
        }
    }
    Some(HttpConfig {
        gm_addr: gm_addr?,
        admin_addr: admin_addr?,
        gm_token: gm_token?,
        admin_token: admin_token?,
    })
}

/// The Docker adapter's settings but its host and owner (read earlier, in
/// the SPEC table's order), and the domain's state root.
fn read_docker(r: &mut Reader<'_>) -> Option<(DockerConfig, String)> {
    let docker_err = |e: rtm_docker::DockerConfigError| e.to_string();
    let network = r.get("RTM_DOCKER_NETWORK", Some("rtm-engines"), |s| {
        rtm_docker::parse_network(s).map_err(docker_err)
    });
    let concurrency = r.get("RTM_DOCKER_CONCURRENCY", Some("8"), |s| {
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
    let state_mount = r.get("RTM_ENGINE_STATE_MOUNT", Some("/var/lib/engine"), |s| {
        rtm_docker::parse_state_mount(s).map_err(docker_err)
    });
    let engine_user = r.get("RTM_ENGINE_USER", Some("65534:65534"), |s| {
        rtm_docker::EngineUser::parse(s).map_err(docker_err)
    });
    let memory = r.get("RTM_ENGINE_MEMORY", Some("512m"), |s| {
        let n = parse_size(s)?;
        // 0 would mean "no limit" to the adapter; an engine always gets one.
        if n < rtm_docker::MIN_MEMORY_BYTES {
            Err(format!("{s:?} is below Docker's minimum of 6m"))
        } else {
            Ok(n)
        }
    });
    let cpus = r.get("RTM_ENGINE_CPUS", Some("1"), parse_cpus);
    let log_max_size = r.get("RTM_ENGINE_LOG_MAX_SIZE", Some("10m"), |s| {
        parse_size_at_least(s, rtm_docker::MIN_LOG_MAX_SIZE, "1k")
    });
    let log_max_files = r.get("RTM_ENGINE_LOG_MAX_FILES", Some("3"), |s| {
        parse_number::<u32>(s, 1, 100)
    });
    let cap_add = r.get("RTM_ENGINE_CAP_ADD", Some(""), |s| {
        rtm_docker::parse_capabilities(s).map_err(docker_err)
    });
    let tmpfs_bytes = r.get("RTM_ENGINE_TMPFS_SIZE", Some("64m"), |s| {
        parse_size_at_least(s, rtm_docker::MIN_TMPFS_BYTES, "1m")
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
    let defaults = DockerConfig::with_defaults("");
    let config = DockerConfig {
        network: network?,
        call_concurrency: concurrency?,
        engine_port: engine_port?,
        state_mount: state_mount?,
        engine_user: engine_user?,
        memory_bytes: memory?,
        nano_cpus: cpus?,
        log_max_size: log_max_size?,
        log_max_files: log_max_files?,
        cap_add: cap_add?,
        tmpfs_bytes: tmpfs_bytes?,
        pids_limit: pids_limit?,
        registry_auth_file: registry_auth_file?,
        pull_timeout: pull_timeout?,
        ..defaults
    };
    Some((config, state_root?))
}

/// The Lobby consumer's settings (SPEC §6); its consumer name is set from
/// `RTM_INSTANCE_ID` by the caller.
fn read_lobby(r: &mut Reader<'_>) -> Option<LobbyConfig> {
    let stream = r.get(
        "RTM_LOBBY_STREAM",
        Some("lobby:runtime_commands"),
        parse_key,
    );
    let group = r.get("RTM_LOBBY_GROUP", Some("rtmanager"), parse_key);
    let claim_idle = r.duration("RTM_LOBBY_CLAIM_IDLE", "5m", true);
    let max_deliveries = r.get("RTM_LOBBY_MAX_DELIVERIES", Some("5"), |s| {
        parse_number::<u64>(s, 1, 1000)
    });
    let concurrency = r.get("RTM_LOBBY_CONCURRENCY", Some("16"), |s| {
        parse_number::<usize>(s, 1, 1024)
    });
    let dead_maxlen = r.get("RTM_LOBBY_DEAD_MAXLEN", Some("10000"), |s| {
        parse_number::<u64>(s, 1, u64::MAX)
    });
    let mut lobby = LobbyConfig::new(stream?, group?, String::new());
    lobby.claim_idle = claim_idle?;
    lobby.max_deliveries = max_deliveries?;
    lobby.concurrency = concurrency?;
    lobby.dead_maxlen = dead_maxlen?;
    Some(lobby)
}

fn read_health(r: &mut Reader<'_>) -> Option<HealthSettings> {
    let stream = r.get(
        "RTM_HEALTH_STREAM",
        Some("runtime:health_events"),
        parse_key,
    );
    let stream_maxlen = r.get("RTM_HEALTH_STREAM_MAXLEN", Some("100000"), |s| {
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
    Some(HealthSettings {
        stream: stream?,
        stream_maxlen: stream_maxlen?,
        probe_interval: probe_interval?,
        probe_timeout: probe_timeout?,
        probe_failures: probe_failures?,
        probe_path: probe_path?,
        probe_concurrency: probe_concurrency?,
        inspect_interval: inspect_interval?,
        docker_events: docker_events?,
    })
}

fn read_workers(r: &mut Reader<'_>) -> Option<WorkersConfig> {
    let cleanup_interval = r.duration("RTM_CLEANUP_INTERVAL", "1m", true);
    let stopped_retention = r.duration("RTM_STOPPED_RETENTION", "24h", false);
    let audit_retention = r.duration("RTM_AUDIT_RETENTION", "90d", true);
    let removed_retention = r.duration("RTM_REMOVED_RETENTION", "30d", true);
    // Unset means never: a game's state is its data, deleted only when the
    // operator asks for it.
    let state_retention: Option<Option<Duration>> = match r.raw("RTM_STATE_RETENTION") {
        None => Some(None),
        Some(_) => r.duration("RTM_STATE_RETENTION", "", true).map(Some),
    };
    let reconcile_interval = r.duration("RTM_RECONCILE_INTERVAL", "1m", true);
    Some(WorkersConfig {
        cleanup_interval: cleanup_interval?,
        stopped_retention: stopped_retention?,
        audit_retention: audit_retention?,
        removed_retention: removed_retention?,
        state_retention: state_retention?,
        reconcile_interval: reconcile_interval?,
    })
}

fn read_operations(r: &mut Reader<'_>) -> Option<OperationsConfig> {
    let stop_timeout = r.duration("RTM_STOP_TIMEOUT", "30s", false);
    let lock_wait = r.duration("RTM_LOCK_WAIT", "5s", true);
    let patch_health_timeout = r.duration("RTM_PATCH_HEALTH_TIMEOUT", "60s", true);
    Some(OperationsConfig {
        stop_timeout: stop_timeout?,
        lock_wait: lock_wait?,
        patch_health_timeout: patch_health_timeout?,
    })
}
