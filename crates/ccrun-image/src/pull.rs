//! `pull`: resolve a reference to a platform manifest, then download, verify and
//! unpack the missing layers concurrently, committing to the store only what verified.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, MediaType};

use crate::decompress;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layers;
use crate::limits::Limits;
use crate::manifest::{self, Fetched};
use crate::partial::PartialBlob;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{ClientOptions, RegistryClient};
use crate::store::{ImageRecord, ImageUsage, Store, StoreLock};

/// Largest image config we accept.
const MAX_CONFIG: u64 = 64 << 20;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to choose from an index; the host's if `None`.
    pub platform: Option<Platform>,
    /// Registries allowed over plain HTTP besides localhost.
    pub insecure_registries: Vec<String>,
    /// How many layers to download and unpack at once.
    pub jobs: usize,
    /// Flush each layer to disk before committing it (power-loss safety; slower).
    pub sync_layers: bool,
    /// Mirrors (`host[:port]`) of the reference's registry, tried first in order.
    pub mirrors: Vec<String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            insecure_registries: Vec::new(),
            jobs: 4,
            sync_layers: false,
            mirrors: Vec::new(),
        }
    }
}

/// Receives progress events; the CLI draws bars or prints lines from them.
/// Called from several threads at once.
pub trait PullProgress: Sync {
    /// The manifest for `platform` was resolved to `digest`.
    fn resolved(&self, _reference: &Reference, _digest: &Digest, _platform: &str) {}
    /// Layer `index` (`digest`, `size` compressed bytes) is needed; `present` if
    /// the store already has it.
    fn layer(&self, _index: usize, _digest: &Digest, _size: u64, _present: bool) {}
    /// `bytes` more of layer `index` were downloaded (or read back from the partial
    /// download an interrupted pull left).
    fn advance(&self, _index: usize, _bytes: u64) {}
    /// Layer `index` is downloaded again from its start: what was counted of it
    /// by [`PullProgress::advance`] no longer holds.
    fn restart(&self, _index: usize) {}
    /// Layer `index` is verified and committed.
    fn layer_done(&self, _index: usize) {}
    /// A non-fatal warning, e.g. a device node we could not create.
    fn warn(&self, _message: &str) {}
}

/// A [`PullProgress`] that reports nothing.
pub struct Quiet;
impl PullProgress for Quiet {}

/// Pulls `reference` into `store`, returning its record. Nothing already present is
/// downloaded again; on error, whatever this pull stored is garbage-collected
/// (`usage` keeps the layers containers still stack).
pub fn pull(
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    progress: &dyn PullProgress,
    usage: &dyn ImageUsage,
) -> Result<ImageRecord> {
    let lock = store.lock()?;
    match pull_locked(store, &lock, reference, options, progress) {
        Ok(record) => Ok(record),
        Err(e) => {
            // Leave nothing behind that nothing uses (verified layers of a failed pull).
            if let Err(gc) = store.gc(&lock, usage) {
                tracing::warn!("cleaning up after failed pull: {gc}");
            }
            Err(e)
        }
    }
}

fn pull_locked(
    store: &Store,
    lock: &StoreLock,
    reference: &Reference,
    options: &PullOptions,
    progress: &dyn PullProgress,
) -> Result<ImageRecord> {
    let wanted = options.platform.clone().unwrap_or_else(Platform::host);
    let credentials = crate::auth::stored_credentials(reference.registry())?;
    let client = RegistryClient::connect(
        reference,
        &ClientOptions {
            insecure_registries: options.insecure_registries.clone(),
            credentials,
            mirrors: options.mirrors.clone(),
        },
    )?;

    let (bytes, content_type, digest) = client.manifest(&reference.manifest_key())?;
    let (index, manifest_bytes, manifest_digest, manifest_type) = match manifest::parse(
        &bytes,
        content_type.as_deref(),
        &format!("manifest of {reference}"),
    )? {
        Fetched::Image(_) => (None, bytes, digest, content_type),
        Fetched::Index(index) => {
            let chosen = manifest::choose_platform(&index, &wanted, &reference.to_string())?;
            let (m_bytes, m_type, m_digest) = client.manifest(&chosen.to_string())?;
            (Some((bytes, digest)), m_bytes, m_digest, m_type)
        }
    };
    let what = format!("manifest {manifest_digest}");
    let manifest = match manifest::parse(&manifest_bytes, manifest_type.as_deref(), &what)? {
        Fetched::Image(m) => *m,
        Fetched::Index(_) => {
            return Err(Error::InvalidContent {
                what,
                message: "an index points to another index".to_string(),
            })
        }
    };

    let config_digest = Digest::parse(manifest.config().digest().as_ref())?;
    let config_bytes = match store.read_blob(&config_digest)? {
        Some(b) => b,
        None => client.small_blob(
            &config_digest,
            MAX_CONFIG,
            &format!("config {config_digest}"),
        )?,
    };
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::InvalidContent {
            what: format!("config {config_digest}"),
            message: e.to_string(),
        })?;
    let platform = config_platform(&config);
    if index.is_none()
        && !wanted.matches(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        )
    {
        progress.warn(&format!(
            "image platform {platform} does not match the requested {wanted}"
        ));
    }
    progress.resolved(reference, &manifest_digest, &platform);

    let diff_ids = diff_ids(&config, &manifest, &config_digest)?;
    let limits = Limits::from_env(store.dir())?;
    let jobs = plan_layers(store, &manifest, &diff_ids, &limits, progress)?;
    let fetcher = Fetcher {
        store,
        lock,
        client: &client,
        limits,
        failed: AtomicBool::new(false),
        sync: options.sync_layers,
        progress,
    };
    download_layers(&fetcher, jobs, options.jobs)?;

    // Every layer is verified and in place: now the small blobs, then the record
    // that makes the image visible.
    store.write_blob(lock, &config_digest, &config_bytes)?;
    store.write_blob(lock, &manifest_digest, &manifest_bytes)?;
    let index_digest = match &index {
        Some((bytes, d)) => {
            store.write_blob(lock, d, bytes)?;
            Some(d.clone())
        }
        None => None,
    };
    let size = diff_ids
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|d| fsutil::tree_size(&store.layer_dir(d)))
        .sum();
    let repo_digest = format!(
        "{}@{}",
        reference.name(),
        index_digest.as_ref().unwrap_or(&manifest_digest)
    );
    let record = ImageRecord {
        id: config_digest,
        manifest_digest,
        index_digest,
        names: reference
            .tag()
            .filter(|_| reference.digest().is_none())
            .map(|_| vec![reference.to_string()])
            .unwrap_or_default(),
        repo_digests: vec![repo_digest],
        layers: diff_ids,
        size,
        created: config.created().clone(),
        platform,
        pulled_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    store.put_record(lock, record)
}

fn config_platform(config: &ImageConfiguration) -> String {
    match config.variant() {
        Some(v) => format!("{}/{}/{v}", config.os(), config.architecture()),
        None => format!("{}/{}", config.os(), config.architecture()),
    }
}

/// The config's diff-ids, one per manifest layer.
fn diff_ids(
    config: &ImageConfiguration,
    manifest: &ImageManifest,
    config_digest: &Digest,
) -> Result<Vec<Digest>> {
    let ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    if ids.len() != manifest.layers().len() {
        return Err(Error::InvalidContent {
            what: format!("config {config_digest}"),
            message: format!(
                "{} diff_ids for {} layers in the manifest",
                ids.len(),
                manifest.layers().len()
            ),
        });
    }
    Ok(ids)
}

/// One layer to fetch.
struct Job {
    index: usize,
    descriptor: Descriptor,
    digest: Digest,
    diff_id: Digest,
}

/// Decides which layers need downloading: not in the store, and each diff-id once;
/// refuses those that declare more bytes than they may unpack to.
fn plan_layers(
    store: &Store,
    manifest: &ImageManifest,
    diff_ids: &[Digest],
    limits: &Limits,
    progress: &dyn PullProgress,
) -> Result<Vec<Job>> {
    let mut seen = BTreeSet::new();
    let mut jobs = Vec::new();
    for (index, (desc, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        check_layer_type(desc)?;
        let digest = Digest::parse(desc.digest().as_ref())?;
        let present = store.has_layer(diff_id) || !seen.insert(diff_id.clone());
        progress.layer(index, &digest, desc.size(), present);
        if !present {
            limits.check_declared(&digest.to_string(), desc.size())?;
            jobs.push(Job {
                index,
                descriptor: desc.clone(),
                digest,
                diff_id: diff_id.clone(),
            });
        }
    }
    Ok(jobs)
}

fn check_layer_type(desc: &Descriptor) -> Result<()> {
    let t = desc.media_type().to_string();
    let ok = matches!(
        desc.media_type(),
        MediaType::ImageLayer | MediaType::ImageLayerGzip | MediaType::ImageLayerZstd
    ) || t == "application/vnd.docker.image.rootfs.diff.tar.gzip"
        || t == "application/vnd.docker.image.rootfs.diff.tar";
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidContent {
            what: format!("layer {}", desc.digest()),
            message: format!("unsupported layer media type {t}"),
        })
    }
}

/// What the layer downloads of one pull share.
struct Fetcher<'a> {
    store: &'a Store,
    lock: &'a StoreLock,
    client: &'a RegistryClient,
    limits: Limits,
    /// Set by the first layer that fails, to stop the others.
    failed: AtomicBool,
    /// Flush each layer to disk before committing it.
    sync: bool,
    progress: &'a dyn PullProgress,
}

/// Runs the layer jobs on `workers` scoped threads (all joined before returning, so
/// no thread outlives the pull). The first error stops the others.
fn download_layers(fetcher: &Fetcher<'_>, jobs: Vec<Job>, workers: usize) -> Result<()> {
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<_>>());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let workers = workers
        .max(1)
        .min(queue.lock().map_or(1, |q| q.len().max(1)));
    let failed = &fetcher.failed;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let job = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some(job) = job else { return };
                if let Err(e) = fetcher.layer(&job) {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
                fetcher.progress.layer_done(job.index);
            });
        }
    });
    match first_error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None if failed.load(Ordering::Relaxed) => Err(Error::Registry {
            registry: fetcher.client.host().to_string(),
            message: "a layer download thread failed".to_string(),
        }),
        None => Ok(()),
    }
}

impl Fetcher<'_> {
    /// Fetches one layer, resuming from the bytes an earlier, interrupted pull left
    /// in the store (see [`crate::partial`]). Bytes held that turn out not to be the
    /// blob's (the digest over the whole does not match) are deleted, and the layer
    /// is downloaded once more from its start.
    fn layer(&self, job: &Job) -> Result<()> {
        let size = job.descriptor.size();
        let partial = PartialBlob::open(self.store, self.lock, &job.digest, size)?;
        let resumed = partial.held() > 0;
        match self.layer_from(job, partial) {
            Err(e @ Error::DigestMismatch { .. }) if resumed => {
                self.progress.warn(&format!(
                    "{e}: the partial download this pull resumed was bad; deleted it and \
                     downloading layer {} again from the start",
                    job.digest
                ));
                self.progress.restart(job.index);
                let partial = PartialBlob::open(self.store, self.lock, &job.digest, size)?;
                self.layer_from(job, partial)
            }
            other => other,
        }
    }

    /// Streams one layer: download → hash → decompress → hash → unpack, in one pass,
    /// then checks both digests and only then moves the layer into the store. The
    /// partial download is kept if part of the blob was received, but not all of it
    /// (for the next pull to resume), deleted otherwise.
    fn layer_from(&self, job: &Job, partial: PartialBlob) -> Result<()> {
        let Fetcher {
            store,
            lock,
            client,
            progress,
            ..
        } = *self;
        let tmp = store.tmp_dir(lock, &format!("layer-{}", job.diff_id.hex()))?;
        let record = tmp.with_extension("tar-split");
        let meter = self.limits.meter(&job.digest.to_string());
        // Whether the whole blob went through (so the partial download is of no more use).
        let mut received = false;
        let result = (|| {
            let body = Watched {
                inner: partial.body(client, &job.digest, job.descriptor.size())?,
                index: job.index,
                failed: &self.failed,
                progress,
            };
            let mut compressed = HashingReader::new(body);
            let unpacked = (|| {
                let buffered = BufReader::with_capacity(256 * 1024, &mut compressed);
                let decoder = decompress::decoder(buffered).map_err(|e| stream_error(job, e))?;
                let warn = |m: String| progress.warn(&m);
                layers::unpack_recorded(decoder, &tmp, &record, &meter, &warn)
                    .map(|unpacked| unpacked.diff_id)
            })();
            if let Err(e @ Error::TooLarge { .. }) = unpacked {
                // Downloading the rest only to name a digest mismatch is not worth it,
                // nor is keeping what came of a layer refused.
                received = true;
                return Err(e);
            }
            let drained = io::copy(&mut compressed, &mut io::sink());
            received = drained.is_ok();
            if compressed.get_mut().inner.sent_too_much() {
                received = true;
                // What was hashed is a prefix: its digest would only mislead.
                return Err(Error::InvalidContent {
                    what: format!("layer {}", job.digest),
                    message: format!(
                        "expected {} bytes (the size its descriptor declares), the registry \
                         sent more",
                        job.descriptor.size()
                    ),
                });
            }
            let size = compressed.count();
            let (digest, _) = compressed.finish();
            let diff_id = match unpacked {
                // A corrupted blob usually breaks decompression or tar parsing first;
                // name the real cause when the bytes do not match their digest.
                Err(e) => {
                    if drained.is_ok() && digest != job.digest {
                        job.digest
                            .verify(&digest, format!("layer {}", job.digest))?;
                    }
                    return Err(e);
                }
                Ok(d) => d,
            };
            drained.map_err(|e| stream_error(job, e))?;
            if size != job.descriptor.size() {
                return Err(Error::InvalidContent {
                    what: format!("layer {}", job.digest),
                    message: format!("{size} bytes, descriptor says {}", job.descriptor.size()),
                });
            }
            job.digest
                .verify(&digest, format!("layer {}", job.digest))?;
            job.diff_id.verify(
                &diff_id,
                format!("uncompressed layer {} (config diff_id)", job.digest),
            )?;
            store.commit_layer(lock, &tmp, Some(&record), &job.diff_id, self.sync)
        })();
        // An empty one is of no use either (a blob the registry refused, say).
        if received || partial.is_empty() {
            partial.remove();
        }
        if result.is_err() {
            layers::discard(&tmp, &record);
        }
        result
    }
}

fn stream_error(job: &Job, source: io::Error) -> Error {
    Error::Stream {
        what: format!("layer {}", job.digest),
        source,
    }
}

/// Reports download progress and stops early once another layer failed.
struct Watched<'a, R> {
    inner: R,
    index: usize,
    failed: &'a AtomicBool,
    progress: &'a dyn PullProgress,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled: another layer failed"));
        }
        let n = self.inner.read(buf)?;
        self.progress.advance(self.index, n as u64);
        Ok(n)
    }
}
