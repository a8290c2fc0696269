//! `ccrun export CONTAINER`: the container's filesystem as a tar archive, owners as
//! the container sees them (see [`crate::containers::files`]).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::GlobalOpts;
use crate::containers::files::{ContainerRoot, TarWriter};
use crate::containers::ContainerStore;

/// Flags of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Runs `export`.
pub fn export(global: &GlobalOpts, args: ExportArgs) -> Result<i32> {
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None if std::io::stdout().is_terminal() => {
            bail!("cowardly refusing to save to a terminal; use the -o flag or redirect")
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    let root = ContainerRoot::open(&store, &record)?;
    let mut tar = TarWriter::new(std::io::BufWriter::new(out), root.ids.clone());
    tar.contents(std::os::fd::AsFd::as_fd(&root.dir))
        .with_context(|| format!("exporting {}", record.name))?;
    tar.finish()?.flush().context("writing the archive")?;
    Ok(0)
}
