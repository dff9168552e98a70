//! Attaches this host's network namespace to a Docker Swarm attachable
//! overlay network on this node, the way Docker attaches a container, so
//! that a process running on the host (rtmanager in the swarm end-to-end
//! tests and in `cargo xtask up --swarm`) passes the Swarm adapter's
//! attachment check and reaches task addresses. Never used in production,
//! where rtmanager runs as a service attached to the network
//! (docs/swarm.md, "Where rtmanager runs").
//!
//! [`Attachment::create`] does three steps:
//!
//! 1. an attachable overlay network with its own subnet `10.213.N.0/24`
//!    whose allocation range is the lower half (`--ip-range .0/25`), so
//!    Docker never hands out the address the host takes (`.254`);
//! 2. a placeholder container attached to it, so that the network's
//!    namespace (`/var/run/docker/netns/1-<id>`, holding the bridge `br0`
//!    that task containers are plugged into) exists on this node for as
//!    long as the attachment lives;
//! 3. a veth pair: one end plugged into `br0` inside that namespace, the
//!    other moved to the host, given `10.213.N.254/24` (so the kernel adds
//!    the subnet's directly connected route, as in an attached container)
//!    and the bridge's MTU.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `nsenter`), `ip` and
//! `nsenter`, and the engine on this host. Every wait is bounded. Dropping
//! the [`Attachment`] undoes all three steps (the services on the network
//! must be gone first, or the network stays); a killed process leaves them
//! for its users' sweeps, which find them by the labels they chose. The
//! host end of a veth pair goes with the network's namespace when the
//! last container on the network leaves this node.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What to create. The labels go on the network and the placeholder, so a
/// later sweep can find them.
#[derive(Debug, Clone)]
pub struct AttachSpec {
    /// The network's name.
    pub network: String,
    /// The placeholder container's name.
    pub placeholder: String,
    /// `key=value` labels for the network and the placeholder.
    pub labels: Vec<String>,
    /// The placeholder's image and extra `docker run` arguments before
    /// it (e.g. `--tmpfs`); the image must run until removed.
    pub placeholder_image: String,
    pub placeholder_args: Vec<String>,
    /// Picks the first subnet tried (e.g. the process id), so concurrent
    /// creators rarely try the same one.
    pub seed: u32,
    /// `DOCKER_HOST` for the CLI; `None` leaves the CLI's own default.
    pub docker_host: Option<String>,
}

/// An overlay network this host's network namespace is attached to.
#[derive(Debug)]
pub struct Attachment {
    name: String,
    id: String,
    subnet: String,
    host_addr: String,
    host_if: Option<String>,
    placeholder: Option<String>,
    docker_host: Option<String>,
}

impl Attachment {
    /// Steps 1–3 of the module docs; on an error what was done is undone.
    pub fn create(spec: &AttachSpec) -> Result<Self> {
        let docker_host = spec.docker_host.as_deref();
        let name = spec.network.as_str();
        let mut labels = Vec::new();
        for l in &spec.labels {
            labels.extend(["--label", l.as_str()]);
        }
        // Step 1: a subnet of our own. Docker refuses one that overlaps
        // another pool; the host's own routes are checked here. Bounded:
        // 32 tries.
        let mut chosen = None;
        for attempt in 0..32u32 {
            let n = spec.seed.wrapping_add(attempt.wrapping_mul(37)) % 200 + 20;
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
            let subnet = format!("10.213.{n}.0/24");
            let range = format!("10.213.{n}.0/25");
            let mut args = vec![
                "network",
                "create",
                "--driver",
                "overlay",
                "--attachable",
                "--subnet",
                &subnet,
                "--ip-range",
                &range,
            ];
            args.extend(&labels);
            args.push(name);
            match docker(docker_host, &args) {
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
        let mut net = Attachment {
            name: name.to_owned(),
            id: String::new(),
            subnet: format!("10.213.{n}.0/24"),
            host_addr: format!("10.213.{n}.254"),
            host_if: None,
            placeholder: None,
            docker_host: spec.docker_host.clone(),
        };
        let id = docker(
            docker_host,
            &["network", "inspect", "--format", "{{.Id}}", name],
        )?
        .trim()
        .to_owned();
        if id.len() < 10 {
            bail!("network {name} has an unexpected id {id:?}");
        }
        net.id = id.clone();

        // Step 2: the placeholder.
        let hold = spec.placeholder.as_str();
        let mut args = vec!["run", "-d", "--name", hold];
        args.extend(&labels);
        args.extend(["--network", name]);
        args.extend(spec.placeholder_args.iter().map(String::as_str));
        args.push(&spec.placeholder_image);
        docker(docker_host, &args)?;
        net.placeholder = Some(hold.to_owned());
        let netns = network_namespace(&id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !netns.exists() {
            if Instant::now() >= deadline {
                bail!("{} did not appear within 10 s", netns.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = docker(
            docker_host,
            &["inspect", "--format", "{{.State.Status}}", hold],
        )?;
        if state.trim() != "running" {
            let logs = docker(docker_host, &["logs", hold]).unwrap_or_default();
            bail!("the placeholder {hold} is {}: {logs}", state.trim());
        }

        // Step 3: the veth pair (names ≤ 15 bytes, unique per network id).
        let host_if = host_interface(&id);
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
        let host_pid = std::process::id().to_string();
        in_netns(
            &netns,
            &[
                "ip", "link", "add", &peer, "mtu", &mtu, "type", "veth", "peer", "name", &host_if,
                "mtu", &mtu,
            ],
        )?;
        // From here the host end exists (or is inside the namespace, where
        // it goes with the namespace): the drop deletes it.
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

    /// The network's name (`RTM_DOCKER_NETWORK`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network's id.
    pub fn id(&self) -> &str {
        &self.id
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

impl Drop for Attachment {
    fn drop(&mut self) {
        let docker_host = self.docker_host.as_deref();
        if let Some(host_if) = &self.host_if {
            // Deleting one end of a veth pair deletes both.
            if let Err(e) = run("ip", &["link", "del", host_if]) {
                eprintln!("overlay attachment: {e:#}");
            }
        }
        if let Some(hold) = &self.placeholder {
            if let Err(e) = docker(docker_host, &["rm", "-f", hold]) {
                eprintln!("overlay attachment: {e:#}");
            }
        }
        if !remove_network(docker_host, &self.name) {
            eprintln!("overlay attachment: could not remove {}", self.name);
        }
    }
}

/// Removes network `name`, retrying while it is still in use: Swarm
/// removes a service's containers after the service, so the network is
/// free a little later. Bounded: 60 tries, 30 s. `true` once it is gone.
pub fn remove_network(docker_host: Option<&str>, name: &str) -> bool {
    for _ in 0..60 {
        if docker(docker_host, &["network", "rm", name]).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// Removes every service of `owner` (label `rtm.owner`) and waits (≤ 30 s)
/// until their task containers on this node are gone: Swarm removes them
/// after the services, and the network is free only then. Only task
/// containers are waited for; plain containers of the owner are not this
/// function's. `Ok` with the number of services removed; `Err` when the
/// list or the removal failed, or the containers outlived the wait.
pub fn remove_owner_services(docker_host: Option<&str>, owner: &str) -> Result<usize> {
    let filter = format!("label=rtm.owner={owner}");
    let ids = docker(docker_host, &["service", "ls", "-q", "--filter", &filter])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["service", "rm"];
        args.extend(&ids);
        docker(docker_host, &args)?;
    }
    let tasks = [
        "ps",
        "-aq",
        "--filter",
        &filter,
        "--filter",
        "label=com.docker.swarm.service.id",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docker(docker_host, &tasks)?.trim().is_empty() {
        if Instant::now() >= deadline {
            bail!("task containers of owner {owner} were still there after 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(ids.len())
}

/// The host end's interface name for the network with this id (what a
/// sweep deletes when a namespace outlived its creator).
pub fn host_interface(network_id: &str) -> String {
    format!("rtmo{}", network_id.get(..10).unwrap_or(network_id))
}

/// The network's namespace on this node, `/var/run/docker/netns/1-<id10>`.
fn network_namespace(network_id: &str) -> PathBuf {
    PathBuf::from("/var/run/docker/netns")
        .join(format!("1-{}", network_id.get(..10).unwrap_or(network_id)))
}

/// Whether `pid` (decimal text) is a live process on this host.
pub fn pid_alive(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && Path::new("/proc").join(pid).exists()
}

/// Runs `docker <args>` (with `DOCKER_HOST` when given); `Err` with its
/// stderr when it fails.
pub fn docker(docker_host: Option<&str>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("docker");
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    output(cmd.args(args), "docker", args)
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
    output(Command::new(program).args(args), program, args)
}

fn output(cmd: &mut Command, program: &str, args: &[&str]) -> Result<String> {
    let out = cmd
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
