//! Every cell of SPEC §4's table (the four starting points × the six
//! operations) through REST, one game per cell, the cells of one starting
//! point run concurrently in one app. Each cell is checked by [`check`]:
//! HTTP status and error code, the record after, the timestamp rules,
//! exactly one new operation row, and Docker's reality.

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    NoRecord,
    Running,
    Stopped,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    StartSame,
    StartOther,
    Stop,
    Restart,
    Patch,
    Cleanup,
}

/// What Docker shows after the cell, relative to before.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Docker {
    /// No container before, none after.
    NoContainer,
    /// The same single container; running or not; the engine started
    /// again (one more line in `starts.log`) or not.
    Kept { running: bool, engine_started: bool },
    /// Exactly one container, a new one, running the requested image
    /// (the old one, if any, is gone); the state directory carries over.
    New,
    /// The container is removed; the state directory is kept.
    Gone,
}

struct Cell {
    from: Origin,
    op: Op,
    http: u16,
    /// Error code, `None` on success.
    code: Option<&'static str>,
    /// Record status after (`None`: still no record).
    after: Option<&'static str>,
    /// A success that changes nothing but `last_op_at`.
    noop: bool,
    docker: Docker,
}

const SAME: &str = "1.0.0";
const OTHER: &str = "1.0.1";

fn game_name(from: Origin, op: Op) -> String {
    format!("{from:?}-{op:?}").to_lowercase()
}

fn op_kind(op: Op) -> &'static str {
    match op {
        Op::StartSame | Op::StartOther => "start",
        Op::Stop => "stop",
        Op::Restart => "restart",
        Op::Patch => "patch",
        Op::Cleanup => "cleanup_container",
    }
}

/// The image the operation asks for, if any.
fn requested(op: Op) -> Option<String> {
    match op {
        Op::StartSame => Some(image(SAME)),
        Op::StartOther | Op::Patch => Some(image(OTHER)),
        _ => None,
    }
}

async fn setup(app: &TestApp, game: &str, from: Origin) {
    if from == Origin::NoRecord {
        return;
    }
    start_running(app, game, SAME).await;
    if from == Origin::Running {
        return;
    }
    stop_game(app, game).await;
    if from == Origin::Removed {
        cleanup_game(app, game).await;
    }
}

async fn act(app: &TestApp, game: &str, op: Op) -> (u16, Value) {
    let p = |what: &str| format!("/api/v1/runtimes/{game}/{what}");
    match op {
        Op::StartSame => app.start_game(game, &image(SAME)).await,
        Op::StartOther => app.start_game(game, &image(OTHER)).await,
        Op::Stop => app.gm_post(&p("stop"), Some(json!({"timeout_s": 5}))).await,
        Op::Restart => app.gm_post(&p("restart"), None).await,
        Op::Patch => {
            app.gm_post(&p("patch"), Some(json!({"image_ref": image(OTHER)})))
                .await
        }
        Op::Cleanup => {
            app.admin_post(&format!("/admin/v1/runtimes/{game}/cleanup"), None)
                .await
        }
    }
}

/// Runs one cell on its own game and checks everything it must change,
/// and everything it must not.
async fn check(app: &TestApp, cell: Cell) {
    let game = gid(app, &game_name(cell.from, cell.op));
    let g = game.as_str();
    setup(app, g, cell.from).await;
    let before = snapshot(app, g).await;

    let (status, body) = act(app, g, cell.op).await;
    let ctx = format!("cell {g}: {status} {body}");

    // The engine writes its start line just after Docker starts it.
    let engine_started = matches!(
        cell.docker,
        Docker::New
            | Docker::Kept {
                engine_started: true,
                ..
            }
    );
    if engine_started {
        wait_engine_started(app, g, before.starts + 1).await;
    }
    let after = snapshot(app, g).await;

    // HTTP.
    assert_eq!(status, cell.http, "{ctx}");
    match cell.code {
        Some(code) => assert_eq!(body["error"]["code"], code, "{ctx}"),
        None => assert!(body["error"].is_null(), "{ctx}"),
    }
    assert_eq!(body["replayed"], false, "{ctx}");

    // Exactly one new operation row, the one the response names.
    assert_eq!(
        after.rows.len(),
        before.rows.len() + 1,
        "{ctx}: rows {:?}",
        after.rows
    );
    assert_eq!(after.rows[..before.rows.len()], before.rows[..], "{ctx}");
    let row = after.rows.last().expect("row");
    assert_eq!(body["operation"]["id"], row.id, "{ctx}");
    assert_eq!(row.op_kind, op_kind(cell.op), "{ctx}");
    let source = if cell.op == Op::Cleanup {
        "admin_rest"
    } else {
        "gm_rest"
    };
    assert_eq!(row.op_source, source, "{ctx}");
    assert_eq!(
        row.outcome,
        if cell.code.is_none() {
            "success"
        } else {
            "failure"
        },
        "{ctx}"
    );
    assert_eq!(row.error_code, cell.code.unwrap_or(""), "{ctx}");
    assert_eq!(row.source_ref, "", "{ctx}");
    if let Some(img) = requested(cell.op) {
        assert_eq!(row.image_ref, img, "{ctx}");
    }
    let finished = row.finished_at.expect("finished_at");
    assert!(row.started_at <= finished, "{ctx}");

    // The record.
    let rec = after.record.clone();
    match (cell.after, &rec) {
        (None, None) => {}
        (Some(s), Some(r)) => {
            assert_eq!(r["status"], s, "{ctx}");
            assert_eq!(body["runtime"]["status"], s, "{ctx}");
        }
        (want, got) => panic!("{ctx}: record want {want:?}, got {got:?}"),
    }
    if let Some(r) = &rec {
        // The answer's runtime is the record as stored (and as GET shows it).
        assert_eq!(
            without_health(&Some(body["runtime"].clone())),
            without_health(&Some(r.clone())),
            "{ctx}: the answer's runtime is the stored one"
        );
    }
    if cell.code.is_some() {
        // A refusal changes nothing in the record.
        assert_eq!(
            without_health(&rec),
            without_health(&before.record),
            "{ctx}"
        );
    } else {
        check_timestamps(
            &cell,
            &before.record,
            rec.as_ref().expect("record"),
            row,
            &ctx,
        );
    }

    // Docker.
    match cell.docker {
        Docker::NoContainer => {
            assert!(before.containers.is_empty(), "{ctx}");
            assert!(after.containers.is_empty(), "{ctx}: {:?}", after.containers);
            assert_eq!(after.starts, before.starts, "{ctx}");
        }
        Docker::Kept {
            running,
            engine_started,
        } => {
            assert_eq!(before.containers.len(), 1, "{ctx}");
            assert_eq!(after.containers.len(), 1, "{ctx}: {:?}", after.containers);
            let (b, a) = (&before.containers[0], &after.containers[0]);
            assert_eq!(a.id, b.id, "{ctx}: the same container");
            assert_eq!(a.name, format!("rtm-{g}"), "{ctx}");
            assert_eq!(a.running, running, "{ctx}");
            assert_eq!(a.image, b.image, "{ctx}");
            let want = before.starts + usize::from(engine_started);
            assert_eq!(after.starts, want, "{ctx}: starts.log");
            let r = rec.as_ref().expect("record");
            assert_eq!(r["container_id"], a.id.as_str(), "{ctx}");
        }
        Docker::New => {
            assert_eq!(after.containers.len(), 1, "{ctx}: {:?}", after.containers);
            let a = &after.containers[0];
            assert!(
                before.containers.iter().all(|b| b.id != a.id),
                "{ctx}: a new container"
            );
            assert!(a.running, "{ctx}");
            assert_eq!(a.name, format!("rtm-{g}"), "{ctx}");
            let want_image = requested(cell.op).expect("image");
            assert_eq!(a.image, want_image, "{ctx}");
            // The state directory carries over: the new engine appends.
            assert_eq!(after.starts, before.starts + 1, "{ctx}: starts.log");
            let r = rec.as_ref().expect("record");
            assert_eq!(r["container_id"], a.id.as_str(), "{ctx}");
            assert_eq!(r["image_ref"], want_image.as_str(), "{ctx}");
            assert_eq!(row.container_id, a.id, "{ctx}");
        }
        Docker::Gone => {
            assert_eq!(before.containers.len(), 1, "{ctx}");
            assert!(after.containers.is_empty(), "{ctx}: {:?}", after.containers);
            assert!(app.state_dir(g).is_dir(), "{ctx}: state directory kept");
            assert_eq!(after.starts, before.starts, "{ctx}: starts.log kept");
        }
    }
}

/// SPEC §4 rules: `last_op_at` moves; the entered status's timestamp is set
/// (to the transition's time) unless the operation was a no-op; the other
/// timestamps and `created_at` never change.
fn check_timestamps(cell: &Cell, before: &Option<Value>, r: &Value, row: &Row, ctx: &str) {
    let last = ts(r, "last_op_at").expect("last_op_at");
    let finished = row.finished_at.expect("finished_at");
    assert!(
        row.started_at <= last && last <= finished,
        "{ctx}: last_op_at within the operation"
    );
    let entered = match cell.after {
        Some("running") => "started_at",
        Some("stopped") => "stopped_at",
        Some("removed") => "removed_at",
        other => panic!("{ctx}: success into {other:?}"),
    };
    let Some(b) = before else {
        // A first start creates the record.
        assert_eq!(ts(r, "created_at"), Some(last), "{ctx}");
        assert_eq!(ts(r, "started_at"), Some(last), "{ctx}");
        assert!(
            r["stopped_at"].is_null() && r["removed_at"].is_null(),
            "{ctx}"
        );
        return;
    };
    assert_eq!(
        r["created_at"], b["created_at"],
        "{ctx}: created_at never changes"
    );
    assert!(
        last > ts(b, "last_op_at").expect("last_op_at"),
        "{ctx}: last_op_at moves"
    );
    for field in ["started_at", "stopped_at", "removed_at"] {
        if field == entered && !cell.noop {
            assert_eq!(ts(r, field), Some(last), "{ctx}: {field} set on entering");
        } else {
            assert_eq!(r[field], b[field], "{ctx}: {field} unchanged");
        }
    }
}

fn cells(from: Origin) -> Vec<Cell> {
    use Docker::*;
    let ok = |op, after, noop, docker| Cell {
        from,
        op,
        http: 200,
        code: None,
        after: Some(after),
        noop,
        docker,
    };
    let refused = |op, http, code, docker| Cell {
        from,
        op,
        http,
        code: Some(code),
        after: match from {
            Origin::NoRecord => None,
            Origin::Running => Some("running"),
            Origin::Stopped => Some("stopped"),
            Origin::Removed => Some("removed"),
        },
        noop: false,
        docker,
    };
    let running = Kept {
        running: true,
        engine_started: false,
    };
    let stopped = Kept {
        running: false,
        engine_started: false,
    };
    let restarted = Kept {
        running: true,
        engine_started: true,
    };
    match from {
        Origin::NoRecord => vec![
            ok(Op::StartSame, "running", false, New),
            ok(Op::StartOther, "running", false, New),
            refused(Op::Stop, 404, "not_found", NoContainer),
            refused(Op::Restart, 404, "not_found", NoContainer),
            refused(Op::Patch, 404, "not_found", NoContainer),
            refused(Op::Cleanup, 404, "not_found", NoContainer),
        ],
        Origin::Running => vec![
            ok(Op::StartSame, "running", true, running),
            refused(Op::StartOther, 409, "already_running", running),
            ok(Op::Stop, "stopped", false, stopped),
            ok(Op::Restart, "running", false, restarted),
            ok(Op::Patch, "running", false, New),
            refused(Op::Cleanup, 409, "conflict", running),
        ],
        Origin::Stopped => vec![
            ok(Op::StartSame, "running", false, restarted),
            ok(Op::StartOther, "running", false, New),
            ok(Op::Stop, "stopped", true, stopped),
            ok(Op::Restart, "running", false, restarted),
            refused(Op::Patch, 409, "conflict", stopped),
            ok(Op::Cleanup, "removed", false, Gone),
        ],
        Origin::Removed => vec![
            ok(Op::StartSame, "running", false, New),
            ok(Op::StartOther, "running", false, New),
            ok(Op::Stop, "removed", true, NoContainer),
            refused(Op::Restart, 409, "conflict", NoContainer),
            refused(Op::Patch, 409, "conflict", NoContainer),
            ok(Op::Cleanup, "removed", true, NoContainer),
        ],
    }
}

/// All 24 cells in one app, a few at a time (the PostgreSQL server is
/// shared: each cell in flight pins a lock connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cell_of_the_state_table() {
    let app = spawn_app_with(|v| {
        v.insert("RTM_DATABASE_POOL_SIZE".into(), "8".into());
    })
    .await;
    let all: Vec<Cell> = [
        Origin::NoRecord,
        Origin::Running,
        Origin::Stopped,
        Origin::Removed,
    ]
    .into_iter()
    .flat_map(cells)
    .collect();
    assert_eq!(all.len(), 24);
    futures_util::stream::iter(all.into_iter().map(|c| check(&app, c)))
        .buffer_unordered(6)
        .collect::<Vec<()>>()
        .await;
}
