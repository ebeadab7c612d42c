//! Inner-packet fix-ups the gateway owes the LAN: TCP MSS clamping, DF handling (clear + fragment
//! before encryption, or ICMP "fragmentation needed"), and the few IPv4 header reads tunnel selection
//! needs. Every function takes hostile bytes and never panics: anything malformed is left alone.

use std::net::Ipv4Addr;

const IPV4_MIN_HEADER: usize = 20;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
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

/// A hash of an IPv4 packet's flow (addresses, protocol, and ports when the packet is not a
/// fragment), for spreading flows over both tunnels. Fragments hash without ports so all fragments of a
/// datagram take one tunnel. Not keyed: it only balances, it protects nothing.
pub fn flow_hash(pkt: &[u8]) -> u32 {
    let Some(hl) = ipv4_header_len(pkt) else {
        return 0;
    };
    let addrs = pkt
        .get(12..20)
        .map_or(0, |a| u64::from_be_bytes(a.try_into().unwrap_or_default()));
    let proto = u64::from(pkt[9]);
    let fragment = be16(pkt, 6) & 0x3fff != 0;
    let ports = match (proto, fragment) {
        (6 | 17, false) => pkt
            .get(hl..hl + 4)
            .map_or(0, |p| u64::from(be16(p, 0)) << 16 | u64::from(be16(p, 2))),
        _ => 0,
    };
    let mut h = addrs ^ (proto << 32) ^ ports.rotate_left(17);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 29;
    (h ^ (h >> 32)) as u32
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

/// Lowers the MSS option of a TCP SYN to `mss` (RFC 879 / RFC 6691: the tunnel eats header room),
/// fixing the TCP checksum incrementally. Returns whether the packet was changed.
pub fn clamp_mss(pkt: &mut [u8], mss: u16) -> bool {
    let Some(ihl) = ipv4_header_len(pkt) else {
        return false;
    };
    if pkt[9] != PROTO_TCP || be16(pkt, 6) & OFFSET_MASK != 0 {
        return false;
    }
    let total = usize::from(be16(pkt, 2));
    let tcp = &mut pkt[ihl..total];
    if tcp.len() < 20 || tcp[13] & TCP_SYN == 0 {
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
                    // The option starts at an even offset only when preceded by even padding; the
                    // checksum is over 16-bit words of the segment, so adjust the aligned words.
                    if at % 2 == 0 {
                        let c = checksum_adjust(be16(tcp, 16), old, mss);
                        put16(tcp, 16, c);
                    } else {
                        // Odd alignment: the two value bytes straddle words; recompute in full below.
                        return recompute_tcp_checksum(pkt, ihl, total);
                    }
                    return true;
                }
                at += len;
            }
        }
    }
    false
}

fn recompute_tcp_checksum(pkt: &mut [u8], ihl: usize, total: usize) -> bool {
    let tcp_len = total - ihl;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&pkt[12..20]);
    pseudo[9] = PROTO_TCP;
    pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    put16(pkt, ihl + 16, 0);
    let sum = ones_sum(&pkt[ihl..total], ones_sum(&pseudo, 0));
    put16(pkt, ihl + 16, !(sum as u16));
    true
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
        recompute_tcp_checksum(&mut p, 20, total);
        p
    }

    fn tcp_checksum_ok(p: &[u8]) -> bool {
        let total = usize::from(be16(p, 2));
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&p[12..20]);
        pseudo[9] = PROTO_TCP;
        pseudo[10..12].copy_from_slice(&((total - 20) as u16).to_be_bytes());
        ones_sum(&p[20..total], ones_sum(&pseudo, 0)) == 0xffff
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
            let _ = ipv4_df(&bytes);
            let _ = icmp_frag_needed(&bytes, 1200, Ipv4Addr::LOCALHOST, &mut [0u8; 128]);
            let _ = fragment(&bytes, 68, |_, _| true);
            clamp_mss(&mut bytes, mss);
            clear_df(&mut bytes);
        }
    }
}
