//! Test-only helpers shared by the integration tests of every crate:
//! unique PostgreSQL schemas, Redis key prefixes, Docker owner labels and
//! networks, the engine stub image (built when missing) and a real local
//! image registry.
//!
//! Each area lives in its own module, owned by the adapter it serves.

pub mod docker;
pub mod pg;
pub mod redis;
pub mod registry;
pub mod swarm;

/// A short unique token for names (schemas, prefixes, owners): process id,
/// a process-wide counter and the clock, so parallel test binaries and
/// tests never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}
