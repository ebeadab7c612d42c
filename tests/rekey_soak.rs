//! The rekey soak (root only): `cgwd run` against two charons configured as the AWS side of the lab
//! (`../shared/lab`'s strongSwan translation of AWS's default tunnel options: every algorithm AWS
//! allows, CBC proposal first, MODP-1024 first), short lifetimes on both sides so that both start
//! IKE and Child SA rekeys all the time, suites changing (charon picks its first option, cgwd the
//! strongest), KE guesses wrong (charon's first group is one cgwd's options leave out), and now and
//! then colliding, under a ping every 50 ms through each tunnel.
//!
//! `CGWD_SOAK_SECS` sets the length: CI runs 90 s; `tests/soak.sh` runs 20 minutes and more. It
//! ends with: 0 pings lost, both tunnels up with the same SAs on both sides, no message failing
//! either side's integrity check, no tunnel down, and the counts printed (rekeys by kind and
//! initiator, INVALID_KE_PAYLOAD answers, suite changes, collisions).

mod common;

use std::process::Command;

use common::netns::skip_unless_root;
use common::strongswan::{AWS_ESP, AWS_IKE};
use common::tempdir::TempDir;
use common::two_aws::*;

#[test]
fn rekeys_of_every_kind_for_minutes_lose_nothing() {
    if skip_unless_root() {
        return;
    }
    let secs: u64 = std::env::var("CGWD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let topo = Topology::create("sk");
    let dir = TempDir::new("soak");
    // cgwd: IKE 30 s, Child 20 s, margin 5 s, fuzz 100 %: IKE rekeys at 20-25 s, Child at 10-15 s.
    let config = lab_config(&dir.0, 30, 20, 5, 100);
    // charon: windows of the same size, tunnel 1's a little earlier (AWS starts more rekeys there),
    // tunnel 2's a little later (cgwd does).
    let charons = start_charons(&topo, &dir.0, |i, conf| {
        let (ike, child) = if i == 0 {
            ("rekey_time = 22s", "rekey_time = 14s")
        } else {
            ("rekey_time = 27s", "rekey_time = 18s")
        };
        with_lifetimes(
            &conf
                .replace(
                    "proposals = aes256gcm16-prfsha256-ecp256",
                    &format!("proposals = {AWS_IKE}"),
                )
                .replace(
                    "esp_proposals = aes256gcm16-ecp256",
                    &format!("esp_proposals = {AWS_ESP}"),
                ),
            &[ike, "over_time = 5s", "rand_time = 5s"],
            &[child, "life_time = 20s", "rand_time = 5s"],
        )
    });
    let mut cgwd = CgwdRun::start(
        &topo,
        &dir.0,
        "sk",
        &config,
        "[lab]\nallow_short_lifetimes = true\n",
    );
    cgwd.wait_both_up();
    let started = cgwd::io::clock::now();
    let sampler = Sampler::start(cgwd.daemon.0.id(), &dir.0);
    let pings = (secs * 20) as u32;
    let ping: Vec<_> = AWS_INSIDE
        .iter()
        .map(|a| {
            Command::new("ip")
                .args([
                    "netns", "exec", &topo.cgw, "ping", "-q", "-n", "-i", "0.05", "-W", "2",
                ])
                .args(["-c", &pings.to_string(), a.split('/').next().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let lost: Vec<u32> = ping.into_iter().map(|p| lost(p).0).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.stop();
    let log = cgwd.log();
    let mut report = Vec::new();
    let mut problems = Vec::new();
    let mut totals = [0usize; 4];
    for (i, c) in charons.iter().enumerate() {
        let clog = c.log();
        let (cgwd_child, cgwd_ike) = rekeys_done(&clog, "generating");
        let (aws_child, aws_ike) = rekeys_done(&clog, "parsed");
        let inval = clog.lines().filter(|l| l.contains("N(INVAL_KE)")).count();
        let collisions = clog.lines().filter(|l| l.contains("collision")).count();
        let changes = |ike| suites(&clog, ike).windows(2).filter(|w| w[0] != w[1]).count();
        let retransmits = clog.matches("retransmit ").count();
        for (t, n) in totals.iter_mut().zip([cgwd_child, cgwd_ike, aws_child, aws_ike]) {
            *t += n;
        }
        report.push(format!(
            "tunnel {}: {} pings, {} lost; Child SA rekeys by cgwd {cgwd_child}, by AWS {aws_child}; IKE SA \
             rekeys by cgwd {cgwd_ike}, by AWS {aws_ike}; INVALID_KE_PAYLOAD {inval}; suite changes IKE {} / \
             ESP {}; collision lines {collisions}; charon retransmissions {retransmits}",
            i + 1,
            pings,
            lost[i],
            changes(true),
            changes(false)
        ));
        for bad in [
            "integrity failed",
            "could not decrypt",
            "establishing CHILD_SA failed",
        ] {
            if let Some(l) = clog.lines().find(|l| l.contains(bad)) {
                problems.push(format!("charon {}: {l}", i + 1));
            }
        }
        let lines: Vec<&str> = clog.lines().collect();
        for (n, l) in lines.iter().enumerate() {
            let redundant_delete = lines
                .get(n + 1)
                .is_some_and(|next| next.contains("proper IKE_SA delete failed"));
            if l.contains("giving up after") && !redundant_delete {
                problems.push(format!("charon {}: {l}", i + 1));
            }
        }
        if lost[i] > 0 {
            problems.push(format!("tunnel {}: {} of {pings} pings lost", i + 1, lost[i]));
        }
        let s = cgwd.status().expect("cgwd status");
        if !established(&s, i) {
            problems.push(format!("tunnel {} not up at the end", i + 1));
        }
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_one_matching_sa(c, &cgwd, i)
        })) {
            problems.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "SAs differ".into()),
            );
        }
    }
    for sign in [
        "IKE SA closed",
        "Child SA down",
        "without a successful rekey",
        "IKE datagram not sent",
    ] {
        if let Some(l) = log.lines().find(|l| l.contains(sign)) {
            problems.push(format!("cgwd: {l}"));
        }
    }
    println!(
        "rekey soak: {elapsed:.0} s; rekeys: Child by cgwd {} / by AWS {}, IKE by cgwd {} / by AWS {}",
        totals[0], totals[2], totals[1], totals[3]
    );
    for r in &report {
        println!("  {r}");
    }
    if secs >= 60 {
        for (n, what) in [
            (totals[0], "Child SA rekeys by cgwd"),
            (totals[2], "Child SA rekeys by AWS"),
        ]
        .into_iter()
        .chain([
            (totals[1], "IKE SA rekeys by cgwd"),
            (totals[3], "IKE SA rekeys by AWS"),
        ]) {
            if n == 0 {
                problems.push(format!("no {what}"));
            }
        }
    }
    problems.extend(samples.report(secs));
    assert!(problems.is_empty(), "{}\n{log}", problems.join("\n"));
    drop(cgwd);
    drop(charons);
}

/// cgwd's RSS and open file descriptors every [`Sampler::EVERY`], written as CSV (to
/// `CGWD_SOAK_CSV`, else the test's directory) for the report's plot (`tests/soak.sh` draws it).
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Samples>,
}

/// (seconds, RSS KiB, file descriptors).
struct Samples(Vec<(u64, u64, u64)>);

impl Sampler {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn start(pid: u32, dir: &std::path::Path) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let csv = std::env::var("CGWD_SOAK_CSV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| dir.join("soak.csv"));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = cgwd::io::clock::now();
            let mut out = Vec::new();
            let mut text = String::from("seconds,rss_kib,fds\n");
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    })
                    .unwrap_or(0);
                let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
                let t = t0.elapsed().as_secs();
                out.push((t, rss, fds));
                text.push_str(&format!("{t},{rss},{fds}\n"));
                let _ = std::fs::write(&csv, &text);
                let until = cgwd::io::clock::now() + Self::EVERY;
                while cgwd::io::clock::now() < until && !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            println!("RSS and file descriptors every 5 s: {}", csv.display());
            Samples(out)
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> Samples {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(Samples(Vec::new()))
    }
}

impl Samples {
    /// Prints the first and last tenth; on a run of 10 minutes or more, file descriptors must end
    /// where they started and RSS within 20 % (+ 1 MiB) of the first tenth's highest.
    fn report(&self, secs: u64) -> Vec<String> {
        let n = self.0.len();
        if n < 2 {
            return Vec::new();
        }
        let tenth = (n / 10).max(1);
        let max = |s: &[(u64, u64, u64)], f: fn(&(u64, u64, u64)) -> u64| s.iter().map(f).max().unwrap_or(0);
        let (head, tail) = (&self.0[..tenth], &self.0[n - tenth..]);
        let (rss0, rss1) = (max(head, |x| x.1), max(tail, |x| x.1));
        let (fd0, fd1) = (max(head, |x| x.2), max(tail, |x| x.2));
        println!(
            "cgwd over {} samples: RSS {rss0} KiB → {rss1} KiB (highest of the first and last tenth), file descriptors {fd0} → {fd1}",
            n
        );
        let mut problems = Vec::new();
        if secs >= 600 {
            if fd1 > fd0 {
                problems.push(format!("file descriptors grew: {fd0} → {fd1}"));
            }
            if rss1 > rss0 + rss0 / 5 + 1024 {
                problems.push(format!("RSS grew: {rss0} → {rss1} KiB"));
            }
        }
        problems
    }
}
