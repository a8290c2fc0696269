//! Thin safe wrappers over the system calls the monitor needs; all of the
//! binary's `unsafe` is here.

use std::io;
use std::os::unix::io::RawFd;

/// Signals meant for the container or for a terminal session. The monitor
/// ignores them so that it outlives a closing terminal or a Ctrl-C aimed at the
/// engine; the container is signalled directly, never through the monitor.
const IGNORED_SIGNALS: [libc::c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGTERM,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Returns the result of a libc call, or the `errno` error when it is -1.
fn check<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Ignores [`IGNORED_SIGNALS`], and makes sure SIGCHLD is not ignored (an
/// ignored SIGCHLD would let the kernel reap the child before `waitpid`) and
/// that no signal is blocked (the engine's mask is inherited through exec).
pub fn ignore_signals() {
    for signal in IGNORED_SIGNALS {
        // SAFETY: SIG_IGN installs no handler code; the signal numbers are valid.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // SAFETY: as above, with the default disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    unblock_all_signals();
}

/// Undoes [`ignore_signals`] so that the exit command, which inherits ignored
/// signals through exec, starts with the default dispositions.
pub fn restore_signals() {
    for signal in IGNORED_SIGNALS {
        // SAFETY: SIG_DFL installs no handler code; the signal numbers are valid.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

fn unblock_all_signals() {
    // SAFETY: sigset_t is plain data that sigemptyset initialises before
    // sigprocmask reads it; the old mask is not requested (null).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Whether `fd` is an open file descriptor.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Closes every fd above 2 that is not in `keep`.
pub fn close_other_fds(keep: &[RawFd]) -> io::Result<()> {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut first: libc::c_uint = 3;
    let mut ranges = Vec::with_capacity(keep.len() + 1);
    for &fd in &keep {
        let fd = fd as libc::c_uint;
        if fd > first {
            ranges.push((first, fd - 1));
        }
        first = first.max(fd + 1);
    }
    ranges.push((first, libc::c_uint::MAX));
    for (low, high) in ranges {
        // SAFETY: close_range only closes descriptors; none of those in the
        // range is used by this program (they are not named on its command line).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, low, high, 0 as libc::c_uint) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOSYS) {
                // Kernels before 5.9.
                return close_listed_fds(&keep);
            }
            return Err(err);
        }
    }
    Ok(())
}

/// `close_other_fds` without close_range: closes what /proc/self/fd lists.
fn close_listed_fds(keep: &[RawFd]) -> io::Result<()> {
    // Collect first: closing while listing would close the listing's own fd.
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            close(fd);
        }
    }
    Ok(())
}

/// Closes `fd`, ignoring errors: there is nothing useful to do about them here.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Opens a pidfd for `pid` (Linux 5.3+); it polls readable once `pid` exits.
/// The fd is close-on-exec.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<RawFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    check(ret).map(|fd| fd as RawFd)
}

/// Whether `pid` is a child of this process (running or not yet reaped).
pub fn is_child(pid: libc::pid_t) -> io::Result<bool> {
    match waitid_nowait(pid) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the child `pid` has exited, without reaping it.
pub fn has_exited(pid: libc::pid_t) -> io::Result<bool> {
    waitid_nowait(pid)
}

/// waitid(WEXITED | WNOHANG | WNOWAIT): reports whether `pid` has exited and
/// leaves it to be reaped by [`wait`].
fn waitid_nowait(pid: libc::pid_t) -> io::Result<bool> {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed, its si_pid stays 0 when
        // WNOHANG finds no exited child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for waitid to fill in.
        let ret = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        match check(ret) {
            // SAFETY: waitid filled in `info` (or left it zeroed), so reading
            // si_pid from the SIGCHLD layout is valid.
            Ok(_) => return Ok(unsafe { info.si_pid() } != 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps the child `pid`, waiting for it if needed; returns its wait status.
pub fn wait(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid c_int for waitpid to write.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps any other children that have exited, without waiting.
pub fn reap_exited_children() {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid c_int for waitpid to write.
        let ret = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        // 0: children left but none exited; -1: none left (or EINTR, which
        // cannot happen without a handler installed).
        if ret <= 0 {
            return;
        }
    }
}

/// The exit code of a wait status: the exit status, or 128 plus the signal
/// number for a process killed by a signal, as shells report it.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the file status flags.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: F_SETFL only changes the file status flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// The capacity of the pipe `fd`, or `None` if it is not a pipe.
pub fn pipe_capacity(fd: RawFd) -> Option<usize> {
    // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
    let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    usize::try_from(size).ok()
}

/// read(2) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    check(n).map(|n| n as usize)
}

/// poll(2) over `fds`; `timeout_ms` -1 waits without a limit.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check(n).map(|n| n as usize)
}

/// Accepts a pending connection on the listening socket `fd`, non-blocking and
/// close-on-exec; `None` when there is none.
pub fn accept(fd: RawFd) -> io::Result<Option<RawFd>> {
    loop {
        // SAFETY: accept4 with null address pointers only returns a new fd or -1.
        let ret = unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        match check(ret) {
            Ok(client) => return Ok(Some(client)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Sends all of `data` on the socket `fd` without blocking (and without SIGPIPE);
/// false when the socket could not take it all now or is gone.
pub fn send_all_now(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: `data` is valid for reads of `data.len()` bytes.
        let ret = unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        match check(ret) {
            Ok(n) => data = &data[n as usize..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Sends `data` on the socket `fd` with a copy of `passed` attached (`SCM_RIGHTS`).
pub fn send_with_fd(fd: RawFd, data: &[u8], passed: RawFd) -> io::Result<()> {
    // Room for one fd, aligned as cmsghdr requires.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
    // SAFETY: the control buffer is large enough for one header and one fd, so
    // CMSG_FIRSTHDR is non-null and CMSG_DATA points inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), passed);
    }
    loop {
        // SAFETY: `msg` describes valid buffers (see above).
        let ret = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        match check(ret) {
            Ok(n) if n as usize == data.len() => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short send")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A close-on-exec duplicate of `fd`.
pub fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor (3 or above).
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}
