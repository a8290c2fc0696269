//! OCI mount entries: option parsing into mount flags, and mounting one entry into
//! the rootfs (bind mounts with their remount step, special filesystems, propagation,
//! recursive attributes such as `rro`, and idmapped bind mounts).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::{LinuxIdMapping, Mount};

use crate::error::{Error, Result, SysContext};
use crate::fsroot;
use crate::sys;

/// `MS_NOSYMFOLLOW` (Linux 5.10), missing from older `nix`.
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// Mount options split into what `mount(2)` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Propagation flags applied with a separate call after mounting.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`size=…,mode=…`).
    pub data: String,
    /// Bind mount (`bind` or `rbind`).
    pub bind: bool,
    /// Recursive bind (`rbind`).
    pub recursive: bool,
    /// `MOUNT_ATTR_*` to set on the mount and all its submounts (`rro`, `rnosuid`, …).
    pub rec_set: u64,
    /// `MOUNT_ATTR_*` to clear on the mount and all its submounts (`rrw`, `rsuid`, …).
    pub rec_clear: u64,
    /// Idmap the bind mount: `Some(recursive)` for `idmap` (`false`) or `ridmap` (`true`).
    pub idmap: Option<bool>,
    /// Copy what a tmpfs covers into it (`tmpcopyup`).
    pub copyup: bool,
}

/// Recursive attribute options (runc's `rro`, `rnosuid`, …): (name, set, clear).
const RECURSIVE_ATTRS: &[(&str, u64, u64)] = &[
    ("rro", sys::MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, sys::MOUNT_ATTR_RDONLY),
    ("rnosuid", sys::MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, sys::MOUNT_ATTR_NOSUID),
    ("rnodev", sys::MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, sys::MOUNT_ATTR_NODEV),
    ("rnoexec", sys::MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, sys::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", sys::MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, sys::MOUNT_ATTR_NODIRATIME),
    ("rnosymfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, sys::MOUNT_ATTR_NOSYMFOLLOW),
];

/// Recursive access-time options and the mode each selects. The mode is one field of
/// the mount's attributes, not a set of bits: `mount_setattr` takes the new mode in
/// `attr_set` only with the whole `MOUNT_ATTR__ATIME` mask in `attr_clr` (EINVAL
/// otherwise). Dropping `relatime` leaves strict access times; dropping `noatime` or
/// `strictatime` leaves the kernel's default, `relatime`.
const RECURSIVE_ATIME: &[(&str, u64)] = &[
    ("rrelatime", sys::MOUNT_ATTR_RELATIME),
    ("rnoatime", sys::MOUNT_ATTR_NOATIME),
    ("rstrictatime", sys::MOUNT_ATTR_STRICTATIME),
    ("rnorelatime", sys::MOUNT_ATTR_STRICTATIME),
    ("ratime", sys::MOUNT_ATTR_RELATIME),
    ("rnostrictatime", sys::MOUNT_ATTR_RELATIME),
];

/// Parses OCI/fstab style options (`ro`, `nosuid`, `rbind`, `rprivate`, `size=64k`, …).
pub fn parse_options(options: &[String]) -> ParsedOptions {
    let mut p = ParsedOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
        recursive: false,
        rec_set: 0,
        rec_clear: 0,
        idmap: None,
        copyup: false,
    };
    let mut data = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "nosymfollow" => (MsFlags::from_bits_retain(MS_NOSYMFOLLOW), MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MsFlags::from_bits_retain(MS_NOSYMFOLLOW)),
            "bind" => {
                p.bind = true;
                continue;
            }
            "rbind" => {
                p.bind = true;
                p.recursive = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                p.propagation.push(propagation_flag(opt));
                continue;
            }
            "idmap" => {
                p.idmap = Some(false);
                continue;
            }
            "ridmap" => {
                p.idmap = Some(true);
                continue;
            }
            "tmpcopyup" => {
                p.copyup = true;
                continue;
            }
            other => {
                if let Some((_, set, clear)) = RECURSIVE_ATTRS.iter().find(|(n, _, _)| *n == other)
                {
                    // A later option wins over an earlier opposite one.
                    p.rec_set = (p.rec_set & !clear) | set;
                    p.rec_clear = (p.rec_clear & !set) | clear;
                    continue;
                }
                if let Some((_, mode)) = RECURSIVE_ATIME.iter().find(|(n, _)| *n == other) {
                    // A new mode replaces an earlier one.
                    p.rec_set = (p.rec_set & !sys::MOUNT_ATTR__ATIME) | mode;
                    p.rec_clear |= sys::MOUNT_ATTR__ATIME;
                    continue;
                }
                data.push(other.to_string());
                continue;
            }
        };
        p.flags.insert(set);
        p.flags.remove(clear);
    }
    p.data = data.join(",");
    p
}

fn propagation_flag(opt: &str) -> MsFlags {
    // "rprivate", "rshared", "rslave" and "runbindable" are the recursive forms.
    let (recursive, name) = match opt.strip_prefix('r') {
        Some(rest) if !rest.is_empty() && opt != "rw" => (true, rest),
        _ => (false, opt),
    };
    let base = match name {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        _ => MsFlags::MS_UNBINDABLE,
    };
    if recursive {
        base | MsFlags::MS_REC
    } else {
        base
    }
}

/// Flags the kernel locks on a mount made inside a user namespace; a remount must keep them.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// Remounts the bind mount at `target` with `flags` (keeping locked flags).
pub fn remount_bind(target: &Path, flags: MsFlags) -> Result<()> {
    let flags = flags | locked_flags(target) | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .ctx(|| format!("remounting {}", target.display()))
}

/// Propagation flags of `linux.rootfsPropagation` (default `rprivate`).
pub fn rootfs_propagation(value: Option<&str>) -> Result<MsFlags> {
    match value {
        None | Some("") => Ok(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        Some(
            v @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable"),
        ) => Ok(propagation_flag(v)),
        Some(other) => Err(Error::InvalidSpec(format!(
            "linux.rootfsPropagation: unknown value {other:?}"
        ))),
    }
}

/// Checks the spec's mounts before anything is created: no bind mount option that
/// would do nothing, and tmpcopyup and id mappings only where they can apply.
pub fn validate(mounts: &[Mount]) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        if opts.copyup && m.typ().as_deref() != Some("tmpfs") {
            return Err(Error::InvalidSpec(format!(
                "mounts[{i}] ({}): tmpcopyup needs a tmpfs",
                m.destination().display()
            )));
        }
        let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if has_maps && (m.uid_mappings().is_none() || m.gid_mappings().is_none()) {
            return Err(Error::InvalidSpec(format!(
                "mounts[{i}] ({}): uidMappings and gidMappings go together",
                m.destination().display()
            )));
        }
        let is_bind = opts.bind || m.typ().as_deref() == Some("bind");
        // The kernel ignores data on a bind mount: an unknown option there (a typo, or
        // another runtime's extension such as SELinux's z/Z) would do nothing. runc
        // refuses them too.
        if is_bind && !opts.data.is_empty() {
            return Err(Error::InvalidSpec(format!(
                "mounts[{i}] ({}): unknown bind mount option(s) {}",
                m.destination().display(),
                opts.data
            )));
        }
        if (has_maps || opts.idmap.is_some()) && !is_bind {
            return Err(Error::InvalidSpec(format!(
                "mounts[{i}] ({}): idmapped mounts must be bind mounts",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// The container's own mapping, used by `idmap`/`ridmap` mounts without mappings.
#[derive(Debug, Clone, Copy)]
pub enum ContainerIdmap<'a> {
    /// The mappings of a new user namespace (`linux.uidMappings`, `linux.gidMappings`).
    Maps(&'a [LinuxIdMapping], &'a [LinuxIdMapping]),
    /// A user namespace joined by path: its own mapping is used.
    Joined(&'a Path),
}

/// For a bind mount, builds the detached copy of its source with its flags applied,
/// idmapped when it asks for an idmap (`uidMappings`/`gidMappings`, or `idmap` /
/// `ridmap` with the container's own mapping `container`). Runs in the parent, before
/// the clone: the init attaches the tree where the mount goes. Trees are made for
/// idmapped mounts (setting an idmap needs privileges over the source's filesystem),
/// and for every bind mount when the container has a user namespace (`user_ns`): its
/// root is an unprivileged host user that may not be allowed to reach the source
/// (a volume in a store closed to other users, say); host root is.
pub fn bind_tree(
    bundle: &Path,
    m: &Mount,
    container: ContainerIdmap<'_>,
    user_ns: bool,
) -> Result<Option<OwnedFd>> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let is_bind = opts.bind || m.typ().as_deref() == Some("bind");
    if !is_bind {
        return Ok(None);
    }
    let dest = m.destination().display();
    let maps = match (m.uid_mappings(), m.gid_mappings(), container) {
        (Some(u), Some(g), _) => Some(ContainerIdmap::Maps(u.as_slice(), g.as_slice())),
        _ if opts.idmap.is_some() => Some(container),
        _ if user_ns => None,
        _ => return Ok(None),
    };
    let recursive = opts.recursive;
    let src = host_source(bundle, m.source().as_deref().unwrap_or(Path::new("")));
    let tree = match sys::open_tree_clone_with(&src, recursive) {
        Ok(tree) => tree,
        // An unprivileged caller (rootless ccrun-oci) may not clone mounts of the
        // host's mount namespace: the init binds the source by path in its own, as
        // with runc; only an idmap needs the parent.
        Err(nix::errno::Errno::EPERM) if maps.is_none() && !nix::unistd::geteuid().is_root() => {
            return Ok(None)
        }
        Err(e) => {
            return Err(Error::sys(
                format!("bind mount source {}", src.display()),
                e,
            ))
        }
    };
    let (set, clear) = attrs_of(opts.flags);
    sys::mount_setattr(tree.as_fd(), recursive, set, clear, None)
        .map_err(|e| Error::sys(format!("setting flags of mount {dest}"), e))?;
    let Some(maps) = maps else {
        return Ok(Some(tree));
    };
    let userns: OwnedFd = match maps {
        ContainerIdmap::Maps(uids, gids) if !uids.is_empty() && !gids.is_empty() => {
            crate::userns::new_userns_fd(uids, gids)?
        }
        ContainerIdmap::Maps(..) => {
            return Err(Error::InvalidSpec(format!(
                "mount {dest}: idmap without mappings (set the mount's uidMappings and \
                 gidMappings, or linux.uidMappings and linux.gidMappings)"
            )))
        }
        ContainerIdmap::Joined(path) => std::fs::File::open(path)
            .map_err(|e| Error::io("opening namespace", path, e))?
            .into(),
    };
    // `ridmap` idmaps the submounts an `rbind` brings along too; `idmap` only the top.
    let idmap_recursive = recursive && opts.idmap != Some(false);
    sys::mount_setattr(
        tree.as_fd(),
        idmap_recursive,
        sys::MOUNT_ATTR_IDMAP,
        0,
        Some(userns.as_fd()),
    )
    .map_err(|e| {
        Error::sys(
            format!(
                "idmapping mount {dest} from {} (needs a filesystem that supports idmapped \
                 mounts)",
                src.display()
            ),
            e,
        )
    })?;
    Ok(Some(tree))
}

/// `MOUNT_ATTR_*` (set, clear) equivalent to the mount flags `flags`.
fn attrs_of(flags: MsFlags) -> (u64, u64) {
    let mut set = 0;
    let mut clear = 0;
    for (ms, attr) in [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (
            MsFlags::from_bits_retain(MS_NOSYMFOLLOW),
            sys::MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ] {
        if flags.contains(ms) {
            set |= attr;
        }
    }
    if flags.contains(MsFlags::MS_NOATIME) {
        set |= sys::MOUNT_ATTR_NOATIME;
        clear |= sys::MOUNT_ATTR__ATIME;
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        set |= sys::MOUNT_ATTR_STRICTATIME;
        clear |= sys::MOUNT_ATTR__ATIME;
    }
    (set, clear)
}

/// Where the source of a bind mount lives on the host: relative sources are relative
/// to the bundle, as the runtime spec says.
fn host_source(bundle: &Path, source: &Path) -> PathBuf {
    if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    }
}

/// Where a spec's mounts come from: relative bind sources live in the bundle, and a
/// `cgroup` mount shows the container's own cgroup.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The bundle directory.
    pub bundle: &'a Path,
    /// The container's cgroup: its directory in every hierarchy, by the name of the
    /// hierarchy's mount point (`memory`, `cpu,cpuacct`, `unified`, or `` on cgroup v2).
    pub cgroups: &'a [(String, PathBuf)],
}

/// Mounts one spec entry into the rootfs open at `root`; `tree` is its detached tree
/// from [`bind_tree`], if it has one. Runs in the container's mount namespace, before
/// `pivot_root`.
pub fn mount_entry(
    root: BorrowedFd<'_>,
    sources: Sources<'_>,
    m: &Mount,
    tree: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    mount_entry_base(root, sources, m, &opts, tree)?;
    if opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    let mounted = reopen(root, dest)?;
    sys::mount_setattr(mounted.as_fd(), true, opts.rec_set, opts.rec_clear, None)
        .ctx(|| format!("setting recursive attributes of {}", dest.display()))
}

fn mount_entry_base(
    root: BorrowedFd<'_>,
    sources: Sources<'_>,
    m: &Mount,
    opts: &ParsedOptions,
    tree: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let dest = m.destination();
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let is_bind = opts.bind || typ == "bind";
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));

    if is_bind {
        let src = host_source(sources.bundle, &source);
        // The tree's own root says what it is; without one the source is looked up.
        let is_dir = match tree {
            Some(t) => nix::sys::stat::fstat(t.as_raw_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .ctx(|| format!("stat bind mount source {}", src.display()))?,
            None => std::fs::metadata(&src)
                .map_err(|e| Error::io("bind mount source", &src, e))?
                .is_dir(),
        };
        let target = if is_dir {
            fsroot::mkdir_all(root, dest, 0o755)
        } else {
            fsroot::ensure_file(root, dest)
        }
        .ctx(|| format!("creating mount point {}", dest.display()))?;
        if let Some(tree) = tree {
            // Flags (and any idmap) were set on the tree by the parent.
            sys::move_mount_onto(tree, target.as_fd())
                .ctx(|| format!("attaching bind mount {}", dest.display()))?;
            let mounted = reopen(root, dest)?;
            return apply_propagation(&sys::proc_fd_path(mounted.as_fd()), &opts.propagation);
        }
        let target = sys::proc_fd_path(target.as_fd());
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(&src), &target, None::<&str>, flags, None::<&str>)
            .ctx(|| format!("bind mounting {} on {}", src.display(), dest.display()))?;
        let mounted = reopen(root, dest)?;
        let mounted = sys::proc_fd_path(mounted.as_fd());
        // Bind mounts ignore most flags on the first call; a remount applies them.
        if !(opts.flags - MsFlags::MS_REC).is_empty() {
            remount_bind(&mounted, opts.flags)?;
        }
        return apply_propagation(&mounted, &opts.propagation);
    }

    if typ == "cgroup" {
        return mount_cgroup(root, dest, opts, sources.cgroups);
    }
    if matches!(typ, "proc" | "sysfs") {
        refuse_unless_directory(root, dest, typ)?;
    }
    let target = fsroot::mkdir_all(root, dest, 0o755)
        .ctx(|| format!("creating mount point {}", dest.display()))?;
    // What the tmpfs will cover, still readable through this fd once covered.
    let covered = if opts.copyup {
        Some(
            sys::openat2(
                target.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                0,
            )
            .ctx(|| format!("opening {} for tmpcopyup", dest.display()))?,
        )
    } else {
        None
    };
    let target = sys::proc_fd_path(target.as_fd());
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let result = mount(Some(&source), &target, Some(typ), opts.flags, data);
    match (result, typ) {
        (Ok(()), _) => {
            if let Some(covered) = covered {
                let mounted = reopen(root, dest)?;
                let mounted = sys::openat2(
                    mounted.as_fd(),
                    Path::new("."),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                    0,
                )
                .ctx(|| format!("opening {}", dest.display()))?;
                crate::copyup::copy_dir(covered.as_fd(), mounted.as_fd())?;
            }
        }
        // sysfs belongs to the network namespace's owner; without our own netns inside a
        // user namespace the kernel refuses it, so expose the host's read-only, as runc does.
        (Err(Errno::EPERM), "sysfs") => {
            mount(
                Some("/sys"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| "bind mounting /sys".to_string())?;
            let mounted = reopen(root, dest)?;
            remount_bind(
                &sys::proc_fd_path(mounted.as_fd()),
                opts.flags | MsFlags::MS_RDONLY,
            )?;
        }
        (Err(Errno::EPERM), "mqueue") => {
            mount(
                Some("/dev/mqueue"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| "bind mounting /dev/mqueue".to_string())?;
        }
        (Err(e), _) => {
            return Err(Error::sys(
                format!("mounting {typ} on {}", dest.display()),
                e,
            ))
        }
    }
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let mounted = reopen(root, dest)?;
    apply_propagation(&sys::proc_fd_path(mounted.as_fd()), &opts.propagation)
}

/// Refuses to mount `typ` (proc, sysfs) on `dest` when something other than a
/// directory is there: a symlink (`/proc -> /host/proc`) is the classic way to make a
/// runtime mount where it should not. runc refuses it with the same words.
fn refuse_unless_directory(root: BorrowedFd<'_>, dest: &Path, typ: &str) -> Result<()> {
    let rel = fsroot::relative(dest);
    let opened = sys::openat2(
        root,
        &rel,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    );
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("opening {}", dest.display()), e)),
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| format!("stat {}", dest.display()))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "filesystem {typ:?} must be mounted on ordinary directory ({} is not one)",
            dest.display()
        )))
    }
}

/// Opens `dest` again after mounting on it: an fd taken before the mount still names
/// the covered directory, not the new mount.
fn reopen(root: BorrowedFd<'_>, dest: &Path) -> Result<std::os::fd::OwnedFd> {
    fsroot::open_path(root, dest).ctx(|| format!("reopening mount point {}", dest.display()))
}

/// Applies propagation changes (`rprivate`, `shared`, …) to a mount point.
pub fn apply_propagation(target: &Path, props: &[MsFlags]) -> Result<()> {
    for p in props {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)
            .ctx(|| format!("setting propagation of {}", target.display()))?;
    }
    Ok(())
}

/// The spec's `cgroup` mount: the container's own cgroup, as Docker shows it. On a
/// pure cgroup v2 host a cgroup2 mount, which the container's cgroup namespace roots at
/// its own cgroup. On v1 and hybrid hosts a tmpfs holding, for every hierarchy the host
/// mounts under `/sys/fs/cgroup`, a bind mount of the container's cgroup there (so
/// `memory/memory.limit_in_bytes` is the container's limit, as runc and Docker do).
/// The mount's flags (`ro`, `nosuid`, …) apply to all of it.
fn mount_cgroup(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &ParsedOptions,
    cgroups: &[(String, PathBuf)],
) -> Result<()> {
    let host = Path::new("/sys/fs/cgroup");
    let target = fsroot::mkdir_all(root, dest, 0o755)
        .ctx(|| format!("creating mount point {}", dest.display()))?;
    let target = sys::proc_fd_path(target.as_fd());
    let flags = opts.flags - MsFlags::MS_REC;
    let pure_v2 = nix::sys::statfs::statfs(host)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if pure_v2 {
        match mount(
            Some("cgroup2"),
            &target,
            Some("cgroup2"),
            flags,
            None::<&str>,
        ) {
            Ok(()) => {
                let mounted = reopen(root, dest)?;
                return apply_propagation(&sys::proc_fd_path(mounted.as_fd()), &opts.propagation);
            }
            // Without a cgroup namespace of its own (or of a user namespace that owns
            // one), the container cannot mount cgroup2: bind its cgroup instead.
            Err(Errno::EPERM | Errno::EBUSY) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("mounting cgroup2 on {}", dest.display()),
                    e,
                ))
            }
        }
        let (_, own) = cgroups
            .first()
            .ok_or_else(|| Error::Setup("the container has no cgroup to mount".into()))?;
        mount(
            Some(own.as_path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind mounting {} on {}", own.display(), dest.display()))?;
    } else {
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .ctx(|| format!("mounting a tmpfs on {}", dest.display()))?;
        for (name, own) in cgroups {
            let point = dest.join(name);
            let at = fsroot::mkdir_all(root, &point, 0o755)
                .ctx(|| format!("creating {}", point.display()))?;
            mount(
                Some(own.as_path()),
                &sys::proc_fd_path(at.as_fd()),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("bind mounting {} on {}", own.display(), point.display()))?;
            // `cpu,cpuacct` is also reachable as `cpu` and `cpuacct`, as on the host.
            if name.contains(',') {
                let dir =
                    fsroot::open_path(root, dest).ctx(|| format!("opening {}", dest.display()))?;
                for alias in name.split(',') {
                    match nix::unistd::symlinkat(name.as_str(), Some(dir.as_raw_fd()), alias) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Error::sys(format!("symlink {alias}"), e)),
                    }
                }
            }
        }
    }
    let mounted = reopen(root, dest)?;
    let (set, clear) = attrs_of(flags);
    if set != 0 || clear != 0 {
        // A bind remount cannot reach the submounts; mount_setattr can.
        sys::mount_setattr(mounted.as_fd(), true, set, clear, None)
            .ctx(|| format!("setting the flags of {}", dest.display()))?;
    }
    apply_propagation(&sys::proc_fd_path(mounted.as_fd()), &opts.propagation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> ParsedOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let p = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(p.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(p.data, "mode=755,size=65536k");
        assert!(!p.bind);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(opts(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(opts(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn rbind_and_propagation() {
        let p = opts(&["rbind", "rprivate", "slave"]);
        assert!(p.bind && p.recursive);
        assert_eq!(
            p.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SLAVE]
        );
        assert_eq!(
            opts(&["runbindable"]).propagation,
            vec![MsFlags::MS_UNBINDABLE | MsFlags::MS_REC]
        );
        assert_eq!(
            opts(&["unbindable"]).propagation,
            vec![MsFlags::MS_UNBINDABLE]
        );
    }

    fn bind(opts: &[&str]) -> Mount {
        oci_spec::runtime::MountBuilder::default()
            .destination("/d")
            .typ("bind")
            .source("/s")
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .expect("mount")
    }

    #[test]
    fn unknown_bind_options_and_misplaced_ones_are_refused() {
        validate(&[bind(&["rbind", "ro", "nosuid", "rprivate", "rro", "idmap"])]).expect("known");
        let err = validate(&[bind(&["rbind", "nosiud"])]).expect_err("typo");
        assert!(
            err.to_string()
                .contains("unknown bind mount option(s) nosiud"),
            "{err}"
        );
        let mut tmpfs = bind(&["size=1m", "tmpcopyup"]);
        tmpfs.set_typ(Some("tmpfs".into()));
        validate(&[tmpfs]).expect("tmpfs data and tmpcopyup");
        assert!(validate(&[bind(&["tmpcopyup"])]).is_err());
    }

    #[test]
    fn recursive_atime_options_clear_the_whole_atime_field() {
        for (opt, mode) in [
            ("rnoatime", sys::MOUNT_ATTR_NOATIME),
            ("rstrictatime", sys::MOUNT_ATTR_STRICTATIME),
            ("rrelatime", sys::MOUNT_ATTR_RELATIME),
            ("rnorelatime", sys::MOUNT_ATTR_STRICTATIME),
        ] {
            let p = opts(&["rbind", opt]);
            assert_eq!(p.rec_clear, sys::MOUNT_ATTR__ATIME, "{opt}");
            assert_eq!(p.rec_set, mode, "{opt}");
            assert!(p.data.is_empty(), "{opt} is not data");
        }
        // The last mode wins; other recursive attributes stay.
        let p = opts(&["rnoatime", "rro", "rstrictatime"]);
        assert_eq!(
            p.rec_set,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(p.rec_clear, sys::MOUNT_ATTR__ATIME);
        let p = opts(&["rro", "rrw"]);
        assert_eq!((p.rec_set, p.rec_clear), (0, sys::MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn nosymfollow_is_understood() {
        assert_eq!(opts(&["nosymfollow"]).flags.bits(), MS_NOSYMFOLLOW);
    }
}
