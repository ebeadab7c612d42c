//! Fuzz the failover probe's reply recogniser: every decrypted inbound packet passes through it, so
//! no input may panic, and only a well-formed echo reply to an outstanding probe may be taken.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use cgwd::failover::probe::{Inbound, Prober};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let aws6 = Ipv6Addr::new(0xfd00, 0xa9fe, 0x10, 0, 0, 0, 0, 1);
    let mut p = Prober::new(
        Ipv4Addr::new(169, 254, 10, 6),
        Ipv4Addr::new(169, 254, 10, 5),
        0x4242,
        Duration::from_millis(250),
    )
    .with_v6(Some(aws6));
    let _ = p.poll(now, None);
    if let Inbound::Reply { .. } = p.handle(data, now) {
        assert!(data.len() >= 28);
        assert_eq!(data[20], 0);
    }
    // The same bytes as a raw ICMPv6 socket's message (IPv6-inside tunnels).
    let _ = p.poll_v6(now, None);
    if let Inbound::Reply { .. } = p.handle_v6(aws6, data, now) {
        assert!(data.len() >= 8);
        assert_eq!(data[0], 129);
    }
});
