//! [`Allowlist`]: the configured set of images RTM may run, compared by
//! exact registry host and repository (`/*` entries allow a subtree).

use std::fmt;

use super::reference::{looks_like_registry, split_name_with, validate_registry};
use super::ImageRef;

/// The configured set of images RTM may run (`RTM_IMAGE_ALLOWLIST`).
///
/// ```
/// use rtm_domain::{Allowlist, ImageRef};
/// let list = Allowlist::parse("ghcr.io/acme/*, docker.io/library/nginx").unwrap();
/// assert!(list.allows(&ImageRef::parse("ghcr.io/acme/engine:1.0.0").unwrap()));
/// assert!(list.allows(&ImageRef::parse("nginx:1.25").unwrap()));
/// assert!(!list.allows(&ImageRef::parse("ghcr.io.evil.com/acme/engine").unwrap()));
/// assert!(!list.allows(&ImageRef::parse("ghcr.io/acmecorp/engine").unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    registry: String,
    repository: String,
    /// `true` for `host/prefix/*`: any repository strictly below `repository`.
    subtree: bool,
}

/// Why an allow-list entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allow-list entry {entry:?}: {reason}")]
pub struct AllowlistError {
    /// The entry as written (trimmed).
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Allowlist {
    /// Parses a comma-separated list of `host/repository` or
    /// `host/prefix/*` entries. Entries may not carry a tag or digest.
    /// Surrounding whitespace and empty entries are ignored.
    pub fn parse(s: &str) -> Result<Self, AllowlistError> {
        let entries = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_entry)
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// An allow-list that allows nothing.
    pub fn empty() -> Self {
        Self { entries: vec![] }
    }

    /// Whether the list has no entry (and so allows no image).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `image`'s registry and repository match an entry exactly.
    pub fn allows(&self, image: &ImageRef) -> bool {
        self.entries.iter().any(|e| {
            e.registry == image.registry()
                && if e.subtree {
                    e.repository.is_empty()
                        || image
                            .repository()
                            .strip_prefix(e.repository.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                } else {
                    e.repository == image.repository()
                }
        })
    }
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}/{}", e.registry, e.repository)?;
            if e.subtree {
                f.write_str("/*")?;
            }
        }
        Ok(())
    }
}

fn parse_entry(entry: &str) -> Result<AllowEntry, AllowlistError> {
    let err = |reason: String| AllowlistError {
        entry: entry.to_owned(),
        reason,
    };
    let (name, subtree) = match entry.strip_suffix("/*") {
        Some(prefix) => (prefix, true),
        None => (entry, false),
    };
    // `host[:port]/*` first: a registry's port is not a tag.
    let whole_registry = subtree && !name.contains('/') && looks_like_registry(name);
    if name.contains('@')
        || (!whole_registry
            && name
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')))
    {
        return Err(err(
            "an entry names a repository, without tag or digest".into()
        ));
    }
    if whole_registry {
        // `host/*`: every repository of one registry.
        validate_registry(name).map_err(|e| err(e.to_string()))?;
        return Ok(AllowEntry {
            registry: name.to_ascii_lowercase(),
            repository: String::new(),
            subtree,
        });
    }
    // A subtree keeps the path as written (`acme/*` is `docker.io/acme/*`,
    // not `docker.io/library/acme/*`); a repository gets Docker's defaults.
    let (registry, repository) = split_name_with(name, !subtree).map_err(|e| err(e.to_string()))?;
    Ok(AllowEntry {
        registry,
        repository,
        subtree,
    })
}
