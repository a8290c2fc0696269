//! Host-side ownership around user namespaces: Podman's `U` option, which hands a
//! bind mount's source over to the container's user by chowning it recursively.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Uid};

/// Directories `U` refuses to chown: handing one of them to a container's user would
/// break the host (Podman refuses the same kind of paths).
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
];

/// Refuses `U` on the host's system directories; returns the path resolved.
pub fn check_chown_allowed(path: &Path) -> Result<std::path::PathBuf> {
    let real = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    if SYSTEM_DIRS.iter().any(|d| real == Path::new(d)) {
        bail!(
            "refusing to chown {} for the U option: it is a system directory",
            real.display()
        );
    }
    Ok(real)
}

/// Podman's `U`: gives `path` and everything below it (on the same filesystem,
/// symlinks themselves, never followed) to host `uid`/`gid`. Set-id bits that
/// chown clears are put back.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let real = check_chown_allowed(path)?;
    let shown = real.display().to_string();
    let parent = real.parent().unwrap_or(Path::new("/"));
    let name = real.file_name().map_or_else(
        || CString::new("."),
        |n| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(n)),
    )?;
    let parent = rfs::open(parent, DIR_FLAGS, Mode::empty())
        .with_context(|| format!("opening {}", parent.display()))?;
    let dev = std::fs::metadata(&real)
        .with_context(|| format!("stat {shown}"))?
        .dev();
    let chown = Chown {
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        dev,
    };
    chown
        .entry(&parent, &name)
        .with_context(|| format!("chown {uid}:{gid} {shown} (U option)"))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

struct Chown {
    uid: Uid,
    gid: Gid,
    /// The filesystem of the top: mounts below it are not entered.
    dev: u64,
}

impl Chown {
    fn entry(&self, dir: &OwnedFd, name: &std::ffi::CStr) -> Result<()> {
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {name:?}"))?;
        if (st.st_uid, st.st_gid) != (self.uid.as_raw(), self.gid.as_raw()) {
            rfs::chownat(
                dir,
                name,
                Some(self.uid),
                Some(self.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("chown {name:?}"))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            if st.st_mode & 0o6000 != 0 && kind != FileType::Symlink {
                rfs::chmodat(
                    dir,
                    name,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                )
                .with_context(|| format!("chmod {name:?}"))?;
            }
        }
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory
            || st.st_dev as u64 != self.dev
        {
            return Ok(());
        }
        let sub = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
            .with_context(|| format!("opening {name:?}"))?;
        for entry in rfs::Dir::read_from(&sub).with_context(|| format!("reading {name:?}"))? {
            let entry = entry.with_context(|| format!("reading {name:?}"))?;
            let child = entry.file_name();
            if child == c"." || child == c".." {
                continue;
            }
            self.entry(&sub, child)
                .with_context(|| format!("in {name:?}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn system_directories_are_refused() {
        for dir in ["/", "/etc", "/usr/../usr"] {
            assert!(check_chown_allowed(Path::new(dir)).is_err(), "{dir}");
        }
    }

    #[test]
    fn chown_tree_changes_everything_below_without_following_links() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let top = tmp.path().join("top");
        std::fs::create_dir_all(top.join("a/b")).expect("mkdir");
        std::fs::write(top.join("a/b/file"), "x").expect("write");
        std::fs::write(top.join("suid"), "x").expect("write");
        std::fs::set_permissions(top.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .expect("chmod");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "x").expect("write");
        std::os::unix::fs::symlink(&outside, top.join("link")).expect("symlink");
        chown_tree(&top, 101_000, 101_001).expect("chown");
        for p in ["", "a", "a/b", "a/b/file", "suid"] {
            let m = std::fs::symlink_metadata(top.join(p)).expect("stat");
            assert_eq!((m.uid(), m.gid()), (101_000, 101_001), "{p}");
        }
        let link = std::fs::symlink_metadata(top.join("link")).expect("stat");
        assert_eq!(link.uid(), 101_000);
        assert_eq!(std::fs::metadata(&outside).expect("stat").uid(), 0);
        let suid = std::fs::metadata(top.join("suid")).expect("stat");
        assert_eq!(suid.mode() & 0o7777, 0o4755);
    }
}
