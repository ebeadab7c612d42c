//! Several VPN connections in one cgwd (root; skipped otherwise): 8 connections (16 tunnels) from
//! one customer gateway address to `cgwd emulate-aws` playing 16 AWS endpoints, in the `cgwd demo`
//! namespaces ([`cgwd::demo::Lab`]). Reports the time from `cgwd run` to all 16 tunnels up and
//! cgwd's resident memory per tunnel; checks traffic on every tunnel, a prefix shared by all
//! connections, and `cgwd tunnel down|up CONNECTION N` touching only that tunnel.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cgwd::demo::Lab;
use common::netns::is_root;

const CONFIG: &str = include_str!("../configs/lab.describe.json");
/// The binary under test; `CGWD_BIN` measures another build (e.g. target/release/cgwd).
fn exe() -> String {
    std::env::var("CGWD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cgwd").into())
}

/// `CGWD_CONNECTIONS` (1-64) for other sizes; CI runs 8.
fn connections() -> usize {
    std::env::var("CGWD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(8)
}

/// Connection `c`'s addresses: AWS outside 198.51.100.(101+c) and 203.0.113.(101+c), inside
/// 169.254.(100+2c).4/30 and 169.254.(101+2c).8/30, its own VPN ID.
fn connection(c: usize) -> String {
    CONFIG
        .replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true")
        .replace("198.51.100.11", &format!("198.51.100.{}", 101 + c))
        .replace("203.0.113.12", &format!("203.0.113.{}", 101 + c))
        .replace("169.254.20.", &format!("169.254.{}.", 101 + 2 * c))
        .replace("169.254.10.", &format!("169.254.{}.", 100 + 2 * c))
        .replace("vpn-71310d5967085f652", &vpn_id(c))
}

fn vpn_id(c: usize) -> String {
    format!("vpn-{:017x}", 0xc0de0 + c)
}

fn aws_inside(c: usize, tunnel: usize) -> String {
    if tunnel == 0 {
        format!("169.254.{}.5", 100 + 2 * c)
    } else {
        format!("169.254.{}.9", 101 + 2 * c)
    }
}

/// Connection `c` in a status snapshot (a daemon with one connection lists none: it is the top).
fn conn(v: &serde_json::Value, c: usize) -> &serde_json::Value {
    if v["connections"].is_array() {
        &v["connections"][c]
    } else {
        v
    }
}

struct Setup {
    lab: Lab,
    dir: PathBuf,
}

impl Setup {
    fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(exe())
            .args(["status", "--json", "--socket"])
            .arg(self.lab.dir.join("cgwd.sock"))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// (connection, tunnel) → established, from one snapshot.
    fn established(&self) -> Vec<Vec<bool>> {
        let Some(v) = self.status() else {
            return vec![vec![false; 2]; connections()];
        };
        (0..connections())
            .map(|c| {
                (0..2)
                    .map(|t| {
                        conn(&v, c)["tunnels"][t]["ike_phase2_state"]
                            .as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case("established"))
                    })
                    .collect()
            })
            .collect()
    }

    fn wait(&self, limit: Duration, what: &str, ok: impl Fn(&Self) -> bool) {
        let deadline = cgwd::io::clock::now() + limit;
        while cgwd::io::clock::now() < deadline {
            if ok(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; logs:\n{}", self.logs());
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.lab.dir.join(f)).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<_> = s.lines().map(str::to_string).collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- cgwd ---\n{}\n--- emulate-aws ---\n{}",
            tail(read("cgwd.log")),
            tail(read("aws.log"))
        )
    }

    fn ping(&self, ns: &str, dst: &str) {
        self.lab
            .exec(
                &self.lab.ns(ns),
                &["ping", "-c", "2", "-i", "0.2", "-W", "2", dst],
            )
            .unwrap_or_else(|e| panic!("ping {dst} from {ns}: {e}\n{}", self.logs()));
    }

    /// VmRSS of the `cgwd run` process in the cgw namespace, in KiB.
    fn cgwd_rss_kib(&self) -> Option<u64> {
        let pids = self
            .lab
            .exec(
                &self.lab.ns("cgw"),
                &["sh", "-c", "ip netns pids $(ip netns identify)"],
            )
            .ok()?;
        pids.split_whitespace().find_map(|pid| {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&str> = cmd.split('\0').collect();
            if !(args.first()?.ends_with("cgwd") && args.get(1) == Some(&"run")) {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }
}

fn setup() -> Setup {
    let lab = Lab::create(format!("cgwd-conns-{}", std::process::id()), false).expect("topology");
    let aws = lab.ns("aws");
    for c in 0..connections() {
        for a in [
            format!("198.51.100.{}/24", 101 + c),
            format!("203.0.113.{}/24", 101 + c),
        ] {
            lab.exec(&aws, &["ip", "addr", "add", &a, "dev", "wan0"])
                .expect("AWS outside address");
        }
    }
    let dir = lab.dir.join("connections");
    std::fs::create_dir_all(&dir).unwrap();
    for c in 0..connections() {
        std::fs::write(dir.join(format!("{}.json", vpn_id(c))), connection(c)).unwrap();
    }
    let settings = |role: &str, extra: &str| {
        let p = lab.dir.join(format!("{role}.toml"));
        std::fs::write(
            &p,
            format!(
                "[interface]\nname = \"cgwd0\"\n[local]\naddress = \"192.0.2.10\"\n{extra}[control]\nsocket = \"{}\"\n",
                lab.dir.join(format!("{role}.sock")).display()
            ),
        )
        .unwrap();
    };
    // Every connection routes the VPC: one prefix, 8 connections (ECMP).
    settings("cgwd", "[routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\n");
    settings("aws", "");
    Setup { lab, dir }
}

#[test]
fn eight_connections_sixteen_tunnels_from_one_address() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut s = setup();
    let (dir, aws_settings, cgw_settings) = (
        s.dir.to_string_lossy().into_owned(),
        s.lab.dir.join("aws.toml").to_string_lossy().into_owned(),
        s.lab.dir.join("cgwd.toml").to_string_lossy().into_owned(),
    );
    let aws = s.lab.ns("aws");
    let exe = exe();
    s.lab
        .spawn(
            &aws,
            &[&exe, "emulate-aws", &dir, "--settings", &aws_settings],
            "aws.log",
        )
        .expect("emulate-aws");
    // All 16 AWS endpoints listening before cgwd starts (their control sockets exist).
    let sockets: Vec<PathBuf> = (1..=connections())
        .flat_map(|c| (1..=2).map(move |n| (c, n)))
        .map(|(c, n)| match connections() {
            1 => s.lab.dir.join(format!("aws.sock.{n}")),
            _ => s.lab.dir.join(format!("aws.sock.{c}.{n}")),
        })
        .collect();
    s.wait(Duration::from_secs(20), "16 AWS endpoints", |_| {
        sockets.iter().all(|p| p.exists())
    });

    let cgw = s.lab.ns("cgw");
    let started = cgwd::io::clock::now();
    s.lab
        .spawn(
            &cgw,
            &[&exe, "run", &dir, "--settings", &cgw_settings],
            "cgwd.log",
        )
        .expect("cgwd run");
    s.wait(Duration::from_secs(30), "all 16 tunnels up", |s| {
        s.established().iter().flatten().all(|&up| up)
    });
    let all_up = cgwd::io::clock::now() - started;

    // Traffic on every tunnel: each AWS inside address answers through its own tunnel.
    for c in 0..connections() {
        for t in 0..2 {
            s.ping("cgw", &aws_inside(c, t));
        }
    }
    // The VPC prefix every connection routes: reached through one of them.
    s.ping("cgw", "10.100.0.10");
    let v = s.status().expect("status");
    for c in 0..connections() {
        assert_eq!(conn(&v, c)["vpn_connection_id"], vpn_id(c).as_str());
        for t in 0..2 {
            let traffic = &conn(&v, c)["tunnels"][t]["traffic"];
            assert!(
                traffic["packets_in"].as_u64() >= Some(2) && traffic["packets_out"].as_u64() >= Some(2),
                "connection {c} tunnel {} carried no traffic: {traffic}",
                t + 1
            );
        }
    }
    let routes = s
        .lab
        .exec(&cgw, &["ip", "route", "show", "proto", "198"])
        .unwrap();
    assert!(routes.contains("10.100.0.0/16 dev cgwd0"), "{routes}");
    let rss = s.cgwd_rss_kib().unwrap_or(0);
    let n = connections();
    println!(
        "{n} connections, {} tunnels: all up {} ms after `cgwd run` started; cgwd RSS {} KiB ({} KiB per tunnel)",
        2 * n,
        all_up.as_millis(),
        rss,
        rss / (2 * n as u64)
    );
    if n < 6 {
        return;
    }

    // One tunnel of one connection down by name; the other 15 stay up; then back.
    let target = vpn_id(5);
    let op = |what: &str| {
        let out = Command::new(&exe)
            .args(["tunnel", what, &target, "2", "--socket"])
            .arg(s.lab.dir.join("cgwd.sock"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    op("down");
    s.wait(Duration::from_secs(10), "connection 6 tunnel 2 down", |s| {
        !s.established()[5][1]
    });
    let now = s.established();
    for (c, tunnels) in now.iter().enumerate() {
        for (t, &up) in tunnels.iter().enumerate() {
            assert_eq!(up, (c, t) != (5, 1), "connection {} tunnel {}", c + 1, t + 1);
        }
    }
    s.ping("cgw", &aws_inside(5, 0));
    op("up");
    s.wait(Duration::from_secs(15), "connection 6 tunnel 2 back", |s| {
        s.established()[5][1]
    });
    s.ping("cgw", &aws_inside(5, 1));
}
