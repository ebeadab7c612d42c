//! Tests for the IKE codec against fixed bytes laid out by hand from RFC 7296 §3.

use std::net::Ipv4Addr;

use super::sk::{Fragment, SkParams, emit_sk_message, emit_skf_message, padded_len, strip_padding};
use super::*;

/// Decodes whitespace-separated hex; `#` starts a comment to the end of the line.
fn hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.chars().filter(|c| c.is_ascii_hexdigit()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd hex digit count");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

// An IKE_SA_INIT request as strongSwan sends one to AWS, laid out by hand from RFC 7296 §3.1 (header),
// §3.3 (SA), §3.4 (KE), §3.9 (Nonce), §3.10 (Notify, NAT_DETECTION_* per §2.23, fragmentation per
// RFC 7383 §2.3) and §3.12 (Vendor ID: MD5("strongSwan")).
const SA_INIT_REQUEST: &str = "
    0011223344556677 0000000000000000   # SPIi, SPIr
    21 20 22 08 00000000 0000010c       # next SA, v2.0, IKE_SA_INIT, I, msgid 0, length 268
    22 00 0030                          # SA, next KE, length 48
      00 00 002c 01 01 00 04            #   proposal 1 (last), IKE, no SPI, 4 transforms, len 44
        03 00 000c 01 00 000c 800e 0080 #     ENCR AES_CBC, key length 128
        03 00 0008 02 00 0005           #     PRF HMAC_SHA2_256
        03 00 0008 03 00 000c           #     INTEG HMAC_SHA2_256_128
        00 00 0008 04 00 0013           #     DH 19 (last)
    28 00 0048 0013 0000                # KE, next Nonce, length 72, group 19
      0102030405060708090a0b0c0d0e0f10 1112131415161718191a1b1c1d1e1f20
      2122232425262728292a2b2c2d2e2f30 3132333435363738393a3b3c3d3e3f40
    29 00 0024                          # Nonce, next N, length 36
      a0a1a2a3a4a5a6a7a8a9aaabacadaeaf b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
    29 00 001c 00 00 4004               # N(NAT_DETECTION_SOURCE_IP), length 28
      c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3
    29 00 001c 00 00 4005               # N(NAT_DETECTION_DESTINATION_IP), length 28
      d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7
    2b 00 0008 00 00 402e               # N(IKEV2_FRAGMENTATION_SUPPORTED), next V, length 8
    00 00 0014                          # V, last, length 20
      882fe56d6fd20dbc2251613b2ebe5beb
";

// The matching IKE_SA_INIT response (same sources): SPIr set, R flag, the chosen proposal, and a CERTREQ
// (§3.7, X.509 signature encoding, one SHA-1 CA hash), and an unknown non-critical payload type 200 at
// the end, which must be kept (and ignored by the IKE layer).
const SA_INIT_RESPONSE: &str = "
    0011223344556677 8899aabbccddeeff   # SPIi, SPIr
    21 20 22 20 00000000 00000118       # next SA, v2.0, IKE_SA_INIT, R, msgid 0, length 280
    22 00 0030                          # SA, next KE, length 48
      00 00 002c 01 01 00 04
        03 00 000c 01 00 000c 800e 0080
        03 00 0008 02 00 0005
        03 00 0008 03 00 000c
        00 00 0008 04 00 0013
    28 00 0048 0013 0000                # KE, group 19
      4142434445464748494a4b4c4d4e4f50 5152535455565758595a5b5c5d5e5f60
      6162636465666768696a6b6c6d6e6f70 7172737475767778797a7b7c7d7e7f80
    29 00 0024                          # Nonce
      f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff 000102030405060708090a0b0c0d0e0f
    29 00 001c 00 00 4004               # N(NAT_DETECTION_SOURCE_IP)
      101112131415161718191a1b1c1d1e1f20212223
    29 00 001c 00 00 4005               # N(NAT_DETECTION_DESTINATION_IP)
      2425262728292a2b2c2d2e2f3031323334353637
    26 00 0008 00 00 402e               # N(IKEV2_FRAGMENTATION_SUPPORTED), next CERTREQ
    c8 00 0019 04                       # CERTREQ, next 200, length 25, X509_SIGNATURE
      38393a3b3c3d3e3f40414243444546474849 4a4b
    00 00 0007 010203                   # type 200, not critical, length 7
";

fn sa_init_proposal() -> ProposalRepr {
    ProposalRepr {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![
            TransformRepr::with_key_length(TransformType::ENCR, 12, 128),
            TransformRepr::new(TransformType::PRF, 5),
            TransformRepr::new(TransformType::INTEG, 12),
            TransformRepr::new(TransformType::DH, 19),
        ],
    }
}

fn sa_init_request_repr() -> (HeaderRepr, Vec<PayloadRepr>) {
    let header = HeaderRepr {
        spi_i: 0x0011_2233_4455_6677,
        spi_r: 0,
        next_payload: PayloadType::SA,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: Flags::INITIATOR,
        message_id: 0,
        length: 268,
    };
    let payloads = vec![
        PayloadRepr::Sa(SaRepr {
            proposals: vec![sa_init_proposal()],
        }),
        PayloadRepr::Ke {
            group: 19,
            data: (1..=0x40).collect(),
        },
        PayloadRepr::Nonce((0xa0..=0xbf).collect()),
        PayloadRepr::Notify(NotifyRepr::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            (0xc0..=0xd3).collect(),
        )),
        PayloadRepr::Notify(NotifyRepr::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            (0xd4..=0xe7).collect(),
        )),
        PayloadRepr::Notify(NotifyRepr::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])),
        PayloadRepr::VendorId(hex("882fe56d6fd20dbc2251613b2ebe5beb")),
    ];
    (header, payloads)
}

#[test]
fn decodes_sa_init_request() {
    let bytes = hex(SA_INIT_REQUEST);
    assert_eq!(bytes.len(), 268);
    let message = Message::parse(&bytes).unwrap();
    let (header, payloads) = sa_init_request_repr();
    assert_eq!(message.header, header);
    assert_eq!(message.payloads().unwrap(), payloads);
    assert_eq!(message.encrypted().unwrap(), None);
}

#[test]
fn encodes_sa_init_request() {
    let (header, payloads) = sa_init_request_repr();
    let mut out = vec![0xee]; // emit appends: existing bytes stay
    emit_message(&HeaderRepr { length: 0, ..header }, &payloads, &mut out).unwrap();
    assert_eq!(out[0], 0xee);
    assert_eq!(&out[1..], &hex(SA_INIT_REQUEST)[..]);
}

#[test]
fn decodes_sa_init_response() {
    let bytes = hex(SA_INIT_RESPONSE);
    assert_eq!(bytes.len(), 280);
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.header.spi_r, 0x8899_aabb_ccdd_eeff);
    assert!(message.header.flags.response());
    assert!(!message.header.flags.initiator());
    let payloads = message.payloads().unwrap();
    let kinds: Vec<PayloadType> = payloads.iter().map(PayloadRepr::kind).collect();
    assert_eq!(
        kinds,
        [
            PayloadType::SA,
            PayloadType::KE,
            PayloadType::NONCE,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
            PayloadType::CERTREQ,
            PayloadType(200)
        ]
    );
    assert_eq!(
        payloads[6],
        PayloadRepr::CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: (0x38..=0x4b).collect()
        }
    );
    assert_eq!(
        payloads[7],
        PayloadRepr::Unknown {
            kind: PayloadType(200),
            critical: false,
            body: vec![1, 2, 3]
        }
    );
    // Re-emitting reproduces the bytes exactly.
    let mut out = Vec::new();
    emit_message(&message.header, &payloads, &mut out).unwrap();
    assert_eq!(out, bytes);
}

// ---- header: smoltcp's six ----

fn header_bytes() -> Vec<u8> {
    hex(SA_INIT_REQUEST)[..28].to_vec()
}

#[test]
fn header_deconstruct() {
    let bytes = header_bytes();
    let h = Header::new_checked(&bytes[..]).unwrap();
    assert_eq!(h.spi_i(), 0x0011_2233_4455_6677);
    assert_eq!(h.spi_r(), 0);
    assert_eq!(h.next_payload(), PayloadType::SA);
    assert_eq!(h.major_version(), 2);
    assert_eq!(h.minor_version(), 0);
    assert_eq!(h.exchange_type(), ExchangeType::IKE_SA_INIT);
    assert_eq!(h.flags(), Flags::INITIATOR);
    assert_eq!(h.message_id(), 0);
    assert_eq!(h.length(), 268);
}

#[test]
fn header_construct() {
    let mut bytes = vec![0xa5; 28];
    let mut h = Header::new_unchecked(&mut bytes[..]);
    h.set_spi_i(0x0011_2233_4455_6677);
    h.set_spi_r(0);
    h.set_next_payload(PayloadType::SA);
    h.set_version_2_0();
    h.set_exchange_type(ExchangeType::IKE_SA_INIT);
    h.set_flags(Flags::INITIATOR);
    h.set_message_id(0);
    h.set_length(268);
    assert_eq!(bytes, header_bytes());
}

#[test]
fn header_check_len() {
    let bytes = header_bytes();
    assert_eq!(Header::new_checked(&bytes[..27]).unwrap_err(), Error::Truncated);
    assert!(Header::new_checked(&bytes[..]).is_ok());
}

#[test]
fn header_parse() {
    let bytes = header_bytes();
    let repr = HeaderRepr::parse(&Header::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(repr, sa_init_request_repr().0);
}

#[test]
fn header_emit() {
    let mut out = Vec::new();
    sa_init_request_repr().0.emit(&mut out);
    assert_eq!(out, header_bytes());
}

#[test]
fn header_buffer_len() {
    assert_eq!(sa_init_request_repr().0.buffer_len(), 28);
}

#[test]
fn header_ignores_reserved_flag_bits_and_minor_version() {
    let mut bytes = hex(SA_INIT_REQUEST);
    bytes[17] = 0x21; // v2.1
    bytes[19] = 0x08 | 0x07 | 0x80;
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.header.flags, Flags::INITIATOR);
}

// ---- rejects ----

#[test]
fn rejects_short_header() {
    let bytes = hex(SA_INIT_REQUEST);
    for len in 0..28 {
        assert_eq!(Message::parse(&bytes[..len]).unwrap_err(), Error::Truncated);
    }
}

#[test]
fn rejects_major_version_other_than_2() {
    let mut bytes = hex(SA_INIT_REQUEST);
    bytes[17] = 0x30;
    let err = Message::parse(&bytes).unwrap_err();
    assert_eq!(err, Error::UnsupportedVersion(3));
    assert_eq!(err.notify(), NotifyType::INVALID_MAJOR_VERSION);
    bytes[17] = 0x10;
    assert_eq!(Message::parse(&bytes).unwrap_err(), Error::UnsupportedVersion(1));
}

#[test]
fn rejects_length_mismatch() {
    let bytes = hex(SA_INIT_REQUEST);
    // Datagram shorter than Length.
    assert_eq!(
        Message::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
        Error::Truncated
    );
    // Trailing bytes beyond Length.
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Message::parse(&long).unwrap_err(), Error::BadLength);
    // Length smaller than the header.
    let mut tiny = bytes[..28].to_vec();
    tiny[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert_eq!(Message::parse(&tiny).unwrap_err(), Error::BadLength);
}

#[test]
fn rejects_trailing_bytes_after_last_payload() {
    let mut bytes = hex(SA_INIT_REQUEST);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let len = bytes.len() as u32;
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.payloads().unwrap_err(), Error::BadLength);
    assert_eq!(message.encrypted().unwrap_err(), Error::BadLength);
}

#[test]
fn rejects_payload_length_below_4() {
    for bad in 0..4u16 {
        let mut body = vec![0, 0];
        body.extend_from_slice(&bad.to_be_bytes());
        assert_eq!(
            parse_payloads(PayloadType::VENDOR_ID, &body).unwrap_err(),
            Error::BadLength
        );
    }
}

#[test]
fn rejects_payload_length_beyond_buffer() {
    let body = hex("00 00 0009 0102 0304"); // says 9, has 8
    assert_eq!(
        parse_payloads(PayloadType::VENDOR_ID, &body).unwrap_err(),
        Error::BadLength
    );
}

#[test]
fn rejects_chain_that_ends_early() {
    // Next Payload says another payload follows, but the bytes end.
    let body = hex("2b 00 0005 ff");
    assert_eq!(
        parse_payloads(PayloadType::VENDOR_ID, &body).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn rejects_sa_with_zero_proposals() {
    assert_eq!(
        parse_payloads(PayloadType::SA, &hex("00 00 0004")).unwrap_err(),
        Error::Malformed("SA without proposals")
    );
}

#[test]
fn rejects_transform_length_mismatch() {
    // Transform length says 0x0d but the attribute is 4 octets: 12 fits, 13 overruns the proposal.
    let sa = hex("00 00 0014 01 01 00 01   00 00 000d 01 00 000c 800e 0080");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
    // Transform length 7 (< 8).
    let sa = hex("00 00 0010 01 01 00 01   00 00 0007 01 00 000c");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
    // Num Transforms 2 but the transform says it is the last.
    let sa = hex("00 00 0010 01 01 00 02   00 00 0008 01 00 000c");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
    // Num Transforms 1 but the transform says more follow.
    let sa = hex("00 00 0018 01 01 00 01   03 00 0008 01 00 000c  00 00 0008 02 00 0005");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
}

#[test]
fn rejects_proposal_length_mismatch() {
    // Proposal length 0x14 but its transforms end at 0x10.
    let sa = hex("00 00 0014 01 01 00 01   00 00 0008 01 00 000c  00000000");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
    // Last Substruc says more proposals, but the SA ends.
    let sa = hex("02 00 0010 01 01 00 01   00 00 0008 01 00 000c");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::Truncated);
    // Trailing bytes after the last proposal.
    let sa = hex("00 00 0010 01 01 00 01   00 00 0008 01 00 000c 00");
    assert_eq!(SaRepr::parse(&sa).unwrap_err(), Error::BadLength);
    // Bad SPI size.
    let sa = hex("00 00 0011 01 03 01 01 aa  00 00 0008 01 00 000c");
    assert_eq!(
        SaRepr::parse(&sa).unwrap_err(),
        Error::Malformed("proposal SPI size not 0, 4 or 8")
    );
}

#[test]
fn rejects_too_many_payloads() {
    let one = hex("2b 00 0004");
    let mut body = one.repeat(MAX_PAYLOADS);
    // The last one still says another follows.
    body.extend_from_slice(&hex("00 00 0004"));
    assert_eq!(
        parse_payloads(PayloadType::VENDOR_ID, &body).unwrap_err(),
        Error::TooMany
    );
    let mut ok = one.repeat(MAX_PAYLOADS - 1);
    ok.extend_from_slice(&hex("00 00 0004"));
    assert_eq!(
        parse_payloads(PayloadType::VENDOR_ID, &ok).unwrap().len(),
        MAX_PAYLOADS
    );
}

#[test]
fn rejects_unknown_critical_payload() {
    let err = parse_payloads(PayloadType(200), &hex("00 80 0004")).unwrap_err();
    assert_eq!(err, Error::UnsupportedCritical(PayloadType(200)));
    assert_eq!(err.notify(), NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
    assert_eq!(err.notify_data(), Some(200));
    // The critical bit is ignored on payload types RFC 7296 defines (§3.2).
    let payloads = parse_payloads(PayloadType::CP, &hex("00 80 0004")).unwrap();
    assert_eq!(
        payloads,
        [PayloadRepr::Unknown {
            kind: PayloadType::CP,
            critical: true,
            body: vec![]
        }]
    );
    let payloads = parse_payloads(PayloadType::VENDOR_ID, &hex("00 80 0005 aa")).unwrap();
    assert_eq!(payloads, [PayloadRepr::VendorId(vec![0xaa])]);
}

#[test]
fn rejects_bad_nonce_lengths() {
    for len in [0usize, 15, 257] {
        let mut body = vec![0, 0];
        body.extend_from_slice(&((4 + len) as u16).to_be_bytes());
        body.resize(4 + len, 7);
        assert_eq!(
            parse_payloads(PayloadType::NONCE, &body).unwrap_err(),
            Error::Malformed("nonce not 16..=256 octets")
        );
    }
}

// ---- payload bodies: fixed bytes both ways ----

fn round_trip_one(payload: &PayloadRepr, expected: &str) {
    let bytes = hex(expected);
    let mut out = Vec::new();
    assert_eq!(
        emit_payloads(std::slice::from_ref(payload), &mut out),
        Ok(payload.kind())
    );
    assert_eq!(out, bytes, "emit {payload:?}");
    assert_eq!(payload.buffer_len(), bytes.len());
    let view = GenericPayload::new_checked(&bytes[..]).unwrap();
    assert_eq!(usize::from(view.payload_length()), bytes.len());
    assert_eq!(view.body().len(), payload.body_len());
    assert_eq!(
        parse_payloads(payload.kind(), &bytes).unwrap(),
        std::slice::from_ref(payload)
    );
}

#[test]
fn id_payload() {
    // RFC 7296 §3.5: ID Type ID_IPV4_ADDR, 3 reserved, 192.0.2.1.
    let id = IdRepr::from_ip(Ipv4Addr::new(192, 0, 2, 1).into());
    round_trip_one(&PayloadRepr::IdI(id.clone()), "00 00 000c 01 000000 c0000201");
    round_trip_one(&PayloadRepr::IdR(id.clone()), "00 00 000c 01 000000 c0000201");
    assert_eq!(id.body_bytes(), hex("01 000000 c0000201"));
    assert_eq!(id.ip(), Some(Ipv4Addr::new(192, 0, 2, 1).into()));
    assert_eq!(IdRepr::fqdn("a.b").ip(), None);
    // ID_IPV6_ADDR (5): the 16 octets of 2001:db8::1.
    let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    let id = IdRepr::from_ip(v6);
    round_trip_one(
        &PayloadRepr::IdR(id.clone()),
        "00 00 0018 05 000000 20010db8000000000000000000000001",
    );
    assert_eq!(id.id_type, IdType::ID_IPV6_ADDR);
    assert_eq!(id.ip(), Some(v6));
}

#[test]
fn auth_payload() {
    // RFC 7296 §3.8: method SHARED_KEY_MIC, 3 reserved, data.
    round_trip_one(
        &PayloadRepr::Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0xab; 4],
        },
        "00 00 000c 02 000000 abababab",
    );
}

#[test]
fn notify_payload_with_spi() {
    // RFC 7296 §3.10: REKEY_SA about ESP SPI 0x11223344.
    round_trip_one(
        &PayloadRepr::Notify(NotifyRepr {
            protocol: ProtocolId::ESP,
            spi: vec![0x11, 0x22, 0x33, 0x44],
            kind: NotifyType::REKEY_SA,
            data: vec![],
        }),
        "00 00 000c 03 04 4009 11223344",
    );
}

#[test]
fn delete_payloads() {
    // RFC 7296 §3.11: ESP, SPI size 4, two SPIs; IKE, SPI size 0, none.
    round_trip_one(
        &PayloadRepr::Delete(DeleteRepr {
            protocol: ProtocolId::ESP,
            spis: vec![0x0102_0304, 0xa0b0_c0d0],
        }),
        "00 00 0010 03 04 0002 01020304 a0b0c0d0",
    );
    round_trip_one(&PayloadRepr::Delete(DeleteRepr::ike()), "00 00 0008 01 00 0000");
    assert!(parse_payloads(PayloadType::DELETE, &hex("00 00 000c 03 04 0002 01020304")).is_err());
    assert!(parse_payloads(PayloadType::DELETE, &hex("00 00 000c 01 04 0001 01020304")).is_err());
}

#[test]
fn ts_payloads() {
    // RFC 7296 §3.13: one TS_IPV4_ADDR_RANGE 0.0.0.0-255.255.255.255, any protocol, ports 0-65535.
    let any: TsRepr = crate::sa::TrafficSelector::ANY.into();
    round_trip_one(
        &PayloadRepr::TsI(vec![any]),
        "00 00 0018 01 000000 07 00 0010 0000 ffff 00000000 ffffffff",
    );
    assert_eq!(
        crate::sa::TrafficSelector::try_from(any),
        Ok(crate::sa::TrafficSelector::ANY)
    );
    // TS_IPV6_ADDR_RANGE ::-ffff::, TCP, port 443.
    let v6 = TsRepr {
        protocol: 6,
        start_port: 443,
        end_port: 443,
        addresses: TsAddresses::V6 {
            start: "2001:db8::".parse().unwrap(),
            end: "2001:db8::ffff".parse().unwrap(),
        },
    };
    round_trip_one(
        &PayloadRepr::TsR(vec![any, v6]),
        "00 00 0040 02 000000 07 00 0010 0000 ffff 00000000 ffffffff
         08 06 0028 01bb 01bb 20010db8000000000000000000000000 20010db800000000000000000000ffff",
    );
    assert!(crate::sa::TrafficSelector::try_from(v6).is_err());
}

#[test]
fn rejects_bad_ts() {
    // Zero selectors.
    assert!(parse_payloads(PayloadType::TSI, &hex("00 00 0008 00 000000")).is_err());
    // Count 2, one present.
    assert!(
        parse_payloads(
            PayloadType::TSI,
            &hex("00 00 0018 02 000000 07 00 0010 0000 ffff 00000000 ffffffff")
        )
        .is_err()
    );
    // Selector length disagrees with its type.
    assert_eq!(
        parse_payloads(
            PayloadType::TSI,
            &hex("00 00 0018 01 000000 07 00 0011 0000 ffff 00000000 ffffffff")
        )
        .unwrap_err(),
        Error::BadLength
    );
    // Unknown TS type.
    assert!(
        parse_payloads(
            PayloadType::TSI,
            &hex("00 00 0018 01 000000 09 00 0010 0000 ffff 00000000 ffffffff")
        )
        .is_err()
    );
}

#[test]
fn esp_proposal_with_spi() {
    // RFC 7296 §3.3.1: ESP proposal, SPI size 4; AES-GCM-16 256, ESN none.
    let proposal = ProposalRepr {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: vec![0xc0, 0x01, 0xca, 0xfe],
        transforms: vec![
            TransformRepr::with_key_length(TransformType::ENCR, 20, 256),
            TransformRepr::new(TransformType::ESN, 0),
        ],
    };
    assert_eq!(proposal.spi_u32(), Some(0xc001_cafe));
    assert_eq!(proposal.spi_u64(), None);
    round_trip_one(
        &PayloadRepr::Sa(SaRepr {
            proposals: vec![proposal],
        }),
        "00 00 0024 00 00 0020 01 03 04 02 c001cafe
           03 00 000c 01 00 0014 800e 0100
           00 00 0008 05 00 0000",
    );
}

#[test]
fn transform_attributes_round_trip() {
    // RFC 7296 §3.3.5: an unknown TV attribute and an unknown TLV attribute are kept.
    let transform = TransformRepr {
        kind: TransformType::ENCR,
        id: 12,
        key_length: Some(128),
        other_attributes: vec![
            Attribute::Tv { kind: 1, value: 2 },
            Attribute::Tlv {
                kind: 3,
                value: vec![9, 9, 9],
            },
        ],
    };
    round_trip_one(
        &PayloadRepr::Sa(SaRepr {
            proposals: vec![ProposalRepr {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![transform],
            }],
        }),
        "00 00 0023 00 00 001f 01 01 00 01
           00 00 0017 01 00 000c 800e 0080 8001 0002 0003 0003 090909",
    );
    // Key length in TLV form is malformed; a duplicate key length too.
    assert!(
        SaRepr::parse(&hex(
            "00 00 0012 01 01 00 01  00 00 000e 01 00 000c 000e 0002 0080"
        ))
        .is_err()
    );
    assert!(
        SaRepr::parse(&hex(
            "00 00 0014 01 01 00 01  00 00 0010 01 00 000c 800e 0080 800e 0080"
        ))
        .is_err()
    );
}

#[test]
fn ke_and_cert_payloads() {
    round_trip_one(
        &PayloadRepr::Ke {
            group: 14,
            data: vec![1, 2],
        },
        "00 00 000a 000e 0000 0102",
    );
    round_trip_one(
        &PayloadRepr::Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![0x30],
        },
        "00 00 0006 04 30",
    );
    round_trip_one(
        &PayloadRepr::CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![],
        },
        "00 00 0005 04",
    );
}

// ---- SK / SKF ----

fn informational_header() -> HeaderRepr {
    HeaderRepr {
        spi_i: 1,
        spi_r: 2,
        next_payload: PayloadType::NONE,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags::INITIATOR,
        message_id: 7,
        length: 0,
    }
}

#[test]
fn sk_layout_and_view() {
    let inner_payloads = vec![PayloadRepr::Delete(DeleteRepr::ike())];
    let mut inner = Vec::new();
    let first = emit_payloads(&inner_payloads, &mut inner).unwrap();
    assert_eq!(inner.len(), 8);
    // AES-CBC + HMAC-SHA2-256-128: IV 16, ICV 16, block 16.
    let params = SkParams {
        iv_len: 16,
        icv_len: 16,
        block_len: 16,
    };
    let mut out = vec![0xff, 0xff];
    let layout = emit_sk_message(&informational_header(), first, &inner, params, &mut out).unwrap();
    assert_eq!(layout.message, 2..2 + 28 + 4 + 16 + 16 + 16);
    assert_eq!(layout.aad_len, 32);
    assert_eq!(layout.iv, 32..48);
    assert_eq!(layout.plaintext, 48..64);
    assert_eq!(layout.icv, 64..80);
    let msg_bytes = &out[layout.message.clone()];
    // RFC 7296 §3.14: payloads | padding | pad length (7 zeros, then 7).
    assert_eq!(
        &msg_bytes[layout.plaintext.clone()],
        &hex("00 00 0008 01 00 0000  00000000000000 07")[..]
    );
    assert_eq!(params.overhead(inner.len()), 4 + 16 + 8 + 16);

    let message = Message::parse(msg_bytes).unwrap();
    assert_eq!(message.header.next_payload, PayloadType::SK);
    assert_eq!(message.header.length as usize, msg_bytes.len());
    let enc = message.encrypted().unwrap().unwrap();
    assert_eq!(enc.kind(), PayloadType::SK);
    assert_eq!(enc.inner_first(), PayloadType::DELETE);
    assert_eq!(enc.fragment(), None);
    assert_eq!(enc.aad(), &msg_bytes[..32]);
    let parts = enc.split(16, 16).unwrap();
    assert_eq!(
        (parts.iv.len(), parts.ciphertext.len(), parts.icv.len()),
        (16, 16, 16)
    );
    let ct = parts.ciphertext;
    // "Decrypt" with the identity cipher and parse the inside.
    let inner_back = strip_padding(ct).unwrap();
    assert_eq!(
        parse_payloads(enc.inner_first(), inner_back).unwrap(),
        inner_payloads
    );
    // The payload list sees the SK payload too.
    let payloads = message.payloads().unwrap();
    assert_eq!(payloads.len(), 1);
    assert!(
        matches!(&payloads[0], PayloadRepr::Encrypted(e) if e.inner_first == PayloadType::DELETE && e.data.len() == 48)
    );
    assert!(enc.split(24, 24).is_err());
}

#[test]
fn skf_layout_and_view() {
    // AES-GCM: IV 8, ICV 16, block 1 (RFC 5282 §3) - no padding beyond the pad length octet.
    let params = SkParams {
        iv_len: 8,
        icv_len: 16,
        block_len: 1,
    };
    let fragment = Fragment::new(2, 3).unwrap();
    let mut out = Vec::new();
    let layout = emit_skf_message(
        &informational_header(),
        PayloadType::DELETE,
        fragment,
        &[1, 2, 3],
        params,
        &mut out,
    )
    .unwrap();
    assert_eq!(layout.aad_len, 28 + 8);
    assert_eq!(out.len(), 28 + 8 + 8 + 4 + 16);
    let message = Message::parse(&out).unwrap();
    let enc = message.encrypted().unwrap().unwrap();
    assert_eq!(enc.kind(), PayloadType::SKF);
    // Only fragment 1 names the first inner payload (RFC 7383 §2.5).
    assert_eq!(enc.inner_first(), PayloadType::NONE);
    assert_eq!(enc.fragment(), Some(fragment));
    assert_eq!(enc.aad_len(), 36);
    let parts = enc.split(8, 16).unwrap();
    assert_eq!(strip_padding(parts.ciphertext).unwrap(), &[1, 2, 3]);
    // Round trip through the owned form.
    let payloads = message.payloads().unwrap();
    let mut again = Vec::new();
    emit_message(&message.header, &payloads, &mut again).unwrap();
    assert_eq!(again, out);
}

#[test]
fn rejects_bad_fragments() {
    assert!(Fragment::new(0, 1).is_err());
    assert!(Fragment::new(1, 0).is_err());
    assert!(Fragment::new(3, 2).is_err());
    // Fragment 2 naming an inner payload.
    let body = hex("29 00 000c 0002 0003 aabbccdd");
    assert!(parse_payloads(PayloadType::SKF, &body).is_err());
    let body = hex("00 00 000c 0002 0003 aabbccdd");
    assert!(parse_payloads(PayloadType::SKF, &body).is_ok());
}

#[test]
fn rejects_sk_not_last() {
    // SK followed by more bytes.
    let body = hex("2b 00 0008 aabbccdd 00 00 0004");
    assert_eq!(
        parse_payloads(PayloadType::SK, &body).unwrap_err(),
        Error::Malformed("encrypted payload is not last")
    );
    let payloads = vec![
        PayloadRepr::Encrypted(EncryptedRepr {
            inner_first: PayloadType::NONE,
            fragment: None,
            data: vec![],
        }),
        PayloadRepr::VendorId(vec![]),
    ];
    let mut out = vec![];
    assert!(emit_payloads(&payloads, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn rejects_sk_inside_sk() {
    let nested = hex("2b 00 0008 aabbccdd");
    assert!(parse_payloads(PayloadType::SK, &nested).is_ok());
    assert_eq!(
        parse_inner_payloads(PayloadType::SK, &nested).unwrap_err(),
        Error::Malformed("encrypted payload inside an encrypted payload")
    );
    let plain = hex("00 00 0005 aa");
    assert_eq!(
        parse_inner_payloads(PayloadType::VENDOR_ID, &plain).unwrap(),
        [PayloadRepr::VendorId(vec![0xaa])]
    );
}

#[test]
fn padding() {
    assert_eq!(padded_len(0, 16), 16);
    assert_eq!(padded_len(15, 16), 16);
    assert_eq!(padded_len(16, 16), 32);
    assert_eq!(padded_len(5, 1), 6);
    assert_eq!(padded_len(5, 0), 6);
    assert_eq!(strip_padding(&[9, 9, 0]).unwrap(), &[9, 9]);
    assert_eq!(strip_padding(&[9, 0, 1]).unwrap(), &[9]);
    assert!(strip_padding(&[9, 3]).is_err());
    assert!(strip_padding(&[]).is_err());
}

#[test]
fn emit_rejects_oversized_payload() {
    let mut out = vec![1];
    let err = emit_payloads(&[PayloadRepr::VendorId(vec![0; 70_000])], &mut out).unwrap_err();
    assert_eq!(err, Error::TooLong);
    assert_eq!(out, [1]);
}

/// The fuzz target's invariant (fuzz/fuzz_targets/ike_message.rs) over its checked-in corpus: every
/// seed parses, and re-emits to identical bytes.
#[test]
fn fuzz_corpus_seeds_round_trip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ike_message");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let message = Message::parse(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let payloads = message.payloads().unwrap();
        let mut again = Vec::new();
        emit_message(&message.header, &payloads, &mut again).unwrap();
        assert_eq!(again, bytes, "{path:?}");
        seen += 1;
    }
    assert!(seen >= 10);
}

#[test]
fn skf_messages_split_and_fit() {
    // An IKE_AUTH-sized inner chain split for a small MTU (RFC 7383 §2.5.1), CBC and GCM parameters.
    let inner: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for params in [
        SkParams {
            iv_len: 16,
            icv_len: 16,
            block_len: 16,
        },
        SkParams {
            iv_len: 8,
            icv_len: 16,
            block_len: 1,
        },
    ] {
        for max_len in [120usize, 200, 576, 1280] {
            let messages =
                sk::emit_skf_messages(&informational_header(), PayloadType::IDI, &inner, params, max_len)
                    .unwrap();
            let mut joined = Vec::new();
            for (i, (bytes, layout)) in messages.iter().enumerate() {
                assert!(bytes.len() <= max_len, "{} > {max_len}", bytes.len());
                assert_eq!(layout.message, 0..bytes.len());
                let message = Message::parse(bytes).unwrap();
                let enc = message.encrypted().unwrap().unwrap();
                let fragment = enc.fragment().unwrap();
                assert_eq!(usize::from(fragment.number()), i + 1);
                assert_eq!(usize::from(fragment.total()), messages.len());
                let expected_first = if i == 0 {
                    PayloadType::IDI
                } else {
                    PayloadType::NONE
                };
                assert_eq!(enc.inner_first(), expected_first);
                let parts = enc.split(params.iv_len, params.icv_len).unwrap();
                joined.extend_from_slice(strip_padding(parts.ciphertext).unwrap());
            }
            assert_eq!(joined, inner);
            // Not one fragment more than needed.
            let chunk = sk::max_fragment_chunk(max_len, params).unwrap();
            assert_eq!(messages.len(), inner.len().div_ceil(chunk));
        }
    }
    // Too small for even one octet.
    let gcm = SkParams {
        iv_len: 8,
        icv_len: 16,
        block_len: 1,
    };
    assert_eq!(sk::max_fragment_chunk(28 + 8 + 8 + 16 + 1, gcm), None);
    assert_eq!(sk::max_fragment_chunk(28 + 8 + 8 + 16 + 2, gcm), Some(1));
    assert!(sk::emit_skf_messages(&informational_header(), PayloadType::IDI, &inner, gcm, 40).is_err());
    // An empty chain is one empty fragment.
    let one = sk::emit_skf_messages(&informational_header(), PayloadType::NONE, &[], gcm, 100).unwrap();
    assert_eq!(one.len(), 1);
}

/// The `ike_payloads` fuzz target's invariant over its corpus (type octet + chain): every seed parses
/// and re-emits to identical bytes.
#[test]
fn payload_fuzz_corpus_seeds_round_trip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ike_payloads");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (&first, chain) = bytes.split_first().unwrap();
        let payloads = parse_inner_payloads(PayloadType(first), chain)
            .or_else(|_| parse_payloads(PayloadType(first), chain))
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let mut again = Vec::new();
        assert_eq!(emit_payloads(&payloads, &mut again), Ok(PayloadType(first)));
        assert_eq!(again, chain, "{path:?}");
        seen += 1;
    }
    assert!(seen >= 10);
}
