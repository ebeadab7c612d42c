//! `cgwd check` as a user runs it: every sample in configs/ is valid (exit 0, both tunnels shown),
//! every file in configs/invalid/ is refused (exit 2, the file named).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn cgwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(args)
        // The environment must not leak settings into the test.
        .env_remove("CGWD_INTERFACE_NAME")
        .env_remove("CGWD_INTERFACE_MTU")
        .env_remove("CGWD_DPD_INTERVAL")
        // The BGP samples need something to announce (see the test of that below).
        .env("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/16")
        .output()
        .expect("run cgwd")
}

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(configs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "toml"))
        // Log-shipping examples (docs/observability.md), not AWS downloads.
        .filter(|p| {
            !["fluent-bit.conf", "cloudwatch-agent.json"].contains(&p.file_name().unwrap().to_str().unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_sample_is_valid_and_shows_both_tunnels() {
    let files = samples();
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let out = cgwd(&["check", f.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", f.display());
        assert!(stdout.contains("Tunnel 1  AWS "), "{}: {stdout}", f.display());
        assert!(stdout.contains("Tunnel 2  AWS "), "{}: {stdout}", f.display());
        assert!(stdout.contains("OK: "), "{stdout}");
        assert!(stdout.contains("PSK                "), "{stdout}");
    }
}

#[test]
fn json_output_is_machine_readable() {
    for f in samples() {
        let out = cgwd(&["check", "--json", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", f.display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v["valid"], true);
        let tunnels = v["tunnels"].as_array().unwrap();
        assert_eq!(tunnels.len(), 2);
        assert_eq!(tunnels[0]["tunnel"], 1);
        assert_eq!(tunnels[1]["tunnel"], 2);
        assert_eq!(tunnels[0]["psk"], "******** (set)");
    }
}

#[test]
fn every_invalid_sample_exits_2_naming_the_file() {
    let dir = configs().join("invalid");
    let lab = configs().join("lab.xml");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let f = e.unwrap().path();
        let out = if f.extension().is_some_and(|e| e == "toml") {
            cgwd(&["check", lab.to_str().unwrap(), "--settings", f.to_str().unwrap()])
        } else {
            cgwd(&["check", f.to_str().unwrap()])
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", f.display());
        assert!(
            stderr.contains(f.file_name().unwrap().to_str().unwrap()),
            "{stderr}"
        );
        assert!(stderr.contains("error"), "{stderr}");
        n += 1;
    }
    assert!(n >= 8);
}

#[test]
fn settings_are_checked_and_shown() {
    let lab = configs().join("lab.describe.json");
    let toml = configs().join("lab-cgwd.toml");
    let out = cgwd(&[
        "check",
        lab.to_str().unwrap(),
        "--settings",
        toml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("local address      192.0.2.10"), "{stdout}");
    assert!(stdout.contains("VPC CIDRs          10.100.0.0/16"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["check", lab.to_str().unwrap()])
        .env("CGWD_INTERFACE_MTU", "1200")
        .env("CGWD_DPD_INTERVAL", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MTU 1200  (from cgwd settings)"), "{stdout}");
    assert!(stdout.contains("every 2 s  (from cgwd settings)"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_cgwd"))
        .args(["check", lab.to_str().unwrap()])
        .env("CGWD_INTERFACE_MTU", "huge")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CGWD_INTERFACE_MTU"));
}

#[test]
fn missing_file_and_json_errors() {
    let out = cgwd(&["check", "/nonexistent/vpn.xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/vpn.xml"));

    let bad = configs().join("invalid/bad-psk.xml");
    let out = cgwd(&["check", "--json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("pre_shared_key"));
}

#[test]
fn binary_and_oversized_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("cgwd-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());

    let binary = dir.join("vpn.bin");
    std::fs::write(&binary, [0x3c, 0xff, 0xfe, 0x00, 0x01]).unwrap();
    let out = cgwd(&["check", binary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));

    let huge = dir.join("vpn.xml");
    std::fs::write(&huge, vec![b' '; 5 * 1024 * 1024]).unwrap();
    let out = cgwd(&["check", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than any AWS download"));
}

/// A BGP file with nothing to announce loads, but `cgwd run` would leave AWS without a route back:
/// `cgwd check` says so (exit 2, the setting to use), shows the rest, and a static file does not
/// need on-prem prefixes.
#[test]
fn a_bgp_file_with_nothing_to_announce_fails_check() {
    let run = |file: &str, json: bool| {
        let f = configs().join(file);
        let mut args = vec!["check"];
        if json {
            args.push("--json");
        }
        args.push(f.to_str().unwrap());
        Command::new(env!("CARGO_BIN_EXE_cgwd"))
            .args(&args)
            .env_remove("CGWD_ROUTING_ONPREM_CIDRS")
            .env_remove("CGWD_BGP_SPEAKER")
            .output()
            .unwrap()
    };
    let out = run("lab.describe.json", false);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("lab.describe.json"), "{stderr}");
    assert!(stderr.contains("routing.onprem_cidrs"), "{stderr}");
    assert!(stderr.contains("nothing to announce"), "{stderr}");
    assert!(
        stdout.contains("Tunnel 1  AWS "),
        "the rest still shown: {stdout}"
    );
    assert!(!stdout.contains("OK: "), "{stdout}");
    let out = run("lab.describe.json", true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("routing.onprem_cidrs"));
    let out = run("aws-static.xml", false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
