//! An impaired outside path (issue #17), root only: `cgwd run` against two charons playing AWS, every
//! IKE and ESP datagram between them crossing a middle namespace that loses 5 % of them each way
//! (nftables `numgen random mod 100 < 5 drop`), and relays the rest through a userspace relay that
//! duplicates 1 %, reorders 1 % (holds one back and sends it after the next) and delays each by
//! 2-4 ms (tests/common/impair.rs: nftables tproxy hands the datagrams to the relay, which sends them
//! on from their own source address and port with IP_TRANSPARENT; this kernel has no netem).
//!
//! ```text
//!  cgw 192.0.2.10 ── mid (loss, relay) ── a1 198.51.100.11 ─┐ VPC link: 10.100.0.20 (a1) is reached
//!                                     └── a2 203.0.113.12 ─┘ through either tunnel
//! ```
//!
//! Short lifetimes on both sides (cgwd IKE 30 s, Child 20 s; charon rekeying before cgwd would on
//! tunnel 1 and after it on tunnel 2) so that each side starts IKE and Child SA rekeys several
//! times in the 90 s run. A TCP stream from the "VPC" (a1) to the customer side runs all along (at
//! most 8 Mbit/s, so the shared host is not saturated), and pings every 100 ms cross each tunnel.
//! Required: both tunnels up at the first try and never down, at least 3 Child SA and 2 IKE SA
//! rekeys per tunnel, the stream never stalled longer than [`MAX_STALL`], and the duplicated ESP
//! datagrams the relay sent toward cgwd dropped and counted by cgwd's replay window
//! (`replay_duplicate` among the tunnel's drops in `cgwd status --json`): no more than were
//! duplicated and at least 90 % of them (a duplicate whose original was lost after the relay, say
//! to a full socket buffer, is the one accepted). Printed: goodput, stalls,
//! datagrams lost, duplicated, reordered, rekeys, replay drops.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use common::impair::{Impairment, Kind, Relay, dropped, lose, overflowed};
use common::netns::{enter, run, skip_unless_root_and, sysctl};
use common::tempdir::TempDir;
use common::two_aws::*;

/// How long the stream runs once both tunnels are up.
const RUN: Duration = Duration::from_secs(90);
/// The longest the TCP stream may go without delivering a byte ("keeps flowing").
const MAX_STALL: Duration = Duration::from_secs(5);
/// The stream's sender paces itself to this many bytes per second (8 Mbit/s: a debug build of cgwd,
/// two charons and the relay share a 2-core CI machine, and an overloaded relay drops datagrams
/// on its own, beyond the impairment the test means).
const PACE: usize = 1_000_000;
/// The stream's server: on a1 only, reached from a2 over the VPC link.
const SERVER: &str = "10.100.0.20";
const LOSS_PERCENT: u32 = 5;

#[test]
fn tunnels_survive_loss_duplication_reordering_and_rekeys() {
    if skip_unless_root_and(&["nft"]) {
        return;
    }
    let started = cgwd::io::clock::now();
    let topo = Topology::create_via(
        "ip",
        &Middle {
            cgw: CGW,
            toward_cgw: "192.0.2.1",
            toward_aws: ["198.51.100.1", "203.0.113.1"],
            public: CGW,
        },
    );
    let mid = topo.mid.clone().unwrap();
    vpc_link(&topo);
    let dir = TempDir::new("impair");
    // The relay's choices; CGWD_IMPAIR_SEED repeats a run's (it prints its seed).
    let seed = std::env::var("CGWD_IMPAIR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()));
    let endpoints: Vec<SocketAddrV4> = [CGW, AWS[0], AWS[1]]
        .iter()
        .flat_map(|a| [500, 4500].map(|p| SocketAddrV4::new(a.parse().unwrap(), p)))
        .collect();
    let relay = Relay::start(
        &mid,
        &endpoints,
        Impairment {
            duplicate_permille: 10,
            reorder_permille: 10,
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(2),
            hold_limit: Duration::from_millis(50),
        },
        seed,
    );
    lose(&mid, LOSS_PERCENT, "c0");

    // cgwd: IKE 30 s, Child 20 s, margin 5 s, fuzz 100 %: IKE rekeys at 20-25 s, Child at 10-15 s.
    let config = lab_config(&dir.0, 30, 20, 5, 100);
    // charon: on tunnel 1 it rekeys both SAs before cgwd would (IKE at 18-19 s, Child at 8-9 s), on
    // tunnel 2 after (30-31 s, 16-17 s), so each side starts rekeys of both kinds, losses delaying
    // one now and then into a collision.
    let charons = start_charons(&topo, &dir.0, |i, conf| {
        let (ike, child) = [("19s", "9s"), ("31s", "17s")][i];
        with_lifetimes(
            &conf,
            &[&format!("rekey_time = {ike}"), "over_time = 5s", "rand_time = 1s"],
            &[
                &format!("rekey_time = {child}"),
                "life_time = 20s",
                "rand_time = 1s",
            ],
        )
    });
    let mut cgwd = CgwdRun::start(
        &topo,
        &dir.0,
        "ip",
        &config,
        "[lab]\nallow_short_lifetimes = true\n",
    );
    cgwd.wait_both_up();
    let charon_mark: Vec<usize> = charons.iter().map(|c| c.log().len()).collect();
    let pings: Vec<_> = ["169.254.10.5", "169.254.20.9"]
        .iter()
        .map(|a| {
            Command::new("ip")
                .args([
                    "netns", "exec", &topo.cgw, "ping", "-q", "-n", "-i", "0.1", "-W", "2",
                ])
                .args(["-c", &(RUN.as_millis() / 100).to_string(), a])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let stream = stream(&topo, RUN);
    let ping_lost: Vec<u32> = pings.into_iter().map(|p| lost(p).0).collect();

    let log = cgwd.log();
    let mut problems = Vec::new();
    for (i, c) in charons.iter().enumerate() {
        let clog = c.log();
        let clog = &clog[charon_mark[i]..];
        let (cgwd_child, cgwd_ike) = rekeys_done(clog, "generating");
        let (aws_child, aws_ike) = rekeys_done(clog, "parsed");
        println!(
            "tunnel {}: Child SA rekeys by cgwd {cgwd_child}, by charon {aws_child}; IKE SA rekeys by cgwd \
             {cgwd_ike}, by charon {aws_ike}; charon retransmissions {}; {} of {} pings lost",
            i + 1,
            clog.matches("retransmit ").count(),
            ping_lost[i],
            RUN.as_millis() / 100
        );
        // Each tunnel's rekey initiator as charon's schedule makes it (tunnel 1: charon).
        let (child, ike) = if i == 0 {
            (aws_child, aws_ike)
        } else {
            (cgwd_child, cgwd_ike)
        };
        if child < 3 || ike < 2 {
            problems.push(format!(
                "tunnel {}: {} rekeyed {child} Child SAs and {ike} IKE SAs (3 and 2 wanted)",
                i + 1,
                ["charon", "cgwd"][i]
            ));
        }
    }
    // No tunnel failed to come up at first or went down, however the path mangled its messages.
    for sign in [
        "IKE SA failed",
        "IKE SA closed",
        "Child SA down",
        "without a successful rekey",
    ] {
        if let Some(l) = log.lines().find(|l| l.contains(sign)) {
            problems.push(format!("cgwd: {l}"));
        }
    }

    let (lost_from_cgw, lost_toward_cgw) = dropped(&mid);
    let counts = relay.counts();
    let sum = |f: &dyn Fn(&common::impair::Key) -> bool, g: fn(&common::impair::Counts) -> u64| -> u64 {
        counts.iter().filter(|(k, _)| f(k)).map(|(_, c)| g(c)).sum()
    };
    let cgw_ip: std::net::Ipv4Addr = CGW.parse().unwrap();
    let from_cgw = |k: &common::impair::Key| k.0 == cgw_ip;
    let toward_cgw = |k: &common::impair::Key| k.1 == cgw_ip;
    println!(
        "relay: from cgw {} datagrams relayed, {} lost before it, {} duplicated, {} reordered; toward cgw {} \
         relayed, {} lost, {} duplicated, {} reordered; IKE duplicated {} (seed {seed})",
        sum(&from_cgw, |c| c.relayed),
        lost_from_cgw,
        sum(&from_cgw, |c| c.duplicated),
        sum(&from_cgw, |c| c.reordered),
        sum(&toward_cgw, |c| c.relayed),
        lost_toward_cgw,
        sum(&toward_cgw, |c| c.duplicated),
        sum(&toward_cgw, |c| c.reordered),
        sum(&|k| k.2 == Kind::Ike, |c| c.duplicated),
    );
    let overflow = overflowed(&mid);
    println!("relay: {overflow} datagrams dropped on its full receive buffers (machine overloaded if many)");
    println!(
        "TCP stream: {} bytes in {:.1} s = {:.2} Mbit/s goodput; longest stall {:.2} s; stalls over 1 s: {}",
        stream.bytes,
        stream.secs,
        stream.bytes as f64 * 8.0 / stream.secs / 1e6,
        stream.longest_stall.as_secs_f64(),
        stream.stalls_over_1s
    );
    if let Some(e) = &stream.error {
        problems.push(format!("TCP stream broke: {e}"));
    }
    if stream.longest_stall > MAX_STALL {
        problems.push(format!(
            "the TCP stream stalled for {:.1} s",
            stream.longest_stall.as_secs_f64()
        ));
    }

    // The replay window: every duplicated ESP datagram that reached cgwd is dropped and counted
    // (dropped by nothing after the relay, so the counts match unless cgwd's socket overflowed).
    let status = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["status", "--json", "--socket"])
        .arg(&cgwd.sock)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("cgwd status --json");
    let mut all_duplicated = 0;
    for (i, aws) in AWS.iter().enumerate() {
        let aws_ip: std::net::Ipv4Addr = aws.parse().unwrap();
        let duplicated = counts
            .get(&(aws_ip, cgw_ip, Kind::Esp))
            .map_or(0, |c| c.duplicated);
        let t = &status["tunnels"][i];
        let counted = t["drops"]["replay_duplicate"].as_u64().unwrap_or(0);
        println!(
            "tunnel {}: ESP datagrams duplicated toward cgwd {duplicated}, dropped by its replay window as \
             replay_duplicate {counted}; all drops {}",
            i + 1,
            t["drops"]
        );
        // Up: established, or rekeying (a rekey may be under way as the run ends).
        let up = |phase: &str| t[phase] == "established" || t[phase] == "rekeying";
        if !up("ike_phase1_state") || !up("ike_phase2_state") {
            problems.push(format!("tunnel {} not up at the end: {t}", i + 1));
        }
        all_duplicated += duplicated;
        if counted > duplicated || counted * 10 < duplicated * 9 {
            problems.push(format!(
                "tunnel {}: {counted} replay_duplicate drops for {duplicated} duplicated ESP datagrams",
                i + 1
            ));
        }
    }
    if all_duplicated == 0 {
        problems.push("the relay duplicated no ESP datagram toward cgwd".into());
    }
    println!("test took {:.0} s", started.elapsed().as_secs_f64());
    if !problems.is_empty() {
        // What CI keeps of a failure is its first lines: the IKE story of both sides comes first.
        let charon_logs: Vec<String> = charons.iter().map(|c| c.log()).collect();
        panic!(
            "{}\n{}\n{log}",
            problems.join("\n"),
            ike_story(&log, &charon_logs)
        );
    }
    drop(cgwd);
    drop(charons);
    drop(relay);
}

/// The lines that tell how each side's IKE SAs fared (cgwd's text log, then each charon's), the
/// last 40 of each.
fn ike_story(cgwd: &str, charons: &[String]) -> String {
    let tail = |text: &str, words: &[&str]| -> String {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('{') && words.iter().any(|w| l.contains(w)))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let mut story = format!(
        "--- cgwd, IKE ---\n{}",
        tail(cgwd, &["IKE", "DPD", "Child SA", "rekey", "probes"])
    );
    for (i, c) in charons.iter().enumerate() {
        story += &format!(
            "\n--- charon of tunnel {}, IKE ---\n{}",
            i + 1,
            tail(
                c,
                &[
                    "retransmit",
                    "rekey",
                    "giving up",
                    "CREATE_CHILD_SA",
                    "INFORMATIONAL",
                    "deleting"
                ]
            )
        );
    }
    story
}

/// A link between the two AWS namespaces standing for the VPC: a1 holds [`SERVER`], a2 forwards
/// to it, so a TCP connection survives cgwd moving its outbound traffic to tunnel 2 (a1 answers
/// through tunnel 1, which cgwd accepts).
fn vpc_link(topo: &Topology) {
    p2p(
        (&topo.aws[0], "vpc0", "10.100.255.1"),
        (&topo.aws[1], "vpc0", "10.100.255.2"),
        &format!("vpc{}", std::process::id()),
    );
    for ns in &topo.aws {
        // a1 gets a2's forwarded packets from addresses it routes into its own tunnel.
        sysctl(ns, "net.ipv4.conf.all.rp_filter=0");
        sysctl(ns, "net.ipv4.conf.vpc0.rp_filter=0");
    }
    sysctl(&topo.aws[1], "net.ipv4.ip_forward=1");
    run(
        "ip",
        &[
            "-n",
            &topo.aws[0],
            "addr",
            "add",
            &format!("{SERVER}/32"),
            "dev",
            "lo",
        ],
    )
    .unwrap();
    run(
        "ip",
        &["-n", &topo.aws[1], "route", "add", SERVER, "via", "10.100.255.1"],
    )
    .unwrap();
}

struct StreamResult {
    bytes: u64,
    secs: f64,
    longest_stall: Duration,
    stalls_over_1s: u32,
    error: Option<String>,
}

/// A TCP stream from [`SERVER`] (a1) to the cgw namespace for `run`, paced to [`PACE`]: how much
/// arrived and the longest time the receiver waited for its next bytes.
fn stream(topo: &Topology, run_for: Duration) -> StreamResult {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (ns, stop2) = (topo.aws[0].clone(), stop.clone());
    let server = std::thread::spawn(move || {
        enter(&ns).unwrap();
        let listener = TcpListener::bind((SERVER, 5201)).unwrap();
        ready_tx.send(()).unwrap();
        // Nothing here may block for good: the test ends the stream by `stop`.
        listener.set_nonblocking(true).unwrap();
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if !stop2.load(Relaxed) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => return,
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let chunk = vec![0x5au8; 16 * 1024];
        let t0 = cgwd::io::clock::now();
        let mut sent = 0usize;
        while !stop2.load(Relaxed) {
            // Paced: never ahead of PACE bytes per second.
            let allowed = (t0.elapsed().as_secs_f64() * PACE as f64) as usize;
            if sent >= allowed {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            match conn.write(&chunk) {
                Ok(n) => sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.recv().unwrap();
    let ns = topo.cgw.clone();
    let client = std::thread::spawn(move || {
        enter(&ns).unwrap();
        let mut r = StreamResult {
            bytes: 0,
            secs: 0.0,
            longest_stall: Duration::ZERO,
            stalls_over_1s: 0,
            error: None,
        };
        let mut conn = match TcpStream::connect_timeout(
            &(SERVER.parse::<std::net::Ipv4Addr>().unwrap(), 5201).into(),
            MAX_STALL,
        ) {
            Ok(c) => c,
            Err(e) => {
                r.error = Some(format!("connect: {e}"));
                return r;
            }
        };
        conn.set_read_timeout(Some(MAX_STALL * 2)).unwrap();
        let t0 = cgwd::io::clock::now();
        let mut last = t0;
        let mut buf = vec![0u8; 64 * 1024];
        while t0.elapsed() < run_for {
            match conn.read(&mut buf) {
                Ok(0) => {
                    r.error = Some("closed by the server".into());
                    break;
                }
                Ok(n) => {
                    let now = cgwd::io::clock::now();
                    let gap = now - last;
                    if gap > Duration::from_secs(1) {
                        r.stalls_over_1s += 1;
                    }
                    r.longest_stall = r.longest_stall.max(gap);
                    last = now;
                    r.bytes += n as u64;
                }
                Err(e) => {
                    r.longest_stall = r.longest_stall.max(cgwd::io::clock::now() - last);
                    r.error = Some(format!("read: {e}"));
                    break;
                }
            }
        }
        r.secs = t0.elapsed().as_secs_f64();
        let _ = conn.shutdown(std::net::Shutdown::Both);
        r
    });
    let r = client.join().unwrap();
    stop.store(true, Relaxed);
    let _ = server.join();
    r
}
