//! `-t`: the container gets a pseudo-terminal (made by the runtime inside the
//! container, whose master ccrun holds). ccrun puts its own terminal in raw
//! mode (restored on drop), relays bytes between it and the pty's master, keeps the
//! window size in sync on SIGWINCH, forwards other signals, and returns when the
//! container's process exits. ^C reaches the container as a byte its terminal turns
//! into SIGINT, so it never stops ccrun itself.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use ccrun_monitor::logfile::Stream;
use ccrun_runtime::{ExitStatus, Forwarder};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::termios::{self, SetArg, Termios};

use crate::relay::{forward_pending, set_nonblocking, signal_fd, watch, OutputSink};

fn window_size(fd: BorrowedFd<'_>) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize`, which `ws` is.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (ret == 0).then_some(ws)
}

/// ccrun's own terminal size (from stdin, else stdout); `None` without a terminal.
pub fn own_window_size() -> Option<nix::pty::Winsize> {
    window_size(std::io::stdin().as_fd()).or_else(|| window_size(std::io::stdout().as_fd()))
}

/// Gives the terminal whose master is `master` the size `ws`.
pub fn set_window_size(master: BorrowedFd<'_>, ws: &nix::pty::Winsize) {
    // SAFETY: TIOCSWINSZ reads one `struct winsize`; a failure only means no resize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// Gives the container's terminal ccrun's own terminal size (from stdin, else stdout).
/// Called before the container starts so its first look at the size is right.
pub fn sync_window_size(master: BorrowedFd<'_>) {
    if let Some(ws) = own_window_size() {
        set_window_size(master, &ws);
    }
}

/// ccrun's terminal in raw mode for as long as this lives.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Switches stdin's terminal to raw mode; `None` when stdin is not a terminal.
    pub fn enter() -> Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return Ok(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("setting raw mode")?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Relays between ccrun's stdio and the pty `master` (stdin only when `interactive`)
/// until process `pid` exits; forwards the signals `forwarder` has blocked.
pub fn relay(
    forwarder: &Forwarder,
    master: &OwnedFd,
    pid: i32,
    interactive: bool,
    sink: &mut OutputSink,
) -> Result<ExitStatus> {
    let sfd = signal_fd(forwarder)?;
    set_nonblocking(master.as_fd())?;
    let stdin = std::io::stdin();
    let mut stdin_open = interactive;
    let mut master_open = true;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if let Some(status) = ccrun_runtime::signals::try_reap(pid)? {
            if master_open {
                pump_master(master.as_fd(), &mut buf, sink)?;
            }
            sink.finish();
            return Ok(status);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let master_at = watch(&mut fds, master_open, master.as_fd());
        let stdin_at = watch(&mut fds, stdin_open, stdin.as_fd());
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready =
            |at: Option<usize>| at.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()));
        let (signal_ready, master_ready, stdin_ready) =
            (ready(Some(0)), ready(master_at), ready(stdin_at));
        drop(fds);
        if signal_ready {
            forward_pending(&sfd, pid, |sig| {
                // The terminal's size is ccrun's to pass on; the kernel tells the program.
                let ours = sig == Signal::SIGWINCH;
                if ours {
                    sync_window_size(master.as_fd());
                }
                ours
            });
        }
        if master_ready {
            master_open = pump_master(master.as_fd(), &mut buf, sink)?;
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    // End of input: the terminal's EOF character tells the program.
                    let _ = write_all(master.as_fd(), &[4]);
                    stdin_open = false;
                }
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

/// Copies what the master has to stdout and the log; false once the slave side is gone.
fn pump_master(master: BorrowedFd<'_>, buf: &mut [u8], sink: &mut OutputSink) -> Result<bool> {
    loop {
        match nix::unistd::read(master.as_raw_fd(), buf) {
            Ok(0) | Err(Errno::EIO) => return Ok(false),
            Ok(n) => sink.emit(Stream::Stdout, &buf[..n]),
            Err(Errno::EAGAIN) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("reading the terminal"),
        }
    }
}

/// Writes all of `data` to the terminal (or pipe) `fd`, waiting while it is full.
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EAGAIN | Errno::EINTR) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            // The container closed its terminal; what it did not read is moot.
            Err(Errno::EIO) => return Ok(()),
            Err(e) => return Err(e).context("writing to the terminal"),
        }
    }
    Ok(())
}
