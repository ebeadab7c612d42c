//! Two strongSwan charons playing AWS's two tunnel endpoints, and the customer gateway namespace where
//! `cgwd run` runs: the topology and helpers shared by the daemon end-to-end tests
//! (`status_e2e.rs`, `lifecycle_e2e.rs`).
//!
//! ```text
//!  cgw: 192.0.2.10 ── veth ── a1: 198.51.100.11, ipsec0 169.254.10.5/30, lo 10.100.0.10 ("VPC")
//!                  └─ veth ── a2: 203.0.113.12,  ipsec0 169.254.20.9/30, lo 10.100.0.10
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cgwd::daemon::control::query_status;
use cgwd::daemon::status::{PhaseState, StatusSnapshot};

use super::netns::{run, sysctl};
use super::strongswan::{Charon, Conn};

pub const CGW: &str = "192.0.2.10";
pub const AWS: [&str; 2] = ["198.51.100.11", "203.0.113.12"];
pub const PSK: [&str; 2] = ["lab_tunnel1_psk.AWS1", "lab_tunnel2_psk.AWS2"];
pub const AWS_INSIDE: [&str; 2] = ["169.254.10.5/30", "169.254.20.9/30"];
pub const CGW_INSIDE_NET: [&str; 2] = ["169.254.10.4/30", "169.254.20.8/30"];

pub struct Topology {
    pub cgw: String,
    pub aws: [String; 2],
    /// The namespace between cgw and both AWS endpoints ([`Topology::create_via`]), if any.
    pub mid: Option<String>,
}

/// The addresses of [`Topology::create_via`]: the customer gateway reaches both AWS endpoints
/// through a middle namespace (a router, a NAT, an impairment relay).
///
/// ```text
///  cgw: <cgw> o0 ── c0 <toward_cgw>  mid  <toward_aws[0]> a0 ── out0 198.51.100.11 :a1
///                                         <toward_aws[1]> b0 ── out0 203.0.113.12  :a2
/// ```
pub struct Middle {
    /// cgwd's address in its namespace: the customer outside address, or a private one behind a NAT.
    pub cgw: &'static str,
    /// The middle namespace's address toward cgw (cgw's gateway).
    pub toward_cgw: &'static str,
    /// Its address on the link to each AWS endpoint (the endpoint's gateway toward the customer).
    pub toward_aws: [&'static str; 2],
    /// The customer gateway's address as AWS sees it (its packets' source, where AWS answers).
    pub public: &'static str,
}

impl Topology {
    /// Namespaces named `cgw<tag>-{c,a,b}<pid>`: `tag` (at most 3 characters) keeps two test files,
    /// or two topologies of one test, from clashing.
    pub fn create(tag: impl std::fmt::Display) -> Topology {
        let id = std::process::id();
        let t = Topology::namespaces(&tag, None);
        for (i, aws) in AWS.iter().enumerate() {
            let (c, a) = (format!("o{i}"), "out0");
            let tmp = format!("v{tag}{i}{id}");
            run(
                "ip",
                &[
                    "link", "add", &c, "netns", &t.cgw, "type", "veth", "peer", "name", &tmp, "netns",
                    &t.aws[i],
                ],
            )
            .unwrap();
            run("ip", &["-n", &t.aws[i], "link", "set", &tmp, "name", a]).unwrap();
            run(
                "ip",
                &["-n", &t.cgw, "addr", "add", &format!("{CGW}/32"), "dev", &c],
            )
            .unwrap();
            run("ip", &["-n", &t.cgw, "link", "set", &c, "up"]).unwrap();
            run("ip", &["-n", &t.cgw, "route", "add", aws, "dev", &c, "src", CGW]).unwrap();
            run(
                "ip",
                &["-n", &t.aws[i], "addr", "add", &format!("{aws}/32"), "dev", a],
            )
            .unwrap();
            run("ip", &["-n", &t.aws[i], "link", "set", a, "up"]).unwrap();
            run(
                "ip",
                &["-n", &t.aws[i], "route", "add", CGW, "dev", a, "src", aws],
            )
            .unwrap();
            // The "VPC" host address, answered by both endpoints (as the VPC answers either tunnel).
            run(
                "ip",
                &["-n", &t.aws[i], "addr", "add", "10.100.0.10/32", "dev", "lo"],
            )
            .unwrap();
        }
        t
    }

    /// The namespaces (a middle one if `mid`), each with `lo` up and IPv6 off; removed on drop.
    fn namespaces(tag: &dyn std::fmt::Display, mid: Option<char>) -> Topology {
        let id = std::process::id();
        let t = Topology {
            cgw: format!("cgw{tag}-c{id}"),
            aws: [format!("cgw{tag}-a{id}"), format!("cgw{tag}-b{id}")],
            mid: mid.map(|m| format!("cgw{tag}-{m}{id}")),
        };
        for ns in t.all() {
            run("ip", &["netns", "add", ns]).unwrap();
            run("ip", &["-n", ns, "link", "set", "lo", "up"]).unwrap();
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1");
        }
        t
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.cgw, &self.aws[0], &self.aws[1]]
            .into_iter()
            .chain(self.mid.as_ref())
    }

    /// cgw, a middle namespace `mid` (forwarding on) and the two AWS endpoints, addressed as `m`
    /// says; tag as in [`Topology::create`]. Both AWS endpoints answer the "VPC" address
    /// 10.100.0.10 as in [`Topology::create`].
    pub fn create_via(tag: impl std::fmt::Display, m: &Middle) -> Topology {
        let t = Topology::namespaces(&tag, Some('m'));
        let (id, mid) = (std::process::id(), t.mid.clone().unwrap_or_default());
        p2p(
            (&t.cgw, "o0", m.cgw),
            (&mid, "c0", m.toward_cgw),
            &format!("v{tag}c{id}"),
        );
        for (i, aws) in AWS.iter().enumerate() {
            let gw = m.toward_aws[i];
            p2p(
                (&mid, ["a0", "b0"][i], gw),
                (&t.aws[i], "out0", aws),
                &format!("v{tag}{i}{id}"),
            );
            run("ip", &["-n", &t.cgw, "route", "add", aws, "via", m.toward_cgw]).unwrap();
            if m.public != gw {
                run("ip", &["-n", &t.aws[i], "route", "add", m.public, "via", gw]).unwrap();
            }
            run(
                "ip",
                &["-n", &t.aws[i], "addr", "add", "10.100.0.10/32", "dev", "lo"],
            )
            .unwrap();
        }
        sysctl(&mid, "net.ipv4.ip_forward=1");
        t
    }

    pub fn ns_exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run("ip", &args).unwrap_or_else(|e| e.to_string())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.all() {
            if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A veth pair: `a.1` in namespace `a.0` and `b.1` in `b.0`, each end up with its address `.2`
/// (a /32) and a route to the other end's; `tmp` (unique on the host) names b's end until it moves.
pub fn p2p(a: (&str, &str, &str), b: (&str, &str, &str), tmp: &str) {
    run(
        "ip",
        &[
            "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", tmp, "netns", b.0,
        ],
    )
    .unwrap();
    run("ip", &["-n", b.0, "link", "set", tmp, "name", b.1]).unwrap();
    for ((ns, dev, addr), peer) in [(a, b.2), (b, a.2)] {
        run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{addr}/32"), "dev", dev],
        )
        .unwrap();
        run("ip", &["-n", ns, "link", "set", dev, "up"]).unwrap();
        run("ip", &["-n", ns, "route", "add", peer, "dev", dev, "src", addr]).unwrap();
    }
}

/// The cgwd process; killed on drop if the test failed before SIGTERM.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = cgwd::io::clock::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

pub fn status(sock: &Path) -> Option<StatusSnapshot> {
    query_status(sock).ok()
}

pub fn established(s: &StatusSnapshot, tunnel: usize) -> bool {
    s.tunnels[tunnel].ike_phase1_state == PhaseState::Established
        && s.tunnels[tunnel].ike_phase2_state == PhaseState::Established
}

/// Runs `ping -i 0.01 -c count` in the cgw namespace in the background.
pub fn ping_flood(ns: &str, count: u32) -> Child {
    ping_every(ns, count, "0.01")
}

/// Runs `ping -i interval -c count` to the "VPC" host in the cgw namespace in the background; a
/// reply may take up to 2 s (delayed links) before it counts as lost.
pub fn ping_every(ns: &str, count: u32, interval: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-q", "-n", "-i", interval, "-W", "2"])
        .args(["-c", &count.to_string(), "10.100.0.10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// charon's swanctl.conf with `ike` added to the IKE SA's settings and `child` to the Child SA's
/// (`rekey_time = 20s` ... one per line).
pub fn with_lifetimes(conf: &str, ike: &[&str], child: &[&str]) -> String {
    let ike: String = ike.iter().map(|l| format!("\n        {l}")).collect();
    let child: String = child.iter().map(|l| format!("\n                {l}")).collect();
    conf.replacen("reauth_time = 0", &format!("reauth_time = 0{ike}"), 1)
        .replacen("start_action = none", &format!("start_action = none{child}"), 1)
}

/// One charon per AWS endpoint (files under `dir/aws1`, `dir/aws2`), loaded with `edit(i, conf)` of
/// the AWS-like swanctl.conf (AES-GCM, DPD every 10 s), its TUN holding AWS's inside address with a
/// route to the other tunnel's /30 (the VPC answers on either tunnel).
pub fn start_charons(topo: &Topology, dir: &Path, edit: impl Fn(usize, String) -> String) -> Vec<Charon> {
    start_charons_with(topo, dir, "", edit)
}

/// [`start_charons`] with `extra` lines in the `charon { }` section of strongswan.conf.
pub fn start_charons_with(
    topo: &Topology,
    dir: &Path,
    extra: &str,
    edit: impl Fn(usize, String) -> String,
) -> Vec<Charon> {
    (0..2)
        .map(|i| {
            let c = Charon::start_with(&topo.aws[i], &dir.join(format!("aws{}", i + 1)), extra).unwrap();
            let mut conn = Conn::new(
                AWS[i],
                CGW,
                PSK[i],
                "aes256gcm16-prfsha256-ecp256",
                "aes256gcm16-ecp256",
            );
            conn.dpd_delay_s = 10;
            let file = c.dir.join("swanctl.conf");
            std::fs::write(&file, edit(i, conn.swanctl_conf())).unwrap();
            let file = file.display().to_string();
            c.swanctl("--load-all", &["--noprompt", "--file", &file]).unwrap();
            aws_inside(topo, i);
            c
        })
        .collect()
}

/// AWS's inside address on charon's ipsec0 in `topo.aws[i]`, and the route back to the other
/// tunnel's customer inside network (what a PSK or certificate lab charon needs alike).
pub fn aws_inside(topo: &Topology, i: usize) {
    run("ip", &["-n", &topo.aws[i], "link", "set", "ipsec0", "up"]).unwrap();
    run(
        "ip",
        &["-n", &topo.aws[i], "addr", "add", AWS_INSIDE[i], "dev", "ipsec0"],
    )
    .unwrap();
    run(
        "ip",
        &[
            "-n",
            &topo.aws[i],
            "route",
            "add",
            CGW_INSIDE_NET[1 - i],
            "dev",
            "ipsec0",
        ],
    )
    .unwrap();
}

/// configs/lab.describe.json with both tunnels' lifetimes, margin and fuzz replaced, written to
/// `dir/vpn.json` (needs `[lab] allow_short_lifetimes = true` in the settings below AWS's minimums).
pub fn lab_config(dir: &Path, ike_s: u32, child_s: u32, margin_s: u32, fuzz_percent: u32) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let text = std::fs::read_to_string(sample)
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
        )
        .replace(
            "\"RekeyFuzzPercentage\": 100",
            &format!("\"RekeyFuzzPercentage\": {fuzz_percent}"),
        );
    let path = dir.join("vpn.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// `cgwd run` in the cgw namespace with `config`, logging to `dir/cgwd.log`, its control socket
/// under `dir`; `extra_settings` is appended to the settings file.
pub struct CgwdRun {
    pub daemon: Daemon,
    pub sock: PathBuf,
    pub log_path: PathBuf,
}

impl CgwdRun {
    pub fn start(
        topo: &Topology,
        dir: &Path,
        tag: impl std::fmt::Display,
        config: &Path,
        extra_settings: &str,
    ) -> CgwdRun {
        CgwdRun::start_at(topo, dir, tag, config, CGW, extra_settings)
    }

    /// [`CgwdRun::start`] with `local.address` = `local` (cgwd behind a NAT: its private address).
    pub fn start_at(
        topo: &Topology,
        dir: &Path,
        tag: impl std::fmt::Display,
        config: &Path,
        local: &str,
        extra_settings: &str,
    ) -> CgwdRun {
        let ifname = format!("cgw{tag}{}", std::process::id() % 100_000);
        let sock = dir.join("ctl").join("cgwd.sock");
        let settings = dir.join("cgwd.toml");
        std::fs::write(
            &settings,
            format!(
                "[interface]\nname = \"{ifname}\"\n[local]\naddress = \"{local}\"\n\
                 [routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\n[control]\nsocket = \"{}\"\n\
                 [bgp]\nspeaker = \"off\"\n{extra_settings}",
                sock.display()
            ),
        )
        .unwrap();
        let log_path = dir.join("cgwd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let daemon = Daemon(
            Command::new("ip")
                .args(["netns", "exec", &topo.cgw, env!("CARGO_BIN_EXE_cgwd"), "run"])
                .arg(config)
                .arg("--settings")
                .arg(&settings)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        CgwdRun {
            daemon,
            sock,
            log_path,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn status(&self) -> Option<StatusSnapshot> {
        status(&self.sock)
    }

    /// Both tunnels established and answering probes (panics with the log if cgwd exits).
    pub fn wait_both_up(&mut self) {
        let (sock, log_path) = (self.sock.clone(), self.log_path.clone());
        let daemon = &mut self.daemon;
        wait_for("both tunnels established", Duration::from_secs(20), || {
            if let Ok(Some(code)) = daemon.0.try_wait() {
                panic!(
                    "cgwd exited with {code}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            status(&sock).is_some_and(|s| established(&s, 0) && established(&s, 1))
        });
        wait_for("probe replies", Duration::from_secs(5), || {
            status(&sock).is_some_and(|s| s.tunnels.iter().all(|t| t.probe_rtt_ms.is_some()))
        });
    }
}

/// Waits until charon lists exactly one IKE SA and one installed Child SA, and asserts its SPIs are
/// the ones `cgwd status` reports for `tunnel` (0 or 1).
pub fn assert_one_matching_sa(charon: &Charon, cgwd: &CgwdRun, tunnel: usize) {
    let mut listed = String::new();
    wait_for(
        "a single IKE and Child SA on charon",
        Duration::from_secs(15),
        || {
            listed = charon.list_sas();
            listed.matches("ESTABLISHED").count() == 1 && listed.matches("INSTALLED").count() == 1
        },
    );
    let charon_spis = super::strongswan::parse_list_sas(&listed)
        .child_spis
        .expect("charon lists SPIs");
    let hex = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let mut last = None;
    // cgwd's snapshot is refreshed every 500 ms: give it a moment to catch up with charon.
    let ok = (0..20).any(|_| {
        let s = cgwd.status().expect("cgwd status");
        let t = &s.tunnels[tunnel];
        let pair = (hex(&t.spi_in), hex(&t.spi_out));
        last = Some(pair);
        if pair == (Some(charon_spis.1), Some(charon_spis.0)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
        false
    });
    assert!(ok, "tunnel {}: cgwd {:?}, charon\n{listed}", tunnel + 1, last);
}

/// (packets lost, milliseconds between pings) of a finished ping, from its summary line
/// ("400 packets transmitted, 352 received, 12% packet loss, time 5123ms"): ping paces slower than
/// `-i` asks, so the real interval converts losses into an outage duration.
pub fn lost(ping: Child) -> (u32, f64) {
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping summary missing: {text}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (sent, received, time_ms) = (nums[0], nums[1], *nums.last().unwrap());
    (sent - received, f64::from(time_ms) / f64::from(sent.max(2) - 1))
}

/// Cuts `ns` (an AWS endpoint) off silently: IKE and ESP-in-UDP over IPv4 dropped both ways.
pub fn cut(ns: &str) {
    cut_family(ns, "ip");
}

/// [`cut`] for an endpoint reached over IPv6 outside addresses.
pub fn cut_ipv6(ns: &str) {
    cut_family(ns, "ip6");
}

/// [`cut`] for the nftables `family` (`ip`, `ip6`).
fn cut_family(ns: &str, family: &str) {
    for rule in [
        "add table {f} cgwdcut",
        "add chain {f} cgwdcut in { type filter hook input priority 0 ; }",
        "add chain {f} cgwdcut out { type filter hook output priority 0 ; }",
        "add rule {f} cgwdcut in udp dport { 500, 4500 } drop",
        "add rule {f} cgwdcut out udp sport { 500, 4500 } drop",
    ] {
        nft(ns, &rule.replacen("{f}", family, 1));
    }
}

pub fn restore(ns: &str) {
    nft(ns, "delete table ip cgwdcut");
}

/// Holds back IKE (port 500, and port 4500 datagrams with the non-ESP marker) in both directions in
/// `ns`, ESP untouched: requests sent meanwhile are lost and retransmitted later. This kernel has
/// no netem to delay them instead; see [`let_ike_out`] and [`release_ike`].
pub fn hold_ike(ns: &str) {
    for rule in [
        "add table ip cgwdhold",
        "add chain ip cgwdhold in { type filter hook input priority 0 ; }",
        "add chain ip cgwdhold out { type filter hook output priority 0 ; }",
        "add rule ip cgwdhold in udp sport 500 drop",
        "add rule ip cgwdhold out udp dport 500 drop",
        "add rule ip cgwdhold in udp sport 4500 @th,64,32 0 drop",
        "add rule ip cgwdhold out udp dport 4500 @th,64,32 0 drop",
    ] {
        nft(ns, rule);
    }
}

/// Lets IKE from `ns` out again while what comes in is still held: the peer gets `ns`'s
/// (retransmitted) request while its own is unanswered, and answers into the hold.
pub fn let_ike_out(ns: &str) {
    nft(ns, "flush chain ip cgwdhold out");
}

/// Lets IKE into `ns` again while what goes out is still held (the mirror of [`let_ike_out`]).
pub fn let_ike_in(ns: &str) {
    nft(ns, "flush chain ip cgwdhold in");
}

/// Holds IKE leaving `ns` again (after [`let_ike_out`]).
pub fn hold_ike_out(ns: &str) {
    nft(ns, "add rule ip cgwdhold out udp dport 500 drop");
    nft(ns, "add rule ip cgwdhold out udp dport 4500 @th,64,32 0 drop");
}

/// Holds IKE entering `ns` again (after [`let_ike_in`]).
pub fn hold_ike_in(ns: &str) {
    nft(ns, "add rule ip cgwdhold in udp sport 500 drop");
    nft(ns, "add rule ip cgwdhold in udp sport 4500 @th,64,32 0 drop");
}

/// Drops ESP (UDP 4500 without the non-ESP marker) in both directions in `ns`, IKE untouched: both
/// ends then hear nothing but IKE, so each checks the other's liveness (DPD).
pub fn block_esp(ns: &str) {
    for rule in [
        "add table ip cgwdesp",
        "add chain ip cgwdesp in { type filter hook input priority 0 ; }",
        "add chain ip cgwdesp out { type filter hook output priority 0 ; }",
        "add rule ip cgwdesp in udp sport 4500 @th,64,32 != 0 drop",
        "add rule ip cgwdesp out udp dport 4500 @th,64,32 != 0 drop",
    ] {
        nft(ns, rule);
    }
}

pub fn release_ike(ns: &str) {
    nft(ns, "delete table ip cgwdhold");
}

/// Drops IKE requests (UDP 4500, non-ESP marker, IKE header R flag clear) arriving in `ns`;
/// responses pass. Nothing the other side asks reaches `ns`, so `ns`'s own DPD comes due while it
/// still hears answers.
pub fn drop_ike_requests_in(ns: &str) {
    for rule in [
        "add table ip cgwdreq",
        "add chain ip cgwdreq in { type filter hook input priority 0 ; }",
        // R flag: bit 2 of the IKE header's flags octet, UDP payload octet 4 + 19.
        "add rule ip cgwdreq in udp dport 4500 @th,64,32 0 @th,250,1 0 drop",
    ] {
        nft(ns, rule);
    }
}

pub fn allow_ike_requests_in(ns: &str) {
    nft(ns, "delete table ip cgwdreq");
}

/// `nft <rule>` in `ns` (the rule split at spaces).
pub fn nft(ns: &str, rule: &str) {
    let mut args = vec!["netns", "exec", ns, "nft"];
    args.extend(rule.split(' '));
    run("ip", &args).unwrap();
}

/// The packet counts of the `counter` statements of nftables table `table` ("ip6 name") in `ns`,
/// in rule order (empty if the table is missing).
pub fn nft_counters(ns: &str, table: &str) -> Vec<u64> {
    let mut args = vec!["netns", "exec", ns, "nft", "list", "table"];
    args.extend(table.split(' '));
    run("ip", &args)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

/// CREATE_CHILD_SA requests charon sent (`generating`) or received (`parsed`) in `log`, retries
/// included: (Child SA rekeys, IKE SA rekeys).
pub fn charon_rekeys(log: &str, verb: &str) -> (usize, usize) {
    let needle = format!("{verb} CREATE_CHILD_SA request");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
    let child = lines.iter().filter(|l| l.contains("N(REKEY_SA)")).count();
    let ike = lines.iter().filter(|l| !l.contains("TSi")).count();
    (child, ike)
}

/// Rekeys cgwd started in `log` for `tunnel` (1 or 2): (Child SA, IKE SA).
pub fn cgwd_rekeys(log: &str, tunnel: usize) -> (usize, usize) {
    let mine = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains(&format!("tunnel {tunnel}")))
            .count()
    };
    (
        mine("rekeying the Child SA (cgwd initiates)"),
        mine("rekeying the IKE SA (cgwd initiates)"),
    )
}

/// Rekeys that succeeded, from charon's `log`: CREATE_CHILD_SA responses charon sent (`generating`:
/// the peer's rekeys) or received (`parsed`: its own) carrying a new SA (with or without a KE
/// payload) rather than an error: (Child SA rekeys, IKE SA rekeys).
pub fn rekeys_done(log: &str, verb: &str) -> (usize, usize) {
    let needle = format!("{verb} CREATE_CHILD_SA response");
    let done: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&needle) && l.contains("[ SA No"))
        .collect();
    let child = done.iter().filter(|l| l.contains("TSi")).count();
    (child, done.len() - child)
}

/// The IKE or ESP suite of a `selected proposal:` line, without its DH group (what "the suite
/// changed" compares).
pub fn suites(log: &str, ike: bool) -> Vec<String> {
    let prefix = if ike {
        "selected proposal: IKE:"
    } else {
        "selected proposal: ESP:"
    };
    log.lines()
        .filter_map(|l| l.split(prefix).nth(1))
        .map(|s| {
            s.split('/')
                .filter(|t| !t.starts_with("MODP_") && !t.starts_with("ECP_") && !t.contains("EXT_SEQ"))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

/// Writes `text` to `path`, creating its directory; returns the path.
pub fn write_file(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// configs/lab.describe.json as AWS describes a certificate connection: the keys replaced by the
/// placeholder and a CertificateArn on each tunnel's telemetry.
pub fn certificate_config(dir: &Path) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    certificate_config_of(&sample, dir)
}

/// An `[auth]` table for one side's settings: a P-256 certificate for `cn` from `ca`, its key and
/// the CA, written under `dir` as `name`.pem/.key and ca.pem.
pub fn auth_settings(ca: &super::pki::Ca, dir: &Path, name: &str, cn: &str) -> String {
    let leaf = ca.issue(&super::pki::PKCS_ECDSA_P256_SHA256, cn, super::pki::Flaw::None);
    format!(
        "[auth]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n",
        write_file(&dir.join(format!("{name}.pem")), &leaf.cert).display(),
        write_file(&dir.join(format!("{name}.key")), &leaf.key).display(),
        write_file(&dir.join("ca.pem"), &ca.pem).display()
    )
}

/// `sample` (a describe JSON with the lab's keys) as AWS describes a certificate connection,
/// written to `dir`/vpn.json.
pub fn certificate_config_of(sample: &Path, dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(sample).unwrap();
    for psk in PSK {
        text = text.replace(psk, "REDACTED");
    }
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (i, t) in v["VpnConnections"][0]["VgwTelemetry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        t["CertificateArn"] =
            format!("arn:aws:acm:us-east-1:111122223333:certificate/tunnel-{}", i + 1).into();
    }
    write_file(&dir.join("vpn.json"), &serde_json::to_string_pretty(&v).unwrap())
}
