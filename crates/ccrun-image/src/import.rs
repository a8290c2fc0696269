//! Images made here from files: `import` (a filesystem tarball as a one-layer image)
//! and `commit` (a container's changes over its image as one more layer). Both take
//! Dockerfile instructions to change the config ([`crate::changes`]) and a history
//! comment, and are stored as [`crate::local`] images.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer_writer::WriteOptions;
use crate::layers;
use crate::local::{self, LocalImage, LocalLayer};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{ImageRecord, Store, StoreLock};
use crate::{changes, decompress};

/// What `import` and `commit` add to the image.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Dockerfile instructions for the config (`--change`), in order.
    pub changes: Vec<String>,
    /// The comment of the new history entry (`-m`).
    pub message: Option<String>,
    /// The image's author (`commit -a`).
    pub author: Option<String>,
    /// The name to give the image, if any (`REPOSITORY[:TAG]`).
    pub name: Option<Reference>,
}

impl Options {
    fn names(&self) -> Vec<String> {
        self.name.iter().map(|n| n.to_string()).collect()
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn to_bytes(config: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(config).map_err(|e| Error::InvalidContent {
        what: "image config".into(),
        message: e.to_string(),
    })
}

/// `import`: the filesystem tarball `input` (plain, gzip or zstd) as a one-layer
/// image for this host's platform. `source` names where it came from, for the
/// history entry (`Imported from -`) when no message is given.
pub fn import<R: Read>(
    store: &Store,
    input: R,
    source: &str,
    options: &Options,
) -> Result<ImageRecord> {
    let lock = store.lock()?;
    let decoder =
        decompress::decoder(BufReader::with_capacity(256 * 1024, input)).map_err(|source| {
            Error::Stream {
                what: "the archive to import".into(),
                source,
            }
        })?;
    let mut counted = Counted {
        inner: decoder,
        count: 0,
    };
    let diff_id = local::store_layer(store, &lock, &mut counted)?;
    let layer = LocalLayer {
        diff_id: diff_id.clone(),
        size: counted.count,
    };
    let platform = Platform::host();
    let created = now();
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{
            "created": created,
            "comment": options.message.clone().unwrap_or_else(|| format!("Imported from {source}")),
        }],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    changes::apply(&mut config, &options.changes)?;
    let config = to_bytes(&config)?;
    local::commit_image(
        store,
        &lock,
        &LocalImage {
            config: &config,
            layers: &[layer],
            names: &options.names(),
        },
    )
}

/// The container whose changes `commit` stores.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    /// Its image, the new one's parent.
    pub parent: &'a Digest,
    /// Its snapshot's upper directory.
    pub upper: &'a Path,
    /// How to write the layer (owners unshifted from its user namespace).
    pub write: WriteOptions,
    /// Paths (relative to `upper`) left out: the engine's mount points.
    pub exclude: Vec<PathBuf>,
    /// Its own settings (`Env`, `Cmd`, `Entrypoint`, … as in the config's `config`
    /// object; null removes one), put over the parent's.
    pub run: Map<String, Value>,
    /// The history entry's command.
    pub created_by: String,
}

/// `commit`: the container's changes as a new layer over its image, with the
/// parent's config under the container's settings and then the changes.
pub fn commit(
    store: &Store,
    lock: &StoreLock,
    container: &Container<'_>,
    options: &Options,
) -> Result<ImageRecord> {
    let parent = container.parent;
    let image = store
        .resolve(&parent.to_string())?
        .ok_or_else(|| Error::ImageNotFound(format!("{parent} (the container's image)")))?;
    let parent_bytes = store
        .read_blob(&image.record.id)?
        .ok_or_else(|| Error::ImageNotFound(format!("config of {parent}")))?;
    let mut config: Value =
        serde_json::from_slice(&parent_bytes).map_err(|e| Error::InvalidContent {
            what: format!("config of {parent}"),
            message: e.to_string(),
        })?;
    let mut layers_of = Vec::with_capacity(image.record.layers.len() + 1);
    for diff_id in &image.record.layers {
        layers_of.push(LocalLayer {
            diff_id: diff_id.clone(),
            size: layers::tar_size(store, diff_id)?,
        });
    }
    let written = local::capture_layer_excluding(
        store,
        lock,
        container.upper,
        &container.write,
        &container.exclude,
    )?;
    layers_of.push(LocalLayer {
        diff_id: written.diff_id.clone(),
        size: written.size,
    });

    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    if let Some(object) = config["config"].as_object_mut() {
        for (k, v) in &container.run {
            if v.is_null() {
                object.remove(k);
            } else {
                object.insert(k.clone(), v.clone());
            }
        }
    }
    changes::apply(&mut config, &options.changes)?;
    let created = now();
    config["created"] = json!(created);
    match &options.author {
        Some(a) => config["author"] = json!(a),
        None => {
            if let Some(o) = config.as_object_mut() {
                o.remove("author");
            }
        }
    }
    config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers_of.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
    });
    let mut step = json!({"created": created, "created_by": container.created_by});
    if let Some(a) = &options.author {
        step["author"] = json!(a);
    }
    if let Some(m) = &options.message {
        step["comment"] = json!(m);
    }
    match config.get_mut("history").and_then(Value::as_array_mut) {
        Some(history) => history.push(step),
        None => config["history"] = json!([step]),
    }
    let config = to_bytes(&config)?;
    local::commit_image(
        store,
        lock,
        &LocalImage {
            config: &config,
            layers: &layers_of,
            names: &options.names(),
        },
    )
}

/// Opens an `http://` or `https://` URL to import from.
pub fn fetch(url: &str) -> Result<impl Read> {
    let agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_per_read(Some(std::time::Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("ccrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let resp = agent.get(url).call().map_err(|e| Error::Http {
        context: format!("GET {url}"),
        source: Box::new(e),
    })?;
    if !resp.status().is_success() {
        return Err(Error::Stream {
            what: format!("GET {url}"),
            source: io::Error::other(format!("HTTP {}", resp.status())),
        });
    }
    Ok(resp.into_body().into_reader())
}

/// Counts what is read through it.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
