//! The environment reader: looks variables up through an injectable source,
//! applies defaults, collects every problem, and **records every variable
//! it reads**.
//!
//! The record is the one list of the service's variables: the typo warning
//! ([`unknown_variables`]) and the documentation test use it, so a variable
//! read anywhere in `load.rs` without being documented fails a test, and
//! there is no hand-kept list to forget. This holds because every variable
//! is read on every load, whatever the others hold (no read depends on
//! another value); a test checks it.

use std::time::Duration;

use super::error::ConfigError;
use super::format::parse_duration;

/// Where values come from: the process environment, or a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads variables, applies defaults, and records every problem and every
/// variable read.
pub(super) struct Reader<'a> {
    lookup: Lookup<'a>,
    errors: Vec<ConfigError>,
    read: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(lookup: Lookup<'a>) -> Self {
        Self {
            lookup,
            errors: Vec::new(),
            read: Vec::new(),
        }
    }

    /// The trimmed value, `None` when unset or empty (an empty value counts
    /// as unset). Records that `var` was read.
    pub(super) fn raw(&mut self, var: &'static str) -> Option<String> {
        if !self.read.contains(&var) {
            self.read.push(var);
        }
        (self.lookup)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The parsed value, or `None` after recording why not. Without a
    /// default, an unset variable is reported as required.
    pub(super) fn get<T>(
        &mut self,
        var: &'static str,
        default: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = match (self.raw(var), default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                self.fail(var, "is required but not set".to_owned());
                return None;
            }
        };
        match parse(&value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.fail(var, message);
                None
            }
        }
    }

    /// A duration; `positive` refuses zero.
    pub(super) fn duration(
        &mut self,
        var: &'static str,
        default: &str,
        positive: bool,
    ) -> Option<Duration> {
        self.get(var, Some(default), |s| {
            let d = parse_duration(s)?;
            if positive && d.is_zero() {
                Err(format!("{s:?} must be greater than zero"))
            } else {
                Ok(d)
            }
        })
    }

    /// Records a problem of `variable`.
    pub(super) fn fail(&mut self, variable: &'static str, message: String) {
        self.errors.push(ConfigError { variable, message });
    }

    /// The problems recorded so far.
    pub(super) fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// The problems and the variables read, in reading order.
    pub(super) fn finish(self) -> (Vec<ConfigError>, Vec<&'static str>) {
        (self.errors, self.read)
    }
}

/// Variables of the `rtmanager ctl` client, not of the service: an
/// operator's shell often holds them next to the service's, so the
/// service never reports them (`RTM_ADMIN_TOKEN` is both).
pub const CLIENT_VARIABLES: &[&str] = &["RTM_ADMIN_URL"];

/// Every variable the service reads, in reading order: what the reader
/// recorded while loading an empty environment.
pub fn known_variables() -> Vec<&'static str> {
    super::load::load(&|_| None, None).1
}

/// `RTM_*` names among `names` that the service does not read (likely
/// typos). `RTM_TEST_*` (the test suites' own variables) and the client's
/// [`CLIENT_VARIABLES`] are not reported.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = known_variables();
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("RTM_") && !n.starts_with("RTM_TEST_"))
        .filter(|n| !known.contains(&n.as_str()))
        .filter(|n| !CLIENT_VARIABLES.contains(&n.as_str()))
        .collect();
    unknown.sort();
    unknown
}
