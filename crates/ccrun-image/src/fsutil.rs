//! Small filesystem helpers: atomic writes, directory fsync, and walks and removals
//! of trees at any depth with a bounded number of fds and no recursion (a layer may
//! be thousands of directories deep).

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

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

/// Removes a tree (or a file) if it exists, at any depth, holding a bounded number of
/// fds (see [`remove_at`]).
pub fn remove_tree(path: &Path) -> Result<()> {
    remove_tree_counted(path).map(|_| ())
}

/// [`remove_tree`], returning the bytes of the regular files it removed.
pub fn remove_tree_counted(path: &Path) -> Result<u64> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| CString::new(n.as_bytes()).ok())
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
        .ctx("removing", path)?;
    let dir = match rfs::open(parent, dir_flags(), Mode::empty()) {
        Err(Errno::NOENT) => return Ok(0),
        other => other.ctx("removing", path)?,
    };
    remove_at(dir.as_fd(), &name).ctx("removing", path)
}

/// Directory fds one tree walk holds at most: far below the common limit of 1024
/// fds, even with a walk per layer of a pull running at once.
const WINDOW: usize = 64;

/// Opening a directory without following a symlink in its place.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    rfs::openat(dir, name, dir_flags(), Mode::empty()).map_err(|e| named(e, name))
}

/// An error that says which entry it is about.
fn named(errno: Errno, name: &CStr) -> io::Error {
    let e = io::Error::from(errno);
    io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy()))
}

/// The names in a directory, `.` and `..` left out.
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    let mut entries = rfs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// A directory being emptied: its fd, its name in its parent, what is left in it.
struct Frame {
    fd: OwnedFd,
    name: CString,
    pending: Vec<CString>,
}

/// Removes `name` in `dir` and everything below it, without following symlinks and
/// without recursion, holding at most [`WINDOW`] directory fds whatever the depth:
/// a directory found deeper than that is first renamed up into the top directory
/// being removed and emptied from there (O(entries) work, no re-walks, no `..`).
/// Returns the bytes of the regular files removed.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<u64> {
    if matches!(name.to_bytes(), b"" | b"." | b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to remove {name:?}"),
        ));
    }
    let mut freed = 0;
    if unlink_unless_dir(dir, name, &mut freed)? {
        return Ok(freed);
    }
    let top = open_dir(dir, name)?;
    let pending = list(top.as_fd())?;
    let mut stack = vec![Frame {
        fd: top,
        name: name.to_owned(),
        pending,
    }];
    let mut flattened = 0u64;
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            return Ok(freed);
        };
        let Some(child) = frame.pending.pop() else {
            let Frame { fd, name, .. } = stack.pop().ok_or(io::ErrorKind::Other)?;
            drop(fd);
            let parent = stack.last().map_or(dir, |f| f.fd.as_fd());
            rfs::unlinkat(parent, &name, AtFlags::REMOVEDIR).map_err(|e| named(e, &name))?;
            continue;
        };
        let here = stack[depth - 1].fd.as_fd();
        if unlink_unless_dir(here, &child, &mut freed)? {
            continue;
        }
        if depth < WINDOW {
            let fd = open_dir(here, &child)?;
            let pending = list(fd.as_fd())?;
            stack.push(Frame {
                fd,
                name: child,
                pending,
            });
            continue;
        }
        let top = stack[0].fd.as_fd();
        let aside = loop {
            let aside = CString::new(format!(".ccrun-deep-{flattened}"))?;
            flattened += 1;
            match rfs::renameat_with(here, &child, top, &aside, RenameFlags::NOREPLACE) {
                Ok(()) => break aside,
                Err(Errno::EXIST) => {}
                Err(e) => return Err(named(e, &child)),
            }
        };
        stack[0].pending.push(aside);
    }
}

/// Unlinks `name` unless it is a directory (true if it is gone), adding a regular
/// file's size to `freed`.
fn unlink_unless_dir(dir: BorrowedFd<'_>, name: &CStr, freed: &mut u64) -> io::Result<bool> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(true),
        Err(e) => return Err(named(e, name)),
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind == FileType::Directory {
        return Ok(false);
    }
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(named(e, name)),
    }
    if kind == FileType::RegularFile {
        *freed += u64::try_from(st.st_size).unwrap_or(0);
    }
    Ok(true)
}

/// A directory below a root, reached by names from the root without `..`, keeping
/// fds for the last [`WINDOW`] levels of its path only: going up past them opens the
/// path again from the root (`openat` with `O_NOFOLLOW` at each step). For walks
/// that may not change the tree; [`remove_at`] has a cheaper way.
pub(crate) struct Cursor<'r> {
    root: BorrowedFd<'r>,
    names: Vec<CString>,
    /// The directories at the last `fds.len()` levels of `names`.
    fds: VecDeque<OwnedFd>,
}

impl<'r> Cursor<'r> {
    /// At `root`.
    pub(crate) fn new(root: BorrowedFd<'r>) -> Cursor<'r> {
        Cursor {
            root,
            names: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    /// The current directory.
    pub(crate) fn dir(&mut self) -> io::Result<BorrowedFd<'_>> {
        if self.fds.is_empty() && !self.names.is_empty() {
            self.reopen()?;
        }
        Ok(self.fds.back().map_or(self.root, |fd| fd.as_fd()))
    }

    /// Goes down into `name`, which must be a directory, not a symlink.
    pub(crate) fn enter(&mut self, name: &CStr) -> io::Result<()> {
        let fd = open_dir(self.dir()?, name)?;
        self.names.push(name.to_owned());
        self.fds.push_back(fd);
        if self.fds.len() > WINDOW {
            self.fds.pop_front();
        }
        Ok(())
    }

    /// Goes up one level (nothing at the root).
    pub(crate) fn leave(&mut self) {
        self.names.pop();
        self.fds.pop_back();
    }

    /// Goes to `path` (components below the root) through the nearest common level.
    pub(crate) fn go_to(&mut self, path: &[&[u8]]) -> io::Result<()> {
        let common = self
            .names
            .iter()
            .zip(path)
            .take_while(|(have, want)| have.as_bytes() == **want)
            .count();
        while self.names.len() > common {
            self.leave();
        }
        for name in &path[common..] {
            self.enter(&CString::new(*name)?)?;
        }
        Ok(())
    }

    /// Opens the current path again from the root, keeping the last [`WINDOW`] levels.
    fn reopen(&mut self) -> io::Result<()> {
        let keep_from = self.names.len().saturating_sub(WINDOW);
        let mut above: Option<OwnedFd> = None;
        for (level, name) in self.names.iter().enumerate() {
            let base = match (self.fds.back(), &above) {
                (Some(fd), _) | (None, Some(fd)) => fd.as_fd(),
                (None, None) => self.root,
            };
            let fd = match open_dir(base, name) {
                Ok(fd) => fd,
                Err(e) => {
                    self.fds.clear();
                    return Err(e);
                }
            };
            if level >= keep_from {
                self.fds.push_back(fd);
            } else {
                above = Some(fd);
            }
        }
        Ok(())
    }
}

/// Disk usage of a tree in bytes (apparent sizes of regular files), not following
/// symlinks; at any depth with a bounded number of fds. Best effort: what cannot
/// be read counts as nothing.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    let Ok(root) = rfs::open(path, dir_flags(), Mode::empty()) else {
        return 0;
    };
    let mut cursor = Cursor::new(root.as_fd());
    let mut total = 0;
    // Per level entered, the subdirectories still to visit.
    let mut stack = vec![sizes_and_subdirs(&mut cursor, &mut total)];
    while let Some(pending) = stack.last_mut() {
        match pending.pop() {
            Some(sub) => {
                if cursor.enter(&sub).is_ok() {
                    stack.push(sizes_and_subdirs(&mut cursor, &mut total));
                }
            }
            None => {
                stack.pop();
                if !stack.is_empty() {
                    cursor.leave();
                }
            }
        }
    }
    total
}

/// Adds the sizes of the regular files in the cursor's directory to `total` and
/// returns its subdirectories.
fn sizes_and_subdirs(cursor: &mut Cursor<'_>, total: &mut u64) -> Vec<CString> {
    let Ok(dir) = cursor.dir() else {
        return Vec::new();
    };
    let mut subdirs = Vec::new();
    for name in list(dir).unwrap_or_default() {
        let Ok(st) = rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => subdirs.push(name),
            FileType::RegularFile => *total += u64::try_from(st.st_size).unwrap_or(0),
            _ => {}
        }
    }
    subdirs
}
