//! ccrun's NAT in the legacy `ip_tables` `nat` table, for kernels without
//! nf_tables (or hosts whose firewall is managed with iptables-legacy),
//! spoken natively over the x_tables socket options of a raw IPv4 socket:
//! read the table (`IPT_SO_GET_INFO`, `IPT_SO_GET_ENTRIES`), change only
//! ccrun's chains and jumps, and write it back in one atomic
//! `IPT_SO_SET_REPLACE`. Every other rule keeps its bytes (jump offsets are
//! relocated) and its counters (re-added with `IPT_SO_SET_ADD_COUNTERS`).
//!
//! The same rules as [`crate::nft`], as `iptables-legacy -t nat -S` shows
//! them:
//! - `CCRUN-PORTS`: one DNAT rule per published port, commented like the
//!   nftables ones (`ctr=<id> <proto> <hostIP>:<hostPort> <ctrIP>:<ctrPort>`).
//! - `PREROUTING` and `OUTPUT` start with
//!   `-m addrtype --dst-type LOCAL -j CCRUN-PORTS`.
//! - `CCRUN-POST-<network>` (see [`postrouting_chain`]), jumped to first
//!   thing in `POSTROUTING`: masquerade of the subnet leaving through
//!   anything but the bridge, hairpin masquerade of DNATed traffic from the
//!   subnet back into the bridge (`-m conntrack --ctstate DNAT`), and
//!   masquerade of 127.0.0.0/8 sources entering the bridge.
//!
//! Changes hold the `flock` on `/run/xtables.lock` that iptables itself
//! takes, so a concurrent `iptables-legacy` (or ccrun) cannot interleave its
//! read-modify-write with ours.

pub mod abi;
pub mod table;

use std::fs;
use std::io;
use std::net::Ipv4Addr;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::nft::PortRule;
use crate::ports::{PortMapping, Protocol};
use crate::subnet::Subnet;
use abi::{
    IptIp, NfNatIpv4MultiRangeCompat, NfNatRange2, Socket, XtAddrtypeInfoV1, XtConntrackMtinfo3,
    XtCounters, XtTcp, XtUdp, ADDRTYPE_LOCAL, CHAIN_MAXLEN, COMMENT_LEN, CONNTRACK_STATE,
    CONNTRACK_STATE_DNAT, HOOK_LOCAL_OUT, HOOK_NAMES, HOOK_POST_ROUTING, HOOK_PRE_ROUTING,
    IFNAMSIZ, IPT_INV_DSTIP, IPT_INV_SRCIP, IPT_INV_VIA_OUT, NAT_RANGE_MAP_IPS,
    NAT_RANGE_PROTO_SPECIFIED,
};
use table::{extension, Entry, Table};
use zerocopy::IntoBytes;

/// The table ccrun's rules live in.
pub const TABLE: &str = "nat";
/// The user chain holding the DNAT rules of published ports.
pub const PORTS_CHAIN: &str = "CCRUN-PORTS";
/// Prefix of the per-network source NAT chains.
const POST_PREFIX: &str = "CCRUN-POST-";
/// Comment of the jumps to [`PORTS_CHAIN`].
const PORTS_COMMENT: &str = "ccrun published ports";
/// iptables' own lock, shared by every x_tables writer that plays fair.
const XTABLES_LOCK: &str = "/run/xtables.lock";
/// How often a replacement that raced with another writer is retried.
const ATTEMPTS: usize = 10;

/// The per-network source NAT chain: `CCRUN-POST-<network>`, or, when that
/// is longer than iptables allows (28), the network name's first 8
/// characters and a hash of the whole name.
pub fn postrouting_chain(network: &str) -> String {
    let full = format!("{POST_PREFIX}{network}");
    if full.len() <= CHAIN_MAXLEN {
        return full;
    }
    // FNV-1a: stable across runs and platforms.
    let hash = network.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let prefix: String = network.chars().take(8).collect();
    format!("{POST_PREFIX}{prefix}-{hash:08x}")
}

fn table_error(op: &str, e: table::TableError) -> Error {
    Error::Malformed {
        op: format!("iptables: {op}"),
        reason: e.0,
    }
}

fn sock_error(op: impl Into<String>, source: io::Error) -> Error {
    Error::io(format!("iptables: {}", op.into()), source)
}

/// A connection to the kernel's `ip_tables` in the namespace of the
/// thread that created it.
pub struct Iptables {
    socket: Socket,
    /// Revision of the DNAT target to use: 2 (`nf_nat_range2`) or, on
    /// kernels before 4.19, 1 (`nf_nat_range`).
    dnat_revision: u8,
}

impl Iptables {
    /// Opens the socket and checks that the `nat` table is there (the
    /// kernel instantiates it in this namespace if needed).
    pub fn new() -> Result<Self> {
        let socket = Socket::open().map_err(|e| sock_error("open raw IPv4 socket", e))?;
        socket
            .info(TABLE)
            .map_err(|e| sock_error(format!("get information of table {TABLE}"), e))?;
        let dnat_revision = if socket.has_target_revision("DNAT", 2) {
            2
        } else {
            1
        };
        Ok(Iptables {
            socket,
            dnat_revision,
        })
    }

    /// Reads the `nat` table.
    pub fn read(&self) -> Result<Table> {
        for _ in 0..ATTEMPTS {
            let info = self
                .socket
                .info(TABLE)
                .map_err(|e| sock_error(format!("get information of table {TABLE}"), e))?;
            let blob = match self.socket.entries(TABLE, info.size) {
                Ok(blob) => blob,
                // The table changed size between the two calls.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(e) => return Err(sock_error(format!("get entries of table {TABLE}"), e)),
            };
            return Table::parse(
                TABLE,
                info.valid_hooks,
                info.hook_entry,
                info.underflow,
                &blob,
            )
            .map_err(|e| table_error("read table nat", e));
        }
        Err(sock_error(
            format!("get entries of table {TABLE}"),
            io::Error::from_raw_os_error(libc::EAGAIN),
        ))
    }

    /// Runs `change` on the current table under iptables' lock and writes
    /// the result back if `change` says it changed something. Retried
    /// when someone replaced the table between our read and write.
    fn modify(
        &mut self,
        op: &str,
        mut change: impl FnMut(&mut Table) -> Result<bool>,
    ) -> Result<()> {
        let _lock = xtables_lock()?;
        for _ in 0..ATTEMPTS {
            let mut table = self.read()?;
            if !change(&mut table)? {
                return Ok(());
            }
            let (head, blob, origin) = table.serialize().map_err(|e| table_error(op, e))?;
            let old = match self.socket.replace(head, &blob) {
                Ok(old) => old,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(e) => return Err(sock_error(format!("{op}: replace table {TABLE}"), e)),
            };
            // The new table starts at zero: give the rules that stayed
            // their counters back, as iptables does.
            let counters: Vec<XtCounters> = origin
                .iter()
                .map(|o| o.and_then(|i| old.get(i).copied()).unwrap_or_default())
                .collect();
            if counters.iter().any(|c| *c != XtCounters::default()) {
                if let Err(e) = self.socket.add_counters(TABLE, &counters) {
                    tracing::warn!("iptables: restore counters of table {TABLE}: {e}");
                }
            }
            return Ok(());
        }
        Err(sock_error(
            format!("{op}: replace table {TABLE}"),
            io::Error::from_raw_os_error(libc::EAGAIN),
        ))
    }

    /// Creates ccrun's chains if missing and (re)writes the jumps to them
    /// and network `network`'s source NAT rules, in one replacement.
    /// Idempotent.
    pub fn ensure_network(&mut self, network: &str, bridge: &str, subnet: Subnet) -> Result<()> {
        let post = postrouting_chain(network);
        let comment = format!("net={network}");
        let rules = [
            // Outbound: the subnet leaving through anything but the bridge.
            Entry::new(
                ip_rule(
                    Some((subnet, false)),
                    Some((subnet, true)),
                    Some((bridge, true)),
                    0,
                ),
                &[comment_match(&comment)],
                masquerade(),
            ),
            // Hairpin: a container reaching a published port of the network.
            Entry::new(
                ip_rule(Some((subnet, false)), None, Some((bridge, false)), 0),
                &[ctstatus_dnat(), comment_match(&comment)],
                masquerade(),
            ),
            // Host connections to 127.0.0.1:<hostPort> DNATed into the bridge.
            Entry::new(
                ip_rule(Some((loopback(), false)), None, Some((bridge, false)), 0),
                &[comment_match(&comment)],
                masquerade(),
            ),
        ];
        self.modify("ensure network", |t| {
            t.ensure_user_chain(PORTS_CHAIN)
                .and_then(|()| t.ensure_user_chain(&post))
                .map_err(|e| table_error("ensure network", e))?;
            for hook in [HOOK_PRE_ROUTING, HOOK_LOCAL_OUT] {
                let jump = Entry::jump(
                    IptIp::default(),
                    &[addrtype_local(), comment_match(PORTS_COMMENT)],
                    PORTS_CHAIN,
                );
                set_first_jump(t, HOOK_NAMES[hook], PORTS_CHAIN, jump);
            }
            let jump = Entry::jump(IptIp::default(), &[comment_match(&comment)], &post);
            set_first_jump(t, HOOK_NAMES[HOOK_POST_ROUTING], &post, jump);
            if let Some(chain) = t.chain_mut(&post) {
                chain.rules = rules.to_vec();
            }
            Ok(true)
        })
    }

    /// Whether [`Iptables::ensure_network`] already set network `network`
    /// up: the three rules of its chain, the jump to it and the jumps to
    /// the published ports.
    pub fn network_ready(&mut self, network: &str) -> Result<bool> {
        let table = self.read()?;
        let post = postrouting_chain(network);
        let comment = format!("net={network}");
        let jumps = |chain: &str, to: &str| {
            table.chain(chain).map_or(0, |c| {
                c.rules
                    .iter()
                    .filter(|r| table.jump_target(r).as_deref() == Some(to))
                    .count()
            })
        };
        let own_rules = table.chain(&post).map_or(0, |c| {
            c.rules
                .iter()
                .filter(|r| r.comment().as_deref() == Some(comment.as_str()))
                .count()
        });
        Ok(own_rules == 3
            && table.chain(PORTS_CHAIN).is_some()
            && jumps(HOOK_NAMES[HOOK_POST_ROUTING], &post) == 1
            && jumps(HOOK_NAMES[HOOK_PRE_ROUTING], PORTS_CHAIN) == 1
            && jumps(HOOK_NAMES[HOOK_LOCAL_OUT], PORTS_CHAIN) == 1)
    }

    /// Removes network `network`'s source NAT chain and the jump to it;
    /// with the last network also `CCRUN-PORTS` and its jumps if no port is
    /// published any more.
    pub fn remove_network(&mut self, network: &str) -> Result<()> {
        let post = postrouting_chain(network);
        self.modify("remove network", |t| {
            if t.chain(&post).is_none() {
                return Ok(false);
            }
            remove_jumps(t, HOOK_NAMES[HOOK_POST_ROUTING], &post);
            t.remove_user_chain(&post)
                .map_err(|e| table_error("remove network", e))?;
            // The nat table is shared with the host's own rules: once the
            // last network is gone and no port is published, ccrun leaves
            // nothing behind.
            let networks_left = t.chain_names().iter().any(|c| c.starts_with(POST_PREFIX));
            let ports_empty = !matches!(t.chain(PORTS_CHAIN), Some(c) if !c.rules.is_empty());
            if !networks_left && ports_empty {
                for hook in [HOOK_PRE_ROUTING, HOOK_LOCAL_OUT] {
                    remove_jumps(t, HOOK_NAMES[hook], PORTS_CHAIN);
                }
                // Refused only if a rule of someone else jumps to it: then it
                // stays, empty.
                if let Err(e) = t.remove_user_chain(PORTS_CHAIN) {
                    tracing::debug!("iptables: keeping {PORTS_CHAIN}: {}", e.0);
                }
            }
            Ok(true)
        })
    }

    /// Appends one DNAT rule per mapping to `CCRUN-PORTS`, tagged with the
    /// container id, in one replacement. Every mapping must have a host
    /// port.
    pub fn add_port_rules(
        &mut self,
        container_id: &str,
        container_ip: Ipv4Addr,
        mappings: &[PortMapping],
    ) -> Result<()> {
        if mappings.is_empty() {
            return Ok(());
        }
        let rules: Vec<Entry> = mappings
            .iter()
            .map(|m| {
                let mut ip = IptIp {
                    proto: u16::from(m.protocol.number()),
                    ..IptIp::default()
                };
                if let Some(host_ip) = m.host_ip {
                    ip.dst = host_ip.octets();
                    ip.dmsk = [255; 4];
                }
                Entry::new(
                    ip,
                    &[
                        dport_match(m.protocol, m.host_port),
                        comment_match(&PortRule::comment(container_id, container_ip, m)),
                    ],
                    self.dnat(container_ip, m.container_port),
                )
            })
            .collect();
        self.modify("add port rules", |t| {
            t.ensure_user_chain(PORTS_CHAIN)
                .map_err(|e| table_error("add port rules", e))?;
            if let Some(chain) = t.chain_mut(PORTS_CHAIN) {
                chain.rules.extend(rules.iter().cloned());
            }
            Ok(true)
        })
    }

    /// The published-port rules currently installed; `handle` is the
    /// rule's position in `CCRUN-PORTS`.
    pub fn port_rules(&mut self) -> Result<Vec<PortRule>> {
        let table = self.read()?;
        Ok(port_rules(&table))
    }

    /// Deletes every published-port rule of `container_id`; returns how
    /// many there were.
    pub fn remove_container(&mut self, container_id: &str) -> Result<usize> {
        let mut removed = 0;
        self.modify("remove container rules", |t| {
            removed = 0;
            let Some(chain) = t.chain_mut(PORTS_CHAIN) else {
                return Ok(false);
            };
            chain.rules.retain(|r| {
                let ours = r
                    .comment()
                    .and_then(|c| PortRule::parse(0, &c))
                    .is_some_and(|p| p.container_id == container_id);
                removed += usize::from(ours);
                !ours
            });
            Ok(removed > 0)
        })?;
        Ok(removed)
    }

    /// `-j DNAT --to-destination <ip>:<port>`.
    fn dnat(&self, ip: Ipv4Addr, port: u16) -> Vec<u8> {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&ip.octets());
        let range = NfNatRange2 {
            flags: NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED,
            min_addr: addr,
            max_addr: addr,
            min_proto: port.to_be_bytes(),
            max_proto: port.to_be_bytes(),
            ..NfNatRange2::default()
        };
        match self.dnat_revision {
            2 => extension("DNAT", 2, range.as_bytes()),
            // `nf_nat_range` is `nf_nat_range2` without `base_proto`.
            _ => extension("DNAT", 1, &range.as_bytes()[..40]),
        }
    }
}

/// The published-port rules of a table read.
pub fn port_rules(table: &Table) -> Vec<PortRule> {
    table.chain(PORTS_CHAIN).map_or_else(Vec::new, |c| {
        c.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| PortRule::parse(i as u64, &r.comment()?))
            .collect()
    })
}

/// Replaces the jumps to `to` in `chain` by `jump`, placed first.
fn set_first_jump(t: &mut Table, chain: &str, to: &str, jump: Entry) {
    remove_jumps(t, chain, to);
    if let Some(c) = t.chain_mut(chain) {
        c.rules.insert(0, jump);
    }
}

/// Removes the rules of `chain` that jump to `to`.
fn remove_jumps(t: &mut Table, chain: &str, to: &str) {
    let keep: Vec<bool> = t.chain(chain).map_or_else(Vec::new, |c| {
        c.rules
            .iter()
            .map(|r| t.jump_target(r).as_deref() != Some(to))
            .collect()
    });
    if let Some(c) = t.chain_mut(chain) {
        let mut keep = keep.into_iter();
        c.rules.retain(|_| keep.next().unwrap_or(true));
    }
}

fn xtables_lock() -> Result<Flock<fs::File>> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(XTABLES_LOCK)
        .map_err(|e| Error::io(format!("open {XTABLES_LOCK}"), e))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(format!("lock {XTABLES_LOCK}"), errno.into()))
}

fn loopback() -> Subnet {
    Subnet::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_else(|_| unreachable!("valid CIDR"))
}

/// The IP part of a rule: `[!] -s <src> [!] -d <dst> [!] -o <out>`, with
/// protocol `proto` (0: any).
fn ip_rule(
    src: Option<(Subnet, bool)>,
    dst: Option<(Subnet, bool)>,
    out: Option<(&str, bool)>,
    proto: u16,
) -> IptIp {
    let mut ip = IptIp {
        proto,
        ..IptIp::default()
    };
    if let Some((s, invert)) = src {
        ip.src = s.network().octets();
        ip.smsk = s.netmask().octets();
        if invert {
            ip.invflags |= IPT_INV_SRCIP;
        }
    }
    if let Some((d, invert)) = dst {
        ip.dst = d.network().octets();
        ip.dmsk = d.netmask().octets();
        if invert {
            ip.invflags |= IPT_INV_DSTIP;
        }
    }
    if let Some((name, invert)) = out {
        let bytes = name.as_bytes();
        let n = bytes.len().min(IFNAMSIZ - 1);
        ip.outiface[..n].copy_from_slice(&bytes[..n]);
        // The terminating NUL is compared too: an exact name, no prefix.
        ip.outiface_mask[..=n].fill(0xff);
        if invert {
            ip.invflags |= IPT_INV_VIA_OUT;
        }
    }
    ip
}

/// `-m comment --comment <text>`.
fn comment_match(text: &str) -> Vec<u8> {
    extension("comment", 0, &abi::name_field::<COMMENT_LEN>(text))
}

/// `-m addrtype --dst-type LOCAL`.
fn addrtype_local() -> Vec<u8> {
    let info = XtAddrtypeInfoV1 {
        source: 0,
        dest: ADDRTYPE_LOCAL,
        flags: 0,
    };
    extension("addrtype", 1, info.as_bytes())
}

/// `-m conntrack --ctstate DNAT`.
fn ctstatus_dnat() -> Vec<u8> {
    let info = XtConntrackMtinfo3 {
        match_flags: CONNTRACK_STATE,
        state_mask: CONNTRACK_STATE_DNAT,
        ..XtConntrackMtinfo3::default()
    };
    extension("conntrack", 3, info.as_bytes())
}

/// `-m tcp --dport <port>` or `-m udp --dport <port>`.
fn dport_match(protocol: Protocol, port: u16) -> Vec<u8> {
    match protocol {
        Protocol::Tcp => {
            let info = XtTcp {
                spts: [0, u16::MAX],
                dpts: [port, port],
                option: 0,
                flg_mask: 0,
                flg_cmp: 0,
                invflags: 0,
            };
            extension("tcp", 0, info.as_bytes())
        }
        Protocol::Udp => {
            let info = XtUdp {
                spts: [0, u16::MAX],
                dpts: [port, port],
                invflags: 0,
                pad: 0,
            };
            extension("udp", 0, info.as_bytes())
        }
    }
}

/// `-j MASQUERADE`.
fn masquerade() -> Vec<u8> {
    let range = NfNatIpv4MultiRangeCompat {
        rangesize: 1,
        ..NfNatIpv4MultiRangeCompat::default()
    };
    extension("MASQUERADE", 0, range.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit() {
        assert_eq!(postrouting_chain("bridge"), "CCRUN-POST-bridge");
        let long = postrouting_chain(&"n".repeat(64));
        assert!(long.len() <= CHAIN_MAXLEN, "{long}");
        assert!(long.starts_with("CCRUN-POST-nnnnnnnn-"), "{long}");
        assert_ne!(long, postrouting_chain(&"n".repeat(63)));
    }

    /// The DNAT revision for kernels before 4.19 (`nf_nat_range`) is
    /// accepted by this kernel (which has both) and comes back as sent; in
    /// a network namespace of a thread of its own that dies with the thread.
    #[test]
    fn dnat_revision_1_is_accepted() {
        ccrun_testkit::require_root();
        let out = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            let mut ipt = Iptables::new().expect("iptables");
            ipt.dnat_revision = 1;
            let m = PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            };
            ipt.add_port_rules("c1", Ipv4Addr::new(10, 1, 0, 2), &[m])
                .expect("add");
            assert_eq!(ipt.port_rules().expect("list").len(), 1);
            // iptables prints only the newest revision the kernel has, so the
            // rule is checked as the kernel hands it back.
            let table = ipt.read().expect("read");
            let rule = table.chain(PORTS_CHAIN).expect("chain").rules[0].clone();
            let (name, revision, data) = rule.target_parts();
            (name, revision, data.to_vec())
        })
        .join()
        .expect("thread");
        let (name, revision, data) = out;
        assert_eq!((name.as_str(), revision), ("DNAT", 1));
        // nf_nat_range: flags, min_addr, max_addr, min_proto, max_proto.
        assert_eq!(data.len(), 40);
        assert_eq!(data[..4], 3u32.to_ne_bytes());
        assert_eq!(data[4..8], [10, 1, 0, 2]);
        assert_eq!(data[20..24], [10, 1, 0, 2]);
        assert_eq!(data[36..40], [0, 80, 0, 80]);
    }

    #[test]
    fn extensions_are_aligned() {
        assert_eq!(comment_match("x").len(), 32 + 256);
        assert_eq!(dport_match(Protocol::Tcp, 80).len(), 48);
        assert_eq!(dport_match(Protocol::Udp, 80).len(), 48);
        assert_eq!(addrtype_local().len(), 40);
        assert_eq!(ctstatus_dnat().len(), 32 + 168);
        assert_eq!(masquerade().len(), 32 + 24);
    }
}
