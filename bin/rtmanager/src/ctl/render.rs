//! Human output of `rtmanager ctl`: aligned tables and short times.
//! (`--json` bypasses all of it and prints the API's own documents.)

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Left-aligned columns separated by two spaces; the last column is not
/// padded (it may be long, e.g. an error message).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON string field, or `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".to_owned(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC), or `-`.
pub fn time(v: &Value) -> String {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// How long ago an RFC 3339 time was: `42s`, `5m`, `3h`, `2d`.
pub fn age(v: &Value, now: OffsetDateTime) -> String {
    let Some(t) = v
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    else {
        return "-".to_owned();
    };
    let secs = (now - t).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A game's health cell: `healthy (4s ago)`, or `-` without a snapshot.
pub fn health(h: &Value, now: OffsetDateTime) -> String {
    match h["status"].as_str() {
        Some(status) => format!("{status} ({} ago)", age(&h["observed_at"], now)),
        None => "-".to_owned(),
    }
}

/// The details object of a health snapshot as `k=v` pairs.
pub fn details(d: &Value) -> String {
    match d.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_times_shorten() {
        let t = table(
            &["GAME", "STATUS", "NOTE"],
            &[
                vec!["g1".into(), "running".into(), "x".into()],
                vec!["game-2".into(), "-".into(), "a long note".into()],
            ],
        );
        assert_eq!(
            t,
            "GAME    STATUS   NOTE\ng1      running  x\ngame-2  -        a long note"
        );
        assert_eq!(
            time(&json!("2030-01-02T03:04:05.678+01:00")),
            "2030-01-02 02:04:05"
        );
        assert_eq!(time(&Value::Null), "-");
        let now = OffsetDateTime::parse("2030-01-01T01:00:00Z", &Rfc3339).expect("time");
        assert_eq!(age(&json!("2030-01-01T00:59:18Z"), now), "42s");
        assert_eq!(age(&json!("2030-01-01T00:00:00Z"), now), "60m");
        assert_eq!(
            details(&json!({"exit_code": 3, "oom": false})),
            "exit_code=3 oom=false"
        );
    }
}
