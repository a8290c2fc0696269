//! Builds test images as OCI image layouts from busybox-static, to push with skopeo.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use ccrun_image::Digest;

/// The creation time test images get unless a test sets one.
const DEFAULT_CREATED: &str = "2024-01-02T03:04:05Z";

/// One file-system entry of a test layer.
pub enum Entry {
    /// A directory with a mode.
    Dir(&'static str, u32),
    /// A regular file: path, content, mode, uid.
    File(String, Vec<u8>, u32, u64),
    /// A symlink: path → target.
    Symlink(&'static str, &'static str),
    /// A hardlink: path → existing path in the same layer.
    Hardlink(&'static str, &'static str),
    /// A raw entry with an unchecked name (for hostile layers): kind, name, link name.
    Raw(tar::EntryType, String, String, Vec<u8>),
}

/// A layer: its gzip blob, digests and uncompressed size.
pub struct Layer {
    /// Compressed bytes.
    pub blob: Vec<u8>,
    /// Digest of `blob`.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Media type of the blob.
    pub media_type: &'static str,
}

/// How to compress a layer.
#[derive(Clone, Copy)]
pub enum Comp {
    /// gzip.
    Gzip,
    /// No compression.
    None,
}

/// Builds a layer tarball from entries.
pub fn layer(entries: &[Entry], comp: Comp) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (name, link, data, kind, mode, uid): (
            String,
            String,
            Vec<u8>,
            tar::EntryType,
            u32,
            u64,
        ) = match e {
            Entry::Dir(p, m) => (
                p.to_string(),
                String::new(),
                Vec::new(),
                tar::EntryType::Directory,
                *m,
                0,
            ),
            Entry::File(p, d, m, u) => (
                p.clone(),
                String::new(),
                d.clone(),
                tar::EntryType::Regular,
                *m,
                *u,
            ),
            Entry::Symlink(p, t) => (
                p.to_string(),
                t.to_string(),
                Vec::new(),
                tar::EntryType::Symlink,
                0o777,
                0,
            ),
            Entry::Hardlink(p, t) => (
                p.to_string(),
                t.to_string(),
                Vec::new(),
                tar::EntryType::Link,
                0o644,
                0,
            ),
            Entry::Raw(k, p, l, d) => (p.clone(), l.clone(), d.clone(), *k, 0o644, 0),
        };
        {
            // Raw names: the hostile tests need `..` and absolute paths verbatim.
            let raw = h.as_old_mut();
            raw.name = [0; 100];
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname = [0; 100];
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_slice()).expect("tar append");
    }
    let tar = b.into_inner().expect("tar finish");
    let diff_id = Digest::of(&tar);
    let (blob, media_type) = match comp {
        Comp::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).expect("gzip");
            (
                gz.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
    };
    Layer {
        digest: Digest::of(&blob),
        blob,
        diff_id,
        media_type,
    }
}

/// The busybox binary and a few applet links.
pub fn busybox_layer() -> Layer {
    let bb = std::fs::read(busybox_path()).expect("read busybox");
    layer(
        &[
            Entry::Dir("bin/", 0o755),
            Entry::File("bin/busybox".into(), bb, 0o755, 0),
            Entry::Symlink("bin/sh", "busybox"),
            Entry::Symlink("bin/ls", "busybox"),
            Entry::Dir("etc/", 0o755),
            Entry::File("etc/hostname".into(), b"test\n".to_vec(), 0o644, 0),
            Entry::File(
                "etc/remove-me".into(),
                b"gone in layer 2\n".to_vec(),
                0o644,
                0,
            ),
            Entry::Dir("opt/", 0o755),
            Entry::Dir("opt/old/", 0o755),
            Entry::File("opt/old/data".into(), b"old\n".to_vec(), 0o644, 0),
        ],
        Comp::Gzip,
    )
}

/// The second layer of the multi-layer image: a whiteout, an opaque dir, a hardlink,
/// a symlink, a setuid file and a file owned by uid 1000.
pub fn features_layer() -> Layer {
    layer(
        &[
            Entry::Dir("etc/", 0o755),
            Entry::File("etc/.wh.remove-me".into(), Vec::new(), 0o644, 0),
            Entry::Dir("opt/", 0o755),
            Entry::File("opt/.wh..wh..opq".into(), Vec::new(), 0o644, 0),
            Entry::File("opt/new".into(), b"new\n".to_vec(), 0o644, 0),
            Entry::Dir("usr/", 0o755),
            Entry::File("usr/data".into(), b"linked\n".to_vec(), 0o644, 0),
            Entry::Hardlink("usr/data-link", "usr/data"),
            Entry::Symlink("usr/sym", "/etc/hostname"),
            Entry::File("usr/suid".into(), b"#!/bin/sh\n".to_vec(), 0o4755, 0),
            Entry::Dir("home/", 0o755),
            Entry::File("home/user-file".into(), b"mine\n".to_vec(), 0o600, 1000),
        ],
        Comp::Gzip,
    )
}

/// busybox with every applet linked, and passwd/group with a non-root user.
pub fn base_layer() -> Layer {
    let bb = std::fs::read(busybox_path()).expect("read busybox");
    let list = std::process::Command::new(busybox_path())
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut entries = vec![
        Entry::Dir("bin/", 0o755),
        Entry::File("bin/busybox".into(), bb, 0o755, 0),
        Entry::Dir("etc/", 0o755),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n".to_vec(),
            0o644,
            0,
        ),
        Entry::File(
            "etc/group".into(),
            b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n".to_vec(),
            0o644,
            0,
        ),
        Entry::File(
            "etc/remove-me".into(),
            b"gone in layer 2\n".to_vec(),
            0o644,
            0,
        ),
        Entry::Dir("opt/", 0o755),
        Entry::Dir("opt/old/", 0o755),
        Entry::File("opt/old/data".into(), b"old\n".to_vec(), 0o644, 0),
        Entry::Dir("root/", 0o700),
        Entry::Dir("tmp/", 0o1777),
    ];
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            entries.push(Entry::Raw(
                tar::EntryType::Symlink,
                format!("bin/{applet}"),
                "busybox".into(),
                Vec::new(),
            ));
        }
    }
    layer(&entries, Comp::Gzip)
}

/// Path of the static busybox.
pub fn busybox_path() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: apt-get install busybox-static");
}

/// An OCI image layout directory being filled with images.
pub struct Layout {
    /// The layout directory.
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

/// What was written for one image.
pub struct Built {
    /// Manifest digest.
    pub manifest: Digest,
    /// Config digest (the image id).
    pub config: Digest,
}

impl Layout {
    /// Creates an empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        Layout {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).expect("write blob");
        d
    }

    /// Writes an image manifest and config for `layers`; tags it if `tag` is given.
    pub fn image(&mut self, layers: &[&Layer], arch: &str, tag: Option<&str>) -> Built {
        let config = serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin:/usr/bin"], "WorkingDir": "/"});
        self.image_with_config(layers, arch, tag, config)
    }

    /// Like [`Layout::image`] with `config` as the image config's `config` object
    /// (Env, Cmd, Entrypoint, WorkingDir, User, ...).
    pub fn image_with_config(
        &mut self,
        layers: &[&Layer],
        arch: &str,
        tag: Option<&str>,
        run_config: serde_json::Value,
    ) -> Built {
        self.image_full(layers, arch, tag, run_config, DEFAULT_CREATED, None)
    }

    /// Like [`Layout::image_with_config`] with `created` as the config's creation time.
    pub fn image_created_at(
        &mut self,
        layers: &[&Layer],
        arch: &str,
        tag: Option<&str>,
        run_config: serde_json::Value,
        created: &str,
    ) -> Built {
        self.image_full(layers, arch, tag, run_config, created, None)
    }

    /// Like [`Layout::image_with_config`], with `history` as the image config's
    /// `history` list.
    pub fn image_with_history(
        &mut self,
        layers: &[&Layer],
        arch: &str,
        tag: Option<&str>,
        run_config: serde_json::Value,
        history: Option<serde_json::Value>,
    ) -> Built {
        self.image_full(layers, arch, tag, run_config, DEFAULT_CREATED, history)
    }

    /// An image of `layers` with the run config, creation time and history given.
    fn image_full(
        &mut self,
        layers: &[&Layer],
        arch: &str,
        tag: Option<&str>,
        run_config: serde_json::Value,
        created: &str,
        history: Option<serde_json::Value>,
    ) -> Built {
        let mut config = serde_json::json!({
            "created": created,
            "architecture": arch,
            "os": "linux",
            "config": run_config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        });
        if let Some(history) = history {
            config["history"] = history;
        }
        let config = config.to_string();
        let config_digest = self.blob(config.as_bytes());
        let mut descs = Vec::new();
        for l in layers {
            // Its digest is known: large layers are not hashed again.
            let path = self.dir.join("blobs/sha256").join(l.digest.hex());
            if !path.exists() {
                std::fs::write(&path, &l.blob).expect("write layer blob");
            }
            descs.push(serde_json::json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.blob.len()}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": descs,
        })
        .to_string();
        let manifest_digest = self.blob(manifest.as_bytes());
        if let Some(tag) = tag {
            self.index.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest.to_string(),
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }));
        }
        self.save();
        Built {
            manifest: manifest_digest,
            config: config_digest,
        }
    }

    /// Writes an image index over `(manifest, arch)` entries plus an attestation-like
    /// unknown/unknown entry, tagged `tag`; returns its digest.
    pub fn index(&mut self, entries: &[(&Built, &str)], tag: &str) -> Digest {
        let mut manifests = Vec::new();
        for (b, arch) in entries {
            let size = std::fs::metadata(self.dir.join("blobs/sha256").join(b.manifest.hex()))
                .expect("manifest")
                .len();
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": b.manifest.to_string(), "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }));
        }
        // An attestation entry pointing at the first image: must never be chosen.
        if let Some((b, _)) = entries.first() {
            let size = std::fs::metadata(self.dir.join("blobs/sha256").join(b.manifest.hex()))
                .expect("manifest")
                .len();
            manifests.insert(0, serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": b.manifest.to_string(), "size": size,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": b.manifest.to_string()},
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string();
        let d = self.blob(index.as_bytes());
        self.index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d.to_string(), "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.save();
        d
    }

    fn save(&self) {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(self.dir.join("index.json"), index.to_string()).expect("index.json");
    }
}
