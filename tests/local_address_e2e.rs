//! The customer gateway's outside address changes under `cgwd run` (`local.address = "auto"`,
//! issue #16): DHCP, PPPoE or a restarted VM gives the host a new one. Root only.
//!
//! ```text
//!  on-prem 10.0.0.2 ── 10.0.0.1 cgw 192.0.2.10 → .20 → .30 ── 192.0.2.1 router ── a1 198.51.100.11
//!                                                                          └── a2 203.0.113.12
//! ```
//!
//! a1 and a2 run charon and answer for the "VPC" host 10.100.0.10, as in the other `two_aws` tests.
//! AWS checks a PSK tunnel's peer address but not that of a customer gateway created with a
//! certificate and no IP address (FACTS §9.1), so the charons authenticate by certificate with
//! `remote_addrs = %any`.
//!
//! While an on-prem host pings the VPC host through cgwd every 100 ms, the outside address is
//! replaced twice: with a gap (`ip addr del` the old one, `ip addr add` the new one, the routes
//! put back), then without one (the next address added and made the routes' source before the
//! current one is removed). Each time both tunnels must be up again within [`MAX_BACK`]; printed:
//! that time and the pings lost. The health log must say what happened.

mod common;

use std::time::Duration;

use common::netns::{run, skip_unless_root, skip_unless_root_and};
use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use common::strongswan::{Charon, Conn};
use common::tempdir::TempDir;
use common::two_aws::*;

/// The issue's bound: both tunnels back within this of the new address appearing.
const MAX_BACK: Duration = Duration::from_secs(10);
const OLD: &str = "192.0.2.10";
const NEW: &str = "192.0.2.20";
/// The second change, without a gap: added and made the source toward AWS before NEW goes.
const THIRD: &str = "192.0.2.30";
const ROUTER: &str = "192.0.2.1";
const TOWARD_AWS: [&str; 2] = ["198.51.100.1", "203.0.113.1"];
const CGW_CN: &str = "cgw.example.com";

use common::two_aws::{certificate_config, write_file as write};

/// An on-prem host behind the gateway (10.0.0.2, its default route via cgw's 10.0.0.1); the
/// namespace is removed on drop, also when the test fails.
struct OnPrem(String);

impl OnPrem {
    /// `tag` (2 characters) as the topology's: two tests of this file run at once.
    fn create(topo: &Topology, tag: &str) -> OnPrem {
        let id = std::process::id();
        let o = OnPrem(format!("cgw{tag}-p{id}"));
        run("ip", &["netns", "add", &o.0]).unwrap();
        ip(&o.0, &["link", "set", "lo", "up"]);
        let tmp = format!("v{tag}p{id}");
        run(
            "ip",
            &[
                "link", "add", "lan0", "netns", &topo.cgw, "type", "veth", "peer", "name", &tmp, "netns",
                &o.0,
            ],
        )
        .unwrap();
        ip(&o.0, &["link", "set", &tmp, "name", "eth0"]);
        ip(&o.0, &["addr", "add", "10.0.0.2/24", "dev", "eth0"]);
        ip(&o.0, &["link", "set", "eth0", "up"]);
        ip(&o.0, &["route", "add", "default", "via", "10.0.0.1"]);
        ip(&topo.cgw, &["addr", "add", "10.0.0.1/24", "dev", "lan0"]);
        ip(&topo.cgw, &["link", "set", "lan0", "up"]);
        common::netns::sysctl(&topo.cgw, "net.ipv4.ip_forward=1");
        o
    }
}

impl Drop for OnPrem {
    fn drop(&mut self) {
        if let Ok(pids) = run("ip", &["netns", "pids", &self.0]) {
            for pid in pids.split_whitespace() {
                let _ = run("kill", &["-KILL", pid]);
            }
        }
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

fn ip(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all).unwrap_or_else(|e| panic!("ip {all:?}: {e}"));
}

#[test]
fn both_tunnels_come_back_from_a_new_outside_address() {
    if skip_unless_root() {
        return;
    }
    let topo = Topology::create_via(
        "la",
        &Middle {
            cgw: OLD,
            toward_cgw: ROUTER,
            toward_aws: TOWARD_AWS,
            public: OLD,
        },
    );
    let onprem = OnPrem::create(&topo, "la");
    let router = topo.mid.clone().unwrap();
    // The router and AWS reach the new addresses too once they exist (the ISP's side).
    for addr in [NEW, THIRD] {
        ip(&router, &["route", "add", addr, "dev", "c0"]);
        for (aws, gw) in topo.aws.iter().zip(TOWARD_AWS) {
            ip(aws, &["route", "add", addr, "via", gw]);
        }
    }
    let tmp = TempDir::new("local-address-e2e");
    let dir = tmp.0.clone();
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let cgw = ca.issue(&PKCS_ECDSA_P256_SHA256, CGW_CN, Flaw::None);
    let charons: Vec<Charon> = (0..2)
        .map(|i| {
            let cn = format!("vpn-71310d5967085f652-{}.tunnel.example.com", i + 1);
            let leaf = ca.issue(&PKCS_ECDSA_P256_SHA256, &cn, Flaw::None);
            let c = Charon::start(&topo.aws[i], &dir.join(format!("aws{}", i + 1))).unwrap();
            let cert = write(&c.dir.join("x509/aws.pem"), &leaf.cert);
            write(&c.dir.join("private/aws.key"), &leaf.key);
            let ca_file = write(&c.dir.join("x509ca/ca.pem"), &ca.pem);
            // Any customer address, as AWS with certificate authentication.
            let mut conn = Conn::new(
                AWS[i],
                "%any",
                "unused-psk-0123456789",
                "aes256gcm16-prfsha256-ecp256",
                "aes256gcm16-ecp256",
            );
            conn.pubkey = Some((cert, ca_file, format!("CN={cn}"), format!("CN={CGW_CN}")));
            c.load_with_credentials(&conn).unwrap();
            aws_inside(&topo, i);
            // The VPC answers on-prem through the tunnel.
            ip(&topo.aws[i], &["route", "add", "10.0.0.0/24", "dev", "ipsec0"]);
            c
        })
        .collect();
    let health = dir.join("health.jsonl");
    let settings = format!(
        "[auth]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n[log]\nhealth = \"{}\"\n",
        write(&dir.join("cgw/cgw.pem"), &cgw.cert).display(),
        write(&dir.join("cgw/cgw.key"), &cgw.key).display(),
        write(&dir.join("cgw/ca.pem"), &ca.pem).display(),
        health.display(),
    );
    let config = certificate_config(&dir);
    let mut cgwd = CgwdRun::start_at(&topo, &dir, "la", &config, "auto", &settings);
    cgwd.wait_both_up();
    let s = cgwd.status().unwrap();
    assert_eq!(s.tunnels[0].local_outside.to_string(), OLD, "{s:?}");

    // On-prem pings the VPC every 100 ms through cgwd for the whole change.
    let first = topo.ns_exec(
        &onprem.0,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(first.contains(" 0% packet loss"), "on-prem → VPC before: {first}");
    let ping = ping_every(&onprem.0, 150, "0.1");
    std::thread::sleep(Duration::from_secs(2));
    ip(&topo.cgw, &["addr", "del", &format!("{OLD}/32"), "dev", "o0"]);
    wait_for(
        "cgwd to notice the address is gone",
        Duration::from_secs(5),
        || {
            cgwd.log()
                .contains(&format!("customer gateway outside address {OLD} is gone"))
        },
    );
    ip(&topo.cgw, &["addr", "add", &format!("{NEW}/32"), "dev", "o0"]);
    let appeared = cgwd::io::clock::now();
    ip(&topo.cgw, &["route", "replace", ROUTER, "dev", "o0", "src", NEW]);
    for aws in AWS {
        ip(&topo.cgw, &["route", "replace", aws, "via", ROUTER]);
    }
    wait_for("both tunnels from the new address", MAX_BACK, || {
        cgwd.status().is_some_and(|s| {
            established(&s, 0) && established(&s, 1) && s.tunnels[0].local_outside.to_string() == NEW
        })
    });
    let back = appeared.elapsed();
    let (lost1, every_ms) = lost(ping);
    let log = cgwd.log();
    println!(
        "outside address {OLD} → {NEW}: both tunnels up {:.2} s after the new address appeared; \
         {lost1} of 150 pings lost (one every {every_ms:.0} ms, including the time with no address)",
        back.as_secs_f64()
    );
    assert!(back <= MAX_BACK, "{log}");
    assert!(
        log.contains(&format!(
            "customer gateway outside address changed from {OLD} to {NEW}; re-establishing both tunnels"
        )),
        "{log}"
    );
    // Traffic flows again from the new address, on both AWS endpoints' new SAs.
    let after = topo.ns_exec(
        &onprem.0,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(after.contains(" 0% packet loss"), "{after}\n{log}");
    for c in &charons {
        let sas = c.list_sas();
        assert!(sas.contains(NEW), "charon's SA is with {NEW}: {sas}");
    }
    // The health log says it, once per tunnel, in AWS's record format.
    let records = std::fs::read_to_string(&health).unwrap_or_default();
    let changed: Vec<&str> = records
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "customer gateway outside address changed from {OLD} to {NEW}"
            ))
        })
        .collect();
    assert_eq!(changed.len(), 2, "{records}");
    for t in AWS {
        assert!(changed.iter().any(|l| l.contains(t)), "{t}: {changed:?}");
    }
    assert!(
        records.contains(&format!("customer gateway outside address {OLD} is gone")),
        "{records}"
    );
    println!("health records: {}", changed[0]);

    // Renumbering without a gap: the next address is added and the routes toward AWS take it as
    // their source before the current one is removed. No "gone" in between: straight from NEW to
    // THIRD.
    let ping = ping_every(&onprem.0, 100, "0.1");
    std::thread::sleep(Duration::from_secs(2));
    ip(&topo.cgw, &["addr", "add", &format!("{THIRD}/32"), "dev", "o0"]);
    ip(
        &topo.cgw,
        &["route", "replace", ROUTER, "dev", "o0", "src", THIRD],
    );
    for aws in AWS {
        ip(&topo.cgw, &["route", "replace", aws, "via", ROUTER, "src", THIRD]);
    }
    let moved = cgwd::io::clock::now();
    wait_for("both tunnels from the third address", MAX_BACK, || {
        cgwd.status().is_some_and(|s| {
            established(&s, 0) && established(&s, 1) && s.tunnels[0].local_outside.to_string() == THIRD
        })
    });
    let back = moved.elapsed();
    ip(&topo.cgw, &["addr", "del", &format!("{NEW}/32"), "dev", "o0"]);
    let (lost, every_ms) = lost(ping);
    let log = cgwd.log();
    println!(
        "outside address {NEW} → {THIRD} without a gap: both tunnels up {:.2} s after the routes \
         took it; {lost} of 100 pings lost (one every {every_ms:.0} ms)",
        back.as_secs_f64()
    );
    assert!(back <= MAX_BACK, "{log}");
    assert!(
        log.contains(&format!(
            "customer gateway outside address changed from {NEW} to {THIRD}"
        )),
        "{log}"
    );
    assert_eq!(log.matches("is gone and no other address").count(), 1, "{log}");
    let after = topo.ns_exec(
        &onprem.0,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(after.contains(" 0% packet loss"), "{after}\n{log}");
}

/// With a pre-shared key AWS checks the customer gateway's address, unless a NAT is in between: a
/// gateway behind a NAT whose private address changes (DHCP on the site's LAN) while the NAT's
/// public address stays keeps working with its PSK tunnels.
///
/// ```text
///  on-prem ── cgw 192.0.2.130 → .140 ── 192.0.2.129 NAT 192.0.2.10 ── a1 198.51.100.11 (charon, PSK)
///                                                     192.0.2.10 ── a2 203.0.113.12  (charon, PSK)
/// ```
#[test]
fn a_psk_gateway_behind_a_nat_follows_its_private_address() {
    if skip_unless_root_and(&["nft"]) {
        return;
    }
    const PRIVATE: &str = "192.0.2.130";
    const PRIVATE_NEW: &str = "192.0.2.140";
    const NAT: &str = "192.0.2.129";
    let topo = Topology::create_via(
        "ln",
        &Middle {
            cgw: PRIVATE,
            toward_cgw: NAT,
            toward_aws: [CGW, CGW],
            public: CGW,
        },
    );
    let onprem = OnPrem::create(&topo, "ln");
    let nat = topo.mid.clone().unwrap();
    ip(&nat, &["route", "add", PRIVATE_NEW, "dev", "c0"]);
    for rule in [
        "add table ip nat",
        "add chain ip nat post { type nat hook postrouting priority srcnat ; policy accept ; }",
        "add rule ip nat post ip saddr 192.0.2.128/26 masquerade",
    ] {
        nft(&nat, rule);
    }
    let tmp = TempDir::new("local-address-nat");
    let charons = start_charons(&topo, &tmp.0, |_, conf| conf);
    for aws in &topo.aws {
        ip(aws, &["route", "add", "10.0.0.0/24", "dev", "ipsec0"]);
    }
    let config = lab_config(&tmp.0, 28800, 3600, 540, 100);
    let mut cgwd = CgwdRun::start_at(&topo, &tmp.0, "ln", &config, "auto", "");
    cgwd.wait_both_up();
    let s = cgwd.status().unwrap();
    assert_eq!(s.tunnels[0].local_outside.to_string(), PRIVATE, "{s:?}");

    let ping = ping_every(&onprem.0, 150, "0.1");
    std::thread::sleep(Duration::from_secs(2));
    ip(&topo.cgw, &["addr", "del", &format!("{PRIVATE}/32"), "dev", "o0"]);
    ip(
        &topo.cgw,
        &["addr", "add", &format!("{PRIVATE_NEW}/32"), "dev", "o0"],
    );
    ip(
        &topo.cgw,
        &["route", "replace", NAT, "dev", "o0", "src", PRIVATE_NEW],
    );
    for aws in AWS {
        ip(&topo.cgw, &["route", "replace", aws, "via", NAT]);
    }
    let appeared = cgwd::io::clock::now();
    wait_for("both tunnels from the new private address", MAX_BACK, || {
        cgwd.status().is_some_and(|s| {
            established(&s, 0) && established(&s, 1) && s.tunnels[0].local_outside.to_string() == PRIVATE_NEW
        })
    });
    let back = appeared.elapsed();
    let (lost, every_ms) = lost(ping);
    let log = cgwd.log();
    println!(
        "behind a NAT, PSK: private address {PRIVATE} → {PRIVATE_NEW}: both tunnels up {:.2} s after \
         the new address and routes were in; {lost} of 150 pings lost (one every {every_ms:.0} ms)",
        back.as_secs_f64()
    );
    assert!(back <= MAX_BACK, "{log}");
    assert!(
        log.contains(&format!(
            "customer gateway outside address changed from {PRIVATE} to {PRIVATE_NEW}"
        )),
        "{log}"
    );
    let after = topo.ns_exec(
        &onprem.0,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(after.contains(" 0% packet loss"), "{after}\n{log}");
    drop(cgwd);
    drop(charons);
}
