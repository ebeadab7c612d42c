//! [`super`] against keys and certificates rcgen makes at run time.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::*;
use crate::config::cert::fmt_time;
use crate::wire::ike::PayloadRepr;

use crate::test_pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, at};

const DAY: i64 = 86_400;
/// 2030-06-15: test leaves are valid 2030-01-01 … 2031-01-01.
const NOW: i64 = 1_907_712_000;
const FROM: i64 = 1_893_456_000;
const END: i64 = 1_924_992_000;

fn der_of(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.contents
}

fn key_of(pem: &str) -> SigningKey {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    SigningKey::from_der(&p.contents).unwrap()
}

fn ca(alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> Ca {
    Ca::valid(alg, cn, at(FROM - 365 * DAY), at(END + 365 * DAY))
}

/// (certificate DER, key PEM) of an AWS-endpoint-like leaf for `cn`.
fn leaf(alg: &'static rcgen::SignatureAlgorithm, ca: &Ca, cn: &str, flaw: Flaw) -> (Vec<u8>, String) {
    let l = ca.issue_valid(alg, cn, flaw, (at(FROM), at(END)));
    (der_of(&l.cert), l.key)
}

fn octets() -> Vec<u8> {
    signed_octets(
        Integrity::Sha2_256,
        b"IKE_SA_INIT bytes",
        &[9; 32],
        &[1; 32],
        &[9, 0, 0, 0, 1, 2],
    )
}

#[test]
fn signed_octets_are_the_psk_input_without_the_key_pad_step() {
    let maced = prf(Integrity::Sha2_256, &[1; 32], &[&[9, 0, 0, 0, 1, 2]]);
    let want = [&b"IKE_SA_INIT bytes"[..], &[9; 32], maced.expose()].concat();
    assert_eq!(octets(), want);
}

const H1: HashAlgorithm = HashAlgorithm::SHA1;
const H256: HashAlgorithm = HashAlgorithm::SHA2_256;
const H384: HashAlgorithm = HashAlgorithm::SHA2_384;
const H512: HashAlgorithm = HashAlgorithm::SHA2_512;

/// (certificate DER, key) for each key type cgwd signs with: RSA, ECDSA P-256, ECDSA P-384.
fn keys() -> Vec<(
    &'static str,
    Vec<u8>,
    SigningKey,
    &'static rcgen::SignatureAlgorithm,
    Ca,
)> {
    [
        ("RSA", &PKCS_RSA_SHA256),
        ("P-256", &PKCS_ECDSA_P256_SHA256),
        ("P-384", &PKCS_ECDSA_P384_SHA384),
    ]
    .into_iter()
    .map(|(name, alg)| {
        let ca = ca(alg, "CA");
        let (cert, key) = leaf(alg, &ca, "cgw.example.com", Flaw::None);
        (name, cert, key_of(&key), alg, ca)
    })
    .collect()
}

#[test]
fn the_auth_method_follows_the_hashes_the_peer_announced() {
    use AuthMethod as M;
    use OwnAuth::{Classic, Digital};
    use SignatureScheme as S;
    let d = |s| Digital(s);
    // (announced, RSA, P-256, P-384)
    let table: [(Option<&[HashAlgorithm]>, OwnAuth, OwnAuth, OwnAuth); 7] = [
        (
            Some(&HASHES),
            d(S::RsaPkcs1Sha256),
            d(S::EcdsaSha256),
            d(S::EcdsaSha384),
        ),
        (
            Some(&[H512, H384, H256]),
            d(S::RsaPkcs1Sha256),
            d(S::EcdsaSha256),
            d(S::EcdsaSha384),
        ),
        (
            Some(&[H384, H512]),
            d(S::RsaPkcs1Sha384),
            Classic(M::ECDSA_SHA256_P256),
            d(S::EcdsaSha384),
        ),
        (
            Some(&[H512]),
            d(S::RsaPkcs1Sha512),
            Classic(M::ECDSA_SHA256_P256),
            Classic(M::ECDSA_SHA384_P384),
        ),
        (
            Some(&[H256]),
            d(S::RsaPkcs1Sha256),
            d(S::EcdsaSha256),
            Classic(M::ECDSA_SHA384_P384),
        ),
        // Nothing in common (SHA-1, Identity, an unknown number): as if not announced.
        (
            Some(&[H1, HashAlgorithm::IDENTITY, HashAlgorithm(999)]),
            Classic(M::RSA_DIGITAL_SIGNATURE),
            Classic(M::ECDSA_SHA256_P256),
            Classic(M::ECDSA_SHA384_P384),
        ),
        (
            None,
            Classic(M::RSA_DIGITAL_SIGNATURE),
            Classic(M::ECDSA_SHA256_P256),
            Classic(M::ECDSA_SHA384_P384),
        ),
    ];
    let keys = keys();
    for (announced, rsa, p256, p384) in table {
        for ((name, _, key, _, _), want) in keys.iter().zip([rsa, p256, p384]) {
            assert_eq!(choose_auth(key, announced), want, "{name} for {announced:?}");
        }
    }
    // An RSA key the `rsa` crate did not read signs method 14 even for a peer without RFC 7427.
    let (_, _, key, _, _) = keys.into_iter().next().unwrap();
    let SigningKey::Rsa { pair, .. } = key else {
        panic!()
    };
    let aws_lc_only = SigningKey::Rsa { pair, sha1: None };
    assert_eq!(choose_auth(&aws_lc_only, None), d(S::RsaPkcs1Sha256));
    assert_eq!(
        sign(&aws_lc_only, Classic(M::RSA_DIGITAL_SIGNATURE), &octets()),
        None
    );
}

#[test]
fn every_auth_cgwd_signs_verifies_with_its_certificate_and_not_when_tampered() {
    use AuthMethod as M;
    use OwnAuth::{Classic, Digital};
    use SignatureScheme as S;
    let mut paths = 0;
    for (name, cert, key, alg, ca) in keys() {
        let hows: Vec<OwnAuth> = match name {
            "RSA" => vec![
                Digital(S::RsaPkcs1Sha256),
                Digital(S::RsaPkcs1Sha384),
                Digital(S::RsaPkcs1Sha512),
                Classic(M::RSA_DIGITAL_SIGNATURE),
            ],
            "P-256" => vec![Digital(S::EcdsaSha256), Classic(M::ECDSA_SHA256_P256)],
            _ => vec![Digital(S::EcdsaSha384), Classic(M::ECDSA_SHA384_P384)],
        };
        let (cert2, _) = leaf(alg, &ca, "other", Flaw::None);
        for how in hows {
            let Some(PayloadRepr::Auth { method, data }) = sign(&key, how, &octets()) else {
                panic!("{name} {how:?}: no AUTH")
            };
            assert_eq!(method, how.method());
            if let Digital(scheme) = how {
                assert_eq!(SignatureAuth::parse(&data).unwrap().scheme(), Some(scheme));
            }
            verify_auth(&cert, method, &data, &octets()).unwrap_or_else(|e| panic!("{name} {how:?}: {e}"));
            let mut other = octets();
            other[0] ^= 1;
            assert_eq!(
                verify_auth(&cert, method, &data, &other),
                Err(CertError::BadSignature),
                "{name} {how:?}"
            );
            // Another key's certificate does not verify it.
            assert_eq!(
                verify_auth(&cert2, method, &data, &octets()),
                Err(CertError::BadSignature),
                "{name} {how:?}"
            );
            paths += 1;
        }
        // A method that does not fit the key signs nothing.
        for how in [
            Digital(S::RsaPssSha256),
            Digital(S::EcdsaSha512),
            Classic(M::ECDSA_SHA512_P521),
            Classic(M::SHARED_KEY_MIC),
        ] {
            assert_eq!(sign(&key, how, &octets()), None, "{name} {how:?}");
        }
    }
    assert_eq!(paths, 8);
}

#[test]
fn a_pkcs1_rsa_key_signs_method_1_too() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let ca = ca(&PKCS_RSA_SHA256, "CA");
    let (cert, pem) = leaf(&PKCS_RSA_SHA256, &ca, "cgw.example.com", Flaw::None);
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let pkcs1 = rsa::PrivateKey::from_pkcs8_der(&p.contents)
        .unwrap()
        .to_pkcs1_der()
        .unwrap();
    let key = SigningKey::from_pkcs1_der(pkcs1.as_bytes()).unwrap();
    let how = choose_auth(&key, None);
    assert_eq!(how, OwnAuth::Classic(AuthMethod::RSA_DIGITAL_SIGNATURE));
    let Some(PayloadRepr::Auth { method, data }) = sign(&key, how, &octets()) else {
        panic!()
    };
    verify_auth(&cert, method, &data, &octets()).unwrap();
}

#[test]
fn classic_ecdsa_method_9_verifies_fixed_signatures() {
    let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let (cert, key_pem) = leaf(&PKCS_ECDSA_P256_SHA256, &ca, "aws", Flaw::None);
    let (_, p) = x509_parser::pem::parse_x509_pem(key_pem.as_bytes()).unwrap();
    let fixed = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &p.contents).unwrap();
    let sig = fixed.sign(&SystemRandom::new(), &octets()).unwrap();
    verify_auth(&cert, AuthMethod::ECDSA_SHA256_P256, sig.as_ref(), &octets()).unwrap();
    // Method 10 names P-384: refused for a P-256 key, naming the method.
    let e = verify_auth(&cert, AuthMethod::ECDSA_SHA384_P384, sig.as_ref(), &octets()).unwrap_err();
    assert!(matches!(e, CertError::UnsupportedMethod { .. }), "{e}");
    let e = verify_auth(&cert, AuthMethod::SHARED_KEY_MIC, sig.as_ref(), &octets()).unwrap_err();
    assert!(e.to_string().contains("SHARED_KEY_MIC"), "{e}");
}

#[test]
fn the_peer_certificate_is_checked_with_one_distinct_error_per_fix() {
    let ca1 = ca(&PKCS_RSA_SHA256, "Example Private CA");
    let chain = vec![der_of(&ca1.pem)];
    let (good, _) = leaf(&PKCS_ECDSA_P256_SHA256, &ca1, "aws.example.com", Flaw::None);
    verify_certificate(&good, &[], &chain, NOW).unwrap();

    let e = verify_certificate(&good, &[], &chain, END + DAY).unwrap_err();
    assert_eq!(
        e,
        CertError::Expired {
            subject: "CN=aws.example.com".into(),
            at: fmt_time(END)
        }
    );
    assert!(e.to_string().contains("Rotate Tunnel Certificates"), "{e}");
    assert!(matches!(
        verify_certificate(&good, &[], &chain, FROM - DAY),
        Err(CertError::NotYetValid { .. })
    ));

    let other = ca(&PKCS_RSA_SHA256, "Example Private CA");
    let (foreign, _) = leaf(&PKCS_ECDSA_P256_SHA256, &other, "aws.example.com", Flaw::None);
    let e = verify_certificate(&foreign, &[], &chain, NOW).unwrap_err();
    assert!(matches!(e, CertError::OtherCa { .. }), "{e}");
    assert!(e.to_string().contains("auth.ca"), "{e}");

    let (no_ski, _) = leaf(
        &PKCS_ECDSA_P256_SHA256,
        &ca1,
        "aws.example.com",
        Flaw::NoSubjectKeyId,
    );
    let e = verify_certificate(&no_ski, &[], &chain, NOW).unwrap_err();
    assert_eq!(
        e,
        CertError::MissingExtension {
            subject: "CN=aws.example.com".into(),
            extension: "Subject Key Identifier"
        }
    );

    // The CA itself is no endpoint certificate.
    let e = verify_certificate(&chain[0], &[], &chain, NOW).unwrap_err();
    assert!(matches!(e, CertError::NotForSigning { .. }), "{e}");
    assert_eq!(
        verify_certificate(b"junk", &[], &chain, NOW),
        Err(CertError::Unparsable)
    );
}

#[test]
fn the_identity_must_be_the_subject_dn_or_a_san() {
    let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let (cert, _) = leaf(&PKCS_ECDSA_P256_SHA256, &ca, "vpn-1.example.com", Flaw::None);
    let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
    let dn = IdRepr {
        id_type: IdType::ID_DER_ASN1_DN,
        data: parsed.subject().as_raw().to_vec(),
    };
    check_identity(&cert, &dn).unwrap();
    // The same DN as strongSwan encodes `CN=vpn-1.example.com`: PrintableString, not UTF8String.
    let mut printable = vec![
        0x30, 0x1c, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x11,
    ];
    printable.extend_from_slice(b"vpn-1.example.com");
    let id = |data: Vec<u8>| IdRepr {
        id_type: IdType::ID_DER_ASN1_DN,
        data,
    };
    check_identity(&cert, &id(printable.clone())).unwrap();
    let mut other = printable;
    let n = other.len();
    other[n - 1] = b'n';
    assert!(check_identity(&cert, &id(other)).is_err());
    check_identity(&cert, &IdRepr::fqdn("VPN-1.example.com")).unwrap();
    let e = check_identity(&cert, &IdRepr::fqdn("vpn-2.example.com")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the peer's identity (vpn-2.example.com) is neither its certificate's subject (CN=vpn-1.example.com) nor one of its subject alternative names"
    );
    let e = check_identity(&cert, &IdRepr::from_ip("192.0.2.1".parse().unwrap())).unwrap_err();
    assert!(e.to_string().contains("(192.0.2.1)"), "{e}");
}

#[test]
fn certreq_names_a_ca_by_the_sha1_of_its_public_key_info() {
    let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let der = der_of(&ca.pem);
    let (_, parsed) = X509Certificate::from_der(&der).unwrap();
    let want = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, parsed.public_key().raw);
    assert_eq!(ca_key_hash(&der).unwrap().as_slice(), want.as_ref());
    assert_eq!(ca_key_hash(b"junk"), None);
}

#[test]
fn a_subordinate_ca_chains_when_trusted_or_when_the_peer_sends_it() {
    let root = ca(&PKCS_RSA_SHA256, "Root CA");
    let sub = root.subordinate(&PKCS_ECDSA_P256_SHA256, "Subordinate CA");
    let (leaf_der, _) = leaf(&PKCS_ECDSA_P256_SHA256, &sub, "aws.example.com", Flaw::None);
    let (root_der, sub_der) = (der_of(&root.pem), der_of(&sub.pem));
    assert!(is_subordinate_ca(&sub_der) && !is_subordinate_ca(&root_der) && !is_subordinate_ca(&leaf_der));
    // The configured chain holds the subordinate: trusted directly.
    verify_certificate(&leaf_der, &[], &[root_der.clone(), sub_der.clone()], NOW).unwrap();
    // Only the root configured: the subordinate must come from the peer.
    let e = verify_certificate(&leaf_der, &[], std::slice::from_ref(&root_der), NOW).unwrap_err();
    assert!(matches!(e, CertError::OtherCa { .. }), "{e}");
    verify_certificate(&leaf_der, &[&sub_der], std::slice::from_ref(&root_der), NOW).unwrap();
    // A CA the peer sends that the root did not sign does not help.
    let stranger = ca(&PKCS_RSA_SHA256, "Root CA").subordinate(&PKCS_ECDSA_P256_SHA256, "Subordinate CA");
    let (other_leaf, _) = leaf(&PKCS_ECDSA_P256_SHA256, &stranger, "aws.example.com", Flaw::None);
    let e = verify_certificate(
        &other_leaf,
        &[&der_of(&stranger.pem)],
        std::slice::from_ref(&root_der),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, CertError::OtherCa { .. }), "{e}");
}
