//! `rtmanager ctl …`: the operator's command-line client of the admin REST
//! API (`RTM_ADMIN_URL`, `RTM_ADMIN_TOKEN`, or `--url`/`--token`).
//!
//! Human tables by default, the API's own JSON documents with `--json`.
//! Exit codes: 0 done, 1 refused by the service (its error code and
//! message are printed), 2 usage, 3 the service could not be reached.
//!
//! The client holds no state and adds no rules: every check that matters
//! is the service's. It validates only what would make a request
//! meaningless (a game id that cannot be a path segment, an unknown
//! filter word is left to the service to refuse). Filters the API does not
//! have (`games --health`, `--image`) are applied here, over every page.

mod client;
mod commands;
mod render;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub use client::{Client, CtlError};
use commands::{games, logs, mutate, ops, print_game};

/// Largest page the admin API serves.
const PAGE: u32 = 500;
/// Upper bound of pages one listing reads (500 × 2000 = one million rows):
/// a safety net against a cursor that never ends.
const MAX_PAGES: usize = 2000;

/// `rtmanager ctl` and its global options.
#[derive(Debug, Args)]
#[command(
    about = "Operate a running rtmanager through its admin REST API",
    after_help = "Exit codes: 0 done, 1 refused by the service, 2 usage, 3 unreachable."
)]
pub struct CtlArgs {
    /// Base URL of the admin listener.
    #[arg(
        long,
        env = "RTM_ADMIN_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    url: String,
    /// Admin bearer token.
    #[arg(long, env = "RTM_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for each answer (e.g. 30s, 2m).
    #[arg(long, default_value = "5m", value_parser = duration, global = true)]
    request_timeout: Duration,
    #[command(subcommand)]
    command: CtlCommand,
}

/// Options every mutation takes.
#[derive(Debug, Args)]
struct Mutation {
    /// The game.
    game_id: String,
    /// Idempotency-Key: repeating the command with the same key replays
    /// the recorded result instead of acting twice.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// List games (all pages), with their health.
    Games {
        /// Only this status (running, stopped, removed).
        #[arg(long)]
        status: Option<String>,
        /// Only this health (healthy, probe_failed, exited, oom, …).
        #[arg(long)]
        health: Option<String>,
        /// Only images whose reference contains this text (repository or tag).
        #[arg(long)]
        image: Option<String>,
    },
    /// Show one game: its record and health.
    Game { game_id: String },
    /// The audit trail, newest first.
    Ops {
        /// Only this game.
        game_id: Option<String>,
        /// Only this operation kind (start, stop, restart, patch, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only this outcome (success, failure).
        #[arg(long)]
        outcome: Option<String>,
        /// Only operations started at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Start a game's engine.
    Start {
        #[command(flatten)]
        m: Mutation,
        /// Engine image reference.
        #[arg(long)]
        image: String,
    },
    /// Stop a game's engine (SIGTERM, then SIGKILL after the grace period).
    Stop {
        #[command(flatten)]
        m: Mutation,
        /// Grace period (e.g. 10s; whole seconds).
        #[arg(long, value_parser = duration)]
        timeout: Option<Duration>,
    },
    /// Restart a game's engine (same container, same image).
    Restart {
        #[command(flatten)]
        m: Mutation,
        /// Grace period of the stop (e.g. 10s; whole seconds).
        #[arg(long, value_parser = duration)]
        timeout: Option<Duration>,
    },
    /// Replace a running game's engine with a new image.
    Patch {
        #[command(flatten)]
        m: Mutation,
        /// The new image reference.
        #[arg(long)]
        image: String,
        /// Allow more than a patch-version change (admin override).
        #[arg(long)]
        force: bool,
    },
    /// Remove a stopped game's container (its state directory is kept).
    Cleanup {
        #[command(flatten)]
        m: Mutation,
    },
    /// The last lines of a game's container output.
    Logs {
        game_id: String,
        /// How many lines (0-5000).
        #[arg(long, default_value_t = 200)]
        tail: u32,
        /// Only lines after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new lines until the container stops (Ctrl-C ends).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Run a reconcile pass now and show what it did.
    Reconcile,
    /// Health snapshots of every game.
    Health {
        /// Only this health status.
        #[arg(long)]
        status: Option<String>,
    },
}

/// Durations as the service's configuration writes them (`500ms`, `10s`).
fn duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

/// Runs `rtmanager ctl …` and returns its exit code.
pub fn main(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtmanager ctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                CtlError::Refused { code, message, .. } => {
                    eprintln!("rtmanager ctl: refused: {code}: {message}");
                }
                e => eprintln!("rtmanager ctl: {e}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// A game id as a path segment (the service's own rule, so a typo is a
/// usage error here rather than a confusing 404).
fn game_path(id: &str) -> Result<String, CtlError> {
    rtm_domain::GameId::parse(id)
        .map(|g| g.to_string())
        .map_err(|e| CtlError::Usage(format!("game id {id:?}: {e}")))
}

fn print_json(v: &Value) {
    // Serializing a `Value` cannot fail.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Every page of a keyset listing (`next_after` cursor).
async fn all_pages(
    c: &Client,
    path: &str,
    items: &str,
    filters: &[(&str, Option<String>)],
) -> Result<Vec<Value>, CtlError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut q: Vec<(&str, Option<String>)> = filters.to_vec();
        q.push(("limit", Some(PAGE.to_string())));
        q.push(("after", after.clone()));
        let page = c.get(&format!("{path}{}", client::query(&q))).await?;
        match page[items].as_array() {
            Some(rows) => out.extend(rows.iter().cloned()),
            None => return Err(CtlError::Protocol(format!("no {items:?} list in {path}"))),
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
    Err(CtlError::Protocol(format!(
        "{path}: more than {MAX_PAGES} pages"
    )))
}

async fn run(args: CtlArgs) -> Result<(), CtlError> {
    let token = args
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CtlError::Usage("no admin token: set RTM_ADMIN_TOKEN or pass --token".to_owned())
        })?;
    let c = Client::new(&args.url, token, args.request_timeout)?;
    let json = args.json;
    let now = OffsetDateTime::now_utc();
    match args.command {
        CtlCommand::Games {
            status,
            health,
            image,
        } => games(&c, json, now, status, health, image).await,
        CtlCommand::Game { game_id } => {
            let v = c
                .get(&format!("/admin/v1/runtimes/{}", game_path(&game_id)?))
                .await?;
            if json {
                print_json(&v);
            } else {
                print_game(&v, now);
            }
            Ok(())
        }
        CtlCommand::Ops {
            game_id,
            kind,
            outcome,
            since,
            limit,
        } => {
            let game = game_id.as_deref().map(game_path).transpose()?;
            ops(&c, json, game, kind, outcome, since, limit).await
        }
        CtlCommand::Start { m, image } => {
            mutate(&c, json, &m, "start", Some(json!({ "image_ref": image }))).await
        }
        CtlCommand::Stop { m, timeout } => {
            let body = timeout.map(|t| json!({ "timeout_s": t.as_secs() }));
            mutate(&c, json, &m, "stop", body).await
        }
        CtlCommand::Restart { m, timeout } => {
            let body = timeout.map(|t| json!({ "timeout_s": t.as_secs() }));
            mutate(&c, json, &m, "restart", body).await
        }
        CtlCommand::Patch { m, image, force } => {
            let body = json!({ "image_ref": image, "force": force });
            mutate(&c, json, &m, "patch", Some(body)).await
        }
        CtlCommand::Cleanup { m } => mutate(&c, json, &m, "cleanup", None).await,
        CtlCommand::Logs {
            game_id,
            tail,
            since,
            follow,
        } => logs(&c, json, &game_path(&game_id)?, tail, since, follow).await,
        CtlCommand::Reconcile => {
            let v = c
                .json(Method::POST, "/admin/v1/reconcile", None, &[])
                .await?;
            if json {
                print_json(&v);
            } else {
                let fields = [
                    "games",
                    "adopted",
                    "disposed",
                    "removed",
                    "observed_exits",
                    "renamed",
                    "skipped_busy",
                    "errors",
                ];
                let parts: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{f} {}", render::text(&v[f])))
                    .collect();
                println!("reconcile pass: {}", parts.join(", "));
            }
            Ok(())
        }
        CtlCommand::Health { status } => {
            let rows = all_pages(&c, "/admin/v1/health", "health", &[("status", status)]).await?;
            if json {
                print_json(&json!({ "health": rows }));
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|h| {
                        vec![
                            render::text(&h["game_id"]),
                            render::text(&h["status"]),
                            render::text(&h["source"]),
                            format!("{} ago", render::age(&h["observed_at"], now)),
                            render::details(&h["details"]),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(&["GAME", "HEALTH", "SOURCE", "OBSERVED", "DETAILS"], &table)
                );
            }
            Ok(())
        }
    }
}
