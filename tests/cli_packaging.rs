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
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/packaging/cgwd.service"
    ))
    .unwrap();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap();
    assert_eq!(caps, "CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW");
    assert!(unit.contains("Restart=on-failure"));
    assert!(unit.contains("NoNewPrivileges=yes"));
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
