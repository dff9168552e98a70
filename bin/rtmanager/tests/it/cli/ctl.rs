//! `rtmanager ctl` end to end: the real binary as a child process against
//! the real service (in-process app, real PostgreSQL, Redis, Docker).

use serde_json::Value;

use super::*;

const T: Duration = Duration::from_secs(120);

fn vars(app: &TestApp) -> HashMap<String, String> {
    [
        ("RTM_ADMIN_URL".to_owned(), app.admin.clone()),
        ("RTM_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
    ]
    .into_iter()
    .collect()
}

async fn ctl(app: &TestApp, args: &[&str]) -> Output {
    let mut all = vec!["ctl"];
    all.extend_from_slice(args);
    run_bin_async(&all, &vars(app), T).await
}

/// `ctl … --json` that must succeed, parsed.
async fn ctl_json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ctl(app, &all).await;
    assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_inspects_and_stops_a_game_from_the_command_line() {
    let app = spawn_app().await;
    let g = format!("ctl-{}", app.owner.owner().trim_start_matches("rtmtest_"));
    let img = image("1.0.0");

    let out = ctl(&app, &["start", &g, "--image", &img]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!("{g}: start succeeded")),
        "{out:?}"
    );
    assert!(out.stdout.contains("status running"), "{out:?}");

    // The table and the JSON agree with the service.
    let out = ctl(&app, &["games"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let header = out.stdout.lines().next().expect("a header");
    assert!(
        header.starts_with("GAME") && header.contains("HEALTH"),
        "{out:?}"
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&g))
        .unwrap_or_else(|| panic!("{g} listed: {out:?}"));
    assert!(row.contains("running") && row.contains(&img), "{row}");
    let games = ctl_json(&app, &["games", "--status", "running"]).await;
    let listed: Vec<&str> = games["runtimes"]
        .as_array()
        .expect("runtimes")
        .iter()
        .filter_map(|r| r["game_id"].as_str())
        .collect();
    assert_eq!(listed, vec![g.as_str()]);
    // Client-side filters: by image text, by health once it is observed.
    let by_image = ctl_json(&app, &["games", "--image", "engine-stub:1.0.0"]).await;
    assert_eq!(by_image["runtimes"].as_array().map(Vec::len), Some(1));
    let no_image = ctl_json(&app, &["games", "--image", "no-such-image"]).await;
    assert_eq!(no_image["runtimes"], serde_json::json!([]));
    wait_for("healthy", Duration::from_secs(60), || async {
        let v = ctl_json(&app, &["games", "--health", "healthy"]).await;
        (v["runtimes"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    let sick = ctl_json(&app, &["games", "--health", "probe_failed"]).await;
    assert_eq!(sick["runtimes"], serde_json::json!([]));

    let game = ctl_json(&app, &["game", &g]).await;
    assert_eq!(game["status"], "running");
    assert_eq!(game["image_ref"], img.as_str());
    let out = ctl(&app, &["game", &g]).await;
    assert!(
        out.stdout.contains("status:") && out.stdout.contains("running"),
        "{out:?}"
    );

    let health = ctl_json(&app, &["health", "--status", "healthy"]).await;
    assert_eq!(health["health"][0]["game_id"], g.as_str());

    let logs = wait_for("the start-up line", Duration::from_secs(60), || async {
        let out = ctl(&app, &["logs", &g, "--tail", "10"]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        // Like `docker logs`: the engine's stderr on stderr.
        out.stderr.contains("listening on").then_some(out)
    })
    .await;
    assert!(logs.stdout.is_empty(), "{logs:?}");
    let json = ctl_json(&app, &["logs", &g]).await;
    assert_eq!(json["game_id"], g.as_str());
    assert_eq!(json["container_id"], game["container_id"]);

    let out = ctl(&app, &["stop", &g, "--timeout", "10s"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("stop succeeded") && out.stdout.contains("status stopped"),
        "{out:?}"
    );
    // A follow of a stopped container prints what it has and ends.
    let out = ctl(&app, &["logs", &g, "--follow"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("terminating on signal"), "{out:?}");

    // The audit trail, as a table and as JSON, newest first.
    let ops = ctl_json(&app, &["ops", &g]).await;
    let kinds: Vec<&str> = ops["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o["op_kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stop", "start"]);
    assert!(ops["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .all(|o| o["op_source"] == "admin_rest"));
    let only = ctl_json(&app, &["ops", &g, "--kind", "start", "--limit", "1"]).await;
    assert_eq!(only["operations"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["operations"][0]["op_kind"], "start");
    let future = ctl_json(&app, &["ops", &g, "--since", "2999-01-01T00:00:00+01:00"]).await;
    assert_eq!(future["operations"], serde_json::json!([]));
    let out = ctl(&app, &["ops", &g]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID") && lines.len() == 3, "{out:?}");
    assert!(
        lines[1].contains("stop") && lines[2].contains("start"),
        "{out:?}"
    );

    let rec = ctl_json(&app, &["reconcile"]).await;
    assert!(rec["games"].as_u64().is_some(), "{rec}");
    let out = ctl(&app, &["reconcile"]).await;
    assert!(out.stdout.starts_with("reconcile pass: games "), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_usage_and_an_unreachable_service_have_their_exit_codes() {
    let app = spawn_app().await;
    let g = format!("ctlno-{}", app.owner.owner().trim_start_matches("rtmtest_"));
    let before = app.operation_rows(&g).await.len();

    // Refused by the service: 1, with its code and message.
    let out = ctl(&app, &["restart", &g]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("refused: not_found: "), "{out:?}");
    let out = ctl(&app, &["start", &g, "--image", "evil.example/x:1"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("refused: image_not_allowed: "),
        "{out:?}"
    );
    // With --json a recorded failure is still printed as the document.
    let out = ctl(
        &app,
        &["start", &g, "--image", "evil.example/x:1", "--json"],
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["error"]["code"], "image_not_allowed");
    assert_eq!(doc["operation"]["outcome"], "failure");
    let out = ctl(&app, &["game", &g]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not_found"), "{out:?}");
    let out = ctl(&app, &["logs", &g]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = ctl(&app, &["ops", "--kind", "explode"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("invalid_request"), "{out:?}");
    // A wrong token is refused too.
    let mut wrong = vars(&app);
    wrong.insert("RTM_ADMIN_TOKEN".into(), GM_TOKEN.into());
    let out = run_bin_async(&["ctl", "games"], &wrong, T).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("forbidden"), "{out:?}");

    // Usage: 2, before any request.
    for args in [
        &["ctl", "start", &g][..],
        &["ctl", "game", "bad/id"],
        &["ctl", "stop", &g, "--timeout", "soon"],
        &["ctl", "games", "--url", "https://127.0.0.1:1"],
        &["ctl", "logs", &g, "--tail", "many"],
        &["ctl", "logs", &g, "--follow", "--json"],
    ] {
        let out = run_bin_async(args, &vars(&app), T).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
    let no_token: HashMap<String, String> =
        [("RTM_ADMIN_URL".to_owned(), app.admin.clone())].into();
    let out = run_bin_async(&["ctl", "games"], &no_token, T).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("RTM_ADMIN_TOKEN"), "{out:?}");

    // Unreachable: 3 (a port nothing listens on; the flag beats the env).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let out = ctl(&app, &["games", "--url", &format!("http://{closed}")]).await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("cannot reach"), "{out:?}");

    // Only the three refused mutations were recorded (SPEC §5: a refusal
    // is an audited failure); nothing else acted.
    let rows = app.operation_rows(&g).await;
    let kinds: Vec<String> = rows[before..].iter().map(|r| r.get("op_kind")).collect();
    assert_eq!(kinds, ["restart", "start", "start"]);
    assert!(app.containers(&g).is_empty());
}
