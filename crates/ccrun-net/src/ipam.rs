//! IPv4 address management persisted as one file per allocated address.
//!
//! The directory (chosen by the caller, e.g. `<root>/networks/<name>/ipam/`)
//! holds a file named after each allocated address whose content is the
//! owning container's id. A claim is a `link(2)` of a fully written
//! temporary file onto the address's name, which either succeeds or fails
//! with `EEXIST` atomically, so concurrent processes never get the same
//! address and readers never see a half-written owner.
//!
//! Claims are not fsynced: they describe running containers, which a crash
//! ends anyway. After one, a claim may be missing (the address is free, as it
//! should be) or empty (its data never reached the disk); an empty claim is
//! still taken, and [`Ipam::release_orphans`] frees it like the claims of
//! other dead containers.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::subnet::Subnet;

/// The allocations of one network.
#[derive(Clone, Debug)]
pub struct Ipam {
    dir: PathBuf,
    network: String,
    subnet: Subnet,
    gateway: Ipv4Addr,
}

impl Ipam {
    /// Opens (creating if needed) the allocation directory `dir` of network
    /// `network`. The gateway is never handed out.
    pub fn open(
        dir: impl Into<PathBuf>,
        network: &str,
        subnet: Subnet,
        gateway: Ipv4Addr,
    ) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).ctx(|| format!("create IPAM directory {}", dir.display()))?;
        Ok(Ipam {
            dir,
            network: network.to_string(),
            subnet,
            gateway,
        })
    }

    /// The allocation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Allocates an address for `container_id`: `requested` if given (an
    /// error if it is taken, outside the subnet or reserved), else the
    /// lowest free host address other than the gateway. A container that
    /// already holds an address gets it back (if it matches `requested`).
    pub fn allocate(&self, container_id: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        validate_container_id(container_id)?;
        let allocations = self.allocations()?;
        let held = allocations
            .iter()
            .find(|(_, owner)| owner == container_id)
            .map(|(ip, _)| *ip);
        if let Some(existing) = held {
            match requested {
                Some(ip) if ip != existing => {
                    return Err(Error::AddressNotUsable {
                        ip,
                        network: self.network.clone(),
                        reason: format!("container {container_id} already holds {existing}"),
                    })
                }
                _ => return Ok(existing),
            }
        }
        if let Some(ip) = requested {
            self.check_usable(ip)?;
            return match self.claim(ip, container_id)? {
                true => Ok(ip),
                false => Err(Error::AddressInUse {
                    ip,
                    owner: self.owner(ip)?.unwrap_or_else(|| "?".to_string()),
                    network: self.network.clone(),
                }),
            };
        }
        let taken: HashSet<Ipv4Addr> = allocations.into_iter().map(|(ip, _)| ip).collect();
        for ip in self.subnet.hosts() {
            if ip == self.gateway || taken.contains(&ip) {
                continue;
            }
            if self.claim(ip, container_id)? {
                return Ok(ip);
            }
        }
        Err(Error::SubnetExhausted {
            network: self.network.clone(),
            subnet: self.subnet.to_string(),
        })
    }

    fn check_usable(&self, ip: Ipv4Addr) -> Result<()> {
        let reason = if !self.subnet.contains(ip) {
            format!("outside subnet {}", self.subnet)
        } else if ip == self.subnet.network() {
            "it is the network address".to_string()
        } else if ip == self.subnet.broadcast() {
            "it is the broadcast address".to_string()
        } else if ip == self.gateway {
            "it is the gateway".to_string()
        } else {
            return Ok(());
        };
        Err(Error::AddressNotUsable {
            ip,
            network: self.network.clone(),
            reason,
        })
    }

    /// Atomically claims `ip` for `owner`; false if someone holds it.
    fn claim(&self, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        let target = self.dir.join(ip.to_string());
        let mut tmp = tempfile_in(&self.dir)?;
        // No fsync (see the module's documentation): it cost a disk flush
        // on every container start.
        tmp.1
            .write_all(owner.as_bytes())
            .ctx(|| format!("write {}", tmp.0.display()))?;
        let linked = fs::hard_link(&tmp.0, &target);
        let _ = fs::remove_file(&tmp.0);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(format!("claim {}", target.display()), e)),
        }
    }

    /// The container holding `ip`, if any.
    pub fn owner(&self, ip: Ipv4Addr) -> Result<Option<String>> {
        let path = self.dir.join(ip.to_string());
        match fs::read_to_string(&path) {
            Ok(owner) => Ok(Some(owner.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    /// The address held by `container_id`, if any.
    pub fn lookup(&self, container_id: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, owner)| owner == container_id)
            .map(|(ip, _)| ip))
    }

    /// Every allocation: address and owning container.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let entries = fs::read_dir(&self.dir)
            .ctx(|| format!("list IPAM directory {}", self.dir.display()))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.ctx(|| format!("list IPAM directory {}", self.dir.display()))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if let Some(owner) = self.owner(ip)? {
                out.push((ip, owner));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Releases every address held by `container_id`; returns them.
    pub fn release(&self, container_id: &str) -> Result<Vec<Ipv4Addr>> {
        self.release_where(|owner| owner == container_id)
    }

    /// Frees the claims whose owner is not a valid container id: empty ones
    /// left by a crash (see the module's documentation) or files someone
    /// else wrote. Returns their addresses.
    pub fn release_orphans(&self) -> Result<Vec<Ipv4Addr>> {
        self.release_where(|owner| validate_container_id(owner).is_err())
    }

    /// Removes the claims whose owner matches; one that vanished meanwhile was
    /// released by someone else.
    fn release_where(&self, matches: impl Fn(&str) -> bool) -> Result<Vec<Ipv4Addr>> {
        let mut released = Vec::new();
        for (ip, owner) in self.allocations()? {
            if !matches(&owner) {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => released.push(ip),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("release {}", path.display()), e)),
            }
        }
        Ok(released)
    }
}

/// Owner ids end up in file contents and rule comments: keep them plain.
pub(crate) fn validate_container_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(Error::InvalidConfig(format!(
            "container id {id:?} must be 1-64 characters of [A-Za-z0-9._-]"
        )));
    }
    Ok(())
}

/// Creates a uniquely named temporary file in `dir` (its name starts with a
/// dot so it is never taken for an allocation).
fn tempfile_in(dir: &Path) -> Result<(PathBuf, fs::File)> {
    let pid = std::process::id();
    for attempt in 0u32..1000 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".claim-{pid}-{nanos:08x}-{attempt}"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
    }
    Err(Error::io(
        format!("create a temporary file in {}", dir.display()),
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        let subnet: Subnet = cidr.parse().unwrap();
        Ipam::open(dir, "test", subnet, subnet.first_host()).unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_gateway_and_reuses_released() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.1.0.0/29");
        let a = ipam.allocate("a", None).unwrap();
        let b = ipam.allocate("b", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 1, 0, 3));
        assert_eq!(
            ipam.allocate("a", None).unwrap(),
            a,
            "idempotent per container"
        );
        assert_eq!(ipam.lookup("b").unwrap(), Some(b));
        assert_eq!(ipam.release("a").unwrap(), vec![a]);
        assert!(ipam.release("a").unwrap().is_empty());
        assert_eq!(ipam.allocate("c", None).unwrap(), a);
        for id in ["d", "e", "f"] {
            ipam.allocate(id, None).unwrap();
        }
        let err = ipam.allocate("g", None).unwrap_err();
        assert!(matches!(err, Error::SubnetExhausted { .. }), "{err}");
    }

    #[test]
    fn requested_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.2.0.0/24");
        let want = Ipv4Addr::new(10, 2, 0, 77);
        assert_eq!(ipam.allocate("a", Some(want)).unwrap(), want);
        let err = ipam.allocate("b", Some(want)).unwrap_err();
        assert!(
            matches!(err, Error::AddressInUse { ref owner, .. } if owner == "a"),
            "{err}"
        );
        for bad in [
            Ipv4Addr::new(10, 3, 0, 5),
            Ipv4Addr::new(10, 2, 0, 0),
            Ipv4Addr::new(10, 2, 0, 255),
            Ipv4Addr::new(10, 2, 0, 1),
        ] {
            let err = ipam.allocate("b", Some(bad)).unwrap_err();
            assert!(
                matches!(err, Error::AddressNotUsable { .. }),
                "{bad}: {err}"
            );
        }
        assert!(ipam.allocate("bad/id", None).is_err());
    }

    #[test]
    fn claims_left_empty_by_a_crash_are_taken_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.5.0.0/24");
        // A claim whose data never reached the disk, as after a crash without fsync.
        fs::write(tmp.path().join("10.5.0.2"), "").unwrap();
        let a = ipam.allocate("a", None).unwrap();
        assert_eq!(
            a,
            Ipv4Addr::new(10, 5, 0, 3),
            "the empty claim is still taken"
        );
        assert_eq!(
            ipam.release_orphans().unwrap(),
            vec![Ipv4Addr::new(10, 5, 0, 2)]
        );
        assert_eq!(ipam.lookup("a").unwrap(), Some(a), "valid claims stay");
        assert_eq!(
            ipam.allocate("b", None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 2)
        );
    }

    #[test]
    fn concurrent_allocations_are_distinct() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    ipam(&dir, "10.4.0.0/24").allocate(&format!("c{i}"), None)
                })
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 16);
        assert_eq!(ipam(&dir, "10.4.0.0/24").allocations().unwrap().len(), 16);
    }
}
