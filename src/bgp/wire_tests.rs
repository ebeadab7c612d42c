//! Fixed bytes both ways for every message and attribute cgwd uses, the errors and their
//! NOTIFICATION codes, and round trips.

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// One message from its wire bytes (framing and decoding).
fn parse(bytes: &[u8], four_octet: bool) -> Result<Message, WireError> {
    let (kind, body, used) = frame(bytes)?.expect("complete");
    assert_eq!(used, bytes.len());
    decode(kind, body, four_octet)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn keepalive() {
    let bytes = hex(&format!("{MARKER} 0013 04"));
    assert_eq!(parse(&bytes, true), Ok(Message::Keepalive));
    assert_eq!(Message::Keepalive.to_bytes(true), bytes);
}

#[test]
fn open_with_aws_capabilities() {
    // AS 64512, hold 30 s, identifier 169.254.10.5: IPv4 unicast, route refresh, 4-octet AS.
    let bytes = hex(&format!(
        "{MARKER} 002d 01 04 fc00 001e a9fe0a05 10 02 0e 01 04 0001 00 01 02 00 41 04 0000fc00"
    ));
    let open = Open::ours(64512, 30, Ipv4Addr::new(169, 254, 10, 5), false);
    assert_eq!(parse(&bytes, false), Ok(Message::Open(open.clone())));
    assert_eq!(Message::Open(open.clone()).to_bytes(false), bytes);
    assert_eq!(open.asn(), 64512);
    // A 4-octet AS (AWS's 4200000000 range) rides in the capability, AS_TRANS in the field.
    let big = Open::ours(4_200_000_000, 30, Ipv4Addr::new(169, 254, 10, 5), true);
    assert_eq!(big.my_as, AS_TRANS);
    let back = parse(&Message::Open(big.clone()).to_bytes(false), false).unwrap();
    assert_eq!(back, Message::Open(big));
    if let Message::Open(o) = back {
        assert_eq!(o.asn(), 4_200_000_000);
        assert!(o.has(&Capability::Multiprotocol {
            afi: AFI_IPV6,
            safi: SAFI_UNICAST
        }));
    }
}

#[test]
fn open_errors_name_their_notification() {
    let v3 = hex(&format!("{MARKER} 001d 01 03 fc00 001e a9fe0a05 00"));
    let e = parse(&v3, false).unwrap_err();
    assert_eq!((e.code, e.subcode, e.data.as_slice()), (2, 1, &[0u8, 4][..]));
    let hold1 = hex(&format!("{MARKER} 001d 01 04 fc00 0001 a9fe0a05 00"));
    assert_eq!(
        parse(&hold1, false).unwrap_err().subcode,
        code::OPEN_UNACCEPTABLE_HOLD_TIME
    );
    let id0 = hex(&format!("{MARKER} 001d 01 04 fc00 001e 00000000 00"));
    assert_eq!(parse(&id0, false).unwrap_err().subcode, code::OPEN_BAD_IDENTIFIER);
    let auth_param = hex(&format!("{MARKER} 0020 01 04 fc00 001e a9fe0a05 03 01 01 00"));
    assert_eq!(
        parse(&auth_param, false).unwrap_err().subcode,
        code::OPEN_UNSUPPORTED_PARAMETER
    );
    // Unknown capabilities (graceful restart 64, here) are kept, not refused.
    let gr = hex(&format!("{MARKER} 0021 01 04 fc00 001e a9fe0a05 04 02 02 40 00"));
    match parse(&gr, false).unwrap() {
        Message::Open(o) => assert_eq!(o.capabilities, [Capability::Other { code: 64 }]),
        m => panic!("{m:?}"),
    }
}

#[test]
fn update_announcing_a_vpc_prefix() {
    // ORIGIN IGP, AS_PATH [64512] (4-octet), NEXT_HOP 169.254.10.5, MED 100; NLRI 10.100.0.0/16.
    let bytes = hex(&format!(
        "{MARKER} 0035 02 0000 001b 40 01 01 00 40 02 06 02 01 0000fc00 40 03 04 a9fe0a05 80 04 04 00000064 10 0a64"
    ));
    let u = Update {
        withdrawn: vec![],
        attributes: Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![Segment::Sequence(vec![64512])],
            next_hop: Some(Ipv4Addr::new(169, 254, 10, 5)),
            med: Some(100),
            ..Attributes::default()
        },
        announced: vec![net("10.100.0.0/16")],
        treat_as_withdraw: false,
    };
    assert_eq!(parse(&bytes, true), Ok(Message::Update(u.clone())));
    assert_eq!(Message::Update(u.clone()).to_bytes(true), bytes);
    // The same on a 2-octet session: AS_PATH entries take 2 octets.
    let two = Message::Update(u.clone()).to_bytes(false);
    assert_eq!(parse(&two, false), Ok(Message::Update(u)));
    assert_eq!(two.len(), bytes.len() - 2);
}

#[test]
fn update_withdrawing_and_end_of_rib() {
    let bytes = hex(&format!("{MARKER} 001a 02 0003 10 0a64 0000"));
    let u = Update {
        withdrawn: vec![net("10.100.0.0/16")],
        ..Update::default()
    };
    assert_eq!(parse(&bytes, true), Ok(Message::Update(u.clone())));
    assert_eq!(Message::Update(u).to_bytes(true), bytes);
    let eor = hex(&format!("{MARKER} 0017 02 0000 0000"));
    match parse(&eor, true).unwrap() {
        Message::Update(u) => assert!(u.is_end_of_rib()),
        m => panic!("{m:?}"),
    }
}

#[test]
fn ipv6_prefixes_ride_in_mp_reach_and_unreach() {
    let u = Update {
        withdrawn: vec![net("2001:db8:9::/48")],
        attributes: Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![Segment::Sequence(vec![4_200_000_001, 64512])],
            mp_next_hop: Some("fd00:a::1".parse().unwrap()),
            ..Attributes::default()
        },
        announced: vec![net("2001:db8:1::/48"), net("2600::/12")],
        treat_as_withdraw: false,
    };
    let bytes = Message::Update(u.clone()).to_bytes(true);
    // MP_REACH_NLRI: optional, type 14, AFI 2 SAFI 1, 16-octet next hop.
    let mp = hex("80 0e 1f 0002 01 10 fd00000a000000000000000000000001 00 30 20010db80001 0c 2600");
    assert!(bytes.windows(mp.len()).any(|w| w == mp), "{bytes:02x?}");
    assert_eq!(parse(&bytes, true), Ok(Message::Update(u)));
}

#[test]
fn as4_path_is_merged_on_a_two_octet_session() {
    // A 2-octet session: AS_PATH [65000, AS_TRANS], AS4_PATH [4200000000].
    let bytes = hex(&format!(
        "{MARKER} 0037 02 0000 001d 40 01 01 00 40 02 06 02 02 fde8 5ba0 40 03 04 a9fe0a05 c0 11 06 02 01 fa56ea00 10 0a64"
    ));
    match parse(&bytes, false).unwrap() {
        Message::Update(u) => {
            assert_eq!(
                u.attributes.as_path,
                [
                    Segment::Sequence(vec![65000]),
                    Segment::Sequence(vec![4_200_000_000])
                ]
            );
            assert_eq!(u.attributes.as_path_len(), 2);
            assert_eq!(u.attributes.first_as(), Some(65000));
        }
        m => panic!("{m:?}"),
    }
}

#[test]
fn notification_and_route_refresh() {
    let cease = hex(&format!("{MARKER} 0015 03 06 02"));
    let n = Notification {
        code: code::CEASE,
        subcode: code::CEASE_ADMIN_SHUTDOWN,
        data: vec![],
    };
    assert_eq!(parse(&cease, true), Ok(Message::Notification(n.clone())));
    assert_eq!(Message::Notification(n).to_bytes(true), cease);
    let rr = hex(&format!("{MARKER} 0017 05 0001 00 01"));
    let m = Message::RouteRefresh {
        afi: AFI_IPV4,
        safi: SAFI_UNICAST,
    };
    assert_eq!(parse(&rr, true), Ok(m.clone()));
    assert_eq!(m.to_bytes(true), rr);
}

#[test]
fn header_errors() {
    let mut bad_marker = hex(&format!("{MARKER} 0013 04"));
    bad_marker[3] = 0;
    assert_eq!(
        frame(&bad_marker).unwrap_err().subcode,
        code::HEADER_NOT_SYNCHRONIZED
    );
    let long_keepalive = hex(&format!("{MARKER} 0014 04 00"));
    let e = frame(&long_keepalive).unwrap_err();
    assert_eq!((e.code, e.subcode, e.data.as_slice()), (1, 2, &[0u8, 0x14][..]));
    let huge = hex(&format!("{MARKER} 1001 02"));
    assert_eq!(frame(&huge).unwrap_err().subcode, code::HEADER_BAD_LENGTH);
    let kind9 = hex(&format!("{MARKER} 0013 09"));
    assert_eq!(frame(&kind9).unwrap_err().subcode, code::HEADER_BAD_TYPE);
    // Incomplete: wait for more.
    let partial = hex(&format!("{MARKER} 0035 02 0000"));
    assert_eq!(frame(&partial), Ok(None));
    assert_eq!(frame(&partial[..10]), Ok(None));
}

#[test]
fn update_errors_and_treat_as_withdraw() {
    // Prefix length 33: the NLRI cannot be read, the session resets (RFC 7606 §5.3).
    let bad_prefix = hex(&format!("{MARKER} 001d 02 0000 0000 21 0a640000 01"));
    assert_eq!(
        parse(&bad_prefix, true).unwrap_err().subcode,
        code::UPDATE_INVALID_NETWORK
    );
    // Attribute list longer than the message.
    let overrun = hex(&format!("{MARKER} 0017 02 0000 00ff"));
    assert_eq!(
        parse(&overrun, true).unwrap_err().subcode,
        code::UPDATE_MALFORMED_ATTRIBUTES
    );
    // ORIGIN 5: survivable, the prefix is treated as withdrawn (RFC 7606 §7.1).
    let origin5 = hex(&format!(
        "{MARKER} 002e 02 0000 0014 40 01 01 05 40 02 06 02 01 0000fc00 40 03 04 a9fe0a05 10 0a64"
    ));
    match parse(&origin5, true).unwrap() {
        Message::Update(u) => {
            assert!(u.treat_as_withdraw);
            assert_eq!(u.announced, [net("10.100.0.0/16")]);
        }
        m => panic!("{m:?}"),
    }
    // No NEXT_HOP for IPv4 NLRI: treat-as-withdraw too.
    let no_nh = hex(&format!(
        "{MARKER} 0027 02 0000 000d 40 01 01 00 40 02 06 02 01 0000fc00 10 0a64"
    ));
    match parse(&no_nh, true).unwrap() {
        Message::Update(u) => assert!(u.treat_as_withdraw),
        m => panic!("{m:?}"),
    }
    // An unknown well-known attribute (type 99, not optional) resets.
    let unknown = hex(&format!("{MARKER} 001a 02 0000 0003 40 63 00"));
    assert_eq!(
        parse(&unknown, true).unwrap_err().subcode,
        code::UPDATE_UNRECOGNIZED_WELL_KNOWN
    );
    // An unknown optional one (communities, 8) is skipped.
    let communities = hex(&format!("{MARKER} 001e 02 0000 0007 c0 08 04 fde80064"));
    assert!(matches!(parse(&communities, true), Ok(Message::Update(_))));
}

fn arb_v4_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn arb_v6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

proptest! {
    /// Any UPDATE cgwd builds reads back the same, on either AS width that fits its numbers.
    #[test]
    fn updates_round_trip(
        withdrawn in proptest::collection::vec(prop_oneof![arb_v4_prefix(), arb_v6_prefix()], 0..20),
        announced4 in proptest::collection::vec(arb_v4_prefix(), 1..20),
        announced6 in proptest::collection::vec(arb_v6_prefix(), 0..10),
        path in proptest::collection::vec(1u32..=u32::MAX, 1..10),
        med in proptest::option::of(any::<u32>()),
    ) {
        let mut announced = announced4;
        announced.extend(announced6.iter().copied());
        let u = Update {
            withdrawn,
            attributes: Attributes {
                origin: Some(Origin::Igp),
                as_path: vec![Segment::Sequence(path)],
                next_hop: Some(Ipv4Addr::new(169, 254, 10, 6)),
                med,
                mp_next_hop: (!announced6.is_empty()).then(|| "fd00::2".parse().unwrap()),
                ..Attributes::default()
            },
            announced,
            treat_as_withdraw: false,
        };
        let bytes = Message::Update(u.clone()).to_bytes(true);
        let (kind, body, used) = frame(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        let back = decode(kind, body, true).unwrap();
        // The decoder lists IPv4 prefixes (body) before IPv6 ones (MP attributes), as sent.
        let mut want = u.clone();
        want.withdrawn.sort_by_key(|n| matches!(n, IpNet::V6(_)));
        prop_assert_eq!(back, Message::Update(want));
    }

    /// Arbitrary bytes never panic; a framed message decodes or fails with a NOTIFICATION code.
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), kind in 1u8..=5, four in any::<bool>()) {
        let mut bytes = hex(MARKER);
        let len = (HEADER_LEN + tail.len()) as u16;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&tail);
        if let Ok(Some((k, body, _))) = frame(&bytes)
            && let Err(e) = decode(k, body, four)
        {
            prop_assert!((1..=7).contains(&e.code));
        }
        let _ = decode(kind, &tail, four);
    }
}
