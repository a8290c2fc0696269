//! How much unpacking may write, so that a decompression bomb (4 MB of gzip that
//! expands to 4 GiB, a 3 KB sparse entry declaring 1 TiB) is refused instead of
//! filling the store's filesystem.
//!
//! **What counts.** Every byte of a layer's decompressed stream, counted as the
//! decompressor produces it: tar headers, padding and whatever follows the
//! end-of-archive marker included, not only file contents. On top of that, each entry
//! costs one filesystem block ([`ENTRY_COST`]), because a directory or a one-byte file
//! takes a whole block on disk for 512 bytes of stream. Nothing is written that was
//! not in the stream, so that total bounds what a layer allocates, and reading stops
//! as soon as it is over the limit.
//!
//! **Sparse files.** Their holes are not in the stream and cost no disk (they are
//! created as holes), so they do not count as above. But the tar reader hands them to
//! us as zeros that must be read through, at some 10 GB/s, and whatever copies the
//! file without hole support writes them out. So the holes of one layer may add up to
//! at most the same limit, counted separately, and checked from the entry's header
//! before any of it is read: a 1 TiB hole is refused at once.
//!
//! **The limits.** A layer is refused once it goes over either of:
//! - the free space of the store's filesystem when the pull starts, less a safety
//!   margin of 1 GiB or 5% of the filesystem, whichever is smaller (so the rest of the
//!   system keeps room to work). It is shared by all the layers of one pull, which are
//!   unpacked at the same time. The space counted is what unprivileged users may use
//!   (`f_bavail`), so root's reserved blocks stay untouched too;
//! - `CCRUN_MAX_LAYER_SIZE` ([`MAX_LAYER_SIZE_ENV`]), if set: a cap per layer, in
//!   bytes or with a `k`, `m`, `g` or `t` suffix (binary units: `512m` is 512 MiB).
//!
//! **Declared sizes.** A layer whose descriptor declares more compressed bytes than
//! it may unpack to is refused before anything is downloaded: gzip and zstd framing
//! adds at most a fraction of a percent, so no honest layer is larger compressed than
//! unpacked, and the check gives a registry that announces 10^15 bytes a clear answer
//! instead of a download that can never finish.

use std::cell::Cell;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// The environment variable that caps what one layer may unpack to.
pub const MAX_LAYER_SIZE_ENV: &str = "CCRUN_MAX_LAYER_SIZE";

/// What each entry costs on top of its stream bytes: a filesystem block.
pub const ENTRY_COST: u64 = 4096;

/// The most of the free space kept free, and the share of the filesystem's size
/// kept free when that is less.
const MARGIN_MAX: u64 = 1 << 30;
const MARGIN_PERCENT: u64 = 5;

/// The limits of one pull; cheap to clone, clones share the free-space budget.
#[derive(Debug, Clone)]
pub struct Limits {
    per_layer: Option<u64>,
    pool: Arc<Pool>,
}

/// The free space all layers of a pull share.
#[derive(Debug)]
struct Pool {
    limit: u64,
    used: AtomicU64,
    /// Why `limit` is what it is, for the refusal.
    origin: String,
}

impl Limits {
    /// The limits for unpacking below `dir`: its filesystem's free space less the
    /// margin, shared by every [`Meter`] of these limits, and `per_layer` for each.
    pub fn new(dir: &Path, per_layer: Option<u64>) -> Result<Limits> {
        let fs = rustix::fs::statvfs(dir).ctx("checking free space of", dir)?;
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        let total = fs.f_blocks.saturating_mul(fs.f_frsize);
        let margin = MARGIN_MAX.min(total / 100 * MARGIN_PERCENT);
        Ok(Limits {
            per_layer,
            pool: Arc::new(Pool {
                limit: free.saturating_sub(margin),
                used: AtomicU64::new(0),
                origin: format!(
                    "the free space of {} ({}) less a margin of {}",
                    dir.display(),
                    human(free),
                    human(margin)
                ),
            }),
        })
    }

    /// [`Limits::new`] with the per-layer cap from `CCRUN_MAX_LAYER_SIZE`, if set.
    pub fn from_env(dir: &Path) -> Result<Limits> {
        let per_layer = match std::env::var(MAX_LAYER_SIZE_ENV) {
            Ok(text) => Some(parse_size(&text).ok_or_else(|| Error::InvalidContent {
                what: MAX_LAYER_SIZE_ENV.to_string(),
                message: format!(
                    "{text:?}: expected a number of bytes above 0, optionally with a k, m, g \
                     or t suffix (e.g. 512m)"
                ),
            })?),
            Err(std::env::VarError::NotPresent) => None,
            Err(e) => {
                return Err(Error::InvalidContent {
                    what: MAX_LAYER_SIZE_ENV.to_string(),
                    message: e.to_string(),
                })
            }
        };
        Limits::new(dir, per_layer)
    }

    /// The most one layer may unpack to, and why.
    fn layer_limit(&self) -> (u64, String) {
        match self.per_layer {
            Some(cap) if cap <= self.pool.limit => (
                cap,
                format!("{}, the limit set by {MAX_LAYER_SIZE_ENV}", human(cap)),
            ),
            _ => (
                self.pool.limit,
                format!("{}, {}", human(self.pool.limit), self.pool.origin),
            ),
        }
    }

    /// Refuses, before downloading, a layer whose descriptor declares more
    /// compressed bytes than it may unpack to (plus room for compression framing).
    pub fn check_declared(&self, layer: &str, compressed: u64) -> Result<()> {
        let (limit, why) = self.layer_limit();
        let slack = limit / 1024 + 64 * 1024;
        if compressed <= limit.saturating_add(slack) {
            return Ok(());
        }
        Err(Error::TooLarge {
            layer: layer.to_string(),
            message: format!(
                "its descriptor declares {compressed} bytes ({}), more than a layer may \
                 unpack to here: {why}; not downloading it",
                human(compressed)
            ),
        })
    }

    /// A fresh count for one layer (`layer` names it in errors).
    pub fn meter(&self, layer: &str) -> Meter {
        Meter {
            limits: self.clone(),
            layer: layer.to_string(),
            used: Cell::new(0),
            holes: Cell::new(0),
            over: Cell::new(None),
        }
    }
}

/// What one layer has unpacked so far, against its [`Limits`]. Used by the one
/// thread that unpacks the layer.
#[derive(Debug)]
pub struct Meter {
    limits: Limits,
    layer: String,
    used: Cell<u64>,
    holes: Cell<u64>,
    /// Set once a charge went over: later errors (the tar reader's, wrapping ours)
    /// are reported as this.
    over: Cell<Option<Over>>,
}

/// Which limit a layer went over.
#[derive(Debug, Clone, Copy)]
enum Over {
    /// Its own, `CCRUN_MAX_LAYER_SIZE`.
    Layer,
    /// The free space all layers of the pull share.
    Pool,
}

impl Meter {
    /// The layer this meter counts.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// Counts `bytes` more; fails once the layer or the pull is over its limit.
    pub fn charge(&self, bytes: u64) -> Result<()> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        let pool = &self.limits.pool;
        let pooled = pool
            .used
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        let over = if self.limits.per_layer.is_some_and(|cap| used > cap) {
            Over::Layer
        } else if pooled > pool.limit {
            Over::Pool
        } else {
            return Ok(());
        };
        self.over.set(Some(over));
        Err(self.too_large(over))
    }

    /// Counts the holes of sparse file `entry`, before any is read.
    pub fn charge_holes(&self, entry: &str, bytes: u64) -> Result<()> {
        let holes = self.holes.get().saturating_add(bytes);
        self.holes.set(holes);
        let (limit, why) = self.limits.layer_limit();
        if holes <= limit {
            return Ok(());
        }
        Err(Error::TooLarge {
            layer: self.layer.clone(),
            message: format!(
                "{entry}: sparse file with {} of holes; the holes of a layer may add up to \
                 at most {why}",
                human(bytes)
            ),
        })
    }

    /// The error of the charge that went over the limit, if one did.
    pub fn exceeded(&self) -> Option<Error> {
        self.over.get().map(|over| self.too_large(over))
    }

    fn too_large(&self, over: Over) -> Error {
        let pool = &self.limits.pool;
        let message = match (over, self.limits.per_layer) {
            (Over::Layer, Some(cap)) => format!(
                "unpacks to more than {}, the limit set by {MAX_LAYER_SIZE_ENV}; refused",
                human(cap)
            ),
            _ => format!(
                "the layers of this pull unpack to more than {}, {}; refused",
                human(pool.limit),
                pool.origin
            ),
        };
        Error::TooLarge {
            layer: self.layer.clone(),
            message,
        }
    }

    /// Wraps the decompressed stream so that every byte read is charged.
    pub fn reader<R: Read>(&self, inner: R) -> Metered<'_, R> {
        Metered { inner, meter: self }
    }
}

/// A reader that charges what it reads to a [`Meter`] and fails once over the limit.
pub struct Metered<'m, R> {
    inner: R,
    meter: &'m Meter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.charge(n as u64).map_err(io::Error::other)?;
        Ok(n)
    }
}

/// A size in bytes with an optional binary `k`, `m`, `g` or `t` suffix; `None` for
/// anything else, and for 0.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'k') => (&text[..text.len() - 1], 10),
        Some(b'm') => (&text[..text.len() - 1], 20),
        Some(b'g') => (&text[..text.len() - 1], 30),
        Some(b't') => (&text[..text.len() - 1], 40),
        _ => (text.as_str(), 0),
    };
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(1 << shift)
        .filter(|n| *n > 0)
}

/// `64.0 MiB`: sizes in messages, in the binary units the limit is set in.
fn human(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size(" 512k "), Some(512 << 10));
        assert_eq!(parse_size("1t"), Some(1 << 40));
        assert_eq!(parse_size("4096"), Some(4096));
        for bad in ["", "0", "-1", "1.5g", "12x", "m", "99999999999t"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(human(100), "100 bytes");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human(1_000_000_000_000_000), "909.5 TiB");
    }

    #[test]
    fn meters_share_the_free_space_and_cap_each_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits::new(dir.path(), Some(1000)).expect("limits");
        let a = limits.meter("a");
        a.charge(600).expect("under");
        assert!(a.exceeded().is_none());
        let err = a.charge(600).expect_err("over the cap");
        assert_eq!(
            err.to_string(),
            format!("layer a: unpacks to more than 1000 bytes, the limit set by {MAX_LAYER_SIZE_ENV}; refused")
        );
        assert!(a.exceeded().is_some());
        // Another layer has its own count under the cap.
        limits.meter("b").charge(900).expect("b under");

        let mut pool = Limits::new(dir.path(), None).expect("limits");
        Arc::get_mut(&mut pool.pool).expect("sole owner").limit = 1000;
        let (a, b) = (pool.meter("a"), pool.meter("b"));
        a.charge(600).expect("a under");
        let err = b.charge(600).expect_err("the pull is over");
        assert!(err.to_string().contains("free space of"), "{err}");
    }

    #[test]
    fn declared_sizes_beyond_the_limit_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits::new(dir.path(), Some(64 << 20)).expect("limits");
        limits.check_declared("l", 64 << 20).expect("at the limit");
        let err = limits
            .check_declared("l", 1_000_000_000_000_000)
            .expect_err("absurd");
        assert_eq!(
            err.to_string(),
            format!(
                "layer l: its descriptor declares 1000000000000000 bytes (909.5 TiB), more \
                 than a layer may unpack to here: 64.0 MiB, the limit set by \
                 {MAX_LAYER_SIZE_ENV}; not downloading it"
            )
        );
    }
}
