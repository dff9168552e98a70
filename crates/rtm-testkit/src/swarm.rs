//! Docker Swarm fixtures for end-to-end tests that run rtmanager
//! in-process with `RTM_RUNTIME=swarm` on this single-node swarm.
//!
//! The adapter requires rtmanager to be attached to the engines' overlay
//! network (docs/swarm.md, "Where rtmanager runs"): its `ping` fails
//! unless the network's subnet is routed directly in rtmanager's network
//! namespace, and its probes go to task addresses on that network. A test
//! process runs on the host, which has no leg on an overlay network. So
//! [`shared_overlay`] attaches the host's network namespace to the
//! overlay on this node, the way Docker attaches a container:
//!
//! 1. an attachable overlay network with its own subnet `10.213.N.0/24`
//!    whose allocation range is the lower half (`--ip-range .0/25`), so
//!    Docker never hands out the address the host takes (`.254`);
//! 2. a placeholder container (the stub engine) attached to it, so that the network's
//!    namespace (`/var/run/docker/netns/1-<id>`, holding the bridge `br0`
//!    that task containers are plugged into) exists on this node for as
//!    long as the fixture lives;
//! 3. a veth pair: one end plugged into `br0` inside that namespace, the
//!    other moved to the host, given `10.213.N.254/24` (so the kernel adds
//!    the subnet's directly connected route, as in an attached container)
//!    and the bridge's MTU.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `nsenter`) and the engine
//! on this host. Every wait is bounded; [`Drop`] undoes all three steps,
//! and leftovers of killed test processes are swept on creation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::docker::docker;

/// Label key of the networks and placeholders made here (creator's pid).
const PID_LABEL: &str = "rtm.testkit.pid";
/// Name prefix of the networks made here.
const NET_PREFIX: &str = "rtmtest-ovl";
/// Name prefix of the placeholder containers.
const HOLD_PREFIX: &str = "rtmtest-ovlhold";

/// An attachable overlay network that this process's network namespace
/// is attached to (see the module docs). Removed when the last holder
/// drops it.
#[derive(Debug)]
pub struct OverlayNetwork {
    name: String,
    subnet: String,
    host_addr: String,
    host_if: Option<String>,
    placeholder: Option<String>,
}

impl OverlayNetwork {
    /// The network's name (`RTM_DOCKER_NETWORK`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its IPv4 subnet, e.g. `10.213.7.0/24`.
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    /// The host's address on it, e.g. `10.213.7.254`.
    pub fn host_address(&self) -> &str {
        &self.host_addr
    }
}

impl Drop for OverlayNetwork {
    fn drop(&mut self) {
        if let Some(host_if) = &self.host_if {
            // Deleting one end of a veth pair deletes both.
            if let Err(e) = run("ip", &["link", "del", host_if]) {
                eprintln!("OverlayNetwork: {e:#}");
            }
        }
        if let Some(hold) = &self.placeholder {
            if let Err(e) = docker(&["rm", "-f", hold]) {
                eprintln!("OverlayNetwork: {e:#}");
            }
        }
        // Swarm removes a service's containers after the service: the
        // network is free a little later. Bounded: 60 tries, 30 s.
        for _ in 0..60 {
            if docker(&["network", "rm", &self.name]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("OverlayNetwork: could not remove {}", self.name);
    }
}

/// The overlay network of this test binary, created and attached on first
/// use. Hold the `Arc` for the whole test, declared *before* the owner's
/// guards. Panics with the reason when the engine is not a swarm manager
/// or the attachment fails.
pub fn shared_overlay() -> Arc<OverlayNetwork> {
    match try_shared_overlay() {
        Ok(net) => net,
        Err(e) => panic!("cannot attach this process to an overlay network: {e:#}"),
    }
}

/// Like [`shared_overlay`], returning the error.
pub fn try_shared_overlay() -> Result<Arc<OverlayNetwork>> {
    static CURRENT: Mutex<Weak<OverlayNetwork>> = Mutex::new(Weak::new());
    // A std Mutex, never held across an `.await`: concurrent first callers
    // share one network.
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(net) = current.upgrade() {
        return Ok(net);
    }
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
    if state.trim() != "active" {
        bail!(
            "the engine is not a swarm (state {:?}): docker swarm init --advertise-addr 127.0.0.1 \
             (cargo xtask services does it)",
            state.trim()
        );
    }
    crate::docker::try_ensure_engine_images()?;
    sweep_leftovers();
    let net = Arc::new(create_attached()?);
    *current = Arc::downgrade(&net);
    Ok(net)
}

/// Steps 1–3 of the module docs; on an error the partly built network is
/// dropped, which undoes what was done.
fn create_attached() -> Result<OverlayNetwork> {
    let pid = std::process::id();
    let name = crate::unique(NET_PREFIX).replace('_', "-");
    let label = format!("{PID_LABEL}={pid}");
    // Step 1: a subnet of our own. Docker refuses one that overlaps another
    // pool; the host's own routes are checked here. Bounded: 32 tries.
    let mut chosen = None;
    for attempt in 0..32u32 {
        let n = (pid + attempt * 37) % 200 + 20;
        let subnet = format!("10.213.{n}.0/24");
        let routed = run(
            "ip",
            &[
                "-4",
                "route",
                "show",
                "to",
                "match",
                &format!("10.213.{n}.1"),
            ],
        )?;
        if routed.lines().any(|l| !l.starts_with("default")) {
            continue;
        }
        match docker(&[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--subnet",
            &subnet,
            "--ip-range",
            &format!("10.213.{n}.0/25"),
            "--label",
            &label,
            &name,
        ]) {
            Ok(_) => {
                chosen = Some(n);
                break;
            }
            Err(e) if format!("{e:#}").contains("overlap") => continue,
            Err(e) => return Err(e),
        }
    }
    let Some(n) = chosen else {
        bail!("no free 10.213.N.0/24 subnet for the overlay network");
    };
    let mut net = OverlayNetwork {
        name: name.clone(),
        subnet: format!("10.213.{n}.0/24"),
        host_addr: format!("10.213.{n}.254"),
        host_if: None,
        placeholder: None,
    };
    let id = docker(&["network", "inspect", "--format", "{{.Id}}", &name])?
        .trim()
        .to_owned();
    if id.len() < 10 {
        bail!("network {name} has an unexpected id {id:?}");
    }

    // Step 2: the placeholder (the stub engine, its state on a tmpfs).
    let hold = format!("{HOLD_PREFIX}-{}", &name[NET_PREFIX.len() + 1..]);
    docker(&[
        "run",
        "-d",
        "--name",
        &hold,
        "--label",
        &label,
        "--network",
        &name,
        "--tmpfs",
        "/var/lib/engine",
        &crate::docker::engine_image("1.0.0"),
    ])?;
    net.placeholder = Some(hold.clone());
    let netns = PathBuf::from("/var/run/docker/netns").join(format!("1-{}", &id[..10]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !netns.exists() {
        if Instant::now() >= deadline {
            bail!("{} did not appear within 10 s", netns.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let state = docker(&["inspect", "--format", "{{.State.Status}}", &hold])?;
    if state.trim() != "running" {
        let logs = docker(&["logs", &hold]).unwrap_or_default();
        bail!("the placeholder {hold} is {}: {logs}", state.trim());
    }

    // Step 3: the veth pair (names ≤ 15 bytes, unique per network id).
    let host_if = format!("rtmo{}", &id[..10]);
    let peer = format!("rtmp{}", &id[..10]);
    if Path::new("/sys/class/net").join(&host_if).exists() {
        let _ = run("ip", &["link", "del", &host_if]);
    }
    let mtu = in_netns(&netns, &["ip", "-o", "link", "show", "br0"])?;
    let mtu = mtu
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .context("the overlay bridge br0 has no mtu")?
        .to_owned();
    let host_pid = pid.to_string();
    in_netns(
        &netns,
        &[
            "ip", "link", "add", &peer, "mtu", &mtu, "type", "veth", "peer", "name", &host_if,
            "mtu", &mtu,
        ],
    )?;
    // From here the host end exists (or is inside the namespace, where it
    // goes with the namespace): the drop deletes it.
    net.host_if = Some(host_if.clone());
    in_netns(&netns, &["ip", "link", "set", &host_if, "netns", &host_pid])?;
    in_netns(&netns, &["ip", "link", "set", &peer, "master", "br0"])?;
    in_netns(&netns, &["ip", "link", "set", &peer, "up"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/24", net.host_addr),
            "dev",
            &host_if,
        ],
    )?;
    run("ip", &["link", "set", &host_if, "up"])?;
    Ok(net)
}

/// Removes, for test processes that no longer exist, the services of
/// their owners, their placeholders and their overlay networks (a killed
/// run never drops its guards; the host ends of their veth pairs went
/// with the placeholders' network namespaces). Best effort.
fn sweep_leftovers() {
    // Owners look like `rtmtest_<pid>_<n>_<nanos>`; `service ls` cannot
    // print labels: inspect the listed ids.
    let ids = docker(&["service", "ls", "-q", "--filter", "label=rtm.owner"]).unwrap_or_default();
    if !ids.trim().is_empty() {
        let mut args = vec![
            "service",
            "inspect",
            "--format",
            "{{.ID}} {{index .Spec.Labels \"rtm.owner\"}}",
        ];
        args.extend(ids.split_whitespace());
        for line in docker(&args).unwrap_or_default().lines() {
            let Some((id, owner)) = line.split_once(' ') else {
                continue;
            };
            let mut parts = owner.split('_');
            if parts.next() == Some("rtmtest") && parts.next().is_some_and(|p| !pid_alive(p)) {
                let _ = docker(&["service", "rm", id]);
            }
        }
    }
    let holders = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={HOLD_PREFIX}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}}"),
    ])
    .unwrap_or_default();
    for line in holders.lines() {
        if let Some((id, pid)) = line.split_once(' ') {
            if !pid_alive(pid) {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
    let nets = docker(&[
        "network",
        "ls",
        "--filter",
        &format!("name={NET_PREFIX}"),
        "--format",
        &format!("{{{{.Name}}}} {{{{.Label \"{PID_LABEL}\"}}}}"),
    ])
    .unwrap_or_default();
    for line in nets.lines() {
        if let Some((name, pid)) = line.split_once(' ') {
            if !pid_alive(pid) {
                let _ = docker(&["network", "rm", name]);
            }
        }
    }
}

/// Removes the owner's services when a test ends: Swarm then stops and
/// removes their tasks' containers in the background; waits (≤ 30 s) until
/// none of the owner's task containers is left, so the network can go.
#[derive(Debug)]
pub struct ServiceGuard {
    owner: String,
}

impl ServiceGuard {
    pub fn new(owner: &str) -> Self {
        Self {
            owner: owner.to_owned(),
        }
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let filter = format!("label=rtm.owner={}", self.owner);
        let ids = match docker(&["service", "ls", "-q", "--filter", &filter]) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("ServiceGuard: {e:#}");
                return;
            }
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(ids);
            if let Err(e) = docker(&args) {
                eprintln!("ServiceGuard: {e:#}");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Only task containers: a test's plain containers (strays,
            // resolvers) are the owner guard's.
            match docker(&[
                "ps",
                "-aq",
                "--filter",
                &filter,
                "--filter",
                "label=com.docker.swarm.service.id",
            ]) {
                Ok(left) if left.trim().is_empty() => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                Err(_) => return,
            }
        }
    }
}

fn pid_alive(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && Path::new("/proc").join(pid).exists()
}

/// `nsenter --net=<netns> <args>`.
fn in_netns(netns: &Path, args: &[&str]) -> Result<String> {
    let mut all = vec![format!("--net={}", netns.display())];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run("nsenter", &all)
}

/// Runs a program; `Err` with its stderr when it fails.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
