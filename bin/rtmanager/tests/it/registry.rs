//! Engine images from a real registry: Debian's `docker-registry` on a
//! loopback port (`rtm_testkit::registry`), open or behind htpasswd auth,
//! holding the stub images pushed under its own host. Each pushed tag is
//! untagged locally right away, so every use needs a real pull.
//!
//! Proven here: a start pulls by tag and by digest; missing or wrong
//! credentials fail with `image_pull_failed` carrying the registry's
//! reason and create nothing, and rotated credentials are picked up
//! without a restart; a patch pulls the new image before it stops the old
//! engine (Docker's own event order); a registry that is down fails a
//! start and a patch cleanly, the old engine untouched.

use std::time::{SystemTime, UNIX_EPOCH};

use rtm_testkit::registry::{log_of, Registry};
use serde_json::{json, Value};

use crate::lifecycle::{containers, gid, record, rows, starts, wait_engine_started};
use crate::support::*;

/// An app whose allow-list also admits `registry`'s images.
async fn app_for(registry: &Registry, auth_file: Option<&std::path::Path>) -> TestApp {
    let host = registry.host();
    let auth = auth_file.map(|p| p.display().to_string());
    spawn_app_with(move |vars| {
        vars.insert(
            "RTM_IMAGE_ALLOWLIST".into(),
            format!("rtm.local/engine-stub,{host}/*"),
        );
        if let Some(a) = auth {
            vars.insert("RTM_REGISTRY_AUTH_FILE".into(), a);
        }
    })
    .await
}

fn push(registry: &Registry, tag: &str) -> rtm_testkit::registry::Pushed {
    registry
        .push(&image(tag), &format!("engine-stub:{tag}"))
        .unwrap_or_else(|e| panic!("push {tag}: {e:#}"))
}

/// Asserts a failed first start: the code, a reason containing `reason`,
/// no record, no container, one failed operation row.
async fn assert_failed_start(app: &TestApp, g: &str, body: &Value, reason: &str) {
    assert_eq!(body["error"]["code"], "image_pull_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains(reason),
        "the registry's reason ({reason}) is in the message: {message}"
    );
    assert!(app.containers(g).is_empty(), "nothing half-created");
    assert!(record(app, g).await.is_none(), "no record");
    let r = rows(app, g).await;
    assert_eq!(
        r.last().map(|r| r.error_code.as_str()),
        Some("image_pull_failed")
    );
}

#[tokio::test]
async fn a_start_pulls_from_a_registry_by_tag_and_by_digest() {
    let registry = Registry::start_open().expect("registry");
    let v100 = push(&registry, "1.0.0");
    let v101 = push(&registry, "1.0.1");
    let app = app_for(&registry, None).await;

    let by_tag = gid(&app, "reg-tag");
    let (status, body) = app.start_game(&by_tag, &v100.tag_ref).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtime"]["status"], "running", "{body}");
    assert!(Registry::present(&v100.tag_ref), "pulled by tag");
    let c = containers(&app, &by_tag);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].image, v100.tag_ref);

    assert!(!Registry::present(&v101.digest_ref), "needs a pull");
    let by_digest = gid(&app, "reg-digest");
    let (status, body) = app.start_game(&by_digest, &v101.digest_ref).await;
    assert_eq!(status, 200, "{body}");
    assert!(Registry::present(&v101.digest_ref), "pulled by digest");
    wait_engine_started(&app, &by_digest, 1).await;
    let log =
        std::fs::read_to_string(app.state_dir(&by_digest).join("starts.log")).expect("starts.log");
    assert!(log.starts_with("1.0.1 "), "the digest's engine runs: {log}");
}

#[tokio::test]
async fn missing_or_wrong_credentials_fail_with_the_registrys_reason_and_rotation_is_picked_up() {
    let registry = Registry::start_with_auth("rtm-tester", "right-password").expect("registry");
    let pushed = push(&registry, "1.0.0");
    let host = registry.host();
    let dir = std::env::temp_dir().join(rtm_testkit::unique("rtm-auth"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.json");
    let write = |key: &str, user: &str, password: &str| {
        // Written to a temporary name and renamed, as rotation tools do.
        let tmp = dir.join("config.json.tmp");
        std::fs::write(
            &tmp,
            json!({"auths": {key: {"username": user, "password": password}}}).to_string(),
        )
        .expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
    };
    // Credentials for another registry only: none for this host.
    write("ghcr.io", "someone", "else");
    let app = app_for(&registry, Some(&file)).await;

    let g = gid(&app, "reg-auth");
    let (status, body) = app.start_game(&g, &pushed.tag_ref).await;
    assert_eq!(status, 422, "{body}");
    assert_failed_start(&app, &g, &body, "auth").await;

    write(&host, "rtm-tester", "wrong-password");
    let (status, body) = app.start_game(&g, &pushed.tag_ref).await;
    assert_eq!(status, 422, "{body}");
    assert_failed_start(&app, &g, &body, "auth").await;
    assert!(!Registry::present(&pushed.tag_ref));

    // Rotated to the right password: used by the next pull, no restart.
    write(
        &format!("http://{host}/v2/"),
        "rtm-tester",
        "right-password",
    );
    let (status, body) = app.start_game(&g, &pushed.tag_ref).await;
    assert_eq!(status, 200, "{body}; registry log: {:?}", log_of(&registry));
    assert!(Registry::present(&pushed.tag_ref));
    assert_eq!(app.containers(&g).len(), 1);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Unix time as Docker's `--since`/`--until` take it.
fn docker_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[tokio::test]
async fn a_patch_pulls_the_new_image_before_stopping_the_old_engine() {
    let registry = Registry::start_open().expect("registry");
    let v100 = push(&registry, "1.0.0");
    let v101 = push(&registry, "1.0.1");
    let app = app_for(&registry, None).await;
    let g = gid(&app, "reg-patch");
    let (status, body) = app.start_game(&g, &v100.tag_ref).await;
    assert_eq!(status, 200, "{body}");
    wait_engine_started(&app, &g, 1).await;
    let old = containers(&app, &g)[0].id.clone();
    assert!(!Registry::present(&v101.tag_ref), "the patch needs a pull");

    let since = docker_now();
    let (status, body) = app
        .admin_post(
            &format!("/admin/v1/runtimes/{g}/patch"),
            Some(json!({"image_ref": v101.tag_ref})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["runtime"]["image_ref"],
        v101.tag_ref.as_str(),
        "{body}"
    );
    let until = docker_now();

    // Docker's event stream is in the engine's order: the pull of the new
    // image must come before anything happened to the old container.
    let out = rtm_testkit::docker::docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--filter",
        "type=container",
        "--format",
        "{{json .}}",
    ])
    .expect("docker events");
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pull = events
        .iter()
        .position(|e| {
            e["Type"] == "image"
                && e["Action"] == "pull"
                && e["Actor"]["ID"] == v101.tag_ref.as_str()
        })
        .unwrap_or_else(|| panic!("no pull event of {}: {events:?}", v101.tag_ref));
    let first_stop = events
        .iter()
        .position(|e| {
            e["Type"] == "container"
                && e["Actor"]["ID"] == old.as_str()
                && matches!(e["Action"].as_str(), Some("kill" | "stop" | "die"))
        })
        .unwrap_or_else(|| panic!("the old engine was never stopped: {events:?}"));
    assert!(
        pull < first_stop,
        "pull (event {pull}) before the old engine's stop (event {first_stop}): {events:?}"
    );
}

#[tokio::test]
async fn a_registry_that_is_down_fails_start_and_patch_cleanly() {
    let mut registry = Registry::start_open().expect("registry");
    let v100 = push(&registry, "1.0.0");
    let v101 = push(&registry, "1.0.1");
    let app = app_for(&registry, None).await;
    let running = gid(&app, "reg-down-run");
    let (status, body) = app.start_game(&running, &v100.tag_ref).await;
    assert_eq!(status, 200, "{body}");
    wait_engine_started(&app, &running, 1).await;

    registry.stop();

    let g = gid(&app, "reg-down");
    let (status, body) = app.start_game(&g, &v101.tag_ref).await;
    assert_eq!(status, 422, "{body}");
    assert_failed_start(&app, &g, &body, "connection refused").await;

    // A patch whose image cannot be pulled never touches the old engine.
    let before = containers(&app, &running);
    let (status, body) = app
        .admin_post(
            &format!("/admin/v1/runtimes/{running}/patch"),
            Some(json!({"image_ref": v101.tag_ref})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "image_pull_failed", "{body}");
    let after = containers(&app, &running);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before[0].id);
    assert!(after[0].running, "the old engine still runs");
    assert_eq!(starts(&app, &running), 1, "and was never restarted");
    let rec = record(&app, &running).await.expect("record");
    assert_eq!(rec["image_ref"], v100.tag_ref.as_str(), "{rec}");
    assert_eq!(rec["status"], "running", "{rec}");
}
