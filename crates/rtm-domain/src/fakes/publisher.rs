//! [`FakePublisher`]: a health publisher that keeps what it published.

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::{down, lock};
use crate::ports::HealthPublisher;
use crate::{HealthEvent, PublishError};

/// A health publisher that keeps what it published, with failure injection.
#[derive(Debug, Clone, Default)]
pub struct FakePublisher {
    inner: Arc<Mutex<PublisherState>>,
}

#[derive(Debug, Default)]
struct PublisherState {
    published: Vec<HealthEvent>,
    fail_next: usize,
    down: bool,
    attempts: usize,
}

impl FakePublisher {
    /// Up, nothing published yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every publish fail while `down` (Redis unreachable).
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.inner).down = down;
    }

    /// Makes the next `n` publishes fail.
    pub fn fail_next(&self, n: usize) {
        lock(&self.inner).fail_next = n;
    }

    /// Everything published, in order (duplicates included).
    pub fn published(&self) -> Vec<HealthEvent> {
        lock(&self.inner).published.clone()
    }

    /// Publish attempts, failed ones included.
    pub fn attempts(&self) -> usize {
        lock(&self.inner).attempts
    }
}

impl HealthPublisher for FakePublisher {
    fn publish(
        &self,
        event: &HealthEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let mut s = lock(&self.inner);
        s.attempts += 1;
        let r = if s.down {
            Err(PublishError(down("redis")))
        } else if s.fail_next > 0 {
            s.fail_next -= 1;
            Err(PublishError("injected publish failure (fake)".into()))
        } else {
            s.published.push(event.clone());
            Ok(())
        };
        std::future::ready(r)
    }
}
