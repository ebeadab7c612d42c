//! Inner-packet fix-ups the gateway owes the LAN: TCP MSS clamping (IPv4 and IPv6), DF handling
//! (clear + fragment before encryption, or ICMP "fragmentation needed"), ICMPv6 "packet too big" (routers
//! never fragment IPv6), and the few header reads tunnel selection needs. Every function takes hostile
//! bytes and never panics: anything malformed is left alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const IPV4_MIN_HEADER: usize = 20;
/// The fixed IPv6 header (RFC 8200 §3).
pub const IPV6_HEADER: usize = 40;
/// IPv6's minimum link MTU (RFC 8200 §5): an ICMPv6 error never exceeds it.
pub const IPV6_MIN_MTU: usize = 1280;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
/// RFC 8200 §4 extension headers we step over to find the upper layer.
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AUTH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
/// A longer chain is treated as unparsable (no legitimate packet needs more).
const MAX_EXTENSION_HEADERS: usize = 8;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;
const TCP_SYN: u8 = 0x02;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Header length of a well-formed IPv4 packet (version 4, IHL ≥ 5, total length within `pkt`).
pub fn ipv4_header_len(pkt: &[u8]) -> Option<usize> {
    let first = *pkt.first()?;
    if first >> 4 != 4 || pkt.len() < IPV4_MIN_HEADER {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(be16(pkt, 2));
    (ihl >= IPV4_MIN_HEADER && ihl <= total && total <= pkt.len()).then_some(ihl)
}

/// Destination address of an IPv4 packet.
pub fn ipv4_destination(pkt: &[u8]) -> Option<Ipv4Addr> {
    let d: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
    (pkt.first()? >> 4 == 4).then(|| Ipv4Addr::from(d))
}

/// Source address of an IPv4 packet.
pub fn ipv4_source(pkt: &[u8]) -> Option<Ipv4Addr> {
    let s: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
    (pkt.first()? >> 4 == 4).then(|| Ipv4Addr::from(s))
}

/// Length (fixed header + payload) of a well-formed IPv6 packet: version 6, payload within `pkt`.
pub fn ipv6_len(pkt: &[u8]) -> Option<usize> {
    if pkt.len() < IPV6_HEADER || pkt[0] >> 4 != 6 {
        return None;
    }
    let total = IPV6_HEADER + usize::from(be16(pkt, 4));
    (total <= pkt.len()).then_some(total)
}

fn ipv6_addr(pkt: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&pkt[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Source and destination of a well-formed IPv6 packet.
pub fn ipv6_addresses(pkt: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    ipv6_len(pkt)?;
    Some((ipv6_addr(pkt, 8), ipv6_addr(pkt, 24)))
}

/// Destination of an IPv4 or IPv6 packet; `None` for anything else.
pub fn destination(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => ipv4_destination(pkt).map(IpAddr::V4),
        6 => ipv6_addresses(pkt).map(|(_, d)| IpAddr::V6(d)),
        _ => None,
    }
}

/// Source of an IPv4 or IPv6 packet; `None` for anything else (the RX reverse-path check).
pub fn source(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => ipv4_source(pkt).map(IpAddr::V4),
        6 => ipv6_addresses(pkt).map(|(s, _)| IpAddr::V6(s)),
        _ => None,
    }
}

/// Whether an IPv6 destination may leave through a tunnel: not multicast (MLD, router
/// solicitations the kernel sends on the TUN) and not link-local (it never leaves its link).
pub fn ipv6_tunnelable(dst: Ipv6Addr) -> bool {
    !dst.is_multicast() && !dst.is_unicast_link_local() && !dst.is_unspecified() && !dst.is_loopback()
}

/// Where the upper layer of an IPv6 packet starts, after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Upper {
    /// The upper-layer protocol (TCP 6, UDP 17, ICMPv6 58...), or 59 "no next header".
    pub protocol: u8,
    /// Offset of the upper-layer header in the packet.
    pub offset: usize,
    /// The packet is a fragment (RFC 8200 §4.5): the upper header is whole only in the first one.
    pub fragment: bool,
    /// Fragment offset in octets (0 for the first fragment and for whole packets).
    pub fragment_offset: usize,
}

/// Walks the extension headers of a well-formed IPv6 packet (bounded: at most
/// [`MAX_EXTENSION_HEADERS`], each within the payload).
pub fn ipv6_upper(pkt: &[u8]) -> Option<Ipv6Upper> {
    let total = ipv6_len(pkt)?;
    let mut next = pkt[6];
    let mut at = IPV6_HEADER;
    let (mut fragment, mut fragment_offset) = (false, 0);
    for _ in 0..=MAX_EXTENSION_HEADERS {
        let len = match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS => (usize::from(*pkt.get(at + 1)?) + 1) * 8,
            EXT_AUTH => (usize::from(*pkt.get(at + 1)?) + 2) * 4,
            EXT_FRAGMENT => {
                let word = be16(pkt.get(at..at + 4)?, 2);
                fragment = true;
                fragment_offset = usize::from(word & !0x7);
                8
            }
            protocol => {
                return Some(Ipv6Upper {
                    protocol,
                    offset: at,
                    fragment,
                    fragment_offset,
                });
            }
        };
        if at + len > total {
            return None;
        }
        next = pkt[at];
        at += len;
    }
    None
}

/// The upper-layer protocol of an IPv6 packet (what selectors' protocol field names).
pub fn ipv6_upper_protocol(pkt: &[u8]) -> Option<u8> {
    ipv6_upper(pkt).map(|u| u.protocol)
}

fn mix(mut h: u64) -> u32 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 29;
    (h ^ (h >> 32)) as u32
}

fn ports(pkt: &[u8], at: usize) -> u64 {
    pkt.get(at..at + 4)
        .map_or(0, |p| u64::from(be16(p, 0)) << 16 | u64::from(be16(p, 2)))
}

/// A hash of an IP packet's flow (addresses, protocol, and ports when the packet is not a
/// fragment), for spreading flows over both tunnels. Fragments hash without ports so all fragments of a
/// datagram take one tunnel. Not keyed: it only balances, it protects nothing.
pub fn flow_hash(pkt: &[u8]) -> u32 {
    if let Some(hl) = ipv4_header_len(pkt) {
        let addrs = pkt
            .get(12..20)
            .map_or(0, |a| u64::from_be_bytes(a.try_into().unwrap_or_default()));
        let proto = u64::from(pkt[9]);
        let fragment = be16(pkt, 6) & 0x3fff != 0;
        let ports = match (proto, fragment) {
            (6 | 17, false) => ports(pkt, hl),
            _ => 0,
        };
        return mix(addrs ^ (proto << 32) ^ ports.rotate_left(17));
    }
    let Some(upper) = ipv6_upper(pkt) else {
        return 0;
    };
    // Four 64-bit words of source and destination, rotated apart so that swapping halves changes
    // the hash.
    let word = |i: usize| u64::from_be_bytes(pkt[8 + 8 * i..16 + 8 * i].try_into().unwrap_or_default());
    let addrs = word(0) ^ word(1).rotate_left(13) ^ word(2).rotate_left(29) ^ word(3).rotate_left(41);
    let proto = u64::from(upper.protocol);
    let ports = match (upper.protocol, upper.fragment) {
        (PROTO_TCP | PROTO_UDP, false) => ports(pkt, upper.offset),
        _ => 0,
    };
    mix(addrs ^ (proto << 32) ^ ports.rotate_left(17))
}

/// Whether the Don't-Fragment bit is set.
pub fn ipv4_df(pkt: &[u8]) -> bool {
    ipv4_header_len(pkt).is_some() && be16(pkt, 6) & FLAG_DF != 0
}

/// One's-complement sum folded to 16 bits (RFC 1071).
fn ones_sum(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    !(ones_sum(data, 0) as u16)
}

/// Incremental checksum update when one 16-bit word changes from `old` to `new` (RFC 1624 eqn. 3).
fn checksum_adjust(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    !(ones_sum(&[], sum) as u16)
}

fn set_ipv4_checksum(hdr: &mut [u8]) {
    put16(hdr, 10, 0);
    let c = checksum(hdr);
    put16(hdr, 10, c);
}

/// The TCP segment of an IPv4 or IPv6 packet that is not a non-first fragment: its range and the
/// one's-complement sum of its pseudo-header (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6).
fn tcp_segment(pkt: &[u8]) -> Option<(usize, usize, u32)> {
    let (start, end, pseudo) = if let Some(ihl) = ipv4_header_len(pkt) {
        if pkt[9] != PROTO_TCP || be16(pkt, 6) & OFFSET_MASK != 0 {
            return None;
        }
        let total = usize::from(be16(pkt, 2));
        let len = (total - ihl) as u32;
        (ihl, total, ones_sum(&pkt[12..20], u32::from(PROTO_TCP) + len))
    } else {
        let upper = ipv6_upper(pkt)?;
        if upper.protocol != PROTO_TCP || upper.fragment {
            return None;
        }
        let total = ipv6_len(pkt)?;
        let len = (total - upper.offset) as u32;
        let sum = u32::from(PROTO_TCP) + (len >> 16) + (len & 0xffff);
        (upper.offset, total, ones_sum(&pkt[8..40], sum))
    };
    (end - start >= 20).then_some((start, end, pseudo))
}

/// Lowers the MSS option of a TCP SYN (IPv4 or IPv6) to `mss` (RFC 879 / RFC 6691: the tunnel eats
/// header room), fixing the TCP checksum. Returns whether the packet was changed. For IPv6 the caller
/// passes the MSS for IPv6 (20 octets less than IPv4's for the same MTU: see [`mss_for`]).
pub fn clamp_mss(pkt: &mut [u8], mss: u16) -> bool {
    let Some((start, end, pseudo)) = tcp_segment(pkt) else {
        return false;
    };
    let tcp = &mut pkt[start..end];
    if tcp[13] & TCP_SYN == 0 {
        return false;
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return false;
    }
    let mut at = 20;
    while at < doff {
        match tcp[at] {
            0 => break,
            1 => at += 1,
            kind => {
                let Some(&len) = tcp.get(at + 1) else { break };
                let len = usize::from(len);
                if len < 2 || at + len > doff {
                    break;
                }
                if kind == 2 && len == 4 {
                    let old = be16(tcp, at + 2);
                    if old <= mss {
                        return false;
                    }
                    put16(tcp, at + 2, mss);
                    // The checksum is over 16-bit words of the segment: with the option at an even
                    // offset the value is one word and the checksum is adjusted; otherwise it
                    // straddles two words and the checksum is recomputed.
                    if at % 2 == 0 {
                        let c = checksum_adjust(be16(tcp, 16), old, mss);
                        put16(tcp, 16, c);
                    } else {
                        put16(tcp, 16, 0);
                        let sum = ones_sum(tcp, pseudo);
                        put16(tcp, 16, !(sum as u16));
                    }
                    return true;
                }
                at += len;
            }
        }
    }
    false
}

/// The MSS to clamp a packet to, from the configured (IPv4) `tcp_mss`: an IPv6 header is 20 octets
/// longer than IPv4's minimal one, so the same tunnel MTU leaves 20 octets less segment.
pub fn mss_for(pkt: &[u8], ipv4_mss: u16) -> u16 {
    match pkt.first().map(|b| b >> 4) {
        Some(6) => ipv4_mss.saturating_sub((IPV6_HEADER - IPV4_MIN_HEADER) as u16),
        _ => ipv4_mss,
    }
}

/// Clears DF (for `clear_df_bit`), fixing the header checksum incrementally.
pub fn clear_df(pkt: &mut [u8]) {
    if ipv4_header_len(pkt).is_none() {
        return;
    }
    let old = be16(pkt, 6);
    if old & FLAG_DF == 0 {
        return;
    }
    let new = old & !FLAG_DF;
    put16(pkt, 6, new);
    let c = checksum_adjust(be16(pkt, 10), old, new);
    put16(pkt, 10, c);
}

/// Builds an ICMP "destination unreachable, fragmentation needed" (RFC 792, RFC 1191 §4) answering
/// `orig` into `out`, from `source`, announcing `mtu`. Returns its length, or `None` when `orig`
/// must not be answered (malformed, a non-first fragment, or itself an ICMP error).
pub fn icmp_frag_needed(orig: &[u8], mtu: u16, source: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
    let ihl = ipv4_header_len(orig)?;
    if be16(orig, 6) & OFFSET_MASK != 0 {
        return None;
    }
    if orig[9] == PROTO_ICMP && !matches!(orig.get(ihl), Some(0) | Some(8)) {
        return None;
    }
    let quoted = (ihl + 8).min(usize::from(be16(orig, 2)));
    let len = IPV4_MIN_HEADER + 8 + quoted;
    let out = out.get_mut(..len)?;
    out.fill(0);
    out[0] = 0x45;
    put16(out, 2, len as u16);
    out[8] = 64;
    out[9] = PROTO_ICMP;
    out[12..16].copy_from_slice(&source.octets());
    out[16..20].copy_from_slice(&orig[12..16]);
    set_ipv4_checksum(&mut out[..IPV4_MIN_HEADER]);
    let icmp = &mut out[IPV4_MIN_HEADER..];
    icmp[0] = 3;
    icmp[1] = 4;
    put16(icmp, 6, mtu);
    icmp[8..].copy_from_slice(&orig[..quoted]);
    let c = checksum(icmp);
    put16(icmp, 2, c);
    Some(len)
}

/// Builds an ICMPv6 "packet too big" (RFC 4443 §3.2) answering `orig` into `out`, from `source`,
/// announcing `mtu`: as much of `orig` as fits a 1280-octet packet is quoted. Returns its length, or
/// `None` when `orig` must not be answered (RFC 4443 §2.4 (e)): malformed, itself an ICMPv6 error,
/// or from an address that names no single node (unspecified, multicast). A PTB to a multicast
/// destination is allowed (§2.4 (e.2)), but those never enter a tunnel here anyway.
pub fn icmpv6_packet_too_big(orig: &[u8], mtu: u32, source: Ipv6Addr, out: &mut [u8]) -> Option<usize> {
    let (orig_src, _) = ipv6_addresses(orig)?;
    if orig_src.is_unspecified() || orig_src.is_multicast() {
        return None;
    }
    if let Some(u) = ipv6_upper(orig)
        && u.protocol == PROTO_ICMPV6
        && !u.fragment
        && orig.get(u.offset).is_none_or(|&t| t < 128)
    {
        return None;
    }
    let quoted = ipv6_len(orig)?.min(IPV6_MIN_MTU - IPV6_HEADER - 8);
    let len = IPV6_HEADER + 8 + quoted;
    let out = out.get_mut(..len)?;
    out.fill(0);
    out[0] = 0x60;
    put16(out, 4, (8 + quoted) as u16);
    out[6] = PROTO_ICMPV6;
    out[7] = 64;
    out[8..24].copy_from_slice(&source.octets());
    out[24..40].copy_from_slice(&orig[8..24]);
    let icmp_len = (8 + quoted) as u32;
    let (hdr, icmp) = out.split_at_mut(IPV6_HEADER);
    icmp[0] = 2;
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(&orig[..quoted]);
    let pseudo = ones_sum(
        &hdr[8..40],
        u32::from(PROTO_ICMPV6) + (icmp_len >> 16) + (icmp_len & 0xffff),
    );
    let c = !(ones_sum(icmp, pseudo) as u16);
    put16(icmp, 2, c);
    Some(len)
}

/// Splits the IPv4 packet `pkt` into fragments of at most `mtu` octets (RFC 791 §3.2), calling
/// `emit` with each fragment's header and data (the caller copies both into its buffer). Options are copied into every fragment (a simplification: RFC 791
/// copies only options with the copy flag; options are rare on LAN traffic). Returns the number of
/// fragments, or `None` when the packet is malformed or `mtu` leaves no room for 8 data octets.
pub fn fragment(pkt: &[u8], mtu: usize, mut emit: impl FnMut(&[u8], &[u8]) -> bool) -> Option<usize> {
    let ihl = ipv4_header_len(pkt)?;
    let total = usize::from(be16(pkt, 2));
    let chunk = (mtu.checked_sub(ihl)? / 8) * 8;
    if chunk == 0 {
        return None;
    }
    let flags = be16(pkt, 6);
    let base_offset = usize::from(flags & OFFSET_MASK) * 8;
    let orig_mf = flags & FLAG_MF != 0;
    let data = &pkt[ihl..total];
    let mut hdr = [0u8; 60];
    let hdr = &mut hdr[..ihl];
    hdr.copy_from_slice(&pkt[..ihl]);
    let mut count = 0;
    let mut at = 0;
    while at < data.len() {
        let n = chunk.min(data.len() - at);
        let last = at + n == data.len();
        put16(hdr, 2, (ihl + n) as u16);
        let offset = ((base_offset + at) / 8) as u16 & OFFSET_MASK;
        let mf = if last { orig_mf } else { true };
        put16(hdr, 6, offset | if mf { FLAG_MF } else { 0 });
        set_ipv4_checksum(hdr);
        if !emit(hdr, &data[at..at + n]) {
            return None;
        }
        count += 1;
        at += n;
    }
    Some(count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An IPv4/TCP SYN with an MSS option (and NOP padding before it when `nops` is odd).
    pub(crate) fn tcp_syn(mss: u16, nops: usize) -> Vec<u8> {
        let opt_len = (nops + 4).div_ceil(4) * 4;
        let tcp_len = 20 + opt_len;
        let total = 20 + tcp_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        put16(&mut p, 2, total as u16);
        put16(&mut p, 6, FLAG_DF);
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        set_ipv4_checksum(&mut p[..20]);
        let t = &mut p[20..];
        put16(t, 0, 40000);
        put16(t, 2, 5201);
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = TCP_SYN;
        put16(t, 14, 64240);
        let mut at = 20;
        for _ in 0..nops {
            t[at] = 1;
            at += 1;
        }
        t[at] = 2;
        t[at + 1] = 4;
        put16(t, at + 2, mss);
        fix_tcp_checksum(&mut p);
        p
    }

    /// Recomputes the TCP checksum of an IPv4 or IPv6 packet.
    pub(crate) fn fix_tcp_checksum(p: &mut [u8]) {
        let (start, end, pseudo) = tcp_segment(p).unwrap();
        put16(p, start + 16, 0);
        let sum = ones_sum(&p[start..end], pseudo);
        put16(p, start + 16, !(sum as u16));
    }

    fn tcp_checksum_ok(p: &[u8]) -> bool {
        let (start, end, pseudo) = tcp_segment(p).unwrap();
        ones_sum(&p[start..end], pseudo) == 0xffff
    }

    /// The same SYN over IPv6 (fd00:1::2 -> fd00:2::2), optionally behind a hop-by-hop header.
    pub(crate) fn tcp_syn6(mss: u16, nops: usize, hop_by_hop: bool) -> Vec<u8> {
        let v4 = tcp_syn(mss, nops);
        let tcp = &v4[20..];
        let ext = if hop_by_hop { 8 } else { 0 };
        let mut p = vec![0u8; IPV6_HEADER + ext + tcp.len()];
        p[0] = 0x60;
        put16(&mut p, 4, (ext + tcp.len()) as u16);
        p[7] = 64;
        p[8..24].copy_from_slice(&"fd00:1::2".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:2::2".parse::<Ipv6Addr>().unwrap().octets());
        if hop_by_hop {
            p[6] = EXT_HOP_BY_HOP;
            p[40] = PROTO_TCP; // next header; length 0 = 8 octets of PadN follow
            p[42] = 1;
            p[43] = 4;
        } else {
            p[6] = PROTO_TCP;
        }
        p[IPV6_HEADER + ext..].copy_from_slice(tcp);
        fix_tcp_checksum(&mut p);
        p
    }

    /// An IPv6 packet of `len` octets: UDP (17) or ICMPv6 (58) with `first` as its first octet.
    fn ipv6_packet(len: usize, protocol: u8, first: u8) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        put16(&mut p, 4, (len - IPV6_HEADER) as u16);
        p[6] = protocol;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8:2::2".parse::<Ipv6Addr>().unwrap().octets());
        p[40] = first;
        p
    }

    #[test]
    fn ipv6_mss_is_clamped_with_a_valid_checksum_at_any_alignment() {
        for hop_by_hop in [false, true] {
            for nops in 0..4 {
                let mut p = tcp_syn6(1440, nops, hop_by_hop);
                assert!(tcp_checksum_ok(&p));
                let mss = mss_for(&p, 1379);
                assert_eq!(mss, 1359);
                assert!(clamp_mss(&mut p, mss), "nops={nops} hbh={hop_by_hop}");
                let tcp = IPV6_HEADER + if hop_by_hop { 8 } else { 0 };
                assert_eq!(be16(&p, tcp + 20 + nops + 2), 1359);
                assert!(tcp_checksum_ok(&p), "nops={nops} hbh={hop_by_hop}");
                assert!(!clamp_mss(&mut p, 1400));
            }
        }
        // IPv4 keeps the configured value.
        assert_eq!(mss_for(&tcp_syn(1460, 0), 1379), 1379);
    }

    #[test]
    fn source_and_destination_of_both_versions() {
        let p = tcp_syn(1460, 0);
        assert_eq!(source(&p), Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))));
        assert_eq!(destination(&p), Some(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 2))));
        let p6 = ipv6_packet(48, 17, 0);
        assert_eq!(source(&p6), Some("2001:db8:1::2".parse().unwrap()));
        assert_eq!(destination(&p6), Some("2001:db8:2::2".parse().unwrap()));
        // Too short for the address, or neither version: no source.
        assert_eq!(source(&p[..15]), None);
        assert_eq!(source(&p6[..39]), None);
        assert_eq!(source(&[0x25; 40]), None);
        assert_eq!(source(&[]), None);
    }

    #[test]
    fn ipv6_fragments_and_truncated_chains_are_left_alone() {
        let mut p = tcp_syn6(1440, 0, true);
        // The hop-by-hop header claims more than the packet holds.
        p[41] = 200;
        assert_eq!(ipv6_upper(&p), None);
        assert!(!clamp_mss(&mut p, 1000));
        // A fragment header in front of TCP: no MSS rewriting, no ports in the flow hash.
        let mut f = tcp_syn6(1440, 0, true);
        f[6] = EXT_FRAGMENT;
        f[40] = PROTO_TCP;
        f[41] = 0;
        put16(&mut f, 42, 0x0001); // offset 0, more fragments
        let u = ipv6_upper(&f).unwrap();
        assert!(u.fragment && u.fragment_offset == 0 && u.protocol == PROTO_TCP && u.offset == 48);
        assert!(!clamp_mss(&mut f.clone(), 1000));
        let mut g = f.clone();
        put16(&mut g, 48, 1); // another source port
        assert_eq!(flow_hash(&f), flow_hash(&g));
        // A chain longer than any real packet needs.
        let mut long = ipv6_packet(IPV6_HEADER + 8 * 10, EXT_DEST_OPTS, 0);
        for i in 0..10 {
            long[IPV6_HEADER + 8 * i] = EXT_DEST_OPTS;
        }
        assert_eq!(ipv6_upper(&long), None);
    }

    #[test]
    fn ipv6_flow_hash_uses_addresses_and_ports() {
        let a = ipv6_packet(100, PROTO_UDP, 0);
        assert_eq!(flow_hash(&a), flow_hash(&a.clone()));
        let mut spread = std::collections::HashSet::new();
        for port in 1000u16..1064 {
            let mut p = a.clone();
            put16(&mut p, 40, port);
            spread.insert(flow_hash(&p) & 1);
        }
        assert_eq!(spread.len(), 2, "ports spread flows over both tunnels");
        let mut swapped = a.clone();
        swapped.copy_within(8..24, 24);
        swapped[8..24].copy_from_slice(&a[24..40]);
        assert_ne!(flow_hash(&a), flow_hash(&swapped));
        assert_eq!(
            destination(&a),
            Some(IpAddr::V6("2001:db8:2::2".parse().unwrap()))
        );
        assert_eq!(
            destination(&tcp_syn(1460, 0)),
            Some(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 2)))
        );
        assert_eq!(destination(&[0x50; 60]), None);
    }

    #[test]
    fn packet_too_big_quotes_up_to_1280_octets_with_a_valid_checksum() {
        let src: Ipv6Addr = "2001:db8:2::2".parse().unwrap();
        let orig = ipv6_packet(1500, PROTO_UDP, 0);
        let mut out = [0u8; IPV6_MIN_MTU];
        let n = icmpv6_packet_too_big(&orig, 1400, src, &mut out).unwrap();
        assert_eq!(n, IPV6_MIN_MTU);
        let pkt = &out[..n];
        assert_eq!(ipv6_len(pkt), Some(n));
        assert_eq!(ipv6_addresses(pkt), Some((src, "2001:db8:1::2".parse().unwrap())));
        assert_eq!((pkt[6], pkt[40], pkt[41]), (PROTO_ICMPV6, 2, 0));
        assert_eq!(u32::from_be_bytes(pkt[44..48].try_into().unwrap()), 1400);
        assert_eq!(&pkt[48..], &orig[..n - 48]);
        let len = (n - IPV6_HEADER) as u32;
        let pseudo = ones_sum(&pkt[8..40], u32::from(PROTO_ICMPV6) + len);
        assert_eq!(ones_sum(&pkt[40..], pseudo), 0xffff);
        // A short packet is quoted whole.
        let small = ipv6_packet(200, PROTO_ICMPV6, 128);
        assert_eq!(icmpv6_packet_too_big(&small, 150, src, &mut out), Some(248));
        // Never about an ICMPv6 error, nor to an unspecified or multicast source.
        let error = ipv6_packet(200, PROTO_ICMPV6, 1);
        assert_eq!(icmpv6_packet_too_big(&error, 150, src, &mut out), None);
        let mut unspecified = small.clone();
        unspecified[8..24].fill(0);
        assert_eq!(icmpv6_packet_too_big(&unspecified, 150, src, &mut out), None);
        let mut multicast = small.clone();
        multicast[8] = 0xff;
        assert_eq!(icmpv6_packet_too_big(&multicast, 150, src, &mut out), None);
        // Too small an output buffer: nothing, no panic.
        assert_eq!(icmpv6_packet_too_big(&orig, 1400, src, &mut [0u8; 100]), None);
    }

    #[test]
    fn link_local_and_multicast_stay_off_the_tunnel() {
        for (a, ok) in [
            ("fd00::1", true),
            ("2001:db8::1", true),
            ("fe80::1", false),
            ("ff02::2", false),
            ("::1", false),
        ] {
            assert_eq!(ipv6_tunnelable(a.parse().unwrap()), ok, "{a}");
        }
    }

    #[test]
    fn mss_is_clamped_with_a_valid_checksum_at_any_alignment() {
        for nops in 0..4 {
            let mut p = tcp_syn(1460, nops);
            assert!(tcp_checksum_ok(&p));
            assert!(clamp_mss(&mut p, 1379), "nops={nops}");
            assert_eq!(be16(&p, 20 + 20 + nops + 2), 1379);
            assert!(tcp_checksum_ok(&p), "nops={nops}");
            // Already small enough: untouched.
            assert!(!clamp_mss(&mut p, 1400));
        }
    }

    #[test]
    fn non_syn_is_not_touched() {
        let mut p = tcp_syn(1460, 0);
        p[20 + 13] = 0x10; // ACK only
        let before = p.clone();
        assert!(!clamp_mss(&mut p, 1000));
        assert_eq!(p, before);
    }

    #[test]
    fn clear_df_keeps_header_checksum_valid() {
        let mut p = tcp_syn(1460, 0);
        assert!(ipv4_df(&p));
        clear_df(&mut p);
        assert!(!ipv4_df(&p));
        assert_eq!(checksum(&p[..20]), 0);
    }

    #[test]
    fn icmp_frag_needed_quotes_header_and_8_octets() {
        let mut p = vec![0u8; 1400];
        p[0] = 0x45;
        put16(&mut p, 2, 1400);
        put16(&mut p, 6, FLAG_DF);
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        let mut out = [0u8; 128];
        let n = icmp_frag_needed(&p, 1300, Ipv4Addr::new(169, 254, 10, 2), &mut out).unwrap();
        assert_eq!(n, 20 + 8 + 28);
        assert_eq!(checksum(&out[..20]), 0);
        assert_eq!(checksum(&out[20..n]), 0);
        assert_eq!(&out[16..20], &[10, 1, 0, 2]);
        assert_eq!((out[20], out[21], be16(&out, 26)), (3, 4, 1300));
        // Never answer an ICMP error with one.
        let mut err = out[..n].to_vec();
        put16(&mut err, 6, FLAG_DF);
        assert!(icmp_frag_needed(&err, 1300, Ipv4Addr::LOCALHOST, &mut [0u8; 128]).is_none());
    }

    #[test]
    fn fragments_reassemble_to_the_original() {
        let mut p = vec![0u8; 1400];
        p[0] = 0x45;
        put16(&mut p, 2, 1400);
        p[9] = 17;
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        set_ipv4_checksum(&mut p[..20]);
        let mut frags = Vec::new();
        let n = fragment(&p, 576, |h, d| {
            frags.push([h, d].concat());
            true
        })
        .unwrap();
        assert_eq!(n, 3);
        let mut data = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 576);
            assert_eq!(checksum(&f[..20]), 0);
            let flags = be16(f, 6);
            assert_eq!(usize::from(flags & OFFSET_MASK) * 8, data.len());
            assert_eq!(flags & FLAG_MF != 0, i + 1 < n);
            data.extend_from_slice(&f[20..]);
        }
        assert_eq!(data, &p[20..]);
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), mss in any::<u16>()) {
            let _ = ipv4_destination(&bytes);
            let _ = source(&bytes);
            let _ = ipv4_df(&bytes);
            let _ = icmp_frag_needed(&bytes, 1200, Ipv4Addr::LOCALHOST, &mut [0u8; 128]);
            let _ = fragment(&bytes, 68, |_, _| true);
            clamp_mss(&mut bytes, mss);
            clear_df(&mut bytes);
        }

        #[test]
        fn hostile_ipv6_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), mss in any::<u16>(), mtu in any::<u32>()) {
            if let Some(b) = bytes.first_mut() {
                *b = 0x60 | (*b & 0x0f);
            }
            if bytes.len() >= 6 {
                let payload = (bytes.len().saturating_sub(IPV6_HEADER) as u16).min(u16::from_be_bytes([bytes[4], bytes[5]]));
                bytes[4..6].copy_from_slice(&payload.to_be_bytes());
            }
            let _ = destination(&bytes);
            let _ = source(&bytes);
            let _ = flow_hash(&bytes);
            let _ = ipv6_upper(&bytes);
            let mut out = [0u8; IPV6_MIN_MTU];
            if let Some(n) = icmpv6_packet_too_big(&bytes, mtu, Ipv6Addr::LOCALHOST, &mut out) {
                prop_assert!(n <= IPV6_MIN_MTU);
                prop_assert_eq!(ipv6_len(&out[..n]), Some(n));
            }
            clamp_mss(&mut bytes, mss);
        }

        #[test]
        fn ipv6_clamp_keeps_the_checksum_valid(nops in 0usize..4, hbh in any::<bool>(), orig in 500u16..9000, mss in 500u16..9000) {
            let mut p = tcp_syn6(orig, nops, hbh);
            let changed = clamp_mss(&mut p, mss);
            prop_assert_eq!(changed, orig > mss);
            prop_assert!(tcp_checksum_ok(&p));
        }
    }
}
