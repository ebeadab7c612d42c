//! The gateway core's dispatch against spoofed input, end to end (root only): `cgwd run` against two
//! charons playing AWS, and IKE_SA_INIT requests sent from AWS's own address (another source port,
//! as anyone on the path can) by a small sender in AWS's namespace.
//!
//! 1. The wedge: tunnel 1 down (AWS deleted its IKE SA, then cgwd's packets to AWS are dropped) while
//!    spoofed IKE_SA_INITs arrive once a second, in turn with a KE group cgwd does not pick, a
//!    malformed KE and a valid one. Before the gateway core one of them replaced the tunnel's SA and cgwd
//!    never initiated again; now the tunnel comes back within seconds of the path.
//! 2. The flood: 2,000 IKE_SA_INITs a second for 15 s from AWS's address while both tunnels are up
//!    and pinged: the pings hold, both tunnels stay up, the log stays quiet; cgwd's CPU is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netns::skip_unless_root;
use common::tempdir::TempDir;
use common::two_aws::*;

/// An IKE_SA_INIT request as a spoofer would send it: AWS's full offer, a KE of `group` (a valid
/// public value unless `malformed`).
fn init_request(group: u16, malformed: bool) -> Vec<u8> {
    use cgwd::wire::ike::{ExchangeType, Flags, HeaderRepr, PayloadRepr, PayloadType, SaRepr, emit_message};
    let set = cgwd::ike::AlgorithmSet::aws_default();
    let proposals = cgwd::ike::proposal::ike_offer(&set, &[], None)
        .iter()
        .map(cgwd::ike::proposal::Proposal::to_repr)
        .collect();
    let g = cgwd::suite::DhGroup::new(group).unwrap();
    let data = if malformed {
        vec![0u8; 9]
    } else {
        cgwd::crypto::DhPrivate::generate(g, &mut cgwd::crypto::OsRandom)
            .unwrap()
            .public_value()
            .to_vec()
    };
    let header = HeaderRepr {
        spi_i: 1,
        spi_r: 0,
        next_payload: PayloadType::NONE,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: Flags::INITIATOR,
        message_id: 0,
        length: 0,
    };
    let payloads = [
        PayloadRepr::Sa(SaRepr { proposals }),
        PayloadRepr::Ke { group, data },
        PayloadRepr::Nonce(vec![7; 32]),
    ];
    let mut out = Vec::new();
    emit_message(&header, &payloads, &mut out).unwrap();
    out
}

/// Sends the messages in `files` in turn (a fresh random SPIi each) from `src`:5000 to `dst`:500,
/// `rate` a second for `secs`, from namespace `ns`; prints how many it sent.
fn spoofer(ns: &str, dir: &Path, files: &[PathBuf], src: &str, dst: &str, rate: u32, secs: u32) -> Child {
    let script = dir.join("spoof.py");
    std::fs::write(
        &script,
        r#"import os, socket, sys, time
src, dst, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
msgs = [open(f, 'rb').read() for f in sys.argv[5:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 5000))
t0 = time.monotonic(); n = 0
while True:
    due = t0 + n / rate
    now = time.monotonic()
    if now - t0 >= secs:
        break
    if due > now:
        time.sleep(due - now)
    m = msgs[n % len(msgs)]
    try:
        s.sendto(os.urandom(8) + m[8:], (dst, 500))
    except OSError:
        pass
    n += 1
print(n)
"#,
    )
    .unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns, "python3"])
        .arg(&script)
        .args([src, dst, &rate.to_string(), &secs.to_string()])
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A KE group cgwd's options leave out, a malformed KE, and a valid ECP-256 KE (a responder keeps
/// state for it, until COOKIEs are demanded).
fn init_files(dir: &Path) -> Vec<PathBuf> {
    [(2, false), (19, true), (19, false)]
        .iter()
        .enumerate()
        .map(|(i, &(g, bad))| {
            let p = dir.join(format!("init{i}.bin"));
            std::fs::write(&p, init_request(g, bad)).unwrap();
            p
        })
        .collect()
}

fn setup(tag: &str, name: &str) -> Option<(Topology, TempDir)> {
    if skip_unless_root() {
        return None;
    }
    for tool in ["nft", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("SKIPPED: needs {tool}");
            return None;
        }
    }
    Some((Topology::create(tag), TempDir::new(name)))
}

#[test]
fn spoofed_inits_while_a_tunnel_is_down_do_not_wedge_it() {
    let Some((topo, dir)) = setup("gw", "gwwedge") else {
        return;
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let charons = start_charons(&topo, &dir.0, |_, conf| conf);
    let mut cgwd = CgwdRun::start(&topo, &dir.0, "gw", &config, "");
    cgwd.wait_both_up();
    // Whatever cgwd sends AWS 1 is lost from now on (AWS's own packets still go out).
    let ns = &topo.aws[0];
    drop_into(ns);
    let _ = charons[0].swanctl("--terminate", &["--ike", "t", "--timeout", "2"]);
    wait_for("tunnel 1 down", Duration::from_secs(15), || {
        cgwd.status().is_some_and(|s| !established(&s, 0))
    });
    let files = init_files(&dir.0);
    let spoof = spoofer(ns, &dir.0, &files, AWS[0], CGW, 1, 40);
    std::thread::sleep(Duration::from_secs(20));
    let log_mark = cgwd.log().len();
    restore(ns);
    let restored = cgwd::io::clock::now();
    let back = wait_for("tunnel 1 back", Duration::from_secs(60), || {
        cgwd.status().is_some_and(|s| established(&s, 0))
    });
    let out = spoof.wait_with_output().unwrap();
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!(
        "wedge: tunnel 1 back {:.1} s after the path ({sent} spoofed IKE_SA_INITs, 1 a second)",
        back.as_secs_f64()
    );
    assert!(
        back <= Duration::from_secs(10),
        "back after {back:?}\n{}",
        cgwd.log()
    );
    assert!(restored.elapsed() < Duration::from_secs(60));
    assert_one_matching_sa(&charons[0], &cgwd, 0);
    let log = cgwd.log();
    assert!(
        !log[log_mark..].contains("AWS initiated IKE; responding"),
        "a spoof took the tunnel\n{log}"
    );
    drop(cgwd);
    drop(charons);
}

#[test]
fn an_init_flood_from_aws_address_keeps_the_tunnels_and_the_log_quiet() {
    let Some((topo, dir)) = setup("gf", "gwflood") else {
        return;
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let charons = start_charons(&topo, &dir.0, |_, conf| conf);
    let mut cgwd = CgwdRun::start(&topo, &dir.0, "gf", &config, "");
    cgwd.wait_both_up();
    let pid = cgwd.daemon.0.id();
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    let files = init_files(&dir.0);
    let log_mark = cgwd.log().len();
    let cpu0 = cpu();
    let t0 = cgwd::io::clock::now();
    let pings: Vec<Child> = AWS_INSIDE
        .iter()
        .map(|a| {
            Command::new("ip")
                .args([
                    "netns", "exec", &topo.cgw, "ping", "-q", "-n", "-i", "0.05", "-W", "2", "-c", "340",
                ])
                .arg(a.split('/').next().unwrap())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let flood = spoofer(&topo.aws[0], &dir.0, &files, AWS[0], CGW, 2000, 15);
    let out = flood.wait_with_output().unwrap();
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let lost: Vec<(u32, f64)> = pings.into_iter().map(lost).collect();
    let secs = t0.elapsed().as_secs_f64();
    let ticks = cpu() - cpu0;
    // USER_HZ is 100 on Linux.
    let cpu_pct = ticks as f64 / secs;
    let log = cgwd.log();
    let during = &log[log_mark..];
    let lines = during.lines().filter(|l| !l.starts_with('{')).count();
    let s = cgwd.status().unwrap();
    let counted = s.ike_input.init_rejected + s.ike_input.half_open_started + s.ike_input.half_open_refused;
    println!(
        "flood: {sent} IKE_SA_INITs in 15 s from AWS 1's address; pings lost {} / {} of 340 each; \
         cgwd CPU {cpu_pct:.0} % of a core over {secs:.0} s; {lines} log lines; counted {:?}, {} half-open now",
        lost[0].0, lost[1].0, s.ike_input, s.ike_half_open
    );
    assert!(counted >= 1000, "the flood is not counted: {:?}", s.ike_input);
    assert!(sent >= 20_000, "the flood sent only {sent}");
    for (i, (l, _)) in lost.iter().enumerate() {
        assert!(*l <= 7, "tunnel {}: {l} of 340 pings lost (> 2 %)", i + 1);
    }
    assert!(established(&s, 0) && established(&s, 1), "both tunnels up");
    assert!(lines <= 10, "the log was not quiet: {lines} lines\n{during}");
    drop(cgwd);
    drop(charons);
}

/// Drops what arrives at AWS's IKE ports in `ns`; what AWS sends still leaves.
fn drop_into(ns: &str) {
    for rule in [
        "add table ip cgwdcut",
        "add chain ip cgwdcut in { type filter hook input priority 0 ; }",
        "add rule ip cgwdcut in udp dport { 500, 4500 } drop",
    ] {
        let mut args = vec!["netns", "exec", ns, "nft"];
        args.extend(rule.split(' '));
        common::netns::run("ip", &args).unwrap();
    }
}

/// `cgwd tunnel down 2` deletes tunnel 2's IKE SA and keeps it down (no initiating) while tunnel 1
/// carries on untouched; `cgwd tunnel up 2` brings it back; `cgwd tunnel reset 1` replaces tunnel
/// 1's IKE SA.
#[test]
fn an_operator_changes_one_tunnel_without_touching_the_other() {
    let Some((topo, dir)) = setup("gt", "gwtunnel") else {
        return;
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let charons = start_charons(&topo, &dir.0, |_, conf| conf);
    let mut cgwd = CgwdRun::start(&topo, &dir.0, "gt", &config, "");
    cgwd.wait_both_up();
    let tunnel = |what: &str, n: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
            .args(["tunnel", what, n, "--socket"])
            .arg(&cgwd.sock)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let ping1 = Command::new("ip")
        .args([
            "netns", "exec", &topo.cgw, "ping", "-q", "-n", "-i", "0.05", "-W", "2", "-c", "300",
        ])
        .arg(AWS_INSIDE[0].split('/').next().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tunnel("down", "2");
    wait_for("tunnel 2 down", Duration::from_secs(3), || {
        cgwd.status().is_some_and(|s| !established(&s, 1))
    });
    wait_for("charon 2 without an IKE SA", Duration::from_secs(5), || {
        !charons[1].list_sas().contains("ESTABLISHED")
    });
    std::thread::sleep(Duration::from_secs(8));
    let s = cgwd.status().unwrap();
    assert!(!established(&s, 1), "still down: cgwd does not initiate");
    assert!(!charons[1].list_sas().contains("ESTABLISHED"));
    assert!(
        s.tunnels[1]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("operator")),
        "{:?}",
        s.tunnels[1].reason
    );
    tunnel("up", "2");
    let back = wait_for("tunnel 2 up", Duration::from_secs(10), || {
        cgwd.status().is_some_and(|s| established(&s, 1))
    });
    let (lost1, _) = lost(ping1);
    assert_eq!(lost1, 0, "tunnel 1 lost pings while tunnel 2 was taken down");
    assert_one_matching_sa(&charons[1], &cgwd, 1);
    let before = cgwd.status().unwrap().tunnels[0].spi_in.clone();
    tunnel("reset", "1");
    let reset = wait_for("tunnel 1 replaced", Duration::from_secs(10), || {
        cgwd.status()
            .is_some_and(|s| established(&s, 0) && s.tunnels[0].spi_in != before)
    });
    assert_one_matching_sa(&charons[0], &cgwd, 0);
    println!(
        "operator: tunnel 2 down and up (back {:.1} s after `up`, tunnel 1 lost 0 of 300 pings); tunnel 1 \
         reset in {:.1} s",
        back.as_secs_f64(),
        reset.as_secs_f64()
    );
    drop(cgwd);
    drop(charons);
}
