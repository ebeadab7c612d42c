//! `cgwd demo`: the README's first command. Builds a namespace lab, runs `cgwd run` against
//! `cgwd emulate-aws` (this same binary), shows both tunnels, traffic, a failover and the recovery,
//! then removes everything it created — also on failure and on Ctrl-C ([`Lab`]'s `Drop`).
//!
//! ```text
//!  onprem 10.0.1.10 ── 10.0.1.1 cgw 192.0.2.10 ── inet ── 198.51.100.11 / 203.0.113.12 aws 10.100.0.1 ── vpc 10.100.0.10
//!                         (cgwd run)                       (cgwd emulate-aws, one process per endpoint)
//! ```
//! Lab tooling: it drives `ip`, `nft`, `ping` and `iperf3` through `std::process::Command`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::daemon::signals::Signals;
use crate::io::clock;

/// The lab's configuration: the lab VPN (addresses of /work/shared/lab/aws-vpn.env), static routing.
const CONFIG: &str = include_str!("../../configs/lab.describe.json");
const VPC_HOST: &str = "10.100.0.10";

/// `cgwd demo` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Keep the namespaces and logs after the run (for poking around); the processes still stop.
    #[arg(long)]
    pub keep: bool,
    /// Static routing instead of BGP (the VPN connection's StaticRoutesOnly set).
    #[arg(long = "static")]
    pub static_routing: bool,
}

type Step = Result<(), String>;

/// Everything the demo created; dropping it undoes all of it.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<Child>,
    keep: bool,
}

impl Lab {
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Run `argv` in namespace `ns`, returning stdout; an error carries stderr.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .output()
            .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` in {ns} failed: {}{}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    }

    fn ip(&self, args: &[&str]) -> Step {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Start `argv` in namespace `ns`, its output to `log` in the lab directory; its pid (`ip
    /// netns exec` execs the program, so the pid is the program's own: tests read its /proc).
    pub fn spawn(&mut self, ns: &str, argv: &[&str], log: &str) -> Result<u32, String> {
        let log = std::fs::File::create(self.dir.join(log)).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", argv.join(" ")))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// The five namespaces, veths, addresses, routes and forwarding.
    pub fn create(prefix: String, keep: bool) -> Result<Self, String> {
        let dir = private_dir(&prefix)?;
        let mut lab = Lab {
            prefix,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
            keep,
        };
        for role in ["onprem", "cgw", "inet", "aws", "vpc"] {
            let ns = lab.ns(role);
            lab.ip(&["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            lab.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
            lab.exec(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        }
        // (namespace a, interface in a, address, namespace b, interface in b, address)
        let links = [
            ("onprem", "lan0", "10.0.1.10/24", "cgw", "lan0", "10.0.1.1/24"),
            ("cgw", "wan0", "192.0.2.10/24", "inet", "cgw0", "192.0.2.1/24"),
            (
                "inet",
                "aws0",
                "198.51.100.1/24",
                "aws",
                "wan0",
                "198.51.100.11/24",
            ),
            ("aws", "vpc0", "10.100.0.1/24", "vpc", "eth0", "10.100.0.10/24"),
        ];
        for (a, ia, addr_a, b, ib, addr_b) in links {
            let (na, nb) = (lab.ns(a), lab.ns(b));
            lab.ip(&[
                "-n", &na, "link", "add", ia, "type", "veth", "peer", "name", ib, "netns", &nb,
            ])?;
            lab.ip(&["-n", &na, "addr", "add", addr_a, "dev", ia])?;
            lab.ip(&["-n", &nb, "addr", "add", addr_b, "dev", ib])?;
            lab.ip(&["-n", &na, "link", "set", ia, "up"])?;
            lab.ip(&["-n", &nb, "link", "set", ib, "up"])?;
        }
        let (inet, aws) = (lab.ns("inet"), lab.ns("aws"));
        lab.ip(&["-n", &inet, "addr", "add", "203.0.113.1/24", "dev", "aws0"])?;
        lab.ip(&["-n", &aws, "addr", "add", "203.0.113.12/24", "dev", "wan0"])?;
        for (ns, via) in [
            ("onprem", "10.0.1.1"),
            ("cgw", "192.0.2.1"),
            ("aws", "198.51.100.1"),
            ("vpc", "10.100.0.1"),
        ] {
            lab.ip(&["-n", &lab.ns(ns), "route", "add", "default", "via", via])?;
        }
        Ok(lab)
    }

    /// Silently drop everything to and from AWS's tunnel-1 endpoint (no DELETE: like a dead endpoint).
    pub fn cut_tunnel1(&self) -> Step {
        let rules = format!(
            "table inet {t} {{\n chain in {{ type filter hook input priority -10; ip daddr 198.51.100.11 drop; }}\n \
             chain out {{ type filter hook output priority -10; ip saddr 198.51.100.11 drop; }}\n}}\n",
            t = "cgwd_demo_cut"
        );
        let file = self.dir.join("cut.nft");
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        self.exec(&self.ns("aws"), &["nft", "-f", &file.to_string_lossy()])
            .map(|_| ())
    }

    pub fn restore_tunnel1(&self) -> Step {
        self.exec(
            &self.ns("aws"),
            &["nft", "delete", "table", "inet", "cgwd_demo_cut"],
        )
        .map(|_| ())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &self.children {
            // `ip netns exec` execs the program, so the pid is cgwd's own.
            crate::emulate::terminate(c.id());
        }
        let deadline = clock::now() + Duration::from_secs(3);
        for c in &mut self.children {
            while clock::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            eprintln!(
                "kept: namespaces {}-*, logs in {}",
                self.prefix,
                self.dir.display()
            );
            return;
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory `$TMPDIR/<prefix>-<random>`, mode 0700, for the lab's settings, sockets and logs.
/// mkdir(2) fails on anything already at the name, so a file, directory or link another user put
/// there in advance is never used (the demo runs as root); the random part keeps such a squatter
/// from blocking the demo. [`Lab`]'s drop removes it.
fn private_dir(prefix: &str) -> Result<PathBuf, String> {
    use crate::crypto::random::{OsRandom, Random};
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("{prefix}-{:016x}", OsRandom.next_u64()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("creating the lab directory {}: {e}", dir.display()))?;
    Ok(dir)
}

fn progress(n: u32, what: &str) {
    println!("[{n}/8] {what}");
}

fn is_root() -> bool {
    // SAFETY-free alternative to geteuid: /proc/self/status Uid line (effective uid is the 2nd field).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Args {
    pub fn run(self) -> ExitCode {
        if !is_root() {
            eprintln!(
                "cgwd demo needs root (it creates network namespaces and TUN devices): \
                 sudo target/release/cgwd demo"
            );
            return ExitCode::FAILURE;
        }
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cgwd demo: {e}");
                return ExitCode::FAILURE;
            }
        };
        let started = clock::now();
        match demo(&self, &signals) {
            Ok(()) => {
                println!(
                    "demo finished in {:.1} s: all steps passed",
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cgwd demo: FAILED: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Each side's settings. Static: both lists on both sides (cgwd routes the VPC prefix, AWS the
/// on-prem one). BGP: each side announces its own and learns the other's.
fn settings_toml(dir: &Path, role: &str, bgp: bool) -> String {
    let routing = match (bgp, role) {
        (false, _) => "vpc_cidrs = [\"10.100.0.0/16\"]\nonprem_cidrs = [\"10.0.0.0/16\"]\n",
        (true, "aws") => "vpc_cidrs = [\"10.100.0.0/16\"]\n[bgp]\nspeaker = \"builtin\"\n",
        (true, _) => "onprem_cidrs = [\"10.0.0.0/16\"]\n[bgp]\nspeaker = \"builtin\"\n",
    };
    format!(
        "[interface]\nname = \"cgwd0\"\n\n[local]\naddress = \"192.0.2.10\"\n\n[control]\nsocket = \"{}\"\n\n[routing]\n{routing}",
        dir.join(format!("{role}.sock")).display()
    )
}

fn status_json(exe: &Path, socket: &Path) -> Option<serde_json::Value> {
    let out = Command::new(exe)
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// IPsec up and answering, and with BGP the session Established.
fn healthy(v: &serde_json::Value, tunnel: usize) -> bool {
    let t = &v["tunnels"][tunnel];
    t["ike_phase2_state"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("established"))
        && t["liveness"] == "healthy"
        && (t["bgp"].is_null() || t["bgp"]["state"] == "established")
}

fn wait_for(signals: &Signals, limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Step {
    let deadline = clock::now() + limit;
    while clock::now() < deadline {
        if signals.stop_requested() {
            return Err("interrupted".into());
        }
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("timed out after {limit:?} waiting for {what}"))
}

/// `ping` summary: (transmitted, received).
fn ping_counts(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|p| p.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some((nums.next()??, nums.next()??))
}

fn demo(args: &Args, signals: &Signals) -> Step {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe_s = exe.to_string_lossy().into_owned();
    let prefix = format!("cgwd-demo-{}", std::process::id());

    progress(1, "creating the namespace topology (onprem, cgw, inet, aws, vpc)");
    let mut lab = Lab::create(prefix, args.keep)?;
    let config = lab.dir.join("vpn.describe.json");
    let bgp = !args.static_routing;
    let text = if bgp {
        CONFIG.to_string()
    } else {
        CONFIG.replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true")
    };
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let cgw_settings = lab.dir.join("cgwd.toml");
    let aws_settings = lab.dir.join("aws.toml");
    std::fs::write(&cgw_settings, settings_toml(&lab.dir, "cgwd", bgp)).map_err(|e| e.to_string())?;
    std::fs::write(&aws_settings, settings_toml(&lab.dir, "aws", bgp)).map_err(|e| e.to_string())?;
    let cgw_sock = lab.dir.join("cgwd.sock");
    let config_s = config.to_string_lossy().into_owned();

    progress(2, "starting `cgwd emulate-aws` (aws) and `cgwd run` (cgw)");
    let (aws_ns, cgw_ns) = (lab.ns("aws"), lab.ns("cgw"));
    lab.spawn(
        &aws_ns,
        &[
            &exe_s,
            "emulate-aws",
            &config_s,
            "--settings",
            &aws_settings.to_string_lossy(),
            "--tunnel",
            "both",
        ],
        "emulate-aws.log",
    )?;
    lab.spawn(
        &cgw_ns,
        &[
            &exe_s,
            "run",
            &config_s,
            "--settings",
            &cgw_settings.to_string_lossy(),
        ],
        "cgwd.log",
    )?;

    progress(
        3,
        if bgp {
            "waiting for both tunnels and their BGP sessions"
        } else {
            "waiting for both tunnels"
        },
    );
    let t0 = clock::now();
    wait_for(signals, Duration::from_secs(20), "both tunnels up", || {
        status_json(&exe, &cgw_sock)
            .is_some_and(|v| healthy(&v, 0) && healthy(&v, 1) && (!bgp || !v["bgp_routes"].is_null()))
    })?;
    println!(
        "      both tunnels up{} after {:.1} s",
        if bgp {
            ", BGP established, VPC prefix learned,"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    );
    let status = Command::new(&exe)
        .args(["status", "--socket"])
        .arg(&cgw_sock)
        .output()
        .map_err(|e| e.to_string())?;
    print!("{}", String::from_utf8_lossy(&status.stdout));

    progress(4, &format!("ping on-prem 10.0.1.10 -> VPC {VPC_HOST}"));
    let onprem = lab.ns("onprem");
    let out = lab.exec(&onprem, &["ping", "-c", "3", "-i", "0.2", "-W", "2", VPC_HOST])?;
    let (tx, rx) = ping_counts(&out).ok_or("no ping summary")?;
    println!("      {rx}/{tx} replies");

    progress(5, "throughput (iperf3, 3 s)");
    let has_iperf = Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_iperf {
        let vpc = lab.ns("vpc");
        lab.spawn(&vpc, &["iperf3", "-s", "-1"], "iperf3-server.log")?;
        std::thread::sleep(Duration::from_millis(500));
        let out = lab.exec(&onprem, &["iperf3", "-c", VPC_HOST, "-t", "3", "-f", "m"])?;
        let line = out
            .lines()
            .find(|l| l.contains("receiver"))
            .unwrap_or("(no summary)");
        println!(
            "      {}",
            line.split_whitespace().skip(4).collect::<Vec<_>>().join(" ")
        );
    } else {
        println!("      iperf3 not installed: skipped");
    }

    progress(
        6,
        "cutting tunnel 1 silently (nftables drop at AWS's endpoint); pinging through the cut",
    );
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &onprem, "ping", "-i", "0.1", "-W", "1", "-w", "12", VPC_HOST,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(1));
    lab.cut_tunnel1()?;
    wait_for(signals, Duration::from_secs(10), "failover to tunnel 2", || {
        status_json(&exe, &cgw_sock).is_some_and(|v| v["outbound"] == "tunnel-2")
    })?;
    let out = pinger.wait_with_output().map_err(|e| e.to_string())?;
    let (tx, rx) = ping_counts(&String::from_utf8_lossy(&out.stdout)).ok_or("no ping summary")?;
    println!(
        "      traffic moved to tunnel 2: {rx}/{tx} replies, outage ≈ {} ms",
        u64::from(tx.saturating_sub(rx)) * 100
    );
    if rx + 5 < tx / 2 {
        return Err(format!("traffic did not recover on tunnel 2 ({rx}/{tx})"));
    }

    progress(7, "restoring tunnel 1");
    lab.restore_tunnel1()?;
    wait_for(signals, Duration::from_secs(30), "tunnel 1 healthy again", || {
        status_json(&exe, &cgw_sock).is_some_and(|v| healthy(&v, 0))
    })?;
    println!("      tunnel 1 is back");
    lab.exec(&onprem, &["ping", "-c", "2", "-i", "0.2", "-W", "2", VPC_HOST])?;

    progress(8, "tearing down");
    drop(lab);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let out = "--- 10.100.0.10 ping statistics ---\n120 packets transmitted, 97 received, 19% packet loss, time 11900ms\n";
        assert_eq!(ping_counts(out), Some((120, 97)));
        assert_eq!(ping_counts("nothing"), None);
    }

    #[test]
    fn lab_directory_is_new_private_and_never_one_planted_in_advance() {
        use std::os::unix::fs::PermissionsExt;
        let prefix = format!("cgwd-demo-dirtest-{}", std::process::id());
        // What another local user could prepare at the old, predictable name.
        let planted = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (a, b) = (private_dir(&prefix).unwrap(), private_dir(&prefix).unwrap());
        std::fs::remove_dir(&planted).unwrap();
        assert_ne!(a, planted);
        assert_ne!(a, b);
        for d in [&a, &b] {
            let meta = std::fs::symlink_metadata(d).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{}", d.display());
            assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "empty");
            std::fs::remove_dir(d).unwrap();
        }
    }

    #[test]
    fn embedded_config_loads_with_static_routing() {
        let dir = private_dir("cgwd-demo-test").unwrap();
        let p = dir.join("c.json");
        std::fs::write(
            &p,
            CONFIG.replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true"),
        )
        .unwrap();
        let conn = crate::config::load_connection(&p).expect("embedded config is valid");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(conn.tunnels[0].aws_outside.to_string(), "198.51.100.11");
    }
}
