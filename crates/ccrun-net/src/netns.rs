//! Network namespace switching for the calling thread.
//!
//! Netlink sockets and `/proc/sys/net` belong to the network namespace of
//! the thread that opens them, so "doing something inside a namespace" means
//! moving the calling thread there with `setns(2)` and back afterwards. The
//! engine's container creation path is single-threaded, so no helper thread
//! is used.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::{IoContext, Result};

/// Opens the network namespace the calling thread is in right now.
pub fn current() -> Result<OwnedFd> {
    open("/proc/thread-self/ns/net")
}

/// Opens a network namespace by path (`/proc/<pid>/ns/net`,
/// `/run/netns/<name>`, a bind mount, ...).
pub fn open(path: impl AsRef<Path>) -> Result<OwnedFd> {
    let path = path.as_ref();
    let file = File::open(path).ctx(|| format!("open network namespace {}", path.display()))?;
    Ok(OwnedFd::from(file))
}

/// Opens the network namespace of process `pid`.
pub fn of_pid(pid: i32) -> Result<OwnedFd> {
    open(format!("/proc/{pid}/ns/net"))
}

/// Runs `f` with the calling thread inside network namespace `ns`, and moves
/// the thread back to where it was afterwards, whether `f` succeeds, fails
/// or panics.
///
/// If the thread cannot be moved back the process aborts: carrying on in the
/// wrong namespace would silently configure the wrong network.
pub fn in_netns<T>(ns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let original = current()?;
    setns(ns, CloneFlags::CLONE_NEWNET).ctx(|| "enter network namespace".to_string())?;
    let _back = Restore(original);
    f()
}

/// Moves the thread back into its original network namespace on drop.
struct Restore(OwnedFd);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(errno) = setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET) {
            tracing::error!("cannot return to the original network namespace: {errno}");
            eprintln!("ccrun-net: cannot return to the original network namespace: {errno}");
            std::process::abort();
        }
    }
}
