//! The service spec of an engine: the single-host adapter's container,
//! field for field, in Swarm's words. Pure, unit-tested without Docker.
//!
//! Checked against Docker 20.10 (API 1.41) by reading a task's container
//! back (`tests/it/lockdown.rs`): `CapabilityDrop`/`CapabilityAdd`,
//! `ReadOnly`, `Init`, `User`, `Resources.Limits.{MemoryBytes, NanoCPUs,
//! Pids}`, the `json-file` log driver with its caps and the tmpfs mount
//! (size and mode; Docker mounts it `nosuid,nodev,noexec` by default)
//! arrive in the container. `Privileges.NoNewPrivileges` is silently
//! dropped by this API version, so it is not sent (see `SwarmConfig`).

use rtm_docker::labels;
use rtm_domain::ports::ContainerSpec;
use serde_json::{json, Value};

use crate::config::SwarmConfig;
use crate::model::LABEL_NAME;

/// Mode 1777 of the `/tmp` tmpfs: the non-root engine user can write it.
const TMPFS_MODE: u32 = 0o1777;

/// The labels every engine service and its containers carry.
fn rtm_labels(config: &SwarmConfig, spec: &ContainerSpec) -> serde_json::Map<String, Value> {
    let mut l = serde_json::Map::new();
    l.insert(labels::MANAGED.into(), json!("true"));
    l.insert(labels::GAME_ID.into(), json!(spec.game_id.as_str()));
    l.insert(labels::OWNER.into(), json!(config.docker.owner));
    l.insert(labels::IMAGE_REF.into(), json!(spec.image.to_string()));
    l.insert(labels::STATE_PATH.into(), json!(spec.state_path));
    l
}

/// The `POST /services/create` body of `spec` under the unique service
/// name `service_name`, with no replica yet (created, not started).
pub(crate) fn service_spec(
    config: &SwarmConfig,
    spec: &ContainerSpec,
    service_name: &str,
) -> Value {
    let c = &config.docker;
    let container_labels = rtm_labels(config, spec);
    let mut service_labels = container_labels.clone();
    service_labels.insert(LABEL_NAME.into(), json!(spec.name));
    let mut limits = json!({ "Pids": c.pids_limit });
    if c.memory_bytes > 0 {
        limits["MemoryBytes"] = json!(c.memory_bytes);
    }
    if c.nano_cpus > 0 {
        limits["NanoCPUs"] = json!(c.nano_cpus);
    }
    let mut container = json!({
        "Image": spec.image.to_string(),
        "Labels": container_labels,
        "Env": [
            format!("GAME_ID={}", spec.game_id),
            format!("ENGINE_STATE_DIR={}", c.state_mount),
            format!("ENGINE_PORT={}", c.engine_port),
        ],
        "User": c.engine_user.to_string(),
        "ReadOnly": true,
        "Init": true,
        "CapabilityDrop": ["ALL"],
        "StopGracePeriod": u64::try_from(config.stop_grace.as_nanos()).unwrap_or(u64::MAX),
        "Mounts": [
            // The only host path: the game's own state directory.
            {"Type": "bind", "Source": spec.state_path, "Target": c.state_mount},
            {"Type": "tmpfs", "Target": "/tmp",
             "TmpfsOptions": {"SizeBytes": c.tmpfs_bytes, "Mode": TMPFS_MODE}},
        ],
    });
    if !c.cap_add.is_empty() {
        container["CapabilityAdd"] = json!(c.cap_add);
    }
    json!({
        "Name": service_name,
        "Labels": service_labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": { "Limits": limits },
            // RTM reports exits; Swarm must not hide them by restarting.
            "RestartPolicy": { "Condition": "none" },
            "Placement": { "Constraints": config.constraints },
            "LogDriver": {
                "Name": "json-file",
                "Options": {
                    "max-size": c.log_max_size.to_string(),
                    "max-file": c.log_max_files.to_string(),
                },
            },
            "Networks": [ network_attachment(config, &spec.name) ],
        },
        "Mode": { "Replicated": { "Replicas": 0 } },
        // The name resolves to the task itself (no virtual IP), so it
        // answers only while the engine runs, like a container's name.
        "EndpointSpec": { "Mode": "dnsrr" },
    })
}

/// The task's attachment to the engines' network, reachable as `alias`
/// (the port's container name: `http://rtm-<game>:<port>`).
pub(crate) fn network_attachment(config: &SwarmConfig, alias: &str) -> Value {
    json!({ "Target": config.docker.network, "Aliases": [alias] })
}

#[cfg(test)]
mod tests {
    use rtm_domain::{GameId, ImageRef};

    use super::*;

    #[test]
    fn the_spec_carries_the_single_host_lockdown_limits_and_labels() {
        let mut config = SwarmConfig::with_defaults("me");
        config.docker.cap_add = vec!["NET_BIND_SERVICE".into()];
        config.constraints = vec!["node.role==worker".into()];
        let game = GameId::parse("g1").unwrap();
        let spec = ContainerSpec {
            name: game.container_name(),
            image: ImageRef::parse("r.example/e:1").unwrap(),
            state_path: "/state/g1".into(),
            game_id: game,
        };
        let s = service_spec(&config, &spec, "rtm-g1-abcd");
        let c = &s["TaskTemplate"]["ContainerSpec"];
        assert_eq!(s["Name"], "rtm-g1-abcd");
        assert_eq!(s["Labels"]["rtm.name"], "rtm-g1");
        assert_eq!(s["Labels"]["rtm.owner"], "me");
        assert_eq!(c["Labels"]["rtm.owner"], "me");
        assert_eq!(c["Labels"]["rtm.state_path"], "/state/g1");
        assert_eq!(c["CapabilityDrop"], json!(["ALL"]));
        assert_eq!(c["CapabilityAdd"], json!(["NET_BIND_SERVICE"]));
        assert_eq!(c["ReadOnly"], true);
        assert_eq!(c["Init"], true);
        assert_eq!(c["User"], "65534:65534");
        assert_eq!(c["Mounts"][0]["Source"], "/state/g1");
        assert_eq!(c["Mounts"][1]["TmpfsOptions"]["SizeBytes"], 64 << 20);
        assert_eq!(c["Mounts"][1]["TmpfsOptions"]["Mode"], 0o1777);
        let t = &s["TaskTemplate"];
        assert_eq!(t["Resources"]["Limits"]["Pids"], 256);
        assert_eq!(t["Resources"]["Limits"]["MemoryBytes"], 512 << 20);
        assert_eq!(t["RestartPolicy"]["Condition"], "none");
        assert_eq!(t["LogDriver"]["Options"]["max-file"], "3");
        assert_eq!(t["Networks"][0]["Aliases"], json!(["rtm-g1"]));
        assert_eq!(t["Placement"]["Constraints"], json!(["node.role==worker"]));
        assert_eq!(s["Mode"]["Replicated"]["Replicas"], 0);
    }
}
