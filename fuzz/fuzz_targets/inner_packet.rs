//! Inner-packet fix-ups on hostile bytes: MSS clamping, DF clearing, fragmentation and ICMP
//! generation must never panic, and what they emit must stay within the announced sizes.
#![no_main]

use std::net::Ipv4Addr;

use cgwd::dataplane::packet::{clamp_mss, clear_df, fragment, icmp_frag_needed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, pkt)) = data.split_first() else {
        return;
    };
    let mut pkt = pkt.to_vec();
    clamp_mss(&mut pkt, 536 + u16::from(knob) * 4);
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
});
