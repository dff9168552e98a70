//! The `ctl` subcommands that need more than one request or a
//! client-side filter: `games` (every page, `--health`/`--image` applied
//! here), `ops`, the mutations (`start`, `stop`, `restart`, `patch`, `cleanup`)
//! and `logs`.

use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use time::OffsetDateTime;

use super::{all_pages, client, game_path, print_json, render, Client, CtlError, Mutation, PAGE};

pub(super) async fn games(
    c: &Client,
    json: bool,
    now: OffsetDateTime,
    status: Option<String>,
    health: Option<String>,
    image: Option<String>,
) -> Result<(), CtlError> {
    let runtimes = all_pages(c, "/admin/v1/runtimes", "runtimes", &[("status", status)]).await?;
    // The listing carries no health: join the snapshots (filtered by the
    // service when `--health` is given).
    let snapshots = all_pages(
        c,
        "/admin/v1/health",
        "health",
        &[("status", health.clone())],
    )
    .await?;
    let by_game: HashMap<String, Value> = snapshots
        .into_iter()
        .filter_map(|h| Some((h["game_id"].as_str()?.to_owned(), h)))
        .collect();
    let rows: Vec<Value> = runtimes
        .into_iter()
        .filter(|r| {
            health.is_none()
                || r["game_id"]
                    .as_str()
                    .is_some_and(|g| by_game.contains_key(g))
        })
        .filter(|r| match &image {
            Some(text) => r["image_ref"]
                .as_str()
                .is_some_and(|i| i.contains(text.as_str())),
            None => true,
        })
        .map(|mut r| {
            let h = r["game_id"]
                .as_str()
                .and_then(|g| by_game.get(g))
                .cloned()
                .unwrap_or(Value::Null);
            r["health"] = h;
            r
        })
        .collect();
    if json {
        print_json(&json!({ "runtimes": rows }));
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                render::text(&r["game_id"]),
                render::text(&r["status"]),
                render::health(&r["health"], now),
                render::text(&r["image_ref"]),
                render::time(&r["started_at"]),
                render::time(&r["last_op_at"]),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &["GAME", "STATUS", "HEALTH", "IMAGE", "STARTED", "LAST OP"],
            &table
        )
    );
    Ok(())
}

pub(super) fn print_game(v: &Value, now: OffsetDateTime) {
    let fields = [
        ("game", render::text(&v["game_id"])),
        ("status", render::text(&v["status"])),
        ("image", render::text(&v["image_ref"])),
        ("container", render::text(&v["container_id"])),
        ("endpoint", render::text(&v["engine_endpoint"])),
        ("network", render::text(&v["docker_network"])),
        ("state path", render::text(&v["state_path"])),
        ("started", render::time(&v["started_at"])),
        ("stopped", render::time(&v["stopped_at"])),
        ("removed", render::time(&v["removed_at"])),
        ("last op", render::time(&v["last_op_at"])),
        ("created", render::time(&v["created_at"])),
        ("health", render::health(&v["health"], now)),
        ("health source", render::text(&v["health"]["source"])),
        ("health details", render::details(&v["health"]["details"])),
    ];
    for (k, val) in fields {
        println!("{:<15} {val}", format!("{k}:"));
    }
}

pub(super) async fn ops(
    c: &Client,
    json: bool,
    game: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: u32,
) -> Result<(), CtlError> {
    let mut rows: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    while rows.len() < limit as usize {
        let want = (limit as usize - rows.len()).min(PAGE as usize);
        let q = client::query(&[
            ("game_id", game.clone()),
            ("op_kind", kind.clone()),
            ("outcome", outcome.clone()),
            ("since", since.clone()),
            ("limit", Some(want.to_string())),
            ("before", before.clone()),
        ]);
        let page = c.get(&format!("/admin/v1/operations{q}")).await?;
        let Some(items) = page["operations"].as_array() else {
            return Err(CtlError::Protocol("no \"operations\" list".to_owned()));
        };
        rows.extend(items.iter().cloned());
        match page["next_before"].as_i64() {
            Some(next) if !items.is_empty() => before = Some(next.to_string()),
            _ => break,
        }
    }
    if json {
        print_json(&json!({ "operations": rows }));
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|o| {
            let error = match (o["error_code"].as_str(), o["error_message"].as_str()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_owned(),
                _ => String::new(),
            };
            vec![
                render::text(&o["id"]),
                render::time(&o["started_at"]),
                render::text(&o["game_id"]),
                render::text(&o["op_kind"]),
                render::text(&o["op_source"]),
                render::text(&o["outcome"]),
                error,
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &["ID", "STARTED", "GAME", "KIND", "SOURCE", "OUTCOME", "ERROR"],
            &table
        )
    );
    Ok(())
}

pub(super) async fn mutate(
    c: &Client,
    json: bool,
    m: &Mutation,
    action: &str,
    body: Option<Value>,
) -> Result<(), CtlError> {
    let game = game_path(&m.game_id)?;
    let path = format!("/admin/v1/runtimes/{game}/{action}");
    let headers: Vec<(&str, &str)> = m
        .idempotency_key
        .as_deref()
        .map(|k| ("idempotency-key", k))
        .into_iter()
        .collect();
    let result = c.json(Method::POST, &path, body.as_ref(), &headers).await;
    match (&result, json) {
        (Ok(v), true) => print_json(v),
        // A recorded failure is still a document a script wants.
        (Err(CtlError::Refused { body, .. }), true) if !body["operation"].is_null() => {
            print_json(body);
        }
        (Ok(v), false) => {
            let op = &v["operation"];
            println!(
                "{game}: {} {} (operation {}){}; status {}",
                render::text(&op["op_kind"]),
                if op["outcome"] == "success" {
                    "succeeded"
                } else {
                    "failed"
                },
                render::text(&op["id"]),
                if v["replayed"] == true {
                    ", replayed"
                } else {
                    ""
                },
                render::text(&v["runtime"]["status"]),
            );
        }
        (Err(_), _) => {}
    }
    result.map(|_| ())
}

pub(super) async fn logs(
    c: &Client,
    json: bool,
    game: &str,
    tail: u32,
    since: Option<String>,
    follow: bool,
) -> Result<(), CtlError> {
    let mut q = vec![("tail", Some(tail.to_string())), ("since", since)];
    if follow && json {
        // The followed stream is plain text: there is no document to print.
        return Err(CtlError::Usage(
            "--follow streams plain text; it cannot be combined with --json".to_owned(),
        ));
    }
    if follow {
        q.push(("follow", Some("true".to_owned())));
        let path = format!("/admin/v1/runtimes/{game}/logs{}", client::query(&q));
        let mut out = std::io::stdout();
        return c
            .stream(&path, |chunk| {
                out.write_all(chunk)?;
                out.flush()
            })
            .await;
    }
    let path = format!("/admin/v1/runtimes/{game}/logs{}", client::query(&q));
    let v = c.get(&path).await?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for line in v["lines"].as_array().into_iter().flatten() {
        let text = line["text"].as_str().unwrap_or_default();
        // Like `docker logs`: the engine's stderr goes to stderr.
        let _ = if line["stream"] == "stderr" {
            writeln!(err, "{text}")
        } else {
            writeln!(out, "{text}")
        };
    }
    if v["truncated"] == true {
        let _ = writeln!(
            err,
            "rtmanager ctl: older lines were cut (an answer holds at most 1 MiB of text)"
        );
    }
    Ok(())
}
