//! Kept connections: at most one idle connection per engine address.
//!
//! A kept connection is the socket and two instants; the buffers of an
//! exchange live only while it runs (see `answer`).

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::{FRESH_EVERY, IDLE_TIMEOUT};

/// An idle connection to one engine.
#[derive(Debug)]
pub(crate) struct Kept {
    pub stream: TcpStream,
    /// When the connection was opened: it is not used past
    /// [`FRESH_EVERY`].
    pub opened_at: Instant,
    /// When it was last put back.
    pub idle_since: Instant,
}

/// The idle connections, by engine address (the probed URL).
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Kept>>,
}

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The idle connection to `key`, if there is one still fit to carry a
    /// request: younger than [`FRESH_EVERY`], idle for less than
    /// [`IDLE_TIMEOUT`], and not closed by the engine meanwhile (as far as
    /// the socket knows now; `answer::Failed::Closed` covers the rest).
    pub(crate) fn take(&self, key: &str, now: Instant) -> Option<Kept> {
        let kept = self.idle().remove(key)?;
        if elapsed(kept.opened_at, now) >= FRESH_EVERY
            || elapsed(kept.idle_since, now) >= IDLE_TIMEOUT
        {
            return None;
        }
        // Idle means nothing to read: data or an end here means the engine
        // closed the connection or spoke out of turn.
        match kept.stream.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(kept),
            _ => None,
        }
    }

    /// Keeps `kept` as the idle connection to `key` (one that was there is
    /// closed).
    pub(crate) fn put(&self, key: String, kept: Kept) {
        let replaced = self.idle().insert(key, kept);
        drop(replaced);
    }

    /// Closes connections idle for [`IDLE_TIMEOUT`] or more.
    pub(crate) fn prune(&self, now: Instant) {
        self.idle()
            .retain(|_, kept| elapsed(kept.idle_since, now) < IDLE_TIMEOUT);
    }

    /// How many idle connections are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.idle().len()
    }
}

fn elapsed(since: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(since)
}
