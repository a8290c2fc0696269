//! Restoring the cgroup hierarchies in a mount namespace whose `/sys` was remounted
//! without them, as `ip netns exec` does: the host's cgroup mounts (those of PID 1)
//! are mounted again at the same places, privately to this namespace.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::error::{Error, Result};

/// Where a hidden hierarchy would be restored, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    fs_type: String,
    mount_point: PathBuf,
    /// Superblock options as mount data (`memory`, `cpu,cpuacct`, `name=systemd`).
    data: String,
}

/// Mounts PID 1's cgroup hierarchies (and the tmpfs holding them, on v1) at the same
/// mount points, when this process sees none of them because it runs in a mount
/// namespace of its own (never the host's) whose `/sys` is a fresh sysfs that does not
/// propagate anywhere. Returns whether anything was mounted.
pub fn restore_hidden_hierarchies() -> Result<bool> {
    let own = crate::fs::read(Path::new("/proc/self/mountinfo"))?;
    let host = crate::fs::read(Path::new("/proc/1/mountinfo"))?;
    // Another sysfs instance than PID 1's on /sys can only be a mount some process made
    // in a mount namespace of its own; a shared one would propagate our mounts out.
    let (Some((ours, private)), Some((init, _))) = (sys_mount(&own), sys_mount(&host)) else {
        return Ok(false);
    };
    if ours == init || !private {
        return Ok(false);
    }
    let (holder, hierarchies) = host_hierarchies(&host);
    if hierarchies.is_empty() {
        return Ok(false);
    }
    if let Some(dir) = &holder {
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(|e| sys(format!("mounting a tmpfs on {}", dir.display()), e))?;
    }
    for h in &hierarchies {
        std::fs::create_dir_all(&h.mount_point).map_err(|e| io(&h.mount_point, e))?;
        let data = (!h.data.is_empty()).then_some(h.data.as_str());
        mount(
            Some(h.fs_type.as_str()),
            &h.mount_point,
            Some(h.fs_type.as_str()),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            data,
        )
        .map_err(|e| {
            sys(
                format!(
                    "mounting the {} hierarchy on {}",
                    h.fs_type,
                    h.mount_point.display()
                ),
                e,
            )
        })?;
    }
    tracing::debug!(
        "restored {} cgroup hierarchies hidden by a fresh /sys",
        hierarchies.len()
    );
    Ok(true)
}

/// The device (`major:minor`) of the filesystem mounted on `/sys` in `mountinfo`, and
/// whether that mount is in no shared propagation group (so mounts below it stay in
/// its namespace). The last mount on `/sys` wins, as it covers the others.
fn sys_mount(mountinfo: &str) -> Option<(String, bool)> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, _) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        if fields.get(4) != Some(&"/sys") {
            return None;
        }
        let shared = fields.iter().skip(6).any(|f| f.starts_with("shared:"));
        Some((fields.get(2)?.to_string(), !shared))
    })
}

/// PID 1's cgroup mounts of whole hierarchies, and the tmpfs directory holding them
/// when they are not mounted on it directly (v1 and hybrid layouts).
fn host_hierarchies(mountinfo: &str) -> (Option<PathBuf>, Vec<Hierarchy>) {
    let mut holder = None;
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fs_type)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let point = PathBuf::from(point);
        if *fs_type == "tmpfs" && point == Path::new("/sys/fs/cgroup") {
            holder = Some(point);
            continue;
        }
        if !matches!(*fs_type, "cgroup" | "cgroup2") || *root != "/" {
            continue;
        }
        // Superblock options: the controllers (v1) or nothing to repeat (cgroup2).
        let data = match *fs_type {
            "cgroup" => right
                .get(2)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        out.push(Hierarchy {
            fs_type: fs_type.to_string(),
            mount_point: point,
            data,
        });
    }
    (holder, out)
}

fn io(path: impl AsRef<Path>, e: std::io::Error) -> Error {
    Error::Read {
        path: path.as_ref().to_path_buf(),
        source: e,
    }
}

fn sys(what: String, e: nix::errno::Errno) -> Error {
    Error::Mount {
        what,
        source: std::io::Error::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_INIT: &str = "\
23 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
24 23 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:18 - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
";

    #[test]
    fn init_hierarchies_are_read_with_their_controllers() {
        let (holder, found) = host_hierarchies(HYBRID_INIT);
        assert_eq!(holder, Some(PathBuf::from("/sys/fs/cgroup")));
        let shown: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|h| {
                (
                    h.fs_type.as_str(),
                    h.mount_point.to_str().unwrap_or(""),
                    h.data.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("cgroup", "/sys/fs/cgroup/cpu", "cpu"),
                ("cgroup", "/sys/fs/cgroup/memory", "memory"),
                ("cgroup", "/sys/fs/cgroup/systemd", "name=systemd"),
                ("cgroup2", "/sys/fs/cgroup/unified", ""),
            ]
        );
    }

    #[test]
    fn the_sys_mount_is_found_with_its_propagation() {
        assert_eq!(sys_mount(HYBRID_INIT), Some(("0:22".to_string(), false)));
        let netns_exec = "\
500 400 254:0 / / rw,relatime master:1 - ext4 /dev/vda rw
501 500 0:22 / /sys rw,relatime master:7 - sysfs sysfs rw
502 501 0:90 / /sys rw,relatime - sysfs netns rw
";
        assert_eq!(sys_mount(netns_exec), Some(("0:90".to_string(), true)));
        assert_eq!(sys_mount("500 400 0:22 / / rw - ext4 /dev/vda rw\n"), None);
    }
}
