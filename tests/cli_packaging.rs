//! The binary's command line: packaging helpers generated from the clap definitions (shell
//! completions, the man page) and argument checks that need no running daemon.

use std::process::Command;

fn cgwd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, text) = cgwd(&["completions", shell]);
        assert!(ok, "{shell}");
        for sub in ["check", "run", "status"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let (ok, _) = cgwd(&["completions", "tcsh"]);
    assert!(!ok, "unknown shell is refused");
}

#[test]
fn man_page_is_section_8_roff() {
    let (ok, text) = cgwd(&["man"]);
    assert!(ok);
    assert!(text.contains(".TH cgwd 8"), "{text}");
    assert!(text.contains("customer gateway"));
}

#[test]
fn systemd_unit_grants_only_network_capabilities() {
    let unit = unit();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap();
    assert_eq!(caps, "CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW");
    assert!(unit.contains("Restart=on-failure"));
    assert!(unit.contains("NoNewPrivileges=yes"));
}

fn unit() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/packaging/cgwd.service"
    ))
    .unwrap()
}

/// `Key=` lines of the unit, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn systemd_unit_reads_the_files_as_credentials_and_is_sandboxed() {
    let unit = unit();
    // The dynamic user reads root-only files through systemd's copies, never /etc/cgwd itself.
    assert_eq!(
        unit_values(&unit, "LoadCredential"),
        ["vpn.json:/etc/cgwd/vpn.json", "cgwd.toml:/etc/cgwd/cgwd.toml"]
    );
    for key in ["ExecStartPre", "ExecStart"] {
        let line = &unit_values(&unit, key)[0];
        assert!(
            line.ends_with(" %d/vpn.json --settings %d/cgwd.toml"),
            "{key}={line}"
        );
    }
    assert!(!unit.contains("ConfigurationDirectory="));
    assert!(!unit.contains("/etc/cgwd/vpn.json --settings"));
    // cgwd starts unprivileged here: no daemon.user, no set*id or capset allowed.
    assert!(!unit.contains("CGWD_DAEMON_USER"));
    assert_eq!(unit_values(&unit, "DynamicUser"), ["yes"]);
    for (key, value) in [
        ("UMask", "0077"),
        ("LimitCORE", "0"),
        ("ProtectProc", "invisible"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectKernelLogs", "yes"),
        (
            "CapabilityBoundingSet",
            "CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW",
        ),
        ("DeviceAllow", "/dev/net/tun rw"),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}");
    }
    assert_eq!(
        unit_values(&unit, "SystemCallFilter"),
        ["@system-service", "~@privileged @resources", "sched_setattr"]
    );
}

/// `systemd-analyze security --offline=true` (systemd 250 and later) needs no running systemd.
#[test]
fn systemd_unit_exposure_is_at_most_2() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/packaging/cgwd.service");
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", path])
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            println!("SKIPPED: needs systemd-analyze (Debian package systemd)");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("--offline") && !out.status.success() {
        println!("SKIPPED: this systemd-analyze has no --offline (systemd < 250): {err}");
        return;
    }
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for cgwd.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}{err}"));
    println!("systemd-analyze security cgwd.service: {score} (target <= 2.0)");
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

#[test]
fn emulate_aws_ctl_refuses_a_maintenance_window_over_a_day() {
    let run = |window: &str| {
        Command::new(env!("CARGO_BIN_EXE_cgwd"))
            .args([
                "emulate-aws-ctl",
                "--control-socket",
                "/nonexistent/aws.sock",
                "maintenance",
            ])
            .args(["--tunnel", "1", "--for", window])
            .output()
            .unwrap()
    };
    for window in ["1441m", "18446744073709551s"] {
        let out = run(window);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{window}: {err}");
        assert!(err.contains("--for") && err.contains("at most a day"), "{err}");
    }
    // A day is accepted: it then fails only for want of a running emulate-aws.
    let out = run("1440m");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no maintenance socket"), "{err}");
}
