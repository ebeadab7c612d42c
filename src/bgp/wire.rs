//! BGP-4 messages on the wire (RFC 4271 §4), the subset a customer gateway speaks with AWS:
//! OPEN with capabilities (RFC 5492: multiprotocol RFC 4760, route refresh RFC 2918, four-octet
//! AS numbers RFC 6793), UPDATE with ORIGIN, AS_PATH / AS4_PATH, NEXT_HOP, MED, LOCAL_PREF and
//! MP_REACH / MP_UNREACH for IPv6, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH.
//!
//! Written here rather than taken from a crate: netgauze-bgp-pkt covers all of BGP (BMP, EVPN,
//! flowspec…) through nom and some thirty crates, bgpkit-parser is built to read MRT archives;
//! cgwd needs a dozen fields, a parser that never panics and is fuzzed (`fuzz/fuzz_targets/
//! bgp_message.rs`), and errors that map straight to the NOTIFICATION codes of RFC 4271 §6 and the
//! treat-as-withdraw rule of RFC 7606. Parsing takes the peer's bytes and allocates only the
//! owned [`Message`] it returns, bounded by the 4,096-octet message.
//!
//! Unknown optional attributes and capabilities are skipped (RFC 4271 §5, RFC 5492 §3), unknown
//! well-known attributes are an error, as the RFC says.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Header: 16-octet marker, length, type.
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1 (RFC 8654's extended messages are not offered).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 6793: the 2-octet AS number standing in for a 4-octet one.
pub const AS_TRANS: u16 = 23456;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_FOUR_OCTET_AS: u8 = 65;

const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_MED: u8 = 4;
const ATTR_LOCAL_PREF: u8 = 5;
const ATTR_ATOMIC_AGGREGATE: u8 = 6;
const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;
const ATTR_AS4_PATH: u8 = 17;

const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED: u8 = 0x10;

const AS_SET: u8 = 1;
const AS_SEQUENCE: u8 = 2;

/// Why the peer's bytes are refused: the NOTIFICATION to send (RFC 4271 §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BGP error {code}/{subcode}: {what}")]
pub struct WireError {
    pub code: u8,
    pub subcode: u8,
    /// The data field of the NOTIFICATION (what §6 asks to echo, bounded by the message).
    pub data: Vec<u8>,
    pub what: &'static str,
}

impl WireError {
    fn new(code: u8, subcode: u8, what: &'static str) -> Self {
        WireError {
            code,
            subcode,
            data: Vec::new(),
            what,
        }
    }

    fn with_data(mut self, data: &[u8]) -> Self {
        self.data = data.to_vec();
        self
    }
}

/// NOTIFICATION error codes (RFC 4271 §4.5) and the subcodes cgwd sends.
pub mod code {
    pub const HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;

    pub const HEADER_NOT_SYNCHRONIZED: u8 = 1;
    pub const HEADER_BAD_LENGTH: u8 = 2;
    pub const HEADER_BAD_TYPE: u8 = 3;

    pub const OPEN_UNSUPPORTED_VERSION: u8 = 1;
    pub const OPEN_BAD_PEER_AS: u8 = 2;
    pub const OPEN_BAD_IDENTIFIER: u8 = 3;
    pub const OPEN_UNSUPPORTED_PARAMETER: u8 = 4;
    pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;

    pub const UPDATE_MALFORMED_ATTRIBUTES: u8 = 1;
    pub const UPDATE_UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const UPDATE_MISSING_WELL_KNOWN: u8 = 3;
    pub const UPDATE_ATTRIBUTE_FLAGS: u8 = 4;
    pub const UPDATE_ATTRIBUTE_LENGTH: u8 = 5;
    pub const UPDATE_INVALID_ORIGIN: u8 = 6;
    pub const UPDATE_INVALID_NEXT_HOP: u8 = 8;
    pub const UPDATE_INVALID_NETWORK: u8 = 10;
    pub const UPDATE_MALFORMED_AS_PATH: u8 = 11;

    /// Cease subcodes (RFC 4486).
    pub const CEASE_MAX_PREFIXES: u8 = 1;
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    pub const CEASE_ADMIN_RESET: u8 = 4;
    pub const CEASE_COLLISION: u8 = 7;
}

/// A capability of OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol {
        afi: u16,
        safi: u8,
    },
    RouteRefresh,
    FourOctetAs(u32),
    /// Anything else, kept so the session can tell what the peer offered.
    Other {
        code: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet field: the AS, or [`AS_TRANS`] when it does not fit.
    pub my_as: u16,
    pub hold_time: u16,
    pub identifier: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The peer's AS: the four-octet capability's when present (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub fn has(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }

    /// An OPEN for `asn` with the capabilities cgwd offers: IPv4 (and IPv6) unicast, route
    /// refresh, four-octet AS.
    pub fn ours(asn: u32, hold_time: u16, identifier: Ipv4Addr, ipv6: bool) -> Open {
        let mut capabilities = vec![Capability::Multiprotocol {
            afi: AFI_IPV4,
            safi: SAFI_UNICAST,
        }];
        if ipv6 {
            capabilities.push(Capability::Multiprotocol {
                afi: AFI_IPV6,
                safi: SAFI_UNICAST,
            });
        }
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(asn));
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            identifier,
            capabilities,
        }
    }
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

/// The path attributes cgwd reads and sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub origin: Option<Origin>,
    pub as_path: Vec<Segment>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// MP_REACH_NLRI for IPv6 unicast: its next hop (global, and link-local if sent).
    pub mp_next_hop: Option<Ipv6Addr>,
}

impl Attributes {
    /// AS path length for route selection (RFC 4271 §9.1.2.2 a: an AS_SET counts as one).
    pub fn as_path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                Segment::Sequence(v) => v.len(),
                Segment::Set(v) => usize::from(!v.is_empty()),
            })
            .sum()
    }

    /// The neighbouring AS (first of the path), for MED comparison.
    pub fn first_as(&self) -> Option<u32> {
        self.as_path.iter().find_map(|s| match s {
            Segment::Sequence(v) => v.first().copied(),
            Segment::Set(_) => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Prefixes no longer reachable (IPv4 in the body, IPv6 in MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    pub attributes: Attributes,
    /// Prefixes announced with `attributes` (IPv4 in the body, IPv6 in MP_REACH_NLRI).
    pub announced: Vec<IpNet>,
    /// An attribute was malformed in a way RFC 7606 says to survive: the announced prefixes are
    /// to be treated as withdrawn, and the session kept.
    pub treat_as_withdraw: bool,
}

impl Update {
    /// End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, or an MP_UNREACH with no
    /// prefixes for another family.
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty() && self.announced.is_empty() && self.attributes == Attributes::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh { afi: u16, safi: u8 },
}

/// One framed message of a stream: its type, its body, and the octets it took with its header.
pub type Frame<'a> = (u8, &'a [u8], usize);

/// The first complete message in a TCP byte stream: `Ok(None)` until all of it arrived. A bad
/// marker, length or type is an error: the stream cannot be resynchronised (RFC 4271 §6.1).
pub fn frame(stream: &[u8]) -> Result<Option<Frame<'_>>, WireError> {
    let Some(header) = stream.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16].iter().any(|&b| b != 0xff) {
        return Err(WireError::new(
            code::HEADER,
            code::HEADER_NOT_SYNCHRONIZED,
            "marker is not all ones",
        ));
    }
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let kind = header[18];
    let min = match kind {
        OPEN => 29,
        UPDATE => 23,
        NOTIFICATION => 21,
        KEEPALIVE => 19,
        ROUTE_REFRESH => 23,
        _ => {
            return Err(
                WireError::new(code::HEADER, code::HEADER_BAD_TYPE, "unknown message type")
                    .with_data(&[kind]),
            );
        }
    };
    if len < min || len > MAX_MESSAGE_LEN || (kind == KEEPALIVE && len != HEADER_LEN) {
        return Err(
            WireError::new(code::HEADER, code::HEADER_BAD_LENGTH, "bad message length")
                .with_data(&header[16..18]),
        );
    }
    Ok(stream.get(HEADER_LEN..len).map(|body| (kind, body, len)))
}

/// Decode one message body (`kind` from [`frame`]). `four_octet`: both sides sent the four-octet
/// AS capability, so AS_PATH carries 4-octet numbers (RFC 6793 §4.1).
pub fn decode(kind: u8, body: &[u8], four_octet: bool) -> Result<Message, WireError> {
    let mut r = Reader(body);
    match kind {
        OPEN => decode_open(&mut r).map(Message::Open),
        UPDATE => decode_update(body, four_octet).map(Message::Update),
        NOTIFICATION => Ok(Message::Notification(Notification {
            code: r.u8().unwrap_or(0),
            subcode: r.u8().unwrap_or(0),
            data: r.rest().to_vec(),
        })),
        KEEPALIVE => Ok(Message::Keepalive),
        ROUTE_REFRESH => {
            let afi = r.u16().ok_or_else(refresh_len)?;
            let _reserved = r.u8().ok_or_else(refresh_len)?;
            let safi = r.u8().ok_or_else(refresh_len)?;
            if !r.rest().is_empty() {
                return Err(refresh_len());
            }
            Ok(Message::RouteRefresh { afi, safi })
        }
        _ => Err(
            WireError::new(code::HEADER, code::HEADER_BAD_TYPE, "unknown message type").with_data(&[kind]),
        ),
    }
}

fn refresh_len() -> WireError {
    WireError::new(code::ROUTE_REFRESH, 1, "bad ROUTE-REFRESH length")
}

/// A cursor over the peer's bytes; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn decode_open(r: &mut Reader<'_>) -> Result<Open, WireError> {
    let short = || WireError::new(code::HEADER, code::HEADER_BAD_LENGTH, "OPEN too short");
    let version = r.u8().ok_or_else(short)?;
    if version != 4 {
        // §6.2: the data is the largest version we support.
        return Err(
            WireError::new(code::OPEN, code::OPEN_UNSUPPORTED_VERSION, "BGP version is not 4")
                .with_data(&[0, 4]),
        );
    }
    let my_as = r.u16().ok_or_else(short)?;
    let hold_time = r.u16().ok_or_else(short)?;
    if hold_time == 1 || hold_time == 2 {
        return Err(WireError::new(
            code::OPEN,
            code::OPEN_UNACCEPTABLE_HOLD_TIME,
            "hold time of 1 or 2 seconds",
        ));
    }
    let identifier = Ipv4Addr::from(r.u32().ok_or_else(short)?);
    if identifier.is_unspecified() {
        return Err(WireError::new(
            code::OPEN,
            code::OPEN_BAD_IDENTIFIER,
            "BGP identifier 0",
        ));
    }
    let params_len = usize::from(r.u8().ok_or_else(short)?);
    let params = r.take(params_len).ok_or_else(short)?;
    if !r.rest().is_empty() {
        return Err(WireError::new(
            code::HEADER,
            code::HEADER_BAD_LENGTH,
            "bytes after the OPEN parameters",
        ));
    }
    let mut capabilities = Vec::new();
    let mut p = Reader(params);
    while !p.0.is_empty() {
        let malformed = || WireError::new(code::OPEN, 0, "malformed optional parameter");
        let kind = p.u8().ok_or_else(malformed)?;
        let len = usize::from(p.u8().ok_or_else(malformed)?);
        let value = p.take(len).ok_or_else(malformed)?;
        if kind != 2 {
            return Err(WireError::new(
                code::OPEN,
                code::OPEN_UNSUPPORTED_PARAMETER,
                "optional parameter other than capabilities",
            )
            .with_data(&[kind]));
        }
        let mut c = Reader(value);
        while !c.0.is_empty() {
            let cap = c.u8().ok_or_else(malformed)?;
            let len = usize::from(c.u8().ok_or_else(malformed)?);
            let v = c.take(len).ok_or_else(malformed)?;
            capabilities.push(match (cap, v) {
                (CAP_MULTIPROTOCOL, [a, b, _, safi]) => Capability::Multiprotocol {
                    afi: u16::from_be_bytes([*a, *b]),
                    safi: *safi,
                },
                (CAP_ROUTE_REFRESH, []) => Capability::RouteRefresh,
                (CAP_FOUR_OCTET_AS, [a, b, c, d]) => {
                    Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
                }
                (CAP_MULTIPROTOCOL | CAP_ROUTE_REFRESH | CAP_FOUR_OCTET_AS, _) => return Err(malformed()),
                (code, _) => Capability::Other { code },
            });
        }
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        identifier,
        capabilities,
    })
}

/// RFC 4271 §4.3 prefix encoding: a length in bits, then as few octets as hold it.
fn decode_prefixes(mut data: &[u8], v6: bool, out: &mut Vec<IpNet>) -> Result<(), WireError> {
    let bad = || WireError::new(code::UPDATE, code::UPDATE_INVALID_NETWORK, "invalid prefix");
    let max = if v6 { 128 } else { 32 };
    while let Some((&bits, rest)) = data.split_first() {
        if bits > max {
            return Err(bad());
        }
        let n = usize::from(bits).div_ceil(8);
        let bytes = rest.get(..n).ok_or_else(bad)?;
        data = &rest[n..];
        let net = if v6 {
            let mut a = [0u8; 16];
            a[..n].copy_from_slice(bytes);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), bits).map_err(|_| bad())?.trunc())
        } else {
            let mut a = [0u8; 4];
            a[..n].copy_from_slice(bytes);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), bits).map_err(|_| bad())?.trunc())
        };
        out.push(net);
    }
    Ok(())
}

fn decode_update(body: &[u8], four_octet: bool) -> Result<Update, WireError> {
    let malformed = || {
        WireError::new(
            code::UPDATE,
            code::UPDATE_MALFORMED_ATTRIBUTES,
            "malformed UPDATE",
        )
    };
    let mut r = Reader(body);
    let wlen = usize::from(r.u16().ok_or_else(malformed)?);
    let withdrawn = r.take(wlen).ok_or_else(malformed)?;
    let alen = usize::from(r.u16().ok_or_else(malformed)?);
    let attrs = r.take(alen).ok_or_else(malformed)?;
    let nlri = r.rest();
    let mut u = Update::default();
    decode_prefixes(withdrawn, false, &mut u.withdrawn)?;
    decode_prefixes(nlri, false, &mut u.announced)?;
    let mut seen = [false; 256];
    let mut as4_path = None;
    let mut a = Reader(attrs);
    while !a.0.is_empty() {
        let flags = a.u8().ok_or_else(malformed)?;
        let kind = a.u8().ok_or_else(malformed)?;
        let len = if flags & FLAG_EXTENDED != 0 {
            usize::from(a.u16().ok_or_else(malformed)?)
        } else {
            usize::from(a.u8().ok_or_else(malformed)?)
        };
        let value = a.take(len).ok_or_else(malformed)?;
        if std::mem::replace(&mut seen[usize::from(kind)], true) {
            // RFC 7606 §3 g: a repeated attribute is discarded (MP_* ones reset the session).
            if matches!(kind, ATTR_MP_REACH | ATTR_MP_UNREACH) {
                return Err(malformed());
            }
            continue;
        }
        let well_known = flags & FLAG_OPTIONAL == 0;
        let attr_len = || {
            WireError::new(code::UPDATE, code::UPDATE_ATTRIBUTE_LENGTH, "attribute length")
                .with_data(&[flags, kind])
        };
        match kind {
            ATTR_ORIGIN => match value {
                [0] => u.attributes.origin = Some(Origin::Igp),
                [1] => u.attributes.origin = Some(Origin::Egp),
                [2] => u.attributes.origin = Some(Origin::Incomplete),
                _ => u.treat_as_withdraw = true,
            },
            ATTR_AS_PATH => match decode_as_path(value, four_octet) {
                Some(p) => u.attributes.as_path = p,
                None => u.treat_as_withdraw = true,
            },
            ATTR_AS4_PATH if !four_octet => as4_path = decode_as_path(value, true),
            ATTR_NEXT_HOP => match value {
                [a, b, c, d] => u.attributes.next_hop = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                _ => u.treat_as_withdraw = true,
            },
            ATTR_MED => match value {
                [a, b, c, d] => u.attributes.med = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => u.treat_as_withdraw = true,
            },
            // Not meaningful on an eBGP session (§5.1.5): ignored, but checked.
            ATTR_LOCAL_PREF if value.len() != 4 => u.treat_as_withdraw = true,
            ATTR_LOCAL_PREF => {}
            ATTR_ATOMIC_AGGREGATE => {}
            ATTR_MP_REACH => {
                let mut m = Reader(value);
                let afi = m.u16().ok_or_else(attr_len)?;
                let safi = m.u8().ok_or_else(attr_len)?;
                let nh_len = usize::from(m.u8().ok_or_else(attr_len)?);
                let nh = m.take(nh_len).ok_or_else(attr_len)?;
                let _reserved = m.u8().ok_or_else(attr_len)?;
                if afi == AFI_IPV6 && safi == SAFI_UNICAST {
                    if let Some(g) = nh.get(..16) {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(g);
                        u.attributes.mp_next_hop = Some(Ipv6Addr::from(a));
                    }
                    decode_prefixes(m.rest(), true, &mut u.announced)?;
                }
            }
            ATTR_MP_UNREACH => {
                let mut m = Reader(value);
                let afi = m.u16().ok_or_else(attr_len)?;
                let safi = m.u8().ok_or_else(attr_len)?;
                if afi == AFI_IPV6 && safi == SAFI_UNICAST {
                    decode_prefixes(m.rest(), true, &mut u.withdrawn)?;
                }
            }
            _ if well_known && kind <= 7 => {}
            _ if well_known => {
                return Err(WireError::new(
                    code::UPDATE,
                    code::UPDATE_UNRECOGNIZED_WELL_KNOWN,
                    "unrecognized well-known attribute",
                )
                .with_data(&[flags, kind]));
            }
            // Optional attributes cgwd does not use (communities, aggregator, ...).
            _ => {}
        }
    }
    // RFC 6793 §4.2.3: merge AS4_PATH into a 2-octet AS_PATH holding AS_TRANS.
    if let Some(p4) = as4_path {
        let len2 = u.attributes.as_path_len();
        let len4 = Attributes {
            as_path: p4.clone(),
            ..Attributes::default()
        }
        .as_path_len();
        if len4 <= len2 {
            let mut keep = len2 - len4;
            let mut merged = Vec::new();
            for seg in &u.attributes.as_path {
                if keep == 0 {
                    break;
                }
                match seg {
                    Segment::Sequence(v) => {
                        let n = keep.min(v.len());
                        merged.push(Segment::Sequence(v[..n].to_vec()));
                        keep -= n;
                    }
                    Segment::Set(v) => {
                        merged.push(Segment::Set(v.clone()));
                        keep -= 1;
                    }
                }
            }
            merged.extend(p4);
            u.attributes.as_path = merged;
        }
    }
    // Mandatory attributes for announced prefixes (§6.3); RFC 7606 §3 d: treat-as-withdraw.
    let v4_announced = u.announced.iter().any(|n| matches!(n, IpNet::V4(_)));
    if !u.announced.is_empty()
        && (u.attributes.origin.is_none()
            || !seen[usize::from(ATTR_AS_PATH)]
            || (v4_announced && u.attributes.next_hop.is_none()))
    {
        u.treat_as_withdraw = true;
    }
    Ok(u)
}

fn decode_as_path(mut v: &[u8], four_octet: bool) -> Option<Vec<Segment>> {
    let width = if four_octet { 4 } else { 2 };
    let mut out = Vec::new();
    while let Some((&kind, rest)) = v.split_first() {
        let (&count, rest) = rest.split_first()?;
        let n = usize::from(count) * width;
        let asns = rest.get(..n)?;
        v = &rest[n..];
        if count == 0 {
            return None;
        }
        let list: Vec<u32> = asns
            .chunks_exact(width)
            .map(|c| match c {
                [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => 0,
            })
            .collect();
        out.push(match kind {
            AS_SEQUENCE => Segment::Sequence(list),
            AS_SET => Segment::Set(list),
            _ => return None,
        });
    }
    Some(out)
}

/// Encoding: one message, header included, appended to `out`.
impl Message {
    pub fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&[0, 0]);
        match self {
            Message::Open(o) => {
                out.push(OPEN);
                out.push(o.version);
                out.extend_from_slice(&o.my_as.to_be_bytes());
                out.extend_from_slice(&o.hold_time.to_be_bytes());
                out.extend_from_slice(&o.identifier.octets());
                let mut caps = Vec::new();
                for c in &o.capabilities {
                    match c {
                        Capability::Multiprotocol { afi, safi } => {
                            caps.extend_from_slice(&[CAP_MULTIPROTOCOL, 4]);
                            caps.extend_from_slice(&afi.to_be_bytes());
                            caps.extend_from_slice(&[0, *safi]);
                        }
                        Capability::RouteRefresh => caps.extend_from_slice(&[CAP_ROUTE_REFRESH, 0]),
                        Capability::FourOctetAs(a) => {
                            caps.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
                            caps.extend_from_slice(&a.to_be_bytes());
                        }
                        Capability::Other { code } => caps.extend_from_slice(&[*code, 0]),
                    }
                }
                // One capabilities parameter (≤ 255 octets: cgwd's few capabilities always fit).
                out.push((caps.len() + 2).min(255) as u8);
                out.extend_from_slice(&[2, caps.len().min(253) as u8]);
                out.extend_from_slice(&caps[..caps.len().min(253)]);
            }
            Message::Update(u) => {
                out.push(UPDATE);
                let mut w = Vec::new();
                let mut w6 = Vec::new();
                for n in &u.withdrawn {
                    match n {
                        IpNet::V4(_) => encode_prefix(*n, &mut w),
                        IpNet::V6(_) => encode_prefix(*n, &mut w6),
                    }
                }
                out.extend_from_slice(&(w.len() as u16).to_be_bytes());
                out.extend_from_slice(&w);
                let mut attrs = Vec::new();
                let (mut n4, mut n6) = (Vec::new(), Vec::new());
                for n in &u.announced {
                    match n {
                        IpNet::V4(_) => encode_prefix(*n, &mut n4),
                        IpNet::V6(_) => encode_prefix(*n, &mut n6),
                    }
                }
                let a = &u.attributes;
                if !u.announced.is_empty() {
                    attr(
                        &mut attrs,
                        FLAG_TRANSITIVE,
                        ATTR_ORIGIN,
                        &[a.origin.unwrap_or(Origin::Igp) as u8],
                    );
                    let mut path = Vec::new();
                    for seg in &a.as_path {
                        let (kind, list) = match seg {
                            Segment::Sequence(v) => (AS_SEQUENCE, v),
                            Segment::Set(v) => (AS_SET, v),
                        };
                        for chunk in list.chunks(255) {
                            path.extend_from_slice(&[kind, chunk.len() as u8]);
                            for asn in chunk {
                                if four_octet {
                                    path.extend_from_slice(&asn.to_be_bytes());
                                } else {
                                    let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                                    path.extend_from_slice(&two.to_be_bytes());
                                }
                            }
                        }
                    }
                    attr(&mut attrs, FLAG_TRANSITIVE, ATTR_AS_PATH, &path);
                    if let Some(nh) = a.next_hop.filter(|_| !n4.is_empty()) {
                        attr(&mut attrs, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &nh.octets());
                    }
                    if let Some(med) = a.med {
                        attr(&mut attrs, FLAG_OPTIONAL, ATTR_MED, &med.to_be_bytes());
                    }
                }
                if !n6.is_empty() {
                    let mut v = Vec::new();
                    v.extend_from_slice(&AFI_IPV6.to_be_bytes());
                    v.push(SAFI_UNICAST);
                    v.push(16);
                    v.extend_from_slice(&a.mp_next_hop.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
                    v.push(0);
                    v.extend_from_slice(&n6);
                    attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_REACH, &v);
                }
                if !w6.is_empty() {
                    let mut v = Vec::new();
                    v.extend_from_slice(&AFI_IPV6.to_be_bytes());
                    v.push(SAFI_UNICAST);
                    v.extend_from_slice(&w6);
                    attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_UNREACH, &v);
                }
                out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
                out.extend_from_slice(&attrs);
                out.extend_from_slice(&n4);
            }
            Message::Notification(n) => {
                out.push(NOTIFICATION);
                out.extend_from_slice(&[n.code, n.subcode]);
                let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
                out.extend_from_slice(&n.data[..n.data.len().min(room)]);
            }
            Message::Keepalive => out.push(KEEPALIVE),
            Message::RouteRefresh { afi, safi } => {
                out.push(ROUTE_REFRESH);
                out.extend_from_slice(&afi.to_be_bytes());
                out.extend_from_slice(&[0, *safi]);
            }
        }
        let len = (out.len() - start) as u16;
        out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
    }

    pub fn to_bytes(&self, four_octet: bool) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(four_octet, &mut v);
        v
    }
}

fn attr(out: &mut Vec<u8>, flags: u8, kind: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXTENDED, kind]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, kind, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

fn encode_prefix(n: IpNet, out: &mut Vec<u8>) {
    let bits = n.prefix_len();
    let n_bytes = usize::from(bits).div_ceil(8);
    out.push(bits);
    match n.trunc() {
        IpNet::V4(v) => out.extend_from_slice(&v.network().octets()[..n_bytes]),
        IpNet::V6(v) => out.extend_from_slice(&v.network().octets()[..n_bytes]),
    }
}

/// Prefixes per UPDATE so that one message stays under [`MAX_MESSAGE_LEN`] (an IPv4 prefix takes
/// at most 5 octets, an IPv6 one 17; attributes well under 1 KiB).
pub fn prefixes_per_update(v6: bool) -> usize {
    if v6 { 170 } else { 600 }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
