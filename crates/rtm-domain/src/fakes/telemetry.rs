//! [`FakeTelemetry`]: telemetry that remembers what it was told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lock;
use crate::ports::Telemetry;
use crate::{HealthStatus, OpKind, OpSource, Outcome};

/// Telemetry that remembers what it was told.
#[derive(Debug, Clone, Default)]
pub struct FakeTelemetry {
    inner: Arc<Mutex<TelemetryState>>,
}

#[derive(Debug, Default)]
struct TelemetryState {
    operations: Vec<(OpKind, OpSource, Outcome)>,
    health: Vec<(HealthStatus, bool)>,
}

impl FakeTelemetry {
    /// Every finished operation reported, in order.
    pub fn operations(&self) -> Vec<(OpKind, OpSource, Outcome)> {
        lock(&self.inner).operations.clone()
    }

    /// `(status, changed)` of every accepted health observation.
    pub fn health(&self) -> Vec<(HealthStatus, bool)> {
        lock(&self.inner).health.clone()
    }
}

impl Telemetry for FakeTelemetry {
    fn operation_finished(
        &self,
        kind: OpKind,
        source: OpSource,
        outcome: Outcome,
        _elapsed: Duration,
    ) {
        lock(&self.inner).operations.push((kind, source, outcome));
    }

    fn health_observed(&self, status: HealthStatus, changed: bool) {
        lock(&self.inner).health.push((status, changed));
    }
}
