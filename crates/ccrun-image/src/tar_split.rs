//! Byte-exact layer tarballs from unpacked layers (what Docker and containers/storage
//! call "tar-split").
//!
//! The store keeps layers unpacked, keyed by their diff-id: the digest of the
//! uncompressed tar. Pushing or saving an image must produce that very tar again, or
//! the image config's `rootfs.diff_ids` (and with them the image id) would no longer
//! match. So while a layer is unpacked, everything of the stream except the content
//! of regular files is recorded: headers, PAX and long-name records, padding and the
//! end-of-archive blocks, with a reference to the unpacked file in place of each
//! file's content. [`Reassembled`] reads the layer directory through that record and
//! yields the original bytes, which the caller checks against the diff-id.
//!
//! The record is a gzip stream of:
//! - the magic `ccrun-tar-split\x01`;
//! - `0x01` raw bytes: `u32` length, the bytes;
//! - `0x02` file content: `u64` size, `u32` path length, the path relative to the
//!   layer root (components joined by `/`);
//! - `0x00` end: `u64` total length of the tar, the 32 bytes of its sha256.
//!
//! Integers are little-endian.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ccrun_runtime::sys::{openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

use crate::digest::Digest;

const MAGIC: &[u8] = b"ccrun-tar-split\x01";
const RAW: u8 = 1;
const FILE: u8 = 2;
const END: u8 = 0;
/// Raw bytes are written in records of at most this many.
const RAW_CHUNK: usize = 64 * 1024;
/// The longest path a record may name (longer ones make the record invalid).
const MAX_PATH: u32 = 1 << 20;

/// Records a tar stream as it is read (see the module docs). Share it between the
/// reader ([`Recorder::reader`]) and the unpacker, which calls [`Recorder::file`]
/// before it reads each regular file's content.
pub struct Recorder<W: Write> {
    state: RefCell<State<W>>,
}

struct State<W> {
    out: W,
    raw: Vec<u8>,
    /// Bytes still to come of the file announced last.
    content_left: u64,
    total: u64,
    /// The first write error; reported by [`Recorder::finish`] (a failed record must
    /// not fail the unpack, only leave the layer without one).
    error: Option<io::Error>,
}

impl<W: Write> State<W> {
    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(bytes) {
                self.error = Some(e);
            }
        }
    }

    fn flush_raw(&mut self) {
        let raw = std::mem::take(&mut self.raw);
        for chunk in raw.chunks(RAW_CHUNK) {
            let mut head = [RAW, 0, 0, 0, 0];
            head[1..].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
            self.write(&head);
            self.write(chunk);
        }
        self.raw = raw;
        self.raw.clear();
    }

    fn seen(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let content = self.content_left.min(bytes.len() as u64) as usize;
        self.content_left -= content as u64;
        self.raw.extend_from_slice(&bytes[content..]);
        if self.raw.len() >= RAW_CHUNK {
            self.flush_raw();
        }
    }
}

impl<W: Write> Recorder<W> {
    /// A recorder writing its record to `out`.
    pub fn new(out: W) -> Recorder<W> {
        let mut state = State {
            out,
            raw: Vec::with_capacity(RAW_CHUNK),
            content_left: 0,
            total: 0,
            error: None,
        };
        state.write(MAGIC);
        Recorder {
            state: RefCell::new(state),
        }
    }

    /// Wraps the uncompressed tar stream: everything read through it is recorded.
    pub fn reader<R: Read>(&self, inner: R) -> RecordingReader<'_, R, W> {
        RecordingReader {
            inner,
            recorder: self,
        }
    }

    /// Announces that the next `size` bytes read are the content of the regular file
    /// `path` (relative to the layer root), which will be there to read them back.
    pub fn file(&self, path: &[u8], size: u64) {
        let mut s = self.state.borrow_mut();
        s.flush_raw();
        let mut head = Vec::with_capacity(13 + path.len());
        head.push(FILE);
        head.extend_from_slice(&size.to_le_bytes());
        head.extend_from_slice(&(path.len() as u32).to_le_bytes());
        head.extend_from_slice(path);
        s.write(&head);
        s.content_left = size;
    }

    /// Ends the record of a tar whose digest is `diff_id`; returns the writer.
    pub fn finish(self, diff_id: &Digest) -> io::Result<W> {
        let mut s = self.state.into_inner();
        s.flush_raw();
        let mut end = vec![END];
        end.extend_from_slice(&s.total.to_le_bytes());
        end.extend_from_slice(&hex_bytes(diff_id));
        s.write(&end);
        match s.error {
            Some(e) => Err(e),
            None => Ok(s.out),
        }
    }
}

/// The reader of [`Recorder::reader`].
pub struct RecordingReader<'r, R, W: Write> {
    inner: R,
    recorder: &'r Recorder<W>,
}

impl<R: Read, W: Write> Read for RecordingReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.recorder.state.borrow_mut().seen(&buf[..n]);
        Ok(n)
    }
}

fn hex_bytes(d: &Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    let hex = d.hex().as_bytes();
    for (i, b) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).unwrap_or("00");
        *b = u8::from_str_radix(pair, 16).unwrap_or(0);
    }
    out
}

/// The original tar of a layer, read from its record and its unpacked directory.
/// It checks the record's structure and the files' sizes; the caller hashes what
/// it reads and compares with the diff-id, which catches everything else (a file
/// changed since, a path the archive wrote twice).
pub struct Reassembled {
    record: flate2::read::GzDecoder<BufReader<File>>,
    root: OwnedFd,
    /// What is being copied now.
    current: Part,
    /// The total length the record announces, once read.
    total: Option<u64>,
}

enum Part {
    /// Between records.
    None,
    /// `n` more raw bytes from the record.
    Raw(usize),
    /// The rest of a file's content.
    File(io::Take<File>, String),
    /// The end record was read.
    Done,
}

impl Reassembled {
    /// Opens the record at `record` for the layer unpacked in `layer_dir`.
    pub fn open(record: &Path, layer_dir: &Path) -> io::Result<Reassembled> {
        let file = File::open(record)?;
        let mut record = flate2::read::GzDecoder::new(BufReader::new(file));
        let mut magic = [0u8; MAGIC.len()];
        record.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(invalid("not a tar-split record"));
        }
        let root = File::open(layer_dir)?.into();
        Ok(Reassembled {
            record,
            root,
            current: Part::None,
            total: None,
        })
    }

    /// The length of the tar, once the whole of it was read.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn next_part(&mut self) -> io::Result<()> {
        let mut tag = [0u8; 1];
        self.record.read_exact(&mut tag)?;
        self.current = match tag[0] {
            RAW => Part::Raw(read_u32(&mut self.record)? as usize),
            FILE => {
                let size = read_u64(&mut self.record)?;
                let len = read_u32(&mut self.record)?;
                if len > MAX_PATH {
                    return Err(invalid("path too long"));
                }
                let mut path = vec![0u8; len as usize];
                self.record.read_exact(&mut path)?;
                let shown = String::from_utf8_lossy(&path).into_owned();
                let fd = openat2(
                    self.root.as_fd(),
                    Path::new(OsStr::from_bytes(&path)),
                    libc::O_RDONLY | libc::O_NOFOLLOW,
                    0,
                    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                )
                .map_err(|e| io::Error::other(format!("{shown}: {e}")))?;
                Part::File(File::from(fd).take(size), shown)
            }
            END => {
                self.total = Some(read_u64(&mut self.record)?);
                Part::Done
            }
            _ => return Err(invalid("unknown record")),
        };
        Ok(())
    }
}

impl Read for Reassembled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.current {
                Part::Done => return Ok(0),
                Part::None => self.next_part()?,
                Part::Raw(0) => self.current = Part::None,
                Part::Raw(left) => {
                    let want = (*left).min(buf.len());
                    let n = self.record.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(invalid("record ends early"));
                    }
                    *left -= n;
                    return Ok(n);
                }
                Part::File(file, shown) => {
                    if file.limit() == 0 {
                        self.current = Part::None;
                        continue;
                    }
                    let n = file.read(buf)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{shown}: shorter than when it was unpacked"),
                        ));
                    }
                    return Ok(n);
                }
            }
        }
    }
}

/// The length of the tar a record describes, read from the record alone (no file
/// is opened), and checked against the sum of its parts.
pub fn total_length(record: &Path) -> io::Result<u64> {
    let mut r = flate2::read::GzDecoder::new(BufReader::new(File::open(record)?));
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(invalid("not a tar-split record"));
    }
    let mut sum = 0u64;
    loop {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag)?;
        match tag[0] {
            RAW => {
                let len = u64::from(read_u32(&mut r)?);
                let skipped = io::copy(&mut (&mut r).take(len), &mut io::sink())?;
                if skipped != len {
                    return Err(invalid("record ends early"));
                }
                sum += len;
            }
            FILE => {
                sum += read_u64(&mut r)?;
                let len = read_u32(&mut r)?;
                if len > MAX_PATH {
                    return Err(invalid("path too long"));
                }
                io::copy(&mut (&mut r).take(u64::from(len)), &mut io::sink())?;
            }
            END => {
                let total = read_u64(&mut r)?;
                if total != sum {
                    return Err(invalid("parts do not add up to the total"));
                }
                return Ok(total);
            }
            _ => return Err(invalid("unknown record")),
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tar-split: {what}"))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_everything_but_file_content() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        std::fs::write(tmp.path().join("d/f"), b"hello world").expect("write");
        // A stream: 3 raw bytes, 11 bytes of d/f, 2 raw bytes.
        let stream = b"abchello worldyz".to_vec();
        let recorder = Recorder::new(Vec::new());
        let mut reader = recorder.reader(&stream[..]);
        let mut got = vec![0u8; 3];
        reader.read_exact(&mut got).expect("read");
        recorder.file(b"d/f", 11);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("read");
        let digest = Digest::of(&stream);
        let record = recorder.finish(&digest).expect("finish");
        // Gzip it the way callers store it.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&record).expect("gzip");
        let path = tmp.path().join("record");
        std::fs::write(&path, gz.finish().expect("gzip")).expect("write");
        assert!(
            !record.windows(5).any(|w| w == b"hello"),
            "content not kept"
        );

        let mut back = Reassembled::open(&path, tmp.path()).expect("open");
        let mut out = Vec::new();
        back.read_to_end(&mut out).expect("reassemble");
        assert_eq!(out, stream);
        assert_eq!(back.total(), Some(stream.len() as u64));
        assert_eq!(total_length(&path).expect("length"), stream.len() as u64);

        // A file that shrank is an error, not a short tar.
        std::fs::write(tmp.path().join("d/f"), b"hello").expect("write");
        let mut back = Reassembled::open(&path, tmp.path()).expect("open");
        assert!(back.read_to_end(&mut Vec::new()).is_err());
        // And nothing is read through a symlink.
        std::fs::remove_dir_all(tmp.path().join("d")).expect("rm");
        std::os::unix::fs::symlink("/etc", tmp.path().join("d")).expect("symlink");
        let mut back = Reassembled::open(&path, tmp.path()).expect("open");
        assert!(back.read_to_end(&mut Vec::new()).is_err());
    }
}
