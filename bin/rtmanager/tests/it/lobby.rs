//! End-to-end tests of the Lobby command stream (SPEC §6,
//! docs/lobby-stream.md): the real app consumes entries `XADD`ed by the
//! test, and the test observes the result through SQL (`operation_log`),
//! REST, Redis (`XPENDING`, the dead-letter stream) and Docker.
//!
//! The helpers below are this module's own (kept out of `support.rs`):
//! a [`Lobby`] handle on the app's stream and group, row readers, and
//! Docker inspection. Each submodule covers one area of the contract.

use std::time::Duration;

use fred::prelude::{Client, StreamsInterface};
use fred::types::Value;
use serde_json::Value as Json;

use rtm_testkit::docker::DockerStarts;

use crate::support::*;

mod bulk;
mod claim;
mod crash;
mod happy;
mod ordering;
mod poison;
mod redelivery;
mod redis_restart;

/// The consumer group the app uses (`RTM_LOBBY_GROUP` default).
pub const GROUP: &str = "rtmanager";

/// A test-side client on the app's Lobby stream.
pub struct Lobby {
    pub client: Client,
    pub stream: String,
    pub dead: String,
}

/// One `XPENDING` detail row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub consumer: String,
    pub deliveries: u64,
}

impl Lobby {
    /// A client on the Redis the app uses (`RTM_REDIS_URL`).
    pub async fn new(app: &TestApp) -> Lobby {
        let url = app.vars["RTM_REDIS_URL"].clone();
        Lobby {
            client: rtm_testkit::redis::client(&url).await,
            stream: app.lobby_stream.clone(),
            dead: format!("{}:dead", app.lobby_stream),
        }
    }

    /// `XADD <stream> * <fields>`; the entry id.
    pub async fn xadd(&self, fields: &[(&str, &str)]) -> String {
        rtm_testkit::redis::xadd(&self.client, &self.stream, fields).await
    }

    /// A start command.
    pub async fn start(&self, game: &str, image_ref: &str) -> String {
        self.xadd(&[("op", "start"), ("game_id", game), ("image_ref", image_ref)])
            .await
    }

    /// A stop command.
    pub async fn stop(&self, game: &str) -> String {
        self.xadd(&[("op", "stop"), ("game_id", game)]).await
    }

    /// Waits until the app created its consumer group on the stream.
    pub async fn wait_group(&self) {
        wait_for("the consumer group", Duration::from_secs(20), || async {
            self.group_info().await.map(|_| ())
        })
        .await
    }

    /// `(pending, lag, last-delivered-id)` of the app's group, `None` while
    /// the stream or the group does not exist.
    pub async fn group_info(&self) -> Option<(u64, Option<u64>, String)> {
        let v: Value = self.client.xinfo_groups(&self.stream).await.ok()?;
        let Value::Array(groups) = v else { return None };
        groups.iter().find_map(|g| {
            let kv = pairs(g);
            let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            (get("name")?.as_string()? == GROUP).then(|| {
                (
                    get("pending").and_then(|v| v.as_u64()).unwrap_or(0),
                    get("lag").and_then(|v| v.as_u64()),
                    get("last-delivered-id")
                        .and_then(|v| v.as_string())
                        .unwrap_or_default(),
                )
            })
        })
    }

    /// Every pending entry of the group (`XPENDING <s> <g> - + 10000`).
    pub async fn pending(&self) -> Vec<Pending> {
        let v: Value = self
            .client
            .xpending(&self.stream, GROUP, ("-", "+", 10_000u64))
            .await
            .unwrap_or_else(|e| panic!("XPENDING {}: {e}", self.stream));
        let Value::Array(rows) = v else {
            return Vec::new();
        };
        rows.into_iter()
            .map(|row| match row {
                Value::Array(cols) if cols.len() == 4 => Pending {
                    id: cols[0].as_string().expect("pending id"),
                    consumer: cols[1].as_string().expect("pending consumer"),
                    deliveries: cols[3].as_u64().expect("pending deliveries"),
                },
                other => panic!("unexpected XPENDING row {other:?}"),
            })
            .collect()
    }

    /// `XREADGROUP GROUP rtmanager <consumer> COUNT <count> STREAMS <s> <id>`
    /// (`>` for new entries, `0` for the consumer's own pending ones),
    /// without acknowledging: the entries stay in the pending list of
    /// `consumer`. Returns the ids read.
    pub async fn read_as(&self, consumer: &str, count: u64, id: &str) -> Vec<String> {
        let v: Value = self
            .client
            .xreadgroup(GROUP, consumer, Some(count), None, false, &self.stream, id)
            .await
            .unwrap_or_else(|e| panic!("XREADGROUP as {consumer}: {e}"));
        // [[stream, [[id, fields], ...]]] (RESP2) or {stream: [...]}.
        let entries = match v {
            Value::Null => return Vec::new(),
            Value::Array(mut streams) if !streams.is_empty() => match streams.remove(0) {
                Value::Array(mut s) if s.len() == 2 => s.pop().expect("entries"),
                other => panic!("unexpected XREADGROUP stream {other:?}"),
            },
            Value::Map(m) => m
                .inner()
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or(Value::Null),
            other => panic!("unexpected XREADGROUP reply {other:?}"),
        };
        let Value::Array(entries) = entries else {
            return Vec::new();
        };
        entries
            .into_iter()
            .map(|e| match e {
                Value::Array(parts) => parts[0].as_string().expect("entry id"),
                other => panic!("unexpected entry {other:?}"),
            })
            .collect()
    }

    /// The dead-letter stream as `(id, fields)`.
    pub async fn dead_letters(&self) -> Vec<(String, Vec<(String, String)>)> {
        rtm_testkit::redis::xrange(&self.client, &self.dead).await
    }

    /// Waits until nothing is pending and nothing is left unread.
    pub async fn wait_drained(&self, timeout: Duration) {
        wait_for("the lobby group to drain", timeout, || async {
            match self.group_info().await {
                Some((0, Some(0), _)) => Some(()),
                _ => None,
            }
        })
        .await
    }
}

/// Appends many entries in order, pipelined 100 at a time, through a
/// client of its own (a busy machine can exceed the helpers' 5 s command
/// timeout for a batch). Returns the ids in order.
pub async fn xadd_many(
    app: &TestApp,
    lobby: &Lobby,
    entries: &[Vec<(String, String)>],
) -> Vec<String> {
    use fred::prelude::ClientLike;
    let config = fred::prelude::Config::from_url(&app.vars["RTM_REDIS_URL"]).expect("url");
    let writer = fred::prelude::Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(60))
        .build()
        .expect("redis client");
    writer.init().await.expect("redis connect");
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(100) {
        let pipe = writer.pipeline();
        for fields in chunk {
            let () = pipe
                .xadd(&lobby.stream, false, None, "*", fields.clone())
                .await
                .expect("queue XADD");
        }
        let replies: Vec<Value> = pipe.all().await.expect("pipelined XADD");
        ids.extend(
            replies
                .into_iter()
                .map(|v| v.as_string().expect("entry id")),
        );
    }
    let _ = writer.quit().await;
    ids
}

/// A reply of alternating names and values (RESP2) or a map (RESP3), as
/// `(name, value)` pairs.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(flat) => flat
            .chunks_exact(2)
            .filter_map(|p| Some((p[0].as_string()?, p[1].clone())))
            .collect(),
        Value::Map(m) => m
            .clone()
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `<name>-<token of this test>`: container names (`rtm-<game_id>`) are
/// global on the Docker engine, so games that run containers get ids no
/// concurrent test (or concurrent run of this binary) can share.
pub fn gid(app: &TestApp, name: &str) -> String {
    let alnum: Vec<char> = app
        .owner
        .owner()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let token: String = alnum[alnum.len().saturating_sub(14)..].iter().collect();
    format!("{name}-{token}")
}

/// The columns of `operation_log` these tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRow {
    pub id: i64,
    pub game_id: String,
    pub op_kind: String,
    pub op_source: String,
    pub source_ref: String,
    pub image_ref: String,
    pub container_id: String,
    pub outcome: String,
    pub error_code: String,
}

impl From<&tokio_postgres::Row> for OpRow {
    fn from(r: &tokio_postgres::Row) -> Self {
        OpRow {
            id: r.get("id"),
            game_id: r.get("game_id"),
            op_kind: r.get("op_kind"),
            op_source: r.get("op_source"),
            source_ref: r.get("source_ref"),
            image_ref: r.get("image_ref"),
            container_id: r.get("container_id"),
            outcome: r.get("outcome"),
            error_code: r.get("error_code"),
        }
    }
}

/// A superuser connection in the test's schema. PostgreSQL's connection
/// slots are shared by every test running on the machine: a full server
/// ("too many clients") is retried for a bounded time.
pub async fn admin(app: &TestApp) -> tokio_postgres::Client {
    let mut last = None;
    for _ in 0..40 {
        match app.db.admin_client().await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("admin client: {:#}", last.expect("an error"));
}

/// Every row of the test's `operation_log`, in id (commit) order.
pub async fn all_rows(app: &TestApp) -> Vec<OpRow> {
    let client = admin(app).await;
    query_rows(&client, None).await
}

/// Rows through an open admin connection; only those of `entry` if given.
pub async fn query_rows(client: &tokio_postgres::Client, entry: Option<&str>) -> Vec<OpRow> {
    let rows = match entry {
        Some(e) => {
            client
                .query(
                    "SELECT * FROM operation_log WHERE source_ref = $1 ORDER BY id",
                    &[&e],
                )
                .await
        }
        None => {
            client
                .query("SELECT * FROM operation_log ORDER BY id", &[])
                .await
        }
    };
    rows.expect("operation rows")
        .iter()
        .map(OpRow::from)
        .collect()
}

/// `game`'s rows, oldest first.
pub async fn rows(app: &TestApp, game: &str) -> Vec<OpRow> {
    admin(app)
        .await
        .query(
            "SELECT * FROM operation_log WHERE game_id = $1 ORDER BY id",
            &[&game],
        )
        .await
        .expect("operation rows")
        .iter()
        .map(OpRow::from)
        .collect()
}

/// Waits until the log holds at least `n` rows; returns them all.
pub async fn wait_rows(app: &TestApp, n: usize, timeout: Duration) -> Vec<OpRow> {
    let client = admin(app).await;
    wait_for(&format!("{n} operation rows"), timeout, || async {
        let rows = query_rows(&client, None).await;
        (rows.len() >= n).then_some(rows)
    })
    .await
}

/// `docker inspect -f <format> <id>`.
pub fn inspect(container: &str, format: &str) -> String {
    rtm_testkit::docker::docker(&["inspect", "-f", format, container])
        .unwrap_or_else(|e| panic!("docker inspect {container}: {e}"))
        .trim()
        .to_owned()
}

/// Lines of the engine's `starts.log` (one per engine start).
fn starts(app: &TestApp, game: &str) -> Vec<String> {
    std::fs::read_to_string(app.state_dir(game).join("starts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The engine's own record of its starts once it holds `n` lines (waits
/// ≤ 30 s: an engine writes its line a moment after Docker reports the
/// start), for a game whose engine is left running; a count of RTM's
/// starts of a game stopped at once comes from [`DockerStarts`].
pub async fn engine_starts(app: &TestApp, game: &str, n: usize) -> Vec<String> {
    let what = format!("{game}: {n} lines in starts.log");
    let log = wait_for(&what, Duration::from_secs(30), || async {
        let log = starts(app, game);
        (log.len() >= n).then_some(log)
    })
    .await;
    assert_eq!(log.len(), n, "{game}: {log:?}");
    log
}

/// Docker's count of the starts of each game's containers, from now on.
pub fn watch_starts(app: &TestApp) -> DockerStarts {
    DockerStarts::watch(app.owner.owner())
}

/// The runtime record through REST (`GET /api/v1/runtimes/{game}`), which
/// must exist.
pub async fn runtime(app: &TestApp, game: &str) -> Json {
    let (status, body) = app.runtime(game).await;
    assert_eq!(status, 200, "GET runtime {game}: {body}");
    body
}

/// Checks the game's record and its one container: `status`, the image,
/// and (running) that Docker runs the recorded container.
pub async fn assert_runtime(app: &TestApp, game: &str, status: &str, image_ref: &str) -> String {
    let rt = runtime(app, game).await;
    let rt = if rt.get("runtime").is_some() {
        rt["runtime"].clone()
    } else {
        rt
    };
    assert_eq!(rt["status"], status, "{game}: {rt}");
    assert_eq!(rt["image_ref"], image_ref, "{game}: {rt}");
    let containers = app.containers(game);
    assert_eq!(containers.len(), 1, "{game}: containers {containers:?}");
    let recorded = rt["container_id"].as_str().expect("container_id");
    assert_eq!(containers[0], recorded, "{game}: recorded container");
    assert_eq!(
        inspect(recorded, "{{index .Config.Labels \"rtm.image_ref\"}}"),
        image_ref
    );
    let running = inspect(recorded, "{{.State.Running}}");
    assert_eq!(running, (status == "running").to_string(), "{game}: docker");
    recorded.to_owned()
}

/// `rtm:game:<schema>:<game>`: the key of the game's advisory lock
/// (`crates/rtm-postgres/src/locks.rs`).
pub fn lock_key(app: &TestApp, game: &str) -> String {
    format!("rtm:game:{}:{game}", app.db.schema())
}

/// Takes the per-game locks of `games` in a session of the test's own, so
/// the app's operations on them wait (and, past `RTM_LOCK_WAIT`, fail as
/// transient `InProgress`). Release with [`release_locks`].
///
/// It waits its turn (bounded) rather than trying once: the app takes a
/// game's lock for every health observation of it (each probe and inspect
/// result, each Docker event), a few times a second with the tests'
/// intervals, so a running game's lock is often held for a moment. A
/// single `pg_try_advisory_lock` lost that race now and then under load.
pub async fn hold_locks(app: &TestApp, games: &[&str]) -> tokio_postgres::Client {
    let client = admin(app).await;
    // Any legitimate holder lets go within milliseconds; 30 s means a
    // leak, and the statement then fails with SQLSTATE 55P03.
    client
        .batch_execute("SET lock_timeout = '30s'")
        .await
        .expect("lock_timeout");
    for g in games {
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&lock_key(app, g)],
            )
            .await
            .unwrap_or_else(|e| panic!("lock of {g} still taken after 30 s: {e}"));
    }
    client
        .batch_execute("RESET lock_timeout")
        .await
        .expect("lock_timeout");
    client
}

/// Releases every lock [`hold_locks`] took in that session.
pub async fn release_locks(client: &tokio_postgres::Client) {
    client
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .expect("advisory unlock");
}

/// How many sessions wait (ungranted) for the locks of `games` right now.
pub async fn lock_waiters(app: &TestApp, games: &[&str]) -> i64 {
    let keys: Vec<String> = games.iter().map(|g| lock_key(app, g)).collect();
    let client = admin(app).await;
    client
        .query_one(
            "SELECT count(*) FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND NOT l.granted \
               AND ((l.classid::int8 << 32) | l.objid::int8) = \
                   ANY (SELECT hashtextextended(k, 0) FROM unnest($1::text[]) k)",
            &[&keys],
        )
        .await
        .expect("pg_locks")
        .get(0)
}
