//! Signal handling: the foreground forwarder (ccrun relays SIGINT/SIGTERM/SIGHUP/… to
//! the container and reaps it) and the reset the container process needs before exec.

use nix::errno::Errno;
use nix::sys::signal::{
    kill, sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Signals relayed from ccrun to the container.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with a code.
    Exited(i32),
    /// Killed by a signal.
    Signaled(Signal),
}

impl ExitStatus {
    /// The shell convention: the code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s as i32,
        }
    }

    fn from_wait(status: WaitStatus) -> Option<ExitStatus> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitStatus::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => Some(ExitStatus::Signaled(sig)),
            _ => None,
        }
    }
}

/// Blocks the forwarded signals and SIGCHLD in this process so they can be taken with
/// `sigwait`. Call before creating the container: the init inherits the mask and
/// resets it (see [`reset_for_exec`]) before exec.
#[derive(Debug)]
pub struct Forwarder {
    set: SigSet,
}

impl Forwarder {
    /// Blocks the signals.
    pub fn block() -> Result<Forwarder> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        set.add(Signal::SIGCHLD);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| Error::sys("blocking signals", e))?;
        Ok(Forwarder { set })
    }

    /// Relays signals to `pid` until it exits, and returns how it ended.
    pub fn forward_until_exit(&self, pid: i32) -> Result<ExitStatus> {
        let pid = Pid::from_raw(pid);
        loop {
            // The child may have exited before we got here; check first.
            if let Some(exit) = try_reap(pid.as_raw())? {
                return Ok(exit);
            }
            match self.set.wait() {
                Ok(Signal::SIGCHLD) => {}
                Ok(sig) => match kill(pid, sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(Error::sys(format!("forwarding {sig}"), e)),
                },
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("sigwait", e)),
            }
        }
    }
}

impl Forwarder {
    /// The blocked signals (the forwarded ones and SIGCHLD), e.g. for a `signalfd`.
    pub fn signals(&self) -> &SigSet {
        &self.set
    }
}

/// Reaps `pid` if it has ended, without blocking.
pub fn try_reap(pid: i32) -> Result<Option<ExitStatus>> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => return Ok(ExitStatus::from_wait(status)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

/// Waits for `pid` without forwarding anything.
pub fn wait_for(pid: i32) -> Result<ExitStatus> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(status) => {
                if let Some(exit) = ExitStatus::from_wait(status) {
                    return Ok(exit);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

/// Unblocks every signal and restores default dispositions that Rust or ccrun changed
/// (Rust ignores SIGPIPE), so the container's program starts with a clean slate.
pub fn reset_for_exec() {
    // Failing to reset leaves at worst a signal blocked; there is no one to report to.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL does not run any code of ours.
        let _ = unsafe { sigaction(sig, &default) };
    }
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Installs a no-op handler for every catchable signal. PID 1 of a PID namespace only
/// receives signals it has a handler for; blocked + handled lets `sigwait` take them.
pub fn install_noop_handlers() {
    let action = SigAction::new(
        SigHandler::Handler(noop_handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: the handler is async-signal-safe (it does nothing).
        let _ = unsafe { sigaction(sig, &action) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_convention() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(ExitStatus::Signaled(Signal::SIGTERM).code(), 143);
    }
}
