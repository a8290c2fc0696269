//! Container networking in the engine: attaching a created container to its bridge
//! network (through `ccrun_net`) before its process starts, detaching it when it ends,
//! and the `/etc/hosts` files through which containers on a user-defined network find
//! each other by name (rewritten in place whenever one joins or leaves).

pub mod store;

use std::os::fd::AsFd;

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

pub use store::{NetworkRecord, NetworkStore, DEFAULT_NETWORK};

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
    let NetworkChoice::Bridge { network, ip, ports } = &record.network else {
        return Ok(None);
    };
    // Checked before anything is set up, so a bad `$CCRUN_FIREWALL` is one clear error.
    ccrun_net::Backend::detect()?;
    let networks = NetworkStore::open(containers.root())?;
    let net = networks.find(network)?;
    let netns =
        ccrun_net::netns::of_pid(pid).context("opening the container's network namespace")?;
    let attach = || {
        ccrun_net::attach(
            &net.config(),
            &networks.ipam_dir(&net.name),
            netns.as_fd(),
            &record.id,
            *ip,
            ports,
        )
    };
    let attached = attach().or_else(|first| {
        // Perhaps in the way: the address or ports of containers that died unobserved.
        // They are cleared only then, to keep that work off every start.
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
    });
    let attachment = attached.with_context(|| format!("attaching to network {}", net.name))?;
    let hosts_written = if net.resolves_names() {
        // Peers find it through its record, so that goes first.
        containers
            .update(&record.id, |r| r.attachment = Some(attachment.clone()))
            .and_then(|_| sync_hosts(&networks, containers, &net, None))
    } else {
        write_hosts(containers, &net, record, &attachment, &[])
    };
    if let Err(e) = hosts_written {
        let _ = ccrun_net::detach(&net.config(), &networks.ipam_dir(&net.name), &record.id);
        return Err(e);
    }
    network_event(containers, "connect", &net, record);
    Ok(Some(attachment))
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
    if ccrun_net::Backend::detect().is_err() {
        // `connect` refuses to attach under a firewall choice it cannot make.
        return Ok(());
    }
    let networks = NetworkStore::open(containers.root())?;
    let net = match networks.find(&network) {
        Ok(net) => net,
        // The network went first (it cannot while in use); nothing is left to undo.
        Err(_) => return Ok(()),
    };
    ccrun_net::detach_exited(&net.config(), &networks.ipam_dir(&net.name), &record.id)
        .with_context(|| format!("detaching from network {}", net.name))?;
    if net.resolves_names() {
        sync_hosts(&networks, containers, &net, Some(&record.id))?;
    }
    if record.attachment.is_some() {
        network_event(containers, "disconnect", &net, record);
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

/// Rewrites `/etc/hosts` of every container attached to the user-defined network
/// `net` (except `leaving`), each listing its peers by name.
fn sync_hosts(
    networks: &NetworkStore,
    containers: &ContainerStore,
    net: &NetworkRecord,
    leaving: Option<&str>,
) -> Result<()> {
    let _lock = networks.lock()?;
    let members: Vec<(Record, ccrun_net::Attachment)> = containers
        .list()?
        .into_iter()
        .filter(|r| r.status != Status::Exited && r.status != Status::Dead)
        .filter(|r| Some(r.id.as_str()) != leaving)
        .filter_map(|r| {
            let a = r.attachment.clone().filter(|a| a.network == net.name)?;
            Some((r, a))
        })
        .collect();
    for (member, own) in &members {
        let peers: Vec<(String, String)> = members
            .iter()
            .filter(|(p, _)| p.id != member.id)
            .map(|(p, a)| (a.ip.to_string(), names_of(p, true)))
            .collect();
        write_hosts(containers, net, member, own, &peers)?;
    }
    Ok(())
}

/// Writes `record`'s `/etc/hosts`: its own address and names, `peers`, and its
/// `--add-host` entries. Rewritten in place, so the bind mount keeps showing it.
fn write_hosts(
    containers: &ContainerStore,
    net: &NetworkRecord,
    record: &Record,
    own: &ccrun_net::Attachment,
    peers: &[(String, String)],
) -> Result<()> {
    let mut entries = vec![(own.ip.to_string(), names_of(record, net.resolves_names()))];
    entries.extend(peers.iter().cloned());
    for (name, addr) in &record.extra_hosts {
        entries.push((addr.clone(), name.clone()));
    }
    let path = containers.dir_of(&record.id).join("hosts");
    std::fs::write(&path, etc_files::hosts(&entries))
        .with_context(|| format!("writing {}", path.display()))
}

/// The names a container answers to: its hostname, plus its name where names resolve.
fn names_of(record: &Record, with_name: bool) -> String {
    let hostname = if record.hostname.is_empty() {
        record.short_id().to_string()
    } else {
        record.hostname.clone()
    };
    if with_name && record.name != hostname {
        format!("{hostname} {}", record.name)
    } else {
        hostname
    }
}
