//! The crate's error type.

use std::io;
use std::net::Ipv4Addr;

/// Everything that can go wrong in ccrun-net, with enough context to tell
/// the user what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected a netlink request.
    #[error("netlink: {op}: {source}{}", .detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Netlink {
        /// The request that failed.
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
        /// The kernel's extended ack message, if any.
        detail: Option<String>,
    },
    /// A netlink reply could not be understood.
    #[error("netlink: {op}: malformed reply: {reason}")]
    Malformed {
        /// The request whose reply was malformed.
        op: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A subnet, address or network configuration is invalid.
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// A `-p` port mapping could not be parsed.
    #[error("invalid port mapping {spec:?}: {reason}")]
    InvalidPortMapping {
        /// The mapping as written.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The requested address is outside the network's subnet or reserved.
    #[error("address {ip} cannot be used in network {network}: {reason}")]
    AddressNotUsable {
        /// The requested address.
        ip: Ipv4Addr,
        /// The network's name.
        network: String,
        /// Why (outside the subnet, gateway, ...).
        reason: String,
    },
    /// The requested address is already allocated.
    #[error("address {ip} is already allocated to container {owner} in network {network}")]
    AddressInUse {
        /// The requested address.
        ip: Ipv4Addr,
        /// The container holding it.
        owner: String,
        /// The network's name.
        network: String,
    },
    /// No free address is left in the subnet.
    #[error("no free address left in network {network} ({subnet})")]
    SubnetExhausted {
        /// The network's name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// A host port is already published by another container.
    #[error("host port {proto}/{host}:{port} is already published by container {owner}")]
    PortAllocated {
        /// "tcp" or "udp".
        proto: String,
        /// The host address of the existing mapping ("0.0.0.0" for all).
        host: Ipv4Addr,
        /// The host port.
        port: u16,
        /// The container that publishes it.
        owner: String,
    },
    /// A host port is in use by some process on the host.
    #[error("host port {proto}/{host}:{port} is already in use on the host: {source}")]
    PortBusy {
        /// "tcp" or "udp".
        proto: String,
        /// The host address that was tried.
        host: Ipv4Addr,
        /// The host port.
        port: u16,
        /// The bind error.
        #[source]
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The errno of a kernel-rejected netlink request, if this is one.
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps the error into [`Error::Io`] with a lazily built context.
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(f(), source))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::io(f(), io::Error::from(errno)))
    }
}
