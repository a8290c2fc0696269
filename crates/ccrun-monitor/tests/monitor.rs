//! Runs the real `ccrun-monitor` over real child processes.
//!
//! The monitored process must be the monitor's child, as it is under the
//! engine: the test forks a process that forks the child (`sh -c CHILD`) and
//! then executes the monitor with `--pid` of that child. (A shell's `CHILD & exec
//! monitor --pid $!` does not work: the shell may reap a quick child first.)

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use ccrun_monitor::exitfile;
use ccrun_monitor::logfile::{self, Entry, Stream};

const MONITOR: &str = env!("CARGO_BIN_EXE_ccrun-monitor");

/// A started monitor. Dropping it kills whatever is left: the monitor if it is
/// still running, and the child's process group (the child and whatever it
/// started in the background).
struct Running {
    monitor: libc::pid_t,
    child: libc::pid_t,
    /// The monitor's wait status once reaped.
    status: Option<libc::c_int>,
    started: SystemTime,
    dir: tempfile::TempDir,
}

fn cstring(s: impl AsRef<OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap()
}

/// A null-terminated pointer array for execve; `strings` must outlive it.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain([std::ptr::null()])
        .collect()
}

/// How to start the monitor, beyond the child.
#[derive(Default)]
struct Setup<'a> {
    /// Output through a terminal instead of pipes.
    tty: bool,
    /// More fds for the monitor, at the given numbers (7 to 9); the child does
    /// not get them.
    fds: Vec<(&'a OwnedFd, RawFd)>,
    /// Appended to the monitor's command line.
    args: Vec<&'a str>,
    /// The log instead of `$DIR/ctr.log`.
    log: Option<&'a Path>,
}

/// Starts the monitor over `sh -c child`, with `$DIR` set to a new temporary
/// directory holding the log (`ctr.log`) and exit file (`exit`).
fn start(child: &str, setup: Setup) -> Running {
    let Setup {
        tty,
        fds,
        args,
        log,
    } = setup;
    let dir = tempfile::tempdir().unwrap();
    // Each test fd paired with the number it gets in the forked processes:
    // 3 and 4 are the child's stdout and stderr, 5 and 6 the monitor's sides.
    let mut placed: Vec<(OwnedFd, RawFd)> = if tty {
        let (master, slave) = openpty();
        vec![(slave, 3), (master, 5)]
    } else {
        let (out_r, out_w) = pipe();
        let (err_r, err_w) = pipe();
        vec![(out_w, 3), (err_w, 4), (out_r, 5), (err_r, 6)]
    };
    for (fd, to) in fds {
        placed.push((high(fd.try_clone().unwrap()), to));
    }
    let null = high(
        File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap()
            .into(),
    );
    let stderr = high(File::create(dir.path().join("monitor.err")).unwrap().into());
    placed.extend([(null.try_clone().unwrap(), 0), (null, 1), (stderr, 2)]);
    let placed = placed
        .iter()
        .map(|(fd, to)| (fd.as_raw_fd(), *to))
        .collect::<Vec<_>>();
    let child_stderr = if tty { 3 } else { 4 };

    // Everything the forked processes use is allocated now: after fork, a
    // multithreaded process may only make async-signal-safe calls.
    let sh = cstring("/bin/sh");
    let child_argv = [cstring("sh"), cstring("-c"), cstring(child)];
    let child_argv = pointers(&child_argv);
    // The child's pid is written into `pid_buf` after the fork, through
    // `pid_arg`; nothing else touches the buffer meanwhile.
    let mut pid_buf = [0u8; 16];
    let pid_arg = pid_buf.as_mut_ptr();
    let mut monitor_argv = vec![cstring(MONITOR), cstring("--pid")];
    let log = log.map_or_else(|| dir.path().join("ctr.log"), Path::to_path_buf);
    let exit = dir.path().join("exit");
    monitor_argv.extend([
        cstring("--log"),
        cstring(&log),
        cstring("--exit-file"),
        cstring(&exit),
    ]);
    let output: &[&str] = if tty {
        &["--tty", "5"]
    } else {
        &["--stdout", "5", "--stderr", "6"]
    };
    monitor_argv.extend(output.iter().chain(&args).map(cstring));
    let monitor = cstring(MONITOR);
    let mut monitor_argv = pointers(&monitor_argv);
    monitor_argv.insert(2, pid_arg.cast_const().cast());
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(name, _)| name != "DIR")
        .map(|(name, value)| cstring(env_entry(&name, &value)))
        .collect();
    env.push(cstring(env_entry(
        OsStr::new("DIR"),
        dir.path().as_os_str(),
    )));
    let envp = pointers(&env);
    let (report_r, report_w) = pipe();
    let report_w_fd = report_w.as_raw_fd();

    let started = SystemTime::now();
    // SAFETY: fork duplicates only this thread. The forked processes make only
    // async-signal-safe calls (dup2, close, fork, write, execve, _exit) on
    // memory prepared above, and end in execve or _exit.
    let monitor_pid = unsafe { libc::fork() };
    assert!(monitor_pid >= 0, "fork: {}", io::Error::last_os_error());
    if monitor_pid == 0 {
        // SAFETY: see above.
        unsafe {
            // All sources are >= 100 (see `high`), so no dup2 overwrites a
            // source still to be placed; they are close-on-exec.
            for &(from, to) in &placed {
                if libc::dup2(from, to) == -1 {
                    libc::_exit(126);
                }
            }
            let child_pid = libc::fork();
            if child_pid == 0 {
                // The container's process: in its own process group (for
                // cleanup), output to 3 (and 4), no other fds.
                libc::setpgid(0, 0);
                libc::dup2(3, 1);
                libc::dup2(child_stderr, 2);
                for fd in 3..=9 {
                    libc::close(fd);
                }
                libc::execve(sh.as_ptr(), child_argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            if child_pid < 0 {
                libc::_exit(126);
            }
            // The child's sides: held here, they would keep EOF from coming.
            libc::close(3);
            libc::close(4);
            write_decimal(pid_arg, child_pid);
            let bytes = child_pid.to_ne_bytes();
            libc::write(report_w_fd, bytes.as_ptr().cast(), bytes.len());
            libc::execve(monitor.as_ptr(), monitor_argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    // Only the forked processes may hold the pipes, or EOF would never come.
    drop(report_w);
    let mut bytes = [0u8; 4];
    // SAFETY: reads at most 4 bytes into `bytes`.
    let n = unsafe { libc::read(report_r.as_raw_fd(), bytes.as_mut_ptr().cast(), 4) };
    let child = libc::pid_t::from_ne_bytes(bytes);
    if n != 4 || child <= 0 {
        // No child to clean up (and no `Running`, whose drop would take 0 for
        // a process group): just reap the forked process.
        let mut status = 0;
        // SAFETY: `status` is a valid c_int for waitpid to write.
        unsafe { libc::waitpid(monitor_pid, &mut status, 0) };
        panic!("the forked process failed before starting the child (status {status:#x})");
    }
    Running {
        monitor: monitor_pid,
        child,
        status: None,
        started,
        dir,
    }
}

/// Writes `n` (>= 0) as a NUL-terminated decimal number at `out`, which has
/// room for 16 bytes. Async-signal-safe: no allocation.
///
/// # Safety
/// `out` must be valid for writes of 16 bytes.
unsafe fn write_decimal(out: *mut u8, n: libc::pid_t) {
    let mut digits = [0u8; 15];
    let mut len = 0;
    let mut n = n;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: i < len <= 15, within the 16 bytes the caller provides.
        unsafe { *out.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: len <= 15.
    unsafe { *out.add(len) = 0 };
}

/// `NAME=value` for an environment.
fn env_entry(name: &OsStr, value: &OsStr) -> OsString {
    let mut entry = name.to_os_string();
    entry.push("=");
    entry.push(value);
    entry
}

impl Running {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits for the monitor (and its exit command) to end; returns its exit
    /// status (`None` if killed by a signal).
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid c_int for waitpid to write.
            let ret = unsafe { libc::waitpid(self.monitor, &mut status, libc::WNOHANG) };
            assert!(ret >= 0, "waitpid: {}", io::Error::last_os_error());
            if ret == self.monitor {
                self.status = Some(status);
                return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            assert!(
                Instant::now() < deadline,
                "monitor still running after {limit:?}; its stderr: {}",
                self.stderr()
            );
            sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the forked process has become the monitor.
    fn wait_for_monitor(&self) {
        let comm = format!("/proc/{}/comm", self.monitor);
        wait_until("the monitor to start", || {
            fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "ccrun-monitor")
        });
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.path("monitor.err")).unwrap_or_default()
    }

    fn log(&self) -> Vec<Entry> {
        logfile::read_all(&self.path("ctr.log")).unwrap()
    }

    /// The exit code from the exit file, after checking its time.
    fn exit_code(&self) -> i32 {
        let (code, finished) = exitfile::read(&self.path("exit"))
            .unwrap()
            .expect("no exit file");
        assert!(self.started <= finished && finished <= SystemTime::now());
        code
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The group outlives the child while anything it started runs, and its
        // id cannot be reused as a pid meanwhile.
        kill(-self.child);
        if self.status.is_none() {
            // Not reaped yet, so the pid cannot have been reused.
            kill(self.monitor);
            let mut status = 0;
            // SAFETY: `status` is a valid c_int for waitpid to write.
            unsafe { libc::waitpid(self.monitor, &mut status, 0) };
        }
    }
}

/// SIGKILL to a process, or to a process group if `pid` is negative.
fn kill(pid: libc::pid_t) {
    // 0 and -1 would mean this process group and every process.
    assert!(pid.abs() > 1, "refusing to kill {pid}");
    // SAFETY: kill only sends a signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5));
    }
}

/// Moves `fd` to a close-on-exec fd >= 100, out of the way of 3 to 7.
fn high(fd: OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    assert!(new >= 0, "{}", io::Error::last_os_error());
    // SAFETY: `new` is a fresh descriptor owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(new) }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "{}", io::Error::last_os_error());
    // SAFETY: pipe2 returned two fresh descriptors owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (high(r), high(w))
}

/// A new terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; name, termios and winsize are
    // optional (null).
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "{}", io::Error::last_os_error());
    // SAFETY: openpty returned two fresh descriptors owned by nothing else.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    (high(m), high(s))
}

/// The entries of one stream as ('P' or 'F', content).
fn stream(entries: &[Entry], stream: Stream) -> Vec<(char, String)> {
    entries
        .iter()
        .filter(|e| e.stream == stream)
        .map(|e| {
            let tag = if e.partial { 'P' } else { 'F' };
            (tag, String::from_utf8_lossy(&e.content).into_owned())
        })
        .collect()
}

fn entry(tag: char, content: &str) -> (char, String) {
    (tag, content.to_string())
}

#[test]
fn logs_both_streams_then_writes_the_exit_file_and_runs_the_exit_command() {
    let child = "echo out1; echo err1 >&2; printf partial; exit 3";
    // The exit command copies the exit file: it must exist by then.
    let mut run = start(
        child,
        Setup {
            args: vec!["--", "sh", "-c", r#"cp "$DIR/exit" "$DIR/done""#],
            ..Setup::default()
        },
    );
    let status = run.wait(Duration::from_secs(10));
    assert_eq!(status, Some(0), "stderr: {}", run.stderr());

    let log = run.log();
    assert_eq!(
        stream(&log, Stream::Stdout),
        [entry('F', "out1"), entry('P', "partial")]
    );
    assert_eq!(stream(&log, Stream::Stderr), [entry('F', "err1")]);
    assert_eq!(run.exit_code(), 3);
    let copied = fs::read_to_string(run.path("done")).expect("exit command did not run");
    assert_eq!(copied, fs::read_to_string(run.path("exit")).unwrap());
    assert_eq!(run.stderr(), "");
}

#[test]
fn a_killed_child_gives_128_plus_the_signal() {
    let mut run = start("echo before; kill -9 $$; echo after", Setup::default());
    assert_eq!(
        run.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        run.stderr()
    );
    assert_eq!(run.exit_code(), 137);
    assert_eq!(stream(&run.log(), Stream::Stdout), [entry('F', "before")]);
}

#[test]
fn background_processes_holding_stdout_do_not_delay_the_end() {
    // One background process keeps the stdout pipe open for 30 s without
    // writing; another writes to it faster than the monitor reads, until it is
    // killed. The child gives it time to get going before it exits.
    let child = "sleep 30 & yes spam & sleep 0.1; echo started; exit 0";
    let mut run = start(
        child,
        Setup {
            args: vec!["--log-max-size", "1000000"],
            ..Setup::default()
        },
    );
    let begin = Instant::now();
    assert_eq!(
        run.wait(Duration::from_secs(5)),
        Some(0),
        "{}",
        run.stderr()
    );
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "took {:?}",
        begin.elapsed()
    );
    assert_eq!(run.exit_code(), 0);
    // `yes` writes more than a pipe writes atomically, so "started" may land
    // in the middle of its output, after a piece of a line.
    let stdout = stream(&run.log(), Stream::Stdout);
    assert!(stdout.iter().any(|(_, line)| line.ends_with("started")));
}

#[test]
fn terminal_output_is_logged_as_stdout() {
    let mut run = start(
        "echo hello; echo oops >&2; printf prompt; exit 7",
        Setup {
            tty: true,
            ..Setup::default()
        },
    );
    assert_eq!(
        run.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        run.stderr()
    );
    assert_eq!(run.exit_code(), 7);
    let log = run.log();
    assert!(stream(&log, Stream::Stderr).is_empty());
    // The terminal turns "\n" into "\r\n".
    assert_eq!(
        stream(&log, Stream::Stdout),
        [
            entry('F', "hello\r"),
            entry('F', "oops\r"),
            entry('P', "prompt")
        ]
    );
}

#[test]
fn the_log_rotates_at_its_maximum_size() {
    let child = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; done";
    let mut run = start(
        child,
        Setup {
            args: vec!["--log-max-size", "4096"],
            ..Setup::default()
        },
    );
    assert_eq!(
        run.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        run.stderr()
    );
    for name in ["ctr.log", "ctr.log.1"] {
        let size = fs::metadata(run.path(name)).unwrap().len();
        assert!(size <= 4096, "{name} has {size} bytes");
    }
    let lines: Vec<String> = stream(&run.log(), Stream::Stdout)
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(lines.last().map(String::as_str), Some("line 200"));
    // What is left is the end of the output, in order.
    let first: usize = lines[0].trim_start_matches("line ").parse().unwrap();
    let want: Vec<String> = (first..=200).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
}

#[test]
fn keep_fds_stay_open_until_the_exit_command() {
    let (keep_r, keep_w) = pipe();
    // SAFETY: F_SETFL only changes the flags of our own pipe end.
    unsafe { libc::fcntl(keep_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let read_keep = || {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(keep_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n < 0 {
            Err(io::Error::last_os_error().kind())
        } else {
            Ok(n)
        }
    };
    let exit_command = r#"touch "$DIR/exiting"; exec sleep 30"#;
    let run = start(
        "sleep 1",
        Setup {
            fds: vec![(&keep_w, 7)],
            args: vec!["--keep-fd", "7", "--", "sh", "-c", exit_command],
            ..Setup::default()
        },
    );
    drop(keep_w);
    run.wait_for_monitor();
    // Only the monitor holds the write end now: no EOF.
    assert_eq!(read_keep(), Err(io::ErrorKind::WouldBlock));
    wait_until("the exit command", || run.path("exiting").exists());
    // The monitor closed it before executing the exit command.
    assert_eq!(read_keep(), Ok(0));
    // Dropping `run` kills the exit command (it has the monitor's pid).
}

/// Reads from `socket` with `recvmsg`, keeping an fd passed with the data.
fn recv_with_fd(socket: &impl AsRawFd, buf: &mut [u8]) -> (usize, Option<OwnedFd>) {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes valid buffers.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", io::Error::last_os_error());
    // SAFETY: the kernel filled in the control buffer; CMSG_FIRSTHDR/CMSG_DATA
    // stay inside it.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (!cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS).then(|| {
            OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            ))
        })
    };
    (n as usize, fd)
}

#[test]
fn attach_clients_get_the_output_the_input_and_the_exit() {
    use ccrun_monitor::attach::{self, Decoder, Kind};
    use std::io::Write;
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("attach.sock")).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Connected before the monitor runs, as `run -it` is: it must see everything.
    let mut client = UnixStream::connect(dir.path().join("attach.sock")).unwrap();
    client.write_all(&[attach::WANT_STDIN]).unwrap();
    let mut watcher = UnixStream::connect(dir.path().join("attach.sock")).unwrap();
    watcher.write_all(&[attach::OUTPUT_ONLY]).unwrap();
    let (stdin_r, stdin_w) = pipe();
    let listener = OwnedFd::from(listener);
    let mut run = start(
        "echo out; echo err >&2; sleep 0.2; exit 3",
        Setup {
            fds: vec![(&listener, 7), (&stdin_w, 8)],
            args: vec!["--attach", "7", "--stdin", "8"],
            ..Setup::default()
        },
    );
    drop(stdin_w);
    let mut frames = Vec::new();
    let mut passed = None;
    let mut decoder = Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let (n, fd) = recv_with_fd(&client, &mut buf);
        passed = passed.or(fd);
        if n == 0 {
            break;
        }
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(run.wait(Duration::from_secs(10)), Some(0));
    assert!(
        frames.contains(&(Kind::Stdout, b"out\n".to_vec())),
        "{frames:?}"
    );
    assert!(
        frames.contains(&(Kind::Stderr, b"err\n".to_vec())),
        "{frames:?}"
    );
    assert!(frames.contains(&(Kind::Stdin, Vec::new())), "{frames:?}");
    let (kind, code) = frames.last().unwrap();
    assert_eq!((*kind, attach::exit_code(code)), (Kind::Exit, Some(3)));
    // The descriptor passed is the container's stdin pipe.
    let input = passed.expect("the stdin descriptor");
    // SAFETY: writes one byte from a valid buffer to our own descriptor.
    assert_eq!(
        unsafe { libc::write(input.as_raw_fd(), b"x".as_ptr().cast(), 1) },
        1
    );
    let mut byte = [0u8; 1];
    // SAFETY: reads one byte into `byte`.
    assert_eq!(
        unsafe { libc::read(stdin_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) },
        1
    );
    assert_eq!(&byte, b"x");
    // The other client got the same output, and no input.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut watcher, &mut rest).unwrap();
    let mut decoder = Decoder::default();
    decoder.push(&rest);
    let mut kinds = Vec::new();
    while let Some((kind, _)) = decoder.next_frame().unwrap() {
        kinds.push(kind);
    }
    assert!(
        kinds.contains(&Kind::Stdout) && !kinds.contains(&Kind::Stdin),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&Kind::Exit));
    assert_eq!(
        stream(&run.log(), Stream::Stdout),
        [entry('F', "out")],
        "still logged"
    );
}

#[test]
fn a_full_disk_drops_output_without_blocking_the_child() {
    // 400 KB, far more than a pipe holds: the child would block if the
    // monitor stopped reading.
    let child = "yes | head -n 200000; echo done >&2; exit 5";
    let mut run = start(
        child,
        Setup {
            log: Some(Path::new("/dev/full")),
            ..Setup::default()
        },
    );
    assert_eq!(
        run.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        run.stderr()
    );
    assert_eq!(run.exit_code(), 5);
    let stderr = run.stderr();
    assert_eq!(
        stderr.matches("cannot write the log /dev/full").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn fds_not_named_are_closed() {
    let (stray_r, stray_w) = pipe();
    // The child outlives the poll below: the monitor closes everything when it
    // ends, but the stray fd must be closed from the start.
    let run = start(
        "sleep 10",
        Setup {
            fds: vec![(&stray_w, 8)],
            ..Setup::default()
        },
    );
    drop(stray_w);
    run.wait_for_monitor();
    // Once the monitor has closed it, nobody holds the write end: POLLHUP.
    // (Polled with a timeout so that a failure does not hang the test.)
    let mut fds = [libc::pollfd {
        fd: stray_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid array of one pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 3000) };
    assert_eq!(n, 1, "the stray fd is still open");
    assert_ne!(fds[0].revents & libc::POLLHUP, 0);
}

#[test]
fn memory_use_while_monitoring() {
    let mut run = start("echo hi; sleep 1", Setup::default());
    run.wait_for_monitor();
    sleep(Duration::from_millis(300));
    let status = fs::read_to_string(format!("/proc/{}/status", run.monitor)).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmRSS");
    let anon = status
        .lines()
        .find(|line| line.starts_with("RssAnon:"))
        .unwrap_or_default();
    eprintln!("ccrun-monitor VmRSS while monitoring: {rss_kb} kB ({anon})");
    assert!(rss_kb < 4096, "VmRSS {rss_kb} kB");
    assert_eq!(
        run.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        run.stderr()
    );
    assert_eq!(run.exit_code(), 0);
}

#[test]
fn bad_command_lines_fail_with_a_message() {
    let output = Command::new(MONITOR).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--pid is required") || stderr.contains("are required"),
        "{stderr}"
    );
    assert!(stderr.contains("usage: ccrun-monitor"), "{stderr}");

    let base = [
        "--pid",
        "1",
        "--log",
        "/nonexistent/log",
        "--exit-file",
        "/nonexistent/exit",
    ];
    let output = Command::new(MONITOR)
        .args(base)
        .args(["--tty", "9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("fd 9 is not open"));

    // fd 3 open, but pid 1 is not the monitor's child.
    let null = high(File::open("/dev/null").unwrap().into());
    let fd = null.as_raw_fd();
    let mut command = Command::new(MONITOR);
    command.args(base).args(["--tty", "3"]);
    // SAFETY: only dup2, async-signal-safe, runs between fork and exec.
    unsafe {
        command.pre_exec(move || match libc::dup2(fd, 3) {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("process 1 is not a child of the monitor"),
        "{stderr}"
    );
    assert!(!Path::new("/nonexistent/exit").exists());
    drop(null);
}
