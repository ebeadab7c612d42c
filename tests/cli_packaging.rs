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

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn container_image_is_pinned_unprivileged_and_built_from_a_small_context() {
    let file = repo_file("configs/packaging/Containerfile");
    // Exact base images: a Rust patch release and a dated Debian build, never `1` or `latest`.
    let images: Vec<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("ARG ").and_then(|a| a.split_once("_IMAGE=")))
        .map(|(_, image)| image)
        .collect();
    assert_eq!(images.len(), 2, "{file}");
    for image in &images {
        let (_, tag) = image.rsplit_once(':').unwrap();
        assert!(
            tag.split(['-', '.']).any(|w| w.len() == 8 && w.starts_with("20"))
                || (tag.starts_with(|c: char| c.is_ascii_digit()) && tag.matches('.').count() == 2),
            "{image} is not an exact version"
        );
    }
    let from: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from, ["FROM ${RUST_IMAGE} AS build", "FROM ${RUNTIME_IMAGE}"]);
    // Not root, by number; the binary's capabilities permitted-only (cgwd raises them).
    assert!(file.lines().any(|l| l == "USER 10001:10001"), "{file}");
    assert!(file.contains("setcap cap_net_admin,cap_net_bind_service,cap_net_raw=p "));
    for flag in [
        "--read-only",
        "--cap-drop=ALL",
        "--cap-add=NET_ADMIN",
        "--cap-add=NET_RAW",
        "--device /dev/net/tun",
        "--tmpfs /run/cgwd:rw,mode=0700,uid=10001,gid=10001",
        "CGWD_DAEMON_USER=cgwd",
    ] {
        assert!(file.contains(flag), "the run example lacks {flag}");
    }
    // The whole tree is not copied; what is copied is all the build reads, and in the context.
    assert!(!file.contains("COPY . "), "{file}");
    let ignore = repo_file(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for must in ["target/", ".git/", "fuzz/target/"] {
        assert!(ignored.contains(&must), ".dockerignore lacks {must}");
    }
    for line in file
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
            assert!(path.exists(), "{line}: {src} does not exist");
            assert!(
                !ignored.iter().any(|i| i.trim_end_matches('/') == *src),
                "{line}: {src} is ignored"
            );
        }
    }
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
