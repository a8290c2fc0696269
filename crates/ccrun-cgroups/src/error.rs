//! The crate's error type. Every variant names the path (or setting) involved and
//! the operation that failed, so a message on its own is enough to debug.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while detecting, creating, configuring or removing cgroups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file (or listing a directory) failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing a value to a cgroup file failed.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The value that was being written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Creating a cgroup directory failed.
    #[error("creating cgroup directory {path}: {source}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Removing a cgroup directory failed.
    #[error("removing cgroup directory {path}: {source}")]
    RemoveDir {
        /// The directory that could not be removed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file had content this crate does not understand.
    #[error("parsing {path}: {reason}")]
    Parse {
        /// The file whose content was unexpected.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// The cgroup path given by the caller is not usable.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Mounting a hidden hierarchy again failed.
    #[error("{what}: {source}")]
    Mount {
        /// What was being mounted where.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// No cgroup hierarchy is mounted.
    #[error(
        "no cgroup or cgroup2 hierarchy is mounted according to {path} (if /sys was \
         remounted, as `ip netns exec` does, run ccrun through `nsenter --net=/run/netns/NAME` \
         instead)"
    )]
    NoHierarchy {
        /// The mountinfo file that was inspected.
        path: PathBuf,
    },

    /// A resource was requested whose controller is not available on this host.
    #[error("{setting} requested but the {controller:?} cgroup controller is not available")]
    ControllerMissing {
        /// The controller that would be needed (v1 name / v2 name).
        controller: &'static str,
        /// The setting that needed it.
        setting: &'static str,
    },

    /// A resource was requested that the controller on this host does not support
    /// (the interface file does not exist).
    #[error("{setting} is not supported here: {path} does not exist")]
    Unsupported {
        /// The setting that was requested.
        setting: String,
        /// The interface file that is missing.
        path: PathBuf,
    },

    /// The requested resources are inconsistent or out of range.
    #[error("invalid resource {setting}: {reason}")]
    InvalidResource {
        /// The offending setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A `bpf(2)` operation for the cgroup v2 device filter failed.
    #[error("{op} for {path}: {source}{log}")]
    Bpf {
        /// What was being done.
        op: &'static str,
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// The verifier's explanation, if the kernel gave one (with a leading space).
        log: String,
    },

    /// Sending a signal to a process of the cgroup failed.
    #[error("sending {signal} to pid {pid} (member of {path}): {source}")]
    Kill {
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The process.
        pid: i32,
        /// The cgroup directory it was found in.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },

    /// The cgroup contains a process that must not be killed (this process, or pid 1).
    #[error("refusing to kill pid {pid} found in {path}")]
    RefuseKill {
        /// The process.
        pid: i32,
        /// The cgroup directory it was found in.
        path: PathBuf,
    },

    /// A state change did not complete in time.
    #[error("timed out after {waited:?} waiting for {path} to {what}")]
    Timeout {
        /// The cgroup directory being waited on.
        path: PathBuf,
        /// What was being waited for.
        what: &'static str,
        /// How long we waited.
        waited: Duration,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the cgroup filesystem refused us (not ours to write, as for a rootless
    /// caller without a delegated subtree).
    pub fn is_denied(&self) -> bool {
        match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::CreateDir { source, .. } => {
                source.kind() == io::ErrorKind::PermissionDenied
                    || matches!(source.raw_os_error(), Some(libc::EPERM | libc::EROFS))
            }
            _ => false,
        }
    }

    /// True when a directory or file was missing: a cgroup level removed concurrently.
    pub fn is_vanished(&self) -> bool {
        match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::CreateDir { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
