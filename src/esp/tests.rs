//! Data-plane tests: two real SA tables facing each other (ours and the peer's), no mocks.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::crypto::cipher::Cipher;
use crate::sa::{ChildSa, EspKeys, EspSpi, Ipv6Range, TrafficSelector, TunnelId, TunnelKey};
use crate::secret::Secret;
use crate::suite::{Encryption, Integrity};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn keys(spi: u32, encryption: Encryption, integrity: Option<Integrity>, seed: u8) -> EspKeys {
    EspKeys {
        spi: EspSpi(spi),
        encryption,
        integrity,
        encryption_key: Secret::new((0..encryption.keymat_len()).map(|i| seed ^ i as u8).collect()),
        integrity_key: Secret::new(
            integrity
                .map(|i| (0..i.key_len()).map(|j| seed.wrapping_add(j as u8)).collect())
                .unwrap_or_default(),
        ),
    }
}

/// Our Child SA and the peer's mirror image of it (its inbound is our outbound and vice versa).
fn child_pair(
    tunnel: TunnelKey,
    encryption: Encryption,
    integrity: Option<Integrity>,
    our_spi: u32,
    peer_spi: u32,
) -> (ChildSa, ChildSa) {
    let ours_in = keys(our_spi, encryption, integrity, our_spi as u8);
    let ours_out = keys(peer_spi, encryption, integrity, peer_spi as u8);
    let local: SocketAddr = "192.0.2.1:4500".parse().unwrap();
    let remote: SocketAddr = "198.51.100.1:4500".parse().unwrap();
    let ours = ChildSa {
        tunnel,
        inbound: ours_in.clone(),
        outbound: ours_out.clone(),
        local_ts: TrafficSelector::ANY,
        remote_ts: TrafficSelector::ANY,
        pfs: None,
        local,
        remote,
        replay_window: 1024,
    };
    let peer = ChildSa {
        inbound: ours_out,
        outbound: ours_in,
        local: remote,
        remote: local,
        ..ours.clone()
    };
    (ours, peer)
}

fn suites() -> Vec<(Encryption, Option<Integrity>)> {
    let mut out = Vec::new();
    for e in Encryption::ALL {
        if e.is_aead() {
            out.push((e, None));
        } else {
            for i in Integrity::ALL {
                out.push((e, Some(i)));
            }
        }
    }
    out
}

/// An IPv4 packet of `len` octets (header + payload bytes 0, 1, 2, ...) in a buffer with room.
fn ipv4_in_buffer(len: usize, src: Ipv4Addr, dst: Ipv4Addr) -> (Vec<u8>, Range<usize>) {
    assert!(len >= 20);
    let mut buf = vec![0xeeu8; MAX_HEADROOM + len + MAX_TAILROOM];
    let p = &mut buf[MAX_HEADROOM..MAX_HEADROOM + len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    (buf, MAX_HEADROOM..MAX_HEADROOM + len)
}

fn lan_packet(len: usize) -> (Vec<u8>, Range<usize>) {
    ipv4_in_buffer(len, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 1, 0, 1))
}

/// Seals `len` octets through `table`'s outbound SA of tunnel one; returns the ESP packet.
fn seal_packet(table: &SaTable, len: usize) -> Vec<u8> {
    let (mut buf, inner) = lan_packet(len);
    let sealed = table
        .seal(TunnelKey::from(TunnelId::One), &mut buf, inner)
        .unwrap();
    buf[sealed.range].to_vec()
}

fn tables(encryption: Encryption, integrity: Option<Integrity>) -> (Arc<SaTable>, Arc<SaTable>) {
    let (ours, peer) = child_pair(
        TunnelKey::from(TunnelId::One),
        encryption,
        integrity,
        0x1000,
        0x2000,
    );
    let (a, b) = (Arc::new(SaTable::new()), Arc::new(SaTable::new()));
    a.install(&ours).unwrap();
    b.install(&peer).unwrap();
    (a, b)
}

#[test]
fn round_trip_every_suite_and_size() {
    for (encryption, integrity) in suites() {
        let (ours, peer) = tables(encryption, integrity);
        let mut bytes = 0;
        let sizes = [20, 21, 22, 23, 24, 35, 36, 64, 100, 577, 1400, 1500];
        for (n, &len) in sizes.iter().enumerate() {
            let (mut buf, inner) = lan_packet(len);
            let original = buf[inner.clone()].to_vec();
            let sealed = ours
                .seal(TunnelKey::from(TunnelId::One), &mut buf, inner.clone())
                .unwrap();
            assert_eq!(sealed.seq, n as u32 + 1);
            assert!(!sealed.rekey_needed);
            let esp = &mut buf[sealed.range.clone()];
            assert_eq!(&esp[..4], &0x2000u32.to_be_bytes());
            assert_eq!(&esp[4..8], &(n as u32 + 1).to_be_bytes());
            // The payload is encrypted in place: the inner packet is no longer in clear.
            assert_ne!(&esp[MAX_HEADROOM.min(esp.len())..][..16], &original[..16]);
            let opened = peer.open(esp).unwrap();
            assert_eq!(
                &esp[opened.inner.clone()],
                &original[..],
                "{encryption} {integrity:?} {len}"
            );
            assert_eq!(opened.next_header, sa::NEXT_HEADER_IPV4);
            assert_eq!(opened.seq, n as u32 + 1);
            assert_eq!(opened.spi, EspSpi(0x2000));
            assert_eq!(opened.tunnel, TunnelKey::from(TunnelId::One));
            bytes += len as u64;
        }
        let ours_c = ours.counters();
        let peer_c = peer.counters();
        assert_eq!(ours_c.tunnels[0].packets_out, sizes.len() as u64);
        assert_eq!(ours_c.tunnels[0].bytes_out, bytes);
        assert_eq!(peer_c.tunnels[0].packets_in, sizes.len() as u64);
        assert_eq!(peer_c.tunnels[0].bytes_in, bytes);
        assert_eq!(peer_c.tunnels[0].drops.total(), 0);
    }
}

#[test]
fn esp_layout_alignment_and_padding() {
    for (encryption, integrity) in suites() {
        let sa = OutboundSa::new(
            TunnelKey::from(TunnelId::One),
            &keys(0x77, encryption, integrity, 9),
        )
        .unwrap();
        let cipher_keys = keys(0x77, encryption, integrity, 9);
        let cipher = Cipher::new(
            encryption,
            integrity,
            cipher_keys.encryption_key.expose(),
            cipher_keys.integrity_key.expose(),
        )
        .unwrap();
        for len in 20..60 {
            let (mut buf, inner) = lan_packet(len);
            let sealed = sa.seal(&mut buf, inner.clone()).unwrap();
            assert_eq!(sealed.range.start, inner.start - sa.headroom());
            let esp = &mut buf[sealed.range.clone()];
            let ct_len = esp.len() - 8 - cipher.iv_len() - cipher.icv_len();
            assert_eq!(ct_len % cipher.block_len(), 0);
            assert!(ct_len - len - 2 < cipher.block_len());
            assert!(esp.len() <= len + sa.headroom() + sa.tailroom());
            // Decrypt with a bare cipher and read the trailer: 1, 2, 3, ..., pad length, 4.
            cipher.open(esp, 8).unwrap();
            let ct = &esp[8 + cipher.iv_len()..8 + cipher.iv_len() + ct_len];
            let pad_len = usize::from(ct[ct_len - 2]);
            assert_eq!(pad_len, ct_len - len - 2);
            assert_eq!(ct[ct_len - 1], 4);
            assert!(
                ct[len..len + pad_len]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b as usize == i + 1)
            );
        }
    }
}

#[test]
fn gcm_iv_is_the_sequence_number() {
    // RFC 4106 §3.1: any IV unique per key; cgwd uses the 64-bit sequence counter.
    let sa = OutboundSa::new(
        TunnelKey::from(TunnelId::One),
        &keys(0x77, Encryption::Aes128Gcm16, None, 1),
    )
    .unwrap();
    for seq in 1..4u64 {
        let (mut buf, inner) = lan_packet(40);
        let sealed = sa.seal(&mut buf, inner).unwrap();
        assert_eq!(&buf[sealed.range.start + 8..][..8], &seq.to_be_bytes());
    }
}

#[test]
fn cbc_ivs_differ_per_packet_and_per_sa() {
    let k = keys(0x77, Encryption::Aes128Cbc, Some(Integrity::Sha2_256), 1);
    let (a, b) = (
        OutboundSa::new(TunnelKey::from(TunnelId::One), &k).unwrap(),
        OutboundSa::new(TunnelKey::from(TunnelId::One), &k).unwrap(),
    );
    let iv = |sa: &OutboundSa| {
        let (mut buf, inner) = lan_packet(40);
        let sealed = sa.seal(&mut buf, inner).unwrap();
        buf[sealed.range.start + 8..][..16].to_vec()
    };
    let (a1, a2, b1) = (iv(&a), iv(&a), iv(&b));
    assert_ne!(a1, a2);
    // Same keys, same sequence number, yet a different IV: the whitening key is per SA and random.
    assert_ne!(a1, b1);
}

// draft-mcgrew-gcm-test-01 §4 (Test Cases for GCM in ESP), the AES-128 case with SPI 0x0000a5f8,
// sequence number 0x0000000a, key feffe992..., salt cafebabe, IV facedbaddecaf888 (ESP packet:
// SPI | seq | IV | ciphertext | ICV). The draft's plaintexts end their ESP trailer with next header 1,
// which is not an inner IP version, so a tunnel-mode SA authenticates, decrypts and checks the
// padding of these packets and then drops them as BadNextHeader: what this test asserts, together
// with the decrypted IPv4 header.
#[test]
fn draft_mcgrew_gcm_test_01_aes128_esp_packet() {
    let inbound = InboundSa::new(
        TunnelKey::from(TunnelId::One),
        &EspKeys {
            spi: EspSpi(0xa5f8),
            encryption: Encryption::Aes128Gcm16,
            integrity: None,
            encryption_key: Secret::new(hex("feffe9928665731c6d6a8f9467308308 cafebabe")),
            integrity_key: Secret::new(vec![]),
        },
        64,
        TrafficSelector::ANY,
        TrafficSelector::ANY,
    )
    .unwrap();
    let packet = hex("0000a5f8 0000000a facedbaddecaf888
         deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c
         3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1
         83b70d3aa8bc6ee4c309e9d85a41ad4a");
    let mut buf = packet.clone();
    assert_eq!(inbound.open(&mut buf), Err(DropReason::BadNextHeader));
    // Plaintext from the draft: a 62-octet IPv4/UDP DNS query, then pad length 0, next header 1.
    assert_eq!(&buf[16..36], &hex("4500003e698f000080114dccc0a80102c0a80101")[..]);
    assert_eq!(&buf[78..80], &[0x00, 0x01]);
    assert_eq!(inbound.highest_seq(), 10, "authenticated, so the window moved");
    // One flipped ciphertext bit: now it is an authentication failure, and a replay of the
    // original is a duplicate.
    let mut flipped = packet.clone();
    flipped[20] ^= 1;
    assert_eq!(inbound.open(&mut flipped), Err(DropReason::ReplayDuplicate));
    let drops = inbound.counters().drops.snapshot();
    assert_eq!(drops.get(DropReason::BadNextHeader), 1);
    assert_eq!(drops.get(DropReason::ReplayDuplicate), 1);
}

// draft-mcgrew-gcm-test-01 §4, the AES-256 case: SPI 0x4a2cbfe3, seq 2, key abbccdde... (x2),
// salt 11223344, IV 0102030405060708; its 48-octet IPv4/TCP SYN is followed by padding 01 02, pad
// length 2 and next header 1.
#[test]
fn draft_mcgrew_gcm_test_01_aes256_esp_packet() {
    let inbound = InboundSa::new(
        TunnelKey::from(TunnelId::Two),
        &EspKeys {
            spi: EspSpi(0x4a2cbfe3),
            encryption: Encryption::Aes256Gcm16,
            integrity: None,
            encryption_key: Secret::new(hex(
                "abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344",
            )),
            integrity_key: Secret::new(vec![]),
        },
        64,
        TrafficSelector::ANY,
        TrafficSelector::ANY,
    )
    .unwrap();
    let mut buf = hex("4a2cbfe3 00000002 0102030405060708
         ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763
         748a637985771d347f0545659f14e99def842d8e
         b335f4eecfdbf831824b4c4915956c96");
    assert_eq!(inbound.open(&mut buf), Err(DropReason::BadNextHeader));
    assert_eq!(&buf[16..20], &[0x45, 0x00, 0x00, 0x30]);
    assert_eq!(&buf[64..68], &[0x01, 0x02, 0x02, 0x01]);
}

#[test]
fn replayed_and_old_packets_are_dropped_and_counted() {
    let (ours, peer) = tables(Encryption::Aes128Gcm16, None);
    let first = seal_packet(&ours, 60);
    let mut copy = first.clone();
    peer.open(&mut copy).unwrap();
    let mut copy = first.clone();
    assert_eq!(peer.open(&mut copy), Err(DropReason::ReplayDuplicate));
    // Move the window 1024 packets ahead (default ReplayWindowSize): packet 1 is now too old.
    let mut kept = Vec::new();
    for _ in 0..1024 {
        kept.push(seal_packet(&ours, 40));
    }
    // Deliver out of order: the last first, then the rest in reverse.
    for p in kept.iter().rev() {
        peer.open(&mut p.clone()).unwrap();
    }
    let mut copy = first.clone();
    assert_eq!(peer.open(&mut copy), Err(DropReason::ReplayTooOld));
    let c = peer.counters();
    assert_eq!(c.tunnels[0].packets_in, 1025);
    assert_eq!(c.tunnels[0].drops.get(DropReason::ReplayDuplicate), 1);
    assert_eq!(c.tunnels[0].drops.get(DropReason::ReplayTooOld), 1);
    assert_eq!(c.inbound[0].highest_seq, 1025);
}

#[test]
fn forged_packet_does_not_move_the_window() {
    let (ours, peer) = tables(Encryption::Aes256Cbc, Some(Integrity::Sha2_384));
    let mut p = seal_packet(&ours, 100);
    // Claim a far-future sequence number: authentication fails, the window stays where it was.
    p[4..8].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_eq!(peer.open(&mut p.clone()), Err(DropReason::AuthFailed));
    assert_eq!(peer.counters().inbound[0].highest_seq, 0);
    p[4..8].copy_from_slice(&1u32.to_be_bytes());
    peer.open(&mut p).unwrap();
}

#[test]
fn every_flipped_bit_is_dropped_and_counted() {
    for (encryption, integrity) in suites() {
        let (ours, peer) = tables(encryption, integrity);
        let packet = seal_packet(&ours, 48);
        let mut drops = 0;
        for bit in 0..packet.len() * 8 {
            let mut p = packet.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            let reason = peer.open(&mut p).unwrap_err();
            match bit / 8 {
                0..4 => assert_eq!(reason, DropReason::UnknownSpi),
                // Sequence number 1 with its low bit flipped is 0, which is never sent.
                7 if bit % 8 == 0 => assert_eq!(reason, DropReason::ReplayTooOld),
                _ => assert_eq!(reason, DropReason::AuthFailed, "bit {bit}"),
            }
            drops += 1;
        }
        let c = peer.counters();
        assert_eq!(c.tunnels[0].drops.total() + c.unattributed.total(), drops);
        assert_eq!(c.unattributed.get(DropReason::UnknownSpi), 32);
        // The untouched packet still opens: no failed attempt moved the window.
        peer.open(&mut packet.clone()).unwrap();
    }
}

#[test]
fn truncated_and_garbage_packets() {
    let (ours, peer) = tables(Encryption::Aes128Cbc, Some(Integrity::Sha1));
    let packet = seal_packet(&ours, 64);
    for len in 0..packet.len() {
        let mut p = packet[..len].to_vec();
        let reason = peer.open(&mut p).unwrap_err();
        assert!(
            matches!(
                reason,
                DropReason::Truncated | DropReason::BadLength | DropReason::AuthFailed
            ),
            "{len}: {reason}"
        );
    }
    // CBC ciphertext must be whole blocks.
    let mut p = packet.clone();
    p.push(0);
    assert_eq!(peer.open(&mut p), Err(DropReason::BadLength));
    assert_eq!(peer.open(&mut [0x00, 0x00, 0x10]), Err(DropReason::Truncated));
    assert_eq!(peer.open(&mut [0u8; 64]), Err(DropReason::UnknownSpi));
    let c = peer.counters();
    assert!(c.unattributed.get(DropReason::Truncated) >= 8);
}

/// Builds an ESP packet with a hand-made trailer, sealed with the SA's real keys.
fn handmade(k: &EspKeys, seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let cipher = Cipher::new(
        k.encryption,
        k.integrity,
        k.encryption_key.expose(),
        k.integrity_key.expose(),
    )
    .unwrap();
    let mut buf = [
        k.spi.0.to_be_bytes().to_vec(),
        seq.to_be_bytes().to_vec(),
        vec![0; cipher.iv_len()],
        plaintext.to_vec(),
        vec![0; cipher.icv_len()],
    ]
    .concat();
    cipher.write_iv(u64::from(seq), &mut buf[8..]).unwrap();
    cipher.seal(&mut buf, 8).unwrap();
    buf
}

fn inbound_for(k: &EspKeys, local_ts: TrafficSelector, remote_ts: TrafficSelector) -> InboundSa {
    InboundSa::new(TunnelKey::from(TunnelId::One), k, 64, local_ts, remote_ts).unwrap()
}

fn inner_v4(len: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let (buf, inner) = ipv4_in_buffer(len, src, dst);
    buf[inner].to_vec()
}

#[test]
fn trailer_and_inner_checks() {
    let k = keys(0x42, Encryption::Aes128Gcm16, None, 3);
    let sa = inbound_for(&k, TrafficSelector::ANY, TrafficSelector::ANY);
    let ip = inner_v4(26, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 1, 0, 1));
    let with = |trailer: &[u8]| [ip.clone(), trailer.to_vec()].concat();
    let mut seq = 0;
    let mut open = |plaintext: Vec<u8>| {
        seq += 1;
        sa.open(&mut handmade(&k, seq, &plaintext))
    };
    // 26 + 4 padding + 2 = 32: good.
    assert!(open(with(&[1, 2, 3, 4, 4, 4])).is_ok());
    assert_eq!(open(with(&[1, 2, 3, 5, 4, 4])), Err(DropReason::BadPadding));
    assert_eq!(open(with(&[0, 0, 0, 0, 4, 4])), Err(DropReason::BadPadding));
    // Pad length past the start of the payload.
    assert_eq!(open(with(&[1, 2, 3, 4, 200, 4])), Err(DropReason::BadPadding));
    assert_eq!(open(with(&[1, 2, 3, 4, 4, 6])), Err(DropReason::BadNextHeader));
    assert_eq!(open(with(&[1, 2, 3, 4, 4, 59])), Err(DropReason::DummyPacket));
    // Next header says IPv6, the packet is IPv4.
    assert_eq!(open(with(&[1, 2, 3, 4, 4, 41])), Err(DropReason::BadInnerPacket));
    // IPv4 length field larger than what arrived.
    let mut long = ip.clone();
    long[3] = 200;
    assert_eq!(
        open([long, vec![1, 2, 3, 4, 4, 4]].concat()),
        Err(DropReason::BadInnerPacket)
    );
    // TFC padding (RFC 4303 §2.7) after the inner packet is trimmed by its length field.
    let tfc = [ip.clone(), vec![0xaa; 4], vec![1, 2, 3, 4, 4, 4]].concat();
    seq += 1;
    let mut packet = handmade(&k, seq, &tfc);
    let opened = sa.open(&mut packet).unwrap();
    assert_eq!(&packet[opened.inner], &ip[..]);
    let drops = sa.counters().drops.snapshot();
    assert_eq!(drops.get(DropReason::BadPadding), 3);
    assert_eq!(drops.get(DropReason::BadInnerPacket), 2);
    assert_eq!(drops.get(DropReason::DummyPacket), 1);
}

#[test]
fn selectors_are_enforced() {
    let k = keys(0x43, Encryption::Aes256Gcm16, None, 4);
    let vpc = TrafficSelector {
        start: Ipv4Addr::new(10, 1, 0, 0),
        end: Ipv4Addr::new(10, 1, 255, 255),
        ..TrafficSelector::ANY
    };
    let lan = TrafficSelector {
        start: Ipv4Addr::new(10, 0, 0, 0),
        end: Ipv4Addr::new(10, 0, 255, 255),
        ..TrafficSelector::ANY
    };
    // Packets we receive come from the VPC (remote) to the LAN (local).
    let sa = inbound_for(&k, lan, vpc);
    let trailer = [1, 2, 2, 4];
    let mut seq = 0;
    let mut open = |src: Ipv4Addr, dst: Ipv4Addr| {
        seq += 1;
        let pt = [inner_v4(28, src, dst), trailer.to_vec()].concat();
        sa.open(&mut handmade(&k, seq, &pt))
    };
    assert!(open(Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 0, 0, 9)).is_ok());
    assert_eq!(
        open(Ipv4Addr::new(10, 2, 0, 1), Ipv4Addr::new(10, 0, 0, 9)),
        Err(DropReason::SelectorMismatch)
    );
    assert_eq!(
        open(Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(192, 0, 2, 1)),
        Err(DropReason::SelectorMismatch)
    );
}

/// An IPv6 packet of `len` octets (UDP, or `protocol` behind a destination-options header).
fn inner_v6(len: usize, src: &str, dst: &str, protocol: u8, dest_opts: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p[7] = 64;
    p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    p[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    if dest_opts {
        p[6] = 60;
        p[40] = protocol;
    } else {
        p[6] = protocol;
    }
    p
}

#[test]
fn ipv6_inner_packets_open_against_ipv6_selectors() {
    let k = keys(0x44, Encryption::Aes128Gcm16, None, 5);
    let mut seq = 0;
    // Padding 1, 2, pad length 2, next header: the IP version of `inner`.
    let mut open = |sa: &InboundSa, inner: Vec<u8>| {
        seq += 1;
        let next_header = if inner[0] >> 4 == 6 { 41 } else { 4 };
        let pt = [inner, vec![1, 2, 2, next_header]].concat();
        sa.open(&mut handmade(&k, seq, &pt))
    };
    let udp = |src: &str, dst: &str| inner_v6(60, src, dst, 17, false);

    // IPv4-only selectors (AWS's default, and everything before IPv6): IPv6 never matches.
    let v4_only = inbound_for(&k, TrafficSelector::ANY, TrafficSelector::ANY);
    assert_eq!(
        open(&v4_only, udp("fd00:2::1", "fd00:1::1")),
        Err(DropReason::SelectorMismatch)
    );

    // Packets we receive come from the VPC (remote, fd00:2::/64) to the LAN (local, fd00:1::/64).
    let range = |p: &str| Ipv6Range::prefix(p.parse().unwrap(), 64);
    let lan = TrafficSelector {
        v6: Some(range("fd00:1::")),
        ..TrafficSelector::ANY_V6
    };
    let vpc = TrafficSelector {
        v6: Some(range("fd00:2::")),
        ..TrafficSelector::ANY_V6
    };
    let sa = inbound_for(&k, lan, vpc);
    let opened = open(&sa, udp("fd00:2::1", "fd00:1::1")).unwrap();
    assert_eq!(opened.next_header, 41);
    assert_eq!(opened.inner.len(), 60);
    assert_eq!(
        open(&sa, udp("fd00:3::1", "fd00:1::1")),
        Err(DropReason::SelectorMismatch)
    );
    assert_eq!(
        open(&sa, udp("fd00:2::1", "2001:db8::1")),
        Err(DropReason::SelectorMismatch)
    );
    // An IPv6-only selector lets no IPv4 through.
    assert_eq!(
        open(
            &sa,
            inner_v4(28, Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 0, 0, 9))
        ),
        Err(DropReason::SelectorMismatch)
    );

    // A protocol selector names the upper layer, found behind extension headers.
    let tcp_only = TrafficSelector {
        protocol: 6,
        ..TrafficSelector::ANY_V6
    };
    let sa = inbound_for(&k, TrafficSelector::ANY_V6, tcp_only);
    assert!(open(&sa, inner_v6(68, "fd00:2::1", "fd00:1::1", 6, true)).is_ok());
    assert_eq!(
        open(&sa, inner_v6(68, "fd00:2::1", "fd00:1::1", 17, true)),
        Err(DropReason::SelectorMismatch)
    );
    // Truncated: the payload length claims more than arrived.
    let mut short = udp("fd00:2::1", "fd00:1::1");
    short[5] = 200;
    assert_eq!(open(&sa, short), Err(DropReason::BadInnerPacket));
}

#[test]
fn rekey_overlap_old_and_new_inbound_both_open() {
    let (old_ours, old_peer) = child_pair(
        TunnelKey::from(TunnelId::One),
        Encryption::Aes128Gcm16,
        None,
        0x1000,
        0x2000,
    );
    let (new_ours, new_peer) = child_pair(
        TunnelKey::from(TunnelId::One),
        Encryption::Aes128Gcm16,
        None,
        0x1001,
        0x2001,
    );
    let (ours, peer) = (SaTable::new(), SaTable::new());
    ours.install(&old_ours).unwrap();
    peer.install(&old_peer).unwrap();
    let in_flight_old = seal_packet(&peer, 80);

    // Rekey: we install the new pair; the peer has not switched yet.
    ours.install(&new_ours).unwrap();
    assert_eq!(
        ours.install_inbound(&new_ours),
        Err(InstallError::DuplicateSpi(EspSpi(0x1001)))
    );
    assert_eq!(
        ours.snapshot()
            .outbound(TunnelKey::from(TunnelId::One))
            .unwrap()
            .spi(),
        EspSpi(0x2001)
    );
    let (mut buf, inner) = lan_packet(80);
    let sealed = ours
        .seal(TunnelKey::from(TunnelId::One), &mut buf, inner)
        .unwrap();
    assert_eq!(&buf[sealed.range.start..][..4], &0x2001u32.to_be_bytes());
    assert_eq!(sealed.seq, 1, "a new SA starts its sequence numbers at 1");

    // The peer installs the new pair too and sends with the new SA.
    peer.install(&new_peer).unwrap();
    let from_new = seal_packet(&peer, 80);
    ours.open(&mut from_new.clone()).unwrap();
    // A packet sealed with the old SA still opens during the overlap.
    ours.open(&mut in_flight_old.clone()).unwrap();

    // Old inbound deleted: the old SPI is now unknown; counters of the old SA are kept.
    assert!(ours.remove_inbound(EspSpi(0x1000)));
    assert!(!ours.remove_inbound(EspSpi(0x1000)));
    let late_old = old_peer_packet(&old_peer);
    assert_eq!(ours.open(&mut late_old.clone()), Err(DropReason::UnknownSpi));
    let c = ours.counters();
    assert_eq!(c.tunnels[0].packets_in, 2);
    assert_eq!(c.tunnels[0].packets_out, 1);
    assert_eq!(c.inbound.len(), 1);
    assert_eq!(c.unattributed.get(DropReason::UnknownSpi), 1);

    // A stale delete of the old outbound SPI leaves the new outbound alone.
    assert!(!ours.remove_outbound(TunnelKey::from(TunnelId::One), EspSpi(0x2000)));
    assert!(ours.remove_outbound(TunnelKey::from(TunnelId::One), EspSpi(0x2001)));
    let (mut buf, inner) = lan_packet(40);
    assert_eq!(
        ours.seal(TunnelKey::from(TunnelId::One), &mut buf, inner),
        Err(SealError::NoSa)
    );
    assert_eq!(
        ours.counters().tunnels[0].packets_out,
        1,
        "retired counters are kept"
    );
}

fn old_peer_packet(old_peer: &ChildSa) -> Vec<u8> {
    let sa = OutboundSa::new(TunnelKey::from(TunnelId::One), &old_peer.outbound).unwrap();
    sa.set_last_seq(50);
    let (mut buf, inner) = lan_packet(40);
    let sealed = sa.seal(&mut buf, inner).unwrap();
    buf[sealed.range].to_vec()
}

#[test]
fn tunnels_are_independent() {
    let (one, _) = child_pair(
        TunnelKey::from(TunnelId::One),
        Encryption::Aes128Gcm16,
        None,
        0x1,
        0x2,
    );
    let (two, two_peer) = child_pair(
        TunnelKey::from(TunnelId::Two),
        Encryption::Aes256Gcm16,
        None,
        0x3,
        0x4,
    );
    let (ours, peer) = (SaTable::new(), SaTable::new());
    ours.install(&one).unwrap();
    ours.install(&two).unwrap();
    peer.install(&two_peer).unwrap();
    let (mut buf, inner) = lan_packet(60);
    let sealed = peer
        .seal(TunnelKey::from(TunnelId::Two), &mut buf, inner)
        .unwrap();
    let opened = ours.open(&mut buf[sealed.range]).unwrap();
    assert_eq!(opened.tunnel, TunnelKey::from(TunnelId::Two));
    ours.remove_tunnel(TunnelKey::from(TunnelId::Two));
    let snap = ours.snapshot();
    assert!(snap.outbound(TunnelKey::from(TunnelId::Two)).is_none());
    assert!(snap.outbound(TunnelKey::from(TunnelId::One)).is_some());
    assert!(snap.inbound(0x3).is_none());
    assert!(snap.inbound(0x1).is_some());
    assert_eq!(ours.counters().tunnels[1].packets_in, 1);
}

/// An AES-GCM outbound SA, and sealing one small packet with it.
fn gcm_outbound() -> OutboundSa {
    OutboundSa::new(
        TunnelKey::from(TunnelId::One),
        &keys(0x9, Encryption::Aes128Gcm16, None, 1),
    )
    .unwrap()
}

fn seal(sa: &OutboundSa) -> Result<Sealed, SealError> {
    let (mut buf, inner) = lan_packet(40);
    sa.seal(&mut buf, inner)
}

#[test]
fn sequence_exhaustion_and_rekey_signal() {
    let sa = gcm_outbound();
    sa.set_last_seq(SEQ_SOFT_LIMIT - 2);
    assert!(!seal(&sa).unwrap().rekey_needed);
    assert!(!sa.rekey_needed());
    assert!(seal(&sa).unwrap().rekey_needed);
    assert!(sa.rekey_needed());
    sa.set_last_seq(SEQ_HARD_LIMIT - 1);
    let last = seal(&sa).unwrap();
    assert_eq!(last.seq, u32::MAX);
    for _ in 0..3 {
        assert_eq!(seal(&sa), Err(SealError::SequenceExhausted));
    }
    assert_eq!(sa.last_seq(), SEQ_HARD_LIMIT);
    assert_eq!(sa.counters().packets(), 3);
}

#[test]
fn resumed_sa_continues_after_the_given_number_and_stops_at_its_limit() {
    let sa = gcm_outbound();
    let seal = |sa: &OutboundSa| seal(sa).map(|s| s.seq);
    sa.resume_after(1000);
    sa.set_seq_limit(1002);
    assert_eq!(seal(&sa), Ok(1001));
    // Never back: a smaller resume point is ignored.
    sa.resume_after(5);
    assert_eq!(seal(&sa), Ok(1002));
    assert_eq!(seal(&sa), Err(SealError::SequenceExhausted));
    sa.set_seq_limit(2000);
    assert_eq!(sa.seq_limit(), 2000);
    // The refused number is skipped, not reused.
    assert_eq!(seal(&sa), Ok(1004));
    sa.set_seq_limit(u64::MAX);
    assert_eq!(sa.seq_limit(), SEQ_HARD_LIMIT);
}

#[test]
fn seal_input_errors() {
    let sa = OutboundSa::new(
        TunnelKey::from(TunnelId::One),
        &keys(0x9, Encryption::Aes256Cbc, Some(Integrity::Sha2_512), 1),
    )
    .unwrap();
    assert_eq!(sa.headroom(), 24);
    assert_eq!(sa.tailroom(), 15 + 2 + 32);
    let (mut buf, inner) = lan_packet(40);
    assert_eq!(sa.seal(&mut buf, inner.start..inner.start), Err(SealError::NotIp));
    assert_eq!(sa.seal(&mut buf, 0..2000), Err(SealError::NotIp));
    buf[inner.start] = 0x15;
    assert_eq!(sa.seal(&mut buf, inner.clone()), Err(SealError::NotIp));
    buf[inner.start] = 0x45;
    assert_eq!(
        sa.seal(&mut buf[1..], inner.start - 1..inner.end - 1),
        Err(SealError::NoRoom)
    );
    let end = inner.end;
    assert_eq!(
        sa.seal(&mut buf[..end + 10], inner.clone()),
        Err(SealError::NoRoom)
    );
    // Failed attempts consumed no sequence number.
    assert_eq!(sa.seal(&mut buf, inner).unwrap().seq, 1);
}

#[test]
fn install_errors() {
    let (mut child, _) = child_pair(
        TunnelKey::from(TunnelId::One),
        Encryption::Aes128Gcm16,
        None,
        0x10,
        0x20,
    );
    child.replay_window = 32;
    let table = SaTable::new();
    assert_eq!(table.install(&child), Err(InstallError::ReplayWindowSize(32)));
    child.replay_window = 2048;
    child.inbound.spi = EspSpi(0);
    assert_eq!(table.install(&child), Err(InstallError::ZeroSpi));
    child.inbound.spi = EspSpi(0x10);
    child.outbound.encryption_key = Secret::new(vec![0; 3]);
    assert!(matches!(table.install(&child), Err(InstallError::Cipher(_))));
    assert!(
        table.snapshot().inbound(0x10).is_none(),
        "a failed install changes nothing"
    );
}

#[test]
fn one_tx_and_one_rx_thread_while_the_control_plane_rekeys() {
    let (ours_child, peer_child) = child_pair(
        TunnelKey::from(TunnelId::One),
        Encryption::Aes128Gcm16,
        None,
        0x10,
        0x20,
    );
    let (ours, peer) = (Arc::new(SaTable::new()), Arc::new(SaTable::new()));
    ours.install(&ours_child).unwrap();
    peer.install(&peer_child).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    let sender = {
        let mut reader = ours.reader();
        std::thread::spawn(move || {
            for n in 0..2000 {
                let (mut buf, inner) = lan_packet(20 + n % 200);
                if let Ok(sealed) = reader.seal(TunnelKey::from(TunnelId::One), &mut buf, inner) {
                    tx.send(buf[sealed.range].to_vec()).unwrap();
                }
            }
        })
    };
    let receiver = {
        let mut reader = peer.reader();
        std::thread::spawn(move || {
            let mut ok = 0;
            while let Ok(mut p) = rx.recv() {
                if reader.open(&mut p).is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    };
    // Meanwhile the control plane churns both tables with extra SAs (and back).
    for i in 0..50u32 {
        let (extra, extra_peer) = child_pair(
            TunnelKey::from(TunnelId::Two),
            Encryption::Aes256Gcm16,
            None,
            0x100 + i,
            0x200 + i,
        );
        ours.install(&extra).unwrap();
        peer.install_inbound(&extra_peer).unwrap();
        assert!(peer.remove_inbound(EspSpi(0x200 + i)));
    }
    sender.join().unwrap();
    assert_eq!(receiver.join().unwrap(), 2000);
    assert_eq!(peer.counters().tunnels[0].packets_in, 2000);
}

#[test]
fn counters_serialize_for_status() {
    let (ours, peer) = tables(Encryption::Aes128Gcm16, None);
    let mut p = seal_packet(&ours, 30);
    peer.open(&mut p.clone()).unwrap();
    assert_eq!(peer.open(&mut p), Err(DropReason::ReplayDuplicate));
    let json = serde_json::to_value(peer.counters()).unwrap();
    assert_eq!(json["tunnels"][0]["packets_in"], 1);
    assert_eq!(json["tunnels"][0]["drops"]["replay_duplicate"], 1);
    assert_eq!(json["inbound"][0]["spi"], 0x2000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Hostile input: arbitrary bytes, sometimes behind a valid SPI and sequence number, never
    /// panic and are always counted.
    #[test]
    fn open_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
        valid_spi in any::<bool>(),
        suite in 0usize..10,
    ) {
        let (encryption, integrity) = suites()[suite];
        let (_, peer) = tables(encryption, integrity);
        if valid_spi && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&0x2000u32.to_be_bytes());
        }
        let result = peer.open(&mut bytes);
        prop_assert!(result.is_err());
        let c = peer.counters();
        prop_assert_eq!(c.tunnels[0].drops.total() + c.unattributed.total(), 1);
    }

    /// Any inner packet size seals and opens back to the same bytes.
    #[test]
    fn seal_open_round_trip(len in 20usize..1600, suite in 0usize..10) {
        let (encryption, integrity) = suites()[suite];
        let (ours, peer) = tables(encryption, integrity);
        let (mut buf, inner) = lan_packet(len);
        let original = buf[inner.clone()].to_vec();
        let sealed = ours.seal(TunnelKey::from(TunnelId::One), &mut buf, inner).unwrap();
        let esp = &mut buf[sealed.range];
        let opened = peer.open(esp).unwrap();
        prop_assert_eq!(&esp[opened.inner], &original[..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Authenticated garbage: arbitrary plaintext sealed with the SA's real keys reaches the
    /// trailer and inner-header parsing, which must drop (or accept) without panicking.
    #[test]
    fn open_never_panics_on_authenticated_garbage(
        plaintext in proptest::collection::vec(any::<u8>(), 0..120),
        suite in 0usize..10,
    ) {
        let (encryption, integrity) = suites()[suite];
        let (_, peer) = child_pair(TunnelKey::from(TunnelId::One), encryption, integrity, 0x1000, 0x2000);
        let sa = InboundSa::new(
            TunnelKey::from(TunnelId::One),
            &peer.inbound,
            64,
            TrafficSelector::ANY,
            TrafficSelector::ANY,
        )
        .unwrap();
        let block = if encryption.is_aead() { 4 } else { 16 };
        let aligned = &plaintext[..plaintext.len() - plaintext.len() % block];
        let mut packet = handmade(&peer.inbound, 1, aligned);
        match sa.open(&mut packet) {
            Ok(opened) => {
                prop_assert!(opened.inner.end <= packet.len());
                prop_assert!(opened.inner.len() >= 20);
            }
            Err(reason) => prop_assert_eq!(sa.counters().drops.snapshot().get(reason), 1),
        }
    }
}
