//! [`DockerConfig`]: everything the adapter needs to know, validated once
//! by [`DockerRuntime::new`](crate::DockerRuntime::new) so that no
//! operation can fail later because of a bad setting.

use std::path::PathBuf;

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
