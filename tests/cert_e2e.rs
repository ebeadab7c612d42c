//! Issue #16 end to end: `cgwd run` with the AWS file of a certificate-authenticated connection
//! (both tunnels list a CertificateArn, no key anywhere) and `[auth]` in its settings, against two
//! strongSwan charons playing AWS's endpoints with `auth = pubkey` (each identified by its own
//! tunnel certificate's DN, like AWS). All certificates are made at run time. Both tunnels come
//! up and carry a ping, for RSA and for ECDSA; a renewed certificate is picked up by a reload
//! without a packet lost, and the next IKE SA authenticates with it. Needs root and strongSwan.

mod common;

use std::path::Path;

use common::netns::skip_unless_root;
use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use common::strongswan::{Charon, Conn};
use common::two_aws::{AWS, CGW, CgwdRun, Topology, aws_inside, lost, ping_every, wait_for};
use rcgen::SignatureAlgorithm;

const CGW_CN: &str = "cgw.example.com";

use common::two_aws::{certificate_config, write_file as write};

/// Both charons playing AWS with `auth = pubkey`, their tunnel certificates from `ca`.
fn aws_by_certificate(topo: &Topology, dir: &Path, ca: &Ca, alg: &'static SignatureAlgorithm) -> Vec<Charon> {
    (0..2)
        .map(|i| {
            let cn = format!("vpn-71310d5967085f652-{}.tunnel.example.com", i + 1);
            let leaf = ca.issue(alg, &cn, Flaw::None);
            let c = Charon::start(&topo.aws[i], &dir.join(format!("aws{}", i + 1))).unwrap();
            let cert = write(&c.dir.join("x509/aws.pem"), &leaf.cert);
            write(&c.dir.join("private/aws.key"), &leaf.key);
            let ca_file = write(&c.dir.join("x509ca/ca.pem"), &ca.pem);
            let mut conn = Conn::new(
                AWS[i],
                CGW,
                "unused-psk-0123456789",
                "aes256gcm16-prfsha256-ecp256",
                "aes256gcm16-ecp256",
            );
            conn.pubkey = Some((cert, ca_file, format!("CN={cn}"), format!("CN={CGW_CN}")));
            c.load_with_credentials(&conn).unwrap();
            aws_inside(topo, i);
            c
        })
        .collect()
}

fn both_tunnels_by_certificate(tag: char, alg: &'static SignatureAlgorithm) {
    let topo = Topology::create(format!("x{tag}"));
    let dir = std::env::temp_dir().join(format!("cgwd-cert-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let cgw = ca.issue(alg, CGW_CN, Flaw::None);
    let _charons = aws_by_certificate(&topo, &dir, &ca, alg);
    let auth = format!(
        "[auth]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n",
        write(&dir.join("cgw/cgw.pem"), &cgw.cert).display(),
        write(&dir.join("cgw/cgw.key"), &cgw.key).display(),
        write(&dir.join("cgw/ca.pem"), &ca.pem).display(),
    );
    let config = certificate_config(&dir);
    let mut run = CgwdRun::start(&topo, &dir, tag, &config, &auth);
    run.wait_both_up();
    let log = run.log();
    assert!(log.contains("IKE SA established"), "{log}");
    let ping = topo.ns_exec(
        &topo.cgw,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{log}");
    println!("{tag}: both tunnels up by certificate; ping: 0% loss");
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cgwd_run_brings_both_tunnels_up_by_rsa_certificate_and_carries_a_ping() {
    if skip_unless_root() {
        return;
    }
    both_tunnels_by_certificate('r', &PKCS_RSA_SHA256);
}

#[test]
fn cgwd_run_brings_both_tunnels_up_by_ecdsa_certificate_and_carries_a_ping() {
    if skip_unless_root() {
        return;
    }
    both_tunnels_by_certificate('e', &PKCS_ECDSA_P256_SHA256);
}

/// A renewed certificate (same CA and subject, a new key) written over the old files: `cgwd reload`
/// takes it without re-establishing anything (0 pings lost at 20 per second), and once the old
/// certificate has expired, a new IKE SA (AWS's side deletes tunnel 1's) authenticates with the
/// renewed one — charon refuses expired certificates, so the tunnel coming back proves which one
/// cgwd sent.
#[test]
fn a_renewed_certificate_is_picked_up_by_a_reload_without_loss() {
    if skip_unless_root() {
        return;
    }
    let tag = 'n';
    let topo = Topology::create(format!("x{tag}"));
    let dir = std::env::temp_dir().join(format!("cgwd-cert-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let charons = aws_by_certificate(&topo, &dir, &ca, &PKCS_ECDSA_P256_SHA256);
    // The old certificate expires 45 s from now; the renewed one in 200 days.
    let now = time::OffsetDateTime::now_utc();
    let expires = now + time::Duration::seconds(45);
    let old = ca.issue_valid(
        &PKCS_ECDSA_P256_SHA256,
        CGW_CN,
        Flaw::None,
        (now - time::Duration::days(1), expires),
    );
    let (cert, key) = (dir.join("cgw/cgw.pem"), dir.join("cgw/cgw.key"));
    let auth = format!(
        "[auth]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n",
        write(&cert, &old.cert).display(),
        write(&key, &old.key).display(),
        write(&dir.join("cgw/ca.pem"), &ca.pem).display(),
    );
    let config = certificate_config(&dir);
    let mut run = CgwdRun::start(&topo, &dir, tag, &config, &auth);
    run.wait_both_up();

    let ping = ping_every(&topo.cgw, 100, "0.05");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let renewed = ca.issue(&PKCS_ECDSA_P256_SHA256, CGW_CN, Flaw::None);
    write(&key, &renewed.key);
    write(&cert, &renewed.cert);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["reload", "--socket"])
        .arg(&run.sock)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}\n{}", run.log());
    assert!(said.contains("0 tunnels to re-establish"), "{said}");
    let (lost, _) = lost(ping);
    assert_eq!(lost, 0, "pings lost across the reload\n{}", run.log());
    let log = run.log();
    assert!(
        log.contains("customer gateway certificate changed by the reload"),
        "{log}"
    );

    // After the old certificate's expiry, AWS's side drops tunnel 1: cgwd's next IKE SA must
    // authenticate with the renewed certificate, or charon refuses it.
    let wait = expires - time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    if let Ok(wait) = std::time::Duration::try_from(wait) {
        std::thread::sleep(wait);
    }
    let before = run.log().matches("IKE SA established").count();
    charons[0]
        .swanctl("--terminate", &["--ike", "t", "--force"])
        .unwrap();
    let sock = run.sock.clone();
    let took = wait_for(
        "tunnel 1 back with the renewed certificate",
        std::time::Duration::from_secs(20),
        || {
            run.log().matches("IKE SA established").count() > before
                && common::two_aws::status(&sock).is_some_and(|s| common::two_aws::established(&s, 0))
        },
    );
    let ping = topo.ns_exec(
        &topo.cgw,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", run.log());
    println!(
        "renewal: reload 0 of 100 pings lost, 0 tunnels re-established; tunnel 1 re-authenticated with the renewed certificate in {took:?} after the old one expired"
    );
    drop(run);
    drop(charons);
    let _ = std::fs::remove_dir_all(&dir);
}
