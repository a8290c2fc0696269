//! `push`: an image of the store to a registry, uploading only what the registry
//! lacks, with the manifest last.
//!
//! For each layer, the compressed blobs known to hold it are tried first: those of
//! the manifests in the store (what was pulled) and those earlier pushes made
//! (`<root>/image/blob-cache.json`, Docker's "v2 metadata"). A blob the repository
//! already has (`HEAD`) is not sent again; one another repository of the same
//! registry has is mounted from there (`POST …/blobs/uploads/?mount=&from=`).
//! Only then is the layer's tar written again from the store (byte for byte, see
//! [`crate::tar_split`]), gzip-compressed on every core into an unnamed temporary
//! file, and uploaded: a blob no larger than the chunk size in one `PUT` once it is
//! made (after a `HEAD`, its digest being known by then), a larger one in `PATCH`
//! chunks with `Content-Range` while it is being compressed, so that the upload
//! overlaps the compression (its digest is known only at the end, so it goes up
//! without a `HEAD`, as Docker's do; a later push knows it from the blob cache). A
//! chunk that fails is sent again from where the registry says it has the upload
//! (`GET` of the upload's `Range`); an upload the registry lost is started again.
//!
//! The manifest keeps the schema the image was stored with (Docker's v2s2 or OCI).
//! When every layer went as the stored manifest describes it, those very bytes are
//! pushed, so the digest stays the one the image was pulled by.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use ureq::http::Response;
use ureq::Body;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::gzip;
use crate::layers::LayerTar;
use crate::manifest::{self, LayerCompression, Schema};
use crate::reference::Reference;
use crate::registry::{backoff, retryable_status, ClientOptions, Payload, RegistryClient};
use crate::store::{Image, Store};

/// How often a request that failed on the way (a reset, a 5xx) is tried again.
const MAX_ATTEMPTS: u32 = 5;
/// How often one chunk may fail before the upload is given up.
const MAX_CHUNK_RETRIES: u32 = 5;
/// At most this many other repositories are asked for in the token, to mount from.
const MAX_MOUNT_SOURCES: usize = 8;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Registries allowed over plain HTTP besides localhost.
    pub insecure_registries: Vec<String>,
    /// Blobs larger than this go up in `PATCH` chunks of this size; others in one
    /// `PUT`. 0: always in one `PUT`.
    pub chunk_size: u64,
    /// How many layers are handled at once.
    pub jobs: usize,
    /// The gzip level (0–9) of layers that must be compressed.
    pub compression_level: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            insecure_registries: Vec::new(),
            chunk_size: 8 << 20,
            jobs: 3,
            compression_level: gzip::DEFAULT_LEVEL,
        }
    }
}

/// Receives progress events (from several threads); the CLI prints Docker's lines.
pub trait PushProgress: Sync {
    /// Layer `index` (shown as `id`) is about to be pushed.
    fn layer(&self, _index: usize, _id: &str) {}
    /// The repository already has layer `index`.
    fn exists(&self, _index: usize) {}
    /// Layer `index` was mounted from repository `from` of the same registry.
    fn mounted(&self, _index: usize, _from: &str) {}
    /// Layer `index` is being uploaded: `size` bytes of compressed blob, `None` while
    /// it is still being compressed (it goes up as it is made).
    fn uploading(&self, _index: usize, _size: Option<u64>) {}
    /// `bytes` more of layer `index` were uploaded.
    fn advance(&self, _index: usize, _bytes: u64) {}
    /// Layer `index` was uploaded.
    fn pushed(&self, _index: usize) {}
    /// A non-fatal event worth saying (a chunk sent again, a changed image id).
    fn warn(&self, _message: &str) {}
}

/// A [`PushProgress`] that reports nothing.
pub struct Quiet;
impl PushProgress for Quiet {}

/// What a push made.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest in the registry.
    pub digest: Digest,
    /// The manifest's length.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The image config's digest pushed (the image id, unless a layer had to be
    /// written anew without its tar-split record).
    pub config: Digest,
}

/// Pushes image `source` of `store` to `target` (`registry/repo:tag`, or
/// `registry/repo@digest` to push by digest).
pub fn push(
    store: &Store,
    source: &str,
    target: &Reference,
    options: &PushOptions,
    progress: &dyn PushProgress,
) -> Result<Pushed> {
    let image = store
        .resolve(source)?
        .ok_or_else(|| Error::ImageNotFound(source.to_string()))?;
    let manifest_bytes = store
        .read_blob(&image.record.manifest_digest)?
        .ok_or_else(|| missing(store, &image, "manifest"))?;
    let config_bytes = store
        .read_blob(&image.record.id)?
        .ok_or_else(|| missing(store, &image, "config"))?;
    let stored: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).map_err(|e| Error::InvalidContent {
            what: format!("manifest {}", image.record.manifest_digest),
            message: e.to_string(),
        })?;
    let schema = Schema::of(&stored);
    let candidates = candidates(store, &image)?;
    let target_repo = target.name();
    let mut sources: Vec<String> = Vec::new();
    for c in candidates.iter().flatten() {
        for repo in &c.repositories {
            if let Ok(r) = Reference::parse(repo) {
                let name = r.repository().to_string();
                if r.registry() == target.registry()
                    && r.name() != target_repo
                    && !sources.contains(&name)
                    && sources.len() < MAX_MOUNT_SOURCES
                {
                    sources.push(name);
                }
            }
        }
    }
    let credentials = crate::auth::stored_credentials(target.registry())?;
    let client = RegistryClient::connect_push(
        target,
        &ClientOptions {
            insecure_registries: options.insecure_registries.clone(),
            credentials,
            mirrors: Vec::new(),
        },
        &sources,
    )?;
    let pusher = Pusher {
        store,
        client: &client,
        target,
        schema,
        options,
        progress,
        failed: AtomicBool::new(false),
    };
    for (index, diff_id) in image.record.layers.iter().enumerate() {
        progress.layer(index, &diff_id.hex()[..12]);
    }
    let outcomes = pusher.layers(&image, &candidates)?;

    // A layer written anew (no tar-split record) has another diff-id: the config
    // that lists them changes, and with it the image id.
    let diff_ids: Vec<String> = outcomes.iter().map(|o| o.diff_id.to_string()).collect();
    let config_bytes = if outcomes
        .iter()
        .zip(&image.record.layers)
        .all(|(o, d)| &o.diff_id == d)
    {
        config_bytes
    } else {
        let mut config: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| Error::InvalidContent {
                what: format!("config {}", image.record.id),
                message: e.to_string(),
            })?;
        config["rootfs"]["diff_ids"] = serde_json::json!(diff_ids);
        let bytes = serde_json::to_vec(&config).map_err(|e| Error::InvalidContent {
            what: "config".into(),
            message: e.to_string(),
        })?;
        progress.warn(&format!(
            "some layers were stored without a tar-split record and were written anew: \
             the pushed image id is {}, not {}",
            Digest::of(&bytes),
            image.record.id
        ));
        bytes
    };
    let config_digest = Digest::of(&config_bytes);
    pusher.small_blob(&config_digest, &config_bytes, "config")?;

    let descriptors: Vec<&Descriptor> = outcomes.iter().map(|o| &o.descriptor).collect();
    let (manifest_bytes, media_type) =
        if config_digest == image.record.id && same_layers(&stored, &descriptors) {
            (manifest_bytes, schema.manifest_type().to_string())
        } else {
            new_manifest(
                &stored,
                schema,
                &config_digest,
                config_bytes.len(),
                &descriptors,
            )?
        };
    let digest = pusher.manifest(&manifest_bytes, &media_type)?;
    remember(store, &image, &outcomes, target, &digest);
    Ok(Pushed {
        digest,
        size: manifest_bytes.len() as u64,
        media_type,
        config: config_digest,
    })
}

fn missing(store: &Store, image: &Image, what: &str) -> Error {
    Error::InvalidContent {
        what: format!("image {} in {}", image.record.id, store.dir().display()),
        message: format!("{what} blob missing"),
    }
}

/// A layer blob as a manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest of the blob.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
}

/// A compressed blob known to hold a layer, and where it has been seen.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Candidate {
    #[serde(flatten)]
    descriptor: Descriptor,
    /// Repositories (`registry/repo`) that have it.
    repositories: Vec<String>,
}

/// The blobs known to hold each layer of `image`: from every stored image's manifest
/// that lists the same layer, and from earlier pushes.
fn candidates(store: &Store, image: &Image) -> Result<Vec<Vec<Candidate>>> {
    let mut known: BTreeMap<Digest, Vec<Candidate>> = BTreeMap::new();
    let mut add = |diff_id: &Digest, c: Candidate| {
        let list = known.entry(diff_id.clone()).or_default();
        match list
            .iter_mut()
            .find(|k| k.descriptor.digest == c.descriptor.digest)
        {
            Some(k) => {
                for r in c.repositories {
                    if !k.repositories.contains(&r) {
                        k.repositories.push(r);
                    }
                }
            }
            None => list.push(c),
        }
    };
    for record in store.list()? {
        let Ok(Some(other)) = store.resolve(&record.id.to_string()) else {
            continue;
        };
        let repositories: Vec<String> = other
            .record
            .names
            .iter()
            .chain(&other.record.repo_digests)
            .filter_map(|n| Reference::parse(n).ok())
            .map(|r| r.name())
            .collect();
        for (desc, diff_id) in other.manifest.layers().iter().zip(&other.record.layers) {
            let Ok(digest) = Digest::parse(desc.digest().as_ref()) else {
                continue;
            };
            add(
                diff_id,
                Candidate {
                    descriptor: Descriptor {
                        media_type: desc.media_type().to_string(),
                        digest,
                        size: desc.size(),
                    },
                    repositories: repositories.clone(),
                },
            );
        }
    }
    for (diff_id, list) in BlobCache::load(store).layers {
        for c in list {
            add(&diff_id, c);
        }
    }
    Ok(image
        .record
        .layers
        .iter()
        .map(|d| known.get(d).cloned().unwrap_or_default())
        .collect())
}

/// How one layer went.
struct Outcome {
    descriptor: Descriptor,
    /// The diff-id of what was pushed (another than the stored one only for a layer
    /// written anew).
    diff_id: Digest,
    /// A blob this push compressed (to remember for later pushes).
    compressed: Option<Descriptor>,
}

struct Pusher<'a> {
    store: &'a Store,
    client: &'a RegistryClient,
    target: &'a Reference,
    schema: Schema,
    options: &'a PushOptions,
    progress: &'a dyn PushProgress,
    /// Set by the first layer that fails, to stop the others.
    failed: AtomicBool,
}

impl Pusher<'_> {
    /// Pushes the layers, `jobs` at a time; the first failure stops the others.
    fn layers(&self, image: &Image, candidates: &[Vec<Candidate>]) -> Result<Vec<Outcome>> {
        let count = image.record.layers.len();
        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<Result<Outcome>>>> =
            Mutex::new((0..count).map(|_| None).collect());
        let workers = self.options.jobs.clamp(1, count.max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    if self.failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let index = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    if index >= count {
                        return;
                    }
                    let diff_id = &image.record.layers[index];
                    let result = self.layer(index, diff_id, &candidates[index]);
                    if result.is_err() {
                        self.failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut outcomes = Vec::with_capacity(count);
        let mut first_error = None;
        for r in results {
            match r {
                Some(Ok(o)) => outcomes.push(o),
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if outcomes.len() == count => Ok(outcomes),
            None => Err(self.error("a layer upload thread failed".to_string())),
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Registry {
            registry: self.client.host().to_string(),
            message,
        }
    }

    /// The media type a candidate has in this push's schema, if it can be used.
    fn usable(&self, c: &Candidate) -> Option<Descriptor> {
        let compression = manifest::layer_compression(&c.descriptor.media_type)?;
        // An uncompressed layer goes up compressed, as Docker and podman push them.
        if compression == LayerCompression::None {
            return None;
        }
        Some(Descriptor {
            media_type: self.schema.layer_type(compression)?.to_string(),
            ..c.descriptor.clone()
        })
    }

    fn layer(&self, index: usize, diff_id: &Digest, candidates: &[Candidate]) -> Result<Outcome> {
        let usable: Vec<(Descriptor, &Candidate)> = candidates
            .iter()
            .filter_map(|c| self.usable(c).map(|d| (d, c)))
            .collect();
        let found = |descriptor: Descriptor| Outcome {
            descriptor,
            diff_id: diff_id.clone(),
            compressed: None,
        };
        for (d, _) in &usable {
            if self.has_blob(&d.digest)? {
                self.progress.exists(index);
                return Ok(found(d.clone()));
            }
        }
        let mut session = None;
        for (d, c) in &usable {
            for repo in &c.repositories {
                let Ok(from) = Reference::parse(repo) else {
                    continue;
                };
                if from.registry() != self.target.registry() || from.name() == self.target.name() {
                    continue;
                }
                match self.mount(&d.digest, from.repository())? {
                    Mounted::Yes => {
                        self.progress.mounted(index, from.repository());
                        return Ok(found(d.clone()));
                    }
                    // The registry opened an upload instead: keep it for ours.
                    Mounted::No(location) => {
                        session.get_or_insert(location);
                    }
                }
            }
        }
        self.compress_and_upload(index, diff_id, session)
    }

    /// Writes the layer's tar again and uploads it compressed (see [`Pusher::pipelined`]);
    /// a tar that no longer matches its tar-split record is written anew.
    fn compress_and_upload(
        &self,
        index: usize,
        diff_id: &Digest,
        session: Option<String>,
    ) -> Result<Outcome> {
        match self.pipelined(index, LayerTar::open(self.store, diff_id)?, session) {
            Err(e @ Error::DigestMismatch { .. }) => {
                // The record no longer matches the files: write the tar anew.
                self.progress.warn(&format!("{e}; writing the layer anew"));
                self.pipelined(index, LayerTar::rewritten(self.store, diff_id)?, None)
            }
            other => other,
        }
    }

    /// Compresses `tar` into an unnamed file in the store's `tmp/` (gone with the
    /// process, whatever happens) on a thread of its own, while this one uploads what
    /// is there: a blob larger than a chunk goes up chunk by chunk as it is made, so
    /// the upload overlaps the compression; a smaller one is checked for (`HEAD`,
    /// its digest being known by then) and then sent whole.
    fn pipelined(&self, index: usize, tar: LayerTar, session: Option<String>) -> Result<Outcome> {
        let tmp = self.store.tmp_root();
        let file = tempfile::tempfile_in(&tmp).ctx("creating a temporary file in", &tmp)?;
        let growing = Growing::default();
        std::thread::scope(|s| {
            let compressor = s.spawn(|| {
                // Should the compression panic, the upload must not wait for it forever.
                let _ended = EndOnDrop(&growing);
                let result = self.compress(tar, &file, &growing);
                growing.finish(
                    result
                        .as_ref()
                        .ok()
                        .map(|(d, _)| (d.digest.clone(), d.size)),
                );
                result
            });
            let uploaded = self.upload_as_made(index, &file, &growing, session);
            // Did the upload fail on its own (not because the compression did)? Then
            // the compression is stopped, and the upload's error is the one to tell.
            let upload_failed = uploaded.is_err() && !growing.compression_failed();
            if uploaded.is_err() {
                growing.abort();
            }
            let compressed = compressor
                .join()
                .unwrap_or_else(|_| Err(self.error("the compression thread panicked".into())));
            match (compressed, uploaded) {
                (Ok((descriptor, diff_id)), Ok(())) => Ok(Outcome {
                    compressed: Some(descriptor.clone()),
                    descriptor,
                    diff_id,
                }),
                (_, Err(e)) if upload_failed => Err(e),
                // The compression's own error (a tar that no longer matches its
                // record among them) says more than the upload's "it failed".
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            }
        })
    }

    /// Compresses a layer tar into `file`, telling `growing` as it goes; returns the
    /// blob's descriptor and the tar's digest.
    fn compress(
        &self,
        mut tar: LayerTar,
        file: &File,
        growing: &Growing,
    ) -> Result<(Descriptor, Digest)> {
        let tmp = self.store.tmp_root();
        let mut out = HashingWriter::new(Notifying { file, growing });
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        gzip::compress(&mut tar, &mut out, self.options.compression_level, threads)
            .ctx("compressing a layer into", &tmp)?;
        let size = out.count();
        let (digest, _) = out.finish();
        let (diff_id, _) = tar.finish()?;
        let media_type = self
            .schema
            .layer_type(LayerCompression::Gzip)
            .unwrap_or(manifest::OCI_LAYER_GZIP)
            .to_string();
        let descriptor = Descriptor {
            media_type,
            digest,
            size,
        };
        Ok((descriptor, diff_id))
    }

    /// Uploads the blob being compressed into `file`.
    fn upload_as_made(
        &self,
        index: usize,
        file: &File,
        growing: &Growing,
        session: Option<String>,
    ) -> Result<()> {
        let chunk = self.options.chunk_size;
        let (_, whole) = growing.wait(whole_or_more_than(chunk))?;
        if let Some((digest, size)) = &whole {
            if self.has_blob(digest)? {
                self.progress.exists(index);
                return Ok(());
            }
            self.progress.uploading(index, Some(*size));
        } else {
            // Its size is known once it is made.
            self.progress.uploading(index, None);
        }
        self.upload(index, file, growing, session)?;
        self.progress.pushed(index);
        Ok(())
    }

    fn blob_url(&self, digest: &Digest) -> Result<String> {
        self.client
            .url(&format!("/v2/{}/blobs/{digest}", self.client.repository()))
    }

    /// Sends a request that may be repeated, trying again after transport errors and
    /// 5xx or 429 answers.
    fn retried(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Payload<'_>,
        what: &str,
    ) -> Result<Response<Body>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.client.request(method, url, headers, body, what) {
                Ok(resp) if retryable_status(resp.status().as_u16()) && attempt < MAX_ATTEMPTS => {
                    tracing::warn!("{what}: HTTP {}; retrying", resp.status());
                }
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    tracing::warn!("{what}: {e}; retrying");
                }
                other => return other,
            }
            std::thread::sleep(backoff(attempt));
        }
    }

    /// Whether the repository has blob `digest` (`HEAD`).
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let what = format!("checking for blob {digest}");
        let url = self.blob_url(digest)?;
        let resp = self.retried("HEAD", &url, &[], Payload::Empty, &what)?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.client.unexpected(&what, resp)),
        }
    }

    /// Asks the registry to mount blob `digest` from repository `from`.
    fn mount(&self, digest: &Digest, from: &str) -> Result<Mounted> {
        let what = format!("mounting blob {digest} from {from}");
        let url = self.client.url(&format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            self.client.repository(),
            encode(&digest.to_string()),
            encode(from)
        ))?;
        let resp = self.retried("POST", &url, &[], Payload::Empty, &what)?;
        match resp.status().as_u16() {
            201 => Ok(Mounted::Yes),
            202 => Ok(Mounted::No(self.location(&resp, &what)?)),
            // Not allowed to read the source: an ordinary upload will do.
            401 | 403 | 404 => Ok(Mounted::No(self.start_upload()?)),
            _ => Err(self.client.unexpected(&what, resp)),
        }
    }

    /// Opens an upload session; returns its URL.
    fn start_upload(&self) -> Result<String> {
        let what = format!("starting an upload to {}", self.target.name());
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/uploads/", self.client.repository()))?;
        let resp = self.retried("POST", &url, &[], Payload::Empty, &what)?;
        match resp.status().as_u16() {
            202 => self.location(&resp, &what),
            _ => Err(self.client.unexpected(&what, resp)),
        }
    }

    fn location(&self, resp: &Response<Body>, what: &str) -> Result<String> {
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.error(format!("{what}: no Location in the answer")))?;
        self.client.url(location)
    }

    /// Uploads `blob` (in `file`), starting again in a new session when the registry
    /// loses the upload or a request fails on the way. A blob no larger than a chunk
    /// (or any, with chunks off) goes up in one `PUT` once it is whole; a larger one
    /// in chunks as it is made.
    fn upload(
        &self,
        index: usize,
        file: &File,
        blob: &dyn Blob,
        mut session: Option<String>,
    ) -> Result<()> {
        let chunk = self.options.chunk_size;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = match session.take() {
                Some(l) => l,
                None => self.start_upload()?,
            };
            let (_, whole) = blob.wait(whole_or_more_than(chunk))?;
            let sent = match whole {
                Some((digest, size)) if chunk == 0 || size <= chunk => {
                    self.monolithic(index, &location, &digest, file, size)
                }
                _ => self.chunked(index, location, file, blob),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(e) if attempt < MAX_ATTEMPTS && restartable(&e) => {
                    self.progress
                        .warn(&format!("uploading a blob: {e}; starting the upload again"));
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The whole blob in the `PUT` that closes the upload.
    fn monolithic(
        &self,
        index: usize,
        location: &str,
        digest: &Digest,
        file: &File,
        size: u64,
    ) -> Result<()> {
        let what = format!("uploading blob {digest}");
        let body = Payload::File {
            file,
            offset: 0,
            len: size,
        };
        let headers = [("Content-Type", "application/octet-stream".to_string())];
        let resp =
            self.client
                .request("PUT", &with_digest(location, digest), &headers, body, &what)?;
        self.progress.advance(index, size);
        self.closed(resp, digest, &what)
    }

    /// The blob in `PATCH` chunks as they are there, then an empty `PUT` to close
    /// the upload. A chunk that fails is sent again from where the registry says the
    /// upload is.
    fn chunked(
        &self,
        index: usize,
        mut location: String,
        file: &File,
        blob: &dyn Blob,
    ) -> Result<()> {
        let chunk = self.options.chunk_size.max(1);
        let what = "uploading a blob in chunks".to_string();
        let (mut offset, mut failures) = (0u64, 0u32);
        let (digest, _) = loop {
            let (there, whole) = blob.wait(offset.saturating_add(chunk))?;
            if let Some((digest, size)) = whole.as_ref().filter(|(_, size)| offset >= *size) {
                break (digest.clone(), *size);
            }
            let len = chunk.min(there.saturating_sub(offset));
            if len == 0 {
                continue;
            }
            let headers = [
                ("Content-Type", "application/octet-stream".to_string()),
                ("Content-Range", format!("{offset}-{}", offset + len - 1)),
            ];
            let body = Payload::File { file, offset, len };
            let sent = self
                .client
                .request("PATCH", &location, &headers, body, &what);
            let failure = match sent {
                Ok(resp) if resp.status().as_u16() == 202 => {
                    location = self.location(&resp, &what)?;
                    let have = range_end(&resp).unwrap_or(offset + len);
                    self.progress.advance(index, have.saturating_sub(offset));
                    offset = have;
                    continue;
                }
                Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    return Err(self.client.unexpected(&what, resp))
                }
                Ok(resp) => format!(
                    "HTTP {}: {}",
                    resp.status(),
                    self.client.unexpected(&what, resp)
                ),
                Err(e) => e.to_string(),
            };
            failures += 1;
            if failures > MAX_CHUNK_RETRIES {
                return Err(self.error(format!(
                    "{what}: giving up after {MAX_CHUNK_RETRIES} failed chunks: {failure}"
                )));
            }
            std::thread::sleep(backoff(failures));
            // Where does the registry say the upload is? Send on from there.
            let status = self.retried("GET", &location, &[], Payload::Empty, &what)?;
            if status.status().as_u16() != 204 {
                // Lost or refused: the caller starts a new upload.
                return Err(Error::Stream {
                    what: what.clone(),
                    source: io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("the registry lost the upload ({failure})"),
                    ),
                });
            }
            let have = range_end(&status).unwrap_or(0);
            if let Some(l) = status
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
            {
                location = self.client.url(l)?;
            }
            self.progress.warn(&format!(
                "{what}: a chunk failed ({failure}); resuming at byte {have}"
            ));
            offset = have;
        };
        let what = format!("uploading blob {digest}");
        let resp = self.client.request(
            "PUT",
            &with_digest(&location, &digest),
            &[],
            Payload::Empty,
            &what,
        )?;
        self.closed(resp, &digest, &what)
    }

    /// Checks the answer to the `PUT` that closes an upload.
    fn closed(&self, resp: Response<Body>, digest: &Digest, what: &str) -> Result<()> {
        if resp.status().as_u16() != 201 {
            if resp.status().is_server_error() {
                return Err(Error::Stream {
                    what: what.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("HTTP {}", resp.status()),
                    ),
                });
            }
            return Err(self.client.unexpected(what, resp));
        }
        if let Some(said) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
        {
            digest.verify(
                &Digest::parse(said)?,
                format!("{what} (Docker-Content-Digest)"),
            )?;
        }
        Ok(())
    }

    /// A small blob (the config) in one request, unless the registry has it.
    fn small_blob(&self, digest: &Digest, bytes: &[u8], what: &str) -> Result<()> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = self.start_upload()?;
            let what = format!("uploading {what} {digest}");
            let headers = [("Content-Type", "application/octet-stream".to_string())];
            let sent = self
                .client
                .request(
                    "PUT",
                    &with_digest(&location, digest),
                    &headers,
                    Payload::Bytes(bytes),
                    &what,
                )
                .and_then(|resp| self.closed(resp, digest, &what));
            match sent {
                Err(e) if attempt < MAX_ATTEMPTS && restartable(&e) => {
                    std::thread::sleep(backoff(attempt))
                }
                other => return other,
            }
        }
    }

    /// Puts the manifest under the target's tag (or digest); returns its digest.
    fn manifest(&self, bytes: &[u8], media_type: &str) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if let Some(pinned) = self.target.digest() {
            pinned.verify(&digest, "the manifest to push (pinned by the target name)")?;
        }
        let what = format!("putting the manifest of {}", self.target);
        let url = self.client.url(&format!(
            "/v2/{}/manifests/{}",
            self.client.repository(),
            self.target.manifest_key()
        ))?;
        let headers = [("Content-Type", media_type.to_string())];
        let resp = self.retried("PUT", &url, &headers, Payload::Bytes(bytes), &what)?;
        if resp.status().as_u16() != 201 {
            return Err(self.client.unexpected(&what, resp));
        }
        if let Some(said) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
        {
            digest.verify(
                &Digest::parse(said)?,
                format!("{what} (Docker-Content-Digest)"),
            )?;
        }
        Ok(digest)
    }
}

/// A blob to upload from a file: how much of it is there, and once it is whole, its
/// digest and size.
trait Blob: Sync {
    /// Waits until `want` bytes are there or the blob is whole; returns how many are
    /// there and, once whole, its digest and size. Fails if it will never be whole.
    fn wait(&self, want: u64) -> Result<(u64, Option<(Digest, u64)>)>;
}

/// A blob being written into a file by another thread (the compressor).
#[derive(Default)]
struct Growing {
    state: Mutex<GrowingState>,
    changed: Condvar,
}

#[derive(Default)]
struct GrowingState {
    written: u64,
    /// Set at the end: the digest and size, or `None` if the compression failed.
    end: Option<Option<(Digest, u64)>>,
    /// Set when the upload failed: the compression stops.
    aborted: bool,
}

impl Growing {
    fn state(&self) -> std::sync::MutexGuard<'_, GrowingState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` more bytes written; fails once the upload was given up.
    fn wrote(&self, n: u64) -> io::Result<()> {
        let mut s = self.state();
        if s.aborted {
            return Err(io::Error::other("the upload failed"));
        }
        s.written += n;
        self.changed.notify_all();
        Ok(())
    }

    /// The compression ended: with the blob's digest and size, or `None` on failure.
    fn finish(&self, end: Option<(Digest, u64)>) {
        self.state().end = Some(end);
        self.changed.notify_all();
    }

    /// Stops the compression: its next write fails.
    fn abort(&self) {
        self.state().aborted = true;
    }

    /// Whether the compression ended in failure.
    fn compression_failed(&self) -> bool {
        matches!(self.state().end, Some(None))
    }
}

impl Blob for Growing {
    fn wait(&self, want: u64) -> Result<(u64, Option<(Digest, u64)>)> {
        let mut s = self.state();
        loop {
            match &s.end {
                Some(Some(whole)) => return Ok((s.written, Some(whole.clone()))),
                Some(None) => {
                    return Err(Error::Registry {
                        registry: String::new(),
                        message: "the layer could not be compressed".into(),
                    })
                }
                None if s.written >= want => return Ok((s.written, None)),
                None => s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// How many bytes to wait for before an upload can choose between one `PUT` (the
/// whole blob is there and no larger than `chunk`) and chunks: more than a chunk,
/// or all of it when chunks are off (`0`).
fn whole_or_more_than(chunk: u64) -> u64 {
    if chunk == 0 {
        u64::MAX
    } else {
        chunk.saturating_add(1)
    }
}

/// Marks the compression as failed when dropped before it ended (a panic).
struct EndOnDrop<'a>(&'a Growing);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state();
        if s.end.is_none() {
            s.end = Some(None);
            self.0.changed.notify_all();
        }
    }
}

/// Writes into the file and tells [`Growing`] how far it got.
struct Notifying<'a> {
    file: &'a File,
    growing: &'a Growing,
}

impl Write for Notifying<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.growing.wrote(n as u64)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Mounted {
    Yes,
    /// Not mounted; the upload session the registry opened instead.
    No(String),
}

/// Whether an upload that failed so may work in a new session.
fn restartable(e: &Error) -> bool {
    e.is_transient() || matches!(e, Error::Stream { .. })
}

/// `Range: 0-N` of an upload: the registry has N+1 bytes (0 for `0-0`, which is
/// what it says of an empty upload; no chunk is ever a single byte).
fn range_end(resp: &Response<Body>) -> Option<u64> {
    let range = resp.headers().get("range")?.to_str().ok()?;
    let range = range.trim().trim_start_matches("bytes=");
    let (_, end) = range.split_once('-')?;
    let end: u64 = end.trim().parse().ok()?;
    Some(if end == 0 { 0 } else { end + 1 })
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", encode(&digest.to_string()))
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether the descriptors are those of the stored manifest (digest, size and media
/// type), so the stored manifest can be pushed as it is.
fn same_layers(stored: &serde_json::Value, pushed: &[&Descriptor]) -> bool {
    let Some(layers) = stored["layers"].as_array() else {
        return false;
    };
    layers.len() == pushed.len()
        && layers.iter().zip(pushed).all(|(l, p)| {
            l["digest"].as_str() == Some(p.digest.to_string().as_str())
                && l["size"].as_u64() == Some(p.size)
                && l["mediaType"].as_str() == Some(p.media_type.as_str())
        })
}

/// A manifest of the stored one's schema for the blobs pushed, keeping its
/// annotations.
fn new_manifest(
    stored: &serde_json::Value,
    schema: Schema,
    config: &Digest,
    config_size: usize,
    layers: &[&Descriptor],
) -> Result<(Vec<u8>, String)> {
    let config_type = stored["config"]["mediaType"]
        .as_str()
        .filter(|t| Schema::of(&serde_json::json!({ "mediaType": t })) == schema)
        .unwrap_or(schema.config_type());
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": schema.manifest_type(),
        "config": {"mediaType": config_type, "digest": config.to_string(), "size": config_size},
        "layers": layers,
    });
    if let Some(a) = stored.get("annotations").filter(|a| a.is_object()) {
        manifest["annotations"] = a.clone();
    }
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::InvalidContent {
        what: "manifest".into(),
        message: e.to_string(),
    })?;
    Ok((bytes, schema.manifest_type().to_string()))
}

/// Writes down what this push learned: the blobs it compressed (so the next push
/// of these layers checks them before compressing anything) and the name the
/// image now has in the registry. A failure here does not undo the push: it is
/// only said.
fn remember(
    store: &Store,
    image: &Image,
    outcomes: &[Outcome],
    target: &Reference,
    digest: &Digest,
) {
    let result = store.lock().and_then(|lock| {
        let mut cache = BlobCache::load(store);
        for o in outcomes {
            let d = o.compressed.as_ref().unwrap_or(&o.descriptor);
            cache.add(&o.diff_id, d, &target.name());
        }
        cache.save(store)?;
        store.add_repo_digest(
            &lock,
            &image.record.id,
            &format!("{}@{digest}", target.name()),
        )
    });
    if let Err(e) = result {
        tracing::warn!("recording the push in the store: {e}");
    }
}

/// The compressed blobs earlier pushes made of layers: `blob-cache.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct BlobCache {
    layers: BTreeMap<Digest, Vec<Candidate>>,
}

impl BlobCache {
    fn path(store: &Store) -> std::path::PathBuf {
        store.dir().join("blob-cache.json")
    }

    /// The cache, or an empty one if it is missing or unreadable (it is only a hint).
    fn load(store: &Store) -> BlobCache {
        std::fs::read(BlobCache::path(store))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn add(&mut self, diff_id: &Digest, d: &Descriptor, repository: &str) {
        let list = self.layers.entry(diff_id.clone()).or_default();
        match list.iter_mut().find(|c| c.descriptor.digest == d.digest) {
            Some(c) if c.repositories.iter().any(|r| r == repository) => {}
            Some(c) => c.repositories.push(repository.to_string()),
            None => list.push(Candidate {
                descriptor: d.clone(),
                repositories: vec![repository.to_string()],
            }),
        }
    }

    /// Saves it, without the layers the store no longer has.
    fn save(mut self, store: &Store) -> Result<()> {
        self.layers.retain(|d, _| store.has_layer(d));
        let bytes = serde_json::to_vec(&self).map_err(|e| Error::InvalidContent {
            what: "blob cache".into(),
            message: e.to_string(),
        })?;
        fsutil::write_atomic(&BlobCache::path(store), &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_blob_is_waited_for_until_there_or_whole() {
        let growing = Growing::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| growing.wait(10));
            growing.wrote(4).expect("wrote");
            growing.wrote(7).expect("wrote");
            let (there, whole) = waiter.join().expect("join").expect("wait");
            assert!(there >= 10 && whole.is_none(), "{there} {whole:?}");
        });
        let digest = Digest::of(b"blob");
        growing.finish(Some((digest.clone(), 11)));
        // Whole: no more waiting, however much is asked for.
        let (there, whole) = growing.wait(u64::MAX).expect("wait");
        assert_eq!((there, whole), (11, Some((digest, 11))));
        assert_eq!(whole_or_more_than(0), u64::MAX);
        assert_eq!(whole_or_more_than(u64::MAX), u64::MAX);
        assert_eq!(whole_or_more_than(8), 9);
    }

    #[test]
    fn a_failed_or_abandoned_compression_ends_the_wait() {
        let failed = Growing::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| failed.wait(u64::MAX));
            // What a panicking compressor leaves behind.
            drop(EndOnDrop(&failed));
            assert!(waiter.join().expect("join").is_err());
        });
        assert!(failed.compression_failed());

        // An upload given up stops the compression at its next write.
        let aborted = Growing::default();
        aborted.abort();
        assert!(aborted.wrote(1).is_err());
        assert!(!aborted.compression_failed());
    }

    #[test]
    fn upload_urls_and_ranges() {
        let d = Digest::of(b"");
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u?_state=x", &d),
            format!(
                "http://r/v2/a/blobs/uploads/u?_state=x&digest=sha256%3A{}",
                d.hex()
            )
        );
        assert_eq!(
            with_digest("http://r/u", &d),
            format!("http://r/u?digest=sha256%3A{}", d.hex())
        );
        assert_eq!(encode("library/busybox"), "library/busybox");
    }

    #[test]
    fn stored_manifests_are_reused_only_when_everything_matches() {
        let d = Digest::of(b"layer");
        let stored = serde_json::json!({"layers": [{"mediaType": manifest::OCI_LAYER_GZIP, "digest": d.to_string(), "size": 5}]});
        let same = Descriptor {
            media_type: manifest::OCI_LAYER_GZIP.into(),
            digest: d.clone(),
            size: 5,
        };
        assert!(same_layers(&stored, &[&same]));
        let other_type = Descriptor {
            media_type: manifest::DOCKER_LAYER_GZIP.into(),
            ..same.clone()
        };
        assert!(!same_layers(&stored, &[&other_type]));
        assert!(!same_layers(&stored, &[]));
        let (bytes, mt) =
            new_manifest(&stored, Schema::Docker, &d, 10, &[&other_type]).expect("manifest");
        assert_eq!(mt, manifest::DOCKER_MANIFEST);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["config"]["mediaType"], manifest::DOCKER_CONFIG);
        assert_eq!(v["layers"][0]["mediaType"], manifest::DOCKER_LAYER_GZIP);
    }
}
