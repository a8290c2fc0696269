//! The NAT backend, chosen at run time: nf_tables ([`crate::nft`]) when
//! the kernel answers nf_tables requests, else the legacy `ip_tables`
//! ([`crate::iptables`]). `CCRUN_FIREWALL=nftables|iptables` overrides the
//! choice, for tests and for hosts whose firewall is managed with
//! iptables-legacy (whose rules would otherwise sit next to ccrun's
//! nftables table).

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::iptables::Iptables;
use crate::nft::{Nft, PortRule};
use crate::ports::PortMapping;
use crate::subnet::Subnet;

/// The environment variable that overrides the backend.
pub const ENV: &str = "CCRUN_FIREWALL";

/// A NAT backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// nf_tables over netlink: ccrun's own table `ip ccrun`.
    Nftables,
    /// Legacy x_tables: ccrun's chains in the `nat` table.
    Iptables,
}

impl Backend {
    /// `nftables` or `iptables`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }

    /// The backend to use: `$CCRUN_FIREWALL` if set (an unknown value is an
    /// error), else nf_tables if the kernel answers for it (asked once per
    /// process), else iptables.
    pub fn detect() -> Result<Backend> {
        let value = std::env::var(ENV).unwrap_or_default();
        Ok(Backend::parse_override(&value)?.unwrap_or_else(Backend::probed))
    }

    /// The backend `$CCRUN_FIREWALL` names; `None` when empty.
    fn parse_override(value: &str) -> Result<Option<Backend>> {
        match value {
            "" => Ok(None),
            "nftables" => Ok(Some(Backend::Nftables)),
            "iptables" => Ok(Some(Backend::Iptables)),
            other => Err(Error::InvalidConfig(format!(
                "{ENV}={other:?}: expected nftables or iptables"
            ))),
        }
    }

    fn probed() -> Backend {
        static PROBED: OnceLock<Backend> = OnceLock::new();
        *PROBED.get_or_init(|| match Nft::new().and_then(|mut nft| nft.probe()) {
            Ok(()) => Backend::Nftables,
            Err(e) => {
                tracing::debug!("nf_tables unavailable ({e}): using iptables");
                Backend::Iptables
            }
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection to the chosen backend in the calling thread's network
/// namespace, with the operations [`crate::network`] needs.
pub enum Firewall {
    /// nf_tables.
    Nftables(Nft),
    /// Legacy iptables.
    Iptables(Iptables),
}

impl Firewall {
    /// Connects to the backend [`Backend::detect`] picks.
    pub fn new() -> Result<Firewall> {
        Firewall::with_backend(Backend::detect()?)
    }

    /// Connects to `backend`.
    pub fn with_backend(backend: Backend) -> Result<Firewall> {
        Ok(match backend {
            Backend::Nftables => Firewall::Nftables(Nft::new()?),
            Backend::Iptables => Firewall::Iptables(Iptables::new()?),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self {
            Firewall::Nftables(_) => Backend::Nftables,
            Firewall::Iptables(_) => Backend::Iptables,
        }
    }

    /// Creates ccrun's chains and network `network`'s masquerade rules and
    /// the jumps to published ports. Idempotent.
    pub fn ensure_network(&mut self, network: &str, bridge: &str, subnet: Subnet) -> Result<()> {
        match self {
            Firewall::Nftables(n) => n.ensure_network(network, bridge, subnet),
            Firewall::Iptables(i) => i.ensure_network(network, bridge, subnet),
        }
    }

    /// Whether [`Firewall::ensure_network`] already set network `network` up.
    pub fn network_ready(&mut self, network: &str) -> Result<bool> {
        match self {
            Firewall::Nftables(n) => n.network_ready(network),
            Firewall::Iptables(i) => i.network_ready(network),
        }
    }

    /// Removes network `network`'s masquerade rules.
    pub fn remove_network(&mut self, network: &str) -> Result<()> {
        match self {
            Firewall::Nftables(n) => n.remove_network(network),
            Firewall::Iptables(i) => i.remove_network(network),
        }
    }

    /// Publishes `mappings` (host ports filled in) of `container_id` at
    /// `container_ip`.
    pub fn add_ports(
        &mut self,
        container_id: &str,
        container_ip: Ipv4Addr,
        mappings: &[PortMapping],
    ) -> Result<()> {
        match self {
            Firewall::Nftables(n) => n.add_port_rules(container_id, container_ip, mappings),
            Firewall::Iptables(i) => i.add_port_rules(container_id, container_ip, mappings),
        }
    }

    /// The published ports of every container.
    pub fn port_rules(&mut self) -> Result<Vec<PortRule>> {
        match self {
            Firewall::Nftables(n) => n.port_rules(),
            Firewall::Iptables(i) => i.port_rules(),
        }
    }

    /// Removes the published ports of `container_id` and returns everyone's
    /// published ports as they were before: leftovers of an earlier attachment go
    /// and the conflict checks need the rest, and one nf_tables dump serves both.
    pub fn clear_container_ports(&mut self, container_id: &str) -> Result<Vec<PortRule>> {
        match self {
            Firewall::Nftables(n) => {
                let existing = n.port_rules()?;
                let leftovers: Vec<u64> = existing
                    .iter()
                    .filter(|r| r.container_id == container_id)
                    .map(|r| r.handle)
                    .collect();
                if !leftovers.is_empty() {
                    n.delete_port_rules(&leftovers)?;
                }
                Ok(existing)
            }
            Firewall::Iptables(i) => {
                let existing = i.port_rules()?;
                if existing.iter().any(|r| r.container_id == container_id) {
                    i.remove_container(container_id)?;
                }
                Ok(existing)
            }
        }
    }

    /// Removes the published ports of `container_id`; returns how many
    /// there were.
    pub fn remove_container(&mut self, container_id: &str) -> Result<usize> {
        match self {
            Firewall::Nftables(n) => n.remove_container(container_id),
            Firewall::Iptables(i) => i.remove_container(container_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values() {
        assert_eq!(Backend::parse_override("").unwrap(), None);
        assert_eq!(
            Backend::parse_override("nftables").unwrap(),
            Some(Backend::Nftables)
        );
        assert_eq!(
            Backend::parse_override("iptables").unwrap(),
            Some(Backend::Iptables)
        );
        for bad in ["nft", "IPTABLES", "iptables-legacy", " iptables"] {
            let err = Backend::parse_override(bad).unwrap_err().to_string();
            assert!(err.contains("CCRUN_FIREWALL"), "{err}");
        }
        assert_eq!(Backend::Iptables.to_string(), "iptables");
    }
}
