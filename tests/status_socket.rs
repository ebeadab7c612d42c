//! The control socket round trip: server in a temp dir, `query_status` as `cgwd status` uses it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use cgwd::daemon::control::{Command, ControlError, ControlServer, SharedStatus, query_status, request};
use cgwd::daemon::status::{PhaseState, StatusSnapshot, Traffic, TunnelStatus, render};
use cgwd::sa::TunnelId;
use common::tempdir::TempDir;

fn snapshot() -> StatusSnapshot {
    let t = |n: u8, state: PhaseState| TunnelStatus {
        tunnel: n,
        ike_phase1_state: state,
        ike_phase2_state: state,
        local_outside: "192.0.2.10".parse().unwrap(),
        aws_outside: format!("198.51.100.{n}").parse().unwrap(),
        inside: format!("169.254.{n}0.6/30").parse().unwrap(),
        aws_inside: format!("169.254.{n}0.5").parse().unwrap(),
        phase1_algorithms: None,
        phase2_algorithms: None,
        spi_in: None,
        spi_out: None,
        uptime_secs: None,
        next_rekey_secs: None,
        traffic: Traffic::default(),
        drops: Default::default(),
        nat_t_detected: true,
        dpd_enabled: true,
        liveness: "healthy".into(),
        probe_rtt_ms: None,
        active: n == 2,
        reason: None,
        bgp: None,
    };
    StatusSnapshot {
        cgwd_version: "test".into(),
        vpn_connection_id: "vpn-test".into(),
        interface: "cgwd0".into(),
        failover_policy: "stay".into(),
        outbound: "tunnel-2".into(),
        uptime_secs: 10,
        failovers: 0,
        ike_input: Default::default(),
        ike_half_open: 0,
        tunnels: vec![t(1, PhaseState::Negotiating), t(2, PhaseState::Established)],
        routes: vec![],
        connections: vec![],
        reload: None,
        bgp_routes: Vec::new(),
    }
}

#[test]
fn status_round_trips_over_a_private_socket() {
    let dir = TempDir::new("ctl");
    // The directory is created by the server (0700), the socket is 0600.
    let path = dir.0.join("run").join("cgwd.sock");
    let shared: SharedStatus = Arc::new(Mutex::new(None));
    let server = ControlServer::start(&path, shared.clone(), commands()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);

    // Before the run loop filled it in.
    match query_status(&path) {
        Err(ControlError::Remote(msg)) => assert!(msg.contains("starting"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let snap = snapshot();
    *shared.lock().unwrap() = Some(snap.clone());
    let got = query_status(&path).unwrap();
    assert_eq!(got, snap);
    assert!(render(&got).contains("tunnel 1"));
    // Many clients in a row.
    for _ in 0..20 {
        query_status(&path).unwrap();
    }
    // A second server on the same socket is refused while the first runs.
    assert!(matches!(
        ControlServer::start(&path, shared.clone(), commands()),
        Err(ControlError::AlreadyRunning(_))
    ));
    drop(server);
    assert!(!path.exists(), "socket removed on shutdown");
    assert!(matches!(query_status(&path), Err(ControlError::NotRunning(_))));
}

/// The names `dir`'s entries were created under (IN_CREATE) and moved in as (IN_MOVED_TO) while `f`
/// ran, through inotify.
fn created_and_moved_in(dir: &std::path::Path, f: impl FnOnce()) -> (Vec<String>, Vec<String>) {
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c_dir = CString::new(dir.as_os_str().as_bytes()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: inotify_init1 takes no pointers; the descriptor is owned by the File below.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    #[allow(unsafe_code)]
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let mut events = unsafe { std::fs::File::from_raw_fd(fd) };
    #[allow(unsafe_code)]
    // SAFETY: c_dir is a NUL-terminated path that outlives the call.
    let wd = unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) };
    assert!(wd >= 0);
    f();
    let mut buf = vec![0u8; 64 * 1024];
    let n = events.read(&mut buf).unwrap_or(0);
    let (mut created, mut moved) = (Vec::new(), Vec::new());
    let mut at = 0;
    // struct inotify_event: wd i32, mask u32, cookie u32, len u32, then `len` bytes of NUL-padded name.
    while at + 16 <= n {
        let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
        let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
        let name = String::from_utf8_lossy(&buf[at + 16..at + 16 + len])
            .trim_end_matches('\0')
            .to_string();
        if mask & libc::IN_CREATE != 0 {
            created.push(name);
        } else if mask & libc::IN_MOVED_TO != 0 {
            moved.push(name);
        }
        at += 16 + len;
    }
    (created, moved)
}

#[test]
fn the_socket_appears_only_already_0600() {
    let dir = TempDir::new("ctl-race");
    let path = dir.0.join("cgwd.sock");
    let mut server = None;
    let (created, moved) = created_and_moved_in(&dir.0, || {
        server = Some(ControlServer::start(&path, Arc::new(Mutex::new(None)), commands()).unwrap());
    });
    // Bound elsewhere, made 0600 there, renamed here: never created here with the umask's mode.
    assert!(
        !created.iter().any(|n| n == "cgwd.sock"),
        "created in place: {created:?}"
    );
    assert_eq!(moved, ["cgwd.sock"]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The staging directory is gone again.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["cgwd.sock"]);
    assert!(query_status(&path).is_err_and(|e| matches!(e, ControlError::Remote(_))));
}

#[test]
fn a_directory_others_may_write_is_refused_with_the_fix() {
    let dir = TempDir::new("ctl-dir");
    let path = dir.0.join("cgwd.sock");
    let start = || ControlServer::start(&path, Arc::new(Mutex::new(None)), commands());
    let chmod = |mode| std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
    for (mode, says) in [(0o777, "writable by everyone"), (0o770, "writable by its group")] {
        chmod(mode);
        let err = start().err().expect("refused").to_string();
        assert!(err.contains(says), "{err}");
        assert!(err.contains(&format!("chmod go-w {}", dir.0.display())), "{err}");
        assert!(!path.exists());
    }
    // Sticky (as /tmp): others cannot remove or rename what we put there.
    chmod(0o1777);
    drop(start().unwrap());
    chmod(0o755);
    drop(start().unwrap());
    if common::netns::is_root() {
        std::os::unix::fs::chown(&dir.0, Some(4242), None).unwrap();
        let err = start().err().expect("refused").to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
    }
}

#[test]
fn stale_socket_from_a_crash_is_replaced_and_garbage_requests_are_answered() {
    use std::io::{Read, Write};
    let dir = TempDir::new("ctl2");
    let path = dir.0.join("cgwd.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let shared: SharedStatus = Arc::new(Mutex::new(Some(snapshot())));
    let _server = ControlServer::start(&path, shared, commands()).unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"\xff\xfegarbage\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap_or_default();
    // Invalid UTF-8 fails the read on the server, which just closes; valid garbage gets an error.
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"reboot\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("unknown request"), "{answer}");
    // Still serving afterwards.
    assert_eq!(query_status(&path).unwrap().vpn_connection_id, "vpn-test");
}

#[test]
fn a_regular_file_in_the_way_is_an_error_not_deleted() {
    let dir = TempDir::new("ctl3");
    let path = dir.0.join("cgwd.sock");
    std::fs::write(&path, "precious").unwrap();
    let shared: SharedStatus = Arc::new(Mutex::new(None));
    let err = ControlServer::start(&path, shared, commands()).err().unwrap();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn cgwd_status_binary_renders_text_json_and_exit_codes() {
    let dir = TempDir::new("ctl4");
    let path = dir.0.join("cgwd.sock");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cgwd"))
            .arg("status")
            .args(args)
            .arg("--socket")
            .arg(&path)
            .output()
            .unwrap()
    };
    // Nothing listening: exit 3 and say so.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cgwd is not running"));

    let shared: SharedStatus = Arc::new(Mutex::new(Some(snapshot())));
    let _server = ControlServer::start(&path, shared.clone(), commands()).unwrap();
    // One tunnel negotiating: degraded, exit 1.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DEGRADED"), "{text}");
    assert!(
        text.contains("✘ tunnel 1") && text.contains("✔ tunnel 2"),
        "{text}"
    );
    let out = run(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tunnels"][0]["ike_phase1_state"], "negotiating");
    assert_eq!(v["outbound"], "tunnel-2");
    // Both up: exit 0.
    {
        let mut s = shared.lock().unwrap();
        let snap = s.as_mut().unwrap();
        snap.tunnels[0].ike_phase1_state = PhaseState::Established;
        snap.tunnels[0].ike_phase2_state = PhaseState::Established;
    }
    assert_eq!(run(&[]).status.code(), Some(0));
}

/// A command queue for tests that ask for status only (its receiver is dropped: a command would be
/// answered "busy").
fn commands() -> std::sync::mpsc::SyncSender<Command> {
    std::sync::mpsc::sync_channel(4).0
}

#[test]
fn rekey_requests_reach_the_control_loop_and_bad_ones_are_refused() {
    let dir = TempDir::new("ctlrekey");
    let path = dir.0.join("cgwd.sock");
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let _server = ControlServer::start(&path, Arc::new(Mutex::new(None)), tx).unwrap();
    assert!(request(&path, "rekey 2 ike").is_ok());
    assert!(request(&path, "rekey 1 child").is_ok());
    assert_eq!(
        rx.try_recv().unwrap(),
        Command::Rekey {
            connection: None,
            tunnel: TunnelId::Two,
            ike: true
        }
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        Command::Rekey {
            connection: None,
            tunnel: TunnelId::One,
            ike: false
        }
    );
    assert!(request(&path, "tunnel down 2").is_ok());
    assert_eq!(
        rx.try_recv().unwrap(),
        Command::Tunnel {
            connection: None,
            tunnel: TunnelId::Two,
            op: cgwd::gateway::TunnelOp::Down
        }
    );
    // A VPN connection named by ID (several connections in one daemon).
    assert!(request(&path, "tunnel reset vpn-0abc 1").is_ok());
    assert_eq!(
        rx.try_recv().unwrap(),
        Command::Tunnel {
            connection: Some("vpn-0abc".into()),
            tunnel: TunnelId::One,
            op: cgwd::gateway::TunnelOp::Reset
        }
    );
    for bad in [
        "rekey 3 ike",
        "rekey 1 esp",
        "rekey",
        "rekey 1 ike now",
        "tunnel off 1",
        "tunnel down 3",
    ] {
        assert!(
            matches!(request(&path, bad), Err(ControlError::Remote(e)) if e.contains("unknown request")),
            "{bad}"
        );
    }
    // A full queue (the loop not keeping up) is refused, not blocked on.
    assert!(request(&path, "rekey 1 ike").is_ok());
    assert!(request(&path, "rekey 1 ike").is_ok());
    assert!(matches!(request(&path, "rekey 1 ike"), Err(ControlError::Remote(e)) if e.contains("busy")));
}
