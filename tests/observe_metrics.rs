//! Prometheus metrics: the series a dashboard needs, served over HTTP on 127.0.0.1, and (when
//! `promtool` from Debian's `prometheus` package is installed) valid by Prometheus's own checker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use cgwd::observe::metrics::BgpState;
use cgwd::observe::{BgpSnapshot, MetricsRegistry, MetricsServer, TunnelMetricsSnapshot};

const L1: &str = r#"{tunnel_outside_ip="203.0.113.10",vpn_id="vpn-0123456789abcdef0"}"#;
const L2: &str = r#"{tunnel_outside_ip="198.51.100.20",vpn_id="vpn-0123456789abcdef0"}"#;

fn tunnel(ip: &str, up: bool) -> TunnelMetricsSnapshot {
    TunnelMetricsSnapshot {
        vpn_id: "vpn-0123456789abcdef0".into(),
        tunnel_outside_ip: ip.parse().unwrap(),
        ipsec_up: up,
        bgp: None,
        active: up,
        bytes_in: 0,
        packets_in: 0,
        bytes_out: 0,
        packets_out: 0,
        drops: Vec::new(),
        ike_rekeys: 0,
        child_rekeys: 0,
        ike_sa_age: None,
        child_sa_age: None,
        dpd_rtt: None,
    }
}

fn registry_with_traffic() -> MetricsRegistry {
    let m = MetricsRegistry::new();
    let mut t1 = tunnel("203.0.113.10", true);
    t1.bytes_in = 1_500;
    t1.packets_in = 3;
    t1.bytes_out = 84_000;
    t1.packets_out = 60;
    t1.drops = vec![("auth_failed".into(), 2), ("replay_duplicate".into(), 1)];
    t1.ike_rekeys = 1;
    t1.child_rekeys = 4;
    t1.ike_sa_age = Some(Duration::from_secs(3_000));
    t1.child_sa_age = Some(Duration::from_millis(250_500));
    t1.dpd_rtt = Some(Duration::from_millis(25));
    m.update_tunnel(&t1);
    let mut t2 = tunnel("198.51.100.20", false);
    t2.bgp = Some(BgpSnapshot {
        state: BgpState::Active,
        prefixes_received: 0,
        prefixes_advertised: 2,
    });
    m.update_tunnel(&t2);
    m.update_connection("vpn-0123456789abcdef0", 1);
    m
}

#[test]
fn rendering_has_every_series() {
    let text = registry_with_traffic().encode();
    let expected = [
        format!("cgwd_tunnel_state{L1} 1"),
        format!("cgwd_tunnel_state{L2} 0"),
        format!("cgwd_tunnel_ipsec_up{L1} 1"),
        format!("cgwd_tunnel_active{L2} 0"),
        format!("cgwd_tunnel_data_in_bytes_total{L1} 1500"),
        format!("cgwd_tunnel_data_out_bytes_total{L1} 84000"),
        format!("cgwd_tunnel_data_in_packets_total{L1} 3"),
        format!("cgwd_tunnel_data_out_packets_total{L1} 60"),
        r#"cgwd_tunnel_drops_total{reason="auth_failed",tunnel_outside_ip="203.0.113.10",vpn_id="vpn-0123456789abcdef0"} 2"#.into(),
        r#"cgwd_tunnel_rekeys_total{sa="child",tunnel_outside_ip="203.0.113.10",vpn_id="vpn-0123456789abcdef0"} 4"#.into(),
        r#"cgwd_tunnel_rekeys_total{sa="ike",tunnel_outside_ip="203.0.113.10",vpn_id="vpn-0123456789abcdef0"} 1"#.into(),
        format!("cgwd_tunnel_ike_sa_age_seconds{L1} 3000"),
        format!("cgwd_tunnel_child_sa_age_seconds{L1} 250.5"),
        format!("cgwd_tunnel_dpd_rtt_seconds{L1} 0.025"),
        r#"cgwd_failovers_total{vpn_id="vpn-0123456789abcdef0"} 1"#.into(),
        format!("cgwd_bgp_session_state{L2} 3"),
        format!("cgwd_bgp_prefixes_advertised{L2} 2"),
        "# TYPE cgwd_tunnel_data_out_bytes_total counter".into(),
        "# HELP cgwd_tunnel_data_out_bytes_total Inner bytes sent to AWS before encryption (AWS TunnelDataIn)".into(),
    ];
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Tunnel 2 never answered a DPD probe: no sample rather than a made-up 0.
    assert!(
        !text.contains(&format!("cgwd_tunnel_dpd_rtt_seconds{L2}")),
        "{text}"
    );
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Body of an HTTP response (sent with a length, or chunked as HTTP/1.1 allows).
fn body(resp: &str) -> String {
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap();
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return rest.to_string();
    }
    let mut out = String::new();
    let mut rest = rest;
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
}

#[test]
fn server_serves_metrics_on_loopback() {
    let metrics = Arc::new(registry_with_traffic());
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics)).unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    // A taken port is an error at start (the daemon reports it), not a silent no-metrics.
    assert!(MetricsServer::start(addr, Arc::clone(&metrics)).is_err());

    let resp = http_get(addr, "/metrics");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{resp}"
    );
    let text = body(&resp);
    assert!(
        text.contains(&format!("cgwd_tunnel_data_out_bytes_total{L1} 84000")),
        "{text}"
    );

    // Counters move between scrapes as the daemon updates them.
    let mut t1 = tunnel("203.0.113.10", true);
    t1.bytes_out = 100_000;
    metrics.update_tunnel(&t1);
    let text = body(&http_get(addr, "/metrics"));
    assert!(
        text.contains(&format!("cgwd_tunnel_data_out_bytes_total{L1} 100000")),
        "{text}"
    );

    assert!(http_get(addr, "/").starts_with("HTTP/1.1 404"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");

    // Garbage does not take the server down.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"\x00\xff\r\n\r\n").unwrap();
    drop(s);
    assert!(http_get(addr, "/metrics").starts_with("HTTP/1.1 200"));

    drop(server);
    // The server's thread closes the listener when the server is dropped.
    let closed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect(addr).is_err()
    });
    assert!(closed, "listener closed on drop");
}

/// Threads of this test process.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn idle_and_trickling_clients_neither_block_a_scrape_nor_add_threads() {
    let server =
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(registry_with_traffic())).unwrap();
    let addr = server.local_addr();
    let before = thread_count();
    // Many more than the server keeps open: half say nothing, half send a request head that never ends.
    let mut clients: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for s in clients.iter_mut().step_by(2) {
        s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let t0 = cgwd::io::clock::now();
    let resp = http_get(addr, "/metrics");
    let took = t0.elapsed();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        took < Duration::from_secs(2),
        "scrape took {took:?} behind idle clients"
    );
    // Other tests of this binary run alongside and have threads of their own: allow a few.
    let after = thread_count();
    assert!(
        after <= before + 8,
        "threads {before} -> {after} with 100 idle clients"
    );
    drop(clients);
}

#[test]
fn promtool_accepts_the_exposition() {
    let Ok(out) = std::process::Command::new("promtool").arg("--version").output() else {
        println!("SKIPPED: promtool not installed (Debian package prometheus)");
        return;
    };
    assert!(out.status.success());
    // Validate what a scraper gets, not just the encoder's output.
    let server =
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(registry_with_traffic())).unwrap();
    let text = body(&http_get(server.local_addr(), "/metrics"));
    assert!(text.contains("cgwd_tunnel_state"), "{text}");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status_tunnel(n: u8, aws: &str, up: bool, bytes_out: u64) -> cgwd::daemon::status::TunnelStatus {
    use cgwd::daemon::status::{PhaseState, Traffic, TunnelStatus};
    let phase = if up {
        PhaseState::Established
    } else {
        PhaseState::Down
    };
    TunnelStatus {
        tunnel: n,
        ike_phase1_state: phase,
        ike_phase2_state: phase,
        local_outside: "192.0.2.1".parse().unwrap(),
        aws_outside: aws.parse().unwrap(),
        inside: "169.254.10.2/30".parse().unwrap(),
        aws_inside: "169.254.10.1".parse().unwrap(),
        phase1_algorithms: None,
        phase2_algorithms: None,
        spi_in: None,
        spi_out: None,
        uptime_secs: None,
        next_rekey_secs: None,
        traffic: Traffic {
            packets_in: 1,
            bytes_in: 100,
            packets_out: 2,
            bytes_out,
        },
        drops: [("auth_failed".to_string(), 5)].into_iter().collect(),
        nat_t_detected: false,
        dpd_enabled: true,
        liveness: "healthy".into(),
        probe_rtt_ms: Some(12.5),
        active: up,
        reason: None,
        bgp: None,
    }
}

#[test]
fn one_call_per_status_tick() {
    use cgwd::daemon::status::StatusSnapshot;
    let mut snap = StatusSnapshot {
        cgwd_version: "test".into(),
        vpn_connection_id: "vpn-0123456789abcdef0".into(),
        interface: "cgwd0".into(),
        failover_policy: "prefer-tunnel-1".into(),
        outbound: "tunnel-1".into(),
        uptime_secs: 10,
        failovers: 2,
        ike_input: Default::default(),
        ike_half_open: 0,
        tunnels: vec![
            status_tunnel(1, "203.0.113.10", true, 4_000),
            status_tunnel(2, "198.51.100.20", false, 0),
        ],
        routes: Vec::new(),
        connections: Vec::new(),
        reload: None,
        bgp_routes: Vec::new(),
    };
    let m = MetricsRegistry::new();
    m.update_from_status(&snap);
    snap.tunnels[0].traffic.bytes_out = 9_000;
    m.update_from_status(&snap);
    let text = m.encode();
    for line in [
        format!("cgwd_tunnel_state{L1} 1"),
        format!("cgwd_tunnel_state{L2} 0"),
        format!("cgwd_tunnel_data_out_bytes_total{L1} 9000"),
        format!("cgwd_tunnel_dpd_rtt_seconds{L1} 0.0125"),
        r#"cgwd_failovers_total{vpn_id="vpn-0123456789abcdef0"} 2"#.into(),
        r#"cgwd_tunnel_drops_total{reason="auth_failed",tunnel_outside_ip="198.51.100.20",vpn_id="vpn-0123456789abcdef0"} 5"#.into(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let h = cgwd::observe::TunnelHealth::from_status(&snap.tunnels[0]);
    assert!(h.is_up() && h.dpd_enabled && !h.nat_t_detected);
}
