//! Published ports: parsing of `-p` specifications and host port checks.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::str::FromStr;

use crate::error::{Error, Result};

/// Transport protocol of a published port.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// "tcp" or "udp".
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(format!("unsupported protocol {other:?} (tcp or udp)")),
        }
    }
}

/// One published port: traffic to `host_ip:host_port` (any local address
/// when `host_ip` is `None`) is forwarded to the container's
/// `container_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// Host address to match; `None` for every local address.
    pub host_ip: Option<Ipv4Addr>,
    /// Host port; 0 means "pick a free one" when attaching.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether the two mappings claim the same host port.
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && self.host_port != 0
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{host}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// Parses `-p` specifications, one per string:
/// `containerPort`, `hostPort:containerPort`, `ip:hostPort:containerPort`,
/// `ip::containerPort`, each optionally followed by `/tcp` or `/udp`, where
/// ports may be equal-length ranges (`8000-8002:80-82`). A range expands to
/// one mapping per port. An omitted host port is 0: [`crate::attach`] picks a
/// free one. `0.0.0.0` as host address means every address.
pub fn parse_port_mappings(specs: &[String]) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    for spec in specs {
        let parsed = parse_one(spec).map_err(|reason| Error::InvalidPortMapping {
            spec: spec.clone(),
            reason,
        })?;
        for m in parsed {
            if let Some(other) = out.iter().find(|o: &&PortMapping| o.conflicts_with(&m)) {
                return Err(Error::InvalidPortMapping {
                    spec: spec.clone(),
                    reason: format!("host port clashes with {other}"),
                });
            }
            out.push(m);
        }
    }
    Ok(out)
}

fn parse_one(spec: &str) -> std::result::Result<Vec<PortMapping>, String> {
    let (ports, protocol) = match spec.rsplit_once('/') {
        Some((ports, proto)) => (ports, proto.parse::<Protocol>()?),
        None => (spec, Protocol::Tcp),
    };
    if ports.contains('[') {
        return Err("IPv6 host addresses are not supported".to_string());
    }
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [c] => (None, "", *c),
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
            (Some(ip).filter(|ip| !ip.is_unspecified()), *h, *c)
        }
        _ => return Err("expected [[ip:]hostPort:]containerPort[/proto]".to_string()),
    };
    let (c_start, c_end) = parse_range(container, false)?;
    let count = c_end - c_start + 1;
    let host_ports: Vec<u16> = if host.is_empty() {
        vec![0; count as usize]
    } else {
        let (h_start, h_end) = parse_range(host, true)?;
        if h_end - h_start != c_end - c_start {
            return Err(format!(
                "host range {host} and container range {container} differ in length"
            ));
        }
        if h_start == 0 && count > 1 {
            return Err("host port 0 cannot start a range".to_string());
        }
        (h_start..=h_end).collect()
    };
    Ok((c_start..=c_end)
        .zip(host_ports)
        .map(|(container_port, host_port)| PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
        .collect())
}

fn parse_range(s: &str, allow_zero: bool) -> std::result::Result<(u16, u16), String> {
    let port = |p: &str| -> std::result::Result<u16, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{p:?} is not a port number"));
        }
        let n: u16 = p.parse().map_err(|_| format!("port {p} out of range"))?;
        if n == 0 && !allow_zero {
            return Err("port 0 is not valid here".to_string());
        }
        Ok(n)
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("range {s} is reversed"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(s)?;
            Ok((p, p))
        }
    }
}

/// Checks that no process in the current network namespace has bound
/// `protocol` port `port` on `host_ip` (any address if `None`), by binding it
/// briefly.
pub fn check_host_port_free(
    host_ip: Option<Ipv4Addr>,
    port: u16,
    protocol: Protocol,
) -> Result<()> {
    let host = host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = SocketAddrV4::new(host, port);
    let bound: io::Result<()> = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(()),
        // Binding a specific address that is not local (yet): nothing can
        // listen there either.
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        Err(source) => Err(Error::PortBusy {
            proto: protocol.to_string(),
            host,
            port,
            source,
        }),
    }
}

/// Asks the kernel for a free ephemeral `protocol` port on `host_ip` in the
/// current network namespace.
pub fn pick_free_port(host_ip: Option<Ipv4Addr>, protocol: Protocol) -> Result<u16> {
    let addr = SocketAddrV4::new(host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    let port = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .map_err(|e| Error::io(format!("pick a free {protocol} host port on {addr}"), e))?
    .port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(specs: &[&str]) -> Result<Vec<PortMapping>> {
        parse_port_mappings(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn m(ip: Option<[u8; 4]>, h: u16, c: u16, p: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(Ipv4Addr::from),
            host_port: h,
            container_port: c,
            protocol: p,
        }
    }

    #[test]
    fn parses_all_forms() {
        use Protocol::*;
        assert_eq!(parse(&["80"]).unwrap(), vec![m(None, 0, 80, Tcp)]);
        assert_eq!(parse(&["8080:80"]).unwrap(), vec![m(None, 8080, 80, Tcp)]);
        assert_eq!(
            parse(&["127.0.0.1:8080:80/udp"]).unwrap(),
            vec![m(Some([127, 0, 0, 1]), 8080, 80, Udp)]
        );
        assert_eq!(
            parse(&["127.0.0.1::80"]).unwrap(),
            vec![m(Some([127, 0, 0, 1]), 0, 80, Tcp)]
        );
        assert_eq!(
            parse(&["0.0.0.0:81:80"]).unwrap(),
            vec![m(None, 81, 80, Tcp)]
        );
        assert_eq!(
            parse(&["8000-8002:80-82/TCP"]).unwrap(),
            vec![
                m(None, 8000, 80, Tcp),
                m(None, 8001, 81, Tcp),
                m(None, 8002, 82, Tcp)
            ]
        );
        assert_eq!(
            parse(&["53-54/udp"]).unwrap(),
            vec![m(None, 0, 53, Udp), m(None, 0, 54, Udp)]
        );
        // Same port, different protocols or host addresses: fine.
        assert_eq!(parse(&["53:53/tcp", "53:53/udp"]).unwrap().len(), 2);
        assert_eq!(
            parse(&["127.0.0.1:80:80", "127.0.0.2:80:80"])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(parse(&[]).unwrap(), vec![]);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "0",
            "80/sctp",
            "x:80",
            "65536:80",
            "8080:",
            "1.2.3:80:80",
            "[::1]:80:80",
            "1:2:3:4",
            "8000-8001:80",
            "82-80",
            "0-2:80-82",
            "-80",
            "80-",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad:?} should be rejected");
        }
        let err = parse(&["8080:80", "0.0.0.0:8080:81"]).unwrap_err();
        assert!(err.to_string().contains("clashes"), "{err}");
    }

    #[test]
    fn conflicts() {
        use Protocol::*;
        let any = m(None, 80, 1, Tcp);
        let lo = m(Some([127, 0, 0, 1]), 80, 2, Tcp);
        let lo2 = m(Some([127, 0, 0, 2]), 80, 3, Tcp);
        assert!(any.conflicts_with(&lo));
        assert!(lo.conflicts_with(&any));
        assert!(!lo.conflicts_with(&lo2));
        assert!(!any.conflicts_with(&m(None, 80, 1, Udp)));
        assert!(!m(None, 0, 1, Tcp).conflicts_with(&m(None, 0, 2, Tcp)));
    }
}
