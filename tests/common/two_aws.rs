//! Two strongSwan charons playing AWS's two tunnel endpoints, and the customer gateway namespace where
//! `cgwd run` runs: the topology and helpers shared by the daemon end-to-end tests
//! (`status_e2e.rs`, `lifecycle_e2e.rs`).
//!
//! ```text
//!  cgw: 192.0.2.10 ── veth ── a1: 198.51.100.11, ipsec0 169.254.10.5/30, lo 10.100.0.10 ("VPC")
//!                  └─ veth ── a2: 203.0.113.12,  ipsec0 169.254.20.9/30, lo 10.100.0.10
//! ```

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cgwd::daemon::control::query_status;
use cgwd::daemon::status::{PhaseState, StatusSnapshot};

use super::netns::run;

pub const CGW: &str = "192.0.2.10";
pub const AWS: [&str; 2] = ["198.51.100.11", "203.0.113.12"];
pub const PSK: [&str; 2] = ["lab_tunnel1_psk.AWS1", "lab_tunnel2_psk.AWS2"];
pub const AWS_INSIDE: [&str; 2] = ["169.254.10.5/30", "169.254.20.9/30"];
pub const CGW_INSIDE_NET: [&str; 2] = ["169.254.10.4/30", "169.254.20.8/30"];

pub struct Topology {
    pub cgw: String,
    pub aws: [String; 2],
}

impl Topology {
    /// Namespaces named `cgw<tag>-{c,a,b}<pid>`: `tag` keeps two test files from clashing.
    pub fn create(tag: char) -> Topology {
        let id = std::process::id();
        let t = Topology {
            cgw: format!("cgw{tag}-c{id}"),
            aws: [format!("cgw{tag}-a{id}"), format!("cgw{tag}-b{id}")],
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

    pub fn ns_exec(&self, ns: &str, cmd: &[&str]) -> String {
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

pub fn cut(ns: &str) {
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

pub fn restore(ns: &str) {
    run(
        "ip",
        &["netns", "exec", ns, "nft", "delete", "table", "ip", "cgwdcut"],
    )
    .unwrap();
}
