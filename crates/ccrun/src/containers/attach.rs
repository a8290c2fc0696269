//! Attaching to a container through its monitor's attach socket
//! (`<container dir>/attach.sock`, protocol in `ccrun_monitor::attach`): output
//! relayed to ccrun's stdout and stderr, ccrun's stdin written to the container's
//! input, the detach keys (default Ctrl-P Ctrl-Q) that leave it running, and
//! signals proxied to it.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_monitor::attach::{self as protocol, Decoder, Kind};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::process::ProcessHandle;
use super::{ContainerStore, Record, Status};
use crate::tty;

/// File name of the attach socket in the container directory.
pub const SOCKET_FILE: &str = "attach.sock";

/// Docker's default detach keys.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The socket's path through an open descriptor of its directory: storage roots can
/// be deep enough to pass the 108 bytes a socket address holds.
struct SocketPath {
    _dir: std::fs::File,
    path: PathBuf,
}

impl SocketPath {
    fn new(dir: &Path) -> Result<SocketPath> {
        let handle =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}/{SOCKET_FILE}",
            handle.as_raw_fd()
        ));
        Ok(SocketPath { _dir: handle, path })
    }
}

/// Makes the listening attach socket of the container in `dir` (replacing one a
/// previous run left), for its monitor.
pub fn listen(dir: &Path) -> Result<OwnedFd> {
    let socket = SocketPath::new(dir)?;
    match std::fs::remove_file(&socket.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("removing the old attach socket"),
    }
    let listener = UnixListener::bind(&socket.path).context("creating the attach socket")?;
    listener
        .set_nonblocking(true)
        .context("setting up the attach socket")?;
    Ok(OwnedFd::from(listener))
}

/// Connects to the attach socket of the container in `dir` and asks for its input
/// (`stdin`) or for output only.
pub fn connect(dir: &Path, stdin: bool) -> Result<UnixStream> {
    let socket = SocketPath::new(dir)?;
    let mut stream = UnixStream::connect(&socket.path)?;
    let request = if stdin {
        protocol::WANT_STDIN
    } else {
        protocol::OUTPUT_ONLY
    };
    stream
        .write_all(&[request])
        .context("writing to the attach socket")?;
    Ok(stream)
}

/// Removes the attach socket of the container in `dir` (its monitor has ended).
pub fn remove_socket(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SOCKET_FILE));
}

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`, …) into bytes;
/// an empty value turns detaching off.
pub fn parse_detach_keys(text: &str) -> Result<Vec<u8>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|key| {
            let control = key
                .strip_prefix("ctrl-")
                .filter(|rest| rest.len() == 1)
                .map(|rest| rest.as_bytes()[0].to_ascii_lowercase());
            match (control, key.as_bytes()) {
                (Some(c @ b'a'..=b'z'), _) => Ok(c - b'a' + 1),
                (Some(b'@'), _) => Ok(0),
                (Some(c @ (b'[' | b'\\' | b']' | b'^' | b'_')), _) => Ok(c - b'[' + 27),
                (None, [c]) if c.is_ascii() => Ok(*c),
                _ => bail!(
                    "invalid --detach-keys {text:?}: use a comma-separated list of characters \
                     and ctrl-<a-z, @, [, \\, ], ^, _>"
                ),
            }
        })
        .collect()
}

/// Spots the detach keys in what is typed, holding back a partial match until it
/// is complete or broken.
#[derive(Debug)]
struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    /// Passes `input` on into `out`; true when the keys were typed (what came
    /// before them is in `out`, what came after is dropped).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &byte in input {
            if self.keys.is_empty() {
                out.push(byte);
                continue;
            }
            if byte == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if byte == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return true;
                }
            } else {
                out.push(byte);
            }
        }
        false
    }
}

/// How an attach session is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Relay ccrun's stdin to the container.
    pub stdin: bool,
    /// The container has a terminal: ccrun's goes raw, its size follows.
    pub tty: bool,
    /// The bytes that detach (empty: none).
    pub detach_keys: Vec<u8>,
    /// Forward the signals ccrun gets to the container.
    pub sig_proxy: bool,
    /// End of ccrun's input ends the container's (Ctrl-D on its terminal), as for
    /// `run -it`; an `attach` leaves the container's input open.
    pub eof_ends_input: bool,
}

/// How an attach session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The container ended with this exit code.
    Exited(i32),
    /// The user typed the detach keys; the container goes on.
    Detached,
    /// The monitor closed the connection without an exit (it died, or this client
    /// fell behind).
    Lost,
}

/// The signals the session takes: the forwarded ones with `sig_proxy`, and the
/// window changes of a terminal.
fn session_signals(opts: &Options) -> SigSet {
    let mut set = SigSet::empty();
    if opts.sig_proxy {
        for &signal in ccrun_runtime::signals::FORWARDED {
            set.add(signal);
        }
    }
    if opts.tty {
        set.add(Signal::SIGWINCH);
    }
    set
}

/// Relays between ccrun's stdio and the container `record` over `stream` (already
/// connected, see [`connect`]) until it ends or the user detaches.
pub fn relay(stream: &UnixStream, record: &Record, opts: &Options) -> Result<Outcome> {
    let signals = session_signals(opts);
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old_mask))
        .context("blocking signals")?;
    let raw = if opts.tty && opts.stdin {
        tty::RawMode::enter()?
    } else {
        None
    };
    let result = Session {
        stream,
        record,
        opts,
        input: None,
        stdin_open: opts.stdin,
        matcher: DetachMatcher {
            keys: opts.detach_keys.clone(),
            matched: 0,
        },
        decoder: Decoder::default(),
        exit: None,
    }
    .run(&signals);
    drop(raw);
    // Signals that arrived meanwhile were handled; restore the caller's mask.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    result
}

/// One attach session's state.
struct Session<'a> {
    stream: &'a UnixStream,
    record: &'a Record,
    opts: &'a Options,
    /// The container's input, once the monitor sent it.
    input: Option<OwnedFd>,
    stdin_open: bool,
    matcher: DetachMatcher,
    decoder: Decoder,
    exit: Option<i32>,
}

impl Session<'_> {
    fn run(mut self, signals: &SigSet) -> Result<Outcome> {
        let sfd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("signalfd")?;
        let stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let reading_stdin = self.stdin_open && self.input.is_some();
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stream.as_fd(), PollFlags::POLLIN),
            ];
            if reading_stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (signal_ready, socket_ready, stdin_ready) = (ready(0), ready(1), ready(2));
            drop(fds);
            if signal_ready {
                self.handle_signals(&sfd);
            }
            if socket_ready && !self.read_socket(&mut buf)? {
                return Ok(self.exit.map_or(Outcome::Lost, Outcome::Exited));
            }
            if stdin_ready && self.read_stdin(stdin.as_fd(), &mut buf) {
                return Ok(Outcome::Detached);
            }
        }
    }

    fn handle_signals(&self, sfd: &SignalFd) {
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if signal == Signal::SIGWINCH && self.opts.tty {
                if let Some(input) = &self.input {
                    tty::sync_window_size(input.as_fd());
                }
                continue;
            }
            if self.opts.sig_proxy {
                if let Ok(Some(process)) =
                    ProcessHandle::open(self.record.pid, self.record.pid_start_time)
                {
                    let _ = process.signal(signal);
                }
            }
        }
    }

    /// Reads frames from the monitor; false at the end of the connection.
    fn read_socket(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let (n, fds) = match recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().context("reading the attach socket")? {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        fds.extend(received);
                    }
                }
                (msg.bytes, fds)
            }
            Err(Errno::EINTR | Errno::EAGAIN) => return Ok(true),
            Err(Errno::ECONNRESET) => return Ok(false),
            Err(e) => return Err(e).context("reading the attach socket"),
        };
        for fd in fds {
            // SAFETY: SCM_RIGHTS gave this process a new descriptor nothing else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            if self.opts.tty {
                tty::sync_window_size(fd.as_fd());
            }
            self.input = Some(fd);
        }
        if n == 0 {
            return Ok(false);
        }
        self.decoder.push(&buf[..n]);
        while let Some((kind, payload)) = self
            .decoder
            .next_frame()
            .map_err(|e| anyhow::anyhow!("the attach socket: {e}"))?
        {
            let written = match kind {
                Kind::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&payload).and_then(|()| out.flush())
                }
                Kind::Stderr => std::io::stderr().lock().write_all(&payload),
                Kind::Exit => {
                    self.exit = protocol::exit_code(&payload);
                    Ok(())
                }
                Kind::Stdin | Kind::NoStdin => Ok(()),
            };
            if let Err(e) = written {
                tracing::debug!("container output not shown: {e}");
            }
        }
        Ok(true)
    }

    /// Passes what was typed to the container; true when it was the detach keys.
    fn read_stdin(&mut self, stdin: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
        let Some(input) = &self.input else {
            return false;
        };
        match nix::unistd::read(stdin.as_raw_fd(), buf) {
            Ok(0) => {
                self.stdin_open = false;
                if self.opts.eof_ends_input && self.opts.tty {
                    // The terminal's EOF character tells the program.
                    let _ = tty::write_all(input.as_fd(), &[4]);
                }
                false
            }
            Ok(n) => {
                let mut out = Vec::with_capacity(n);
                let detach = self.matcher.feed(&buf[..n], &mut out);
                if tty::write_all(input.as_fd(), &out).is_err() {
                    // The container closed its input: nothing more to pass on.
                    self.stdin_open = false;
                }
                detach
            }
            Err(Errno::EINTR | Errno::EAGAIN) => false,
            Err(_) => {
                self.stdin_open = false;
                false
            }
        }
    }
}

/// What an attach session returns to its command: the container's exit code once
/// its record is settled (so that `--rm` has removed it), or 0 when detached.
pub fn finish(store: &ContainerStore, record: &Record, outcome: Outcome) -> Result<i32> {
    let code = match outcome {
        Outcome::Detached => return Ok(0),
        Outcome::Exited(code) => Some(code),
        Outcome::Lost => None,
    };
    let settled = store.wait_settled(&record.id, Some(std::time::Duration::from_secs(30)));
    let settled = match settled {
        Ok(settled) => settled,
        Err(e) => {
            tracing::warn!("{e:#}");
            None
        }
    };
    if let Some(r) = &settled {
        if r.oom_killed {
            eprintln!(
                "ccrun: container {} was OOM killed (memory limit reached)",
                r.short_id()
            );
        }
    }
    match code.or_else(|| settled.as_ref().and_then(|r| r.exit_code)) {
        Some(code) => Ok(code),
        None => bail!(
            "lost the connection to the monitor of {} before it ended",
            record.name
        ),
    }
}

/// Why `record` cannot be attached to, if it cannot.
pub fn check_attachable(record: &Record) -> Result<()> {
    if record.status != Status::Running {
        bail!("you cannot attach to a stopped container, start it first");
    }
    if record.paused {
        bail!("you cannot attach to a paused container, unpause it first");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker() {
        assert_eq!(
            parse_detach_keys(DEFAULT_DETACH_KEYS).expect("keys"),
            [16, 17]
        );
        assert_eq!(
            parse_detach_keys("ctrl-a,x,ctrl-@,ctrl-[,ctrl-_").expect("keys"),
            [1, b'x', 0, 27, 31]
        );
        assert!(parse_detach_keys("").expect("keys").is_empty());
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
    }

    #[test]
    fn matcher_holds_back_partial_keys() {
        let mut m = DetachMatcher {
            keys: vec![16, 17],
            matched: 0,
        };
        let mut out = Vec::new();
        assert!(!m.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        // A broken match passes the held byte on; a repeated first key restarts it.
        assert!(!m.feed(b"c\x10\x10", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        assert!(m.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        let mut none = DetachMatcher {
            keys: Vec::new(),
            matched: 0,
        };
        let mut out = Vec::new();
        assert!(!none.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
