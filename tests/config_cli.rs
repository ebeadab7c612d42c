//! `cgwd check` as a user runs it: every sample in configs/ is valid (exit 0, both tunnels shown),
//! every file in configs/invalid/ is refused (exit 2, the file named).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn cgwd(args: &[&str]) -> Output {
    cgwd_env(args, &[])
}

/// `cgwd ARGS` with `vars` added to an environment that leaks no settings into the test.
fn cgwd_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cgwd"));
    c.args(args)
        .env_remove("CGWD_INTERFACE_NAME")
        .env_remove("CGWD_INTERFACE_MTU")
        .env_remove("CGWD_DPD_INTERVAL")
        .env_remove("CREDENTIALS_DIRECTORY")
        // The BGP samples need something to announce (see the test of that below).
        .env("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/16");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run cgwd")
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

/// The error line of a `cgwd <command>` that refused, without its `cgwd <command>: error: ` prefix.
fn error_of(command: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("cgwd {command}: error: ");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line: {stderr}"))
        .to_string()
}

/// `cgwd run FILE`, which must refuse at once (it loads the configuration before touching the
/// host); killed after 30 s if it does not.
fn run_refused(file: &Path) -> Output {
    run_refused_with(file, &[])
}

/// [`run_refused`] with `vars` added to the environment.
fn run_refused_with(file: &Path, vars: &[(&str, &str)]) -> Output {
    run_stopping(&[], file, vars)
}

/// `WRAPPER… cgwd run FILE` with `vars` added to the environment, which must stop by itself at
/// once: a configuration refused, or (in an empty network namespace) no host to run on.
fn run_stopping(wrapper: &[&str], file: &Path, vars: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("cgwd-parity-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cgwd = env!("CARGO_BIN_EXE_cgwd");
    let argv: Vec<&str> = wrapper
        .iter()
        .copied()
        .chain([cgwd, "run", file.to_str().unwrap()])
        .collect();
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .env("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/16")
        // Should it start after all, it must not take the names a real cgwd uses.
        .env("CGWD_INTERFACE_NAME", "cgwdtst9")
        .env("CGWD_CONTROL_SOCKET", dir.join("cgwd.sock"))
        .env_remove("CGWD_METRICS_LISTEN")
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cgwd");
    // At most 30 s (1500 × 20 ms).
    let mut waits = 0;
    while child.try_wait().expect("wait for cgwd").is_none() {
        waits += 1;
        if waits > 1500 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cgwd run {} did not stop by itself", file.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The error is a few lines: it fits the pipe, so the child never blocked writing it.
    let out = child.wait_with_output().expect("cgwd's output");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// The samples of FACTS §9 (configs/parity) that need settings: certificate authentication and
/// PSKs kept in Secrets Manager, each as describe JSON, as the XML in it and as Generic text
/// (inferred layout). Without settings `cgwd check` refuses every one (exit 2) saying why, and
/// `cgwd run` refuses it with the same error. (The IPv6 samples run: the next test.)
#[test]
fn parity_samples_are_refused_by_check_exactly_as_by_run() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "sample-cert.describe.json",
            &[
                "VpnConnections[0].VgwTelemetry[0].CertificateArn",
                "authenticates with a certificate (CertificateArn arn:aws:acm:",
                "the settings give the customer gateway no certificate",
                "[auth] table",
            ],
        ),
        (
            "sample-cert.xml",
            &[
                "tunnel 1 (AWS 192.0.2.71): the pre-shared key is missing",
                "[tunnels.1] psk_file",
                "if the tunnel is authenticated by certificate",
            ],
        ),
        (
            "sample-cert.txt",
            &[
                "line 28 (authentication method): tunnel 1 (AWS 192.0.2.71) authenticates with a \
                 certificate (Authentication Method Certificate)",
                "the settings give the customer gateway no certificate",
                "[auth] table",
            ],
        ),
        (
            "sample-secretsmanager.txt",
            &[
                "line 29 (pre-shared key): tunnel 1 (AWS 192.0.2.81): the pre-shared key is the placeholder `REDACTED`, not a key",
                "[tunnels.1] psk_file",
            ],
        ),
        (
            "sample-secretsmanager.describe.json",
            &[
                "<ipsec_tunnel>[1]/<ike>/<pre_shared_key>",
                "tunnel 1 (AWS 192.0.2.81): the pre-shared key is the placeholder `REDACTED`, not a key",
                "PreSharedKeyArn arn:aws:secretsmanager:",
                "[tunnels.1] psk_file = \"/etc/cgwd/vpn-0d4e5f60718293a4b-1.psk\"",
            ],
        ),
        (
            "sample-secretsmanager.xml",
            &["placeholder `REDACTED`, not a key", "[tunnels.1] psk_file"],
        ),
    ];
    for (name, needles) in cases {
        let f = configs().join("parity").join(name);
        let out = cgwd(&["check", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing shown as if valid");
        let check = error_of("check", &out);
        assert!(check.starts_with(&format!("{}: ", f.display())), "{check}");
        for n in needles {
            assert!(check.contains(n), "{name}: `{n}` in {check}");
        }
        let out = cgwd(&["check", "--json", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["error"].as_str().unwrap(), check, "{name}");

        let out = run_refused(&f);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(error_of("run", &out), check, "{name}: run and check disagree");
    }
}

/// The IPv6 samples of FACTS §9 (configs/parity/sample-ipv6.*: a transit gateway connection with
/// IPv6 outside and IPv6 inside addresses, `OutsideIpAddressType` Ipv6 and `TunnelInsideIpVersion`
/// ipv6) as describe JSON, as the XML in it and as Generic text. With IPv6 on-prem prefixes
/// `cgwd check` accepts each (exit 0) and shows the IPv6 outside addresses, the inside /126s and
/// the IPv6 traffic selectors, in text and JSON alike. `cgwd run` agrees: with an IPv4 on-prem
/// prefix (of the other IP version) both refuse with the same error, and with the IPv6 prefix
/// `cgwd run` goes past the configuration to the host — in an empty network namespace (root
/// only), where it finds no local address and stops with exit 1, not the configuration's 2.
#[test]
fn ipv6_parity_samples_are_accepted_by_check_and_run_alike() {
    let v6 = [("CGWD_ROUTING_ONPREM_CIDRS", "2001:db8:10::/48")];
    for name in ["sample-ipv6.describe.json", "sample-ipv6.xml", "sample-ipv6.txt"] {
        let f = configs().join("parity").join(name);
        let file = f.to_str().unwrap();
        let out = cgwd_env(&["check", file], &v6);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "Tunnel 1  AWS 2001:db8:ffaa:1::21 <- customer 2001:db8:100::10",
            "Tunnel 2  AWS 2001:db8:ffab:2::22 <- customer 2001:db8:100::10",
            "inside IPv6        fd00:a1b2:c3d4:1::/126  AWS fd00:a1b2:c3d4:1::1  customer \
             fd00:a1b2:c3d4:1::2 (on the device as fd00:a1b2:c3d4:1::2/126; the tunnel carries IPv6 only)",
            "inside IPv6        fd00:a1b2:c3d4:1::4/126  AWS fd00:a1b2:c3d4:1::5  customer \
             fd00:a1b2:c3d4:1::6 (on the device as fd00:a1b2:c3d4:1::6/126; the tunnel carries IPv6 only)",
            "BGP neighbor       fd00:a1b2:c3d4:1::1",
            "BGP neighbor       fd00:a1b2:c3d4:1::5",
            "on-prem CIDRs      2001:db8:10::/48",
            "MTU / MSS          1418 / 1378 (IPv6 MSS 1358)",
            &format!("OK: {file} is valid."),
        ] {
            assert!(stdout.contains(needle), "{name}: `{needle}` in {stdout}");
        }
        assert_eq!(
            stdout
                .matches(
                    "traffic selectors  local ::/0 <-> AWS ::/0 (IPv6: LocalIpv6NetworkCidr, \
                     RemoteIpv6NetworkCidr)"
                )
                .count(),
            2,
            "{name}: both tunnels' IPv6 selectors in {stdout}"
        );
        let out = cgwd_env(&["check", "--json", file], &v6);
        assert_eq!(out.status.code(), Some(0), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["valid"], true, "{name}");
        // Where the selectors came from names the IPv6 fields, never the IPv4 ones.
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Ipv4NetworkCidr"), "{name}: {text}");
        for (i, aws, inside, cgw) in [
            (
                0,
                "2001:db8:ffaa:1::21",
                "fd00:a1b2:c3d4:1::/126",
                "fd00:a1b2:c3d4:1::2",
            ),
            (
                1,
                "2001:db8:ffab:2::22",
                "fd00:a1b2:c3d4:1::4/126",
                "fd00:a1b2:c3d4:1::6",
            ),
        ] {
            let t = &v["tunnels"][i];
            assert_eq!(t["aws_outside"], aws, "{name}");
            assert_eq!(t["customer_outside"], "2001:db8:100::10", "{name}");
            assert_eq!(t["inside_ipv6_cidr"], inside, "{name}");
            assert_eq!(t["customer_inside_ipv6"], cgw, "{name}");
            assert_eq!(t["local_ts"], "::/0", "{name}");
            assert_eq!(t["mtu"], 1418, "{name}");
        }

        // An IPv4 on-prem prefix for this IPv6-inside connection: check and run refuse alike.
        let out = cgwd(&["check", file]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let check = error_of("check", &out);
        assert!(
            check.contains("key routing.onprem_cidrs: 10.0.0.0/16 is IPv4")
                && check.contains("carries IPv6 inside"),
            "{name}: {check}"
        );
        let out = run_refused(&f);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(error_of("run", &out), check, "{name}: run and check disagree");

        // The configuration check accepts, `cgwd run` accepts too: it stops only at the host.
        if !common::netns::is_root() {
            println!("SKIPPED: `cgwd run {name}` in an empty network namespace needs root");
            continue;
        }
        let out = run_stopping(&["unshare", "--net"], &f, &v6);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            error_of("run", &out).starts_with("finding the local address"),
            "{name}: {stderr}"
        );
    }
}

/// The Secrets Manager sample with its keys from the settings: valid (exit 0), each tunnel's key
/// shown masked with where it came from — a file, an environment variable, a systemd credential.
#[test]
fn secrets_manager_sample_is_valid_with_keys_from_the_settings() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cgwd-config-cli-psk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("creds")).unwrap();
    let key = |path: &Path, content: &str, mode: u32| {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let t1 = dir.join("t1.psk");
    key(&t1, "Ab3dE9fGh1jK2lM4nP5qR6sT7uV8wX9y\n", 0o600);
    key(&dir.join("creds/t2"), "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0f.\n", 0o400);
    let settings = dir.join("cgwd.toml");
    let write = |tunnel2: &str| {
        std::fs::write(
            &settings,
            format!(
                "[tunnels.1]\npsk_file = \"{}\"\n[tunnels.2]\n{tunnel2}\n",
                t1.display()
            ),
        )
        .unwrap();
    };
    let creds = dir.join("creds");
    for name in [
        "sample-secretsmanager.describe.json",
        "sample-secretsmanager.xml",
        "sample-secretsmanager.txt",
    ] {
        let f = configs().join("parity").join(name);
        let args = [
            "check",
            f.to_str().unwrap(),
            "--settings",
            settings.to_str().unwrap(),
        ];
        write("psk_env = \"SM_T2_PSK\"");
        let out = cgwd_env(&args, &[("SM_T2_PSK", "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0f.")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "PSK                ******** (set)  (from psk_file {})",
                t1.display()
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains("PSK                ******** (set)  (from psk_env SM_T2_PSK)"),
            "{stdout}"
        );
        assert!(stdout.contains("OK: "), "{stdout}");
        assert!(
            !stdout.contains("Ab3dE9fG") && !stdout.contains("Zy9xW8vU"),
            "{stdout}"
        );
        // The variable unset: refused, naming it.
        let out = cgwd_env(&args, &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(error_of("check", &out).contains("SM_T2_PSK is not set"));

        write("psk_credential = \"t2\"");
        let out = cgwd_env(&args, &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "(from psk_credential t2 at {})",
                creds.join("t2").display()
            )),
            "{stdout}"
        );
        let out = cgwd_env(&args, &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(error_of("check", &out).contains("$CREDENTIALS_DIRECTORY"));

        let out = cgwd_env(
            &[&args[..1], &["--json"][..], &args[1..]].concat(),
            &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(v["tunnels"][0]["psk"], "******** (set)");
        assert_eq!(v["tunnels"][0]["provenance"]["psk"]["from"], "psk-setting");
        assert_eq!(
            v["pre_shared_key_arn"].is_string(),
            name.ends_with(".json"),
            "{}",
            v["pre_shared_key_arn"]
        );
    }
    // A key file others may read: still valid, warned on stderr and in the notes.
    key(&t1, "Ab3dE9fGh1jK2lM4nP5qR6sT7uV8wX9y\n", 0o644);
    let f = configs().join("parity/sample-secretsmanager.xml");
    let out = cgwd_env(
        &[
            "check",
            f.to_str().unwrap(),
            "--settings",
            settings.to_str().unwrap(),
        ],
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("mode 0644"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Notes:") && stdout.contains("`chmod 600` it"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An IPv6-inside connection: `cgwd check` names the IPv6 selectors, the addresses it puts on the
/// device and the IPv6 next hops; JSON gives the same selectors.
#[test]
fn check_shows_ipv6_inside_selectors_and_addresses() {
    let f = configs().join("ipv6-inside").join("lab.describe.json");
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cgwd"));
        c.arg("check");
        if json {
            c.arg("--json");
        }
        c.arg(&f)
            .env("CGWD_ROUTING_VPC_CIDRS", "2001:db8:100::/48")
            .env_remove("CGWD_ROUTING_ONPREM_CIDRS")
            .output()
            .unwrap()
    };
    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "IP versions        outside PublicIpv4, inside ipv6",
        "inside IPv6        fd00:a9fe:10::/126  AWS fd00:a9fe:10::1  customer fd00:a9fe:10::2 (on the device as fd00:a9fe:10::2/126",
        "traffic selectors  local ::/0 <-> AWS ::/0 (IPv6: LocalIpv6NetworkCidr, RemoteIpv6NetworkCidr)",
        "static next hop    fd00:a9fe:20::1",
        "2001:db8:100::/48",
    ] {
        assert!(stdout.contains(needle), "`{needle}` in {stdout}");
    }
    let out = run(true);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tunnels"][0]["local_ts"], "::/0");
    assert_eq!(v["tunnels"][1]["customer_inside_ipv6"], "fd00:a9fe:20::2");
    assert_eq!(v["tunnels"][1]["next_hop"], "fd00:a9fe:20::1");
}

/// configs/lab.describe.json with IPv6 outside addresses (`OutsideIpAddressType` Ipv6): `cgwd check`
/// accepts it and shows the IPv6 addresses and the 20-octet smaller MTU; an IPv4 `local.address`
/// with it is refused by `check` and `run` alike, naming the key.
#[test]
fn ipv6_outside_addresses_are_valid_and_a_mixed_local_address_is_refused() {
    let dir = std::env::temp_dir().join(format!("cgwd-cli-v6out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("vpn-ipv6.json");
    let text = std::fs::read_to_string(configs().join("lab.describe.json"))
        .unwrap()
        .replace(
            "\"OutsideIpAddressType\": \"PublicIpv4\"",
            "\"OutsideIpAddressType\": \"Ipv6\"",
        )
        .replace("198.51.100.11", "2001:db8:ffaa:1::21")
        .replace("203.0.113.12", "2001:db8:ffab:2::22")
        .replace("192.0.2.10", "2001:db8:100::10");
    std::fs::write(&f, text).unwrap();
    let file = f.to_str().unwrap();
    let out = cgwd(&["check", "--json", file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tunnels"][0]["aws_outside"], "2001:db8:ffaa:1::21");
    assert_eq!(v["tunnels"][1]["customer_outside"], "2001:db8:100::10");
    assert_eq!(v["tunnels"][0]["mtu"], 1418);
    assert_eq!(v["tunnels"][0]["mss"], 1378);
    let text = cgwd(&["check", file]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("2001:db8:ffaa:1::21"));

    let mixed = [("CGWD_LOCAL_ADDRESS", "192.0.2.7")];
    let out = cgwd_env(&["check", file], &mixed);
    assert_eq!(out.status.code(), Some(2));
    let check = error_of("check", &out);
    assert!(
        check.contains("key local.address") && check.contains("192.0.2.7 is IPv4"),
        "{check}"
    );
    let run = run_refused_with(&f, &mixed);
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(error_of("run", &run), check, "run refuses as check does");
    let _ = std::fs::remove_dir_all(&dir);
}
