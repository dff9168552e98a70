//! `cargo xtask engine-image [--force]`: builds the engine stub images
//! `rtm.local/engine-stub:<tag>` used by the tests and the demo.
//!
//! The stub (`bin/rtm-engine-stub`) is built as a static-pie binary
//! (`+crt-static`) in its own target directory, so its `RUSTFLAGS` never
//! invalidate the normal build. Each tag is a `FROM scratch` image holding
//! only that binary, with the version baked in as `ENV ENGINE_VERSION`;
//! `broken` also sets `ENGINE_FAIL_AT_START=1` (exit 3 at once). `latest`
//! is the same image as `1.0.0`.
//!
//! Guarantee: after a successful run every tag exists and runs the stub
//! built from the current sources. Images are labelled with a hash of the
//! binary and of the image recipe; a tag whose label matches is not rebuilt
//! (`--force` rebuilds anyway). Nothing is pulled: `scratch` is built in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Repository of the stub images (a registry-like host that never resolves,
/// so nothing can be pulled by accident).
pub const REPOSITORY: &str = "rtm.local/engine-stub";
/// Label carrying the hash of the binary and recipe the image was built from.
const HASH_LABEL: &str = "rtm.engine-stub.hash";
/// Bump when the Dockerfile template changes, so existing images are rebuilt.
const RECIPE_VERSION: &str = "1";
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// One image: its tag, the version the engine reports, extra tags, and
/// whether it fails at start.
struct ImageDef {
    tag: &'static str,
    version: &'static str,
    also: &'static [&'static str],
    fail_at_start: bool,
}

const IMAGES: &[ImageDef] = &[
    ImageDef {
        tag: "1.0.0",
        version: "1.0.0",
        also: &["latest"],
        fail_at_start: false,
    },
    ImageDef {
        tag: "1.0.1",
        version: "1.0.1",
        also: &[],
        fail_at_start: false,
    },
    ImageDef {
        tag: "1.1.0",
        version: "1.1.0",
        also: &[],
        fail_at_start: false,
    },
    ImageDef {
        tag: "2.0.0",
        version: "2.0.0",
        also: &[],
        fail_at_start: false,
    },
    ImageDef {
        tag: "broken",
        version: "broken",
        also: &[],
        fail_at_start: true,
    },
];

pub fn run(args: &[String]) -> Result<()> {
    let mut force = false;
    for arg in args {
        match arg.as_str() {
            "--force" => force = true,
            other => {
                bail!("engine-image: unknown argument {other:?} (usage: engine-image [--force])")
            }
        }
    }
    let root = workspace_root();
    let target_dir = stub_target_dir(&root);
    let binary = build_stub(&root, &target_dir)?;
    let bytes = fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;

    for def in IMAGES {
        let dockerfile = dockerfile(def);
        let hash = format!(
            "{:016x}",
            fnv1a(&[&bytes, RECIPE_VERSION.as_bytes(), dockerfile.as_bytes()])
        );
        let tags: Vec<String> = std::iter::once(def.tag)
            .chain(def.also.iter().copied())
            .map(|t| format!("{REPOSITORY}:{t}"))
            .collect();
        if !force
            && tags
                .iter()
                .all(|t| image_hash(t).as_deref() == Some(hash.as_str()))
        {
            println!("up to date: {}", tags.join(", "));
            continue;
        }
        let context = target_dir.join("contexts").join(def.tag);
        write_context(&context, &bytes, &dockerfile)?;
        docker_build(&context, &tags, &hash)?;
        println!("built: {} (version {})", tags.join(", "), def.version);
    }
    Ok(())
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// `$CARGO_TARGET_DIR/engine-stub` when the caller chose a target dir (each
/// engineer and CI job keeps its own), else `<root>/target/engine-stub`.
fn stub_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("engine-stub"),
        _ => root.join("target").join("engine-stub"),
    }
}

fn build_stub(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "rtm-engine-stub",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // CARGO_ENCODED_RUSTFLAGS would win over RUSTFLAGS if an outer cargo
        // had set it; the stub must be built with exactly these flags.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("running cargo build for rtm-engine-stub")?;
    if !status.success() {
        bail!("cargo build of rtm-engine-stub failed ({status})");
    }
    Ok(target_dir
        .join(TARGET)
        .join("release")
        .join("rtm-engine-stub"))
}

fn dockerfile(def: &ImageDef) -> String {
    let mut s = String::from("FROM scratch\nCOPY rtm-engine-stub /rtm-engine-stub\n");
    s.push_str(&format!("ENV ENGINE_VERSION={}\n", def.version));
    if def.fail_at_start {
        s.push_str("ENV ENGINE_FAIL_AT_START=1\n");
    }
    s.push_str("EXPOSE 8080\nENTRYPOINT [\"/rtm-engine-stub\"]\n");
    s
}

fn write_context(dir: &Path, binary: &[u8], dockerfile: &str) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bin = dir.join("rtm-engine-stub");
    fs::write(&bin, binary).with_context(|| format!("writing {}", bin.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    fs::write(dir.join("Dockerfile"), dockerfile)?;
    Ok(())
}

fn docker_build(context: &Path, tags: &[String], hash: &str) -> Result<()> {
    let mut cmd = Command::new("docker");
    cmd.arg("build").arg("--quiet");
    for tag in tags {
        cmd.arg("--tag").arg(tag);
    }
    cmd.arg("--label")
        .arg(format!("{HASH_LABEL}={hash}"))
        .arg(context);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running docker build (is the docker CLI installed?)")?;
    if !out.status.success() {
        bail!(
            "docker build of {} failed ({}): {}",
            tags.join(", "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The hash label of an existing image, `None` when the image is missing.
fn image_hash(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format"])
        .arg(format!("{{{{ index .Config.Labels \"{HASH_LABEL}\" }}}}"))
        .arg(tag)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// FNV-1a (64 bit): a change detector, not a security boundary, so a tiny
/// inline hash beats a new dependency.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
