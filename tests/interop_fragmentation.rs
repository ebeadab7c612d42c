//! RFC 7383 IKE fragmentation against a real strongSwan 5.9 charon, in network namespaces (root only).
//!
//! charon runs with `fragmentation = yes` on the connection and a small `charon.fragment_size`, so it
//! splits its IKE_AUTH and CREATE_CHILD_SA messages; cgwd runs with a small fragment size too, so it
//! splits its own. Each case asserts that the SA establishes, that charon's log shows it both split
//! messages ("splitting IKE message") and reassembled cgwd's ("reassembled fragmented IKE message"),
//! that cgwd counted fragments both ways, and that `swanctl --list-sas` shows cgwd's IKE and Child SA
//! SPIs. CREATE_CHILD_SA is covered started by either side.

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
use common::strongswan::{Charon, Conn};

const PSK: &str = "fragmentation-psk.0123456789";
/// Small enough that every IKE_AUTH and CREATE_CHILD_SA message of a PSK exchange is split, on both
/// sides (an IP datagram size, as `charon.fragment_size` and cgwd's `ike.fragment_size` both are).
const CHARON_FRAGMENT_SIZE: usize = 200;
const CGWD_FRAGMENT_SIZE: usize = 200;

const SPLIT: &str = "splitting IKE message";
const REASSEMBLED: &str = "reassembled fragmented IKE message";

struct Lab {
    net: NetnsPair,
    charon: Charon,
    socks: Sockets,
}

fn lab(tag: &str, ike: &str, esp: &str) -> Lab {
    let net = NetnsPair::create().expect("namespaces");
    let dir = std::env::temp_dir().join(format!("cgwd-frag-{}-{tag}", std::process::id()));
    let charon = Charon::start_with(&net.aws, &dir, &format!("fragment_size = {CHARON_FRAGMENT_SIZE}"))
        .expect("charon");
    let conn = Conn::new(&net.aws_ip.to_string(), &net.cgw_ip.to_string(), PSK, ike, esp);
    assert_eq!(conn.fragmentation, "yes");
    charon.load(&conn).expect("swanctl --load-all");
    let socks = bind_in(&net.cgw, net.cgw_ip).expect("bind 500/4500 in cgw");
    Lab { net, charon, socks }
}

fn cgwd_config(net: &NetnsPair, e: Encryption, i: Integrity, dh: u16) -> IkeConfig {
    let mut cfg = IkeConfig::aws_defaults(
        TunnelId::One,
        net.cgw_ip,
        net.aws_ip,
        Secret::from_slice(PSK.as_bytes()),
    );
    let g = DhGroup::new(dh).unwrap();
    cfg.ike = AlgorithmSet::single(e, i, g);
    cfg.esp = AlgorithmSet::single(e, i, g);
    cfg.fragmentation.max_datagram = CGWD_FRAGMENT_SIZE;
    cfg
}

fn newest_child(events: &[Event]) -> Option<&ChildSa> {
    events.iter().rev().find_map(|e| match e {
        Event::ChildUp(c) => Some(c),
        _ => None,
    })
}

/// The SA is up with `child`'s SPIs on both sides, and fragments went both ways `at_least` times.
fn check(lab: &Lab, sa: &IkeSa, child: &ChildSa, at_least: usize, case: &str) {
    let log = lab.charon.log();
    assert_eq!(sa.state(), State::Established, "{case}\n{log}");
    let want = (child.outbound.spi.0, child.inbound.spi.0);
    let (status, out) = lab.charon.wait_for_child(want);
    assert!(status.ike_established, "{case}: {out}\n{log}");
    assert_eq!(status.child_spis, Some(want), "{case}: {out}");
    let (ours_i, ours_r) = sa.spis();
    assert!(
        out.contains(&format!("{ours_i:016x}")) && out.contains(&format!("{ours_r:016x}")),
        "{case}: IKE SPIs {ours_i:016x}/{ours_r:016x} not in {out}"
    );
    let log = lab.charon.log();
    let (split, reassembled) = (log.matches(SPLIT).count(), log.matches(REASSEMBLED).count());
    assert!(split >= at_least, "{case}: charon split {split} messages\n{log}");
    assert!(
        reassembled >= at_least,
        "{case}: charon reassembled {reassembled} of cgwd's messages\n{log}"
    );
    let stats = sa.fragment_stats();
    assert!(stats.negotiated, "{case}");
    assert!(stats.sent >= 2 * at_least as u64, "{case}: {stats:?}");
    assert!(stats.received >= 2 * at_least as u64, "{case}: {stats:?}");
    assert_eq!(stats.dropped, 0, "{case}: {stats:?}");
    println!("{case}: OK — charon split {split}, reassembled {reassembled}; cgwd {stats:?}");
}

/// Drive until the Child SA `old` is deleted after a rekey; its successor must be up on both sides,
/// with fragments counted both ways once more.
fn check_rekeyed(lab: &Lab, sa: &mut IkeSa, old: &ChildSa, case: &str) {
    let events = lab.socks.drive(sa, Duration::from_secs(8), |e| {
        matches!(e, Event::ChildDown { .. } | Event::Failed(_))
    });
    let new = newest_child(&events)
        .unwrap_or_else(|| panic!("{case}: no new Child SA: {events:?}\n{}", lab.charon.log()));
    assert_ne!(new.inbound.spi, old.inbound.spi, "{case}");
    check(lab, sa, new, 2, case);
}

fn up(e: &Event) -> bool {
    matches!(e, Event::ChildUp(_) | Event::Failed(_) | Event::ChildFailed(_))
}

/// cgwd initiates (AES-GCM): IKE_AUTH fragmented both ways; then charon rekeys the Child SA with PFS,
/// so CREATE_CHILD_SA with a KE payload is fragmented both ways too.
#[test]
fn cgwd_initiates_and_both_sides_fragment() {
    if skip_unless_root() {
        return;
    }
    let lab = lab("i", "aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384");
    let cfg = cgwd_config(&lab.net, Encryption::Aes256Gcm16, Integrity::Sha2_384, 20);
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), up);
    let child = newest_child(&events)
        .unwrap_or_else(|| panic!("no ChildUp: {events:?}\n{}", lab.charon.log()))
        .clone();
    check(&lab, &sa, &child, 1, "IKE_AUTH, cgwd initiator");

    let mut rekey = lab
        .charon
        .swanctl_spawn(&["--rekey", "--child", "t"])
        .expect("swanctl --rekey");
    check_rekeyed(&lab, &mut sa, &child, "CREATE_CHILD_SA by charon");
    let _ = rekey.wait();
}

/// charon initiates (AES-CBC + HMAC): cgwd reassembles charon's IKE_AUTH request and answers in
/// fragments; then cgwd rekeys the Child SA itself (a short lifetime), so its CREATE_CHILD_SA request
/// and charon's response are fragmented too.
#[test]
fn cgwd_responds_with_fragments_then_rekeys() {
    if skip_unless_root() {
        return;
    }
    let lab = lab("r", "aes256-sha256-modp2048", "aes256-sha256-modp2048");
    let mut cfg = cgwd_config(&lab.net, Encryption::Aes256Cbc, Integrity::Sha2_256, 14);
    cfg.child_lifetime = Duration::from_secs(6);
    cfg.rekey_margin = Duration::from_secs(3);
    cfg.rekey_fuzz_percent = 0;
    let mut init = lab.charon.initiate().expect("swanctl --initiate");
    let mut sa = lab
        .socks
        .accept(Arc::new(cfg), Duration::from_secs(8))
        .expect("charon's IKE_SA_INIT");
    let events = lab.socks.drive(&mut sa, Duration::from_secs(8), up);
    let _ = init.wait();
    let child = newest_child(&events)
        .unwrap_or_else(|| panic!("no ChildUp: {events:?}\n{}", lab.charon.log()))
        .clone();
    check(&lab, &sa, &child, 1, "IKE_AUTH, cgwd responder");
    check_rekeyed(&lab, &mut sa, &child, "CREATE_CHILD_SA by cgwd");
}

/// charon without fragmentation support: cgwd never sends a fragment, whatever its size limit.
#[test]
fn no_fragments_to_a_peer_without_support() {
    if skip_unless_root() {
        return;
    }
    let net = NetnsPair::create().expect("namespaces");
    let dir = std::env::temp_dir().join(format!("cgwd-frag-{}-off", std::process::id()));
    let charon = Charon::start(&net.aws, &dir).expect("charon");
    let mut conn = Conn::new(
        &net.aws_ip.to_string(),
        &net.cgw_ip.to_string(),
        PSK,
        "aes128gcm16-prfsha256-ecp256",
        "aes128gcm16",
    );
    conn.fragmentation = "no";
    charon.load(&conn).expect("swanctl --load-all");
    let socks = bind_in(&net.cgw, net.cgw_ip).expect("bind");
    let cfg = cgwd_config(&net, Encryption::Aes128Gcm16, Integrity::Sha2_256, 19);
    #[allow(clippy::disallowed_methods)]
    let mut sa = IkeSa::initiator(Arc::new(cfg), Instant::now(), Box::new(OsRandom));
    let events = socks.drive(&mut sa, Duration::from_secs(8), up);
    let child = newest_child(&events)
        .unwrap_or_else(|| panic!("no ChildUp: {events:?}\n{}", charon.log()))
        .clone();
    let (status, out) = charon.wait_for_child((child.outbound.spi.0, child.inbound.spi.0));
    assert!(status.ike_established && status.child_installed, "{out}");
    let stats = sa.fragment_stats();
    assert!(!stats.negotiated);
    assert_eq!((stats.sent, stats.received), (0, 0));
    let log = charon.log();
    assert!(!log.contains(SPLIT) && !log.contains(REASSEMBLED), "{log}");
}
