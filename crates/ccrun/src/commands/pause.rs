//! `ccrun pause` and `ccrun unpause`: freeze and thaw every process of containers
//! (see [`crate::containers::pause`]).

use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::containers::{pause, ContainerStore};

/// Flags of `pause` and `unpause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Runs `pause`.
pub fn pause(global: &GlobalOpts, args: PauseArgs) -> Result<i32> {
    each(global, "pause", &args, pause::pause)
}

/// Runs `unpause`.
pub fn unpause(global: &GlobalOpts, args: PauseArgs) -> Result<i32> {
    each(global, "unpause", &args, pause::unpause)
}

fn each(
    global: &GlobalOpts,
    what: &str,
    args: &PauseArgs,
    f: fn(&GlobalOpts, &ContainerStore, &crate::containers::Record) -> Result<()>,
) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    super::for_each_named(what, &args.containers, |name| {
        f(global, &store, &store.find(name)?)?;
        println!("{name}");
        Ok(())
    })?;
    Ok(0)
}
