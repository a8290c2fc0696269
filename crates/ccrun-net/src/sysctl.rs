//! The `/proc/sys/net` settings a bridge network needs, written in the
//! calling thread's network namespace (the kernel resolves `/proc/sys/net`
//! against the namespace of the task that opens the file).

use std::fs;
use std::path::PathBuf;

use crate::error::{Error, IoContext, Result};

/// The path of a sysctl given as its components (`["net", "ipv4",
/// "ip_forward"]`); components are not split on dots, so interface names
/// containing dots work.
fn path(components: &[&str]) -> Result<PathBuf> {
    let mut path = PathBuf::from("/proc/sys");
    for c in components {
        if c.is_empty() || c.contains('/') || *c == "." || *c == ".." {
            return Err(Error::InvalidConfig(format!(
                "invalid sysctl component {c:?}"
            )));
        }
        path.push(c);
    }
    Ok(path)
}

/// Reads a sysctl, trimmed.
pub fn read(components: &[&str]) -> Result<String> {
    let path = path(components)?;
    let value = fs::read_to_string(&path).ctx(|| format!("read {}", path.display()))?;
    Ok(value.trim().to_string())
}

/// Writes a sysctl unless it already has `value`.
pub fn write(components: &[&str], value: &str) -> Result<()> {
    if read(components)? == value {
        return Ok(());
    }
    let path = path(components)?;
    fs::write(&path, value).ctx(|| format!("write {value} to {}", path.display()))
}

/// Enables IPv4 forwarding (`net.ipv4.ip_forward=1`).
pub fn enable_ip_forward() -> Result<()> {
    write(&["net", "ipv4", "ip_forward"], "1")
}

/// Enables `net.ipv4.conf.<iface>.route_localnet`, which lets packets from
/// 127.0.0.0/8 be routed out of `iface`: needed for DNAT of connections to
/// `127.0.0.1:<hostPort>` towards a container behind the bridge.
pub fn enable_route_localnet(iface: &str) -> Result<()> {
    write(&["net", "ipv4", "conf", iface, "route_localnet"], "1")
}

/// Enables `net.ipv4.conf.<iface>.arp_notify`: the kernel announces the
/// interface's IPv4 addresses with gratuitous ARP when it comes up or its
/// MAC is set. Written without reading first: only called on a fresh
/// interface, whose value is the default's.
pub fn enable_arp_notify(iface: &str) -> Result<()> {
    let path = path(&["net", "ipv4", "conf", iface, "arp_notify"])?;
    fs::write(&path, "1").ctx(|| format!("write 1 to {}", path.display()))
}
