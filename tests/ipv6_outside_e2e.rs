//! IPv4 traffic over IPv6 tunnels (AWS `OutsideIpAddressType` Ipv6), root only: `cgwd run` against
//! two strongSwan charons (kernel-libipsec, ESP-in-UDP/IPv6) playing AWS's two endpoints with
//! AWS's full algorithm lists, both tunnels over UDP/IPv6, IPv4 inside /30s as AWS gives them.
//!
//! ```text
//!  onprem 10.0.1.10 ── lan ── 10.0.1.1 [cgw: cgwd run] 2001:db8:100::10 ─┬─ o0 ── 2001:db8:ffaa:1::21 [a1: charon] ── 10.100.0.1 ── [vpc 10.100.0.10]
//!                                                                         └─ o1 ── 2001:db8:ffab:2::22 [a2: charon]
//! ```
//!
//! cgwd gets configs/lab.describe.json moved to IPv6 outside addresses (`OutsideIpAddressType`
//! Ipv6, written to the test's temp dir). Checked: both tunnels established with IPv6 outside
//! addresses on both sides, charon's SAs on UDP 4500 over IPv6, the TUN MTU 20 octets below the
//! IPv4 value (1418 for AES-GCM) with a DF ping of exactly that size passing and one octet more
//! answered "fragmentation needed" with it, 20 pings on-prem → VPC through tunnel 1 and 20 to AWS's
//! inside address of tunnel 2 with 0 % loss, iperf3 TCP on-prem → VPC for 3 s (the rate printed),
//! and SIGTERM ending cgwd with exit 0.
//!
//! Needs root, strongSwan (charon + swanctl), iproute2, iputils ping and iperf3; prints
//! "SKIPPED: ..." and passes otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ipv6::{AWS, CGW, Inside, StrongSwanLab, cgwd_status, iperf3, ipv6_config, ping_counts, up};
use common::netns::{skip_unless_root_and, sysctl};
use common::two_aws::wait_for;

const INSIDE: Inside = Inside::V4;
const AWS_INSIDE_HOST: [&str; 2] = ["169.254.10.5", "169.254.20.9"];
const VPC_HOST: &str = "10.100.0.10";

/// configs/lab.describe.json with IPv6 outside addresses (the same tunnels, inside /30s and PSKs).
fn v4_inside_config(dir: &Path) -> PathBuf {
    ipv6_config(dir, INSIDE)
}

#[test]
fn ipv4_traffic_over_ipv6_tunnels_with_strongswan() {
    if skip_unless_root_and(&["iperf3", "ping"]) {
        return;
    }
    let lab = StrongSwanLab::start('o', INSIDE, v4_inside_config, "", |_, conf| conf);
    let (topo, sock, ifname, charons) = (&lab.topo, &lab.sock, &lab.ifname, &lab.charons);
    let diag = || lab.diag();
    let s = cgwd_status(sock).unwrap();
    for (i, aws) in AWS.iter().enumerate() {
        let t = &s["tunnels"][i];
        println!(
            "tunnel {}: {} ↔ {}, phase 1 {}, phase 2 {}",
            i + 1,
            t["local_outside"],
            t["aws_outside"],
            t["phase1_algorithms"],
            t["phase2_algorithms"]
        );
        assert_eq!(t["local_outside"], CGW, "{t}");
        assert_eq!(t["aws_outside"], *aws, "{t}");
        // charon sees the IKE SA and the Child SA between the IPv6 addresses, on UDP 4500.
        let sas = charons[i].list_sas();
        assert!(sas.contains("INSTALLED"), "{sas}");
        assert!(
            sas.contains(&format!("{aws}[4500]")) && sas.contains(&format!("{CGW}[4500]")),
            "{sas}"
        );
    }

    // 1. The TUN MTU is the IPv4 one less the 20 octets of the longer IPv6 header: 1438 − 20 for
    //    AES-GCM, the tier cgwd offers. A DF packet of exactly that size crosses; one more octet is
    //    answered "fragmentation needed" with the MTU.
    let link = topo.exec(&topo.cgw, &["ip", "link", "show", ifname]);
    let mtu: usize = link
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {link}"));
    assert_eq!(mtu, 1418, "{link}");
    let fits = (mtu - 28).to_string();
    let whole = topo.exec(
        &topo.onprem,
        &[
            "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", &fits, VPC_HOST,
        ],
    );
    assert!(whole.contains(" 0% packet loss"), "{whole}{}", diag());
    let over = (mtu - 28 + 1).to_string();
    let too_big = topo.exec(
        &topo.onprem,
        &[
            "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", &over, VPC_HOST,
        ],
    );
    println!(
        "TUN MTU {mtu}: DF ping of {mtu} bytes crosses; of {}: {}",
        mtu + 1,
        too_big.lines().nth(1).unwrap_or("")
    );
    assert!(too_big.contains(&format!("mtu = {mtu}")), "{too_big}{}", diag());

    // 2. Pings: on-prem → VPC through tunnel 1 (the active one), on-prem → AWS's inside address of
    //    tunnel 2 (pinned to tunnel 2).
    for (target, label) in [
        (VPC_HOST, "on-prem → VPC (tunnel 1)"),
        (AWS_INSIDE_HOST[1], "on-prem → AWS inside of tunnel 2"),
    ] {
        let ping = topo.exec(
            &topo.onprem,
            &["ping", "-n", "-c", "20", "-i", "0.05", "-W", "2", target],
        );
        let (tx, rx) = ping_counts(&ping);
        println!(
            "{label}: {tx} sent, {rx} received; {}",
            ping.lines().last().unwrap_or("")
        );
        assert!(tx == 20 && rx == 20, "{ping}{}", diag());
    }

    // 3. iperf3 TCP on-prem → VPC for 3 s: bytes move (the rate is printed, never asserted).
    let common::ipv6::Iperf {
        bytes,
        mbps,
        mss,
        json: iperf,
    } = iperf3(&topo.vpc, VPC_HOST, &topo.onprem, &[], 3);
    println!(
        "iperf3 TCP on-prem → VPC over IPv6 outside (cgwd ↔ strongSwan): {bytes} bytes in 3 s, \
         {mbps:.1} Mbit/s, sender MSS {mss}"
    );
    assert!(bytes > 0, "iperf3 moved nothing: {iperf}{}", diag());
    // The MSS clamp (1418 − 40 = 1378) reached the on-prem sender (less TCP options).
    assert!(mss.as_u64().is_some_and(|m| m <= 1378), "MSS {mss}");

    // 4. cgwd counted the traffic on both tunnels.
    wait_for("status counters after iperf3", Duration::from_secs(5), || {
        cgwd_status(sock)
            .is_some_and(|s| s["tunnels"][0]["traffic"]["bytes_out"].as_u64().unwrap_or(0) >= bytes)
    });
    let s = cgwd_status(sock).unwrap();
    for i in 0..2 {
        let traffic = &s["tunnels"][i]["traffic"];
        println!("tunnel {}: traffic {traffic}", i + 1);
        for key in ["packets_in", "packets_out"] {
            assert!(
                traffic[key].as_u64().unwrap_or(0) >= 20,
                "{key}: {traffic}{}",
                diag()
            );
        }
    }

    lab.stop();
}

/// `cgwd demo`'s topology ([`cgwd::demo::Lab`]) with IPv6 added on the outside links (on-prem and
/// the VPC stay IPv4), `cgwd emulate-aws` in its aws namespace and `cgwd run` in cgw, both with
/// static routing; dropped (processes, namespaces) at the end of the test, also on failure.
struct EmulateV6 {
    lab: cgwd::demo::Lab,
}

const EXE: &str = env!("CARGO_BIN_EXE_cgwd");

impl EmulateV6 {
    fn create(tag: &str) -> EmulateV6 {
        let lab =
            cgwd::demo::Lab::create(format!("cgwd-{tag}-{}", std::process::id()), false).expect("topology");
        let e = EmulateV6 { lab };
        let (cgw, inet, aws) = (e.ns("cgw"), e.ns("inet"), e.ns("aws"));
        for (ns, dev, addr) in [
            (&cgw, "wan0", "2001:db8:100::10/64"),
            (&inet, "cgw0", "2001:db8:100::1/64"),
            (&inet, "aws0", "2001:db8:ffaa:1::1/64"),
            (&inet, "aws0", "2001:db8:ffab:2::1/64"),
            (&aws, "wan0", "2001:db8:ffaa:1::21/64"),
            (&aws, "wan0", "2001:db8:ffab:2::22/64"),
        ] {
            e.ip(ns, &["-6", "addr", "add", addr, "dev", dev, "nodad"]);
        }
        e.ip(&cgw, &["-6", "route", "add", "default", "via", "2001:db8:100::1"]);
        e.ip(
            &aws,
            &["-6", "route", "add", "default", "via", "2001:db8:ffaa:1::1"],
        );
        sysctl(&inet, "net.ipv6.conf.all.forwarding=1");
        // The links' own link-local addresses went through DAD when Lab::create brought them up.
        wait_for("link-local addresses out of DAD", Duration::from_secs(10), || {
            [&cgw, &inet, &aws].iter().all(|ns| {
                e.lab
                    .exec(ns, &["ip", "-6", "addr", "show", "tentative"])
                    .is_ok_and(|o| o.trim().is_empty())
            })
        });
        e
    }

    fn ns(&self, role: &str) -> String {
        self.lab.ns(role)
    }

    fn ip(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip"];
        all.extend_from_slice(args);
        self.lab.exec(ns, &all).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Both daemons on `config` (made static), each side's settings with `extra` (TOML tables
    /// after its own), cgwd's outside address `local` ("auto" to follow the kernel).
    fn start(&mut self, config: &Path, local: &str, extra: [&str; 2]) {
        let text = std::fs::read_to_string(config)
            .unwrap()
            .replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true");
        let c = self.lab.dir.join("vpn-static.json");
        std::fs::write(&c, text).unwrap();
        let c = c.to_string_lossy().into_owned();
        let settings = |role: &str, extra: &str| {
            let p = self.lab.dir.join(format!("{role}.toml"));
            std::fs::write(
                &p,
                format!(
                    "[interface]\nname = \"cgwd0\"\n[local]\naddress = \"{local}\"\n[routing]\n\
                     vpc_cidrs = [\"10.100.0.0/16\"]\nonprem_cidrs = [\"10.0.0.0/16\"]\n[control]\nsocket = \"{}\"\n{extra}",
                    self.lab.dir.join(format!("{role}.sock")).display()
                ),
            )
            .unwrap();
            p.to_string_lossy().into_owned()
        };
        let (cgw_settings, aws_settings) = (settings("cgwd", extra[0]), settings("aws", extra[1]));
        let (cgw, aws) = (self.ns("cgw"), self.ns("aws"));
        self.lab
            .spawn(
                &aws,
                &[EXE, "emulate-aws", &c, "--settings", &aws_settings],
                "aws.log",
            )
            .expect("emulate-aws");
        self.lab
            .spawn(&cgw, &[EXE, "run", &c, "--settings", &cgw_settings], "cgwd.log")
            .expect("cgwd run");
    }

    fn status(&self) -> Option<serde_json::Value> {
        cgwd_status(&self.lab.dir.join("cgwd.sock"))
    }

    fn healthy(&self, i: usize) -> bool {
        self.status()
            .is_some_and(|s| up(&s, i) && s["tunnels"][i]["liveness"] == "healthy")
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.lab.dir.join(f)).unwrap_or_default();
        format!(
            "\n--- cgwd\n{}\n--- emulate-aws\n{}",
            read("cgwd.log"),
            read("aws.log")
        )
    }

    /// How long `ok` took to hold; panics with both logs after `limit`.
    fn wait(&self, what: &str, limit: Duration, ok: &dyn Fn(&Self) -> bool) -> Duration {
        let start = cgwd::io::clock::now();
        while !ok(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// 20 pings on-prem → VPC, all answered.
    fn ping(&self, label: &str) {
        let out = self
            .lab
            .exec(
                &self.ns("onprem"),
                &["ping", "-n", "-c", "20", "-i", "0.05", "-W", "2", VPC_HOST],
            )
            .unwrap_or_else(|e| e);
        let (tx, rx) = ping_counts(&out);
        println!(
            "emulate-aws, {label}: {tx} sent, {rx} received; {}",
            out.lines().last().unwrap_or("")
        );
        assert!(tx == 20 && rx == 20, "{out}{}", self.logs());
    }
}

/// cgwd ↔ `cgwd emulate-aws` over IPv6 outside addresses ([`EmulateV6`]): both tunnels up, pings
/// on-prem → VPC, and a maintenance rehearsal on tunnel 1 during which tunnel 2 carries the
/// pings, after which tunnel 1 comes back by itself.
#[test]
fn cgwd_and_emulate_aws_over_ipv6_outside() {
    if !common::netns::is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut e = EmulateV6::create("e6");
    let config = v4_inside_config(&e.lab.dir);
    e.start(&config, CGW, ["", ""]);
    e.wait("both tunnels up", Duration::from_secs(25), &|e| {
        e.healthy(0) && e.healthy(1)
    });
    let s = e.status().unwrap();
    for (i, a) in AWS.iter().enumerate() {
        let t = &s["tunnels"][i];
        assert_eq!(t["local_outside"], CGW, "{t}");
        assert_eq!(t["aws_outside"], *a, "{t}");
    }
    e.ping("both tunnels up");

    // AWS replaces tunnel 1's endpoint: a DELETE, 4 s silence, then back by itself.
    let out = Command::new(EXE)
        .args(["emulate-aws-ctl", "--control-socket"])
        .arg(e.lab.dir.join("aws.sock"))
        .args(["maintenance", "--tunnel", "1", "--for", "4s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    e.wait("tunnel 1 down after the DELETE", Duration::from_secs(5), &|e| {
        !e.healthy(0)
    });
    e.ping("tunnel 1 in maintenance, tunnel 2 carrying");
    e.wait("tunnel 1 back by itself", Duration::from_secs(40), &|e| {
        e.healthy(0)
    });
    e.ping("tunnel 1 back");
}

/// Issue #16 over IPv6 outside addresses: a customer gateway authenticating by certificate gets a
/// new IPv6 address (with duplicate address detection, as SLAAC or DHCPv6 would give it) while
/// on-prem pings the VPC. cgwd (`local.address = "auto"`) waits until the address is usable
/// (a tentative one cannot be bound), re-establishes both tunnels from it, and emulate-aws takes
/// them from the new address. Printed: the time from the address being added and the pings lost.
#[test]
fn a_certificate_gateway_gets_a_new_ipv6_address_and_emulate_aws_follows() {
    use common::pki::{Ca, PKCS_ECDSA_P256_SHA256};
    use common::two_aws::{auth_settings, certificate_config_of};
    if !common::netns::is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    const NEW: &str = "2001:db8:100::20";
    let mut e = EmulateV6::create("e6a");
    let dir = e.lab.dir.clone();
    let config = certificate_config_of(&v4_inside_config(&dir), &dir);
    let ca = Ca::new(&PKCS_ECDSA_P256_SHA256, "Example Private CA");
    let auth = [
        auth_settings(&ca, &dir, "cgwd-cert", "cgw.example.com"),
        auth_settings(&ca, &dir, "aws-cert", "vpn-endpoint.example.com"),
    ];
    e.start(&config, "auto", [&auth[0], &auth[1]]);
    e.wait("both tunnels up", Duration::from_secs(25), &|e| {
        e.healthy(0) && e.healthy(1)
    });
    e.ping("by certificate, both tunnels up");

    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &e.ns("onprem"),
            "ping",
            "-n",
            "-c",
            "150",
            "-i",
            "0.1",
            "-W",
            "1",
        ])
        .arg(VPC_HOST)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let cgw = e.ns("cgw");
    e.ip(&cgw, &["-6", "addr", "del", &format!("{CGW}/64"), "dev", "wan0"]);
    e.ip(&cgw, &["-6", "addr", "add", &format!("{NEW}/64"), "dev", "wan0"]);
    e.ip(
        &cgw,
        &["-6", "route", "replace", "default", "via", "2001:db8:100::1"],
    );
    let from_new = |e: &EmulateV6, i: usize| {
        e.status().is_some_and(|v| {
            let t = &v["tunnels"][i];
            t["local_outside"] == NEW && t["ike_phase2_state"] == "established"
        })
    };
    let back = e.wait(
        "both tunnels from the new address",
        Duration::from_secs(10),
        &|e| from_new(e, 0) && from_new(e, 1),
    );
    let out = pinger.wait_with_output().unwrap();
    let (tx, rx) = ping_counts(&String::from_utf8_lossy(&out.stdout));
    println!(
        "emulate-aws by certificate over IPv6, customer gateway {CGW} → {NEW} (with DAD): both \
         tunnels up {:.2} s after the address was added; {} of {tx} pings lost (one every 100 ms)",
        back.as_secs_f64(),
        tx - rx
    );
    e.ping("from the new address");
}

/// `config` with both tunnels' lifetimes and rekey margin replaced (lab lifetimes, needing
/// `[lab] allow_short_lifetimes` in the settings).
fn with_lab_lifetimes(config: PathBuf, ike_s: u32, child_s: u32, margin_s: u32) -> PathBuf {
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "\"Phase1LifetimeSeconds\": 28800",
            &format!("\"Phase1LifetimeSeconds\": {ike_s}"),
        )
        .replace(
            "\"Phase2LifetimeSeconds\": 3600",
            &format!("\"Phase2LifetimeSeconds\": {child_s}"),
        )
        .replace(
            "\"RekeyMarginTimeSeconds\": 540",
            &format!("\"RekeyMarginTimeSeconds\": {margin_s}"),
        );
    std::fs::write(&config, text).unwrap();
    config
}

/// Both sides rekey Child and IKE SAs over IPv6 under pings through both tunnels: nothing lost.
/// cgwd: IKE 60 s, Child 20 s, margin 5 s (Child rekeys at 10-15 s, IKE at 50-55 s); charon on
/// tunnel 1 rekeys the Child SA first (8 s) and leaves the IKE SA to cgwd (70 s), on tunnel 2 the
/// reverse (Child 18 s, IKE 40 s) — as tests/rekey_e2e.rs does over IPv4.
#[test]
fn both_sides_rekey_over_ipv6_without_loss() {
    use common::two_aws::{cgwd_rekeys, lost, rekeys_done, with_lifetimes};
    if skip_unless_root_and(&["ping"]) {
        return;
    }
    let lab = StrongSwanLab::start(
        'r',
        INSIDE,
        |d| with_lab_lifetimes(v4_inside_config(d), 60, 20, 5),
        "[lab]\nallow_short_lifetimes = true\n",
        |i, conf| {
            let (ike, child) = if i == 0 {
                (
                    ["rekey_time = 70s", "over_time = 10s", "rand_time = 0s"],
                    ["rekey_time = 8s", "life_time = 30s", "rand_time = 0s"],
                )
            } else {
                (
                    ["rekey_time = 40s", "over_time = 10s", "rand_time = 0s"],
                    ["rekey_time = 18s", "life_time = 25s", "rand_time = 0s"],
                )
            };
            with_lifetimes(&conf, &ike, &child)
        },
    );
    let marks: Vec<usize> = lab.charons.iter().map(|c| c.log().len()).collect();
    let cgwd_mark = lab.log().len();
    let ping = |count: u32, interval: &str, target: &str| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.topo.onprem,
                "ping",
                "-q",
                "-n",
                "-i",
                interval,
                "-W",
                "2",
            ])
            .args(["-c", &count.to_string(), target])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // 65 s: on-prem → VPC every 20 ms (tunnel 1), on-prem → tunnel 2's AWS inside every 50 ms.
    let one = ping(3250, "0.02", VPC_HOST);
    let two = ping(1300, "0.05", AWS_INSIDE_HOST[1]);
    let ((lost1, every1), (lost2, every2)) = (lost(one), lost(two));
    let log = lab.log();
    let during = &log[cgwd_mark..];
    let mut totals = [[0usize; 2]; 2]; // [cgwd, charon][Child, IKE], completed
    for (i, c) in lab.charons.iter().enumerate() {
        let clog = c.log();
        let clog = &clog[marks[i]..];
        let (by_cgwd_child, by_cgwd_ike) = rekeys_done(clog, "generating");
        let (by_charon_child, by_charon_ike) = rekeys_done(clog, "parsed");
        let (asked_child, asked_ike) = cgwd_rekeys(during, i + 1);
        println!(
            "tunnel {} over IPv6: cgwd rekeyed the Child SA {by_cgwd_child} times and the IKE SA \
             {by_cgwd_ike} times (requests in its log {asked_child} / {asked_ike}), charon \
             {by_charon_child} / {by_charon_ike}",
            i + 1
        );
        totals[0][0] += by_cgwd_child;
        totals[0][1] += by_cgwd_ike;
        totals[1][0] += by_charon_child;
        totals[1][1] += by_charon_ike;
    }
    println!(
        "rekeys over IPv6: tunnel 1 3250 pings at one per {every1:.1} ms, {lost1} lost; tunnel 2 \
         1300 pings at one per {every2:.1} ms, {lost2} lost"
    );
    assert_eq!((lost1, lost2), (0, 0), "{}", lab.diag());
    for (side, [child, ike]) in ["cgwd", "charon"].iter().zip(totals) {
        assert!(
            child >= 1 && ike >= 1,
            "{side}: {child} Child, {ike} IKE rekeys{}",
            lab.diag()
        );
    }
    for sign in [
        "IKE SA closed",
        "Child SA down",
        "outbound tunnel changed",
        "without a successful rekey",
    ] {
        assert!(!during.contains(sign), "`{sign}` while rekeying{}", lab.diag());
    }
    lab.stop();
}
