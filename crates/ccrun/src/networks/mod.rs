//! Container networking in the engine: attaching a created container to its bridge
//! network (through `ccrun_net`) before its process starts, detaching it when it ends,
//! and the `/etc/hosts` files through which containers on a user-defined network find
//! each other by name and alias.
//!
//! The hosts files follow the network's address allocations (its IPAM directory), the
//! one record of who holds which address that every attach, detach and clean-up changes
//! under the network's lock: after each such change, every member's file is rewritten
//! from them, under the network store's lock, so the last rewrite always reflects the
//! last change, whatever the order in which concurrent starts, stops and removals ran.

pub mod store;

use std::os::fd::AsFd;

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

pub use store::{NetworkRecord, NetworkStore, DEFAULT_NETWORK};

use crate::containers::options::ConnectedNetwork;
use crate::containers::record::NetworkChoice;
use crate::containers::{ContainerStore, Record, Status};
use crate::etc_files;

/// Attaches the created container `record` (its init is `pid`, not yet started) to
/// its network and writes its `/etc/hosts`; `None` for other network modes. The
/// caller records the attachment (with the rest of the start, in one write).
pub fn connect(
    containers: &ContainerStore,
    record: &Record,
    pid: i32,
) -> Result<Option<ccrun_net::Attachment>> {
    let (network, ip, ports) = match &record.network {
        NetworkChoice::Bridge {
            network, ip, ports, ..
        } => (network, ip, ports),
        NetworkChoice::None if crate::rootless::active() => {
            crate::rootless::network::loopback_up(pid)?;
            return Ok(None);
        }
        NetworkChoice::None => {
            let netns = ccrun_net::netns::of_pid(pid)
                .context("opening the container's network namespace")?;
            ccrun_net::loopback_up(netns.as_fd()).context("bringing up lo")?;
            return Ok(None);
        }
        NetworkChoice::Host | NetworkChoice::Container { .. } => return Ok(None),
    };
    if network == crate::rootless::network::USER_NETWORK {
        return crate::rootless::network::connect(containers, record, pid).map(Some);
    }
    crate::rootless::in_user_netns(|| connect_bridge(containers, record, pid, network, *ip, ports))
        .map(Some)
}

/// [`connect`] to the bridge network `network`, from the namespace its bridge is in.
fn connect_bridge(
    containers: &ContainerStore,
    record: &Record,
    pid: i32,
    network: &str,
    ip: Option<std::net::Ipv4Addr>,
    ports: &[ccrun_net::PortMapping],
) -> Result<ccrun_net::Attachment> {
    // Checked before anything is set up, so a bad `$CCRUN_FIREWALL` is one clear error.
    ccrun_net::Backend::detect()?;
    let networks = NetworkStore::open(containers.root())?;
    let net = networks.find(network)?;
    let netns =
        ccrun_net::netns::of_pid(pid).context("opening the container's network namespace")?;
    let mac = record
        .options
        .mac_address
        .as_deref()
        .map(crate::commands::run_flags::parse_mac)
        .transpose()?;
    let endpoint = ccrun_net::Endpoint {
        mac,
        ..ccrun_net::Endpoint::default()
    };
    let attach = || {
        ccrun_net::attach_endpoint(
            &net.config(),
            &networks.ipam_dir(&net.name),
            netns.as_fd(),
            &record.id,
            ip,
            ports,
            &endpoint,
        )
    };
    let attachment = attach_reclaiming(&networks, containers, record, &net, attach)?;
    let mut done = vec![(net.clone(), ccrun_net::Endpoint::default())];
    let mut connected = Ok(());
    for extra in &record.options.networks {
        match connect_secondary(&networks, containers, record, netns.as_fd(), extra) {
            Ok(done_one) => done.push(done_one),
            Err(e) => {
                connected = Err(e);
                break;
            }
        }
    }
    let hosts_written = connected.and_then(|()| {
        for (n, _) in &done {
            if n.resolves_names() {
                sync_members(&networks, containers, n)?;
            }
        }
        write_hosts(&networks, containers, record)
    });
    if let Err(e) = hosts_written {
        for (n, endpoint) in done {
            let _ = ccrun_net::detach_endpoint(
                &n.config(),
                &networks.ipam_dir(&n.name),
                &record.id,
                &endpoint,
                false,
            );
        }
        return Err(e);
    }
    network_event(containers, "connect", &net, record);
    Ok(attachment)
}

/// Runs `attach` of `record` to `net`; if it fails, clears what containers that died
/// unobserved hold there (their address or ports may be in the way) and tries once
/// more. They are cleared only then, to keep that work off every start.
fn attach_reclaiming(
    networks: &NetworkStore,
    containers: &ContainerStore,
    record: &Record,
    net: &NetworkRecord,
    attach: impl Fn() -> ccrun_net::Result<ccrun_net::Attachment>,
) -> Result<ccrun_net::Attachment> {
    attach()
        .or_else(|first| {
            let alive = |id: &str| {
                id == record.id
                    || containers
                        .get(id)
                        .ok()
                        .flatten()
                        .is_some_and(|r| matches!(r.status, Status::Running | Status::Created))
            };
            match ccrun_net::remove_stale(&net.config(), &networks.ipam_dir(&net.name), alive) {
                Ok(removed) if !removed.is_empty() => attach(),
                _ => Err(first),
            }
        })
        .with_context(|| format!("attaching to network {}", net.name))
}

/// Checks that `ip` (`--ip`) is a host address of `net` other than its gateway.
pub fn check_ip(net: &NetworkRecord, ip: Option<std::net::Ipv4Addr>) -> Result<()> {
    if let Some(ip) = ip {
        if !net.subnet.is_host(ip) || ip == net.gateway {
            bail!(
                "--ip {ip} is not a free host address of {} ({})",
                net.name,
                net.subnet
            );
        }
    }
    Ok(())
}

/// The endpoint of a network the container was connected to with `network connect`.
fn secondary_endpoint(extra: &ConnectedNetwork) -> ccrun_net::Endpoint {
    ccrun_net::Endpoint {
        ifname: extra.ifname.clone(),
        mac: None,
        primary: false,
    }
}

/// Attaches the container in network namespace `netns` to `extra`, a network it was
/// connected to (no default route, no ports); peers' hosts files are the caller's.
pub fn connect_secondary(
    networks: &NetworkStore,
    containers: &ContainerStore,
    record: &Record,
    netns: std::os::fd::BorrowedFd<'_>,
    extra: &ConnectedNetwork,
) -> Result<(NetworkRecord, ccrun_net::Endpoint)> {
    let net = networks.find(&extra.network)?;
    let endpoint = secondary_endpoint(extra);
    let attach = || {
        ccrun_net::attach_endpoint(
            &net.config(),
            &networks.ipam_dir(&net.name),
            netns,
            &record.id,
            extra.ip,
            &[],
            &endpoint,
        )
    };
    attach_reclaiming(networks, containers, record, &net, attach)?;
    Ok((net, endpoint))
}

/// Detaches the container from `extra`, a network it was connected to: its interface
/// there goes (left to its namespace with `exited`), its address is released and the
/// network's members are told.
pub fn disconnect_secondary(
    networks: &NetworkStore,
    containers: &ContainerStore,
    record: &Record,
    extra: &ConnectedNetwork,
    exited: bool,
) -> Result<()> {
    let Ok(net) = networks.find(&extra.network) else {
        return Ok(());
    };
    ccrun_net::detach_endpoint(
        &net.config(),
        &networks.ipam_dir(&net.name),
        &record.id,
        &secondary_endpoint(extra),
        exited,
    )
    .with_context(|| format!("detaching from network {}", net.name))?;
    if net.resolves_names() {
        sync_members(networks, containers, &net)?;
    }
    Ok(())
}

/// Detaches container `record`, whose processes are gone, from its network (published
/// ports, address; its veth goes with its network namespace) and tells its peers; safe
/// to call more than once, also after a crash. The caller clears the record's
/// attachment with its own update (or removes the record).
pub fn disconnect(containers: &ContainerStore, record: &Record) -> Result<()> {
    let network = match (&record.attachment, &record.network) {
        (Some(a), _) => a.network.clone(),
        (None, NetworkChoice::Bridge { network, .. }) => network.clone(),
        _ => return Ok(()),
    };
    if network == crate::rootless::network::USER_NETWORK {
        crate::rootless::network::disconnect(containers, record);
        return Ok(());
    }
    crate::rootless::in_user_netns(|| disconnect_bridge(containers, record, &network))
}

/// [`disconnect`] from the bridge network `network`, in the namespace its bridge is in.
fn disconnect_bridge(containers: &ContainerStore, record: &Record, network: &str) -> Result<()> {
    if ccrun_net::Backend::detect().is_err() {
        // `connect` refuses to attach under a firewall choice it cannot make.
        return Ok(());
    }
    let networks = NetworkStore::open(containers.root())?;
    let net = match networks.find(network) {
        Ok(net) => net,
        // The network went first (it cannot while in use); nothing is left to undo.
        Err(_) => return Ok(()),
    };
    ccrun_net::detach_exited(&net.config(), &networks.ipam_dir(&net.name), &record.id)
        .with_context(|| format!("detaching from network {}", net.name))?;
    if net.resolves_names() {
        sync_members(&networks, containers, &net)?;
    }
    if record.attachment.is_some() {
        network_event(containers, "disconnect", &net, record);
    }
    for extra in &record.options.networks {
        disconnect_secondary(&networks, containers, record, extra, true)?;
    }
    Ok(())
}

/// Checks `--network-alias` names: they go into `/etc/hosts` files, so each must be one
/// host name (letters, digits, `-`, `_` and `.`, not starting with `-` or `.`).
pub fn check_aliases(aliases: &[String]) -> Result<()> {
    for alias in aliases {
        let ok = alias.len() <= 253
            && alias
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            bail!(
                "invalid --network-alias {alias:?}: use letters, digits, '-', '_' and '.', \
                 starting with a letter, a digit or '_'"
            );
        }
    }
    Ok(())
}

/// Docker's network `connect`/`disconnect` event: the network, and the container.
fn network_event(containers: &ContainerStore, action: &str, net: &NetworkRecord, record: &Record) {
    let attributes = std::collections::BTreeMap::from([
        ("name".to_string(), net.name.clone()),
        ("type".to_string(), net.driver.clone()),
        ("container".to_string(), record.id.clone()),
    ]);
    crate::events::emit(
        containers.root(),
        crate::events::Event::new("network", action, &net.id, attributes),
    );
}

/// The network namespace of running container `id`, for `--network container:ID`.
pub fn shared_netns(containers: &ContainerStore, id: &str) -> Result<std::path::PathBuf> {
    match containers.get(id)? {
        Some(other) if other.status == Status::Running => Ok(std::path::PathBuf::from(format!(
            "/proc/{}/ns/net",
            other.pid
        ))),
        Some(other) => bail!(
            "cannot join the network of container {}: it is not running",
            other.name
        ),
        None => bail!("cannot join the network of container {id}: it no longer exists"),
    }
}

/// Points `spec`'s joined network namespace at the other container's current process
/// (it may have been restarted since `config.json` was written).
pub fn refresh_shared_netns(
    containers: &ContainerStore,
    record: &Record,
    spec: &mut Spec,
) -> Result<()> {
    let NetworkChoice::Container { id } = &record.network else {
        return Ok(());
    };
    let path = shared_netns(containers, id)?;
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    if let Some(namespaces) = linux.namespaces_mut() {
        for ns in namespaces.iter_mut() {
            if ns.typ() == LinuxNamespaceType::Network && ns.path().is_some() {
                ns.set_path(Some(path.clone()));
            }
        }
    }
    Ok(())
}

/// Makes the `/etc/hosts` and `/etc/resolv.conf` bind mounts use the files of the
/// container in `other_dir`, whose network is shared.
pub fn share_etc_files(mounts: &mut [Mount], other_dir: &Path) {
    for m in mounts.iter_mut() {
        let dest = m.destination().to_string_lossy().into_owned();
        if let Some(name) = dest.strip_prefix("/etc/") {
            if name == "hosts" || name == "resolv.conf" {
                m.set_source(Some(other_dir.join(name)));
            }
        }
    }
}

/// Rewrites `/etc/hosts` of every container holding an address on the user-defined
/// network `net`, each listing itself and all its peers, on this network and the
/// others it is on, by name, hostname and alias.
pub fn sync_members(
    networks: &NetworkStore,
    containers: &ContainerStore,
    net: &NetworkRecord,
) -> Result<()> {
    let _lock = networks.lock()?;
    for (_, id) in allocations(networks, net)? {
        // An address whose container is gone (a crash between its removal and its
        // release) names nobody; it is freed when its address is needed.
        let Some(member) = containers.get(&id)? else {
            continue;
        };
        match write_hosts_unlocked(networks, containers, &member) {
            // Being removed right now: its own detach comes next and syncs again.
            Err(e) if is_not_found(&e) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Who holds which address on `net`.
pub fn allocations(
    networks: &NetworkStore,
    net: &NetworkRecord,
) -> Result<Vec<(std::net::Ipv4Addr, String)>> {
    Ok(ipam_of(networks, net)?.allocations()?)
}

/// The address allocations of network `net`.
fn ipam_of(networks: &NetworkStore, net: &NetworkRecord) -> Result<ccrun_net::ipam::Ipam> {
    let config = net.config();
    Ok(ccrun_net::ipam::Ipam::open(
        networks.ipam_dir(&net.name),
        &net.name,
        config.subnet,
        config.gateway,
    )?)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// The networks `record` is configured to be on: its own and those it was connected
/// to, each with the aliases it has there.
fn memberships(record: &Record) -> Vec<(&str, &[String])> {
    let mut out = Vec::new();
    if let NetworkChoice::Bridge {
        network, aliases, ..
    } = &record.network
    {
        out.push((network.as_str(), aliases.as_slice()));
    }
    for extra in &record.options.networks {
        out.push((extra.network.as_str(), extra.aliases.as_slice()));
    }
    out
}

/// Writes `record`'s `/etc/hosts` (see [`write_hosts_unlocked`]) under the network
/// store's lock.
pub fn write_hosts(
    networks: &NetworkStore,
    containers: &ContainerStore,
    record: &Record,
) -> Result<()> {
    let _lock = networks.lock()?;
    write_hosts_unlocked(networks, containers, record)
}

/// Writes `record`'s `/etc/hosts`: its own address on its first network with its
/// names, every peer on each of its user-defined networks, and its `--add-host`
/// entries; nothing while it holds no address. Rewritten in place, so the bind mount
/// keeps showing it.
fn write_hosts_unlocked(
    networks: &NetworkStore,
    containers: &ContainerStore,
    record: &Record,
) -> Result<()> {
    let mut own: Option<(std::net::Ipv4Addr, String)> = None;
    let mut peers: Vec<(String, String)> = Vec::new();
    for (name, aliases) in memberships(record) {
        let Ok(net) = networks.find(name) else {
            continue;
        };
        let held = allocations(networks, &net)?;
        let Some((ip, _)) = held.iter().find(|(_, id)| *id == record.id) else {
            continue;
        };
        let resolves = net.resolves_names();
        if own.is_none() {
            own = Some((*ip, names_of(record, resolves, aliases)));
        }
        if !resolves {
            continue;
        }
        for (peer_ip, id) in &held {
            if *id == record.id {
                continue;
            }
            let Some(peer) = containers.get(id)? else {
                continue;
            };
            let peer_aliases = memberships(&peer)
                .into_iter()
                .find(|(n, _)| *n == net.name)
                .map_or(&[][..], |(_, a)| a);
            peers.push((peer_ip.to_string(), names_of(&peer, true, peer_aliases)));
        }
    }
    let Some((ip, names)) = own else {
        return Ok(());
    };
    let mut entries = vec![(ip.to_string(), names)];
    entries.extend(peers);
    for (name, addr) in &record.extra_hosts {
        entries.push((addr.clone(), name.clone()));
    }
    let path = containers.dir_of(&record.id).join("hosts");
    etc_files::rewrite_in_place(&path, &etc_files::hosts(&entries))
        .with_context(|| format!("writing {}", path.display()))
}

/// The names a container answers to: its hostname, plus its name and `aliases`
/// where names resolve.
fn names_of(record: &Record, with_name: bool, aliases: &[String]) -> String {
    let hostname = if record.hostname.is_empty() {
        record.short_id().to_string()
    } else {
        record.hostname.clone()
    };
    let mut names = vec![hostname.as_str()];
    if with_name {
        names.push(&record.name);
        names.extend(aliases.iter().map(String::as_str));
    }
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique.join(" ")
}

/// A network a container is on, as `inspect` shows it under `NetworkSettings.Networks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The network.
    pub network: NetworkRecord,
    /// `--network-alias`/`--alias` names on it.
    pub aliases: Vec<String>,
    /// The address the container holds there, while it holds one.
    pub ip: Option<std::net::Ipv4Addr>,
}

/// The networks `record` is on (its own first, then those it was connected to), with
/// the address it holds on each according to the network's allocations; networks
/// removed since are left out.
pub fn memberships_of(containers: &ContainerStore, record: &Record) -> Result<Vec<Membership>> {
    let networks = NetworkStore::open(containers.root())?;
    let known = networks.list()?;
    let mut out = Vec::new();
    for (name, aliases) in memberships(record) {
        let Some(network) = known.iter().find(|n| n.name == name) else {
            continue;
        };
        out.push(Membership {
            network: network.clone(),
            aliases: aliases.to_vec(),
            ip: ipam_of(&networks, network)?.lookup(&record.id)?,
        });
    }
    Ok(out)
}

/// The MAC address `record` has on `network` where it holds `ip`, as text
/// (`02:42:ac:11:00:02`): `--mac-address` on its own network, else the one derived
/// from the address.
pub fn mac_of(record: &Record, network: &str, ip: std::net::Ipv4Addr) -> String {
    let own = record
        .attachment
        .as_ref()
        .is_some_and(|a| a.network == network);
    record
        .options
        .mac_address
        .clone()
        .filter(|_| own)
        .unwrap_or_else(|| {
            let bytes: Vec<String> = ccrun_net::container_mac(ip)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            bytes.join(":")
        })
}

/// After `record` was renamed: its own `/etc/hosts` and those of its peers on every
/// user-defined network it is on name it by its new name.
pub fn renamed(containers: &ContainerStore, record: &Record) -> Result<()> {
    let networks = NetworkStore::open(containers.root())?;
    let mut peers_told = false;
    for m in memberships_of(containers, record)? {
        if m.network.name != DEFAULT_NETWORK {
            sync_members(&networks, containers, &m.network)?;
            peers_told = true;
        }
    }
    if !peers_told {
        write_hosts(&networks, containers, record)?;
    }
    Ok(())
}
