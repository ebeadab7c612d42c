//! A minimal synchronous rtnetlink client: list/add/delete IPv4 and IPv6 routes of one protocol in
//! the main table, add/delete addresses, resolve interface names.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use super::Route;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("rtnetlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("rtnetlink: malformed reply: {0}")]
    Decode(String),
    #[error("no network interface named `{0}`")]
    NoSuchInterface(String),
}

/// One rtnetlink socket, used for request → ACK or dump exchanges.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// The index of interface `name` (0 is never a valid index).
pub fn link_index(name: &str) -> Result<u32, NetlinkError> {
    let c = CString::new(name).map_err(|_| NetlinkError::NoSuchInterface(name.into()))?;
    let idx = nametoindex(&c);
    if idx == 0 {
        return Err(NetlinkError::NoSuchInterface(name.into()));
    }
    Ok(idx)
}

#[allow(unsafe_code)]
fn nametoindex(name: &CString) -> u32 {
    // SAFETY: `name` is a valid NUL-terminated C string that outlives the call; the function
    // neither keeps the pointer nor writes through it.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

impl Netlink {
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        Ok(Netlink { socket, seq: 1 })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32, io::Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.header.length as usize];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Receive replies to `seq` until the ACK / end of dump, handing inner messages to `each`.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(RouteNetlinkMessage)) -> Result<(), io::Error> {
        loop {
            let (buf, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length netlink message",
                    ));
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(()),
                    NetlinkPayload::Error(e) => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(m) => each(m),
                    _ => {}
                }
            }
        }
    }

    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), io::Error> {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        self.receive(seq, |_| {})
    }

    /// IPv4 and IPv6 routes of protocol `proto` in the main table that go out of a device directly.
    pub fn routes(&mut self, proto: u8) -> Result<Vec<Route>, NetlinkError> {
        let mut out = self.routes_of(AddressFamily::Inet, proto)?;
        match self.routes_of(AddressFamily::Inet6, proto) {
            Ok(v6) => out.extend(v6),
            // A kernel without IPv6 (ipv6.disable=1) has no IPv6 routes of ours either.
            Err(NetlinkError::Request { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EOPNOTSUPP)) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    fn routes_of(&mut self, family: AddressFamily, proto: u8) -> Result<Vec<Route>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        let seq = self
            .send(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST | NLM_F_DUMP)
            .map_err(|source| NetlinkError::Request {
                what: "list routes".into(),
                source,
            })?;
        let mut out = Vec::new();
        self.receive(seq, |m| {
            if let RouteNetlinkMessage::NewRoute(r) = m
                && let Some(route) = our_route(&r, proto)
            {
                out.push(route);
            }
        })
        .map_err(|source| NetlinkError::Request {
            what: "list routes".into(),
            source,
        })?;
        Ok(out)
    }

    /// `ip route add <dst> dev <ifindex> proto <proto>`; fails if any route to `dst` exists.
    pub fn add_route(&mut self, r: &Route, proto: u8) -> Result<(), NetlinkError> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_message(r, proto)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|source| NetlinkError::Request {
            what: format!(
                "add route {} (a route to it may already exist: `ip route show {}`)",
                r.dst, r.dst
            ),
            source,
        })
    }

    /// Delete the route; already gone counts as success.
    pub fn del_route(&mut self, r: &Route, proto: u8) -> Result<(), NetlinkError> {
        match self.request(RouteNetlinkMessage::DelRoute(route_message(r, proto)), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map_err(|source| NetlinkError::Request {
                what: format!("delete route {}", r.dst),
                source,
            }),
        }
    }

    /// Add `addr` (address/prefix) to the interface; already present counts as success.
    pub fn add_address(&mut self, addr: IpNet, ifindex: u32) -> Result<(), NetlinkError> {
        match self.request(
            RouteNetlinkMessage::NewAddress(address_message(addr, ifindex)),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map_err(|source| NetlinkError::Request {
                what: format!("add address {addr}"),
                source,
            }),
        }
    }

    /// Remove `addr` from the interface; already gone (or interface gone) counts as success.
    pub fn del_address(&mut self, addr: IpNet, ifindex: u32) -> Result<(), NetlinkError> {
        match self.request(RouteNetlinkMessage::DelAddress(address_message(addr, ifindex)), 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
            other => other.map_err(|source| NetlinkError::Request {
                what: format!("delete address {addr}"),
                source,
            }),
        }
    }
}

fn route_message(r: &Route, proto: u8) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.destination_prefix_length = r.dst.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(proto);
    m.header.kind = RouteType::Unicast;
    match r.dst {
        IpNet::V4(n) => {
            m.header.address_family = AddressFamily::Inet;
            m.header.scope = RouteScope::Link;
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(n.network())));
        }
        IpNet::V6(n) => {
            // The kernel keeps IPv6 routes in universe scope and refuses link scope.
            m.header.address_family = AddressFamily::Inet6;
            m.header.scope = RouteScope::Universe;
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet6(n.network())));
        }
    }
    m.attributes.push(RouteAttribute::Oif(r.ifindex));
    m
}

/// The route if it is a main-table unicast route of `proto` with a device and no gateway.
fn our_route(m: &RouteMessage, proto: u8) -> Option<Route> {
    let h = &m.header;
    if !matches!(h.address_family, AddressFamily::Inet | AddressFamily::Inet6)
        || u8::from(h.protocol) != proto
        || h.kind != RouteType::Unicast
    {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut dst = if h.address_family == AddressFamily::Inet6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = IpAddr::V4(*d),
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = IpAddr::V6(*d),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    Some(Route {
        dst: IpNet::new(dst, h.destination_prefix_length).ok()?,
        ifindex: oif?,
    })
}

fn address_message(addr: IpNet, ifindex: u32) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.prefix_len = addr.prefix_len();
    m.header.index = ifindex;
    match addr {
        IpNet::V4(a) => {
            m.header.family = AddressFamily::Inet;
            let ip = IpAddr::V4(a.addr());
            m.attributes.push(AddressAttribute::Local(ip));
            m.attributes.push(AddressAttribute::Address(ip));
            m.attributes.push(AddressAttribute::Broadcast(a.broadcast()));
        }
        IpNet::V6(a) => {
            // No duplicate address detection: the /126 is the tunnel's alone, and DAD would keep
            // the address tentative (unusable for BGP and probes) for a second or more.
            m.header.family = AddressFamily::Inet6;
            m.attributes.push(AddressAttribute::Address(IpAddr::V6(a.addr())));
            m.attributes.push(AddressAttribute::Flags(
                netlink_packet_route::address::AddressFlags::Nodad,
            ));
        }
    }
    m
}
