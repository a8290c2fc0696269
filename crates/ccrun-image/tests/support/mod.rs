//! Shared by the layer tests: a tar writer that takes names verbatim, as an attacker
//! would write them, and a layer directory inside an outer directory whose other
//! contents must survive whatever the layer does.
#![allow(dead_code)]

pub mod hostile;

use std::fs;
use std::path::{Path, PathBuf};

use ccrun_image::unpack::unpack;
use ccrun_image::Limits;

/// Unpacks `tar` into `dest` as layer `test-layer`, with the free-space limit of
/// `dest`'s filesystem and `per_layer` as `CCRUN_MAX_LAYER_SIZE`.
pub fn unpack_limited(tar: &[u8], dest: &Path, per_layer: Option<u64>) -> ccrun_image::Result<()> {
    let meter = Limits::new(dest, per_layer)?.meter("test-layer");
    unpack(tar, dest, &meter, &|w| eprintln!("warning: {w}")).map(|_| ())
}

/// [`unpack_limited`] without a per-layer limit.
pub fn run(tar: &[u8], dest: &Path) -> ccrun_image::Result<()> {
    unpack_limited(tar, dest, None)
}

/// Builds a tar with raw (unvalidated) names.
pub struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    /// An empty archive.
    pub fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    /// Appends one entry; `name` and `link` go into the header unchecked (at most
    /// 100 bytes each).
    pub fn entry(
        &mut self,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = hostile::header(kind, mode, data.len() as u64);
        {
            let raw = h.as_old_mut();
            raw.name = [0; 100];
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname = [0; 100];
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    /// Appends a regular file with mode 0644.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(tar::EntryType::Regular, name, "", 0o644, data)
    }

    /// Appends a GNU sparse file of `real_size` bytes whose data is `blocks` (offset,
    /// bytes; every block but the last a multiple of 512 bytes long) and the rest
    /// holes. At most three blocks: they and the end marker fit in the main header.
    /// As GNU tar does, a final empty block at `real_size` marks a trailing hole.
    pub fn sparse(&mut self, name: &str, real_size: u64, blocks: &[(u64, &[u8])]) -> &mut Self {
        let data: Vec<u8> = blocks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let mut h = hostile::header(tar::EntryType::GNUSparse, 0o644, data.len() as u64);
        h.set_path(name).expect("path");
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.set_real_size(real_size);
        let end: (u64, &[u8]) = (real_size, &[]);
        for (slot, (offset, bytes)) in gnu.sparse.iter_mut().zip(blocks.iter().chain([&end])) {
            slot.set_offset(*offset);
            slot.set_length(bytes.len() as u64);
        }
        h.set_cksum();
        self.0.append(&h, data.as_slice()).expect("append");
        self
    }

    /// The archive so far, with its end-of-archive marker; the builder starts over.
    pub fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .expect("finish")
    }
}

/// A layer directory `layer` inside an outer temp dir that also holds a file
/// `secret` ("keep"): whatever the layer does must leave both alone.
pub fn setup() -> (tempfile::TempDir, PathBuf) {
    let outer = tempfile::tempdir().expect("tempdir");
    let layer = outer.path().join("layer");
    fs::create_dir(&layer).expect("mkdir");
    fs::write(outer.path().join("secret"), b"keep").expect("write");
    (outer, layer)
}

/// Sorted names in a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    names
}

/// Asserts that the outer directory of [`setup`] still holds exactly `layer` and an
/// intact `secret`.
pub fn outer_untouched(outer: &Path) {
    assert_eq!(
        names(outer),
        ["layer", "secret"],
        "something was written or removed outside the layer"
    );
    assert_eq!(fs::read(outer.join("secret")).expect("read"), b"keep");
}

/// A tmpfs mounted on a temp dir for one test, detached on drop.
pub struct Tmpfs {
    /// The mount point.
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`64m`); the tests run as root.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount tmpfs (the tests run as root)");
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}
