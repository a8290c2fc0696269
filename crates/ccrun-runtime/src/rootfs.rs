//! Builds the container's filesystem view inside its mount namespace: propagation,
//! the rootfs mount (plain bind or idmapped), the spec's mounts, `/dev`, `pivot_root`
//! with the old root detached, masked and read-only paths, and a read-only root.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use crate::devices::{self, DeviceNode};
use crate::error::{Error, Result, SysContext};
use crate::fsroot;
use crate::mounts;
use crate::sys;

/// Everything the init needs to build the filesystem view.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// Host path of the rootfs.
    pub rootfs: PathBuf,
    /// Bundle directory (base of relative mount sources).
    pub bundle: PathBuf,
    /// The spec's mounts, in order.
    pub mounts: Vec<Mount>,
    /// Mount the root read-only.
    pub readonly: bool,
    /// `linux.rootfsPropagation` (default `MS_PRIVATE|MS_REC`).
    pub propagation: MsFlags,
    /// The container's cgroup directories, by hierarchy (for the spec's `cgroup` mount;
    /// see [`mounts::Sources`]).
    pub cgroups: Vec<(String, PathBuf)>,
    /// The spec set `linux.rootfsPropagation`.
    pub propagation_set: bool,
    /// Detached trees of bind mounts made by the parent (idmapped where asked), by
    /// index in `mounts` (inherited through the clone).
    pub trees: Vec<(usize, RawFd)>,
    /// The init has a mount namespace of its own, whose copy of the rootfs directory is
    /// its working directory (see [`setup`]); otherwise the rootfs is attached by path.
    pub new_mount_ns: bool,
    /// The spec lists a mount namespace (new or joined). Without one the container
    /// shares the runtime's, as runc allows: its mounts are made there, the propagation
    /// of `/` is left alone, and the init `chroot`s into the rootfs instead of pivoting
    /// (which would move the root of every process in the namespace).
    pub own_mount_ns: bool,
    /// Extra devices from the spec.
    pub devices: Vec<DeviceNode>,
    /// Provide the default devices (when `/dev` is a fresh filesystem).
    pub default_devices: bool,
    /// Bind-mount devices from the host instead of `mknod` (user namespaces).
    pub bind_devices: bool,
    /// Use `MS_MOVE` + `chroot` instead of `pivot_root` (`--no-pivot`).
    pub no_pivot: bool,
    /// Paths hidden from the container.
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
    /// The process's working directory, created (if missing) before the root may
    /// become read-only, as Docker creates an image's `WorkingDir`.
    pub cwd: PathBuf,
}

impl RootfsPlan {
    /// Derives the plan from a spec, a resolved rootfs path and the bundle.
    pub fn from_spec(
        spec: &Spec,
        rootfs: PathBuf,
        bundle: PathBuf,
        user_ns: bool,
    ) -> Result<RootfsPlan> {
        let mounts = spec.mounts().clone().unwrap_or_default();
        let dev_is_fresh = mounts.iter().any(|m| {
            m.destination() == Path::new("/dev")
                && m.typ().as_deref() != Some("bind")
                && !mounts::parse_options(m.options().as_deref().unwrap_or(&[])).bind
        });
        let linux = spec.linux().as_ref();
        mounts::validate(&mounts)?;
        let propagation =
            mounts::rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
        Ok(RootfsPlan {
            rootfs,
            bundle,
            mounts,
            readonly: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            propagation,
            propagation_set: linux
                .and_then(|l| l.rootfs_propagation().as_deref())
                .is_some_and(|p| !p.is_empty()),
            trees: Vec::new(),
            new_mount_ns: true,
            own_mount_ns: true,
            cgroups: Vec::new(),
            devices: linux
                .and_then(|l| l.devices().as_ref())
                .map(|d| d.iter().map(devices::from_spec).collect())
                .unwrap_or_default(),
            default_devices: dev_is_fresh,
            bind_devices: user_ns,
            no_pivot: false,
            masked_paths: linux
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default(),
            readonly_paths: linux
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default(),
            cwd: spec
                .process()
                .as_ref()
                .map(|p| p.cwd().clone())
                .unwrap_or_else(|| PathBuf::from("/")),
        })
    }
}

/// Builds the view and enters it. Runs in the init, in its new mount namespace;
/// `before_pivot` runs once the mounts are in place, before masked and read-only paths
/// (sysctls are written then, and the hooks run).
///
/// `root_tree` is the rootfs as a detached mount made by the parent; without one (an
/// unprivileged parent could not make it) the init clones its own copy of its working
/// directory, the rootfs, in its new mount namespace. In a new mount
/// namespace it is attached on the init's working directory, the namespace's copy of
/// the rootfs directory, and entered through its fd: the init never looks up the
/// rootfs's host path, which its root in a user namespace (an unprivileged host user)
/// may not be allowed to traverse.
pub fn setup(
    plan: &RootfsPlan,
    root_tree: Option<OwnedFd>,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let root_tree = match root_tree {
        Some(tree) => tree,
        None if plan.new_mount_ns => sys::open_tree_clone(Path::new("."))
            .ctx(|| format!("binding the rootfs {}", plan.rootfs.display()))?,
        None => {
            return Err(Error::Setup(
                "the runtime sent no rootfs to attach".to_string(),
            ))
        }
    };
    // The requested propagation for the copy of the host's mounts, `rprivate` unless
    // the spec asks otherwise (then host mounts may propagate in, or out for shared).
    // Unbindable waits until the container's root is in place (below, as crun does):
    // until then the host's mounts are still bound from (bind mount sources, the
    // /dev/null that masks paths), which an unbindable mount refuses with EINVAL.
    let initial = if plan.propagation.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_PRIVATE | (plan.propagation & MsFlags::MS_REC)
    } else {
        plan.propagation
    };
    if plan.own_mount_ns {
        mount(None::<&str>, "/", None::<&str>, initial, None::<&str>)
            .ctx(|| "setting propagation of /".into())?;
    }
    // The rootfs bind mount must not propagate to the host, and pivot_root refuses a
    // shared parent: make the mount holding the rootfs private when it is shared. After
    // a recursive private or slave nothing is shared (the common case, which skips
    // reading mountinfo).
    // Without a mount namespace of its own nothing pivots, and the host's mounts are
    // not the container's to change.
    let none_shared = initial.contains(MsFlags::MS_REC) && !initial.contains(MsFlags::MS_SHARED);
    if plan.own_mount_ns && !none_shared {
        make_parent_private(&plan.rootfs)?;
    }
    // pivot_root needs the new root to be a mount point: the tree is one.
    if plan.new_mount_ns {
        sys::move_mount_onto_cwd(root_tree.as_fd())
    } else {
        sys::move_mount_to(root_tree.as_fd(), &plan.rootfs)
    }
    .ctx(|| format!("attaching the rootfs {}", plan.rootfs.display()))?;
    // The tree's fd now names the attached mount's root.
    let root = root_tree;
    // Missing cwd: created now, while the root is still writable. A failure here (say,
    // a file in the way) surfaces as the chdir error later.
    if let Err(e) = fsroot::mkdir_all(root.as_fd(), &plan.cwd, 0o755) {
        tracing::debug!("creating cwd {}: {e}", plan.cwd.display());
    }

    for (i, m) in plan.mounts.iter().enumerate() {
        let tree = plan.trees.iter().find(|(j, _)| *j == i).map(|(_, fd)| {
            // SAFETY: the parent keeps this fd open until the init reports; it was
            // inherited through the clone.
            unsafe { BorrowedFd::borrow_raw(*fd) }
        });
        let sources = mounts::Sources {
            bundle: &plan.bundle,
            cgroups: &plan.cgroups,
        };
        mounts::mount_entry(root.as_fd(), sources, m, tree)?;
    }
    let mut devs = if plan.default_devices {
        devices::default_devices()
    } else {
        Vec::new()
    };
    devs.extend(plan.devices.iter().cloned());
    for d in &devs {
        devices::create(root.as_fd(), d, plan.bind_devices)?;
    }
    if plan.default_devices {
        let has_pts = plan
            .mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev/pts"));
        devices::create_symlinks(root.as_fd(), has_pts)?;
    }
    // Sysctls and hooks: the mounts are in place, and /proc/sys is not read-only yet.
    before_pivot()?;
    // Before pivoting, so the host's /dev/null can mask files even when the spec
    // gives the container no /dev.
    for p in &plan.masked_paths {
        mask_path(root.as_fd(), Path::new(p))?;
    }
    for p in &plan.readonly_paths {
        readonly_path(root.as_fd(), Path::new(p))?;
    }
    if !plan.own_mount_ns {
        // The runtime's mount namespace: only this process changes its root.
        nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "entering the rootfs".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        if plan.readonly {
            mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
        }
        return Ok(());
    }
    enter_root(root.as_fd(), plan.no_pivot)?;
    drop(root);
    if plan.propagation_set {
        // As runc: the root was bound from a private parent for pivot_root, so the
        // requested propagation is applied again to the new root (and, for the `r`
        // forms, everything under it, overriding per-mount propagation).
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            plan.propagation,
            None::<&str>,
        )
        .ctx(|| "setting propagation of the container's root".into())?;
    }

    if plan.readonly {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// Makes the mount that holds `path` private if it is shared (its mountinfo entry has
/// a `shared:N` tag), as runc does before binding the rootfs.
fn make_parent_private(path: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("reading", "/proc/self/mountinfo", e))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let mut best: Option<(&str, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let under = Path::new(point);
        if !parent.starts_with(under) {
            continue;
        }
        let shared = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .any(|f| f.starts_with("shared:"));
        // Later lines stack on earlier ones at the same point: the last one wins.
        if best.is_none_or(|(b, _)| point.len() >= b.len()) {
            best = Some((point, shared));
        }
    }
    match best {
        Some((point, true)) => mount(
            None::<&str>,
            point,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx(|| format!("making {point} private")),
        _ => Ok(()),
    }
}

/// `pivot_root` into the mount open as `rootfs` and detach the old root; `MS_MOVE` +
/// `chroot` when pivot_root cannot work (rootfs on ramfs/initramfs) or when asked.
fn enter_root(rootfs: BorrowedFd<'_>, no_pivot: bool) -> Result<()> {
    let old_root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening the old root".into())?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let old_root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(old_root) };
    nix::unistd::fchdir(rootfs.as_raw_fd()).ctx(|| "entering the rootfs".into())?;
    if !no_pivot {
        match nix::unistd::pivot_root(".", ".") {
            Ok(()) => {
                // The old root is now stacked on the new one; from inside it, make it a
                // slave (so the unmount cannot propagate anywhere) and detach it. Doing
                // this from the new root would turn the container's own shared mounts
                // into slaves too.
                nix::unistd::fchdir(old_root.as_raw_fd()).ctx(|| "fchdir old root".into())?;
                mount(
                    None::<&str>,
                    ".",
                    None::<&str>,
                    MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(|| "making old root a slave".into())?;
                umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching old root".into())?;
                return nix::unistd::chdir("/").ctx(|| "chdir /".into());
            }
            Err(Errno::EINVAL) => {}
            Err(e) => return Err(Error::sys("pivot_root", e)),
        }
    }
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .ctx(|| "moving rootfs onto /".into())?;
    nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// Hides `path` (inside the rootfs): an empty read-only tmpfs over a directory, the
/// host's /dev/null over anything else. A path that does not exist needs no mask.
fn mask_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let target = match fsroot::open_path(root, path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("masking {}", path.display()), e)),
    };
    let is_dir = nix::sys::stat::fstat(target.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .ctx(|| format!("stat {}", path.display()))?;
    let proc_path = sys::proc_fd_path(target.as_fd());
    let result = if is_dir {
        mount(
            Some("tmpfs"),
            &proc_path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            &proc_path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.ctx(|| format!("masking {}", path.display()))
}

/// Makes `path` (inside the rootfs) read-only with a bind mount onto itself.
fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let target = match fsroot::open_path(root, path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("read-only {}", path.display()), e)),
    };
    let proc_path = sys::proc_fd_path(target.as_fd());
    mount(
        Some(&proc_path),
        &proc_path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("read-only bind of {}", path.display()))?;
    // The fd still names the covered inode; remount the new mount on top of it.
    let mounted = fsroot::open_path(root, path).ctx(|| format!("reopening {}", path.display()))?;
    mounts::remount_bind(&sys::proc_fd_path(mounted.as_fd()), MsFlags::MS_RDONLY)
}
