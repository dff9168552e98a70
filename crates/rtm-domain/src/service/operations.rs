//! Being written: the implementation of [`RuntimeService`].
use crate::ports::{Adapters, Ports};
use crate::service::{OperationError, OperationOutcome, OperationRequest, ServiceConfig};

/// Carries out operations (start, stop, restart, patch, cleanup) and
/// reconcile passes through the ports.
pub struct RuntimeService<P: Ports> {
    #[allow(dead_code)]
    adapters: Adapters<P>,
    #[allow(dead_code)]
    config: ServiceConfig,
}

impl<P: Ports> RuntimeService<P> {
    pub fn new(adapters: Adapters<P>, config: ServiceConfig) -> Self {
        Self { adapters, config }
    }

    /// Runs one operation: validate, lock the game, replay or plan, act,
    /// record. A recorded failure is `Ok` with a failed outcome.
    pub async fn execute(&self, req: OperationRequest) -> Result<OperationOutcome, OperationError> {
        let _ = req;
        Err(OperationError::InProgress(crate::GameId::parse("unimplemented").map_err(|_| OperationError::Store(crate::StoreError::Corrupt("unreachable".into())))?))
    }
}

impl<P: Ports> std::fmt::Debug for RuntimeService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeService").field("config", &self.config).finish_non_exhaustive()
    }
}
