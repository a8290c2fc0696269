//! The per-container monitor of ccrun and the file formats it shares with the engine.
//!
//! The `ccrun-monitor` binary of this crate is the parent of a detached
//! container's init process (like podman's conmon): it copies the container's
//! output into the log file and records how the process ended in the exit file.
//! The engine reads both files through this library:
//!
//! - [`logfile`] owns the log format (CRI / k8s-file lines), writing with
//!   rotation, reading, and following a log that is being written.
//! - [`exitfile`] owns the exit file: exit code and finish time, written atomically.
//! - [`attach`] owns the protocol of the attach socket through which `ccrun attach`
//!   reaches a running container's stdio.

#![warn(missing_docs)]

pub mod attach;
pub mod exitfile;
pub mod logfile;
