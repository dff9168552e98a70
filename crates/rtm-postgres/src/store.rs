//! Placeholder.
#[derive(Debug, Clone)]
pub struct PgStore;
