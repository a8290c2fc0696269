//! The build cache: one small JSON file per step under `<root>/build/cache/`, named
//! by the step's key. A key is the SHA-256 of the parent step's key, the instruction
//! as it will run (variables expanded), and what else decides its result: the
//! content of the files a COPY or ADD copies (paths, modes, bytes; not times), the
//! build arguments and environment a RUN sees, its mounts and network. As in
//! BuildKit, a changed input invalidates that step and every step after it, and
//! nothing before. An entry records the layer the step made (kept in the image
//! store, which leaves layers named here alone when it collects garbage) and when it
//! was made, so a fully cached build gives the same image id again.

use std::path::{Path, PathBuf};

use ccrun_image::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result};

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The layer made, if any.
    pub layer: Option<CachedLayer>,
    /// When the step ran (RFC 3339), for the history.
    pub created: String,
}

/// A layer in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Its diff-id (the store keeps it unpacked under this name).
    pub diff_id: Digest,
    /// Bytes of its tarball.
    pub size: u64,
}

/// The cache directory of a storage root.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Builds a step key from its parts.
#[derive(Clone)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// A key below `parent`.
    pub fn new(parent: &str) -> KeyBuilder {
        let mut h = Sha256::new();
        h.update(parent.as_bytes());
        h.update(b"\0");
        KeyBuilder(h)
    }

    /// Adds a part (length-prefixed, so parts never run into each other).
    pub fn part(mut self, bytes: impl AsRef<[u8]>) -> KeyBuilder {
        let b = bytes.as_ref();
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    /// The key, 64 hex digits.
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Cache {
    /// The cache of the storage root `root` (created when first written).
    pub fn new(root: &Path) -> Cache {
        Cache {
            dir: root.join("build").join("cache"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The entry for `key`, if any (an unreadable entry is a miss).
    pub fn get(&self, key: &str) -> Option<Entry> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records `entry` under `key` (atomically: a temp file renamed into place).
    pub fn put(&self, key: &str, entry: &Entry) -> Result<()> {
        std::fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        let path = self.path(key);
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        let bytes = serde_json::to_vec(entry).map_err(|e| crate::Error::Context {
            message: format!("encoding a cache entry: {e}"),
        })?;
        std::fs::write(&tmp, bytes).ctx("writing", &tmp)?;
        std::fs::rename(&tmp, &path).ctx("writing", &path)
    }

    /// Every layer the cache names (kept by the image store's garbage collection).
    pub fn layers(&self) -> Vec<Digest> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Entry>(&b).ok())
            .filter_map(|e| e.layer.map(|l| l.diff_id))
            .collect()
    }

    /// Removes every entry and the RUN cache mounts; returns how many entries went.
    /// The layers they named are freed by the store's next garbage collection.
    pub fn prune(&self) -> Result<usize> {
        let mut removed = 0;
        if let Ok(dir) = std::fs::read_dir(&self.dir) {
            for e in dir.flatten() {
                std::fs::remove_file(e.path()).ctx("removing", e.path())?;
                removed += 1;
            }
        }
        let mounts = mounts_dir(self.dir.parent().unwrap_or(&self.dir));
        match std::fs::remove_dir_all(&mounts) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("removing", mounts),
        }
        Ok(removed)
    }
}

/// Where `RUN --mount=type=cache` directories live, under `<root>/build`.
pub(crate) fn mounts_dir(build_dir: &Path) -> PathBuf {
    build_dir.join("mounts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_entries_and_prune() {
        let a = KeyBuilder::new("p").part("ab").part("c").finish();
        let b = KeyBuilder::new("p").part("a").part("bc").finish();
        assert_ne!(a, b, "parts are delimited");
        assert_eq!(a.len(), 64);
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(tmp.path());
        assert!(cache.get(&a).is_none());
        let entry = Entry {
            layer: Some(CachedLayer {
                diff_id: Digest::of(b"x"),
                size: 3,
            }),
            created: "t".into(),
        };
        cache.put(&a, &entry).expect("put");
        assert_eq!(cache.get(&a), Some(entry));
        assert_eq!(cache.layers(), [Digest::of(b"x")]);
        assert_eq!(cache.prune().expect("prune"), 1);
        assert!(cache.get(&a).is_none());
    }
}
