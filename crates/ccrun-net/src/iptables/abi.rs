//! The legacy x_tables ABI of IPv4 `ip_tables`, written after the kernel's
//! `include/uapi/linux/netfilter_ipv4/ip_tables.h`, `netfilter/x_tables.h`
//! and the headers of the few matches and targets ccrun uses; and the
//! socket options that read and replace a table.
//!
//! Every struct is `repr(C)` with explicit padding fields where the C
//! compiler inserts padding, so that its bytes are exactly what the kernel
//! reads and writes; the sizes are checked at compile time against the
//! values `gcc` gives for the C headers on x86-64 (LP64: the layout, e.g.
//! of the counters pointer in `ipt_replace`, is that of 64-bit user space).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XT_TABLE_MAXNAMELEN`.
pub const TABLE_MAXNAMELEN: usize = 32;
/// `XT_EXTENSION_MAXNAMELEN`: match and target names, NUL included.
pub const EXTENSION_MAXNAMELEN: usize = 29;
/// `XT_FUNCTION_MAXNAMELEN`: an `ERROR` target's chain name, NUL included.
pub const FUNCTION_MAXNAMELEN: usize = 30;
/// Longest chain name iptables accepts (`XT_EXTENSION_MAXNAMELEN - 1`).
pub const CHAIN_MAXLEN: usize = EXTENSION_MAXNAMELEN - 1;
/// `NF_INET_NUMHOOKS`.
pub const NUMHOOKS: usize = 5;
/// `IFNAMSIZ`.
pub const IFNAMSIZ: usize = 16;
/// `XT_MAX_COMMENT_LEN`.
pub const COMMENT_LEN: usize = 256;

// Socket options (level SOL_IP), `IPT_BASE_CTL` = 64.
const IPT_SO_SET_REPLACE: libc::c_int = 64;
const IPT_SO_SET_ADD_COUNTERS: libc::c_int = 65;
const IPT_SO_GET_INFO: libc::c_int = 64;
const IPT_SO_GET_ENTRIES: libc::c_int = 65;
const IPT_SO_GET_REVISION_TARGET: libc::c_int = 67;

/// Hook numbers (`enum nf_inet_hooks`) and the built-in chains on them.
pub const HOOK_NAMES: [&str; NUMHOOKS] =
    ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
/// `NF_INET_PRE_ROUTING`.
pub const HOOK_PRE_ROUTING: usize = 0;
/// `NF_INET_LOCAL_OUT`.
pub const HOOK_LOCAL_OUT: usize = 3;
/// `NF_INET_POST_ROUTING`.
pub const HOOK_POST_ROUTING: usize = 4;

/// `ipt_ip.invflags`: invert the outgoing interface match.
pub const IPT_INV_VIA_OUT: u8 = 0x02;
/// `ipt_ip.invflags`: invert the source address match.
pub const IPT_INV_SRCIP: u8 = 0x08;
/// `ipt_ip.invflags`: invert the destination address match.
pub const IPT_INV_DSTIP: u8 = 0x10;

/// Standard target verdict `RETURN` (`XT_RETURN` = `-NF_REPEAT - 1`).
pub const VERDICT_RETURN: i32 = -5;
/// The standard target's name (`XT_STANDARD_TARGET`).
pub const STANDARD_TARGET: &str = "";
/// The error target's name (`XT_ERROR_TARGET`): user chain heads and the
/// end of a table.
pub const ERROR_TARGET: &str = "ERROR";

/// `XT_ADDRTYPE_LOCAL`.
pub const ADDRTYPE_LOCAL: u16 = 1 << 2;
/// `XT_CONNTRACK_STATE`: match on `state_mask`.
pub const CONNTRACK_STATE: u16 = 1 << 0;
/// `XT_CONNTRACK_STATE_DNAT` (`1 << (IP_CT_NUMBER + 2)`): the connection's
/// destination was translated.
pub const CONNTRACK_STATE_DNAT: u16 = 1 << 7;
/// `NF_NAT_RANGE_MAP_IPS`.
pub const NAT_RANGE_MAP_IPS: u32 = 1 << 0;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`.
pub const NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;

/// `XT_ALIGN`: matches, targets and entries are 8-byte aligned (the
/// alignment of `struct _xt_align`, which holds a `__u64`).
pub const fn xt_align(n: usize) -> usize {
    (n + 7) & !7
}

/// `struct ipt_getinfo`.
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IptGetinfo {
    /// Table name.
    pub name: [u8; TABLE_MAXNAMELEN],
    /// Bitmask of the hooks the table is on.
    pub valid_hooks: u32,
    /// Offset of each hook's first entry.
    pub hook_entry: [u32; NUMHOOKS],
    /// Offset of each hook's policy entry.
    pub underflow: [u32; NUMHOOKS],
    /// Number of entries.
    pub num_entries: u32,
    /// Size of the entries in bytes.
    pub size: u32,
}

/// The fixed part of `struct ipt_get_entries` (the entries follow).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IptGetEntries {
    /// Table name.
    pub name: [u8; TABLE_MAXNAMELEN],
    /// Size of the entries in bytes.
    pub size: u32,
    /// The C struct's padding before the 8-aligned entries.
    pub pad: [u8; 4],
}

/// The fixed part of `struct ipt_replace` (the entries follow).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IptReplace {
    /// Table name.
    pub name: [u8; TABLE_MAXNAMELEN],
    /// Bitmask of the hooks the table is on.
    pub valid_hooks: u32,
    /// Number of entries.
    pub num_entries: u32,
    /// Size of the entries in bytes.
    pub size: u32,
    /// Offset of each hook's first entry.
    pub hook_entry: [u32; NUMHOOKS],
    /// Offset of each hook's policy entry.
    pub underflow: [u32; NUMHOOKS],
    /// Number of entries of the table being replaced: the kernel refuses
    /// the replacement (EAGAIN) if the table changed size meanwhile.
    pub num_counters: u32,
    /// Pointer to `num_counters` [`XtCounters`], where the kernel stores the
    /// old table's counters.
    pub counters: u64,
}

/// `struct xt_counters`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XtCounters {
    /// Packets.
    pub pcnt: u64,
    /// Bytes.
    pub bcnt: u64,
}

/// The fixed part of `struct xt_counters_info` (the counters follow).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtCountersInfo {
    /// Table name.
    pub name: [u8; TABLE_MAXNAMELEN],
    /// Number of counters, the table's number of entries.
    pub num_counters: u32,
    /// The C struct's padding before the 8-aligned counters.
    pub pad: [u8; 4],
}

/// `struct ipt_ip`: the address, interface and protocol part of a rule.
#[derive(Clone, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IptIp {
    /// Source address (network order).
    pub src: [u8; 4],
    /// Destination address (network order).
    pub dst: [u8; 4],
    /// Source mask.
    pub smsk: [u8; 4],
    /// Destination mask.
    pub dmsk: [u8; 4],
    /// Incoming interface.
    pub iniface: [u8; IFNAMSIZ],
    /// Outgoing interface.
    pub outiface: [u8; IFNAMSIZ],
    /// Bytes of `iniface` to compare.
    pub iniface_mask: [u8; IFNAMSIZ],
    /// Bytes of `outiface` to compare.
    pub outiface_mask: [u8; IFNAMSIZ],
    /// IP protocol, 0 for any.
    pub proto: u16,
    /// `IPT_F_*`.
    pub flags: u8,
    /// `IPT_INV_*`.
    pub invflags: u8,
}

/// The fixed part of `struct ipt_entry`: matches and the target follow.
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IptEntry {
    /// What the rule matches on in the IP header.
    pub ip: IptIp,
    /// Unused by the kernel.
    pub nfcache: u32,
    /// Offset of the target from the entry's start.
    pub target_offset: u16,
    /// Size of the entry: offset of the next one.
    pub next_offset: u16,
    /// Kernel scratch (reset on replace).
    pub comefrom: u32,
    /// Packet and byte counters.
    pub counters: XtCounters,
}

/// The header of `struct xt_entry_match` and `struct xt_entry_target` as
/// user space sees them (the `user` member of their unions).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtExtensionHeader {
    /// Size including this header, `XT_ALIGN`ed.
    pub size: u16,
    /// Extension name, NUL-terminated.
    pub name: [u8; EXTENSION_MAXNAMELEN],
    /// Extension revision.
    pub revision: u8,
}

/// `struct xt_get_revision`.
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtGetRevision {
    /// Extension name.
    pub name: [u8; EXTENSION_MAXNAMELEN],
    /// Revision asked for.
    pub revision: u8,
}

/// `struct xt_tcp` and `struct xt_udp` share their leading fields; ccrun
/// sends the tcp layout padded to `XT_ALIGN`, which is the same size for
/// both (16 bytes).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtTcp {
    /// Source port range (host order).
    pub spts: [u16; 2],
    /// Destination port range (host order).
    pub dpts: [u16; 2],
    /// TCP option (tcp only).
    pub option: u8,
    /// TCP flags mask (tcp only).
    pub flg_mask: u8,
    /// TCP flags compare (tcp only).
    pub flg_cmp: u8,
    /// Inverse flags (the first byte after the ports for udp).
    pub invflags: u8,
}

/// `struct xt_udp`.
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtUdp {
    /// Source port range (host order).
    pub spts: [u16; 2],
    /// Destination port range (host order).
    pub dpts: [u16; 2],
    /// Inverse flags.
    pub invflags: u8,
    /// The C struct's tail padding.
    pub pad: u8,
}

/// `struct xt_addrtype_info_v1` (match `addrtype`, revision 1).
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtAddrtypeInfoV1 {
    /// Source address type mask.
    pub source: u16,
    /// Destination address type mask.
    pub dest: u16,
    /// `XT_ADDRTYPE_INVERT_*`, `XT_ADDRTYPE_LIMIT_IFACE_*`.
    pub flags: u32,
}

/// `struct xt_conntrack_mtinfo3` (match `conntrack`, revision 3, the one
/// iptables itself uses and prints).
#[derive(Clone, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XtConntrackMtinfo3 {
    /// Original, reply source and destination addresses and masks
    /// (`union nf_inet_addr` each).
    pub addrs: [[u8; 16]; 8],
    /// Minimum remaining lifetime.
    pub expires_min: u32,
    /// Maximum remaining lifetime.
    pub expires_max: u32,
    /// Layer 4 protocol.
    pub l4proto: u16,
    /// Original and reply source and destination ports (low ends).
    pub ports: [u16; 4],
    /// `XT_CONNTRACK_*` of what to match.
    pub match_flags: u16,
    /// `XT_CONNTRACK_*` of what to invert.
    pub invert_flags: u16,
    /// `XT_CONNTRACK_STATE_*`.
    pub state_mask: u16,
    /// `IPS_*` status bits.
    pub status_mask: u16,
    /// High ends of the port ranges.
    pub ports_high: [u16; 4],
    /// The C struct's tail padding.
    pub pad: [u8; 2],
}

/// `struct nf_nat_range2` (target `DNAT`, revision 2).
#[derive(Clone, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NfNatRange2 {
    /// `NF_NAT_RANGE_*`.
    pub flags: u32,
    /// Lowest address (`union nf_inet_addr`).
    pub min_addr: [u8; 16],
    /// Highest address.
    pub max_addr: [u8; 16],
    /// Lowest port (network order).
    pub min_proto: [u8; 2],
    /// Highest port (network order).
    pub max_proto: [u8; 2],
    /// Base port for offset mapping (network order).
    pub base_proto: [u8; 2],
    /// The C struct's tail padding.
    pub pad: [u8; 2],
}

/// `struct nf_nat_ipv4_multi_range_compat` with its one range (target
/// `DNAT` revision 0 and `MASQUERADE`).
#[derive(Clone, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NfNatIpv4MultiRangeCompat {
    /// Number of ranges: always 1.
    pub rangesize: u32,
    /// `NF_NAT_RANGE_*`.
    pub flags: u32,
    /// Lowest address (network order).
    pub min_ip: [u8; 4],
    /// Highest address (network order).
    pub max_ip: [u8; 4],
    /// Lowest port (network order).
    pub min: [u8; 2],
    /// Highest port (network order).
    pub max: [u8; 2],
}

const _: () = {
    assert!(size_of::<IptGetinfo>() == 84);
    assert!(size_of::<IptGetEntries>() == 40);
    assert!(size_of::<IptReplace>() == 96);
    assert!(size_of::<XtCountersInfo>() == 40);
    assert!(size_of::<IptIp>() == 84);
    assert!(size_of::<IptEntry>() == 112);
    assert!(std::mem::offset_of!(IptEntry, target_offset) == 88);
    assert!(std::mem::offset_of!(IptEntry, counters) == 96);
    assert!(size_of::<XtExtensionHeader>() == 32);
    assert!(size_of::<XtGetRevision>() == 30);
    assert!(size_of::<XtTcp>() == 12);
    assert!(size_of::<XtUdp>() == 10);
    assert!(size_of::<XtAddrtypeInfoV1>() == 8);
    assert!(size_of::<XtConntrackMtinfo3>() == 164);
    assert!(std::mem::offset_of!(XtConntrackMtinfo3, state_mask) == 150);
    assert!(size_of::<NfNatRange2>() == 44);
    assert!(size_of::<NfNatIpv4MultiRangeCompat>() == 20);
};

/// Copies `s` into a NUL-padded fixed-size name field (truncating so a NUL
/// always ends it).
pub fn name_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The text of a NUL-terminated name field.
pub fn field_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A raw IPv4 socket, the handle for the `ip_tables` socket options.
pub struct Socket(OwnedFd);

impl Socket {
    /// Opens `socket(AF_INET, SOCK_RAW, IPPROTO_RAW)` in the calling
    /// thread's network namespace (needs CAP_NET_RAW, and CAP_NET_ADMIN for
    /// the options).
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor nobody else owns.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `getsockopt(SOL_IP, opt)` into `buf`, whose length is passed as the
    /// option length; returns the length the kernel reported.
    fn get(&self, opt: libc::c_int, buf: &mut [u8]) -> io::Result<usize> {
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of `len` bytes and `len` lives
        // across the call.
        let rc = unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                libc::SOL_IP,
                opt,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(len as usize)
    }

    /// `setsockopt(SOL_IP, opt)` with `buf`.
    fn set(&self, opt: libc::c_int, buf: &[u8]) -> io::Result<()> {
        // SAFETY: `buf` is valid for reads of its length; any pointer it
        // carries (the counters of a replace) points to memory the caller
        // keeps alive and writable across the call.
        let rc = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_IP,
                opt,
                buf.as_ptr().cast(),
                buf.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `IPT_SO_GET_INFO` of table `table` (the kernel creates a built-in
    /// table in this namespace on first use).
    pub fn info(&self, table: &str) -> io::Result<IptGetinfo> {
        let mut info = IptGetinfo::new_zeroed_info(table);
        self.get(IPT_SO_GET_INFO, info.as_mut_bytes())?;
        Ok(info)
    }

    /// `IPT_SO_GET_ENTRIES`: the `size` bytes of entries of table `table`,
    /// with their counters. EAGAIN if the table no longer has that size.
    pub fn entries(&self, table: &str, size: u32) -> io::Result<Vec<u8>> {
        let head = IptGetEntries {
            name: name_field(table),
            size,
            pad: [0; 4],
        };
        let mut buf = vec![0u8; size_of::<IptGetEntries>() + size as usize];
        buf[..size_of::<IptGetEntries>()].copy_from_slice(head.as_bytes());
        self.get(IPT_SO_GET_ENTRIES, &mut buf)?;
        Ok(buf.split_off(size_of::<IptGetEntries>()))
    }

    /// `IPT_SO_SET_REPLACE`: atomically replaces the table with `entries`
    /// described by `head` (whose `counters` field this fills in) and
    /// returns the replaced table's counters, `head.num_counters` of them.
    pub fn replace(&self, mut head: IptReplace, entries: &[u8]) -> io::Result<Vec<XtCounters>> {
        let mut counters = vec![XtCounters::default(); head.num_counters as usize];
        head.counters = counters.as_mut_ptr() as u64;
        let mut buf = Vec::with_capacity(size_of::<IptReplace>() + entries.len());
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(entries);
        self.set(IPT_SO_SET_REPLACE, &buf)?;
        Ok(counters)
    }

    /// `IPT_SO_SET_ADD_COUNTERS`: adds `counters` (one per entry, in order)
    /// to the table's.
    pub fn add_counters(&self, table: &str, counters: &[XtCounters]) -> io::Result<()> {
        let head = XtCountersInfo {
            name: name_field(table),
            num_counters: counters.len() as u32,
            pad: [0; 4],
        };
        let mut buf = head.as_bytes().to_vec();
        buf.extend_from_slice(counters.as_bytes());
        self.set(IPT_SO_SET_ADD_COUNTERS, &buf)
    }

    /// Whether the kernel knows target `name` at `revision`
    /// (`IPT_SO_GET_REVISION_TARGET`).
    pub fn has_target_revision(&self, name: &str, revision: u8) -> bool {
        let mut req = XtGetRevision {
            name: name_field(name),
            revision,
        };
        self.get(IPT_SO_GET_REVISION_TARGET, req.as_mut_bytes())
            .is_ok()
    }
}

impl IptGetinfo {
    fn new_zeroed_info(table: &str) -> IptGetinfo {
        IptGetinfo {
            name: name_field(table),
            valid_hooks: 0,
            hook_entry: [0; NUMHOOKS],
            underflow: [0; NUMHOOKS],
            num_entries: 0,
            size: 0,
        }
    }
}
