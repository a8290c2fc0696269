//! Removing a container completely: its process (with `-f`), its runtime state and
//! cgroup, its snapshot (upper directory and mounts), its record and its name.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ccrun_image::Snapshot;
use nix::sys::signal::Signal;

use super::process::ProcessHandle;
use super::{ContainerStore, Record, RootfsSource, Status};

/// Removes `record`'s container; a running one only with `force` (it is killed).
pub fn remove(
    store: &ContainerStore,
    state_root: &std::path::Path,
    record: &Record,
    force: bool,
) -> Result<()> {
    if record.status == Status::Running {
        if !force {
            bail!(
                "cannot remove container {}: it is running; stop it first or use -f",
                record.name
            );
        }
        kill_and_wait(store, record)?;
    }
    if let Ok(container) = ccrun_runtime::Container::load(state_root, &record.id) {
        container
            .delete(true)
            .with_context(|| format!("deleting the runtime state of {}", record.short_id()))?;
    }
    if let Some(current) = store.get(&record.id)? {
        crate::networks::disconnect(store, &current)?;
    }
    Snapshot::new(&store.dir_of(&record.id))
        .remove()
        .with_context(|| format!("removing the filesystem of {}", record.short_id()))?;
    store.remove(record)?;
    crate::events::container(store.root(), "destroy", record, &[]);
    Ok(())
}

/// Deletes a stopped `--rm` container's files: its snapshot, its record and name, and
/// (as Docker's `--rm` does) its anonymous volumes.
pub fn discard(store: &ContainerStore, record: &Record) -> Result<()> {
    discard_with_events(store, record, &[])
}

/// [`discard`], appending the events `before` (`die`, say) together with `destroy` in
/// one write. The container is gone once the snapshot is unmounted and its directory
/// renamed aside; deleting that directory (the upper layer: many unlinks, each of which
/// may wait for the filesystem's journal) is left to a child process, so that a
/// foreground `run --rm` reports the exit status without waiting for it.
pub fn discard_with_events(
    store: &ContainerStore,
    record: &Record,
    before: &[(&str, &[(&str, String)])],
) -> Result<()> {
    Snapshot::new(&store.dir_of(&record.id))
        .unmount()
        .with_context(|| format!("unmounting the filesystem of {}", record.short_id()))?;
    let trash = store.set_aside(record)?;
    let mut events = before.to_vec();
    events.push(("destroy", &[]));
    crate::events::containers(store.root(), record, &events);
    crate::volumes::remove_anonymous_or_warn(store.root(), record);
    if let Some(trash) = trash {
        remove_in_background(&trash);
    }
    Ok(())
}

/// Removes `dir`, a container directory already set aside, from a child process that
/// outlives ccrun (with its stdio on `/dev/null`, so that nobody reading ccrun's output
/// waits for it); inline where ccrun cannot fork safely (more than one thread) or the
/// fork fails. A removal that never finishes leaves debris that `container prune`
/// clears.
fn remove_in_background(dir: &std::path::Path) {
    let remove = |dir: &std::path::Path| {
        if let Err(e) = super::store::remove_tree(dir) {
            tracing::warn!("{e:#} (container prune removes it later)");
        }
    };
    if ccrun_runtime::sys::thread_count().ok() != Some(1) {
        return remove(dir);
    }
    // SAFETY: this process is single-threaded (checked just above), so the child may
    // do anything the parent could.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            super::process::detach_from_caller();
            remove(dir);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Err(e) => {
            tracing::debug!("fork for the removal of {}: {e}", dir.display());
            remove(dir);
        }
    }
}

/// Kills the container's process and lets its monitor settle the record first, so
/// that the monitor's cleanup and this removal do not race.
fn kill_and_wait(store: &ContainerStore, record: &Record) -> Result<()> {
    store.update(&record.id, |r| r.stopped_by_user = true)?;
    if let Some(process) = ProcessHandle::open(record.pid, record.pid_start_time)? {
        process.signal(Signal::SIGKILL)?;
        crate::events::container(store.root(), "kill", record, &[("signal", "9".into())]);
        super::pause::thaw_to_end(store, record);
        if !process.wait_exit(Duration::from_secs(10))? {
            bail!("container {} did not die after SIGKILL", record.short_id());
        }
    }
    if let Err(e) = store.wait_settled(&record.id, Some(Duration::from_secs(10))) {
        tracing::warn!("{e:#}; removing it anyway");
    }
    Ok(())
}

/// Tells the image store which containers use an image and which layers their
/// snapshots stack, so that `rmi` and garbage collection leave them alone.
pub struct ContainerUsage<'a>(pub &'a ContainerStore);

impl ContainerUsage<'_> {
    fn records(&self) -> ccrun_image::Result<Vec<Record>> {
        self.0
            .list()
            .map_err(|e| ccrun_image::Error::InvalidContent {
                what: "container store".into(),
                message: format!("{e:#}"),
            })
    }
}

impl ccrun_image::ImageUsage for ContainerUsage<'_> {
    fn containers_using(
        &self,
        image: &ccrun_image::ImageRecord,
    ) -> ccrun_image::Result<Vec<String>> {
        let id = image.id.to_string();
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r.image_id.as_deref() == Some(id.as_str()))
            .map(|r| r.name)
            .collect())
    }

    /// The layers containers stack, and those the build cache names (matched by
    /// directory name, the diff-id), which `builder prune` releases.
    fn layers_in_use(&self) -> ccrun_image::Result<Vec<std::path::PathBuf>> {
        let cached = ccrun_build::Cache::new(self.0.root()).layers();
        Ok(self
            .records()?
            .into_iter()
            .flat_map(|r| match r.rootfs {
                RootfsSource::Image { layers } => layers,
                RootfsSource::Dir(_) => Vec::new(),
            })
            .chain(cached.iter().map(|d| std::path::PathBuf::from(d.hex())))
            .collect())
    }
}
