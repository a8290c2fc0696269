//! Thin wrappers over the system calls that `nix` does not cover: raw `clone`,
//! the new mount API (`open_tree`, `mount_setattr`, `move_mount`) and `openat2`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

/// `open_tree` flag: clone the mount (a detached bind mount) instead of opening it.
pub const OPEN_TREE_CLONE: u32 = 1;
/// `open_tree` flag: close on exec.
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
/// `mount_setattr` attribute: idmap the mount with the given user namespace.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// `mount_setattr` attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `mount_setattr` attribute: ignore set-user-id bits.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `mount_setattr` attribute: no device access.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `mount_setattr` attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
/// `mount_setattr` mask of the atime mode (relatime is 0).
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
/// `mount_setattr` atime mode: never update atime.
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
/// `MOUNT_ATTR_RELATIME`: the default access-time mode (the field's zero value).
pub const MOUNT_ATTR_RELATIME: u64 = 0;
/// `mount_setattr` atime mode: always update atime.
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
/// `mount_setattr` attribute: no directory atime updates.
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
/// `mount_setattr` attribute: do not follow symlinks.
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
/// `move_mount` flag: the source is the fd itself.
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x0000_0004;

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `struct open_how` from `<linux/openat2.h>`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2` resolve flag: treat the dirfd as the root for every lookup.
pub const RESOLVE_IN_ROOT: u64 = 0x10;
/// `openat2` resolve flag: never follow any symlink.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `openat2` resolve flag: fail on anything that leaves the dirfd's subtree.
pub const RESOLVE_BENEATH: u64 = 0x08;
/// `openat2` resolve flag: never follow magic links such as /proc/self/fd/N.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

fn cstr(path: &Path) -> nix::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Forks with `clone(2)` into the namespaces in `flags`, returning the child's pid
/// in the parent and 0 in the child, like `fork`.
///
/// # Safety
/// The calling process must be single-threaded, and the child must only call
/// functions that are safe after `fork` in such a process before it execs or exits.
pub unsafe fn clone_fork(flags: libc::c_int) -> nix::Result<libc::pid_t> {
    // SAFETY: a NULL stack makes the kernel give the child a copy-on-write copy of the
    // parent's stack, exactly as fork(2) does; the caller guarantees single-threadedness.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    Errno::result(ret).map(|pid| pid as libc::pid_t)
}

/// `clone_args` of clone3(2), up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3's flag to start the child in the cgroup2 directory `cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone_fork`] with the child started in the cgroup2 directory `cgroup` (an open
/// fd of it), through clone3's `CLONE_INTO_CGROUP` (Linux 5.7): no migration after
/// the fact, which on the unified hierarchy waits for an RCU grace period. Fails
/// with `ENOSYS`, `E2BIG` or `EINVAL` where the kernel lacks it (or a seccomp filter
/// hides it); the caller then clones and moves the child as before.
///
/// # Safety
///
/// As [`clone_fork`]: the caller must be single-threaded, and the child may only do
/// what is safe after `fork` in a single-threaded program.
pub unsafe fn clone_fork_into_cgroup(
    flags: libc::c_int,
    cgroup: BorrowedFd<'_>,
) -> nix::Result<libc::pid_t> {
    let args = CloneArgs {
        // The namespace flags are positive `c_int`s; widening keeps them as they are.
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: `args` is a valid clone_args of the size given; a zero stack makes the
    // child run on a copy-on-write copy of the parent's stack, as fork(2) does.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(ret).map(|pid| pid as libc::pid_t)
}

/// Clones the mount at `path` (recursively) as a detached mount and returns its fd.
pub fn open_tree_clone(path: &Path) -> nix::Result<OwnedFd> {
    open_tree_clone_with(path, true)
}

/// Clones the mount at `path` as a detached mount, with its submounts if `recursive`.
pub fn open_tree_clone_with(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let c = cstr(path)?;
    let rec = if recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec,
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Turns the detached mount `mount_fd` into an idmapped mount using `userns`'s mapping.
pub fn idmap_mount(mount_fd: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> nix::Result<()> {
    mount_setattr(mount_fd, true, MOUNT_ATTR_IDMAP, 0, Some(userns))
}

/// `mount_setattr` on the mount `mount_fd` (and its submounts if `recursive`): sets
/// `set`, clears `clear` (`MOUNT_ATTR_*`), idmapping through `userns` if given.
pub fn mount_setattr(
    mount_fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let flags = if recursive {
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE
    } else {
        libc::AT_EMPTY_PATH
    };
    let empty = c"";
    // SAFETY: every pointer refers to live memory of the declared size for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            empty.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Attaches the detached mount `mount_fd` at `target`.
pub fn move_mount_to(mount_fd: BorrowedFd<'_>, target: &Path) -> nix::Result<()> {
    let c = cstr(target)?;
    move_mount(mount_fd, libc::AT_FDCWD, &c, MOVE_MOUNT_F_EMPTY_PATH)
}

/// `move_mount` flag: the target is the fd itself.
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x0000_0040;

/// Attaches the detached mount `mount_fd` on the file or directory open as `target`
/// (an `O_PATH` fd; a `/proc/self/fd` path is refused as a move_mount target).
pub fn move_mount_onto(mount_fd: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()> {
    move_mount(
        mount_fd,
        target.as_raw_fd(),
        c"",
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Attaches the detached mount `mount_fd` on this process's working directory, without
/// any path lookup.
pub fn move_mount_onto_cwd(mount_fd: BorrowedFd<'_>) -> nix::Result<()> {
    move_mount(
        mount_fd,
        libc::AT_FDCWD,
        c"",
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// `move_mount(mount_fd, "", to_dirfd, to_path, flags)`.
fn move_mount(
    mount_fd: BorrowedFd<'_>,
    to_dirfd: RawFd,
    to_path: &std::ffi::CStr,
    flags: u32,
) -> nix::Result<()> {
    // SAFETY: both strings are valid NUL-terminated strings for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount_fd.as_raw_fd(),
            c"".as_ptr(),
            to_dirfd,
            to_path.as_ptr(),
            flags,
        )
    };
    Errno::result(ret).map(drop)
}

/// `openat2(dirfd, path, flags, mode, resolve)`.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    // SAFETY: `c` and `how` are valid for the duration of the call, size matches.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The `/proc/self/fd/N` path through which an `O_PATH` fd can be used as a mount target.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Number of threads of this process (the container-creation path must be single-threaded).
pub fn thread_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}
