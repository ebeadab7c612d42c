//! Issue #16 against strongSwan: charon plays an AWS tunnel endpoint authenticating by certificate
//! (`auth = pubkey`, its ID the certificate's DN, as AWS's own strongSwan sample has it) and cgwd's
//! IkeSa initiates with the customer gateway's certificate, over real sockets in network
//! namespaces. Certificates are made at run time (tests/common/pki.rs). RSA and ECDSA: the IKE SA
//! and Child SA come up on both sides; an expired AWS certificate, one from another CA and one
//! without a Subject Key Identifier each fail on cgwd's side with one clear line. RFC 7427
//! negotiation: charon without it (`signature_authentication = no`) gets the classic AUTH methods,
//! charon announcing only SHA-384/512 gets method 14 with SHA-384. Needs root.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::config::cert::SigningKey;
use cgwd::crypto::OsRandom;
use cgwd::ike::config::CertAuth;
use cgwd::ike::{AlgorithmSet, Event, IkeConfig, IkeSa, State};
use cgwd::sa::TunnelId;
use cgwd::secret::Secret;
use cgwd::suite::{DhGroup, Encryption, Integrity};
use common::driver::bind_in;
use common::netns::{NetnsPair, skip_unless_root};
use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use common::strongswan::{Charon, Conn};
use rcgen::SignatureAlgorithm;

const CGW_CN: &str = "cgw.example.com";
const AWS_CN: &str = "vpn-0abc-1.tunnel.example.com";

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// How charon is set up beyond the defaults, and who initiates.
struct Setup {
    /// Lines for the `charon { }` section of strongswan.conf.
    charon_conf: &'static str,
    /// charon's remote `auth` round (see [`Conn::remote_pubkey_auth`]).
    remote_auth: &'static str,
    /// charon initiates and cgwd responds.
    cgwd_responds: bool,
}

const DEFAULT: Setup = Setup {
    charon_conf: "",
    remote_auth: "pubkey",
    cgwd_responds: false,
};

/// cgwd initiates against charon; AWS's certificate is `aws_flaw`, from `aws_ca` if given. The
/// events of cgwd's IkeSa, its final state, and charon's log.
fn run(
    tag: &str,
    alg: &'static SignatureAlgorithm,
    aws_flaw: Flaw,
    aws_ca: Option<&Ca>,
) -> (Vec<Event>, State, String) {
    run_with(tag, alg, aws_flaw, aws_ca, &DEFAULT)
}

fn run_with(
    tag: &str,
    alg: &'static SignatureAlgorithm,
    aws_flaw: Flaw,
    aws_ca: Option<&Ca>,
    setup: &Setup,
) -> (Vec<Event>, State, String) {
    let net = NetnsPair::create().expect("namespaces");
    let dir = std::env::temp_dir().join(format!("cgwd-cert-interop-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let aws = aws_ca.unwrap_or(&ca).issue(alg, AWS_CN, aws_flaw);
    let cgw = ca.issue(alg, CGW_CN, Flaw::None);
    // charon's credentials, next to its swanctl.conf: its certificate, key and the CA it trusts
    // for cgwd's certificate.
    let creds = dir.clone();
    let aws_cert = write(&creds, "x509/aws.pem", &aws.cert);
    write(&creds, "private/aws.key", &aws.key);
    let ca_file = write(&creds, "x509ca/ca.pem", &ca.pem);
    let charon = Charon::start_with(&net.aws, &dir, setup.charon_conf).expect("charon");
    let mut conn = Conn::new(
        &net.aws_ip.to_string(),
        &net.cgw_ip.to_string(),
        "unused-psk-0123456789",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    );
    conn.pubkey = Some((aws_cert, ca_file, format!("CN={AWS_CN}"), format!("CN={CGW_CN}")));
    conn.remote_pubkey_auth = setup.remote_auth;
    charon.load_with_credentials(&conn).expect("swanctl --load-all");
    let socks = bind_in(&net.cgw, net.cgw_ip).expect("bind 500/4500 in cgw");

    let mut cfg = IkeConfig::aws_defaults(
        TunnelId::One,
        net.cgw_ip,
        net.aws_ip,
        Secret::from_slice(b"unused"),
    );
    let g = DhGroup::new(20).unwrap();
    cfg.ike = AlgorithmSet::single(Encryption::Aes256Gcm16, Integrity::Sha2_384, g);
    cfg.esp = AlgorithmSet::single(Encryption::Aes256Gcm16, Integrity::Sha2_384, g);
    let certificate = der(&cgw.cert);
    let (_, parsed) = x509_parser::parse_x509_certificate(&certificate).unwrap();
    cfg.certificate = Some(CertAuth {
        subject_dn: parsed.subject().as_raw().to_vec(),
        certificate: certificate.clone(),
        key: Arc::new(SigningKey::from_der(&der(&cgw.key)).unwrap()),
        ca: vec![der(&ca.pem)],
        wall_clock: cgwd::io::clock::unix_now,
        announce_signature_hashes: true,
    });
    let (mut sa, init) = if setup.cgwd_responds {
        let init = charon.initiate().expect("swanctl --initiate");
        let sa = socks
            .accept(Arc::new(cfg), Duration::from_secs(8))
            .expect("charon's IKE_SA_INIT");
        (sa, Some(init))
    } else {
        #[allow(clippy::disallowed_methods)]
        let sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
        (sa, None)
    };
    let events = socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_))
    });
    if let Some(mut init) = init {
        let _ = init.wait();
    }
    let state = sa.state();
    let log = charon.log();
    if state == State::Established {
        let sas = charon.list_sas();
        assert!(
            sas.contains("ESTABLISHED") && sas.contains("INSTALLED"),
            "{tag}: {sas}\n{log}"
        );
    }
    drop(charon);
    if std::env::var_os("CGWD_KEEP_TEST_FILES").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    (events, state, log)
}

fn failures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(f) => Some(f.message()),
            _ => None,
        })
        .collect()
}

#[test]
fn rsa_and_ecdsa_certificates_bring_the_tunnel_up_with_strongswan() {
    if skip_unless_root() {
        return;
    }
    // charon announces RFC 7427 (SHA-256/384/512): cgwd signs method 14 with SHA-256.
    for (tag, alg, scheme) in [
        ("rsa", &PKCS_RSA_SHA256, "with RSA_EMSA_PKCS1_SHA2_256 successful"),
        (
            "ecdsa",
            &PKCS_ECDSA_P256_SHA256,
            "with ECDSA_WITH_SHA256_DER successful",
        ),
    ] {
        let (events, state, log) = run(tag, alg, Flaw::None, None);
        let verified = charon_verified(&log);
        assert!(
            verified.contains(scheme),
            "{tag}: {verified:?}\ncharon log:\n{log}"
        );
        assert_eq!(
            state,
            State::Established,
            "{tag}: {:?}\ncharon log:\n{log}",
            failures(&events)
        );
        assert!(
            events.iter().any(|e| matches!(e, Event::ChildUp(_))),
            "{tag}: {events:?}\ncharon log:\n{log}"
        );
        println!("{tag}: IKE SA and Child SA up with strongSwan by certificate");
    }
}

#[test]
fn refused_aws_certificates_fail_with_one_clear_line() {
    if skip_unless_root() {
        return;
    }
    let other = Ca::new(&PKCS_RSA_SHA256, "Other CA");
    for (tag, flaw, ca, want) in [
        ("expired", Flaw::Expired, None, "expired at"),
        (
            "other-ca",
            Flaw::None,
            Some(&other),
            "was not issued by a CA of auth.ca",
        ),
        (
            "no-ski",
            Flaw::NoSubjectKeyId,
            None,
            "has no Subject Key Identifier extension",
        ),
    ] {
        let (events, state, log) = run(tag, &PKCS_ECDSA_P256_SHA256, flaw, ca);
        let f = failures(&events);
        assert_ne!(state, State::Established, "{tag}");
        assert_eq!(f.len(), 1, "{tag}: {f:?}\ncharon log:\n{log}");
        assert!(
            f[0].contains(want),
            "{tag}: {want:?} in {f:?}\ncharon log:\n{log}"
        );
        println!("{tag}: {}", f[0]);
    }
}

/// The line where charon says how it checked cgwd's AUTH, e.g. `authentication of
/// 'CN=cgw.example.com' with RSA_EMSA_PKCS1_SHA1 successful`.
fn charon_verified(log: &str) -> String {
    log.lines()
        .find(|l| l.contains(&format!("authentication of 'CN={CGW_CN}' with")))
        .unwrap_or_default()
        .to_string()
}

fn assert_up(tag: &str, events: &[Event], state: State, log: &str) {
    assert_eq!(
        state,
        State::Established,
        "{tag}: {:?}\ncharon log:\n{log}",
        failures(events)
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::ChildUp(_))),
        "{tag}: {events:?}\ncharon log:\n{log}"
    );
}

/// RFC 7427 §4 fallback: charon with `signature_authentication = no` sends no
/// SIGNATURE_HASH_ALGORITHMS and signs with the classic methods itself; cgwd answers with the
/// classic method of its key (1, RSA PKCS#1 v1.5 SHA-1; 9, ECDSA P-256), which charon verifies,
/// and the tunnel comes up, whichever side initiates.
#[test]
fn charon_without_rfc_7427_gets_classic_auth_methods_and_the_tunnel_comes_up() {
    if skip_unless_root() {
        return;
    }
    for (tag, alg, scheme) in [
        ("rsa", &PKCS_RSA_SHA256, "with RSA signature successful"),
        (
            "ecdsa",
            &PKCS_ECDSA_P256_SHA256,
            "with ECDSA-256 signature successful",
        ),
    ] {
        for cgwd_responds in [false, true] {
            let tag = format!("classic-{tag}-{}", if cgwd_responds { "r" } else { "i" });
            let setup = Setup {
                charon_conf: "signature_authentication = no",
                cgwd_responds,
                ..DEFAULT
            };
            let (events, state, log) = run_with(&tag, alg, Flaw::None, None, &setup);
            assert_up(&tag, &events, state, &log);
            let verified = charon_verified(&log);
            assert!(
                verified.contains(scheme),
                "{tag}: {verified:?}\ncharon log:\n{log}"
            );
            println!("{tag}: up; charon: {}", verified.trim());
        }
    }
}

/// charon as initiator with `remote { auth = ike:pubkey-sha384-sha512 }` announces only SHA-384
/// and SHA-512 (strongSwan builds SIGNATURE_HASH_ALGORITHMS from the peer config's IKE signature
/// constraints, which only an initiator knows at IKE_SA_INIT): cgwd, responding, signs RSA with
/// PKCS#1 v1.5 SHA-384 and P-384 with ECDSA SHA-384 (method 14), and charon accepts both under
/// that constraint. (A P-256 key gets the classic method 9, which this charon refuses: "IKE
/// signature scheme ECDSA-256 not acceptable". aws-lc cannot sign P-256 with SHA-384.)
#[test]
fn charon_announcing_only_sha384_and_sha512_gets_method_14_with_sha384() {
    if skip_unless_root() {
        return;
    }
    let setup = Setup {
        remote_auth: "ike:pubkey-sha384-sha512",
        cgwd_responds: true,
        ..DEFAULT
    };
    for (tag, alg, scheme) in [
        (
            "sha384-rsa",
            &PKCS_RSA_SHA256,
            "with RSA_EMSA_PKCS1_SHA2_384 successful",
        ),
        (
            "sha384-p384",
            &PKCS_ECDSA_P384_SHA384,
            "with ECDSA_WITH_SHA384_DER successful",
        ),
    ] {
        let (events, state, log) = run_with(tag, alg, Flaw::None, None, &setup);
        assert_up(tag, &events, state, &log);
        let verified = charon_verified(&log);
        assert!(
            verified.contains(scheme),
            "{tag}: {verified:?}\ncharon log:\n{log}"
        );
        println!("{tag}: up; charon: {}", verified.trim());
    }
}
