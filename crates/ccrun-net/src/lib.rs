//! Native container networking for ccrun: a Linux bridge per network, a veth
//! pair per container, file-based IPAM, and NAT (masquerade and published
//! ports) in nftables or, without it, legacy iptables — all over netlink and
//! socket options, synchronously, without shelling out.
//!
//! Everything here acts on the network namespace of the *calling thread*.
//! Use [`in_netns`] to run a piece of work inside another namespace; the
//! high-level [`attach`] does that itself for the container side.
//!
//! Layout:
//! - [`netns`]: switch the calling thread into a network namespace and back.
//! - [`netlink`]: rtnetlink links, addresses and routes.
//! - [`sysctl`]: the few `/proc/sys/net` knobs a bridge network needs.
//! - [`subnet`]: IPv4 CIDR parsing and arithmetic.
//! - [`ipam`]: address allocation persisted as one file per address.
//! - [`nft`]: a minimal nf_tables client (raw netlink) for ccrun's own table.
//! - [`iptables`]: the same NAT in the legacy `ip_tables` `nat` table, over
//!   the x_tables socket options, for kernels without nf_tables.
//! - [`firewall`]: picks one of the two at run time (`CCRUN_FIREWALL`).
//! - [`ports`]: `-p` port mapping parsing and host port checks.
//! - [`network`]: the high-level API the engine calls.

#![warn(missing_docs)]

pub mod error;
pub mod firewall;
pub mod ipam;
pub mod iptables;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod nft;
pub mod ports;
pub mod subnet;
pub mod sysctl;

pub use error::{Error, Result};
pub use firewall::{Backend, Firewall};
pub use netns::in_netns;
pub use network::{
    attach, attach_endpoint, container_mac, default_pool, detach, detach_endpoint, detach_exited,
    ensure_network, loopback_up, remove_network, remove_stale, secondary_veth_name, subnets_in_use,
    veth_name, Attachment, Endpoint, InUse, NetworkConfig, CONTAINER_IFNAME, DEFAULT_BRIDGE,
    DEFAULT_MTU, DEFAULT_NETWORK,
};
pub use ports::{parse_port_mappings, PortMapping, Protocol};
pub use subnet::Subnet;
