//! User namespace plumbing done by the parent: writing the uid/gid maps of the new
//! namespace and building an idmapped view of the rootfs with that same mapping, so
//! files owned by host root appear owned by the container's root without copying.

use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxIdMapping;

use crate::error::{Error, Result};
use crate::sys;

/// Renders mappings in the `/proc/PID/uid_map` format.
pub fn render_map(mappings: &[LinuxIdMapping]) -> String {
    let mut out = String::new();
    for m in mappings {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{} {} {}", m.container_id(), m.host_id(), m.size());
    }
    out
}

/// Host id that container id `id` maps to, if any.
pub fn host_id(mappings: &[LinuxIdMapping], id: u32) -> Option<u32> {
    mappings.iter().find_map(|m| {
        let start = m.container_id();
        (id >= start && id - start < m.size()).then(|| m.host_id() + (id - start))
    })
}

/// Writes uid_map and gid_map of process `pid`.
pub fn write_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    if !nix::unistd::geteuid().is_root() && !gids.is_empty() {
        // An unprivileged caller (rootless ccrun-oci, as runc) may map only its own
        // gid, and only once setgroups is denied in the namespace.
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").map_err(|e| Error::io("writing", &path, e))?;
    }
    for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
        if maps.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, render_map(maps)).map_err(|e| Error::io("writing", &path, e))?;
    }
    Ok(())
}

/// Host uid and gid of root in the user namespace of process `pid`, read from its
/// maps (for a user namespace the container joined rather than created).
pub fn root_of(pid: i32) -> Result<(u32, u32)> {
    host_ids_in(pid, 0, 0)?.ok_or_else(|| {
        Error::InvalidSpec(format!(
            "the joined user namespace does not map root (/proc/{pid}/uid_map)"
        ))
    })
}

/// Host uid and gid that `uid` and `gid` of the user namespace of process `pid` map to;
/// `None` when either is unmapped there.
pub fn host_ids_in(pid: i32, uid: u32, gid: u32) -> Result<Option<(u32, u32)>> {
    let mut ids = [0u32; 2];
    for ((slot, file), id) in ids.iter_mut().zip(["uid_map", "gid_map"]).zip([uid, gid]) {
        let path = format!("/proc/{pid}/{file}");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        match parse_map(&text).and_then(|maps| host_id(&maps, id)) {
            Some(host) => *slot = host,
            None => return Ok(None),
        }
    }
    Ok(Some((ids[0], ids[1])))
}

/// Parses the `/proc/PID/uid_map` format.
pub fn parse_map(text: &str) -> Option<Vec<LinuxIdMapping>> {
    text.lines()
        .map(|line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<u32>().ok());
            let (c, h, s) = (f.next()??, f.next()??, f.next()??);
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(c)
                .host_id(h)
                .size(s)
                .build()
                .ok()
        })
        .collect()
}

/// Clones `rootfs` as a detached mount idmapped through the user namespace of `pid`.
pub fn idmapped_rootfs(pid: i32, rootfs: &Path) -> Result<OwnedFd> {
    let ns_path = format!("/proc/{pid}/ns/user");
    let userns = std::fs::File::open(&ns_path).map_err(|e| Error::io("opening", &ns_path, e))?;
    let tree = sys::open_tree_clone(rootfs)
        .map_err(|e| Error::sys(format!("open_tree {}", rootfs.display()), e))?;
    sys::idmap_mount(tree.as_fd(), userns.as_fd()).map_err(|e| {
        Error::sys(
            format!(
                "idmapping the rootfs {} (needs kernel >= 5.12 and a filesystem that supports \
                 idmapped mounts; use --userns=host otherwise)",
                rootfs.display()
            ),
            e,
        )
    })?;
    Ok(tree)
}

/// Creates a user namespace with the given mappings and returns an fd of it, for
/// idmapping mounts before any container exists (e.g. an image's layers for overlayfs).
/// A short-lived child owns the namespace until the fd is open. The caller must be
/// single-threaded (the child is a plain fork).
pub fn new_userns_fd(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (hold_r, hold_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", e))?;
    // SAFETY: the child only calls close, read and _exit, which are async-signal-safe.
    let pid = unsafe { sys::clone_fork(libc::CLONE_NEWUSER) }
        .map_err(|e| Error::sys("creating a user namespace", e))?;
    if pid == 0 {
        use std::os::fd::AsRawFd;
        let mut byte = 0u8;
        // SAFETY: plain syscalls on fds this process owns; the read blocks until the
        // parent closes its end, and _exit ends the child without running destructors.
        unsafe {
            libc::close(hold_w.as_raw_fd());
            libc::read(hold_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(hold_r);
    let result = write_maps(pid, uids, gids).and_then(|()| {
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| Error::io("opening", &path, e))
    });
    drop(hold_w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn m(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .expect("mapping")
    }

    #[test]
    fn renders_proc_map_format() {
        assert_eq!(
            render_map(&[m(0, 100000, 65536), m(65536, 300000, 1)]),
            "0 100000 65536\n65536 300000 1\n"
        );
    }

    #[test]
    fn parses_proc_map_format() {
        let maps = parse_map("         0     100000      65536\n").expect("parse");
        assert_eq!(maps, vec![m(0, 100000, 65536)]);
        assert!(parse_map("0 x 1\n").is_none());
    }

    #[test]
    fn maps_ids_through_ranges() {
        let maps = [m(0, 100000, 65536)];
        assert_eq!(host_id(&maps, 0), Some(100000));
        assert_eq!(host_id(&maps, 65535), Some(165535));
        assert_eq!(host_id(&maps, 65536), None);
    }
}
