//! Validated identifiers: [`GameId`] and [`ContainerId`].
//!
//! Holding a `GameId` proves the string obeys SPEC §3: 1–63 characters of
//! `[A-Za-z0-9_.-]`, starting with a letter or a digit. The same alphabet is
//! what Docker accepts in a container name, so `rtm-<game_id>` is always a
//! valid name.

use std::fmt;

/// The identifier of a game, as chosen by the Lobby.
///
/// ```
/// use rtm_domain::GameId;
/// let id = GameId::parse("chess-42").unwrap();
/// assert_eq!(id.as_str(), "chess-42");
/// assert!(GameId::parse("-leading-dash").is_err());
/// assert!(GameId::parse("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GameId(String);

/// Why a string is not a [`GameId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameIdError {
    /// The empty string.
    #[error("game_id is empty")]
    Empty,
    /// Longer than [`GameId::MAX_LEN`] bytes (a DNS label's limit).
    #[error("game_id is longer than {max} characters", max = GameId::MAX_LEN)]
    TooLong,
    /// The first character is not an ASCII letter or digit.
    #[error("game_id must start with a letter or a digit")]
    BadFirstChar,
    /// A character outside `[A-Za-z0-9_.-]` (the first one found).
    #[error("game_id may only contain letters, digits, '_', '.' and '-' (found {0:?})")]
    BadChar(char),
}

impl GameId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 63;

    /// Validates `s` as a game id.
    pub fn parse(s: &str) -> Result<Self, GameIdError> {
        let first = s.chars().next().ok_or(GameIdError::Empty)?;
        if s.len() > Self::MAX_LEN {
            return Err(GameIdError::TooLong);
        }
        if !first.is_ascii_alphanumeric() {
            return Err(GameIdError::BadFirstChar);
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(GameIdError::BadChar(bad));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id exactly as given (case kept).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical container name, `rtm-<game_id>`.
    pub fn container_name(&self) -> String {
        format!("rtm-{}", self.0)
    }

    /// The id as Docker's embedded DNS compares names: ASCII lower case.
    /// Two live games with the same folded id would share one DNS name, so
    /// the per-game lock and the collision check use this form.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The name a patch gives the previous container while it swaps.
    ///
    /// Canonical names all start with `rtm-`, so a name starting with
    /// `rtmold-` can never be the canonical name of another game.
    pub fn parked_container_name(&self) -> String {
        format!("rtmold-{}", self.0)
    }
}

impl fmt::Display for GameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Docker container id (or any id the container runtime uses).
///
/// Not validated beyond being non-empty: it only ever comes from the runtime
/// or from our own records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// Wraps a runtime-issued id. Returns `None` for an empty string.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        (!id.is_empty()).then_some(Self(id))
    }

    /// The full id, as the runtime issued it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 characters, as `docker ps` shows them.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "0", "A.b_c-d", &"x".repeat(63)] {
            assert!(GameId::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(GameId::parse(""), Err(GameIdError::Empty));
        assert_eq!(GameId::parse(&"x".repeat(64)), Err(GameIdError::TooLong));
        assert_eq!(GameId::parse("_a"), Err(GameIdError::BadFirstChar));
        assert_eq!(GameId::parse(".a"), Err(GameIdError::BadFirstChar));
        assert_eq!(GameId::parse("a/b"), Err(GameIdError::BadChar('/')));
        assert_eq!(GameId::parse("a b"), Err(GameIdError::BadChar(' ')));
        assert_eq!(GameId::parse("é"), Err(GameIdError::BadFirstChar));
        assert_eq!(GameId::parse("aé"), Err(GameIdError::BadChar('é')));
    }

    proptest! {
        #[test]
        fn valid_ids_roundtrip(s in "[A-Za-z0-9][A-Za-z0-9_.-]{0,62}") {
            let id = GameId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert!(id.container_name().starts_with("rtm-"));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_the_alphabet(s in "\\PC{0,80}") {
            if let Ok(id) = GameId::parse(&s) {
                prop_assert!(id.as_str().len() <= 63);
                prop_assert!(id.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
            }
        }
    }
}
