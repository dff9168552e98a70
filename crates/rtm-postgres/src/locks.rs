//! Placeholder.
#[derive(Debug, Clone)]
pub struct PgLocks;
#[derive(Debug)]
pub struct PgLockGuard;
