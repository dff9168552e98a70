//! `cargo xtask <task>`: the project's automation, in Rust so it runs
//! wherever cargo does.
//!
//! Tasks: `services` (install/start PostgreSQL, Redis, dockerd),
//! `provision` (role + schema), `migrate`, `engine-image`, `ci` (the whole
//! check: services, fmt, clippy, tests, schemathesis), `up` (the demo),
//! `bench`, `schemathesis` (the REST surfaces against docs/openapi.yaml).

mod bench;
mod ci;
mod db;
mod engine_image;
mod http;
mod schemathesis;
mod services;
mod up;

use anyhow::{bail, Result};

const HELP: &str = "usage: cargo xtask <task> [args]

  up [--swarm] [--exit]
                  the demo: services, schema, engine images, rtmanager and a demo game
                  (--swarm: on a single-node swarm, RTM_RUNTIME=swarm; --exit: stop the
                  game and rtmanager afterwards; `up --help` for more)
  ci              the whole check: services, fmt, clippy, tests, schemathesis
  services        install/start PostgreSQL, Redis (and check Docker), the test superuser
                  rtm_admin, max_connections; schemathesis into target/schemathesis-venv
  provision       the service role, database and schema (RTM_DATABASE_URL/_SCHEMA)
  migrate         apply the migrations
  engine-image    build the engine stub images rtm.local/engine-stub:*
  schemathesis    the REST surfaces vs docs/openapi.yaml, against a real rtmanager
  bench           the benchmarks (docs/benchmarks.md; --swarm: start, stop and kill
                  latencies on the single-host and the swarm adapter, side by side)
  help            this text";

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
        "up" => up::run(&rest),
        "bench" => bench::run(&rest),
        "schemathesis" => schemathesis::run(&rest),
        "help" | "-h" | "--help" => {
            println!("{HELP}");
            Ok(())
        }
        _ => {
            eprintln!("{HELP}");
            bail!("unknown task {task:?}")
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `cargo <args>` in `dir`, failing on a non-zero exit.
pub(crate) fn cargo(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .status()?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(())
}
