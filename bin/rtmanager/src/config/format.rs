//! The value formats of SPEC §10, shared by every variable: durations
//! (`500ms`, `5s`, `10m`, `24h`, `90d`), sizes (`512k`, `256m`, `1g`, bytes),
//! booleans, whole numbers in a range, CPU counts, listen addresses, tokens,
//! names and paths. Each parser returns the message that follows the bad
//! value's variable name; none echoes a secret.
//!
//! A setting's own rules (a schema name, a Docker host, an engine user, …)
//! are not here: the crate that owns the setting parses it.

use std::net::SocketAddr;
use std::time::Duration;

use super::secret::Secret;
use super::LogFormat;

/// Shortest accepted bearer token: 16 characters make guessing hopeless
/// even without rate limiting.
pub const MIN_TOKEN_LEN: usize = 16;

/// Upper bound of `RTM_ENGINE_CPUS`; a larger value is a typo, not a host.
const MAX_ENGINE_CPUS: u64 = 1024;

/// Parses `500ms`, `5s`, `10m`, `24h`, `90d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (use 500ms, 5s, 10m, 24h)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `1024`, `512k`, `256m`, `1g` into bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (use 512k, 256m, 1g, or bytes)");
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        Some(_) => (s, 0),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `true`, `false`, `1`, `0` (the words case-insensitively).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (use true, false, 1 or 0)")),
    }
}

/// Parses a positive decimal CPU count (`1`, `0.5`, `2.25`) into nano CPUs,
/// in integer arithmetic so `0.1` is exactly 100 000 000.
pub fn parse_cpus(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a positive decimal number of CPUs (e.g. 1, 0.5, 2.25)");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !all_digits(int)
        || !all_digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("{s:?} has more than 9 decimal places"));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    if whole > MAX_ENGINE_CPUS {
        return Err(format!("{s:?} is more than {MAX_ENGINE_CPUS} CPUs"));
    }
    let frac_nanos: u64 = if frac.is_empty() {
        0
    } else {
        // Right-pad to 9 digits: "25" → 250_000_000.
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let nanos = whole * 1_000_000_000 + frac_nanos;
    if nanos == 0 {
        return Err(format!("{s:?} must be greater than 0"));
    }
    Ok(nanos)
}

/// An absolute path other than `/`, without `..`; a trailing `/` is dropped.
pub(super) fn parse_absolute_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.len() > 1 && !s.split('/').any(|c| c == "..") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!(
            "{s:?} must be an absolute path other than / (without '..')"
        ))
    }
}

/// A name made of `[A-Za-z0-9_.-]`, starting alphanumeric, at most `max`
/// characters: the instance id (a stream consumer name).
pub(super) fn parse_name(s: &str, max: usize) -> Result<String, String> {
    if rtm_domain::is_plain_name(s, max) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} must be 1-{max} characters of letters, digits, '_', '.' and '-', starting with a letter or digit"
        ))
    }
}

/// A Redis key: printable ASCII without spaces.
pub(super) fn parse_key(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} must be printable ASCII without spaces"))
    }
}

/// A bearer token: at least [`MIN_TOKEN_LEN`] printable ASCII characters.
pub(super) fn parse_token(s: &str) -> Result<Secret, String> {
    // The value is a secret: never echo it, not even in an error.
    if s.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "must be at least {MIN_TOKEN_LEN} characters (got {})",
            s.chars().count()
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(Secret::new(s))
}

/// A whole number in `min..=max`, converted to the field's type (the range
/// guarantees it fits).
pub(super) fn parse_number<T: TryFrom<u64>>(s: &str, min: u64, max: u64) -> Result<T, String> {
    let n: u64 = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().map_err(|_| format!("{s:?} is too large"))?
    } else {
        return Err(format!("{s:?} is not a whole number"));
    };
    if n < min || n > max {
        return Err(format!("{s:?} must be between {min} and {max}"));
    }
    T::try_from(n).map_err(|_| format!("{s:?} is too large"))
}

/// A size of at least `min` bytes; `shown` is how the minimum is written.
pub(super) fn parse_size_at_least(s: &str, min: u64, shown: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n < min {
        Err(format!("{s:?} must be at least {shown}"))
    } else {
        Ok(n)
    }
}

/// `text` or `json`.
pub(super) fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (use text or json)")),
    }
}

/// The values of `RTM_RUNTIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Docker,
    Swarm,
}

/// `RTM_RUNTIME`: `docker` or `swarm`, exactly.
pub fn parse_runtime(s: &str) -> Result<RuntimeKind, String> {
    match s {
        "docker" => Ok(RuntimeKind::Docker),
        "swarm" => Ok(RuntimeKind::Swarm),
        _ => Err(format!("{s:?} is not a runtime (use docker or swarm)")),
    }
}

/// A socket address to listen on.
pub(super) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a listen address (e.g. 127.0.0.1:8080 or [::1]:8080)"))
}
