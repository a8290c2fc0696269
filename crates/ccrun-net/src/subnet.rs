//! IPv4 subnets in CIDR notation.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// An IPv4 subnet (`10.88.0.0/16`). The address is always the network
/// address: host bits set are rejected when parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Subnet {
    /// Builds a subnet, rejecting prefixes outside 1..=30 (a bridge network
    /// needs room for a gateway and at least one container) and addresses
    /// with host bits set.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self> {
        if !(1..=30).contains(&prefix_len) {
            return Err(Error::InvalidConfig(format!(
                "subnet {network}/{prefix_len}: prefix length must be between 1 and 30"
            )));
        }
        let subnet = Subnet {
            network,
            prefix_len,
        };
        if u32::from(network) & !subnet.mask_bits() != 0 {
            return Err(Error::InvalidConfig(format!(
                "subnet {network}/{prefix_len} has host bits set (did you mean {}/{prefix_len}?)",
                Ipv4Addr::from(u32::from(network) & subnet.mask_bits())
            )));
        }
        Ok(subnet)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix_len))
    }

    /// The netmask (`255.255.0.0` for a /16).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// Whether `ip` lies in the subnet (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network)
    }

    /// Whether `ip` is a host address of the subnet (neither the network
    /// nor the broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.broadcast()
    }

    /// The host addresses, lowest first.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }

    /// The first host address, the conventional gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }
}

impl FromStr for Subnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidConfig(format!("subnet {s:?}: {why}"));
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| invalid("expected CIDR notation like 10.88.0.0/16"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 2 {
            return Err(invalid("prefix length must be a number"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("prefix length must be a number"))?;
        Subnet::new(addr, prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        assert_eq!(s.network(), Ipv4Addr::new(10, 88, 0, 0));
        assert_eq!(s.prefix_len(), 16);
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        assert!(s.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert!(!s.is_host(s.network()));
        assert!(!s.is_host(s.broadcast()));
        assert_eq!(s.to_string(), "10.88.0.0/16");
        let small: Subnet = "192.168.7.0/30".parse().unwrap();
        let hosts: Vec<_> = small.hosts().collect();
        assert_eq!(
            hosts,
            vec![Ipv4Addr::new(192, 168, 7, 1), Ipv4Addr::new(192, 168, 7, 2)]
        );
    }

    #[test]
    fn rejects_bad_cidrs() {
        for bad in [
            "10.88.0.0",
            "10.88.0.0/",
            "10.88.0.0/33",
            "10.88.0.0/31",
            "10.88.0.0/0",
            "10.88.0.1/16",
            "10.88.0/16",
            "10.88.0.0/+8",
            "fd00::/64",
            "x/8",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad} should be rejected");
        }
        let err = "10.88.0.1/16".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("10.88.0.0/16"), "{err}");
    }

    #[test]
    fn serde_round_trip() {
        let s: Subnet = "172.30.0.0/24".parse().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"172.30.0.0/24\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    }
}
