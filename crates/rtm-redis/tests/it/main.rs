//! Integration tests of the Redis adapter against a real Redis: the shared
//! one (`RTM_TEST_REDIS_URL`, unique keys per test) or a private
//! `redis-server` child for outage and restart tests. The command handler
//! is the only fake.

// In tests a panic is the failure report; `unwrap` is the idiom there.
#![allow(clippy::unwrap_used)]

mod backlog;
mod consumer;
mod contract;
mod publisher;
mod restart;
mod support;
