//! IPv6 in the namespace labs: links with IPv6 addresses, ping6 and iperf3 between namespaces, and
//! the lab of `cgwd run` against two strongSwan charons playing AWS's endpoints over IPv6 outside
//! addresses ([`StrongSwanLab`]), carrying IPv4 ([`Inside::V4`]) or IPv6 ([`Inside::V6`]) inside
//! the tunnels. Used by `ipv6_outside_e2e.rs`, `ipv6_inside_strongswan.rs` and `ipv6_both_e2e.rs`.
//!
//! ```text
//!  onprem ── lan0 [cgw: cgwd run] 2001:db8:100::10 ─┬─ o0 ── 2001:db8:ffaa:1::21 [a1: charon] ── vpc
//!                                                   └─ o1 ── 2001:db8:ffab:2::22 [a2: charon] ── (vpc, IPv6 inside)
//!  Inside::V4: onprem 10.0.1.10/24, vpc 10.100.0.10 behind a1 only
//!  Inside::V6: onprem 2001:db8:10::10/64, vpc 2001:db8:200::10 behind a1 (metric 100) and a2 (200)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::netns::{run, sysctl};
use super::strongswan::{AWS_ESP, AWS_IKE, Charon, Conn};
use super::tempdir::TempDir;
use super::two_aws::wait_for;

/// The customer gateway's and AWS's IPv6 outside addresses (IPv6 documentation prefix).
pub const CGW: &str = "2001:db8:100::10";
pub const AWS: [&str; 2] = ["2001:db8:ffaa:1::21", "2001:db8:ffab:2::22"];
pub const PSK: [&str; 2] = ["lab_tunnel1_psk.AWS1", "lab_tunnel2_psk.AWS2"];

/// What the tunnels carry (AWS's `TunnelInsideIpVersion`), with the lab's addresses for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inside {
    /// IPv4 inside /30s (configs/lab.describe.json), IPv4 on-prem and VPC.
    V4,
    /// IPv6 inside /126s (configs/ipv6-inside/lab.describe.json), IPv6 on-prem and VPC.
    V6,
}

impl Inside {
    pub fn onprem_host(self) -> &'static str {
        match self {
            Inside::V4 => "10.0.1.10",
            Inside::V6 => "2001:db8:10::10",
        }
    }

    pub fn onprem_net(self) -> &'static str {
        match self {
            Inside::V4 => "10.0.1.0/24",
            Inside::V6 => "2001:db8:10::/48",
        }
    }

    /// A host in the VPC (not 2001:db8:100::/48: that holds the customer gateway's outside address).
    pub fn vpc_host(self) -> &'static str {
        match self {
            Inside::V4 => "10.100.0.10",
            Inside::V6 => "2001:db8:200::10",
        }
    }

    pub fn vpc_net(self) -> &'static str {
        match self {
            Inside::V4 => "10.100.0.0/16",
            Inside::V6 => "2001:db8:200::/48",
        }
    }

    /// AWS's inside address of tunnel `i` (0 or 1) with its prefix, as the lab's file gives it.
    pub fn aws_inside(self, i: usize) -> &'static str {
        match self {
            Inside::V4 => ["169.254.10.5/30", "169.254.20.9/30"][i],
            Inside::V6 => ["fd00:a9fe:10::1/126", "fd00:a9fe:20::1/126"][i],
        }
    }

    /// AWS's inside address of tunnel `i` without the prefix.
    pub fn aws_inside_host(self, i: usize) -> &'static str {
        self.aws_inside(i).split('/').next().unwrap_or_default()
    }

    /// The traffic selectors charon offers and accepts (AWS's default: everything).
    pub fn any(self) -> &'static str {
        match self {
            Inside::V4 => "0.0.0.0/0",
            Inside::V6 => "::/0",
        }
    }

    /// The lab's describe JSON for this inside version, still over IPv4 outside addresses.
    fn sample(self) -> &'static str {
        match self {
            Inside::V4 => "configs/lab.describe.json",
            Inside::V6 => "configs/ipv6-inside/lab.describe.json",
        }
    }
}

/// IPv6 on in `ns`: enabled, forwarding, no duplicate address detection (addresses usable at once).
pub fn ipv6_on(ns: &str) {
    for k in [
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ] {
        sysctl(ns, k);
    }
}

/// `ip -n ns ARGS`, which must succeed.
pub fn ip(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all).unwrap();
}

/// A veth `a.1` in namespace `a.0` ↔ `b.1` in `b.0`, both up; `tmp` (unique on the host) names b's
/// end until it moves.
pub fn veth(a: (&str, &str), b: (&str, &str), tmp: &str) {
    run(
        "ip",
        &[
            "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", tmp, "netns", b.0,
        ],
    )
    .unwrap();
    ip(b.0, &["link", "set", tmp, "name", b.1]);
    ip(a.0, &["link", "set", a.1, "up"]);
    ip(b.0, &["link", "set", b.1, "up"]);
}

/// [`veth`] with each end's IPv6 address/prefix `.2` (no DAD).
pub fn link6(a: (&str, &str, &str), b: (&str, &str, &str), tmp: &str) {
    veth((a.0, a.1), (b.0, b.1), tmp);
    for (ns, dev, addr) in [a, b] {
        ip(ns, &["-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }
}

/// `ping -6 -q -i interval -c count target` in `ns`, in the background (a reply may take 2 s).
pub fn ping6(ns: &str, count: u32, interval: &str, target: &str) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-6", "-q", "-n", "-i", interval, "-W", "2",
        ])
        .args(["-c", &count.to_string(), target])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `ping` summary: (transmitted, received) from the "N packets transmitted, M received" line.
pub fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let mut n = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty());
    let tx = n.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let rx = n.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    (tx, rx)
}

/// What an iperf3 TCP run moved.
pub struct Iperf {
    pub bytes: u64,
    pub mbps: f64,
    /// The sender's MSS (`start.tcp_mss_default`).
    pub mss: Value,
    pub json: Value,
}

/// iperf3 TCP for `secs` from `client_ns` (with `client_args` added, e.g. `-6`) to a one-off server
/// on `server` in `server_ns`; the server is gone when this returns.
pub fn iperf3(server_ns: &str, server: &str, client_ns: &str, client_args: &[&str], secs: u32) -> Iperf {
    let _server = Proc(
        Command::new("ip")
            .args(["netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new("ip")
        .args(["netns", "exec", client_ns, "iperf3", "-c", server])
        .args(client_args)
        .args(["-t", &secs.to_string(), "-J"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 -J: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    Iperf {
        bytes: json["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0),
        mbps: json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6,
        mss: json["start"]["tcp_mss_default"].clone(),
        json,
    }
}

/// The namespaces, removed on drop (also when a step panics), with every process left in them.
pub struct Topology {
    pub onprem: String,
    pub cgw: String,
    pub aws: [String; 2],
    pub vpc: String,
}

impl Topology {
    /// Namespaces `c6<tag>-{o,c,a,b,v}<pid>`: `tag` keeps tests (and test files) apart.
    pub fn create(tag: char, inside: Inside) -> Topology {
        let id = std::process::id();
        let t = Topology {
            onprem: format!("c6{tag}-o{id}"),
            cgw: format!("c6{tag}-c{id}"),
            aws: [format!("c6{tag}-a{id}"), format!("c6{tag}-b{id}")],
            vpc: format!("c6{tag}-v{id}"),
        };
        for ns in t.all() {
            run("ip", &["netns", "add", ns]).unwrap();
            run("ip", &["-n", ns, "link", "set", "lo", "up"]).unwrap();
            // Addresses usable at once: no duplicate address detection in a fresh namespace.
            sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
            sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
        }
        let tmp = |link: &str| format!("y{tag}{link}{id}");
        // The IPv6 Internet between the customer gateway and each AWS endpoint.
        for (i, aws) in AWS.iter().enumerate() {
            let c = format!("o{i}");
            veth((&t.cgw, &c), (&t.aws[i], "out0"), &tmp(&c));
            ip(
                &t.cgw,
                &["-6", "addr", "add", &format!("{CGW}/128"), "dev", &c, "nodad"],
            );
            ip(&t.cgw, &["-6", "route", "add", aws, "dev", &c, "src", CGW]);
            ip(
                &t.aws[i],
                &["-6", "addr", "add", &format!("{aws}/128"), "dev", "out0", "nodad"],
            );
            ip(&t.aws[i], &["-6", "route", "add", CGW, "dev", "out0", "src", aws]);
        }
        match inside {
            Inside::V4 => {
                // On-premises LAN, and the VPC behind tunnel 1's endpoint.
                veth((&t.onprem, "eth0"), (&t.cgw, "lan0"), &tmp("l"));
                let onprem = format!("{}/24", inside.onprem_host());
                ip(&t.onprem, &["addr", "add", &onprem, "dev", "eth0"]);
                ip(&t.onprem, &["route", "add", "default", "via", "10.0.1.1"]);
                ip(&t.cgw, &["addr", "add", "10.0.1.1/24", "dev", "lan0"]);
                sysctl(&t.cgw, "net.ipv4.ip_forward=1");
                veth((&t.aws[0], "vpc0"), (&t.vpc, "eth0"), &tmp("v"));
                ip(&t.aws[0], &["addr", "add", "10.100.0.1/24", "dev", "vpc0"]);
                sysctl(&t.aws[0], "net.ipv4.ip_forward=1");
                let vpc = format!("{}/24", inside.vpc_host());
                ip(&t.vpc, &["addr", "add", &vpc, "dev", "eth0"]);
                ip(&t.vpc, &["route", "add", "default", "via", "10.100.0.1"]);
            }
            Inside::V6 => {
                for ns in t.all() {
                    ipv6_on(ns);
                }
                let onprem = format!("{}/64", inside.onprem_host());
                link6(
                    (&t.onprem, "eth0", &onprem),
                    (&t.cgw, "lan0", "2001:db8:10::1/64"),
                    &tmp("l"),
                );
                ip(
                    &t.onprem,
                    &["-6", "route", "add", "default", "via", "2001:db8:10::1"],
                );
                // The VPC answers either tunnel: back to on-prem through a1 (metric 100) or a2 (200),
                // at most 1400 octets a packet: charon's ipsec0 (kernel-libipsec) carries no more,
                // and IPv6 routers do not fragment (the VPC host would lose its first large answer
                // to learn that from a Packet Too Big).
                let vpc = format!("{}/128", inside.vpc_host());
                ip(&t.vpc, &["-6", "addr", "add", &vpc, "dev", "lo"]);
                for i in 0..2 {
                    let (near, far) = Topology::vpc_link6(i);
                    link6(
                        (&t.aws[i], "vpc0", &format!("{near}/64")),
                        (&t.vpc, &format!("eth{}", i + 1), &format!("{far}/64")),
                        &tmp(&format!("v{i}")),
                    );
                    ip(&t.aws[i], &["-6", "route", "add", inside.vpc_net(), "via", &far]);
                    let metric = (100 * (i + 1)).to_string();
                    ip(
                        &t.vpc,
                        &[
                            "-6",
                            "route",
                            "add",
                            inside.onprem_net(),
                            "via",
                            &near,
                            "metric",
                            &metric,
                            "mtu",
                            "1400",
                        ],
                    );
                }
            }
        }
        t
    }

    /// [`Inside::V6`]: the link between AWS endpoint `i` and the VPC (the endpoint's address, the
    /// VPC's).
    pub fn vpc_link6(i: usize) -> (String, String) {
        (
            format!("2001:db8:20{}::1", i + 1),
            format!("2001:db8:20{}::10", i + 1),
        )
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.onprem, &self.cgw, &self.aws[0], &self.aws[1], &self.vpc].into_iter()
    }

    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
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

/// A background process (cgwd, iperf3 server), killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lab's describe JSON for `inside` moved to IPv6 outside addresses (`OutsideIpAddressType`
/// Ipv6; the same tunnels, inside addresses and PSKs), written to `dir`.
pub fn ipv6_config(dir: &Path, inside: Inside) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(inside.sample());
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace(
            "\"OutsideIpAddressType\": \"PublicIpv4\"",
            "\"OutsideIpAddressType\": \"Ipv6\"",
        )
        .replace("198.51.100.11", AWS[0])
        .replace("203.0.113.12", AWS[1])
        .replace("192.0.2.10", CGW);
    let path = dir.join("vpn-ipv6.describe.json");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn cgwd_status(sock: &Path) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

pub fn up(s: &Value, i: usize) -> bool {
    let t = &s["tunnels"][i];
    t["ike_phase1_state"] == "established" && t["ike_phase2_state"] == "established"
}

/// Two charons as AWS (`edit(i, swanctl.conf)` applied) and `cgwd run` in the cgw namespace with
/// `config` and `extra` settings, both tunnels established over IPv6 and answering probes.
/// Fields drop in order: cgwd and the charons end before their namespaces and files go.
pub struct StrongSwanLab {
    pub daemon: Proc,
    pub charons: Vec<Charon>,
    pub topo: Topology,
    _dir: TempDir,
    pub sock: PathBuf,
    pub log_path: PathBuf,
    pub ifname: String,
    pub inside: Inside,
}

impl StrongSwanLab {
    pub fn start(
        tag: char,
        inside: Inside,
        config: impl Fn(&Path) -> PathBuf,
        extra: &str,
        edit: impl Fn(usize, String) -> String,
    ) -> StrongSwanLab {
        let topo = Topology::create(tag, inside);
        let dir = TempDir::new(&format!("v6out-{tag}"));
        // AWS's two endpoints: charon waiting for cgwd, AWS's full lists, selectors of the inside
        // IP version, AWS's inside address on ipsec0 and the on-prem prefix routed into the tunnel
        // (what a static route at AWS does).
        let charons: Vec<Charon> = (0..2)
            .map(|i| {
                let c = Charon::start(&topo.aws[i], &dir.0.join(format!("aws{}", i + 1))).unwrap();
                let mut conn = Conn::new(AWS[i], CGW, PSK[i], AWS_IKE, AWS_ESP);
                conn.local_ts = inside.any().into();
                conn.remote_ts = inside.any().into();
                let file = c.dir.join("swanctl.conf");
                std::fs::write(&file, edit(i, conn.swanctl_conf())).unwrap();
                c.swanctl(
                    "--load-all",
                    &["--noprompt", "--file", &file.display().to_string()],
                )
                .unwrap();
                let ns = &topo.aws[i];
                ip(ns, &["link", "set", "ipsec0", "up"]);
                let family = if inside == Inside::V6 { "-6" } else { "-4" };
                let mut addr = vec![family, "addr", "add", inside.aws_inside(i), "dev", "ipsec0"];
                if inside == Inside::V6 {
                    addr.push("nodad");
                }
                ip(ns, &addr);
                ip(
                    ns,
                    &[family, "route", "add", inside.onprem_net(), "dev", "ipsec0"],
                );
                c
            })
            .collect();
        let config = config(&dir.0);
        let ifname = format!("c6{tag}{}", std::process::id() % 100_000);
        let sock = dir.0.join("ctl").join("cgwd.sock");
        let settings = dir.0.join("cgwd.toml");
        // No local.address: cgwd finds the customer gateway's IPv6 address from the file on this
        // host.
        std::fs::write(
            &settings,
            format!(
                "[interface]\nname = \"{ifname}\"\n\
                 [routing]\nvpc_cidrs = [\"{}\"]\nonprem_cidrs = [\"{}\"]\n\
                 [control]\nsocket = \"{}\"\n[bgp]\nspeaker = \"off\"\n{extra}",
                inside.vpc_net(),
                inside.onprem_net(),
                sock.display()
            ),
        )
        .unwrap();
        let log_path = dir.0.join("cgwd.log");
        let daemon = Proc(
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
        );
        let mut lab = StrongSwanLab {
            daemon,
            charons,
            topo,
            _dir: dir,
            sock,
            log_path,
            ifname,
            inside,
        };
        let sock = lab.sock.clone();
        wait_for("both tunnels established", Duration::from_secs(30), || {
            if let Ok(Some(code)) = lab.daemon.0.try_wait() {
                panic!("cgwd exited with {code}{}", lab.diag());
            }
            cgwd_status(&sock).is_some_and(|s| up(&s, 0) && up(&s, 1))
        });
        wait_for("probe replies on both tunnels", Duration::from_secs(10), || {
            cgwd_status(&sock).is_some_and(|s| (0..2).all(|i| s["tunnels"][i]["probe_rtt_ms"].is_number()))
        });
        lab
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn diag(&self) -> String {
        format!(
            "\n--- cgwd log\n{}\n--- charon 1\n{}\n--- charon 2\n{}",
            self.log(),
            self.charons[0].list_sas(),
            self.charons[1].list_sas()
        )
    }

    /// SIGTERM: cgwd deletes its SAs, removes what it made and exits 0; then the lab goes.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// [`StrongSwanLab::stop`] keeping the namespaces, to look at what cgwd left behind.
    pub fn terminate(&mut self) {
        run("kill", &["-TERM", &self.daemon.0.id().to_string()]).unwrap();
        let mut code = None;
        wait_for("cgwd exit after SIGTERM", Duration::from_secs(5), || {
            code = self.daemon.0.try_wait().unwrap();
            code.is_some()
        });
        assert!(code.unwrap().success(), "{}", self.diag());
    }
}
