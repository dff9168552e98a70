//! `--help`, `--version`, unknown arguments and `check-config` act on
//! nothing: a fresh schema stays empty although `RTM_MIGRATE_ON_START` is
//! set, no network, stream key or state directory appears.

use fred::prelude::KeysInterface;

use super::*;

const T: Duration = Duration::from_secs(30);

/// A complete, valid environment on a fresh schema whose every named
/// resource (network, stream, state root) does not exist yet.
struct GoodEnv {
    db: rtm_testkit::pg::TestDb,
    vars: HashMap<String, String>,
    network: String,
    stream: String,
    state_root: std::path::PathBuf,
}

impl GoodEnv {
    async fn new() -> Self {
        let db = rtm_testkit::pg::TestDb::new().await;
        let network = rtm_testkit::unique("rtmt-cli-net");
        let stream = rtm_testkit::unique("rtmt_cli_lobby");
        let state_root = std::env::temp_dir()
            .join(rtm_testkit::unique("rtmt-cli-state"))
            .join("games");
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .to_string()
        };
        let vars: HashMap<String, String> = [
            ("RTM_DATABASE_URL", db.url().to_owned()),
            ("RTM_DATABASE_SCHEMA", db.schema().to_owned()),
            ("RTM_MIGRATE_ON_START", "true".to_owned()),
            ("RTM_REDIS_URL", rtm_testkit::redis::redis_url()),
            ("RTM_HTTP_ADDR", free()),
            ("RTM_ADMIN_HTTP_ADDR", free()),
            ("RTM_GM_TOKEN", GM_TOKEN.to_owned()),
            ("RTM_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("RTM_IMAGE_ALLOWLIST", "rtm.local/engine-stub".to_owned()),
            ("RTM_OWNER", rtm_testkit::unique("rtmt_cli")),
            ("RTM_DOCKER_HOST", rtm_testkit::docker::docker_host()),
            ("RTM_DOCKER_NETWORK", network.clone()),
            ("RTM_STATE_ROOT", state_root.display().to_string()),
            ("RTM_LOBBY_STREAM", stream.clone()),
            // A client-side variable in the same shell is not a problem.
            ("RTM_ADMIN_URL", "http://127.0.0.1:8081".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            db,
            vars,
            network,
            stream,
            state_root,
        }
    }

    /// Nothing the service would create at start exists.
    async fn assert_untouched(&self) {
        assert_eq!(
            tables(&self.db).await,
            Vec::<String>::new(),
            "no migration ran"
        );
        let redis = rtm_testkit::redis::client(&rtm_testkit::redis::redis_url()).await;
        let n: i64 = redis.exists(&self.stream).await.expect("EXISTS");
        assert_eq!(n, 0, "the Lobby stream was not created");
        assert!(
            rtm_testkit::docker::docker(&["network", "inspect", &self.network]).is_err(),
            "the network was not created"
        );
        assert!(!self.state_root.exists(), "the state root was not created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_version_print_and_exit_0_without_acting() {
    let env = GoodEnv::new().await;
    for args in [&["--help"][..], &["-h"], &["help"], &["serve", "--help"]] {
        let out = run_bin_async(args, &env.vars, T).await;
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        assert!(out.stdout.contains("Usage: rtmanager"), "{args:?}: {out:?}");
    }
    let out = run_bin_async(&["--help"], &env.vars, T).await;
    for command in ["serve", "check-config", "ctl"] {
        assert!(
            out.stdout.contains(command),
            "{command} listed: {}",
            out.stdout
        );
    }
    for args in [&["--version"][..], &["-V"]] {
        let out = run_bin_async(args, &env.vars, T).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(
            out.stdout.trim(),
            format!("rtmanager {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // With no environment at all: the same answers, no configuration error.
    let out = run_bin_async(&["--version"], &HashMap::new(), T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let out = run_bin_async(&["--help"], &HashMap::new(), T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("RTM_GM_TOKEN"), "{out:?}");
    env.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_argument_exits_2_with_the_usage() {
    let env = GoodEnv::new().await;
    for args in [
        &["--bogus"][..],
        &["frobnicate"],
        &["serve", "extra"],
        &["check-config", "--strict"],
        &["ctl"],
        &["ctl", "games", "--nope"],
    ] {
        let out = run_bin_async(args, &env.vars, T).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains("Usage: rtmanager"), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    env.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_2_naming_each_bad_variable() {
    let env = GoodEnv::new().await;
    let mut vars = env.vars.clone();
    for (k, v) in [
        ("RTM_PROBE_INTERVAL", "5 seconds"),
        ("RTM_GM_TOKEN", "short"),
        (
            "RTM_DATABASE_URL",
            "postgres://u:hunter2secret@db:notaport/x",
        ),
        ("RTM_REDIS_URL", "redis://127.0.0.1:notaport"),
        ("RTM_ENGINE_USER", "0:0"),
    ] {
        vars.insert(k.to_owned(), v.to_owned());
    }
    vars.remove("RTM_IMAGE_ALLOWLIST");
    let out = run_bin_async(&["check-config"], &vars, T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    for var in [
        "RTM_PROBE_INTERVAL",
        "RTM_GM_TOKEN",
        "RTM_DATABASE_URL",
        "RTM_REDIS_URL",
        "RTM_ENGINE_USER",
        "RTM_IMAGE_ALLOWLIST",
    ] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{var}:"))),
            "{var} not named:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("(6 problems)"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);

    // What only a look at the host shows (a socket that is not there, a
    // state root under a file), reported with the parse problems at once.
    let mut vars = env.vars.clone();
    vars.insert(
        "RTM_DOCKER_HOST".into(),
        "/nonexistent/rtm-test/docker.sock".into(),
    );
    let file = std::env::temp_dir().join(rtm_testkit::unique("rtmt-cli-file"));
    std::fs::write(&file, "not a directory").expect("a file");
    vars.insert(
        "RTM_STATE_ROOT".into(),
        file.join("games").display().to_string(),
    );
    vars.insert("RTM_LOCK_WAIT".into(), "soon".into());
    let out = run_bin_async(&["check-config"], &vars, T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("(3 problems)"), "{}", out.stderr);
    for line in [
        "RTM_LOCK_WAIT: ",
        "RTM_DOCKER_HOST: /nonexistent/rtm-test/docker.sock",
        &format!("RTM_STATE_ROOT: {} is not a directory", file.display()),
    ] {
        assert!(out.stderr.contains(line), "{line}:\n{}", out.stderr);
    }
    let _ = std::fs::remove_file(&file);
    env.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_with_a_good_environment_exits_0_and_creates_nothing() {
    let env = GoodEnv::new().await;
    let out = run_bin_async(&["check-config"], &env.vars, T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("the configuration is valid"), "{out:?}");
    assert!(
        !out.stderr.contains("RTM_ADMIN_URL"),
        "the client's variable is not a typo: {out:?}"
    );
    // A typo is pointed out, but does not fail the check (as at start).
    let mut vars = env.vars.clone();
    vars.insert("RTM_PROBE_INTERVALL".into(), "1s".into());
    let out = run_bin_async(&["check-config"], &vars, T).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("RTM_PROBE_INTERVALL"), "{out:?}");
    env.assert_untouched().await;
}
