//! A bare IKE payload chain (first octet: the first payload's type), skipping the header's length gate
//! so the fuzzer reaches every payload parser directly: no panic, and whatever parses survives
//! emit → parse unchanged with the same length. The typed certificate views (CERT, CERTREQ,
//! SIGNATURE_HASH_ALGORITHMS, Digital Signature AUTH) parse each such payload too: no panic, and a
//! signature AUTH that parses re-encodes to the same data.
#![no_main]

use cgwd::wire::ike::cert::{SignatureAuth, parse_certreq, parse_signature_hash_algorithms, x509_cert};
use cgwd::wire::ike::{AuthMethod, NotifyType, PayloadRepr, PayloadType, emit_payloads, parse_payloads};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, chain)) = data.split_first() else {
        return;
    };
    let Ok(payloads) = parse_payloads(PayloadType(first), chain) else {
        return;
    };
    for p in &payloads {
        match p {
            PayloadRepr::Cert { .. } => {
                let _ = x509_cert(p);
            }
            PayloadRepr::CertReq { encoding, data } => {
                if let Ok(hashes) = parse_certreq(*encoding, data) {
                    assert_eq!(hashes.len() * 20, data.len());
                }
            }
            PayloadRepr::Notify(n) if n.kind == NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                let _ = parse_signature_hash_algorithms(&n.data);
            }
            PayloadRepr::Auth { method, data } if *method == AuthMethod::DIGITAL_SIGNATURE => {
                if let Ok(auth) = SignatureAuth::parse(data) {
                    let _ = auth.scheme();
                    assert_eq!(&auth.to_data().expect("re-encode"), data);
                }
            }
            _ => {}
        }
    }
    let mut again = Vec::new();
    let emitted_first = emit_payloads(&payloads, &mut again).expect("re-emit");
    assert_eq!(again.len(), chain.len(), "canonical length");
    assert_eq!(parse_payloads(emitted_first, &again).expect("re-parse"), payloads);
});
