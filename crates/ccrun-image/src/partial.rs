//! Partial blob downloads, kept in the store so that an interrupted pull (Ctrl-C,
//! `kill -9`, a connection that stays down) resumes where it stopped.
//!
//! The bytes of blob `sha256:<hex>` received so far are in `partial/<hex>` under the
//! store, written only by a pull holding the store lock. They are a prefix of the
//! blob as far as anything here knows, never trusted: the next pull reads them
//! again through the same hashing and unpacking as the rest of the blob, asks the
//! registry for the remainder with `Range: bytes=N-`, and checks the digest over the
//! whole. A partial file is deleted once its blob was received whole (committed or
//! refused), and by `image prune`; it is never an image or a layer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::registry::{BlobReader, RegistryClient};
use crate::store::{Store, StoreLock};

/// The partial download of one blob, opened for appending.
pub(crate) struct PartialBlob {
    path: PathBuf,
    file: File,
    held: u64,
}

impl PartialBlob {
    /// Opens (creating) the partial file of `digest`. One longer than the blob's
    /// declared `size` cannot be a prefix of it and is emptied.
    pub(crate) fn open(
        store: &Store,
        lock: &StoreLock,
        digest: &Digest,
        size: u64,
    ) -> Result<PartialBlob> {
        let path = store.partial_path(lock, digest)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .ctx("opening partial download", &path)?;
        let mut held = file.metadata().ctx("inspecting", &path)?.len();
        if held > size {
            tracing::warn!(
                "partial download {} is longer than its blob: starting over",
                path.display()
            );
            file.set_len(0).ctx("emptying", &path)?;
            held = 0;
        }
        Ok(PartialBlob { path, file, held })
    }

    /// Bytes already held.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// Whether the partial file holds no byte (none was received, or it is gone).
    pub(crate) fn is_empty(&self) -> bool {
        fs::metadata(&self.path).map_or(true, |m| m.len() == 0)
    }

    /// Deletes the partial file: its blob was received whole, or its bytes are bad.
    pub(crate) fn remove(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
        }
    }

    /// The whole blob as a stream: the bytes held, then the registry's from there on
    /// (`Range: bytes=N-`), each appended to the partial file as it arrives.
    pub(crate) fn body<'c>(
        &self,
        client: &'c RegistryClient,
        digest: &Digest,
        size: u64,
    ) -> Result<ResumedBody<'c>> {
        let held = if self.held > 0 {
            tracing::info!(
                "blob {digest}: resuming the download at byte {} of {size}",
                self.held
            );
            let file = File::open(&self.path).ctx("reading partial download", &self.path)?;
            Some(file.take(self.held))
        } else {
            None
        };
        let sink = self.file.try_clone().ctx("opening", &self.path)?;
        Ok(ResumedBody {
            held,
            remote: client.blob(digest, Some(size)).starting_at(self.held),
            sink: Some(sink),
            path: self.path.clone(),
        })
    }
}

/// A blob read from its partial file first, then from the registry (see
/// [`PartialBlob::body`]).
pub(crate) struct ResumedBody<'c> {
    held: Option<io::Take<File>>,
    remote: BlobReader<'c>,
    /// Where new bytes are appended; `None` once a write failed (what is in the file
    /// is still a prefix, and the download goes on without it).
    sink: Option<File>,
    path: PathBuf,
}

impl ResumedBody<'_> {
    /// Whether the registry sent more bytes than the descriptor declares.
    pub(crate) fn sent_too_much(&self) -> bool {
        self.remote.sent_too_much()
    }
}

impl Read for ResumedBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(held) = self.held.as_mut() {
            let n = held.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if held.limit() > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("partial download {} shrank", self.path.display()),
                ));
            }
            self.held = None;
        }
        let n = self.remote.read(buf)?;
        if let Some(sink) = self.sink.as_mut() {
            if let Err(e) = sink.write_all(&buf[..n]) {
                tracing::warn!(
                    "keeping the partial download {}: {e}; the download goes on without it",
                    self.path.display()
                );
                self.sink = None;
            }
        }
        Ok(n)
    }
}
