//! NAT rebinding (issue #17), root only: `cgwd run` behind a masquerading NAT, against two charons
//! playing AWS; mid-run the NAT's mappings change, and both tunnels must carry pings again within
//! [`MAX_OUTAGE`].
//!
//! ```text
//!  cgw 192.0.2.130 ── 192.0.2.129 nat 192.0.2.10 ── a1 198.51.100.11
//!                                     192.0.2.10 ── a2 203.0.113.12
//! ```
//!
//! The NAT namespace masquerades cgwd's private address to its public one, 192.0.2.10, with
//! source ports from 20000-24999, so cgwd detects the NAT (NAT-D) and runs everything on UDP 4500
//! from a mapped port. The AWS configuration names 192.0.2.10 as the customer gateway, which is
//! what charon expects as cgwd's address and IKE ID (`local.id` defaults to it), while cgwd's
//! `local.address` is the private 192.0.2.130.
//!
//! The rebinding: the masquerade rule moves to ports 25000-29999 and the NAT's connection tracking
//! is flushed (`conntrack -F`), so cgwd's next datagrams leave from new ports and AWS's answers to
//! the old ones are dropped by the NAT. AWS learns the new port only from an authenticated IKE
//! message (RFC 7296 §2.23; strongSwan's kernel-libipsec does not follow ESP, and, unable to
//! move an installed SA, charon then rekeys the Child SA). cgwd's probes find the path dead within
//! a second and it sends a liveness check (DPD) at once: that is the message. (Before, only the
//! next periodic DPD, up to 10 s later, told AWS.) Printed: the mappings, the outage per tunnel,
//! whether the SAs survived.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::netns::{run, skip_unless_root_and};
use common::tempdir::TempDir;
use common::two_aws::*;

/// The issue's bound: each tunnel carries traffic again within this after the mapping changed.
const MAX_OUTAGE: Duration = Duration::from_secs(10);
const PRIVATE: &str = "192.0.2.130";
const PING_INTERVAL: Duration = Duration::from_millis(50);
/// Pings run this long; the NAT rebinds after [`REBIND_AFTER`].
const PING_FOR: Duration = Duration::from_secs(30);
const REBIND_AFTER: Duration = Duration::from_secs(5);

#[test]
fn tunnels_recover_when_the_nat_mapping_changes() {
    if skip_unless_root_and(&["nft", "conntrack"]) {
        return;
    }
    let topo = Topology::create_via(
        "nt",
        &Middle {
            cgw: PRIVATE,
            toward_cgw: "192.0.2.129",
            toward_aws: [CGW, CGW],
            public: CGW,
        },
    );
    let nat = topo.mid.clone().unwrap();
    for rule in [
        "add table ip nat",
        "add chain ip nat post { type nat hook postrouting priority srcnat ; policy accept ; }",
        "add rule ip nat post ip saddr 192.0.2.130 ip protocol udp masquerade to :20000-24999",
        "add rule ip nat post ip saddr 192.0.2.130 masquerade",
    ] {
        nft(&nat, rule);
    }
    let dir = TempDir::new("natrebind");
    let charons = start_charons(&topo, &dir.0, |_, conf| conf);
    let config = lab_config(&dir.0, 28800, 3600, 540, 100);
    let mut cgwd = CgwdRun::start_at(&topo, &dir.0, "nt", &config, PRIVATE, "");
    cgwd.wait_both_up();
    let s = cgwd.status().expect("cgwd status");
    assert!(
        s.tunnels.iter().all(|t| t.nat_t_detected),
        "cgwd detects the NAT: {:?}",
        s.tunnels
    );
    let before: Vec<u16> = charons.iter().map(remote_port).collect();
    let spis_before: Vec<_> = s.tunnels.iter().map(|t| t.spi_in.clone()).collect();
    assert!(
        before.iter().all(|p| (20000..25000).contains(p)),
        "AWS sees the NAT's ports: {before:?}"
    );

    let cgwd_mark = cgwd.log().len();
    let count = (PING_FOR.as_millis() / PING_INTERVAL.as_millis()).to_string();
    let interval = format!("{}", PING_INTERVAL.as_secs_f64());
    let pings: Vec<_> = ["169.254.10.5", "169.254.20.9"]
        .iter()
        .map(|a| {
            Command::new("ip")
                .args([
                    "netns", "exec", &topo.cgw, "ping", "-D", "-n", "-i", &interval, "-W", "1",
                ])
                .args(["-c", &count, a])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(REBIND_AFTER);
    let mappings = run("ip", &["netns", "exec", &nat, "conntrack", "-L", "-p", "udp"]).unwrap_or_default();
    nft(&nat, "flush chain ip nat post");
    nft(
        &nat,
        "add rule ip nat post ip saddr 192.0.2.130 ip protocol udp masquerade to :25000-29999",
    );
    run("ip", &["netns", "exec", &nat, "conntrack", "-F"]).unwrap();
    let rebound = unix_now();

    let mut problems = Vec::new();
    for (i, ping) in pings.into_iter().enumerate() {
        let out = ping.wait_with_output().unwrap();
        let replies = reply_times(&String::from_utf8_lossy(&out.stdout));
        let (outage, last) = outage(&replies, rebound);
        println!(
            "tunnel {}: {} of {count} pings answered; longest gap without replies {:.2} s, the last reply \
             {:.2} s after the rebinding",
            i + 1,
            replies.len(),
            outage,
            last
        );
        if outage > MAX_OUTAGE.as_secs_f64() {
            problems.push(format!("tunnel {}: {outage:.2} s without replies", i + 1));
        }
        // Still answered at the end (the ping ran PING_FOR - REBIND_AFTER past the rebinding).
        if last < (PING_FOR - REBIND_AFTER).as_secs_f64() - 2.0 {
            problems.push(format!("tunnel {}: no reply after {last:.2} s", i + 1));
        }
    }
    let after: Vec<u16> = charons.iter().map(remote_port).collect();
    let s = cgwd.status().expect("cgwd status");
    let spis_after: Vec<_> = s.tunnels.iter().map(|t| t.spi_in.clone()).collect();
    let log = cgwd.log();
    let during = &log[cgwd_mark..];
    let reestablished = during.matches("IKE SA closed").count();
    // cgwd's probes found each path dead and asked AWS at once (a DPD from the new mapping), rather
    // than waiting for the next DPD interval.
    for t in ["tunnel 1", "tunnel 2"] {
        if !during
            .lines()
            .any(|l| l.contains("no answer to probes: checking AWS's liveness") && l.contains(t))
        {
            problems.push(format!("{t}: no liveness check after the probes went unanswered"));
        }
    }
    println!(
        "NAT mappings before the rebinding:\n{}AWS saw cgwd at ports {before:?} before, {after:?} after; \
         Child SAs {spis_before:?} before, {spis_after:?} after; IKE SAs re-established {reestablished}",
        mappings
    );
    for (i, p) in after.iter().enumerate() {
        if !(25000..30000).contains(p) {
            problems.push(format!("tunnel {}: AWS still sends to port {p}", i + 1));
        }
        if !established(&s, i) {
            problems.push(format!("tunnel {} not up at the end", i + 1));
        }
    }
    assert!(problems.is_empty(), "{}\n{log}", problems.join("\n"));
    drop(cgwd);
    drop(charons);
}

/// The port charon's IKE SA sends to (`remote '…' @ 192.0.2.10[20123]`), 0 if none.
fn remote_port(c: &common::strongswan::Charon) -> u16 {
    c.list_sas()
        .lines()
        .find(|l| l.trim_start().starts_with("remote "))
        .and_then(|l| l.rsplit('[').next())
        .and_then(|p| p.trim_end_matches(']').trim().parse().ok())
        .unwrap_or(0)
}

/// Wall-clock seconds, as `ping -D` prints them.
fn unix_now() -> f64 {
    #[allow(clippy::disallowed_methods)] // test harness: compared with ping's wall-clock stamps
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When each echo reply arrived (`[1700000000.123456] 64 bytes from …`).
fn reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

/// The longest time without a reply ending after `t` (the first being the one across `t`), and how
/// long after `t` the last reply came.
fn outage(replies: &[f64], t: f64) -> (f64, f64) {
    let gap = replies
        .windows(2)
        .filter(|w| w[1] > t)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    let last = replies.last().map_or(f64::MIN, |&r| r - t);
    (gap, last)
}
