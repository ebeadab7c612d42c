//! Packaging helpers generated from the clap definitions: shell completions and the man page.

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
