//! End to end, root only: `cgwd run` against two strongSwan charons playing AWS's two tunnel
//! endpoints, observed through `cgwd status` (the control socket) and the kernel.
//!
//! Topology (all namespaces created here, names carry the pid):
//!
//! ```text
//!  cgw: 192.0.2.10 ── veth ── a1: 198.51.100.11, ipsec0 169.254.10.5/30, lo 10.100.0.10 ("VPC")
//!                  └─ veth ── a2: 203.0.113.12,  ipsec0 169.254.20.9/30, lo 10.100.0.10
//! ```
//!
//! cgwd gets only the AWS-format file (configs/lab.describe.json) and a settings file. The test
//! checks: both tunnels established; routes installed with proto 198; ping through the tunnel;
//! tunnel 1 cut silently (its UDP dropped) → outbound moves to tunnel 2 (outage measured with a
//! 100 packets/s ping and printed; target ≤ 1 s); tunnel 1 restored → back on tunnel 1; a DELETE
//! from AWS → traffic continues; AWS initiating → cgwd responds; SIGTERM → exit 0, no route, address, TUN device or socket left.
//!
//! Observability on the way (docs/observability.md): `/metrics` scraped inside the cgw namespace
//! (valid for `promtool check metrics` when installed, both tunnels' `cgwd_tunnel_state` 1, data
//! counters moving with a ping, failovers counted) and the `log.health` file's JSON records (both
//! tunnels established, tunnel 1 down after AWS's DELETE and established again).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::netns::{run, skip_unless_root};
use common::two_aws::*;

/// `metrics.listen` inside the cgw namespace (a fresh namespace: the port is free).
const METRICS_PORT: u16 = 9710;

/// `GET /metrics` from inside `ns` (no curl here: bash's /dev/tcp), body only.
fn scrape(ns: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{METRICS_PORT}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("HTTP/1.") && text.contains(" 200 "), "{text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of `name` for the tunnel whose AWS outside address is `aws_ip`.
fn metric(body: &str, name: &str, aws_ip: &str) -> f64 {
    body.lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{")) && l.contains(&format!("tunnel_outside_ip=\"{aws_ip}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {aws_ip} in\n{body}"))
}

fn promtool_check(body: &str) {
    use std::io::Write;
    if Command::new("promtool").arg("--version").output().is_err() {
        println!("promtool not installed (Debian package prometheus): exposition not validated");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cgwd_run_both_tunnels_failover_delete_and_clean_exit() {
    if skip_unless_root() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("SKIPPED: needs nftables");
        return;
    }
    let topo = Topology::create('e');
    let dir = std::env::temp_dir().join(format!("cgwd-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let charons = start_charons(&topo, &dir, |i, conf| {
        if i == 0 {
            conf
        } else {
            // AWS rekeys tunnel 2's Child SA every few seconds: the daemon must install the new SA
            // and drop the old one without calling the tunnel down.
            with_lifetimes(
                &conf,
                &[],
                &["rekey_time = 4s", "life_time = 12s", "rand_time = 0s"],
            )
        }
    });

    let ifname = format!("cgwe{}", std::process::id() % 100_000);
    let health = dir.join("health.jsonl");
    let config: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let observability = format!(
        "[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n[log]\nhealth = \"{}\"\n",
        health.display()
    );
    let CgwdRun { mut daemon, sock, .. } = CgwdRun::start(&topo, &dir, 'e', &config, &observability);
    let cgwd_log = || std::fs::read_to_string(dir.join("cgwd.log")).unwrap_or_default();

    // 1. Both tunnels up, routes installed, traffic flows.
    wait_for("both tunnels established", Duration::from_secs(20), || {
        if let Ok(Some(code)) = daemon.0.try_wait() {
            panic!("cgwd exited with {code}: {}", cgwd_log());
        }
        status(&sock).is_some_and(|s| established(&s, 0) && established(&s, 1))
    });
    let s = status(&sock).unwrap();
    assert_eq!(s.outbound, "tunnel-1");
    assert_eq!(s.vpn_connection_id, "vpn-71310d5967085f652");
    assert_eq!(s.routes.len(), 1);
    assert!(s.tunnels[0].spi_in.is_some() && s.tunnels[0].phase2_algorithms.is_some());
    // cgwd rekeys before AWS's window (3600 s lifetime − 540 s margin in this file).
    assert!(
        s.tunnels[0].next_rekey_secs.is_some_and(|r| r > 1000 && r < 3600),
        "{:?}",
        s.tunnels[0].next_rekey_secs
    );
    let routes = run("ip", &["-n", &topo.cgw, "route", "show", "proto", "198"]).unwrap();
    assert!(
        routes.contains(&format!("10.100.0.0/16 dev {ifname}")),
        "{routes}"
    );
    let before = scrape(&topo.cgw);
    promtool_check(&before);
    for aws in AWS {
        assert_eq!(metric(&before, "cgwd_tunnel_state", aws), 1.0, "{before}");
    }
    let ping = topo.ns_exec(
        &topo.cgw,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", cgwd_log());
    // The registry follows the status snapshot (every 500 ms).
    let mut after = String::new();
    wait_for("data counters moved", Duration::from_secs(3), || {
        after = scrape(&topo.cgw);
        metric(&after, "cgwd_tunnel_data_out_packets_total", AWS[0])
            >= metric(&before, "cgwd_tunnel_data_out_packets_total", AWS[0]) + 3.0
            && metric(&after, "cgwd_tunnel_data_in_bytes_total", AWS[0])
                > metric(&before, "cgwd_tunnel_data_in_bytes_total", AWS[0])
    });
    println!(
        "metrics: tunnel 1 data out {} -> {} packets, {} -> {} bytes",
        metric(&before, "cgwd_tunnel_data_out_packets_total", AWS[0]),
        metric(&after, "cgwd_tunnel_data_out_packets_total", AWS[0]),
        metric(&before, "cgwd_tunnel_data_out_bytes_total", AWS[0]),
        metric(&after, "cgwd_tunnel_data_out_bytes_total", AWS[0]),
    );
    // Probes answered: both tunnels healthy.
    wait_for("probe replies", Duration::from_secs(3), || {
        status(&sock).is_some_and(|s| s.tunnels.iter().all(|t| t.probe_rtt_ms.is_some()))
    });

    // 2. Tunnel 1 cut silently under a 100 packets/s flow.
    let flood = ping_flood(&topo.cgw, 400);
    std::thread::sleep(Duration::from_millis(1000));
    cut(&topo.aws[0]);
    let switched = wait_for("outbound on tunnel 2", Duration::from_secs(5), || {
        status(&sock).is_some_and(|s| s.outbound == "tunnel-2")
    });
    let (lost_cut, interval) = lost(flood);
    let outage_ms = f64::from(lost_cut) * interval;
    println!(
        "tunnel 1 cut: status showed tunnel-2 after {} ms; {lost_cut} of 400 pings lost at one per \
         {interval:.1} ms = {outage_ms:.0} ms outage (target ≤ 1000 ms; strongSwan + BIRD reference: 24.6 s)",
        switched.as_millis(),
    );
    // The target is 1 s; the bound leaves room for a loaded CI machine.
    assert!(outage_ms <= 2000.0, "outage {outage_ms} ms\n{}", cgwd_log());
    let s = status(&sock).unwrap();
    assert_eq!(s.tunnels[0].liveness, "suspect");
    assert!(s.tunnels[1].active);
    assert!(s.failovers >= 1);
    wait_for("failover counted in metrics", Duration::from_secs(2), || {
        scrape(&topo.cgw)
            .lines()
            .find_map(|l| l.strip_prefix("cgwd_failovers_total{vpn_id=\"vpn-71310d5967085f652\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    });

    // 3. Restored: back on tunnel 1 after the hold-down, without intervention.
    restore(&topo.aws[0]);
    wait_for("outbound back on tunnel 1", Duration::from_secs(15), || {
        status(&sock).is_some_and(|s| s.outbound == "tunnel-1" && s.tunnels[0].liveness == "healthy")
    });

    // 4. AWS deletes tunnel 1 gracefully while traffic flows: nothing lost, tunnel 1 comes back.
    let flood = ping_flood(&topo.cgw, 300);
    std::thread::sleep(Duration::from_millis(1000));
    charons[0].swanctl("--terminate", &["--ike", "t"]).unwrap();
    let (lost_delete, _) = lost(flood);
    println!("DELETE from AWS on tunnel 1: {lost_delete} of 300 pings lost");
    assert!(
        lost_delete <= 1,
        "lost {lost_delete} on a graceful DELETE\n{}",
        cgwd_log()
    );
    wait_for("tunnel 1 re-established", Duration::from_secs(15), || {
        status(&sock).is_some_and(|s| established(&s, 0))
    });

    // 4b. AWS re-initiates tunnel 2 itself right after deleting it: cgwd answers as responder.
    charons[1].swanctl("--terminate", &["--ike", "t"]).unwrap();
    let mut initiate = charons[1].initiate().unwrap();
    wait_for("tunnel 2 re-established by AWS", Duration::from_secs(15), || {
        status(&sock).is_some_and(|s| established(&s, 1))
    });
    let _ = initiate.wait();
    assert!(
        cgwd_log().contains("AWS initiated IKE; responding"),
        "{}",
        cgwd_log()
    );
    let ping = topo.ns_exec(
        &topo.cgw,
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.100.0.10"],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}");

    // Tunnel 2 was rekeyed by AWS meanwhile and never counted as down for it.
    assert!(
        cgwd_log().contains("old Child SA removed after rekey"),
        "{}",
        cgwd_log()
    );

    // 5. SIGTERM: exit 0 quickly, nothing left behind.
    let pid = daemon.0.id().to_string();
    run("kill", &["-TERM", &pid]).unwrap();
    let mut code = None;
    let took = wait_for("exit after SIGTERM", Duration::from_secs(3), || {
        code = daemon.0.try_wait().unwrap();
        code.is_some()
    });
    println!("SIGTERM → exit in {} ms", took.as_millis());
    assert!(code.unwrap().success(), "{}", cgwd_log());
    let routes = run("ip", &["-n", &topo.cgw, "route", "show", "proto", "198"]).unwrap();
    assert_eq!(routes.trim(), "");
    let links = run("ip", &["-n", &topo.cgw, "link", "show"]).unwrap();
    assert!(!links.contains(&ifname), "{links}");
    let addrs = run("ip", &["-n", &topo.cgw, "addr", "show"]).unwrap();
    assert!(!addrs.contains("169.254."), "{addrs}");
    assert!(!sock.exists());

    // Health records: JSON lines in AWS's tunnel-log format, for both tunnels.
    let lines = std::fs::read_to_string(&health).unwrap();
    println!("health records:\n{lines}");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |aws: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["tunnel_outside_ip"] == aws).collect()
    };
    let up = |r: &serde_json::Value| {
        r["ike_phase1_state"] == "established" && r["ike_phase2_state"] == "established"
    };
    for aws in AWS {
        let recs = of(aws);
        assert!(
            recs.iter()
                .all(|r| r["vpn_connection_id"] == "vpn-71310d5967085f652" && r["dpd_enabled"] == true)
        );
        assert!(
            recs.iter().any(|r| up(r)),
            "no established record for {aws}:\n{lines}"
        );
    }
    let t1 = of(AWS[0]);
    let down = t1
        .iter()
        .position(|r| {
            r["ike_phase1_state"] == "down"
                && r["details"]
                    .as_str()
                    .is_some_and(|d| d.contains("received DELETE"))
        })
        .unwrap_or_else(|| panic!("no down record after AWS's DELETE on tunnel 1:\n{lines}"));
    assert!(
        t1[down..].iter().any(|r| up(r)),
        "tunnel 1 not established again after its DELETE:\n{lines}"
    );
    // AWS rekeys tunnel 2's Child SA every 4 s: its CREATE_CHILD_SA requests, in AWS's words.
    assert!(
        of(AWS[1]).iter().any(|r| r["details"]
            .as_str()
            .is_some_and(|d| d.starts_with("cgwd tunnel processed request (id=")
                && d.ends_with(") for CREATE_CHILD_SA"))),
        "{lines}"
    );
    assert!(!lines.contains(PSK[0]) && !lines.contains(PSK[1]));
    drop(charons);
    let _ = std::fs::remove_dir_all(&dir);
}
