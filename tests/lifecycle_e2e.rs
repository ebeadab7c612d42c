//! End to end, root only: `cgwd run` against two strongSwan charons playing AWS, with the AWS side
//! rekeying fast (Child SA every 20 s, IKE SA every 60 s) under a continuous 100 packets/s ping for
//! about 90 s: no packet may be lost, and at the end charon and `cgwd status` must agree on the one
//! Child SA each tunnel has. Then DPD: AWS's IKE packets dropped with nftables → cgwd declares
//! tunnel 1 down within the DPD timeout; rule removed → the tunnel comes back by itself.
//!
//! cgwd's own lifetimes cannot be this short: its config validator enforces AWS's minimums
//! (Phase2LifetimeSeconds ≥ 900), so here every rekey is started by charon and answered by cgwd.
//! cgwd-initiated rekeys and collisions are covered in process (tests/ike_lifecycle.rs).
//! Topology as in tests/status_e2e.rs (namespaces carry the pid):
//!
//! ```text
//!  cgw: 192.0.2.10 ── veth ── a1: 198.51.100.11, ipsec0 169.254.10.5/30, lo 10.100.0.10 ("VPC")
//!                  └─ veth ── a2: 203.0.113.12,  ipsec0 169.254.20.9/30, lo 10.100.0.10
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cgwd::daemon::status::PhaseState;
use common::netns::skip_unless_root;
use common::two_aws::*;

#[test]
fn rekeys_under_traffic_lose_nothing_and_dpd_recovers() {
    if skip_unless_root() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("SKIPPED: needs nftables");
        return;
    }
    let topo = Topology::create('l');
    let dir = std::env::temp_dir().join(format!("cgwd-life-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Child SA rekeyed every 20 s (life 30 s), IKE SA every 60 s: AWS-style make-before-break from
    // the AWS side, as fast as charon allows without overlapping rekeys.
    let charons = start_charons(&topo, &dir, |_, conf| {
        with_lifetimes(
            &conf,
            &["rekey_time = 60s", "over_time = 10s", "rand_time = 0s"],
            &["rekey_time = 20s", "life_time = 30s", "rand_time = 0s"],
        )
    });
    let config: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let mut cgwd = CgwdRun::start(&topo, &dir, 'l', &config, "");
    cgwd.wait_both_up();
    let sock = cgwd.sock.clone();
    let cgwd_log = || cgwd.log();

    // 1. ~90 s of pings every 10 ms across the AWS side's rekeys.
    let count_ups = |log: &str| log.matches("Child SA up (phase 2 up)").count();
    // The daemon's line, once per rekey (the IKE layer's own line says "IKE SA rekeyed by the peer").
    let count_ike =
        |log: &str| log.matches("IKE SA rekeyed").count() - log.matches("IKE SA rekeyed by the peer").count();
    let (ups0, ike0) = (count_ups(&cgwd_log()), count_ike(&cgwd_log()));
    const PINGS: u32 = 5500;
    let flood = ping_flood(&topo.cgw, PINGS);
    let (lost_pings, interval) = lost(flood);
    let log = cgwd_log();
    let (child_rekeys, ike_rekeys) = (count_ups(&log) - ups0, count_ike(&log) - ike0);
    println!(
        "rekeys under traffic: {PINGS} pings at one per {interval:.1} ms, {lost_pings} lost; \
         {child_rekeys} Child SA rekeys and {ike_rekeys} IKE SA rekeys crossed (both tunnels)"
    );
    assert_eq!(lost_pings, 0, "{}", log);
    assert!(child_rekeys >= 6, "only {child_rekeys} Child SA rekeys\n{log}");
    assert!(ike_rekeys >= 2, "only {ike_rekeys} IKE SA rekeys\n{log}");

    // Exactly one Child SA per tunnel on charon's side, the one cgwd reports (not in the middle of
    // a rekey).
    for (i, c) in charons.iter().enumerate() {
        assert_one_matching_sa(c, &cgwd, i);
    }

    // 2. DPD: AWS goes silent on tunnel 1 → down within the DPD timeout; back when it answers.
    cut(&topo.aws[0]);
    // lab.describe.json: DpdTimeoutSeconds 30 (the in-process test pins the exact deadline).
    let down = wait_for("tunnel 1 declared down", Duration::from_secs(33), || {
        status(&sock).is_some_and(|s| s.tunnels[0].ike_phase1_state != PhaseState::Established)
    });
    println!("DPD: tunnel 1 down {} ms after AWS went silent", down.as_millis());
    restore(&topo.aws[0]);
    let back = wait_for("tunnel 1 back", Duration::from_secs(40), || {
        status(&sock).is_some_and(|s| established(&s, 0))
    });
    println!(
        "DPD: tunnel 1 re-established {} ms after AWS answered again",
        back.as_millis()
    );
    let ping = topo.ns_exec(
        &topo.cgw,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    drop(cgwd);
    drop(charons);
    let _ = std::fs::remove_dir_all(&dir);
}
