//! cgwd ↔ `cgwd emulate-aws` end to end in namespaces (root; skipped otherwise): static routing,
//! StartupAction add and start, a maintenance rehearsal after which the tunnel comes back by itself,
//! and the reverse-path check dropping a VPC source the customer does not route.
//! The topology is `cgwd demo`'s ([`cgwd::demo::Lab`]).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cgwd::demo::Lab;
use common::netns::is_root;

const CONFIG: &str = include_str!("../configs/lab.describe.json");
const EXE: &str = env!("CARGO_BIN_EXE_cgwd");

struct Setup {
    lab: Lab,
    config: PathBuf,
    cgw_settings: PathBuf,
    aws_settings: PathBuf,
}

fn setup(name: &str, startup: &str) -> Setup {
    let lab = Lab::create(format!("cgwd-emu-{}-{name}", std::process::id()), false).expect("topology");
    let config = lab.dir.join("vpn.json");
    let text = CONFIG
        .replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true")
        .replace(
            "\"StartupAction\": \"add\"",
            &format!("\"StartupAction\": \"{startup}\""),
        );
    std::fs::write(&config, text).unwrap();
    let settings = |role: &str| {
        let p = lab.dir.join(format!("{role}.toml"));
        std::fs::write(
            &p,
            format!(
                "[interface]\nname = \"cgwd0\"\n[local]\naddress = \"192.0.2.10\"\n[routing]\n\
                 vpc_cidrs = [\"10.100.0.0/16\"]\nonprem_cidrs = [\"10.0.0.0/16\"]\n[control]\nsocket = \"{}\"\n",
                lab.dir.join(format!("{role}.sock")).display()
            ),
        )
        .unwrap();
        p
    };
    let (cgw_settings, aws_settings) = (settings("cgwd"), settings("aws"));
    Setup {
        lab,
        config,
        cgw_settings,
        aws_settings,
    }
}

impl Setup {
    fn start_aws(&mut self) {
        let ns = self.lab.ns("aws");
        let (c, s) = (
            self.config.to_string_lossy().into_owned(),
            self.aws_settings.to_string_lossy().into_owned(),
        );
        self.lab
            .spawn(&ns, &[EXE, "emulate-aws", &c, "--settings", &s], "aws.log")
            .expect("emulate-aws");
    }

    fn start_cgwd(&mut self) {
        let ns = self.lab.ns("cgw");
        let (c, s) = (
            self.config.to_string_lossy().into_owned(),
            self.cgw_settings.to_string_lossy().into_owned(),
        );
        self.lab
            .spawn(&ns, &[EXE, "run", &c, "--settings", &s], "cgwd.log")
            .expect("cgwd run");
    }

    fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(EXE)
            .args(["status", "--json", "--socket"])
            .arg(self.lab.dir.join("cgwd.sock"))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn up(&self, tunnel: usize) -> bool {
        self.status().is_some_and(|v| {
            let t = &v["tunnels"][tunnel];
            t["ike_phase2_state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("established"))
                && t["liveness"] == "healthy"
        })
    }

    fn wait(&self, limit: Duration, what: &str, ok: impl Fn(&Self) -> bool) {
        let deadline = cgwd::io::clock::now() + limit;
        while cgwd::io::clock::now() < deadline {
            if ok(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}; logs:\n{}", self.logs());
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.lab.dir.join(f)).unwrap_or_default();
        format!(
            "--- cgwd ---\n{}\n--- emulate-aws ---\n{}",
            tail(&read("cgwd.log")),
            tail(&read("aws.log"))
        )
    }

    fn ping(&self) {
        self.lab
            .exec(
                &self.lab.ns("onprem"),
                &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
            )
            .unwrap_or_else(|e| panic!("ping on-prem → VPC: {e}\n{}", self.logs()));
    }

    fn log(&self, f: &str) -> String {
        std::fs::read_to_string(self.lab.dir.join(f)).unwrap_or_default()
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<_> = s.lines().filter(|l| !l.contains("route update")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn sock(dir: &Path) -> String {
    dir.join("aws.sock").to_string_lossy().into_owned()
}

#[test]
fn startup_add_static_routing_and_maintenance_rehearsal() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut s = setup("add", "add");
    s.start_aws();
    s.start_cgwd();
    s.wait(Duration::from_secs(20), "both tunnels up", |s| s.up(0) && s.up(1));
    s.ping();
    // The probe round trip status reports is the path's (well under a millisecond here), not
    // the up to 50 ms the control loop takes to read the reply: the kernel stamps its arrival.
    let mut rtts = Vec::new();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(ms) = s.status().and_then(|v| v["tunnels"][1]["probe_rtt_ms"].as_f64()) {
            rtts.push(ms);
        }
    }
    let least = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    println!("probe round trips on tunnel 2 (ms): {rtts:?}");
    assert!(least < 25.0, "probe RTTs {rtts:?}\n{}", s.logs());
    // AWS stayed responder (StartupAction add) and installed the on-prem route while up.
    assert!(s.log("cgwd.log").contains("initiating IKE"));
    assert!(!s.log("aws.log").contains("initiating IKE"), "{}", s.logs());
    let routes = s
        .lab
        .exec(&s.lab.ns("aws"), &["ip", "route", "show", "10.0.0.0/16"])
        .unwrap();
    assert!(routes.contains("cgwd-aws"), "no on-prem route at AWS: {routes:?}");

    let out = Command::new(EXE)
        .args([
            "emulate-aws-ctl",
            "--control-socket",
            &sock(&s.lab.dir),
            "maintenance",
            "--tunnel",
            "1",
            "--for",
            "4s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.wait(Duration::from_secs(5), "tunnel 1 down after the DELETE", |s| {
        !s.up(0)
    });
    s.ping(); // tunnel 2 carries the traffic meanwhile
    s.wait(Duration::from_secs(40), "tunnel 1 back by itself", |s| s.up(0));
    s.ping();
}

#[test]
fn startup_start_aws_initiates() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut s = setup("start", "start");
    s.start_aws();
    std::thread::sleep(Duration::from_millis(300));
    s.start_cgwd();
    s.wait(Duration::from_secs(25), "both tunnels up", |s| s.up(0) && s.up(1));
    s.ping();
    assert!(s.log("aws.log").contains("initiating IKE"), "{}", s.logs());
}

/// Issue #17: AWS's tunnels accept any inner source, so the customer gateway checks it. A VPC
/// subnet the customer does not route (10.200.0.0/16 behind the VPC host; AWS's side sends
/// everything into its tunnel) pings on-prem: the packet crosses the tunnel and cgwd drops it as
/// `reverse_path`, while 10.100.0.10 still gets its answers.
#[test]
fn a_source_the_customer_does_not_route_is_dropped_after_decryption() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut s = setup("rpf", "add");
    let (vpc, aws) = (s.lab.ns("vpc"), s.lab.ns("aws"));
    s.lab
        .exec(&vpc, &["ip", "addr", "add", "10.200.0.10/32", "dev", "eth0"])
        .unwrap();
    s.lab
        .exec(
            &aws,
            &["ip", "route", "add", "10.200.0.0/16", "via", "10.100.0.10"],
        )
        .unwrap();
    s.start_aws();
    s.start_cgwd();
    s.wait(Duration::from_secs(20), "both tunnels up", |s| s.up(0) && s.up(1));
    s.ping();
    let reverse_path = |s: &Setup| -> u64 {
        s.status().map_or(0, |v| {
            (0..2)
                .filter_map(|t| v["tunnels"][t]["drops"]["reverse_path"].as_u64())
                .sum()
        })
    };
    assert_eq!(reverse_path(&s), 0, "legit traffic dropped:\n{}", s.logs());
    let spoofed = s.lab.exec(
        &vpc,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "10.200.0.10",
            "10.0.1.10",
        ],
    );
    assert!(spoofed.is_err(), "answered: {spoofed:?}");
    s.wait(Duration::from_secs(5), "3 reverse_path drops in status", |s| {
        reverse_path(s) >= 3
    });
    s.ping();
}

/// Issue #16 with emulate-aws as AWS: a customer gateway authenticating by certificate (AWS then
/// does not check its address, FACTS §9.1) gets a new outside address while on-prem pings the
/// VPC. cgwd (`local.address = "auto"`) re-establishes both tunnels from it; emulate-aws takes the
/// IKE SAs from the new address and sends ESP there. Both tunnels back within 10 s of the new
/// address appearing; the pings lost are printed.
#[test]
fn a_certificate_gateway_gets_a_new_address_and_emulate_aws_follows() {
    use common::pki::{Ca, PKCS_ECDSA_P256_SHA256};
    use common::two_aws::{auth_settings, certificate_config};
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    const OLD: &str = "192.0.2.10";
    const NEW: &str = "192.0.2.20";
    let mut s = setup("cert", "add");
    let dir = s.lab.dir.clone();
    // Static routing, as the other tests here (setup's file, without its PSKs).
    s.config = certificate_config(&dir);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true"),
    )
    .unwrap();
    let ca = Ca::new(&PKCS_ECDSA_P256_SHA256, "Example Private CA");
    for (role, cn) in [("cgwd", "cgw.example.com"), ("aws", "vpn-endpoint.example.com")] {
        let settings = dir.join(format!("{role}.toml"));
        let text = std::fs::read_to_string(&settings).unwrap();
        // cgwd follows the kernel's address; AWS's side has no customer address to hold on to.
        let text = if role == "cgwd" {
            text.replace(&format!("address = \"{OLD}\""), "address = \"auto\"")
        } else {
            text
        };
        let auth = auth_settings(&ca, &dir, role, cn);
        std::fs::write(&settings, format!("{auth}{text}")).unwrap();
    }
    s.start_aws();
    s.start_cgwd();
    s.wait(Duration::from_secs(20), "both tunnels up", |s| s.up(0) && s.up(1));
    s.ping();

    // On-prem pings the VPC every 100 ms while the address is replaced.
    let onprem = s.lab.ns("onprem");
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &onprem, "ping", "-n", "-c", "150", "-i", "0.1", "-W", "1",
        ])
        .arg("10.100.0.10")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let cgw = s.lab.ns("cgw");
    let ip = |args: &[&str]| {
        let mut all = vec!["ip"];
        all.extend_from_slice(args);
        s.lab.exec(&cgw, &all).unwrap_or_else(|e| panic!("{e}"));
    };
    ip(&["addr", "del", &format!("{OLD}/24"), "dev", "wan0"]);
    ip(&["addr", "add", &format!("{NEW}/24"), "dev", "wan0"]);
    let appeared = cgwd::io::clock::now();
    ip(&["route", "replace", "default", "via", "192.0.2.1"]);
    // Established from the new address (the standby tunnel turns "healthy" only at its next probe).
    let from_new = |s: &Setup, i: usize| {
        s.status().is_some_and(|v| {
            let t = &v["tunnels"][i];
            t["local_outside"] == NEW && t["ike_phase2_state"] == "established"
        })
    };
    s.wait(
        Duration::from_secs(10),
        "both tunnels up from the new address",
        |s| from_new(s, 0) && from_new(s, 1),
    );
    let back = appeared.elapsed();
    let out = pinger.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    let summary = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    println!(
        "emulate-aws by certificate, customer gateway {OLD} → {NEW}: both tunnels up {:.2} s after \
         the new address appeared; pings every 100 ms: {summary}",
        back.as_secs_f64()
    );
    s.ping();
    let aws_log = s.log("aws.log");
    assert!(
        !aws_log.contains("unknown peer"),
        "emulate-aws dropped the new address:\n{}",
        s.logs()
    );
}

const CONFIG_V6: &str = include_str!("../configs/ipv6-inside/lab.describe.json");

/// The demo topology with IPv6 on the hosts' links (2001:db8:10::/64 on-prem, 2001:db8:100::/64
/// in the VPC), forwarding on and DAD off, and both sides' settings listing IPv6 prefixes only.
fn setup_v6(name: &str) -> Setup {
    let lab = Lab::create(format!("cgwd-emu6-{}-{name}", std::process::id()), false).expect("topology");
    for role in ["onprem", "cgw", "inet", "aws", "vpc"] {
        let ns = lab.ns(role);
        for k in [
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ] {
            lab.exec(&ns, &["sysctl", "-qw", k]).unwrap();
        }
    }
    for (role, dev, addr) in [
        ("onprem", "lan0", "2001:db8:10::10/64"),
        ("cgw", "lan0", "2001:db8:10::1/64"),
        ("aws", "vpc0", "2001:db8:100::1/64"),
        ("vpc", "eth0", "2001:db8:100::10/64"),
    ] {
        lab.exec(
            &lab.ns(role),
            &["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"],
        )
        .unwrap();
    }
    for (role, via) in [("onprem", "2001:db8:10::1"), ("vpc", "2001:db8:100::1")] {
        lab.exec(
            &lab.ns(role),
            &["ip", "-6", "route", "add", "default", "via", via],
        )
        .unwrap();
    }
    let config = lab.dir.join("vpn.json");
    std::fs::write(&config, CONFIG_V6).unwrap();
    let settings = |role: &str| {
        let p = lab.dir.join(format!("{role}.toml"));
        std::fs::write(
            &p,
            format!(
                "[interface]\nname = \"cgwd0\"\n[local]\naddress = \"192.0.2.10\"\n[routing]\n\
                 vpc_cidrs = [\"2001:db8:100::/48\"]\nonprem_cidrs = [\"2001:db8:10::/48\"]\n[control]\nsocket = \"{}\"\n",
                lab.dir.join(format!("{role}.sock")).display()
            ),
        )
        .unwrap();
        p
    };
    let (cgw_settings, aws_settings) = (settings("cgwd"), settings("aws"));
    Setup {
        lab,
        config,
        cgw_settings,
        aws_settings,
    }
}

/// `ping6 -c count` on-prem → VPC (from `from`, or the on-prem host's address): the loss in percent.
fn ping6_loss(s: &Setup, count: &str, from: Option<&str>) -> Result<String, String> {
    let mut argv = vec!["ping", "-6", "-c", count, "-i", "0.2", "-W", "2"];
    if let Some(f) = from {
        argv.extend(["-I", f]);
    }
    argv.push("2001:db8:100::10");
    s.lab.exec(&s.lab.ns("onprem"), &argv)
}

/// IPv6 inside over IPv4 outside (`TunnelInsideIpVersion` ipv6): cgwd ↔ `emulate-aws` bring both
/// tunnels up with IPv6 selectors, the /126 addresses are on both devices, the IPv6 VPC route is
/// installed, on-prem and the VPC ping each other over IPv6, a VPC source the customer does not
/// route is dropped after decryption, and a maintenance on tunnel 1 moves the pings to tunnel 2.
#[test]
fn ipv6_inside_tunnels_carry_ping6() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut s = setup_v6("in6");
    let (cgw, aws, vpc) = (s.lab.ns("cgw"), s.lab.ns("aws"), s.lab.ns("vpc"));
    s.lab
        .exec(
            &vpc,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8:200::10/128",
                "dev",
                "eth0",
                "nodad",
            ],
        )
        .unwrap();
    s.lab
        .exec(
            &aws,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "2001:db8:200::/48",
                "via",
                "2001:db8:100::10",
            ],
        )
        .unwrap();
    s.start_aws();
    s.start_cgwd();
    let took = common::lab::wait_for(
        Duration::from_secs(20),
        "both IPv6-inside tunnels up",
        || s.up(0) && s.up(1),
        || s.logs(),
    );
    println!("both tunnels up {took:?} after start");
    // The liveness probes are ICMPv6 echo to AWS's inside IPv6 addresses, and answered.
    s.wait(
        Duration::from_secs(5),
        "ICMPv6 probe replies on both tunnels",
        |s| {
            s.status()
                .is_some_and(|v| (0..2).all(|t| v["tunnels"][t]["probe_rtt_ms"].is_number()))
        },
    );
    let addrs = s
        .lab
        .exec(&cgw, &["ip", "-6", "addr", "show", "dev", "cgwd0"])
        .unwrap();
    for a in ["fd00:a9fe:10::2/126", "fd00:a9fe:20::2/126"] {
        assert!(addrs.contains(a), "{a} on cgwd0: {addrs}");
    }
    let aws_addrs = s.lab.exec(&aws, &["ip", "-6", "addr"]).unwrap();
    assert!(aws_addrs.contains("fd00:a9fe:10::1/126"), "{aws_addrs}");
    let routes = s
        .lab
        .exec(&cgw, &["ip", "-6", "route", "show", "proto", "198"])
        .unwrap();
    assert!(routes.contains("2001:db8:100::/48 dev cgwd0"), "{routes}");
    let v = s.status().unwrap();
    assert!(
        v["routes"].to_string().contains("2001:db8:100::/48"),
        "{}",
        v["routes"]
    );
    assert_eq!(v["tunnels"][0]["inside"], "fd00:a9fe:10::2/126", "{v}");
    assert_eq!(v["tunnels"][1]["aws_inside"], "fd00:a9fe:20::1", "{v}");
    let text = Command::new(EXE)
        .args(["status", "--socket"])
        .arg(s.lab.dir.join("cgwd.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("inside fd00:a9fe:10::2/126 ↔ fd00:a9fe:10::1"),
        "{text}"
    );
    let out = ping6_loss(&s, "20", None).unwrap_or_else(|e| panic!("ping6 on-prem → VPC: {e}\n{}", s.logs()));
    let summary = out
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or_default();
    println!("ping6 on-prem → VPC over IPv6-inside tunnels: {summary}");
    assert!(summary.contains(" 0% packet loss"), "{out}");
    let v = s.status().unwrap();
    println!(
        "drops after the ping6s: tunnel 1 {}, tunnel 2 {}",
        v["tunnels"][0]["drops"], v["tunnels"][1]["drops"]
    );
    // And from the VPC side (AWS routes the on-prem /48 into its tunnel).
    s.lab
        .exec(
            &vpc,
            &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:10::10"],
        )
        .unwrap_or_else(|e| panic!("ping6 VPC → on-prem: {e}\n{}", s.logs()));

    // A VPC source the customer does not route: decrypted, then dropped as reverse_path.
    let reverse_path = |s: &Setup| -> u64 {
        s.status().map_or(0, |v| {
            (0..2)
                .filter_map(|t| v["tunnels"][t]["drops"]["reverse_path"].as_u64())
                .sum()
        })
    };
    let before = reverse_path(&s);
    let spoofed = s.lab.exec(
        &vpc,
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "2001:db8:200::10",
            "2001:db8:10::10",
        ],
    );
    assert!(spoofed.is_err(), "answered: {spoofed:?}");
    s.wait(
        Duration::from_secs(5),
        "3 IPv6 reverse_path drops in status",
        |s| reverse_path(s) >= before + 3,
    );

    // AWS replaces tunnel 1's endpoint: tunnel 2 carries the IPv6 traffic meanwhile.
    let out = Command::new(EXE)
        .args([
            "emulate-aws-ctl",
            "--control-socket",
            &sock(&s.lab.dir),
            "maintenance",
            "--tunnel",
            "1",
            "--for",
            "4s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.wait(Duration::from_secs(5), "tunnel 1 down after the DELETE", |s| {
        !s.up(0)
    });
    let out = ping6_loss(&s, "10", None).unwrap_or_else(|e| panic!("ping6 over tunnel 2: {e}\n{}", s.logs()));
    println!(
        "ping6 with tunnel 1 in maintenance: {}",
        out.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or_default()
    );
    s.wait(Duration::from_secs(40), "tunnel 1 back by itself", |s| s.up(0));
    ping6_loss(&s, "3", None).unwrap_or_else(|e| panic!("ping6 after: {e}\n{}", s.logs()));
}
