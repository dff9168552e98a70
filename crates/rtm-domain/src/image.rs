//! Docker image references, the allow-list, and the patch rule.
//!
//! [`ImageRef::parse`] implements the distribution reference grammar
//! (`[registry[:port]/]path[:tag][@digest]`) and normalises the result the
//! way Docker does: no registry means `docker.io`, a single-component path on
//! `docker.io` gains `library/`, and a reference with neither tag nor digest
//! gets the tag `latest`. Once held, an `ImageRef` is well-formed and fully
//! qualified; its [`Display`](std::fmt::Display) form is what is passed to
//! the container runtime.
//!
//! [`Allowlist::check`] compares the registry host and repository *exactly*
//! (`ghcr.io.evil.com/x` never matches `ghcr.io/...`); an entry ending in
//! `/*` allows every repository below it.

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
fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn split_name_with(name: &str, library_default: bool) -> Result<(String, String), ImageRefError> {
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

fn validate_registry(host: &str) -> Result<(), ImageRefError> {
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
            e.registry == image.registry
                && if e.subtree {
                    e.repository.is_empty()
                        || image
                            .repository
                            .strip_prefix(e.repository.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                } else {
                    e.repository == image.repository
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

/// Why a patch from one image to another is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchRefusal {
    /// The new image is in another registry or repository; `force` does
    /// not override this.
    #[error("a patch keeps the repository: {from} cannot be patched to {to}")]
    OtherRepository {
        /// The running image.
        from: String,
        /// The image asked for.
        to: String,
    },
    /// Both tags are semantic versions and the major or minor part
    /// changes; `force` overrides this.
    #[error("only the patch part of a semantic version may change ({from} -> {to}); pass force to override")]
    NotAPatchVersion {
        /// The running image.
        from: String,
        /// The image asked for.
        to: String,
    },
}

/// SPEC §5: a patch keeps the registry and repository; when both tags are
/// semantic versions, only the patch part may change unless `force`.
///
/// ```
/// use rtm_domain::{check_patch, ImageRef};
/// let p = |s| ImageRef::parse(s).unwrap();
/// assert!(check_patch(&p("e:1.0.0"), &p("e:1.0.7"), false).is_ok());
/// assert!(check_patch(&p("e:1.0.0"), &p("e:1.1.0"), false).is_err());
/// assert!(check_patch(&p("e:1.0.0"), &p("e:2.0.0"), true).is_ok());
/// assert!(check_patch(&p("e:1.0.0"), &p("other:1.0.1"), true).is_err());
/// ```
pub fn check_patch(from: &ImageRef, to: &ImageRef, force: bool) -> Result<(), PatchRefusal> {
    if !from.same_repository(to) {
        return Err(PatchRefusal::OtherRepository {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    if force {
        return Ok(());
    }
    let versions = (
        from.tag().and_then(SemVer::parse),
        to.tag().and_then(SemVer::parse),
    );
    match versions {
        (Some(a), Some(b)) if (a.major, a.minor) != (b.major, b.minor) => {
            Err(PatchRefusal::NotAPatchVersion {
                from: from.to_string(),
                to: to.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// The `MAJOR.MINOR.PATCH` core of a semantic version tag (an optional
/// leading `v`, pre-release and build suffixes are accepted and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SemVer {
    /// The `MAJOR` number.
    pub major: u64,
    /// The `MINOR` number.
    pub minor: u64,
    /// The `PATCH` number.
    pub patch: u64,
}

impl SemVer {
    /// Parses a tag such as `1.2.3`, `v1.2.3` or `1.2.3-rc.1+build5`.
    pub fn parse(tag: &str) -> Option<Self> {
        let tag = tag.strip_prefix('v').unwrap_or(tag);
        let core = tag.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut num = || -> Option<u64> {
            let p = parts.next()?;
            // No leading zeros, as semver requires.
            if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
                return None;
            }
            p.parse().ok()
        };
        let v = SemVer {
            major: num()?,
            minor: num()?,
            patch: num()?,
        };
        parts.next().is_none().then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalisation_follows_docker() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("acme/engine", "docker.io/acme/engine:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("localhost/engine:1", "localhost/engine:1"),
            ("localhost:5000/a/b:2", "localhost:5000/a/b:2"),
            ("GHCR.io/acme/engine:1.0.0", "ghcr.io/acme/engine:1.0.0"),
            ("ghcr.io/acme/engine:1.0.0", "ghcr.io/acme/engine:1.0.0"),
            ("[::1]:5000/x:1", "[::1]:5000/x:1"),
            (
                "e@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/e@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("a_b__c-d---e/f.g:tag_1.2-x", "docker.io/a_b__c-d---e/f.g:tag_1.2-x"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            ":tag",
            "UPPER",
            "a//b",
            "a/",
            "/a",
            "a:",
            "a:-tag",
            "a@sha256:short",
            "a@:0123456789abcdef0123456789abcdef",
            "a b",
            "a..b",
            "a._b",
            "-a",
            "a-",
            "host:port/a",
            "bad_host.io/a",
            &format!("a:{}", "t".repeat(129)),
            &"a".repeat(256),
            "a;rm -rf",
            "a\n",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn allowlist_matches_exactly() {
        let list = Allowlist::parse(
            "ghcr.io/acme/engine, localhost:5000/games/*, docker.io/library/nginx, registry.example.com/*",
        )
        .unwrap();
        let yes = [
            "ghcr.io/acme/engine:1",
            "GHCR.IO/acme/engine:1",
            "localhost:5000/games/chess:1",
            "localhost:5000/games/deep/chess:1",
            "nginx",
            "registry.example.com/anything/at/all:1",
        ];
        let no = [
            "ghcr.io/acme/engine2:1",
            "ghcr.io/acme/engine/sub:1",
            "ghcr.io.evil.com/acme/engine:1",
            "evil.com/ghcr.io/acme/engine:1",
            "ghcr.io/acme:1",
            "localhost:5000/games:1",
            "localhost:5000/gamesx/chess:1",
            "localhost/games/chess:1",
            "localhost:5001/games/chess:1",
            "nginxx",
            "library/nginx2",
            "registry.example.com.evil/x:1",
        ];
        for s in yes {
            assert!(list.allows(&p(s)), "{s} should be allowed");
        }
        for s in no {
            assert!(!list.allows(&p(s)), "{s} should be refused");
        }
        assert!(!Allowlist::empty().allows(&p("nginx")));
    }

    #[test]
    fn a_whole_registry_with_a_port() {
        let list = Allowlist::parse("rtm.local/engine, 127.0.0.1:1/*, localhost:5000/*").unwrap();
        for s in [
            "127.0.0.1:1/engine:1.0.0",
            "127.0.0.1:1/a/b:2",
            "localhost:5000/x:1",
        ] {
            assert!(list.allows(&p(s)), "{s} should be allowed");
        }
        for s in [
            "127.0.0.1:2/engine:1",
            "127.0.0.1/engine:1",
            "localhost/x:1",
        ] {
            assert!(!list.allows(&p(s)), "{s} should be refused");
        }
        for bad in ["127.0.0.1:x/*", "engine:1.0/*", "127.0.0.1:1/engine:1"] {
            assert!(Allowlist::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn allowlist_rejects_bad_entries() {
        for bad in [
            "ghcr.io/acme/engine:1.0",
            "ghcr.io/a@sha256:00",
            "bad host/x",
            "bad_host.io/x",
        ] {
            assert!(Allowlist::parse(bad).is_err(), "{bad}");
        }
        assert!(Allowlist::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn patch_rule() {
        let ok = [
            ("e:1.0.0", "e:1.0.1", false),
            ("e:1.0.5", "e:1.0.0", false),
            ("e:v1.2.3", "e:1.2.9-rc.1", false),
            ("e:latest", "e:2.0.0", false),
            ("e:1.0.0", "e:nightly", false),
            ("e:1.0.0", "e:1.1.0", true),
            ("e:1.0.0", "e:1.0.0", false),
        ];
        for (a, b, force) in ok {
            assert_eq!(check_patch(&p(a), &p(b), force), Ok(()), "{a} -> {b}");
        }
        assert!(matches!(
            check_patch(&p("e:1.0.0"), &p("e:1.1.0"), false),
            Err(PatchRefusal::NotAPatchVersion { .. })
        ));
        assert!(matches!(
            check_patch(&p("e:1.0.0"), &p("e:2.0.0"), false),
            Err(PatchRefusal::NotAPatchVersion { .. })
        ));
        assert!(matches!(
            check_patch(&p("e:1.0.0"), &p("f:1.0.1"), true),
            Err(PatchRefusal::OtherRepository { .. })
        ));
    }

    #[test]
    fn semver_parse() {
        assert_eq!(
            SemVer::parse("1.2.3"),
            Some(SemVer {
                major: 1,
                minor: 2,
                patch: 3
            })
        );
        assert_eq!(
            SemVer::parse("v10.0.1+b"),
            Some(SemVer {
                major: 10,
                minor: 0,
                patch: 1
            })
        );
        for bad in ["1.2", "1.2.3.4", "01.2.3", "a.b.c", "latest", ""] {
            assert_eq!(SemVer::parse(bad), None, "{bad}");
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
    }

    proptest! {
        #[test]
        fn generated_references_parse_and_roundtrip(
            host in proptest::option::of("[a-z][a-z0-9]{0,8}\\.(io|com|local)(:[0-9]{2,5})?"),
            first in "[a-z0-9]{1,5}((_|__|-{1,3})[a-z0-9]{1,5}){0,2}",
            rest in proptest::collection::vec(component(), 0..3),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut s = String::new();
            if let Some(h) = &host { s.push_str(h); s.push('/'); }
            // Without a host, a first component with a '.' would itself be
            // read as a registry (Docker's rule), so it has none.
            s.push_str(&first);
            for c in &rest { s.push('/'); s.push_str(c); }
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            let r = ImageRef::parse(&s).unwrap();
            // The normalised form is a fixed point.
            prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r.clone());
            prop_assert_eq!(r.tag(), Some(tag.as_deref().unwrap_or("latest")));
            if let Some(h) = host { prop_assert_eq!(r.registry(), h.as_str()); }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            if let Ok(r) = ImageRef::parse(&s) {
                prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
            }
        }

        #[test]
        fn a_host_that_only_starts_like_an_allowed_one_is_refused(suffix in "[a-z]{1,8}") {
            let list = Allowlist::parse("ghcr.io/acme/*").unwrap();
            let evil = p(&format!("ghcr.io.{suffix}.com/acme/engine:1"));
            prop_assert!(!list.allows(&evil));
            let evil = p(&format!("ghcr.io/acme{suffix}/engine:1"));
            prop_assert!(!list.allows(&evil));
        }
    }
}
