//! The network store: one directory per network under `<root>/networks/<name>/` with
//! its definition (`network.json`) and its address allocations (`ipam/`). The default
//! network `bridge` (interface `ccrun0`) is created on first use, on the first subnet of
//! [`ccrun_net::default_pool`] the host does not use, and keeps it.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_net::Subnet;
use serde::{Deserialize, Serialize};

use crate::containers::record::write_atomic;
use crate::storage::FileLock;

/// Name of the default network, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";

/// A network's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Unique name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// Always "bridge" for now.
    pub driver: String,
    /// The Linux bridge interface.
    pub bridge: String,
    /// Its IPv4 subnet.
    pub subnet: Subnet,
    /// The bridge's own address, the containers' default gateway.
    pub gateway: Ipv4Addr,
    /// Creation time, RFC 3339.
    pub created: String,
    /// `--label`s.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NetworkRecord {
    /// Whether containers on it resolve each other by name (user-defined networks,
    /// as in Docker; the default bridge does not).
    pub fn resolves_names(&self) -> bool {
        self.name != DEFAULT_NETWORK
    }

    /// What `ccrun_net` needs to set the network up.
    pub fn config(&self) -> ccrun_net::NetworkConfig {
        ccrun_net::NetworkConfig {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            mtu: 0,
        }
    }
}

/// Networks under a storage root.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    /// Opens (creating) `<root>/networks`.
    pub fn open(root: &Path) -> Result<NetworkStore> {
        let dir = root.join("networks");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(NetworkStore { dir })
    }

    /// Takes the store lock, waiting for other ccrun processes.
    pub fn lock(&self) -> Result<FileLock> {
        crate::storage::lock_exclusive(&self.dir.join("lock"))
    }

    /// The directory of network `name`.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where `name`'s address allocations live.
    pub fn ipam_dir(&self, name: &str) -> PathBuf {
        self.dir_of(name).join("ipam")
    }

    fn load(&self, name: &str) -> Result<Option<NetworkRecord>> {
        let path = self.dir_of(name).join("network.json");
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        for entry in
            fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            if !entry.path().is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(r) = self.load(&name)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Finds a network by name, full id or unique id prefix; the default network is
    /// created on first use.
    pub fn find(&self, query: &str) -> Result<NetworkRecord> {
        if query == DEFAULT_NETWORK {
            return self.default_network();
        }
        if let Some(r) = self.load(query)? {
            return Ok(r);
        }
        let matches: Vec<NetworkRecord> = self
            .list()?
            .into_iter()
            .filter(|r| !query.is_empty() && r.id.starts_with(query))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().context("one match")?),
            0 => bail!("network {query} not found"),
            n => bail!("multiple networks ({n}) match the id prefix {query:?}"),
        }
    }

    /// The default `bridge` network, created if missing.
    pub fn default_network(&self) -> Result<NetworkRecord> {
        if let Some(r) = self.load(DEFAULT_NETWORK)? {
            return Ok(r);
        }
        // The configured subnet, else the first of the pool the host does not use.
        let subnet: Option<Subnet> = crate::config::default_subnet();
        self.create(
            DEFAULT_NETWORK,
            subnet,
            None,
            Default::default(),
            Some(ccrun_net::DEFAULT_BRIDGE.to_string()),
        )
        .or_else(|e| self.load(DEFAULT_NETWORK)?.ok_or(e))
    }

    /// Creates a network; the subnet defaults to the first free 10.89.N.0/24 (for the
    /// default network: of [`ccrun_net::default_pool`]), free meaning that neither
    /// another network nor an address or route of the host overlaps it; the gateway
    /// defaults to its first address, the bridge to `br-` + 12 hex digits of the id.
    pub fn create(
        &self,
        name: &str,
        subnet: Option<Subnet>,
        gateway: Option<Ipv4Addr>,
        labels: std::collections::BTreeMap<String, String>,
        bridge: Option<String>,
    ) -> Result<NetworkRecord> {
        validate_name(name)?;
        let _lock = self.lock()?;
        if self.load(name)?.is_some() {
            bail!("network with name {name} already exists");
        }
        let others = self.list()?;
        let id = crate::containers::store::new_container_id()?;
        let bridge = bridge.unwrap_or_else(|| format!("br-{}", &id[..12]));
        // A bridge of that name left by an earlier network of the same name holds
        // its subnet, which is no obstacle.
        let host = ccrun_net::subnets_in_use(Some(&bridge))
            .context("listing the host's addresses and routes")?;
        let subnet = match subnet {
            Some(s) => {
                if let Some(o) = others.iter().find(|o| overlaps(&o.subnet, &s)) {
                    bail!("subnet {s} overlaps with network {} ({})", o.name, o.subnet);
                }
                if let Some(used) = host.iter().find(|u| u.overlaps(&s)) {
                    bail!("subnet {s} overlaps with {used}, in use on this host");
                }
                s
            }
            None => {
                let free = |s: &Subnet| {
                    !others.iter().any(|o| overlaps(&o.subnet, s))
                        && !host.iter().any(|u| u.overlaps(s))
                };
                if name == DEFAULT_NETWORK {
                    ccrun_net::default_pool().find(free).context(
                        "no free subnet for the default network in 172.17.0.0/16-172.31.0.0/16 \
                         or 192.168.0.0/16: every one overlaps an address or route of the host",
                    )?
                } else {
                    (0..=255u8)
                        .filter_map(|n| format!("10.89.{n}.0/24").parse::<Subnet>().ok())
                        .find(free)
                        .context("no free subnet in 10.89.0.0/16; give one with --subnet")?
                }
            }
        };
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        if !subnet.is_host(gateway) {
            bail!("gateway {gateway} is not a host address of {subnet}");
        }
        let record = NetworkRecord {
            name: name.to_string(),
            id,
            driver: "bridge".to_string(),
            bridge,
            subnet,
            gateway,
            created: ccrun_runtime::state::now_rfc3339(),
            labels,
        };
        let dir = self.dir_of(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("ipam"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let bytes = serde_json::to_vec_pretty(&record).context("serialising the network")?;
        write_atomic(&dir.join("network.json"), &bytes)?;
        crate::events::object(self.root(), "network", "create", &record.id, name);
        Ok(record)
    }

    /// Removes a network's definition and allocations (the caller checked that no
    /// container uses it and took its bridge down).
    pub fn remove(&self, record: &NetworkRecord) -> Result<()> {
        let _lock = self.lock()?;
        let dir = self.dir_of(&record.name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        crate::events::object(self.root(), "network", "destroy", &record.id, &record.name);
        Ok(())
    }

    /// The storage root the store lives in (for the event log).
    fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }
}

fn overlaps(a: &Subnet, b: &Subnet) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Docker's rule for network names.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok || matches!(name, "host" | "none") {
        bail!("invalid network name {name:?}: 1 to 64 characters of [a-zA-Z0-9][a-zA-Z0-9_.-], not host or none");
    }
    Ok(())
}
