//! Foreground output: what a container run in the foreground writes goes to ccrun's
//! own stdout and stderr and, as for a detached container, into its log (CRI format,
//! see `ccrun_monitor::logfile`), while ccrun forwards signals and waits for it.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use ccrun_monitor::logfile::{LogWriter, Stream};
use ccrun_runtime::signals::try_reap;
use ccrun_runtime::{ExitStatus, Forwarder};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// Where the container's output goes: ccrun's stdio and the container's log.
pub struct OutputSink {
    log: Option<LogWriter>,
    /// Whether stdout and stderr reach ccrun's own (`run -a`).
    shown: [bool; 2],
}

impl OutputSink {
    /// The sink of a foreground container: its log driver's file (none with
    /// `--log-driver none`; one that cannot be opened is reported once, and the
    /// output still reaches the terminal) and the streams `-a` attached.
    pub fn for_record(path: &Path, record: &crate::containers::Record) -> OutputSink {
        let o = &record.options;
        let mut sink = match o.log_driver.format() {
            Some(format) => OutputSink::opened(
                path,
                LogWriter::open_with(
                    path,
                    record.log_max_size,
                    format,
                    o.log_max_files.saturating_sub(1),
                ),
            ),
            None => OutputSink::stdio_only(),
        };
        sink.shown = [o.shows("stdout"), o.shows("stderr")];
        sink
    }

    fn opened(path: &Path, log: std::io::Result<LogWriter>) -> OutputSink {
        match log {
            Ok(log) => OutputSink {
                log: Some(log),
                shown: [true, true],
            },
            Err(e) => {
                eprintln!("ccrun: not logging to {}: {e}", path.display());
                OutputSink::stdio_only()
            }
        }
    }

    /// Output for ccrun's stdio only (e.g. an `exec`, which Docker does not log).
    pub fn stdio_only() -> OutputSink {
        OutputSink {
            log: None,
            shown: [true, true],
        }
    }

    /// Passes `data` from `stream` on. ccrun's own stdout may be closed (a pipe whose
    /// reader left); that must not stop the container or its log.
    pub fn emit(&mut self, stream: Stream, data: &[u8]) {
        let written = match stream {
            Stream::Stdout if !self.shown[0] => Ok(()),
            Stream::Stderr if !self.shown[1] => Ok(()),
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            }
            Stream::Stderr => std::io::stderr().lock().write_all(data),
        };
        if let Err(e) = written {
            tracing::debug!("container output not shown: {e}");
        }
        if let Some(log) = &mut self.log {
            if let Err(e) = log.write(stream, data) {
                eprintln!("ccrun: the log stops here: {e}");
                self.log = None;
            }
        }
    }

    /// Writes out partial lines still buffered.
    pub fn finish(&mut self) {
        if let Some(log) = &mut self.log {
            if let Err(e) = log.finish() {
                eprintln!("ccrun: finishing the log: {e}");
            }
        }
    }
}

/// Sets `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Reads what `fd` has now into `sink`; false once it reached its end.
fn pump(fd: BorrowedFd<'_>, stream: Stream, sink: &mut OutputSink, buf: &mut [u8]) -> Result<bool> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(0) => return Ok(false),
            Ok(n) => sink.emit(stream, &buf[..n]),
            Err(Errno::EAGAIN) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("reading the container's output"),
        }
    }
}

/// The signals `forwarder` blocked, readable from a non-blocking signalfd in a poll loop.
pub fn signal_fd(forwarder: &Forwarder) -> Result<SignalFd> {
    SignalFd::with_flags(
        forwarder.signals(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")
}

/// Forwards the signals pending on `sfd` to `pid`, except SIGCHLD (ours) and those
/// `handled_here` takes care of itself (returning true).
pub fn forward_pending(sfd: &SignalFd, pid: i32, mut handled_here: impl FnMut(Signal) -> bool) {
    while let Ok(Some(info)) = sfd.read_signal() {
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) if handled_here(sig) => {}
            Ok(sig) => {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    }
}

/// Adds `fd` to the poll set when `open`; returns its index there.
pub fn watch<'a>(fds: &mut Vec<PollFd<'a>>, open: bool, fd: BorrowedFd<'a>) -> Option<usize> {
    open.then(|| {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
        fds.len() - 1
    })
}

/// Relays the container's stdout and stderr pipes to `sink` and the signals
/// `forwarder` blocked to `pid` (unless not `proxy`: `--sig-proxy=false` takes them
/// and drops them), until `pid` exits; returns how it ended.
pub fn relay_pipes(
    forwarder: &Forwarder,
    stdout: OwnedFd,
    stderr: OwnedFd,
    pid: i32,
    sink: &mut OutputSink,
    proxy: bool,
) -> Result<ExitStatus> {
    let sfd = signal_fd(forwarder)?;
    set_nonblocking(stdout.as_fd())?;
    set_nonblocking(stderr.as_fd())?;
    let mut open = [true, true];
    let streams = [(&stdout, Stream::Stdout), (&stderr, Stream::Stderr)];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if let Some(status) = try_reap(pid)? {
            // The PID namespace died with its init: the pipes hold the rest.
            for (i, (fd, stream)) in streams.iter().enumerate() {
                if open[i] {
                    pump(fd.as_fd(), *stream, sink, &mut buf)?;
                }
            }
            sink.finish();
            return Ok(status);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let at = [
            watch(&mut fds, open[0], stdout.as_fd()),
            watch(&mut fds, open[1], stderr.as_fd()),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let signal_ready = ready(0);
        let pipe_ready = at.map(|a| a.is_some_and(ready));
        drop(fds);
        if signal_ready {
            forward_pending(&sfd, pid, |_| !proxy);
        }
        for (i, (fd, stream)) in streams.iter().enumerate() {
            if pipe_ready[i] {
                open[i] = pump(fd.as_fd(), *stream, sink, &mut buf)?;
            }
        }
    }
}
