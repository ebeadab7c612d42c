//! `daemon.user` (src/daemon/privilege.rs): `cgwd run` started as root becomes an unprivileged
//! user with only CAP_NET_ADMIN, CAP_NET_BIND_SERVICE and CAP_NET_RAW.
//!
//! End to end (root; skipped otherwise), in `cgwd demo`'s namespaces ([`cgwd::demo::Lab`]) against
//! `cgwd emulate-aws`: cgwd drops to `nobody`, both tunnels come up and a ping crosses them; every
//! thread of the process is `nobody` with exactly the kept capabilities; a reload (re-reading
//! group-readable files, installing a new route) and a SIGHUP after a log rotation work as that
//! user; SIGTERM still removes the control socket. Mistakes in `daemon.user` are refused before
//! anything is created.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cgwd::demo::Lab;
use common::lab::{tail, wait_for};
use common::netns::is_root;

const CONFIG: &str = include_str!("../configs/lab.describe.json");
const EXE: &str = env!("CARGO_BIN_EXE_cgwd");
/// `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13), as /proc prints them.
const KEPT: u64 = 0x3400;

/// `key:` of a /proc status text, split in words.
fn field<'a>(status: &'a str, key: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default()
}

fn hex(status: &str, key: &str) -> u64 {
    let v = field(status, key);
    u64::from_str_radix(v.first().unwrap_or(&"?"), 16).unwrap_or_else(|_| panic!("{key} in {status}"))
}

/// Every thread of `pid` runs as `nobody` with exactly the kept capabilities and no way back; the
/// number of threads checked.
fn assert_every_thread_unprivileged(pid: u32) -> usize {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue; // a thread that just ended
        };
        let name = field(&status, "Name").join(" ");
        let uids = field(&status, "Uid");
        assert_eq!(uids.len(), 4, "{status}");
        assert!(
            uids.iter().all(|u| *u == NOBODY.to_string()),
            "thread {name}: Uid {uids:?}"
        );
        assert!(
            field(&status, "Gid").iter().all(|g| *g == NOBODY.to_string()),
            "thread {name}: {status}"
        );
        assert_eq!(hex(&status, "CapEff"), KEPT, "thread {name} CapEff");
        assert_eq!(hex(&status, "CapPrm"), KEPT, "thread {name} CapPrm");
        assert_eq!(hex(&status, "CapInh"), 0, "thread {name} CapInh");
        assert_eq!(hex(&status, "CapAmb"), 0, "thread {name} CapAmb");
        assert_eq!(hex(&status, "CapBnd"), KEPT, "thread {name} CapBnd");
        assert_eq!(field(&status, "NoNewPrivs"), ["1"], "thread {name}");
        n += 1;
    }
    n
}

fn owner(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .uid()
}

/// The settings of the dropped cgwd: everything it writes (control socket, health log) under
/// `dir`, metrics on, `extra` VPC networks.
fn cgwd_settings(dir: &Path, extra: &str) -> String {
    format!(
        "[daemon]\nuser = \"nobody\"\n[interface]\nname = \"cgwd0\"\n[local]\naddress = \"192.0.2.10\"\n\
         [routing]\nvpc_cidrs = [\"10.100.0.0/16\"{extra}]\nonprem_cidrs = [\"10.0.0.0/16\"]\n\
         [metrics]\nlisten = \"127.0.0.1:9711\"\n[control]\nsocket = \"{run}/cgwd.sock\"\n\
         [log]\nhealth = \"{log}/health.jsonl\"\n",
        run = dir.join("run").display(),
        log = dir.join("log").display(),
    )
}

fn cgwd(args: &[&str]) -> std::process::Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn established(sock: &Path) -> bool {
    let out = cgwd(&["status", "--json", "--socket", &sock.to_string_lossy()]);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return false;
    };
    (0..2).all(|i| {
        let t = &v["tunnels"][i];
        t["ike_phase2_state"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("established"))
            && t["liveness"] == "healthy"
    })
}

#[test]
fn dropped_to_nobody_tunnels_reload_sighup_and_every_thread_unprivileged() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let mut lab = Lab::create(
        format!("cgwd-priv-{}", std::process::id()),
        std::env::var_os("CGWD_KEEP_TEST_FILES").is_some(),
    )
    .expect("topology");
    let dir = lab.dir.clone();
    // `nobody` must get through the lab directory (0700), to its own files only.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let config_text = CONFIG.replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true");
    // AWS's side: root, as usual.
    let aws_config = dir.join("aws-vpn.json");
    std::fs::write(&aws_config, &config_text).unwrap();
    let aws_settings = dir.join("aws.toml");
    std::fs::write(
        &aws_settings,
        format!(
            "[interface]\nname = \"cgwd0\"\n[routing]\nvpc_cidrs = [\"10.100.0.0/16\"]\n\
             onprem_cidrs = [\"10.0.0.0/16\"]\n[control]\nsocket = \"{}\"\n",
            dir.join("aws.sock").display()
        ),
    )
    .unwrap();
    // cgwd's files as the docs recommend: root's, readable by the daemon user's group only.
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    let config = etc.join("vpn.json");
    let settings = etc.join("cgwd.toml");
    std::fs::write(&config, &config_text).unwrap();
    std::fs::write(&settings, cgwd_settings(&dir, "")).unwrap();
    for (p, mode) in [(&etc, 0o750), (&config, 0o640), (&settings, 0o640)] {
        std::os::unix::fs::chown(p, Some(0), Some(NOBODY)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // The health log's directory is the user's (systemd's LogsDirectory= does the same).
    let log = dir.join("log");
    std::fs::create_dir(&log).unwrap();
    std::os::unix::fs::chown(&log, Some(NOBODY), Some(NOBODY)).unwrap();
    let sock = dir.join("run/cgwd.sock");
    let logs = || format!("{}{}", tail(&dir, "cgwd.log"), tail(&dir, "aws.log"));

    let s = |p: &Path| p.to_string_lossy().into_owned();
    lab.spawn(
        &lab.ns("aws"),
        &[
            EXE,
            "emulate-aws",
            &s(&aws_config),
            "--settings",
            &s(&aws_settings),
        ],
        "aws.log",
    )
    .expect("emulate-aws");
    let pid = lab
        .spawn(
            &lab.ns("cgw"),
            &[EXE, "run", &s(&config), "--settings", &s(&settings)],
            "cgwd.log",
        )
        .expect("cgwd run");

    wait_for(
        Duration::from_secs(25),
        "both tunnels up",
        || established(&sock),
        logs,
    );
    lab.exec(
        &lab.ns("onprem"),
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
    )
    .unwrap_or_else(|e| panic!("ping on-prem → VPC: {e}\n{}", logs()));
    let log_text = std::fs::read_to_string(dir.join("cgwd.log")).unwrap();
    assert!(log_text.contains("dropped root privileges"), "{log_text}");
    assert!(!log_text.contains("running as root"), "{log_text}");

    // Every thread: the control loop, the data plane, IKE input, control socket, metrics.
    let threads = assert_every_thread_unprivileged(pid);
    assert!(threads >= 6, "only {threads} threads");
    println!("{threads} threads of cgwd (pid {pid}): uid/gid {NOBODY}, CapEff {KEPT:#x}, NoNewPrivs");
    // Root made the control socket's directory for the user; the user made the rest.
    assert_eq!(owner(&dir.join("run")), NOBODY);
    assert_eq!(owner(&sock), NOBODY);
    assert_eq!(owner(&log.join("health.jsonl")), NOBODY);

    // A reload re-reads the group-readable files as `nobody` and installs a route (CAP_NET_ADMIN).
    std::fs::write(&settings, cgwd_settings(&dir, ", \"10.200.0.0/16\"")).unwrap();
    let out = cgwd(&["reload", "--socket", &s(&sock)]);
    assert!(
        out.status.success(),
        "cgwd reload: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    wait_for(
        Duration::from_secs(5),
        "the reloaded route",
        || {
            lab.exec(&lab.ns("cgw"), &["ip", "route", "show", "proto", "198"])
                .is_ok_and(|r| r.contains("10.200.0.0/16 dev cgwd0"))
        },
        logs,
    );
    assert!(established(&sock), "{}", logs());

    // logrotate moves the file; SIGHUP makes the user create a new one.
    std::fs::rename(log.join("health.jsonl"), log.join("health.jsonl.1")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        Duration::from_secs(5),
        "the health log reopened",
        || log.join("health.jsonl").exists(),
        logs,
    );
    assert_eq!(owner(&log.join("health.jsonl")), NOBODY);
    assert_every_thread_unprivileged(pid);

    // SIGTERM: the user removes its socket from its directory as it stops.
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait_for(
        Duration::from_secs(5),
        "cgwd stopped",
        || std::fs::read_to_string(dir.join("cgwd.log")).is_ok_and(|l| l.contains("cgwd stopped")),
        logs,
    );
    assert!(!sock.exists(), "control socket left behind");
    assert!(
        lab.exec(&lab.ns("cgw"), &["ip", "link", "show", "cgwd0"])
            .is_err(),
        "TUN device left behind"
    );
}

/// A `cgwd run` with these settings (and the lab file), its exit code and stderr.
fn run_with(dir: &Path, settings: &str, prefix: &[&str]) -> (Option<i32>, String) {
    let path = dir.join("cgwd.toml");
    std::fs::write(&path, settings).unwrap();
    let config: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(EXE);
            c
        }
        None => Command::new(EXE),
    };
    let out = cmd
        .arg("run")
        .arg(&config)
        .arg("--settings")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_user_is_refused_before_anything_is_created() {
    let tmp = common::tempdir::TempDir::new("priv-unknown");
    let ifname = format!("cgwu{}", std::process::id() % 100_000);
    let run = tmp.0.join("run");
    let (code, err) = run_with(
        &tmp.0,
        &format!(
            "[daemon]\nuser = \"cgwd-no-such-user\"\n[interface]\nname = \"{ifname}\"\n\
             [control]\nsocket = \"{}/cgwd.sock\"\n",
            run.display()
        ),
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("daemon.user = \"cgwd-no-such-user\": no such user"),
        "{err}"
    );
    assert!(err.contains("useradd --system"), "{err}");
    assert!(!run.exists(), "the control socket's directory was created");
    if is_root() {
        let link = Command::new("ip")
            .args(["link", "show", &ifname])
            .output()
            .unwrap();
        assert!(!link.status.success(), "a TUN device {ifname} was created");
    }
}

#[test]
fn only_root_can_switch_users() {
    if !is_root() {
        println!("SKIPPED: needs root (to start cgwd as another user)");
        return;
    }
    let tmp = common::tempdir::TempDir::new("priv-notroot");
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, err) = run_with(
        &tmp.0,
        "[daemon]\nuser = \"daemon\"\n",
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("needs cgwd started as root, but it runs as uid 65534"),
        "{err}"
    );
    // Naming the user it already runs as is no change at all: it gets past the drop (and stops
    // for want of CAP_NET_ADMIN).
    let (code, err) = run_with(
        &tmp.0,
        "[daemon]\nuser = \"nobody\"\n",
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("needs root or CAP_NET_ADMIN"), "{err}");
}
