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
    // The name is changed; names in hosts files follow (a failure there is reported,
    // the rename stands, as in Docker when its DNS update fails).
    if let Err(e) = crate::networks::renamed(&store, &renamed) {
        tracing::warn!(
            "{} was renamed, but not in every /etc/hosts: {e:#}",
            renamed.name
        );
    }
    crate::events::container(
        store.root(),
        "rename",
        &renamed,
        &[("oldName", record.name.clone())],
    );
    Ok(0)
}
