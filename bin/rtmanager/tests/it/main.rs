//! End-to-end tests of rtmanager: the real application started in-process
//! (`rtmanager::app::start`) against the real PostgreSQL, Redis and Docker
//! engine, driven through its REST surfaces and the Lobby stream, with the
//! engine stub images (and a real local registry in `registry`). Each
//! test isolates itself: a fresh schema, its own `rtm.owner` label and
//! state root, its own stream names.

mod cli;
mod console;
mod health;
mod lifecycle;
mod lobby;
mod readiness;
mod registry;
mod smoke;
mod support;
mod ui;
