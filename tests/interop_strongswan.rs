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
use common::strongswan::{Charon, Conn, LoggedChildKeys, logged_child_key_sets, parse_list_sas};

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

fn check(lab: &Lab, sa: &IkeSa, events: &[Event], case: &str) {
    check_keys(
        lab,
        sa,
        events,
        case,
        sa.status().role == cgwd::ike::Role::Initiator,
    );
}

/// Also compare the Child SA keys with the ones charon logged (`chd = 4`): `we_initiated` = cgwd sent
/// the request that created the Child SA.
fn check_keys(lab: &Lab, sa: &IkeSa, events: &[Event], case: &str, we_initiated: bool) {
    let child = child_of(events).unwrap_or_else(|| {
        panic!(
            "{case}: no ChildUp; events {events:?}\ncharon log:\n{}",
            lab.charon.log()
        )
    });
    assert_eq!(sa.state(), State::Established, "{case}");
    // charon's inbound SPI is our outbound one and vice versa.
    let want = (child.outbound.spi.0, child.inbound.spi.0);
    let (status, out) = lab.charon.wait_for_child(want);
    assert!(status.ike_established, "{case}: {out}\n{}", lab.charon.log());
    assert!(status.child_installed, "{case}: {out}\n{}", lab.charon.log());
    assert_eq!(status.child_spis, Some(want), "{case}: {out}");
    let (ours_i, ours_r) = if we_initiated {
        (&child.outbound, &child.inbound)
    } else {
        (&child.inbound, &child.outbound)
    };
    let ours = LoggedChildKeys {
        encr_i: ours_i.encryption_key.expose().to_vec(),
        encr_r: ours_r.encryption_key.expose().to_vec(),
        integ_i: ours_i.integrity_key.expose().to_vec(),
        integ_r: ours_r.integrity_key.expose().to_vec(),
    };
    assert!(!ours.encr_i.is_empty() && !ours.encr_r.is_empty(), "{case}");
    // charon's log is flushed line by line and may already hold a later rekey's keys: look for ours
    // among every set it logged, for up to 2 s.
    let mut logged = Vec::new();
    for _ in 0..20 {
        logged = logged_child_key_sets(&lab.charon.log());
        if logged.contains(&ours) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        logged.contains(&ours),
        "{case}: charon logged no Child SA keys equal to ours: {ours:?} not in {logged:?}"
    );
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

/// One test per case and direction, so a failure names the suite and the role.
macro_rules! both_roles {
    ($($case:literal => $initiator:ident, $responder:ident;)*) => {$(
        #[test]
        fn $initiator() {
            cgwd_initiates(&CASES[$case]);
        }
        #[test]
        fn $responder() {
            cgwd_responds(&CASES[$case]);
        }
    )*};
}

both_roles! {
    0 => initiator_aes256gcm16_prfsha384_ecp384, responder_aes256gcm16_prfsha384_ecp384;
    1 => initiator_aes128_sha1_modp1024, responder_aes128_sha1_modp1024;
    2 => initiator_aes256_sha256_modp2048, responder_aes256_sha256_modp2048;
    3 => initiator_aes128gcm16_prfsha512_ecp521, responder_aes128gcm16_prfsha512_ecp521;
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

/// A wrong PSK: charon answers AUTHENTICATION_FAILED and cgwd says what to fix.
#[test]
fn wrong_psk_is_reported_in_words() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[0];
    let lab = lab("psk", |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        )
    });
    let mut cfg = cgwd_config(&lab.net, c);
    cfg.psk = Secret::from_slice(b"not the PSK charon has");
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
    let events = lab
        .socks
        .drive(&mut sa, Duration::from_secs(8), |e| matches!(e, Event::Closed));
    let msg = events
        .iter()
        .find_map(|e| match e {
            Event::Failed(f) => Some(f.message()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure: {events:?}"));
    assert!(
        msg.starts_with("tunnel 1: AWS rejected our PSK — check the pre_shared_key of tunnel 192.0.2.11"),
        "{msg}"
    );
    assert!(!parse_list_sas(&lab.charon.list_sas()).ike_established);
}

/// The AWS lab's proposals (every algorithm AWS allows, two proposals) against cgwd's AWS defaults:
/// whoever responds decides (charon by its own order, cgwd the strongest cipher and PRF, the
/// initiator's KE group when allowed).
#[test]
fn aws_default_proposals_negotiate_the_strongest_suite() {
    if skip_unless_root() {
        return;
    }
    let ike = "aes128-aes256-sha1-sha256-sha384-sha512-modp1024-modp2048-ecp256-ecp384-ecp521-modp2048s256,\
               aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-modp1024-modp2048-ecp256-ecp384-ecp521";
    let esp = "aes128-aes256-sha1-sha256-sha384-sha512,aes128gcm16-aes256gcm16";
    for initiator in [true, false] {
        let lab = lab(&format!("aws-{initiator}"), |net| {
            Conn::new(&net.aws_ip.to_string(), &net.cgw_ip.to_string(), PSK, ike, esp)
        });
        let cfg = Arc::new(IkeConfig::aws_defaults(
            TunnelId::One,
            lab.net.cgw_ip,
            lab.net.aws_ip,
            Secret::from_slice(PSK.as_bytes()),
        ));
        let stop = |e: &Event| matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_));
        let (sa, events) = if initiator {
            #[allow(clippy::disallowed_methods)]
            let mut sa = IkeSa::initiator(cfg, Instant::now(), Box::new(OsRandom));
            let ev = lab.socks.drive(&mut sa, Duration::from_secs(8), stop);
            (sa, ev)
        } else {
            let mut init = lab.charon.initiate().unwrap();
            let mut sa = lab.socks.accept(cfg, Duration::from_secs(8)).unwrap();
            let ev = lab.socks.drive(&mut sa, Duration::from_secs(8), stop);
            let _ = init.wait();
            (sa, ev)
        };
        check(
            &lab,
            &sa,
            &events,
            &format!("AWS defaults, cgwd initiator={initiator}"),
        );
        let (status, _) = lab.charon.wait_for_child((0, 0));
        if initiator {
            // charon as responder prefers its own configured order (prefer_configured_proposals), so it
            // picks its first proposal, and asks for MODP-1024 with INVALID_KE_PAYLOAD: we follow.
            assert_eq!(
                status.ike_suite,
                "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
            );
        } else {
            // As responder we pick the strongest cipher and PRF whatever charon's order, and take
            // charon's KE group since these options allow it (no INVALID_KE_PAYLOAD round trip).
            assert_eq!(status.ike_suite, "AES_GCM_16-256/PRF_HMAC_SHA2_512/MODP_1024");
            assert_eq!(status.esp_suite, "ESP:AES_GCM_16-256");
        }
    }
}

/// charon (like AWS) checks liveness after `dpd_delay` of silence; cgwd answers, and checks charon in
/// turn. Then charon deletes the IKE SA and cgwd reports the Child SA down and the IKE SA closed.
#[test]
fn dpd_both_ways_then_delete_from_charon() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[0];
    let lab = lab("dpd", |net| {
        let mut conn = Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        );
        conn.dpd_delay_s = 1;
        conn
    });
    let mut cfg = cgwd_config(&lab.net, c);
    cfg.dpd_interval = Duration::from_millis(1500);
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_))
    });
    check(&lab, &sa, &events, "dpd setup");
    let more = lab.socks.drive(&mut sa, Duration::from_secs(4), |_| false);
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(sa.state(), State::Established);
    let log = lab.charon.log();
    let charon_dpds = log.matches("generating INFORMATIONAL request").count();
    let our_dpds = log.matches("parsed INFORMATIONAL request").count();
    assert!(charon_dpds >= 1, "charon sent no DPD:\n{log}");
    assert!(
        log.matches("parsed INFORMATIONAL response").count() >= charon_dpds.min(1),
        "{log}"
    );
    println!("charon sent {charon_dpds} DPDs (answered), cgwd sent {our_dpds}");
    assert!(parse_list_sas(&lab.charon.list_sas()).ike_established);

    // swanctl waits for the DELETE's answer, so it runs in the background while we drive the SA.
    let mut terminate = std::process::Command::new("swanctl")
        .args([
            "--terminate",
            "--uri",
            &lab.charon.uri(),
            "--ike",
            "t",
            "--timeout",
            "5",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("swanctl --terminate");
    let end = lab
        .socks
        .drive(&mut sa, Duration::from_secs(5), |e| matches!(e, Event::Closed));
    assert!(
        end.iter().any(|e| matches!(e, Event::ChildDown { .. })),
        "{end:?}"
    );
    assert!(matches!(end.last(), Some(Event::Closed)), "{end:?}");
    assert_eq!(sa.state(), State::Closed);
    assert!(
        terminate.wait().unwrap().success(),
        "charon got its DELETE answered"
    );
}

/// cgwd closes the tunnel: charon sees the DELETE and drops its SAs.
#[test]
fn close_from_cgwd_deletes_charons_sa() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[1];
    let lab = lab("close", |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        )
    });
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(
        Arc::new(cgwd_config(&lab.net, c)),
        Instant::now(),
        Box::new(OsRandom),
    );
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_))
    });
    check(&lab, &sa, &events, "close setup");
    #[allow(clippy::disallowed_methods)]
    sa.close(Instant::now());
    let end = lab
        .socks
        .drive(&mut sa, Duration::from_secs(5), |e| matches!(e, Event::Closed));
    assert!(matches!(end.last(), Some(Event::Closed)), "{end:?}");
    let out = lab.charon.list_sas();
    assert!(!parse_list_sas(&out).ike_established, "{out}");
}

/// charon (like AWS) rekeys the Child SA with PFS and then the IKE SA; cgwd answers both, reports the
/// new Child SA and the old one's removal, moves to the new IKE SA, and keeps answering DPD on it.
#[test]
fn rekeys_started_by_charon() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[0];
    let lab = lab("rekey", |net| {
        // PFS on Child SA rekeys, as AWS lists phase 2 DH groups.
        let mut conn = Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            "aes256gcm16-ecp384",
        );
        conn.dpd_delay_s = 1;
        conn
    });
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(
        Arc::new(cgwd_config(&lab.net, c)),
        Instant::now(),
        Box::new(OsRandom),
    );
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_))
    });
    check(&lab, &sa, &events, "rekey setup");
    let first = child_of(&events).unwrap().clone();

    // CREATE_CHILD_SA {N(REKEY_SA), SA, Ni, KEi, TSi, TSr} from charon, then INFORMATIONAL {D(ESP old)}.
    let mut rekey = lab
        .charon
        .swanctl_spawn(&["--rekey", "--child", "t"])
        .expect("swanctl");
    let ev = lab.socks.drive(&mut sa, Duration::from_secs(5), |e| {
        matches!(e, Event::ChildDown { .. })
    });
    let _ = rekey.wait();
    let new = child_of(&ev)
        .unwrap_or_else(|| panic!("no new Child SA: {ev:?}\n{}", lab.charon.log()))
        .clone();
    assert_ne!(new.inbound.spi, first.inbound.spi);
    assert_eq!(new.pfs, DhGroup::new(20), "PFS group used");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ChildDown { inbound, .. } if *inbound == first.inbound.spi)),
        "{ev:?}"
    );
    let (status, out) = lab.charon.wait_for_child((new.outbound.spi.0, new.inbound.spi.0));
    assert_eq!(
        status.child_spis,
        Some((new.outbound.spi.0, new.inbound.spi.0)),
        "{out}"
    );
    assert_eq!(
        sa.status().child_spis,
        Some((new.inbound.spi.0, new.outbound.spi.0))
    );

    // CREATE_CHILD_SA {SA(IKE), Ni, KEi} from charon, then D(IKE) on the old IKE SA.
    let (old_spi_i, _) = sa.spis();
    let mut rekey = lab
        .charon
        .swanctl_spawn(&["--rekey", "--ike", "t"])
        .expect("swanctl");
    let ev = lab.socks.drive(&mut sa, Duration::from_secs(3), |_| false);
    let _ = rekey.wait();
    assert!(
        ev.iter().any(|e| matches!(e, Event::IkeRekeyed { .. })),
        "{ev:?}\n{}",
        lab.charon.log()
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Failed(_) | Event::Closed | Event::ChildDown { .. })),
        "{ev:?}"
    );
    let (new_spi_i, new_spi_r) = sa.spis();
    assert_ne!(new_spi_i, old_spi_i);
    let out = lab.charon.list_sas();
    assert!(
        out.contains(&format!("{new_spi_i:016x}_i")) && out.contains(&format!("{new_spi_r:016x}_r")),
        "{out}"
    );
    assert_eq!(out.matches("ESTABLISHED").count(), 1, "old IKE SA deleted: {out}");
    assert_eq!(sa.state(), State::Established);
    // DPD keeps flowing on the new IKE SA (charon's dpd_delay is 1 s).
    let log_before = lab.charon.log().matches("parsed INFORMATIONAL response").count();
    let ev = lab.socks.drive(&mut sa, Duration::from_secs(3), |_| false);
    assert!(ev.is_empty(), "{ev:?}");
    assert!(lab.charon.log().matches("parsed INFORMATIONAL response").count() > log_before);
    println!(
        "rekeys OK: child {:08x}->{:08x}, IKE {old_spi_i:016x}->{new_spi_i:016x}",
        first.inbound.spi.0, new.inbound.spi.0
    );
}

/// cgwd starts the rekeys (short lifetimes): charon accepts the Child SA rekey with PFS and the IKE SA
/// rekey, and ends up with exactly cgwd's current SAs.
#[test]
fn rekeys_started_by_cgwd() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[2];
    let lab = lab("rekey-i", |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            "aes256-sha256-modp2048",
        )
    });
    let mut cfg = cgwd_config(&lab.net, c);
    cfg.child_lifetime = Duration::from_secs(5);
    cfg.ike_lifetime = Duration::from_secs(9);
    cfg.rekey_margin = Duration::from_secs(2);
    cfg.rekey_fuzz_percent = 50;
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_))
    });
    check(&lab, &sa, &events, "cgwd rekeys setup");
    let ev = lab.socks.drive(&mut sa, Duration::from_secs(9), |_| false);
    let ups: Vec<&ChildSa> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ChildUp(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(ups.len() >= 2, "{ev:?}\n{}", lab.charon.log());
    assert!(
        ev.iter().any(|e| matches!(e, Event::IkeRekeyed { .. })),
        "{ev:?}\n{}",
        lab.charon.log()
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Failed(_) | Event::ChildFailed(_))),
        "{ev:?}"
    );
    assert_eq!(sa.state(), State::Established);
    // Give charon time to process our last DELETEs (it may list a deleted Child SA for a moment);
    // cgwd keeps rekeying meanwhile (5 s lifetime), so compare with its SPIs of the same moment.
    let mut out = String::new();
    let (mut ours_in, mut ours_out) = (0, 0);
    for _ in 0..10 {
        let _ = lab.socks.drive(&mut sa, Duration::from_millis(300), |_| false);
        (ours_in, ours_out) = sa.status().child_spis.unwrap();
        out = lab.charon.list_sas();
        if parse_list_sas(&out).child_spis == Some((ours_out, ours_in))
            && out.matches("INSTALLED").count() == 1
        {
            break;
        }
    }
    let status = parse_list_sas(&out);
    assert_eq!(status.child_spis, Some((ours_out, ours_in)), "{out}");
    assert_eq!(
        out.matches("INSTALLED").count(),
        1,
        "old Child SAs deleted: {out}"
    );
    assert_eq!(out.matches("ESTABLISHED").count(), 1, "old IKE SA deleted: {out}");
    let (spi_i, spi_r) = sa.spis();
    assert!(
        out.contains(&format!("{spi_i:016x}_i")) && out.contains(&format!("{spi_r:016x}_r")),
        "{out}"
    );
    println!(
        "cgwd rekeyed the Child SA {} times and the IKE SA; charon agrees",
        ups.len()
    );
}

/// cgwd as responder demands a COOKIE (stateless); charon repeats its IKE_SA_INIT with it.
#[test]
fn responder_cookie_demand_with_charon() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[0];
    let lab = lab("cookie", |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            c.ike,
            c.esp,
        )
    });
    let mut cfg = cgwd_config(&lab.net, c);
    cfg.cookie_secret = Some(Secret::from_slice(b"interop cookie secret"));
    let mut init = lab.charon.initiate().unwrap();
    let mut sa = lab
        .socks
        .accept(Arc::new(cfg), Duration::from_secs(8))
        .expect("IKE_SA_INIT with cookie");
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_))
    });
    let _ = init.wait();
    check(&lab, &sa, &events, "cgwd responder demanding a cookie");
    assert!(
        lab.charon.log().contains("N(COOKIE)"),
        "charon saw the cookie demand"
    );
}

/// Nothing in common with charon: cgwd reports NO_PROPOSAL_CHOSEN in AWS's terms.
#[test]
fn no_common_proposal_with_charon() {
    if skip_unless_root() {
        return;
    }
    let c = &CASES[1];
    let lab = lab("noprop", |net| {
        Conn::new(
            &net.aws_ip.to_string(),
            &net.cgw_ip.to_string(),
            PSK,
            "aes256gcm16-prfsha384-ecp384",
            c.esp,
        )
    });
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(
        Arc::new(cgwd_config(&lab.net, c)),
        Instant::now(),
        Box::new(OsRandom),
    );
    let events = lab
        .socks
        .drive(&mut sa, Duration::from_secs(8), |e| matches!(e, Event::Closed));
    let msg = events
        .iter()
        .find_map(|e| match e {
            Event::Failed(f) => Some(f.message()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        msg.contains("AWS accepted none of our phase 1 (IKE) algorithms"),
        "{msg}"
    );
}

/// AWS's full algorithm lists, in strongSwan's syntax with AWS's (the lab's) order: charon as
/// initiator guesses its first group (MODP-2048) and as responder picks its first proposal.
const AWS_FULL_IKE: &str = "aes128gcm16-aes256gcm16-prfsha256-prfsha1-prfsha384-prfsha512-modp2048-modp1024-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256,\
     aes128-aes256-sha256-sha1-sha384-sha512-modp2048-modp1024-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256";
const AWS_FULL_ESP: &str = "aes128gcm16-aes256gcm16-modp2048-ecp521,aes128-sha256-modp2048-ecp521";

/// IKE SA rekeys that change the suite, against charon with AWS's full lists (the production failure:
/// charon rekeyed, cgwd chose another PRF, and keyed the new SA in a way charon could not verify).
/// Whoever rekeys, and whether cgwd keeps the PRF (its policy) or changes it with either reading
/// first, both sides then answer each other's DPD on the new IKE SA and charon logs no integrity
/// failure after cgwd has settled on its keys.
#[test]
fn ike_rekeys_that_change_the_suite() {
    use cgwd::crypto::RekeyPrfPlus;
    use cgwd::ike::RekeyKeyPolicy;
    if skip_unless_root() {
        return;
    }
    let policies = [
        ("prf kept", RekeyKeyPolicy::default()),
        (
            "prf changed, strongSwan's reading first",
            RekeyKeyPolicy {
                keep_prf: false,
                ..RekeyKeyPolicy::default()
            },
        ),
        (
            "prf changed, the RFC's reading first",
            RekeyKeyPolicy {
                keep_prf: false,
                first: RekeyPrfPlus::NewPrf,
                try_other: true,
            },
        ),
    ];
    for (what, policy) in policies {
        for charon_rekeys in [true, false] {
            let case = format!("{what}, charon rekeys: {charon_rekeys}");
            let lab = lab(&format!("suite-{charon_rekeys}-{}", what.len()), |net| {
                let mut conn = Conn::new(
                    &net.aws_ip.to_string(),
                    &net.cgw_ip.to_string(),
                    PSK,
                    AWS_FULL_IKE,
                    AWS_FULL_ESP,
                );
                conn.dpd_delay_s = 1;
                conn
            });
            let mut cfg = IkeConfig::aws_defaults(
                TunnelId::One,
                lab.net.cgw_ip,
                lab.net.aws_ip,
                Secret::from_slice(PSK.as_bytes()),
            );
            cfg.rekey_keys = policy;
            let stop = |e: &Event| matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_));
            // charon rekeys an SA it chose as responder (its first proposal, cgwd's KE group);
            // cgwd rekeys one it chose as responder (the strongest cipher and PRF, charon's KE group).
            let mut sa = if charon_rekeys {
                #[allow(clippy::disallowed_methods)]
                let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
                lab.socks.drive(&mut sa, Duration::from_secs(8), stop);
                sa
            } else {
                let mut init = lab.charon.initiate().expect("swanctl --initiate");
                let mut sa = lab
                    .socks
                    .accept(Arc::new(cfg), Duration::from_secs(8))
                    .expect("INIT");
                lab.socks.drive(&mut sa, Duration::from_secs(8), stop);
                let _ = init.wait();
                sa
            };
            assert_eq!(sa.state(), State::Established, "{case}: {}", lab.charon.log());
            let before = sa.status().ike_suite.expect("suite");
            let ev = if charon_rekeys {
                let mut rekey = lab
                    .charon
                    .swanctl_spawn(&["--rekey", "--ike", "t"])
                    .expect("swanctl");
                let ev = lab.socks.drive(&mut sa, Duration::from_secs(3), |_| false);
                let _ = rekey.wait();
                ev
            } else {
                #[allow(clippy::disallowed_methods)]
                sa.rekey_now(Instant::now(), true);
                lab.socks.drive(&mut sa, Duration::from_secs(3), |_| false)
            };
            assert!(
                ev.iter().any(|e| matches!(e, Event::IkeRekeyed { .. })),
                "{case}: {ev:?}\n{}",
                lab.charon.log()
            );
            let after = sa.status().ike_suite.expect("suite");
            assert_ne!(after, before, "{case}: the suite changed");
            assert_eq!(
                after.prf == before.prf,
                policy.keep_prf,
                "{case}: {before:?} -> {after:?}"
            );
            // DPD both ways on the new SA (charon every 1 s of silence, cgwd on demand).
            let settled_at = lab.charon.log().len();
            let mut ev = lab.socks.drive(&mut sa, Duration::from_secs(3), |_| false);
            // charon's DPD keeps cgwd hearing from it: cgwd checks liveness on demand.
            #[allow(clippy::disallowed_methods)]
            sa.check_liveness(Instant::now());
            ev.extend(lab.socks.drive(&mut sa, Duration::from_secs(4), |_| false));
            assert!(
                !ev.iter()
                    .any(|e| matches!(e, Event::Failed(_) | Event::Closed | Event::ChildDown { .. })),
                "{case}: {ev:?}"
            );
            let (spi_i, spi_r) = sa.spis();
            let out = lab.charon.list_sas();
            assert!(
                out.contains(&format!("{spi_i:016x}_i")) && out.contains(&format!("{spi_r:016x}_r")),
                "{case}: {out}"
            );
            let log = lab.charon.log();
            let late = &log[settled_at.min(log.len())..];
            // charon answered cgwd's DPD and cgwd answered charon's.
            assert!(late.contains("parsed INFORMATIONAL response"), "{case}: {late}");
            assert!(
                late.contains("generating INFORMATIONAL response"),
                "{case}: {late}"
            );
            // Only the first message under the RFC's reading may fail charon's check, before cgwd
            // settles; never after.
            let tail = &late[late.len() / 2..];
            assert!(!tail.contains("integrity failed"), "{case}: {late}");
            if policy.first == RekeyPrfPlus::OldPrf {
                assert!(!late.contains("integrity failed"), "{case}: {late}");
            }
            println!("{case}: {before:?} -> {after:?}");
        }
    }
}
