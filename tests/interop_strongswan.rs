//! cgwd's IKE against a real strongSwan 5.9 charon playing AWS, in network namespaces (root only).
//!
//! Topology: namespace `cgw` (192.0.2.10, where the test drives an `IkeSa` over real UDP 500/4500) and
//! namespace `aws` (192.0.2.11, charon with kernel-libipsec and encap=yes, like the AWS lab), one veth.
//! Each case asserts, with `swanctl --list-sas`, that charon has the IKE SA ESTABLISHED and the CHILD_SA
//! INSTALLED with exactly the SPIs cgwd reported in `ChildUp`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::crypto::OsRandom;
use cgwd::ike::{AlgorithmSet, Event, IkeConfig, IkeSa, State};
use cgwd::sa::{ChildSa, TunnelId};
use cgwd::secret::Secret;
use cgwd::suite::{DhGroup, Encryption, Integrity};
use common::driver::{Sockets, bind_in};
use common::netns::{NetnsPair, skip_unless_root};
use common::strongswan::{Charon, Conn, SaStatus, parse_list_sas};

const PSK: &str = "interop-psk.0123456789_abcdef";

fn tmpdir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cgwd-ike-{}-{tag}", std::process::id()))
}

struct Case {
    name: &'static str,
    ike: &'static str,
    esp: &'static str,
    encryption: Encryption,
    integrity: Integrity,
    dh: u16,
}

const CASES: [Case; 4] = [
    Case {
        name: "gcm256-sha384-ecp384",
        ike: "aes256gcm16-prfsha384-ecp384",
        esp: "aes256gcm16",
        encryption: Encryption::Aes256Gcm16,
        integrity: Integrity::Sha2_384,
        dh: 20,
    },
    Case {
        name: "cbc128-sha1-modp1024",
        ike: "aes128-sha1-modp1024",
        esp: "aes128-sha1",
        encryption: Encryption::Aes128Cbc,
        integrity: Integrity::Sha1,
        dh: 2,
    },
    Case {
        name: "cbc256-sha256-modp2048",
        ike: "aes256-sha256-modp2048",
        esp: "aes256-sha256",
        encryption: Encryption::Aes256Cbc,
        integrity: Integrity::Sha2_256,
        dh: 14,
    },
    Case {
        name: "gcm128-sha512-ecp521",
        ike: "aes128gcm16-prfsha512-ecp521",
        esp: "aes128gcm16",
        encryption: Encryption::Aes128Gcm16,
        integrity: Integrity::Sha2_512,
        dh: 21,
    },
];

struct Lab {
    net: NetnsPair,
    charon: Charon,
    socks: Sockets,
}

fn lab(tag: &str, conn: impl FnOnce(&NetnsPair) -> Conn) -> Lab {
    let net = NetnsPair::create().expect("namespaces");
    let charon = Charon::start(&net.aws, &tmpdir(tag)).expect("charon");
    charon.load(&conn(&net)).expect("swanctl --load-all");
    let socks = bind_in(&net.cgw, net.cgw_ip).expect("bind 500/4500 in cgw");
    Lab { net, charon, socks }
}

fn cgwd_config(net: &NetnsPair, c: &Case) -> IkeConfig {
    let mut cfg = IkeConfig::aws_defaults(
        TunnelId::One,
        net.cgw_ip,
        net.aws_ip,
        Secret::from_slice(PSK.as_bytes()),
    );
    let g = DhGroup::new(c.dh).unwrap();
    cfg.ike = AlgorithmSet::single(c.encryption, c.integrity, g);
    cfg.esp = AlgorithmSet::single(c.encryption, c.integrity, g);
    cfg
}

fn child_of(events: &[Event]) -> Option<&ChildSa> {
    events.iter().find_map(|e| match e {
        Event::ChildUp(c) => Some(c),
        _ => None,
    })
}

/// charon's view, polled briefly (it installs the CHILD_SA right after the last message).
#[allow(clippy::disallowed_methods)]
fn charon_status(charon: &Charon, want_spis: (u32, u32)) -> (SaStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let out = charon.list_sas();
        let s = parse_list_sas(&out);
        if (s.ike_established && s.child_installed && s.child_spis == Some(want_spis))
            || Instant::now() > deadline
        {
            return (s, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check(lab: &Lab, sa: &IkeSa, events: &[Event], case: &str) {
    let child = child_of(events).unwrap_or_else(|| {
        panic!(
            "{case}: no ChildUp; events {events:?}\ncharon log:\n{}",
            lab.charon.log()
        )
    });
    assert_eq!(sa.state(), State::Established, "{case}");
    // charon's inbound SPI is our outbound one and vice versa.
    let want = (child.outbound.spi.0, child.inbound.spi.0);
    let (status, out) = charon_status(&lab.charon, want);
    assert!(status.ike_established, "{case}: {out}\n{}", lab.charon.log());
    assert!(status.child_installed, "{case}: {out}\n{}", lab.charon.log());
    assert_eq!(status.child_spis, Some(want), "{case}: {out}");
    println!(
        "{case}: OK — charon: {} / {} / SPIs in {:08x} out {:08x}",
        status.ike_suite, status.esp_suite, want.0, want.1
    );
}

fn cgwd_initiates(c: &Case) {
    if skip_unless_root() {
        return;
    }
    let lab = lab(&format!("i-{}", c.name), |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        )
    });
    let cfg = Arc::new(cgwd_config(&lab.net, c));
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(cfg, Instant::now(), Box::new(OsRandom));
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_))
    });
    check(&lab, &sa, &events, &format!("cgwd initiator, {}", c.name));
}

fn cgwd_responds(c: &Case) {
    if skip_unless_root() {
        return;
    }
    let lab = lab(&format!("r-{}", c.name), |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        )
    });
    let cfg = Arc::new(cgwd_config(&lab.net, c));
    let mut init = lab.charon.initiate().expect("swanctl --initiate");
    let mut sa = lab
        .socks
        .accept(cfg, Duration::from_secs(8))
        .expect("charon's IKE_SA_INIT");
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_))
    });
    let _ = init.wait();
    check(&lab, &sa, &events, &format!("cgwd responder, {}", c.name));
}

#[test]
fn initiator_aes256gcm16_prfsha384_ecp384() {
    cgwd_initiates(&CASES[0]);
}
#[test]
fn initiator_aes128_sha1_modp1024() {
    cgwd_initiates(&CASES[1]);
}
#[test]
fn initiator_aes256_sha256_modp2048() {
    cgwd_initiates(&CASES[2]);
}
#[test]
fn initiator_aes128gcm16_prfsha512_ecp521() {
    cgwd_initiates(&CASES[3]);
}
#[test]
fn responder_aes256gcm16_prfsha384_ecp384() {
    cgwd_responds(&CASES[0]);
}
#[test]
fn responder_aes128_sha1_modp1024() {
    cgwd_responds(&CASES[1]);
}
#[test]
fn responder_aes256_sha256_modp2048() {
    cgwd_responds(&CASES[2]);
}
#[test]
fn responder_aes128gcm16_prfsha512_ecp521() {
    cgwd_responds(&CASES[3]);
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
        PSK,
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    ))
    .unwrap();
    let cgw = Charon::start(&net.cgw, &tmpdir("h-cgw")).unwrap();
    cgw.load(&Conn::new(
        &ci,
        &ai,
        PSK,
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
}
