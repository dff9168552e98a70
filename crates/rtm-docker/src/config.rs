//! [`DockerConfig`]: everything the adapter needs to know, validated once
//! by [`DockerRuntime::new`](crate::DockerRuntime::new) so that no
//! operation can fail later because of a bad setting.

use std::path::PathBuf;
use std::time::Duration;

use docker_api::Docker;

/// Settings of the Docker adapter (SPEC §5, §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// A socket path (`/var/run/docker.sock`), `unix:///path`, or
    /// `tcp://host:port` (`RTM_DOCKER_HOST`).
    pub host: String,
    /// The `rtm.owner` label value (`RTM_OWNER`): the adapter only ever sees
    /// containers that carry it.
    pub owner: String,
    /// The engines' user-defined network (`RTM_DOCKER_NETWORK`), created if
    /// missing.
    pub network: String,
    /// Numeric `uid:gid` (or `uid`, meaning `uid:uid`) the engine runs as
    /// (`RTM_ENGINE_USER`); the state directory is chowned to it. Names are
    /// refused: they would resolve inside the image, not on the host.
    pub engine_user: String,
    /// Memory limit in bytes (`RTM_ENGINE_MEMORY`); 0 means none.
    pub memory_bytes: u64,
    /// CPU limit in 10⁻⁹ CPUs (`RTM_ENGINE_CPUS` × 10⁹); 0 means none.
    pub nano_cpus: u64,
    /// The engine's HTTP port, passed as `ENGINE_PORT` (`RTM_ENGINE_PORT`).
    pub engine_port: u16,
    /// Where the state directory appears inside the container
    /// (`RTM_ENGINE_STATE_MOUNT`), passed as `ENGINE_STATE_DIR`.
    pub state_mount: String,
    /// `json-file` log rotation: size of one file (`10m`).
    pub log_max_size: String,
    /// `json-file` log rotation: how many files are kept.
    pub log_max_files: u32,
    /// Container creates and starts sent to Docker at once
    /// (`RTM_DOCKER_CONCURRENCY`); more wait for a slot.
    pub call_concurrency: usize,
    /// Capabilities added back after `CapDrop: ["ALL"]`
    /// (`RTM_ENGINE_CAP_ADD`), as canonical names without `CAP_` (see
    /// [`parse_capabilities`]); usually empty.
    pub cap_add: Vec<String>,
    /// Size cap of the engine's `/tmp` tmpfs in bytes
    /// (`RTM_ENGINE_TMPFS_SIZE`).
    pub tmpfs_bytes: u64,
    /// Most processes and threads the engine may have at once
    /// (`RTM_ENGINE_PIDS_LIMIT`).
    pub pids_limit: u32,
    /// A Docker `config.json`-style credentials file
    /// (`RTM_REGISTRY_AUTH_FILE`); `None` pulls anonymously.
    pub registry_auth_file: Option<PathBuf>,
    /// Longest a pull may take (`RTM_PULL_TIMEOUT`).
    pub pull_timeout: Duration,
}

impl DockerConfig {
    /// The SPEC's defaults for local use, with the given owner label.
    pub fn with_defaults(owner: impl Into<String>) -> Self {
        Self {
            host: "/var/run/docker.sock".to_owned(),
            owner: owner.into(),
            network: "rtm-engines".to_owned(),
            engine_user: "65534:65534".to_owned(),
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            engine_port: 8080,
            state_mount: "/var/lib/engine".to_owned(),
            log_max_size: "10m".to_owned(),
            log_max_files: 3,
            call_concurrency: 8,
            cap_add: Vec::new(),
            tmpfs_bytes: 64 * 1024 * 1024,
            pids_limit: 256,
            registry_auth_file: None,
            pull_timeout: Duration::from_secs(600),
        }
    }
}

/// A setting the adapter cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    #[error("docker host {0:?}: expected a socket path, unix:///path or tcp://host:port")]
    BadHost(String),
    #[error("engine user {0:?}: expected numeric uid:gid (e.g. 65534:65534)")]
    BadUser(String),
    #[error("owner label is empty")]
    EmptyOwner,
    #[error("network name is empty")]
    EmptyNetwork,
    #[error("state mount {0:?}: expected an absolute path inside the container")]
    BadStateMount(String),
    #[error(
        "log rotation: max size {size:?} must be non-empty and max files ({files}) at least 1"
    )]
    BadLogRotation { size: String, files: u32 },
    #[error("{0}")]
    BadCapability(String),
    #[error("tmpfs size must be at least 1 MiB (got {0} bytes)")]
    BadTmpfsSize(u64),
    #[error("pids limit must be at least {MIN_PIDS_LIMIT} (got {0})")]
    BadPidsLimit(u32),
    #[error("pull timeout must be greater than zero")]
    BadPullTimeout,
    #[error(transparent)]
    RegistryAuth(#[from] crate::auth::RegistryAuthError),
}

/// The smallest pids limit accepted: Docker's init, the engine and a few
/// threads must fit, or the engine cannot even start.
pub const MIN_PIDS_LIMIT: u32 = 8;

/// Every Linux capability name (without `CAP_`), as of Linux 6.x. An
/// allow-list entry must be one of these: Docker would refuse an unknown
/// one only at create time, per game.
const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Parses the capability allow-list: comma-separated names, with or
/// without `CAP_`, any case (`NET_BIND_SERVICE, cap_sys_nice`). Returns the
/// canonical names (upper case, no prefix), deduplicated, in order. `ALL`
/// is refused: it would undo the lockdown in one word.
pub fn parse_capabilities(list: &str) -> Result<Vec<String>, DockerConfigError> {
    let mut out: Vec<String> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let upper = raw.to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if name == "ALL" {
            return Err(DockerConfigError::BadCapability(
                "ALL is not allowed: name each capability the engines need".to_owned(),
            ));
        }
        if !CAPABILITIES.contains(&name) {
            return Err(DockerConfigError::BadCapability(format!(
                "{raw:?} is not a Linux capability (e.g. NET_BIND_SERVICE)"
            )));
        }
        if !out.iter().any(|c| c == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Numeric user and group of the engine process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineUser {
    pub uid: u32,
    pub gid: u32,
}

impl EngineUser {
    pub(crate) fn parse(s: &str) -> Result<Self, DockerConfigError> {
        let bad = || DockerConfigError::BadUser(s.to_owned());
        let (uid, gid) = match s.split_once(':') {
            Some((u, g)) => (u, g),
            None => (s, s),
        };
        let uid: u32 = uid.parse().map_err(|_| bad())?;
        let gid: u32 = gid.parse().map_err(|_| bad())?;
        if uid == 0 {
            // SPEC §5: engines never run as root.
            return Err(bad());
        }
        Ok(Self { uid, gid })
    }

    /// The `User` field of the container: `uid:gid`.
    pub(crate) fn docker_user(self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// How to reach the Docker engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    pub(crate) fn parse(host: &str) -> Result<Self, DockerConfigError> {
        let bad = || DockerConfigError::BadHost(host.to_owned());
        if let Some(path) = host.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Self::Unix(PathBuf::from(path)));
            }
            return Err(bad());
        }
        if let Some(authority) = host.strip_prefix("tcp://") {
            if authority.is_empty() || authority.contains('/') {
                return Err(bad());
            }
            return Ok(Self::Tcp(authority.to_owned()));
        }
        if host.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(host)));
        }
        Err(bad())
    }

    /// The client. Always unversioned (`Docker::unix`, never
    /// `unix_versioned`): a versioned client prefixes every path with
    /// `/v1.xx`, which an engine older than that version refuses, while
    /// unversioned paths are answered by any Engine API version.
    pub(crate) fn connect(&self) -> Result<Docker, DockerConfigError> {
        match self {
            Self::Unix(path) => Ok(Docker::unix(path)),
            Self::Tcp(authority) => Docker::tcp(authority)
                .map_err(|_| DockerConfigError::BadHost(format!("tcp://{authority}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            Endpoint::parse("/var/run/docker.sock"),
            Ok(Endpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:///run/docker.sock"),
            Ok(Endpoint::Unix("/run/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375"),
            Ok(Endpoint::Tcp("127.0.0.1:2375".into()))
        );
        for bad in [
            "",
            "docker.sock",
            "unix://rel",
            "tcp://",
            "http://x",
            "tcp://h/p",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_capabilities() {
        assert_eq!(parse_capabilities(""), Ok(vec![]));
        assert_eq!(
            parse_capabilities("NET_BIND_SERVICE, cap_sys_nice,CAP_NET_BIND_SERVICE"),
            Ok(vec!["NET_BIND_SERVICE".to_owned(), "SYS_NICE".to_owned()])
        );
        for bad in ["ALL", "cap_all", "NET_BIND", "CAP_", "SYS ADMIN"] {
            assert!(parse_capabilities(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_users() {
        assert_eq!(
            EngineUser::parse("65534:65534"),
            Ok(EngineUser {
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(
            EngineUser::parse("1000"),
            Ok(EngineUser {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(
            EngineUser::parse("1000:2000").map(EngineUser::docker_user),
            Ok("1000:2000".into())
        );
        for bad in ["", "nobody", "0:0", "0", "1:x", "1:2:3", "-1:1"] {
            assert!(EngineUser::parse(bad).is_err(), "{bad}");
        }
    }
}
