//! The minimal init (`--init`): PID 1 forks the user's program, forwards every signal
//! to it, reaps all orphans so no zombie stays, and exits with the program's status.
//! Its command line reads `ccrun-init -- PROGRAM ARGS` (as `docker-init -- …`), and it
//! holds no descriptor but the container's stdio.

use std::ffi::CString;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::process;
use crate::signals;

/// Runs as the container's PID 1. Never returns.
pub fn run(program: &Path, args: &[CString], env: &[CString]) -> ! {
    let all = SigSet::all();
    // SIGKILL/SIGSTOP cannot be blocked; the kernel ignores them in the set.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    signals::install_noop_handlers();
    // SAFETY: the init is single-threaded, so the child may run arbitrary code.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            signals::reset_for_exec();
            // The program gets its own process group so terminal job control works.
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let err = process::exec(program, args, env);
            eprintln!("ccrun: exec {}: {err}", program.display());
            std::process::exit(if err == Errno::ENOENT { 127 } else { 126 });
        }
        Ok(ForkResult::Parent { child }) => {
            // PID 1 stays an image of the runtime for the container's whole life: it
            // keeps nothing of the host's (descriptors, a command line naming host
            // paths) for the container to see under /proc/1.
            close_from(3);
            hide_command_line(args);
            child
        }
        Err(e) => {
            eprintln!("ccrun: init: fork: {e}");
            std::process::exit(125);
        }
    };
    loop {
        let sig = match all.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // Forward to the program's process group, then to the program itself in case
            // it left that group.
            let _ = kill(Pid::from_raw(-child.as_raw()), sig);
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    std::process::exit(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Closes every descriptor from `first` on.
fn close_from(first: libc::c_uint) {
    // SAFETY: close_range only closes our own descriptors; nothing here uses them again.
    unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
}

/// The command line PID 1 shows in `/proc/1/cmdline`.
fn init_command_line(args: &[CString]) -> Vec<u8> {
    let mut line = b"ccrun-init\0--\0".to_vec();
    for a in args {
        line.extend_from_slice(a.as_bytes_with_nul());
    }
    line
}

/// Overwrites the memory `/proc/self/cmdline` shows (the argv strings the process
/// started with, which name ccrun's host binary and arguments) with
/// [`init_command_line`], truncated to fit and padded with NULs, as `setproctitle`
/// does. Best effort: when the bounds cannot be read, the line stays.
fn hide_command_line(args: &[CString]) {
    let Some((start, end)) = argv_bounds() else {
        return;
    };
    let Some(len) = end.checked_sub(start).filter(|l| *l > 0) else {
        return;
    };
    let mut line = init_command_line(args);
    line.resize(len, 0);
    if let Some(last) = line.last_mut() {
        *last = 0;
    }
    // SAFETY: [start, end) is this process's own argv area, as the kernel reports it in
    // /proc/self/stat: mapped, writable (it lies in the initial stack) and `len` bytes
    // long. Nothing in this process reads the old strings any more.
    unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), start as *mut u8, len) };
}

/// `arg_start` and `arg_end` from `/proc/self/stat` (fields 48 and 49).
fn argv_bounds() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3.
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_command_line_names_no_host_path() {
        let args = [c"sh".to_owned(), c"-c".to_owned(), c"sleep 1".to_owned()];
        assert_eq!(
            init_command_line(&args),
            b"ccrun-init\0--\0sh\0-c\0sleep 1\0"
        );
    }

    #[test]
    fn argv_bounds_cover_this_process_command_line() {
        let (start, end) = argv_bounds().expect("bounds");
        let cmdline = std::fs::read("/proc/self/cmdline").expect("cmdline");
        assert_eq!(end - start, cmdline.len());
    }
}
