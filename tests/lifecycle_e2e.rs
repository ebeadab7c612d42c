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
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cgwd::daemon::control::query_status;
use cgwd::daemon::status::{PhaseState, StatusSnapshot};
use common::netns::{run, skip_unless_root};
use common::strongswan::{Charon, Conn, parse_list_sas};

const CGW: &str = "192.0.2.10";
const AWS: [&str; 2] = ["198.51.100.11", "203.0.113.12"];
const PSK: [&str; 2] = ["lab_tunnel1_psk.AWS1", "lab_tunnel2_psk.AWS2"];
const AWS_INSIDE: [&str; 2] = ["169.254.10.5/30", "169.254.20.9/30"];
const CGW_INSIDE_NET: [&str; 2] = ["169.254.10.4/30", "169.254.20.8/30"];

struct Topology {
    cgw: String,
    aws: [String; 2],
}

impl Topology {
    fn create() -> Topology {
        let id = std::process::id();
        let t = Topology {
            cgw: format!("cgwl-c{id}"),
            aws: [format!("cgwl-a{id}"), format!("cgwl-b{id}")],
        };
        for ns in [&t.cgw, &t.aws[0], &t.aws[1]] {
            run("ip", &["netns", "add", ns]).unwrap();
            run("ip", &["-n", ns, "link", "set", "lo", "up"]).unwrap();
            let _ = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ],
            );
        }
        for (i, aws) in AWS.iter().enumerate() {
            let (c, a) = (format!("o{i}"), "out0");
            let tmp = format!("vl{i}{id}");
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

    fn ns_exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run("ip", &args).unwrap_or_else(|e| e.to_string())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.cgw, &self.aws[0], &self.aws[1]] {
            if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// The cgwd process; killed on drop if the test failed before SIGTERM.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
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

fn status(sock: &Path) -> Option<StatusSnapshot> {
    query_status(sock).ok()
}

fn established(s: &StatusSnapshot, tunnel: usize) -> bool {
    s.tunnels[tunnel].ike_phase1_state == PhaseState::Established
        && s.tunnels[tunnel].ike_phase2_state == PhaseState::Established
}

/// Runs `ping -i 0.01 -c count` in the cgw namespace in the background.
fn ping_flood(ns: &str, count: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-q", "-n", "-i", "0.01", "-W", "1"])
        .args(["-c", &count.to_string(), "10.100.0.10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// (packets lost, milliseconds between pings) of a finished ping, from its summary line
/// ("400 packets transmitted, 352 received, 12% packet loss, time 5123ms"): ping paces slower than
/// `-i` asks, so the real interval converts losses into an outage duration.
fn lost(ping: Child) -> (u32, f64) {
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

fn cut(ns: &str) {
    for rule in [
        "add table ip cgwdcut",
        "add chain ip cgwdcut in { type filter hook input priority 0 ; }",
        "add chain ip cgwdcut out { type filter hook output priority 0 ; }",
        "add rule ip cgwdcut in udp dport { 500, 4500 } drop",
        "add rule ip cgwdcut out udp sport { 500, 4500 } drop",
    ] {
        let mut args = vec!["netns", "exec", ns, "nft"];
        args.extend(rule.split(' '));
        run("ip", &args).unwrap();
    }
}

fn restore(ns: &str) {
    run(
        "ip",
        &["netns", "exec", ns, "nft", "delete", "table", "ip", "cgwdcut"],
    )
    .unwrap();
}

fn hex_spi(s: &Option<String>) -> Option<u32> {
    let s = s.as_deref()?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

#[test]
fn rekeys_under_traffic_lose_nothing_and_dpd_recovers() {
    if skip_unless_root() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("SKIPPED: needs nftables");
        return;
    }
    let topo = Topology::create();
    let dir = std::env::temp_dir().join(format!("cgwd-life-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let charons: Vec<Charon> = (0..2)
        .map(|i| {
            let c = Charon::start(&topo.aws[i], &dir.join(format!("aws{}", i + 1))).unwrap();
            let mut conn = Conn::new(AWS[i], CGW, PSK[i], "aes256gcm16-prfsha256-ecp256", "aes256gcm16-ecp256");
            conn.dpd_delay_s = 10;
            // Child SA rekeyed every 20 s (life 30 s), IKE SA every 60 s: AWS-style make-before-break
            // from the AWS side, as fast as charon allows without overlapping rekeys.
            let conf = conn
                .swanctl_conf()
                .replace(
                    "reauth_time = 0",
                    "reauth_time = 0\n        rekey_time = 60s\n        over_time = 10s\n        rand_time = 0s",
                )
                .replace(
                    "start_action = none",
                    "start_action = none\n                rekey_time = 20s\n                life_time = 30s\n                rand_time = 0s",
                );
            let file = dir.join(format!("aws{}", i + 1)).join("swanctl.conf");
            std::fs::write(&file, conf).unwrap();
            let file = file.display().to_string();
            c.swanctl("--load-all", &["--noprompt", "--file", &file]).unwrap();
            run("ip", &["-n", &topo.aws[i], "link", "set", "ipsec0", "up"]).unwrap();
            run(
                "ip",
                &["-n", &topo.aws[i], "addr", "add", AWS_INSIDE[i], "dev", "ipsec0"],
            )
            .unwrap();
            run(
                "ip",
                &["-n", &topo.aws[i], "route", "add", CGW_INSIDE_NET[1 - i], "dev", "ipsec0"],
            )
            .unwrap();
            c
        })
        .collect();

    let ifname = format!("cgwl{}", std::process::id() % 100_000);
    let sock = dir.join("ctl").join("cgwd.sock");
    let settings = dir.join("cgwd.toml");
    std::fs::write(
        &settings,
        format!(
            "[interface]\nname = \"{ifname}\"\n[local]\naddress = \"{CGW}\"\n\
             [routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\n[control]\nsocket = \"{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let config: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let log = std::fs::File::create(dir.join("cgwd.log")).unwrap();
    let daemon = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &topo.cgw, env!("CARGO_BIN_EXE_cgwd"), "run"])
            .arg(&config)
            .arg("--settings")
            .arg(&settings)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let cgwd_log = || std::fs::read_to_string(dir.join("cgwd.log")).unwrap_or_default();
    let mut daemon = daemon;
    wait_for("both tunnels established", Duration::from_secs(20), || {
        if let Ok(Some(code)) = daemon.0.try_wait() {
            panic!("cgwd exited with {code}: {}", cgwd_log());
        }
        status(&sock).is_some_and(|s| established(&s, 0) && established(&s, 1))
    });
    wait_for("probe replies", Duration::from_secs(5), || {
        status(&sock).is_some_and(|s| s.tunnels.iter().all(|t| t.probe_rtt_ms.is_some()))
    });

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

    // Exactly one Child SA per tunnel on charon's side, the one cgwd reports. Not in the middle of
    // a rekey: wait until charon lists a single Child SA.
    for (i, c) in charons.iter().enumerate() {
        let mut listed = String::new();
        wait_for("a single Child SA on charon", Duration::from_secs(10), || {
            listed = c.list_sas();
            listed.matches("INSTALLED").count() == 1
        });
        let charon_spis = parse_list_sas(&listed).child_spis.expect("charon lists SPIs");
        let s = status(&sock).unwrap();
        let t = &s.tunnels[i];
        assert_eq!(
            (hex_spi(&t.spi_in), hex_spi(&t.spi_out)),
            (Some(charon_spis.1), Some(charon_spis.0)),
            "tunnel {}: cgwd {:?}/{:?}, charon\n{listed}",
            i + 1,
            t.spi_in,
            t.spi_out
        );
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
    drop(daemon);
    drop(charons);
    let _ = std::fs::remove_dir_all(&dir);
}
