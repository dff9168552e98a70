//! Row ↔ domain conversions. The adapter owns the row shapes; the domain
//! types derive nothing database-related (STYLE: adapters convert).
//!
//! Reading is strict where the domain is: an unknown status, an invalid
//! game id or image reference is `StoreError::Corrupt` naming the column,
//! never a silently "fixed" value. Health `details` is lenient, because
//! other tools may have written richer JSON: numbers that fit an `i64`
//! stay numbers, anything else becomes the text of its JSON.

use rtm_domain::{
    ContainerId, DetailValue, ErrorCode, GameId, HealthDetails, HealthEvent, HealthSnapshot,
    HealthSource, HealthStatus, ImageRef, OpError, OpKind, OpSource, OperationEntry, Outcome,
    RuntimeRecord, RuntimeStatus, StoreError,
};
use serde_json::Value;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::error::corrupt;

pub(crate) const RECORD_COLUMNS: &str = "game_id, status, current_container_id, current_image_ref, \
     engine_endpoint, state_path, docker_network, started_at, stopped_at, removed_at, last_op_at, created_at";

pub(crate) const OPERATION_COLUMNS: &str =
    "id, game_id, op_kind, op_source, source_ref, image_ref, \
     container_id, outcome, error_code, error_message, started_at, finished_at";

pub(crate) const SNAPSHOT_COLUMNS: &str =
    "game_id, container_id, status, source, details, observed_at";

/// The snapshot's columns in a join with `runtime_records` (alias `h`),
/// renamed with [`JOINED_SNAPSHOT`] so they do not collide with the record's.
pub(crate) const JOINED_SNAPSHOT_COLUMNS: &str = "h.game_id AS h_game_id, \
     h.container_id AS h_container_id, h.status AS h_status, h.source AS h_source, \
     h.details AS h_details, h.observed_at AS h_observed_at";

/// Where a row keeps a snapshot's columns: their names, from a prefix
/// (`""` for the table itself, `"h_"` in a join) and the status column
/// (`status`, or `event_type` in the outbox).
#[derive(Clone, Copy)]
pub(crate) struct SnapshotColumns {
    prefix: &'static str,
    status: &'static str,
}

/// `health_snapshots` read directly.
pub(crate) const SNAPSHOT: SnapshotColumns = SnapshotColumns {
    prefix: "",
    status: "status",
};
/// `health_outbox`: the status is the `event_type`.
pub(crate) const OUTBOX: SnapshotColumns = SnapshotColumns {
    prefix: "",
    status: "event_type",
};
/// [`JOINED_SNAPSHOT_COLUMNS`].
pub(crate) const JOINED_SNAPSHOT: SnapshotColumns = SnapshotColumns {
    prefix: "h_",
    status: "status",
};

impl SnapshotColumns {
    fn name(&self, column: &str) -> String {
        format!("{}{column}", self.prefix)
    }
}

/// A typed column read whose failure names the column.
fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|e| corrupt(format!("column {name}: {e}")))
}

/// A text column that stores "none" as `''` (the schema's convention for
/// optional text), read as `None` when empty.
pub(crate) fn non_empty(row: &Row, name: &str) -> Result<Option<String>, StoreError> {
    let s: String = col(row, name)?;
    Ok((!s.is_empty()).then_some(s))
}

pub(crate) fn game(row: &Row, name: &str) -> Result<GameId, StoreError> {
    let s: String = col(row, name)?;
    GameId::parse(&s).map_err(|e| corrupt(format!("{name} {s:?}: {e}")))
}

fn vocab<T, E: std::fmt::Display>(
    row: &Row,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    let s: String = col(row, name)?;
    parse(&s).map_err(|e| corrupt(format!("{name}: {e}")))
}

pub(crate) fn record(row: &Row) -> Result<RuntimeRecord, StoreError> {
    let container: Option<String> = col(row, "current_container_id")?;
    let image: Option<String> = col(row, "current_image_ref")?;
    let image_ref = match image.as_deref() {
        None | Some("") => None,
        Some(s) => {
            Some(ImageRef::parse(s).map_err(|e| corrupt(format!("current_image_ref {s:?}: {e}")))?)
        }
    };
    Ok(RuntimeRecord {
        game_id: game(row, "game_id")?,
        status: vocab(row, "status", RuntimeStatus::parse)?,
        container_id: container.and_then(ContainerId::new),
        image_ref,
        engine_endpoint: col(row, "engine_endpoint")?,
        state_path: col(row, "state_path")?,
        docker_network: col(row, "docker_network")?,
        started_at: col(row, "started_at")?,
        stopped_at: col(row, "stopped_at")?,
        removed_at: col(row, "removed_at")?,
        last_op_at: col(row, "last_op_at")?,
        created_at: col(row, "created_at")?,
    })
}

pub(crate) fn operation(row: &Row) -> Result<OperationEntry, StoreError> {
    let code: String = col(row, "error_code")?;
    let message: String = col(row, "error_message")?;
    // The seed stores "no error" as ''. A code RTM does not know is corrupt:
    // the vocabulary is closed and shared with REST.
    let error = if code.is_empty() {
        None
    } else {
        let code = ErrorCode::parse(&code)
            .ok_or_else(|| corrupt(format!("error_code: unknown code {code:?}")))?;
        Some(OpError { code, message })
    };
    Ok(OperationEntry {
        id: col(row, "id")?,
        game_id: game(row, "game_id")?,
        kind: vocab(row, "op_kind", OpKind::parse)?,
        source: vocab(row, "op_source", OpSource::parse)?,
        source_ref: non_empty(row, "source_ref")?,
        image_ref: non_empty(row, "image_ref")?,
        container_id: non_empty(row, "container_id")?.and_then(ContainerId::new),
        outcome: vocab(row, "outcome", Outcome::parse)?,
        error,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

/// A snapshot, from `health_snapshots` or (with `event_type` for `status`)
/// from `health_outbox`.
pub(crate) fn snapshot(row: &Row, cols: SnapshotColumns) -> Result<HealthSnapshot, StoreError> {
    let details: Value = col(row, &cols.name("details"))?;
    Ok(HealthSnapshot {
        game_id: game(row, &cols.name("game_id"))?,
        container_id: non_empty(row, &cols.name("container_id"))?.and_then(ContainerId::new),
        status: vocab(row, &cols.name(cols.status), HealthStatus::parse)?,
        source: vocab(row, &cols.name("source"), HealthSource::parse)?,
        details: details_from_json(details)?,
        observed_at: col(row, &cols.name("observed_at"))?,
    })
}

/// The record of a [`JOINED_SNAPSHOT_COLUMNS`] row and its snapshot, `None`
/// when the outer join found none.
pub(crate) fn record_with_health(
    row: &Row,
) -> Result<(RuntimeRecord, Option<HealthSnapshot>), StoreError> {
    let has_snapshot = col::<Option<String>>(row, "h_game_id")?.is_some();
    let health = if has_snapshot {
        Some(snapshot(row, JOINED_SNAPSHOT)?)
    } else {
        None
    };
    Ok((record(row)?, health))
}

pub(crate) fn event(row: &Row) -> Result<HealthEvent, StoreError> {
    Ok(HealthEvent {
        id: col(row, "id")?,
        snapshot: snapshot(row, OUTBOX)?,
    })
}

pub(crate) fn details_to_json(details: &HealthDetails) -> Value {
    Value::Object(
        details
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    DetailValue::Int(i) => Value::from(*i),
                    DetailValue::Bool(b) => Value::Bool(*b),
                    DetailValue::Text(t) => Value::String(t.clone()),
                };
                (k.to_owned(), v)
            })
            .collect(),
    )
}

pub(crate) fn details_from_json(value: Value) -> Result<HealthDetails, StoreError> {
    let Value::Object(map) = value else {
        return Err(corrupt(format!("details is not a JSON object: {value}")));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Bool(b) => DetailValue::Bool(b),
                Value::String(s) => DetailValue::Text(s),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => DetailValue::Int(i),
                    None => DetailValue::Text(n.to_string()),
                },
                other => DetailValue::Text(other.to_string()),
            };
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_roundtrip_and_leniency() {
        let d = HealthDetails::new()
            .with("exit_code", 137i64)
            .with("oom", true)
            .with("error", "connection refused");
        assert_eq!(details_from_json(details_to_json(&d)).unwrap(), d);

        let odd = serde_json::json!({
            "big": 18446744073709551615u64, "f": 1.5, "n": null, "a": [1], "o": {"x": 1}
        });
        let got = details_from_json(odd).unwrap();
        assert_eq!(
            got.get("big"),
            Some(&DetailValue::Text("18446744073709551615".into()))
        );
        assert_eq!(got.get("f"), Some(&DetailValue::Text("1.5".into())));
        assert_eq!(got.get("n"), Some(&DetailValue::Text("null".into())));
        assert_eq!(got.get("a"), Some(&DetailValue::Text("[1]".into())));
        assert_eq!(got.get("o"), Some(&DetailValue::Text("{\"x\":1}".into())));
        assert!(details_from_json(serde_json::json!([1])).is_err());
    }
}
