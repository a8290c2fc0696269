//! `process.consoleSize`: the window size of the container's terminal, set on the
//! terminal the process has as stdin (the slave of its pty) before it execs.

use nix::errno::Errno;
use oci_spec::runtime::Process;

use crate::error::{Error, Result};

/// Sets the size of the terminal on fd 0 when `process` has `terminal` and
/// `consoleSize`; nothing otherwise.
pub fn apply(process: &Process) -> Result<()> {
    if process.terminal() != Some(true) {
        return Ok(());
    }
    let Some(size) = process.console_size() else {
        return Ok(());
    };
    let too_big =
        |n: u64| Error::InvalidSpec(format!("process.consoleSize: {n} does not fit a terminal"));
    let ws = libc::winsize {
        ws_row: u16::try_from(size.height()).map_err(|_| too_big(size.height()))?,
        ws_col: u16::try_from(size.width()).map_err(|_| too_big(size.width()))?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let ret = unsafe { libc::ioctl(0, libc::TIOCSWINSZ, &ws as *const libc::winsize) };
    Errno::result(ret)
        .map(drop)
        .map_err(|e| Error::sys("setting process.consoleSize", e))
}
