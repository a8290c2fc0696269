//! Pausing containers: every process frozen through the cgroup freezer (the runtime's
//! `Container::pause`/`resume`), and the record's `paused` mark that `ps` and
//! `inspect` show.

use anyhow::{bail, Context, Result};
use ccrun_runtime::Container;

use super::{ContainerStore, Record, Status};
use crate::cli::GlobalOpts;

/// Freezes running container `record`.
pub fn pause(global: &GlobalOpts, store: &ContainerStore, record: &Record) -> Result<()> {
    if record.status != Status::Running {
        bail!("container {} is not running", record.name);
    }
    if record.paused {
        bail!("container {} is already paused", record.name);
    }
    let mut container = Container::load(&global.state_root(), &record.id)
        .with_context(|| format!("container {} is not running", record.name))?;
    container
        .pause()
        .with_context(|| format!("pausing {}", record.name))?;
    store.update(&record.id, |r| r.paused = true)?;
    crate::events::container(store.root(), "pause", record, &[]);
    Ok(())
}

/// Thaws paused container `record`.
pub fn unpause(global: &GlobalOpts, store: &ContainerStore, record: &Record) -> Result<()> {
    if record.status != Status::Running || !record.paused {
        bail!("container {} is not paused", record.name);
    }
    let mut container = Container::load(&global.state_root(), &record.id)
        .with_context(|| format!("container {} is not running", record.name))?;
    container
        .resume()
        .with_context(|| format!("unpausing {}", record.name))?;
    store.update(&record.id, |r| r.paused = false)?;
    crate::events::container(store.root(), "unpause", record, &[]);
    Ok(())
}

/// Thaws a paused container after it was sent a signal that should end it: frozen
/// processes act on a signal only once thawed. Failures are left to the caller's
/// wait for the exit, which reports them.
pub fn thaw_to_end(store: &ContainerStore, record: &Record) {
    if !record.paused {
        return;
    }
    let path = ccrun_runtime::default_cgroup_path(&record.id);
    let thawed = ccrun_cgroups::Layout::detect()
        .and_then(|layout| ccrun_cgroups::Cgroup::open(&layout, &path))
        .and_then(|cgroup| cgroup.thaw());
    if let Err(e) = thawed {
        tracing::warn!("thawing {}: {e}", record.short_id());
    }
    if let Err(e) = store.update(&record.id, |r| r.paused = false) {
        tracing::warn!("{e:#}");
    }
}
