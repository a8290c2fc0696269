//! Small, error-annotating helpers for reading and writing cgroup interface files.
//!
//! cgroupfs files are written with a single `write(2)` and never created: a missing
//! file means the controller or feature is absent, and that must surface as an error
//! rather than silently creating a regular file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};

/// How often an `rmdir` that fails with `EBUSY` is retried.
const RMDIR_ATTEMPTS: u32 = 10;
/// Pause between `rmdir` attempts.
const RMDIR_PAUSE: Duration = Duration::from_millis(20);

/// Reads a whole file as UTF-8.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file, returning `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `value` to an existing file in one write, truncating it.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    tracing::debug!(path = %path.display(), value, "cgroup write");
    let wrap = |source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(wrap)?;
    file.write_all(value.as_bytes()).map_err(wrap)
}

/// Whether `path` exists (a cgroup interface file or directory).
pub(crate) fn exists(path: &Path) -> bool {
    path.exists()
}

/// Parses a decimal unsigned integer read from `path`.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let text = text.trim();
    text.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("expected an unsigned integer, found {text:?}"),
    })
}

/// Reads a file holding a single unsigned integer.
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let text = read(path)?;
    parse_u64(path, &text)
}

/// Finds `key` in a "flat keyed" file (lines of `key value`) and parses its value.
pub(crate) fn keyed_u64(path: &Path, text: &str, key: &str) -> Result<u64> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().unwrap_or_default();
            return parse_u64(path, value);
        }
    }
    Err(Error::Parse {
        path: path.to_path_buf(),
        reason: format!("no {key:?} line"),
    })
}

/// Reads the pids listed in `cgroup.procs` of `dir` and of every cgroup below it.
/// A directory that does not exist contributes nothing.
pub(crate) fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_optional(&procs)? else {
        return Ok(());
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = line.parse::<i32>().map_err(|_| Error::Parse {
            path: procs.clone(),
            reason: format!("expected a pid, found {line:?}"),
        })?;
        out.push(pid);
    }
    for child in child_dirs(dir)? {
        collect_pids(&child, out)?;
    }
    Ok(())
}

/// Lists the subdirectories (child cgroups) of `dir`; none if `dir` is gone.
fn child_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        // DirEntry::file_type does not follow symlinks.
        let file_type = entry.file_type().map_err(read_err)?;
        if file_type.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Creates `dir` if it does not exist yet (its parent must exist).
pub(crate) fn mkdir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes the cgroup `dir` and every child cgroup below it, deepest first.
/// Retries `EBUSY` briefly (tasks that were just killed leave asynchronously);
/// a directory that is already gone is fine.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    for child in child_dirs(dir)? {
        remove_tree(&child)?;
    }
    let mut attempt = 1;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                attempt += 1;
                thread::sleep(RMDIR_PAUSE);
            }
            Err(source) => {
                return Err(Error::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Removes the now-empty ancestors of `root/rel` below `root`, deepest first, and
/// stops at the first one `rmdir` refuses (still in use, or already gone).
pub(crate) fn remove_empty_parents(root: &Path, rel: &Path) {
    let mut dir = root.join(rel);
    while dir.pop() && dir.starts_with(root) && dir != root {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_value_is_found_and_missing_key_is_an_error() {
        let p = Path::new("memory.events");
        let text = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n";
        assert_eq!(keyed_u64(p, text, "oom_kill").unwrap(), 1);
        assert_eq!(keyed_u64(p, text, "oom").unwrap(), 2);
        assert!(keyed_u64(p, text, "oom_group_kill").is_err());
        assert!(keyed_u64(p, "oom_kill x\n", "oom_kill").is_err());
    }

    #[test]
    fn write_refuses_to_create_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("memory.max");
        let err = write(&path, "1").unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn collect_pids_walks_child_cgroups() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.procs"), "10\n11\n").unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        fs::write(tmp.path().join("sub/cgroup.procs"), "12\n").unwrap();
        let mut pids = Vec::new();
        collect_pids(tmp.path(), &mut pids).unwrap();
        pids.sort_unstable();
        assert_eq!(pids, vec![10, 11, 12]);

        let mut none = Vec::new();
        collect_pids(&tmp.path().join("gone"), &mut none).unwrap();
        assert!(none.is_empty());
    }
}
