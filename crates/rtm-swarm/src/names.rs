//! Names and state directories: a valid, unique Swarm service name for
//! a port name, and the single-host adapter's state directory rules.

use std::sync::atomic::{AtomicU64, Ordering};

use rtm_domain::RuntimeError;

/// A unique service name for the port name `name`: Swarm names are
/// `[A-Za-z0-9]([-_]*[A-Za-z0-9])*`, at most 63 long, and cannot change,
/// so each service gets the name plus a random suffix.
pub(crate) fn service_name(name: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let suffix = format!("{:08x}", h.finish() as u32);
    let base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(63 - suffix.len() - 1)
        .collect();
    format!("{base}-{suffix}")
}

/// The state directory checks and preparation of the single-host adapter
/// (private there): an absolute path without `:` or `,`, created and
/// handed to the engine user. On a swarm the directory lives on shared
/// storage mounted at the same path on every node (docs/swarm.md).
pub(crate) fn check_state_path(path: &str) -> Result<(), RuntimeError> {
    if !path.starts_with('/') || path.contains(':') || path.contains(',') {
        return Err(RuntimeError::Other(format!(
            "state path {path:?} must be an absolute host path without ':' or ','"
        )));
    }
    Ok(())
}

pub(crate) fn prepare_state_dir(
    path: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<(), RuntimeError> {
    use std::os::unix::fs::MetadataExt;
    let fail = |what: &str, e: std::io::Error| {
        RuntimeError::Other(format!("state directory {}: {what}: {e}", path.display()))
    };
    std::fs::create_dir_all(path).map_err(|e| fail("create", e))?;
    let meta = std::fs::metadata(path).map_err(|e| fail("stat", e))?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| fail("chown", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_valid_unique_and_short_enough() {
        let long = format!("rtm-{}", "a.b".repeat(20));
        let a = service_name(&long);
        let b = service_name(&long);
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(service_name("rtm-g_1").starts_with("rtm-g_1-"));
    }
}
