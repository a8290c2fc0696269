//! `ccrun-monitor`: the parent of a detached container's init process.
//!
//! The engine forks, creates the container from the fork (so that the
//! container's init is the fork's child) and executes this program in the fork.
//! It then copies the container's output into the log until the process exits,
//! reaps it, writes the exit file and executes the engine's exit command
//! (cleanup). See [`args::USAGE`] for the command line.
//!
//! With `--attach`, clients of a listening unix socket (`ccrun attach`, and
//! `ccrun run -it`) get the output as it arrives and the container's input
//! descriptor (see [`ccrun_monitor::attach`]).
//!
//! It runs for the container's whole life, so it stays small: no threads, one
//! 32 KiB read buffer (and one frame buffer while clients are attached), libc and
//! std only.

mod args;
mod health;
mod sys;

use std::io;
use std::os::unix::io::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::exit;
use std::time::SystemTime;

use args::{Args, Command, Output};
use ccrun_monitor::attach::{self as protocol, Kind};
use ccrun_monitor::{exitfile, logfile};
use logfile::{LogWriter, Stream};

/// How much a terminal may still hold when the container exits. Pipes report
/// their capacity instead (see [`drain`]).
const TTY_DRAIN_LIMIT: usize = 1024 * 1024;

/// How often to check on the process when pidfds are unavailable (Linux < 5.3).
const FALLBACK_POLL_MS: libc::c_int = 100;

fn main() {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return;
        }
        Err(message) => {
            eprintln!("ccrun-monitor: {message}\n\n{}", args::USAGE);
            exit(1);
        }
    };
    if let Err(message) = set_up(&args) {
        eprintln!("ccrun-monitor: {message}");
        exit(1);
    }
    monitor(&args);
    run_exit_command(&args.exit_command);
}

/// Detaches the monitor from everything it does not need and checks that it
/// can do its job.
fn set_up(args: &Args) -> Result<(), String> {
    sys::ignore_signals();
    // Do not keep the engine's working directory (maybe a mount point) busy.
    std::env::set_current_dir("/").map_err(|e| format!("cannot change to /: {e}"))?;
    let fds = args.fds();
    if let Some(fd) = fds.iter().find(|&&fd| !sys::is_open(fd)) {
        return Err(format!("fd {fd} is not open"));
    }
    // Fds inherited from the engine by accident could hold the container's
    // pipes open (no EOF) or keep files busy for the container's whole life.
    sys::close_other_fds(&fds).map_err(|e| format!("cannot close inherited fds: {e}"))?;
    match sys::is_child(args.pid) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "process {} is not a child of the monitor",
            args.pid
        )),
        Err(e) => Err(format!("cannot check process {}: {e}", args.pid)),
    }
}

/// An fd the container's output arrives on.
struct Source {
    /// -1 once closed.
    fd: RawFd,
    stream: Stream,
}

/// The log, or nothing when it cannot be written: output is then read and
/// dropped so that the container never blocks on a full pipe.
struct Log<'a> {
    path: &'a Path,
    writer: Option<LogWriter>,
    reported: bool,
}

impl Log<'_> {
    fn write(&mut self, stream: Stream, data: &[u8]) {
        if let Some(writer) = &mut self.writer {
            let result = writer.write(stream, data);
            self.check(result);
        }
    }

    fn finish(&mut self) {
        if let Some(writer) = &mut self.writer {
            let result = writer.finish();
            self.check(result);
        }
    }

    /// Reports the first failure only: a full disk would otherwise produce a
    /// message per read.
    fn check(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            if !self.reported {
                self.reported = true;
                eprintln!(
                    "ccrun-monitor: cannot write the log {}: {e}; dropping output",
                    self.path.display()
                );
            }
        }
    }
}

/// At most this many attach clients at once; more are turned away.
const MAX_CLIENTS: usize = 32;

/// One client of the attach socket.
struct Client {
    fd: RawFd,
    /// Its request has been answered.
    answered: bool,
}

/// The attach socket and its clients.
struct Attach {
    /// The listening socket; -1 without `--attach`.
    listener: RawFd,
    clients: Vec<Client>,
    /// The container's input handed to clients that ask: the stdin pipe's write
    /// end, or a duplicate of the terminal's master side.
    stdin: Option<RawFd>,
    /// Reused for every frame.
    frame: Vec<u8>,
}

impl Attach {
    fn new(args: &Args) -> Attach {
        let stdin = match args.output {
            // A duplicate, since the output side closes its fd at the end.
            Output::Tty(fd) if args.attach.is_some() => sys::dup(fd)
                .map_err(|e| eprintln!("ccrun-monitor: cannot duplicate the terminal: {e}"))
                .ok(),
            _ => args.stdin,
        };
        Attach {
            listener: args.attach.unwrap_or(-1),
            clients: Vec::new(),
            stdin,
            frame: Vec::new(),
        }
    }

    /// Sends a frame to every client; one that cannot take it now is dropped.
    fn broadcast(&mut self, kind: Kind, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        self.frame.clear();
        self.frame
            .extend_from_slice(&protocol::header(kind, data.len()));
        self.frame.extend_from_slice(data);
        let frame = &self.frame;
        self.clients.retain(|client| {
            let sent = sys::send_all_now(client.fd, frame);
            if !sent {
                sys::close(client.fd);
            }
            sent
        });
    }

    /// Takes every pending connection.
    fn accept_all(&mut self) {
        loop {
            match sys::accept(self.listener) {
                Ok(Some(fd)) if self.clients.len() < MAX_CLIENTS => self.clients.push(Client {
                    fd,
                    answered: false,
                }),
                Ok(Some(fd)) => sys::close(fd),
                Ok(None) => return,
                Err(e) => {
                    eprintln!("ccrun-monitor: accepting an attach client: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what client `fd` sent: answers its request, drops it once it hung up.
    fn serve(&mut self, fd: RawFd) {
        let Some(at) = self.clients.iter().position(|c| c.fd == fd) else {
            return;
        };
        let mut request = [0u8; 16];
        let keep = match sys::read(fd, &mut request) {
            Ok(0) => false,
            Ok(n) => {
                let client = &mut self.clients[at];
                if client.answered || !request[..n].contains(&protocol::WANT_STDIN) {
                    true
                } else {
                    client.answered = true;
                    match self.stdin {
                        Some(stdin) => {
                            sys::send_with_fd(fd, &protocol::header(Kind::Stdin, 0), stdin).is_ok()
                        }
                        None => sys::send_all_now(fd, &protocol::header(Kind::NoStdin, 0)),
                    }
                }
            }
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        };
        if !keep {
            sys::close(fd);
            self.clients.remove(at);
        }
    }

    /// Tells every client how the container ended and lets them go.
    fn finish(&mut self, code: i32) {
        self.broadcast(Kind::Exit, &code.to_be_bytes());
        for client in self.clients.drain(..) {
            sys::close(client.fd);
        }
    }
}

/// Where output goes: the log and the attached clients.
struct Sinks<'a> {
    log: Log<'a>,
    attach: Attach,
}

impl Sinks<'_> {
    fn write(&mut self, stream: Stream, data: &[u8]) {
        self.log.write(stream, data);
        let kind = match stream {
            Stream::Stdout => Kind::Stdout,
            Stream::Stderr => Kind::Stderr,
        };
        self.attach.broadcast(kind, data);
    }
}

/// Copies output into the log until the process exits, reaps it, then saves
/// the rest of the output and the exit file.
fn monitor(args: &Args) {
    let mut log = Log {
        path: &args.log,
        writer: None,
        reported: false,
    };
    match LogWriter::open_with(
        &args.log,
        args.log_max_size,
        args.log_format,
        args.log_rotated,
    ) {
        Ok(writer) => log.writer = Some(writer),
        Err(e) => log.check(Err(e)),
    }
    let mut sinks = Sinks {
        log,
        attach: Attach::new(args),
    };
    // A client that connected before the container's output began (`run -it`
    // attaches before its monitor runs) sees all of it.
    if sinks.attach.listener >= 0 {
        sinks.attach.accept_all();
    }
    let mut sources: Vec<Source> = match args.output {
        Output::Pipes { stdout, stderr } => vec![
            Source {
                fd: stdout,
                stream: Stream::Stdout,
            },
            Source {
                fd: stderr,
                stream: Stream::Stderr,
            },
        ],
        Output::Tty(fd) => vec![Source {
            fd,
            stream: Stream::Stdout,
        }],
    };
    for source in &mut sources {
        // Reads must never block: after the exit, other processes may still
        // hold the write side open without writing.
        if let Err(e) = sys::set_nonblocking(source.fd) {
            eprintln!("ccrun-monitor: cannot use fd {}: {e}", source.fd);
            close_source(source);
        }
    }
    let pidfd = match sys::pidfd_open(args.pid) {
        Ok(fd) => Some(fd),
        Err(e) => {
            eprintln!("ccrun-monitor: no pidfd ({e}); checking on the process every {FALLBACK_POLL_MS} ms");
            None
        }
    };

    let mut buf = [0u8; 32 * 1024];
    let mut checks = health::Checks::new(args.health.as_ref());
    copy_until_exit(
        args.pid,
        pidfd,
        &mut sources,
        &mut sinks,
        &mut buf,
        &mut checks,
    );
    checks.stop();
    let code = match sys::wait(args.pid) {
        Ok(status) => sys::exit_code(status),
        Err(e) => {
            eprintln!("ccrun-monitor: cannot reap process {}: {e}", args.pid);
            -1
        }
    };
    let finished = SystemTime::now();
    sys::reap_exited_children();

    drain(&mut sources, &mut sinks, &mut buf);
    sinks.log.finish();
    if let Err(e) = exitfile::write(&args.exit_file, code, finished) {
        eprintln!(
            "ccrun-monitor: cannot write the exit file {}: {e}",
            args.exit_file.display()
        );
    }
    sinks.attach.finish(code);
    drop(sinks);
    // Nothing may reach the exit command: the log, the pidfd, the output and
    // --keep-fd fds (which keep the container's stdin open).
    if let Err(e) = sys::close_other_fds(&[]) {
        eprintln!("ccrun-monitor: cannot close fds: {e}");
    }
}

/// Copies output as it arrives until the process exits, and serves attach clients.
fn copy_until_exit(
    pid: libc::pid_t,
    pidfd: Option<RawFd>,
    sources: &mut [Source],
    sinks: &mut Sinks,
    buf: &mut [u8],
    checks: &mut health::Checks,
) {
    let (process_fd, timeout) = match pidfd {
        Some(fd) => (fd, -1),
        None => (-1, FALLBACK_POLL_MS),
    };
    let pollfd = |fd: RawFd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = Vec::new();
    loop {
        // poll ignores negative fds: closed sources, a missing pidfd, listener or
        // healthcheck. Slots: the process, two sources, the listener, the running
        // healthcheck, then the clients.
        fds.clear();
        fds.push(pollfd(process_fd));
        fds.extend(sources.iter().map(|s| pollfd(s.fd)));
        fds.resize(3, pollfd(-1));
        fds.push(pollfd(sinks.attach.listener));
        fds.push(pollfd(checks.pollfd()));
        fds.extend(sinks.attach.clients.iter().map(|c| pollfd(c.fd)));
        match sys::poll(&mut fds, checks.timeout_ms(timeout)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Cannot happen with valid arguments; waiting for the process
                // is all that is left.
                eprintln!("ccrun-monitor: poll: {e}");
                return;
            }
        }
        for (slot, source) in fds[1..3].iter().zip(sources.iter_mut()) {
            if slot.revents != 0 {
                read_once(source, sinks, buf);
            }
        }
        for slot in fds[5..].iter().filter(|slot| slot.revents != 0) {
            sinks.attach.serve(slot.fd);
        }
        if fds[3].revents != 0 {
            sinks.attach.accept_all();
        }
        let exited = match pidfd {
            Some(_) => fds[0].revents != 0,
            None => sys::has_exited(pid).unwrap_or(true),
        };
        if exited {
            return;
        }
        checks.tick();
    }
}

/// Saves what the process wrote before it exited without waiting for more.
fn drain(sources: &mut [Source], sinks: &mut Sinks, buf: &mut [u8]) {
    for source in sources {
        // Whatever the process wrote before exiting fits in the pipe. Anything
        // beyond comes from processes that outlived it, which could keep the
        // monitor reading forever.
        let limit = sys::pipe_capacity(source.fd).unwrap_or(TTY_DRAIN_LIMIT);
        let mut total = 0;
        while source.fd >= 0 && total < limit {
            match read_once(source, sinks, buf) {
                0 => break,
                n => total += n,
            }
        }
    }
}

/// Reads once from `source` into the log and to attached clients. Returns how
/// many bytes that was: 0 when nothing is available now or the source has been
/// closed.
fn read_once(source: &mut Source, sinks: &mut Sinks, buf: &mut [u8]) -> usize {
    loop {
        match sys::read(source.fd, buf) {
            Ok(0) => {
                close_source(source);
                return 0;
            }
            Ok(n) => {
                sinks.write(source.stream, &buf[..n]);
                return n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
            // EIO from a terminal's master side means that its last user
            // closed it: the end of the output, like EOF from a pipe. Nothing
            // more can be read after any other error either.
            Err(e) => {
                if e.raw_os_error() != Some(libc::EIO) {
                    eprintln!("ccrun-monitor: reading fd {}: {e}", source.fd);
                }
                close_source(source);
                return 0;
            }
        }
    }
}

fn close_source(source: &mut Source) {
    sys::close(source.fd);
    source.fd = -1;
}

/// Executes the exit command, if any, in place of the monitor.
fn run_exit_command(command: &[std::ffi::OsString]) {
    let Some((program, args)) = command.split_first() else {
        return;
    };
    sys::restore_signals();
    let err = std::process::Command::new(program).args(args).exec();
    eprintln!("ccrun-monitor: cannot execute {program:?}: {err}");
    exit(127);
}
