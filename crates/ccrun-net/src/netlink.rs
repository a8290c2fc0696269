//! rtnetlink, synchronously: links (bridge, veth), IPv4 addresses and
//! routes in the calling thread's network namespace.
//!
//! A [`Netlink`] handle is bound to the namespace its thread was in when it
//! was created; create a new one after switching with [`crate::in_netns`].

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    BridgePortState, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::error::{Error, IoContext, Result};

/// How long to wait for the kernel to answer one request before giving up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of the receive buffer; netlink replies are split below this.
const RECV_BUF: usize = 256 * 1024;
/// `NLM_F_ACK_TLVS`: the error message carries extended-ack attributes.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: extended-ack attribute holding a text message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A network interface as seen by rtnetlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU, if reported.
    pub mtu: Option<u32>,
    /// Whether the interface is administratively up.
    pub up: bool,
    /// Index of the bridge (or other controller) the interface is attached to.
    pub master: Option<u32>,
    /// Link kind (`bridge`, `veth`, ...) for virtual links.
    pub kind: Option<String>,
    /// For a link whose other end lives in another namespace (a veth whose
    /// peer was moved away), that namespace's id as seen from this one; -1
    /// when it has none, which the kernel reports for a namespace being
    /// destroyed.
    pub link_netnsid: Option<i32>,
}

/// An IPv4 address assigned to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// Index of the interface holding the address.
    pub index: u32,
    /// The address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// An IPv4 route of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network address (`0.0.0.0` for the default route).
    pub destination: Ipv4Addr,
    /// Destination prefix length (0 for the default route).
    pub prefix_len: u8,
    /// Next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
}

/// One request of a [`Netlink::pipeline`]: what it does (for messages),
/// the message and its `NLM_F_*` flags (`NLM_F_REQUEST` and, unless it is a
/// dump, `NLM_F_ACK` are added).
pub struct Request {
    op: String,
    msg: RouteNetlinkMessage,
    flags: u16,
}

impl Request {
    /// A request described as `op` in error messages.
    pub fn new(op: impl Into<String>, msg: RouteNetlinkMessage, flags: u16) -> Self {
        Request {
            op: op.into(),
            msg,
            flags,
        }
    }

    /// Gets the link called `name` (see [`found_link`]).
    pub fn get_link(name: &str) -> Self {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        Request::new(
            format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            0,
        )
    }

    /// Creates a veth pair: `name` in the requesting socket's namespace,
    /// joined to bridge `master` if given and with `up` brought up as it is
    /// created; `peer_name` directly inside the namespace `peer_ns` (so it
    /// never clashes with a same-named link here, and no move or rename is
    /// needed), down: the kernel cannot open a veth end before its peer
    /// exists (`ENOTCONN`), with MAC `peer_mac` if given (else a random
    /// one). Both ends get `mtu`. Fails with `EEXIST` if either name is
    /// taken.
    pub fn create_veth(
        name: &str,
        (peer_name, peer_mac): (&str, Option<[u8; 6]>),
        mtu: u32,
        peer_ns: BorrowedFd<'_>,
        master: Option<u32>,
        up: bool,
    ) -> Self {
        let flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(peer_name.to_string()),
            LinkAttribute::Mtu(mtu),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        if let Some(mac) = peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut msg = LinkMessage::default();
        msg.header.flags = flags;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Mtu(mtu),
        ];
        if let Some(master) = master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        Request::new(
            format!("create veth {name} (peer {peer_name})"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Turns hairpin mode of bridge port `name` on or off (see
    /// [`Netlink::set_hairpin`]).
    pub fn set_hairpin(name: &str, on: bool) -> Self {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(hairpin_info(on));
        // Port options are changed through RTM_NEWLINK on an existing link.
        Request::new(
            format!("set hairpin mode of {name}"),
            RouteNetlinkMessage::NewLink(msg),
            0,
        )
    }

    /// Brings the link called `name` up.
    pub fn set_up(name: &str) -> Self {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        Request::new(
            format!("bring {name} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// Sets the MAC of link `index` to `mac`. Also when it has that MAC
    /// already, the kernel tells the address's users of a change
    /// (`NETDEV_CHANGEADDR`): with `arp_notify` on, it announces the link's
    /// IPv4 addresses with gratuitous ARP.
    pub fn set_mac(index: u32, mac: [u8; 6]) -> Self {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        Request::new(
            format!("set the MAC of link {index}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// Assigns `ip/prefix_len` to link `index` (`EEXIST` if it has it, see
    /// [`created`]).
    pub fn add_address(index: u32, ip: Ipv4Addr, prefix_len: u8) -> Self {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        msg.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(ip)),
            AddressAttribute::Address(IpAddr::V4(ip)),
        ];
        if prefix_len < 31 {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            let broadcast = Ipv4Addr::from(u32::from(ip) | host_bits);
            msg.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        Request::new(
            format!("add address {ip}/{prefix_len} to link {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds a default route via `gateway` out of link `oif` (`EEXIST` if
    /// there is one, see [`created`]).
    pub fn add_default_route(gateway: Ipv4Addr, oif: u32) -> Self {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
            RouteAttribute::Oif(oif),
        ];
        Request::new(
            format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}

/// The answer to a [`Request::get_link`]: the link, `None` if there is none.
pub fn found_link(answer: Result<Vec<RouteNetlinkMessage>>) -> Result<Option<Link>> {
    match answer {
        Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
            _ => None,
        })),
        Err(e) if e.netlink_errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The answer to a creating request: true if it created something, false if
/// it existed already (`EEXIST`).
pub fn created(answer: Result<Vec<RouteNetlinkMessage>>) -> Result<bool> {
    match answer {
        Ok(_) => Ok(true),
        Err(e) if e.netlink_errno() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The bridge port attributes that turn hairpin mode on or off.
fn hairpin_info(on: bool) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            on,
        )])),
    ])
}

/// A synchronous rtnetlink connection in the namespace of the thread that
/// created it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let socket = open_socket(NETLINK_ROUTE, "rtnetlink")?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and collects the messages of its answer. Non-dump
    /// requests are acknowledged; dumps end with `NLMSG_DONE`.
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let [answer] = self.pipeline([Request::new(op, msg, flags)])?;
        answer
    }

    /// Sends `requests` in one datagram and collects each one's answer, in
    /// order: one round trip to the kernel instead of one per request. The
    /// kernel runs them one after the other and answers each, also after one
    /// failed, so a request depending on an earlier one fails too (then
    /// report the first error). The outer error is for the socket itself.
    pub fn pipeline<const N: usize>(
        &mut self,
        requests: [Request; N],
    ) -> Result<[Result<Vec<RouteNetlinkMessage>>; N]> {
        let count = N;
        let first = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        let mut ops = Vec::with_capacity(count);
        let mut dumps = Vec::with_capacity(count);
        for (i, req) in requests.into_iter().enumerate() {
            let dump = req.flags & NLM_F_DUMP == NLM_F_DUMP;
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | req.flags | if dump { 0 } else { NLM_F_ACK };
            header.sequence_number = first.wrapping_add(i as u32);
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(req.msg));
            packet.finalize();
            let (at, len) = (buf.len(), packet.buffer_len());
            buf.resize(at + align4(len), 0);
            packet.serialize(&mut buf[at..at + len]);
            ops.push(req.op);
            dumps.push(dump);
        }
        self.seq = first.wrapping_add(count as u32).wrapping_sub(1);
        let all_ops = || ops.join(", ");
        self.socket
            .send(&buf, 0)
            .ctx(|| format!("netlink: {}: send", all_ops()))?;

        let mut collected: [Vec<RouteNetlinkMessage>; N] = std::array::from_fn(|_| Vec::new());
        let mut answers: [Option<Result<Vec<RouteNetlinkMessage>>>; N] =
            std::array::from_fn(|_| None);
        let mut pending = count;
        let mut rbuf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        while pending > 0 {
            rbuf.clear();
            let n = self
                .socket
                .recv(&mut rbuf, 0)
                .ctx(|| format!("netlink: {}: receive", all_ops()))?;
            for raw in split_messages(&rbuf[..n], "receive")? {
                let i = raw.seq.wrapping_sub(first) as usize;
                if i >= count || answers[i].is_some() {
                    continue; // an answer to an earlier request
                }
                let (op, dump) = (ops[i].as_str(), dumps[i]);
                let bytes = raw.whole;
                let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                    Ok(parsed) => parsed,
                    // One entry of a dump this crate cannot decode (a link
                    // kind it does not know, say) must not hide the others.
                    Err(e) if dump && raw.kind > 3 => {
                        tracing::warn!("netlink: {op}: skipping undecodable entry: {e}");
                        continue;
                    }
                    Err(e) => {
                        answers[i] = Some(Err(malformed(op, &e.to_string())));
                        pending -= 1;
                        continue;
                    }
                };
                let answer = match parsed.payload {
                    NetlinkPayload::Done(_) => Ok(std::mem::take(&mut collected[i])),
                    NetlinkPayload::Error(err) => match err.code {
                        Some(code) => Err(Error::Netlink {
                            op: op.to_string(),
                            source: io::Error::from_raw_os_error(-code.get()),
                            detail: ext_ack_message(raw.flags, &bytes[16..]),
                        }),
                        None if !dump => Ok(std::mem::take(&mut collected[i])),
                        None => continue,
                    },
                    NetlinkPayload::InnerMessage(inner) => {
                        collected[i].push(inner);
                        continue;
                    }
                    _ => continue,
                };
                answers[i] = Some(answer);
                pending -= 1;
            }
        }
        Ok(answers.map(|a| a.unwrap_or_else(|| Err(malformed("receive", "no answer")))))
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, or `None` if there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let req = Request::get_link(name);
        let op = req.op.clone();
        found_link(self.request(&op, req.msg, req.flags))
    }

    /// The link called `name`, or an error saying it does not exist.
    pub fn require_link(&mut self, name: &str) -> Result<Link> {
        self.link_by_name(name)?.ok_or_else(|| Error::Netlink {
            op: format!("get link {name}"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
            detail: None,
        })
    }

    /// Creates a bridge called `name` with `mtu` and MAC `mac` if none
    /// exists. Returns whether it was created (false: a link of that name
    /// already existed). A bridge given a MAC keeps it; one without takes the
    /// lowest of its ports' and changes it as ports come and go, and every
    /// change flushes the ARP cache of the bridge's namespace.
    pub fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create(&format!("create bridge {name}"), msg)
    }

    /// Creates a veth pair: `name` stays in this namespace, `peer_name` is
    /// created directly inside the namespace `peer_ns` (so it never clashes
    /// with a same-named link here). Both ends get `mtu`.
    pub fn create_veth(
        &mut self,
        name: &str,
        peer_name: &str,
        mtu: u32,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<()> {
        let req = Request::create_veth(name, (peer_name, None), mtu, peer_ns, None, false);
        self.request(&req.op, req.msg, req.flags).map(drop)
    }

    fn create(&mut self, op: &str, msg: LinkMessage) -> Result<bool> {
        match self.request(
            op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.netlink_errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves link `index` into the network namespace `ns`, renaming it to
    /// `new_name` on the way if given.
    pub fn move_to_netns(
        &mut self,
        index: u32,
        ns: BorrowedFd<'_>,
        new_name: Option<&str>,
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        if let Some(name) = new_name {
            msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        }
        self.request(
            &format!("move link {index} to another namespace"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(|_| ())
    }

    /// Changes link `index`: administrative state, MTU and bridge, each only
    /// if given.
    pub fn set_link(
        &mut self,
        index: u32,
        up: Option<bool>,
        mtu: Option<u32>,
        master: Option<u32>,
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some(up) = up {
            msg.header.change_mask = LinkFlags::Up;
            msg.header.flags = if up {
                LinkFlags::Up
            } else {
                LinkFlags::empty()
            };
        }
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        self.request(
            &format!("set link {index}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .map(|_| ())
    }

    /// Turns hairpin mode of bridge port `index` on or off. With it on, the
    /// bridge may send a frame back out of the port it came in on: needed
    /// when a container reaches its own published port through the host
    /// and `br_netfilter` turns the DNATed packet into a bridged one.
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(hairpin_info(on));
        // Port options are changed through RTM_NEWLINK on an existing link.
        self.request(
            &format!("set hairpin mode of link {index}"),
            RouteNetlinkMessage::NewLink(msg),
            0,
        )
        .map(|_| ())
    }

    /// Whether the link called `name` is a bridge port in the forwarding
    /// state (false for a link that is none, or is gone).
    pub fn bridge_port_forwarding(&mut self, name: &str) -> Result<bool> {
        let req = Request::get_link(name);
        let msgs = match self.request(&req.op, req.msg, req.flags) {
            Err(e) if e.netlink_errno() == Some(libc::ENODEV) => return Ok(false),
            other => other?,
        };
        let forwarding = |info: &LinkInfo| match info {
            LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => attrs
                .iter()
                .any(|a| matches!(a, InfoBridgePort::State(BridgePortState::Forwarding))),
            _ => false,
        };
        Ok(msgs.iter().any(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().any(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().any(forwarding),
                _ => false,
            }),
            _ => false,
        }))
    }

    /// Brings the link called `name` up.
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let req = Request::set_up(name);
        self.request(&req.op, req.msg, req.flags).map(drop)
    }

    /// Deletes the link called `name`. Returns false if there was none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let Some(link) = self.link_by_name(name)? else {
            return Ok(false);
        };
        self.delete_link_index(link.index, name)
    }

    /// Deletes link `index` (called `name`, for messages). Returns false if
    /// there was none.
    pub fn delete_link_index(&mut self, index: u32, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.netlink_errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the network namespace with id `nsid` (as seen from this
    /// namespace) is alive. False for one that is being destroyed: the kernel
    /// no longer hands out references to it, and it never comes back.
    pub fn netns_alive(&mut self, nsid: i32) -> Result<bool> {
        if nsid < 0 {
            return Ok(false);
        }
        let mut msg = NsidMessage::default();
        msg.attributes.push(NsidAttribute::Id(nsid));
        match self.request(
            &format!("get network namespace id {nsid}"),
            RouteNetlinkMessage::GetNsId(msg),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.netlink_errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Assigns `ip/prefix_len` to link `index`. Returns false if the link
    /// already had that address.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<bool> {
        let req = Request::add_address(index, ip, prefix_len);
        created(self.request(&req.op, req.msg, req.flags))
    }

    /// IPv4 addresses, of link `index` only if given.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let msgs = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(req),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if index.is_some_and(|i| i != a.header.index) {
                continue;
            }
            let ip = a.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = ip {
                out.push(Address {
                    index: a.header.index,
                    ip,
                    prefix_len: a.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    /// Adds a default route via `gateway` out of link `oif`. Returns false
    /// if a default route already existed.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr, oif: u32) -> Result<bool> {
        let req = Request::add_default_route(gateway, oif);
        created(self.request(&req.op, req.msg, req.flags))
    }

    /// IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let msgs = self.request(
            "list routes",
            RouteNetlinkMessage::GetRoute(req),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.table != RouteHeader::RT_TABLE_MAIN
                || r.header.address_family != AddressFamily::Inet
            {
                continue;
            }
            let mut route = Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: r.header.destination_prefix_length,
                gateway: None,
                oif: None,
            };
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => route.destination = *ip,
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(*ip),
                    RouteAttribute::Oif(oif) => route.oif = Some(*oif),
                    _ => {}
                }
            }
            out.push(route);
        }
        Ok(out)
    }

    /// The MTU of the interface the default route goes out of, if there is
    /// a default route.
    pub fn default_route_mtu(&mut self) -> Result<Option<u32>> {
        let Some(oif) = self
            .routes()?
            .into_iter()
            .find(|r| r.prefix_len == 0 && r.oif.is_some())
            .and_then(|r| r.oif)
        else {
            return Ok(None);
        };
        Ok(self
            .links()?
            .into_iter()
            .find(|l| l.index == oif)
            .and_then(|l| l.mtu))
    }
}

fn to_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
        link_netnsid: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Opens a netlink socket of `protocol` in the calling thread's namespace,
/// bound, connected to the kernel, with extended acks and a reply timeout.
pub(crate) fn open_socket(protocol: isize, what: &str) -> Result<Socket> {
    let mut socket = Socket::new(protocol).ctx(|| format!("open {what} socket"))?;
    socket.bind_auto().ctx(|| format!("bind {what} socket"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .ctx(|| format!("connect {what} socket"))?;
    // Best effort: older kernels lack these; errors then just lose detail.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    let timeout = TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
    setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)
        .ctx(|| format!("set {what} socket timeout"))?;
    Ok(socket)
}

/// One netlink message of a receive buffer.
pub(crate) struct RawMessage<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The bytes after the header.
    pub payload: &'a [u8],
    /// The whole message, header included.
    pub whole: &'a [u8],
}

/// Splits a receive buffer into its netlink messages.
pub(crate) fn split_messages<'a>(buf: &'a [u8], op: &str) -> Result<Vec<RawMessage<'a>>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset + 16 <= buf.len() {
        let len = u32::from_ne_bytes(read4(buf, offset)) as usize;
        if len < 16 || offset + len > buf.len() {
            return Err(malformed(op, "truncated message"));
        }
        let whole = &buf[offset..offset + len];
        out.push(RawMessage {
            kind: u16::from_ne_bytes([whole[4], whole[5]]),
            flags: u16::from_ne_bytes([whole[6], whole[7]]),
            seq: u32::from_ne_bytes(read4(whole, 8)),
            payload: &whole[16..],
            whole,
        });
        offset += align4(len);
    }
    Ok(out)
}

/// Reads 4 bytes at `offset` (the caller checked the length).
pub(crate) fn read4(buf: &[u8], offset: usize) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&buf[offset..offset + 4]);
    out
}

/// Rounds `len` up to netlink's 4-byte alignment.
pub(crate) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

pub(crate) fn malformed(op: &str, reason: &str) -> Error {
    Error::Malformed {
        op: op.to_string(),
        reason: reason.to_string(),
    }
}

/// The text of an extended ack, given the flags of an `NLMSG_ERROR` message
/// and its payload (error code, then the capped original header, then TLVs).
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + 16 {
        return None;
    }
    let mut tlvs = &payload[4 + 16..];
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = &tlvs[align4(len).min(tlvs.len())..];
    }
    None
}
