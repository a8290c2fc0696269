//! Subordinate id ranges (`/etc/subuid`, `/etc/subgid`): reading a user's entries,
//! finding a free region, and adding or removing entries under shadow-utils' own lock
//! (`FILE.lock`, made by `link(2)` as `useradd` makes it) with an atomic rename, so
//! concurrent `useradd`, `usermod` and ccrun processes never lose each other's lines.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// `/etc/subuid`.
pub const SUBUID: &str = "/etc/subuid";
/// `/etc/subgid`.
pub const SUBGID: &str = "/etc/subgid";
/// `/etc/login.defs`, whose `SUB_UID_MAX`/`SUB_GID_MAX` bound what `useradd` hands out.
pub const LOGIN_DEFS: &str = "/etc/login.defs";
/// The highest id a range may reach: `(uid_t)-1` is invalid and `-2` is often taken
/// as "nobody" by NFS.
pub const MAX_ID: u64 = u32::MAX as u64 - 1;

/// One line of a subordinate id file: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A user name or a numeric uid.
    pub owner: String,
    /// First id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

impl Entry {
    /// One past the last id, as a u64 so that it cannot overflow.
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }
}

/// Parses a subordinate id file; comments, blank and malformed lines are skipped, as
/// shadow-utils skips them.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.trim().parse().ok()?;
            let count = f.next()?.trim().parse().ok()?;
            (f.next().is_none() && !owner.is_empty() && count > 0).then_some(Entry {
                owner,
                start,
                count,
            })
        })
        .collect()
}

/// Reads and parses `path`; a missing file has no entries.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// The entries of `path` that belong to the user named `name` with uid `uid` (lines
/// may name either), in file order.
pub fn entries_of(path: &Path, name: &str, uid: Option<u32>) -> Result<Vec<Entry>> {
    let uid = uid.map(|u| u.to_string());
    Ok(read(path)?
        .into_iter()
        .filter(|e| e.owner == name || uid.as_deref() == Some(e.owner.as_str()))
        .collect())
}

/// The lowest start `>= floor`, aligned to `align`, of `count` ids that overlap none of
/// `taken`, ending at or below [`MAX_ID`].
pub fn free_region(taken: &[Entry], floor: u64, count: u32, align: u32) -> Option<u32> {
    let align = u64::from(align.max(1));
    let count = u64::from(count);
    let mut spans: Vec<(u64, u64)> = taken
        .iter()
        .map(|e| (u64::from(e.start), e.end()))
        .collect();
    spans.sort_unstable();
    let mut start = floor.div_ceil(align) * align;
    for (s, e) in spans {
        if start + count <= s {
            break;
        }
        if e > start {
            start = e.div_ceil(align) * align;
        }
    }
    (start + count <= MAX_ID + 1)
        .then_some(start)
        .and_then(|s| u32::try_from(s).ok())
}

/// The value of `key` (`SUB_UID_MAX`, …) in `/etc/login.defs`, if set.
pub fn login_defs(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(LOGIN_DEFS).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        (f.next()? == key).then(|| f.next()?.parse().ok())?
    })
}

/// shadow-utils' lock on a database file: `FILE.lock`, holding the locker's pid,
/// created with `link(2)` so that it is atomic even over NFS. A lock whose process is
/// gone is stale and taken over, as `commonio_lock` does.
pub struct ShadowLock {
    lock: PathBuf,
}

impl ShadowLock {
    /// Takes the lock of `file`, waiting up to 15 s for another holder.
    pub fn acquire(file: &Path) -> Result<ShadowLock> {
        let lock = with_suffix(file, ".lock");
        let mine = with_suffix(file, &format!(".{}", std::process::id()));
        let _ = std::fs::remove_file(&mine);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&mine)
            .and_then(|mut f| f.write_all(std::process::id().to_string().as_bytes()))
            .map_err(|e| Error::io("creating", &mine, e))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        let result = loop {
            match std::fs::hard_link(&mine, &lock) {
                Ok(()) => break Ok(ShadowLock { lock }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if holder_is_gone(&lock) {
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    if Instant::now() > deadline {
                        break Err(Error::Setup(format!(
                            "{} is locked by another process (useradd, usermod or ccrun); \
                             remove the lock if that process is gone",
                            lock.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => break Err(Error::io("locking", &lock, e)),
            }
        };
        let _ = std::fs::remove_file(&mine);
        result
    }
}

impl Drop for ShadowLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

fn holder_is_gone(lock: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(lock) else {
        return false;
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH)
        }
        _ => false,
    }
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces `path` with `text` atomically (a temporary file beside it, fsynced, then
/// renamed over it), keeping its mode and owner (0644 root for a new file).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = with_suffix(path, &format!(".ccrun-{}", std::process::id()));
    let (mode, owner) = match std::fs::metadata(path) {
        Ok(m) => (m.permissions().mode() & 0o7777, Some((m.uid(), m.gid()))),
        Err(_) => (0o644, None),
    };
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    Ok(())
}

/// Changes `path` under its shadow lock: `edit` gets the current text and returns the
/// new one, or `None` to leave the file alone. Returns what `edit` returned.
pub fn edit(path: &Path, edit: impl FnOnce(&str) -> Result<Option<String>>) -> Result<bool> {
    let _lock = ShadowLock::acquire(path)?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    match edit(&text)? {
        Some(new) if new != text => write_atomic(path, &new).map(|()| true),
        _ => Ok(false),
    }
}

/// Gives `owner` a range of `count` ids in both `/etc/subuid` and `/etc/subgid` unless
/// it has entries in both already, at the same start in each: the lowest free region at
/// or above `floor` (aligned to 65536) that no entry of any owner in either file
/// overlaps. Both files are locked for the whole change. Returns `owner`'s uid and gid
/// entries afterwards.
pub fn ensure_allocation(
    subuid: &Path,
    subgid: &Path,
    owner: &str,
    count: u32,
    floor: u64,
) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mine = |path: &Path| -> Result<Vec<Entry>> { entries_of(path, owner, None) };
    let (uids, gids) = (mine(subuid)?, mine(subgid)?);
    if !uids.is_empty() && !gids.is_empty() {
        return Ok((uids, gids));
    }
    let _uid_lock = ShadowLock::acquire(subuid)?;
    let _gid_lock = ShadowLock::acquire(subgid)?;
    let (all_uids, all_gids) = (read(subuid)?, read(subgid)?);
    let (uids, gids) = (owned(&all_uids, owner), owned(&all_gids, owner));
    if !uids.is_empty() && !gids.is_empty() {
        return Ok((uids, gids));
    }
    let taken: Vec<Entry> = all_uids.iter().chain(&all_gids).cloned().collect();
    let start = free_region(&taken, floor, count, 65_536).ok_or_else(|| {
        Error::Setup(format!(
            "no free region of {count} subordinate ids above {floor} in {} and {} for {owner}",
            subuid.display(),
            subgid.display()
        ))
    })?;
    let entry = Entry {
        owner: owner.to_string(),
        start,
        count,
    };
    for (path, existing) in [(subuid, &uids), (subgid, &gids)] {
        if existing.is_empty() {
            append_line(path, &entry)?;
        }
    }
    Ok((mine(subuid)?, mine(subgid)?))
}

fn owned(entries: &[Entry], owner: &str) -> Vec<Entry> {
    entries
        .iter()
        .filter(|e| e.owner == owner)
        .cloned()
        .collect()
}

/// Appends `entry` to `path` (the caller holds its lock).
fn append_line(path: &Path, entry: &Entry) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "{}:{}:{}\n",
        entry.owner, entry.start, entry.count
    ));
    write_atomic(path, &text)
}

/// Removes every line of `owner` from `path` under its lock. True when one was removed.
pub fn remove_owner(path: &Path, owner: &str) -> Result<bool> {
    edit(path, |text| {
        let kept: String = text
            .lines()
            .filter(|l| l.split(':').next() != Some(owner))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok(Some(kept))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(owner: &str, start: u32, count: u32) -> Entry {
        Entry {
            owner: owner.into(),
            start,
            count,
        }
    }

    #[test]
    fn parses_lines_and_skips_junk() {
        let entries = parse("# c\ntester:100000:65536\n\nbad\n1001:200000:10\nx:1:0\n");
        assert_eq!(
            entries,
            vec![e("tester", 100000, 65536), e("1001", 200000, 10)]
        );
    }

    #[test]
    fn free_regions_avoid_every_entry() {
        let taken = [e("a", 100000, 65536), e("b", 165536, 65536)];
        assert_eq!(free_region(&taken, 100000, 65536, 65536), Some(262144));
        assert_eq!(free_region(&taken, 0, 65536, 65536), Some(0));
        assert_eq!(free_region(&taken, 0, 100001, 65536), Some(262144));
        assert_eq!(free_region(&[], u64::from(u32::MAX) - 10, 65536, 1), None);
    }

    #[test]
    fn allocation_is_added_once_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "tester:100000:65536\n").expect("write");
        std::fs::write(&g, "tester:100000:65536\nother:300000:65536\n").expect("write");
        let (uids, gids) = ensure_allocation(&u, &g, "ccrun", 131072, 100000).expect("alloc");
        assert_eq!(uids, vec![e("ccrun", 393216, 131072)]);
        assert_eq!(gids, uids);
        let again = ensure_allocation(&u, &g, "ccrun", 131072, 100000).expect("again");
        assert_eq!(again.0, uids);
        assert!(!u.with_extension("lock").exists());
        assert!(remove_owner(&u, "ccrun").expect("remove"));
        assert_eq!(
            std::fs::read_to_string(&u).expect("read"),
            "tester:100000:65536\n"
        );
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("subuid");
        // No process has pid 0x7ffffff0.
        std::fs::write(with_suffix(&file, ".lock"), "2147483632").expect("lock");
        let lock = ShadowLock::acquire(&file).expect("stale lock taken");
        drop(lock);
        assert!(!with_suffix(&file, ".lock").exists());
    }
}
