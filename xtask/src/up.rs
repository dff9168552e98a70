//! `cargo xtask up`: the one command that shows RTM doing its job on this
//! machine. It brings up what is missing (PostgreSQL, Redis, Docker, the
//! role and schema, the engine images), starts `rtmanager` with a local
//! configuration (migrations applied at start), then drives a demo game:
//! a Lobby `start` on the Redis stream, a GM `patch` over REST, the audit
//! trail and the health stream. rtmanager keeps running in the foreground
//! until Ctrl-C; `--exit` stops the game and rtmanager after the demo.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::http::request;

/// Local, demo-only credentials; production sets its own.
const GM_TOKEN: &str = "demo-gm-token-0123456789";
const ADMIN_TOKEN: &str = "demo-admin-token-0123456789";

pub fn run(args: &[String]) -> Result<()> {
    let exit_after = args.iter().any(|a| a == "--exit");
    let root = crate::workspace_root();

    step("services (PostgreSQL, Redis, Docker)");
    crate::services::run(&[])?;
    step("role and schema");
    crate::db::provision(&[])?;
    step("engine images");
    crate::engine_image::run(&[])?;
    step("building rtmanager");
    crate::cargo(&root, &["build", "--quiet", "-p", "rtmanager"])?;

    let env = DemoEnv::from_env();
    step(&format!(
        "starting rtmanager (GM API http://{}, admin API http://{})",
        env.gm, env.admin
    ));
    let mut child = spawn_rtmanager(&root, &env)?;
    let result = demo(&env, &mut child);
    if result.is_err() || exit_after {
        terminate(&mut child);
        return result;
    }
    println!("\nrtmanager keeps running; Ctrl-C stops it (engines keep running).");
    let status = child.wait()?;
    println!("rtmanager exited: {status}");
    Ok(())
}

struct DemoEnv {
    gm: String,
    admin: String,
    gm_token: String,
    admin_token: String,
}

impl DemoEnv {
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Self {
            gm: var("RTM_HTTP_ADDR", "127.0.0.1:8080"),
            admin: var("RTM_ADMIN_HTTP_ADDR", "127.0.0.1:8081"),
            gm_token: var("RTM_GM_TOKEN", GM_TOKEN),
            admin_token: var("RTM_ADMIN_TOKEN", ADMIN_TOKEN),
        }
    }
}

fn spawn_rtmanager(root: &Path, env: &DemoEnv) -> Result<Child> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin: PathBuf = target.join("debug/rtmanager");
    let mut cmd = Command::new(&bin);
    // Defaults for a local run; anything the operator exported wins.
    for (k, v) in [
        ("RTM_GM_TOKEN", env.gm_token.as_str()),
        ("RTM_ADMIN_TOKEN", env.admin_token.as_str()),
        ("RTM_IMAGE_ALLOWLIST", "rtm.local/*"),
        ("RTM_MIGRATE_ON_START", "true"),
        ("RTM_INSTANCE_ID", "rtm-demo"),
    ] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("rtmanager exited during start-up ({status}); its log is above");
        }
        if let Ok(r) = request(&env.gm, "GET", "/readyz", None, None) {
            if r.status == 200 {
                println!("ready: {}", r.body);
                return Ok(child);
            }
        }
        if Instant::now() > deadline {
            terminate(&mut child);
            bail!("rtmanager did not become ready within 90 s");
        }
        sleep(Duration::from_millis(300));
    }
}

fn demo(env: &DemoEnv, child: &mut Child) -> Result<()> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let game = format!("demo-{secs}");
    let get = |path: &str| request(&env.gm, "GET", path, Some(&env.gm_token), None);

    step(&format!(
        "Lobby asks for game {game} on the stream lobby:runtime_commands"
    ));
    let out = Command::new("redis-cli")
        .args([
            "XADD",
            "lobby:runtime_commands",
            "*",
            "op",
            "start",
            "game_id",
            &game,
        ])
        .args([
            "image_ref",
            "rtm.local/engine-stub:1.0.0",
            "request_id",
            "demo-start",
        ])
        .output()
        .context("redis-cli")?;
    println!(
        "stream entry {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );

    let view = wait_for(child, &format!("{game} running and healthy"), || {
        let r = get(&format!("/api/v1/runtimes/{game}"))?;
        Ok((r.status == 200
            && r.body.contains("\"status\":\"running\"")
            && r.body.contains("\"healthy\""))
        .then_some(r.body))
    })?;
    println!("{view}");

    step("GM patches the engine to 1.0.1 (health-gated, rollback on failure)");
    let r = request(
        &env.gm,
        "POST",
        &format!("/api/v1/runtimes/{game}/patch"),
        Some(&env.gm_token),
        Some(r#"{"image_ref":"rtm.local/engine-stub:1.0.1"}"#),
    )?;
    println!("HTTP {}: {}", r.status, r.body);

    let view = wait_for(child, "the patched engine to be healthy", || {
        let r = get(&format!("/api/v1/runtimes/{game}"))?;
        Ok((r.body.contains("engine-stub:1.0.1") && health_is_current(&r.body)).then_some(r.body))
    })?;
    println!("{view}");

    step("the audit trail (newest first)");
    println!(
        "{}",
        get(&format!("/api/v1/runtimes/{game}/operations"))?.body
    );

    step("health events published on runtime:health_events");
    let out = Command::new("redis-cli")
        .args(["XREVRANGE", "runtime:health_events", "+", "-", "COUNT", "4"])
        .output()
        .context("redis-cli")?;
    println!("{}", String::from_utf8_lossy(&out.stdout));

    step("Try it yourself");
    println!(
        "curl -s -H 'Authorization: Bearer {t}' http://{gm}/api/v1/runtimes/{game}\n\
         curl -s -XPOST -H 'Authorization: Bearer {t}' http://{gm}/api/v1/runtimes/{game}/stop\n\
         curl -s -H 'Authorization: Bearer {a}' 'http://{admin}/admin/v1/runtimes?status=running'\n\
         curl -s http://{gm}/metrics | grep rtm_",
        t = env.gm_token,
        a = env.admin_token,
        gm = env.gm,
        admin = env.admin,
    );
    Ok(())
}

/// Whether the runtime view's health is `healthy` *for its current
/// container* (right after a patch the snapshot still names the old one
/// until the first probe of the new engine).
fn health_is_current(view: &str) -> bool {
    let field = |s: &str, key: &str| -> Option<String> {
        let start = s.find(key)? + key.len();
        let end = s[start..].find('"')?;
        Some(s[start..start + end].to_owned())
    };
    let Some((runtime, health)) = view.split_once("\"health\":{") else {
        return false;
    };
    let current = field(runtime, "\"container_id\":\"");
    current.is_some()
        && current == field(health, "\"container_id\":\"")
        && health.contains("\"status\":\"healthy\"")
}

/// Polls `probe` every 300 ms for up to 60 s.
fn wait_for(
    child: &mut Child,
    what: &str,
    mut probe: impl FnMut() -> Result<Option<String>>,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("rtmanager exited ({status}) while waiting for {what}");
        }
        if let Ok(Some(v)) = probe() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        sleep(Duration::from_millis(300));
    }
}

/// SIGTERM (graceful shutdown), then wait.
pub(crate) fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn step(what: &str) {
    println!("\n==> {what}");
}
