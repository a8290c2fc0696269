//! The container process's identity and execution: rlimits, uid/gid/groups, umask,
//! `no_new_privs`, program lookup in the container's `PATH`, and `execve`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

use crate::error::{Error, Result, SysContext};
use crate::sync::FailureKind;

/// `PATH` used when the process environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn resource(kind: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as R;
    match kind {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Applies the spec's rlimits. Raising a hard limit needs `CAP_SYS_RESOURCE` in the
/// initial user namespace; without it the error says so rather than a bare EPERM.
pub fn apply_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let res = resource(l.typ());
        let new = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `new` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(res, &new) } != 0 {
            let err = Errno::last();
            let mut old = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `old` is a valid out-pointer.
            unsafe { libc::getrlimit(res, &mut old) };
            let name = format!("{:?}", l.typ())
                .to_uppercase()
                .replace("RLIMIT", "RLIMIT_");
            if err == Errno::EPERM && l.hard() > old.rlim_max {
                return Err(Error::Setup(format!(
                    "cannot raise {name} hard limit from {} to {}: raising a hard limit needs \
                     CAP_SYS_RESOURCE, which this ccrun lacks; ask for at most {} (--ulimit)",
                    old.rlim_max,
                    l.hard(),
                    old.rlim_max
                )));
            }
            return Err(Error::sys(
                format!("setrlimit {name} {}:{}", l.soft(), l.hard()),
                err,
            ));
        }
    }
    Ok(())
}

/// Switches to the spec's user: supplementary groups, gid, uid, and umask.
pub fn set_identity(process: &Process) -> Result<()> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is denied in user namespaces whose gid_map was written with setgroups=deny;
    // with no extra groups requested, that is fine.
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        Err(Errno::EPERM) if groups.is_empty() => {}
        Err(e) => return Err(Error::sys("setgroups", e)),
    }
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {uid}"))?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// Sets `PR_SET_NO_NEW_PRIVS`.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with these integer arguments has no memory effects.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(ret)
        .map(drop)
        .ctx(|| "prctl(NO_NEW_PRIVS)".into())
}

/// Finds the program to run: `args[0]` itself when it has a slash, else the first
/// match in the container's `PATH`. Returns Docker's failure kind when it cannot run.
pub fn find_program(
    program: &str,
    env: &[String],
) -> std::result::Result<PathBuf, (FailureKind, String)> {
    if program.is_empty() {
        return Err((FailureKind::NotFound, "empty command".into()));
    }
    if program.contains('/') {
        return check_executable(Path::new(program)).map(|()| PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut not_executable = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err((FailureKind::NotExecutable, msg)) => {
                not_executable.get_or_insert((FailureKind::NotExecutable, msg));
            }
            Err(_) => {}
        }
    }
    Err(not_executable.unwrap_or((
        FailureKind::NotFound,
        format!("{program}: executable file not found in $PATH"),
    )))
}

fn check_executable(path: &Path) -> std::result::Result<(), (FailureKind, String)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
            FailureKind::NotExecutable
        } else {
            FailureKind::NotFound
        };
        (kind, format!("{}: {e}", path.display()))
    })?;
    if meta.is_dir() {
        return Err((
            FailureKind::NotExecutable,
            format!("{}: is a directory", path.display()),
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err((
            FailureKind::NotExecutable,
            format!("{}: permission denied", path.display()),
        ));
    }
    Ok(())
}

/// Converts strings to the C strings `execve` takes.
pub fn c_strings(items: &[String]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| Error::InvalidSpec(format!("NUL byte in {s:?}")))
        })
        .collect()
}

/// Replaces this process with `program`. Only returns on failure.
pub fn exec(program: &Path, args: &[CString], env: &[CString]) -> Errno {
    let Ok(path) = CString::new(program.as_os_str().as_bytes()) else {
        return Errno::EINVAL;
    };
    match nix::unistd::execve(&path, args, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// Hands the pipes among `fds` (the stdio the runtime was given for a container
/// process) to that process's user, host `uid`/`gid`: a pipe belongs to whoever made it
/// (host root) with mode 0600, so a process that reopens its own stdio (`/dev/stdout`,
/// `/proc/self/fd/1`, as nginx's log symlinks do) would get `EACCES` in a user
/// namespace, or as a non-root user. Terminals, `/dev/null` and files are left alone.
pub fn give_stdio_pipes(fds: &[std::os::fd::RawFd], uid: u32, gid: u32) -> Result<()> {
    for &fd in fds {
        let st = nix::sys::stat::fstat(fd).ctx(|| format!("stat of stdio fd {fd}"))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFIFO || (st.st_uid, st.st_gid) == (uid, gid) {
            continue;
        }
        match nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
            Ok(()) => {}
            // Rootless: a pipe of someone outside our user namespace (the caller's
            // shell) is not ours to give away; the process can still use it as is.
            Err(Errno::EPERM) if crate::rootless::in_user_namespace() => {}
            Err(e) => return Err(Error::sys(format!("handing stdio fd {fd} to uid {uid}"), e)),
        }
    }
    Ok(())
}

/// Sets whether this process is dumpable. A non-dumpable process's `/proc/PID` files
/// (`exe`, `fd/`, `mem`, `environ`) are closed to everyone but host root and itself, so
/// a container process cannot reach the runtime's binary or descriptors through a
/// runtime clone that is setting itself up inside the container; `execve` restores the
/// flag for the program.
pub fn set_dumpable(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments has no memory effects.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    Errno::result(ret)
        .map(drop)
        .ctx(|| format!("prctl(PR_SET_DUMPABLE, {})", u8::from(on)))
}

/// Marks every fd above 2 close-on-exec except the `preserve` fds from 3 on (which
/// pass whatever their flag was, as with runc's `--preserve-fds`), so nothing a
/// caller left open without `O_CLOEXEC` (a host file or directory, a socket) reaches
/// the container's program.
pub fn close_fds_on_exec(preserve: u32) -> Result<()> {
    let first_closed = 3u32.saturating_add(preserve);
    for fd in 3..first_closed {
        match nix::fcntl::fcntl(
            fd as std::os::fd::RawFd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(Error::sys(format!("keeping fd {fd} open for exec"), e)),
        }
    }
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes flags of our own fds.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_closed as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret)
        .map(drop)
        .ctx(|| "marking inherited fds close-on-exec (close_range needs Linux 5.11)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let found = find_program("sh", &env).expect("sh");
        assert!(found.ends_with("sh"));
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = find_program("no-such-program-xyz", &[]).unwrap_err();
        assert_eq!(err.0, FailureKind::NotFound);
    }

    #[test]
    fn non_executable_file_is_126() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("script");
        std::fs::write(&f, "#!/bin/sh\n").expect("write");
        let err = find_program(f.to_str().expect("utf8"), &[]).unwrap_err();
        assert_eq!(err.0, FailureKind::NotExecutable);
        let err = find_program(dir.path().to_str().expect("utf8"), &[]).unwrap_err();
        assert_eq!(err.0, FailureKind::NotExecutable);
    }
}
