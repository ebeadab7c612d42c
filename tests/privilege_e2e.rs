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

/// How cgwd is started as `nobody`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Start {
    /// As root, with `daemon.user = "nobody"`: cgwd drops itself.
    Drop,
    /// The same in a container started as root with `--cap-drop=ALL`, the network capabilities,
    /// SETUID and SETGID, and no_new_privs (the Containerfile's alternative).
    ContainerRoot,
    /// As `nobody` with the kept capabilities ambient: what the systemd unit does.
    Ambient,
    /// As `nobody`, the binary carrying them as permitted-only file capabilities: what the
    /// container image does.
    FileCaps,
    /// The container image run as its example says: only NET_ADMIN and NET_RAW in the bounding
    /// set, and (as Docker does in a container's namespace) unprivileged ports from 0.
    FileCapsNoBind,
}

/// CAP_SETGID (6) and CAP_SETUID (7).
const SETID: u64 = 0xc0;
/// CAP_NET_BIND_SERVICE.
const BIND: u64 = 0x400;

impl Start {
    /// The effective (and permitted) set every thread must have.
    fn caps(self) -> u64 {
        match self {
            Start::FileCapsNoBind => KEPT & !BIND,
            _ => KEPT,
        }
    }

    /// cgwd changes user itself (`daemon.user`).
    fn drops(self) -> bool {
        matches!(self, Start::Drop | Start::ContainerRoot)
    }
}

/// Every thread of `pid` runs as `nobody` with exactly the kept capabilities effective (and, when
/// cgwd dropped them itself, nothing else anywhere and no way back); the number of threads.
fn assert_every_thread_unprivileged(pid: u32, start: Start) -> usize {
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
        let caps = start.caps();
        assert_eq!(hex(&status, "CapEff"), caps, "{start:?}: thread {name} CapEff");
        assert_eq!(hex(&status, "CapPrm"), caps, "{start:?}: thread {name} CapPrm");
        if start.drops() {
            assert_eq!(hex(&status, "CapInh"), 0, "thread {name} CapInh");
            assert_eq!(hex(&status, "CapAmb"), 0, "thread {name} CapAmb");
            // Without CAP_SETPCAP (the container) the bounding set stays as the runtime left it.
            let bounding = if start == Start::Drop { KEPT } else { KEPT | SETID };
            assert_eq!(hex(&status, "CapBnd"), bounding, "thread {name} CapBnd");
            assert_eq!(field(&status, "NoNewPrivs"), ["1"], "thread {name}");
        }
        n += 1;
    }
    n
}

fn owner(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .uid()
}

/// The settings of the cgwd run as `nobody`: everything it writes (control socket, health log)
/// under `dir`, metrics on, `extra` VPC networks; `daemon.user` only when it drops itself.
fn cgwd_settings(dir: &Path, start: Start, extra: &str) -> String {
    let daemon = if start.drops() {
        "[daemon]\nuser = \"nobody\"\n"
    } else {
        ""
    };
    format!(
        "{daemon}[interface]\nname = \"cgwd0\"\n[local]\naddress = \"192.0.2.10\"\n\
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

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// cgwd running as `nobody` (started the `start` way) against `cgwd emulate-aws` (root, as
/// usual), both tunnels up and a ping through them.
struct Running {
    lab: Lab,
    pid: u32,
    dir: PathBuf,
    settings: PathBuf,
    sock: PathBuf,
    log: PathBuf,
}

impl Running {
    fn logs(&self) -> String {
        format!("{}{}", tail(&self.dir, "cgwd.log"), tail(&self.dir, "aws.log"))
    }

    fn start(start: Start) -> Running {
        let keep = std::env::var_os("CGWD_KEEP_TEST_FILES").is_some();
        let mut lab =
            Lab::create(format!("cgwd-priv-{}-{}", std::process::id(), start as u8), keep).expect("topology");
        let dir = lab.dir.clone();
        // `nobody` must get through the lab directory (0700), to its own files only.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let config_text = CONFIG.replace("\"StaticRoutesOnly\": false", "\"StaticRoutesOnly\": true");
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
        std::fs::write(&settings, cgwd_settings(&dir, start, "")).unwrap();
        for (p, mode) in [(&etc, 0o750), (&config, 0o640), (&settings, 0o640)] {
            std::os::unix::fs::chown(p, Some(0), Some(NOBODY)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // The health log's directory is the user's (systemd's LogsDirectory= does the same); so is
        // the control socket's unless cgwd makes it itself (systemd's RuntimeDirectory=).
        let log = dir.join("log");
        let mut own = vec![log.clone()];
        if start != Start::Drop {
            own.push(dir.join("run"));
        }
        for d in &own {
            std::fs::create_dir(d).unwrap();
            std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        lab.spawn(
            &lab.ns("aws"),
            &[
                EXE,
                "emulate-aws",
                &path(&aws_config),
                "--settings",
                &path(&aws_settings),
            ],
            "aws.log",
        )
        .expect("emulate-aws");
        let as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups"];
        let caps = "+net_admin,+net_bind_service,+net_raw";
        let exe = match start {
            Start::FileCaps | Start::FileCapsNoBind => {
                let exe = dir.join("cgwd-filecaps");
                std::fs::copy(EXE, &exe).unwrap();
                let cap = Command::new("setcap")
                    .args(["cap_net_admin,cap_net_bind_service,cap_net_raw=p", &path(&exe)])
                    .output()
                    .unwrap();
                assert!(cap.status.success(), "{}", String::from_utf8_lossy(&cap.stderr));
                path(&exe)
            }
            _ => EXE.to_string(),
        };
        let (inh, amb) = (format!("--inh-caps={caps}"), format!("--ambient-caps={caps}"));
        let mut argv: Vec<&str> = match start {
            Start::Drop => vec![],
            Start::ContainerRoot => vec![
                "setpriv",
                "--no-new-privs",
                "--bounding-set=-all,+setuid,+setgid,+net_admin,+net_bind_service,+net_raw",
                "--",
            ],
            Start::Ambient => [&as_nobody[..], &[&inh, &amb]].concat(),
            Start::FileCaps => as_nobody.to_vec(),
            Start::FileCapsNoBind => [&as_nobody[..], &["--bounding-set=-all,+net_admin,+net_raw"]].concat(),
        };
        let (c, st) = (path(&config), path(&settings));
        argv.extend([exe.as_str(), "run", &c, "--settings", &st]);
        let cgw = lab.ns("cgw");
        if start == Start::ContainerRoot {
            // A root without CAP_CHOWN cannot make the socket's directory for the user: refused,
            // nothing left behind, the fix named (the Containerfile's tmpfs).
            let run = dir.join("run");
            std::fs::remove_dir(&run).unwrap();
            let err = lab
                .exec(&cgw, &argv)
                .expect_err("no CAP_CHOWN for the control directory");
            assert!(err.contains("--tmpfs") && err.contains("uid=65534"), "{err}");
            assert!(!run.exists(), "{err}");
            std::fs::create_dir(&run).unwrap();
            std::os::unix::fs::chown(&run, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        if start == Start::FileCapsNoBind {
            // Without CAP_NET_BIND_SERVICE UDP 500 is refused, and the error says what to add.
            let err = lab
                .exec(&cgw, &argv)
                .expect_err("UDP 500 without CAP_NET_BIND_SERVICE");
            assert!(
                err.contains(":500: Permission denied") && err.contains("--cap-add=NET_BIND_SERVICE"),
                "{err}"
            );
            lab.exec(&cgw, &["sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"])
                .unwrap();
        }
        let pid = lab.spawn(&cgw, &argv, "cgwd.log").expect("cgwd run");
        let r = Running {
            lab,
            pid,
            sock: dir.join("run/cgwd.sock"),
            dir,
            settings,
            log,
        };
        wait_for(
            Duration::from_secs(25),
            "both tunnels up",
            || established(&r.sock),
            || r.logs(),
        );
        r.lab
            .exec(
                &r.lab.ns("onprem"),
                &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.100.0.10"],
            )
            .unwrap_or_else(|e| panic!("ping on-prem → VPC: {e}\n{}", r.logs()));
        let threads = assert_every_thread_unprivileged(r.pid, start);
        assert!(threads >= 6, "only {threads} threads");
        println!(
            "{start:?}: {threads} threads of cgwd (pid {}) with uid/gid {NOBODY}, CapEff {:#x}",
            r.pid,
            start.caps()
        );
        assert_eq!(owner(&r.sock), NOBODY);
        assert_eq!(owner(&r.log.join("health.jsonl")), NOBODY);
        r
    }

    /// `cgwd reload` re-reads the group-readable files as `nobody` and installs a new route
    /// (CAP_NET_ADMIN).
    fn reload_adds_a_route(&self, start: Start) {
        std::fs::write(
            &self.settings,
            cgwd_settings(&self.dir, start, ", \"10.200.0.0/16\""),
        )
        .unwrap();
        let out = cgwd(&["reload", "--socket", &path(&self.sock)]);
        assert!(
            out.status.success(),
            "cgwd reload: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        wait_for(
            Duration::from_secs(5),
            "the reloaded route",
            || {
                self.lab
                    .exec(&self.lab.ns("cgw"), &["ip", "route", "show", "proto", "198"])
                    .is_ok_and(|r| r.contains("10.200.0.0/16 dev cgwd0"))
            },
            || self.logs(),
        );
        assert!(established(&self.sock), "{}", self.logs());
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    }
}

#[test]
fn dropped_to_nobody_tunnels_reload_sighup_and_every_thread_unprivileged() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let r = Running::start(Start::Drop);
    let log_text = std::fs::read_to_string(r.dir.join("cgwd.log")).unwrap();
    assert!(log_text.contains("dropped root privileges"), "{log_text}");
    assert!(!log_text.contains("running as root"), "{log_text}");
    // Root made the control socket's directory for the user.
    assert_eq!(owner(&r.dir.join("run")), NOBODY);

    r.reload_adds_a_route(Start::Drop);

    // logrotate moves the file; SIGHUP makes the user create a new one.
    let health = r.log.join("health.jsonl");
    std::fs::rename(&health, r.log.join("health.jsonl.1")).unwrap();
    r.signal("-HUP");
    wait_for(
        Duration::from_secs(5),
        "the health log reopened",
        || health.exists(),
        || r.logs(),
    );
    assert_eq!(owner(&health), NOBODY);
    assert_every_thread_unprivileged(r.pid, Start::Drop);

    // SIGTERM: the user removes its socket from its directory as it stops.
    r.signal("-TERM");
    wait_for(
        Duration::from_secs(5),
        "cgwd stopped",
        || std::fs::read_to_string(r.dir.join("cgwd.log")).is_ok_and(|l| l.contains("cgwd stopped")),
        || r.logs(),
    );
    assert!(!r.sock.exists(), "control socket left behind");
    assert!(
        r.lab
            .exec(&r.lab.ns("cgw"), &["ip", "link", "show", "cgwd0"])
            .is_err(),
        "TUN device left behind"
    );
}

/// The packaged starts give cgwd the capabilities without root: ambient ones (the systemd unit)
/// and permitted-only file capabilities that cgwd raises itself (the container image).
#[test]
fn started_unprivileged_as_the_systemd_unit_and_the_container_image_do() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let r = Running::start(Start::Ambient);
    r.reload_adds_a_route(Start::Ambient);
    drop(r);
    if Command::new("setcap").arg("-h").output().is_err() {
        println!("SKIPPED (file capabilities): needs setcap (Debian package libcap2-bin)");
        return;
    }
    let r = Running::start(Start::FileCaps);
    let log_text = std::fs::read_to_string(r.dir.join("cgwd.log")).unwrap();
    assert!(!log_text.contains("dropped root privileges"), "{log_text}");
}

/// configs/packaging/Containerfile's two ways: its run example (non-root, file capabilities, only
/// NET_ADMIN and NET_RAW granted) and the root start for runtimes that set no_new_privs, where
/// cgwd drops itself with what the runtime left it.
#[test]
fn the_containerfile_run_examples() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    if Command::new("setcap").arg("-h").output().is_err() {
        println!("SKIPPED: needs setcap (Debian package libcap2-bin)");
        return;
    }
    drop(Running::start(Start::FileCapsNoBind));
    let r = Running::start(Start::ContainerRoot);
    r.reload_adds_a_route(Start::ContainerRoot);
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

/// A network namespace of its own, removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_control_directory_the_user_cannot_write_is_refused_before_anything_is_created() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let tmp = common::tempdir::TempDir::new("priv-rundir");
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // What a root run leaves behind: root's, 0700.
    let run = tmp.0.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ns = Netns(format!("cgwd-privrun-{}", std::process::id()));
    let added = Command::new("ip").args(["netns", "add", &ns.0]).status().unwrap();
    assert!(added.success());
    let ifname = "cgwdr0";
    let (code, err) = run_with(
        &tmp.0,
        &format!(
            "[daemon]\nuser = \"nobody\"\n[interface]\nname = \"{ifname}\"\n\
             [control]\nsocket = \"{}/cgwd.sock\"\n",
            run.display()
        ),
        &["ip", "netns", "exec", &ns.0],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not writable by nobody (daemon.user)"), "{err}");
    assert!(err.contains("`chown nobody"), "{err}");
    let link = Command::new("ip")
        .args(["-n", &ns.0, "link", "show", ifname])
        .output()
        .unwrap();
    assert!(!link.status.success(), "a TUN device was created");
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 0);
}
