//! `ccrun cp`: copy files between a container and the host, or a tar stream (`-`),
//! in either direction (see [`crate::containers::copy`]).

use anyhow::{bail, Result};

use crate::cli::GlobalOpts;
use crate::containers::copy;
use crate::containers::files::ContainerRoot;
use crate::containers::ContainerStore;

/// Flags of `cp`.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "ccrun cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       \
                      ccrun cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
)]
pub struct CpArgs {
    /// Archive mode: keep the source's owners (uid/gid)
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symlink given as the source
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Print nothing (accepted: ccrun prints no progress)
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar archive on stdin)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar archive on stdout)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// `CONTAINER:PATH` as Docker reads it: a colon before any slash names a container
/// (a local path with a colon can be written `./a:b`).
fn container_part(arg: &str) -> Option<(&str, &str)> {
    let (container, path) = arg.split_once(':')?;
    (!container.is_empty() && !container.contains('/')).then_some((container, path))
}

/// Runs `cp`.
pub fn cp(global: &GlobalOpts, args: CpArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let opts = copy::Options {
        follow: args.follow_link,
        archive: args.archive,
    };
    match (container_part(&args.src), container_part(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((name, src)), None) => {
            let record = store.find(name)?;
            let root = ContainerRoot::open(&store, &record)?;
            if args.dest == "-" {
                copy::archive_from(&root, src, args.follow_link, std::io::stdout().lock())?;
            } else {
                copy::copy_out(&root, src, &args.dest, opts)?;
            }
        }
        (None, Some((name, dest))) => {
            let record = store.find(name)?;
            let root = ContainerRoot::open(&store, &record)?;
            copy::copy_in(&root, &args.src, dest, opts)?;
        }
    }
    Ok(0)
}
