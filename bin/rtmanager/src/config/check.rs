//! What `rtmanager check-config` checks beyond parsing: the paths the
//! configuration names on this host. Reads metadata only; connects to
//! nothing and creates nothing.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::error::ConfigError;
use super::format::parse_absolute_path;
use super::reader::{Lookup, Reader};

/// Values that do not parse are skipped (parsing reports them), so this
/// runs whether or not the rest of the configuration is valid and every
/// problem is reported at once.
///
/// - `RTM_DOCKER_HOST` as a Unix socket: the path exists and is a socket
///   (a `tcp://` host is not contacted);
/// - `RTM_STATE_ROOT`: a directory when it exists; when it does not, its
///   nearest existing ancestor is a directory (the service creates the rest).
pub fn check_host(lookup: Lookup<'_>) -> Vec<ConfigError> {
    let mut r = Reader::new(lookup);
    let docker_host = r.get("RTM_DOCKER_HOST", Some("/var/run/docker.sock"), |s| {
        rtm_docker::DockerHost::parse(s).map_err(|e| e.to_string())
    });
    let state_root = r.get(
        "RTM_STATE_ROOT",
        Some("/var/lib/rtmanager/games"),
        parse_absolute_path,
    );
    let mut errors = Vec::new();
    if let Some(path) = docker_host.as_ref().and_then(|h| h.unix_socket()) {
        match std::fs::metadata(path) {
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
    if let Some(root) = state_root {
        let root = Path::new(&root);
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
