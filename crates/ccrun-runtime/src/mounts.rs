//! OCI mount entries: option parsing into mount flags, and mounting one entry into
//! the rootfs (bind mounts with their remount step, special filesystems, propagation).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::Mount;

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
}

/// Parses OCI/fstab style options (`ro`, `nosuid`, `rbind`, `rprivate`, `size=64k`, …).
pub fn parse_options(options: &[String]) -> ParsedOptions {
    let mut p = ParsedOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
        recursive: false,
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
            other => {
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

/// Where the source of a bind mount lives on the host: relative sources are relative
/// to the bundle, as the runtime spec says.
fn host_source(bundle: &Path, source: &Path) -> PathBuf {
    if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    }
}

/// Mounts one spec entry into the rootfs open at `root` (whose host path is `rootfs`).
/// Runs in the container's mount namespace, before `pivot_root`.
pub fn mount_entry(root: BorrowedFd<'_>, bundle: &Path, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let is_bind = opts.bind || typ == "bind";
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));

    if is_bind {
        let src = host_source(bundle, &source);
        let meta = std::fs::metadata(&src).map_err(|e| Error::io("bind mount source", &src, e))?;
        let target = if meta.is_dir() {
            fsroot::mkdir_all(root, dest, 0o755)
        } else {
            fsroot::ensure_file(root, dest)
        }
        .ctx(|| format!("creating mount point {}", dest.display()))?;
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
        return mount_cgroup(root, dest, &opts);
    }
    let target = fsroot::mkdir_all(root, dest, 0o755)
        .ctx(|| format!("creating mount point {}", dest.display()))?;
    let target = sys::proc_fd_path(target.as_fd());
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let result = mount(Some(&source), &target, Some(typ), opts.flags, data);
    match (result, typ) {
        (Ok(()), _) => {}
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

/// The spec's `cgroup` mount (runc's default spec, podman and containerd all ask for
/// one at `/sys/fs/cgroup`). On a pure cgroup v2 host a new cgroup2 mount, which shows
/// the container's own cgroup namespace; where the kernel refuses it, and on v1 and
/// hybrid hosts (where a v1 mount per controller would need a cgroup namespace to show
/// the right subtree), the host's cgroup tree bound recursively, with the entry's
/// read-only and nosuid/nodev/noexec flags applied to every submount.
fn mount_cgroup(root: BorrowedFd<'_>, dest: &Path, opts: &ParsedOptions) -> Result<()> {
    let host = Path::new("/sys/fs/cgroup");
    let target = fsroot::mkdir_all(root, dest, 0o755)
        .ctx(|| format!("creating mount point {}", dest.display()))?;
    let target = sys::proc_fd_path(target.as_fd());
    let pure_v2 = nix::sys::statfs::statfs(host)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if pure_v2 {
        let flags = opts.flags - MsFlags::MS_REC;
        match mount(
            Some("cgroup2"),
            &target,
            Some("cgroup2"),
            flags,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EPERM | Errno::EBUSY) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("mounting cgroup2 on {}", dest.display()),
                    e,
                ))
            }
        }
    }
    mount(
        Some(host),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mounting {} on {}", host.display(), dest.display()))?;
    let mounted = reopen(root, dest)?;
    let mut attrs = 0;
    for (flag, attr) in [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
    ] {
        if opts.flags.contains(flag) {
            attrs |= attr;
        }
    }
    let mounted = sys::proc_fd_path(mounted.as_fd());
    if attrs != 0 {
        sys::set_attrs_recursive(&mounted, attrs)
            .ctx(|| format!("setting the flags of {}", dest.display()))?;
    }
    apply_propagation(&mounted, &opts.propagation)
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

    #[test]
    fn nosymfollow_is_understood() {
        assert_eq!(opts(&["nosymfollow"]).flags.bits(), MS_NOSYMFOLLOW);
    }
}
