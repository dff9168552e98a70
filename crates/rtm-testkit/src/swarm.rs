//! Docker Swarm fixtures for end-to-end tests that run rtmanager
//! in-process with `RTM_RUNTIME=swarm` on this single-node swarm.
//!
//! The adapter requires rtmanager to be attached to the engines' overlay
//! network (docs/swarm.md, "Where rtmanager runs"): its `ping` fails
//! unless the network's subnet is routed directly in rtmanager's network
//! namespace, and its probes go to task addresses on that network. A test
//! process runs on the host, which has no leg on an overlay network. So
//! [`shared_overlay`] attaches the host's network namespace to the
//! overlay on this node, the way Docker attaches a container, with
//! `rtm-overlay` (an attachable overlay network with its own
//! `10.213.N.0/24` subnet, a placeholder container — the stub engine —
//! holding the network's namespace on this node, and a veth pair from the
//! network's bridge to the host, whose end gets `10.213.N.254/24`; see
//! that crate's docs). `cargo xtask up --swarm` attaches its rtmanager the
//! same way.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `nsenter`) and the engine
//! on this host. Every wait is bounded; [`Drop`] undoes all three steps,
//! and leftovers of killed test processes are swept on creation.

use std::sync::{Arc, Mutex, Weak};

use anyhow::{bail, Result};
use rtm_overlay::{pid_alive, AttachSpec, Attachment};

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
    attachment: Attachment,
}

impl OverlayNetwork {
    /// The network's name (`RTM_DOCKER_NETWORK`).
    pub fn name(&self) -> &str {
        self.attachment.name()
    }

    /// Its IPv4 subnet, e.g. `10.213.7.0/24`.
    pub fn subnet(&self) -> &str {
        self.attachment.subnet()
    }

    /// The host's address on it, e.g. `10.213.7.254`.
    pub fn host_address(&self) -> &str {
        self.attachment.host_address()
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

/// Creates the network and attaches this process's namespace to it; on an
/// error what was done is undone.
fn create_attached() -> Result<OverlayNetwork> {
    let pid = std::process::id();
    let name = crate::unique(NET_PREFIX).replace('_', "-");
    let spec = AttachSpec {
        placeholder: format!("{HOLD_PREFIX}-{}", &name[NET_PREFIX.len() + 1..]),
        network: name,
        labels: vec![format!("{PID_LABEL}={pid}")],
        // The stub engine, its state on a tmpfs.
        placeholder_image: crate::docker::engine_image("1.0.0"),
        placeholder_args: vec!["--tmpfs".into(), "/var/lib/engine".into()],
        seed: pid,
        docker_host: docker_host(),
    };
    Ok(OverlayNetwork {
        attachment: Attachment::create(&spec)?,
    })
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

/// `DOCKER_HOST` for the CLI: the engine of the adapters under test
/// (`RTM_TEST_DOCKER_HOST`, a socket path or a URL), else the CLI's own.
fn docker_host() -> Option<String> {
    std::env::var("RTM_TEST_DOCKER_HOST").ok().map(|h| {
        if h.starts_with('/') {
            format!("unix://{h}")
        } else {
            h
        }
    })
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
        if let Err(e) = rtm_overlay::remove_owner_services(docker_host().as_deref(), &self.owner) {
            eprintln!("ServiceGuard: {e:#}");
        }
    }
}
