//! Images made on this machine rather than pulled (`build`, `commit`, `import`): a
//! layer tarball added to the store, and an image record written over a config and
//! layers that are already there.
//!
//! The store keeps layers unpacked, not as tarballs, so the manifest of a local
//! image names each layer by its uncompressed digest (its diff-id) with the media
//! type of an uncompressed OCI layer; [`crate::layer_writer::write_layer`] gives the
//! same tarball back from the stored layer when it is needed (push, save).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer_writer::{write_layer_excluding, WriteOptions, WrittenLayer};
use crate::limits::Limits;
use crate::reference::Reference;
use crate::store::{ImageRecord, Store, StoreLock};

/// The media type of an uncompressed OCI layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Adds the (uncompressed) layer tarball `input` to the store, unpacked like a
/// pulled layer; returns its diff-id. A layer already stored is kept as it is.
pub fn store_layer<R: Read>(store: &Store, lock: &StoreLock, input: R) -> Result<Digest> {
    let tmp = store.tmp_dir(lock, "local-layer")?;
    // Recorded, so that push and save give this very tarball back.
    let record = tmp.with_extension("tar-split");
    let limits = Limits::from_env(store.dir())?;
    let meter = limits.meter("local layer");
    let warn = |m: String| tracing::warn!("{m}");
    let input = BufReader::with_capacity(256 * 1024, input);
    let result =
        crate::layers::unpack_recorded(input, &tmp, &record, &meter, &warn).and_then(|u| {
            store.commit_layer(lock, &tmp, Some(&record), &u.diff_id, false)?;
            Ok(u.diff_id)
        });
    if result.is_err() {
        crate::layers::discard(&tmp, &record);
    }
    result
}

/// Writes `dir` (an overlayfs upper directory, see [`crate::layer_writer`]) as a layer
/// tarball into the store's `tmp/` and adds it to the store. Returns what was written
/// (the diff-id and the tarball's size, for the manifest).
pub fn capture_layer(
    store: &Store,
    lock: &StoreLock,
    dir: &Path,
    opts: &WriteOptions,
) -> Result<WrittenLayer> {
    capture_layer_excluding(store, lock, dir, opts, &[])
}

/// [`capture_layer`] without the paths `exclude` (see
/// [`crate::layer_writer::write_layer_excluding`]).
pub fn capture_layer_excluding(
    store: &Store,
    lock: &StoreLock,
    dir: &Path,
    opts: &WriteOptions,
    exclude: &[std::path::PathBuf],
) -> Result<WrittenLayer> {
    let tmp = store.tmp_dir(lock, "capture")?;
    let result = (|| {
        let path = tmp.join("layer.tar");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("creating", &path)?;
        let written =
            write_layer_excluding(dir, std::io::BufWriter::new(&mut file), opts, exclude)?;
        file.rewind().ctx("rewinding", &path)?;
        let diff_id = store_layer(store, lock, &mut file)?;
        written.diff_id.verify(&diff_id, "captured layer")?;
        Ok(written)
    })();
    let _ = crate::fsutil::remove_tree(&tmp);
    result
}

/// A layer of a local image: its diff-id and the size of its tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLayer {
    /// Digest of the uncompressed tarball.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tarball.
    pub size: u64,
}

/// An image to record: its config as it will be stored (its digest is the image id)
/// and its layers, which must be in the store already.
#[derive(Debug, Clone)]
pub struct LocalImage<'a> {
    /// The image config JSON, byte for byte.
    pub config: &'a [u8],
    /// Layers, lowest first, in the order of the config's `rootfs.diff_ids`.
    pub layers: &'a [LocalLayer],
    /// Names to tag it with (`app:1`, normalised like any reference).
    pub names: &'a [String],
}

/// Writes the config and an OCI manifest for it as blobs and records the image,
/// tagged with `names` (which move to it from any image that had them). Returns
/// the record; its `id` is the config's digest.
pub fn commit_image(
    store: &Store,
    lock: &StoreLock,
    image: &LocalImage<'_>,
) -> Result<ImageRecord> {
    let config: serde_json::Value =
        serde_json::from_slice(image.config).map_err(|e| Error::InvalidContent {
            what: "image config".into(),
            message: e.to_string(),
        })?;
    let diff_ids: Vec<&str> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    let listed: Vec<String> = image.layers.iter().map(|l| l.diff_id.to_string()).collect();
    if diff_ids != listed {
        return Err(Error::InvalidContent {
            what: "image config".into(),
            message: "rootfs.diff_ids do not list the image's layers".into(),
        });
    }
    let mut size = 0;
    for layer in image.layers {
        if !store.has_layer(&layer.diff_id) {
            return Err(Error::InvalidContent {
                what: "local image".into(),
                message: format!("layer {} is not in the store", layer.diff_id),
            });
        }
        size += crate::fsutil::tree_size(&store.layer_dir(&layer.diff_id));
    }
    let names = image
        .names
        .iter()
        .map(|n| Reference::parse(n).map(|r| r.to_string()))
        .collect::<Result<Vec<_>>>()?;
    let config_digest = Digest::of(image.config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": image.config.len(),
        },
        "layers": image.layers.iter().map(|l| serde_json::json!({
            "mediaType": LAYER_TAR,
            "digest": l.diff_id.to_string(),
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::InvalidContent {
        what: "manifest".into(),
        message: e.to_string(),
    })?;
    let manifest_digest = Digest::of(&manifest_bytes);
    store.write_blob(lock, &config_digest, image.config)?;
    store.write_blob(lock, &manifest_digest, &manifest_bytes)?;
    let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let platform = match (text("os"), text("architecture"), text("variant")) {
        (Some(os), Some(arch), Some(v)) => format!("{os}/{arch}/{v}"),
        (Some(os), Some(arch), None) => format!("{os}/{arch}"),
        _ => crate::Platform::host().to_string(),
    };
    let pulled_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    store.put_record(
        lock,
        ImageRecord {
            id: config_digest,
            manifest_digest,
            index_digest: None,
            names,
            repo_digests: Vec::new(),
            layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size,
            created: text("created"),
            platform,
            pulled_at,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_layer_and_image_are_stored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("root")).expect("store");
        let upper = tmp.path().join("upper");
        std::fs::create_dir_all(upper.join("app")).expect("mkdir");
        std::fs::write(upper.join("app/hello"), b"hi\n").expect("write");
        let lock = store.lock().expect("lock");
        let written =
            capture_layer(&store, &lock, &upper, &WriteOptions::default()).expect("capture");
        assert!(store.has_layer(&written.diff_id));
        let hello = store.layer_dir(&written.diff_id).join("app/hello");
        assert_eq!(std::fs::read(hello).expect("read"), b"hi\n");
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [written.diff_id.to_string()]},
        }))
        .expect("json");
        let layers = [LocalLayer {
            diff_id: written.diff_id.clone(),
            size: written.size,
        }];
        let record = commit_image(
            &store,
            &lock,
            &LocalImage {
                config: &config,
                layers: &layers,
                names: &["built:1".to_string()],
            },
        )
        .expect("commit");
        assert_eq!(record.names, ["docker.io/library/built:1"]);
        let image = store.resolve("built:1").expect("resolve").expect("found");
        assert_eq!(image.record.id, Digest::of(&config));
        assert_eq!(image.layer_dirs, [store.layer_dir(&written.diff_id)]);
    }
}
