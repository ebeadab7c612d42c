//! IKE over IPv6 outside addresses (AWS `OutsideIpAddressType` Ipv6): cgwd initiator ↔ cgwd
//! responder in process, addressed from 2001:db8::/32. Identities are ID_IPV6_ADDR, NAT-D hashes
//! cover the 16-octet addresses (RFC 7296 §2.23), and the Child SA's endpoints are IPv6 on 4500.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use cgwd::ike::{IkeConfig, State};
use cgwd::sa::TunnelId;
use cgwd::secret::Secret;
use cgwd::wire::ike::{ExchangeType, Message, NotifyType, PayloadRepr};
use common::pair::{Dir, IKE_AUTH, IKE_SA_INIT, PSK, Pair, assert_established};

const CGW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
const AWS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffaa, 1, 0, 0, 0, 0x21);

fn config_v6() -> IkeConfig {
    IkeConfig::aws_defaults(TunnelId::One, CGW, AWS, Secret::from_slice(PSK))
}

#[test]
fn establishes_over_ipv6_with_ipv6_identities() {
    // IKE_SA_INIT  [2001:db8:100::10]:500 → [2001:db8:ffaa:1::21]:500  HDR, SAi1, KEi, Ni, N(NAT_D)*
    // IKE_AUTH     [..]:4500 → [..]:4500  HDR, SK{IDi(ID_IPV6_ADDR), AUTH, SAi2, TSi, TSr}
    let mut p = Pair::mirrored(config_v6(), 61);
    p.run_for(Duration::from_secs(2));
    assert_established(&p);
    assert_eq!(p.count(Dir::ToResponder, IKE_SA_INIT, false), 1);
    assert_eq!(p.count(Dir::ToResponder, IKE_AUTH, false), 1);
    let s = p.initiator.status();
    assert_eq!(s.local, SocketAddr::new(IpAddr::V6(CGW), 4500));
    assert_eq!(s.remote, SocketAddr::new(IpAddr::V6(AWS), 4500));
    let r = p.responder().status();
    assert_eq!(r.local, SocketAddr::new(IpAddr::V6(AWS), 4500));
    assert_eq!(r.remote, SocketAddr::new(IpAddr::V6(CGW), 4500));
    // The Child SA the data plane gets sends ESP in UDP/IPv6 to AWS's 4500.
    let child = Pair::child_ups(&p.initiator_events)[0];
    assert_eq!(child.remote, SocketAddr::new(IpAddr::V6(AWS), 4500));
    assert_eq!(child.local, SocketAddr::new(IpAddr::V6(CGW), 4500));
    // Both AUTHs verified over IDs of type ID_IPV6_ADDR (the type is part of what PSK AUTH signs, and
    // each side demands the peer's address as that type).
    assert!(s.nat_detected, "the responder fakes NAT-D to force encapsulation");
}

#[test]
fn nat_detection_hashes_cover_the_16_octet_addresses() {
    let mut p = Pair::mirrored(config_v6(), 62);
    p.run_for(Duration::from_secs(2));
    assert_established(&p);
    // The IKE_SA_INIT request: NAT_DETECTION_DESTINATION_IP = SHA-1(SPIi | 0 | AWS's 16 octets | 500).
    let (_, first) = &p.raw[0];
    let msg = Message::parse(first).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::IKE_SA_INIT);
    let spi_i = msg.header.spi_i;
    let dest = msg
        .payloads()
        .unwrap()
        .into_iter()
        .find_map(|p| match p {
            PayloadRepr::Notify(n) if n.kind == NotifyType::NAT_DETECTION_DESTINATION_IP => Some(n.data),
            _ => None,
        })
        .expect("NAT_DETECTION_DESTINATION_IP");
    let mut input = Vec::new();
    input.extend_from_slice(&spi_i.to_be_bytes());
    input.extend_from_slice(&[0; 8]);
    input.extend_from_slice(&AWS.octets());
    input.extend_from_slice(&500u16.to_be_bytes());
    assert_eq!(input.len(), 34);
    let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    assert_eq!(dest, want.as_ref());
    assert_eq!(
        dest,
        cgwd::ike::natd::hash(spi_i, 0, SocketAddr::new(IpAddr::V6(AWS), 500))
    );
}

/// An AWS endpoint presenting an IPv4 identity where its IPv6 outside address is expected (or
/// another IPv6 address) is refused, naming both.
#[test]
fn wrong_peer_identity_over_ipv6_is_refused() {
    for (seed, id) in [(63, "203.0.113.5"), (64, "2001:db8:ffaa:1::99")] {
        let c = config_v6();
        let mut r = c.mirrored();
        r.local_id = id.parse().unwrap();
        let mut p = Pair::new(c, r, seed);
        p.run_for(Duration::from_secs(2));
        let f = Pair::failures(&p.initiator_events);
        assert!(
            f.first()
                .is_some_and(|m| m.contains(&format!("identified itself as {id}, expected {AWS}"))),
            "{f:?}"
        );
        assert_eq!(p.initiator.state(), State::Closed);
    }
}

/// Our identity may be another IPv6 address than the one we send from (`local.id`), as over IPv4.
#[test]
fn local_id_apart_from_the_address_we_send_from() {
    let mut c = config_v6();
    c.local_id = "2001:db8:100::99".parse().unwrap();
    let mut p = Pair::mirrored(c, 65);
    p.run_for(Duration::from_secs(2));
    assert_established(&p);
}

/// Rekeys, DPD and a DELETE run over IPv6 as over IPv4.
#[test]
fn rekeys_and_close_over_ipv6() {
    let mut c = config_v6();
    c.child_lifetime = Duration::from_secs(30);
    c.rekey_margin = Duration::from_secs(10);
    c.rekey_fuzz_percent = 0;
    c.dpd_interval = Duration::from_secs(5);
    c.ike_lifetime = Duration::from_secs(60);
    let mut p = Pair::mirrored(c, 66);
    p.run_for(Duration::from_secs(2));
    let first_spi = p.initiator.status().spi_i;
    p.run_for(Duration::from_secs(73));
    assert_eq!(
        p.initiator.state(),
        State::Established,
        "{:?}",
        Pair::failures(&p.initiator_events)
    );
    let ups = Pair::child_ups(&p.initiator_events);
    assert!(ups.len() >= 3, "Child SA rekeys: {}", ups.len());
    assert_eq!(ups.len(), Pair::child_ups(&p.responder_events).len());
    // The IKE SA was rekeyed too (new SPIs), still between the IPv6 addresses on 4500.
    let s = p.initiator.status();
    assert_ne!(s.spi_i, first_spi, "IKE SA rekeyed");
    assert_eq!(s.remote, SocketAddr::new(IpAddr::V6(AWS), 4500));
    assert!(
        ups.iter()
            .all(|c| c.remote == SocketAddr::new(IpAddr::V6(AWS), 4500))
    );
    p.initiator.close(p.now);
    p.collect();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.initiator.state(), State::Closed);
    assert_eq!(p.responder().state(), State::Closed);
}

/// RFC 7383 fragments over IPv6 stay within the configured datagram size with IPv6's 40-octet
/// header counted (so the default 1280 fits the IPv6 minimum MTU): every IKE_AUTH datagram's IKE
/// message + non-ESP marker + UDP + IPv6 header ≤ the size, and the exchange still completes.
#[test]
fn ike_fragments_over_ipv6_count_the_40_octet_header() {
    // The PSK IKE_AUTH request is 336 octets here: 368 with marker, UDP and IPv4 (fits 380), 388
    // with IPv6's header (does not).
    const SIZE: usize = 380;
    let mut c = config_v6();
    c.fragmentation.enabled = true;
    c.fragmentation.max_datagram = SIZE;
    let r = c.mirrored();
    let mut p = Pair::new(c, r, 67);
    p.run_for(Duration::from_secs(2));
    assert_established(&p);
    let auth: Vec<usize> = p
        .raw
        .iter()
        .filter(|(_, d)| d.len() > 18 && d[18] == IKE_AUTH)
        .map(|(_, d)| d.len())
        .collect();
    assert!(auth.len() >= 3, "the IKE_AUTH request fragmented: {auth:?}");
    for len in auth {
        assert!(
            len + 4 + 8 + 40 <= SIZE,
            "{len}-octet IKE message over {SIZE} with IPv6"
        );
    }
}
