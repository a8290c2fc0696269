//! A container's process seen from another ccrun command: signalled and awaited
//! through a pidfd, so a pid reused by an unrelated process is never hit.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

/// A handle on one live process.
#[derive(Debug)]
pub struct ProcessHandle {
    pidfd: OwnedFd,
}

impl ProcessHandle {
    /// Opens `pid` if it is still the process that started at `start_time` (see
    /// `ccrun_runtime::state::proc_stat`); `None` when it is gone.
    pub fn open(pid: i32, start_time: u64) -> Result<Option<ProcessHandle>> {
        if pid <= 0 {
            return Ok(None);
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(None);
            }
            return Err(err).context("pidfd_open");
        }
        // SAFETY: the syscall returned a new fd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Checked after opening: if the start time still matches, the pidfd holds the
        // right process, whatever happens to the pid later.
        if !ccrun_runtime::state::process_is_alive(pid, start_time) {
            return Ok(None);
        }
        Ok(Some(ProcessHandle { pidfd }))
    }

    /// Sends `signal`; a process that just exited is not an error.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).with_context(|| format!("sending {signal}"));
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to end; true if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) if left.is_zero() => return Ok(false),
                Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => return Ok(true),
                Err(e) => return Err(e).context("poll on pidfd"),
            }
        }
    }
}

/// Parses a signal as Docker accepts it: `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal {text:?}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&name) {
        Ok(sig) => Ok(sig),
        Err(_) => bail!("invalid signal {text:?}"),
    }
}

/// Detaches the calling (forked) process from its caller: a session of its own, and
/// `/dev/null` as its stdin, stdout and stderr, so that it holds none of the caller's
/// terminal or pipes while it lives on.
pub fn detach_from_caller() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("term").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9").ok(), Some(Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn own_process_is_open_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let (start, _) = ccrun_runtime::state::proc_stat(me).expect("own stat");
        assert!(ProcessHandle::open(me, start).expect("open").is_some());
        assert!(ProcessHandle::open(me, start + 1).expect("open").is_none());
    }
}
