//! `save` and `load`: images in one tar archive.
//!
//! `save` writes what Docker (25 and later) writes for `docker save`: an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…` with the configs, OCI
//! manifests and uncompressed layer tarballs) plus Docker's `manifest.json` and
//! `repositories`, which older Docker, podman and skopeo read as a docker-archive.
//! `--format oci-archive` leaves those two out. The layer tarballs are the original
//! ones, byte for byte (see [`crate::tar_split`]), so image ids stay what they were.
//!
//! `load` reads both, and what Docker and podman write: docker-archives with
//! `manifest.json` (the legacy `ID/layer.tar` layout, symlinked shared layers, podman's
//! `DIFFID.tar`), OCI archives with `index.json` (layers plain, gzip or zstd, nested
//! indexes), the whole archive possibly gzip- or zstd-compressed. The archive is read
//! once, as a stream (it may come from a pipe): every member that is a tarball is
//! unpacked into the store's `tmp/` as it goes by, and small members are kept. Only
//! when the whole archive is read and every digest checked (configs, manifests,
//! layers against the configs' `diff_ids`) does anything go into the store; a
//! truncated or tampered archive leaves it as it was.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::decompress;
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::layers::{self, LayerTar, Unpacked};
use crate::limits::Limits;
use crate::local::{self, LocalImage, LocalLayer};
use crate::manifest::{self, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageUsage, Store, StoreLock};

/// Small members (configs, manifests, indexes) are kept in memory up to this size.
const MAX_SMALL: u64 = 8 << 20;
/// …and up to this much in all.
const MAX_SMALL_TOTAL: u64 = 256 << 20;
/// How deep indexes may nest in an OCI archive.
const MAX_INDEX_DEPTH: usize = 4;

/// The archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker save`'s (an OCI layout with `manifest.json` and `repositories`).
    DockerArchive,
    /// An OCI image layout in a tar.
    OciArchive,
}

fn bad(what: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidContent {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// One image of a save: the record and the names it goes under.
struct Saved {
    record: ImageRecord,
    tags: Vec<Reference>,
}

/// Writes the images `names` (references or ids) of `store` to `out` as one archive.
/// A name given twice, or two names of one image, make one image with both tags.
pub fn save<W: Write>(store: &Store, names: &[String], format: Format, out: W) -> Result<W> {
    let mut images: Vec<Saved> = Vec::new();
    for name in names {
        let record = store
            .find(name)?
            .ok_or_else(|| Error::ImageNotFound(name.clone()))?;
        // By name: that tag goes along; by id or digest, none does (Docker's rule).
        let tag = Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_none() && record.names.contains(&r.to_string()));
        match images.iter_mut().find(|s| s.record.id == record.id) {
            Some(s) => s.tags.extend(tag.filter(|t| !s.tags.contains(t))),
            None => images.push(Saved {
                record,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    let mut tar = ArchiveWriter::new(out);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut written: HashMap<Digest, (Digest, u64)> = HashMap::new();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in &images {
        let mut blobs = Vec::new();
        for diff_id in &image.record.layers {
            let blob = match written.get(diff_id) {
                Some(b) => b.clone(),
                None => {
                    let b = tar.layer(store, diff_id)?;
                    written.insert(diff_id.clone(), b.clone());
                    b
                }
            };
            blobs.push(blob);
        }
        let mut config = store
            .read_blob(&image.record.id)?
            .ok_or_else(|| bad(&format!("image {}", image.record.id), "config blob missing"))?;
        if blobs
            .iter()
            .zip(&image.record.layers)
            .any(|((d, _), l)| d != l)
        {
            // A layer without a tar-split record was written anew: its digest, and so
            // the config's diff_ids and the image id, changed.
            let mut value: Value =
                serde_json::from_slice(&config).map_err(|e| bad("image config", e))?;
            value["rootfs"]["diff_ids"] =
                json!(blobs.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>());
            config = serde_json::to_vec(&value).map_err(|e| bad("image config", e))?;
            tracing::warn!(
                "image {}: layers without a tar-split record were written anew; its id in \
                 the archive is {}",
                image.record.id,
                Digest::of(&config)
            );
        }
        let config_digest = Digest::of(&config);
        tar.blob(&config_digest, &config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": blobs.iter().map(|(d, size)| json!({
                "mediaType": OCI_LAYER, "digest": d.to_string(), "size": size,
            })).collect::<Vec<_>>(),
        }))
        .map_err(|e| bad("manifest", e))?;
        let manifest_digest = Digest::of(&manifest);
        tar.blob(&manifest_digest, &manifest)?;
        let descriptor = json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
        });
        if image.tags.is_empty() {
            index.push(descriptor.clone());
        }
        for tag in &image.tags {
            let mut d = descriptor.clone();
            d["annotations"] = json!({
                "io.containerd.image.name": tag.to_string(),
                "org.opencontainers.image.ref.name": tag.tag().unwrap_or("latest"),
            });
            index.push(d);
            let top = blobs
                .last()
                .map(|(d, _)| d.hex().to_string())
                .unwrap_or_default();
            repositories
                .entry(tag.familiar_name())
                .or_default()
                .insert(tag.tag().unwrap_or("latest").to_string(), top);
        }
        docker_manifest.push(json!({
            "Config": format!("blobs/sha256/{}", config_digest.hex()),
            "RepoTags": image.tags.iter().map(|t| format!("{}:{}", t.familiar_name(), t.tag().unwrap_or("latest"))).collect::<Vec<_>>(),
            "Layers": blobs.iter().map(|(d, _)| format!("blobs/sha256/{}", d.hex())).collect::<Vec<_>>(),
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index});
    tar.file("index.json", &to_vec(&index)?)?;
    if format == Format::DockerArchive {
        tar.file("manifest.json", &to_vec(&json!(docker_manifest))?)?;
        tar.file("repositories", &to_vec(&json!(repositories))?)?;
    }
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar.finish()
}

fn to_vec(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| bad("archive index", e))
}

/// A tar archive being written, with fixed metadata (so the same images give the
/// same archive).
struct ArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W) -> Self {
        ArchiveWriter {
            builder: tar::Builder::new(out),
        }
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    fn write_error(e: io::Error) -> Error {
        Error::Io {
            context: "writing the archive",
            path: PathBuf::from("-"),
            source: e,
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0, 0o755);
        self.builder
            .append_data(&mut h, path, io::empty())
            .map_err(Self::write_error)
    }

    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        self.builder
            .append_data(&mut h, path, bytes)
            .map_err(Self::write_error)
    }

    fn blob(&mut self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        self.file(&format!("blobs/sha256/{}", digest.hex()), bytes)
    }

    /// Writes a stored layer's tarball as a blob; returns its digest and length
    /// (the diff-id, unless the layer had to be written anew).
    fn layer(&mut self, store: &Store, diff_id: &Digest) -> Result<(Digest, u64)> {
        let mut tar = LayerTar::open(store, diff_id)?;
        if tar.exact() {
            // Its length is known from the record: straight into the archive.
            let size = layers::tar_size(store, diff_id)?;
            let mut h = Self::header(tar::EntryType::Regular, size, 0o644);
            let path = format!("blobs/sha256/{}", diff_id.hex());
            let mut limited = Exactly {
                inner: &mut tar,
                left: size,
            };
            self.builder
                .append_data(&mut h, &path, &mut limited)
                .map_err(Self::write_error)?;
            let (digest, length) = tar.finish()?;
            if length != size {
                return Err(bad(
                    &format!("layer {diff_id}"),
                    format!("{length} bytes, its record says {size}"),
                ));
            }
            return Ok((digest, size));
        }
        // Written anew: its digest and length are known only once it is written.
        let tmp = store.tmp_root();
        let mut file = tempfile::tempfile_in(&tmp).ctx("creating a temporary file in", &tmp)?;
        let mut out = HashingWriter::new(io::BufWriter::new(&mut file));
        io::copy(&mut tar, &mut out).ctx("writing a layer into", &tmp)?;
        let size = out.count();
        let (digest, mut w) = out.finish();
        w.flush().ctx("writing a layer into", &tmp)?;
        drop(w);
        tar.finish()?;
        file.rewind().ctx("rewinding a layer in", &tmp)?;
        let mut h = Self::header(tar::EntryType::Regular, size, 0o644);
        self.builder
            .append_data(&mut h, format!("blobs/sha256/{}", digest.hex()), &mut file)
            .map_err(Self::write_error)?;
        Ok((digest, size))
    }

    fn finish(self) -> Result<W> {
        self.builder.into_inner().map_err(Self::write_error)
    }
}

/// Reads exactly `left` bytes from `inner`: fewer is an error, more are not read
/// (so a wrong length never makes a malformed archive).
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "layer shorter than its record says",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A member of an archive being loaded.
enum Member {
    /// A small file, kept.
    Small(Vec<u8>),
    /// A tarball, unpacked into `tmp/`.
    Layer(Staged),
    /// Something else (large, not a tarball), read past.
    Other,
}

/// A layer tarball of the archive, unpacked but not in the store yet.
struct Staged {
    dir: PathBuf,
    record: PathBuf,
    /// Digest of the member as it is in the archive (compressed or not).
    blob: Digest,
    /// Digest and length of the uncompressed tarball.
    diff_id: Digest,
    size: u64,
    recorded: bool,
}

/// An image found in the archive, verified.
struct Found {
    config: Vec<u8>,
    layers: Vec<String>,
    names: Vec<String>,
}

/// Everything read from an archive, before anything goes into the store.
struct Reading<'s> {
    store: &'s Store,
    lock: &'s StoreLock,
    limits: Limits,
    members: HashMap<String, Member>,
    /// Symlinks and hardlinks between members (legacy docker save shares layers so).
    links: HashMap<String, String>,
    small_total: u64,
}

/// Loads every image of the archive `input` (see the module docs); returns the
/// records and the names each was loaded under. `usage` keeps what containers use
/// when a failure has to clean up.
pub fn load<R: Read>(
    store: &Store,
    input: R,
    usage: &dyn ImageUsage,
) -> Result<Vec<(ImageRecord, Vec<String>)>> {
    let lock = store.lock()?;
    let mut reading = Reading {
        store,
        lock: &lock,
        limits: Limits::from_env(store.dir())?,
        members: HashMap::new(),
        links: HashMap::new(),
        small_total: 0,
    };
    let result = reading.read(input).and_then(|()| reading.images());
    let result = result.and_then(|found| {
        let committed = reading.commit(&found);
        if committed.is_err() {
            if let Err(e) = store.gc(&lock, usage) {
                tracing::warn!("cleaning up after a failed load: {e}");
            }
        }
        committed
    });
    reading.discard();
    result
}

impl Reading<'_> {
    fn read<R: Read>(&mut self, input: R) -> Result<()> {
        let archive_error = |e: io::Error| Error::Stream {
            what: "the archive".into(),
            source: e,
        };
        let input = decompress::decoder(BufReader::with_capacity(256 * 1024, input))
            .map_err(archive_error)?;
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(archive_error)? {
            let mut entry = entry.map_err(archive_error)?;
            let raw = entry.path_bytes().into_owned();
            let Some(path) = normalise(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let member = self.member(&path, &mut entry)?;
                    self.members.insert(path, member);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let kind = entry.header().entry_type();
                    let target = entry.link_name_bytes().map(|t| t.into_owned());
                    let target = target.and_then(|t| {
                        if kind == tar::EntryType::Link {
                            normalise(&t)
                        } else {
                            // A symlink is relative to its own directory.
                            let base = Path::new(&path).parent().unwrap_or(Path::new(""));
                            let joined = base.join(String::from_utf8_lossy(&t).as_ref());
                            normalise(joined.to_string_lossy().as_bytes())
                        }
                    });
                    if let Some(t) = target {
                        self.links.insert(path, t);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads one member: keeps it, unpacks it, or only hashes it.
    fn member<R: Read>(&mut self, path: &str, entry: &mut R) -> Result<Member> {
        let stream_error = |e: io::Error| Error::Stream {
            what: format!("{path} in the archive"),
            source: e,
        };
        let mut head = Vec::with_capacity(512);
        (&mut *entry)
            .take(512)
            .read_to_end(&mut head)
            .map_err(stream_error)?;
        let mut reader = HashingReader::new(io::Cursor::new(head.clone()).chain(entry));
        if is_tarball(&head) {
            let (dir, record, unpacked) = self.stage(path, &mut reader)?;
            return Ok(Member::Layer(Staged {
                dir,
                record,
                blob: reader.finish().0,
                diff_id: unpacked.diff_id,
                size: unpacked.size,
                recorded: unpacked.recorded,
            }));
        }
        let mut bytes = Vec::new();
        (&mut reader)
            .take(MAX_SMALL + 1)
            .read_to_end(&mut bytes)
            .map_err(stream_error)?;
        if bytes.len() as u64 <= MAX_SMALL
            && self.small_total + bytes.len() as u64 <= MAX_SMALL_TOTAL
        {
            self.small_total += bytes.len() as u64;
            return Ok(Member::Small(bytes));
        }
        io::copy(&mut reader, &mut io::sink()).map_err(stream_error)?;
        Ok(Member::Other)
    }

    /// Unpacks a tarball member (plain, gzip or zstd) into `tmp/`, reading `reader`
    /// to its end; returns the directory, the tar-split record and what was unpacked.
    fn stage<R: Read>(&self, path: &str, reader: &mut R) -> Result<(PathBuf, PathBuf, Unpacked)> {
        let dir = self.store.tmp_dir(self.lock, "load-layer")?;
        let record = dir.with_extension("tar-split");
        let result = (|| {
            let meter = self.limits.meter(path);
            let warn = |m: String| tracing::warn!("{m}");
            let stream_error = |e: io::Error| Error::Stream {
                what: format!("{path} in the archive"),
                source: e,
            };
            let unpacked = {
                let buffered = BufReader::with_capacity(256 * 1024, &mut *reader);
                let decoder = decompress::decoder(buffered).map_err(stream_error)?;
                layers::unpack_recorded(decoder, &dir, &record, &meter, &warn)?
            };
            io::copy(reader, &mut io::sink()).map_err(stream_error)?;
            Ok(unpacked)
        })();
        match result {
            Ok(unpacked) => Ok((dir, record, unpacked)),
            Err(e) => {
                layers::discard(&dir, &record);
                Err(e)
            }
        }
    }

    /// The member at `path`, following links.
    fn get(&self, path: &str) -> Option<&Member> {
        let mut path = path.to_string();
        for _ in 0..16 {
            if let Some(m) = self.members.get(&path) {
                return Some(m);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    /// A kept member's bytes, checked against the digest its path names, if it
    /// names one (`blobs/sha256/HEX`, `HEX.json`).
    fn small(&self, path: &str, what: &str) -> Result<Vec<u8>> {
        let bytes = match self.get(path) {
            Some(Member::Small(b)) => b.clone(),
            Some(_) => {
                return Err(bad(
                    what,
                    format!("{path} in the archive is not a small file"),
                ))
            }
            None => return Err(bad(what, format!("{path} is missing from the archive"))),
        };
        if let Some(named) = digest_in_path(path) {
            named.verify(
                &Digest::of(&bytes),
                format!("{what} ({path} in the archive)"),
            )?;
        }
        Ok(bytes)
    }

    /// The staged layer at `path` that must have diff-id `diff_id`.
    fn layer(&self, path: &str, diff_id: &str, blob: Option<&Digest>) -> Result<&Staged> {
        let what = format!("layer {path}");
        let staged = match self.get(path) {
            Some(Member::Layer(s)) => s,
            Some(_) => return Err(bad(&what, "not a tarball")),
            None => return Err(bad(&what, "missing from the archive")),
        };
        if let Some(expected) = blob.or(digest_in_path(path).as_ref()) {
            expected.verify(&staged.blob, &what)?;
        }
        let expected = Digest::parse(diff_id)?;
        expected.verify(&staged.diff_id, format!("{what} (the config's diff_id)"))?;
        Ok(staged)
    }

    /// Finds and verifies every image of the archive.
    fn images(&self) -> Result<Vec<Found>> {
        if self.get("manifest.json").is_some() {
            self.docker_images()
        } else if self.get("index.json").is_some() {
            self.oci_images()
        } else {
            Err(bad(
                "archive",
                "neither a docker-archive (manifest.json) nor an OCI archive (index.json)",
            ))
        }
    }

    fn docker_images(&self) -> Result<Vec<Found>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let bytes = self.small("manifest.json", "manifest.json")?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&bytes).map_err(|e| bad("manifest.json", e))?;
        let mut found = Vec::new();
        for entry in entries {
            let config = self.small(&entry.config, "image config")?;
            let diff_ids = diff_ids(&config)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(bad(
                    &entry.config,
                    format!(
                        "{} diff_ids for {} layers",
                        diff_ids.len(),
                        entry.layers.len()
                    ),
                ));
            }
            let mut layers = Vec::new();
            for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
                self.layer(path, diff_id, None)?;
                layers.push(path.clone());
            }
            let names = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t).map(|r| r.to_string()))
                .collect::<Result<Vec<_>>>()?;
            found.push(Found {
                config,
                layers,
                names,
            });
        }
        Ok(found)
    }

    fn oci_images(&self) -> Result<Vec<Found>> {
        let index = self.small("index.json", "index.json")?;
        let mut found = Vec::new();
        self.oci_index(&index, None, 0, &mut found)?;
        Ok(found)
    }

    /// The images of one index; `name` is what its entry in the parent index was
    /// called.
    fn oci_index(
        &self,
        index: &[u8],
        name: Option<String>,
        depth: usize,
        found: &mut Vec<Found>,
    ) -> Result<()> {
        let index: Value = serde_json::from_slice(index).map_err(|e| bad("image index", e))?;
        let host = Platform::host();
        for d in index["manifests"].as_array().into_iter().flatten() {
            let digest = Digest::parse(d["digest"].as_str().unwrap_or_default())?;
            let path = format!("blobs/sha256/{}", digest.hex());
            let bytes = self.small(&path, "manifest")?;
            let name = image_name(d).or_else(|| name.clone());
            let kind = d["mediaType"].as_str().unwrap_or_default();
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&path, e))?;
            let is_index = matches!(kind, OCI_INDEX | manifest::DOCKER_MANIFEST_LIST)
                || value.get("manifests").is_some();
            if is_index {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(bad(&path, "indexes nest too deep"));
                }
                self.oci_index(&bytes, name, depth + 1, found)?;
                continue;
            }
            // In a multi-platform index, the entries for this host only.
            if let Some(p) = d.get("platform") {
                let field = |k: &str| p[k].as_str().unwrap_or_default();
                let variant = p["variant"].as_str();
                if !host.matches(field("os"), field("architecture"), variant) {
                    continue;
                }
            }
            let config_digest =
                Digest::parse(value["config"]["digest"].as_str().unwrap_or_default())?;
            let config = self.small(
                &format!("blobs/sha256/{}", config_digest.hex()),
                "image config",
            )?;
            let diff_ids = diff_ids(&config)?;
            let descriptors = value["layers"].as_array().cloned().unwrap_or_default();
            if diff_ids.len() != descriptors.len() {
                return Err(bad(
                    &path,
                    format!(
                        "{} layers for {} diff_ids",
                        descriptors.len(),
                        diff_ids.len()
                    ),
                ));
            }
            let mut layers = Vec::new();
            for (l, diff_id) in descriptors.iter().zip(&diff_ids) {
                let blob = Digest::parse(l["digest"].as_str().unwrap_or_default())?;
                let layer_path = format!("blobs/sha256/{}", blob.hex());
                self.layer(&layer_path, diff_id, Some(&blob))?;
                layers.push(layer_path);
            }
            found.push(Found {
                config,
                layers,
                names: name.iter().cloned().collect(),
            });
        }
        Ok(())
    }

    /// Puts the layers, configs, manifests and records of `found` into the store.
    fn commit(&mut self, found: &[Found]) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        let mut out = Vec::new();
        for image in found {
            let mut layers = Vec::new();
            for path in &image.layers {
                let Some(Member::Layer(staged)) = self.get(path) else {
                    return Err(bad(path, "layer vanished"));
                };
                if staged.dir.exists() {
                    let record = staged.recorded.then_some(staged.record.as_path());
                    self.store.commit_layer(
                        self.lock,
                        &staged.dir,
                        record,
                        &staged.diff_id,
                        false,
                    )?;
                }
                layers.push(LocalLayer {
                    diff_id: staged.diff_id.clone(),
                    size: staged.size,
                });
            }
            let record = local::commit_image(
                self.store,
                self.lock,
                &LocalImage {
                    config: &image.config,
                    layers: &layers,
                    names: &image.names,
                },
            )?;
            out.push((record, image.names.clone()));
        }
        Ok(out)
    }

    /// Removes what was staged and not committed.
    fn discard(&mut self) {
        for member in self.members.values() {
            if let Member::Layer(s) = member {
                layers::discard(&s.dir, &s.record);
            }
        }
    }
}

/// The name an index entry gives its image: containerd's full name, or the OCI
/// ref name when that is a whole reference (not just a tag).
fn image_name(descriptor: &Value) -> Option<String> {
    let annotations = &descriptor["annotations"];
    let full = annotations["io.containerd.image.name"].as_str();
    let reference = annotations["org.opencontainers.image.ref.name"]
        .as_str()
        .filter(|r| r.contains('/') || r.contains(':'));
    full.or(reference)
        .and_then(|n| Reference::parse(n).ok())
        .filter(|r| r.digest().is_none())
        .map(|r| r.to_string())
}

/// The `rootfs.diff_ids` of a config.
fn diff_ids(config: &[u8]) -> Result<Vec<String>> {
    let value: Value = serde_json::from_slice(config).map_err(|e| bad("image config", e))?;
    Ok(value["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect())
}

/// The digest a member's path names: `blobs/sha256/HEX`, `HEX.json`, `HEX.tar`,
/// `HEX/layer.tar`.
fn digest_in_path(path: &str) -> Option<Digest> {
    let p = Path::new(path);
    let name = p.file_name()?.to_str()?;
    let hex = if p.parent().is_some_and(|d| d.ends_with("blobs/sha256")) {
        name
    } else {
        name.strip_suffix(".json")?
    };
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// A member path without `./` and empty components; `None` for paths that leave the
/// archive (`..`) or are empty.
fn normalise(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut parts = Vec::new();
    for c in Path::new(text.as_ref()).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether the first bytes of a member are those of a tarball: a compressed stream,
/// a tar header with a valid checksum, or the zero blocks of an empty tar.
fn is_tarball(head: &[u8]) -> bool {
    if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return true;
    }
    if head.len() < 512 {
        return false;
    }
    if head.iter().all(|b| *b == 0) {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(
            normalise(b"./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalise(b"a/../b").as_deref(), Some("b"));
        assert_eq!(normalise(b"../x"), None);
        assert_eq!(normalise(b"./"), None);
        let d = Digest::of(b"x");
        assert_eq!(
            digest_in_path(&format!("blobs/sha256/{}", d.hex())),
            Some(d.clone())
        );
        assert_eq!(
            digest_in_path(&format!("{}.json", d.hex())),
            Some(d.clone())
        );
        assert_eq!(digest_in_path("manifest.json"), None);
    }

    #[test]
    fn tarballs_are_told_apart() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "f", &b"x"[..]).expect("append");
        let tar = b.into_inner().expect("tar");
        assert!(is_tarball(&tar[..512]));
        assert!(is_tarball(&[0u8; 512]));
        assert!(is_tarball(&[0x1f, 0x8b, 8, 0]));
        assert!(!is_tarball(br#"{"schemaVersion": 2}"#));
        let mut broken = tar[..512].to_vec();
        broken[0] ^= 1;
        assert!(!is_tarball(&broken));
    }
}
