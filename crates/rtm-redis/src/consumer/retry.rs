//! Retrying and stopping, shared by the consumer's loops: a capped
//! exponential backoff and the stop signal (a `watch` of `bool`).

use std::time::Duration;

use tokio::sync::watch;

/// Capped exponential backoff.
pub(super) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles at each step, capped at `max`.
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max: max.max(min),
        }
    }
    /// The wait before the next attempt.
    pub(super) fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    /// Back to `min`, after a success.
    pub(super) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Sleeps for `d` unless stop is (or becomes) requested; true when stopped.
pub(super) async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = wait_stop(stop) => {}
    }
    stopped(stop)
}

/// Resolves once stop is requested (or its sender is gone).
pub(super) async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    // Err means the sender was dropped: treat it as a stop, too.
    let _ = stop.wait_for(|s| *s).await;
}

/// Whether stop was requested.
pub(super) fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
