//! Path operations confined to the container's rootfs. Every lookup goes through
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image (`/proc -> /`, `etc -> ../../host`)
//! can never make ccrun create or mount something outside the rootfs.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

const RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/// Normalises `path` to a relative path with no `.`/`..`/root components
/// (`..` at the top stays at the top, as it would inside a chroot).
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Opens `path` (relative to `root`) as an `O_PATH` fd, resolved inside the root.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel.as_path()
    };
    sys::openat2(root, rel, libc::O_PATH, 0, RESOLVE)
}

/// Reads the file at `path` inside the directory `root` (a host path), resolving every
/// component inside it: the engine reads an image's `/etc/passwd` this way, so a
/// symlinked `/etc/passwd -> /etc/shadow` names the image's file, never the host's.
pub fn read_to_string(root: &Path, path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let dir = std::fs::File::open(root)?;
    let rel = relative(path);
    let fd = sys::openat2(
        dir.as_fd(),
        &rel,
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
        RESOLVE,
    )?;
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text)?;
    Ok(text)
}

/// Creates every missing directory of `path` inside `root` and returns an `O_PATH`
/// fd of the last one.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let mut current = sys::openat2(
        root,
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE,
    )?;
    let mut so_far = PathBuf::new();
    for name in rel.components() {
        let Component::Normal(name) = name else {
            continue;
        };
        so_far.push(name);
        match sys::openat2(root, &so_far, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE) {
            Ok(fd) => current = fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    Some(current.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                current =
                    sys::openat2(root, &so_far, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

/// Ensures a regular file (e.g. a bind-mount target) exists at `path` inside `root`,
/// creating its parents, and returns an `O_PATH` fd of it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    if let Ok(fd) = open_path(root, path) {
        return Ok(fd);
    }
    let rel = relative(path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().unwrap_or(OsStr::new("."));
    let dir = mkdir_all(root, parent, 0o755)?;
    let dir = sys::openat2(
        dir.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )?;
    match nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        // A descriptor open for writing would keep the mount busy: a later read-only
        // remount of the root would fail with EBUSY.
        Ok(fd) => nix::unistd::close(fd)?,
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_path(root, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn relative_strips_root_and_dotdot() {
        assert_eq!(relative(Path::new("/a/../../b/./c")), PathBuf::from("b/c"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn mkdir_all_stays_inside_root_through_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        let rootfd = std::fs::File::open(&root).expect("open root");

        // An absolute link to a host directory is dangling inside the root: refused,
        // and nothing is created on the host.
        std::os::unix::fs::symlink(&outside, root.join("evil")).expect("symlink");
        assert!(mkdir_all(rootfd.as_fd(), Path::new("/evil/x"), 0o755).is_err());
        assert!(!outside.join("x").exists(), "escaped the root");

        // An absolute link is resolved relative to the root.
        std::os::unix::fs::symlink("/real", root.join("link")).expect("symlink");
        mkdir_all(rootfd.as_fd(), Path::new("/link/x"), 0o755).expect("mkdir_all");
        assert!(root.join("real/x").is_dir());

        // `..` cannot climb above the root.
        std::os::unix::fs::symlink("../../..", root.join("up")).expect("symlink");
        mkdir_all(rootfd.as_fd(), Path::new("/up/y"), 0o755).expect("mkdir_all");
        assert!(root.join("y").is_dir());
        assert!(!tmp.path().join("y").exists());
    }

    #[test]
    fn ensure_file_creates_parents_inside_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfd = std::fs::File::open(tmp.path()).expect("open root");
        ensure_file(rootfd.as_fd(), Path::new("/dev/null")).expect("ensure_file");
        assert!(tmp.path().join("dev/null").is_file());
    }
}
