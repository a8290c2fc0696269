//! gzip compression on several cores, for the layers `push` uploads.
//!
//! The input is cut into blocks of [`BLOCK`] bytes, each compressed on its own thread
//! as raw deflate primed with the previous block's last 32 KiB (the window deflate
//! can refer back to) and ended with a sync flush, which leaves the output on a byte
//! boundary. The blocks, in order, are one deflate stream in one gzip member, as
//! pigz and Go's pgzip (which skopeo uses) make them. The output depends only on the
//! input and the level, never on the number of threads, so the same layer always
//! compresses to the same digest.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress};

/// The unit of parallel work.
pub const BLOCK: usize = 1 << 20;
/// How far deflate looks back.
const WINDOW: usize = 32 * 1024;
/// gzip's header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block (fixed Huffman codes): ends the stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// The gzip level `push` uses unless told otherwise (zlib's default).
pub const DEFAULT_LEVEL: u32 = 6;

/// What [`compress`] read and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes read from the input.
    pub input: u64,
    /// Bytes of gzip written.
    pub output: u64,
}

type Job = (usize, Arc<Vec<u8>>, Option<Arc<Vec<u8>>>);

/// Compresses all of `input` into `out` as one gzip member at `level` (0–9), with
/// `threads` blocks compressed at once.
pub fn compress<R: Read, W: Write>(
    mut input: R,
    out: &mut W,
    level: u32,
    threads: usize,
) -> io::Result<Sizes> {
    let threads = threads.max(1);
    let level = Compression::new(level.min(9));
    out.write_all(&HEADER)?;
    let mut sizes = Sizes {
        input: 0,
        output: HEADER.len() as u64,
    };
    let mut crc = crc32fast::Hasher::new();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, io::Result<Vec<u8>>)>();
    std::thread::scope(|s| -> io::Result<()> {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((index, block, dictionary)) = job else {
                    return;
                };
                let compressed =
                    deflate_block(&block, dictionary.as_ref().map(|d| d.as_slice()), level);
                if done_tx.send((index, compressed)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // Workers stop when the job channel closes, also on an early return here.
        let job_tx = job_tx;
        let mut writer = InOrder {
            out: &mut *out,
            next: 0,
            pending: BTreeMap::new(),
            written: 0,
        };
        let (mut index, mut in_flight) = (0usize, 0usize);
        let mut tail: Option<Arc<Vec<u8>>> = None;
        loop {
            let block = read_block(&mut input)?;
            if block.is_empty() {
                break;
            }
            crc.update(&block);
            sizes.input += block.len() as u64;
            let last = block.len() < BLOCK;
            let block = Arc::new(block);
            let next_tail = Arc::new(block[block.len().saturating_sub(WINDOW)..].to_vec());
            job_tx
                .send((index, block, tail.replace(next_tail)))
                .map_err(|_| io::Error::other("compression threads ended early"))?;
            index += 1;
            in_flight += 1;
            // Enough work queued: take finished blocks before reading on.
            while in_flight >= 2 * threads {
                writer.take(&done_rx)?;
                in_flight -= 1;
            }
            if last {
                break;
            }
        }
        drop(job_tx);
        while in_flight > 0 {
            writer.take(&done_rx)?;
            in_flight -= 1;
        }
        sizes.output += writer.written;
        Ok(())
    })?;
    out.write_all(&FINAL_BLOCK)?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    // ISIZE: the input length modulo 2^32.
    out.write_all(&(sizes.input as u32).to_le_bytes())?;
    sizes.output += (FINAL_BLOCK.len() + 8) as u64;
    Ok(sizes)
}

/// Writes finished blocks in input order.
struct InOrder<'w, W: Write> {
    out: &'w mut W,
    next: usize,
    pending: BTreeMap<usize, Vec<u8>>,
    written: u64,
}

impl<W: Write> InOrder<'_, W> {
    /// Waits for one finished block and writes whatever is now next in order.
    fn take(&mut self, done: &mpsc::Receiver<(usize, io::Result<Vec<u8>>)>) -> io::Result<()> {
        let (index, compressed) = done
            .recv()
            .map_err(|_| io::Error::other("compression threads ended early"))?;
        self.pending.insert(index, compressed?);
        while let Some(block) = self.pending.remove(&self.next) {
            self.out.write_all(&block)?;
            self.written += block.len() as u64;
            self.next += 1;
        }
        Ok(())
    }
}

/// Reads up to a whole block (less only at the end of the input).
fn read_block<R: Read>(input: &mut R) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    input.take(BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// One block as raw deflate, primed with `dictionary`, ending in a sync flush.
fn deflate_block(
    block: &[u8],
    dictionary: Option<&[u8]>,
    level: Compression,
) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(level, false);
    if let Some(d) = dictionary {
        c.set_dictionary(d).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(block.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(block.len() / 4 + 4096);
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(block.len());
        c.compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Done once all input is in and the flush did not fill the buffer.
        if usize::try_from(c.total_in()).is_ok_and(|n| n == block.len())
            && out.len() < out.capacity()
        {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(
                format!("line {i} of the sample, {}\n", i * 7919 % 1000).as_bytes(),
            );
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn round_trips_and_does_not_depend_on_threads() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345] {
            let data = sample(len);
            let mut one = Vec::new();
            let sizes = compress(&data[..], &mut one, DEFAULT_LEVEL, 1).expect("compress");
            assert_eq!(sizes.input, len as u64);
            assert_eq!(sizes.output, one.len() as u64);
            assert!(gunzip(&one) == data, "round trip of {len} bytes");
            let mut four = Vec::new();
            compress(&data[..], &mut four, DEFAULT_LEVEL, 4).expect("compress");
            assert!(one == four, "same bytes whatever the threads ({len})");
            if len > BLOCK {
                assert!(one.len() < len / 3, "it compresses");
            }
        }
    }
}
