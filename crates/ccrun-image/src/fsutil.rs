//! Small filesystem helpers: atomic writes, directory fsync, tree removal.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` so that readers see the old or the new content, never a
/// mix, even across SIGKILL or power loss: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .ctx("creating", &tmp)?;
    f.write_all(bytes).ctx("writing", &tmp)?;
    f.sync_all().ctx("syncing", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).ctx("renaming into place", path)?;
    fsync_dir(dir)
}

/// Makes a rename or create in `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("syncing directory", dir)
}

/// `mkdir -p` with a mode for the directories it creates.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .ctx("creating directory", dir)
}

/// Removes a tree if it exists. std's implementation does not follow symlinks
/// inside the tree, which matters for unpacked layers.
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("inspecting", path),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("removing", path),
        Ok(_) => fs::remove_file(path).ctx("removing", path),
    }
}

/// Disk usage of a tree in bytes (apparent sizes of regular files), not following symlinks.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    let Ok(rd) = fs::read_dir(path) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| tree_size(&e.path()))
        .sum()
}
