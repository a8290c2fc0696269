//! Overlayfs snapshots: a container's copy-on-write root over an image's unpacked
//! layers. The layers are the read-only lower directories (never written), the
//! container's own `upper/` receives its changes, and `merged/` is the view.
//!
//! Layout of a snapshot directory:
//! - `upper/`, `work/`: overlayfs upper and work directories;
//! - `merged/`: the mount point;
//! - `l/<N>`: layer `N` (0 = lowest) under a short name, so even hundreds of layers
//!   fit in one `lowerdir=` option (overlayfs takes at most a page of options). Without
//!   id mapping `l/<N>` is a symlink to the layer; with it, an idmapped bind mount of
//!   the layer, attached only while the overlay is being mounted (overlayfs keeps its
//!   own private clone of each layer mount).
//!
//! With a user namespace, the layers are idmapped through it (kernel >= 5.19 for
//! idmapped overlay layers), so files the image gives to root appear owned by the
//! mapped root without copying anything, and the upper directory is owned by the
//! mapped root so the container's root can write there.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ccrun_runtime::sys;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};

/// Most lower layers overlayfs stacks (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// How to mount a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountOptions<'a> {
    /// Idmap the layers through this user namespace.
    pub userns: Option<BorrowedFd<'a>>,
    /// Host uid and gid that own the upper directory (the container's root).
    pub root_owner: (u32, u32),
    /// Mount with overlayfs's `volatile` option (Linux >= 5.10), for a snapshot that
    /// is mounted once and thrown away with its container (`--rm`): overlayfs then
    /// never syncs the upper filesystem, where unmounting would otherwise flush the
    /// whole filesystem the store is on (every other writer's dirty data too). After a
    /// crash the kernel refuses to mount such an upper directory again, which a `--rm`
    /// container never needs. Kernels without the option get a plain mount.
    pub volatile: bool,
}

/// A container's overlay root under `dir`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
}

impl Snapshot {
    /// The snapshot kept in `dir` (created on [`Snapshot::mount`]).
    pub fn new(dir: &Path) -> Snapshot {
        Snapshot {
            dir: dir.to_path_buf(),
        }
    }

    /// The merged view (the container's rootfs while mounted).
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The directory holding the container's changes.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Mounts `layers` (lowest first) with this snapshot's upper directory on
    /// [`Snapshot::merged`]. The mount lands in the caller's mount namespace.
    pub fn mount(&self, layers: &[PathBuf], opts: MountOptions<'_>) -> Result<PathBuf> {
        if layers.len() > MAX_LAYERS {
            return Err(Error::InvalidContent {
                what: "image".into(),
                message: format!(
                    "{} layers; overlayfs stacks at most {MAX_LAYERS}",
                    layers.len()
                ),
            });
        }
        let upper = self.upper();
        let first_mount = !upper.exists();
        for (sub, mode) in [
            ("upper", 0o755),
            ("work", 0o700),
            ("merged", 0o755),
            ("l", 0o700),
        ] {
            let path = self.dir.join(sub);
            match fs::DirBuilder::new().mode(mode).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).ctx("creating", &path),
            }
        }
        if first_mount {
            let (uid, gid) = opts.root_owner;
            std::os::unix::fs::chown(&upper, Some(uid), Some(gid)).ctx("chown", &upper)?;
            fs::set_permissions(&upper, fs::Permissions::from_mode(0o755)).ctx("chmod", &upper)?;
        }
        let links = self.dir.join("l");
        let empty = self.dir.join("empty");
        let layers: Vec<PathBuf> = if layers.is_empty() {
            // overlayfs needs a lower layer; an image without layers gets an empty one.
            fs::create_dir_all(&empty).ctx("creating", &empty)?;
            vec![empty]
        } else {
            layers.to_vec()
        };
        let mut attached = Vec::new();
        let result = self
            .link_layers(&links, &layers, opts.userns, &mut attached)
            .and_then(|()| self.mount_overlay(&links, layers.len(), opts.volatile));
        // The overlay holds its layers now: their idmapped mounts are detached from
        // the tree. The empty mount points stay when the overlay is up (the next
        // mount replaces them, the container's removal deletes them): an `rmdir`
        // here was a journal write on the start path.
        for path in attached.iter().rev() {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            if result.is_err() {
                let _ = fs::remove_dir(path);
            }
        }
        result.map(|()| self.merged())
    }

    fn link_layers(
        &self,
        links: &Path,
        layers: &[PathBuf],
        userns: Option<BorrowedFd<'_>>,
        attached: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for (i, layer) in layers.iter().enumerate() {
            let link = links.join(i.to_string());
            match fs::symlink_metadata(&link) {
                Ok(m) if m.is_dir() => fs::remove_dir(&link).ctx("removing", &link)?,
                Ok(_) => fs::remove_file(&link).ctx("removing", &link)?,
                Err(_) => {}
            }
            let Some(userns) = userns else {
                std::os::unix::fs::symlink(layer, &link).ctx("linking", &link)?;
                continue;
            };
            fs::create_dir(&link).ctx("creating", &link)?;
            let tree = sys::open_tree_clone(layer).map_err(|e| sys_err("open_tree", layer, e))?;
            sys::idmap_mount(tree.as_fd(), userns).map_err(|e| {
                sys_err(
                    "idmapping (needs kernel >= 5.19 and a filesystem with idmapped mounts; \
                     use --userns=host otherwise)",
                    layer,
                    e,
                )
            })?;
            sys::move_mount_to(tree.as_fd(), &link).map_err(|e| sys_err("attaching", &link, e))?;
            attached.push(link);
        }
        Ok(())
    }

    fn mount_overlay(&self, links: &Path, count: usize, volatile: bool) -> Result<()> {
        // Relative layer names keep the option string short; they resolve against the
        // working directory, which is restored afterwards.
        let lower: Vec<String> = (0..count).rev().map(|i| i.to_string()).collect();
        let mut data = format!(
            "lowerdir={},upperdir=../upper,workdir=../work",
            lower.join(":")
        );
        // Rootless: overlayfs in a user namespace reads `user.overlay.*` attributes,
        // which rootless unpacking writes (trusted.* needs host root).
        let rootless = ccrun_runtime::rootless::in_user_namespace();
        if rootless {
            data.push_str(",userxattr");
        }
        let cwd = fs::File::open(".").ctx("opening", Path::new("."))?;
        std::env::set_current_dir(links).ctx("entering", links)?;
        let merged = self.merged();
        let overlay = |data: &str| {
            mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(data),
            )
        };
        // Rootless, `CCRUN_ROOTLESS_OVERLAY=fuse` asks for fuse-overlayfs even where the
        // kernel's overlayfs would do (podman's `mount_program`): for file systems the
        // kernel's overlayfs refuses as upper or lower in a user namespace.
        let want_fuse =
            rootless && std::env::var_os(ROOTLESS_OVERLAY_ENV).is_some_and(|v| v == "fuse");
        let mounted = match volatile {
            _ if want_fuse => Err(nix::errno::Errno::EOPNOTSUPP),
            true => match overlay(&format!("{data},volatile")) {
                // Before 5.10 overlayfs does not know the option.
                Err(nix::errno::Errno::EINVAL) => overlay(&data),
                other => other,
            },
            false => overlay(&data),
        };
        let result = match mounted {
            // Kernels before 5.11 have no overlayfs in user namespaces: fuse-overlayfs
            // does the same in user space.
            Err(e) if rootless => fuse_overlayfs(&data, &merged).map_err(|fuse| Error::Io {
                context: "mounting overlay (and fuse-overlayfs) on",
                path: merged.clone(),
                source: std::io::Error::other(format!("{e}; fuse-overlayfs: {fuse}")),
            }),
            other => other.map_err(|e| sys_err("mounting overlay on", &merged, e)),
        };
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd))
            .map_err(|e| sys_err("returning to", Path::new("."), e))?;
        result
    }

    /// Unmounts the merged view if mounted (the upper directory stays).
    pub fn unmount(&self) -> Result<()> {
        let merged = self.merged();
        match umount2(&merged, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(sys_err("unmounting", &merged, e)),
        }
    }

    /// Unmounts and deletes the snapshot with the container's changes.
    pub fn remove(&self) -> Result<()> {
        self.unmount()?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("removing", &self.dir),
        }
    }
}

/// The variable that, set to `fuse`, makes rootless snapshots use fuse-overlayfs.
pub const ROOTLESS_OVERLAY_ENV: &str = "CCRUN_ROOTLESS_OVERLAY";

/// Mounts the overlay `data` describes (paths relative to the working directory) on
/// `merged` with fuse-overlayfs, which serves it from a process of its own until the
/// mount goes (with the mount namespace of the container and its monitor).
fn fuse_overlayfs(data: &str, merged: &Path) -> std::result::Result<(), String> {
    let data = data.replace(",userxattr", "");
    let out = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(&data)
        .arg(merged)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running fuse-overlayfs (install it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn sys_err(context: &'static str, path: &Path, e: nix::errno::Errno) -> Error {
    Error::Io {
        context,
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}
