//! Being written.
use anyhow::{bail, Result};

pub fn provision(_: &[String]) -> Result<()> {
    bail!("provision: not built yet")
}

pub fn migrate(_: &[String]) -> Result<()> {
    bail!("migrate: not built yet")
}
