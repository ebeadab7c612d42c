//! The rekey interop matrix (root only): `cgwd run` against strongSwan charons playing AWS, one cell
//! per tunnel, every cell under traffic.
//!
//! A cell is one kind of rekey exchange, repeated: {AWS starts, cgwd starts} × {IKE SA, Child SA} ×
//! {suite kept, suite changed} × {KE group guessed right, wrong → INVALID_KE_PAYLOAD} × {no collision,
//! simultaneous} × {AES-GCM, AES-CBC + HMAC}, plus Child SA rekeys without PFS. The AWS side is
//! charon with `prefer_previous_dh_group = no`, so it guesses its first configured group at every
//! rekey (the AWS side of the production report sent its first group), and as responder it picks its
//! first configured proposal, like AWS's lowest-option rule picks the same answer every time.
//!
//! Rekeys are started by command (`swanctl --rekey`, `cgwd rekey`), not by short lifetimes, so that
//! every cell sees its exchange the same way every run: three times (collisions: three times, each
//! held until both requests are out and then let through one way first with nftables, as this
//! kernel has no netem). Timer-driven rekeys are what `tests/rekey_e2e.rs` and the soak
//! (`tests/soak.sh`) run.
//!
//! How each dimension is made (the recipe is [`Cell::recipe`]):
//! * suite changed: charon lists two suites (A first); charon, responding, picks A, cgwd picks the
//!   stronger B. So a rekey changes the suite when the previous SA was made by the other side: the
//!   cell's rekeys alternate with the other side's (each of the cell's own rekeys then changes it).
//!   cgwd keeps the IKE SA's PRF (its policy), so the change is the cipher's key size (GCM) or the
//!   integrity algorithm (CBC), and the DH group when the guess is wrong or AWS guesses another.
//! * KE guess wrong, AWS starts: charon's first group (MODP-3072) is not in the tunnel options, so
//!   cgwd answers INVALID_KE_PAYLOAD and charon retries.
//! * KE guess wrong, cgwd starts: charon has two proposals, A with MODP-2048 and B with ECP-384;
//!   cgwd guesses the group of the SA it rekeys, which is always the other proposal's.
//!   For IKE SA rekeys a kept suite with a wrong guess cannot be made (cgwd guesses the IKE SA's own
//!   group, which a peer that keeps the suite accepts): those cells are listed as not constructible.
//!   For Child SA rekeys cgwd's first guess is the IKE SA's group, which charon's phase 2 lacks.
//! * Collisions: both rekeys are started with IKE held at the AWS endpoint; "AWS starts" lets
//!   charon's request through first, "cgwd starts" cgwd's.
//!
//! Every cell ends with: 0 pings lost (20 ms apart, to the tunnel's AWS inside address, which stays
//! on its tunnel), the exchange seen as designed in charon's log (rekeys completed, INVALID_KE or
//! not, suites changed or not, collisions), then ESP blocked so both ends go quiet and a DPD each
//! way answered on the IKE SA the rekeys left, and no message failing charon's integrity check.
//!
//! Cells run two per `cgwd run` (one per tunnel) and `CGWD_MATRIX_JOBS` daemons at once (default 4);
//! `CGWD_MATRIX_ONLY=substring` runs the cells whose name contains it.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::netns::skip_unless_root;
use common::strongswan::Charon;
use common::tempdir::TempDir;
use common::two_aws::*;

#[derive(Clone, Copy, Debug)]
struct Cell {
    aws_starts: bool,
    ike: bool,
    changed: bool,
    wrong: bool,
    collide: bool,
    gcm: bool,
    pfs: bool,
}

/// The AWS side's configuration and cgwd's tunnel options for one cell.
struct Recipe {
    /// charon's `proposals` and `esp_proposals`.
    ike: String,
    esp: String,
    /// cgwd's tunnel options: (encryption, integrity, DH groups) for phase 1 and phase 2.
    p1: (Vec<&'static str>, Vec<&'static str>, Vec<u16>),
    p2: (Vec<&'static str>, Vec<&'static str>, Vec<u16>),
    /// Each rekey of the cell's side follows one of the other side (see the module doc).
    alternate: bool,
}

impl Cell {
    fn name(&self) -> String {
        if !self.pfs {
            return format!(
                "{}-child-nopfs-{}-{}",
                if self.aws_starts { "aws" } else { "cgwd" },
                if self.collide { "collide" } else { "single" },
                if self.gcm { "gcm" } else { "cbc" }
            );
        }
        format!(
            "{}-{}-{}-{}-{}-{}",
            if self.aws_starts { "aws" } else { "cgwd" },
            if self.ike { "ike" } else { "child" },
            if self.changed { "changed" } else { "kept" },
            if self.wrong { "wrongke" } else { "rightke" },
            if self.collide { "collide" } else { "single" },
            if self.gcm { "gcm" } else { "cbc" }
        )
    }

    /// Why a combination cannot be made, if it cannot.
    fn impossible(&self) -> Option<&'static str> {
        (self.pfs && !self.aws_starts && self.ike && !self.changed && self.wrong)
            .then_some("cgwd guesses the IKE SA's own group, which a peer keeping the suite accepts")
    }

    fn recipe(&self) -> Recipe {
        // Suites A (charon's pick) and B (cgwd's pick), per family and phase.
        let (ike_a, ike_b, esp_a, esp_b) = if self.gcm {
            ("aes128gcm16", "aes256gcm16", "aes128gcm16", "aes256gcm16")
        } else {
            ("aes256-sha256", "aes256-sha384", "aes256-sha256", "aes256-sha384")
        };
        let (ike_ab, esp_ab) = if self.gcm {
            ("aes128gcm16-aes256gcm16", "aes128gcm16-aes256gcm16")
        } else {
            ("aes256-sha256-sha384", "aes256-sha256-sha384")
        };
        let enc: Vec<&'static str> = if self.gcm {
            vec!["AES128-GCM-16", "AES256-GCM-16"]
        } else {
            vec!["AES256"]
        };
        let integ = vec!["SHA2-256", "SHA2-384"];
        let groups = vec![14, 19, 20];
        // The focus phase's list on charon's side, and the other phase's (kept, ECP-384).
        let focus_changed = self.pfs && self.changed;
        let two_proposals = self.pfs && !self.aws_starts && self.wrong && self.changed;
        let focus_groups = match (self.aws_starts, self.wrong, self.changed) {
            (true, true, _) => "modp3072-ecp384",
            (true, false, true) => "ecp256-ecp384",
            (false, true, false) => "modp2048", // Child only: cgwd's first guess is the IKE SA's ECP-384
            _ => "ecp384",
        };
        let suite = |a: &str, b: &str, ab: &str, prf: &str, focus: bool| -> String {
            let prf = if prf.is_empty() {
                String::new()
            } else {
                format!("-{prf}")
            };
            if focus && two_proposals {
                format!("{a}{prf}-modp2048,{b}{prf}-ecp384")
            } else if focus && focus_changed {
                format!("{ab}{prf}-{focus_groups}")
            } else if focus {
                format!("{b}{prf}-{focus_groups}")
            } else {
                format!("{b}{prf}-ecp384")
            }
        };
        let ike = suite(ike_a, ike_b, ike_ab, "prfsha256", self.ike);
        let esp = if self.pfs {
            suite(esp_a, esp_b, esp_ab, "", !self.ike)
        } else {
            esp_b.to_string()
        };
        Recipe {
            ike,
            esp,
            p1: (enc.clone(), integ.clone(), groups.clone()),
            p2: (enc, integ, groups),
            alternate: self.pfs && self.changed && !self.collide,
        }
    }
}

fn all_cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for bits in 0..64u32 {
        let b = |n: u32| bits & (1 << n) != 0;
        cells.push(Cell {
            aws_starts: b(0),
            ike: b(1),
            changed: b(2),
            wrong: b(3),
            collide: b(4),
            gcm: b(5),
            pfs: true,
        });
    }
    for bits in 0..8u32 {
        let b = |n: u32| bits & (1 << n) != 0;
        cells.push(Cell {
            aws_starts: b(0),
            ike: false,
            changed: false,
            wrong: false,
            collide: b(1),
            gcm: b(2),
            pfs: false,
        });
    }
    cells
}

/// configs/lab.describe.json with each tunnel's algorithm lists replaced by its cell's.
fn describe_json(dir: &Path, recipes: [&Recipe; 2]) -> std::path::PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let values = |items: Vec<serde_json::Value>| -> serde_json::Value {
        items
            .into_iter()
            .map(|x| serde_json::json!({ "Value": x }))
            .collect()
    };
    for (i, r) in recipes.iter().enumerate() {
        let t = &mut v["VpnConnections"][0]["Options"]["TunnelOptions"][i];
        for (phase, (enc, integ, dh)) in [("Phase1", &r.p1), ("Phase2", &r.p2)] {
            t[format!("{phase}EncryptionAlgorithms")] = values(enc.iter().map(|&e| e.into()).collect());
            t[format!("{phase}IntegrityAlgorithms")] = values(integ.iter().map(|&e| e.into()).collect());
            t[format!("{phase}DHGroupNumbers")] = values(dh.iter().map(|&g| g.into()).collect());
        }
    }
    let path = dir.join("vpn.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

/// What one cell saw.
struct Outcome {
    name: String,
    lost: u32,
    pings: u32,
    problems: Vec<String>,
    summary: String,
}

const PINGS_INTERVAL: &str = "0.02";

fn cgwd_rekey(sock: &Path, tunnel: usize, ike: bool) {
    let mut args = vec!["rekey".to_string(), (tunnel + 1).to_string()];
    if ike {
        args.push("--ike".into());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(&args)
        .arg("--socket")
        .arg(sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cgwd rekey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `swanctl --rekey` in the background: it returns only when the exchange is over, which a held
/// collision delays.
fn swanctl_rekey(c: &Charon, ike: bool) -> std::process::Child {
    let kind = if ike { "--ike" } else { "--child" };
    c.swanctl_spawn(&["--rekey", kind, "t"]).unwrap()
}

/// One collision: both rekeys started with IKE held at the AWS endpoint (`ns`), then the first
/// side's retransmitted request let through alone (the other side answers it while its own request
/// is outstanding), then the second side's alone (likewise), then everything. Retransmissions: cgwd
/// at 1, 3, 7 s, charon (retransmit_timeout 1, base 1.4) at 1, 2.4, 4.4 s after its request.
fn collide(ns: &str, aws_first: bool, start: impl FnOnce(), both_out: impl Fn() -> bool) -> bool {
    hold_ike(ns);
    start();
    let out = (0..60).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        both_out()
    });
    if aws_first {
        // charon's retransmission (1 s) reaches cgwd; then cgwd's (3 s) reaches charon.
        let_ike_out(ns);
        std::thread::sleep(Duration::from_millis(1500));
        hold_ike_out(ns);
        let_ike_in(ns);
        std::thread::sleep(Duration::from_millis(2000));
    } else {
        // cgwd's retransmission (1 s) reaches charon; then charon's (2.4 s) reaches cgwd.
        let_ike_in(ns);
        std::thread::sleep(Duration::from_millis(1500));
        hold_ike_in(ns);
        let_ike_out(ns);
        std::thread::sleep(Duration::from_millis(1300));
    }
    release_ike(ns);
    out
}

/// One cell on tunnel `i` of a running daemon: the rekeys, the checks, the DPD at the end.
fn run_cell(cell: Cell, i: usize, topo: &Topology, charon: &Charon, cgwd: &CgwdRun) -> Outcome {
    let name = cell.name();
    let mut problems = Vec::new();
    let charon_mark = charon.log().len();
    let cgwd_mark = cgwd.log().len();
    let aws_inside = AWS_INSIDE[i].split('/').next().unwrap().to_string();
    let rounds = 3;
    // ~3 s a round (collisions 5-8 s) plus margins; the ping runs through all of it.
    let secs = 2 + rounds * if cell.collide { 9 } else { 3 };
    let pings = (secs as f64 / 0.02) as u32;
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.cgw,
            "ping",
            "-q",
            "-n",
            "-i",
            PINGS_INTERVAL,
            "-W",
            "2",
        ])
        .args(["-c", &pings.to_string(), &aws_inside])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ns = &topo.aws[i];
    let ike = cell.ike;
    for _ in 0..rounds {
        if cell.collide {
            let (cgwd_before, charon_before) = (
                cgwd_rekeys(&cgwd.log(), i + 1),
                charon_rekeys(&charon.log(), "generating"),
            );
            let mut swanctl = None;
            let out = collide(
                ns,
                cell.aws_starts,
                || {
                    cgwd_rekey(&cgwd.sock, i, ike);
                    swanctl = Some(swanctl_rekey(charon, ike));
                },
                || {
                    cgwd_rekeys(&cgwd.log(), i + 1) != cgwd_before
                        && charon_rekeys(&charon.log(), "generating") != charon_before
                },
            );
            if !out {
                problems.push("a collision round did not see both requests".into());
            }
            // Both exchanges end by cgwd's 7 s retransmission at the latest.
            std::thread::sleep(Duration::from_millis(if cell.aws_starts { 4000 } else { 2000 }));
            if let Some(mut c) = swanctl {
                let _ = c.wait();
            }
        } else {
            // AWS's rekey, then cgwd's: with two suites each replaces the SA the other made.
            let alternate = cell.recipe().alternate;
            for aws in [true, false] {
                if aws == cell.aws_starts || alternate {
                    if aws {
                        let _ = swanctl_rekey(charon, ike).wait();
                    } else {
                        cgwd_rekey(&cgwd.sock, i, ike);
                    }
                    std::thread::sleep(Duration::from_millis(1200));
                }
            }
        }
    }
    let (lost, _) = lost(ping);
    let clog = charon.log();
    let during = clog.get(charon_mark..).unwrap_or("");
    // Completed exchanges of the cell's kind, by who started them.
    let (by_charon_child, by_charon_ike) = rekeys_done(during, "parsed");
    let (by_cgwd_child, by_cgwd_ike) = rekeys_done(during, "generating");
    let (focus_done, other_done) = match (cell.aws_starts, ike) {
        (true, true) => (by_charon_ike, by_cgwd_ike),
        (true, false) => (by_charon_child, by_cgwd_child),
        (false, true) => (by_cgwd_ike, by_charon_ike),
        (false, false) => (by_cgwd_child, by_charon_child),
    };
    let needed = if cell.collide { 1 } else { rounds };
    if focus_done < needed {
        problems.push(format!(
            "{focus_done} rekeys completed by the cell's side, expected {needed}"
        ));
    }
    // INVALID_KE_PAYLOAD answered to the cell's side.
    let invalid_ke = |verb: &str| {
        during
            .lines()
            .filter(|l| l.contains(&format!("{verb} CREATE_CHILD_SA response")) && l.contains("N(INVAL_KE)"))
            .count()
    };
    let inval = if cell.aws_starts {
        invalid_ke("parsed")
    } else {
        invalid_ke("generating")
    };
    if !cell.collide && cell.pfs {
        if cell.wrong && inval == 0 {
            problems.push("no INVALID_KE_PAYLOAD although the guess is wrong".into());
        }
        if !cell.wrong && inval > 0 {
            problems.push(format!("{inval} INVALID_KE_PAYLOAD although the guess is right"));
        }
    }
    // Suite changes over the whole log (the first SA included).
    let seen = suites(&clog, ike);
    let changes = seen.windows(2).filter(|w| w[0] != w[1]).count();
    if !cell.collide && cell.pfs {
        if cell.changed && changes < rounds {
            problems.push(format!("the suite changed {changes} times: {seen:?}"));
        }
        if !cell.changed && changes > 0 {
            problems.push(format!("the suite changed although kept: {seen:?}"));
        }
    }
    // "CHILD_SA rekey collision", "detected CHILD_REKEY collision with ...", "IKE_SA rekey collision".
    let collisions = during.lines().filter(|l| l.contains("collision")).count();
    // A refused request (INVALID_KE_PAYLOAD) is no collision: only the right guesses must collide.
    if cell.collide && collisions == 0 && !cell.wrong {
        problems.push("charon reported no rekey collision".into());
    }
    if lost > 0 {
        problems.push(format!("{lost} of {pings} pings lost"));
    }
    let one_sa = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_one_matching_sa(charon, cgwd, i)
    }));
    if let Err(e) = one_sa {
        let why = e
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "charon and cgwd disagree on the SAs".into());
        problems.push(why);
    }
    let log = cgwd.log();
    let ours = log.get(cgwd_mark..).unwrap_or("");
    if let Some(l) = ours.lines().find(|l| l.contains("IKE datagram not sent")) {
        problems.push(format!("cgwd: {l}"));
    }
    for sign in [
        "IKE SA closed",
        "Child SA down",
        "without a successful rekey",
        "refused by the peer",
    ] {
        if let Some(l) = ours
            .lines()
            .find(|l| l.contains(sign) && l.contains(&format!("tunnel {}", i + 1)))
        {
            problems.push(format!("cgwd: {l}"));
        }
    }
    // Both ends quiet but for IKE: cgwd (every 2 s) checks charon (every 3 s) first; then charon
    // hears no request from cgwd and checks cgwd in turn.
    let dpd_mark = charon.log().len();
    block_esp(ns);
    let seen = |what: &str| {
        (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(250));
            charon.log().get(dpd_mark..).unwrap_or("").contains(what)
        })
    };
    if !seen("generating INFORMATIONAL response") {
        problems.push("charon answered no DPD of cgwd's at the end".into());
    }
    drop_ike_requests_in(ns);
    if !seen("parsed INFORMATIONAL response") {
        problems.push("cgwd answered no DPD of charon's at the end".into());
    }
    allow_ike_requests_in(ns);
    let clog = charon.log();
    let whole = clog.get(charon_mark..).unwrap_or("");
    for bad in [
        "integrity failed",
        "could not decrypt",
        "establishing CHILD_SA failed",
    ] {
        if let Some(l) = whole.lines().find(|l| l.contains(bad)) {
            problems.push(format!("charon: {l}"));
        }
    }
    // charon giving up on a request is a failure, except the DELETE of a redundant IKE SA of a
    // collision, which it then drops anyway ("proper IKE_SA delete failed"): counted, not failed.
    let lines: Vec<&str> = whole.lines().collect();
    let mut unanswered_deletes = 0;
    for (n, l) in lines.iter().enumerate() {
        if l.contains("giving up after") {
            if lines
                .get(n + 1)
                .is_some_and(|next| next.contains("proper IKE_SA delete failed"))
            {
                unanswered_deletes += 1;
            } else {
                problems.push(format!("charon: {l}"));
            }
        }
    }
    let summary = format!(
        "{name:40} lost {lost}/{pings}; rekeys by the cell's side {focus_done}, by the other {other_done}; \
         INVALID_KE {inval}; suite changes {changes}; collisions {collisions}; redundant-SA deletes \
         unanswered {unanswered_deletes}"
    );
    Outcome {
        name,
        lost,
        pings,
        problems,
        summary,
    }
}

/// Two cells on one `cgwd run`, one per tunnel.
fn run_pair(n: usize, cells: [Cell; 2], base: &Path) -> Vec<Outcome> {
    let tag = format!("m{n}");
    let topo = Topology::create(&tag);
    let dir = base.join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let recipes = cells.map(|c| c.recipe());
    let config = describe_json(&dir, [&recipes[0], &recipes[1]]);
    let charons = start_charons_with(&topo, &dir, "prefer_previous_dh_group = no", |i, conf| {
        conf.replace(
            "proposals = aes256gcm16-prfsha256-ecp256",
            &format!("proposals = {}", recipes[i].ike),
        )
        .replace(
            "esp_proposals = aes256gcm16-ecp256",
            &format!("esp_proposals = {}", recipes[i].esp),
        )
        .replace("dpd_delay = 10s", "dpd_delay = 3s")
    });
    let mut settings = String::from("[dpd]\ninterval = 2\n");
    if !cells[0].pfs {
        settings.push_str("[lab]\nno_pfs = true\n");
    }
    // CGWD_MATRIX_PCAP=1: a capture at each AWS endpoint, kept with the logs of a failed cell.
    let pcaps: Vec<std::process::Child> = if std::env::var_os("CGWD_MATRIX_PCAP").is_some() {
        (0..2)
            .filter_map(|i| {
                Command::new("ip")
                    .args(["netns", "exec", &topo.aws[i], "tcpdump", "-Uni", "out0", "-w"])
                    .arg(dir.join(format!("aws{}.pcap", i + 1)))
                    .arg("udp")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut cgwd = CgwdRun::start(&topo, &dir, &tag, &config, &settings);
    let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cgwd.wait_both_up()));
    if up.is_err() {
        return cells
            .iter()
            .map(|c| Outcome {
                name: c.name(),
                lost: 0,
                pings: 0,
                problems: vec![format!(
                    "tunnels did not come up\ncgwd:\n{}\ncharon 1:\n{}\ncharon 2:\n{}",
                    cgwd.log(),
                    charons[0].log(),
                    charons[1].log()
                )],
                summary: String::new(),
            })
            .collect();
    }
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (topo, charon, cgwd) = (&topo, &charons[i], &cgwd);
                let cell = cells[i];
                s.spawn(move || run_cell(cell, i, topo, charon, cgwd))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    if outcomes.iter().any(|o| !o.problems.is_empty()) {
        // Keep what a post-mortem needs next to the failure.
        for (i, c) in charons.iter().enumerate() {
            let _ = std::fs::copy(
                c.dir.join("charon.log"),
                base.join(format!("{tag}-charon{}.log", i + 1)),
            );
        }
        let _ = std::fs::copy(&cgwd.log_path, base.join(format!("{tag}-cgwd.log")));
        for i in 1..=2 {
            let _ = std::fs::copy(
                dir.join(format!("aws{i}.pcap")),
                base.join(format!("{tag}-aws{i}.pcap")),
            );
        }
    }
    for mut p in pcaps {
        let _ = p.kill();
        let _ = p.wait();
    }
    drop(cgwd);
    drop(charons);
    outcomes
}

#[test]
fn rekey_matrix() {
    if skip_unless_root() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("SKIPPED: needs nftables");
        return;
    }
    let started = cgwd::io::clock::now();
    let only = std::env::var("CGWD_MATRIX_ONLY").unwrap_or_default();
    let jobs: usize = std::env::var("CGWD_MATRIX_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4)
        .max(1);
    let mut not_made = Vec::new();
    let mut cells = Vec::new();
    for c in all_cells() {
        if !c.name().contains(&only) {
            continue;
        }
        match c.impossible() {
            Some(why) => not_made.push(format!("{}: {why}", c.name())),
            None => cells.push(c),
        }
    }
    // Two cells per daemon; cells without PFS share a daemon (a daemon-wide lab switch).
    cells.sort_by_key(|c| c.pfs);
    let mut pairs: Vec<[Cell; 2]> = Vec::new();
    let mut it = cells.iter().peekable();
    while let Some(&a) = it.next() {
        let b = match it.peek() {
            Some(&&b) if b.pfs == a.pfs => {
                it.next();
                b
            }
            // An odd cell runs beside a copy of itself.
            _ => a,
        };
        pairs.push([a, b]);
    }
    let base = TempDir::new("matrix");
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(pairs.len()) {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let Some(pair) = pairs.get(n) else { break };
                    let out = run_pair(n, *pair, &base.0);
                    for o in &out {
                        println!(
                            "{}",
                            if o.problems.is_empty() {
                                &o.summary
                            } else {
                                &o.name
                            }
                        );
                    }
                    results.lock().unwrap().extend(out);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let failed: Vec<&Outcome> = results.iter().filter(|o| !o.problems.is_empty()).collect();
    let pings: u32 = results.iter().map(|o| o.pings).sum();
    let lost: u32 = results.iter().map(|o| o.lost).sum();
    println!(
        "rekey matrix: {} cells in {} daemons ({jobs} at a time), {} passed; {pings} pings, {lost} lost; \
         {:.0} s; not constructible: {}",
        results.len(),
        pairs.len(),
        results.len() - failed.len(),
        started.elapsed().as_secs_f64(),
        not_made.len()
    );
    for n in &not_made {
        println!("  not constructible: {n}");
    }
    if !failed.is_empty() {
        let keep = std::mem::ManuallyDrop::new(base);
        let mut report = String::new();
        for o in &failed {
            report.push_str(&format!("\n{}:\n  {}\n", o.name, o.problems.join("\n  ")));
        }
        panic!(
            "{} of {} cells failed (logs kept in {}):{report}",
            failed.len(),
            results.len(),
            keep.0.display()
        );
    }
}
