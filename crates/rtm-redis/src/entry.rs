//! Lobby command entries: the pure translation of a stream entry's fields
//! into an [`OperationRequest`], or a typed [`Malformed`] reason.
//!
//! No I/O here, so every rule of the contract (`docs/lobby-stream.md`) is
//! unit-tested below. Decisions where SPEC §6 is silent:
//! - Unknown extra fields are ignored (a producer may add e.g. a trace id
//!   without turning every command into a dead letter); a field given twice
//!   is malformed (which value was meant is ambiguous).
//! - Known fields that do not apply to the op (`image_ref` on a stop) are
//!   ignored, but a present `stop_timeout_s` must be valid whatever the op.
//! - Empty `request_id` means none; longer than 256 bytes is malformed.

use std::fmt;
use std::time::Duration;

use rtm_domain::service::OperationRequest;
use rtm_domain::transition::Command;
use rtm_domain::{GameId, ImageRef, OpSource};

/// Largest accepted `stop_timeout_s`: one hour. A longer grace period is
/// almost certainly a unit mistake (milliseconds) and would pin the game's
/// lock for that long.
pub const MAX_STOP_TIMEOUT_S: u64 = 3600;

/// Longest accepted `request_id`, in bytes.
const MAX_REQUEST_ID_LEN: usize = 256;

/// One stream entry as read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id (`1732822421123-0`); the operation's `source_ref`.
    pub id: String,
    /// Field/value pairs in stream order; `None` when the entry is pending
    /// but its body was trimmed away (Redis answers a nil body).
    pub fields: Option<Vec<(String, String)>>,
    /// True when some field name or value was not UTF-8 (it is then held
    /// lossily converted in `fields`).
    pub invalid_utf8: bool,
}

impl StreamEntry {
    /// An entry with a body of valid UTF-8 fields (tests, fixtures).
    pub fn new(id: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        Self {
            id: id.into(),
            fields: Some(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            invalid_utf8: false,
        }
    }
}

/// Why an entry cannot become an operation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    MissingOp,
    UnknownOp(String),
    MissingGameId,
    InvalidGameId(String),
    MissingImageRef,
    InvalidImageRef {
        value: String,
        reason: String,
    },
    InvalidStopTimeout(String),
    InvalidRequestId,
    DuplicateField(String),
    InvalidEncoding,
    /// The entry is pending but its body was trimmed from the stream.
    Trimmed,
}

impl Malformed {
    /// The stable code written as `dead_reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Malformed::MissingOp => "missing_op",
            Malformed::UnknownOp(_) => "unknown_op",
            Malformed::MissingGameId => "missing_game_id",
            Malformed::InvalidGameId(_) => "invalid_game_id",
            Malformed::MissingImageRef => "missing_image_ref",
            Malformed::InvalidImageRef { .. } => "invalid_image_ref",
            Malformed::InvalidStopTimeout(_) => "invalid_stop_timeout",
            Malformed::InvalidRequestId => "invalid_request_id",
            Malformed::DuplicateField(_) => "duplicate_field",
            Malformed::InvalidEncoding => "invalid_encoding",
            Malformed::Trimmed => "trimmed",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::MissingOp => f.write_str("field `op` is missing"),
            Malformed::UnknownOp(op) => {
                write!(
                    f,
                    "unknown op {op:?} (expected start, stop, restart or patch)"
                )
            }
            Malformed::MissingGameId => f.write_str("field `game_id` is missing"),
            Malformed::InvalidGameId(v) => write!(f, "invalid game_id {v:?}"),
            Malformed::MissingImageRef => f.write_str("field `image_ref` is required for this op"),
            Malformed::InvalidImageRef { value, reason } => {
                write!(f, "invalid image_ref {value:?}: {reason}")
            }
            Malformed::InvalidStopTimeout(v) => write!(
                f,
                "invalid stop_timeout_s {v:?} (expected an integer 0..={MAX_STOP_TIMEOUT_S})"
            ),
            Malformed::InvalidRequestId => {
                write!(f, "request_id longer than {MAX_REQUEST_ID_LEN} bytes")
            }
            Malformed::DuplicateField(name) => write!(f, "field `{name}` is given more than once"),
            Malformed::InvalidEncoding => f.write_str("a field name or value is not UTF-8"),
            Malformed::Trimmed => {
                f.write_str("the entry was trimmed from the stream before it was processed")
            }
        }
    }
}

/// Why an entry goes to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadReason {
    Malformed(Malformed),
    /// Delivered more than `max_deliveries` times without being acknowledged.
    MaxDeliveries {
        deliveries: u64,
        max: u64,
    },
}

impl DeadReason {
    /// The stable code written as `dead_reason`.
    pub fn code(&self) -> &'static str {
        match self {
            DeadReason::Malformed(m) => m.code(),
            DeadReason::MaxDeliveries { .. } => "max_deliveries",
        }
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadReason::Malformed(m) => m.fmt(f),
            DeadReason::MaxDeliveries { deliveries, max } => {
                write!(
                    f,
                    "delivered {deliveries} times (more than the maximum {max})"
                )
            }
        }
    }
}

/// Parses one entry into a Lobby operation request
/// (`source = lobby_stream`, `source_ref = entry id`).
pub fn parse_entry(entry: &StreamEntry) -> Result<OperationRequest, Malformed> {
    let Some(fields) = &entry.fields else {
        return Err(Malformed::Trimmed);
    };
    if entry.invalid_utf8 {
        return Err(Malformed::InvalidEncoding);
    }
    let mut op = None;
    let mut game_id = None;
    let mut image_ref = None;
    let mut request_id = None;
    let mut stop_timeout = None;
    for (name, value) in fields {
        let slot = match name.as_str() {
            "op" => &mut op,
            "game_id" => &mut game_id,
            "image_ref" => &mut image_ref,
            "request_id" => &mut request_id,
            "stop_timeout_s" => &mut stop_timeout,
            // Unknown fields are ignored: see the module comment.
            _ => continue,
        };
        if slot.replace(value.as_str()).is_some() {
            return Err(Malformed::DuplicateField(name.clone()));
        }
    }

    let op = op.ok_or(Malformed::MissingOp)?;
    let game_raw = game_id.ok_or(Malformed::MissingGameId)?;
    let game_id =
        GameId::parse(game_raw).map_err(|_| Malformed::InvalidGameId(game_raw.to_owned()))?;
    let image = || -> Result<ImageRef, Malformed> {
        let raw = image_ref.ok_or(Malformed::MissingImageRef)?;
        ImageRef::parse(raw).map_err(|e| Malformed::InvalidImageRef {
            value: raw.to_owned(),
            reason: e.to_string(),
        })
    };
    let command = match op {
        "start" => Command::Start { image: image()? },
        "patch" => Command::Patch { image: image()? },
        "stop" => Command::Stop,
        "restart" => Command::Restart,
        other => return Err(Malformed::UnknownOp(other.to_owned())),
    };
    let stop_timeout = stop_timeout.map(parse_stop_timeout).transpose()?;
    let request_id = match request_id {
        None | Some("") => None,
        Some(r) if r.len() > MAX_REQUEST_ID_LEN => return Err(Malformed::InvalidRequestId),
        Some(r) => Some(r.to_owned()),
    };

    let mut req = OperationRequest::new(game_id, command, OpSource::LobbyStream);
    req.source_ref = Some(entry.id.clone());
    req.stop_timeout = stop_timeout;
    req.request_id = request_id;
    Ok(req)
}

/// A non-negative integer number of seconds, at most [`MAX_STOP_TIMEOUT_S`].
/// Only ASCII digits: no sign, no fraction, no unit, no blanks.
fn parse_stop_timeout(raw: &str) -> Result<Duration, Malformed> {
    let bad = || Malformed::InvalidStopTimeout(raw.to_owned());
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = raw.parse().map_err(|_| bad())?;
    if secs > MAX_STOP_TIMEOUT_S {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1732822421123-0";

    fn parse(fields: &[(&str, &str)]) -> Result<OperationRequest, Malformed> {
        parse_entry(&StreamEntry::new(ID, fields))
    }

    fn game(s: &str) -> GameId {
        GameId::parse(s).expect("valid test game id")
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).expect("valid test image")
    }

    #[test]
    fn each_op_parses() {
        let start = parse(&[
            ("op", "start"),
            ("game_id", "g1"),
            ("image_ref", "ghcr.io/acme/engine:1.0.0"),
        ])
        .expect("start parses");
        assert_eq!(start.game_id, game("g1"));
        assert_eq!(
            start.command,
            Command::Start {
                image: image("ghcr.io/acme/engine:1.0.0")
            }
        );
        assert_eq!(start.source, OpSource::LobbyStream);
        assert_eq!(start.source_ref.as_deref(), Some(ID));
        assert_eq!(start.stop_timeout, None);
        assert_eq!(start.request_id, None);
        assert!(!start.force);

        let patch = parse(&[
            ("op", "patch"),
            ("game_id", "g1"),
            ("image_ref", "ghcr.io/acme/engine:1.0.1"),
        ])
        .expect("patch parses");
        assert_eq!(
            patch.command,
            Command::Patch {
                image: image("ghcr.io/acme/engine:1.0.1")
            }
        );

        let stop = parse(&[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "10")])
            .expect("stop parses");
        assert_eq!(stop.command, Command::Stop);
        assert_eq!(stop.stop_timeout, Some(Duration::from_secs(10)));

        let restart = parse(&[
            ("op", "restart"),
            ("game_id", "g.1-x_2"),
            ("request_id", "lobby-7"),
        ])
        .expect("restart parses");
        assert_eq!(restart.command, Command::Restart);
        assert_eq!(restart.request_id.as_deref(), Some("lobby-7"));
    }

    #[test]
    fn field_order_and_unknown_fields_do_not_matter() {
        let req = parse(&[
            ("trace_id", "abc"),
            ("image_ref", "engine:2.0.0"),
            ("game_id", "g1"),
            ("op", "start"),
        ])
        .expect("parses");
        assert_eq!(
            req.command,
            Command::Start {
                image: image("docker.io/library/engine:2.0.0")
            }
        );
    }

    #[test]
    fn fields_that_do_not_apply_are_ignored() {
        let req = parse(&[
            ("op", "stop"),
            ("game_id", "g1"),
            ("image_ref", "::not an image::"),
        ])
        .expect("image_ref is ignored on stop");
        assert_eq!(req.command, Command::Stop);
    }

    #[test]
    fn malformed_entries_have_typed_reasons() {
        let cases: &[(&[(&str, &str)], Malformed)] = &[
            (&[("game_id", "g1")], Malformed::MissingOp),
            (&[], Malformed::MissingOp),
            (
                &[("op", "START"), ("game_id", "g1")],
                Malformed::UnknownOp("START".into()),
            ),
            (
                &[("op", "cleanup_container"), ("game_id", "g1")],
                Malformed::UnknownOp("cleanup_container".into()),
            ),
            (&[("op", "stop")], Malformed::MissingGameId),
            (
                &[("op", "stop"), ("game_id", "")],
                Malformed::InvalidGameId("".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "-g")],
                Malformed::InvalidGameId("-g".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "a b")],
                Malformed::InvalidGameId("a b".into()),
            ),
            (
                &[("op", "stop"), ("game_id", &"x".repeat(64))],
                Malformed::InvalidGameId("x".repeat(64)),
            ),
            (
                &[("op", "start"), ("game_id", "g1")],
                Malformed::MissingImageRef,
            ),
            (
                &[("op", "patch"), ("game_id", "g1")],
                Malformed::MissingImageRef,
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "-1")],
                Malformed::InvalidStopTimeout("-1".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "1.5")],
                Malformed::InvalidStopTimeout("1.5".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "10s")],
                Malformed::InvalidStopTimeout("10s".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", "")],
                Malformed::InvalidStopTimeout("".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("stop_timeout_s", " 5")],
                Malformed::InvalidStopTimeout(" 5".into()),
            ),
            (
                &[
                    ("op", "stop"),
                    ("game_id", "g1"),
                    ("stop_timeout_s", "3601"),
                ],
                Malformed::InvalidStopTimeout("3601".into()),
            ),
            (
                &[
                    ("op", "stop"),
                    ("game_id", "g1"),
                    ("stop_timeout_s", "99999999999999999999999"),
                ],
                Malformed::InvalidStopTimeout("99999999999999999999999".into()),
            ),
            (
                &[
                    ("op", "start"),
                    ("game_id", "g1"),
                    ("image_ref", "e:1"),
                    ("stop_timeout_s", "x"),
                ],
                Malformed::InvalidStopTimeout("x".into()),
            ),
            (
                &[("op", "stop"), ("game_id", "g1"), ("op", "start")],
                Malformed::DuplicateField("op".into()),
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(
                parse(fields).as_ref().err(),
                Some(want),
                "fields {fields:?}"
            );
        }
        let long_id = "r".repeat(257);
        assert_eq!(
            parse(&[("op", "stop"), ("game_id", "g1"), ("request_id", &long_id)]).err(),
            Some(Malformed::InvalidRequestId)
        );
    }

    #[test]
    fn bad_image_ref_keeps_value_and_reason() {
        let err = parse(&[
            ("op", "start"),
            ("game_id", "g1"),
            ("image_ref", "UPPER/Case:1"),
        ])
        .expect_err("uppercase repository is not a reference");
        match err {
            Malformed::InvalidImageRef { value, reason } => {
                assert_eq!(value, "UPPER/Case:1");
                assert!(!reason.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn stop_timeout_bounds() {
        for (raw, secs) in [("0", 0), ("30", 30), ("3600", 3600), ("007", 7)] {
            let req = parse(&[
                ("op", "restart"),
                ("game_id", "g1"),
                ("stop_timeout_s", raw),
            ])
            .expect("valid");
            assert_eq!(req.stop_timeout, Some(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn empty_request_id_is_none() {
        let req = parse(&[("op", "stop"), ("game_id", "g1"), ("request_id", "")]).expect("valid");
        assert_eq!(req.request_id, None);
    }

    #[test]
    fn trimmed_and_badly_encoded_entries() {
        let trimmed = StreamEntry {
            id: ID.into(),
            fields: None,
            invalid_utf8: false,
        };
        assert_eq!(parse_entry(&trimmed).err(), Some(Malformed::Trimmed));
        let mut bad = StreamEntry::new(ID, &[("op", "stop"), ("game_id", "g\u{FFFD}")]);
        bad.invalid_utf8 = true;
        assert_eq!(parse_entry(&bad).err(), Some(Malformed::InvalidEncoding));
    }

    #[test]
    fn reason_codes_are_stable_snake_case() {
        let all = [
            DeadReason::Malformed(Malformed::MissingOp),
            DeadReason::Malformed(Malformed::Trimmed),
            DeadReason::MaxDeliveries {
                deliveries: 6,
                max: 5,
            },
        ];
        let codes: Vec<_> = all.iter().map(DeadReason::code).collect();
        assert_eq!(codes, ["missing_op", "trimmed", "max_deliveries"]);
        assert_eq!(
            DeadReason::MaxDeliveries {
                deliveries: 6,
                max: 5
            }
            .to_string(),
            "delivered 6 times (more than the maximum 5)"
        );
    }
}
