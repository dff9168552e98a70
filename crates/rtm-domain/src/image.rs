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

mod allowlist;
mod patch;
mod reference;

pub use allowlist::{Allowlist, AllowlistError};
pub use patch::{check_patch, PatchRefusal, SemVer};
pub use reference::{ImageRef, ImageRefError};

#[cfg(test)]
mod tests;
