//! Layer tarballs into and out of the store: unpacking an uncompressed layer with its
//! tar-split record ([`unpack_recorded`]), and the tar of a stored layer back
//! ([`LayerTar`]): byte for byte through its record, or written anew from the
//! directory when it has none.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::Path;
use std::sync::mpsc;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::limits::Meter;
use crate::store::Store;
use crate::tar_split::{Reassembled, Recorder};
use crate::{fsutil, layer_writer, unpack};

/// What [`unpack_recorded`] unpacked.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The digest of the tar (its diff-id).
    pub diff_id: Digest,
    /// The length of the tar.
    pub size: u64,
    /// Whether the tar-split record was written (a failure to write it only costs
    /// byte-exact pushes and saves of this layer, so it is not an error).
    pub recorded: bool,
}

/// Unpacks the uncompressed layer tar `input` into the empty directory `dir`,
/// writing its tar-split record to `record` (see [`crate::tar_split`]); returns the
/// tar's digest and length. The caller verifies the digest.
pub fn unpack_recorded<R: Read>(
    input: R,
    dir: &Path,
    record: &Path,
    meter: &Meter,
    warn: &dyn Fn(String),
) -> Result<Unpacked> {
    let file = File::create(record).ctx("creating", record)?;
    // The record is mostly headers and zero padding: the fastest level shrinks it
    // well enough.
    let gz = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
    let recorder = Recorder::new(gz);
    let mut plain = HashingReader::new(recorder.reader(input));
    let on_file = |path: &[u8], size: u64| recorder.file(path, size);
    unpack::unpack_observed(&mut plain, dir, meter, warn, Some(&on_file))?;
    let size = plain.count();
    let (diff_id, _) = plain.finish();
    let written = recorder
        .finish(&diff_id)
        .and_then(|gz| gz.finish())
        .and_then(|mut w| io::Write::flush(&mut w));
    let recorded = match written {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("layer {diff_id}: tar-split record not written: {e}");
            let _ = std::fs::remove_file(record);
            false
        }
    };
    Ok(Unpacked {
        diff_id,
        size,
        recorded,
    })
}

/// The uncompressed tar of a stored layer.
pub struct LayerTar {
    reader: HashingReader<Box<dyn Read + Send>>,
    diff_id: Digest,
    exact: bool,
}

impl LayerTar {
    /// Opens layer `diff_id` of `store`: its original bytes if it has a tar-split
    /// record, else a tar written anew from the directory (see [`LayerTar::exact`]).
    pub fn open(store: &Store, diff_id: &Digest) -> Result<LayerTar> {
        let dir = store.layer_dir(diff_id);
        if !dir.is_dir() {
            return Err(Error::InvalidContent {
                what: format!("layer {diff_id}"),
                message: format!("missing from {}", store.dir().display()),
            });
        }
        let record = store.tar_split_path(diff_id);
        if record.exists() {
            match Reassembled::open(&record, &dir) {
                Ok(r) => {
                    return Ok(LayerTar {
                        reader: HashingReader::new(Box::new(r)),
                        diff_id: diff_id.clone(),
                        exact: true,
                    })
                }
                Err(e) => tracing::warn!("layer {diff_id}: tar-split record unusable: {e}"),
            }
        }
        LayerTar::rewritten(store, diff_id)
    }

    /// The layer written anew from its directory, whatever record it has.
    pub fn rewritten(store: &Store, diff_id: &Digest) -> Result<LayerTar> {
        let dir = store.layer_dir(diff_id);
        let reader = written_on_a_thread(&dir)?;
        Ok(LayerTar {
            reader: HashingReader::new(Box::new(reader)),
            diff_id: diff_id.clone(),
            exact: false,
        })
    }

    /// Whether the bytes are the layer's original ones (so that they hash to its
    /// diff-id); otherwise they are a new tar of the same files, with a new digest.
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// After the whole tar was read: its digest and length. For an exact tar a
    /// digest other than the diff-id is an error (the files changed since they were
    /// unpacked, or the archive wrote a path twice).
    pub fn finish(self) -> Result<(Digest, u64)> {
        let size = self.reader.count();
        let (digest, _) = self.reader.finish();
        if self.exact {
            self.diff_id.verify(
                &digest,
                format!(
                    "layer {} read back through its tar-split record",
                    self.diff_id
                ),
            )?;
        }
        Ok((digest, size))
    }
}

impl Read for LayerTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// [`layer_writer::write_layer`] of `dir` on a thread of its own, as a reader of
/// the tarball. The thread ends when the tarball is written or the reader is
/// dropped; a failure is the reader's error.
fn written_on_a_thread(dir: &Path) -> Result<ChannelReader> {
    // Fail now on a missing directory rather than at the first read.
    std::fs::read_dir(dir).ctx("reading", dir)?;
    let (tx, rx) = mpsc::sync_channel(8);
    let dir = dir.to_path_buf();
    let thread = std::thread::spawn(move || -> io::Result<()> {
        let out = io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
        layer_writer::write_layer(&dir, out, &layer_writer::WriteOptions::default())
            .map(|_| ())
            .map_err(io::Error::other)
    });
    Ok(ChannelReader {
        rx,
        chunk: Vec::new(),
        at: 0,
        thread: Some(thread),
    })
}

struct ChannelWriter(mpsc::SyncSender<Vec<u8>>);

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => {
                    // The writer is done: its result says whether the tar is whole.
                    return match self.thread.take().map(|t| t.join()) {
                        Some(Ok(Ok(()))) | None => Ok(0),
                        Some(Ok(Err(e))) => Err(e),
                        Some(Err(_)) => Err(io::Error::other("layer writer thread panicked")),
                    };
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The length of stored layer `diff_id`'s tarball (what a manifest's descriptor of
/// it says): from its tar-split record, else by writing it anew to nowhere.
pub fn tar_size(store: &Store, diff_id: &Digest) -> Result<u64> {
    let record = store.tar_split_path(diff_id);
    if let Ok(size) = crate::tar_split::total_length(&record) {
        return Ok(size);
    }
    let mut tar = LayerTar::rewritten(store, diff_id)?;
    io::copy(&mut tar, &mut io::sink()).ctx("reading layer", store.layer_dir(diff_id))?;
    Ok(tar.finish()?.1)
}

/// Removes a staged layer directory and its record after a failure (what cannot be
/// removed is left for the next lock of the store to clear).
pub(crate) fn discard(dir: &Path, record: &Path) {
    if let Err(e) = fsutil::remove_tree(dir) {
        tracing::warn!("{e}");
    }
    let _ = std::fs::remove_file(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    /// A layer with what real ones have: long names (GNU and PAX), an xattr, a
    /// hardlink, a symlink, a whiteout, an opaque marker, data past the end marker.
    fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(data.len() as u64);
            match link {
                Some(l) => b.append_link(&mut h, path, l).expect("link"),
                None => b.append_data(&mut h, path, data).expect("append"),
            }
        };
        add("etc/", tar::EntryType::Directory, b"", None);
        add(
            "etc/passwd",
            tar::EntryType::Regular,
            b"root:x:0:0::/:/bin/sh\n",
            None,
        );
        let long = format!("etc/{}", "n".repeat(150));
        add(&long, tar::EntryType::Regular, &[7u8; 3000], None);
        add("etc/link", tar::EntryType::Link, b"", Some("etc/passwd"));
        add("etc/sym", tar::EntryType::Symlink, b"", Some("passwd"));
        add("etc/.wh.gone", tar::EntryType::Regular, b"", None);
        add("opt/.wh..wh..opq", tar::EntryType::Regular, b"", None);
        let mut tar = b.into_inner().expect("finish");
        // A PAX header with an xattr before one more file, spliced in before the end.
        let end = tar.len() - 1024;
        let mut more = tar::Builder::new(Vec::new());
        let record = b"27 SCHILY.xattr.user.k=val\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_path("PaxHeader").expect("path");
        pax.set_size(record.len() as u64);
        pax.set_cksum();
        more.append(&pax, &record[..]).expect("pax");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(5);
        h.set_mode(0o600);
        h.set_uid(1);
        h.set_gid(1);
        h.set_mtime(1);
        more.append_data(&mut h, "x-file", &b"12345"[..])
            .expect("file");
        let more = more.into_inner().expect("finish");
        tar.splice(end.., more);
        tar.extend_from_slice(&[0u8; 4096]);
        tar
    }

    #[test]
    fn unpacked_layers_read_back_byte_for_byte() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (whiteouts are device nodes)");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let tar = sample_tar();
        let lock = store.lock().expect("lock");
        let dir = store.tmp_dir(&lock, "t").expect("tmp");
        let record = dir.with_extension("tar-split");
        let limits = Limits::new(store.dir(), None).expect("limits");
        let meter = limits.meter("test");
        let unpacked = unpack_recorded(&tar[..], &dir, &record, &meter, &|_| {}).expect("unpack");
        assert_eq!(unpacked.diff_id, Digest::of(&tar));
        assert_eq!(unpacked.size, tar.len() as u64);
        assert!(unpacked.recorded);
        store
            .commit_layer(&lock, &dir, Some(&record), &unpacked.diff_id, false)
            .expect("commit");

        let mut exact = LayerTar::open(&store, &unpacked.diff_id).expect("open");
        assert!(exact.exact());
        let mut back = Vec::new();
        exact.read_to_end(&mut back).expect("read");
        assert!(back == tar, "the original bytes");
        assert_eq!(exact.finish().expect("verified").1, tar.len() as u64);

        // Without its record, the same files in a new tar, which unpacks alike.
        let mut rewritten = LayerTar::rewritten(&store, &unpacked.diff_id).expect("open");
        assert!(!rewritten.exact());
        let mut new_tar = Vec::new();
        rewritten.read_to_end(&mut new_tar).expect("read");
        let names: Vec<String> = tar::Archive::new(&new_tar[..])
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert!(names.contains(&"etc/.wh.gone".to_string()), "{names:?}");
        assert!(names.contains(&"opt/.wh..wh..opq".to_string()), "{names:?}");
        assert!(
            names.iter().any(|n| n.ends_with(&"n".repeat(150))),
            "{names:?}"
        );

        // A file changed behind the record's back is caught by the digest.
        std::fs::write(store.layer_dir(&unpacked.diff_id).join("x-file"), b"54321").expect("write");
        let mut changed = LayerTar::open(&store, &unpacked.diff_id).expect("open");
        changed.read_to_end(&mut Vec::new()).expect("read");
        assert!(changed.finish().is_err());
    }
}
