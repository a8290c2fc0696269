//! `ccrun network …` (create, ls, inspect, rm, prune, connect, disconnect) and
//! `ccrun port`.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};

use crate::cli::GlobalOpts;
use crate::containers::options::ConnectedNetwork;
use crate::containers::record::NetworkChoice;
use crate::containers::{ContainerStore, Record};
use crate::format::{string_row, Listing};
use crate::networks::{NetworkRecord, NetworkStore, DEFAULT_NETWORK};

/// `ccrun network …`.
#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON
    Inspect {
        /// Format the output using a Go template, e.g. '{{range .IPAM.Config}}{{.Subnet}}{{end}}'
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Network names or ids
        #[arg(required = true, value_name = "NETWORK")]
        networks: Vec<String>,
    },
    /// Remove networks no container uses
    #[command(alias = "remove")]
    Rm {
        /// Network names or ids
        #[arg(required = true, value_name = "NETWORK")]
        networks: Vec<String>,
    },
    /// Remove every user-defined network no container uses
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network (a running one gets an interface at once)
    Connect(ConnectArgs),
    /// Disconnect a container from a network it was connected to
    Disconnect(DisconnectArgs),
}

/// Flags of `network connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The container's IPv4 address on the network
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Another name peers on the network find the container by (repeatable)
    #[arg(long, value_name = "ALIAS")]
    pub alias: Vec<String>,
    /// The network (name or id)
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Flags of `network disconnect`.
#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// Accepted for Docker's command line (disconnecting never needs forcing here)
    #[arg(short, long)]
    pub force: bool,
    /// The network (name or id)
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Flags of `network create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Subnet in CIDR form [default: the first 10.89.N.0/24 neither another network
    /// nor the host uses]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<ccrun_net::Subnet>,
    /// Gateway (the bridge's address) [default: the subnet's first address]
    #[arg(long, value_name = "IP")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Driver (only bridge)
    #[arg(long, short = 'd', default_value = "bridge")]
    pub driver: String,
    /// Set a label (KEY=VALUE)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Network name
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Flags of `network ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only display network ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate network ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: "table", "json" (one object per line), a Go template such as
    /// '{{.Name}} {{.Subnet}}', or "table TEMPLATE"
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Flags of `port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Only this container port, as PORT or PORT/PROTO
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// Runs a network subcommand.
pub fn run(global: &GlobalOpts, cmd: NetworkCommand) -> Result<i32> {
    let root = global.store_root();
    let networks = NetworkStore::open(&root)?;
    let containers = ContainerStore::open(&root)?;
    // The default network is always listed, as in Docker.
    networks.default_network()?;
    match cmd {
        NetworkCommand::Create(args) => {
            if args.driver != "bridge" {
                bail!(
                    "unsupported network driver {:?}: ccrun has bridge",
                    args.driver
                );
            }
            let labels = args
                .label
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (l.clone(), String::new()),
                })
                .collect();
            let net = networks.create(&args.name, args.subnet, args.gateway, labels, None)?;
            println!("{}", net.id);
        }
        NetworkCommand::Ls(args) => list(&networks, &args)?,
        NetworkCommand::Inspect {
            format,
            networks: names,
        } => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for name in &names {
                match networks.find(name) {
                    Ok(net) => {
                        let held = crate::networks::allocations(&networks, &net)?;
                        found.push(inspect_json(&net, &users(&containers, &net)?, &held));
                    }
                    Err(_) => missing.push(format!("Error: No such network: {name}")),
                }
            }
            return super::inspect::print_inspected(&found, format.as_deref(), &missing);
        }
        NetworkCommand::Rm { networks: names } => {
            super::for_each_named("remove", &names, |name| {
                remove(&networks, &containers, &networks.find(name)?)?;
                println!("{name}");
                Ok(())
            })?;
        }
        NetworkCommand::Connect(args) => connect(&networks, &containers, &args)?,
        NetworkCommand::Disconnect(args) => disconnect(&networks, &containers, &args)?,
        NetworkCommand::Prune { force } => {
            if !force
                && !crate::commands::prune::confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )?
            {
                return Ok(0);
            }
            let mut removed = Vec::new();
            for net in networks.list()? {
                if net.name == DEFAULT_NETWORK || !users(&containers, &net)?.is_empty() {
                    continue;
                }
                remove(&networks, &containers, &net)?;
                removed.push(net.name);
            }
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for name in removed {
                    println!("{name}");
                }
            }
        }
    }
    Ok(0)
}

/// Containers configured to use `net` (created on it or connected to it), in any state.
fn users(containers: &ContainerStore, net: &NetworkRecord) -> Result<Vec<Record>> {
    Ok(containers
        .list()?
        .into_iter()
        .filter(|r| {
            matches!(&r.network, NetworkChoice::Bridge { network, .. } if *network == net.name)
                || r.options.networks.iter().any(|n| n.network == net.name)
        })
        .collect())
}

/// Runs `network connect`: records the network with the container, and attaches a
/// running container at once (an interface `ethN` of its own, no default route, no
/// published ports), updating the hosts files of the network's members.
fn connect(networks: &NetworkStore, containers: &ContainerStore, args: &ConnectArgs) -> Result<()> {
    let net = networks.find(&args.network)?;
    let record = containers.find(&args.container)?;
    let NetworkChoice::Bridge { network, .. } = &record.network else {
        bail!(
            "container {} does not have a network namespace on a bridge network of its own \
             (--network host, none or container:…): it cannot be connected to {}",
            record.name,
            net.name
        );
    };
    if *network == net.name
        || record
            .options
            .networks
            .iter()
            .any(|n| n.network == net.name)
    {
        bail!(
            "container {} is already connected to network {}",
            record.name,
            net.name
        );
    }
    crate::networks::check_aliases(&args.alias)?;
    if !args.alias.is_empty() && !net.resolves_names() {
        bail!("--alias needs a user-defined network, not {}", net.name);
    }
    crate::networks::check_ip(&net, args.ip)?;
    let taken: Vec<&str> = record
        .options
        .networks
        .iter()
        .map(|n| n.ifname.as_str())
        .collect();
    let ifname = (1..)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(&name.as_str()))
        .context("no free interface name")?;
    let extra = ConnectedNetwork {
        network: net.name.clone(),
        ip: args.ip,
        aliases: args.alias.clone(),
        ifname,
    };
    let running = record.status == crate::containers::Status::Running;
    if running {
        let netns = ccrun_net::netns::of_pid(record.pid)
            .context("opening the container's network namespace")?;
        crate::rootless::in_user_netns(|| {
            crate::networks::connect_secondary(networks, containers, &record, netns.as_fd(), &extra)
        })?;
    }
    let updated = containers.update(&record.id, |r| r.options.networks.push(extra.clone()))?;
    let Some(updated) = updated else {
        if running {
            let _ = crate::rootless::in_user_netns(|| {
                crate::networks::disconnect_secondary(networks, containers, &record, &extra, true)
            });
        }
        bail!("container {} was removed meanwhile", record.name);
    };
    if running {
        if net.resolves_names() {
            crate::networks::sync_members(networks, containers, &net)?;
        }
        crate::networks::write_hosts(networks, containers, &updated)?;
    }
    Ok(())
}

/// Runs `network disconnect`: the container leaves a network it was connected to (a
/// running one loses its interface there at once).
fn disconnect(
    networks: &NetworkStore,
    containers: &ContainerStore,
    args: &DisconnectArgs,
) -> Result<()> {
    let net = networks.find(&args.network)?;
    let record = containers.find(&args.container)?;
    if matches!(&record.network, NetworkChoice::Bridge { network, .. } if *network == net.name) {
        bail!(
            "container {} was created on network {}: ccrun disconnects only networks added \
             with network connect",
            record.name,
            net.name
        );
    }
    let Some(extra) = record
        .options
        .networks
        .iter()
        .find(|n| n.network == net.name)
    else {
        bail!(
            "container {} is not connected to network {}",
            record.name,
            net.name
        );
    };
    let updated = containers.update(&record.id, |r| {
        r.options.networks.retain(|n| n.network != net.name);
    })?;
    if record.status == crate::containers::Status::Running {
        crate::rootless::in_user_netns(|| {
            crate::networks::disconnect_secondary(networks, containers, &record, extra, false)
        })?;
        if let Some(updated) = updated {
            crate::networks::write_hosts(networks, containers, &updated)?;
        }
    }
    Ok(())
}

fn remove(networks: &NetworkStore, containers: &ContainerStore, net: &NetworkRecord) -> Result<()> {
    if net.name == DEFAULT_NETWORK {
        bail!("{DEFAULT_NETWORK} is a pre-defined network and cannot be removed");
    }
    let users = users(containers, net)?;
    if let Some(user) = users.first() {
        bail!(
            "network {} is used by container {} ({} in all); remove them first",
            net.name,
            user.name,
            users.len()
        );
    }
    crate::rootless::in_user_netns(|| {
        ccrun_net::remove_network(&net.config())
            .with_context(|| format!("removing the bridge of {}", net.name))
    })?;
    networks.remove(net)
}

/// The fields `network ls --format` templates use, with their column headers
/// (Docker's, and the subnet, gateway and bridge ccrun shows by default).
const TEMPLATE_FIELDS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
    ("Subnet", "SUBNET"),
    ("Gateway", "GATEWAY"),
    ("Bridge", "BRIDGE"),
];

fn list(networks: &NetworkStore, args: &LsArgs) -> Result<()> {
    let all = networks.list()?;
    let mut out = std::io::stdout().lock();
    let id = |n: &NetworkRecord| {
        if args.no_trunc {
            n.id.clone()
        } else {
            n.id[..12.min(n.id.len())].to_string()
        }
    };
    if args.quiet {
        for n in &all {
            writeln!(out, "{}", id(n))?;
        }
        return Ok(());
    }
    let rows = all
        .iter()
        .map(|n| {
            let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let values = [
                id(n),
                n.name.clone(),
                n.driver.clone(),
                "local".to_string(),
                "false".to_string(),
                "false".to_string(),
                labels.join(","),
                crate::format::docker_time(&n.created),
                n.subnet.to_string(),
                n.gateway.to_string(),
                n.bridge.clone(),
            ];
            string_row(
                TEMPLATE_FIELDS
                    .iter()
                    .zip(values)
                    .map(|((f, _), v)| (*f, v)),
            )
        })
        .collect();
    Listing {
        default_table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnet}}\t{{.Bridge}}",
        headers: TEMPLATE_FIELDS,
        rows,
    }
    .print(&mut out, &args.format)
}

/// Docker's `network inspect` shape.
fn inspect_json(
    net: &NetworkRecord,
    users: &[Record],
    held: &[(std::net::Ipv4Addr, String)],
) -> serde_json::Value {
    let containers: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .filter_map(|r| {
            let (ip, endpoint) = match &r.attachment {
                Some(a) if a.network == net.name => (a.ip, a.host_veth.clone()),
                // Connected later: its address is in the network's allocations.
                _ => (
                    held.iter().find(|(_, id)| *id == r.id)?.0,
                    ccrun_net::secondary_veth_name(&r.id, &net.name),
                ),
            };
            let mac = crate::networks::mac_of(r, &net.name, ip);
            Some((
                r.id.clone(),
                serde_json::json!({
                    "Name": r.name,
                    "IPv4Address": format!("{}/{}", ip, net.subnet.prefix_len()),
                    "MacAddress": mac,
                    "EndpointID": endpoint,
                }),
            ))
        })
        .collect();
    serde_json::json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Config": [ { "Subnet": net.subnet.to_string(), "Gateway": net.gateway.to_string() } ] },
        "Internal": false,
        "Options": { "com.docker.network.bridge.name": net.bridge },
        "Containers": containers,
        "Labels": net.labels,
    })
}

/// `02:42:ac:12:00:02`.
/// Runs `port`: the published ports of a running container.
pub fn port(global: &GlobalOpts, args: PortArgs) -> Result<i32> {
    let containers = ContainerStore::open(&global.store_root())?;
    let record = containers.find(&args.container)?;
    let Some(attachment) = &record.attachment else {
        bail!(
            "container {} has no published ports (not running on a bridge network)",
            record.name
        );
    };
    let wanted = args
        .port
        .as_deref()
        .map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            port.parse::<u16>()
                .map(|n| (n, proto.to_string()))
                .with_context(|| format!("invalid port {p:?}"))
        })
        .transpose()?;
    let mut found = false;
    for m in &attachment.ports {
        let proto = m.protocol.as_str();
        if let Some((port, p)) = &wanted {
            if *port != m.container_port || p != proto {
                continue;
            }
            println!("{}:{}", host_ip(m), m.host_port);
        } else {
            println!(
                "{}/{} -> {}:{}",
                m.container_port,
                proto,
                host_ip(m),
                m.host_port
            );
        }
        found = true;
    }
    if !found && wanted.is_some() {
        bail!(
            "no public port {} published for {}",
            args.port.unwrap_or_default(),
            record.name
        );
    }
    Ok(0)
}

fn host_ip(m: &ccrun_net::PortMapping) -> String {
    m.host_ip
        .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string())
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, …`.
pub fn ports_text(record: &Record) -> String {
    record
        .attachment
        .as_ref()
        .map(|a| {
            a.ports
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}->{}/{}",
                        host_ip(m),
                        m.host_port,
                        m.container_port,
                        m.protocol.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
