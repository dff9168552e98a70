//! The list-based inspect pass on its own: with the Docker event follower
//! switched off (`RTM_DOCKER_EVENTS=false`), an exit, an OOM kill and a
//! container removed behind RTM's back are each caught by the next inspect
//! pass, recorded once and published once — and a pass over games whose
//! listed state agrees with their records inspects nothing.

use super::*;

/// The `rtm_docker_calls_total` series of `pass` and `call`.
async fn docker_calls(app: &TestApp, pass: &str, call: &str) -> f64 {
    let (status, text) = call_raw("GET", &format!("{}/metrics", app.gm), None, None, &[]).await;
    assert_eq!(status, 200, "metrics: {text}");
    let series = format!("rtm_docker_calls_total{{call=\"{call}\",pass=\"{pass}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_the_event_stream_missed_are_caught_by_the_next_inspect_pass() {
    let app = spawn_app_with(|vars| {
        vars.insert("RTM_DOCKER_EVENTS".into(), "false".into());
        vars.insert("RTM_ENGINE_MEMORY".into(), "32m".into());
    })
    .await;
    let crash = game("pcrash");
    let oom = game("poom");
    let gone = game("pgone");
    let mut containers = Vec::new();
    for g in [&crash, &oom, &gone] {
        let view = start_healthy(&app, g, "1.0.0").await;
        containers.push(view["container_id"].as_str().expect("container").to_owned());
    }

    // Healthy games whose listed state agrees with their records: the
    // inspect pass lists, and inspects nothing.
    settle(&app, 2).await;
    let inspects = docker_calls(&app, "inspect", "inspect").await;
    let lists = docker_calls(&app, "inspect", "list").await;
    settle(&app, 3).await;
    assert!(
        docker_calls(&app, "inspect", "list").await >= lists + 3.0,
        "one list per pass"
    );
    assert_eq!(
        docker_calls(&app, "inspect", "inspect").await,
        inspects,
        "no inspect while everything agrees"
    );

    control(&app, &crash, "crash", "5");
    control(&app, &oom, "oom", "");
    // On a swarm: `docker service rm` (the port's container is the service).
    app.remove_behind_back(&containers[2]);

    // An OOM kill is `oom` when Docker flags it `OOMKilled`. Docker can
    // record the exit before it learns of the OOM (containerd's two events
    // race) and, depending on its version, flag it late or never; the
    // inspect source can only say what Docker says, so it must agree with
    // Docker's final word.
    let oom_view = wait_until(&format!("a judged death of {oom}"), CHANGE, || async {
        let (code, v) = app.runtime(&oom).await;
        match v["health"]["status"].as_str() {
            Some("oom" | "exited") => Ok(v),
            _ => Err(format!("{code} {v}")),
        }
    })
    .await;
    let oom_task = app.docker_container(&containers[1]).await;
    let flagged = docker(&["inspect", "-f", "{{.State.OOMKilled}}", &oom_task]);
    let oom_status = if flagged.trim() == "true" {
        "oom"
    } else {
        "exited"
    };
    assert_eq!(
        oom_view["health"]["status"], oom_status,
        "the inspect pass reports Docker's OOMKilled={flagged}: {oom_view}"
    );
    for (g, container, status) in [
        (&crash, &containers[0], "exited"),
        (&oom, &containers[1], oom_status),
        (&gone, &containers[2], "container_disappeared"),
    ] {
        let view = wait_health(&app, g, status).await;
        assert_eq!(
            view["health"]["source"], "inspect",
            "no events followed: {view}"
        );
        assert_eq!(view["health"]["container_id"], container.as_str(), "{view}");
        let record = if status == "container_disappeared" {
            "removed"
        } else {
            "stopped"
        };
        assert_eq!(view["status"], record, "{view}");
        wait_event(&app, g, status).await;
    }
    settle(&app, 2).await;
    for (g, status) in [
        (&crash, "exited"),
        (&oom, oom_status),
        (&gone, "container_disappeared"),
    ] {
        let evs = events(&app, g).await;
        assert_eq!(types(&evs), ["healthy", status], "{evs:#?}");
        assert_eq!(evs[1].source, "inspect", "{evs:#?}");
        assert_eq!(op_kinds(&app, g).await, ["start"], "observed, not done");
    }
    let crash_evs = events(&app, &crash).await;
    assert_eq!(crash_evs[1].details["exit_code"], 5, "{crash_evs:#?}");
    let oom_evs = events(&app, &oom).await;
    assert_eq!(oom_evs[1].details["exit_code"], 137, "{oom_evs:#?}");

    // Once the records say stopped/removed, nothing disagrees any more.
    let inspects = docker_calls(&app, "inspect", "inspect").await;
    settle(&app, 3).await;
    assert_eq!(docker_calls(&app, "inspect", "inspect").await, inspects);
}
