//! Detection of the host's cgroup layout (pure v2, hybrid, pure v1) from
//! `/proc/self/mountinfo`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs;

/// Where the kernel describes this process's mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The usual mount point of the cgroup filesystem(s).
const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Names of the cgroup v1 controllers this crate recognises in mount options.
/// Named hierarchies (`name=systemd`) carry no controller and are ignored.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup v2 at `root` (usually /sys/fs/cgroup).
    Unified {
        /// Mount point of the cgroup2 filesystem.
        root: PathBuf,
    },
    /// v1 controllers, each at its own mount point (controller name -> mount dir),
    /// plus an optional cgroup2 mount (`unified`) for controllers only v2 has.
    Legacy {
        /// v1 controller name -> mount point of its hierarchy. Co-mounted
        /// controllers (e.g. `cpu,cpuacct`) map to the same directory.
        controllers: BTreeMap<String, PathBuf>,
        /// Mount point of a cgroup2 filesystem next to the v1 ones, if any.
        unified: Option<PathBuf>,
    },
}

impl Layout {
    /// Reads /proc/self/mountinfo. In a mount namespace of its own whose fresh `/sys`
    /// hides the host's hierarchies (`ip netns exec` remounts it), they are first
    /// mounted again there, privately.
    pub fn detect() -> Result<Layout> {
        let path = Path::new(MOUNTINFO);
        let text = fs::read(path)?;
        match parse(&text, path) {
            Err(Error::NoHierarchy { .. }) if crate::remount::restore_hidden_hierarchies()? => {
                parse(&fs::read(path)?, path)
            }
            other => other,
        }
    }

    /// Builds the layout described by mountinfo-formatted `text` (as found in
    /// `/proc/<pid>/mountinfo`). Used by [`Layout::detect`] and by tests.
    pub fn from_mountinfo(text: &str) -> Result<Layout> {
        parse(text, Path::new("<mountinfo text>"))
    }

    /// A pure v2 layout rooted at an arbitrary directory (for tests, or a cgroup2
    /// filesystem mounted somewhere unusual).
    pub fn unified_at(root: impl Into<PathBuf>) -> Layout {
        Layout::Unified { root: root.into() }
    }

    /// A v1 layout with every controller in `controllers` mounted at `base/<controller>`,
    /// plus `base/<unified>` as cgroup2 mount if given (for tests).
    pub fn legacy_at(base: &Path, controllers: &[&str], unified: Option<&str>) -> Layout {
        Layout::Legacy {
            controllers: controllers
                .iter()
                .map(|c| (c.to_string(), base.join(c)))
                .collect(),
            unified: unified.map(|u| base.join(u)),
        }
    }
}

/// One cgroup-related line of mountinfo.
struct CgroupMount {
    /// Path of the hierarchy that is mounted (`/` unless this is a bind mount of a subtree).
    root: String,
    /// Where it is mounted.
    mount_point: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    fs_type: String,
    /// Superblock options (for v1 these name the controllers).
    super_options: String,
}

fn parse(text: &str, source: &Path) -> Result<Layout> {
    let mounts: Vec<CgroupMount> = text.lines().filter_map(parse_line).collect();

    // Prefer mounts of the whole hierarchy ("/") over bind mounts of a subtree, then
    // the first one listed.
    let mut ordered: Vec<&CgroupMount> = mounts.iter().filter(|m| m.root == "/").collect();
    ordered.extend(mounts.iter().filter(|m| m.root != "/"));

    let mut controllers = BTreeMap::new();
    for mount in ordered.iter().filter(|m| m.fs_type == "cgroup") {
        for option in mount.super_options.split(',') {
            if V1_CONTROLLERS.contains(&option) {
                controllers
                    .entry(option.to_string())
                    .or_insert_with(|| mount.mount_point.clone());
            }
        }
    }

    let v2_mounts: Vec<&CgroupMount> = ordered
        .iter()
        .copied()
        .filter(|m| m.fs_type == "cgroup2")
        .collect();
    let unified = v2_mounts
        .iter()
        .find(|m| m.mount_point == Path::new(DEFAULT_ROOT))
        .or_else(|| v2_mounts.first())
        .map(|m| m.mount_point.clone());

    if !controllers.is_empty() {
        return Ok(Layout::Legacy {
            controllers,
            unified,
        });
    }
    match unified {
        Some(root) => Ok(Layout::Unified { root }),
        None => Err(Error::NoHierarchy {
            path: source.to_path_buf(),
        }),
    }
}

/// Parses one mountinfo line, keeping it only if it is a cgroup or cgroup2 mount.
/// Format: `id parent maj:min root mount_point options [optional...] - fstype source super_options`.
fn parse_line(line: &str) -> Option<CgroupMount> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    if fs_type != "cgroup" && fs_type != "cgroup2" {
        return None;
    }
    let _source = right.next()?;
    let super_options = right.next().unwrap_or_default();
    Some(CgroupMount {
        root: unescape(left.get(3)?),
        mount_point: PathBuf::from(unescape(left.get(4)?)),
        fs_type: fs_type.to_string(),
        super_options: super_options.to_string(),
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash in mountinfo.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')));
        match escaped.and_then(|v| u8::try_from(v).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURE_V2: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:25 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
";

    /// This machine's layout: v1 controllers (cpu and cpuacct mounted separately),
    /// a named systemd hierarchy, and cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A classic v1 host: co-mounted cpu,cpuacct and net_cls,net_prio, no cgroup2.
    const PURE_V1: &str = "\
24 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
29 24 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
30 24 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
31 24 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
";

    #[test]
    fn pure_v2() {
        let layout = Layout::from_mountinfo(PURE_V2).unwrap();
        assert_eq!(layout, Layout::unified_at("/sys/fs/cgroup"));
    }

    #[test]
    fn hybrid_with_unified_mount() {
        let layout = Layout::from_mountinfo(HYBRID).unwrap();
        let expected = Layout::legacy_at(
            Path::new("/sys/fs/cgroup"),
            &[
                "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
            ],
            Some("unified"),
        );
        assert_eq!(layout, expected);
    }

    #[test]
    fn pure_v1_with_comounted_controllers() {
        let Layout::Legacy {
            controllers,
            unified,
        } = Layout::from_mountinfo(PURE_V1).unwrap()
        else {
            panic!("expected a legacy layout");
        };
        assert_eq!(unified, None);
        let names: Vec<&str> = controllers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["cpu", "cpuacct", "memory", "net_cls", "net_prio", "pids"]
        );
        let cpu = Path::new("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(controllers["cpu"], cpu);
        assert_eq!(controllers["cpuacct"], cpu);
        assert_eq!(controllers["memory"], Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn whole_hierarchy_preferred_over_bind_mounted_subtree() {
        let text = "\
50 1 0:40 /docker/abc /mnt/mem rw - cgroup cgroup rw,memory
51 1 0:40 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let Layout::Legacy { controllers, .. } = Layout::from_mountinfo(text).unwrap() else {
            panic!("expected a legacy layout");
        };
        assert_eq!(controllers["memory"], Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn cgroup2_elsewhere_without_v1_is_unified() {
        let text = "60 1 0:41 / /mnt/my\\040cgroup rw - cgroup2 none rw\n";
        assert_eq!(
            Layout::from_mountinfo(text).unwrap(),
            Layout::unified_at("/mnt/my cgroup")
        );
    }

    #[test]
    fn no_cgroup_mounts_is_an_error() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
        let err = Layout::from_mountinfo(text).unwrap_err();
        assert!(matches!(err, Error::NoHierarchy { .. }), "{err}");
    }

    #[test]
    fn detect_on_this_host_finds_something() {
        // Every Linux host running these tests has some cgroup mount.
        Layout::detect().unwrap();
    }
}
