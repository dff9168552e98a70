//! Game ids that differ only in case (issue 13 §4, SPEC §3): Docker's
//! embedded DNS is case-insensitive, so `rtm-cx` and `rtm-CX` would both
//! resolve to both engines. A start whose id collides with a live game's
//! is refused (`game_id_conflict`, a failed row, no container), and the
//! live game's `engine_endpoint` resolves to exactly its own engine —
//! checked with a real lookup from inside the engines' network.

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_start_whose_id_differs_only_in_case_is_refused_and_dns_stays_unique() {
    let app = spawn_app().await;
    let lower = gid(&app, "cx");
    let upper = lower.to_ascii_uppercase();
    assert_ne!(lower, upper);
    start_running(&app, &lower, "1.0.0").await;
    let cx = containers(&app, &lower);
    assert_eq!(cx.len(), 1);
    let cx_ip = container_ip(&app, &cx[0]);

    // Both spellings, both surfaces: refused, recorded, nothing created.
    for (base, token, path) in [
        (&app.gm, GM_TOKEN, format!("/api/v1/runtimes/{upper}/start")),
        (
            &app.admin,
            ADMIN_TOKEN,
            format!("/admin/v1/runtimes/{upper}/start"),
        ),
    ] {
        let (status, body) = call(
            "POST",
            &format!("{base}{path}"),
            Some(token),
            Some(json!({"image_ref": image("1.0.0")})),
            &[],
        )
        .await;
        assert_eq!(status, 409, "{path}: {body}");
        assert_eq!(body["error"]["code"], "game_id_conflict", "{body}");
        assert_eq!(body["operation"]["outcome"], "failure", "{body}");
        assert_eq!(body["operation"]["game_id"], upper.as_str(), "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&lower), "{message}");
    }
    let refused = rows(&app, &upper).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    for row in &refused {
        assert_eq!(
            (
                row.op_kind.as_str(),
                row.outcome.as_str(),
                row.error_code.as_str()
            ),
            ("start", "failure", "game_id_conflict")
        );
    }
    assert!(
        app.containers(&upper).is_empty(),
        "no container for {upper}"
    );
    assert_eq!(record(&app, &upper).await, None);

    // The endpoint resolves to exactly the live engine, in either spelling.
    for name in [format!("rtm-{lower}"), format!("rtm-{upper}")] {
        assert_eq!(resolve(&app, &name), vec![cx_ip.clone()], "{name}");
    }

    // A stopped game keeps its name: still refused. Once it is removed,
    // the other spelling may start and owns the name alone.
    stop_game(&app, &lower).await;
    let (status, body) = app.start_game(&upper, &image("1.0.0")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "game_id_conflict", "{body}");
    cleanup_game(&app, &lower).await;
    start_running(&app, &upper, "1.0.0").await;
    let big = containers(&app, &upper);
    assert_eq!(big.len(), 1);
    let (status, body) = app.start_game(&lower, &image("1.0.0")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "game_id_conflict", "{body}");
    assert_eq!(
        resolve(&app, &format!("rtm-{lower}")),
        vec![container_ip(&app, &big[0])]
    );
}

/// A running container whose game id collides with a live game's is never
/// adopted by the reconciler (that would put two engines behind one DNS
/// name): it is disposed of, and the live game keeps the name alone.
#[tokio::test]
async fn the_reconciler_never_adopts_a_container_into_a_dns_collision() {
    let app = spawn_app().await;
    let lower = gid(&app, "rcx");
    let upper = lower.to_ascii_uppercase();
    start_running(&app, &lower, "1.0.0").await;
    let cx_ip = container_ip(&app, &containers(&app, &lower)[0]);
    // A stray engine of `upper`, created behind RTM's back with its labels
    // (as if a start of `upper` had crashed before recording, in an older
    // RTM, or another tool made it).
    let state = app.state_dir(&upper);
    let stray = app.run_behind_back(
        &format!("rtm-{upper}"),
        &[
            "--network",
            app.network.name(),
            "--tmpfs",
            "/var/lib/engine",
            "--label",
            "rtm.managed=true",
            "--label",
            &format!("rtm.owner={}", app.owner.owner()),
            "--label",
            &format!("rtm.game_id={upper}"),
            "--label",
            &format!("rtm.image_ref={}", image("1.0.0")),
            "--label",
            &format!("rtm.state_path={}", state.display()),
            "-e",
            &format!("GAME_ID={upper}"),
            &image("1.0.0"),
        ],
    );

    // Our passes, or this replica's first timer pass, dispose of it; no
    // pass ever adopts it.
    wait_for("the stray disposed of", Duration::from_secs(60), || async {
        let (status, summary) = app.admin_post("/admin/v1/reconcile", None).await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["adopted"], 0, "{summary}");
        app.containers(&upper).is_empty().then_some(())
    })
    .await;
    assert!(app.containers(&upper).is_empty(), "stray {stray} removed");
    assert_eq!(record(&app, &upper).await, None, "not adopted");
    let dispose = rows(&app, &upper).await;
    assert_eq!(dispose.len(), 1, "{dispose:?}");
    assert_eq!(dispose[0].op_kind, "reconcile_dispose");
    assert_eq!(record(&app, &lower).await.unwrap()["status"], "running");
    assert_eq!(resolve(&app, &format!("rtm-{lower}")), vec![cx_ip]);
}
