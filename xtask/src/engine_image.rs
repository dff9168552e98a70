//! Being written.
use anyhow::{bail, Result};

pub fn run(_: &[String]) -> Result<()> {
    bail!("engine-image: not built yet")
}
