//! `cargo xtask up`: the one command that shows RTM doing its job on this
//! machine. It brings up what is missing (PostgreSQL, Redis, Docker, the
//! role and schema, the engine images), starts `rtmanager` with a local
//! configuration (migrations applied at start), then drives a demo game:
//! a Lobby `start` on the Redis stream, a GM `patch` over REST, the audit
//! trail and the health stream. rtmanager keeps running in the foreground
//! until Ctrl-C; `--exit` stops the demo game (and removes its container)
//! and rtmanager after the demo.
//!
//! `--swarm` runs the same demo with rtmanager on this machine's
//! single-node swarm (`RTM_RUNTIME=swarm`), this host attached to the
//! engines' overlay network so that its probes reach them (`up/swarm.rs`);
//! there, stopping the task also removes the demo's services and the
//! attachment.
//!
//! For a newcomer: the ports are checked before the long first build, the
//! build shows cargo's progress, and stopping this task (Ctrl-C, SIGTERM,
//! SIGHUP) stops rtmanager too, so no orphan keeps holding the ports. The
//! addresses, tokens and stream names come from the same `RTM_*`
//! variables rtmanager reads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::http::request;

pub(crate) mod swarm;

/// Local, demo-only credentials; production sets its own.
const GM_TOKEN: &str = "demo-gm-token-0123456789";
const ADMIN_TOKEN: &str = "demo-admin-token-0123456789";

pub fn run(args: &[String]) -> Result<()> {
    let mut exit_after = false;
    let mut on_swarm = false;
    for a in args {
        match a.as_str() {
            "--exit" => exit_after = true,
            "--swarm" => on_swarm = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("up: unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let root = crate::workspace_root();
    let env = DemoEnv::from_env(on_swarm);
    // Before anything slow: a busy port would only fail after the build.
    ports_are_free(&env)?;

    step("services (PostgreSQL, Redis, Docker)");
    crate::services::servers()?;
    if env.swarm.is_some() {
        crate::services::swarm()?;
    }
    step("role and schema");
    match &env.swarm {
        None => crate::db::provision(&[])?,
        Some(s) => crate::db::provision_schema(Some(&s.schema))?,
    }
    step("engine images");
    crate::engine_image::run(&[])?;
    step("building rtmanager (the first build takes a few minutes)");
    crate::cargo(&root, &["build", "-p", "rtmanager"])?;

    ports_are_free(&env)?;
    if let Some(s) = &env.swarm {
        step("attaching this host to the engines' overlay network");
        swarm::attach(s)?;
    }
    step(&format!(
        "starting rtmanager (GM API http://{}, admin API http://{}{})",
        env.gm,
        env.admin,
        if env.swarm.is_some() {
            ", RTM_RUNTIME=swarm"
        } else {
            ""
        }
    ));
    let mut child = match spawn_rtmanager(&root, &env) {
        Ok(child) => child,
        Err(e) => {
            swarm::teardown();
            return Err(e);
        }
    };
    stop_child_on_signal(child.id());
    let result = demo(&env, &mut child);
    if result.is_err() || exit_after {
        if let Ok(game) = &result {
            stop_demo_game(&env, game);
        }
        terminate(&mut child);
        swarm::teardown();
        return result.map(drop);
    }
    if env.swarm.is_some() {
        println!(
            "\nrtmanager keeps running; Ctrl-C stops it and removes the demo's \
             services and overlay network."
        );
    } else {
        println!("\nrtmanager keeps running; Ctrl-C stops it (engines keep running).");
    }
    let status = child.wait()?;
    println!("rtmanager exited: {status}");
    swarm::teardown();
    Ok(())
}

const USAGE: &str = "usage: cargo xtask up [--swarm] [--exit]

Brings up PostgreSQL, Redis, the role and schema and the engine images,
starts rtmanager and drives a demo game. Without --exit rtmanager keeps
running until Ctrl-C; with --exit the demo game is stopped and removed
and rtmanager stopped after the demo.

--swarm: rtmanager runs with RTM_RUNTIME=swarm on this engine made a
single-node swarm (docker swarm init, as `cargo xtask services` does),
each engine a Swarm service. This host (root needed) is attached to the
engines' attachable overlay network RTM_DOCKER_NETWORK (default
rtm-demo-swarm, created here) so that rtmanager's probes reach the
engines; owner RTM_OWNER (default rtm-demo-swarm) and schema
RTM_DATABASE_SCHEMA (default rtmanager_swarm) keep it apart from the
single-host demo. When the task ends (--exit, Ctrl-C or an error) the
demo's services, the attachment and the network are removed.

Honoured: RTM_HTTP_ADDR, RTM_ADMIN_HTTP_ADDR, RTM_GM_TOKEN,
RTM_ADMIN_TOKEN, RTM_REDIS_URL, RTM_LOBBY_STREAM, RTM_HEALTH_STREAM (and
every other RTM_* variable, passed on to rtmanager).";

struct DemoEnv {
    gm: String,
    admin: String,
    gm_token: String,
    admin_token: String,
    redis_url: String,
    lobby_stream: String,
    health_stream: String,
    /// `Some` with `--swarm`.
    swarm: Option<swarm::Settings>,
}

impl DemoEnv {
    fn from_env(on_swarm: bool) -> Self {
        // Empty means unset, as for rtmanager itself.
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Self {
            gm: var("RTM_HTTP_ADDR", "127.0.0.1:8080"),
            admin: var("RTM_ADMIN_HTTP_ADDR", "127.0.0.1:8081"),
            gm_token: var("RTM_GM_TOKEN", GM_TOKEN),
            admin_token: var("RTM_ADMIN_TOKEN", ADMIN_TOKEN),
            redis_url: var("RTM_REDIS_URL", "redis://127.0.0.1:6379"),
            lobby_stream: var("RTM_LOBBY_STREAM", "lobby:runtime_commands"),
            health_stream: var("RTM_HEALTH_STREAM", "runtime:health_events"),
            swarm: on_swarm.then(|| swarm::Settings::from_env(var)),
        }
    }

    /// `redis-cli` against `RTM_REDIS_URL`.
    fn redis_cli(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-u", &self.redis_url]);
        cmd
    }
}

/// Fails with a clear message when a listen address is taken.
fn ports_are_free(env: &DemoEnv) -> Result<()> {
    for (addr, var) in [
        (&env.gm, "RTM_HTTP_ADDR"),
        (&env.admin, "RTM_ADMIN_HTTP_ADDR"),
    ] {
        if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
            bail!(
                "cannot listen on {addr} ({var}): {e}.\n\
                 Another rtmanager (or `cargo xtask up`) is probably running: stop it \
                 (`ss -ltnp | grep {port}` shows who holds the port), or choose other \
                 addresses, e.g. {var}=127.0.0.1:18080.",
                port = addr.rsplit(':').next().unwrap_or(addr),
            );
        }
    }
    Ok(())
}

/// Stops rtmanager (`pid`) when this task is told to stop: a SIGTERM or
/// SIGHUP reaches only this process, and rtmanager would be left running
/// and holding the ports. (Ctrl-C reaches both through the terminal's
/// process group; handling it here too is harmless.)
fn stop_child_on_signal(pid: u32) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let signal = rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    return None;
                };
                tokio::select! {
                    _ = term.recv() => Some("SIGTERM"),
                    _ = int.recv() => Some("SIGINT"),
                    _ = hup.recv() => Some("SIGHUP"),
                }
            });
            if let Some(signal) = signal {
                eprintln!("\nxtask up: {signal}; stopping rtmanager (pid {pid})");
                terminate_pid(pid);
                swarm::teardown();
                std::process::exit(130);
            }
        });
    if let Err(e) = spawned {
        eprintln!("xtask up: cannot watch signals ({e}); stop rtmanager yourself on exit");
    }
}

/// Sends SIGTERM to `pid` and waits up to 40 s for it to go, then SIGKILL.
fn terminate_pid(pid: u32) {
    let pid = pid.to_string();
    let alive = || {
        Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while alive() && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    if alive() {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
}

/// `--exit`: stops the demo game and removes its container (admin
/// cleanup), so nothing of the demo keeps running.
fn stop_demo_game(env: &DemoEnv, game: &str) {
    step(&format!("stopping and removing the demo game {game}"));
    let stop = request(
        &env.gm,
        "POST",
        &format!("/api/v1/runtimes/{game}/stop"),
        Some(&env.gm_token),
        None,
    );
    let cleanup = request(
        &env.admin,
        "POST",
        &format!("/admin/v1/runtimes/{game}/cleanup"),
        Some(&env.admin_token),
        None,
    );
    for (what, r) in [("stop", stop), ("cleanup", cleanup)] {
        match r {
            Ok(r) if r.status == 200 => println!("{what}: ok"),
            Ok(r) => eprintln!("{what}: HTTP {}: {}", r.status, r.body),
            Err(e) => eprintln!("{what}: {e:#}"),
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
        // rtmanager's default filter without the access log, which the
        // demo's polling would flood (see docs/operations.md, "Logs").
        (
            "RUST_LOG",
            "info,refinery_core=warn,tokio_postgres::connection=warn,actix_server=warn,rtmanager::access=warn",
        ),
    ] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    if let Some(s) = &env.swarm {
        for (k, v) in s.rtmanager_env() {
            cmd.env(k, v);
        }
        // Only a default: this machine's engine cannot express two
        // lockdown fields (docs/swarm.md, "The lockdown on Swarm").
        if std::env::var_os("RTM_SWARM_ACCEPT_WEAKER_ISOLATION").is_none() {
            cmd.env("RTM_SWARM_ACCEPT_WEAKER_ISOLATION", "true");
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

/// Runs the demo; returns the demo game's id.
fn demo(env: &DemoEnv, child: &mut Child) -> Result<String> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let game = format!("demo-{secs}");
    let get = |path: &str| request(&env.gm, "GET", path, Some(&env.gm_token), None);

    step(&format!(
        "Lobby asks for game {game} on the stream {}",
        env.lobby_stream
    ));
    let out = env
        .redis_cli()
        .args([
            "XADD",
            env.lobby_stream.as_str(),
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
            && r.body.contains("\"health_state\":\"healthy\""))
        .then_some(r.body))
    })?;
    println!("{view}");
    if let Some(s) = &env.swarm {
        step("the engine is a Swarm service; rtmanager probed it on the overlay network");
        swarm::show_services(&s.owner);
    }

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
        // `health_state` is `healthy` only once the *new* engine was seen
        // healthy (the old container's observation is not shown).
        Ok((r.body.contains("engine-stub:1.0.1")
            && r.body.contains("\"health_state\":\"healthy\""))
        .then_some(r.body))
    })?;
    println!("{view}");

    step("the audit trail (newest first)");
    println!(
        "{}",
        get(&format!("/api/v1/runtimes/{game}/operations"))?.body
    );

    step(&format!("health events published on {}", env.health_stream));
    let out = env
        .redis_cli()
        .args([
            "XREVRANGE",
            env.health_stream.as_str(),
            "+",
            "-",
            "COUNT",
            "4",
        ])
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

    step("the operator console");
    println!(
        "Open http://{admin}/admin/ui/ in a browser and sign in with the admin token:\n\
         \n    {a}\n\n\
         (the token is RTM_ADMIN_TOKEN; the console keeps it in the browser tab only)",
        a = env.admin_token,
        admin = env.admin,
    );
    Ok(game)
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
