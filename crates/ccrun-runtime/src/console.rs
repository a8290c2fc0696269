//! The container's terminal for `process.terminal`: a pseudo-terminal allocated from
//! the container's own devpts instance (so `tty`/`ttyname` inside name a real
//! `/dev/pts/N` and `/dev/console` is that terminal). Its slave becomes the
//! process's stdio and controlling terminal; the master goes back to the caller.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result, SysContext};

/// Allocates the terminal inside the (already pivoted) root, installs its slave as
/// fds 0-2 of a new session, bind-mounts it on `/dev/console`, and returns the master.
pub fn create() -> Result<OwnedFd> {
    let (master, slave, slave_path) = open_pty()?;
    bind_console(&slave_path)?;
    install_slave(slave)?;
    Ok(master)
}

/// Like [`create`] for a process `exec`'d into a running container: a new terminal from
/// the container's devpts as fds 0-2 and controlling terminal of a new session, without
/// touching `/dev/console` (it belongs to the container's init). Returns the master.
pub fn create_for_exec() -> Result<OwnedFd> {
    let (master, slave, _) = open_pty()?;
    install_slave(slave)?;
    Ok(master)
}

/// Opens a new pty through `/dev/ptmx` of the current root: (master, slave, slave path).
fn open_pty() -> Result<(OwnedFd, OwnedFd, String)> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "opening /dev/ptmx in the container".into())?;
    nix::pty::grantpt(&master).ctx(|| "grantpt".into())?;
    nix::pty::unlockpt(&master).ctx(|| "unlockpt".into())?;
    let slave_path = nix::pty::ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave: OwnedFd = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(|fd| {
        // SAFETY: `open` just returned this fd and nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
    .ctx(|| format!("opening {slave_path}"))?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(master);
    // SAFETY: `into_raw_fd` gave up ownership of this open fd to us.
    let master = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    Ok((master, slave, slave_path))
}

/// Makes `slave` fds 0-2 and the controlling terminal of a new session.
fn install_slave(slave: OwnedFd) -> Result<()> {
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| format!("dup2 onto fd {target}"))?;
    }
    make_controlling_terminal()
}

/// Starts a new session whose controlling terminal is fd 0 (a pty slave), so job
/// control and ^C work inside.
pub(crate) fn make_controlling_terminal() -> Result<()> {
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument; a failure is reported, not undefined.
    let ret = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    Errno::result(ret).ctx(|| "making the terminal the controlling tty".into())?;
    Ok(())
}

/// `/dev/console` as the terminal, as runc and Docker provide it.
fn bind_console(slave_path: &str) -> Result<()> {
    let console = "/dev/console";
    match nix::fcntl::open(
        console,
        OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(fd) => {
            let _ = nix::unistd::close(fd);
        }
        Err(e) => return Err(e).ctx(|| format!("creating {console}")),
    }
    mount(
        Some(slave_path),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mounting {slave_path} on {console}"))
}

/// Name sent with the master over a console socket. runc sends the master's file name;
/// receivers (conmon, containerd's shim) only take the descriptor.
const CONSOLE_NAME: &[u8] = b"/dev/ptmx";

/// Sends `master` to the `AF_UNIX` stream socket at `socket`, runc's `--console-socket`
/// protocol: one message whose control data carries the descriptor (`SCM_RIGHTS`) and
/// whose payload is a name. The receiver then owns the terminal; the caller may close
/// its copy.
pub fn send_to_socket(socket: &Path, master: BorrowedFd<'_>) -> Result<()> {
    use nix::sys::socket::{
        connect, sendmsg, socket as new_socket, AddressFamily, ControlMessage, MsgFlags, SockFlag,
        SockType, UnixAddr,
    };
    let addr = UnixAddr::new(socket).ctx(|| format!("console socket {}", socket.display()))?;
    let fd = new_socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "creating a unix socket".into())?;
    connect(fd.as_raw_fd(), &addr)
        .ctx(|| format!("connecting to console socket {}", socket.display()))?;
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(CONSOLE_NAME)];
    let sent = sendmsg::<()>(
        fd.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| format!("sending the terminal to {}", socket.display()))?;
    if sent != CONSOLE_NAME.len() {
        return Err(Error::Setup(format!(
            "short write sending the terminal to {}",
            socket.display()
        )));
    }
    Ok(())
}
