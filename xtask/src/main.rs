//! `cargo xtask <task>`: the project's automation, in Rust so it runs
//! wherever cargo does.
//!
//! Tasks: `services` (install/start PostgreSQL, Redis, dockerd),
//! `provision` (role + schema), `migrate`, `engine-image`, `ci` (the whole
//! check: services, fmt, clippy, tests), `up` (the demo), `bench`.

mod ci;
mod db;
mod engine_image;
mod services;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "services" => services::run(&rest),
        "provision" => db::provision(&rest),
        "migrate" => db::migrate(&rest),
        "engine-image" => engine_image::run(&rest),
        "ci" => ci::run(&rest),
        _ => {
            eprintln!("usage: cargo xtask <services|provision|migrate|engine-image|ci|up|bench>");
            bail!("unknown task {task:?}")
        }
    }
}
