//! The parent <-> container-init channel: a `SOCK_SEQPACKET` socket pair carrying
//! small tagged messages (and, for idmapped mounts or a terminal, a file descriptor).
//! `exec` uses the same channel between the caller and the processes it forks.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{Error, Result};

/// Largest message we ever send (error texts are truncated to fit).
const MAX_MESSAGE: usize = 4096;

/// Why the init failed, so the parent can pick Docker's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FailureKind {
    /// Generic setup failure (exit 125).
    Setup = 0,
    /// The program was not found (exit 127).
    NotFound = 1,
    /// The program is not executable (exit 126).
    NotExecutable = 2,
}

/// A message on the channel.
#[derive(Debug)]
pub enum Message {
    /// Parent -> init: the uid/gid maps and cgroup are in place; go on.
    Continue,
    /// Init -> parent: setup is complete and the init waits on the exec gate.
    Ready,
    /// Init -> parent: setup failed.
    Failed(FailureKind, String),
    /// Exec helper -> caller: the host pid of the process started in the container.
    Pid(i32),
    /// Exec process -> caller: the master of its terminal is attached.
    Console,
    /// Init -> parent: the container's namespaces and mounts exist; run the
    /// `prestart` and `createRuntime` hooks before it pivots.
    CreateHooks,
    /// Parent -> init: those hooks ran; the init's host pid (for its own hooks' state).
    HooksDone(i32),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Continue => vec![b'C'],
            Message::Ready => vec![b'R'],
            Message::Console => vec![b'T'],
            Message::CreateHooks => vec![b'H'],
            Message::HooksDone(pid) => {
                let mut out = vec![b'D'];
                out.extend_from_slice(&pid.to_le_bytes());
                out
            }
            Message::Pid(pid) => {
                let mut out = vec![b'P'];
                out.extend_from_slice(&pid.to_le_bytes());
                out
            }
            Message::Failed(kind, text) => {
                let mut out = vec![b'F', *kind as u8];
                let bytes = text.as_bytes();
                out.extend_from_slice(&bytes[..bytes.len().min(MAX_MESSAGE - 2)]);
                out
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<Message> {
        match buf {
            [b'C'] => Ok(Message::Continue),
            [b'R'] => Ok(Message::Ready),
            [b'T'] => Ok(Message::Console),
            [b'H'] => Ok(Message::CreateHooks),
            [b'D', a, b, c, d] => Ok(Message::HooksDone(i32::from_le_bytes([*a, *b, *c, *d]))),
            [b'P', a, b, c, d] => Ok(Message::Pid(i32::from_le_bytes([*a, *b, *c, *d]))),
            [b'F', kind, text @ ..] => {
                let kind = match kind {
                    1 => FailureKind::NotFound,
                    2 => FailureKind::NotExecutable,
                    _ => FailureKind::Setup,
                };
                Ok(Message::Failed(
                    kind,
                    String::from_utf8_lossy(text).into_owned(),
                ))
            }
            [] => Err(Error::Setup(
                "container init exited before finishing setup".into(),
            )),
            _ => Err(Error::Setup("garbled message from container init".into())),
        }
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Creates a connected pair: (parent end, init end). Both are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Channel {
    /// Sends a message, optionally with a file descriptor attached.
    pub fn send(&self, msg: &Message, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let bytes = msg.encode();
        let iov = [IoSlice::new(&bytes)];
        let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::sys("sending to container init", e))?;
        Ok(())
    }

    /// Receives one message and any file descriptor sent with it.
    pub fn recv(&self) -> Result<(Message, Option<OwnedFd>)> {
        let (buf, fd) = self.recv_raw()?;
        Ok((Message::decode(&buf)?, fd))
    }

    /// Like [`Channel::recv`], but `None` once every peer end is closed (a peer that
    /// exec'd successfully closes its close-on-exec end).
    pub fn recv_or_closed(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        let (buf, fd) = self.recv_raw()?;
        if buf.is_empty() {
            return Ok(None);
        }
        Ok(Some((Message::decode(&buf)?, fd)))
    }

    fn recv_raw(&self) -> Result<(Vec<u8>, Option<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(fds) = c {
                                if let Some(&raw) = fds.first() {
                                    // SAFETY: SCM_RIGHTS just installed this fd in our table;
                                    // we are its only owner.
                                    fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
                                }
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("receiving from container init", e)),
            }
        };
        buf.truncate(len);
        Ok((buf, fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().expect("pair");
        a.send(&Message::Pid(123_456), None).expect("send");
        a.send(&Message::Failed(FailureKind::NotFound, "nope".into()), None)
            .expect("send");
        assert!(matches!(b.recv().expect("recv").0, Message::Pid(123_456)));
        assert!(matches!(
            b.recv().expect("recv").0,
            Message::Failed(FailureKind::NotFound, ref m) if m == "nope"
        ));
        drop(a);
        assert!(b.recv_or_closed().expect("recv").is_none());
    }
}
