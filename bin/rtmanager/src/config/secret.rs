//! Values that must never reach a log: [`Secret`] (bearer tokens) and
//! [`SecretUrl`] (connection URLs with a password). Their `Debug` hides the
//! secret, so the whole configuration may be logged at start.

use std::fmt;

use rtm_domain::redact_url;

/// A secret string: shown as `[redacted]` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL that may carry a password: `Debug` shows it with the
/// password replaced by `***` ([`rtm_domain::redact_url`], the one
/// redactor).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The URL with its password, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (if any) replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}
