//! Property tests: emit→parse round trips for every Repr, and parsers that never panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn bytes(range: core::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), range)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    // Kinds are 15 bits; 14 (Key Length) has its own field.
    let kind = (0u16..0x8000).prop_filter("key length has its own field", |k| *k != ATTRIBUTE_KEY_LENGTH);
    prop_oneof![
        (kind.clone(), any::<u16>()).prop_map(|(kind, value)| Attribute::Tv { kind, value }),
        (kind, bytes(0..6)).prop_map(|(kind, value)| Attribute::Tlv { kind, value }),
    ]
}

fn transform() -> impl Strategy<Value = TransformRepr> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
        vec(attribute(), 0..3),
    )
        .prop_map(|(kind, id, key_length, other_attributes)| TransformRepr {
            kind: TransformType(kind),
            id,
            key_length,
            other_attributes,
        })
}

fn proposal() -> impl Strategy<Value = ProposalRepr> {
    (
        any::<u8>(),
        any::<u8>(),
        prop_oneof![Just(0usize), Just(4), Just(8)].prop_flat_map(|n| bytes(n..n + 1)),
        vec(transform(), 1..6),
    )
        .prop_map(|(number, protocol, spi, transforms)| ProposalRepr {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

pub(super) fn sa() -> impl Strategy<Value = SaRepr> {
    vec(proposal(), 1..4).prop_map(|proposals| SaRepr { proposals })
}

fn ts() -> impl Strategy<Value = TsRepr> {
    let addresses = prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(s, e)| TsAddresses::V4 {
            start: Ipv4Addr::from(s),
            end: Ipv4Addr::from(e)
        }),
        (any::<u128>(), any::<u128>()).prop_map(|(s, e)| TsAddresses::V6 {
            start: Ipv6Addr::from(s),
            end: Ipv6Addr::from(e)
        }),
    ];
    (any::<u8>(), any::<u16>(), any::<u16>(), addresses).prop_map(
        |(protocol, start_port, end_port, addresses)| TsRepr {
            protocol,
            start_port,
            end_port,
            addresses,
        },
    )
}

fn id() -> impl Strategy<Value = IdRepr> {
    (any::<u8>(), bytes(1..24)).prop_map(|(t, data)| IdRepr {
        id_type: IdType(t),
        data,
    })
}

fn notify() -> impl Strategy<Value = NotifyRepr> {
    (any::<u8>(), bytes(0..9), any::<u16>(), bytes(0..24)).prop_map(|(protocol, spi, kind, data)| {
        NotifyRepr {
            protocol: ProtocolId(protocol),
            spi,
            kind: NotifyType(kind),
            data,
        }
    })
}

fn delete() -> impl Strategy<Value = DeleteRepr> {
    prop_oneof![
        Just(DeleteRepr::ike()),
        (
            any::<u8>().prop_filter("not IKE", |p| *p != ProtocolId::IKE.0),
            vec(any::<u32>(), 0..6)
        )
            .prop_map(|(p, spis)| DeleteRepr {
                protocol: ProtocolId(p),
                spis
            }),
    ]
}

/// Payload types this codec keeps opaque.
fn unknown_kind() -> impl Strategy<Value = PayloadType> {
    prop_oneof![
        Just(PayloadType::CP.0),
        Just(PayloadType::EAP.0),
        Just(PayloadType::GSPM.0),
        1u8..33,
        50u8..53,
        54u8..=255,
    ]
    .prop_map(PayloadType)
}

/// Any payload but SK/SKF.
pub(super) fn plain_payload() -> impl Strategy<Value = PayloadRepr> {
    prop_oneof![
        sa().prop_map(PayloadRepr::Sa),
        (any::<u16>(), bytes(1..64)).prop_map(|(group, data)| PayloadRepr::Ke { group, data }),
        id().prop_map(PayloadRepr::IdI),
        id().prop_map(PayloadRepr::IdR),
        (any::<u8>(), bytes(0..32)).prop_map(|(e, data)| PayloadRepr::Cert {
            encoding: CertEncoding(e),
            data
        }),
        (any::<u8>(), bytes(0..32)).prop_map(|(e, data)| PayloadRepr::CertReq {
            encoding: CertEncoding(e),
            data
        }),
        (any::<u8>(), bytes(1..48)).prop_map(|(m, data)| PayloadRepr::Auth {
            method: AuthMethod(m),
            data
        }),
        bytes(16..257).prop_map(PayloadRepr::Nonce),
        notify().prop_map(PayloadRepr::Notify),
        delete().prop_map(PayloadRepr::Delete),
        bytes(0..32).prop_map(PayloadRepr::VendorId),
        vec(ts(), 1..4).prop_map(PayloadRepr::TsI),
        vec(ts(), 1..4).prop_map(PayloadRepr::TsR),
        (unknown_kind(), any::<bool>(), bytes(0..24)).prop_map(|(kind, critical, body)| {
            PayloadRepr::Unknown {
                kind,
                critical: critical && kind.is_defined(),
                body,
            }
        }),
    ]
}

pub(super) fn encrypted() -> impl Strategy<Value = EncryptedRepr> {
    let fragment = proptest::option::of((1u16..=u16::MAX).prop_flat_map(|total| (1..=total, Just(total))));
    (any::<u8>(), fragment, bytes(0..64)).prop_map(|(first, fragment, data)| {
        let fragment = fragment.map(|(n, t)| Fragment::new(n, t).unwrap());
        let inner_first = match fragment {
            Some(f) if f.number() != 1 => PayloadType::NONE,
            _ => PayloadType(first),
        };
        EncryptedRepr {
            inner_first,
            fragment,
            data,
        }
    })
}

pub(super) fn chain() -> impl Strategy<Value = Vec<PayloadRepr>> {
    (vec(plain_payload(), 0..8), proptest::option::of(encrypted())).prop_map(|(mut payloads, enc)| {
        payloads.extend(enc.map(PayloadRepr::Encrypted));
        payloads
    })
}

pub(super) fn header() -> impl Strategy<Value = HeaderRepr> {
    (any::<u64>(), any::<u64>(), any::<u8>(), any::<u8>(), any::<u32>()).prop_map(
        |(spi_i, spi_r, exchange, flags, message_id)| HeaderRepr {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            exchange: ExchangeType(exchange),
            flags: Flags::from_bits(flags),
            message_id,
            length: 0,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn payload_round_trip(payload in plain_payload()) {
        let mut out = Vec::new();
        let first = emit_payloads(std::slice::from_ref(&payload), &mut out).unwrap();
        prop_assert_eq!(first, payload.kind());
        prop_assert_eq!(out.len(), payload.buffer_len());
        let parsed = parse_payloads(first, &out).unwrap();
        prop_assert_eq!(parsed, vec![payload]);
    }

    #[test]
    fn sa_round_trip(sa in sa()) {
        let mut out = Vec::new();
        sa.emit(&mut out).unwrap();
        prop_assert_eq!(out.len(), sa.buffer_len());
        prop_assert_eq!(SaRepr::parse(&out).unwrap(), sa);
    }

    #[test]
    fn ts_round_trip(ts in ts()) {
        let mut out = Vec::new();
        ts.emit(&mut out);
        prop_assert_eq!(out.len(), ts.buffer_len());
        let parsed = TsRepr::parse(&mut Reader::new(&out)).unwrap();
        prop_assert_eq!(parsed, ts);
    }

    #[test]
    fn header_round_trip(header in header(), length in 28u32..) {
        let header = HeaderRepr { length, ..header };
        let mut out = Vec::new();
        header.emit(&mut out);
        prop_assert_eq!(out.len(), header.buffer_len());
        prop_assert_eq!(HeaderRepr::parse(&Header::new_checked(&out[..]).unwrap()).unwrap(), header);
    }

    #[test]
    fn message_round_trip(header in header(), payloads in chain()) {
        let mut out = Vec::new();
        emit_message(&header, &payloads, &mut out).unwrap();
        let message = Message::parse(&out).unwrap();
        prop_assert_eq!(message.header.length as usize, out.len());
        prop_assert_eq!(
            message.header,
            HeaderRepr {
                next_payload: payloads.first().map_or(PayloadType::NONE, PayloadRepr::kind),
                length: out.len() as u32,
                ..header
            }
        );
        prop_assert_eq!(&message.payloads().unwrap(), &payloads);
        let enc = message.encrypted().unwrap();
        match payloads.last() {
            Some(PayloadRepr::Encrypted(e)) => {
                let enc = enc.unwrap();
                prop_assert_eq!(enc.content(), &e.data[..]);
                prop_assert_eq!(enc.inner_first(), e.inner_first);
                prop_assert_eq!(enc.fragment(), e.fragment);
                prop_assert_eq!(enc.aad_len() + e.data.len(), out.len());
            }
            _ => prop_assert!(enc.is_none()),
        }
    }

    #[test]
    fn sk_message_round_trip(
        header in header(),
        inner in vec(plain_payload(), 1..4),
        iv_len in 0usize..17,
        icv_len in 0usize..33,
        block_len in 0usize..17,
    ) {
        let mut plain = Vec::new();
        let first = emit_payloads(&inner, &mut plain).unwrap();
        let params = SkParams { iv_len, icv_len, block_len };
        let mut out = Vec::new();
        let layout = sk::emit_sk_message(&header, first, &plain, params, &mut out).unwrap();
        prop_assert_eq!(layout.plaintext.len() % block_len.max(1), 0);
        prop_assert_eq!(out.len(), 28 + plain.len() + params.overhead(plain.len()));
        let message = Message::parse(&out).unwrap();
        let enc = message.encrypted().unwrap().unwrap();
        prop_assert_eq!(enc.aad_len(), layout.aad_len);
        let parts = enc.split(iv_len, icv_len).unwrap();
        prop_assert_eq!(parts.ciphertext, &out[layout.plaintext.clone()]);
        let back = sk::strip_padding(parts.ciphertext).unwrap();
        prop_assert_eq!(parse_payloads(enc.inner_first(), back).unwrap(), inner);
    }

    #[test]
    fn parsers_never_panic(data in bytes(0..600), kind in any::<u8>()) {
        if let Ok(message) = Message::parse(&data) {
            let _ = message.payloads();
            let _ = message.encrypted();
        }
        let _ = parse_payloads(PayloadType(kind), &data);
        let _ = SaRepr::parse(&data);
        let _ = sk::strip_padding(&data);
    }

    #[test]
    fn reparse_is_stable_on_accepted_input(data in bytes(0..300), kind in any::<u8>()) {
        // Whatever parses re-emits to something that parses to the same reprs.
        if let Ok(payloads) = parse_payloads(PayloadType(kind), &data) {
            let mut out = Vec::new();
            let first = emit_payloads(&payloads, &mut out).unwrap();
            prop_assert_eq!(parse_payloads(first, &out).unwrap(), payloads);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        header in header(),
        payloads in chain(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut out = Vec::new();
        emit_message(&header, &payloads, &mut out).unwrap();
        for (at, value) in flips {
            let i = at.index(out.len());
            out[i] = value;
        }
        let cut = cut.index(out.len() + 1);
        for data in [&out[..], &out[..cut]] {
            if let Ok(message) = Message::parse(data) {
                if let Ok(parsed) = message.payloads() {
                    let mut again = Vec::new();
                    emit_message(&message.header, &parsed, &mut again).unwrap();
                    let reparsed = Message::parse(&again).unwrap();
                    prop_assert_eq!(reparsed.payloads().unwrap(), parsed);
                }
                let _ = message.encrypted();
            }
        }
    }
}
