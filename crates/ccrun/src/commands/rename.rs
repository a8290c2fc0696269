//! `ccrun rename CONTAINER NEW_NAME`.

use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::containers::ContainerStore;

/// Flags of `rename`.
#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// Runs `rename`.
pub fn rename(global: &GlobalOpts, args: RenameArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    let renamed = store.rename(&record.id, &args.new_name)?;
    crate::events::container(
        store.root(),
        "rename",
        &renamed,
        &[("oldName", record.name.clone())],
    );
    Ok(0)
}
