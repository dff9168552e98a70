//! `cargo xtask up --swarm`: the demo's rtmanager on this machine's
//! single-node swarm (`RTM_RUNTIME=swarm`), attached to the engines'
//! overlay network.
//!
//! rtmanager runs on the host, as in the single-host demo: it reaches
//! PostgreSQL and Redis on loopback, is built by cargo and logs to this
//! terminal. The Swarm adapter needs its process attached to the engines'
//! attachable overlay network (its readiness fails otherwise, and its
//! probes go to task addresses on that network), so the host's network
//! namespace is attached the way the swarm end-to-end tests attach theirs
//! (`rtm-overlay`: a network with its own `10.213.N.0/24`, a placeholder
//! container holding the network's namespace on this node, a veth pair
//! from the network's bridge to the host). A deployment runs rtmanager as
//! a service on that network instead (docs/operations.md, "Many hosts").
//!
//! Guarantee: [`SwarmDemo::remove`] removes the demo owner's services, then
//! the veth pair, the placeholder and the network, waiting (bounded) for
//! each; it runs once, whether the demo ends, fails or is interrupted.
//! What a killed run left (its task's pid is gone) is swept at the next
//! start, found by the labels put on the network and the placeholder.

use std::process::Command;
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rtm_overlay::{docker, pid_alive, AttachSpec, Attachment};

/// Labels on the demo's network and placeholder: the creating task's pid
/// and the owner its rtmanager used, so a sweep knows what to remove.
const PID_LABEL: &str = "rtm.xtask.up.pid";
const OWNER_LABEL: &str = "rtm.xtask.up.owner";

/// The swarm demo's own settings: each an `RTM_*` variable when exported,
/// else a default distinct from the single-host demo's, so the two never
/// see each other's engines or records.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `RTM_DOCKER_NETWORK`; created here as an attachable overlay.
    pub network: String,
    /// `RTM_OWNER`: a swarm rtmanager must not share its owner with a
    /// single-host one on the same engine (docs/swarm.md).
    pub owner: String,
    /// `RTM_DATABASE_SCHEMA`.
    pub schema: String,
}

impl Settings {
    pub fn from_env(var: impl Fn(&str, &str) -> String) -> Self {
        Self {
            network: var("RTM_DOCKER_NETWORK", "rtm-demo-swarm"),
            owner: var("RTM_OWNER", "rtm-demo-swarm"),
            schema: var("RTM_DATABASE_SCHEMA", "rtmanager_swarm"),
        }
    }

    /// What rtmanager is started with, over anything exported: `--swarm`
    /// is the operator's explicit choice, and the network, the sweep and
    /// the schema were made for these values.
    pub fn rtmanager_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RTM_RUNTIME", "swarm".into()),
            ("RTM_DOCKER_NETWORK", self.network.clone()),
            ("RTM_OWNER", self.owner.clone()),
            ("RTM_DATABASE_SCHEMA", self.schema.clone()),
        ]
    }
}

/// The demo's attachment and its services; see the module docs.
#[derive(Debug)]
pub struct SwarmDemo {
    owner: String,
    attachment: Option<Attachment>,
}

/// The one live [`SwarmDemo`], taken by whichever of the main thread and
/// the signal thread ends the demo first. A std Mutex: it is held, by
/// design, for the whole removal, so that the other thread waits for it
/// to finish instead of letting the process exit halfway.
static CURRENT: Mutex<Option<SwarmDemo>> = Mutex::new(None);

/// Checks that this engine is a swarm manager, sweeps what killed runs
/// left, creates the network and attaches this host to it. The result is
/// kept for [`teardown`].
pub fn attach(settings: &Settings) -> Result<()> {
    let info = docker(
        None,
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
    )?;
    if info.trim() != "active true" {
        bail!(
            "the Docker engine is not a swarm manager ({}): `docker swarm init \
             --advertise-addr 127.0.0.1` makes it a single-node swarm",
            info.trim()
        );
    }
    sweep_leftovers();
    let pid = std::process::id();
    let spec = AttachSpec {
        network: settings.network.clone(),
        placeholder: format!("{}-hold", settings.network),
        labels: vec![
            format!("{PID_LABEL}={pid}"),
            format!("{OWNER_LABEL}={}", settings.owner),
        ],
        // The stub engine, its state on a tmpfs; it only holds the
        // network's namespace on this node.
        placeholder_image: format!("{}:1.0.0", crate::engine_image::REPOSITORY),
        placeholder_args: vec!["--tmpfs".into(), "/var/lib/engine".into()],
        seed: pid,
        docker_host: None,
    };
    let attachment = Attachment::create(&spec).with_context(|| {
        format!(
            "attaching this host to the overlay network {} (needs root, `ip` and \
             `nsenter`; a network of that name must not exist yet)",
            settings.network
        )
    })?;
    println!(
        "network {} (id {}, {}, attachable overlay); this host is {} on it ({})",
        attachment.name(),
        attachment.id().get(..12).unwrap_or(attachment.id()),
        attachment.subnet(),
        attachment.host_address(),
        rtm_overlay::host_interface(attachment.id()),
    );
    let demo = SwarmDemo {
        owner: settings.owner.clone(),
        attachment: Some(attachment),
    };
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(demo);
    Ok(())
}

/// Removes the demo's services and attachment, once (see [`CURRENT`]).
/// Does nothing for the single-host demo.
pub fn teardown() {
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(demo) = current.take() {
        demo.remove();
    }
}

impl SwarmDemo {
    fn remove(mut self) {
        println!("\n==> removing the demo's services and its overlay network attachment");
        remove_services(&self.owner);
        let Some(attachment) = self.attachment.take() else {
            return;
        };
        let name = attachment.name().to_owned();
        // The veth pair, the placeholder and the network (bounded waits).
        drop(attachment);
        if network_gone(&name) {
            println!("removed: the network {name}, its placeholder and the veth pair");
        }
    }
}

/// Removes every service of `owner` and waits (≤ 30 s) until their task
/// containers on this node are gone, so the network can go next.
pub(crate) fn remove_services(owner: &str) {
    match rtm_overlay::remove_owner_services(None, owner) {
        Ok(0) => {}
        Ok(n) => println!("removed {n} service(s) of owner {owner}"),
        Err(e) => eprintln!("xtask: {e:#}"),
    }
}

/// Removes what demo runs whose task no longer exists left behind: their
/// owner's services, placeholders, host veth ends and networks. Best
/// effort; a network still in use is reported by the create that follows.
fn sweep_leftovers() {
    sweep_attachments(PID_LABEL, OWNER_LABEL, "cargo xtask up --swarm");
}

/// Removes what the overlay attachments of dead processes left behind,
/// found by the labels `pid_label` (the creator's pid) and `owner_label`
/// (the owner of its rtmanager, whose services go first) on their
/// networks and placeholders; `who` names the creator in messages. Used
/// by `up --swarm` and `bench --swarm`, each with its own labels.
pub(crate) fn sweep_attachments(pid_label: &str, owner_label: &str, who: &str) {
    let nets = docker(
        None,
        &[
            "network",
            "ls",
            "--filter",
            &format!("label={pid_label}"),
            "--format",
            &format!("{{{{.ID}}}} {{{{.Name}}}} {{{{.Label \"{pid_label}\"}}}} {{{{.Label \"{owner_label}\"}}}}"),
        ],
    )
    .unwrap_or_default();
    for line in nets.lines() {
        let mut fields = line.split_whitespace();
        let (Some(id), Some(name), Some(pid)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        println!("sweeping {name}, left by an earlier `{who}` (pid {pid})");
        if let Some(owner) = fields.next() {
            remove_services(owner);
        }
        let holders = docker(
            None,
            &["ps", "-aq", "--filter", &format!("label={pid_label}={pid}")],
        )
        .unwrap_or_default();
        for hold in holders.split_whitespace() {
            let _ = docker(None, &["rm", "-f", hold]);
        }
        // The host end goes with the network's namespace; delete it in case
        // that namespace is still held.
        let host_if = rtm_overlay::host_interface(id);
        if std::path::Path::new("/sys/class/net")
            .join(&host_if)
            .exists()
        {
            let _ = Command::new("ip").args(["link", "del", &host_if]).status();
        }
        if !rtm_overlay::remove_network(None, name) {
            eprintln!("xtask up: could not remove the leftover network {name}");
        }
        // The name is free only once Swarm stops listing the network.
        network_gone(name);
    }
}

/// Waits (≤ 15 s) until Swarm no longer lists network `name`: it still
/// lists a removed network for a few seconds, and a create of the same
/// name fails until then. `false`, after saying so, when it is still there.
fn network_gone(name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while docker(None, &["network", "inspect", name]).is_ok() {
        if Instant::now() >= deadline {
            eprintln!("xtask up: the network {name} is still listed after 15 s");
            return false;
        }
        sleep(Duration::from_millis(250));
    }
    true
}

/// Prints the demo owner's services (the engines, as Swarm sees them).
pub fn show_services(owner: &str) {
    let filter = format!("label=rtm.owner={owner}");
    match docker(None, &["service", "ls", "--filter", &filter]) {
        Ok(out) => print!("{out}"),
        Err(e) => eprintln!("xtask up: {e:#}"),
    }
}
