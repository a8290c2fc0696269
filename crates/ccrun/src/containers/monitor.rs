//! Detached containers. ccrun forks a process that creates the container (so the
//! container's init is its child), reports back over a pipe, and then execs
//! `ccrun-monitor`, which keeps the container's output in its log, serves its attach
//! socket (see [`super::attach`]), reaps it, writes its exit file and runs
//! `ccrun container-cleanup` to settle the record.

use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_runtime::{Container, CreateOptions};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::unistd::{dup2, execv, fork, pipe2, setsid, ForkResult};
use oci_spec::runtime::Spec;

use super::launch::{mark_running, remove_stale_state};
use super::record::{EXIT_FILE, LOG_FILE};
use super::{attach, ContainerStore, Record};
use crate::cli::GlobalOpts;
use crate::exit::{self, Reported};

/// The monitor binary: `$CCRUN_MONITOR`, else `ccrun-monitor` next to ccrun.
fn monitor_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CCRUN_MONITOR") {
        return Ok(PathBuf::from(path));
    }
    let exe = ccrun_runtime::exeseal::original_exe().context("locating the ccrun binary")?;
    let path = exe.with_file_name("ccrun-monitor");
    if !path.is_file() {
        bail!(
            "the monitor binary {} is missing; install ccrun-monitor next to ccrun \
             (cargo build --release builds both) or set CCRUN_MONITOR",
            path.display()
        );
    }
    Ok(path)
}

/// Pipes and files wired between the container, the monitor and ccrun.
struct Wiring {
    /// The container's stdin, stdout and stderr, when it has no terminal.
    container: Option<[OwnedFd; 3]>,
    /// Read ends of stdout and stderr, for the monitor.
    logged: Option<[OwnedFd; 2]>,
    /// The write end of the container's stdin pipe (`-i`), kept open by the monitor.
    stdin_writer: Option<OwnedFd>,
}

impl Wiring {
    fn new(terminal: bool, interactive: bool) -> Result<Wiring> {
        if terminal {
            return Ok(Wiring {
                container: None,
                logged: None,
                stdin_writer: None,
            });
        }
        let (stdin_r, stdin_w) = if interactive {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
            (r, Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
            (OwnedFd::from(null), None)
        };
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        Ok(Wiring {
            container: Some([stdin_r, out_w, err_w]),
            logged: Some([out_r, err_r]),
            stdin_writer: stdin_w,
        })
    }
}

/// Starts the container with a detached monitor; returns once it runs (or failed to).
pub fn start_detached(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    spec: Spec,
) -> Result<()> {
    spawn(global, store, record, spec, false).map(|_| ())
}

/// Starts the container under a monitor, as [`start_detached`] does, with ccrun
/// connected to its attach socket (asking for its input) before the container
/// starts, so that none of its output is missed: `run -it`, `start -ai`.
pub fn start_attached(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    spec: Spec,
) -> Result<UnixStream> {
    spawn(global, store, record, spec, true)?
        .context("internal error: no connection to the attach socket")
}

fn spawn(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    mut spec: Spec,
    connect: bool,
) -> Result<Option<UnixStream>> {
    crate::networks::refresh_shared_netns(store, record, &mut spec)?;
    crate::commands::sharing::refresh(store, record, &mut spec)?;
    let monitor = monitor_binary()?;
    let ccrun = ccrun_runtime::exeseal::original_exe().context("locating the ccrun binary")?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let wiring = Wiring::new(terminal, record.interactive)?;
    let dir = store.dir_of(&record.id);
    let listener = attach::listen(&dir)?;
    // Connected before the fork: the monitor takes this connection before it reads
    // any output.
    let client = connect.then(|| attach::connect(&dir, true)).transpose()?;
    let window = if connect && terminal {
        crate::tty::own_window_size()
    } else {
        None
    };
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
    let threads = ccrun_runtime::sys::thread_count().context("counting threads")?;
    if threads != 1 {
        bail!("internal error: starting a container needs a single-threaded ccrun ({threads} threads)");
    }
    // SAFETY: the process is single-threaded (checked above), so the child may run
    // any code; it ends in exec or _exit.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(report_r);
            let job = MonitorJob {
                global,
                store,
                record,
                spec,
                wiring,
                listener,
                window,
                monitor,
                ccrun,
            };
            let Err(err) = job.run(&report_w);
            let line = format!(
                "ERR {} {}\n",
                exit::code_for(&err),
                exit::one_line(&err).replace('\n', " ")
            );
            let _ = nix::unistd::write(&report_w, line.as_bytes());
            // SAFETY: _exit ends the forked child without running the parent's atexit work.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { .. } => {
            drop(report_w);
            drop(wiring);
            drop(listener);
            let mut report = String::new();
            std::fs::File::from(report_r)
                .read_to_string(&mut report)
                .context("reading the monitor's report")?;
            parse_report(&report).map(|()| client)
        }
    }
}

/// `OK` once the container runs, then EOF when the monitor's exec closed the pipe;
/// `ERR <code> <message>` on failure.
fn parse_report(report: &str) -> Result<()> {
    if let Some(line) = report.lines().find(|l| l.starts_with("ERR ")) {
        let rest = &line[4..];
        let (code, message) = rest.split_once(' ').unwrap_or((rest, "unknown error"));
        return Err(Reported {
            code: code.parse().unwrap_or(exit::ENGINE_ERROR),
            message: message.to_string(),
        }
        .into());
    }
    if report.lines().any(|l| l == "OK") {
        return Ok(());
    }
    bail!("the container's monitor died before reporting")
}

/// The forked child's work: create and start the container, then become the monitor.
struct MonitorJob<'a> {
    global: &'a GlobalOpts,
    store: &'a ContainerStore,
    record: &'a Record,
    spec: Spec,
    wiring: Wiring,
    /// The listening attach socket, for the monitor.
    listener: OwnedFd,
    /// The terminal size to give the container before it starts (`run -it`).
    window: Option<nix::pty::Winsize>,
    monitor: PathBuf,
    ccrun: PathBuf,
}

impl MonitorJob<'_> {
    fn run(self, report: &OwnedFd) -> Result<Infallible> {
        setsid().context("setsid")?;
        // Nothing of the caller's terminal or pipes may stay open in the monitor.
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")?;
        for fd in 0..3 {
            dup2(null.as_raw_fd(), fd).context("dup2")?;
        }
        drop(null);
        let id = &self.record.id;
        let dir = self.store.dir_of(id);
        match std::fs::remove_file(dir.join(EXIT_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing the old exit file"),
        }
        remove_stale_state(self.global, id);
        let stdio = self
            .wiring
            .container
            .as_ref()
            .map(|fds| fds.each_ref().map(|f| f.as_raw_fd()));
        let mut container = Container::create(CreateOptions {
            id: id.clone(),
            bundle: dir.clone(),
            spec: self.spec,
            state_root: self.global.state_root(),
            minimal_init: self.record.init,
            no_pivot: false,
            stdio,
            preserve_fds: 0,
        })?;
        let Wiring {
            container: container_fds,
            logged,
            stdin_writer,
        } = self.wiring;
        drop(container_fds);
        let attachment = match crate::networks::connect(self.store, self.record, container.pid()) {
            Ok(a) => a,
            Err(e) => {
                let _ = container.delete(true);
                return Err(e);
            }
        };
        let me = std::process::id() as i32;
        mark_running(self.store, self.record, &container, me, attachment);
        let console = container.take_console();
        if let (Some(master), Some(window)) = (&console, &self.window) {
            crate::tty::set_window_size(master.as_fd(), window);
        }
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            return Err(e.into());
        }
        let mut argv = vec![
            self.monitor.as_os_str().to_owned(),
            "--pid".into(),
            container.pid().to_string().into(),
            "--exit-file".into(),
            dir.join(EXIT_FILE).into_os_string(),
        ];
        argv.extend(log_args(self.record, &dir.join(LOG_FILE)));
        if let Some(check) = &self.record.options.healthcheck {
            argv.extend(crate::commands::health::monitor_args(
                check,
                &ccrun_command(self.global, &self.ccrun, &["healthcheck-run", id])?,
            ));
        }
        let mut passed = Vec::new();
        if let Some(master) = &console {
            argv.extend(["--tty".into(), master.as_raw_fd().to_string().into()]);
            passed.push(master.as_raw_fd());
        }
        if let Some([out, err]) = &logged {
            argv.extend(["--stdout".into(), out.as_raw_fd().to_string().into()]);
            argv.extend(["--stderr".into(), err.as_raw_fd().to_string().into()]);
            passed.extend([out.as_raw_fd(), err.as_raw_fd()]);
        }
        if let Some(w) = &stdin_writer {
            argv.extend(["--stdin".into(), w.as_raw_fd().to_string().into()]);
            passed.push(w.as_raw_fd());
        }
        argv.extend([
            "--attach".into(),
            self.listener.as_raw_fd().to_string().into(),
        ]);
        passed.push(self.listener.as_raw_fd());
        argv.push("--".into());
        argv.extend(ccrun_command(
            self.global,
            &self.ccrun,
            &["container-cleanup", id],
        )?);
        for fd in passed {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).context("passing fds to the monitor")?;
        }
        let argv = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .context("monitor arguments")?;
        nix::unistd::write(report, b"OK\n").context("reporting to ccrun")?;
        let err = match execv(&argv[0], &argv) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        let _ = container.kill(nix::sys::signal::Signal::SIGKILL);
        let _ = ccrun_runtime::signals::wait_for(container.pid());
        let _ = container.delete(true);
        Err(err).with_context(|| format!("starting the monitor {}", self.monitor.display()))
    }
}

/// `ccrun --root R --state S ARGS…` (`container-cleanup ID`, `healthcheck-run ID`),
/// with absolute paths (the monitor runs in `/`).
fn ccrun_command(
    global: &GlobalOpts,
    ccrun: &Path,
    args: &[&str],
) -> Result<Vec<std::ffi::OsString>> {
    let root = std::path::absolute(global.store_root()).context("storage root")?;
    let state = std::path::absolute(global.state_root()).context("state root")?;
    let mut argv = vec![
        ccrun.as_os_str().to_owned(),
        "--root".into(),
        root.into_os_string(),
        "--state".into(),
        state.into_os_string(),
        "--log-level".into(),
        OsStr::new(&global.log_level).to_owned(),
    ];
    argv.extend(args.iter().map(std::ffi::OsString::from));
    Ok(argv)
}

/// The monitor's log arguments for the container's log driver (`none`: the log goes
/// to `/dev/null`, never rotated).
fn log_args(record: &Record, log: &Path) -> Vec<std::ffi::OsString> {
    let o = &record.options;
    let Some(format) = o.log_driver.format() else {
        return ["--log", "/dev/null"].map(Into::into).to_vec();
    };
    let format = match format {
        ccrun_monitor::logfile::Format::Cri => "cri",
        ccrun_monitor::logfile::Format::Json => "json",
    };
    vec![
        "--log".into(),
        log.as_os_str().to_owned(),
        "--log-max-size".into(),
        record.log_max_size.to_string().into(),
        "--log-format".into(),
        format.into(),
        "--log-rotated".into(),
        o.log_max_files.saturating_sub(1).to_string().into(),
    ]
}
