//! The volume store: `<root>/volumes/<name>/` holds a volume's metadata
//! (`volume.json`) and its content (`_data/`, what containers see). Volumes appear and
//! disappear by an atomic rename under a store-wide `flock`, so a crash never leaves a
//! half-made volume and concurrent ccrun commands never hand out a name twice.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::containers::record::write_atomic;
use crate::storage::FileLock;

/// File name of a volume's metadata inside its directory.
pub const METADATA_FILE: &str = "volume.json";
/// Directory holding a volume's content inside its directory.
pub const DATA_DIR: &str = "_data";
/// The label Docker puts on anonymous volumes; `volume prune` without `-a` removes
/// only volumes carrying it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Prefix of directories being created or removed (never a valid volume name).
const TMP_PREFIX: &str = ".tmp-";
const REMOVING_PREFIX: &str = ".rm-";

/// A volume's metadata, as stored in `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Unique name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`, or 64 hex digits for anonymous ones).
    pub name: String,
    /// Creation time, RFC 3339 (seconds).
    pub created_at: String,
    /// `--label` values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (none are supported yet; kept for `inspect`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Never mounted into a container yet: the first container that mounts it seeds it
    /// from its image (when empty) and gives its top directory to the container's root.
    #[serde(default)]
    pub fresh: bool,
}

impl Volume {
    /// Whether the volume was made for one container (image `Volumes`, `-v /path`).
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// The volume store under a storage root.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    dir: PathBuf,
}

/// Checks a volume name the way Docker does for the local driver.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || name.len() < 2 || name.len() > 255 {
        bail!(
            "{name:?} includes invalid characters for a local volume name, only \
             \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed (at least two); if you intended \
             to pass a host directory, use an absolute path"
        );
    }
    Ok(())
}

impl VolumeStore {
    /// Opens (creating if needed) `<root>/volumes`, in the storage root, which ccrun keeps
    /// closed to other host users (see [`crate::storage::make_private_root`]): a volume's data may hold
    /// a container's set-user-id files and device nodes.
    pub fn open(root: &Path) -> Result<VolumeStore> {
        let dir = root.join("volumes");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(VolumeStore { dir })
    }

    /// Takes the store lock, waiting for other ccrun processes. The lock file's name
    /// starts with a dot, so it can never be taken for a volume.
    pub fn lock(&self) -> Result<FileLock> {
        crate::storage::lock_exclusive(&self.dir.join(".lock"))
    }

    /// The storage root the store lives in (for the event log).
    fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// The directory of volume `name`.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What containers see of volume `name`: its `_data` directory.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir_of(name).join(DATA_DIR)
    }

    /// The metadata of volume `name`; `None` if there is no such volume.
    pub fn get(&self, name: &str) -> Result<Option<Volume>> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let path = self.dir_of(name).join(METADATA_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Every volume, by name. Unreadable metadata is reported and skipped.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_err() || !entry.path().is_dir() {
                continue;
            }
            match self.get(&name) {
                Ok(Some(volume)) => out.push(volume),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping volume {name}: {e:#}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates volume `name` with an empty `_data` (owned by host root, mode 0755, as
    /// Docker makes them); fails if it exists. Built in a temporary directory and
    /// renamed into place, so it appears complete or not at all.
    pub fn create(
        &self,
        _lock: &FileLock,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume> {
        validate_name(name)?;
        if self.dir_of(name).exists() {
            bail!("volume {name} already exists");
        }
        let volume = Volume {
            name: name.to_string(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels,
            options: BTreeMap::new(),
            fresh: true,
        };
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}",
            &crate::containers::store::new_container_id()?[..16]
        ));
        let built = self.build(&tmp, &volume).and_then(|()| {
            fs::rename(&tmp, self.dir_of(name))
                .with_context(|| format!("renaming {} into place", tmp.display()))
        });
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("creating volume {name}"));
        }
        crate::events::object(self.root(), "volume", "create", name, name);
        Ok(volume)
    }

    fn build(&self, tmp: &Path, volume: &Volume) -> Result<()> {
        let mut dirs = fs::DirBuilder::new();
        dirs.mode(0o700);
        dirs.create(tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let data = tmp.join(DATA_DIR);
        dirs.mode(0o755)
            .create(&data)
            .with_context(|| format!("creating {}", data.display()))?;
        // The umask may have taken bits away.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", data.display()))?;
        save_metadata(tmp, volume)
    }

    /// Rewrites the metadata of an existing volume.
    pub fn save(&self, _lock: &FileLock, volume: &Volume) -> Result<()> {
        save_metadata(&self.dir_of(&volume.name), volume)
    }

    /// Deletes volume `name` and its content: it disappears at once (renamed aside),
    /// then its files are removed. Returns the bytes freed.
    pub fn remove(&self, _lock: &FileLock, name: &str) -> Result<u64> {
        validate_name(name)?;
        let dir = self.dir_of(name);
        let aside = self.dir.join(format!(
            "{REMOVING_PREFIX}{}",
            &crate::containers::store::new_container_id()?[..16]
        ));
        match fs::rename(&dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => bail!("no such volume: {name}"),
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        crate::events::object(self.root(), "volume", "destroy", name, name);
        let size = ccrun_image::tree_size(&aside);
        fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
        Ok(size)
    }

    /// Removes what a crash left behind: volumes half created or half removed.
    pub fn sweep(&self, _lock: &FileLock) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || name.starts_with(REMOVING_PREFIX) {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!("removing {}: {e}", entry.path().display());
                }
            }
        }
    }
}

fn save_metadata(dir: &Path, volume: &Volume) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(volume).context("serialising volume metadata")?;
    write_atomic(&dir.join(METADATA_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        for good in ["ab", "my-vol", "a.b_c-1", "0abc", &"f".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "a", "", "-ab", ".ab", "_ab", "a/b", "a b", "../x", "/abs", "é1",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_list_remove() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = VolumeStore::open(tmp.path()).expect("open");
        let lock = store.lock().expect("lock");
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let v = store.create(&lock, "data", labels).expect("create");
        assert!(v.fresh && !v.is_anonymous());
        assert!(store.data_dir("data").is_dir());
        assert!(store.create(&lock, "data", BTreeMap::new()).is_err());
        let mut anon = BTreeMap::new();
        anon.insert(ANONYMOUS_LABEL.to_string(), String::new());
        assert!(store
            .create(&lock, "anon1", anon)
            .expect("create")
            .is_anonymous());
        let names: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, ["anon1", "data"]);
        assert_eq!(store.get("data").expect("get"), Some(v));
        store.remove(&lock, "data").expect("remove");
        assert!(store.get("data").expect("get").is_none());
        assert!(store.remove(&lock, "data").is_err());
        assert!(!store.dir_of("data").exists());
        // Nothing is left aside.
        store.sweep(&lock);
        let left: Vec<_> = fs::read_dir(tmp.path().join("volumes"))
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}"); // anon1 and the lock
                                               // "lock" is a volume name like any other.
        store
            .create(&lock, "lock", BTreeMap::new())
            .expect("create");
        assert!(store.get("lock").expect("get").is_some());
    }
}
