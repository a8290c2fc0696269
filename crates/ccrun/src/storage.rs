//! What the engine's stores (containers, volumes, networks) share on disk: an
//! exclusive lock file, and directories that a container's unprivileged root must be
//! able to pass through.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive `flock` on a lock file, released on drop (or by the kernel when the
/// process dies).
pub struct FileLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Takes the exclusive lock on `path` (created if missing), waiting for other ccrun
/// processes.
pub fn lock_exclusive(path: &Path) -> Result<FileLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(FileLock { _lock: lock })
}

/// Gives `paths` search permission for everyone: a container's root in a user
/// namespace is an unprivileged host user and must reach its files below them.
pub fn make_searchable(paths: &[&Path]) -> Result<()> {
    for path in paths {
        let meta = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o011 != 0o011 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o011))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
    }
    Ok(())
}
