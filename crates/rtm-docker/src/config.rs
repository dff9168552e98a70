//! [`DockerConfig`]: everything the adapter needs to know, and the one
//! parser of each of its settings.
//!
//! Every `RTM_*` variable the adapter owns is parsed here and nowhere else:
//! the binary reads the environment and hands each value to the parser
//! below ([`DockerHost::parse`], [`EngineUser::parse`],
//! [`parse_capabilities`], [`parse_network`], [`parse_owner`],
//! [`parse_state_mount`]) and the limits (`MIN_*`). Typed values are valid
//! once held; [`DockerConfig::validate`] (run by
//! [`DockerRuntime::new`](crate::DockerRuntime::new)) checks the plain
//! numbers and strings with the same rules, so no operation can fail
//! later because of a bad setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_api::Docker;

/// Settings of the Docker adapter (SPEC §5, §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// Where the Engine API listens (`RTM_DOCKER_HOST`).
    pub host: DockerHost,
    /// The `rtm.owner` label value (`RTM_OWNER`, see [`parse_owner`]): the
    /// adapter only ever sees containers that carry it.
    pub owner: String,
    /// The engines' user-defined network (`RTM_DOCKER_NETWORK`, see
    /// [`parse_network`]), created if missing.
    pub network: String,
    /// The engine's numeric user (`RTM_ENGINE_USER`); the state directory
    /// is chowned to it.
    pub engine_user: EngineUser,
    /// Memory limit in bytes (`RTM_ENGINE_MEMORY`); 0 means none, else at
    /// least [`MIN_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// CPU limit in 10⁻⁹ CPUs (`RTM_ENGINE_CPUS` × 10⁹); 0 means none.
    pub nano_cpus: u64,
    /// The engine's HTTP port, passed as `ENGINE_PORT` (`RTM_ENGINE_PORT`).
    pub engine_port: u16,
    /// Where the state directory appears inside the container
    /// (`RTM_ENGINE_STATE_MOUNT`, see [`parse_state_mount`]), passed as
    /// `ENGINE_STATE_DIR`.
    pub state_mount: String,
    /// `json-file` log rotation: size of one file in bytes
    /// (`RTM_ENGINE_LOG_MAX_SIZE`), at least [`MIN_LOG_MAX_SIZE`].
    pub log_max_size: u64,
    /// `json-file` log rotation: how many files are kept
    /// (`RTM_ENGINE_LOG_MAX_FILES`), at least 1.
    pub log_max_files: u32,
    /// Container creates and starts sent to Docker at once
    /// (`RTM_DOCKER_CONCURRENCY`); more wait for a slot.
    pub call_concurrency: usize,
    /// Capabilities added back after `CapDrop: ["ALL"]`
    /// (`RTM_ENGINE_CAP_ADD`), as canonical names without `CAP_` (see
    /// [`parse_capabilities`]); usually empty.
    pub cap_add: Vec<String>,
    /// Size cap of the engine's `/tmp` tmpfs in bytes
    /// (`RTM_ENGINE_TMPFS_SIZE`), at least [`MIN_TMPFS_BYTES`].
    pub tmpfs_bytes: u64,
    /// Most processes and threads the engine may have at once
    /// (`RTM_ENGINE_PIDS_LIMIT`), at least [`MIN_PIDS_LIMIT`].
    pub pids_limit: u32,
    /// A Docker `config.json`-style credentials file
    /// (`RTM_REGISTRY_AUTH_FILE`); `None` pulls anonymously.
    pub registry_auth_file: Option<PathBuf>,
    /// Longest a pull may take (`RTM_PULL_TIMEOUT`), greater than zero.
    pub pull_timeout: Duration,
}

impl DockerConfig {
    /// The SPEC's defaults for local use, with the given owner label.
    pub fn with_defaults(owner: impl Into<String>) -> Self {
        Self {
            host: DockerHost(Endpoint::Unix(PathBuf::from("/var/run/docker.sock"))),
            owner: owner.into(),
            network: "rtm-engines".to_owned(),
            engine_user: EngineUser {
                uid: 65534,
                gid: 65534,
            },
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            engine_port: 8080,
            state_mount: "/var/lib/engine".to_owned(),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 3,
            call_concurrency: 8,
            cap_add: Vec::new(),
            tmpfs_bytes: 64 * 1024 * 1024,
            pids_limit: 256,
            registry_auth_file: None,
            pull_timeout: Duration::from_secs(600),
        }
    }

    /// Checks the fields a caller may have set by hand with the rules of
    /// the parsers above (the typed ones are valid by construction). The
    /// registry auth file is checked by [`DockerRuntime::new`](crate::DockerRuntime::new),
    /// which opens it.
    pub fn validate(&self) -> Result<(), DockerConfigError> {
        parse_owner(&self.owner)?;
        parse_network(&self.network)?;
        if parse_state_mount(&self.state_mount)? != self.state_mount {
            return Err(DockerConfigError::BadStateMount(self.state_mount.clone()));
        }
        check_memory(self.memory_bytes)?;
        if self.log_max_size < MIN_LOG_MAX_SIZE || self.log_max_files == 0 {
            return Err(DockerConfigError::BadLogRotation {
                size: self.log_max_size,
                files: self.log_max_files,
            });
        }
        parse_capabilities(&self.cap_add.join(","))?;
        check_tmpfs(self.tmpfs_bytes)?;
        check_pids_limit(self.pids_limit)?;
        if self.pull_timeout.is_zero() {
            return Err(DockerConfigError::BadPullTimeout);
        }
        Ok(())
    }
}

/// A setting the adapter cannot work with. Each message names the bad
/// value and what is expected; the caller names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    #[error("{0:?} is not an absolute socket path, unix:///path or tcp://host:port")]
    BadHost(String),
    #[error("{0:?} is not a numeric uid:gid (e.g. 65534:65534)")]
    BadUser(String),
    #[error("{0:?} runs engines as root (uid or gid 0); use a non-root user such as 65534:65534")]
    RootUser(String),
    #[error("{value:?} must be 1-{max} characters of letters, digits, '_', '.' and '-', starting with a letter or digit")]
    BadName { value: String, max: usize },
    #[error("{0:?} must be an absolute path other than / (without '..' or ':')")]
    BadStateMount(String),
    #[error("memory limit of {0} bytes is below Docker's minimum of 6m")]
    BadMemory(u64),
    #[error(
        "log rotation: max size ({size} bytes) must be at least 1k and max files ({files}) at least 1"
    )]
    BadLogRotation { size: u64, files: u32 },
    #[error("{0}")]
    BadCapability(String),
    #[error("tmpfs size must be at least 1m (got {0} bytes)")]
    BadTmpfsSize(u64),
    #[error("pids limit must be at least {MIN_PIDS_LIMIT} (got {0})")]
    BadPidsLimit(u32),
    #[error("pull timeout must be greater than zero")]
    BadPullTimeout,
    #[error(transparent)]
    RegistryAuth(#[from] crate::auth::RegistryAuthError),
}

/// Docker refuses memory limits below 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// The smallest `json-file` max size accepted: 1 KiB.
pub const MIN_LOG_MAX_SIZE: u64 = 1024;

/// The smallest `/tmp` tmpfs accepted: 1 MiB.
pub const MIN_TMPFS_BYTES: u64 = 1024 * 1024;

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

/// Checks a memory limit: 0 (none) or at least [`MIN_MEMORY_BYTES`].
pub fn check_memory(bytes: u64) -> Result<u64, DockerConfigError> {
    if bytes != 0 && bytes < MIN_MEMORY_BYTES {
        return Err(DockerConfigError::BadMemory(bytes));
    }
    Ok(bytes)
}

/// Checks the tmpfs size: at least [`MIN_TMPFS_BYTES`].
pub fn check_tmpfs(bytes: u64) -> Result<u64, DockerConfigError> {
    if bytes < MIN_TMPFS_BYTES {
        return Err(DockerConfigError::BadTmpfsSize(bytes));
    }
    Ok(bytes)
}

/// Checks the pids limit: at least [`MIN_PIDS_LIMIT`].
pub fn check_pids_limit(limit: u32) -> Result<u32, DockerConfigError> {
    if limit < MIN_PIDS_LIMIT {
        return Err(DockerConfigError::BadPidsLimit(limit));
    }
    Ok(limit)
}

/// A name of `[A-Za-z0-9_.-]`, starting alphanumeric, at most `max` bytes.
fn parse_name(s: &str, max: usize) -> Result<String, DockerConfigError> {
    if rtm_domain::is_plain_name(s, max) {
        Ok(s.to_owned())
    } else {
        Err(DockerConfigError::BadName {
            value: s.to_owned(),
            max,
        })
    }
}

/// The engines' network name (`RTM_DOCKER_NETWORK`): 1-64 characters of
/// letters, digits, `_`, `.`, `-`, starting with a letter or digit.
pub fn parse_network(s: &str) -> Result<String, DockerConfigError> {
    parse_name(s, 64)
}

/// The `rtm.owner` label value (`RTM_OWNER`): 1-63 characters of letters,
/// digits, `_`, `.`, `-`, starting with a letter or digit.
pub fn parse_owner(s: &str) -> Result<String, DockerConfigError> {
    parse_name(s, 63)
}

/// The state directory's path inside the container
/// (`RTM_ENGINE_STATE_MOUNT`): absolute, not `/`, without `..` (it must
/// name one directory) and without `:` (the bind's separator). A trailing
/// `/` is dropped.
pub fn parse_state_mount(s: &str) -> Result<String, DockerConfigError> {
    if s.starts_with('/') && s.len() > 1 && !s.split('/').any(|c| c == "..") && !s.contains(':') {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(DockerConfigError::BadStateMount(s.to_owned()))
    }
}

/// The numeric user and group an engine runs as (`RTM_ENGINE_USER`).
/// Neither is 0: engines never run as root (SPEC §5), nor in root's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineUser {
    uid: u32,
    gid: u32,
}

impl EngineUser {
    /// Parses `uid:gid`, both numeric and neither 0. A bare `uid` is
    /// refused: Docker would pick the group from the image's
    /// `/etc/passwd`, or 0 when the image has none. Names are refused too:
    /// they would resolve inside the image, not on the host where the
    /// state directory is chowned.
    pub fn parse(s: &str) -> Result<Self, DockerConfigError> {
        let bad = || DockerConfigError::BadUser(s.to_owned());
        let (uid, gid) = s.split_once(':').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u32, DockerConfigError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let user = Self {
            uid: num(uid)?,
            gid: num(gid)?,
        };
        if user.uid == 0 || user.gid == 0 {
            return Err(DockerConfigError::RootUser(s.to_owned()));
        }
        Ok(user)
    }

    /// The user id (never 0).
    pub fn uid(self) -> u32 {
        self.uid
    }

    /// The group id (never 0).
    pub fn gid(self) -> u32 {
        self.gid
    }
}

/// `uid:gid`, the container's `User` field.
impl fmt::Display for EngineUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// Where the Docker Engine API listens (`RTM_DOCKER_HOST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHost(Endpoint);

/// How to reach the Docker engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket's path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl DockerHost {
    /// Parses an absolute socket path (`/var/run/docker.sock`),
    /// `unix:///path`, or `tcp://host:port` (plain HTTP: use only on a
    /// trusted network). The port is required and not 0; one trailing `/`
    /// is tolerated.
    pub fn parse(s: &str) -> Result<Self, DockerConfigError> {
        let bad = || DockerConfigError::BadHost(s.to_owned());
        if let Some(authority) = s.strip_prefix("tcp://") {
            let authority = authority.strip_suffix('/').unwrap_or(authority);
            let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty()
                || port == 0
                || host.contains(|c: char| c == '/' || c == '@' || c.is_whitespace())
            {
                return Err(bad());
            }
            return Ok(Self(Endpoint::Tcp(format!("{host}:{port}"))));
        }
        let path = s.strip_prefix("unix://").unwrap_or(s);
        if path.starts_with('/') {
            Ok(Self(Endpoint::Unix(PathBuf::from(path))))
        } else {
            Err(bad())
        }
    }

    /// The socket's path, when the host is a Unix socket.
    pub fn unix_socket(&self) -> Option<&Path> {
        match &self.0 {
            Endpoint::Unix(path) => Some(path),
            Endpoint::Tcp(_) => None,
        }
    }

    /// How to reach the engine (for a second handle on the same transport).
    pub fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

/// The socket path, or `tcp://host:port`.
impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

impl Endpoint {
    /// The client. Always unversioned (`Docker::unix`, never
    /// `unix_versioned`): a versioned client prefixes every path with
    /// `/v1.xx`, which an engine older than that version refuses, while
    /// unversioned paths are answered by any Engine API version.
    pub fn connect(&self) -> Result<Docker, DockerConfigError> {
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

    fn host(s: &str) -> Result<String, DockerConfigError> {
        DockerHost::parse(s).map(|h| h.to_string())
    }

    #[test]
    fn parses_hosts() {
        assert_eq!(
            DockerHost::parse("/var/run/docker.sock")
                .expect("socket")
                .unix_socket(),
            Some(Path::new("/var/run/docker.sock"))
        );
        assert_eq!(
            host("unix:///run/docker.sock"),
            Ok("/run/docker.sock".into())
        );
        assert_eq!(
            host("tcp://127.0.0.1:2375"),
            Ok("tcp://127.0.0.1:2375".into())
        );
        assert_eq!(host("tcp://docker:2376/"), Ok("tcp://docker:2376".into()));
        assert_eq!(host("tcp://[::1]:2375"), Ok("tcp://[::1]:2375".into()));
        assert_eq!(
            DockerHost::parse("tcp://docker:2376")
                .expect("tcp")
                .unix_socket(),
            None
        );
        for bad in [
            "",
            "docker.sock",
            "unix://rel",
            "tcp://",
            "tcp://docker",
            "tcp://:2375",
            "tcp://h:0",
            "tcp://h:x",
            "tcp://h/p:1",
            "tcp://u@h:1",
            "http://x",
            "http://h:1",
        ] {
            assert_eq!(
                DockerHost::parse(bad),
                Err(DockerConfigError::BadHost(bad.to_owned())),
                "{bad}"
            );
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
        let user = EngineUser::parse("65534:65534").expect("nobody");
        assert_eq!((user.uid(), user.gid()), (65534, 65534));
        assert_eq!(
            EngineUser::parse("1000:2000").map(|u| u.to_string()),
            Ok("1000:2000".into())
        );
        // A bare uid is refused: Docker would take the gid from the image.
        for bad in [
            "",
            "nobody",
            "1000",
            "a:b",
            ":1",
            "1:",
            "1:x",
            "1:2:3",
            "-1:1",
            "+1:1",
            "99999999999:1",
        ] {
            assert_eq!(
                EngineUser::parse(bad),
                Err(DockerConfigError::BadUser(bad.to_owned())),
                "{bad}"
            );
        }
        for root in ["0:0", "0:1000", "1000:0"] {
            let e = EngineUser::parse(root).expect_err(root);
            assert_eq!(e, DockerConfigError::RootUser(root.to_owned()));
            assert!(e.to_string().contains("runs engines as root"), "{e}");
        }
    }

    #[test]
    fn parses_names_and_mounts() {
        assert_eq!(parse_network("rtm-engines"), Ok("rtm-engines".into()));
        assert_eq!(parse_owner("owner.x"), Ok("owner.x".into()));
        for bad in ["", "-x", "a b", "a/b"] {
            assert!(parse_network(bad).is_err(), "{bad}");
            assert!(parse_owner(bad).is_err(), "{bad}");
        }
        assert!(parse_network(&"n".repeat(64)).is_ok());
        assert!(parse_network(&"n".repeat(65)).is_err());
        assert!(parse_owner(&"o".repeat(64)).is_err());
        assert_eq!(parse_state_mount("/data/"), Ok("/data".into()));
        for bad in ["x", "/", "/a/../b", "", "/a:b"] {
            assert!(parse_state_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_applies_the_same_rules() {
        let ok = DockerConfig::with_defaults("me");
        assert_eq!(ok.validate(), Ok(()));
        let bad = |tune: fn(&mut DockerConfig)| {
            let mut c = ok.clone();
            tune(&mut c);
            c.validate()
        };
        assert!(bad(|c| c.owner = String::new()).is_err());
        assert!(bad(|c| c.network = "a b".into()).is_err());
        assert!(bad(|c| c.state_mount = "/a:b".into()).is_err());
        assert!(bad(|c| c.state_mount = "/data/".into()).is_err());
        assert_eq!(
            bad(|c| c.memory_bytes = 1024),
            Err(DockerConfigError::BadMemory(1024))
        );
        assert_eq!(bad(|c| c.memory_bytes = 0), Ok(()));
        assert!(bad(|c| c.log_max_size = 10).is_err());
        assert!(bad(|c| c.log_max_files = 0).is_err());
        assert!(bad(|c| c.cap_add = vec!["ALL".into()]).is_err());
        assert!(bad(|c| c.tmpfs_bytes = 4096).is_err());
        assert!(bad(|c| c.pids_limit = 2).is_err());
        assert!(bad(|c| c.pull_timeout = Duration::ZERO).is_err());
    }
}
