//! The content-addressed image store.
//!
//! Layout under `<root>/image/`:
//! - `blobs/sha256/<hex>`: manifests, indexes and configs, by digest;
//! - `layers/<hex>/`: each layer unpacked once, keyed by its diff-id (the digest
//!   of the uncompressed tar), ready to be an overlayfs lower directory;
//! - `tar-split/<hex>`: how to write each layer's original tar again from its
//!   directory (see [`crate::tar_split`]), for `push` and `save`;
//! - `images.json`: the image records (names → manifest, config, layers);
//! - `tmp/`: work in progress, emptied whenever the lock is taken;
//! - `partial/<hex>`: the bytes of a blob an interrupted pull received, for the next
//!   pull to resume from (see the `partial` module); removed by [`Store::remove_partials`];
//! - `lock`: `flock`ed by whoever changes the store.
//!
//! Everything becomes visible by a `rename`, so a process killed at any point
//! leaves either nothing or a complete, verified object; the next pull reuses
//! what is complete and discards `tmp/`.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use rustix::fs::{FlockOperation, RenameFlags, CWD};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::reference::Reference;

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// The image id: the digest of its config, as Docker shows it.
    pub id: Digest,
    /// The digest of the platform-specific manifest.
    pub manifest_digest: Digest,
    /// The digest of the index it was chosen from, for multi-platform images.
    pub index_digest: Option<Digest>,
    /// Tagged names, fully qualified (`docker.io/library/alpine:latest`).
    pub names: Vec<String>,
    /// Digest names (`docker.io/library/alpine@sha256:…`), the digest being the one
    /// a `pull` of that name would fetch (the index for multi-platform images).
    pub repo_digests: Vec<String>,
    /// Layer diff-ids, lowest first.
    pub layers: Vec<Digest>,
    /// Bytes of file content over all layers.
    pub size: u64,
    /// The config's `created` time, RFC 3339.
    pub created: Option<String>,
    /// `os/arch[/variant]` of the image.
    pub platform: String,
    /// When it was pulled, seconds since the epoch.
    pub pulled_at: u64,
}

/// An image resolved for running: its record, config, manifest and layer directories.
#[derive(Debug, Clone)]
pub struct Image {
    /// The store record.
    pub record: ImageRecord,
    /// The image config (entrypoint, env, user, working dir …).
    pub config: ImageConfiguration,
    /// The platform manifest.
    pub manifest: ImageManifest,
    /// Unpacked layer directories, lowest first: overlayfs wants them reversed in `lowerdir=`.
    pub layer_dirs: Vec<PathBuf>,
}

/// Tells the store what containers use; the container engine implements it.
pub trait ImageUsage {
    /// Names or ids of containers created from `image`; non-empty blocks removal without `-f`.
    fn containers_using(&self, image: &ImageRecord) -> Result<Vec<String>>;

    /// Layer directories that containers' snapshots stack (their overlayfs lower
    /// directories). [`Store::gc`] keeps these even when no image lists them any more,
    /// e.g. after `rmi -f` of an image a stopped container was created from.
    fn layers_in_use(&self) -> Result<Vec<PathBuf>>;
}

/// What `rmi` did, line by line as Docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A name was removed from an image.
    Untagged(String),
    /// An image record was deleted.
    Deleted(Digest),
}

/// What a garbage collection freed.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcStats {
    /// Layer directories removed.
    pub layers: usize,
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes of file content removed (layers and blobs).
    pub bytes: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Records {
    images: Vec<ImageRecord>,
}

/// The directory of partial blob downloads, under the store's.
const PARTIAL_DIR: &str = "partial";

/// The image store under a root directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An exclusive hold on the store, released on drop (and by the kernel if we die).
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens (creating if needed) the image store under `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let dir = root.join("image");
        for sub in ["blobs/sha256", "layers", "tar-split", "tmp"] {
            fsutil::create_dir_all_mode(&dir.join(sub), 0o700)?;
        }
        Ok(Store { dir })
    }

    /// The store's own directory (`<root>/image`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the store lock, waiting (and saying so) if another process holds it,
    /// then clears `tmp/`, whose contents can only be left over from a killed process
    /// or a removal that failed. What cannot be removed is a warning, never an error:
    /// debris must not stop every later pull and rmi (new work never reuses a name in
    /// `tmp/`).
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("opening lock", &path)?;
        if rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
            tracing::warn!("waiting for another ccrun process to release the image store lock");
            rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive).ctx("locking", &path)?;
        }
        let tmp = self.tmp_root();
        match fs::read_dir(&tmp) {
            Ok(entries) => {
                for entry in entries {
                    let removed = entry
                        .ctx("listing", &tmp)
                        .and_then(|e| fsutil::remove_tree(&e.path()));
                    if let Err(e) = removed {
                        tracing::warn!("leftover work in the image store not removed: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing {}: {e}", tmp.display()),
        }
        Ok(StoreLock { _file: file })
    }

    /// The directory for temporary work.
    pub(crate) fn tmp_root(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// A new, empty directory `tmp/PREFIX-N` for work in progress.
    pub(crate) fn tmp_dir(&self, _lock: &StoreLock, prefix: &str) -> Result<PathBuf> {
        self.new_tmp(prefix, "creating", |path| fs::create_dir(path))
    }

    /// A fresh path `tmp/PREFIX-N` made by `make` (a mkdir, a rename), which must
    /// fail with `AlreadyExists` when the name is taken: a name that debris holds is
    /// skipped, not fought over.
    fn new_tmp(
        &self,
        prefix: &str,
        doing: &'static str,
        make: impl Fn(&Path) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let tmp = self.tmp_root();
        for n in 0..1000 {
            let path = tmp.join(format!("{prefix}-{n}"));
            match make(&path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).ctx(doing, path),
            }
        }
        Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists)).ctx(doing, tmp.join(prefix))
    }

    /// Removes an unused layer: first out of `layers/` by one rename into `tmp/`, so
    /// that a removal failing half way never leaves half a layer under its name (the
    /// next pull would take it for present), then the tree. What cannot be deleted
    /// stays in `tmp/`, where every lock tries again. Returns the bytes freed.
    fn discard_layer(&self, dir: &Path) -> Result<u64> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = self.new_tmp(&format!("gc-{name}"), "moving aside", |to| {
            rustix::fs::renameat_with(CWD, dir, CWD, to, RenameFlags::NOREPLACE)
                .map_err(std::io::Error::from)
        })?;
        fsutil::remove_tree_counted(&aside)
    }

    /// Where the layer with `diff_id` is (or would be) unpacked.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers").join(diff_id.hex())
    }

    /// Where the tar-split record of layer `diff_id` is (or would be).
    pub fn tar_split_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("tar-split").join(diff_id.hex())
    }

    /// Whether a layer is fully unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Moves a verified, unpacked layer from `tmp` into place, with its tar-split
    /// `record` if it has one (first, so that a layer in place has its record unless
    /// it never had one). The rename makes it appear whole or not at all, which is
    /// what survives SIGKILL. Surviving power loss also needs the data on disk first:
    /// `sync` does one `syncfs` for that. It is off by default, as in Docker and
    /// Podman, because on a busy disk it waits for everyone's dirty pages.
    pub(crate) fn commit_layer(
        &self,
        _lock: &StoreLock,
        tmp: &Path,
        record: Option<&Path>,
        diff_id: &Digest,
        sync: bool,
    ) -> Result<()> {
        let dest = self.layer_dir(diff_id);
        let record_dest = self.tar_split_path(diff_id);
        if let Some(record) = record.filter(|r| r.exists()) {
            if record_dest.exists() {
                fs::remove_file(record).ctx("removing", record)?;
            } else {
                // A layer present without a record (unpacked by an older ccrun) gets
                // this one: it describes the same bytes.
                fs::rename(record, &record_dest).ctx("committing tar-split", &record_dest)?;
            }
        }
        if dest.is_dir() {
            return fsutil::remove_tree(tmp);
        }
        if sync {
            let dir = File::open(tmp).ctx("opening", tmp)?;
            rustix::fs::syncfs(dir.as_fd()).ctx("syncing", tmp)?;
        }
        fs::rename(tmp, &dest).ctx("committing layer", &dest)?;
        fsutil::fsync_dir(&self.dir.join("layers"))
    }

    /// Where the partial download of blob `digest` is kept (its directory created).
    pub(crate) fn partial_path(&self, _lock: &StoreLock, digest: &Digest) -> Result<PathBuf> {
        let dir = self.dir.join(PARTIAL_DIR);
        fsutil::create_dir_all_mode(&dir, 0o700)?;
        Ok(dir.join(digest.hex()))
    }

    /// Deletes every partial download (what interrupted pulls left for the next one
    /// to resume from); returns the bytes freed. `image prune` and `system prune` call it.
    pub fn remove_partials(&self, _lock: &StoreLock) -> Result<u64> {
        let dir = self.dir.join(PARTIAL_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).ctx("listing", dir),
        };
        let mut freed = 0;
        for entry in entries {
            let entry = entry.ctx("listing", &dir)?;
            freed += fsutil::remove_tree_counted(&entry.path())?;
        }
        Ok(freed)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Reads a blob, verifying it still matches its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        match fs::read(&path) {
            Ok(bytes) => {
                digest.verify(
                    &Digest::of(&bytes),
                    format!("stored blob {}", path.display()),
                )?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("reading", path),
        }
    }

    /// Stores a blob (already verified by the caller) atomically.
    pub(crate) fn write_blob(
        &self,
        _lock: &StoreLock,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        fsutil::write_atomic(&path, bytes, 0o600)
    }

    fn records(&self) -> Result<Records> {
        let path = self.dir.join("images.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::InvalidContent {
                what: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(e).ctx("reading", path),
        }
    }

    fn save_records(&self, _lock: &StoreLock, records: &Records) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| Error::InvalidContent {
            what: "image records".to_string(),
            message: e.to_string(),
        })?;
        fsutil::write_atomic(&self.dir.join("images.json"), &bytes, 0o600)
    }

    /// All images, in pull order.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.records()?.images)
    }

    /// Adds or updates an image record: its names move to it from any other image
    /// (a re-pulled tag that changed leaves the old image untagged, as Docker does).
    pub(crate) fn put_record(
        &self,
        lock: &StoreLock,
        mut record: ImageRecord,
    ) -> Result<ImageRecord> {
        let mut records = self.records()?;
        for other in records.images.iter_mut().filter(|r| r.id != record.id) {
            other.names.retain(|n| !record.names.contains(n));
        }
        if let Some(existing) = records.images.iter_mut().find(|r| r.id == record.id) {
            for n in &existing.names {
                if !record.names.contains(n) {
                    record.names.push(n.clone());
                }
            }
            for d in &existing.repo_digests {
                if !record.repo_digests.contains(d) {
                    record.repo_digests.push(d.clone());
                }
            }
            *existing = record.clone();
        } else {
            records.images.push(record.clone());
        }
        self.save_records(lock, &records)?;
        Ok(record)
    }

    /// `tag SOURCE TARGET`: gives the image `source` (a name or id) the name
    /// `target`, which moves from any other image that had it, as Docker does.
    pub fn tag(&self, lock: &StoreLock, source: &str, target: &Reference) -> Result<ImageRecord> {
        if target.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: target.to_string(),
                reason: "refusing to create a tag with a digest reference",
            });
        }
        let record = self
            .find(source)?
            .ok_or_else(|| Error::ImageNotFound(source.to_string()))?;
        let name = target.to_string();
        let mut records = self.records()?;
        for r in records.images.iter_mut() {
            if r.id == record.id {
                if !r.names.contains(&name) {
                    r.names.push(name.clone());
                }
            } else {
                r.names.retain(|n| n != &name);
            }
        }
        self.save_records(lock, &records)?;
        self.find(&record.id.to_string())?
            .ok_or_else(|| Error::ImageNotFound(source.to_string()))
    }

    /// Records that `repo_digest` (`registry/repo@sha256:…`, what a push made) names
    /// image `id`.
    pub fn add_repo_digest(&self, lock: &StoreLock, id: &Digest, repo_digest: &str) -> Result<()> {
        let mut records = self.records()?;
        if let Some(r) = records.images.iter_mut().find(|r| &r.id == id) {
            if !r.repo_digests.iter().any(|d| d == repo_digest) {
                r.repo_digests.push(repo_digest.to_string());
                self.save_records(lock, &records)?;
            }
        }
        Ok(())
    }

    /// Finds the record for a reference (`alpine`, `alpine@sha256:…`) or an image id
    /// (`sha256:…` or a unique hex prefix of at least 4 characters).
    pub fn find(&self, name: &str) -> Result<Option<ImageRecord>> {
        let records = self.records()?;
        if let Some(hex) = id_prefix(name) {
            let matches: Vec<_> = records
                .images
                .iter()
                .filter(|r| r.id.hex().starts_with(hex))
                .collect();
            match matches.as_slice() {
                [one] => return Ok(Some((*one).clone())),
                [] if name.starts_with("sha256:") => return Ok(None),
                [] => {}
                _ => return Err(Error::Ambiguous(name.to_string())),
            }
        }
        let Ok(reference) = Reference::parse(name) else {
            return Ok(None);
        };
        Ok(records
            .images
            .into_iter()
            .find(|r| matches_reference(r, &reference)))
    }

    /// Resolves a name for the run path: config, manifest and layer directories,
    /// checking that every layer is present.
    pub fn resolve(&self, name: &str) -> Result<Option<Image>> {
        let Some(record) = self.find(name)? else {
            return Ok(None);
        };
        let config_bytes = self
            .read_blob(&record.id)?
            .ok_or_else(|| self.damaged(&record, "config blob missing"))?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|e| Error::InvalidContent {
                what: format!("config of {}", record.id),
                message: e.to_string(),
            })?;
        let manifest_bytes = self
            .read_blob(&record.manifest_digest)?
            .ok_or_else(|| self.damaged(&record, "manifest blob missing"))?;
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| Error::InvalidContent {
                what: format!("manifest {}", record.manifest_digest),
                message: e.to_string(),
            })?;
        let mut layer_dirs = Vec::with_capacity(record.layers.len());
        for l in &record.layers {
            if !self.has_layer(l) {
                return Err(
                    self.damaged(&record, &format!("layer {l} missing; pull the image again"))
                );
            }
            layer_dirs.push(self.layer_dir(l));
        }
        Ok(Some(Image {
            record,
            config,
            manifest,
            layer_dirs,
        }))
    }

    fn damaged(&self, record: &ImageRecord, what: &str) -> Error {
        Error::InvalidContent {
            what: format!("image {} in {}", record.id, self.dir.display()),
            message: what.to_string(),
        }
    }

    /// `rmi NAME`: untags a name, and deletes the image once no tag is left (or
    /// when named by id). Refuses while containers use it unless `force`.
    pub fn remove(
        &self,
        lock: &StoreLock,
        name: &str,
        force: bool,
        usage: &dyn ImageUsage,
    ) -> Result<Vec<Removal>> {
        let record = self
            .find(name)?
            .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
        let mut records = self.records()?;
        let by_id = id_prefix(name).is_some_and(|hex| record.id.hex().starts_with(hex));
        let mut remaining = record.clone();
        let mut out = Vec::new();
        if !by_id {
            if let Ok(reference) = Reference::parse(name) {
                let full = reference.to_string();
                let before = remaining.names.len() + remaining.repo_digests.len();
                remaining.names.retain(|n| n != &full);
                remaining.repo_digests.retain(|n| n != &full);
                if remaining.names.len() + remaining.repo_digests.len() != before {
                    out.push(Removal::Untagged(full));
                }
                // As Docker does: once no tag of this repository is left, its digest
                // names go too, so `RepoDigests` never names a repository the image
                // is no longer in.
                let repo = reference.name();
                let same_repo = |n: &String| Reference::parse(n).is_ok_and(|r| r.name() == repo);
                if !remaining.names.iter().any(same_repo) {
                    let (gone, kept) = remaining.repo_digests.drain(..).partition(same_repo);
                    remaining.repo_digests = kept;
                    out.extend(gone.into_iter().map(Removal::Untagged));
                }
                if !remaining.names.is_empty() {
                    // Other tags keep the image alive; only this name goes.
                    replace(&mut records, &remaining);
                    self.save_records(lock, &records)?;
                    return Ok(out);
                }
            }
        } else if record.names.len() > 1 && !force {
            return Err(Error::ImageInUse {
                image: name.to_string(),
                reason: format!(
                    "it is tagged as {}; use -f to remove all of them",
                    record.names.join(", ")
                ),
            });
        }
        let users = usage.containers_using(&record)?;
        if !users.is_empty() && !force {
            return Err(Error::ImageInUse {
                image: name.to_string(),
                reason: format!(
                    "used by container(s) {}; use -f to remove anyway",
                    users.join(", ")
                ),
            });
        }
        out.extend(remaining.names.iter().cloned().map(Removal::Untagged));
        out.extend(
            remaining
                .repo_digests
                .iter()
                .cloned()
                .map(Removal::Untagged),
        );
        records.images.retain(|r| r.id != record.id);
        self.save_records(lock, &records)?;
        out.push(Removal::Deleted(record.id));
        Ok(out)
    }

    /// Removes blobs and layers no image references. Layers that containers still
    /// stack (see [`ImageUsage::layers_in_use`]) stay, matched by directory name (the
    /// diff-id), so a container outlives the image it was created from. A blob or
    /// layer that cannot be removed does not stop the others: they are all tried, and
    /// then [`Error::GcIncomplete`] says what stayed and what was freed.
    pub fn gc(&self, _lock: &StoreLock, usage: &dyn ImageUsage) -> Result<GcStats> {
        let records = self.records()?;
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for r in &records.images {
            keep_blobs.insert(r.id.hex().to_string());
            keep_blobs.insert(r.manifest_digest.hex().to_string());
            if let Some(i) = &r.index_digest {
                keep_blobs.insert(i.hex().to_string());
            }
            for l in &r.layers {
                keep_layers.insert(l.hex().to_string());
            }
        }
        for dir in usage.layers_in_use()? {
            if let Some(name) = dir.file_name() {
                keep_layers.insert(name.to_string_lossy().into_owned());
            }
        }
        let mut failures = Vec::new();
        let (blobs, blob_bytes) = sweep(
            &self.dir.join("blobs/sha256"),
            &keep_blobs,
            fsutil::remove_tree_counted,
            &mut failures,
        )?;
        let (layers, layer_bytes) = sweep(
            &self.dir.join("layers"),
            &keep_layers,
            |dir| self.discard_layer(dir),
            &mut failures,
        )?;
        // Records of the layers gone (or never committed); not counted as layers.
        let (_, record_bytes) = sweep(
            &self.dir.join("tar-split"),
            &keep_layers,
            fsutil::remove_tree_counted,
            &mut failures,
        )?;
        let stats = GcStats {
            layers,
            blobs,
            bytes: blob_bytes + layer_bytes + record_bytes,
        };
        if failures.is_empty() {
            Ok(stats)
        } else {
            Err(Error::GcIncomplete {
                freed: stats,
                failures,
            })
        }
    }
}

/// Removes with `remove` the entries of `dir` whose names `keep` lacks; returns how
/// many went and the bytes `remove` reported, and collects its failures instead of
/// stopping at the first.
fn sweep(
    dir: &Path,
    keep: &BTreeSet<String>,
    remove: impl Fn(&Path) -> Result<u64>,
    failures: &mut Vec<Error>,
) -> Result<(usize, u64)> {
    let (mut removed, mut bytes) = (0, 0);
    for entry in fs::read_dir(dir).ctx("listing", dir)? {
        let gone = entry.ctx("listing", dir).and_then(|entry| {
            if keep.contains(entry.file_name().to_string_lossy().as_ref()) {
                return Ok(None);
            }
            remove(&entry.path()).map(Some)
        });
        match gone {
            Ok(Some(freed)) => {
                removed += 1;
                bytes += freed;
            }
            Ok(None) => {}
            Err(e) => failures.push(e),
        }
    }
    Ok((removed, bytes))
}

/// The hex part of something that may be an image id: `sha256:<hex>` or 4–64 hex digits.
fn id_prefix(name: &str) -> Option<&str> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let ok = (4..=64).contains(&hex.len())
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}

fn replace(records: &mut Records, record: &ImageRecord) {
    if let Some(r) = records.images.iter_mut().find(|r| r.id == record.id) {
        *r = record.clone();
    }
}

/// Whether a record answers to a reference: by tag name, or by digest (repo
/// digest, manifest or index digest) within the same repository.
fn matches_reference(record: &ImageRecord, reference: &Reference) -> bool {
    match reference.digest() {
        Some(d) => {
            let name = reference.name();
            record
                .repo_digests
                .iter()
                .any(|rd| rd == &format!("{name}@{d}"))
                || ((&record.manifest_digest == d || record.index_digest.as_ref() == Some(d))
                    && record
                        .names
                        .iter()
                        .chain(&record.repo_digests)
                        .any(|n| Reference::parse(n).is_ok_and(|r| r.name() == name)))
        }
        None => record.names.iter().any(|n| n == &reference.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Containers that stack the given layer directories and use no image.
    struct Stacking(Vec<PathBuf>);

    impl ImageUsage for Stacking {
        fn containers_using(&self, _image: &ImageRecord) -> Result<Vec<String>> {
            Ok(Vec::new())
        }

        fn layers_in_use(&self) -> Result<Vec<PathBuf>> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn gc_keeps_layers_containers_stack_and_counts_what_it_frees() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        let used = Digest::of(b"used");
        let orphan = Digest::of(b"orphan");
        for d in [&used, &orphan] {
            let dir = store.layer_dir(d);
            fs::create_dir_all(dir.join("bin")).expect("layer dir");
            fs::write(dir.join("bin/file"), b"12345").expect("layer file");
        }
        fs::write(store.blob_path(&orphan), b"blob").expect("blob");
        let lock = store.lock().expect("lock");
        // The container's record may name the layer through another spelling of the root.
        let seen_by_container = PathBuf::from("/elsewhere/image/layers").join(used.hex());
        let stats = store
            .gc(&lock, &Stacking(vec![seen_by_container]))
            .expect("gc");
        assert!(store.has_layer(&used));
        assert!(!store.has_layer(&orphan));
        assert_eq!((stats.layers, stats.blobs, stats.bytes), (1, 1, 9));
        let stats = store.gc(&lock, &Stacking(Vec::new())).expect("gc");
        assert!(!store.has_layer(&used));
        assert_eq!((stats.layers, stats.bytes), (1, 5));
    }
}
