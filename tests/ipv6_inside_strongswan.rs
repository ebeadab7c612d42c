//! IPv6 traffic over IPv4 tunnels (`TunnelInsideIpVersion` ipv6), root only: `cgwd run` against two
//! strongSwan charons (kernel-libipsec, ESP in UDP) playing AWS's endpoints with AWS's full
//! algorithm lists and IPv6 traffic selectors (::/0 both ways), between an on-prem namespace and a
//! VPC namespace that have IPv6 addresses only on their side of the tunnels.
//!
//! ```text
//!  onprem 2001:db8:10::10 ── [cgw: cgwd run] 192.0.2.10 ── 198.51.100.11 [a1: charon, ipsec0 fd00:a9fe:10::1/126] ── vpc
//!                                            192.0.2.10 ── 203.0.113.12  [a2: charon, ipsec0 fd00:a9fe:20::1/126] ── vpc
//!  vpc: 2001:db8:100::10 (lo), back to on-prem via a1 (metric 100) or a2 (metric 200)
//! ```
//!
//! Checked: both tunnels up with IPv6 selectors on both sides (charon's SAs list ::/0), cgwd's
//! /126 addresses and its IPv6 VPC route, ICMPv6 probes answered, 20 ping6 with 0 % loss, iperf3 TCP
//! for 3 s (rate printed, never asserted), Child SA rekeys started by each side under ping6 (0 lost,
//! the new SAs' selectors IPv6 again), then tunnel 1 cut silently under a 100 packets/s ping6:
//! cgwd moves outbound to tunnel 2 (the VPC's return route moved at the cut, as AWS does for a dead
//! tunnel), the outage printed and bounded; SIGTERM removes the IPv6 route and addresses.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ipv6::{ip, iperf3, ipv6_on, link6, ping6};
use common::netns::{run, skip_unless_root_and};
use common::strongswan::{AWS_ESP, AWS_IKE, Charon, Conn};
use common::tempdir::TempDir;
use common::two_aws::*;

const AWS_INSIDE6: [&str; 2] = ["fd00:a9fe:10::1/126", "fd00:a9fe:20::1/126"];
const ONPREM_HOST: &str = "2001:db8:10::10";
const ONPREM_NET: &str = "2001:db8:10::/48";
const VPC_HOST: &str = "2001:db8:100::10";

/// The on-prem and VPC namespaces (the [`Topology`] removes its own), removed on drop.
struct Extra(Vec<String>);

impl Drop for Extra {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

#[test]
fn ipv6_traffic_over_ipv4_tunnels_with_strongswan() {
    if skip_unless_root_and(&["iperf3"]) {
        return;
    }
    let id = std::process::id();
    let topo = Topology::create("v6s");
    let extra = Extra(vec![format!("cgwv6s-o{id}"), format!("cgwv6s-v{id}")]);
    let (onprem, vpc) = (extra.0[0].clone(), extra.0[1].clone());
    for ns in [&onprem, &vpc] {
        run("ip", &["netns", "add", ns]).unwrap();
        ip(ns, &["link", "set", "lo", "up"]);
    }
    for ns in [&topo.cgw, &topo.aws[0], &topo.aws[1], &onprem, &vpc] {
        ipv6_on(ns);
    }
    link6(
        (&onprem, "lan0", "2001:db8:10::10/64"),
        (&topo.cgw, "lan0", "2001:db8:10::1/64"),
        &format!("v6so{id}"),
    );
    ip(
        &onprem,
        &["-6", "route", "add", "default", "via", "2001:db8:10::1"],
    );
    ip(
        &vpc,
        &["-6", "addr", "add", &format!("{VPC_HOST}/128"), "dev", "lo"],
    );
    for i in 0..2 {
        let (near, far) = (
            format!("2001:db8:10{}::1", i + 1),
            format!("2001:db8:10{}::10", i + 1),
        );
        link6(
            (&topo.aws[i], "vpc0", &format!("{near}/64")),
            (&vpc, &format!("eth{}", i + 1), &format!("{far}/64")),
            &format!("v6s{i}{id}"),
        );
        ip(
            &topo.aws[i],
            &["-6", "route", "add", "2001:db8:100::/48", "via", &far],
        );
        let metric = (100 * (i + 1)).to_string();
        ip(
            &vpc,
            &["-6", "route", "add", ONPREM_NET, "via", &near, "metric", &metric],
        );
    }

    // AWS's side: IPv6 selectors, every algorithm AWS allows; its inside IPv6 address on ipsec0.
    let dir = TempDir::new("v6in-ss");
    let charons: Vec<Charon> = (0..2)
        .map(|i| {
            let c = Charon::start(&topo.aws[i], &dir.0.join(format!("aws{}", i + 1))).unwrap();
            let mut conn = Conn::new(AWS[i], CGW, PSK[i], AWS_IKE, AWS_ESP);
            conn.local_ts = "::/0".into();
            conn.remote_ts = "::/0".into();
            c.load(&conn).unwrap();
            ip(&topo.aws[i], &["link", "set", "ipsec0", "up"]);
            ip(
                &topo.aws[i],
                &["-6", "addr", "add", AWS_INSIDE6[i], "dev", "ipsec0", "nodad"],
            );
            ip(&topo.aws[i], &["-6", "route", "add", ONPREM_NET, "dev", "ipsec0"]);
            c
        })
        .collect();

    // cgwd with the IPv6-inside file and the VPC's IPv6 prefix.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/ipv6-inside/lab.describe.json");
    let ifname = format!("cgwv6s{}", id % 100_000);
    let sock = dir.0.join("ctl").join("cgwd.sock");
    let settings = dir.0.join("cgwd.toml");
    std::fs::write(
        &settings,
        format!(
            "[interface]\nname = \"{ifname}\"\n[local]\naddress = \"{CGW}\"\n[routing]\n\
             vpc_cidrs = [\"2001:db8:100::/48\"]\n[control]\nsocket = \"{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let log_path = dir.0.join("cgwd.log");
    let mut cgwd = CgwdRun {
        daemon: Daemon(
            Command::new("ip")
                .args(["netns", "exec", &topo.cgw, env!("CARGO_BIN_EXE_cgwd"), "run"])
                .arg(&config)
                .arg("--settings")
                .arg(&settings)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap(),
        ),
        sock: sock.clone(),
        log_path,
    };
    let diag = |c: &CgwdRun| {
        format!(
            "\n--- cgwd ---\n{}\n--- charon 1 ---\n{}",
            c.log(),
            std::fs::read_to_string(dir.0.join("aws1/charon.log")).unwrap_or_default()
        )
    };
    cgwd.wait_both_up(); // also waits for the ICMPv6 probes' answers
    for (i, c) in charons.iter().enumerate() {
        let sas = c.swanctl("--list-sas", &[]).unwrap();
        assert!(
            sas.contains("::/0"),
            "tunnel {}: charon's SA has no IPv6 selector: {sas}",
            i + 1
        );
        assert!(
            !sas.contains("0.0.0.0/0"),
            "tunnel {}: IPv4 selector: {sas}",
            i + 1
        );
    }
    let addrs = run("ip", &["-n", &topo.cgw, "-6", "addr", "show", "dev", &ifname]).unwrap();
    assert!(
        addrs.contains("fd00:a9fe:10::2/126") && addrs.contains("fd00:a9fe:20::2/126"),
        "{addrs}"
    );
    let routes = run("ip", &["-n", &topo.cgw, "-6", "route", "show", "proto", "198"]).unwrap();
    assert!(routes.contains("2001:db8:100::/48"), "{routes}");
    let s = cgwd.status().unwrap();
    println!(
        "negotiated: IKE {:?}, ESP {:?}; probe RTT {:?} / {:?} ms",
        s.tunnels[0].phase1_algorithms,
        s.tunnels[0].phase2_algorithms,
        s.tunnels[0].probe_rtt_ms,
        s.tunnels[1].probe_rtt_ms
    );

    // 1. ping6 on-prem → VPC.
    let (lost20, _) = lost(ping6(&onprem, 20, "0.05", VPC_HOST));
    println!("ping6 on-prem → VPC over IPv4 tunnels: {lost20} of 20 lost");
    assert_eq!(lost20, 0, "{}", diag(&cgwd));

    // 2. iperf3 TCP for 3 s (rate printed, never asserted).
    let common::ipv6::Iperf {
        bytes,
        mbps,
        mss,
        json: iperf,
    } = iperf3(&vpc, VPC_HOST, &onprem, &["-6", "-B", ONPREM_HOST], 3);
    println!(
        "iperf3 TCP over IPv6 on-prem → VPC through cgwd ↔ strongSwan: {bytes} bytes in 3 s, {mbps:.1} Mbit/s \
         (sender MSS {mss})"
    );
    assert!(bytes > 0, "iperf3 moved nothing: {iperf}{}", diag(&cgwd));

    // 3. Child SA rekeys both ways under ping6: cgwd rekeys tunnel 1, charon tunnel 2; the new
    // SAs carry the IPv6 selectors again and no ping is lost.
    let spis = |c: &CgwdRun| {
        c.status()
            .map(|s| [s.tunnels[0].spi_in.clone(), s.tunnels[1].spi_in.clone()])
    };
    let before = spis(&cgwd).unwrap();
    let flow = ping6(&onprem, 150, "0.02", VPC_HOST);
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["rekey", "1", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cgwd rekey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut theirs = charons[1].swanctl_spawn(&["--rekey", "--child", "t"]).unwrap();
    wait_for("both Child SAs rekeyed", Duration::from_secs(10), || {
        spis(&cgwd).is_some_and(|now| now[0] != before[0] && now[1] != before[1])
    });
    let _ = theirs.wait();
    let (lost_rekey, _) = lost(flow);
    println!("Child SA rekeys (cgwd on tunnel 1, charon on tunnel 2) under ping6: {lost_rekey} of 150 lost");
    assert_eq!(lost_rekey, 0, "{}", diag(&cgwd));
    for (i, c) in charons.iter().enumerate() {
        let sas = c.swanctl("--list-sas", &[]).unwrap();
        assert!(
            sas.contains("::/0") && !sas.contains("0.0.0.0/0"),
            "tunnel {} after the rekey: {sas}",
            i + 1
        );
    }

    // 4. Tunnel 1 cut silently under a 100 packets/s ping6; AWS routes the VPC's answers into
    // tunnel 2 (here at once, so the outage measured is cgwd's part).
    let flood = ping6(&onprem, 400, "0.01", VPC_HOST);
    std::thread::sleep(Duration::from_millis(1000));
    cut(&topo.aws[0]);
    ip(
        &vpc,
        &["-6", "route", "del", ONPREM_NET, "via", "2001:db8:101::1"],
    );
    let switched = wait_for("outbound on tunnel 2", Duration::from_secs(10), || {
        cgwd.status().is_some_and(|s| s.outbound == "tunnel-2")
    });
    let (lost_cut, interval) = lost(flood);
    let outage_ms = f64::from(lost_cut) * interval;
    println!(
        "tunnel 1 cut: status showed tunnel-2 after {} ms; {lost_cut} of 400 ping6 lost at one per \
         {interval:.1} ms = {outage_ms:.0} ms outage",
        switched.as_millis()
    );
    assert!(outage_ms <= 3000.0, "outage {outage_ms} ms{}", diag(&cgwd));
    let (after, _) = lost(ping6(&onprem, 20, "0.05", VPC_HOST));
    assert_eq!(after, 0, "tunnel 2 carries on{}", diag(&cgwd));

    // 5. SIGTERM: the IPv6 route and addresses go with cgwd.
    run("kill", &["-TERM", &cgwd.daemon.0.id().to_string()]).unwrap();
    wait_for("cgwd to exit", Duration::from_secs(10), || {
        matches!(cgwd.daemon.0.try_wait(), Ok(Some(_)))
    });
    let routes = run("ip", &["-n", &topo.cgw, "-6", "route", "show", "proto", "198"]).unwrap();
    assert!(routes.trim().is_empty(), "left behind: {routes}");
    drop(charons);
}
