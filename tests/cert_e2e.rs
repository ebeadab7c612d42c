//! Issue #16 end to end: `cgwd run` with the AWS file of a certificate-authenticated connection
//! (both tunnels list a CertificateArn, no key anywhere) and `[auth]` in its settings, against two
//! strongSwan charons playing AWS's endpoints with `auth = pubkey` (each identified by its own
//! tunnel certificate's DN, like AWS). All certificates are made at run time. Both tunnels come
//! up and carry a ping, for RSA and for ECDSA. Needs root and strongSwan.

mod common;

use std::path::{Path, PathBuf};

use common::netns::skip_unless_root;
use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use common::strongswan::{Charon, Conn};
use common::two_aws::{AWS, CGW, CgwdRun, PSK, Topology, aws_inside};
use rcgen::SignatureAlgorithm;

const CGW_CN: &str = "cgw.example.com";

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// configs/lab.describe.json as AWS describes a certificate connection: the keys replaced by the
/// placeholder and a CertificateArn on each tunnel's telemetry.
fn certificate_config(dir: &Path) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let mut text = std::fs::read_to_string(sample).unwrap();
    for psk in PSK {
        text = text.replace(psk, "REDACTED");
    }
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (i, t) in v["VpnConnections"][0]["VgwTelemetry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        t["CertificateArn"] =
            format!("arn:aws:acm:us-east-1:111122223333:certificate/tunnel-{}", i + 1).into();
    }
    write(&dir.join("vpn.json"), &serde_json::to_string_pretty(&v).unwrap())
}

fn both_tunnels_by_certificate(tag: char, alg: &'static SignatureAlgorithm) {
    let topo = Topology::create(format!("x{tag}"));
    let dir = std::env::temp_dir().join(format!("cgwd-cert-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let cgw = ca.issue(alg, CGW_CN, Flaw::None);
    let _charons: Vec<Charon> = (0..2)
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
            aws_inside(&topo, i);
            c
        })
        .collect();
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
