//! [`ImageRef`]: the distribution reference grammar
//! (`[registry[:port]/]path[:tag][@digest]`) parsed and normalised the way
//! Docker does, with the validators of each part.

use std::fmt;

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised image reference.
///
/// ```
/// use rtm_domain::ImageRef;
/// let r = ImageRef::parse("nginx").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// let r = ImageRef::parse("ghcr.io/acme/engine:1.2.3").unwrap();
/// assert_eq!((r.registry(), r.repository(), r.tag()), ("ghcr.io", "acme/engine", Some("1.2.3")));
/// assert!(ImageRef::parse("Engine:1").is_err()); // repositories are lowercase
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// The empty string.
    #[error("image reference is empty")]
    Empty,
    /// The name (registry and repository) is longer than Docker accepts.
    #[error("image name is longer than 255 characters")]
    NameTooLong,
    /// The part before the first `/` looks like a host but is not a valid one.
    #[error("invalid registry host {0:?}")]
    BadRegistry(String),
    /// A path component is not lowercase alphanumerics joined by `.`,
    /// `_`, `__` or a run of `-`.
    #[error("invalid repository path component {0:?} (lowercase letters, digits and single separators only)")]
    BadPathComponent(String),
    /// The tag is not 1–128 of `[A-Za-z0-9_.-]` starting with a letter,
    /// digit or `_`.
    #[error("invalid tag {0:?}")]
    BadTag(String),
    /// The digest is not `algorithm:hex` with at least 32 hex digits.
    #[error("invalid digest {0:?}")]
    BadDigest(String),
}

impl ImageRef {
    /// Parses and normalises an image reference.
    pub fn parse(s: &str) -> Result<Self, ImageRefError> {
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_owned()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/': a ':' before
        // it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag)?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, path) = split_name(name)?;
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(Self {
            registry,
            repository: path,
            tag,
            digest,
        })
    }

    /// Registry host (with port, if any), lowercased; `docker.io` by default.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag (`latest` when the reference named neither tag nor
    /// digest); `None` for a digest-only reference.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, the unit the allow-list and the patch rule
    /// reason about.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether both references name the same registry and repository.
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits a name into (registry, repository path), applying Docker's
/// defaults, and validates both.
fn split_name(name: &str) -> Result<(String, String), ImageRefError> {
    split_name_with(name, true)
}

/// Docker's rule: the first component is a registry when it contains a
/// '.' or a ':', is "localhost", or has an uppercase letter.
pub(super) fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

pub(super) fn split_name_with(
    name: &str,
    library_default: bool,
) -> Result<(String, String), ImageRefError> {
    if name.is_empty() {
        return Err(ImageRefError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ImageRefError::NameTooLong);
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => {
            validate_registry(first)?;
            (first.to_ascii_lowercase(), rest.to_owned())
        }
        _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
    };
    for component in path.split('/') {
        validate_path_component(component)?;
    }
    let path = if library_default && registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if registry.len() + 1 + path.len() > MAX_NAME_LEN {
        return Err(ImageRefError::NameTooLong);
    }
    Ok((registry, path))
}

pub(super) fn validate_registry(host: &str) -> Result<(), ImageRefError> {
    let bad = || ImageRefError::BadRegistry(host.to_owned());
    let (hostname, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(bad());
        }
    }
    if let Some(v6) = hostname.strip_prefix('[') {
        let v6 = v6.strip_suffix(']').ok_or_else(bad)?;
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| bad());
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if hostname.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn validate_path_component(c: &str) -> Result<(), ImageRefError> {
    let bad = || ImageRefError::BadPathComponent(c.to_owned());
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A run of separators between two alphanumerics.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), ImageRefError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageRefError::BadTag(tag.to_owned()))
    }
}

/// `algorithm:hex` with an algorithm of `[A-Za-z][A-Za-z0-9]*` components
/// joined by `+.-_`, and at least 32 hex digits.
fn validate_digest(d: &str) -> Result<(), ImageRefError> {
    let bad = || ImageRefError::BadDigest(d.to_owned());
    let (algo, hex) = d.split_once(':').ok_or_else(bad)?;
    let algo_ok = algo.split(['+', '.', '-', '_']).all(|c| {
        let mut chars = c.chars();
        matches!(chars.next(), Some(f) if f.is_ascii_alphabetic())
            && chars.all(|ch| ch.is_ascii_alphanumeric())
    });
    if algo_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(bad())
    }
}
