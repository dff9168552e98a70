//! Being written.
use anyhow::{bail, Result};

pub fn run(_: &[String]) -> Result<()> {
    bail!("services: not built yet")
}
