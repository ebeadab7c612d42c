//! End-to-end data plane: two `cgwd esp-static` gateways with mirrored manual keys in their own
//! network namespaces, a LAN host behind each, traffic routed through both gateways.
//!
//! ```text
//!  lanA 10.1.0.2 ── 10.1.0.1 [left: cgwd0 169.254.10.2] 192.0.2.1 ══ESP/UDP 4500══ 192.0.2.2
//!        [right: cgwd0 169.254.10.1] 10.2.0.1 ── 10.2.0.2 lanB
//! ```
//!
//! One test runs the RX worker in process instead, in a namespace of its own, with ESP sealed by
//! the test (the reverse-path check).
//!
//! Needs root (namespaces, TUN) and iproute2, ping (iputils) and iperf3; prints "SKIPPED: needs root"
//! and passes otherwise. No speed assertions: throughput lives in benches/throughput.sh.

mod common;

use common::netns::is_root;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces, gateway processes and config files; all removed on drop, also after a failure.
struct Lab {
    tag: String,
    namespaces: Vec<String>,
    gateways: Vec<(String, Child)>,
    files: Vec<PathBuf>,
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{role}-{}", self.tag)
    }

    fn exec(&self, role: &str, args: &[&str]) -> Output {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(args);
        run(&full)
    }

    fn must(&self, role: &str, args: &[&str]) {
        let out = self.exec(role, args);
        assert!(
            out.status.success(),
            "{role}: {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new(tag: String) -> Lab {
        let mut lab = Lab {
            tag,
            namespaces: Vec::new(),
            gateways: Vec::new(),
            files: Vec::new(),
        };
        for role in ["left", "right", "lana", "lanb"] {
            let ns = lab.ns(role);
            must(&["ip", "netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        // (namespace A, interface A, address A, namespace B, interface B, address B)
        let links = [
            ("left", "out", "192.0.2.1/24", "right", "out", "192.0.2.2/24"),
            ("lana", "eth", "10.1.0.2/24", "left", "lan", "10.1.0.1/24"),
            ("lanb", "eth", "10.2.0.2/24", "right", "lan", "10.2.0.1/24"),
        ];
        for (na, ia, aa, nb, ib, ab) in links {
            let (na, nb) = (lab.ns(na), lab.ns(nb));
            must(&[
                "ip", "link", "add", ia, "netns", &na, "type", "veth", "peer", "name", ib, "netns", &nb,
            ]);
            for (ns, ifc, addr) in [(&na, ia, aa), (&nb, ib, ab)] {
                must(&["ip", "-n", ns, "addr", "add", addr, "dev", ifc]);
                must(&["ip", "-n", ns, "link", "set", ifc, "up"]);
            }
        }
        lab.must("lana", &["ip", "route", "add", "default", "via", "10.1.0.1"]);
        lab.must("lanb", &["ip", "route", "add", "default", "via", "10.2.0.1"]);
        for gw in ["left", "right"] {
            lab.must(gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        }
        lab
    }

    /// Starts `cgwd esp-static` in `role` and waits for its "ready" line.
    fn gateway(&mut self, role: &str, config: &str) {
        self.gateway_in(role, role, config);
    }

    /// Starts gateway `name` in the namespace of `ns_role` (two gateways may share one).
    fn gateway_in(&mut self, name: &str, ns_role: &str, config: &str) {
        let role = name;
        let path = std::env::temp_dir().join(format!("cgwd-{}-{role}.toml", self.tag));
        std::fs::write(&path, config).unwrap();
        let log = self.log_path(role);
        self.files.push(path.clone());
        self.files.push(log.clone());
        // Its record of the ESP sequence numbers used with these keys.
        self.files
            .push(cgwd::dataplane::static_keys::seq_state_path(&path));
        let ns = self.ns(ns_role);
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                env!("CARGO_BIN_EXE_cgwd"),
                "esp-static",
                "--config",
            ])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn cgwd");
        let stdout = child.stdout.take().unwrap();
        self.gateways.push((role.to_string(), child));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("cgwd esp-static in {role} did not become ready"));
    }
}

impl Lab {
    /// One iperf3 TCP run from `client` to the server `server_addr` in lanB (`-6` for IPv6);
    /// returns the bytes received. Panics when nothing moved.
    fn iperf3(&self, client: &str, server_addr: &str, secs: &str) -> u64 {
        let server = self.ns("lanb");
        let mut srv = Command::new("ip")
            .args(["netns", "exec", &server, "iperf3", "-s", "-1", "-B", server_addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let out = self.exec(client, &["iperf3", "-c", server_addr, "-t", secs, "-J"]);
        let _ = srv.kill();
        let _ = srv.wait();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 -J output");
        let bytes = json["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
        assert!(
            bytes > 0,
            "iperf3 from {client} to {server_addr} moved nothing: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        println!("iperf3 from {client} to {server_addr} moved {bytes} bytes in {secs} s");
        bytes
    }

    fn log_path(&self, role: &str) -> PathBuf {
        std::env::temp_dir().join(format!("cgwd-{}-{role}.log", self.tag))
    }

    /// SIGTERM to every gateway; each must exit 0 within 3 s (graceful stop). Returns each one's
    /// stderr (its counters).
    fn stop_gateways(&mut self) -> Vec<(String, String)> {
        let mut logs = Vec::new();
        for (role, mut g) in std::mem::take(&mut self.gateways) {
            let _ = Command::new("kill").arg(g.id().to_string()).output();
            let mut status = None;
            for _ in 0..30 {
                if let Ok(Some(s)) = g.try_wait() {
                    status = Some(s);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let log = std::fs::read_to_string(self.log_path(&role)).unwrap_or_default();
            if status.is_none() {
                let _ = g.kill();
                let _ = g.wait();
            }
            assert!(
                status.is_some_and(|s| s.success()),
                "{role} did not stop cleanly: {log}"
            );
            logs.push((role, log));
        }
        logs
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, g) in &mut self.gateways {
            let _ = g.kill();
            let _ = g.wait();
        }
        for ns in &self.namespaces {
            // iperf3 servers and anything else left in the namespace.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

struct Case {
    name: &'static str,
    encryption: &'static str,
    integrity: Option<&'static str>,
    key_len: usize,
    clear_df_bit: bool,
}

fn key(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| format!("{:02x}", (i as u8).wrapping_mul(7).wrapping_add(seed)))
        .collect()
}

/// One side's TOML; the other side mirrors SPIs and keys.
#[allow(clippy::too_many_arguments)]
fn config(
    case: &Case,
    inside: &str,
    peer_inside: &str,
    local: &str,
    peer: &str,
    spis: (u32, u32),
    keys: (&str, &str),
    route: &str,
) -> String {
    let integrity = match case.integrity {
        Some(i) => format!(
            "integrity = \"{i}\"\nintegrity_key_out = \"{}\"\nintegrity_key_in = \"{}\"\n",
            key(32, keys.0.len() as u8 ^ spis.0 as u8),
            key(32, keys.1.len() as u8 ^ spis.1 as u8)
        ),
        None => String::new(),
    };
    format!(
        "tun = \"cgwd0\"\nmtu = 1500\ntunnel_mtu = 1400\ninside_address = \"{inside}/30\"\n\
         peer_inside = \"{peer_inside}\"\nlocal = \"{local}:4500\"\npeer = \"{peer}:4500\"\n\
         encryption = \"{}\"\n{integrity}spi_out = {}\nspi_in = {}\nkey_out = \"{}\"\nkey_in = \"{}\"\n\
         routes = [\"{route}\"]\ntcp_mss = 1359\nclear_df_bit = {}\n",
        case.encryption, spis.0, spis.1, keys.0, keys.1, case.clear_df_bit
    )
}

/// The left and right gateways' TOML for one tunnel: inside /30 169.254.10.0, outside 192.0.2.1 and
/// .2, each routing the other's LAN, keys `k1` (left to right) and `k2` mirrored.
fn mirrored_configs(case: &Case, k1: &str, k2: &str) -> (String, String) {
    let left = config(
        case,
        "169.254.10.2",
        "169.254.10.1",
        "192.0.2.1",
        "192.0.2.2",
        (0x1001, 0x2002),
        (k1, k2),
        "10.2.0.0/24",
    );
    let right = config(
        case,
        "169.254.10.1",
        "169.254.10.2",
        "192.0.2.2",
        "192.0.2.1",
        (0x2002, 0x1001),
        (k2, k1),
        "10.1.0.0/24",
    );
    (left, right)
}

fn run_case(case: Case) {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    for tool in ["ip", "ping"] {
        if !have(tool) {
            println!("SKIPPED: needs {tool}");
            return;
        }
    }
    let mut lab = Lab::new(format!("{}-{}", case.name, std::process::id()));
    let (k1, k2) = (key(case.key_len, 1), key(case.key_len, 101));
    // Integrity keys derive from (key length, SPI) on both sides the same way, mirrored.
    let (left, right) = mirrored_configs(&case, &k1, &k2);
    lab.gateway("left", &left);
    lab.gateway("right", &right);

    // Plain ping across both gateways: no loss.
    let out = lab.exec("lana", &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.2.0.2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "ping: {text}"
    );

    // The tunnels' own inside addresses answer too (packets pinned to the tunnel).
    lab.must(
        "left",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "169.254.10.1"],
    );

    // 1400 bytes with DF: exactly the tunnel MTU, goes through.
    let out = lab.exec(
        "lana",
        &[
            "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1372", "-M", "do", "10.2.0.2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "1400-byte DF ping: {text}"
    );

    // 1500 bytes with DF: over the tunnel MTU. Without clear_df_bit the gateway answers ICMP
    // "fragmentation needed" (mtu 1400); with it, DF is cleared and the packet is fragmented before
    // encryption, so the ping gets through.
    let out = lab.exec(
        "lana",
        &[
            "ping", "-c", "3", "-i", "0.3", "-W", "2", "-s", "1472", "-M", "do", "10.2.0.2",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if case.clear_df_bit {
        assert!(
            out.status.success() && text.contains(" 0% packet loss"),
            "fragmented ping: {text}"
        );
    } else {
        assert!(!out.status.success(), "oversized DF ping must fail: {text}");
        assert!(
            text.contains("mtu = 1400") || text.contains("mtu=1400"),
            "no frag-needed: {text}"
        );
    }

    // TCP through the tunnel (MSS clamped on the SYNs both ways): it moves data.
    let bulk = have("iperf3");
    if bulk {
        lab.iperf3("lana", "10.2.0.2", "2");
    } else {
        println!("iperf3 not installed: TCP part skipped");
    }

    // Hostile and control datagrams at the left gateway's ESP port, from the outside: a NAT
    // keepalive, an IKE message behind the non-ESP marker (no control plane here: counted as
    // dropped), ESP with an unknown SPI, and a 2-byte runt.
    for payload in [
        r"\xff",
        r"\x00\x00\x00\x00ike-message",
        r"\xde\xad\xbe\xef\x00\x00\x00\x01xxxxxxxxxxxxxxxxxxxxxxxx",
        r"\x01\x02",
    ] {
        let cmd = format!("printf '{payload}' > /dev/udp/192.0.2.1/4500");
        lab.must("right", &["bash", "-c", &cmd]);
    }
    std::thread::sleep(Duration::from_millis(300));

    let logs = lab.stop_gateways();
    let left = &logs.iter().find(|(r, _)| r == "left").unwrap().1;
    assert!(left.contains("stopped;"), "no counters: {left}");
    assert!(left.contains("mss_clamped="), "SYNs not clamped: {left}");
    assert!(
        left.contains("rx_ike=1 ") && left.contains("rx_ike_dropped=1"),
        "{left}"
    );
    assert!(left.contains("rx_keepalives="), "{left}");
    assert!(left.contains("rx_malformed=1"), "{left}");
    assert!(left.contains("unknown_spi=1"), "{left}");
    if case.clear_df_bit {
        assert!(left.contains("tx_fragmented="), "{left}");
    } else {
        assert!(left.contains("tx_icmp_frag_needed="), "{left}");
    }
    // Quiet, one thread carried both directions; the bulk TCP stream brought in the second
    // (dataplane::workers), which handed back when it ended.
    if bulk {
        assert!(counter(left, "helper_takeovers") >= 1, "{left}");
        assert!(counter(left, "helper_handbacks") >= 1, "{left}");
    }
}

#[test]
fn aes_gcm_128_ping_df_icmp_and_tcp() {
    run_case(Case {
        name: "gcm",
        encryption: "AES128-GCM-16",
        integrity: None,
        key_len: 20,
        clear_df_bit: false,
    });
}

#[test]
fn aes_cbc_256_sha256_ping_fragmentation_and_tcp() {
    run_case(Case {
        name: "cbc",
        encryption: "AES256",
        integrity: Some("SHA2-256"),
        key_len: 32,
        clear_df_bit: true,
    });
}

/// The number after `name=` in a gateway's counter line, 0 when absent.
fn counter(log: &str, name: &str) -> u64 {
    let key = format!(" {name}=");
    log.find(&key)
        .map(|at| {
            log[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Two tunnels from the left gateway, like AWS's pair: tunnel 1 to 192.0.2.2, tunnel 2 to 192.0.2.3
/// (two single-tunnel gateways "r1" and "r2" in the right namespace; return traffic always via r1).
/// Packets to a tunnel's own inside address stay on it; everything else follows the active tunnel,
/// which SIGUSR1 switches as the failover manager will.
#[test]
fn two_tunnels_follow_the_active_switch() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut lab = Lab::new(format!("two-{}", std::process::id()));
    lab.must("right", &["ip", "addr", "add", "192.0.2.3/24", "dev", "out"]);
    let key = |seed: u8| -> String {
        (0..20u8)
            .map(|i| format!("{:02x}", i.wrapping_mul(13).wrapping_add(seed)))
            .collect()
    };
    let (a1, b1, a2, b2) = (key(1), key(2), key(3), key(4));
    let single =
        |tun: &str, inside: &str, local: &str, spis: (u32, u32), keys: (&str, &str), routes: &str| {
            format!(
                "tun = \"{tun}\"\ninside_address = \"{inside}/30\"\nlocal = \"{local}:4500\"\n\
             peer = \"192.0.2.1:4500\"\nencryption = \"AES128-GCM-16\"\nspi_out = {}\nspi_in = {}\n\
             key_out = \"{}\"\nkey_in = \"{}\"\nroutes = [{routes}]\n",
                spis.0, spis.1, keys.0, keys.1
            )
        };
    let left = format!(
        "{}\n[tunnel2]\ninside_address = \"169.254.11.2/30\"\npeer_inside = \"169.254.11.1\"\n\
         peer = \"192.0.2.3:4500\"\nspi_out = 12289\nspi_in = 16388\nkey_out = \"{a2}\"\nkey_in = \"{b2}\"\n",
        single(
            "cgwd0",
            "169.254.10.2",
            "192.0.2.1",
            (4097, 8194),
            (&a1, &b1),
            "\"10.2.0.0/24\""
        )
        .replace(
            "peer = \"192.0.2.1:4500\"",
            "peer = \"192.0.2.2:4500\"\npeer_inside = \"169.254.10.1\""
        )
    );
    lab.gateway("left", &left);
    lab.gateway_in(
        "r1",
        "right",
        &single(
            "cgwd1",
            "169.254.10.1",
            "192.0.2.2",
            (8194, 4097),
            (&b1, &a1),
            "\"10.1.0.0/24\"",
        ),
    );
    lab.gateway_in(
        "r2",
        "right",
        &single(
            "cgwd2",
            "169.254.11.1",
            "192.0.2.3",
            (16388, 12289),
            (&b2, &a2),
            "",
        ),
    );

    let ping = |lab: &Lab, ns: &str, dst: &str| {
        let out = lab.exec(ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", dst]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && text.contains(" 0% packet loss"),
            "ping {dst} from {ns}: {text}"
        );
    };
    // Active tunnel 1 carries the LAN; tunnel 2's inside address is reached over tunnel 2.
    ping(&lab, "lana", "10.2.0.2");
    ping(&lab, "left", "169.254.11.1");
    ping(&lab, "left", "169.254.10.1");
    // Failover: tunnel 2 becomes active; the LAN keeps working, now through r2.
    let left_pid = lab.gateways.iter().find(|(n, _)| n == "left").unwrap().1.id();
    must(&["kill", "-USR1", &left_pid.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    ping(&lab, "lana", "10.2.0.2");

    let logs = lab.stop_gateways();
    let log = |name: &str| logs.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let (r1, r2) = (log("r1"), log("r2"));
    // r1: 3 LAN pings before the switch + 3 pings to its inside address.
    assert_eq!(counter(&r1, "rx_esp"), 6, "r1: {r1}");
    // r2: 3 pings to its inside address + 3 LAN pings after the switch.
    assert_eq!(counter(&r2, "rx_esp"), 6, "r2: {r2}");
}

/// IPv6 inside the tunnel (ESP next header 41), cgwd <-> cgwd with manual keys:
///
/// ```text
///  lanA fd00:1::2 ── fd00:1::1 [left: cgwd0 fd00:1:0:ff::2] ══ESP══ [right: cgwd0 fd00:1:0:ff::1]
///        fd00:2::1 ── fd00:2::2 lanB
/// ```
///
/// Ping and iperf3 TCP over IPv6 (forwarded from the LAN, and sent by the gateway itself, whose
/// TCP reaches the TUN as GSO_TCPV6 super-packets), MSS clamped for IPv6, an oversize packet answered
/// with ICMPv6 "packet too big" carrying the tunnel MTU, and the left gateway's IPv6 selector
/// (fd00:1::/48 local) refusing a packet for fd00:9::1.
#[test]
fn ipv6_ping_tcp_packet_too_big_and_selectors() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut lab = Lab::new(format!("v6-{}", std::process::id()));
    let addrs = [
        ("lana", "eth", "fd00:1::2/64"),
        ("left", "lan", "fd00:1::1/64"),
        ("lanb", "eth", "fd00:2::2/64"),
        ("right", "lan", "fd00:2::1/64"),
    ];
    for (role, dev, addr) in addrs {
        lab.must(role, &["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }
    lab.must(
        "lana",
        &["ip", "-6", "route", "add", "default", "via", "fd00:1::1"],
    );
    lab.must(
        "lanb",
        &["ip", "-6", "route", "add", "default", "via", "fd00:2::1"],
    );
    for gw in ["left", "right"] {
        lab.must(gw, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    }
    let case = Case {
        name: "v6",
        encryption: "AES128-GCM-16",
        integrity: None,
        key_len: 20,
        clear_df_bit: false,
    };
    let (left, right) = mirrored_configs(&case, &key(20, 7), &key(20, 77));
    let left = left
        + "inside_address6 = \"fd00:1:0:ff::2/126\"\npeer_inside6 = \"fd00:1:0:ff::1\"\n\
           local_ts6 = \"fd00:1::/48\"\n";
    let right = right + "inside_address6 = \"fd00:1:0:ff::1/126\"\npeer_inside6 = \"fd00:1:0:ff::2\"\n";
    lab.gateway("left", &left);
    lab.gateway("right", &right);
    lab.must(
        "left",
        &["ip", "-6", "route", "add", "fd00:2::/64", "dev", "cgwd0"],
    );
    for net in ["fd00:1::/64", "fd00:9::/64"] {
        lab.must("right", &["ip", "-6", "route", "add", net, "dev", "cgwd0"]);
    }

    let ping = |lab: &Lab, ns: &str, args: &[&str]| -> (bool, String) {
        let mut full = vec!["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2"];
        full.extend_from_slice(args);
        let out = lab.exec(ns, &full);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && text.contains(" 0% packet loss"), text)
    };
    let (ok, text) = ping(&lab, "lana", &["fd00:2::2"]);
    assert!(ok, "IPv6 ping across the tunnel: {text}");
    let (ok, text) = ping(&lab, "left", &["fd00:1:0:ff::1"]);
    assert!(ok, "IPv6 ping to the peer's inside address: {text}");
    // Exactly the tunnel MTU (1400 = 40 + 8 + 1352) goes through.
    let (ok, text) = ping(&lab, "lana", &["-s", "1352", "-M", "do", "fd00:2::2"]);
    assert!(ok, "1400-byte IPv6 ping: {text}");
    // 1500 octets: the gateway answers "packet too big", mtu 1400 (no fragmentation for IPv6).
    let out = lab.exec(
        "lana",
        &[
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "2",
            "-s",
            "1452",
            "-M",
            "do",
            "fd00:2::2",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "oversize IPv6 ping must fail: {text}");
    assert!(
        text.contains("mtu=1400") || text.contains("mtu = 1400"),
        "no packet too big: {text}"
    );
    // The host learnt the path MTU from it.
    let route = lab.exec("lana", &["ip", "-6", "route", "get", "fd00:2::2"]);
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(route.contains("mtu 1400"), "PMTU not learnt: {route}");

    // Outside the left gateway's IPv6 selector: sealed by the right gateway, dropped by the left.
    let (ok, text) = ping(&lab, "lanb", &["fd00:9::1"]);
    assert!(!ok, "a packet outside the selector got an answer: {text}");

    if have("iperf3") {
        // From the LAN (forwarded), and from the gateway itself (its TCP reaches the TUN as
        // GSO_TCPV6 super-packets, split by the TX path).
        lab.iperf3("lana", "fd00:2::2", "2");
        lab.iperf3("left", "fd00:2::2", "1");
    } else {
        println!("iperf3 not installed: TCP part skipped");
    }

    let logs = lab.stop_gateways();
    let log = |name: &str| logs.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let (left, right) = (log("left"), log("right"));
    assert!(counter(&left, "tx_icmp6_packet_too_big") >= 1, "{left}");
    assert!(counter(&left, "selector_mismatch") >= 3, "{left}");
    assert_eq!(counter(&right, "selector_mismatch"), 0, "{right}");
    assert!(counter(&left, "rx_esp") >= 9, "{left}");
    if have("iperf3") {
        assert!(
            counter(&left, "mss_clamped") >= 1,
            "IPv6 SYNs not clamped: {left}"
        );
    }
}

/// In process, in a namespace of its own: the RX worker of a tunnel routing 10.100.0.0/16 gets
/// ESP sealed by the mirrored SA over loopback. An inner packet from the VPC prefix and one from
/// the tunnel's far inside address reach the TUN (and a socket behind it); one with a source the
/// connection does not route is dropped and counted, in the data-plane counter and as the
/// tunnel's `reverse_path` drop. A table exempting the connection lets it through.
#[test]
fn rx_drops_a_spoofed_inner_source_and_counts_it() {
    use cgwd::dataplane::rx::RxWorker;
    use cgwd::dataplane::{DataplaneConfig, RouteTable, Shared};
    use cgwd::esp::{DropReason, MAX_HEADROOM, MAX_TAILROOM, SaTable};
    use cgwd::io::tun::{Tun, TunConfig};
    use cgwd::io::udp::UdpSocket;
    use cgwd::sa::{ChildSa, EspKeys, EspSpi, TrafficSelector, TunnelKey};
    use cgwd::secret::Secret;
    use cgwd::suite::Encryption;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let lab = Lab::new(format!("rpf{}", std::process::id()));
    let ns = lab.ns("left");
    // The kernel's own reverse-path filter must not hide what ours does.
    for key in ["all", "default"] {
        lab.must(
            "left",
            &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
        );
    }
    std::thread::spawn(move || {
        common::netns::enter(&ns).expect("setns");
        let [one, two] = TunnelKey::both(0);
        let (ours, far) = (Ipv4Addr::new(169, 254, 10, 6), Ipv4Addr::new(169, 254, 10, 5));
        let (ours_udp, peer_udp): (SocketAddr, SocketAddr) = (
            "127.0.0.1:4500".parse().unwrap(),
            "127.0.0.1:4501".parse().unwrap(),
        );
        let keys = |spi, fill| EspKeys {
            spi: EspSpi(spi),
            encryption: Encryption::Aes128Gcm16,
            integrity: None,
            encryption_key: Secret::new(vec![fill; Encryption::Aes128Gcm16.keymat_len()]),
            integrity_key: Secret::new(Vec::new()),
        };
        let child = |inbound, outbound, local, remote| ChildSa {
            tunnel: one,
            inbound,
            outbound,
            local_ts: TrafficSelector::ANY,
            remote_ts: TrafficSelector::ANY,
            pfs: None,
            local,
            remote,
            replay_window: 64,
        };
        let sas = Arc::new(SaTable::new());
        sas.install(&child(keys(0x2002, 0xb2), keys(0x1001, 0xa1), ours_udp, peer_udp))
            .unwrap();
        let peer = SaTable::new();
        peer.install(&child(keys(0x1001, 0xa1), keys(0x2002, 0xb2), peer_udp, ours_udp))
            .unwrap();

        let shared = Arc::new(Shared::new(sas.clone()));
        let table = |exempt: bool| {
            let mut b = RouteTable::builder();
            for t in [one, two] {
                b.route("10.100.0.0/16".parse().unwrap(), t);
            }
            b.pin(far.into(), one);
            if exempt {
                b.accept_any_source(0);
            }
            b.build()
        };
        shared.set_routes(table(false));
        let tun = Arc::new(
            Tun::create(&TunConfig {
                name: "rpf0".into(),
                mtu: 1400,
                addresses: vec![(ours, 30)],
                offload: false,
            })
            .expect("TUN"),
        );
        let udp = Arc::new(UdpSocket::bind(ours_udp, Duration::from_millis(100)).expect("UDP"));
        let config = DataplaneConfig {
            tunnel_mtu: 1400,
            tcp_mss: None,
            clear_df_bit: false,
            icmp_source: far,
            keepalive: None,
            answer_wait: Duration::ZERO,
        };
        let mut rx = RxWorker::new(config, tun.clone(), udp, shared.clone(), None);
        // What the TUN delivers: UDP to our inside address, port 9999.
        let lan = std::net::UdpSocket::bind((ours, 9999)).expect("listener");
        lan.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let wire = std::net::UdpSocket::bind(peer_udp).unwrap();

        // Seals an IPv4/UDP packet from `src` to our inside address carrying `tag`, sends it.
        let send = |src: Ipv4Addr, tag: &[u8]| {
            let len = 28 + tag.len();
            let mut buf = vec![0u8; MAX_HEADROOM + len + MAX_TAILROOM];
            let p = &mut buf[MAX_HEADROOM..MAX_HEADROOM + len];
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p[8] = 64;
            p[9] = 17;
            p[12..16].copy_from_slice(&src.octets());
            p[16..20].copy_from_slice(&ours.octets());
            let sum = cgwd::dataplane::packet::checksum(&p[..20]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            p[20..22].copy_from_slice(&4000u16.to_be_bytes());
            p[22..24].copy_from_slice(&9999u16.to_be_bytes());
            p[24..26].copy_from_slice(&((8 + tag.len()) as u16).to_be_bytes());
            p[28..].copy_from_slice(tag);
            let sealed = peer
                .seal(one, &mut buf, MAX_HEADROOM..MAX_HEADROOM + len)
                .unwrap();
            wire.send_to(&buf[sealed.range], ours_udp).unwrap();
        };
        let vpc = Ipv4Addr::new(10, 100, 0, 10);
        let spoofed = Ipv4Addr::new(192, 0, 2, 77);
        // One batch: the remembered verdict must not carry over to another source.
        send(vpc, b"vpc-1");
        send(spoofed, b"spoofed-1");
        send(vpc, b"vpc-2");
        send(far, b"far");
        send(spoofed, b"spoofed-2");
        let mut received = 0;
        while received < 5 {
            match rx.step() {
                cgwd::dataplane::rx::RxStep::Received { datagrams, .. } => received += datagrams,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let (n, from) = lan
                .recv_from(&mut buf)
                .expect("a legit packet reaches the LAN side");
            got.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from.ip()));
        }
        lan.set_nonblocking(true).unwrap();
        assert!(lan.recv_from(&mut buf).is_err(), "a spoofed packet got through");
        got.sort();
        assert_eq!(
            got,
            [
                ("far".to_string(), std::net::IpAddr::V4(far)),
                ("vpc-1".to_string(), vpc.into()),
                ("vpc-2".to_string(), vpc.into()),
            ]
        );
        let stats = &shared.stats;
        assert_eq!(stats.rx_esp.load(Relaxed), 5);
        assert_eq!(stats.rx_reverse_path_dropped.load(Relaxed), 2);
        assert_eq!(sas.counters().tunnels[0].drops.get(DropReason::ReversePath), 2);

        // Exempt (bgp.speaker = "external", or the check turned off): the next batch lets it in.
        shared.set_routes(table(true));
        send(spoofed, b"spoofed-3");
        while !matches!(
            rx.step(),
            cgwd::dataplane::rx::RxStep::Received { datagrams: 1, .. }
        ) {
            std::thread::sleep(Duration::from_millis(10));
        }
        lan.set_nonblocking(false).unwrap();
        let (n, from) = lan.recv_from(&mut buf).expect("exempt: delivered");
        assert_eq!((&buf[..n], from.ip()), (&b"spoofed-3"[..], spoofed.into()));
        assert_eq!(stats.rx_reverse_path_dropped.load(Relaxed), 2);
    })
    .join()
    .expect("namespace thread");
}

/// `cgwd esp-static` with IPv6 outside endpoints (2001:db8::1 and ::2, ESP in UDP/IPv6 on 4500):
/// IPv4 LAN traffic crosses, a ping with DF at the tunnel MTU too, and the two gateways counted
/// datagrams both ways.
#[test]
fn static_keys_over_ipv6_outside() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    if !have("ping") {
        println!("SKIPPED: needs ping");
        return;
    }
    let case = Case {
        name: "v6out",
        encryption: "AES256-GCM-16",
        integrity: None,
        key_len: 36,
        clear_df_bit: false,
    };
    let mut lab = Lab::new(format!("{}-{}", case.name, std::process::id()));
    for (role, addr) in [("left", "2001:db8::1/64"), ("right", "2001:db8::2/64")] {
        lab.must(role, &["ip", "-6", "addr", "add", addr, "dev", "out", "nodad"]);
    }
    // The link-local addresses the veths got when they came up are through DAD before use.
    for _ in 0..100 {
        let tentative = ["left", "right"].iter().any(|r| {
            !String::from_utf8_lossy(&lab.exec(r, &["ip", "-6", "addr", "show", "tentative"]).stdout)
                .trim()
                .is_empty()
        });
        if !tentative {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (k1, k2) = (key(case.key_len, 3), key(case.key_len, 103));
    let left = config(
        &case,
        "169.254.10.2",
        "169.254.10.1",
        "[2001:db8::1]",
        "[2001:db8::2]",
        (0x1001, 0x2002),
        (&k1, &k2),
        "10.2.0.0/24",
    );
    let right = config(
        &case,
        "169.254.10.1",
        "169.254.10.2",
        "[2001:db8::2]",
        "[2001:db8::1]",
        (0x2002, 0x1001),
        (&k2, &k1),
        "10.1.0.0/24",
    );
    lab.gateway("left", &left);
    lab.gateway("right", &right);
    let out = lab.exec("lana", &["ping", "-c", "10", "-i", "0.1", "-W", "2", "10.2.0.2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "static keys over IPv6 outside: {}",
        text.lines().rev().nth(1).unwrap_or("")
    );
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "ping: {text}"
    );
    // 1400 octets with DF: the configured tunnel MTU, carried whole in one UDP/IPv6 datagram.
    let out = lab.exec(
        "lana",
        &[
            "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1372", "10.2.0.2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "DF ping: {text}"
    );
    // The ESP really went over IPv6: the kernel's UDP6 counters in the left namespace.
    let snmp = String::from_utf8_lossy(&lab.exec("left", &["cat", "/proc/net/snmp6"]).stdout).into_owned();
    let count = |name: &str| {
        snmp.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (out_dg, in_dg) = (count("Udp6OutDatagrams"), count("Udp6InDatagrams"));
    println!("left gateway: Udp6OutDatagrams {out_dg}, Udp6InDatagrams {in_dg}");
    assert!(out_dg >= 12 && in_dg >= 12, "{snmp}");
}
