//! `ccrun diff CONTAINER`: what changed in a container's filesystem since it was
//! created from its image (see [`crate::containers::files::diff`]).

use std::io::Write;

use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::containers::{files, ContainerStore};

/// Flags of `diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Runs `diff`: one `A`, `C` or `D` line per path.
pub fn diff(global: &GlobalOpts, args: DiffArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    let mut out = std::io::stdout().lock();
    for change in files::diff(&store, &record)? {
        writeln!(out, "{} {}", change.kind, change.path)?;
    }
    Ok(0)
}
