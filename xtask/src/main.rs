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
        _ => {
            eprintln!("usage: cargo xtask <services|provision|migrate|engine-image|ci|up|bench>");
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
