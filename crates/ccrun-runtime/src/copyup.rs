//! `tmpcopyup` (crun's mount option): a tmpfs mounted over a directory of the image
//! starts with a copy of what it covers, so `/tmp` or `/run` keep the image's files.
//! Everything goes through directory fds with `O_NOFOLLOW`: the image's symlinks are
//! copied as links, never followed.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::{Result, SysContext};

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: u32) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )?;
    // SAFETY: `openat` just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copies the contents of directory `from` into directory `to` (both open
/// `O_RDONLY|O_DIRECTORY`), keeping modes, owners and symlinks.
pub fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    // Dir takes ownership of its fd: give it a duplicate.
    let dup = nix::unistd::dup(from.as_raw_fd()).ctx(|| "dup".into())?;
    let mut dir = Dir::from_fd(dup).ctx(|| "reading directory".into())?;
    for entry in dir.iter() {
        let entry = entry.ctx(|| "reading directory".into())?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        copy_entry(from, to, name)
            .map_err(|e| crate::error::Error::Setup(format!("tmpcopyup {name:?}: {e}")))?;
    }
    Ok(())
}

fn copy_entry(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let st = fstatat(Some(from.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ctx(|| "stat".into())?;
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    let perm = st.st_mode & 0o7777;
    match kind {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(Some(to.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                .ctx(|| "mkdir".into())?;
            let src = open_at(from, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                .ctx(|| "open".into())?;
            let dst =
                open_at(to, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0).ctx(|| "open".into())?;
            copy_dir(src.as_fd(), dst.as_fd())?;
        }
        SFlag::S_IFREG => {
            let src = open_at(from, name, OFlag::O_RDONLY, 0).ctx(|| "open".into())?;
            let dst = open_at(
                to,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            )
            .ctx(|| "create".into())?;
            let mut src = std::fs::File::from(src);
            let mut dst = std::fs::File::from(dst);
            std::io::copy(&mut src, &mut dst)
                .map_err(|e| crate::error::Error::Setup(format!("copying: {e}")))?;
        }
        SFlag::S_IFLNK => {
            let target =
                nix::fcntl::readlinkat(Some(from.as_raw_fd()), name).ctx(|| "readlink".into())?;
            nix::unistd::symlinkat(target.as_os_str(), Some(to.as_raw_fd()), name)
                .ctx(|| "symlink".into())?;
        }
        _ => {
            let c = CString::new(name.as_bytes())
                .map_err(|_| Errno::EINVAL)
                .ctx(|| "name".into())?;
            // SAFETY: `c` is a valid NUL-terminated name; mknodat only creates a node.
            let ret = unsafe { libc::mknodat(to.as_raw_fd(), c.as_ptr(), st.st_mode, st.st_rdev) };
            Errno::result(ret).ctx(|| "mknod".into())?;
        }
    }
    fchownat(
        Some(to.as_raw_fd()),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| "chown".into())?;
    if kind != SFlag::S_IFLNK {
        // After chown, which clears set-id bits.
        nix::sys::stat::fchmodat(
            Some(to.as_raw_fd()),
            name,
            Mode::from_bits_truncate(perm),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(|| "chmod".into())?;
    }
    Ok(())
}
