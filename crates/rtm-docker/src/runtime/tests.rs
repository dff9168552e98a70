//! Unit tests of `runtime.rs`: the create options, grace rounding and
//! state-path checks.

use super::*;

#[test]
fn grace_rounds_up_to_whole_seconds() {
    assert_eq!(grace_secs(Duration::ZERO), Duration::ZERO);
    assert_eq!(grace_secs(Duration::from_millis(1)), Duration::from_secs(1));
    assert_eq!(grace_secs(Duration::from_secs(30)), Duration::from_secs(30));
    assert_eq!(
        grace_secs(Duration::from_millis(2500)),
        Duration::from_secs(3)
    );
}

#[test]
fn state_paths_must_be_plain_absolute_paths() {
    assert!(check_state_path("/var/lib/rtmanager/games/g1").is_ok());
    for bad in ["games/g1", "", "/a:/etc", "/a,b", "vol"] {
        assert!(check_state_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn create_opts_have_the_spec_shape() {
    let rt = DockerRuntime::new(DockerConfig::with_defaults("me")).expect("valid config");
    let spec = ContainerSpec {
        game_id: GameId::parse("g1").expect("valid id"),
        name: "rtm-g1".into(),
        image: ImageRef::parse("rtm.local/engine-stub:1.0.0").expect("valid ref"),
        state_path: "/srv/games/g1".into(),
    };
    let json = rt.create_body(&spec).expect("body");
    let hc = &json["HostConfig"];
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["PidsLimit"], 256);
    assert_eq!(hc["Init"], true);
    assert!(hc["Tmpfs"]["/tmp"]
        .as_str()
        .expect("tmpfs options")
        .contains("size=67108864"));
    assert_eq!(
        hc["Binds"],
        serde_json::json!(["/srv/games/g1:/var/lib/engine"])
    );
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["RestartPolicy"]["Name"], "no");
    assert_eq!(hc["NetworkMode"], "rtm-engines");
    assert_eq!(hc["Memory"], 512 * 1024 * 1024);
    assert_eq!(hc["MemorySwap"], 512 * 1024 * 1024);
    assert_eq!(hc["NanoCpus"], 1_000_000_000);
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["LogConfig"]["Config"]["max-file"], "3");
    assert_eq!(json["User"], "65534:65534");
    assert_eq!(json["Labels"]["rtm.owner"], "me");
    assert_eq!(
        json["Labels"]["rtm.image_ref"],
        "rtm.local/engine-stub:1.0.0"
    );
    assert_eq!(json["Labels"]["rtm.managed"], "true");
    let env = json["Env"].as_array().expect("env array");
    assert!(env.contains(&serde_json::json!("ENGINE_STATE_DIR=/var/lib/engine")));
}
