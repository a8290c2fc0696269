//! Foreground `run` and `exec`: waits for the process, forwarding signals; with a
//! terminal the runtime kept (no console socket), relays it to our own stdio, in raw
//! mode when stdin is a terminal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use ccrun_runtime::signals::try_reap;
use ccrun_runtime::{ExitStatus, Forwarder};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg};
use nix::unistd::Pid;

/// Waits for `pid`, relaying `console` when there is one; returns how it ended.
pub fn wait(forwarder: &Forwarder, console: Option<OwnedFd>, pid: i32) -> Result<ExitStatus> {
    match console {
        None => Ok(forwarder.forward_until_exit(pid)?),
        Some(master) => relay_terminal(forwarder, &master, pid),
    }
}

fn relay_terminal(forwarder: &Forwarder, master: &OwnedFd, pid: i32) -> Result<ExitStatus> {
    let stdin = std::io::stdin();
    copy_window_size(stdin.as_fd(), master.as_fd());
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("setting raw mode")?;
    }
    let result = pump(forwarder, master, pid);
    if let Some(saved) = &saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, saved);
    }
    result
}

fn pump(forwarder: &Forwarder, master: &OwnedFd, pid: i32) -> Result<ExitStatus> {
    let sfd = SignalFd::with_flags(
        forwarder.signals(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")?;
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(status) = try_reap(pid)? {
            while master_open && copy_once(master.as_fd(), 1, &mut buf, true)? {}
            return Ok(status);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(Signal::SIGWINCH) => copy_window_size(stdin.as_fd(), master.as_fd()),
                    Ok(sig) => {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                }
            }
        }
        let mut at = 1;
        if master_open {
            if ready[at] {
                master_open = copy_once(master.as_fd(), 1, &mut buf, false)?;
            }
            at += 1;
        }
        if stdin_open && ready[at] {
            stdin_open = copy_once(stdin.as_fd(), master.as_raw_fd(), &mut buf, false)?;
        }
    }
}

/// Copies one read from `from` to fd `to`; false at end of input. `draining` reads
/// without blocking (the master was made non-blocking for it).
fn copy_once(from: BorrowedFd<'_>, to: i32, buf: &mut [u8], draining: bool) -> Result<bool> {
    if draining {
        let flags = nix::fcntl::fcntl(from.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(from.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    }
    match nix::unistd::read(from.as_raw_fd(), buf) {
        Ok(0) | Err(Errno::EIO) => Ok(false),
        Ok(n) => {
            write_all(to, &buf[..n])?;
            Ok(true)
        }
        Err(Errno::EAGAIN) => Ok(!draining),
        Err(Errno::EINTR) => Ok(true),
        Err(e) => Err(e).context("relaying the terminal"),
    }
}

fn write_all(fd: i32, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: `fd` is one of our open descriptors for the duration of the call.
        let target = unsafe { BorrowedFd::borrow_raw(fd) };
        match nix::unistd::write(target, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(e).context("writing relayed output"),
        }
    }
    Ok(())
}

fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize`, TIOCSWINSZ reads one; failures
    // only mean the size is not passed on.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The size (rows, columns) of the terminal at `fd`, if it is one.
pub fn terminal_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize`, which `ws` is.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (ret == 0).then_some((ws.ws_row, ws.ws_col))
}
