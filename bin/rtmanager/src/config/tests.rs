//! The configuration's unit tests: defaults against SPEC §10, every
//! variable read, every problem reported at once, the reader's record of
//! what it reads against the documentation, and the formats.

use std::collections::HashMap;
use std::time::Duration;

use super::format::{parse_absolute_path, parse_key, parse_name};
use super::*;

const GM: &str = "gm-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn minimal() -> HashMap<String, String> {
    [
        ("RTM_GM_TOKEN", GM),
        ("RTM_ADMIN_TOKEN", ADMIN),
        (
            "RTM_IMAGE_ALLOWLIST",
            "rtm.local/engine-stub, ghcr.io/acme/*",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn load(extra: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let mut vars = minimal();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_map(&vars, Some("host-1".to_owned()))
}

fn errors(extra: &[(&str, &str)]) -> Vec<String> {
    match load(extra) {
        Ok(_) => panic!("expected errors for {extra:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn defaults_match_the_spec() {
    let c = load(&[]).expect("minimal config is valid");
    assert_eq!(c.postgres.url.as_str(), DEFAULT_DATABASE_URL);
    assert_eq!(c.postgres.schema, "rtmanager");
    assert_eq!(c.postgres.pool_size, 16);
    assert_eq!(c.postgres.lock_pool_size, 32);
    assert!(!c.migrate_on_start);
    assert_eq!(c.redis_url.expose(), "redis://127.0.0.1:6379");
    assert_eq!(c.docker.host.to_string(), "/var/run/docker.sock");
    assert_eq!(c.http.gm_addr, "127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(c.http.admin_addr, "127.0.0.1:8081".parse().expect("addr"));
    assert_eq!(c.http.gm_token.expose(), GM);
    assert_eq!(c.http.admin_token.expose(), ADMIN);
    assert_eq!(c.instance_id, "host-1");
    assert_eq!(c.docker.owner, "rtmanager");
    assert_eq!(c.docker.network, "rtm-engines");
    assert_eq!(c.docker.call_concurrency, 8);
    assert_eq!(c.state_root, "/var/lib/rtmanager/games");
    let e = &c.docker;
    assert_eq!(e.engine_port, 8080);
    assert_eq!(e.state_mount, "/var/lib/engine");
    assert_eq!(e.engine_user.to_string(), "65534:65534");
    assert_eq!(e.memory_bytes, 512 * 1024 * 1024);
    assert_eq!(e.nano_cpus, 1_000_000_000);
    assert_eq!(e.log_max_size, 10 * 1024 * 1024);
    assert_eq!(e.log_max_files, 3);
    assert!(e.cap_add.is_empty());
    assert_eq!(e.tmpfs_bytes, 64 * 1024 * 1024);
    assert_eq!(e.pids_limit, 256);
    assert_eq!(c.docker.registry_auth_file, None);
    assert_eq!(c.docker.pull_timeout, Duration::from_secs(600));
    assert_eq!(c.lobby.stream, "lobby:runtime_commands");
    assert_eq!(c.lobby.consumer, "host-1", "the consumer is the instance");
    assert_eq!(c.lobby.group, "rtmanager");
    assert_eq!(c.lobby.claim_idle, Duration::from_secs(300));
    assert_eq!(c.lobby.max_deliveries, 5);
    assert_eq!(c.lobby.concurrency, 16);
    assert_eq!(c.health.stream, "runtime:health_events");
    assert_eq!(c.health.stream_maxlen, 100_000);
    assert_eq!(c.health.probe_interval, Duration::from_secs(5));
    assert_eq!(c.health.probe_timeout, Duration::from_secs(1));
    assert_eq!(c.health.probe_failures, 3);
    assert_eq!(c.health.probe_path, "/healthz");
    assert_eq!(c.health.probe_concurrency, 32);
    assert_eq!(c.health.inspect_interval, Duration::from_secs(15));
    assert_eq!(c.workers.cleanup_interval, Duration::from_secs(60));
    assert_eq!(c.workers.stopped_retention, Duration::from_secs(86_400));
    assert_eq!(c.workers.audit_retention, Duration::from_secs(90 * 86_400));
    assert_eq!(
        c.workers.removed_retention,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(c.workers.state_retention, None);
    assert_eq!(c.lobby.dead_maxlen, 10_000);
    assert_eq!(c.workers.reconcile_interval, Duration::from_secs(60));
    assert_eq!(c.operations.stop_timeout, Duration::from_secs(30));
    assert_eq!(c.operations.lock_wait, Duration::from_secs(5));
    assert_eq!(c.operations.patch_health_timeout, Duration::from_secs(60));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));

    let s = c.service_config();
    assert_eq!(s.lock_wait, Duration::from_secs(5));
    assert_eq!(s.stop_timeout, Duration::from_secs(30));
    assert_eq!(s.patch_health_timeout, Duration::from_secs(60));
    assert_eq!(s.patch_probe_interval, Duration::from_secs(1));
    assert_eq!(s.engine_port, 8080);
    assert_eq!(s.state_root, "/var/lib/rtmanager/games");
    assert_eq!(s.network, "rtm-engines");
    let img = rtm_domain::ImageRef::parse("rtm.local/engine-stub:1.0.0").expect("image");
    assert!(s.allowlist.allows(&img));
}

#[test]
fn every_variable_is_read() {
    let auth = std::env::temp_dir().join(format!("rtm-config-auth-{}.json", std::process::id()));
    std::fs::write(
        &auth,
        r#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}}}"#,
    )
    .expect("write auth file");
    let auth_path = auth.display().to_string();
    let c = load(&[
        ("RTM_ENGINE_CAP_ADD", "net_bind_service, CAP_SYS_NICE"),
        ("RTM_ENGINE_TMPFS_SIZE", "16m"),
        ("RTM_ENGINE_PIDS_LIMIT", "64"),
        ("RTM_REGISTRY_AUTH_FILE", &auth_path),
        ("RTM_PULL_TIMEOUT", "90s"),
        ("RTM_DATABASE_URL", "postgresql://u:p@db:5433/x"),
        ("RTM_DATABASE_SCHEMA", "rtm_test_1"),
        ("RTM_DATABASE_POOL_SIZE", "4"),
        ("RTM_DATABASE_LOCK_POOL_SIZE", "8"),
        ("RTM_MIGRATE_ON_START", "1"),
        ("RTM_REDIS_URL", "rediss://:pw@cache:6380/2"),
        ("RTM_DOCKER_HOST", "tcp://10.0.0.5:2375"),
        ("RTM_HTTP_ADDR", "0.0.0.0:9000"),
        ("RTM_ADMIN_HTTP_ADDR", "[::1]:9001"),
        ("RTM_INSTANCE_ID", "rtm-a"),
        ("RTM_OWNER", "owner.x"),
        ("RTM_DOCKER_NETWORK", "net1"),
        ("RTM_STATE_ROOT", "/srv/games/"),
        ("RTM_ENGINE_PORT", "9999"),
        ("RTM_ENGINE_STATE_MOUNT", "/data"),
        ("RTM_ENGINE_USER", "1000:1001"),
        ("RTM_ENGINE_MEMORY", "1g"),
        ("RTM_ENGINE_CPUS", "0.25"),
        ("RTM_ENGINE_LOG_MAX_SIZE", "512k"),
        ("RTM_ENGINE_LOG_MAX_FILES", "7"),
        ("RTM_LOBBY_STREAM", "s1"),
        ("RTM_LOBBY_GROUP", "g1"),
        ("RTM_LOBBY_CLAIM_IDLE", "30s"),
        ("RTM_LOBBY_MAX_DELIVERIES", "9"),
        ("RTM_LOBBY_CONCURRENCY", "2"),
        ("RTM_DOCKER_CONCURRENCY", "3"),
        ("RTM_HEALTH_STREAM", "h1"),
        ("RTM_HEALTH_STREAM_MAXLEN", "10"),
        ("RTM_PROBE_INTERVAL", "500ms"),
        ("RTM_PROBE_TIMEOUT", "250ms"),
        ("RTM_PROBE_FAILURES", "1"),
        ("RTM_PROBE_PATH", "/health"),
        ("RTM_PROBE_CONCURRENCY", "8"),
        ("RTM_INSPECT_INTERVAL", "2s"),
        ("RTM_CLEANUP_INTERVAL", "10s"),
        ("RTM_STOPPED_RETENTION", "0s"),
        ("RTM_AUDIT_RETENTION", "7d"),
        ("RTM_REMOVED_RETENTION", "12h"),
        ("RTM_STATE_RETENTION", "2d"),
        ("RTM_LOBBY_DEAD_MAXLEN", "50"),
        ("RTM_RECONCILE_INTERVAL", "3m"),
        ("RTM_STOP_TIMEOUT", "1s"),
        ("RTM_LOCK_WAIT", "100ms"),
        ("RTM_PATCH_HEALTH_TIMEOUT", "2m"),
        ("RTM_LOG_FORMAT", "json"),
        ("RTM_SHUTDOWN_TIMEOUT", "1h"),
    ])
    .expect("valid");
    assert_eq!(c.postgres.url.as_str(), "postgresql://u:p@db:5433/x");
    assert_eq!(c.postgres.schema, "rtm_test_1");
    assert_eq!(c.postgres.pool_size, 4);
    assert_eq!(c.postgres.lock_pool_size, 8);
    assert!(c.migrate_on_start);
    assert_eq!(c.redis_url.expose(), "rediss://:pw@cache:6380/2");
    assert_eq!(c.docker.host.to_string(), "tcp://10.0.0.5:2375");
    assert_eq!(c.http.gm_addr.port(), 9000);
    assert_eq!(c.http.admin_addr, "[::1]:9001".parse().expect("addr"));
    assert_eq!(c.instance_id, "rtm-a");
    assert_eq!(c.docker.owner, "owner.x");
    assert_eq!(c.docker.network, "net1");
    assert_eq!(c.docker.call_concurrency, 3);
    assert_eq!(c.state_root, "/srv/games");
    assert_eq!(c.docker.engine_port, 9999);
    assert_eq!(c.docker.state_mount, "/data");
    assert_eq!(c.docker.engine_user.to_string(), "1000:1001");
    assert_eq!(c.docker.memory_bytes, 1 << 30);
    assert_eq!(c.docker.nano_cpus, 250_000_000);
    assert_eq!(c.docker.log_max_size, 512 * 1024);
    assert_eq!(c.docker.log_max_files, 7);
    assert_eq!(c.docker.cap_add, vec!["NET_BIND_SERVICE", "SYS_NICE"]);
    assert_eq!(c.docker.tmpfs_bytes, 16 << 20);
    assert_eq!(c.docker.pids_limit, 64);
    assert_eq!(c.docker.registry_auth_file.as_deref(), Some(auth.as_path()));
    assert_eq!(c.docker.pull_timeout, Duration::from_secs(90));
    std::fs::remove_file(&auth).expect("remove auth file");
    assert_eq!(c.lobby.stream, "s1");
    assert_eq!(c.lobby.group, "g1");
    assert_eq!(c.lobby.claim_idle, Duration::from_secs(30));
    assert_eq!(c.lobby.max_deliveries, 9);
    assert_eq!(c.lobby.concurrency, 2);
    assert_eq!(c.health.stream, "h1");
    assert_eq!(c.health.stream_maxlen, 10);
    assert_eq!(c.health.probe_interval, Duration::from_millis(500));
    assert_eq!(c.health.probe_timeout, Duration::from_millis(250));
    assert_eq!(c.health.probe_failures, 1);
    assert_eq!(c.health.probe_path, "/health");
    assert_eq!(c.health.probe_concurrency, 8);
    assert_eq!(c.health.inspect_interval, Duration::from_secs(2));
    assert_eq!(c.workers.cleanup_interval, Duration::from_secs(10));
    assert_eq!(c.workers.stopped_retention, Duration::ZERO);
    assert_eq!(c.workers.audit_retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.workers.removed_retention, Duration::from_secs(12 * 3600));
    assert_eq!(
        c.workers.state_retention,
        Some(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(c.lobby.dead_maxlen, 50);
    assert_eq!(c.workers.reconcile_interval, Duration::from_secs(180));
    assert_eq!(c.operations.stop_timeout, Duration::from_secs(1));
    assert_eq!(c.operations.lock_wait, Duration::from_millis(100));
    assert_eq!(c.operations.patch_health_timeout, Duration::from_secs(120));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(3600));
    assert_eq!(
        c.service_config().patch_probe_interval,
        Duration::from_millis(500)
    );
    assert_eq!(c.service_config().state_root, "/srv/games");
}

#[test]
fn every_variable_in_the_table_is_known() {
    // The reader's record is the list of variables. It must be complete: a
    // spy on the lookup sees no name the record lacks. And it must not
    // depend on the values (unset, valid or garbage), or a variable read
    // only in some cases would escape the documentation test below.
    let known = known_variables();
    assert!(known.len() > 50, "{known:?}");
    for value in [None, Some("x"), Some("0"), Some("1")] {
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        let spy = |k: &str| {
            asked.borrow_mut().push(k.to_owned());
            value.map(str::to_owned)
        };
        let (_, read) = super::load::load(&spy, None);
        assert_eq!(read, known, "the reads changed with the values ({value:?})");
        let mut asked = asked.into_inner();
        asked.sort();
        asked.dedup();
        let mut recorded: Vec<String> = read.iter().map(|v| (*v).to_owned()).collect();
        recorded.sort();
        assert_eq!(asked, recorded, "a lookup bypassed the record ({value:?})");
    }
    // The filesystem check reads only variables the loader reads.
    let asked = std::cell::RefCell::new(Vec::<String>::new());
    check_host(&|k| {
        asked.borrow_mut().push(k.to_owned());
        None
    });
    for var in asked.into_inner() {
        assert!(known.contains(&var.as_str()), "{var}");
    }
    // A variable read but not in the record would be reported as a typo.
    assert_eq!(
        unknown_variables(
            [
                "RTM_GM_TOKEN",
                "RTM_PROBE_INTERVALL",
                "RTM_TEST_ADMIN_URL",
                "RTM_ADMIN_URL",
                "PATH"
            ]
            .map(String::from)
        ),
        vec!["RTM_PROBE_INTERVALL".to_owned()]
    );
    assert!(unknown_variables(known.iter().map(|v| (*v).to_owned())).is_empty());
}

#[test]
fn every_variable_is_documented() {
    // Every variable the reader reads (its record, so a new read cannot be
    // forgotten here) is in the table of docs/configuration.md.
    let doc = include_str!("../../../../docs/configuration.md");
    for var in known_variables().iter().chain(CLIENT_VARIABLES) {
        assert!(
            doc.contains(&format!("| `{var}` |")),
            "{var} missing from docs/configuration.md"
        );
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
    for bad in [
        "", "5", "s", "5 s", "5sec", "-5s", "1.5s", "5D", "5S", "1m30s", "ms", "d",
    ] {
        let e = parse_duration(bad).expect_err(bad);
        assert!(
            e.contains("is not a duration (use 500ms, 5s, 10m, 24h)"),
            "{e}"
        );
    }
    assert!(parse_duration("99999999999999999999h").is_err());
    assert!(parse_duration("9999999999999999999h")
        .expect_err("overflow")
        .contains("too large"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("1024"), Ok(1024));
    assert_eq!(parse_size("512k"), Ok(512 * 1024));
    assert_eq!(parse_size("256m"), Ok(256 * 1024 * 1024));
    assert_eq!(parse_size("256M"), Ok(256 * 1024 * 1024));
    assert_eq!(parse_size("1g"), Ok(1 << 30));
    for bad in ["", "m", "1.5g", "1gb", "-1m", "1 m", "1t", "0x10"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    assert!(parse_size("99999999999999g")
        .expect_err("overflow")
        .contains("too large"));
}

#[test]
fn bools() {
    for (s, v) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("false", false),
        ("0", false),
    ] {
        assert_eq!(parse_bool(s), Ok(v));
    }
    for bad in ["yes", "on", "2", ""] {
        assert!(parse_bool(bad).is_err(), "{bad}");
    }
}

#[test]
fn cpus() {
    assert_eq!(parse_cpus("1"), Ok(1_000_000_000));
    assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
    assert_eq!(parse_cpus(".5"), Ok(500_000_000));
    assert_eq!(parse_cpus("2.25"), Ok(2_250_000_000));
    assert_eq!(parse_cpus("0.1"), Ok(100_000_000));
    assert_eq!(parse_cpus("0.000000001"), Ok(1));
    for bad in [
        "0", "0.0", "", ".", "1.", "-1", "1e3", "one", "1.2.3", "1025",
    ] {
        assert!(parse_cpus(bad).is_err(), "{bad}");
    }
    assert!(parse_cpus("0.0000000001")
        .expect_err("precision")
        .contains("9 decimal"));
}

#[test]
fn adapter_settings_are_parsed_by_their_adapters() {
    // The parsers' own tests live in rtm-docker and rtm-postgres; these
    // check that the reader uses them, with their rules.
    assert_eq!(
        errors(&[("RTM_ENGINE_USER", "1000")]),
        vec!["RTM_ENGINE_USER: \"1000\" is not a numeric uid:gid (e.g. 65534:65534)"]
    );
    assert!(errors(&[("RTM_ENGINE_USER", "1000:0")])[0].contains("runs engines as root"));
    assert!(errors(&[("RTM_DATABASE_SCHEMA", "pg_rtm")])[0]
        .starts_with("RTM_DATABASE_SCHEMA: \"pg_rtm\" is not a plain identifier"));
    assert!(errors(&[("RTM_DOCKER_HOST", "tcp://docker")])[0].starts_with("RTM_DOCKER_HOST: "));
    assert!(
        errors(&[("RTM_ENGINE_STATE_MOUNT", "/a:b")])[0].starts_with("RTM_ENGINE_STATE_MOUNT: ")
    );
    assert!(errors(&[("RTM_OWNER", "a b")])[0].starts_with("RTM_OWNER: "));
    assert!(errors(&[("RTM_DOCKER_NETWORK", "-x")])[0].starts_with("RTM_DOCKER_NETWORK: "));
    assert!(errors(&[("RTM_REDIS_URL", "redis-cluster://h:1")])[0].starts_with("RTM_REDIS_URL: "));
    // What the reader builds is what the adapter accepts.
    let c = load(&[]).expect("valid");
    assert_eq!(c.docker.validate(), Ok(()));
    assert!(c.postgres.validate().is_ok());
}

#[test]
fn identifiers_and_names() {
    assert!(parse_name("rtm-engines", 64).is_ok());
    for bad in ["", "-x", "a b", "a/b"] {
        assert!(parse_name(bad, 64).is_err(), "{bad}");
    }
    assert!(parse_key("lobby:runtime_commands").is_ok());
    assert!(parse_key("a b").is_err());
    assert!(parse_absolute_path("/x/").is_ok());
    for bad in ["x", "/", "/a/../b", ""] {
        assert!(parse_absolute_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn required_variables_are_reported_missing() {
    let e = Config::from_map(&HashMap::new(), None).expect_err("nothing set");
    let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "RTM_GM_TOKEN: is required but not set",
            "RTM_ADMIN_TOKEN: is required but not set",
            "RTM_IMAGE_ALLOWLIST: is required but not set",
        ]
    );
    // An empty value is unset.
    let mut vars = minimal();
    vars.insert("RTM_GM_TOKEN".into(), "  ".into());
    let e = Config::from_map(&vars, None).expect_err("empty token");
    assert_eq!(e.0[0].to_string(), "RTM_GM_TOKEN: is required but not set");
}

#[test]
fn token_rules() {
    let e = errors(&[("RTM_GM_TOKEN", "short")]);
    assert_eq!(
        e,
        vec!["RTM_GM_TOKEN: must be at least 16 characters (got 5)"]
    );
    let e = errors(&[("RTM_ADMIN_TOKEN", GM)]);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("RTM_ADMIN_TOKEN: must differ from RTM_GM_TOKEN"));
    let e = errors(&[("RTM_ADMIN_TOKEN", "with space 0123456789")]);
    assert!(e[0].contains("printable ASCII"));
}

#[test]
fn allowlist_rules() {
    let e = errors(&[("RTM_IMAGE_ALLOWLIST", "   ")]);
    // Whitespace-only is empty, hence unset.
    assert_eq!(e, vec!["RTM_IMAGE_ALLOWLIST: is required but not set"]);
    let e = errors(&[("RTM_IMAGE_ALLOWLIST", " , ")]);
    assert!(
        e[0].starts_with("RTM_IMAGE_ALLOWLIST: lists no entry"),
        "{e:?}"
    );
    let e = errors(&[("RTM_IMAGE_ALLOWLIST", "ghcr.io/acme/engine:1.0")]);
    assert!(
        e[0].starts_with("RTM_IMAGE_ALLOWLIST: invalid allow-list entry"),
        "{e:?}"
    );
}

#[test]
fn retention_values_are_checked() {
    assert_eq!(
        errors(&[("RTM_AUDIT_RETENTION", "0d")]),
        vec!["RTM_AUDIT_RETENTION: \"0d\" must be greater than zero"]
    );
    assert_eq!(
        errors(&[("RTM_STATE_RETENTION", "forever")]),
        vec!["RTM_STATE_RETENTION: \"forever\" is not a duration (use 500ms, 5s, 10m, 24h)"]
    );
    assert_eq!(
        errors(&[("RTM_LOBBY_DEAD_MAXLEN", "0")]),
        vec![format!(
            "RTM_LOBBY_DEAD_MAXLEN: \"0\" must be between 1 and {}",
            u64::MAX
        )]
    );
    // An empty value is the same as unset: never delete state.
    let c = load(&[("RTM_STATE_RETENTION", " ")]).expect("valid");
    assert_eq!(c.workers.state_retention, None);
}

#[test]
fn lockdown_and_registry_rules() {
    let e = errors(&[
        ("RTM_ENGINE_CAP_ADD", "NET_BIND_SERVICE,ALL"),
        ("RTM_ENGINE_TMPFS_SIZE", "512k"),
        ("RTM_ENGINE_PIDS_LIMIT", "2"),
        ("RTM_REGISTRY_AUTH_FILE", "/nonexistent/rtm/config.json"),
        ("RTM_PULL_TIMEOUT", "0s"),
    ]);
    assert_eq!(e.len(), 5, "every problem at once: {e:?}");
    assert!(
        e[0].starts_with("RTM_ENGINE_CAP_ADD: ALL is not allowed"),
        "{e:?}"
    );
    assert_eq!(e[1], "RTM_ENGINE_TMPFS_SIZE: \"512k\" must be at least 1m");
    assert!(
        e[2].starts_with("RTM_ENGINE_PIDS_LIMIT: \"2\" must be between 8"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with(
            "RTM_REGISTRY_AUTH_FILE: registry auth file /nonexistent/rtm/config.json: cannot read"
        ),
        "{e:?}"
    );
    assert!(e[4].starts_with("RTM_PULL_TIMEOUT:"), "{e:?}");
    assert!(errors(&[("RTM_ENGINE_CAP_ADD", "SYS_ADMINN")])[0].contains("not a Linux capability"));

    // A file that parses badly is named with its problem, and its
    // secrets are not echoed.
    let bad = std::env::temp_dir().join(format!("rtm-config-bad-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"auths": {"ghcr.io": {"username": "u", "pass": "hunter2"}}}"#,
    )
    .expect("write");
    let e = errors(&[("RTM_REGISTRY_AUTH_FILE", &bad.display().to_string())]);
    std::fs::remove_file(&bad).expect("remove");
    assert_eq!(
        e,
        vec![format!(
            "RTM_REGISTRY_AUTH_FILE: registry auth file {}: entry \"ghcr.io\": \"username\" without \"password\"",
            bad.display()
        )]
    );
}

#[test]
fn all_problems_are_collected_in_one_message() {
    let err = load(&[
        ("RTM_PROBE_INTERVAL", "5 seconds"),
        ("RTM_ENGINE_USER", "0:0"),
        ("RTM_ENGINE_CPUS", "0"),
        ("RTM_ENGINE_MEMORY", "1m"),
        ("RTM_DATABASE_SCHEMA", "rtm; drop table x"),
        ("RTM_ADMIN_HTTP_ADDR", "127.0.0.1:8080"),
        ("RTM_MIGRATE_ON_START", "yes"),
        ("RTM_DATABASE_URL", "mysql://root:hunter2@db/x"),
        ("RTM_ENGINE_PORT", "70000"),
        ("RTM_LOG_FORMAT", "xml"),
        ("RTM_LOCK_WAIT", "0s"),
    ])
    .expect_err("many problems");
    let text = err.to_string();
    assert_eq!(
        text,
        "invalid configuration (11 problems):\n  \
         RTM_DATABASE_URL: \"mysql://root:***@db/x\" is not a URL starting with postgres:// or postgresql://\n  \
         RTM_DATABASE_SCHEMA: \"rtm; drop table x\" is not a plain identifier (lowercase letters, digits and '_', not starting with a digit or pg_, at most 63 characters)\n  \
         RTM_MIGRATE_ON_START: \"yes\" is not a boolean (use true, false, 1 or 0)\n  \
         RTM_ENGINE_PORT: \"70000\" must be between 1 and 65535\n  \
         RTM_ENGINE_USER: \"0:0\" runs engines as root (uid or gid 0); use a non-root user such as 65534:65534\n  \
         RTM_ENGINE_MEMORY: \"1m\" is below Docker's minimum of 6m\n  \
         RTM_ENGINE_CPUS: \"0\" must be greater than 0\n  \
         RTM_PROBE_INTERVAL: \"5 seconds\" is not a duration (use 500ms, 5s, 10m, 24h)\n  \
         RTM_LOCK_WAIT: \"0s\" must be greater than zero\n  \
         RTM_LOG_FORMAT: \"xml\" is not a log format (use text or json)\n  \
         RTM_ADMIN_HTTP_ADDR: 127.0.0.1:8080 is also RTM_HTTP_ADDR; the two surfaces need separate addresses"
    );
    assert!(!text.contains("hunter2"));
    assert_eq!(
        errors(&[("RTM_HTTP_ADDR", "localhost")]),
        vec!["RTM_HTTP_ADDR: \"localhost\" is not a listen address (e.g. 127.0.0.1:8080 or [::1]:8080)"]
    );
    let one = load(&[("RTM_PROBE_FAILURES", "x")]).expect_err("one problem");
    assert_eq!(
        one.to_string(),
        "invalid configuration (1 problem):\n  RTM_PROBE_FAILURES: \"x\" is not a whole number"
    );
}

#[test]
fn urls_are_parsed_as_the_drivers_parse_them() {
    // Right scheme, but the drivers would refuse them at connect time.
    let e = errors(&[
        (
            "RTM_DATABASE_URL",
            "postgres://u:pg-secret-pw@db:notaport/x",
        ),
        ("RTM_REDIS_URL", "redis://:redis-secret-pw@cache:notaport"),
    ]);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            "RTM_DATABASE_URL: \"postgres://u:***@db:notaport/x\" is not a valid PostgreSQL URL"
        ),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("RTM_REDIS_URL: \"redis://:***@cache:notaport\" is not a valid Redis URL"),
        "{e:?}"
    );
    for line in &e {
        assert!(!line.contains("secret-pw"), "{line}");
    }
    assert!(load(&[
        (
            "RTM_DATABASE_URL",
            "postgresql://u:p@db:5433/x?sslmode=disable"
        ),
        ("RTM_REDIS_URL", "rediss://:p@cache:6380/2"),
    ])
    .is_ok());
}

#[test]
fn the_environment_check_looks_at_the_filesystem_only() {
    let dir = std::env::temp_dir().join(format!("rtm-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").expect("file");
    let socket = dir.join("d.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
    let with = |docker: &std::path::Path, root: &std::path::Path| {
        let vars: HashMap<String, String> = [
            ("RTM_DOCKER_HOST", docker.display().to_string()),
            ("RTM_STATE_ROOT", root.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let e = check_host(&|k| vars.get(k).cloned());
        if e.is_empty() {
            Ok(())
        } else {
            Err(e.iter().map(ToString::to_string).collect::<Vec<_>>())
        }
    };
    // A missing state root is fine when its parent is a directory.
    assert_eq!(with(&socket, &dir.join("games/not-yet")), Ok(()));
    let e = with(&dir.join("missing.sock"), &file.join("games")).expect_err("both bad");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("RTM_DOCKER_HOST: "), "{e:?}");
    assert!(e[1].starts_with("RTM_STATE_ROOT: ") && e[1].ends_with("is not a directory"));
    let e = with(&file, &dir).expect_err("not a socket");
    assert!(e[0].ends_with("exists but is not a socket"), "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secrets_stay_out_of_debug() {
    let c = load(&[
        ("RTM_DATABASE_URL", "postgres://u:db-secret-pw@h/d"),
        ("RTM_REDIS_URL", "redis://:redis-secret-pw@h:6379"),
    ])
    .expect("valid");
    let debug = format!("{c:?}");
    for secret in [GM, ADMIN, "db-secret-pw", "redis-secret-pw"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    assert!(debug.contains("postgres://u:***@h/d"));
    assert!(debug.contains("[redacted]"));
    // The redactor's own cases are tested in rtm-domain.
    assert!(debug.contains("redis://:***@h:6379"));
}

#[test]
fn instance_id_falls_back_to_rtmanager() {
    let c = Config::from_map(&minimal(), None).expect("valid");
    assert_eq!(c.instance_id, "rtmanager");
    // A host name that is not a valid consumer name is not used.
    let c = Config::from_map(&minimal(), Some("bad host".into())).expect("valid");
    assert_eq!(c.instance_id, "rtmanager");
}

#[test]
fn the_runtime_is_docker_unless_swarm_is_chosen_and_its_gaps_accepted() {
    let c = load(&[]).expect("valid");
    assert_eq!(c.runtime, RuntimeChoice::Docker);
    assert!(c.swarm_config().is_none());

    let bad = errors(&[("RTM_RUNTIME", "kubernetes")]);
    assert_eq!(
        bad,
        ["RTM_RUNTIME: \"kubernetes\" is not a runtime (use docker or swarm)"]
    );
    let refused = errors(&[("RTM_RUNTIME", "swarm")]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("RTM_SWARM_ACCEPT_WEAKER_ISOLATION: ")
            && refused[0].contains("no-new-privileges"),
        "{refused:?}"
    );

    let c = load(&[
        ("RTM_RUNTIME", "swarm"),
        ("RTM_SWARM_ACCEPT_WEAKER_ISOLATION", "true"),
        (
            "RTM_SWARM_CONSTRAINTS",
            "node.role==worker; node.labels.rtm-engines==true",
        ),
        ("RTM_SWARM_POLL_INTERVAL", "250ms"),
        ("RTM_STOP_TIMEOUT", "12s"),
    ])
    .expect("valid");
    let s = c.swarm_config().expect("swarm");
    assert_eq!(
        s.constraints,
        ["node.role==worker", "node.labels.rtm-engines==true"]
    );
    assert_eq!(s.poll_interval, Duration::from_millis(250));
    assert_eq!(s.start_timeout, Duration::from_secs(60));
    assert_eq!(s.stop_grace, Duration::from_secs(12));
    assert_eq!(s.docker, c.docker);
    s.validate()
        .expect("the adapter accepts what the binary built");

    // Read (and so checked) whichever runtime is chosen.
    let typo = errors(&[("RTM_SWARM_CONSTRAINTS", "node.role")]);
    assert!(typo[0].starts_with("RTM_SWARM_CONSTRAINTS: "), "{typo:?}");
}
