//! cgwd's built-in BGP speaker against BIRD 2 playing AWS's side of both tunnels (root and bird;
//! skipped otherwise), over `cgwd emulate-aws` in the `cgwd demo` namespaces: eBGP over each
//! tunnel's inside /30 (AWS AS 64512, ours 65000, hold 30 s as in the file). The VPC prefix is
//! learned and routed with no `routing.vpc_cidrs`, the on-prem prefix reaches AWS's side (the
//! standby tunnel prepended), a withdrawal removes our route and a re-announcement restores it,
//! and a silent cut of tunnel 1 moves both directions of on-prem ↔ VPC traffic to tunnel 2 long
//! before BGP's hold timer would (the more-specific halves announced on tunnel 2).

mod common;

use std::process::Command;
use std::time::Duration;

use cgwd::demo::Lab;
use common::netns::is_root;

const CONFIG: &str = include_str!("../configs/lab.describe.json");
const EXE: &str = env!("CARGO_BIN_EXE_cgwd");

struct Setup {
    lab: Lab,
}

impl Setup {
    /// On-prem pings the VPC host 5 times a second, `count` times, into `log`.
    fn ping_vpc(&self, count: u32, log: &std::path::Path) -> std::process::Child {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lab.ns("onprem"),
                "ping",
                "-i",
                "0.2",
                "-W",
                "1",
            ])
            .args(["-c", &count.to_string(), "10.100.0.10"])
            .stdout(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// BIRD in namespace `role` with configuration `conf`, its files named `name`.{conf,ctl,pid,out}.
    fn spawn_bird(&mut self, role: &str, name: &str, conf: &str) {
        let file = |ext: &str| {
            self.lab
                .dir
                .join(format!("{name}.{ext}"))
                .to_string_lossy()
                .into_owned()
        };
        let (path, ctl, pid) = (file("conf"), file("ctl"), file("pid"));
        std::fs::write(&path, conf).unwrap();
        let ns = self.lab.ns(role);
        self.lab
            .spawn(
                &ns,
                &["bird", "-f", "-c", &path, "-s", &ctl, "-P", &pid],
                &format!("{name}.out"),
            )
            .unwrap_or_else(|e| panic!("bird in {role}: {e}"));
    }

    fn birdc(&self, args: &[&str]) -> String {
        let sock = self.lab.dir.join("bird.ctl").to_string_lossy().into_owned();
        let mut argv = vec!["birdc", "-s", &sock];
        argv.extend_from_slice(args);
        self.lab.exec(&self.lab.ns("aws"), &argv).unwrap_or_else(|e| e)
    }

    fn established(&self, proto: &str) -> bool {
        self.birdc(&["show", "protocols", proto])
            .lines()
            .any(|l| l.starts_with(proto) && l.contains("Established"))
    }

    fn cgw_routes(&self) -> String {
        self.lab
            .exec(&self.lab.ns("cgw"), &["ip", "route", "show", "proto", "198"])
            .unwrap_or_default()
    }

    fn wait(&self, limit: Duration, what: &str, ok: impl Fn(&Self) -> bool) -> Duration {
        common::lab::wait_for(limit, what, || ok(self), || self.logs())
    }

    fn logs(&self) -> String {
        let dir = &self.lab.dir;
        common::lab::tail(dir, "cgwd.log")
            + &common::lab::tail(dir, "bird.log")
            + &self.birdc(&["show", "protocols", "all"])
    }

    fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(EXE)
            .args(["status", "--json", "--socket"])
            .arg(self.lab.dir.join("cgwd.sock"))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    fn tunnels_up(&self) -> bool {
        let Some(v) = self.status() else {
            return false;
        };
        (0..2).all(|t| {
            v["tunnels"][t]["ike_phase2_state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("established"))
        })
    }
}

/// How the lab is set up.
#[derive(Clone, Copy)]
struct Opts {
    aws_as: u32,
    cgw_as: u32,
    /// BIRD plays AWS's BGP; else `cgwd emulate-aws` does (`bgp.speaker = "builtin"`).
    bird: bool,
    /// The BGP hold time in the file and BIRD's (AWS: 30 s).
    hold: u16,
    /// A second BIRD in the VPC namespace as the VPC's router, iBGP to AWS's: it originates
    /// 10.101.0.0/16 and must learn the on-prem prefix.
    vpc_router: bool,
    /// `bgp.speaker = "external"`: BIRD in the customer gateway's namespace speaks for us.
    external: bool,
}

impl Opts {
    fn bird(aws_as: u32, cgw_as: u32) -> Opts {
        Opts {
            aws_as,
            cgw_as,
            bird: true,
            hold: 30,
            vpc_router: false,
            external: false,
        }
    }
}

/// BIRD as AWS in `aws_as`, our side in `cgw_as`. BIRD connects as well as accepts, as AWS
/// does: with a router ID above cgwd's (its inside address) a collision keeps BIRD's connection,
/// below it cgwd's.
fn bird_conf(dir: &std::path::Path, o: Opts) -> String {
    let (aws_as, cgw_as, hold) = (o.aws_as, o.cgw_as, o.hold);
    let router_id = if aws_as > 65535 { "250.0.0.1" } else { "10.100.0.1" };
    let vpc_router = if o.vpc_router {
        format!(
            "protocol bgp vpc_router {{ local 10.100.0.1 as {aws_as}; neighbor 10.100.0.10 as {aws_as}; \
             ipv4 {{ import all; export where proto ~ \"t*\"; next hop self; }}; }}\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"log "{log}" all;
router id {router_id};
protocol device {{ scan time 1; }}
# AWS's side: what it learns goes into its routing table (through the tunnels).
protocol kernel {{ ipv4 {{ import none; export where proto ~ "t*"; }}; }}
protocol static vpc {{ ipv4; route 10.100.0.0/16 blackhole; }}
template bgp aws {{
  local as {aws_as};
  hold time {hold};
  keepalive time {keepalive};
  start delay time 1;
  connect delay time 1;
  ipv4 {{ import all; export where proto = "vpc" || proto = "vpc_router"; next hop self; }};
}}
protocol bgp t1 from aws {{ local 169.254.10.5 as {aws_as}; neighbor 169.254.10.6 as {cgw_as}; }}
protocol bgp t2 from aws {{ local 169.254.20.9 as {aws_as}; neighbor 169.254.20.10 as {cgw_as}; }}
{vpc_router}"#,
        log = dir.join("bird.log").display(),
        keepalive = (hold / 3).max(1),
    )
}

/// The VPC's router: iBGP to AWS's BIRD, originating 10.101.0.0/16.
fn vpc_router_conf(dir: &std::path::Path, aws_as: u32) -> String {
    format!(
        r#"log "{log}" all;
router id 10.100.0.10;
protocol device {{ scan time 1; }}
protocol static subnets {{ ipv4; route 10.101.0.0/16 blackhole; }}
protocol bgp aws {{
  local 10.100.0.10 as {aws_as};
  neighbor 10.100.0.1 as {aws_as};
  ipv4 {{ import all; export where proto = "subnets"; }};
}}
"#,
        log = dir.join("bird-vpc.log").display()
    )
}

/// The lab with AWS in `aws_as` and us in `cgw_as` (the file's ASNs rewritten), BIRD as AWS's
/// BGP side.
fn setup(aws_as: u32, cgw_as: u32) -> Option<Setup> {
    setup_with(Opts::bird(aws_as, cgw_as))
}

fn setup_with(o: Opts) -> Option<Setup> {
    let (aws_as, cgw_as, bird) = (o.aws_as, o.cgw_as, o.bird);
    if !is_root() {
        println!("SKIPPED: needs root");
        return None;
    }
    if bird && Command::new("bird").arg("--version").output().is_err() {
        println!("SKIPPED: needs bird (apt-get install bird2)");
        return None;
    }
    let mut lab = Lab::create(
        format!(
            "cgwd-bgp{}{}{}{}{}-{}",
            aws_as % 1000,
            u8::from(bird),
            o.hold,
            u8::from(o.vpc_router),
            u8::from(o.external),
            std::process::id()
        ),
        false,
    )
    .expect("topology");
    let config = lab.dir.join("vpn.json");
    std::fs::write(
        &config,
        CONFIG
            .replace("<asn>64512</asn>", &format!("<asn>{aws_as}</asn>"))
            .replace("<asn>65000</asn>", &format!("<asn>{cgw_as}</asn>"))
            .replace(
                "<hold_time>30</hold_time>",
                &format!("<hold_time>{}</hold_time>", o.hold),
            ),
    )
    .unwrap();
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
        p.to_string_lossy().into_owned()
    };
    let cgw = settings(
        "cgwd",
        if o.external {
            "[bgp]\nspeaker = \"external\"\n"
        } else {
            "[routing]\nonprem_cidrs = [\"10.0.0.0/16\"]\n[bgp]\nspeaker = \"builtin\"\n"
        },
    );
    let aws = if bird {
        // BIRD speaks for AWS: emulate-aws keeps to IKE and ESP.
        settings("aws", "[bgp]\nspeaker = \"off\"\n")
    } else {
        settings(
            "aws",
            "[routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\n[bgp]\nspeaker = \"builtin\"\n",
        )
    };
    let c = config.to_string_lossy().into_owned();
    let aws_ns = lab.ns("aws");
    lab.spawn(&aws_ns, &[EXE, "emulate-aws", &c, "--settings", &aws], "aws.log")
        .expect("emulate-aws");
    let s = Setup { lab };
    let (a1, a2) = (s.lab.dir.join("aws.sock.1"), s.lab.dir.join("aws.sock.2"));
    s.wait(Duration::from_secs(20), "AWS endpoints", |_| {
        a1.exists() && a2.exists()
    });
    let mut s = s;
    if bird {
        if o.vpc_router {
            s.spawn_bird("vpc", "bird-vpc", &vpc_router_conf(&s.lab.dir, aws_as));
        }
        let conf = bird_conf(&s.lab.dir, o);
        s.spawn_bird("aws", "bird", &conf);
    }
    let cgw_ns = s.lab.ns("cgw");
    s.lab
        .spawn(&cgw_ns, &[EXE, "run", &c, "--settings", &cgw], "cgwd.log")
        .expect("cgwd run");
    Some(s)
}

#[test]
fn bgp_with_bird_as_aws_learns_announces_withdraws_and_fails_over_fast() {
    let Some(s) = setup(64512, 65000) else { return };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    let took = s.wait(Duration::from_secs(10), "both BGP sessions Established", |s| {
        s.established("t1") && s.established("t2")
    });
    println!(
        "both BGP sessions Established {} ms after both tunnels were up",
        took.as_millis()
    );
    assert!(took <= Duration::from_secs(2), "took {took:?}\n{}", s.logs());

    // The VPC prefix learned and routed, with no routing.vpc_cidrs set.
    s.wait(Duration::from_secs(3), "10.100.0.0/16 learned", |s| {
        s.cgw_routes().contains("10.100.0.0/16 dev cgwd0")
    });
    // The on-prem prefix at AWS, through the preferred tunnel (tunnel 2's announcement prepended).
    s.wait(Duration::from_secs(3), "10.0.0.0/16 at AWS via tunnel 1", |s| {
        let r = s.birdc(&["show", "route", "for", "10.0.0.1", "all"]);
        r.contains("cgwd-aws1") || r.contains("169.254.10.6")
    });
    s.wait(
        Duration::from_secs(3),
        "tunnel 2's announcement, prepended twice",
        |s| {
            s.birdc(&["show", "route", "protocol", "t2", "all"])
                .contains("65000 65000 65000")
        },
    );
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping on-prem → VPC over BGP routes: {e}\n{}", s.logs()));
    // What cgwd status, its health records and its text view say.
    let v = s.status().unwrap();
    for t in 0..2 {
        let b = &v["tunnels"][t]["bgp"];
        assert_eq!(b["state"], "established", "{v}");
        let counts = (b["prefixes_received"].as_u64(), b["prefixes_advertised"].as_u64());
        assert_eq!(counts, (Some(1), Some(1)), "{v}");
        assert_eq!(b["peer_as"], 64512);
    }
    assert_eq!(v["bgp_routes"][0]["prefix"], "10.100.0.0/16");
    assert_eq!(v["bgp_routes"][0]["tunnels"], serde_json::json!([1, 2]));
    let text = Command::new(EXE)
        .args(["status", "--socket"])
        .arg(s.lab.dir.join("cgwd.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("BGP ESTABLISHED with 169.254.10.5 (AS 64512)"),
        "{text}"
    );
    assert!(text.contains("10.100.0.0/16 via tunnel 1, 2"), "{text}");
    let log = std::fs::read_to_string(s.lab.dir.join("cgwd.log")).unwrap();
    assert!(
        log.contains("BGP established, 1 routes"),
        "no BGP health record:\n{}",
        s.logs()
    );

    // AWS withdraws the VPC prefix: gone within a second; announced again: back.
    s.birdc(&["disable", "vpc"]);
    let gone = s.wait(Duration::from_secs(3), "the withdrawn route removed", |s| {
        !s.cgw_routes().contains("10.100.0.0/16")
    });
    println!("withdrawal removed our route in {} ms", gone.as_millis());
    assert!(gone <= Duration::from_secs(1));
    s.birdc(&["enable", "vpc"]);
    s.wait(Duration::from_secs(3), "the route back", |s| {
        s.cgw_routes().contains("10.100.0.0/16")
    });

    // Tunnel 1 cut silently while on-prem pings the VPC at 5/s: both directions move.
    let log = s.lab.dir.join("ping.txt");
    let ping = s.ping_vpc(50, &log);
    std::thread::sleep(Duration::from_secs(2));
    s.lab.cut_tunnel1().expect("cut");
    s.wait(
        Duration::from_secs(5),
        "more-specifics via tunnel 2 at AWS",
        |s| {
            s.birdc(&["show", "route", "for", "10.0.0.1"])
                .contains("10.0.0.0/17")
        },
    );
    let _ = ping.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let received = text.lines().filter(|l| l.contains("bytes from")).count();
    let lost = 50 - received;
    println!(
        "silent cut of tunnel 1 at 5 pings/s: {received}/50 answered, round-trip outage ≈ {} ms",
        lost * 200
    );
    assert!(
        lost * 200 <= 2000,
        "outage {} ms\n{text}\n{}",
        lost * 200,
        s.logs()
    );
    // Restored while pinging: the halves withdrawn, traffic back on tunnel 1, nothing lost.
    let log = s.lab.dir.join("ping-restore.txt");
    let ping = s.ping_vpc(1000, &log);
    s.lab.restore_tunnel1().expect("restore");
    let back = s.wait(
        Duration::from_secs(60),
        "tunnel 1's session back and the halves withdrawn",
        |s| {
            s.established("t1")
                && !s
                    .birdc(&["show", "route", "for", "10.0.0.1"])
                    .contains("10.0.0.0/17")
        },
    );
    let on_tunnel_1 = s.wait(Duration::from_secs(10), "outbound back on tunnel 1", |s| {
        s.status().is_some_and(|v| v["tunnels"][0]["active"] == true)
    });
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-INT", &ping.id().to_string()])
        .status();
    let _ = ping.wait_with_output();
    let text = std::fs::read_to_string(&log).unwrap();
    let stats = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    println!(
        "restore: session back and halves withdrawn after {} ms, outbound on tunnel 1 {} ms later; pings: {stats}",
        back.as_millis(),
        on_tunnel_1.as_millis()
    );
    assert!(stats.contains(" 0% packet loss"), "{text}\n{}", s.logs());
}

#[test]
fn four_octet_ases_on_both_sides() {
    let Some(s) = setup(4_200_000_000, 4_000_000_001) else {
        return;
    };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    s.wait(Duration::from_secs(3), "both BGP sessions Established", |s| {
        s.established("t1") && s.established("t2")
    });
    s.wait(Duration::from_secs(3), "10.100.0.0/16 learned", |s| {
        s.cgw_routes().contains("10.100.0.0/16 dev cgwd0")
    });
    s.wait(Duration::from_secs(3), "our 4-octet AS, prepended, at AWS", |s| {
        s.birdc(&["show", "route", "protocol", "t2", "all"])
            .contains("4000000001 4000000001 4000000001")
    });
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping: {e}\n{}", s.logs()));

    // AWS resets tunnel 1's session and connects again before cgwd's retry: cgwd takes AWS's
    // connection on its listener (and any collision keeps BIRD's, whose identifier is higher).
    s.birdc(&["restart", "t1"]);
    let back = s.wait(Duration::from_secs(10), "tunnel 1's session back", |s| {
        s.established("t1")
    });
    println!("session back {} ms after AWS reset it", back.as_millis());
    let log = std::fs::read_to_string(s.lab.dir.join("cgwd.log")).unwrap();
    assert!(
        log.contains("BGP connection from AWS accepted"),
        "AWS's connection never accepted:\n{}",
        s.logs()
    );
    for l in log
        .lines()
        .filter(|l| l.contains("collision") || l.contains("from AWS"))
    {
        println!("{l}");
    }
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping after the reset: {e}\n{}", s.logs()));
}

/// AWS's side as in a VPC: BIRD at AWS's end of both tunnels, iBGP to a second BIRD as the VPC's
/// router. Hold time 6 s (keepalives every 2 s): the sessions stay up, unreset, across four hold
/// times; a prefix the VPC router originates reaches cgwd through AWS, and the on-prem prefix
/// reaches the VPC router.
#[test]
fn sessions_hold_and_routes_cross_to_the_vpc_router() {
    let Some(s) = setup_with(Opts {
        hold: 6,
        vpc_router: true,
        ..Opts::bird(64512, 65000)
    }) else {
        return;
    };
    let vpc_birdc = |args: &[&str]| {
        let sock = s.lab.dir.join("bird-vpc.ctl").to_string_lossy().into_owned();
        let mut argv = vec!["birdc", "-s", &sock];
        argv.extend_from_slice(args);
        s.lab.exec(&s.lab.ns("vpc"), &argv).unwrap_or_else(|e| e)
    };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    s.wait(Duration::from_secs(10), "both BGP sessions Established", |s| {
        s.established("t1") && s.established("t2")
    });
    s.wait(Duration::from_secs(10), "the VPC router's prefix at cgwd", |s| {
        s.cgw_routes().contains("10.101.0.0/16 dev cgwd0")
    });
    s.wait(
        Duration::from_secs(10),
        "the on-prem prefix at the VPC router",
        |_| vpc_birdc(&["show", "route", "for", "10.0.0.1"]).contains("10.0.0.0/16"),
    );
    let since = |s: &Setup| -> Vec<String> {
        ["t1", "t2"]
            .iter()
            .map(|p| {
                s.birdc(&["show", "protocols", p])
                    .lines()
                    .find(|l| l.starts_with(p))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let before = since(&s);
    std::thread::sleep(Duration::from_secs(4 * 6 + 1));
    let after = since(&s);
    assert_eq!(before, after, "a session was reset\n{}", s.logs());
    assert!(after.iter().all(|l| l.contains("Established")), "{after:?}");
    let v = s.status().unwrap();
    for t in 0..2 {
        let b = &v["tunnels"][t]["bgp"];
        assert_eq!(b["state"], "established", "{v}");
        assert_eq!(b["hold_time"], 6, "{v}");
        assert!(b["uptime_secs"].as_u64().unwrap_or(0) >= 24, "{v}");
    }
    println!(
        "sessions up {} s across four 6 s hold times; BIRD: {after:?}",
        v["tunnels"][0]["bgp"]["uptime_secs"]
    );
}

/// The customer gateway's own BIRD with `bgp.speaker = "external"`, preferring tunnel 2 (local
/// preference), against BIRD as AWS.
fn customer_bird_conf(dir: &std::path::Path) -> String {
    format!(
        r#"log "{log}" all;
router id 10.0.1.1;
protocol device {{ scan time 1; }}
# What BGP learned goes into the kernel: BIRD's choice is the route.
protocol kernel {{ ipv4 {{ import none; export where proto ~ "aws*"; }}; }}
protocol static onprem {{ ipv4; route 10.0.0.0/16 blackhole; }}
template bgp aws {{
  local as 65000;
  hold time 30;
  keepalive time 10;
  ipv4 {{ import all; export where proto = "onprem"; }};
}}
protocol bgp aws1 from aws {{ local 169.254.10.6 as 65000; neighbor 169.254.10.5 as 64512; }}
protocol bgp aws2 from aws {{
  local 169.254.20.10 as 65000; neighbor 169.254.20.9 as 64512;
  ipv4 {{ import filter {{ bgp_local_pref = 200; accept; }}; export where proto = "onprem"; }};
}}
"#,
        log = dir.join("bird-cgw.log").display()
    )
}

/// `bgp.speaker = "external"`: cgwd makes a device per tunnel (cgwd0-1, cgwd0-2) with its inside
/// address; BIRD in the customer gateway's namespace peers with AWS's BIRD over them and installs
/// the VPC route through the tunnel it prefers (tunnel 2, against cgwd's own default of tunnel 1),
/// and the data plane sends on-prem → VPC traffic through that tunnel.
#[test]
fn external_speaker_bird_on_the_gateway_chooses_the_tunnel() {
    let Some(mut s) = setup_with(Opts {
        external: true,
        ..Opts::bird(64512, 65000)
    }) else {
        return;
    };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    let devices = s
        .lab
        .exec(&s.lab.ns("cgw"), &["ip", "-4", "addr", "show"])
        .unwrap_or_default();
    assert!(
        devices.contains("169.254.10.6/30") && devices.contains("cgwd0-1"),
        "{devices}"
    );
    let conf = customer_bird_conf(&s.lab.dir);
    s.spawn_bird("cgw", "bird-cgw", &conf);
    let took = s.wait(Duration::from_secs(20), "both sessions Established", |s| {
        s.established("t1") && s.established("t2")
    });
    println!(
        "BIRD ↔ BIRD over cgwd's tunnel devices Established {} ms after BIRD started",
        took.as_millis()
    );
    let kernel_route = |s: &Setup| {
        s.lab
            .exec(&s.lab.ns("cgw"), &["ip", "route", "show", "10.100.0.0/16"])
            .unwrap_or_default()
    };
    s.wait(
        Duration::from_secs(10),
        "BIRD's VPC route via tunnel 2's device",
        |s| kernel_route(s).contains("dev cgwd0-2"),
    );
    let out_packets = |s: &Setup| -> [u64; 2] {
        let v = s.status().unwrap_or_default();
        [0, 1].map(|t| v["tunnels"][t]["traffic"]["packets_out"].as_u64().unwrap_or(0))
    };
    // Each tunnel also carries cgwd's liveness probes and BGP keepalives: tunnel 2 must carry
    // the pings on top, tunnel 1 only that background.
    let before = out_packets(&s);
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "200", "-i", "0.01", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping on-prem → VPC over BIRD's route: {e}\n{}", s.logs()));
    s.wait(Duration::from_secs(5), "the pings counted on tunnel 2", |s| {
        out_packets(s)[1] >= before[1] + 200
    });
    let after = out_packets(&s);
    let sent = [after[0] - before[0], after[1] - before[1]];
    println!(
        "packets out during 200 pings: tunnel 1 {}, tunnel 2 {}",
        sent[0], sent[1]
    );
    assert!(sent[0] < 100, "tunnel 1 carried the pings: {sent:?}");
    // The on-prem prefix reached AWS from the customer's BIRD.
    assert!(
        s.birdc(&["show", "route", "for", "10.0.0.1"])
            .contains("10.0.0.0/16"),
        "{}",
        s.logs()
    );
}

/// cgwd against `cgwd emulate-aws` speaking BGP as AWS (no BIRD): what `cgwd demo` shows.
#[test]
fn emulate_aws_speaks_bgp_as_aws() {
    let Some(s) = setup_with(Opts {
        bird: false,
        ..Opts::bird(64512, 65000)
    }) else {
        return;
    };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    s.wait(
        Duration::from_secs(3),
        "both sessions Established, the VPC learned",
        |s| {
            s.status().is_some_and(|v| {
                (0..2).all(|t| v["tunnels"][t]["bgp"]["state"] == "established")
                    && v["bgp_routes"][0]["prefix"] == "10.100.0.0/16"
            })
        },
    );
    let aws_routes = |s: &Setup| {
        s.lab
            .exec(&s.lab.ns("aws"), &["ip", "route", "show"])
            .unwrap_or_default()
    };
    // AWS's choice: tunnel 1 (path 1), tunnel 2 prepended (path 3) as the fallback.
    s.wait(
        Duration::from_secs(3),
        "the on-prem prefix at AWS on both tunnels",
        |s| {
            let r = aws_routes(s);
            r.contains("10.0.0.0/16 dev cgwd-aws1") && r.contains("10.0.0.0/16 dev cgwd-aws2")
        },
    );
    let r = aws_routes(&s);
    assert!(r.contains("dev cgwd-aws1 scope link metric 111"), "{r}");
    assert!(r.contains("dev cgwd-aws2 scope link metric 132"), "{r}");
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping: {e}\n{}", s.logs()));
    // A reload announcing one more on-prem prefix: AWS learns it, the sessions stay.
    let toml = s.lab.dir.join("cgwd.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace(
            "onprem_cidrs = [\"10.0.0.0/16\"]",
            "onprem_cidrs = [\"10.0.0.0/16\", \"10.9.0.0/16\"]",
        ),
    )
    .unwrap();
    let out = Command::new(EXE)
        .args(["reload", "--socket"])
        .arg(s.lab.dir.join("cgwd.sock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.wait(Duration::from_secs(3), "the new prefix at AWS", |s| {
        aws_routes(s).contains("10.9.0.0/16 dev cgwd-aws1")
    });
    // Tunnel 1 cut: the halves appear on tunnel 2 at AWS.
    s.lab.cut_tunnel1().expect("cut");
    s.wait(
        Duration::from_secs(5),
        "more-specifics via tunnel 2 at AWS",
        |s| aws_routes(s).contains("10.0.0.0/17 dev cgwd-aws2"),
    );
    s.lab
        .exec(
            &s.lab.ns("onprem"),
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
        )
        .unwrap_or_else(|e| panic!("ping after the cut: {e}\n{}", s.logs()));
}

const CONFIG_V6: &str = include_str!("../configs/ipv6-inside/lab.describe.json");

/// BIRD as AWS's speaker over the IPv6 inside addresses (MP-BGP IPv6 unicast): a session per
/// tunnel from AWS's ::1 to our ::2, the VPC's /48 exported, what it learns into its kernel.
fn bird_conf_v6(dir: &std::path::Path) -> String {
    format!(
        r#"log "{log}" all;
router id 10.100.0.1;
protocol device {{ scan time 1; }}
protocol kernel {{ ipv6 {{ import none; export where proto ~ "t*"; }}; }}
protocol static vpc {{ ipv6; route 2001:db8:100::/48 blackhole; }}
template bgp aws {{
  local as 64512;
  hold time 30;
  keepalive time 10;
  start delay time 1;
  connect delay time 1;
  ipv6 {{ import all; export where proto = "vpc"; next hop self; }};
}}
protocol bgp t1 from aws {{ local fd00:a9fe:10::1 as 64512; neighbor fd00:a9fe:10::2 as 65000; }}
protocol bgp t2 from aws {{ local fd00:a9fe:20::1 as 64512; neighbor fd00:a9fe:20::2 as 65000; }}
"#,
        log = dir.join("bird.log").display(),
    )
}

/// The demo lab with IPv6 on the hosts' links (DAD off), the IPv6-inside file with BGP, cgwd
/// announcing the on-prem /48; AWS's BGP played by BIRD (`bird`) or by `emulate-aws` itself,
/// which then announces the VPC's /48.
fn setup_v6(bird: bool) -> Option<Setup> {
    if !is_root() {
        println!("SKIPPED: needs root");
        return None;
    }
    if bird && Command::new("bird").arg("--version").output().is_err() {
        println!("SKIPPED: needs bird (apt-get install bird2)");
        return None;
    }
    let lab = Lab::create(
        format!("cgwd-bgp6{}-{}", u8::from(bird), std::process::id()),
        false,
    )
    .expect("topology");
    for role in ["onprem", "cgw", "inet", "aws", "vpc"] {
        for k in [
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ] {
            lab.exec(&lab.ns(role), &["sysctl", "-qw", k]).unwrap();
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
    std::fs::write(
        &config,
        CONFIG_V6.replace("\"StaticRoutesOnly\": true", "\"StaticRoutesOnly\": false"),
    )
    .unwrap();
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
        p.to_string_lossy().into_owned()
    };
    let cgw = settings(
        "cgwd",
        "[routing]\nonprem_cidrs = [\"2001:db8:10::/48\"]\n[bgp]\nspeaker = \"builtin\"\n",
    );
    let aws = if bird {
        settings("aws", "[bgp]\nspeaker = \"off\"\n")
    } else {
        settings(
            "aws",
            "[routing]\nvpc_cidrs = [\"2001:db8:100::/48\"]\n[bgp]\nspeaker = \"builtin\"\n",
        )
    };
    let c = config.to_string_lossy().into_owned();
    let mut s = Setup { lab };
    let aws_ns = s.lab.ns("aws");
    s.lab
        .spawn(&aws_ns, &[EXE, "emulate-aws", &c, "--settings", &aws], "aws.log")
        .expect("emulate-aws");
    let (a1, a2) = (s.lab.dir.join("aws.sock.1"), s.lab.dir.join("aws.sock.2"));
    s.wait(Duration::from_secs(20), "AWS endpoints", |_| {
        a1.exists() && a2.exists()
    });
    if bird {
        let conf = bird_conf_v6(&s.lab.dir);
        s.spawn_bird("aws", "bird", &conf);
    }
    let cgw_ns = s.lab.ns("cgw");
    s.lab
        .spawn(&cgw_ns, &[EXE, "run", &c, "--settings", &cgw], "cgwd.log")
        .expect("cgwd run");
    Some(s)
}

/// BGP over IPv6-inside tunnels (`TunnelInsideIpVersion` ipv6): cgwd's sessions run from its
/// inside IPv6 addresses to AWS's (BIRD), with its /30 address as router ID; the VPC's IPv6 prefix
/// is learned and routed with no `routing.vpc_cidrs`, the on-prem IPv6 prefix reaches AWS (the
/// standby tunnel prepended), ping6 crosses both ways, and a withdrawal removes the route.
#[test]
fn bgp_over_ipv6_inside_addresses_with_bird() {
    let Some(s) = setup_v6(true) else { return };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    let took = s.wait(
        Duration::from_secs(15),
        "both IPv6 BGP sessions Established",
        |s| s.established("t1") && s.established("t2"),
    );
    println!(
        "both BGP sessions over the IPv6 inside addresses Established {} ms after both tunnels were up",
        took.as_millis()
    );
    let routes6 = |s: &Setup| {
        s.lab
            .exec(&s.lab.ns("cgw"), &["ip", "-6", "route", "show", "proto", "198"])
            .unwrap_or_default()
    };
    s.wait(Duration::from_secs(5), "2001:db8:100::/48 learned", |s| {
        routes6(s).contains("2001:db8:100::/48 dev cgwd0")
    });
    s.wait(
        Duration::from_secs(5),
        "2001:db8:10::/48 at AWS via tunnel 1",
        |s| {
            let r = s.birdc(&["show", "route", "for", "2001:db8:10::10", "all"]);
            r.contains("fd00:a9fe:10::2")
        },
    );
    s.wait(
        Duration::from_secs(3),
        "tunnel 2's announcement, prepended twice",
        |s| {
            s.birdc(&["show", "route", "protocol", "t2", "all"])
                .contains("65000 65000 65000")
        },
    );
    let ping = |from: &str, to: &str| {
        s.lab
            .exec(
                &s.lab.ns(from),
                &["ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", to],
            )
            .unwrap_or_else(|e| panic!("ping6 {from} → {to}: {e}\n{}", s.logs()))
    };
    let out = ping("onprem", "2001:db8:100::10");
    println!(
        "ping6 on-prem → VPC over BGP-learned IPv6 routes: {}",
        out.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or_default()
    );
    assert!(out.contains(" 0% packet loss"), "{out}");
    ping("vpc", "2001:db8:10::10");
    let v = s.status().unwrap();
    for (t, aws6) in [(0, "fd00:a9fe:10::1"), (1, "fd00:a9fe:20::1")] {
        let b = &v["tunnels"][t]["bgp"];
        assert_eq!(b["state"], "established", "{v}");
        assert_eq!(b["neighbor"], aws6, "{v}");
        let counts = (b["prefixes_received"].as_u64(), b["prefixes_advertised"].as_u64());
        assert_eq!(counts, (Some(1), Some(1)), "{v}");
    }
    // Our BGP identifier is the /30 address, as for IPv4 tunnels.
    let t1 = s.birdc(&["show", "protocols", "all", "t1"]);
    assert!(t1.contains("169.254.10.6"), "{t1}");

    // AWS withdraws the VPC prefix: gone; announced again: back.
    s.birdc(&["disable", "vpc"]);
    let gone = s.wait(Duration::from_secs(3), "the withdrawn IPv6 route removed", |s| {
        !routes6(s).contains("2001:db8:100::/48")
    });
    println!("IPv6 withdrawal removed our route in {} ms", gone.as_millis());
    s.birdc(&["enable", "vpc"]);
    s.wait(Duration::from_secs(5), "the IPv6 route back", |s| {
        routes6(s).contains("2001:db8:100::/48")
    });
    ping("onprem", "2001:db8:100::10");

    // Tunnel 1 cut silently while on-prem pings the VPC at 5/s: the /48's halves on tunnel 2
    // move AWS's return traffic, cgwd's failover the outbound.
    let log = s.lab.dir.join("ping6.txt");
    let flow = Command::new("ip")
        .args([
            "netns",
            "exec",
            &s.lab.ns("onprem"),
            "ping",
            "-6",
            "-i",
            "0.2",
            "-W",
            "1",
        ])
        .args(["-c", "50", "2001:db8:100::10"])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    s.lab.cut_tunnel1().expect("cut");
    s.wait(
        Duration::from_secs(5),
        "IPv6 more-specifics via tunnel 2 at AWS",
        |s| {
            s.birdc(&["show", "route", "for", "2001:db8:10::10"])
                .contains("2001:db8:10::/49")
        },
    );
    let _ = flow.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let received = text.lines().filter(|l| l.contains("bytes from")).count();
    let lost = 50 - received;
    println!(
        "silent cut of tunnel 1 at 5 ping6/s: {received}/50 answered, round-trip outage ≈ {} ms",
        lost * 200
    );
    assert!(
        lost * 200 <= 2000,
        "outage {} ms\n{text}\n{}",
        lost * 200,
        s.logs()
    );
    s.lab.restore_tunnel1().expect("restore");
}

/// cgwd ↔ `emulate-aws` speaking BGP as AWS over the IPv6 inside addresses: both sessions, the
/// VPC's /48 learned, the on-prem /48 installed at AWS on both tunnels (tunnel 2's prepended), ping6.
#[test]
fn emulate_aws_speaks_bgp_over_ipv6_inside_addresses() {
    let Some(s) = setup_v6(false) else { return };
    s.wait(Duration::from_secs(20), "both tunnels up", Setup::tunnels_up);
    s.wait(
        Duration::from_secs(5),
        "both IPv6 sessions Established, the VPC learned",
        |s| {
            s.status().is_some_and(|v| {
                (0..2).all(|t| v["tunnels"][t]["bgp"]["state"] == "established")
                    && v["bgp_routes"][0]["prefix"] == "2001:db8:100::/48"
            })
        },
    );
    let aws_routes = |s: &Setup| {
        s.lab
            .exec(&s.lab.ns("aws"), &["ip", "-6", "route", "show"])
            .unwrap_or_default()
    };
    s.wait(
        Duration::from_secs(3),
        "the on-prem /48 at AWS on both tunnels",
        |s| {
            let r = aws_routes(s);
            r.contains("2001:db8:10::/48 dev cgwd-aws1") && r.contains("2001:db8:10::/48 dev cgwd-aws2")
        },
    );
    let r = aws_routes(&s);
    assert!(r.contains("dev cgwd-aws1 metric 111"), "{r}");
    assert!(r.contains("dev cgwd-aws2 metric 132"), "{r}");
    let out = s
        .lab
        .exec(
            &s.lab.ns("onprem"),
            &[
                "ping",
                "-6",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                "2001:db8:100::10",
            ],
        )
        .unwrap_or_else(|e| panic!("ping6: {e}\n{}", s.logs()));
    assert!(out.contains(" 0% packet loss"), "{out}");
}
