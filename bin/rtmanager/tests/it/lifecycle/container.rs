//! The container a start creates matches SPEC §3 and §5: name, labels,
//! hardening and the lockdown, limits from the configuration, capped logs, only the game's
//! state directory mounted, the engine environment, the configured network,
//! and the record's `engine_endpoint`.

use std::os::unix::fs::MetadataExt;

use super::*;

#[tokio::test]
async fn a_started_container_is_shaped_by_the_spec() {
    if skip_on_swarm(
        "a_started_container_is_shaped_by_the_spec",
        "docs/swarm.md, 'The lockdown on Swarm': a task container's shape differs by design \
         (tmpfs as a mount, no no-new-privileges, Swarm's network attachment); that section's \
         table is verified field by field by rtm-swarm's \
         lockdown::services_and_their_containers_carry_the_single_host_lockdown",
    ) {
        return;
    }
    let app = spawn_app_with(|v| {
        v.insert("RTM_ENGINE_MEMORY".into(), "64m".into());
        v.insert("RTM_ENGINE_CPUS".into(), "0.5".into());
        v.insert("RTM_ENGINE_LOG_MAX_SIZE".into(), "2m".into());
        v.insert("RTM_ENGINE_LOG_MAX_FILES".into(), "2".into());
        v.insert("RTM_ENGINE_CAP_ADD".into(), "net_bind_service".into());
        v.insert("RTM_ENGINE_TMPFS_SIZE".into(), "16m".into());
        v.insert("RTM_ENGINE_PIDS_LIMIT".into(), "128".into());
    })
    .await;
    let g = gid(&app, "shape");
    let g = g.as_str();
    start_running(&app, g, "1.0.0").await;
    let rec = record(&app, g).await.expect("record");
    let cs = containers(&app, g);
    assert_eq!(cs.len(), 1, "{cs:?}");
    let c = &cs[0];
    let i = &c.inspect;
    let state = app.state_dir(g).display().to_string();
    let network = app.network.name().to_owned();

    // Record.
    assert_eq!(rec["engine_endpoint"], format!("http://rtm-{g}:8080"));
    assert_eq!(rec["container_id"], c.id.as_str());
    assert_eq!(rec["image_ref"], image("1.0.0"));
    assert_eq!(rec["state_path"], state.as_str());
    assert_eq!(rec["docker_network"], network.as_str());

    // Name and labels.
    assert_eq!(c.name, format!("rtm-{g}"));
    let labels = &i["Config"]["Labels"];
    assert_eq!(labels["rtm.managed"], "true", "{labels}");
    assert_eq!(labels["rtm.game_id"], g, "{labels}");
    assert_eq!(labels["rtm.owner"], app.owner.owner(), "{labels}");
    assert_eq!(labels["rtm.image_ref"], image("1.0.0"), "{labels}");
    assert_eq!(labels["rtm.state_path"], state.as_str(), "{labels}");
    assert_eq!(c.image, image("1.0.0"));

    // Hardening.
    let host = &i["HostConfig"];
    assert_eq!(i["Config"]["User"], "65534:65534");
    assert_eq!(host["Privileged"], false);
    let sec: Vec<&str> = host["SecurityOpt"]
        .as_array()
        .expect("SecurityOpt")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(sec.contains(&"no-new-privileges"), "{sec:?}");
    assert_eq!(
        host["RestartPolicy"]["Name"], "no",
        "{}",
        host["RestartPolicy"]
    );

    // The lockdown, from the configuration (docs/docker.md).
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["CapAdd"], json!(["NET_BIND_SERVICE"]));
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(
        host["Tmpfs"],
        json!({"/tmp": "rw,noexec,nosuid,nodev,mode=1777,size=16777216"})
    );
    assert_eq!(host["PidsLimit"], 128);
    assert_eq!(host["Init"], true);

    // Limits and logs from the configuration.
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(host["LogConfig"]["Config"]["max-size"], "2097152");
    assert_eq!(host["LogConfig"]["Config"]["max-file"], "2");

    // Only the state directory, at the engine mount; no Docker socket.
    let mounts = i["Mounts"].as_array().expect("Mounts");
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Source"], state.as_str());
    assert_eq!(mounts[0]["Destination"], "/var/lib/engine");
    let binds = host["Binds"].as_array().expect("Binds");
    assert_eq!(binds.len(), 1, "{binds:?}");
    let meta = std::fs::metadata(app.state_dir(g)).expect("state dir");
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "state dir owner");

    // Environment.
    let env: Vec<&str> = i["Config"]["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        format!("GAME_ID={g}"),
        "ENGINE_STATE_DIR=/var/lib/engine".to_owned(),
        "ENGINE_PORT=8080".to_owned(),
    ] {
        assert!(env.contains(&want.as_str()), "{want} in {env:?}");
    }

    // Network: only the configured one.
    assert_eq!(host["NetworkMode"], network.as_str());
    let nets: Vec<&String> = i["NetworkSettings"]["Networks"]
        .as_object()
        .expect("Networks")
        .keys()
        .collect();
    assert_eq!(nets, vec![&network]);

    // The engine is the one asked for, for this game.
    let health = wait_for("engine healthz", Duration::from_secs(10), || async {
        engine_health(c).await
    })
    .await;
    assert_eq!(health["game_id"], g, "{health}");
    assert_eq!(health["version"], "1.0.0", "{health}");
}
