//! End to end, root only: `cgwd run` with lab lifetimes (`[lab] allow_short_lifetimes`, IKE 60 s,
//! Child 20 s, margin 5 s) against two strongSwan charons playing AWS, so that BOTH sides start
//! rekeys, under a continuous ping through the tunnels:
//!
//! 1. `both_sides_rekey_under_traffic`: ~3 minutes at 50 pings/s. Tunnel 1's charon rekeys its
//!    Child SA before cgwd does and its IKE SA after cgwd does; tunnel 2's the other way round, so
//!    each side starts Child and IKE rekeys. Counted from cgwd's log and charon's (≥ 2 of each kind
//!    per side), 0 pings lost, and charon and `cgwd status` agree on the one Child SA at the end.
//! 2. `rekey_collisions_lose_nothing`: identical rekey times, no fuzz, and both sides' CREATE_CHILD_SA
//!    requests held back until both have sent theirs, then let through one way and then the
//!    other (IKE blocked with nftables; this kernel has no netem to delay them): charon reports a
//!    CHILD_SA rekey collision on each tunnel and an IKE_SA one, cgwd too, 0 pings lost, no tunnel
//!    down, one Child SA with the same SPIs on both sides.
//! 3. `aws_opening_a_second_ike_sa_replaces_the_first`: charon (`swanctl --initiate`) starts a new
//!    IKE SA while cgwd's is established, twice per tunnel → cgwd answers, moves the tunnel to it
//!    and deletes the old one: one IKE SA per tunnel on both sides, no ping lost, no tunnel down.
//! 4. `aws_replacing_the_ike_sa_repeatedly_loses_nothing`, only with `CGWD_STRESS_HANDOVERS=N`: N
//!    handovers in a row on tunnel 1 under a ping every 5 ms, 0 lost (a packet sealed with the old
//!    Child SA in flight when the DELETE for its IKE SA arrives was lost about once in 40 handovers).
//!
//! Plus, without root, `cgwd check` on short lifetimes with and without the lab switch.
//! Topology: tests/common/two_aws.rs (namespaces carry the pid and a letter per test).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::netns::skip_unless_root;
use common::strongswan::Charon;
use common::tempdir::TempDir;
use common::two_aws::*;

/// The namespaces (letter `tag`) and a scratch directory for a root test; None (the test passes
/// as SKIPPED) without root or nftables.
fn setup(tag: char, name: &str) -> Option<(Topology, TempDir)> {
    if skip_unless_root() {
        return None;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("SKIPPED: needs nftables");
        return None;
    }
    Some((Topology::create(tag), TempDir::new(name)))
}

const LAB: &str = "[lab]\nallow_short_lifetimes = true\n";

/// charon taking the DH groups cgwd proposes first (ECP-521) for the IKE SA and PFS, so that no rekey
/// of either side can be refused with INVALID_KE_PAYLOAD (a refused request is no collision). cgwd
/// guesses the IKE SA's group for its rekeys, which charon would take too, but this keeps the collision
/// test independent of that guess.
fn groups_cgwd_proposes_first(conf: &str) -> String {
    conf.replace(
        "proposals = aes256gcm16-prfsha256-ecp256",
        "proposals = aes256gcm16-prfsha256-ecp521",
    )
    .replace(
        "esp_proposals = aes256gcm16-ecp256",
        "esp_proposals = aes256gcm16-ecp521",
    )
}

#[test]
fn check_names_the_lab_switch_and_shows_lab_mode() {
    let dir = TempDir::new("labcheck");
    let config = lab_config(&dir.0, 60, 20, 5, 100);
    let cgwd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cgwd"))
            .args(args)
            .env("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/16")
            .output()
            .unwrap()
    };
    let config_s = config.to_str().unwrap();
    let out = cgwd(&["check", config_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(config_s), "names the file: {err}");
    assert!(err.contains("Phase1LifetimeSeconds 60"), "names the field: {err}");
    assert!(
        err.contains("allow_short_lifetimes = true"),
        "names the fix: {err}"
    );

    let settings = dir.0.join("lab.toml");
    std::fs::write(&settings, LAB).unwrap();
    let out = cgwd(&["check", config_s, "--settings", settings.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("LAB MODE"), "{text}");
    assert!(text.contains("IKE 60 s, Child 20 s"), "{text}");
    let out = cgwd(&[
        "check",
        "--json",
        config_s,
        "--settings",
        settings.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lab_mode"], true);
}

#[test]
fn both_sides_rekey_under_traffic() {
    let Some((topo, dir)) = setup('r', "rekey") else {
        return;
    };
    let started = cgwd::io::clock::now();
    // cgwd: IKE 60 s, Child 20 s, margin 5 s, fuzz 100 %: Child rekeys at 10-15 s, IKE at 50-55 s.
    let config = lab_config(&dir.0, 60, 20, 5, 100);
    let charons = start_charons(&topo, &dir.0, |i, conf| {
        if i == 0 {
            // Tunnel 1: charon rekeys the Child SA first (8 s), cgwd the IKE SA (charon 70 s).
            with_lifetimes(
                &conf,
                &["rekey_time = 70s", "over_time = 10s", "rand_time = 0s"],
                &["rekey_time = 8s", "life_time = 30s", "rand_time = 0s"],
            )
        } else {
            // Tunnel 2: cgwd rekeys the Child SA first (charon 18 s), charon the IKE SA (40 s).
            with_lifetimes(
                &conf,
                &["rekey_time = 40s", "over_time = 10s", "rand_time = 0s"],
                &["rekey_time = 18s", "life_time = 25s", "rand_time = 0s"],
            )
        }
    });
    let mut cgwd = CgwdRun::start(&topo, &dir.0, 'r', &config, LAB);
    cgwd.wait_both_up();
    assert!(
        cgwd.log().contains("lab.allow_short_lifetimes is set"),
        "warned at start"
    );

    let charon_mark: Vec<usize> = charons.iter().map(|c| c.log().len()).collect();
    let cgwd_mark = cgwd.log().len();
    const PINGS: u32 = 9000; // 3 minutes at 50/s
    let (lost_pings, interval) = lost(ping_every(&topo.cgw, PINGS, "0.02"));
    let log = cgwd.log();
    let during = &log[cgwd_mark..];
    let mut totals = [[0usize; 2]; 2]; // [side: cgwd, charon][kind: Child, IKE], completed
    for (i, c) in charons.iter().enumerate() {
        let clog = c.log();
        let clog = &clog[charon_mark[i]..];
        let (cg_child, cg_ike) = cgwd_rekeys(during, i + 1);
        let (by_cgwd_child, by_cgwd_ike) = rekeys_done(clog, "generating");
        let (by_charon_child, by_charon_ike) = rekeys_done(clog, "parsed");
        let (tried_child, tried_ike) = charon_rekeys(clog, "generating");
        println!(
            "tunnel {}: cgwd rekeyed the Child SA {by_cgwd_child} times and the IKE SA {by_cgwd_ike} \
             times (requests in its log: {cg_child} / {cg_ike}); charon {by_charon_child} / \
             {by_charon_ike} (requests: {tried_child} / {tried_ike})",
            i + 1
        );
        totals[0][0] += by_cgwd_child;
        totals[0][1] += by_cgwd_ike;
        totals[1][0] += by_charon_child;
        totals[1][1] += by_charon_ike;
    }
    println!(
        "both sides rekey: {PINGS} pings at one per {interval:.1} ms, {lost_pings} lost; cgwd \
         rekeyed {} Child and {} IKE SAs, charon {} Child and {} IKE SAs; test took {:.0} s",
        totals[0][0],
        totals[0][1],
        totals[1][0],
        totals[1][1],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost_pings, 0, "{log}");
    for (side, [child, ike]) in ["cgwd", "charon"].iter().zip(totals) {
        assert!(child >= 2, "{side} rekeyed only {child} Child SAs\n{log}");
        assert!(ike >= 2, "{side} rekeyed only {ike} IKE SAs\n{log}");
    }
    // Hitless: no tunnel went down, so no failover hid an outage from the ping.
    for sign in [
        "IKE SA closed",
        "Child SA down",
        "outbound tunnel changed",
        "without a successful rekey",
    ] {
        assert!(!during.contains(sign), "`{sign}` while rekeying\n{log}");
    }
    for (i, c) in charons.iter().enumerate() {
        assert_one_matching_sa(c, &cgwd, i);
    }
    drop(cgwd);
    drop(charons);
}

/// Lines of `log` after `from` containing `what`.
fn count_since(log: &str, from: usize, what: &str) -> usize {
    log.get(from..).unwrap_or("").matches(what).count()
}

#[test]
fn rekey_collisions_lose_nothing() {
    let Some((topo, dir)) = setup('x', "collide") else {
        return;
    };
    let started = cgwd::io::clock::now();
    // The same rekey times on both sides and no randomness: Child SAs at 15 s, IKE SAs at 35 s.
    let config = lab_config(&dir.0, 40, 20, 5, 0);
    let charons = start_charons(&topo, &dir.0, |_, conf| {
        let conf = groups_cgwd_proposes_first(&conf);
        with_lifetimes(
            &conf,
            &["rekey_time = 35s", "over_time = 10s", "rand_time = 0s"],
            &["rekey_time = 15s", "life_time = 25s", "rand_time = 0s"],
        )
    });
    let mut cgwd = CgwdRun::start(&topo, &dir.0, 'x', &config, LAB);
    cgwd.wait_both_up();
    let ike_up = cgwd::io::clock::now();
    let cgwd_mark = cgwd.log().len();
    let ping = ping_every(&topo.cgw, 3000, "0.02"); // 60 s at 50/s

    // Hold IKE back around each rekey until both sides of both tunnels have sent their request, then
    // let cgwd's retransmission reach charon (charon's own request unanswered), then charon's reach
    // cgwd (cgwd's unanswered): each side gets the other's request while its own is outstanding, a
    // collision for both (RFC 7296 §2.8.1, §2.8.2).
    let cross = |what: &str, cgwd_says: &str, kind: usize| {
        let count = |log: &str, verb: &str| {
            let (child, ike) = charon_rekeys(log, verb);
            if kind == 0 { child } else { ike }
        };
        let marks: Vec<(usize, usize, usize)> = charons
            .iter()
            .map(|c| {
                let log = c.log();
                (cgwd.log().len(), count(&log, "generating"), count(&log, "parsed"))
            })
            .collect();
        hold_ike(&topo.cgw);
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(
                &format!("{what} from both sides"),
                Duration::from_secs(15),
                || {
                    let log = cgwd.log();
                    charons.iter().enumerate().all(|(i, c)| {
                        let ours = log
                            .get(marks[i].0..)
                            .unwrap_or("")
                            .lines()
                            .any(|l| l.contains(cgwd_says) && l.contains(&format!("tunnel {}", i + 1)));
                        ours && count(&c.log(), "generating") > marks[i].1
                    })
                },
            );
            let_ike_out(&topo.cgw);
            wait_for(
                &format!("cgwd's {what} at charon"),
                Duration::from_secs(10),
                || {
                    charons
                        .iter()
                        .enumerate()
                        .all(|(i, c)| count(&c.log(), "parsed") > marks[i].2)
                },
            );
        }));
        release_ike(&topo.cgw);
        if let Err(e) = waited {
            std::panic::resume_unwind(e);
        }
    };
    // The first Child SA rekeys are due 15 s after the Child SAs came up.
    wait_for("cgwd's Child SA rekey close", Duration::from_secs(20), || {
        cgwd.status().is_some_and(|s| {
            s.tunnels
                .iter()
                .all(|t| t.next_rekey_secs.is_some_and(|n| n <= 1))
        })
    });
    let charon_mark: Vec<usize> = charons.iter().map(|c| c.log().len()).collect();
    cross(
        "Child SA rekey requests",
        "rekeying the Child SA (cgwd initiates)",
        0,
    );
    // The IKE SAs are rekeyed 35 s after they came up.
    let ike_due = Duration::from_secs(33);
    std::thread::sleep(ike_due.saturating_sub(ike_up.elapsed()));
    cross("IKE SA rekey requests", "rekeying the IKE SA (cgwd initiates)", 1);
    let (lost_pings, interval) = lost(ping);
    let log = cgwd.log();
    let mut collisions = (0, 0);
    for (i, c) in charons.iter().enumerate() {
        let clog = c.log();
        let child = count_since(&clog, charon_mark[i], "CHILD_SA rekey collision");
        assert!(
            child >= 1,
            "tunnel {}: no CHILD_SA rekey collision on charon\n{clog}",
            i + 1
        );
        collisions.0 += child;
        collisions.1 += count_since(&clog, charon_mark[i], "IKE_SA rekey collision");
    }
    let cgwd_child = log.matches("Child SA rekey collision").count();
    let cgwd_ike = log.matches("IKE SA rekey collision").count();
    println!(
        "collisions: charon reported {} CHILD_SA and {} IKE_SA rekey collisions, cgwd {cgwd_child} \
         Child and {cgwd_ike} IKE; 3000 pings at one per {interval:.1} ms, {lost_pings} lost; test \
         took {:.0} s",
        collisions.0,
        collisions.1,
        started.elapsed().as_secs_f64()
    );
    assert!(collisions.0 >= 1, "no CHILD_SA rekey collision\n{log}");
    assert!(cgwd_child >= 1, "cgwd saw no Child SA rekey collision\n{log}");
    assert!(collisions.1 >= 1, "no IKE_SA rekey collision on charon\n{log}");
    assert!(cgwd_ike >= 1, "cgwd saw no IKE SA rekey collision\n{log}");
    assert_eq!(lost_pings, 0, "{log}");
    for sign in ["IKE SA closed", "Child SA down", "outbound tunnel changed"] {
        assert!(
            !log[cgwd_mark..].contains(sign),
            "`{sign}` while colliding\n{log}"
        );
    }
    for (i, c) in charons.iter().enumerate() {
        assert_one_matching_sa(c, &cgwd, i);
    }
    drop(cgwd);
    drop(charons);
}

/// charon's swanctl.conf with a copy of connection `t` named `n`: initiating `n` while an IKE SA
/// of `t` is up opens a second IKE SA to cgwd, and the other way round (initiating the connection
/// of the established SA would reuse it).
fn with_second_connection(conf: &str) -> String {
    let start = conf.find("    t {").expect("connection t");
    let end = conf.find("\n}\nsecrets").expect("end of connections");
    // A setting of its own too: charon reuses an IKE SA whose peer config is equal, whatever its name.
    let copy = conf[start..end]
        .replacen("    t {", "    n {", 1)
        .replacen("reauth_time = 0", "reauth_time = 0\n        keyingtries = 2", 1)
        .replacen("children {\n            t {", "children {\n            n {", 1);
    format!("{}\n{copy}{}", &conf[..end], &conf[end..])
}

/// [`setup`], then both charons with [`with_second_connection`] and cgwd on the sample configuration,
/// both tunnels up.
fn second_ike_sa_lab(tag: char, name: &str) -> Option<(Topology, TempDir, Vec<Charon>, CgwdRun)> {
    let (topo, dir) = setup(tag, name)?;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let charons = start_charons(&topo, &dir.0, |_, conf| with_second_connection(&conf));
    let mut cgwd = CgwdRun::start(&topo, &dir.0, tag, &config, "");
    cgwd.wait_both_up();
    Some((topo, dir, charons, cgwd))
}

#[test]
fn aws_opening_a_second_ike_sa_replaces_the_first() {
    let Some((topo, _dir, charons, cgwd)) = second_ike_sa_lab('n', "second") else {
        return;
    };
    let cgwd_mark = cgwd.log().len();
    const PINGS: u32 = 1500; // 30 s at 50/s
    let ping = ping_every(&topo.cgw, PINGS, "0.02");
    // AWS (StartupAction start, or after a restart of its own) opens a new IKE SA on each tunnel in
    // turn while cgwd's is established, twice (connection `n` next to `t`, then `t` next to `n`).
    const ROUNDS: usize = 2;
    for child in ["n", "t"].iter().take(ROUNDS) {
        for (i, c) in charons.iter().enumerate() {
            std::thread::sleep(Duration::from_secs(3));
            if let Err(e) = c.swanctl("--initiate", &["--child", child, "--timeout", "10"]) {
                panic!("swanctl --initiate on tunnel {}: {e}\n{}", i + 1, c.log());
            }
            assert_one_matching_sa(c, &cgwd, i);
        }
    }
    let (lost_pings, interval) = lost(ping);
    let log = cgwd.log();
    let replaced = log.matches("AWS opened a new IKE SA").count();
    println!(
        "second IKE SA: cgwd moved to AWS's new IKE SA {replaced} times; {PINGS} pings at one per \
         {interval:.1} ms, {lost_pings} lost"
    );
    assert_eq!(replaced, 2 * ROUNDS, "{log}");
    assert_eq!(lost_pings, 0, "{log}");
    for (i, c) in charons.iter().enumerate() {
        assert_one_matching_sa(c, &cgwd, i);
        let s = cgwd.status().unwrap();
        assert!(established(&s, i), "tunnel {} up", i + 1);
    }
    assert_eq!(
        log.matches("older IKE SA deleted").count(),
        2 * ROUNDS,
        "cgwd's old IKE SAs are gone\n{log}"
    );
    for sign in ["IKE SA closed", "Child SA down", "outbound tunnel changed"] {
        assert!(
            !log[cgwd_mark..].contains(sign),
            "`{sign}` while replacing\n{log}"
        );
    }
    drop(cgwd);
    drop(charons);
}

#[test]
fn aws_replacing_the_ike_sa_repeatedly_loses_nothing() {
    let Some(rounds) = std::env::var("CGWD_STRESS_HANDOVERS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    else {
        println!("SKIPPED: set CGWD_STRESS_HANDOVERS=N (30 takes about a minute)");
        return;
    };
    let Some((topo, _dir, charons, cgwd)) = second_ike_sa_lab('h', "handovers") else {
        return;
    };
    // A round takes about 1.5 s (0.7 s pause, the handover's 0.5 s, the DELETE): pings for all of them.
    let pings = (rounds * 1500 + 2000) / 5;
    let ping = ping_every(&topo.cgw, pings, "0.005");
    std::thread::sleep(Duration::from_secs(1));
    // Tunnel 1 carries the ping (prefer-tunnel-1): connection `n` next to `t`, then `t` next to `n` ...
    for child in ["n", "t"].iter().cycle().take(rounds as usize) {
        std::thread::sleep(Duration::from_millis(700));
        if let Err(e) = charons[0].swanctl("--initiate", &["--child", child, "--timeout", "10"]) {
            panic!("swanctl --initiate: {e}\n{}", charons[0].log());
        }
        assert_one_matching_sa(&charons[0], &cgwd, 0);
    }
    let (lost_pings, interval) = lost(ping);
    let log = cgwd.log();
    let replaced = log.matches("AWS opened a new IKE SA").count();
    println!(
        "repeated handovers: {replaced} on tunnel 1; {pings} pings at one per {interval:.1} ms, \
         {lost_pings} lost"
    );
    assert_eq!(replaced, rounds as usize, "{log}");
    assert_eq!(lost_pings, 0, "{log}");
    drop(cgwd);
    drop(charons);
}
