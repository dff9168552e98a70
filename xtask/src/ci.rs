//! `cargo xtask ci`: the whole check, as CI runs it through `.ci/run`:
//! services → provision → migrate → engine images → fmt → clippy → docs
//! (rustdoc warnings are errors) → tests → the end-to-end lifecycle and
//! health suites again on the Swarm adapter → schemathesis against a
//! running rtmanager.
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
    step("the domain crate depends on no I/O crate", || {
        domain_is_pure(&root)
    })?;
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
    ] {
        let line = format!("cargo {}", args.join(" "));
        step(&line, || cargo(&root, args))?;
    }
    // Broken intra-doc links and (in rtm-domain) undocumented public
    // items fail the build: the domain is documented as a library.
    step(
        "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps (fakes, contract)",
        || cargo_doc(&root),
    )?;
    step("cargo test --workspace --jobs 2", || {
        cargo(&root, &["test", "--workspace", "--jobs", "2"])
    })?;
    // The lifecycle, health and reconcile suites again, on the Swarm
    // adapter (docs/swarm.md, "End-to-end suites on the swarm"); the
    // services step made the engine a single-node swarm.
    step(
        "RTM_TEST_RUNTIME=swarm cargo test -p rtmanager --test it --jobs 2 -- lifecycle:: health::",
        || swarm_e2e(&root),
    )?;
    // Bounded (about 2 min per listener, `RTM_TEST_ST_MAX_TIME`).
    step(
        "cargo xtask schemathesis (both listeners, real services)",
        || crate::schemathesis::run(&[]),
    )?;
    println!("==> ci: all steps passed");
    Ok(())
}

/// Crates that do I/O (drivers, runtimes, HTTP) and must never reach the
/// domain's dependency tree: it is embedded in other services as a pure
/// library.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio-postgres",
    "deadpool-postgres",
    "postgres-protocol",
    "refinery",
    "docker-api",
    "fred",
    "redis",
    "actix-web",
    "hyper",
    "reqwest",
    "mio",
];

fn domain_is_pure(root: &std::path::Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "rtm-domain",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root)
        .output()
        .context("cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name))
        .collect();
    if !found.is_empty() {
        bail!("rtm-domain depends on I/O crates: {}", found.join(", "));
    }
    Ok(())
}

/// The end-to-end lifecycle and health suites with `RTM_TEST_RUNTIME=swarm`.
fn swarm_e2e(root: &std::path::Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "test",
            "-p",
            "rtmanager",
            "--test",
            "it",
            "--jobs",
            "2",
            "--",
            "lifecycle::",
            "health::",
        ])
        .env("RTM_TEST_RUNTIME", "swarm")
        .current_dir(root)
        .status()
        .context("cargo test (swarm)")?;
    if !status.success() {
        bail!("the end-to-end suites on the swarm failed: {status}");
    }
    Ok(())
}

/// `cargo doc --workspace --no-deps` with rustdoc's warnings as errors.
fn cargo_doc(root: &std::path::Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        // The test doubles and contract suites are public API of the
        // domain crate too (behind features): their docs are checked.
        .args([
            "doc",
            "--workspace",
            "--no-deps",
            "--features",
            "rtm-domain/fakes,rtm-domain/contract",
            "--jobs",
            "2",
        ])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(root)
        .status()
        .context("cargo doc")?;
    if !status.success() {
        bail!("cargo doc failed: {status}");
    }
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> {name}");
    let started = std::time::Instant::now();
    f().with_context(|| format!("ci step failed: {name}"))?;
    println!("==> {name}: ok ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}
