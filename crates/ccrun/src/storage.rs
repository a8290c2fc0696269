//! What the engine's stores (containers, volumes, networks) share on disk: an
//! exclusive lock file, and a storage root closed to other host users.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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

/// Creates the storage root if missing and keeps it closed to every other host user
/// (mode 0700, as podman's): below it lie containers' upper directories and volumes,
/// where a container may have made set-user-id binaries and device nodes that no host
/// user may reach. Containers themselves never need a path through it: the runtime
/// hands them their rootfs and bind mounts as mounts opened by host root.
pub fn make_private_root(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(meta) if meta.permissions().mode() & 0o077 == 0 => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .with_context(|| format!("creating {}", root.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("stat {}", root.display())),
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", root.display()))
}
