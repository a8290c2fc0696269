//! Errors of the runtime core.

use std::path::PathBuf;

/// Result alias for the runtime core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while creating or driving a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something invalid or unsupported.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The container's program does not exist in the container (exit 127).
    #[error("{0}")]
    CommandNotFound(String),
    /// The container's program exists but cannot be executed (exit 126).
    #[error("{0}")]
    NotExecutable(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        /// What was being done.
        context: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{context} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The container's init reported a failure during setup.
    #[error("container setup failed: {0}")]
    Setup(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] ccrun_cgroups::Error),
    /// No container with that id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container with that id exists already.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// The operation is not valid in the container's current state.
    #[error("container {id} is {status}: {action} not allowed")]
    WrongState {
        /// Container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was attempted.
        action: &'static str,
    },
    /// The state file could not be parsed.
    #[error("corrupt state {path}: {source}", path = path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an errno with what was being done.
    pub fn sys(context: impl Into<String>, source: nix::Error) -> Error {
        Error::Sys {
            context: context.into(),
            source,
        }
    }

    /// Wraps an I/O error with the operation and path.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// Adds context to `nix` results.
pub(crate) trait SysContext<T> {
    /// Attaches a lazily built description of the failed operation.
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(f(), e))
    }
}
