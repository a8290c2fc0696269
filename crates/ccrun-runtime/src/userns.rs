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
    for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
        if maps.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, render_map(maps)).map_err(|e| Error::io("writing", &path, e))?;
    }
    Ok(())
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
    fn maps_ids_through_ranges() {
        let maps = [m(0, 100000, 65536)];
        assert_eq!(host_id(&maps, 0), Some(100000));
        assert_eq!(host_id(&maps, 65535), Some(165535));
        assert_eq!(host_id(&maps, 65536), None);
    }
}
