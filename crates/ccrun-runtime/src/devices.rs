//! The container's `/dev`: the standard character devices (created with `mknod`, or
//! bind-mounted from the host inside a user namespace where `mknod` is not allowed),
//! the spec's extra devices, and the standard symlinks.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::LinuxDevice;

use crate::error::{Error, Result, SysContext};
use crate::fsroot;
use crate::sys;

/// One device node to provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: PathBuf,
    /// `c`, `b`, `u` or `p`.
    pub kind: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits.
    pub mode: u32,
    /// Owner inside the container.
    pub uid: u32,
    /// Group inside the container.
    pub gid: u32,
}

/// The devices every container gets (Docker's and runc's list).
pub fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: PathBuf::from(path),
        kind: 'c',
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Converts a spec device entry.
pub fn from_spec(d: &LinuxDevice) -> DeviceNode {
    use oci_spec::runtime::LinuxDeviceType as T;
    let kind = match d.typ() {
        T::B => 'b',
        T::P => 'p',
        T::U => 'u',
        _ => 'c',
    };
    DeviceNode {
        path: d.path().clone(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Provides `dev` inside the rootfs. `bind` selects bind-mounting the host's node.
///
/// Only a node made here is ever chmodded or chowned: a node already at the path (the
/// image's, or the host's own when a spec bind-mounts a host directory on `/dev`) is
/// left exactly as it is, and it must be the requested device. Where the kernel
/// refuses `mknod`, the host's node is bind-mounted instead, as runc does.
pub fn create(root: BorrowedFd<'_>, dev: &DeviceNode, bind: bool) -> Result<()> {
    if bind {
        return bind_host_node(root, dev);
    }
    let rel = fsroot::relative(&dev.path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::InvalidSpec(format!("bad device path {}", dev.path.display())))?;
    let dir =
        fsroot::mkdir_all(root, parent, 0o755).ctx(|| format!("creating {}", parent.display()))?;
    let dir = sys::openat2(
        dir.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| format!("opening {}", parent.display()))?;
    let kind = file_type(dev.kind);
    let rdev = makedev(dev.major as u64, dev.minor as u64);
    match mknodat(
        Some(dir.as_raw_fd_compat()),
        name,
        kind,
        Mode::from_bits_truncate(dev.mode),
        rdev,
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let existing = open_node(dir.as_fd(), name, dev)?;
            return check_node(existing.as_fd(), dev);
        }
        Err(Errno::EPERM) => return bind_host_node(root, dev),
        Err(e) => return Err(Error::sys(format!("mknod {}", dev.path.display()), e)),
    }
    // The node we just made, opened without following anything, and checked to be it:
    // its mode (mknod honours the umask) and owner are set through this fd only.
    let node = open_node(dir.as_fd(), name, dev)?;
    check_node(node.as_fd(), dev)?;
    match nix::sys::stat::fchmodat(
        None,
        &sys::proc_fd_path(node.as_fd()),
        Mode::from_bits_truncate(dev.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    ) {
        Ok(()) | Err(Errno::EOPNOTSUPP) => {}
        Err(e) => return Err(Error::sys(format!("chmod {}", dev.path.display()), e)),
    }
    // SAFETY: fchownat with AT_EMPTY_PATH on our own O_PATH fd and an empty path.
    let ret = unsafe {
        libc::fchownat(
            node.as_raw_fd_compat(),
            c"".as_ptr(),
            dev.uid,
            dev.gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(ret)
        .map(drop)
        .ctx(|| format!("chown {}", dev.path.display()))
}

fn file_type(kind: char) -> SFlag {
    match kind {
        'b' => SFlag::S_IFBLK,
        'p' => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    }
}

/// Opens the node `name` in `dir` as `O_PATH` without following a symlink there.
fn open_node(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    dev: &DeviceNode,
) -> Result<std::os::fd::OwnedFd> {
    sys::openat2(
        dir,
        Path::new(name),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH,
    )
    .ctx(|| format!("opening {}", dev.path.display()))
}

/// Fails unless the node open as `fd` is the device `dev` asks for (a fifo needs only
/// the right type).
fn check_node(fd: BorrowedFd<'_>, dev: &DeviceNode) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd_compat())
        .ctx(|| format!("stat {}", dev.path.display()))?;
    let kind = file_type(dev.kind);
    let same_type = st.st_mode & libc::S_IFMT == kind.bits();
    let same_numbers = dev.kind == 'p' || st.st_rdev == makedev(dev.major as u64, dev.minor as u64);
    if same_type && same_numbers {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "{} already exists and is not the device {}:{} of type {}; refusing to replace or \
         change it",
        dev.path.display(),
        dev.major,
        dev.minor,
        dev.kind
    )))
}

/// Bind-mounts the host's node at the same path over a file at `dev.path` (created if
/// missing). Nothing is written to any existing node.
fn bind_host_node(root: BorrowedFd<'_>, dev: &DeviceNode) -> Result<()> {
    let target =
        fsroot::ensure_file(root, &dev.path).ctx(|| format!("creating {}", dev.path.display()))?;
    let host = Path::new("/").join(fsroot::relative(&dev.path));
    mount(
        Some(&host),
        &sys::proc_fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mounting device {}", host.display()))
}

/// Creates `/dev/fd`, `/dev/std{in,out,err}`, `/dev/core` and, when devpts is mounted,
/// `/dev/ptmx -> pts/ptmx`.
pub fn create_symlinks(root: BorrowedFd<'_>, with_ptmx: bool) -> Result<()> {
    let dev = fsroot::mkdir_all(root, Path::new("/dev"), 0o755).ctx(|| "opening /dev".into())?;
    let dev = sys::openat2(
        dev.as_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| "opening /dev".into())?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ];
    if with_ptmx {
        // A bind-mounted or created ptmx would point at the host's devpts instance.
        let _ = nix::unistd::unlinkat(
            Some(dev.as_raw_fd_compat()),
            "ptmx",
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd_compat()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

/// Bridges `nix` APIs that still take raw fds.
trait RawCompat {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd;
}

impl<T: std::os::fd::AsRawFd> RawCompat for T {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd {
        self.as_raw_fd()
    }
}
