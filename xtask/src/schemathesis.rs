//! `cargo xtask schemathesis`: checks that the running service and
//! `docs/openapi.yaml` agree, with schemathesis (PyPI) against **both**
//! listeners of a real `rtmanager` (real PostgreSQL, Redis and Docker).
//!
//! The run is isolated like a test: a throw-away schema, Redis stream
//! names, `rtm.owner` label, Docker network and state directory, all
//! removed afterwards (also when a check fails). rtmanager gets its own
//! free ports and valid tokens.
//!
//! schemathesis runs every check (`--checks all`: no 5xx, status codes and
//! headers documented, response schemas, negative data rejected, 405 with
//! `Allow` on undocumented methods, authentication not ignored, ...) in
//! every phase (examples, coverage, fuzzing, stateful) with positive and
//! negative data. Bounded: `--max-examples` per operation and
//! `--max-time` per listener (`RTM_TEST_ST_MAX_EXAMPLES`, `RTM_TEST_ST_MAX_TIME`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::request;

const GM_TOKEN: &str = "st-gm-token-0123456789";
const ADMIN_TOKEN: &str = "st-admin-token-0123456789";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("schemathesis: unexpected argument {a:?}");
    }
    let root = crate::workspace_root();
    let st = crate::services::schemathesis_bin();
    if !st.is_file() {
        bail!(
            "{} not found: run `cargo xtask services` first (it installs schemathesis)",
            st.display()
        );
    }
    crate::cargo(&root, &["build", "-p", "rtmanager"])?;

    let run = Isolation::new(&root)?;
    let result = run.provision().and_then(|()| {
        let mut child = run.spawn(&root)?;
        let result = wait_ready(&mut child, &run.gm).and_then(|()| {
            let gm = schemathesis(
                &st,
                &root,
                &run.gm,
                GM_TOKEN,
                "^/(api/v1/|healthz|readyz|metrics)",
            );
            let admin = schemathesis(
                &st,
                &root,
                &run.admin,
                ADMIN_TOKEN,
                "^/(admin/v1/|healthz|readyz|metrics)",
            );
            gm.and(admin)
        });
        crate::up::terminate(&mut child);
        result
    });
    run.clean_up();
    result
}

/// Names of everything the run creates, unique per run.
struct Isolation {
    id: String,
    gm: String,
    admin: String,
    state_root: PathBuf,
}

impl Isolation {
    fn new(root: &Path) -> Result<Self> {
        let id = format!("rtm_st_{}", std::process::id());
        Ok(Self {
            gm: free_addr()?,
            admin: free_addr()?,
            state_root: root.join("target/tmp").join(&id),
            id,
        })
    }

    fn schema(&self) -> &str {
        &self.id
    }

    /// Docker names may not contain `_` in DNS labels; use dashes there.
    fn docker_name(&self) -> String {
        self.id.replace('_', "-")
    }

    fn provision(&self) -> Result<()> {
        std::fs::create_dir_all(&self.state_root)
            .with_context(|| format!("creating {}", self.state_root.display()))?;
        // In process: the xtask binary may have been rebuilt (replaced on
        // disk) by the steps before this one, so it is not re-executed.
        crate::db::provision_schema(Some(self.schema()))
            .with_context(|| format!("provisioning schema {}", self.schema()))
    }

    fn spawn(&self, root: &Path) -> Result<Child> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug/rtmanager");
        let log = std::fs::File::create(self.state_root.with_extension("log"))?;
        let name = self.docker_name();
        let mut cmd = Command::new(&bin);
        cmd.env("RTM_GM_TOKEN", GM_TOKEN)
            .env("RTM_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RTM_HTTP_ADDR", &self.gm)
            .env("RTM_ADMIN_HTTP_ADDR", &self.admin)
            .env("RTM_DATABASE_SCHEMA", self.schema())
            .env("RTM_MIGRATE_ON_START", "true")
            .env("RTM_IMAGE_ALLOWLIST", "rtm.local/*")
            .env("RTM_OWNER", &name)
            .env("RTM_INSTANCE_ID", &name)
            .env("RTM_DOCKER_NETWORK", &name)
            .env("RTM_STATE_ROOT", &self.state_root)
            .env("RTM_LOBBY_STREAM", format!("{}:lobby", self.id))
            .env("RTM_HEALTH_STREAM", format!("{}:health", self.id))
            .env("RTM_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        println!(
            "rtmanager on http://{} (GM) and http://{} (admin); log {}",
            self.gm,
            self.admin,
            self.state_root.with_extension("log").display()
        );
        cmd.spawn()
            .with_context(|| format!("starting {}", bin.display()))
    }

    /// Best effort: removes the engines, network, streams and schema.
    fn clean_up(&self) {
        let name = self.docker_name();
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=rtm.owner={name}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .status();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("redis-cli")
            .args([
                "DEL",
                &format!("{}:lobby", self.id),
                &format!("{}:health", self.id),
            ])
            .args([format!("{}:lobby:dead", self.id)])
            .stdout(Stdio::null())
            .status();
        if let Err(e) = crate::db::drop_schema(self.schema()) {
            eprintln!(
                "schemathesis: could not drop schema {}: {e:#}",
                self.schema()
            );
        }
        // The state directories belong to the engines' user; leave them
        // under target/tmp (removed with `cargo clean`) if not removable.
        let _ = std::fs::remove_dir_all(&self.state_root);
    }
}

/// A loopback address with a port free right now.
fn free_addr() -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.to_string())
}

fn wait_ready(child: &mut Child, gm: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("rtmanager exited during start-up ({status}); see its log");
        }
        if request(gm, "GET", "/readyz", None, None).is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("rtmanager did not become ready within 90 s");
        }
        sleep(Duration::from_millis(300));
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One schemathesis run against one listener.
fn schemathesis(st: &Path, root: &Path, addr: &str, token: &str, paths: &str) -> Result<()> {
    let max_examples = env_u32("RTM_TEST_ST_MAX_EXAMPLES", 25).to_string();
    let max_time = env_u32("RTM_TEST_ST_MAX_TIME", 120).to_string();
    let url = format!("http://{addr}");
    println!("==> schemathesis against {url} ({paths})");
    let status = Command::new(st)
        .current_dir(root)
        .args(["--config-file", "xtask/schemathesis.toml"])
        .args(["run", "docs/openapi.yaml", "--url", &url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--include-path-regex", paths])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--mode", "all"])
        .args(["--max-examples", &max_examples])
        .args(["--max-time", &max_time])
        .args(["--request-timeout", "60"])
        .args(["--workers", "1"])
        .args(["--seed", "1"])
        .env("NO_COLOR", "1")
        .status()
        .context("running schemathesis")?;
    if !status.success() {
        bail!("schemathesis found problems on {url} ({status})");
    }
    Ok(())
}
