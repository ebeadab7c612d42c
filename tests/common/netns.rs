//! Two network namespaces joined by a veth pair, removed again on drop (also when the test panics).
//!
//! Names carry the pid and a per-process counter, so parallel tests and parallel `cargo test` runs never
//! collide. Addresses are from the documentation ranges only (RFC 5737).

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// Returns true (after printing the marker line) when the test must be skipped for lack of root or tools.
pub fn skip_unless_root() -> bool {
    if !is_root() {
        println!("SKIPPED: needs root");
        return true;
    }
    if !std::path::Path::new("/usr/lib/ipsec/charon").exists() {
        println!("SKIPPED: needs strongSwan (charon) installed");
        return true;
    }
    false
}

/// [`skip_unless_root`], and also skipped (with its marker line) unless each of `tools` runs.
pub fn skip_unless_root_and(tools: &[&str]) -> bool {
    if skip_unless_root() {
        return true;
    }
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("SKIPPED: needs {tool}");
            return true;
        }
    }
    false
}

/// `sysctl -qw setting` in namespace `ns`, best effort (a key this kernel lacks is left alone).
pub fn sysctl(ns: &str, setting: &str) {
    let _ = run("ip", &["netns", "exec", ns, "sysctl", "-qw", setting]);
}

pub fn run(cmd: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `cgw` (192.0.2.10/24) and `aws` (192.0.2.11/24), one veth between them.
pub struct NetnsPair {
    pub cgw: String,
    pub aws: String,
    pub cgw_ip: Ipv4Addr,
    pub aws_ip: Ipv4Addr,
}

impl NetnsPair {
    pub fn create() -> io::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let pair = NetnsPair {
            cgw: format!("cgwt-c{id}"),
            aws: format!("cgwt-a{id}"),
            cgw_ip: Ipv4Addr::new(192, 0, 2, 10),
            aws_ip: Ipv4Addr::new(192, 0, 2, 11),
        };
        // From here on, Drop cleans up whatever was created.
        run("ip", &["netns", "add", &pair.cgw])?;
        run("ip", &["netns", "add", &pair.aws])?;
        let (vc, va) = (format!("vc{id}"), format!("va{id}"));
        run(
            "ip",
            &[
                "link", "add", &vc, "netns", &pair.cgw, "type", "veth", "peer", "name", &va, "netns",
                &pair.aws,
            ],
        )?;
        for (ns, dev, ip) in [(&pair.cgw, &vc, pair.cgw_ip), (&pair.aws, &va, pair.aws_ip)] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", ns, "link", "set", dev, "name", "out0"])?;
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "out0"],
            )?;
            run("ip", &["-n", ns, "link", "set", "out0", "up"])?;
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1");
        }
        Ok(pair)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.aws, &self.cgw] {
            // Anything still running inside (charon) must go before the namespace.
            if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into network namespace `name` (only this thread: setns is per thread).
pub fn enter(name: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `f` is an open namespace file descriptor for the duration of the call; setns only changes
    // the calling thread's network namespace and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
