//! Differential test: an independent parser (rusticata's `ipsec-parser`, dev-dependency only) reads
//! what we emit, and must see the same fields.
//!
//! `ipsec-parser` 0.7 mis-sizes the bodies of Notify, Vendor ID and Delete (it subtracts the 4-octet
//! generic header twice), does not skip AUTH's reserved octets, and leaves TS and SA counts unchecked, so the comparison covers the header
//! and the payloads it reads correctly: SA (proposals, SPIs, transforms, raw attributes), KE, IDi/IDr,
//! AUTH, Nonce and TSi/TSr.

use ipsec_parser::{IkePayloadType, IkeV2PayloadContent, parse_ikev2_header, parse_ikev2_payload_list};
use proptest::prelude::*;

use super::proptests::{header, plain_payload};
use super::*;

fn oracle_supports(payload: &PayloadRepr) -> bool {
    matches!(
        payload,
        PayloadRepr::Sa(_)
            | PayloadRepr::Ke { .. }
            | PayloadRepr::IdI(_)
            | PayloadRepr::IdR(_)
            | PayloadRepr::Auth { .. }
            | PayloadRepr::Nonce(_)
            | PayloadRepr::TsI(_)
            | PayloadRepr::TsR(_)
    )
}

fn attributes_bytes(t: &TransformRepr) -> Vec<u8> {
    // Our emitter's attribute octets, for comparison with the oracle's raw attribute slice.
    let mut full = Vec::new();
    SaRepr {
        proposals: vec![ProposalRepr {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![t.clone()],
        }],
    }
    .emit(&mut full)
    .unwrap();
    full[16..].to_vec()
}

fn compare(ours: &PayloadRepr, theirs: &IkeV2PayloadContent<'_>) -> Result<(), TestCaseError> {
    match (ours, theirs) {
        (PayloadRepr::Sa(sa), IkeV2PayloadContent::SA(proposals)) => {
            prop_assert_eq!(sa.proposals.len(), proposals.len());
            for (p, q) in sa.proposals.iter().zip(proposals) {
                prop_assert_eq!(p.number, q.proposal_num);
                prop_assert_eq!(p.protocol.0, q.protocol_id.0);
                prop_assert_eq!(&p.spi[..], q.spi.unwrap_or(&[]));
                prop_assert_eq!(p.transforms.len(), q.transforms.len());
                for (t, u) in p.transforms.iter().zip(&q.transforms) {
                    prop_assert_eq!(t.kind.0, u.transform_type.0);
                    prop_assert_eq!(t.id, u.transform_id);
                    prop_assert_eq!(attributes_bytes(t), u.attributes.unwrap_or(&[]).to_vec());
                }
            }
        }
        (PayloadRepr::Ke { group, data }, IkeV2PayloadContent::KE(ke)) => {
            prop_assert_eq!(*group, ke.dh_group.0);
            prop_assert_eq!(&data[..], ke.kex_data);
        }
        (PayloadRepr::IdI(id), IkeV2PayloadContent::IDi(theirs))
        | (PayloadRepr::IdR(id), IkeV2PayloadContent::IDr(theirs)) => {
            prop_assert_eq!(id.id_type.0, theirs.id_type.0);
            prop_assert_eq!(&id.data[..], theirs.ident_data);
        }
        (PayloadRepr::Auth { method, data }, IkeV2PayloadContent::Authentication(a)) => {
            // The oracle does not skip AUTH's 3 reserved octets (RFC 7296 §3.8): its auth_data is the
            // reserved octets followed by all but the last 3 octets of the data.
            prop_assert_eq!(method.0, a.auth_method.0);
            let shifted = [&[0u8; 3][..], &data[..]].concat();
            prop_assert_eq!(&shifted[..data.len()], a.auth_data);
        }
        (PayloadRepr::Nonce(n), IkeV2PayloadContent::Nonce(m)) => {
            prop_assert_eq!(&n[..], m.nonce_data);
        }
        (PayloadRepr::TsI(ts), IkeV2PayloadContent::TSi(theirs))
        | (PayloadRepr::TsR(ts), IkeV2PayloadContent::TSr(theirs)) => {
            prop_assert_eq!(ts.len(), usize::from(theirs.num_ts));
            prop_assert_eq!(ts.len(), theirs.ts.len());
            for (a, b) in ts.iter().zip(&theirs.ts) {
                prop_assert_eq!(a.ts_type().0, b.ts_type.0);
                prop_assert_eq!(a.protocol, b.ip_proto_id);
                prop_assert_eq!(a.start_port, b.start_port);
                prop_assert_eq!(a.end_port, b.end_port);
                prop_assert_eq!(usize::from(b.sel_length), a.buffer_len());
                let (start, end) = match a.addresses {
                    TsAddresses::V4 { start, end } => (start.octets().to_vec(), end.octets().to_vec()),
                    TsAddresses::V6 { start, end } => (start.octets().to_vec(), end.octets().to_vec()),
                };
                prop_assert_eq!(&start[..], b.start_addr);
                prop_assert_eq!(&end[..], b.end_addr);
            }
        }
        (ours, theirs) => prop_assert!(false, "{ours:?} read as {theirs:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn oracle_reads_what_we_emit(
        header in header(),
        payloads in proptest::collection::vec(plain_payload().prop_filter("oracle", oracle_supports), 1..5),
    ) {
        let mut out = Vec::new();
        emit_message(&header, &payloads, &mut out).unwrap();
        let (rest, theirs) = parse_ikev2_header(&out).unwrap();
        prop_assert_eq!(theirs.init_spi, header.spi_i);
        prop_assert_eq!(theirs.resp_spi, header.spi_r);
        prop_assert_eq!(theirs.next_payload.0, payloads[0].kind().0);
        prop_assert_eq!((theirs.maj_ver, theirs.min_ver), (2, 0));
        prop_assert_eq!(theirs.exch_type.0, header.exchange.0);
        prop_assert_eq!(theirs.flags, header.flags.bits());
        prop_assert_eq!(theirs.msg_id, header.message_id);
        prop_assert_eq!(theirs.length as usize, out.len());
        let (rest, list) = parse_ikev2_payload_list(rest, IkePayloadType(payloads[0].kind().0)).unwrap();
        prop_assert!(rest.is_empty());
        let list = list.unwrap();
        // The oracle's list starts with a placeholder entry.
        prop_assert_eq!(list.len(), payloads.len() + 1);
        for (ours, theirs) in payloads.iter().zip(&list[1..]) {
            prop_assert!(!theirs.hdr.critical);
            prop_assert_eq!(usize::from(theirs.hdr.payload_length), ours.buffer_len());
            compare(ours, &theirs.content)?;
        }
    }
}
