//! Root-only: cgwd's routes and inside addresses in a private network namespace, checked with
//! `ip route show proto 198`. Prints "SKIPPED: needs root" and passes otherwise.

mod common;

use std::process::Command;

use cgwd::routing::{Netlink, RTPROT_CGWD, Route, Router, netlink::link_index};
use common::netns::is_root;

struct Netns(String);

impl Netns {
    fn create(tag: &str) -> Netns {
        let name = format!("cgwd-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        Netns(name)
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Run `f` on a thread that has entered this namespace (setns is per thread for net).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            enter(&file);
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[allow(unsafe_code)]
fn enter(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is a valid open netns file for the duration of the call; setns only changes
    // this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn routes_follow_tunnel_state_and_are_cleaned_up() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let ns = Netns::create("rt");
    ns.ip(&["tuntap", "add", "dev", "cgwdt0", "mode", "tun"]);
    ns.ip(&["link", "set", "cgwdt0", "up"]);
    // A stale route from a "crashed" earlier run, and someone else's route that must survive.
    ns.ip(&["route", "add", "10.99.0.0/16", "dev", "cgwdt0", "proto", "198"]);
    // (On another device: the kernel itself flushes a device's routes when its last address goes.)
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["route", "add", "10.50.0.0/16", "dev", "lo"]);

    let (after_start, after_up, after_down, after_up2, after_teardown) = {
        let shown = |ns: &Netns| ns.ip(&["route", "show", "proto", "198"]);
        let name = ns.0.clone();
        let path = format!("/run/netns/{name}");
        let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
        let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            enter(&file);
            let idx = link_index("cgwdt0").expect("tun device");
            let cidrs = vec!["10.100.0.0/16".parse().unwrap(), "10.101.0.0/16".parse().unwrap()];
            let mut router = Router::new(cidrs, idx).expect("router");
            back_tx.send(()).unwrap();
            for cmd in rx {
                match cmd {
                    "up" => {
                        router.sync(true).expect("sync up");
                        router
                            .add_address("169.254.10.6/30".parse().unwrap(), idx)
                            .expect("address");
                        // Adding the same address again is fine.
                        router
                            .add_address("169.254.10.6/30".parse().unwrap(), idx)
                            .expect("address again");
                    }
                    "down" => {
                        router.sync(false).expect("sync down");
                    }
                    "teardown" => router.teardown().expect("teardown"),
                    _ => {}
                }
                back_tx.send(()).unwrap();
            }
        });
        back_rx.recv().unwrap();
        let a = shown(&ns);
        tx.send("up").unwrap();
        back_rx.recv().unwrap();
        let b = shown(&ns);
        tx.send("down").unwrap();
        back_rx.recv().unwrap();
        let c = shown(&ns);
        tx.send("up").unwrap();
        back_rx.recv().unwrap();
        let d = shown(&ns);
        tx.send("teardown").unwrap();
        back_rx.recv().unwrap();
        let e = shown(&ns);
        drop(tx);
        worker.join().unwrap();
        (a, b, c, d, e)
    };
    assert_eq!(after_start.trim(), "", "stale route removed at start");
    assert!(after_up.contains("10.100.0.0/16 dev cgwdt0"), "{after_up}");
    assert!(after_up.contains("10.101.0.0/16 dev cgwdt0"), "{after_up}");
    assert_eq!(after_down.trim(), "", "no routes while both tunnels are down");
    assert_eq!(after_up2.lines().count(), 2, "{after_up2}");
    assert_eq!(after_teardown.trim(), "");
    let all = ns.ip(&["route", "show"]);
    assert!(all.contains("10.50.0.0/16 dev lo"), "foreign route kept: {all}");
    let addrs = ns.ip(&["-4", "addr", "show", "dev", "cgwdt0"]);
    assert!(!addrs.contains("169.254.10.6"), "inside address removed: {addrs}");
}

#[test]
fn listing_sees_only_our_protocol_and_adding_a_conflict_fails_cleanly() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let ns = Netns::create("rt2");
    ns.ip(&["tuntap", "add", "dev", "cgwdt1", "mode", "tun"]);
    ns.ip(&["link", "set", "cgwdt1", "up"]);
    ns.ip(&["route", "add", "10.100.0.0/16", "dev", "cgwdt1"]);
    let (listed, err) = ns.run(|| {
        let idx = link_index("cgwdt1").unwrap();
        let mut nl = Netlink::open().unwrap();
        let listed = nl.routes(RTPROT_CGWD).unwrap();
        let err = nl
            .add_route(
                &Route {
                    dst: "10.100.0.0/16".parse().unwrap(),
                    ifindex: idx,
                },
                RTPROT_CGWD,
            )
            .unwrap_err()
            .to_string();
        (listed, err)
    });
    assert!(listed.is_empty(), "{listed:?}");
    assert!(err.contains("10.100.0.0/16"), "{err}");
    assert!(link_index("no-such-if-xyz").is_err());
}
