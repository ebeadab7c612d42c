//! Several VPN connections in one cgwd (root; skipped otherwise): 8 connections (16 tunnels) from
//! one customer gateway address to `cgwd emulate-aws` playing 16 AWS endpoints, in the `cgwd demo`
//! namespaces ([`cgwd::demo::Lab`]). Reports the time from `cgwd run` to all 16 tunnels up and
//! cgwd's resident memory per tunnel; checks traffic on every tunnel, a prefix shared by all
//! connections, and `cgwd tunnel down|up CONNECTION N` touching only that tunnel. A live reload
//! adds, changes and removes connections while pings through an unchanged one lose nothing.

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
        common::lab::wait_for(limit, what, || ok(self), || self.logs());
    }

    fn logs(&self) -> String {
        common::lab::tail(&self.lab.dir, "cgwd.log") + &common::lab::tail(&self.lab.dir, "aws.log")
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
    setup_named("conns", connections())
}

/// The lab with AWS outside addresses for `aws` connections and their files in `connections/`.
fn setup_named(name: &str, count: usize) -> Setup {
    let lab = Lab::create(format!("cgwd-{name}-{}", std::process::id()), false).expect("topology");
    let aws = lab.ns("aws");
    for c in 0..count {
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
    for c in 0..count {
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

/// Connection `c`'s tunnel SPIs (inbound) from a snapshot.
fn spis(v: &serde_json::Value, c: usize) -> Vec<String> {
    (0..2)
        .map(|t| {
            conn(v, c)["tunnels"][t]["spi_in"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The snapshot's connection named `id`.
fn by_id<'a>(v: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    v["connections"]
        .as_array()?
        .iter()
        .find(|c| c["vpn_connection_id"] == id)
}

fn both_up(c: &serde_json::Value) -> bool {
    (0..2).all(|t| {
        c["tunnels"][t]["ike_phase2_state"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("established"))
    })
}

#[test]
fn reload_adds_changes_and_removes_connections_without_losing_a_ping() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    // AWS plays 5 connections; cgwd starts with the first 4.
    let mut s = setup_named("reload", 5);
    let exe = exe();
    let aws_dir = s.lab.dir.join("aws-connections");
    std::fs::rename(&s.dir, &aws_dir).unwrap();
    std::fs::create_dir_all(&s.dir).unwrap();
    let file = |c: usize| s.dir.join(format!("{}.json", vpn_id(c)));
    for c in 0..4 {
        std::fs::write(file(c), connection(c)).unwrap();
    }
    let (aws_settings, cgw_settings) = (
        s.lab.dir.join("aws.toml").to_string_lossy().into_owned(),
        s.lab.dir.join("cgwd.toml").to_string_lossy().into_owned(),
    );
    let (aws_ns, cgw_ns) = (s.lab.ns("aws"), s.lab.ns("cgw"));
    s.lab
        .spawn(
            &aws_ns,
            &[
                &exe,
                "emulate-aws",
                &aws_dir.to_string_lossy(),
                "--settings",
                &aws_settings,
            ],
            "aws.log",
        )
        .expect("emulate-aws");
    let sockets: Vec<PathBuf> = (1..=5)
        .flat_map(|c| (1..=2).map(move |n| (c, n)))
        .map(|(c, n)| s.lab.dir.join(format!("aws.sock.{c}.{n}")))
        .collect();
    s.wait(Duration::from_secs(20), "10 AWS endpoints", |_| {
        sockets.iter().all(|p| p.exists())
    });
    s.lab
        .spawn(
            &cgw_ns,
            &[&exe, "run", &s.dir.to_string_lossy(), "--settings", &cgw_settings],
            "cgwd.log",
        )
        .expect("cgwd run");
    s.wait(Duration::from_secs(30), "4 connections up", |s| {
        s.status()
            .is_some_and(|v| (0..4).all(|c| by_id(&v, &vpn_id(c)).is_some_and(both_up)))
    });
    let before = s.status().unwrap();
    let (kept, changed) = (spis(&before, 0), spis(&before, 1));

    // 20 pings a second through the unchanged connection 1 for the whole reload.
    s.lab
        .spawn(
            &cgw_ns,
            &["ping", "-i", "0.05", "-c", "200", "-W", "1", &aws_inside(0, 0)],
            "ping.log",
        )
        .expect("ping");
    std::thread::sleep(Duration::from_secs(2));

    // Connection 2's Child SA lifetimes change (both tunnels), connection 3 gets its own VPC
    // route (a settings change), connection 4 goes, connection 5 comes.
    std::fs::write(
        file(1),
        connection(1).replace(
            "\"Phase2LifetimeSeconds\": 3600",
            "\"Phase2LifetimeSeconds\": 1800",
        ),
    )
    .unwrap();
    std::fs::remove_file(file(3)).unwrap();
    std::fs::write(file(4), connection(4)).unwrap();
    let mut toml = std::fs::read_to_string(&cgw_settings).unwrap();
    toml.push_str(&format!(
        "[connections.{}.routing]\nvpc_cidrs = [\"10.100.0.0/16\", \"10.101.0.0/16\"]\n",
        vpn_id(2)
    ));
    std::fs::write(&cgw_settings, &toml).unwrap();
    let reload = |s: &Setup| {
        Command::new(&exe)
            .args(["reload", "--socket"])
            .arg(s.lab.dir.join("cgwd.sock"))
            .output()
            .unwrap()
    };
    let out = reload(&s);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.logs()
    );
    assert!(
        said.contains("1 unchanged, 2 changed (2 tunnels to re-establish), 1 added, 1 removed"),
        "{said}"
    );
    s.wait(Duration::from_secs(30), "the reloaded set up", |s| {
        s.status().is_some_and(|v| {
            v["connections"].as_array().map(Vec::len) == Some(4)
                && [0, 1, 2, 4]
                    .iter()
                    .all(|&c| by_id(&v, &vpn_id(c)).is_some_and(both_up))
                && by_id(&v, &vpn_id(3)).is_none()
                && by_id(&v, &vpn_id(1)).is_some_and(|c| {
                    (0..2).all(|t| c["tunnels"][t]["spi_in"].as_str() != Some(changed[t].as_str()))
                })
        })
    });
    let after = s.status().unwrap();
    let spis_of = |v: &serde_json::Value, id: &str| -> Vec<String> {
        let c = by_id(v, id).unwrap();
        (0..2)
            .map(|t| c["tunnels"][t]["spi_in"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        spis_of(&after, &vpn_id(0)),
        kept,
        "the unchanged connection kept its SAs"
    );
    // The changed tunnels were re-established one at a time.
    let log = std::fs::read_to_string(s.lab.dir.join("cgwd.log")).unwrap();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in\n{}", s.logs()))
    };
    let first = at("tunnel reconfigured: re-establishing tunnel=connection 2 tunnel 1");
    let second = at("tunnel reconfigured: re-establishing tunnel=connection 2 tunnel 2");
    let first_up = first
        + log[first..]
            .find("Child SA up tunnel=connection 2 tunnel 1")
            .unwrap();
    assert!(
        first_up < second,
        "tunnel 2 went before tunnel 1 was back:\n{}",
        s.logs()
    );
    // Connection 4's inside addresses left the device; connection 3's VPC route is installed.
    let addrs = s
        .lab
        .exec(&cgw_ns, &["ip", "addr", "show", "dev", "cgwd0"])
        .unwrap();
    assert!(
        !addrs.contains("169.254.106.6") && addrs.contains("169.254.108.6"),
        "{addrs}"
    );
    let routes = s
        .lab
        .exec(&cgw_ns, &["ip", "route", "show", "proto", "198"])
        .unwrap();
    assert!(routes.contains("10.101.0.0/16"), "{routes}");

    // A broken file: rejected whole, everything keeps running.
    std::fs::write(file(4), "{ not json").unwrap();
    let out = reload(&s);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rejected") && err.contains(&vpn_id(4)), "{err}");
    let v = s.status().unwrap();
    assert!(
        [0, 1, 2, 4]
            .iter()
            .all(|&c| by_id(&v, &vpn_id(c)).is_some_and(both_up))
    );

    // The pings through the unchanged connection: every one answered.
    s.wait(Duration::from_secs(20), "the pings to finish", |s| {
        std::fs::read_to_string(s.lab.dir.join("ping.log")).is_ok_and(|l| l.contains("packets transmitted"))
    });
    let ping = std::fs::read_to_string(s.lab.dir.join("ping.log")).unwrap();
    let summary = ping.lines().find(|l| l.contains("packets transmitted")).unwrap();
    println!("reload under 20 pings/s through an unchanged connection: {summary}");
    assert!(
        summary.contains("200 packets transmitted, 200 received"),
        "{summary}\n{}",
        s.logs()
    );
}
