//! Being written.
use anyhow::{bail, Result};

pub fn run(_: &[String]) -> Result<()> {
    bail!("ci: not built yet")
}
