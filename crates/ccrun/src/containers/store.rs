//! The container store: creating, finding, updating and removing container records
//! under `<root>/containers/`, with a lock so concurrent ccrun commands never
//! corrupt a record or hand out a name twice.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::finish::{Exit, UNOBSERVED};
use super::names;
use super::record::{Record, Status, RECORD_FILE};
use crate::storage::FileLock;

/// A name, id or id prefix that matches no container (`rm -f` ignores these, as
/// Docker and Podman do).
#[derive(Debug, thiserror::Error)]
#[error("no such container: {0}")]
pub struct NoSuchContainer(pub String);

/// The container store under a storage root.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    dir: PathBuf,
}

impl ContainerStore {
    /// Opens (creating if needed) `<root>/containers`, in the storage root, which ccrun keeps
    /// closed to other host users (see [`crate::storage::make_private_root`]).
    pub fn open(root: &Path) -> Result<ContainerStore> {
        let dir = root.join("containers");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("names"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(ContainerStore { dir })
    }

    /// Takes the store lock, waiting for other ccrun processes.
    pub fn lock(&self) -> Result<FileLock> {
        crate::storage::lock_exclusive(&self.dir.join("lock"))
    }

    /// The storage root the store lives in.
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// The directory of container `id`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Creates the container's directory and record, reserving `name` (or a generated
    /// one, stored into `record.name`). Fails if the name is taken. `under_lock` runs on
    /// the record before it is saved, while the store lock is held (it may list the
    /// other records): to hand out what records own (the id range of `--userns auto`)
    /// without two creates taking the same.
    pub fn create(
        &self,
        record: &mut Record,
        name: Option<&str>,
        under_lock: impl FnOnce(&ContainerStore, &mut Record) -> Result<()>,
    ) -> Result<PathBuf> {
        let _lock = self.lock()?;
        under_lock(self, record)?;
        if let Some(name) = name {
            names::validate(name)?;
            self.reserve(name, &record.id)?
                .then_some(())
                .with_context(|| {
                    let holder = self.name_owner(name).unwrap_or_default();
                    format!(
                    "the container name \"/{name}\" is already in use by container \"{holder}\"; \
                     remove or rename that container to reuse the name"
                )
                })?;
            record.name = name.to_string();
        } else {
            let mut reserved = None;
            for retry in 0..20 {
                let candidate = names::generate(random_u64()?, retry);
                if self.reserve(&candidate, &record.id)? {
                    reserved = Some(candidate);
                    break;
                }
            }
            record.name = reserved.context("could not generate a free container name")?;
        }
        let dir = self.dir_of(&record.id);
        let made = fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))
            .and_then(|()| record.save(&dir));
        if let Err(e) = made {
            let _ = fs::remove_file(self.name_path(&record.name));
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(dir)
    }

    /// Gives container `id` the name `new`, releasing its old name; fails if `new` is
    /// taken. Returns the record as renamed.
    pub fn rename(&self, id: &str, new: &str) -> Result<Record> {
        names::validate(new)?;
        let _lock = self.lock()?;
        let dir = self.dir_of(id);
        let mut record = Record::load(&dir)?;
        if record.name == new {
            bail!(
                "renaming container {}: it is already named {new}",
                record.name
            );
        }
        if !self.reserve(new, id)? {
            let holder = self.name_owner(new).unwrap_or_default();
            bail!("the container name \"/{new}\" is already in use by container \"{holder}\"");
        }
        let old = std::mem::replace(&mut record.name, new.to_string());
        if let Err(e) = record.save(&dir) {
            let _ = fs::remove_file(self.name_path(new));
            return Err(e);
        }
        if self.name_owner(&old).as_deref() == Some(id) {
            fs::remove_file(self.name_path(&old))
                .with_context(|| format!("releasing the name {old}"))?;
        }
        Ok(refresh(record, &dir))
    }

    fn name_path(&self, name: &str) -> PathBuf {
        self.dir.join("names").join(name)
    }

    /// Creates the name entry if it does not exist; false when taken. Must hold the
    /// lock. An entry whose container has no record is stale (a create or a removal
    /// killed half-way) and is taken over.
    fn reserve(&self, name: &str, id: &str) -> Result<bool> {
        let path = self.name_path(name);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(id.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if !self.release_if_stale(name)? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        Ok(false)
    }

    /// Removes the name entry `name` when no record backs it. Must hold the lock (a
    /// create in progress holds it from reserving the name until its record is saved).
    /// True when it was stale and is gone.
    fn release_if_stale(&self, name: &str) -> Result<bool> {
        let owner = self.name_owner(name).unwrap_or_default();
        if is_id(&owner) && self.dir_of(&owner).join(RECORD_FILE).exists() {
            return Ok(false);
        }
        tracing::debug!("releasing the stale name {name} (no record for {owner:?})");
        match fs::remove_file(self.name_path(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e).with_context(|| format!("releasing the stale name {name}")),
        }
    }

    /// Clears what commands killed half-way left in the store: names without a record,
    /// container directories without a record (never a create in progress: this holds
    /// the lock) and directories being removed. Returns the bytes freed.
    pub fn sweep_debris(&self) -> Result<u64> {
        let _lock = self.lock()?;
        let names_dir = self.dir.join("names");
        let entries =
            fs::read_dir(&names_dir).with_context(|| format!("reading {}", names_dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", names_dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                self.release_if_stale(name)?;
            }
        }
        let mut freed = 0;
        let entries =
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let debris = name.starts_with(TRASH_PREFIX)
                || (is_id(&name) && !entry.path().join(RECORD_FILE).exists());
            if debris {
                freed += ccrun_image::tree_size(&entry.path());
                remove_tree(&entry.path())?;
            }
        }
        Ok(freed)
    }

    fn name_owner(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.name_path(name)).ok()
    }

    /// Every container, newest first. Unreadable records are reported and skipped.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if !is_id(&id) {
                continue;
            }
            match Record::load(&entry.path()) {
                Ok(r) => out.push(refresh(r, &entry.path())),
                // A directory without a record is a create in progress or a crash leftover.
                Err(e) => tracing::debug!("skipping {id}: {e:#}"),
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// Finds a container by name, full id or unique id prefix. A name left without a
    /// record by a killed command is released on the way.
    pub fn find(&self, query: &str) -> Result<Record> {
        if let Some(id) = self.name_owner(query) {
            if let Some(r) = self.get(&id)? {
                return Ok(r);
            }
            let _lock = self.lock()?;
            self.release_if_stale(query)?;
        }
        if !query.is_empty() && query.chars().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<Record> = self
                .list()?
                .into_iter()
                .filter(|r| r.id.starts_with(query))
                .collect();
            match matches.len() {
                1 => return matches.into_iter().next().context("one match"),
                0 => {}
                n => bail!(
                    "multiple containers ({n}) match the id prefix {query:?}; give more of the id"
                ),
            }
        }
        Err(NoSuchContainer(query.to_string()).into())
    }

    /// The record of container `id` as it stands now; `None` if it was removed.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        let dir = self.dir_of(id);
        match Record::load(&dir) {
            Ok(r) => Ok(Some(refresh(r, &dir))),
            Err(_) if !dir.join(super::record::RECORD_FILE).exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until container `id` is no longer running and whoever watched it has
    /// settled its record; `None` if it was removed meanwhile.
    pub fn wait_settled(&self, id: &str, timeout: Option<Duration>) -> Result<Option<Record>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let Some(record) = self.get(id)? else {
                return Ok(None);
            };
            if record.status != Status::Running {
                return Ok(Some(record));
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                bail!(
                    "container {} is still running or being cleaned up",
                    record.short_id()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Applies `change` to the stored record of `id` under the lock; `None` if the
    /// container was removed meanwhile.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Option<Record>> {
        let _lock = self.lock()?;
        let dir = self.dir_of(id);
        let mut record = match Record::load(&dir) {
            Ok(r) => r,
            Err(_) if !dir.exists() => return Ok(None),
            Err(e) => return Err(e),
        };
        change(&mut record);
        record.save(&dir)?;
        Ok(Some(record))
    }

    /// Deletes the record, its directory and its name. The directory is first renamed
    /// aside in one step, so a removal killed at any point leaves either the whole
    /// container or debris that [`ContainerStore::sweep_debris`] and the stale-name
    /// check clear, never a half-removed container.
    pub fn remove(&self, record: &Record) -> Result<()> {
        if let Some(trash) = self.set_aside(record)? {
            if let Err(e) = remove_tree(&trash) {
                tracing::warn!("{e:#} (container prune removes it later)");
            }
        }
        Ok(())
    }

    /// The first, quick step of [`ContainerStore::remove`]: under the lock, renames
    /// the container's directory aside and releases its name, so the container is gone
    /// from then on. Returns the directory (now debris that
    /// [`ContainerStore::sweep_debris`] also clears) for the caller to delete.
    pub fn set_aside(&self, record: &Record) -> Result<Option<PathBuf>> {
        let lock = self.lock()?;
        let dir = self.dir_of(&record.id);
        let trash = self.dir.join(format!("{TRASH_PREFIX}{}", record.id));
        let moved = match fs::rename(&dir, &trash) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        };
        if self.name_owner(&record.name).as_deref() == Some(record.id.as_str()) {
            let _ = fs::remove_file(self.name_path(&record.name));
        }
        drop(lock);
        Ok(moved.then_some(trash))
    }
}

/// The truth about a record that says "running": while its process lives it runs
/// (noting a lost monitor); once it is gone and its watcher too, it exited with the
/// code the monitor wrote, or is dead when nobody saw it end.
fn refresh(mut record: Record, dir: &Path) -> Record {
    use ccrun_runtime::state::process_is_alive;
    if record.status != Status::Running {
        return record;
    }
    let watched =
        record.monitor_pid > 0 && process_is_alive(record.monitor_pid, record.monitor_start_time);
    if process_is_alive(record.pid, record.pid_start_time) {
        if !watched && record.monitor_pid > 0 {
            record.error = Some(format!(
                "its monitor (pid {}) is gone: output is not logged and the exit will not be recorded",
                record.monitor_pid
            ));
        }
        return record;
    }
    if watched {
        // Its watcher is reaping it and settling the record right now.
        return record;
    }
    match Exit::from_exit_file(dir) {
        Some(exit) => {
            record.status = Status::Exited;
            record.exit_code = Some(exit.code);
            record.finished_at = Some(exit.finished);
        }
        None => {
            record.status = Status::Dead;
            record.error = Some(UNOBSERVED.to_string());
        }
    }
    record
}

/// Prefix of a container directory being removed.
const TRASH_PREFIX: &str = ".removing-";

pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Fills `buf` from the kernel's random source.
fn random_bytes(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("getrandom");
        }
        filled += n as usize;
    }
    Ok(())
}

fn random_u64() -> Result<u64> {
    let mut buf = [0u8; 8];
    random_bytes(&mut buf)?;
    Ok(u64::from_ne_bytes(buf))
}

/// A fresh 64-hex-digit container id.
pub fn new_container_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
