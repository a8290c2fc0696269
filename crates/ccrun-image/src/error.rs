//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, pulling, storing or unpacking an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image reference could not be parsed.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A digest string is not `algorithm:hex` with a supported algorithm.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// A platform string is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64")]
    InvalidPlatform(String),
    /// Content did not hash to the digest it was fetched or announced by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (manifest, config, layer …).
        what: String,
        /// The digest it should have had.
        expected: String,
        /// The digest it had.
        actual: String,
    },
    /// A registry answered with something we cannot use.
    #[error("registry {registry}: {message}")]
    Registry {
        /// Registry host.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// The registry or a token server refused our credentials.
    #[error("registry {registry}: unauthorized: {message}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// The server's explanation, if any.
        message: String,
    },
    /// A manifest, blob or repository does not exist.
    #[error("{what}: not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// An HTTP transport failure after all retries.
    #[error("{context}: {source}")]
    Http {
        /// The request that failed.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// A manifest, index or config is malformed or inconsistent.
    #[error("invalid {what}: {message}")]
    InvalidContent {
        /// Which document.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// No entry of an image index matches the wanted platform.
    #[error("no image for platform {wanted} in {reference} (available: {available})")]
    NoMatchingPlatform {
        /// The reference being pulled.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// A layer archive tried something unsafe or is malformed.
    #[error("layer {layer}: {message}")]
    UnsafeLayer {
        /// The layer digest.
        layer: String,
        /// The offending entry and why.
        message: String,
    },
    /// A layer would unpack to more than the store's filesystem can spare or
    /// `CCRUN_MAX_LAYER_SIZE` allows (see [`crate::limits`]).
    #[error("layer {layer}: {message}")]
    TooLarge {
        /// The layer digest.
        layer: String,
        /// What is too large, and the limit.
        message: String,
    },
    /// Garbage collection removed what it could but not everything; it went on
    /// past each failure, so `freed` counts what is gone.
    #[error(
        "could not remove {} of the unused objects (the others were removed): {}",
        failures.len(),
        join(failures)
    )]
    GcIncomplete {
        /// What was removed.
        freed: crate::store::GcStats,
        /// Why each of the others stayed.
        failures: Vec<Error>,
    },
    /// The image is not in the store.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// The image cannot be removed because something still uses it.
    #[error("image {image} is in use: {reason}")]
    ImageInUse {
        /// The image reference or id.
        image: String,
        /// Who uses it.
        reason: String,
    },
    /// A reference matches several images, e.g. a short id prefix.
    #[error("{0}: ambiguous, matches several images")]
    Ambiguous(String),
    /// Reading a blob stream failed after all retries and resumes.
    #[error("{what}: {source}")]
    Stream {
        /// The blob being read.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A filesystem operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file could not be read or written.
    #[error("credentials file {}: {message}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// Whether the failed request may succeed when tried again (a connection cut
    /// mid-transfer), as opposed to a refused connection or an unknown host.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Http { source, .. } if crate::registry::transient(source))
    }
}

/// Errors on one line, separated by semicolons.
fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(Error::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds path context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Wraps an I/O error with what we were doing and where.
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            context,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|errno| Error::Io {
            context,
            path: path.into(),
            source: errno.into(),
        })
    }
}
