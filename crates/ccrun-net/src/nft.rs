//! A minimal nf_tables client over raw netlink (`NETLINK_NETFILTER`), for
//! ccrun's own table `ip ccrun` only — nothing else in the ruleset is read
//! or changed.
//!
//! No pure-Rust, permissively licensed, synchronous nftables crate was
//! available (rustables is GPL, nftnl needs the C libnftnl), and ccrun needs
//! only a handful of expressions, so the messages are built here. Each
//! change is one nfnetlink batch, which the kernel applies atomically.
//!
//! Layout of the table:
//! - `prerouting` (nat, hook prerouting, dstnat) and `output` (nat, hook
//!   output, dstnat): `fib daddr type local jump ports`.
//! - `ports`: one DNAT rule per published port, commented
//!   `ctr=<id> <proto> <hostIP>:<hostPort> <ctrIP>:<ctrPort>`.
//! - `postrouting-<network>` (nat, hook postrouting, srcnat), per network:
//!   masquerade of the subnet leaving through anything but the bridge,
//!   hairpin masquerade of DNATed traffic from the subnet back into the
//!   bridge, and masquerade of 127.0.0.0/8 sources entering the bridge
//!   (connections to `127.0.0.1:<hostPort>`).
//!
//! The rule comments use libnftnl's userdata format, so `nft list table ip
//! ccrun` shows them.

use std::io;
use std::net::Ipv4Addr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use crate::error::{Error, IoContext, Result};
use crate::netlink::{align4, ext_ack_message, malformed, open_socket, read4, split_messages};
use crate::ports::{PortMapping, Protocol};
use crate::subnet::Subnet;

/// Name of ccrun's table (family `ip`).
pub const TABLE: &str = "ccrun";
/// The regular chain holding the DNAT rules of published ports.
pub const PORTS_CHAIN: &str = "ports";
/// The base chain for DNAT of traffic arriving from elsewhere.
pub const PREROUTING_CHAIN: &str = "prerouting";
/// The base chain for DNAT of traffic originating on the host.
pub const OUTPUT_CHAIN: &str = "output";

/// The per-network source NAT chain.
pub fn postrouting_chain(network: &str) -> String {
    format!("postrouting-{network}")
}

// Netlink and nfnetlink.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;

// nf_tables message types.
const NFT_MSG_NEWTABLE: u8 = 0;
const NFT_MSG_NEWCHAIN: u8 = 3;
const NFT_MSG_DELCHAIN: u8 = 5;
const NFT_MSG_NEWRULE: u8 = 6;
const NFT_MSG_GETRULE: u8 = 7;
const NFT_MSG_DELRULE: u8 = 8;
const NFT_MSG_GETGEN: u8 = 16;

// Attributes.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

// Hooks and priorities.
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_NAT_SRC: i32 = 100;
const NF_ACCEPT: u32 = 1;
const NFT_JUMP: i32 = -3;

// Registers and expression constants.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
const NFT_CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const NFTA_FIB_F_DADDR: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
const IFNAMSIZ: usize = 16;
/// libnftnl's userdata type for a rule comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// libnftnl's maximum comment length, terminating NUL included.
const COMMENT_MAX: usize = 128;

/// One expression of a rule.
#[derive(Clone, Debug)]
enum Expr {
    /// `meta load <key> => reg`
    Meta { key: u32, dreg: u32 },
    /// `cmp <op> reg <data>`
    Cmp { sreg: u32, op: u32, data: Vec<u8> },
    /// `payload load <len>b @ <base> + <offset> => reg`
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `bitwise reg = (reg & mask) ^ xor`
    Bitwise {
        reg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `immediate reg <data>`
    Immediate { dreg: u32, data: Vec<u8> },
    /// `immediate verdict jump <chain>`
    Jump { chain: String },
    /// `ct load status => reg`
    CtStatus { dreg: u32 },
    /// `fib daddr type => reg`
    FibDaddrType { dreg: u32 },
    /// `nat dnat ip addr reg proto reg`
    Dnat { addr_reg: u32, proto_reg: u32 },
    /// `masq`
    Masquerade,
}

/// Appends netlink attributes to a message buffer.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        let padded = align4(self.0.len());
        self.0.resize(padded, 0);
    }

    fn str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.put(kind, &data);
    }

    fn be32(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_be_bytes());
    }

    fn be64(&mut self, kind: u16, v: u64) {
        self.put(kind, &v.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        f(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn data_value(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind, |a| a.put(NFTA_DATA_VALUE, value));
    }

    fn expr(&mut self, expr: &Expr) {
        let name = match expr {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate { .. } | Expr::Jump { .. } => "immediate",
            Expr::CtStatus { .. } => "ct",
            Expr::FibDaddrType { .. } => "fib",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
        };
        self.nest(NFTA_LIST_ELEM, |a| {
            a.str(NFTA_EXPR_NAME, name);
            if matches!(expr, Expr::Masquerade) {
                return;
            }
            a.nest(NFTA_EXPR_DATA, |a| match expr {
                Expr::Meta { key, dreg } => {
                    a.be32(1, *dreg); // NFTA_META_DREG
                    a.be32(2, *key); // NFTA_META_KEY
                }
                Expr::Cmp { sreg, op, data } => {
                    a.be32(1, *sreg); // NFTA_CMP_SREG
                    a.be32(2, *op); // NFTA_CMP_OP
                    a.data_value(3, data); // NFTA_CMP_DATA
                }
                Expr::Payload {
                    base,
                    offset,
                    len,
                    dreg,
                } => {
                    a.be32(1, *dreg); // NFTA_PAYLOAD_DREG
                    a.be32(2, *base); // NFTA_PAYLOAD_BASE
                    a.be32(3, *offset); // NFTA_PAYLOAD_OFFSET
                    a.be32(4, *len); // NFTA_PAYLOAD_LEN
                }
                Expr::Bitwise { reg, mask, xor } => {
                    a.be32(1, *reg); // NFTA_BITWISE_SREG
                    a.be32(2, *reg); // NFTA_BITWISE_DREG
                    a.be32(3, mask.len() as u32); // NFTA_BITWISE_LEN
                    a.data_value(4, mask); // NFTA_BITWISE_MASK
                    a.data_value(5, xor); // NFTA_BITWISE_XOR
                }
                Expr::Immediate { dreg, data } => {
                    a.be32(1, *dreg); // NFTA_IMMEDIATE_DREG
                    a.data_value(2, data); // NFTA_IMMEDIATE_DATA
                }
                Expr::Jump { chain } => {
                    a.be32(1, NFT_REG_VERDICT);
                    a.nest(2, |a| {
                        a.nest(NFTA_DATA_VERDICT, |a| {
                            a.be32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                            a.str(NFTA_VERDICT_CHAIN, chain);
                        })
                    });
                }
                Expr::CtStatus { dreg } => {
                    a.be32(1, *dreg); // NFTA_CT_DREG
                    a.be32(2, NFT_CT_STATUS); // NFTA_CT_KEY
                }
                Expr::FibDaddrType { dreg } => {
                    a.be32(1, *dreg); // NFTA_FIB_DREG
                    a.be32(2, NFT_FIB_RESULT_ADDRTYPE); // NFTA_FIB_RESULT
                    a.be32(3, NFTA_FIB_F_DADDR); // NFTA_FIB_FLAGS
                }
                Expr::Dnat {
                    addr_reg,
                    proto_reg,
                } => {
                    a.be32(1, NFT_NAT_DNAT); // NFTA_NAT_TYPE
                    a.be32(2, u32::from(NFPROTO_IPV4)); // NFTA_NAT_FAMILY
                    a.be32(3, *addr_reg); // NFTA_NAT_REG_ADDR_MIN
                    a.be32(5, *proto_reg); // NFTA_NAT_REG_PROTO_MIN
                }
                Expr::Masquerade => {}
            });
        });
    }
}

/// An nfnetlink batch under construction.
struct Batch {
    buf: Vec<u8>,
    first_seq: u32,
    seq: u32,
    ops: Vec<String>,
}

impl Batch {
    fn new(first_seq: u32) -> Self {
        let mut batch = Batch {
            buf: Vec::with_capacity(4096),
            first_seq,
            seq: first_seq,
            ops: Vec::new(),
        };
        batch.header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, |_| {});
        batch
    }

    /// Writes one message: nlmsghdr, nfgenmsg, attributes.
    fn header(&mut self, kind: u16, flags: u16, family: u8, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version, resource id (big endian).
        self.buf.push(family);
        self.buf.push(0);
        self.buf
            .extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        f(&mut Attrs(&mut self.buf));
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// Adds an acknowledged nf_tables message described by `op`.
    fn msg(&mut self, op: String, kind: u8, flags: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        self.ops.push(op);
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(kind);
        self.header(kind, NLM_F_REQUEST | NLM_F_ACK | flags, NFPROTO_IPV4, f);
    }

    fn add_table(&mut self) {
        self.msg(
            format!("create table ip {TABLE}"),
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            |a| a.str(NFTA_TABLE_NAME, TABLE),
        );
    }

    /// Adds a chain; with `hook`, a base chain of type nat.
    fn add_chain(&mut self, name: &str, hook: Option<(u32, i32)>) {
        self.msg(
            format!("create chain {name}"),
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            |a| {
                a.str(NFTA_CHAIN_TABLE, TABLE);
                a.str(NFTA_CHAIN_NAME, name);
                if let Some((hooknum, priority)) = hook {
                    a.nest(NFTA_CHAIN_HOOK, |a| {
                        a.be32(NFTA_HOOK_HOOKNUM, hooknum);
                        a.be32(NFTA_HOOK_PRIORITY, priority as u32);
                    });
                    a.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                    a.str(NFTA_CHAIN_TYPE, "nat");
                }
            },
        );
    }

    fn flush_chain(&mut self, chain: &str) {
        self.msg(format!("flush chain {chain}"), NFT_MSG_DELRULE, 0, |a| {
            a.str(NFTA_RULE_TABLE, TABLE);
            a.str(NFTA_RULE_CHAIN, chain);
        });
    }

    fn delete_chain(&mut self, chain: &str) {
        self.msg(format!("delete chain {chain}"), NFT_MSG_DELCHAIN, 0, |a| {
            a.str(NFTA_CHAIN_TABLE, TABLE);
            a.str(NFTA_CHAIN_NAME, chain);
        });
    }

    fn add_rule(&mut self, chain: &str, exprs: &[Expr], comment: &str) {
        self.msg(
            format!("add rule to {chain} ({comment})"),
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            |a| {
                a.str(NFTA_RULE_TABLE, TABLE);
                a.str(NFTA_RULE_CHAIN, chain);
                a.nest(NFTA_RULE_EXPRESSIONS, |a| {
                    for e in exprs {
                        a.expr(e);
                    }
                });
                a.put(NFTA_RULE_USERDATA, &comment_userdata(comment));
            },
        );
    }

    fn delete_rule(&mut self, chain: &str, handle: u64) {
        self.msg(
            format!("delete rule {handle} of {chain}"),
            NFT_MSG_DELRULE,
            0,
            |a| {
                a.str(NFTA_RULE_TABLE, TABLE);
                a.str(NFTA_RULE_CHAIN, chain);
                a.be64(NFTA_RULE_HANDLE, handle);
            },
        );
    }

    fn finish(mut self) -> (Vec<u8>, u32, Vec<String>) {
        self.header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, |_| {});
        // The begin message used first_seq; acknowledged messages follow it.
        (self.buf, self.first_seq + 1, self.ops)
    }
}

/// Encodes a rule comment in libnftnl's userdata TLV format.
fn comment_userdata(comment: &str) -> Vec<u8> {
    let mut text: Vec<u8> = comment.bytes().take(COMMENT_MAX - 1).collect();
    text.push(0);
    let mut out = vec![NFTNL_UDATA_RULE_COMMENT, text.len() as u8];
    out.extend_from_slice(&text);
    out
}

/// Decodes the comment out of rule userdata, if there is one.
fn userdata_comment(mut data: &[u8]) -> Option<String> {
    while data.len() >= 2 {
        let (kind, len) = (data[0], data[1] as usize);
        let value = data.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        data = &data[2 + len..];
    }
    None
}

/// A rule of ccrun's table as listed from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The chain holding it.
    pub chain: String,
    /// Its handle (for deletion).
    pub handle: u64,
    /// Its comment, if any.
    pub comment: Option<String>,
}

/// A published-port DNAT rule, decoded from its comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    /// The rule's handle in the `ports` chain.
    pub handle: u64,
    /// The container the port belongs to.
    pub container_id: String,
    /// The container's address the traffic goes to.
    pub container_ip: Ipv4Addr,
    /// The mapping.
    pub mapping: PortMapping,
}

impl PortRule {
    pub(crate) fn comment(container_id: &str, container_ip: Ipv4Addr, m: &PortMapping) -> String {
        format!(
            "ctr={container_id} {} {}:{} {container_ip}:{}",
            m.protocol,
            m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            m.host_port,
            m.container_port
        )
    }

    pub(crate) fn parse(handle: u64, comment: &str) -> Option<PortRule> {
        let mut words = comment.split_whitespace();
        let container_id = words.next()?.strip_prefix("ctr=")?.to_string();
        let protocol: Protocol = words.next()?.parse().ok()?;
        let (host_ip, host_port) = words.next()?.split_once(':')?;
        let (container_ip, container_port) = words.next()?.split_once(':')?;
        let host_ip: Ipv4Addr = host_ip.parse().ok()?;
        Some(PortRule {
            handle,
            container_id,
            container_ip: container_ip.parse().ok()?,
            mapping: PortMapping {
                host_ip: Some(host_ip).filter(|ip| !ip.is_unspecified()),
                host_port: host_port.parse().ok()?,
                container_port: container_port.parse().ok()?,
                protocol,
            },
        })
    }
}

/// A synchronous nf_tables connection in the namespace of the thread that
/// created it.
pub struct Nft {
    socket: Socket,
    seq: u32,
}

impl Nft {
    /// Opens a netfilter netlink socket in the calling thread's namespace.
    pub fn new() -> Result<Self> {
        let socket = open_socket(NETLINK_NETFILTER, "nfnetlink")?;
        Ok(Nft { socket, seq: 1 })
    }

    fn batch(&mut self) -> Batch {
        Batch::new(self.seq)
    }

    /// A buffer for one request outside a batch (a dump or a query), with the next
    /// sequence number, which its replies carry.
    fn single_request(&mut self) -> (u32, Batch) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let req = Batch {
            buf: Vec::new(),
            first_seq: seq,
            seq,
            ops: Vec::new(),
        };
        (seq, req)
    }

    /// Sends a batch and waits for every message's acknowledgement; the
    /// first error (the kernel then aborted the whole batch) is returned.
    fn apply(&mut self, batch: Batch) -> Result<()> {
        let (buf, first, ops) = batch.finish();
        self.seq = first.wrapping_add(ops.len() as u32 + 1);
        self.socket
            .send(&buf, 0)
            .ctx(|| "nftables: send batch".to_string())?;
        let mut pending = ops.len();
        let mut rbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
        while pending > 0 {
            rbuf.clear();
            let n = self
                .socket
                .recv(&mut rbuf, 0)
                .ctx(|| "nftables: receive acknowledgements".to_string())?;
            for msg in split_messages(&rbuf[..n], "nftables batch")? {
                let (flags, payload) = (msg.flags, msg.payload);
                // Index 0 is the batch-begin message (the kernel answers it
                // when it refuses the whole batch), then the batch's ops.
                let index = msg.seq.wrapping_sub(first.wrapping_sub(1)) as usize;
                if msg.kind != NLMSG_ERROR || index > ops.len() {
                    continue;
                }
                if payload.len() < 4 {
                    return Err(malformed("nftables batch", "short error message"));
                }
                let code = i32::from_ne_bytes(read4(payload, 0));
                if code != 0 {
                    let op = match index {
                        0 => "batch",
                        i => ops[i - 1].as_str(),
                    };
                    return Err(Error::Netlink {
                        op: format!("nftables: {op}"),
                        source: io::Error::from_raw_os_error(-code),
                        detail: ext_ack_message(flags, payload),
                    });
                }
                if index > 0 {
                    pending -= 1;
                }
            }
        }
        Ok(())
    }

    /// Asks the nf_tables subsystem for its ruleset generation: fails when
    /// the kernel has no nf_tables (nfnetlink answers EOPNOTSUPP).
    pub fn probe(&mut self) -> Result<()> {
        let (seq, mut req) = self.single_request();
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETGEN);
        req.header(kind, NLM_F_REQUEST | NLM_F_ACK, 0, |_| {});
        self.socket
            .send(&req.buf, 0)
            .ctx(|| "nftables: send generation request".to_string())?;
        let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
        loop {
            rbuf.clear();
            let n = self
                .socket
                .recv(&mut rbuf, 0)
                .ctx(|| "nftables: receive generation".to_string())?;
            for msg in split_messages(&rbuf[..n], "get generation")? {
                if msg.seq != seq || msg.kind != NLMSG_ERROR {
                    continue;
                }
                let code = msg
                    .payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes(read4(b, 0)))
                    .ok_or_else(|| malformed("get generation", "short error message"))?;
                if code == 0 {
                    return Ok(());
                }
                return Err(Error::Netlink {
                    op: "nftables: get generation".to_string(),
                    source: io::Error::from_raw_os_error(-code),
                    detail: ext_ack_message(msg.flags, msg.payload),
                });
            }
        }
    }

    /// Lists the rules of ccrun's table, of chain `chain` only if given.
    /// An absent table has no rules.
    pub fn rules(&mut self, chain: Option<&str>) -> Result<Vec<Rule>> {
        let (seq, mut req) = self.single_request();
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETRULE);
        req.header(kind, NLM_F_REQUEST | NLM_F_DUMP, NFPROTO_IPV4, |a| {
            a.str(NFTA_RULE_TABLE, TABLE);
            if let Some(chain) = chain {
                a.str(NFTA_RULE_CHAIN, chain);
            }
        });
        self.socket
            .send(&req.buf, 0)
            .ctx(|| "nftables: send rule dump request".to_string())?;
        let mut out = Vec::new();
        let mut rbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
        loop {
            rbuf.clear();
            let n = self
                .socket
                .recv(&mut rbuf, 0)
                .ctx(|| "nftables: receive rule dump".to_string())?;
            for msg in split_messages(&rbuf[..n], "list rules")? {
                let (flags, payload) = (msg.flags, msg.payload);
                if msg.seq != seq {
                    continue;
                }
                match msg.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = payload.get(..4).map(|b| i32::from_ne_bytes(read4(b, 0)));
                        match code {
                            Some(0) => return Ok(out),
                            Some(code) if -code == libc::ENOENT => return Ok(out),
                            Some(code) => {
                                return Err(Error::Netlink {
                                    op: format!("nftables: list rules of table {TABLE}"),
                                    source: io::Error::from_raw_os_error(-code),
                                    detail: ext_ack_message(flags, payload),
                                })
                            }
                            None => return Err(malformed("list rules", "short error message")),
                        }
                    }
                    _ => {
                        if let Some(rule) = parse_rule(payload) {
                            out.push(rule);
                        }
                    }
                }
            }
        }
    }

    /// Creates ccrun's table and chains if missing and (re)writes the fixed
    /// jump rules and network `network`'s source NAT rules, in one atomic
    /// batch. Idempotent and safe to run concurrently: rewriting flushes
    /// the chains first inside the same batch.
    pub fn ensure_network(&mut self, network: &str, bridge: &str, subnet: Subnet) -> Result<()> {
        let post = postrouting_chain(network);
        let mut b = self.batch();
        b.add_table();
        b.add_chain(PORTS_CHAIN, None);
        for (chain, hook) in [
            (PREROUTING_CHAIN, NF_INET_PRE_ROUTING),
            (OUTPUT_CHAIN, NF_INET_LOCAL_OUT),
        ] {
            b.add_chain(chain, Some((hook, NF_IP_PRI_NAT_DST)));
            b.flush_chain(chain);
            b.add_rule(
                chain,
                &[
                    Expr::FibDaddrType { dreg: NFT_REG_1 },
                    cmp_eq(NFT_REG_1, RTN_LOCAL.to_ne_bytes().to_vec()),
                    Expr::Jump {
                        chain: PORTS_CHAIN.to_string(),
                    },
                ],
                "ccrun published ports",
            );
        }
        b.add_chain(&post, Some((NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC)));
        b.flush_chain(&post);
        let comment = format!("net={network}");
        // Outbound: the subnet leaving through anything but the bridge.
        let mut outbound = match_subnet(12, subnet);
        outbound.extend(match_subnet_neq(16, subnet));
        outbound.extend(match_oifname(bridge, NFT_CMP_NEQ));
        outbound.push(Expr::Masquerade);
        b.add_rule(&post, &outbound, &comment);
        // Hairpin: a container reaching a published port of the network.
        let mut hairpin = match_oifname(bridge, NFT_CMP_EQ);
        hairpin.extend(match_dnat());
        hairpin.extend(match_subnet(12, subnet));
        hairpin.push(Expr::Masquerade);
        b.add_rule(&post, &hairpin, &comment);
        // Host connections to 127.0.0.1:<hostPort> DNATed into the bridge.
        let mut localhost = match_oifname(bridge, NFT_CMP_EQ);
        localhost.extend(match_subnet(12, loopback()));
        localhost.push(Expr::Masquerade);
        b.add_rule(&post, &localhost, &comment);
        self.apply(b)
    }

    /// Whether [`Nft::ensure_network`] already set network `network` up: the three
    /// source NAT rules of its chain and the jumps to the published ports.
    pub fn network_ready(&mut self, network: &str) -> Result<bool> {
        let comment = format!("net={network}");
        let rules = match self.rules(None) {
            Ok(rules) => rules,
            // No table yet.
            Err(_) => return Ok(false),
        };
        let post = postrouting_chain(network);
        let count = |chain: &str, comment: &str| {
            rules
                .iter()
                .filter(|r| r.chain == chain && r.comment.as_deref() == Some(comment))
                .count()
        };
        Ok(count(&post, &comment) == 3
            && count(PREROUTING_CHAIN, "ccrun published ports") == 1
            && count(OUTPUT_CHAIN, "ccrun published ports") == 1)
    }

    /// Removes network `network`'s source NAT chain (if present).
    pub fn remove_network(&mut self, network: &str) -> Result<()> {
        let post = postrouting_chain(network);
        // Make sure both exist so the deletion cannot fail with ENOENT.
        let mut b = self.batch();
        b.add_table();
        b.add_chain(&post, Some((NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC)));
        b.flush_chain(&post);
        b.delete_chain(&post);
        self.apply(b)
    }

    /// Adds one DNAT rule per mapping in the `ports` chain, tagged with the
    /// container id, in one atomic batch. Every mapping must have a host
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
        let mut b = self.batch();
        for m in mappings {
            let mut exprs = Vec::new();
            if let Some(host_ip) = m.host_ip {
                exprs.push(Expr::Payload {
                    base: NFT_PAYLOAD_NETWORK_HEADER,
                    offset: 16,
                    len: 4,
                    dreg: NFT_REG_1,
                });
                exprs.push(cmp_eq(NFT_REG_1, host_ip.octets().to_vec()));
            }
            exprs.push(Expr::Meta {
                key: NFT_META_L4PROTO,
                dreg: NFT_REG_1,
            });
            exprs.push(cmp_eq(NFT_REG_1, vec![m.protocol.number()]));
            exprs.push(Expr::Payload {
                base: NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 2,
                len: 2,
                dreg: NFT_REG_1,
            });
            exprs.push(cmp_eq(NFT_REG_1, m.host_port.to_be_bytes().to_vec()));
            exprs.push(Expr::Immediate {
                dreg: NFT_REG_1,
                data: container_ip.octets().to_vec(),
            });
            exprs.push(Expr::Immediate {
                dreg: NFT_REG_2,
                data: m.container_port.to_be_bytes().to_vec(),
            });
            exprs.push(Expr::Dnat {
                addr_reg: NFT_REG_1,
                proto_reg: NFT_REG_2,
            });
            b.add_rule(
                PORTS_CHAIN,
                &exprs,
                &PortRule::comment(container_id, container_ip, m),
            );
        }
        self.apply(b)
    }

    /// The published-port rules currently installed.
    pub fn port_rules(&mut self) -> Result<Vec<PortRule>> {
        Ok(self
            .rules(Some(PORTS_CHAIN))?
            .into_iter()
            .filter(|r| r.chain == PORTS_CHAIN)
            .filter_map(|r| PortRule::parse(r.handle, r.comment.as_deref()?))
            .collect())
    }

    /// Deletes the rules with these handles from the `ports` chain in one
    /// batch; rules that vanished meanwhile are not an error.
    pub fn delete_port_rules(&mut self, handles: &[u64]) -> Result<()> {
        for chunk in handles.chunks(64) {
            let mut b = self.batch();
            for h in chunk {
                b.delete_rule(PORTS_CHAIN, *h);
            }
            match self.apply(b) {
                Ok(()) => {}
                // Someone removed one of them first: delete one by one.
                Err(e) if e.netlink_errno() == Some(libc::ENOENT) => {
                    for h in chunk {
                        let mut b = self.batch();
                        b.delete_rule(PORTS_CHAIN, *h);
                        match self.apply(b) {
                            Ok(()) => {}
                            Err(e) if e.netlink_errno() == Some(libc::ENOENT) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes every published-port rule of `container_id`; returns how
    /// many there were.
    pub fn remove_container(&mut self, container_id: &str) -> Result<usize> {
        let handles: Vec<u64> = self
            .port_rules()?
            .into_iter()
            .filter(|r| r.container_id == container_id)
            .map(|r| r.handle)
            .collect();
        self.delete_port_rules(&handles)?;
        Ok(handles.len())
    }
}

fn cmp_eq(sreg: u32, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg,
        op: NFT_CMP_EQ,
        data,
    }
}

fn loopback() -> Subnet {
    Subnet::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_else(|_| unreachable!("valid CIDR"))
}

/// `ip saddr|daddr <subnet>` (offset 12 for saddr, 16 for daddr).
fn match_subnet(offset: u32, subnet: Subnet) -> Vec<Expr> {
    match_subnet_op(offset, subnet, NFT_CMP_EQ)
}

/// `ip saddr|daddr != <subnet>`.
fn match_subnet_neq(offset: u32, subnet: Subnet) -> Vec<Expr> {
    match_subnet_op(offset, subnet, NFT_CMP_NEQ)
}

fn match_subnet_op(offset: u32, subnet: Subnet, op: u32) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: 4,
            dreg: NFT_REG_1,
        },
        Expr::Bitwise {
            reg: NFT_REG_1,
            mask: subnet.netmask().octets().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: subnet.network().octets().to_vec(),
        },
    ]
}

/// `oifname [!=] <name>`.
fn match_oifname(name: &str, op: u32) -> Vec<Expr> {
    let mut data = vec![0u8; IFNAMSIZ];
    let bytes = name.as_bytes();
    let n = bytes.len().min(IFNAMSIZ - 1);
    data[..n].copy_from_slice(&bytes[..n]);
    vec![
        Expr::Meta {
            key: NFT_META_OIFNAME,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data,
        },
    ]
}

/// `ct status dnat`.
fn match_dnat() -> Vec<Expr> {
    vec![
        Expr::CtStatus { dreg: NFT_REG_1 },
        Expr::Bitwise {
            reg: NFT_REG_1,
            mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_NEQ,
            data: vec![0; 4],
        },
    ]
}

/// Decodes an `NFT_MSG_NEWRULE` payload (nfgenmsg + attributes).
fn parse_rule(payload: &[u8]) -> Option<Rule> {
    let mut attrs = payload.get(4..)?;
    let mut rule = Rule {
        chain: String::new(),
        handle: 0,
        comment: None,
    };
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        let value = &attrs[4..len];
        match kind {
            NFTA_RULE_CHAIN => {
                let text = value.split(|b| *b == 0).next().unwrap_or_default();
                rule.chain = String::from_utf8_lossy(text).into_owned();
            }
            NFTA_RULE_HANDLE if value.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(value);
                rule.handle = u64::from_be_bytes(b);
            }
            NFTA_RULE_USERDATA => rule.comment = userdata_comment(value),
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_round_trip() {
        let m = PortMapping {
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Udp,
        };
        let id = "a".repeat(64);
        let ip = Ipv4Addr::new(10, 88, 0, 2);
        let comment = PortRule::comment(&id, ip, &m);
        assert!(comment.len() < COMMENT_MAX, "{comment}");
        let ud = comment_userdata(&comment);
        assert_eq!(userdata_comment(&ud).as_deref(), Some(comment.as_str()));
        let rule = PortRule::parse(7, &comment).unwrap();
        assert_eq!(rule.mapping, m);
        assert_eq!(rule.container_id, id);
        assert_eq!(rule.container_ip, ip);
        assert!(PortRule::parse(1, "net=x").is_none());
        assert!(PortRule::parse(1, "ctr=x tcp nope 1.2.3.4:5").is_none());
    }

    #[test]
    fn attributes_are_aligned_and_nested() {
        let mut buf = Vec::new();
        let mut a = Attrs(&mut buf);
        a.nest(5, |a| a.str(1, "abc"));
        // nest header(4) + attr header(4) + "abc\0"(4)
        assert_eq!(buf.len(), 12);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 12);
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), 5 | NLA_F_NESTED);
        assert_eq!(&buf[8..12], b"abc\0");
    }
}
