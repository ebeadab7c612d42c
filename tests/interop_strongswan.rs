//! cgwd's IKE against a real strongSwan charon in network namespaces (root only).

mod common;

use common::netns::{NetnsPair, skip_unless_root};
use common::strongswan::{Charon, Conn, parse_list_sas};

fn tmpdir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cgwd-ike-{}-{tag}", std::process::id()))
}

/// The harness itself: two charons reach ESTABLISHED/INSTALLED across the namespaces.
#[test]
fn harness_charon_to_charon() {
    if skip_unless_root() {
        return;
    }
    let net = NetnsPair::create().unwrap();
    let (ci, ai) = (net.cgw_ip.to_string(), net.aws_ip.to_string());
    let aws = Charon::start(&net.aws, &tmpdir("h-aws")).unwrap();
    aws.load(&Conn::new(
        &ai,
        &ci,
        "harness-psk-0123456789",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    ))
    .unwrap();
    let cgw = Charon::start(&net.cgw, &tmpdir("h-cgw")).unwrap();
    cgw.load(&Conn::new(
        &ci,
        &ai,
        "harness-psk-0123456789",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    ))
    .unwrap();
    let out = cgw.swanctl("--initiate", &["--child", "t", "--timeout", "10"]);
    let status = parse_list_sas(&aws.list_sas());
    assert!(
        status.ike_established && status.child_installed,
        "{out:?}\n{}\n{}",
        aws.list_sas(),
        aws.log()
    );
    let c = parse_list_sas(&cgw.list_sas());
    let (ain, aout) = status.child_spis.unwrap();
    assert_eq!(c.child_spis, Some((aout, ain)));
    println!("{}", aws.list_sas());
}
