//! Decoding of the raw stream replies this crate reads (`XREADGROUP`,
//! `XAUTOCLAIM`, `XPENDING`, `XINFO GROUPS`) from fred's untyped `Value`.
//!
//! Decoding by hand rather than through fred's typed helpers keeps two
//! things fred's helpers lose: the nil body of a pending entry whose data
//! was trimmed, and non-UTF-8 field values (flagged, not dropped). Both
//! RESP2 arrays and RESP3 maps are accepted.

use fred::types::Value;

use crate::entry::StreamEntry;
use crate::RedisError;

fn protocol(what: &str, v: &Value) -> RedisError {
    RedisError::Protocol(format!("{what}: {v:?}"))
}

/// A string-ish value, lossily converted; the flag is false when the bytes
/// were not UTF-8.
fn text(v: &Value) -> Option<(String, bool)> {
    match v {
        Value::String(s) => Some((s.to_string(), true)),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Some((s.to_owned(), true)),
            Err(_) => Some((String::from_utf8_lossy(b).into_owned(), false)),
        },
        Value::Integer(i) => Some((i.to_string(), true)),
        Value::Double(d) => Some((d.to_string(), true)),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => text(other).and_then(|(s, _)| s.parse().ok()),
    }
}

/// `[id, [f1, v1, f2, v2, ...] | nil]`.
fn entry(v: &Value) -> Result<StreamEntry, RedisError> {
    let Value::Array(parts) = v else {
        return Err(protocol("stream entry is not an array", v));
    };
    let [id, body] = parts.as_slice() else {
        return Err(protocol("stream entry is not [id, fields]", v));
    };
    let (id, _) = text(id).ok_or_else(|| protocol("stream entry id", id))?;
    let mut invalid_utf8 = false;
    let fields = match body {
        Value::Null => None,
        Value::Array(flat) => {
            if flat.len() % 2 != 0 {
                return Err(protocol("odd number of field values", body));
            }
            let mut out = Vec::with_capacity(flat.len() / 2);
            for pair in flat.chunks_exact(2) {
                let (k, k_ok) = text(&pair[0]).ok_or_else(|| protocol("field name", &pair[0]))?;
                let (val, v_ok) =
                    text(&pair[1]).ok_or_else(|| protocol("field value", &pair[1]))?;
                invalid_utf8 |= !(k_ok && v_ok);
                out.push((k, val));
            }
            Some(out)
        }
        Value::Map(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (k, val) in map.clone().inner() {
                let (val, v_ok) = text(&val).ok_or_else(|| protocol("field value", &val))?;
                let k_str = k.as_str().map(str::to_owned);
                invalid_utf8 |= k_str.is_none() || !v_ok;
                out.push((
                    k_str.unwrap_or_else(|| String::from_utf8_lossy(k.as_bytes()).into_owned()),
                    val,
                ));
            }
            Some(out)
        }
        other => return Err(protocol("stream entry body", other)),
    };
    Ok(StreamEntry {
        id,
        fields,
        invalid_utf8,
    })
}

/// A list of entries.
pub(crate) fn entries(v: &Value) -> Result<Vec<StreamEntry>, RedisError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(entry).collect(),
        other => Err(protocol("entry list", other)),
    }
}

/// `XREADGROUP` for one stream: nil on timeout, else
/// `[[stream, [entries]]]` (RESP2) or `{stream: [entries]}` (RESP3).
pub(crate) fn xread(v: &Value) -> Result<Vec<StreamEntry>, RedisError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                match s {
                    Value::Array(kv) if kv.len() == 2 => out.extend(entries(&kv[1])?),
                    other => return Err(protocol("XREADGROUP stream", other)),
                }
            }
            Ok(out)
        }
        Value::Map(map) => {
            let mut out = Vec::new();
            for (_, es) in map.clone().inner() {
                out.extend(entries(&es)?);
            }
            Ok(out)
        }
        other => Err(protocol("XREADGROUP reply", other)),
    }
}

/// `XAUTOCLAIM` (Redis ≥ 7): `[next cursor, [entries], [deleted ids]]`;
/// Redis 6.2 omits the third element.
pub(crate) fn xautoclaim(v: &Value) -> Result<(String, Vec<StreamEntry>, Vec<String>), RedisError> {
    let Value::Array(parts) = v else {
        return Err(protocol("XAUTOCLAIM reply", v));
    };
    let (cursor, claimed, deleted) = match parts.as_slice() {
        [c, e] => (c, e, None),
        [c, e, d] => (c, e, Some(d)),
        _ => return Err(protocol("XAUTOCLAIM reply", v)),
    };
    let (cursor, _) = text(cursor).ok_or_else(|| protocol("XAUTOCLAIM cursor", cursor))?;
    let claimed = entries(claimed)?;
    let deleted = match deleted {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids.iter().filter_map(text).map(|(s, _)| s).collect(),
        Some(other) => return Err(protocol("XAUTOCLAIM deleted ids", other)),
    };
    Ok((cursor, claimed, deleted))
}

/// The millisecond timestamp of a stream entry id (`<ms>-<seq>`).
pub(crate) fn id_millis(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// The id of the first entry of an `XRANGE` reply, if any.
pub(crate) fn first_id(v: &Value) -> Option<String> {
    match v {
        Value::Array(entries) => match entries.first()? {
            Value::Array(entry) => text(entry.first()?).map(|(s, _)| s),
            _ => None,
        },
        _ => None,
    }
}

/// One row of the extended `XPENDING` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingRow {
    pub id: String,
    pub consumer: String,
    pub deliveries: u64,
}

/// Extended `XPENDING`: `[[id, consumer, idle ms, deliveries], ...]`.
pub(crate) fn xpending(v: &Value) -> Result<Vec<PendingRow>, RedisError> {
    let rows = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(rows) => rows,
        other => return Err(protocol("XPENDING reply", other)),
    };
    rows.iter()
        .map(|row| match row {
            Value::Array(cols) if cols.len() == 4 => Ok(PendingRow {
                id: text(&cols[0])
                    .ok_or_else(|| protocol("XPENDING id", row))?
                    .0,
                consumer: text(&cols[1])
                    .ok_or_else(|| protocol("XPENDING consumer", row))?
                    .0,
                deliveries: int(&cols[3]).ok_or_else(|| protocol("XPENDING deliveries", row))?,
            }),
            other => Err(protocol("XPENDING row", other)),
        })
        .collect()
}

/// The fields of `XINFO GROUPS` this crate reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRow {
    pub name: String,
    pub pending: u64,
    /// `None` when Redis cannot tell (nil `lag`, e.g. after deletions) or
    /// predates 7.0.
    pub lag: Option<u64>,
    /// The id of the last entry delivered to the group.
    pub last_delivered: Option<String>,
}

/// `XINFO GROUPS`: a list of flat `[k, v, k, v, ...]` arrays (RESP2) or maps.
pub(crate) fn xinfo_groups(v: &Value) -> Result<Vec<GroupRow>, RedisError> {
    let Value::Array(groups) = v else {
        return Err(protocol("XINFO GROUPS reply", v));
    };
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let pairs: Vec<(String, Value)> = match g {
            Value::Array(flat) if flat.len() % 2 == 0 => flat
                .chunks_exact(2)
                .filter_map(|p| text(&p[0]).map(|(k, _)| (k, p[1].clone())))
                .collect(),
            Value::Map(map) => map
                .clone()
                .inner()
                .into_iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v)))
                .collect(),
            other => return Err(protocol("XINFO GROUPS group", other)),
        };
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let name = get("name")
            .and_then(text)
            .map(|(s, _)| s)
            .ok_or_else(|| protocol("group name", g))?;
        let pending = get("pending").and_then(int).unwrap_or(0);
        let lag = get("lag").and_then(int);
        let last_delivered = get("last-delivered-id").and_then(text).map(|(s, _)| s);
        out.push(GroupRow {
            name,
            pending,
            lag,
            last_delivered,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }
    fn arr(v: Vec<Value>) -> Value {
        Value::Array(v)
    }

    #[test]
    fn xread_with_bodies_nil_bodies_and_bad_utf8() {
        let reply = arr(vec![arr(vec![
            s("lobby"),
            arr(vec![
                arr(vec![
                    s("1-0"),
                    arr(vec![s("op"), s("stop"), s("game_id"), s("g1")]),
                ]),
                arr(vec![s("2-0"), Value::Null]),
                arr(vec![
                    s("3-0"),
                    arr(vec![s("op"), Value::Bytes(vec![0xff, 0xfe].into())]),
                ]),
            ]),
        ])]);
        let got = xread(&reply).expect("decodes");
        assert_eq!(
            got[0],
            StreamEntry::new("1-0", &[("op", "stop"), ("game_id", "g1")])
        );
        assert_eq!(got[1].fields, None);
        assert!(got[2].invalid_utf8);
        assert_eq!(xread(&Value::Null).expect("timeout"), Vec::new());
        assert!(xread(&s("nope")).is_err());
    }

    #[test]
    fn xautoclaim_with_and_without_deleted_ids() {
        let reply = arr(vec![
            s("0-0"),
            arr(vec![arr(vec![s("5-0"), arr(vec![s("op"), s("stop")])])]),
            arr(vec![s("4-0")]),
        ]);
        let (cursor, claimed, deleted) = xautoclaim(&reply).expect("decodes");
        assert_eq!(cursor, "0-0");
        assert_eq!(claimed.len(), 1);
        assert_eq!(deleted, vec!["4-0".to_owned()]);
        let (_, _, deleted) = xautoclaim(&arr(vec![s("7-0"), arr(vec![])])).expect("6.2 form");
        assert!(deleted.is_empty());
    }

    #[test]
    fn xpending_rows() {
        let reply = arr(vec![arr(vec![
            s("1-0"),
            s("rtm-a"),
            Value::Integer(1200),
            Value::Integer(3),
        ])]);
        assert_eq!(
            xpending(&reply).expect("decodes"),
            vec![PendingRow {
                id: "1-0".into(),
                consumer: "rtm-a".into(),
                deliveries: 3
            }]
        );
    }

    #[test]
    fn xinfo_groups_flat_form() {
        let reply = arr(vec![arr(vec![
            s("name"),
            s("rtmanager"),
            s("consumers"),
            Value::Integer(1),
            s("pending"),
            Value::Integer(2),
            s("last-delivered-id"),
            s("5-0"),
            s("entries-read"),
            Value::Integer(5),
            s("lag"),
            Value::Null,
        ])]);
        assert_eq!(
            xinfo_groups(&reply).expect("decodes"),
            vec![GroupRow {
                name: "rtmanager".into(),
                pending: 2,
                lag: None,
                last_delivered: Some("5-0".into()),
            }]
        );
    }

    #[test]
    fn entry_ids_and_ranges() {
        assert_eq!(id_millis("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(id_millis("42"), Some(42));
        assert_eq!(id_millis("x-1"), None);
        let range = arr(vec![arr(vec![s("9-1"), arr(vec![s("k"), s("v")])])]);
        assert_eq!(first_id(&range), Some("9-1".to_owned()));
        assert_eq!(first_id(&arr(vec![])), None);
    }
}
