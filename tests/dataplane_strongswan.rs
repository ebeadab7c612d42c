//! ESP data plane interop, root only: traffic from an on-premises host through `cgwd run` and a
//! strongSwan charon (kernel-libipsec, ESP-in-UDP) playing AWS, to a "VPC" address behind it, for
//! an AES-GCM suite and an AES-CBC/HMAC-SHA2 suite.
//!
//! Topology (all namespaces created here; names carry the pid and a per-test number):
//!
//! ```text
//!  onprem 10.0.1.10 ── lan ── 10.0.1.1 [cgw: cgwd run] 192.0.2.10 ── veth ── 198.51.100.11 [aws: charon]
//!                                                                 ipsec0 169.254.10.5/30, lo 10.100.0.10 ("VPC")
//! ```
//!
//! Only tunnel 1 has an AWS endpoint; tunnel 2's address (203.0.113.12) is routed into the aws
//! namespace, which does not own it, so its IKE requests vanish (an AWS endpoint that is down).
//!
//! cgwd gets the AWS-format file (configs/lab.describe.json with its TunnelOptions narrowed to the
//! suite under test, written to the test's temp dir) and a settings file. Checked per suite: the
//! negotiated suite, 20 pings at 50 ms with 0 % loss, a 1400-byte ping with DF set arrives, one
//! byte over the TUN MTU with DF gets "fragmentation needed" with that MTU, a 2000-byte ping
//! without DF arrives, iperf3 TCP for 3 s moves bytes (the rate is printed, never asserted),
//! `cgwd status --json` counts packets both ways on tunnel 1, and SIGTERM ends cgwd with exit 0.
//!
//! Needs root, strongSwan (charon + swanctl), iproute2, iputils ping and iperf3; prints
//! "SKIPPED: ..." and passes otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::netns::{run, skip_unless_root};
use common::strongswan::{Charon, Conn};
use common::tempdir::TempDir;
use serde_json::Value;

const CGW: &str = "192.0.2.10";
const AWS1: &str = "198.51.100.11";
const AWS2: &str = "203.0.113.12";
const PSK1: &str = "lab_tunnel1_psk.AWS1";
const AWS_INSIDE: &str = "169.254.10.5/30";
const ONPREM_HOST: &str = "10.0.1.10";
const ONPREM_NET: &str = "10.0.1.0/24";
const VPC_HOST: &str = "10.100.0.10";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One suite under test: what cgwd's config allows and what charon (AWS) accepts.
struct Suite {
    label: &'static str,
    /// TunnelOptions values (AWS spelling) written into the config variant.
    encryption: &'static str,
    integrity: &'static str,
    dh_group: u16,
    /// charon proposals.
    ike: &'static str,
    esp: &'static str,
    /// Phase 2 integrity `cgwd status --json` must show (`None` for AEAD).
    esp_integrity: Option<&'static str>,
}

struct Topology {
    onprem: String,
    cgw: String,
    aws: String,
}

impl Topology {
    fn create(n: u32) -> Topology {
        let id = std::process::id();
        let t = Topology {
            onprem: format!("cgds-o{id}-{n}"),
            cgw: format!("cgds-c{id}-{n}"),
            aws: format!("cgds-a{id}-{n}"),
        };
        // From here on, Drop removes whatever was created, also when a step below panics.
        for ns in [&t.onprem, &t.cgw, &t.aws] {
            run("ip", &["netns", "add", ns]).unwrap();
            run("ip", &["-n", ns, "link", "set", "lo", "up"]).unwrap();
            let _ = t.exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        }
        let veth = |a: &str, a_name: &str, b: &str, b_name: &str, tag: &str| {
            let (ta, tb) = (format!("x{tag}{id}{n}"), format!("y{tag}{id}{n}"));
            run(
                "ip",
                &[
                    "link", "add", &ta, "netns", a, "type", "veth", "peer", "name", &tb, "netns", b,
                ],
            )
            .unwrap();
            run("ip", &["-n", a, "link", "set", &ta, "name", a_name]).unwrap();
            run("ip", &["-n", b, "link", "set", &tb, "name", b_name]).unwrap();
            run("ip", &["-n", a, "link", "set", a_name, "up"]).unwrap();
            run("ip", &["-n", b, "link", "set", b_name, "up"]).unwrap();
        };
        // On-premises LAN.
        veth(&t.onprem, "eth0", &t.cgw, "lan0", "l");
        run(
            "ip",
            &[
                "-n",
                &t.onprem,
                "addr",
                "add",
                &format!("{ONPREM_HOST}/24"),
                "dev",
                "eth0",
            ],
        )
        .unwrap();
        run(
            "ip",
            &["-n", &t.onprem, "route", "add", "default", "via", "10.0.1.1"],
        )
        .unwrap();
        run("ip", &["-n", &t.cgw, "addr", "add", "10.0.1.1/24", "dev", "lan0"]).unwrap();
        t.exec(&t.cgw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // The Internet between the customer gateway and AWS.
        veth(&t.cgw, "out0", &t.aws, "out0", "o");
        run(
            "ip",
            &["-n", &t.cgw, "addr", "add", &format!("{CGW}/32"), "dev", "out0"],
        )
        .unwrap();
        for aws in [AWS1, AWS2] {
            run(
                "ip",
                &["-n", &t.cgw, "route", "add", aws, "dev", "out0", "src", CGW],
            )
            .unwrap();
        }
        run(
            "ip",
            &["-n", &t.aws, "addr", "add", &format!("{AWS1}/32"), "dev", "out0"],
        )
        .unwrap();
        run(
            "ip",
            &["-n", &t.aws, "route", "add", CGW, "dev", "out0", "src", AWS1],
        )
        .unwrap();
        // The VPC host AWS routes to.
        run(
            "ip",
            &[
                "-n",
                &t.aws,
                "addr",
                "add",
                &format!("{VPC_HOST}/32"),
                "dev",
                "lo",
            ],
        )
        .unwrap();
        t
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run("ip", &args).unwrap_or_else(|e| e.to_string())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.onprem, &self.cgw, &self.aws] {
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
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = cgwd::io::clock::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// configs/lab.describe.json with both tunnels' TunnelOptions allowing only `suite`.
fn config_variant(suite: &Suite, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    let values = |v: Value| Value::Array(vec![serde_json::json!({ "Value": v })]);
    let tunnels = json["VpnConnections"][0]["Options"]["TunnelOptions"]
        .as_array_mut()
        .expect("TunnelOptions");
    for t in tunnels {
        for phase in ["Phase1", "Phase2"] {
            t[format!("{phase}EncryptionAlgorithms")] = values(suite.encryption.into());
            t[format!("{phase}IntegrityAlgorithms")] = values(suite.integrity.into());
            t[format!("{phase}DHGroupNumbers")] = values(suite.dh_group.into());
        }
    }
    let path = dir.join("vpn.describe.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    path
}

fn cgwd_status(sock: &Path) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn tunnel1_up(s: &Value) -> bool {
    let t = &s["tunnels"][0];
    t["ike_phase1_state"] == "established" && t["ike_phase2_state"] == "established"
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

fn traffic_through(suite: Suite) {
    if skip_unless_root() {
        return;
    }
    if !have("iperf3") {
        println!("SKIPPED: needs iperf3");
        return;
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let topo = Topology::create(n);
    let dir = TempDir::new(&format!("dp-ss-{}", suite.label));

    // AWS's side: charon waits for cgwd, answers with the suite under test only.
    let charon = Charon::start(&topo.aws, &dir.0.join("aws1")).unwrap();
    charon
        .load(&Conn::new(AWS1, CGW, PSK1, suite.ike, suite.esp))
        .unwrap();
    run("ip", &["-n", &topo.aws, "link", "set", "ipsec0", "up"]).unwrap();
    run(
        "ip",
        &["-n", &topo.aws, "addr", "add", AWS_INSIDE, "dev", "ipsec0"],
    )
    .unwrap();
    // AWS routes the on-premises prefix into the tunnel (what BGP or a static route would do).
    run(
        "ip",
        &["-n", &topo.aws, "route", "add", ONPREM_NET, "dev", "ipsec0"],
    )
    .unwrap();

    let config = config_variant(&suite, &dir.0);
    let ifname = format!("cgds{}{n}", std::process::id() % 100_000);
    let sock = dir.0.join("ctl").join("cgwd.sock");
    let settings = dir.0.join("cgwd.toml");
    std::fs::write(
        &settings,
        format!(
            "[interface]\nname = \"{ifname}\"\n[local]\naddress = \"{CGW}\"\n\
             [routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\nonprem_cidrs = [\"{ONPREM_NET}\"]\n\
             [control]\nsocket = \"{}\"\n[bgp]\nspeaker = \"off\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let log_path = dir.0.join("cgwd.log");
    let mut daemon = Proc(
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
    let diag = || {
        format!(
            "\n--- cgwd log\n{}\n--- charon\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            charon.list_sas()
        )
    };

    wait_for("tunnel 1 established", Duration::from_secs(30), || {
        if let Ok(Some(code)) = daemon.0.try_wait() {
            panic!("cgwd exited with {code}{}", diag());
        }
        cgwd_status(&sock).is_some_and(|s| tunnel1_up(&s))
    });
    let s = cgwd_status(&sock).unwrap();
    let p1 = s["tunnels"][0]["phase1_algorithms"].to_string();
    let p2 = s["tunnels"][0]["phase2_algorithms"].to_string();
    println!("{}: phase 1 {p1}, phase 2 {p2}", suite.label);
    let (a1, a2) = (
        &s["tunnels"][0]["phase1_algorithms"],
        &s["tunnels"][0]["phase2_algorithms"],
    );
    assert_eq!(a1["encryption"], suite.encryption, "phase 1 {p1}{}", diag());
    assert_eq!(a1["integrity"], suite.integrity, "phase 1 {p1}");
    assert_eq!(a1["dh_group"], suite.dh_group, "phase 1 {p1}");
    assert_eq!(a2["encryption"], suite.encryption, "phase 2 {p2}");
    assert_eq!(a2["integrity"].as_str(), suite.esp_integrity, "phase 2 {p2}");
    let sas = charon.list_sas();
    assert!(sas.contains("INSTALLED"), "{sas}");

    // 1. 20 pings at 50 ms from the on-premises host to the VPC host: none lost.
    let ping = topo.exec(
        &topo.onprem,
        &["ping", "-n", "-c", "20", "-i", "0.05", "-W", "2", VPC_HOST],
    );
    println!("{}: {}", suite.label, ping.lines().rev().nth(1).unwrap_or(""));
    assert!(ping.contains(" 0% packet loss"), "{ping}{}", diag());

    // 2. A 1400-byte IP packet with DF set fits the tunnel MTU cgwd derived: it arrives whole.
    let big = topo.exec(
        &topo.onprem,
        &[
            "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1372", VPC_HOST,
        ],
    );
    assert!(big.contains(" 0% packet loss"), "{big}{}", diag());
    assert!(big.contains("1380 bytes from"), "{big}");

    // 2b. One byte over the TUN MTU with DF: the gateway answers "fragmentation needed" with the
    // tunnel MTU (path MTU discovery works for on-prem hosts); without DF a 2000-byte ping arrives.
    let link = topo.exec(&topo.cgw, &["ip", "link", "show", &ifname]);
    let mtu: usize = link
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {link}"));
    let over = (mtu - 28 + 1).to_string();
    let too_big = topo.exec(
        &topo.onprem,
        &[
            "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", &over, VPC_HOST,
        ],
    );
    println!(
        "{}: TUN MTU {mtu}; DF ping of {} bytes: {}",
        suite.label,
        mtu + 1,
        too_big.lines().nth(1).unwrap_or("")
    );
    assert!(too_big.contains(&format!("mtu = {mtu}")), "{too_big}{}", diag());
    let frag = topo.exec(
        &topo.onprem,
        &[
            "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-M", "dont", "-s", "2000", VPC_HOST,
        ],
    );
    assert!(frag.contains(" 0% packet loss"), "{frag}{}", diag());

    // 3. iperf3 TCP for 3 s: bytes move (the rate goes to the log, never asserted).
    let _server = Proc(
        Command::new("ip")
            .args(["netns", "exec", &topo.aws, "iperf3", "-s", "-1", "-B", VPC_HOST])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.onprem,
            "iperf3",
            "-c",
            VPC_HOST,
            "-t",
            "3",
            "-J",
        ])
        .output()
        .unwrap();
    let iperf: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 -J: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let bytes = iperf["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let mbps = iperf["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6;
    println!(
        "{}: iperf3 TCP on-prem → VPC through cgwd ↔ strongSwan: {bytes} bytes in 3 s, {mbps:.1} Mbit/s \
         (sender MSS {})",
        suite.label, iperf["start"]["tcp_mss_default"]
    );
    assert!(bytes > 0, "iperf3 moved nothing: {iperf}{}", diag());

    // 4. cgwd counted the traffic both ways on tunnel 1. The status snapshot is refreshed every
    //    500 ms, so wait for the one taken after iperf3 finished.
    wait_for(
        "status counters to include the iperf3 run",
        Duration::from_secs(5),
        || {
            cgwd_status(&sock)
                .is_some_and(|s| s["tunnels"][0]["traffic"]["bytes_out"].as_u64().unwrap_or(0) >= bytes)
        },
    );
    let s = cgwd_status(&sock).unwrap();
    let traffic = &s["tunnels"][0]["traffic"];
    println!("{}: cgwd tunnel 1 traffic {traffic}", suite.label);
    for key in ["packets_in", "packets_out"] {
        assert!(
            traffic[key].as_u64().unwrap_or(0) >= 20,
            "{key}: {traffic}{}",
            diag()
        );
    }
    assert!(traffic["bytes_out"].as_u64().unwrap_or(0) >= bytes, "{traffic}");

    // Clean exit on SIGTERM.
    run("kill", &["-TERM", &daemon.0.id().to_string()]).unwrap();
    let mut code = None;
    wait_for("cgwd exit after SIGTERM", Duration::from_secs(5), || {
        code = daemon.0.try_wait().unwrap();
        code.is_some()
    });
    assert!(code.unwrap().success(), "{}", diag());
    drop(charon);
}

#[test]
fn aes256_gcm_with_strongswan() {
    traffic_through(Suite {
        label: "aes256gcm16",
        encryption: "AES256-GCM-16",
        integrity: "SHA2-384",
        dh_group: 20,
        ike: "aes256gcm16-prfsha384-ecp384",
        esp: "aes256gcm16-ecp384",
        esp_integrity: None,
    });
}

#[test]
fn aes256_cbc_sha256_with_strongswan() {
    traffic_through(Suite {
        label: "aes256cbc-sha256",
        encryption: "AES256",
        integrity: "SHA2-256",
        dh_group: 14,
        ike: "aes256-sha256-modp2048",
        esp: "aes256-sha256-modp2048",
        esp_integrity: Some("SHA2-256"),
    });
}
