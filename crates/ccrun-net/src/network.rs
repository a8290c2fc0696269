//! The high-level API the engine calls: create a bridge network, attach a
//! container's network namespace to it (veth, address, routes, published
//! ports), detach it, and clean up after containers that died.
//!
//! All functions act on the network namespace of the calling thread (the
//! "host" side, holding the bridge); [`attach`] enters the container's
//! namespace itself for the container side. Changes to one network's
//! allocations and port rules are serialized by an exclusive `flock` on
//! `<ipam_dir>/.lock`, so concurrent processes are safe.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};
use crate::firewall::Firewall;
use crate::ipam::{validate_container_id, Ipam};
use crate::netlink::{created, found_link, Link, Netlink, Request};
use crate::netns::in_netns;
use crate::nft::PortRule;
use crate::ports::{check_host_port_free, pick_free_port, PortMapping};
use crate::subnet::Subnet;
use crate::sysctl;

/// Name of the default network.
pub const DEFAULT_NETWORK: &str = "ccrun";
/// Bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "ccrun0";
/// MTU used when none is configured and the namespace has no default route.
pub const DEFAULT_MTU: u32 = 1500;
/// Name of the container's interface.
pub const CONTAINER_IFNAME: &str = "eth0";
/// How many random host ports to try before giving up.
const PORT_PICK_ATTEMPTS: usize = 32;
/// How long [`announce`] waits for the bridge to forward a new port's frames.
const PORT_FORWARDING_WAIT: Duration = Duration::from_millis(100);
/// Pause between two looks at a new bridge port's state.
const PORT_FORWARDING_POLL: Duration = Duration::from_micros(100);

/// Where the default network's subnet is picked from, in this order, when it
/// is first made: the first one that no address or route of the host
/// overlaps (see [`subnets_in_use`]). These are Docker's default address
/// pools, 172.17.0.0/16 to 172.31.0.0/16, then 192.168.0.0/20 to
/// 192.168.240.0/20: Docker itself skips those a route already covers, and
/// podman's 10.88.0.0/16 is not among them.
pub fn default_pool() -> impl Iterator<Item = Subnet> {
    let sixteens = (17..=31u8).map(|b| (Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0..16u8).map(|n| (Ipv4Addr::new(192, 168, n * 16, 0), 20));
    sixteens
        .chain(twenties)
        .filter_map(|(ip, len)| Subnet::new(ip, len).ok())
}

/// The MAC of a container's `eth0`: 02:42 (locally administered, unicast)
/// followed by its IPv4 address, as Docker made them. A container that gets
/// its address back after a restart gets its MAC back too, so the
/// neighbours' ARP caches stay right.
pub fn container_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// An IPv4 range the calling thread's namespace uses (see [`subnets_in_use`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUse {
    /// The range's network address.
    pub network: Ipv4Addr,
    /// Its prefix length (0-32).
    pub prefix_len: u8,
    /// What uses it, for messages ("address of eth0", "route via eth0").
    pub by: String,
}

impl InUse {
    /// Whether the range and `subnet` share an address.
    pub fn overlaps(&self, subnet: &Subnet) -> bool {
        let mask = prefix_mask(self.prefix_len.min(subnet.prefix_len()));
        u32::from(self.network) & mask == u32::from(subnet.network()) & mask
    }
}

/// The netmask of a prefix length (0-32) as bits.
fn prefix_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.network, self.prefix_len, self.by)
    }
}

/// The IPv4 ranges the calling thread's namespace uses: each interface
/// address with its prefix, and the destination of each route of the main
/// table except default routes; those of interface `except` (a network's
/// own bridge, whose subnet is the network's) left out. A new network's
/// subnet must overlap none of them, or the host would route part of it
/// elsewhere.
pub fn subnets_in_use(except: Option<&str>) -> Result<Vec<InUse>> {
    let mut nl = Netlink::new()?;
    let names: std::collections::HashMap<u32, String> =
        nl.links()?.into_iter().map(|l| (l.index, l.name)).collect();
    let name = |index: u32| names.get(&index).map_or("?", String::as_str);
    let skipped = |index: Option<u32>| index.is_some_and(|i| Some(name(i)) == except);
    let mask = |ip: Ipv4Addr, len: u8| Ipv4Addr::from(u32::from(ip) & prefix_mask(len));
    let mut out: Vec<InUse> = nl
        .addresses(None)?
        .into_iter()
        .filter(|a| !skipped(Some(a.index)))
        .map(|a| InUse {
            network: mask(a.ip, a.prefix_len),
            prefix_len: a.prefix_len,
            by: format!("address of {}", name(a.index)),
        })
        .collect();
    out.extend(
        nl.routes()?
            .into_iter()
            .filter(|r| r.prefix_len > 0 && !skipped(r.oif))
            .map(|r| InUse {
                network: mask(r.destination, r.prefix_len),
                prefix_len: r.prefix_len,
                by: match r.oif {
                    Some(oif) => format!("route via {}", name(oif)),
                    None => "route".to_string(),
                },
            }),
    );
    Ok(out)
}

/// A bridge network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkConfig {
    /// Network name (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub name: String,
    /// Bridge interface name (at most 15 characters).
    pub bridge: String,
    /// The network's subnet.
    pub subnet: Subnet,
    /// The bridge's address, containers' default gateway.
    pub gateway: Ipv4Addr,
    /// MTU of the bridge and veths; 0 means that of the interface holding
    /// the default route of the bridge's namespace, else 1500.
    pub mtu: u32,
}

impl NetworkConfig {
    /// The default network on `subnet` (see [`default_pool`]): `ccrun`,
    /// bridge `ccrun0`, the subnet's first address as gateway, automatic MTU.
    pub fn default_network(subnet: Subnet) -> Self {
        NetworkConfig {
            name: DEFAULT_NETWORK.to_string(),
            bridge: DEFAULT_BRIDGE.to_string(),
            subnet,
            gateway: subnet.first_host(),
            mtu: 0,
        }
    }

    /// Checks names, that the gateway is a host address of the subnet and
    /// the MTU range.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidConfig(why));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return bad(format!(
                "network name {:?} must be 1-64 characters of [A-Za-z0-9._-]",
                self.name
            ));
        }
        if self.bridge.is_empty()
            || self.bridge.len() > 15
            || self.bridge == "."
            || self.bridge == ".."
            || self
                .bridge
                .bytes()
                .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return bad(format!(
                "bridge name {:?} must be 1-15 characters without '/', ':' or spaces",
                self.bridge
            ));
        }
        if !self.subnet.is_host(self.gateway) {
            return bad(format!(
                "gateway {} is not a host address of subnet {}",
                self.gateway, self.subnet
            ));
        }
        if self.mtu != 0 && !(68..=65535).contains(&self.mtu) {
            return bad(format!("MTU {} must be between 68 and 65535", self.mtu));
        }
        Ok(())
    }
}

/// A container attached to a network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The container.
    pub container_id: String,
    /// The network's name.
    pub network: String,
    /// The container's address on `eth0`.
    pub ip: Ipv4Addr,
    /// Prefix length of the address.
    pub prefix_len: u8,
    /// The container's default gateway.
    pub gateway: Ipv4Addr,
    /// Host end of the veth pair, attached to the bridge.
    pub host_veth: String,
    /// MTU of the veth pair.
    pub mtu: u32,
    /// Published ports, with the host ports that were picked filled in.
    pub ports: Vec<PortMapping>,
}

/// The host-side veth name of a container: `veth` + the first 8 hex
/// digits of its id, or of a hash of the id if it does not start with 8
/// hex digits.
pub fn veth_name(container_id: &str) -> String {
    let prefix = container_id.get(..8).filter(|p| {
        p.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    match prefix {
        Some(p) => format!("veth{p}"),
        None => {
            // FNV-1a: stable across runs and platforms.
            let hash = container_id.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            format!("veth{hash:08x}")
        }
    }
}

/// Creates the network if needed, in the calling thread's namespace: the
/// bridge (with MTU, up) holding the gateway address, IPv4 forwarding,
/// `route_localnet` on the bridge, and ccrun's NAT (see [`crate::firewall`]) with the
/// network's masquerade rules. Idempotent; safe to run concurrently.
pub fn ensure_network(cfg: &NetworkConfig) -> Result<()> {
    cfg.validate()?;
    ensure_network_with(cfg, &mut Netlink::new()?, &mut Firewall::new()?).map(drop)
}

/// [`ensure_network`] on connections the caller goes on using; returns the
/// bridge.
fn ensure_network_with(cfg: &NetworkConfig, nl: &mut Netlink, fw: &mut Firewall) -> Result<Link> {
    let bridge = match nl.link_by_name(&cfg.bridge)? {
        Some(link) => link,
        None => {
            let mtu = match cfg.mtu {
                0 => nl.default_route_mtu()?.unwrap_or(DEFAULT_MTU),
                mtu => mtu,
            };
            // The gateway's derived MAC: stable, and no container's.
            let mac = container_mac(cfg.gateway);
            if nl.create_bridge(&cfg.bridge, Some(mtu), Some(mac))? {
                tracing::debug!(bridge = %cfg.bridge, mtu, "created bridge");
            }
            nl.require_link(&cfg.bridge)?
        }
    };
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(Error::InvalidConfig(format!(
            "link {} exists but is not a bridge (kind {})",
            cfg.bridge,
            bridge.kind.as_deref().unwrap_or("unknown")
        )));
    }
    let added = nl.add_address(bridge.index, cfg.gateway, cfg.subnet.prefix_len())?;
    if !bridge.up {
        nl.set_link(bridge.index, Some(true), None, None)?;
    }
    sysctl::enable_ip_forward()?;
    sysctl::enable_route_localnet(&cfg.bridge)?;
    // Every start comes through here: a commit costs far more than a dump,
    // so an intact network is left as it is.
    if !(bridge.up && !added && fw.network_ready(&cfg.name)?) {
        fw.ensure_network(&cfg.name, &cfg.bridge, cfg.subnet)?;
    }
    Ok(bridge)
}

/// Removes the network's bridge and its masquerade chain from the calling
/// thread's namespace. Attachments and their allocations are not touched;
/// detach the containers first.
pub fn remove_network(cfg: &NetworkConfig) -> Result<()> {
    cfg.validate()?;
    Netlink::new()?.delete_link(&cfg.bridge)?;
    Firewall::new()?.remove_network(&cfg.name)
}

/// Takes the network's lock (`<ipam_dir>/.lock`), creating the directory.
fn lock(ipam_dir: &Path) -> Result<Flock<File>> {
    fs::create_dir_all(ipam_dir).ctx(|| format!("create IPAM directory {}", ipam_dir.display()))?;
    let path = ipam_dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(format!("lock {}", path.display()), errno.into()))
}

fn open_ipam(cfg: &NetworkConfig, ipam_dir: &Path) -> Result<Ipam> {
    Ipam::open(ipam_dir, &cfg.name, cfg.subnet, cfg.gateway)
}

/// Brings `lo` up in network namespace `ns`: a container with a network
/// namespace of its own but no network (`--network none`) still has a
/// working loopback, as with Docker and podman.
pub fn loopback_up(ns: BorrowedFd<'_>) -> Result<()> {
    let started = Instant::now();
    in_netns(ns, || Netlink::new()?.set_up("lo"))?;
    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "lo up");
    Ok(())
}

/// Attaches the container whose network namespace is `container_netns` to
/// the network: ensures the network, allocates an address (`requested_ip`
/// if given), creates a veth pair whose host end joins the bridge and whose
/// other end is `eth0` inside the container with the address, its
/// [`container_mac`], a default route via the gateway and `lo` up,
/// publishes `ports` (host port 0: a free one is picked) and announces the
/// address (see [`announce`]). Called in the namespace holding the bridge.
/// On failure everything done so far is undone.
pub fn attach(
    cfg: &NetworkConfig,
    ipam_dir: &Path,
    container_netns: BorrowedFd<'_>,
    container_id: &str,
    requested_ip: Option<Ipv4Addr>,
    ports: &[PortMapping],
) -> Result<Attachment> {
    attach_endpoint(
        cfg,
        ipam_dir,
        container_netns,
        container_id,
        requested_ip,
        ports,
        &Endpoint::default(),
    )
}

/// How a container's interface on one network is set up, beyond its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The interface's name inside the container.
    pub ifname: String,
    /// Its MAC; `None` for [`container_mac`] of its address.
    pub mac: Option<[u8; 6]>,
    /// The container's primary network: its interface gets the default route and
    /// the published ports, and the host end of its veth is [`veth_name`]. A
    /// secondary one (`network connect`) gets neither, its veth is
    /// [`secondary_veth_name`], and detaching it leaves the container's port rules
    /// alone.
    pub primary: bool,
}

impl Default for Endpoint {
    /// `eth0`, the derived MAC, primary.
    fn default() -> Self {
        Endpoint {
            ifname: CONTAINER_IFNAME.to_string(),
            mac: None,
            primary: true,
        }
    }
}

impl Endpoint {
    fn veth(&self, container_id: &str, network: &str) -> String {
        if self.primary {
            veth_name(container_id)
        } else {
            secondary_veth_name(container_id, network)
        }
    }
}

/// The host end of a container's veth on a secondary network: `veth` + 8 hex digits
/// of a hash of the container id and the network's name.
pub fn secondary_veth_name(container_id: &str, network: &str) -> String {
    // FNV-1a, as veth_name: stable across runs and platforms.
    let hash = container_id
        .bytes()
        .chain([b'/'])
        .chain(network.bytes())
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("veth{hash:08x}")
}

/// [`attach`] with the interface set up as `endpoint` says (a secondary network's
/// gets no ports: `ports` must be empty).
pub fn attach_endpoint(
    cfg: &NetworkConfig,
    ipam_dir: &Path,
    container_netns: BorrowedFd<'_>,
    container_id: &str,
    requested_ip: Option<Ipv4Addr>,
    ports: &[PortMapping],
    endpoint: &Endpoint,
) -> Result<Attachment> {
    if !endpoint.primary && !ports.is_empty() {
        return Err(Error::InvalidConfig(
            "ports are published on the primary network only".into(),
        ));
    }
    if endpoint.ifname.is_empty()
        || endpoint.ifname.len() > 15
        || !endpoint
            .ifname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::InvalidConfig(format!(
            "interface name {:?} must be 1-15 characters of [A-Za-z0-9_-]",
            endpoint.ifname
        )));
    }
    let started = Instant::now();
    validate_container_id(container_id)?;
    cfg.validate()?;
    let mut nl = Netlink::new()?;
    let mut fw = Firewall::new()?;
    let bridge = ensure_network_with(cfg, &mut nl, &mut fw)?;
    let _lock = lock(ipam_dir)?;
    let ipam = open_ipam(cfg, ipam_dir)?;
    let ip = ipam.allocate(container_id, requested_ip)?;
    let host = Host {
        nl: &mut nl,
        fw: &mut fw,
        bridge: &bridge,
    };
    let target = Target {
        netns: container_netns,
        container_id,
        ip,
        endpoint,
    };
    match attach_locked(cfg, &ipam, host, &target, ports) {
        Ok(attachment) => {
            tracing::debug!(
                container = container_id,
                %ip,
                elapsed_us = started.elapsed().as_micros() as u64,
                "attached"
            );
            Ok(attachment)
        }
        Err(e) => {
            if let Err(cleanup) = cleanup(
                &ipam,
                container_id,
                Veth::Delete,
                &endpoint.veth(container_id, &cfg.name),
                endpoint.primary,
            ) {
                tracing::warn!(
                    container = container_id,
                    "cleanup after failed attach: {cleanup}"
                );
            }
            Err(e)
        }
    }
}

/// The host side's connections and its bridge, for [`attach_locked`].
struct Host<'a> {
    nl: &'a mut Netlink,
    fw: &'a mut Firewall,
    bridge: &'a Link,
}

/// The container side of an attachment, for [`attach_locked`].
struct Target<'a> {
    netns: BorrowedFd<'a>,
    container_id: &'a str,
    ip: Ipv4Addr,
    endpoint: &'a Endpoint,
}

fn attach_locked(
    cfg: &NetworkConfig,
    ipam: &Ipam,
    host: Host<'_>,
    target: &Target<'_>,
    ports: &[PortMapping],
) -> Result<Attachment> {
    let Host { nl, fw, bridge } = host;
    let Target {
        netns: container_netns,
        container_id,
        ip,
        endpoint,
    } = *target;
    let ifname = endpoint.ifname.as_str();
    let mtu = match cfg.mtu {
        0 => bridge.mtu.unwrap_or(DEFAULT_MTU),
        mtu => mtu,
    };

    // Leftovers of an earlier attachment of this container go first; the rest
    // serve the conflict checks. A secondary network has no ports, and must not
    // touch those of the primary one.
    let ports = if endpoint.primary {
        let existing = fw.clear_container_ports(container_id)?;
        resolve_ports(ports, &existing, container_id)?
    } else {
        Vec::new()
    };

    let host_veth = endpoint.veth(container_id, &cfg.name);
    let mac = endpoint.mac.unwrap_or_else(|| container_mac(ip));
    let eth0 = (ifname, mac);
    if !plug_veth(nl, &host_veth, eth0, mtu, container_netns, bridge.index)? {
        // A veth of that name is left over (this container's, from a run whose
        // cleanup did not happen or whose namespace is still being destroyed),
        // unless another container's id starts with the same 8 hex digits.
        let clash = ipam
            .allocations()?
            .into_iter()
            .find(|(_, owner)| owner != container_id && veth_name(owner) == host_veth);
        if let Some((_, owner)) = clash {
            return Err(Error::InvalidConfig(format!(
                "veth name {host_veth} of container {container_id} is in use by container {owner}"
            )));
        }
        nl.delete_link(&host_veth)?;
        if !plug_veth(nl, &host_veth, eth0, mtu, container_netns, bridge.index)? {
            return Err(Error::InvalidConfig(format!(
                "veth {host_veth} exists, or the container already has {ifname}"
            )));
        }
    }

    let prefix_len = cfg.subnet.prefix_len();
    // A socket opened inside the container's namespace stays there: the
    // thread only visits to open it (and to reach eth0's sysctls).
    let mut inside = in_netns(container_netns, || {
        sysctl::enable_arp_notify(ifname)?;
        Netlink::new()
    })?;
    let gateway = endpoint.primary.then_some(cfg.gateway);
    let eth0 = configure_container_side(&mut inside, ifname, ip, prefix_len, gateway)?;

    if !ports.is_empty() {
        fw.add_ports(container_id, ip, &ports)?;
    }
    // Last: by now the bridge has most likely enabled the port.
    if let Err(e) = announce(nl, &mut inside, &host_veth, eth0, mac) {
        tracing::warn!(container = container_id, "announcing {ip}: {e}");
    }
    Ok(Attachment {
        container_id: container_id.to_string(),
        network: cfg.name.clone(),
        ip,
        prefix_len,
        gateway: cfg.gateway,
        host_veth,
        mtu,
        ports,
    })
}

/// Has the kernel announce the container's address with a gratuitous ARP
/// (its `arp_notify` is on: setting eth0's MAC, even to the same one, makes
/// it send one), so that neighbours that cached another MAC for the address
/// (a container's from before MACs were derived from addresses, or a stale
/// bridge forwarding entry) learn this one at once rather than after their
/// entry expires. The kernel does this without a packet socket of ours,
/// whose close would wait for an RCU grace period (8-24 ms measured) on
/// every start.
///
/// The bridge drops frames from a port it has not enabled yet, and it
/// enables a new port only once the kernel's link watcher has seen its
/// carrier, a moment after eth0 came up: this waits for that, at most
/// [`PORT_FORWARDING_WAIT`], and gives up quietly after that (a neighbour
/// that missed the announcement learns the MAC when its entry expires).
fn announce(
    host: &mut Netlink,
    inside: &mut Netlink,
    host_veth: &str,
    eth0: u32,
    mac: [u8; 6],
) -> Result<()> {
    let started = Instant::now();
    while !host.bridge_port_forwarding(host_veth)? {
        if started.elapsed() >= PORT_FORWARDING_WAIT {
            tracing::debug!(
                veth = host_veth,
                "bridge port not forwarding: no announcement"
            );
            return Ok(());
        }
        std::thread::sleep(PORT_FORWARDING_POLL);
    }
    let [set] = inside.pipeline([Request::set_mac(eth0, mac)])?;
    set?;
    tracing::debug!(
        veth = host_veth,
        waited_us = started.elapsed().as_micros() as u64,
        "announced"
    );
    Ok(())
}

/// Creates the veth pair, in one round trip: `host_veth` up on bridge
/// `bridge` with hairpin mode on, its peer `eth0` (name, MAC; still down)
/// inside the container's namespace. Hairpin mode lets the bridge send a frame back out of the port
/// it came in on: needed when a container reaches its own published port
/// through the host and `br_netfilter` turns the DNATed packet into a
/// bridged one. Returns false if a link of either name exists.
fn plug_veth(
    nl: &mut Netlink,
    host_veth: &str,
    (eth0, mac): (&str, [u8; 6]),
    mtu: u32,
    container_netns: BorrowedFd<'_>,
    bridge: u32,
) -> Result<bool> {
    let [veth, hairpin] = nl.pipeline([
        Request::create_veth(
            host_veth,
            (eth0, Some(mac)),
            mtu,
            container_netns,
            Some(bridge),
            true,
        ),
        Request::set_hairpin(host_veth, true),
    ])?;
    if !created(veth)? {
        // The hairpin request went to the existing link, which is deleted or
        // kept as it was: either way that does not matter.
        return Ok(false);
    }
    hairpin?;
    Ok(true)
}

/// Inside the container's namespace (`nl` is a socket there): `lo` and
/// `ifname` up, the address on `ifname` and the default route via `gateway`
/// (primary networks), in two round trips. Returns the interface's index.
fn configure_container_side(
    nl: &mut Netlink,
    ifname: &str,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<u32> {
    let [lo, up, eth] = nl.pipeline([
        Request::set_up("lo"),
        Request::set_up(ifname),
        Request::get_link(ifname),
    ])?;
    lo?;
    up?;
    let eth = found_link(eth)?.ok_or_else(|| {
        Error::InvalidConfig(format!("{ifname} is missing in the container's namespace"))
    })?;
    // The address first: on an up link it brings the subnet's route, through
    // which the gateway is reachable, as the default route requires.
    let Some(gateway) = gateway else {
        let [address] = nl.pipeline([Request::add_address(eth.index, ip, prefix_len)])?;
        created(address)?;
        return Ok(eth.index);
    };
    let [address, route] = nl.pipeline([
        Request::add_address(eth.index, ip, prefix_len),
        Request::add_default_route(gateway, eth.index),
    ])?;
    created(address)?;
    created(route)?;
    Ok(eth.index)
}

/// Fills in host ports to pick and checks every mapping against the other
/// containers' published ports and the host's bound sockets.
fn resolve_ports(
    ports: &[PortMapping],
    existing: &[PortRule],
    container_id: &str,
) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::new();
    let taken = |m: &PortMapping, out: &[PortMapping]| -> Option<String> {
        existing
            .iter()
            .find(|r| r.container_id != container_id && r.mapping.conflicts_with(m))
            .map(|r| r.container_id.clone())
            .or_else(|| {
                out.iter()
                    .any(|o| o.conflicts_with(m))
                    .then(|| container_id.to_string())
            })
    };
    for m in ports {
        let mut m = *m;
        if m.host_port == 0 {
            let mut picked = None;
            for _ in 0..PORT_PICK_ATTEMPTS {
                let candidate = PortMapping {
                    host_port: pick_free_port(m.host_ip, m.protocol)?,
                    ..m
                };
                if taken(&candidate, &out).is_none() {
                    picked = Some(candidate);
                    break;
                }
            }
            m = picked.ok_or_else(|| {
                Error::io(
                    format!("pick a free {} host port", m.protocol),
                    std::io::Error::from(std::io::ErrorKind::AddrInUse),
                )
            })?;
        } else {
            if let Some(owner) = taken(&m, &out) {
                return Err(Error::PortAllocated {
                    proto: m.protocol.to_string(),
                    host: m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    port: m.host_port,
                    owner,
                });
            }
            check_host_port_free(m.host_ip, m.host_port, m.protocol)?;
        }
        out.push(m);
    }
    Ok(out)
}

/// What becomes of a container's veth when it is detached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Veth {
    /// Deleted (the container may still run).
    Delete,
    /// The container's processes are gone: its namespace, and the veth with
    /// it, goes by itself (see [`retire_veth`]).
    Retire,
}

/// Removes the veth `name`, the port rules (with `ports`) and the address of
/// `container_id`. Each step runs even if an earlier one failed; the first error
/// is returned.
fn cleanup(ipam: &Ipam, container_id: &str, veth: Veth, name: &str, ports: bool) -> Result<()> {
    let steps: [Result<()>; 3] = [
        Netlink::new().and_then(|mut nl| match veth {
            Veth::Delete => nl.delete_link(name).map(drop),
            Veth::Retire => retire_veth(&mut nl, name),
        }),
        if ports {
            Firewall::new().and_then(|mut fw| fw.remove_container(container_id).map(drop))
        } else {
            Ok(())
        },
        ipam.release(container_id).map(drop),
    ];
    steps.into_iter().collect::<Result<Vec<()>>>().map(drop)
}

/// Takes the veth of a container whose processes are gone out of service
/// without deleting it: the kernel deletes the pair when the container's
/// namespace is destroyed. Deleting it here would cost a device
/// unregistration's RCU waits (`rcu_barrier`), 6-30 ms measured, on the path
/// of every container's exit (`run --rm` returning, `stop`, `rm`).
///
/// A dying namespace (its id no longer resolves) needs nothing. One still
/// alive is usually so for a moment only (the socket through which attach
/// configured it is freed after an RCU grace period), but someone may keep
/// it (a container sharing it, a process that entered it): the host end is
/// set down, which is cheap, so that the container's side, and the address it
/// still holds, are cut off the bridge at once; the address can be handed
/// out again right away.
fn retire_veth(nl: &mut Netlink, name: &str) -> Result<()> {
    let Some(link) = nl.link_by_name(name)? else {
        return Ok(());
    };
    if let Some(nsid) = link.link_netnsid {
        if !nl.netns_alive(nsid)? {
            tracing::debug!(veth = name, "goes with its dying namespace");
            return Ok(());
        }
    }
    if link.up {
        match nl.set_link(link.index, Some(false), None, None) {
            Err(e) if e.netlink_errno() == Some(libc::ENODEV) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Detaches `container_id` from the network: deletes its veth, its
/// published-port rules and its address allocation. Idempotent. Called in
/// the namespace holding the bridge.
pub fn detach(cfg: &NetworkConfig, ipam_dir: &Path, container_id: &str) -> Result<()> {
    detach_with(
        cfg,
        ipam_dir,
        container_id,
        Veth::Delete,
        &Endpoint::default(),
    )
}

/// Detaches `container_id` from a network it was attached to as `endpoint`: its
/// veth is deleted (set down and left to its namespace with `exited`, see
/// [`detach_exited`]), its address released, and, for its primary network only,
/// its port rules removed. Idempotent.
pub fn detach_endpoint(
    cfg: &NetworkConfig,
    ipam_dir: &Path,
    container_id: &str,
    endpoint: &Endpoint,
    exited: bool,
) -> Result<()> {
    let veth = if exited { Veth::Retire } else { Veth::Delete };
    detach_with(cfg, ipam_dir, container_id, veth, endpoint)
}

/// [`detach`] for a container whose processes are all gone: its veth is not
/// deleted but left to go with its network namespace (set down meanwhile if
/// that namespace is still alive), which keeps the device unregistration's
/// waits off the caller. Rules and address are released as by [`detach`].
pub fn detach_exited(cfg: &NetworkConfig, ipam_dir: &Path, container_id: &str) -> Result<()> {
    detach_with(
        cfg,
        ipam_dir,
        container_id,
        Veth::Retire,
        &Endpoint::default(),
    )
}

fn detach_with(
    cfg: &NetworkConfig,
    ipam_dir: &Path,
    container_id: &str,
    veth: Veth,
    endpoint: &Endpoint,
) -> Result<()> {
    let started = Instant::now();
    validate_container_id(container_id)?;
    cfg.validate()?;
    let _lock = lock(ipam_dir)?;
    let ipam = open_ipam(cfg, ipam_dir)?;
    cleanup(
        &ipam,
        container_id,
        veth,
        &endpoint.veth(container_id, &cfg.name),
        endpoint.primary,
    )?;
    tracing::debug!(
        container = container_id,
        ?veth,
        elapsed_us = started.elapsed().as_micros() as u64,
        "detached"
    );
    Ok(())
}

/// Detaches every container of the network for which `is_alive` says no:
/// those holding an address in `ipam_dir` and those with published-port
/// rules towards the network's subnet (their veths as by
/// [`detach_exited`]). Returns the ids cleaned up. Claims
/// without a valid owner (left empty by a crash) are freed too.
pub fn remove_stale(
    cfg: &NetworkConfig,
    ipam_dir: &Path,
    is_alive: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    cfg.validate()?;
    let _lock = lock(ipam_dir)?;
    let ipam = open_ipam(cfg, ipam_dir)?;
    let orphans = ipam.release_orphans()?;
    if !orphans.is_empty() {
        tracing::debug!(?orphans, "released claims without a valid owner");
    }
    let mut ids: BTreeSet<String> = ipam.allocations()?.into_iter().map(|(_, id)| id).collect();
    let rules = Firewall::new()?.port_rules()?;
    ids.extend(
        rules
            .iter()
            .filter(|r| cfg.subnet.contains(r.container_ip))
            .map(|r| r.container_id.clone()),
    );
    let mut removed = Vec::new();
    for id in ids {
        if is_alive(&id) {
            continue;
        }
        // Ids from rules were never validated: skip anything odd.
        if validate_container_id(&id).is_err() {
            continue;
        }
        cleanup(&ipam, &id, Veth::Retire, &veth_name(&id), true)?;
        removed.push(id);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(veth_name(id), "veth01234567");
        let named = veth_name("my-container");
        assert_eq!(named.len(), 12);
        assert!(named.starts_with("veth"));
        assert_eq!(named, veth_name("my-container"));
        assert_ne!(named, veth_name("my-container2"));
        assert!(veth_name("ABCDEF0123").len() <= 15);
        let second = secondary_veth_name(id, "appnet");
        assert_eq!(second.len(), 12);
        assert_ne!(second, veth_name(id));
        assert_ne!(second, secondary_veth_name(id, "other"));
    }

    #[test]
    fn config_validation() {
        let ok = NetworkConfig::default_network("10.88.0.0/16".parse().unwrap());
        ok.validate().unwrap();
        assert_eq!(ok.gateway, Ipv4Addr::new(10, 88, 0, 1));
        let mut c = ok.clone();
        c.gateway = Ipv4Addr::new(10, 89, 0, 1);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.gateway = Ipv4Addr::new(10, 88, 0, 0);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.bridge = "a-very-long-bridge-name".into();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.name = "bad name".into();
        assert!(c.validate().is_err());
        let mut c = ok;
        c.mtu = 10;
        assert!(c.validate().is_err());
    }

    #[test]
    fn macs_follow_addresses() {
        assert_eq!(
            container_mac(Ipv4Addr::new(172, 18, 0, 2)),
            [0x02, 0x42, 172, 18, 0, 2]
        );
    }

    #[test]
    fn pool_and_overlaps() {
        let pool: Vec<String> = default_pool().map(|s| s.to_string()).collect();
        assert_eq!(pool.first().map(String::as_str), Some("172.17.0.0/16"));
        assert_eq!(pool.get(15).map(String::as_str), Some("192.168.0.0/20"));
        assert_eq!(pool.last().map(String::as_str), Some("192.168.240.0/20"));
        let used = |network: [u8; 4], prefix_len| InUse {
            network: Ipv4Addr::from(network),
            prefix_len,
            by: String::new(),
        };
        let s: Subnet = "172.18.0.0/16".parse().unwrap();
        assert!(used([172, 18, 5, 0], 24).overlaps(&s));
        assert!(used([172, 16, 0, 0], 12).overlaps(&s));
        assert!(used([172, 18, 0, 7], 32).overlaps(&s));
        assert!(!used([172, 19, 0, 0], 16).overlaps(&s));
        assert!(!used([10, 88, 0, 0], 16).overlaps(&s));
    }
}
