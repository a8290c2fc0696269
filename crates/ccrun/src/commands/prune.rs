//! `container prune`, `image prune`, `volume prune` and `system prune`: remove what
//! nothing uses, after asking (unless `-f`), and say how much space that freed.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use ccrun_image::{Removal, Store};

use super::image::familiar;
use crate::cli::GlobalOpts;
use crate::containers::cleanup::{self, ContainerUsage};
use crate::containers::{ContainerStore, Record, Status};
use crate::format::human_size;
use crate::volumes::VolumeStore;

/// Flags of `container prune`.
#[derive(Debug, clap::Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `image prune` and `system prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling (untagged) ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `volume prune`.
#[derive(Debug, clap::Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// What one prune removed.
#[derive(Debug, Default)]
struct Pruned {
    /// Lines to print under the section header.
    lines: Vec<String>,
    /// Bytes freed.
    bytes: u64,
    /// Objects that could not be removed, with why.
    failures: Vec<String>,
}

/// Runs `container prune`.
pub fn container_prune(global: &GlobalOpts, args: ContainerPruneArgs) -> Result<i32> {
    if !args.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let pruned = prune_containers(global)?;
    let mut out = std::io::stdout().lock();
    print_section(&mut out, "Deleted Containers:", &pruned.lines)?;
    writeln!(out, "Total reclaimed space: {}", human_size(pruned.bytes))?;
    finish(&[pruned])
}

/// Runs `image prune`.
pub fn image_prune(global: &GlobalOpts, args: PruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(warning)? {
        return Ok(0);
    }
    let pruned = prune_images(global, args.all)?;
    let mut out = std::io::stdout().lock();
    print_section(&mut out, "Deleted Images:", &pruned.lines)?;
    writeln!(out, "Total reclaimed space: {}", human_size(pruned.bytes))?;
    finish(&[pruned])
}

/// Runs `volume prune`: the anonymous volumes no container uses, or every unused
/// volume with `-a`.
pub fn volume_prune(global: &GlobalOpts, args: VolumePruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !confirm(warning)? {
        return Ok(0);
    }
    let pruned = prune_volumes(global, args.all)?;
    let mut out = std::io::stdout().lock();
    print_section(&mut out, "Deleted Volumes:", &pruned.lines)?;
    writeln!(out, "Total reclaimed space: {}", human_size(pruned.bytes))?;
    finish(&[pruned])
}

/// Removes the volumes no container (in any state) mounts: the anonymous ones, or all.
fn prune_volumes(global: &GlobalOpts, all: bool) -> Result<Pruned> {
    let root = global.store_root();
    let volumes = VolumeStore::open(&root)?;
    let containers = ContainerStore::open(&root)?;
    let lock = volumes.lock()?;
    volumes.sweep(&lock);
    let records = containers.list()?;
    let users = crate::volumes::users(&records);
    let mut pruned = Pruned::default();
    for volume in volumes.list()? {
        if users.contains_key(volume.name.as_str()) || !(all || volume.is_anonymous()) {
            continue;
        }
        match volumes.remove(&lock, &volume.name) {
            Ok(bytes) => {
                pruned.lines.push(volume.name.clone());
                pruned.bytes += bytes;
            }
            Err(e) => {
                pruned
                    .failures
                    .push(format!("{}: {}", volume.name, crate::exit::one_line(&e)))
            }
        }
    }
    Ok(pruned)
}

/// Runs `system prune`: stopped containers, then unused images.
pub fn system_prune(global: &GlobalOpts, args: PruneArgs) -> Result<i32> {
    let images = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers\n  - {images}\n  - all build cache\n"
    );
    if !args.force && !confirm(&warning)? {
        return Ok(0);
    }
    let containers = prune_containers(global)?;
    // The image collection below frees the layers only the cache kept.
    ccrun_build::Cache::new(&global.store_root())
        .prune()
        .context("removing the build cache")?;
    let images = prune_images(global, args.all)?;
    let mut out = std::io::stdout().lock();
    print_section(&mut out, "Deleted Containers:", &containers.lines)?;
    print_section(&mut out, "Deleted Images:", &images.lines)?;
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(containers.bytes + images.bytes)
    )?;
    finish(&[containers, images])
}

/// Asks on stdout and reads the answer from stdin; only `y` or `Y` goes ahead.
/// Asks Docker's "Are you sure" question; true on y/Y.
pub fn confirm(warning: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer from stdin")?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

fn print_section(out: &mut impl Write, header: &str, lines: &[String]) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    writeln!(out, "{header}")?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out)
}

fn finish(results: &[Pruned]) -> Result<i32> {
    let failures: Vec<&String> = results.iter().flat_map(|p| &p.failures).collect();
    for f in &failures {
        eprintln!("Error response: {f}");
    }
    if !failures.is_empty() {
        bail!("could not remove {} object(s)", failures.len());
    }
    Ok(0)
}

/// Whether something is still at work on the container: its process, its monitor, or
/// a `ccrun run` that has created its runtime state and not yet recorded the start.
fn busy(record: &Record, state_root: &Path) -> bool {
    use ccrun_runtime::state::{process_is_alive, Status as RuntimeStatus};
    if record.status == Status::Running {
        return true;
    }
    if record.monitor_pid > 0 && process_is_alive(record.monitor_pid, record.monitor_start_time) {
        return true;
    }
    ccrun_runtime::Container::load(state_root, &record.id)
        .is_ok_and(|c| c.state.status != RuntimeStatus::Stopped)
}

/// Removes every container that is not running.
fn prune_containers(global: &GlobalOpts) -> Result<Pruned> {
    let store = ContainerStore::open(&global.store_root())?;
    let state_root = global.state_root();
    let mut pruned = Pruned::default();
    // What killed commands left behind: names without records, half-removed directories.
    pruned.bytes += store.sweep_debris()?;
    for record in store.list()? {
        if busy(&record, &state_root) {
            continue;
        }
        let size = ccrun_image::tree_size(&store.dir_of(&record.id));
        match cleanup::remove(&store, &state_root, &record, false) {
            Ok(()) => {
                pruned.lines.push(record.id.clone());
                pruned.bytes += size;
            }
            Err(e) => {
                pruned
                    .failures
                    .push(format!("{}: {}", record.name, crate::exit::one_line(&e)))
            }
        }
    }
    Ok(pruned)
}

/// Removes the images no container uses: the dangling (untagged) ones, or all with
/// `all`; then collects the layers and blobs nothing references any more, and the
/// partial downloads interrupted pulls left.
fn prune_images(global: &GlobalOpts, all: bool) -> Result<Pruned> {
    let root = global.store_root();
    let store =
        Store::open(&root).with_context(|| format!("opening image store in {}", root.display()))?;
    let containers = ContainerStore::open(&root)?;
    let usage = ContainerUsage(&containers);
    let lock = store.lock()?;
    let mut pruned = Pruned::default();
    for image in store.list()? {
        if !all && !image.names.is_empty() {
            continue;
        }
        if !ccrun_image::ImageUsage::containers_using(&usage, &image)?.is_empty() {
            continue;
        }
        // By id, forced: it may carry several tags, and we just checked it is unused.
        match store.remove(&lock, &image.id.to_string(), true, &usage) {
            Ok(removals) => pruned.lines.extend(removals.into_iter().map(|r| match r {
                Removal::Untagged(name) => format!("untagged: {}", familiar(&name)),
                Removal::Deleted(id) => format!("deleted: {id}"),
            })),
            Err(e) => pruned.failures.push(format!("{}: {e}", image.id)),
        }
    }
    // Layers that could not go are reported with the rest; what was deleted is still
    // listed.
    let freed = match store.gc(&lock, &usage) {
        Ok(freed) => freed,
        Err(ccrun_image::Error::GcIncomplete { freed, failures }) => {
            pruned.failures.extend(
                failures
                    .iter()
                    .map(|e| format!("removing an unused layer: {e}")),
            );
            freed
        }
        Err(e) => return Err(e).context("removing unused layers"),
    };
    // What interrupted pulls left to resume from goes too (a later pull of the image
    // downloads it again from the start).
    let partials = store
        .remove_partials(&lock)
        .context("removing partial downloads")?;
    pruned.bytes = freed.bytes + partials;
    Ok(pruned)
}
