//! Volumes and bind mounts: `-v`/`--mount` parsing ([`spec`]), the volume store under
//! `<root>/volumes/` ([`store`]), seeding a new volume from the image ([`seed`]) and
//! host ownership around user namespaces ([`owner`]).
//!
//! A container's mounts are decided in two steps. [`plan`] runs before the container
//! exists: it checks every request (bind sources must exist and be reachable), adds an
//! anonymous volume for each of the image's `Volumes` not already covered, and names
//! the anonymous volumes, so that the container's record lists every volume it uses
//! before any of them is created. [`attach`] runs once the root filesystem is mounted:
//! under the volume store's lock it creates the volumes that do not exist yet, seeds
//! new ones, applies `U`, and returns the OCI mounts.
//!
//! Ownership under the default private user namespace: a volume's `_data` starts owned
//! by host root; the first container that mounts it gives it the owner (and mode) of
//! the image's directory at the mount point, seen through the container's mapping
//! (host uid 100000 for the image's root), or else to the container's root. Files the
//! container writes are stored with its mapped host ids, so any later container with
//! the same mapping sees them as their writer left them.

pub mod owner;
pub mod seed;
pub mod spec;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Mount, MountBuilder};

use crate::containers::record::VolumeMount;
use crate::containers::{ContainerStore, Record};
pub use seed::IdShift;
pub use spec::MountRequest;
use spec::VolumeRequest;
pub use store::{Volume, VolumeStore, ANONYMOUS_LABEL};

/// Checks the requested mounts, adds anonymous volumes for the image's `Volumes` that
/// no request covers (nor `taken`, the `--tmpfs` destinations) and names every
/// anonymous volume. Nothing is created yet.
pub fn plan(
    requests: Vec<MountRequest>,
    image_volumes: &[String],
    taken: &[String],
) -> Result<Vec<MountRequest>> {
    let mut seen: Vec<String> = taken.to_vec();
    for r in &requests {
        if seen.iter().any(|d| d == r.destination()) {
            bail!("duplicate mount point: {}", r.destination());
        }
        seen.push(r.destination().to_string());
    }
    let mut planned = requests;
    for path in image_volumes {
        let request = match MountRequest::anonymous(path) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("ignoring the image's volume {path:?}: {e:#}");
                continue;
            }
        };
        if !seen.iter().any(|d| d == request.destination()) {
            seen.push(request.destination().to_string());
            planned.push(request);
        }
    }
    for request in &mut planned {
        match request {
            MountRequest::Volume(v) if v.name.is_none() => {
                v.name = Some(crate::containers::store::new_container_id()?);
            }
            MountRequest::Bind(b) => {
                std::fs::metadata(&b.source).with_context(|| {
                    format!("bind source path does not exist: {}", b.source.display())
                })?;
                if b.chown {
                    owner::check_chown_allowed(&b.source)?;
                }
            }
            _ => {}
        }
    }
    Ok(planned)
}

/// The volumes among planned mounts, as the container's record keeps them.
pub fn volume_mounts(planned: &[MountRequest]) -> Vec<VolumeMount> {
    planned
        .iter()
        .filter_map(|r| match r {
            MountRequest::Volume(v) => Some(VolumeMount {
                name: v.name.clone().unwrap_or_default(),
                destination: v.destination.clone(),
                anonymous: v.anonymous,
                readonly: v.readonly,
            }),
            _ => None,
        })
        .collect()
}

/// The container the mounts are attached to.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The storage root (volumes live under `<root>/volumes`).
    pub store_root: &'a Path,
    /// Its root filesystem, mounted, on the host (seeding reads from it).
    pub rootfs: &'a Path,
    /// How owners read from `rootfs` become host owners.
    pub shift: IdShift,
    /// Host uid and gid of the container's root.
    pub root_owner: (u32, u32),
    /// Host uid and gid of the container's user (what `U` chowns to).
    pub user_owner: (u32, u32),
    /// The container has a user namespace of its own (binds may be idmapped).
    pub own_userns: bool,
    /// Volumes are mounted idmapped with the container's mapping (`--userns auto`), so
    /// they hold the ids the container sees, whatever its range (`root_owner`,
    /// `user_owner` and `shift` say those ids then).
    pub idmap_volumes: bool,
}

/// Creates the volumes that do not exist yet, seeds the new ones from the image,
/// applies `U`, and returns the OCI mounts for the planned requests, in order.
pub fn attach(target: &Target<'_>, planned: &[MountRequest]) -> Result<Vec<Mount>> {
    let has_volumes = planned.iter().any(|r| matches!(r, MountRequest::Volume(_)));
    let volumes = if has_volumes {
        Some(VolumeStore::open(target.store_root)?)
    } else {
        None
    };
    let lock = volumes.as_ref().map(VolumeStore::lock).transpose()?;
    let mut mounts = Vec::new();
    for request in planned {
        let mount = match request {
            MountRequest::Bind(b) => {
                if b.chown {
                    let (uid, gid) = target.user_owner;
                    owner::chown_tree(&b.source, uid, gid)?;
                }
                let mut options = vec![
                    if b.recursive { "rbind" } else { "bind" }.to_string(),
                    b.propagation.clone(),
                ];
                if b.readonly {
                    options.push("ro".to_string());
                }
                if b.idmap {
                    if !target.own_userns {
                        bail!(
                            "-v {}:{}:idmap needs the container's own user namespace \
                             (not --userns host)",
                            b.source.display(),
                            b.destination
                        );
                    }
                    // The container's own mapping, on the submounts too.
                    options.push(if b.recursive { "ridmap" } else { "idmap" }.to_string());
                }
                build_mount(&b.destination, "bind", &b.source, options)?
            }
            MountRequest::Volume(v) => {
                let (Some(store), Some(lock)) = (&volumes, &lock) else {
                    bail!("the volume store is not open");
                };
                let data = prepare_volume(store, lock, v, target)?;
                let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
                if v.readonly {
                    options.push("ro".to_string());
                }
                if target.idmap_volumes {
                    options.push("ridmap".to_string());
                }
                build_mount(&v.destination, "bind", &data, options)?
            }
            MountRequest::Tmpfs(t) => {
                let mut options: Vec<String> =
                    ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
                if let Some(size) = t.size {
                    options.push(format!("size={size}"));
                }
                if let Some(mode) = t.mode {
                    options.push(format!("mode={mode:o}"));
                }
                if t.readonly {
                    options.push("ro".to_string());
                }
                build_mount(&t.destination, "tmpfs", Path::new("tmpfs"), options)?
            }
        };
        mounts.push(mount);
    }
    Ok(mounts)
}

fn build_mount(destination: &str, typ: &str, source: &Path, options: Vec<String>) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options)
        .build()?)
}

/// Gets (or creates) the volume of `request` and, the first time a container mounts
/// it, seeds it from the image or gives it to the container's root. Returns its `_data`.
fn prepare_volume(
    store: &VolumeStore,
    lock: &crate::storage::FileLock,
    request: &VolumeRequest,
    target: &Target<'_>,
) -> Result<PathBuf> {
    let name = request
        .name
        .as_deref()
        .context("an anonymous volume without a name")?;
    let mut volume = match store.get(name)? {
        Some(volume) => volume,
        None => {
            let mut labels = request.labels.clone();
            if request.anonymous {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
            }
            store.create(lock, name, labels)?
        }
    };
    let data = store.data_dir(name);
    if volume.fresh {
        let seeded = if request.nocopy {
            seed::Seeded::NothingThere
        } else {
            seed::seed(target.rootfs, &request.destination, &data, target.shift)
                .with_context(|| format!("seeding volume {name} from the image"))?
        };
        if seeded != seed::Seeded::Copied {
            let (uid, gid) = target.root_owner;
            std::os::unix::fs::lchown(&data, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", data.display()))?;
        }
        volume.fresh = false;
        store.save(lock, &volume)?;
    }
    if request.chown {
        let (uid, gid) = target.user_owner;
        owner::chown_tree(&data, uid, gid)?;
    }
    Ok(data)
}

/// For each volume name, the containers (in any state) that mount it.
pub fn users(containers: &[Record]) -> BTreeMap<&str, Vec<&Record>> {
    let mut out: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in containers {
        for m in &record.volume_mounts {
            out.entry(m.name.as_str()).or_default().push(record);
        }
    }
    out
}

/// Removes the anonymous volumes of `record` (a container that was just removed)
/// that no other container mounts. Returns the names removed.
pub fn remove_anonymous(store_root: &Path, record: &Record) -> Result<Vec<String>> {
    let anonymous: Vec<&VolumeMount> = record
        .volume_mounts
        .iter()
        .filter(|m| m.anonymous)
        .collect();
    if anonymous.is_empty() {
        return Ok(Vec::new());
    }
    let volumes = VolumeStore::open(store_root)?;
    let containers = ContainerStore::open(store_root)?;
    let lock = volumes.lock()?;
    let others: Vec<Record> = containers
        .list()?
        .into_iter()
        .filter(|r| r.id != record.id)
        .collect();
    let users = users(&others);
    let mut removed = Vec::new();
    for m in anonymous {
        if users.contains_key(m.name.as_str()) {
            tracing::debug!("keeping volume {}: another container uses it", m.name);
            continue;
        }
        if volumes.get(&m.name)?.is_none() {
            continue;
        }
        volumes.remove(&lock, &m.name)?;
        removed.push(m.name.clone());
    }
    Ok(removed)
}

/// Removes the anonymous volumes of a container that is gone, reporting (not
/// failing on) errors: used where the container's removal itself succeeded.
pub fn remove_anonymous_or_warn(store_root: &Path, record: &Record) {
    if let Err(e) = remove_anonymous(store_root, record) {
        eprintln!(
            "ccrun: removing the anonymous volumes of {}: {}",
            record.short_id(),
            crate::exit::one_line(&e)
        );
    }
}
