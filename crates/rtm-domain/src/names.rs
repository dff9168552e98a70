//! The one rule for the plain names RTM is configured with (the owner,
//! the engines' network, the replica's instance id): Docker object names
//! and Redis consumer names alike, so one rule serves them all.

/// Whether `s` is 1 to `max` bytes of `[A-Za-z0-9_.-]`, starting with a
/// letter or digit.
///
/// ```
/// assert!(rtm_domain::is_plain_name("rtm-engines", 64));
/// assert!(!rtm_domain::is_plain_name("-x", 64));
/// assert!(!rtm_domain::is_plain_name("a b", 64));
/// assert!(!rtm_domain::is_plain_name("abc", 2));
/// ```
pub fn is_plain_name(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
