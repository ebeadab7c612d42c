//! Issue #16, in process: two IkeSa (cgwd as initiator, cgwd playing AWS as responder) authenticating
//! by certificate — CERT, CERTREQ, SIGNATURE_HASH_ALGORITHMS and RFC 7427 signature AUTH — with
//! certificates rcgen makes at run time; each refusal of AWS's certificate as one clear failure; and
//! a peer that does not announce RFC 7427, answered with the classic AUTH methods.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cgwd::config::cert::SigningKey;
use cgwd::ike::State;
use cgwd::ike::config::{CertAuth, IkeConfig};
use common::pair::{Pair, assert_established, config};
use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use rcgen::SignatureAlgorithm;

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

fn cert_auth(ca: &Ca, alg: &'static SignatureAlgorithm, cn: &str, flaw: Flaw, trust: &Ca) -> CertAuth {
    let leaf = ca.issue(alg, cn, flaw);
    let certificate = der(&leaf.cert);
    let (_, parsed) = x509_parser::parse_x509_certificate(&certificate).unwrap();
    CertAuth {
        subject_dn: parsed.subject().as_raw().to_vec(),
        certificate: certificate.clone(),
        key: Arc::new(SigningKey::from_der(&der(&leaf.key)).unwrap()),
        ca: vec![der(&trust.pem)],
        wall_clock: cgwd::io::clock::unix_now,
        announce_signature_hashes: true,
    }
}

/// cgwd's config with an ECDSA certificate from `ca`, trusting `ca`, and its mirror for AWS
/// (still with cgwd's certificate: callers set AWS's own).
fn cgw_and_mirror(ca: &Ca) -> (IkeConfig, IkeConfig) {
    let mut cgw = config();
    cgw.certificate = Some(cert_auth(
        ca,
        &PKCS_ECDSA_P256_SHA256,
        "cgw.example.com",
        Flaw::None,
        ca,
    ));
    let aws = cgw.mirrored();
    (cgw, aws)
}

/// cgwd's config and AWS's, both by certificate from `ca` unless AWS's leaf has `aws_flaw` or
/// comes from `aws_ca`.
fn pair_of(alg: &'static SignatureAlgorithm, aws_flaw: Flaw, aws_ca: Option<&Ca>, seed: u64) -> Pair {
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let mut cgw: IkeConfig = config();
    cgw.certificate = Some(cert_auth(&ca, alg, "cgw.example.com", Flaw::None, &ca));
    let mut aws = cgw.mirrored();
    aws.certificate = Some(cert_auth(
        aws_ca.unwrap_or(&ca),
        alg,
        "vpn-0abc-1.example.com",
        aws_flaw,
        &ca,
    ));
    let mut p = Pair::new(cgw, aws, seed);
    p.run_for(Duration::from_secs(2));
    p
}

#[test]
fn rsa_and_ecdsa_certificates_establish_the_ike_sa_and_its_child() {
    for (i, alg) in [&PKCS_RSA_SHA256, &PKCS_ECDSA_P256_SHA256, &PKCS_ECDSA_P384_SHA384]
        .into_iter()
        .enumerate()
    {
        let p = pair_of(alg, Flaw::None, None, 40 + i as u64);
        assert_established(&p);
    }
}

/// AWS's certificate refused: cgwd fails with one line naming the fix, AWS hears
/// AUTHENTICATION_FAILED and nothing is up.
fn refused(p: &Pair, want: &str) {
    assert_eq!(p.initiator.state(), State::Closed);
    let f = Pair::failures(&p.initiator_events);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].starts_with("tunnel 1: refused the peer 198.51.100.11: "),
        "{f:?}"
    );
    assert!(f[0].contains(want), "{want:?} in {f:?}");
    assert!(Pair::child_ups(&p.initiator_events).is_empty());
}

#[test]
fn an_expired_aws_certificate_is_refused_naming_the_renewal() {
    let p = pair_of(&PKCS_ECDSA_P256_SHA256, Flaw::Expired, None, 50);
    refused(&p, "expired at");
    refused(&p, "Rotate Tunnel Certificates");
}

#[test]
fn an_aws_certificate_from_another_ca_is_refused_naming_auth_ca() {
    let other = Ca::new(&PKCS_RSA_SHA256, "Other CA");
    let p = pair_of(&PKCS_ECDSA_P256_SHA256, Flaw::None, Some(&other), 51);
    refused(
        &p,
        "was not issued by a CA of auth.ca (its issuer is CN=Other CA)",
    );
}

#[test]
fn an_aws_certificate_without_subject_key_identifier_is_refused() {
    let p = pair_of(&PKCS_ECDSA_P256_SHA256, Flaw::NoSubjectKeyId, None, 52);
    refused(&p, "has no Subject Key Identifier extension");
}

#[test]
fn a_psk_peer_cannot_pass_for_a_certificate_one() {
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let (cgw, mut aws) = cgw_and_mirror(&ca);
    aws.certificate = None;
    let mut p = Pair::new(cgw, aws, 53);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.initiator.state(), State::Closed);
    assert!(Pair::child_ups(&p.initiator_events).is_empty());
    assert!(Pair::child_ups(&p.responder_events).is_empty());
}

#[test]
fn our_certificate_refused_by_aws_is_reported_as_such() {
    // AWS trusts another CA: it answers AUTHENTICATION_FAILED to cgwd's IKE_AUTH.
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let other = Ca::new(&PKCS_RSA_SHA256, "Other CA");
    let (cgw, mut aws) = cgw_and_mirror(&ca);
    aws.certificate = Some(cert_auth(
        &ca,
        &PKCS_ECDSA_P256_SHA256,
        "aws.example.com",
        Flaw::None,
        &other,
    ));
    let mut p = Pair::new(cgw, aws, 54);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.initiator.state(), State::Closed);
    let f = Pair::failures(&p.initiator_events);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].starts_with("tunnel 1: AWS rejected our certificate — check that auth.certificate"),
        "{f:?}"
    );
    let r = Pair::failures(&p.responder_events);
    assert!(
        r[0].contains("was not issued by a CA of auth.ca (its issuer is CN=Example Private CA)"),
        "{r:?}"
    );
}

#[test]
fn a_certificate_from_a_subordinate_ca_is_sent_with_its_ca_and_accepted_by_a_root_only_peer() {
    // AWS Private CA: the customer gateway's certificate comes from a subordinate CA; auth.ca holds
    // the chain (root and subordinate). A peer trusting only the root builds the path from the
    // subordinate CA certificate cgwd sends in a second CERT.
    let root = Ca::new(&PKCS_RSA_SHA256, "Root CA");
    let sub = root.subordinate(&PKCS_ECDSA_P256_SHA256, "Subordinate CA");
    let mut cgw = config();
    let mut own = cert_auth(
        &sub,
        &PKCS_ECDSA_P256_SHA256,
        "cgw.example.com",
        Flaw::None,
        &root,
    );
    own.ca.push(der(&sub.pem));
    cgw.certificate = Some(own);
    let mut aws = cgw.mirrored();
    aws.certificate = Some(cert_auth(
        &root,
        &PKCS_ECDSA_P256_SHA256,
        "aws.example.com",
        Flaw::None,
        &root,
    ));
    let mut p = Pair::new(cgw, aws, 55);
    p.run_for(Duration::from_secs(2));
    assert_established(&p);
}

/// IKE_SA_INIT by certificate: both sides announce SIGNATURE_HASH_ALGORITHMS (SHA-256/384/512,
/// RFC 7427 §4) and the responder's answer carries a CERTREQ naming the SHA-1 of its CA's
/// SubjectPublicKeyInfo (RFC 7296 §3.7).
#[test]
fn ike_sa_init_announces_signature_hashes_and_the_responder_requests_a_certificate() {
    use cgwd::wire::ike::cert::{parse_certreq, parse_signature_hash_algorithms};
    use cgwd::wire::ike::{HashAlgorithm, Message, NotifyType, PayloadRepr};
    let p = pair_of(&PKCS_ECDSA_P256_SHA256, Flaw::None, None, 56);
    assert_established(&p);
    let init: Vec<Vec<PayloadRepr>> = p
        .raw
        .iter()
        .filter(|(_, m)| m.get(18) == Some(&common::pair::IKE_SA_INIT))
        .map(|(_, m)| Message::parse(m).unwrap().payloads().unwrap())
        .collect();
    assert_eq!(init.len(), 2);
    for payloads in &init {
        let hashes = payloads
            .iter()
            .find_map(|p| match p {
                PayloadRepr::Notify(n) if n.kind == NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                    Some(parse_signature_hash_algorithms(&n.data).unwrap())
                }
                _ => None,
            })
            .expect("SIGNATURE_HASH_ALGORITHMS");
        assert_eq!(
            hashes,
            [
                HashAlgorithm::SHA2_256,
                HashAlgorithm::SHA2_384,
                HashAlgorithm::SHA2_512
            ]
        );
    }
    let certreq = init[1]
        .iter()
        .find_map(|p| match p {
            PayloadRepr::CertReq { encoding, data } => Some(parse_certreq(*encoding, data).unwrap()),
            _ => None,
        })
        .expect("CERTREQ in the IKE_SA_INIT response");
    let ca = p.responder_cfg.certificate.as_ref().unwrap().ca[0].clone();
    assert_eq!(certreq, [cgwd::crypto::sig::ca_key_hash(&ca).unwrap()]);
}

/// A log sink for [`logged`].
#[derive(Clone, Default)]
struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `f`'s result and what it logged at debug level and above (no colours).
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Buffer::default();
    let sink = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// RFC 7427 §4: a peer that sends no SIGNATURE_HASH_ALGORITHMS gets the classic AUTH method of
/// our key (1 for RSA, 9 for P-256, 10 for P-384) and one info line saying so; the other side,
/// which heard the announcement, signs with method 14. Whichever side is silent, the IKE SA and
/// its Child SA come up.
#[test]
fn a_peer_without_rfc_7427_gets_the_classic_method_and_both_sides_establish() {
    use cgwd::wire::ike::{Message, NotifyType, PayloadRepr};
    let mut seed = 60;
    for (alg, classic) in [
        (
            &PKCS_RSA_SHA256,
            "method 1 (RSA Digital Signature, PKCS#1 v1.5 with SHA-1)",
        ),
        (&PKCS_ECDSA_P256_SHA256, "method 9 (ECDSA with SHA-256 on P-256)"),
        (&PKCS_ECDSA_P384_SHA384, "method 10 (ECDSA with SHA-384 on P-384)"),
    ] {
        for silent_initiator in [false, true] {
            seed += 1;
            let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
            let mut cgw: IkeConfig = config();
            let mut own = cert_auth(&ca, alg, "cgw.example.com", Flaw::None, &ca);
            own.announce_signature_hashes = !silent_initiator;
            cgw.certificate = Some(own);
            let mut aws = cgw.mirrored();
            let mut theirs = cert_auth(&ca, alg, "vpn-0abc-1.example.com", Flaw::None, &ca);
            theirs.announce_signature_hashes = silent_initiator;
            aws.certificate = Some(theirs);
            let (p, log) = logged(|| {
                let mut p = Pair::new(cgw, aws, seed);
                p.run_for(Duration::from_secs(2));
                p
            });
            let case = format!("{classic}, silent initiator: {silent_initiator}");
            assert_established(&p);
            // The silent side's IKE_SA_INIT has no SIGNATURE_HASH_ALGORITHMS, the other's has.
            let announced: Vec<bool> = p
                .raw
                .iter()
                .filter(|(_, m)| m.get(18) == Some(&common::pair::IKE_SA_INIT))
                .map(|(_, m)| {
                    Message::parse(m).unwrap().payloads().unwrap().iter().any(|p| {
                        matches!(p, PayloadRepr::Notify(n) if n.kind == NotifyType::SIGNATURE_HASH_ALGORITHMS)
                    })
                })
                .collect();
            assert_eq!(announced, [!silent_initiator, silent_initiator], "{case}");
            // Initiator signs first, then the responder: the one facing the silent side, classic.
            let methods: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("DEBUG") && l.contains("signing our AUTH"))
                .collect();
            assert_eq!(methods.len(), 2, "{case}: {log}");
            let (classic_at, digital_at) = if silent_initiator { (1, 0) } else { (0, 1) };
            assert!(methods[classic_at].contains(classic), "{case}: {methods:?}");
            assert!(
                methods[digital_at].contains("method 14 (RFC 7427 Digital Signature"),
                "{case}: {methods:?}"
            );
            let info: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("INFO") && l.contains("classic method"))
                .collect();
            assert_eq!(info.len(), 1, "{case}: {log}");
            assert!(
                info[0].contains("the peer did not announce RFC 7427 signature authentication"),
                "{case}: {info:?}"
            );
        }
    }
}
