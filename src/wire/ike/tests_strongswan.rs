//! Real messages: a complete exchange captured from two strongSwan 5.9.8 charons (IKE_SA_INIT,
//! IKE_AUTH, INFORMATIONAL delete), once with AES-CBC/HMAC-SHA2-256 and once with AES-GCM and RFC 7383
//! fragmentation. The capture setup is in `testdata/capture/` (two network namespaces, tcpdump; the
//! non-ESP marker of port 4500 stripped) and the keys come from the initiator's log (`keys.txt`), so the
//! SK payloads can be decrypted here and their inner payloads checked.

use std::net::Ipv4Addr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;

use super::*;

macro_rules! capture {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_bytes!(concat!("testdata/", $dir, "/", $name, ".bin")) as &[u8],
        )
    };
}

const CBC: [(&str, &[u8]); 6] = [
    capture!("strongswan-cbc", "01-sa-init-req"),
    capture!("strongswan-cbc", "02-sa-init-resp"),
    capture!("strongswan-cbc", "03-auth-req"),
    capture!("strongswan-cbc", "04-auth-resp"),
    capture!("strongswan-cbc", "05-info-req"),
    capture!("strongswan-cbc", "06-info-resp"),
];
const CBC_KEYS: &str = include_str!("testdata/strongswan-cbc/keys.txt");

const GCM: [(&str, &[u8]); 8] = [
    capture!("strongswan-gcm-frag", "01-sa-init-req"),
    capture!("strongswan-gcm-frag", "02-sa-init-resp"),
    capture!("strongswan-gcm-frag", "03-auth-req-frag1"),
    capture!("strongswan-gcm-frag", "04-auth-req-frag2"),
    capture!("strongswan-gcm-frag", "05-auth-resp-frag1"),
    capture!("strongswan-gcm-frag", "06-auth-resp-frag2"),
    capture!("strongswan-gcm-frag", "07-info-req"),
    capture!("strongswan-gcm-frag", "08-info-resp"),
];
const GCM_KEYS: &str = include_str!("testdata/strongswan-gcm-frag/keys.txt");

fn key(keys: &str, name: &str) -> Vec<u8> {
    let line = keys
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(" = "))
        .unwrap_or_else(|| panic!("no {name}"));
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        .collect()
}

fn kinds(payloads: &[PayloadRepr]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| match p {
            PayloadRepr::Notify(n) => format!("N({:?})", n.kind),
            other => format!("{:?}", other.kind()),
        })
        .collect()
}

#[test]
fn every_captured_message_parses_and_re_emits_identically() {
    for (name, bytes) in CBC.iter().chain(GCM.iter()) {
        let message = Message::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let payloads = message.payloads().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut again = Vec::new();
        emit_message(&message.header, &payloads, &mut again).unwrap();
        assert_eq!(&again[..], *bytes, "{name}");
    }
}

#[test]
fn strongswan_sa_init_request() {
    let message = Message::parse(CBC[0].1).unwrap();
    assert_eq!(message.header.exchange, ExchangeType::IKE_SA_INIT);
    assert_eq!(message.header.flags, Flags::INITIATOR);
    assert_eq!(message.header.spi_r, 0);
    assert_eq!(message.header.message_id, 0);
    let payloads = message.payloads().unwrap();
    assert_eq!(
        kinds(&payloads),
        [
            "SA",
            "KE",
            "NONCE",
            "N(NAT_DETECTION_SOURCE_IP)",
            "N(NAT_DETECTION_DESTINATION_IP)",
            "N(IKEV2_FRAGMENTATION_SUPPORTED)",
            "N(SIGNATURE_HASH_ALGORITHMS)",
            "N(REDIRECT_SUPPORTED)"
        ]
    );
    let PayloadRepr::Sa(sa) = &payloads[0] else {
        panic!()
    };
    assert_eq!(sa.proposals.len(), 1);
    let proposal = &sa.proposals[0];
    assert_eq!(
        (proposal.number, proposal.protocol, proposal.spi.len()),
        (1, ProtocolId::IKE, 0)
    );
    assert_eq!(
        proposal.transforms,
        [
            TransformRepr::with_key_length(TransformType::ENCR, 12, 128),
            TransformRepr::new(TransformType::INTEG, 12),
            TransformRepr::new(TransformType::PRF, 5),
            TransformRepr::new(TransformType::DH, 14),
        ]
    );
    let PayloadRepr::Ke { group, data } = &payloads[1] else {
        panic!()
    };
    assert_eq!((*group, data.len()), (14, 256));
    let PayloadRepr::Nonce(nonce) = &payloads[2] else {
        panic!()
    };
    assert_eq!(nonce.len(), 32);
    let PayloadRepr::Notify(natd) = &payloads[3] else {
        panic!()
    };
    assert_eq!(natd.data.len(), 20); // SHA-1 (RFC 7296 §2.23)
}

#[test]
fn strongswan_sa_init_response() {
    let request = Message::parse(CBC[0].1).unwrap();
    let message = Message::parse(CBC[1].1).unwrap();
    assert_eq!(message.header.flags, Flags::RESPONSE);
    assert_eq!(message.header.spi_i, request.header.spi_i);
    assert_ne!(message.header.spi_r, 0);
    let payloads = message.payloads().unwrap();
    assert_eq!(
        kinds(&payloads),
        [
            "SA",
            "KE",
            "NONCE",
            "N(NAT_DETECTION_SOURCE_IP)",
            "N(NAT_DETECTION_DESTINATION_IP)",
            "N(IKEV2_FRAGMENTATION_SUPPORTED)",
            "N(SIGNATURE_HASH_ALGORITHMS)",
            "N(CHILDLESS_IKEV2_SUPPORTED)",
            "N(MULTIPLE_AUTH_SUPPORTED)",
        ]
    );
}

/// Decrypts AES-CBC + HMAC-SHA2-256-128 SK content in a copy, after checking the ICV
/// (RFC 7296 §3.14: the checksum covers the message from the IKE header through the ciphertext).
fn open_cbc(datagram: &[u8], encr: &[u8], integ: &[u8]) -> (PayloadType, Vec<u8>) {
    let message = Message::parse(datagram).unwrap();
    let enc = message.encrypted().unwrap().unwrap();
    let parts = enc.split(16, 16).unwrap();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, integ),
        &datagram[..datagram.len() - 16],
    );
    assert_eq!(&tag.as_ref()[..16], parts.icv, "ICV");
    let mut plaintext = parts.ciphertext.to_vec();
    let key = DecryptingKey::cbc(UnboundCipherKey::new(&AES_128, encr).unwrap()).unwrap();
    let iv: [u8; 16] = parts.iv.try_into().unwrap();
    key.decrypt(&mut plaintext, DecryptionContext::Iv128(iv.into()))
        .unwrap();
    let inner = sk::strip_padding(&plaintext).unwrap().to_vec();
    (enc.inner_first(), inner)
}

/// Decrypts AES-GCM-16 SK/SKF content (RFC 5282: key | 4-octet salt, nonce = salt | 8-octet IV, the
/// associated data is the IKE header through the SK(F) header).
fn open_gcm<'a>(datagram: &'a [u8], keymat: &[u8]) -> (sk::Encrypted<'a>, Vec<u8>) {
    let message = Message::parse(datagram).unwrap();
    let enc = message.encrypted().unwrap().unwrap();
    let parts = enc.split(8, 16).unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &keymat[..32]).unwrap());
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&keymat[32..]);
    nonce[4..].copy_from_slice(parts.iv);
    let mut in_out = [parts.ciphertext, parts.icv].concat();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(enc.aad()),
            &mut in_out,
        )
        .unwrap();
    let inner = sk::strip_padding(plaintext).unwrap().to_vec();
    (enc, inner)
}

fn assert_ike_auth_request(payloads: &[PayloadRepr]) {
    assert_eq!(
        kinds(payloads),
        [
            "IDI",
            "N(INITIAL_CONTACT)",
            "IDR",
            "AUTH",
            "SA",
            "TSI",
            "TSR",
            "N(MULTIPLE_AUTH_SUPPORTED)",
            "N(EAP_ONLY_AUTHENTICATION)",
            "N(IKEV2_MESSAGE_ID_SYNC_SUPPORTED)",
        ]
    );
    assert_eq!(
        payloads[0],
        PayloadRepr::IdI(IdRepr::from_ip(Ipv4Addr::new(192, 0, 2, 10).into()))
    );
    let PayloadRepr::Auth { method, data } = &payloads[3] else {
        panic!()
    };
    assert_eq!((*method, data.len()), (AuthMethod::SHARED_KEY_MIC, 32));
    let PayloadRepr::Sa(sa) = &payloads[4] else {
        panic!()
    };
    assert_eq!(sa.proposals[0].protocol, ProtocolId::ESP);
    assert!(sa.proposals[0].spi_u32().is_some());
    let any = PayloadRepr::TsI(vec![crate::sa::TrafficSelector::ANY.into()]);
    assert_eq!(payloads[5], any);
}

#[test]
fn strongswan_ike_auth_cbc_decrypts_and_parses() {
    let (ei, ai) = (key(CBC_KEYS, "sk_ei"), key(CBC_KEYS, "sk_ai"));
    let (er, ar) = (key(CBC_KEYS, "sk_er"), key(CBC_KEYS, "sk_ar"));

    let (first, inner) = open_cbc(CBC[2].1, &ei, &ai);
    let payloads = parse_inner_payloads(first, &inner).unwrap();
    assert_ike_auth_request(&payloads);
    // The inner chain re-emits to exactly what strongSwan encrypted.
    let mut again = Vec::new();
    assert_eq!(emit_payloads(&payloads, &mut again), Ok(first));
    assert_eq!(again, inner);

    let (first, inner) = open_cbc(CBC[3].1, &er, &ar);
    let payloads = parse_inner_payloads(first, &inner).unwrap();
    assert_eq!(kinds(&payloads), ["IDR", "AUTH", "SA", "TSI", "TSR"]);

    // INFORMATIONAL: Delete of the IKE SA, and an empty response.
    let (first, inner) = open_cbc(CBC[4].1, &ei, &ai);
    assert_eq!(
        parse_inner_payloads(first, &inner).unwrap(),
        [PayloadRepr::Delete(DeleteRepr::ike())]
    );
    let (first, inner) = open_cbc(CBC[5].1, &er, &ar);
    assert_eq!(first, PayloadType::NONE);
    assert!(parse_inner_payloads(first, &inner).unwrap().is_empty());
}

#[test]
fn strongswan_ike_auth_gcm_fragments_reassemble() {
    let (ei, er) = (key(GCM_KEYS, "sk_ei"), key(GCM_KEYS, "sk_er"));
    for (fragments, keymat) in [(&GCM[2..4], &ei), (&GCM[4..6], &er)] {
        let mut first = PayloadType::NONE;
        let mut joined = Vec::new();
        for (i, (name, bytes)) in fragments.iter().enumerate() {
            let (enc, inner) = open_gcm(bytes, keymat);
            assert_eq!(enc.kind(), PayloadType::SKF, "{name}");
            let fragment = enc.fragment().unwrap();
            assert_eq!((fragment.number(), fragment.total()), (i as u16 + 1, 2), "{name}");
            if i == 0 {
                first = enc.inner_first();
            } else {
                assert_eq!(enc.inner_first(), PayloadType::NONE);
            }
            joined.extend_from_slice(&inner);
        }
        let payloads = parse_inner_payloads(first, &joined).unwrap();
        if keymat == &ei {
            assert_ike_auth_request(&payloads);
        } else {
            assert_eq!(kinds(&payloads), ["IDR", "AUTH", "SA", "TSI", "TSR"]);
        }
    }
    let (enc, inner) = open_gcm(GCM[6].1, &ei);
    assert_eq!(enc.kind(), PayloadType::SK);
    assert_eq!(
        parse_inner_payloads(enc.inner_first(), &inner).unwrap(),
        [PayloadRepr::Delete(DeleteRepr::ike())]
    );
}
