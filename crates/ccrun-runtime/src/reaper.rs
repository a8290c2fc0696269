//! The minimal init (`--init`): PID 1 forks the user's program, forwards every signal
//! to it, reaps all orphans so no zombie stays, and exits with the program's status.

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
        Ok(ForkResult::Parent { child }) => child,
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
