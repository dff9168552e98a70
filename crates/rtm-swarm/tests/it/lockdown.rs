//! The lockdown, limits and log caps, read back from what Docker 20.10
//! stored (the service spec) and from what it ran (the task's container,
//! its process' status and mounts), and the engine stub's own probe of
//! its confinement. The two known gaps of the service API are measured
//! too, so a Docker that closes them makes this test fail and
//! docs/swarm.md gets updated.

use std::collections::HashMap;
use std::path::PathBuf;

use rtm_domain::ports::ContainerRuntime;
use serde_json::json;

use crate::{inspect_json, poll, task_containers, write_control, Env};

#[tokio::test]
async fn services_and_their_containers_carry_the_single_host_lockdown() {
    const PIDS: u32 = 24;
    let env = Env::with(|c| {
        c.docker.pids_limit = PIDS;
        c.docker.cap_add = vec!["NET_BIND_SERVICE".into()];
        c.docker.tmpfs_bytes = 8 * 1024 * 1024;
    });
    let (spec, id) = env.running("1.0.0").await;
    // This test runs on the host, not attached to the overlay network.
    let ping = env.rt.ping().await;
    assert!(
        matches!(&ping, Err(e) if e.to_string().contains("not attached to the engines' network")),
        "{ping:?}"
    );

    let svc = inspect_json("service", id.as_str());
    let owner = env.guard.owner();
    assert_eq!(svc["Spec"]["Labels"]["rtm.owner"], owner);
    assert_eq!(svc["Spec"]["Labels"]["rtm.name"], spec.name.as_str());
    let t = &svc["Spec"]["TaskTemplate"];
    let c = &t["ContainerSpec"];
    assert_eq!(c["CapabilityDrop"], json!(["ALL"]));
    assert_eq!(c["CapabilityAdd"], json!(["NET_BIND_SERVICE"]));
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(c["Init"], true);
    assert_eq!(c["User"], "65534:65534");
    assert_eq!(t["Resources"]["Limits"]["Pids"], PIDS);
    assert_eq!(t["RestartPolicy"]["Condition"], "none");

    let [container] = task_containers(&id).try_into().expect("one task container");
    let info = inspect_json("container", &container);
    let h = &info["HostConfig"];
    assert_eq!(h["CapDrop"], json!(["ALL"]));
    assert_eq!(h["CapAdd"], json!(["NET_BIND_SERVICE"]));
    assert_eq!(h["ReadonlyRootfs"], true);
    assert_eq!(h["Init"], true);
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["PidsLimit"], PIDS);
    assert_eq!(h["Memory"], 64 * 1024 * 1024);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["LogConfig"]["Type"], "json-file");
    assert_eq!(h["LogConfig"]["Config"]["max-size"], "1048576");
    assert_eq!(h["LogConfig"]["Config"]["max-file"], "2");
    assert_eq!(info["Config"]["User"], "65534:65534");
    assert_eq!(info["Config"]["Labels"]["rtm.owner"], owner);
    assert_eq!(
        info["Config"]["Labels"]["rtm.game_id"],
        spec.game_id.as_str()
    );
    let binds: Vec<_> = h["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| (m["Type"].clone(), m["Target"].clone()))
        .collect();
    assert_eq!(
        binds,
        [
            (json!("bind"), json!("/var/lib/engine")),
            (json!("tmpfs"), json!("/tmp"))
        ],
        "the state directory and /tmp, nothing else"
    );

    // The process itself: its /tmp mount options and privileges.
    let pid = info["State"]["Pid"].as_u64().expect("a pid");
    let child = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("children of init");
    let engine: u64 = child
        .split_whitespace()
        .next()
        .expect("the engine")
        .parse()
        .unwrap();
    let mounts = std::fs::read_to_string(format!("/proc/{engine}/mounts")).unwrap();
    let tmp = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/tmp"))
        .expect("a /tmp mount");
    for opt in ["noexec", "nosuid", "nodev", "size=8192k"] {
        assert!(tmp.contains(opt), "/tmp lacks {opt}: {tmp}");
    }
    let status = std::fs::read_to_string(format!("/proc/{engine}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(
        field("CapBnd:"),
        "0000000000000400",
        "NET_BIND_SERVICE only"
    );
    // The documented gaps of API 1.41 (docs/swarm.md): no
    // no-new-privileges, and swap allowed up to the memory limit.
    assert_eq!(
        field("NoNewPrivs:"),
        "0",
        "Docker now sets it: update docs/swarm.md"
    );
    assert_eq!(h["MemorySwap"], 2 * 64 * 1024 * 1024);

    // The stub's own probe: writes outside /tmp and the state dir, exec
    // from /tmp and forks past the pids limit are all refused.
    write_control(&spec, "lockdown", "");
    let path = PathBuf::from(&spec.state_path).join("lockdown.result");
    let text = poll("lockdown.result", || std::fs::read_to_string(&path).ok()).await;
    let result: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    for key in ["write_root", "write_etc"] {
        let got = result.get(key).copied().unwrap_or("missing");
        assert!(got.contains("os error 30"), "{key}: {got} ({text})");
    }
    assert_eq!(result.get("write_tmp").copied(), Some("ok"), "{text}");
    assert!(
        result
            .get("exec_tmp")
            .is_some_and(|r| r.contains("os error 13")),
        "/tmp is noexec: {text}"
    );
    let spawned: u32 = result
        .get("spawned")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("spawned: {text}"));
    assert!(spawned < PIDS, "the pids limit holds: {text}");
    assert!(
        result
            .get("spawn_error")
            .is_some_and(|r| r.contains("os error 11")),
        "the fork past the limit is refused with EAGAIN: {text}"
    );
    assert_eq!(result.get("pid1").copied(), Some("docker-init"), "{text}");
}
