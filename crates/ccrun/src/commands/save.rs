//! `ccrun save` and `ccrun load`: images to and from one tar archive, Docker's
//! `docker save` format or an OCI archive (the work is [`ccrun_image::archive`]).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_image::archive::{self, Format};

use super::image::{familiar, open_store};
use crate::cli::GlobalOpts;
use crate::containers::cleanup::ContainerUsage;
use crate::containers::ContainerStore;

/// Flags of `save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to a file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// docker-archive (`docker save`'s, also an OCI layout) or oci-archive
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    /// Images (names or ids); several go into one archive
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Flags of `load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from a file instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print only the loaded images' names or ids
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `save`.
pub fn save(global: &GlobalOpts, args: SaveArgs) -> Result<i32> {
    let format = match args.format.as_str() {
        "oci-archive" => Format::OciArchive,
        _ => Format::DockerArchive,
    };
    let store = open_store(global)?;
    match &args.output {
        Some(path) => {
            // Written aside and renamed: FILE is the whole archive or untouched.
            let partial = partial_path(path);
            let written = std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))
                .and_then(|file| {
                    let out =
                        archive::save(&store, &args.images, format, std::io::BufWriter::new(file))?;
                    let file = out.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    Ok(())
                })
                .and_then(|()| {
                    std::fs::rename(&partial, path)
                        .with_context(|| format!("renaming to {}", path.display()))
                });
            if written.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            written.context("saving")?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal; use the -o flag or redirect");
            }
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            archive::save(&store, &args.images, format, out)
                .context("saving")?
                .flush()
                .context("writing the archive")?;
        }
    }
    for name in &args.images {
        crate::events::object(&global.store_root(), "image", "save", name, name);
    }
    Ok(0)
}

/// `DIR/.NAME.partial-PID`, beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Runs `load`.
pub fn load(global: &GlobalOpts, args: LoadArgs) -> Result<i32> {
    let store = open_store(global)?;
    let containers = ContainerStore::open(&global.store_root())?;
    let input: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is a terminal; use -i or pipe an archive in");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let loaded = archive::load(&store, input, &ContainerUsage(&containers)).context("loading")?;
    for (record, names) in &loaded {
        let id = record.id.to_string();
        if names.is_empty() {
            println!("Loaded image ID: {id}");
            crate::events::object(&global.store_root(), "image", "load", &id, &id);
        }
        for name in names {
            if args.quiet {
                println!("{}", familiar(name));
            } else {
                println!("Loaded image: {}", familiar(name));
            }
            crate::events::object(&global.store_root(), "image", "load", &id, name);
        }
    }
    Ok(0)
}
