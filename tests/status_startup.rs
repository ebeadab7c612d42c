//! `cgwd run` refuses to start with a clear message and the right exit status: bad config (2),
//! no CAP_NET_ADMIN (1), UDP port 500 taken (1) — and changes nothing on the host when it does.

mod common;

use std::process::{Command, Output};

use common::netns::{enter, is_root, run};

fn cgwd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cgwd"))
}

fn config(name: &str) -> String {
    format!("{}/configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invalid_config_exits_2_naming_the_problem() {
    let out = cgwd()
        .args(["run", &config("invalid/one-tunnel.xml")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("cgwd run: error:"), "{}", stderr(&out));
}

#[test]
fn without_cap_net_admin_exits_1_and_says_what_to_do() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIPPED: needs root and setpriv");
        return;
    }
    // Drop CAP_NET_ADMIN from the bounding set: even uid 0 then runs without it.
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_cgwd"))
        .args(["run", &config("lab.describe.json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs root or CAP_NET_ADMIN"),
        "{}",
        stderr(&out)
    );
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

#[test]
fn port_500_taken_exits_1_and_leaves_no_trace() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let ns = Netns(format!("cgwd-st-{}", std::process::id()));
    run("ip", &["netns", "add", &ns.0]).unwrap();
    run("ip", &["-n", &ns.0, "link", "set", "lo", "up"]).unwrap();
    run("ip", &["-n", &ns.0, "addr", "add", "192.0.2.10/32", "dev", "lo"]).unwrap();
    let dir = std::env::temp_dir().join(format!("cgwd-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("cgwd.toml");
    std::fs::write(
        &settings,
        format!(
            "[interface]\nname = \"cgwst0\"\n[local]\naddress = \"192.0.2.10\"\n[control]\nsocket = \"{}/s/cgwd.sock\"\n",
            dir.display()
        ),
    )
    .unwrap();
    // Someone else (strongSwan, say) holds UDP 500 in that namespace.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let name = ns.0.clone();
    let holder = std::thread::spawn(move || {
        enter(&name).unwrap();
        let _sock = std::net::UdpSocket::bind("192.0.2.10:500").unwrap();
        ready_tx.send(()).unwrap();
        let _ = done_rx.recv();
    });
    ready_rx.recv().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_cgwd"), "run"])
        .arg(config("lab.describe.json"))
        .arg("--settings")
        .arg(&settings)
        .output()
        .unwrap();
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("UDP port 500 on 192.0.2.10 is already in use"),
        "{err}"
    );
    let links = run("ip", &["-n", &ns.0, "link", "show"]).unwrap();
    assert!(!links.contains("cgwst0"), "{links}");
    let routes = run("ip", &["-n", &ns.0, "route", "show", "proto", "198"]).unwrap();
    assert_eq!(routes.trim(), "");
    let _ = std::fs::remove_dir_all(&dir);
}
