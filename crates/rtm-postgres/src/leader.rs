//! Placeholder.
#[derive(Debug, Clone)]
pub struct PgLeader;
#[derive(Debug)]
pub struct PgLease;
