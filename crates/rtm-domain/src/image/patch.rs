//! The patch rule of SPEC §5 ([`check_patch`], [`PatchRefusal`]) and the
//! [`SemVer`] core it compares tags with.

use super::ImageRef;

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
