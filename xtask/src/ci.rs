//! `cargo xtask ci`: the whole check, as CI runs it through `.ci/run`:
//! services → provision → migrate → engine images → fmt → clippy → tests.
//!
//! Each step is printed before it runs; the first failure stops the run
//! with a non-zero exit. Builds and tests use `--jobs 2` (CI machines
//! have two cores, and the Docker/PostgreSQL tests are I/O bound).

use anyhow::{bail, Context, Result};

use crate::{cargo, db, engine_image, services, workspace_root};

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("ci: unexpected argument {a:?}");
    }
    let root = workspace_root();
    step("cargo xtask services", || services::run(&[]))?;
    step("cargo xtask provision", || db::provision(&[]))?;
    step("cargo xtask migrate", || db::migrate(&[]))?;
    step("cargo xtask engine-image", || engine_image::run(&[]))?;
    for args in [
        &["fmt", "--all", "--", "--check"][..],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--jobs",
            "2",
            "--",
            "-D",
            "warnings",
        ][..],
        &["test", "--workspace", "--jobs", "2"][..],
    ] {
        let line = format!("cargo {}", args.join(" "));
        step(&line, || cargo(&root, args))?;
    }
    println!("==> ci: all steps passed");
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> {name}");
    let started = std::time::Instant::now();
    f().with_context(|| format!("ci step failed: {name}"))?;
    println!("==> {name}: ok ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}
