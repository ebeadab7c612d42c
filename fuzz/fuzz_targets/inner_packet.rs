//! Inner-packet fix-ups on hostile bytes (IPv4 and IPv6): MSS clamping, DF clearing, fragmentation,
//! ICMP and ICMPv6 generation, flow hashing and reading the addresses must never panic, and what
//! they emit must stay within the announced sizes.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use cgwd::dataplane::packet::{
    IPV6_MIN_MTU, clamp_mss, clear_df, destination, flow_hash, fragment, icmp_frag_needed,
    icmpv6_packet_too_big, ipv6_len, ipv6_upper, mss_for, source,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, pkt)) = data.split_first() else {
        return;
    };
    let mut pkt = pkt.to_vec();
    let _ = (destination(&pkt), source(&pkt), flow_hash(&pkt), ipv6_upper(&pkt));
    let mss = mss_for(&pkt, 536 + u16::from(knob) * 4);
    clamp_mss(&mut pkt, mss);
    clear_df(&mut pkt);
    let mtu = 68 + usize::from(knob) * 8;
    let _ = fragment(&pkt, mtu, |hdr, frag| {
        assert!(hdr.len() + frag.len() <= mtu);
        true
    });
    let mut out = [0u8; 128];
    if let Some(n) = icmp_frag_needed(&pkt, 1400, Ipv4Addr::new(169, 254, 0, 1), &mut out) {
        assert!(n <= out.len());
    }
    let mut out6 = [0u8; IPV6_MIN_MTU];
    if let Some(n) = icmpv6_packet_too_big(&pkt, 1280, Ipv6Addr::LOCALHOST, &mut out6) {
        assert_eq!(ipv6_len(&out6[..n]), Some(n));
    }
});
