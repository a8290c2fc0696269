//! Seeding a new volume from the image, as Docker does: what the container's root
//! filesystem has at the mount point is copied into the volume (modes, owners,
//! timestamps, symlinks, hardlinks, device nodes, and extended attributes where the
//! volume's filesystem takes them), and the volume's top directory takes the mode and
//! owner of the image's directory.
//!
//! Everything is done relative to open directory descriptors without following
//! symlinks, and the mount point itself is resolved inside the root filesystem
//! (`openat2(RESOLVE_IN_ROOT)`, as the runtime resolves it), so a hostile image cannot
//! make ccrun read host files through a symlink.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

/// The host's overflow id: what an id outside the container's mapping shows as.
const OVERFLOW_ID: u32 = 65_534;

/// Overlay attributes are the snapshot's business, never a volume's.
const SKIPPED_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// How the owners read from the root filesystem become host owners in the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdShift {
    /// Kept as they are: an overlay snapshot already shows the image's files through
    /// the container's mapping (its layers are idmapped mounts), and without a user
    /// namespace container ids are host ids.
    Keep,
    /// Shifted into the container's host range: a `--rootfs` directory shows raw ids,
    /// which the runtime maps only when it mounts the root.
    Map {
        /// Host uid of container uid 0.
        uid_start: u32,
        /// Host gid of container gid 0.
        gid_start: u32,
        /// Number of ids mapped.
        count: u32,
    },
    /// Shifted out of the container's host range, back to the ids the container sees:
    /// for volumes mounted idmapped (`--userns auto`), which store those.
    Unmap {
        /// Host uid of container uid 0.
        uid_start: u32,
        /// Host gid of container gid 0.
        gid_start: u32,
        /// Number of ids mapped.
        count: u32,
    },
}

impl IdShift {
    fn uid(self, id: u32) -> u32 {
        match self {
            IdShift::Keep => id,
            IdShift::Map {
                uid_start, count, ..
            } => shift(id, uid_start, count),
            IdShift::Unmap {
                uid_start, count, ..
            } => unshift(id, uid_start, count),
        }
    }

    fn gid(self, id: u32) -> u32 {
        match self {
            IdShift::Keep => id,
            IdShift::Map {
                gid_start, count, ..
            } => shift(id, gid_start, count),
            IdShift::Unmap {
                gid_start, count, ..
            } => unshift(id, gid_start, count),
        }
    }
}

fn shift(id: u32, start: u32, count: u32) -> u32 {
    if id < count {
        start.saturating_add(id)
    } else {
        OVERFLOW_ID
    }
}

fn unshift(id: u32, start: u32, count: u32) -> u32 {
    match id.checked_sub(start) {
        Some(n) if n < count => n,
        _ => OVERFLOW_ID,
    }
}

/// What [`seed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    /// The image's directory was copied (perhaps an empty one).
    Copied,
    /// The image has no directory at the mount point.
    NothingThere,
    /// The volume already has content; it was left alone.
    NotEmpty,
}

/// Copies what `rootfs` has at `destination` into the volume directory `data` if that
/// is empty, giving `data` the mode and owner of the image's directory.
pub fn seed(rootfs: &Path, destination: &str, data: &Path, shift: IdShift) -> Result<Seeded> {
    use ccrun_runtime::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
    let root = std::fs::File::open(rootfs)
        .with_context(|| format!("opening the root filesystem {}", rootfs.display()))?;
    let relative = ccrun_runtime::fsroot::relative(Path::new(destination));
    let src = match openat2(
        root.as_fd(),
        &relative,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
            return Ok(Seeded::NothingThere)
        }
        Err(e) => {
            return Err(e).with_context(|| format!("opening {destination} in the image"));
        }
    };
    let dst = rfs::open(
        data,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", data.display()))?;
    if !names(&dst).context("reading the volume")?.is_empty() {
        return Ok(Seeded::NotEmpty);
    }
    let mut copy = Copy {
        shift,
        dst_root: dst.try_clone().context("duplicating a descriptor")?,
        path: Vec::new(),
        links: HashMap::new(),
    };
    copy.dir(&src, &dst)
        .with_context(|| format!("copying {destination} from the image into the volume"))?;
    let st = rfs::fstat(&src).with_context(|| format!("stat {destination}"))?;
    copy.attributes(&src, &dst, &st)
        .with_context(|| format!("copying the attributes of {destination}"))?;
    Ok(Seeded::Copied)
}

/// The names in a directory, without `.` and `..`.
pub fn names(dir: impl AsFd) -> rustix::io::Result<Vec<CString>> {
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// One copy in progress.
struct Copy {
    shift: IdShift,
    /// The volume's top directory, for hardlinks.
    dst_root: OwnedFd,
    /// Where we are below the top (directory names), for messages and hardlinks.
    path: Vec<CString>,
    /// Files with several links already copied: (device, inode) → path below the top.
    links: HashMap<(u64, u64), CString>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Copy {
    fn shown(&self, name: &CStr) -> String {
        let mut parts: Vec<String> = self
            .path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        parts.push(name.to_string_lossy().into_owned());
        parts.join("/")
    }

    fn relative(&self, name: &CStr) -> Result<CString> {
        let mut bytes = Vec::new();
        for part in &self.path {
            bytes.extend_from_slice(part.to_bytes());
            bytes.push(b'/');
        }
        bytes.extend_from_slice(name.to_bytes());
        CString::new(bytes).context("a path with a NUL byte")
    }

    fn dir(&mut self, src: &OwnedFd, dst: &OwnedFd) -> Result<()> {
        for name in names(src).context("reading a directory")? {
            self.entry(src, dst, &name)
                .with_context(|| self.shown(&name))?;
        }
        Ok(())
    }

    fn entry(&mut self, src: &OwnedFd, dst: &OwnedFd, name: &CStr) -> Result<()> {
        let st = rfs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).context("stat")?;
        let perm = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).context("mkdir")?;
                let s = rfs::openat(src, name, DIR_FLAGS, Mode::empty()).context("open")?;
                let d = rfs::openat(dst, name, DIR_FLAGS, Mode::empty()).context("open copy")?;
                self.path.push(name.to_owned());
                let copied = self.dir(&s, &d);
                self.path.pop();
                copied?;
                // Last: writing the children changed its times, and its mode may forbid writing.
                self.attributes(&s, &d, &st)
            }
            FileType::RegularFile => {
                let key = (st.st_dev as u64, st.st_ino as u64);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        return rfs::linkat(
                            &self.dst_root,
                            first.as_c_str(),
                            dst,
                            name,
                            AtFlags::empty(),
                        )
                        .context("hardlink");
                    }
                }
                let s = rfs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .context("open")?;
                let d = rfs::openat(
                    dst,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .context("create")?;
                let (mut from, mut to) = (std::fs::File::from(s), std::fs::File::from(d));
                std::io::copy(&mut from, &mut to).context("copying content")?;
                let (s, d) = (OwnedFd::from(from), OwnedFd::from(to));
                self.attributes(&s, &d, &st)?;
                if st.st_nlink > 1 {
                    self.links.insert(key, self.relative(name)?);
                }
                Ok(())
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(src, name, Vec::new()).context("readlink")?;
                rfs::symlinkat(target.as_c_str(), dst, name).context("symlink")?;
                self.chown(
                    |u, g| rfs::chownat(dst, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
                    &st,
                )?;
                rfs::utimensat(dst, name, &times(&st), AtFlags::SYMLINK_NOFOLLOW).context("utimes")
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                rfs::mknodat(dst, name, kind, perm, st.st_rdev as _).context("mknod")?;
                self.chown(
                    |u, g| rfs::chownat(dst, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
                    &st,
                )?;
                // Not a symlink: we just made it, in a directory nobody else writes to.
                rfs::chmodat(dst, name, perm, AtFlags::empty()).context("chmod")?;
                rfs::utimensat(dst, name, &times(&st), AtFlags::SYMLINK_NOFOLLOW).context("utimes")
            }
            _ => {
                tracing::debug!("not copying socket {} into the volume", self.shown(name));
                Ok(())
            }
        }
    }

    /// Owner (shifted), mode, extended attributes and times of `src` onto `dst`, in the
    /// order that keeps them all: chown clears set-id bits and capabilities.
    fn attributes(&self, src: &OwnedFd, dst: &OwnedFd, st: &rfs::Stat) -> Result<()> {
        self.chown(|u, g| rfs::fchown(dst, u, g), st)?;
        rfs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777)).context("chmod")?;
        copy_xattrs(src.as_fd(), dst.as_fd());
        rfs::futimens(dst, &times(st)).context("utimes")
    }

    fn chown(
        &self,
        f: impl FnOnce(Option<Uid>, Option<Gid>) -> rustix::io::Result<()>,
        st: &rfs::Stat,
    ) -> Result<()> {
        let (uid, gid) = (self.shift.uid(st.st_uid), self.shift.gid(st.st_gid));
        f(Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .with_context(|| format!("chown {uid}:{gid}"))
    }
}

fn times(st: &rfs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Copies the extended attributes the volume's filesystem accepts; the others are
/// skipped (a volume on a filesystem without `user.*` attributes still gets the data).
fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) {
    let list = match read_sized(|buf| rfs::flistxattr(src, buf), rfs::flistxattr_query(src)) {
        Ok(list) => list,
        Err(Errno::NOTSUP) => return,
        Err(e) => {
            tracing::debug!("listing extended attributes: {e}");
            return;
        }
    };
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(SKIPPED_XATTR_PREFIX) {
            continue;
        }
        let Ok(name) = CString::new(name) else {
            continue;
        };
        let value = read_sized(
            |buf| rfs::fgetxattr(src, name.as_c_str(), buf),
            rfs::fgetxattr_query(src, name.as_c_str()),
        );
        let result = value.and_then(|value| {
            rfs::fsetxattr(dst, name.as_c_str(), &value, rfs::XattrFlags::empty())
        });
        if let Err(e) = result {
            tracing::debug!("copying extended attribute {name:?}: {e}");
        }
    }
}

/// Reads a variable-size attribute value or list, given its size query.
fn read_sized(
    read: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    size: rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let size = size?;
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; size];
    let n = read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn ids_outside_the_mapping_become_the_overflow_id() {
        let map = IdShift::Map {
            uid_start: 100_000,
            gid_start: 200_000,
            count: 65_536,
        };
        assert_eq!(map.uid(0), 100_000);
        assert_eq!(map.gid(1000), 201_000);
        assert_eq!(map.uid(70_000), OVERFLOW_ID);
        assert_eq!(IdShift::Keep.uid(1234), 1234);
        let unmap = IdShift::Unmap {
            uid_start: 200_000,
            gid_start: 300_000,
            count: 65_536,
        };
        assert_eq!((unmap.uid(200_005), unmap.gid(300_000)), (5, 0));
        assert_eq!(unmap.uid(5), OVERFLOW_ID);
    }

    #[test]
    fn copies_a_tree_with_links_modes_and_owners() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path().join("rootfs");
        let data = tmp.path().join("data");
        let src = rootfs.join("srv/content");
        std::fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(src.join("file"), "hello\n").expect("write");
        std::fs::set_permissions(src.join("file"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::fs::hard_link(src.join("file"), src.join("sub/hard")).expect("link");
        std::os::unix::fs::symlink("../file", src.join("sub/soft")).expect("symlink");
        std::fs::write(src.join("sub/deeper/x"), "x").expect("write");
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        // A link in the image pointing at the host is resolved inside the rootfs.
        std::os::unix::fs::symlink("/srv/content", rootfs.join("link")).expect("symlink");

        let is_root = nix::unistd::geteuid().is_root();
        let shift = if is_root {
            IdShift::Map {
                uid_start: 100_000,
                gid_start: 100_000,
                count: 65_536,
            }
        } else {
            IdShift::Keep
        };
        let seeded = seed(&rootfs, "/link", &data, shift).expect("seed");
        assert_eq!(seeded, Seeded::Copied);
        assert_eq!(
            std::fs::read_to_string(data.join("file")).expect("read"),
            "hello\n"
        );
        let file = std::fs::metadata(data.join("file")).expect("stat");
        assert_eq!(file.mode() & 0o7777, 0o640);
        assert_eq!(file.nlink(), 2);
        assert_eq!(
            file.ino(),
            std::fs::metadata(data.join("sub/hard"))
                .expect("stat")
                .ino()
        );
        assert_eq!(
            std::fs::read_link(data.join("sub/soft")).expect("readlink"),
            Path::new("../file")
        );
        assert!(data.join("sub/deeper/x").is_file());
        let top = std::fs::metadata(&data).expect("stat");
        assert_eq!(top.mode() & 0o7777, 0o750);
        if is_root {
            assert_eq!(
                (top.uid(), file.uid(), file.gid()),
                (100_000, 100_000, 100_000)
            );
        }
        // Seeding again: the volume is not empty any more.
        assert_eq!(
            seed(&rootfs, "/link", &data, shift).expect("seed"),
            Seeded::NotEmpty
        );
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        assert_eq!(
            seed(&rootfs, "/missing", &empty, shift).expect("seed"),
            Seeded::NothingThere
        );
        assert_eq!(
            seed(&rootfs, "/srv/content/file", &empty, shift).expect("seed"),
            Seeded::NothingThere
        );
    }
}
