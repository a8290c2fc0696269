//! Protection against CVE-2019-5736: processes that enter a container are clones of the
//! runtime, so their `/proc/PID/exe` is the runtime's binary. A container process that
//! makes one of them exec `/proc/self/exe` (a hijacked `#!/proc/self/exe` script, or the
//! path itself) runs our binary inside the container and can reopen it for writing
//! through `/proc/PID/exe` once it exits, which replaces the binary every later
//! `ccrun` on the host runs as root.
//!
//! [`reexec_sealed`] re-executes the calling program from a sealed image of itself
//! before anything enters a container, as runc and crun do: preferably the binary seen
//! through a private, read-only, lower-layer-only overlayfs mount that is attached
//! nowhere (no copy, nothing to remount), else a sealed `memfd` copy. Writes through
//! `/proc/PID/exe` then fail with `EROFS` or `EPERM` whatever the container's
//! privileges.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Set by [`reexec_sealed`] for the sealed process: the path of the real binary (a
/// sealed image's own `/proc/self/exe` names no host path), see [`original_exe`].
pub const ORIGINAL_EXE_ENV: &str = "CCRUN_ORIGINAL_EXE";
/// Set by [`reexec_sealed`] to the pid that re-executed itself, so that the new image
/// knows it already went through this (and a child that inherited the environment,
/// a hook, say, does not mistake itself for sealed).
const SEALED_PID_ENV: &str = "CCRUN_SEALED_PID";

/// The seals a memfd image must carry: no writes, no size changes, no seal removal.
const MEMFD_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// How the running image is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// A memfd with every write seal.
    Memfd,
    /// A file on a read-only overlayfs mount.
    ReadOnlyOverlay,
}

/// How the running program's image is protected, if it is.
pub fn self_sealed() -> Option<Sealed> {
    let exe = std::fs::File::open("/proc/self/exe").ok()?;
    sealed(exe.as_fd())
}

fn sealed(fd: std::os::fd::BorrowedFd<'_>) -> Option<Sealed> {
    // SAFETY: fcntl on an fd we own, with an integer command.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & MEMFD_SEALS == MEMFD_SEALS {
        return Some(Sealed::Memfd);
    }
    let st = nix::sys::statfs::fstatfs(fd).ok()?;
    let overlay = st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC;
    let flags = nix::sys::statvfs::fstatvfs(fd).ok()?.flags();
    (overlay && flags.contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .then_some(Sealed::ReadOnlyOverlay)
}

/// The path of the program's real binary: where it was started from, also when the
/// running image is a sealed one made by [`reexec_sealed`].
pub fn original_exe() -> std::io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(ORIGINAL_EXE_ENV) {
        if self_sealed().is_some() {
            return Ok(PathBuf::from(path));
        }
    }
    std::fs::read_link("/proc/self/exe")
}

/// Makes sure the running program is a sealed image of itself: returns at once when it
/// is, else re-executes it (same arguments, same pid) from a sealed image and never
/// returns. `scratch` is a directory of the runtime's own (its state root), where an
/// empty directory is kept for the overlay. The caller must be single-threaded and must
/// not have consumed any input yet.
pub fn reexec_sealed(scratch: &Path) -> Result<()> {
    if self_sealed().is_some() {
        return Ok(());
    }
    let me = std::process::id().to_string();
    if std::env::var(SEALED_PID_ENV).as_deref() == Ok(me.as_str()) {
        // We did re-execute, yet the image is not sealed: never loop.
        return Err(Error::Setup(
            "re-executed from a sealed copy of the binary, but the running image is not \
             sealed"
                .into(),
        ));
    }
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::io("reading", "/proc/self/exe", e))?;
    let image = match overlay_image(&exe, scratch) {
        Ok(fd) => fd,
        Err(overlay_err) => {
            tracing::debug!("sealing through overlayfs failed ({overlay_err}); copying to a memfd");
            memfd_image(&exe).map_err(|e| {
                Error::Setup(format!(
                    "cannot make a sealed copy of {} to run containers from (overlayfs: \
                     {overlay_err}; memfd: {e})",
                    exe.display()
                ))
            })?
        }
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Setup("NUL byte in an argument".into()))?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ORIGINAL_EXE_ENV && k != SEALED_PID_ENV)
        .map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.into_vec())
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Setup("NUL byte in the environment".into()))?;
    env.push(env_entry(ORIGINAL_EXE_ENV, exe.as_os_str().as_bytes())?);
    env.push(env_entry(SEALED_PID_ENV, me.as_bytes())?);
    let err = execveat_empty(image.as_raw_fd(), &args, &env);
    Err(Error::sys(
        format!("re-executing {} from a sealed copy", exe.display()),
        err,
    ))
}

fn env_entry(key: &str, value: &[u8]) -> Result<CString> {
    let mut bytes = Vec::with_capacity(key.len() + 1 + value.len());
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(b'=');
    bytes.extend_from_slice(value);
    CString::new(bytes).map_err(|_| Error::Setup(format!("NUL byte in {key}")))
}

fn execveat_empty(fd: RawFd, args: &[CString], env: &[CString]) -> Errno {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into `args` and `env`,
    // which outlive the call; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

/// Opens `exe` through a new overlayfs instance whose only layers are `exe`'s directory
/// and an empty one: an overlay without an upper layer is read-only, its mount is also
/// made read-only, and it is attached nowhere, so nobody can remount it writable.
fn overlay_image(exe: &Path, scratch: &Path) -> std::result::Result<OwnedFd, String> {
    let dir = exe.parent().ok_or("the binary has no directory")?;
    let name = exe.file_name().ok_or("the binary has no file name")?;
    // Overlayfs wants two lower layers for a lower-only mount; the second must not
    // overlap the first.
    let empty = scratch.join(".exeseal-empty");
    match std::fs::create_dir_all(&empty) {
        Ok(()) => {}
        Err(e) => return Err(format!("creating {}: {e}", empty.display())),
    }
    let lower = format!(
        "{}:{}",
        escape_lowerdir(dir.as_os_str().as_bytes()),
        escape_lowerdir(empty.as_os_str().as_bytes())
    );
    // SAFETY: a NUL-terminated string literal and an integer flag.
    let ctx = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    let ctx = owned(ctx).map_err(|e| format!("fsopen overlay: {e}"))?;
    fsconfig_string(&ctx, "lowerdir", &lower)?;
    // xino only matters for inode numbers; off avoids a kernel warning when the layers
    // are on different filesystems.
    let _ = fsconfig_string(&ctx, "xino", "off");
    // SAFETY: fsconfig with a command and no key or value pointers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(ret).map_err(|e| format!("creating the overlay (lowerdir={lower}): {e}"))?;
    // SAFETY: fsmount with integer flags on the context fd.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    };
    let mnt = owned(mnt).map_err(|e| format!("fsmount: {e}"))?;
    let cname = CString::new(name.as_bytes()).map_err(|_| "NUL in the binary's name")?;
    // SAFETY: openat relative to the mount fd with a valid NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            mnt.as_raw_fd(),
            cname.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    let image = owned(fd as libc::c_long).map_err(|e| format!("opening the binary: {e}"))?;
    if sealed(image.as_fd()) != Some(Sealed::ReadOnlyOverlay) {
        return Err("the overlay copy is not read-only".into());
    }
    Ok(image)
}

/// Escapes the characters overlayfs treats specially in `lowerdir`.
fn escape_lowerdir(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    text.replace('\\', "\\\\").replace(':', "\\:")
}

fn fsconfig_string(ctx: &OwnedFd, key: &str, value: &str) -> std::result::Result<(), String> {
    let k = CString::new(key).map_err(|_| "NUL in key")?;
    let v = CString::new(value).map_err(|_| format!("NUL in {key}"))?;
    // SAFETY: both strings are NUL-terminated and live for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    Errno::result(ret)
        .map(drop)
        .map_err(|e| format!("fsconfig {key}={value}: {e}"))
}

/// A sealed, executable memfd holding a copy of `exe`.
fn memfd_image(exe: &Path) -> std::result::Result<OwnedFd, String> {
    let mut src = std::fs::File::open(exe).map_err(|e| format!("opening: {e}"))?;
    // SAFETY: a NUL-terminated name and integer flags.
    let fd = unsafe {
        libc::memfd_create(
            c"ccrun-sealed".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    let memfd = owned(fd as libc::c_long).map_err(|e| format!("memfd_create: {e}"))?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(|e| format!("copying: {e}"))?;
    // SAFETY: fcntl on our own fd with integer arguments.
    let ret = unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, MEMFD_SEALS) };
    Errno::result(ret).map_err(|e| format!("sealing: {e}"))?;
    Ok(OwnedFd::from(dst))
}

fn owned(ret: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel just returned this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_escapes() {
        assert_eq!(escape_lowerdir(b"/a:b\\c"), "/a\\:b\\\\c");
    }

    #[test]
    fn plain_binaries_are_not_sealed() {
        let f = std::fs::File::open("/bin/sh").expect("open");
        assert_eq!(sealed(f.as_fd()), None);
    }

    #[test]
    fn memfd_images_are_sealed_and_refuse_writes() {
        let image = memfd_image(Path::new("/bin/true")).expect("memfd");
        assert_eq!(sealed(image.as_fd()), Some(Sealed::Memfd));
        let path = format!("/proc/self/fd/{}", image.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
            .expect_err("a sealed memfd takes no writes");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }

    #[test]
    fn overlay_images_are_read_only() {
        ccrun_testkit::require_root();
        let scratch = tempfile::tempdir().expect("tempdir");
        let bin = scratch.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        std::fs::copy("/bin/true", bin.join("tool")).expect("copy");
        let image = overlay_image(&bin.join("tool"), scratch.path()).expect("overlay");
        assert_eq!(sealed(image.as_fd()), Some(Sealed::ReadOnlyOverlay));
        let path = format!("/proc/self/fd/{}", image.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect_err("the overlay image takes no writes");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    }
}
