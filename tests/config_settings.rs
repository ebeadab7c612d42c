//! Settings TOML + CGWD_* environment: defaults, every key, overrides, errors naming the key.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cgwd::config::{
    ConfigError, FailoverPolicy, HealthLog, Origin, Problem, Settings, apply_settings, env_var_name, load,
    parse_str,
};
use common::configs::sample;

fn no_env(_: &str) -> Option<String> {
    None
}

fn settings(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_toml(text, Path::new("cgwd.toml"), &no_env)
}

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_toml(text, Path::new("cgwd.toml"), &move |k| map.get(k).cloned())
}

fn err(r: Result<Settings, ConfigError>) -> (Option<Problem>, String) {
    let e = r.expect_err("must be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with("cgwd.toml"), "error must name the file: {msg}");
    (e.problem(), msg)
}

#[test]
fn defaults() {
    let s = settings("").unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(s.interface.name, "cgwd0");
    assert_eq!(s.interface.mtu, None);
    assert_eq!(s.local.address, None);
    assert_eq!(s.local.id, None);
    assert!(s.routing.vpc_cidrs.is_empty());
    assert_eq!(s.failover.policy, FailoverPolicy::PreferTunnel1);
    assert_eq!(s.dpd.interval, None);
    assert_eq!(s.metrics.listen, None);
    assert_eq!(s.control.socket, PathBuf::from("/run/cgwd/cgwd.sock"));
    assert_eq!(s.log.health, HealthLog::Stderr);
    assert_eq!(s.aws.region, None);
}

/// `local.address = "auto"` is the default spelled out (follow the host's address), from the file
/// or the environment; anything else but an IP address is refused naming the key and the fix.
#[test]
fn local_address_auto_follows_the_host() {
    for text in [
        "[local]\naddress = \"auto\"\n",
        "[local]\naddress = \"AUTO\"\n",
        "",
    ] {
        assert_eq!(settings(text).unwrap().local.address, None, "{text}");
    }
    let s = with_env(
        "[local]\naddress = \"192.0.2.10\"\n",
        &[("CGWD_LOCAL_ADDRESS", "auto")],
    )
    .unwrap();
    assert_eq!(s.local.address, None);
    let (p, msg) = err(settings("[local]\naddress = \"automatic\"\n"));
    assert_eq!(p, Some(Problem::SettingsValue));
    assert!(msg.contains("local.address"), "{msg}");
    assert!(
        msg.contains("`automatic`") && msg.contains("\"auto\""),
        "names the fix: {msg}"
    );
}

#[test]
fn documented_example_and_lab_settings_parse() {
    let s = settings(&sample("cgwd.toml")).unwrap();
    assert_eq!(s.interface.name, "cgwd0");
    assert_eq!(s.local.address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(s.routing.vpc_cidrs[0].to_string(), "10.100.0.0/16");
    assert_eq!(s.routing.onprem_cidrs[0].to_string(), "10.0.0.0/16");
    assert_eq!(s.failover.policy, FailoverPolicy::PreferTunnel1);

    let lab = settings(&sample("lab-cgwd.toml")).unwrap();
    assert_eq!(lab.local.id, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(lab.control.socket, PathBuf::from("/tmp/cgwd-lab/cgwd.sock"));
    assert_eq!(
        lab.log.health,
        HealthLog::File("/tmp/cgwd-lab/health.jsonl".into())
    );
    assert_eq!(lab.metrics.listen, Some("127.0.0.1:9710".parse().unwrap()));
}

#[test]
fn every_key() {
    let s = settings(
        r#"
[interface]
name = "aws1"
mtu = 1400
[local]
address = "192.0.2.10"
id = "198.51.100.200"
[routing]
vpc_cidrs = ["10.100.0.0/16", "10.101.0.0/16"]
onprem_cidrs = ["10.0.0.0/8"]
[failover]
policy = "active-active"
[dpd]
interval = 2
[metrics]
listen = "127.0.0.1:9100"
[control]
socket = "/tmp/x.sock"
[log]
health = "stdout"
[aws]
account_id = "111122223333"
region = "eu-west-1"
vpc_id = "vpc-0123"
"#,
    )
    .unwrap();
    assert_eq!(s.interface.name, "aws1");
    assert_eq!(s.interface.mtu, Some(1400));
    assert_eq!(s.local.id, Some("198.51.100.200".parse::<IpAddr>().unwrap()));
    assert_eq!(s.routing.vpc_cidrs.len(), 2);
    assert_eq!(s.failover.policy, FailoverPolicy::ActiveActive);
    assert_eq!(s.dpd.interval, Some(2));
    assert_eq!(s.metrics.listen.unwrap().port(), 9100);
    assert_eq!(s.control.socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(s.log.health, HealthLog::Stdout);
    assert_eq!(s.aws.account_id.as_deref(), Some("111122223333"));
    assert_eq!(s.aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s.aws.vpc_id.as_deref(), Some("vpc-0123"));
    assert_eq!(
        settings("[failover]\npolicy = \"stay\"").unwrap().failover.policy,
        FailoverPolicy::Stay
    );
}

#[test]
fn environment_overrides_the_file() {
    assert_eq!(env_var_name("interface", "name"), "CGWD_INTERFACE_NAME");
    let s = with_env(
        "[interface]\nname = \"fromfile\"\n",
        &[
            ("CGWD_INTERFACE_NAME", "fromenv"),
            ("CGWD_INTERFACE_MTU", "1300"),
            ("CGWD_ROUTING_VPC_CIDRS", "10.1.0.0/16, 10.2.0.0/16"),
            ("CGWD_FAILOVER_POLICY", "stay"),
            ("CGWD_DPD_INTERVAL", "3"),
            ("CGWD_LOCAL_ADDRESS", "192.0.2.99"),
            ("CGWD_LOG_HEALTH", "/var/log/cgwd.jsonl"),
            ("CGWD_AWS_REGION", "us-east-1"),
            ("CGWD_UNRELATED_THING", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(s.interface.name, "fromenv");
    assert_eq!(s.interface.mtu, Some(1300));
    assert_eq!(
        s.routing
            .vpc_cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.1.0.0/16", "10.2.0.0/16"]
    );
    assert_eq!(s.failover.policy, FailoverPolicy::Stay);
    assert_eq!(s.dpd.interval, Some(3));
    assert_eq!(s.local.address, Some("192.0.2.99".parse().unwrap()));
    assert_eq!(s.log.health, HealthLog::File("/var/log/cgwd.jsonl".into()));
    assert_eq!(s.aws.region.as_deref(), Some("us-east-1"));
    // An empty list variable clears the list.
    let s = with_env(
        "[routing]\nvpc_cidrs = [\"10.9.0.0/16\"]\n",
        &[("CGWD_ROUTING_VPC_CIDRS", "")],
    )
    .unwrap();
    assert!(s.routing.vpc_cidrs.is_empty());
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let (p, msg) = err(settings(&sample("invalid/unknown-key.toml")));
    assert_eq!(p, Some(Problem::SettingsKey));
    assert!(msg.contains("line 3, key interface.mut"), "{msg}");
    let (p, msg) = err(settings("[interfaces]\nname = \"x\"\n"));
    assert_eq!(p, Some(Problem::SettingsKey));
    assert!(msg.contains("interfaces"), "{msg}");
    let (p, msg) = err(settings("top = 1\n"));
    assert_eq!(p, Some(Problem::SettingsKey));
    assert!(msg.contains("top"), "{msg}");
}

#[test]
fn wrong_types_are_errors_naming_the_key() {
    let (p, msg) = err(settings(&sample("invalid/wrong-type.toml")));
    assert_eq!(p, Some(Problem::SettingsValue));
    assert!(msg.contains("key interface.mtu"), "{msg}");
    for (text, key) in [
        ("[local]\naddress = \"not-an-ip\"\n", "local.address"),
        ("[routing]\nvpc_cidrs = \"10.0.0.0/8\"\n", "routing.vpc_cidrs"),
        (
            "[routing]\nonprem_cidrs = [\"10.0.0.0/33\"]\n",
            "routing.onprem_cidrs",
        ),
        ("[failover]\npolicy = \"prefer-tunnel-3\"\n", "failover.policy"),
        ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
        ("[dpd]\ninterval = -1\n", "dpd.interval"),
        ("[log]\nhealth = \"\"\n", "log.health"),
    ] {
        let (p, msg) = err(settings(text));
        assert_eq!(p, Some(Problem::SettingsValue), "{text}");
        assert!(msg.contains(key), "{key}: {msg}");
    }
}

#[test]
fn values_are_range_checked() {
    for (text, key) in [
        ("[interface]\nmtu = 9000\n", "interface.mtu"),
        ("[interface]\nmtu = 100\n", "interface.mtu"),
        (
            "[interface]\nname = \"a-very-long-interface-name\"\n",
            "interface.name",
        ),
        ("[interface]\nname = \"\"\n", "interface.name"),
        ("[interface]\nname = \"a/b\"\n", "interface.name"),
        ("[dpd]\ninterval = 0\n", "dpd.interval"),
    ] {
        let (p, msg) = err(settings(text));
        assert_eq!(p, Some(Problem::SettingsValue), "{text}");
        assert!(msg.contains(key), "{key}: {msg}");
    }
}

#[test]
fn malformed_toml_has_line_and_column() {
    match settings("[interface]\nname = \"cgwd0\n").unwrap_err() {
        ConfigError::Syntax { format, line, .. } => {
            assert_eq!(format, "TOML");
            assert_eq!(line, 2);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_environment_values_name_the_variable() {
    for (var, value) in [
        ("CGWD_INTERFACE_MTU", "big"),
        ("CGWD_FAILOVER_POLICY", "sometimes"),
        ("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/8,nonsense"),
        ("CGWD_LOCAL_ID", "me"),
        ("CGWD_METRICS_LISTEN", "9100"),
    ] {
        let (p, msg) = err(with_env("", &[(var, value)]));
        assert_eq!(p, Some(Problem::SettingsValue), "{var}");
        assert!(msg.contains(var), "{var}: {msg}");
    }
    let (_, msg) = err(with_env("", &[("CGWD_INTERFACE_MTU", "20000")]));
    assert!(msg.contains("interface.mtu"), "{msg}");
}

#[test]
fn settings_refine_the_connection() {
    let mut conn = parse_str(&sample("lab.xml"), Path::new("lab.xml")).unwrap();
    let s = settings("[dpd]\ninterval = 2\n[interface]\nmtu = 1400\n").unwrap();
    apply_settings(&mut conn, &s);
    for t in &conn.tunnels {
        assert_eq!(t.dpd_interval_secs, 2);
        assert_eq!(t.origin("dpd_interval"), Some(&Origin::Settings));
    }
    assert_eq!(s.interface_mtu(&conn), 1400);
    assert_eq!(settings("").unwrap().interface_mtu(&conn), 1438);
    assert_eq!(
        settings("").unwrap().local_id(&conn.tunnels[0]),
        conn.tunnels[0].customer_outside
    );
    assert_eq!(s.local_id(&conn.tunnels[1]).to_string(), "192.0.2.10");
}

#[test]
fn load_reads_both_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let (conn, s) = load(&dir.join("lab.describe.json"), Some(&dir.join("lab-cgwd.toml"))).unwrap();
    assert_eq!(conn.id, "vpn-71310d5967085f652");
    assert_eq!(s.routing.vpc_cidrs[0].to_string(), "10.100.0.0/16");
    let e = load(&dir.join("nope.json"), None).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e}");
    assert!(e.to_string().contains("nope.json"), "{e}");
    let e = load(&dir.join("lab.xml"), Some(&dir.join("nope.toml"))).unwrap_err();
    assert!(e.to_string().contains("nope.toml"), "{e}");
}

#[test]
fn cidrs_must_be_network_addresses() {
    let (p, msg) = err(settings("[routing]\nvpc_cidrs = [\"10.100.0.1/16\"]\n"));
    assert_eq!(p, Some(Problem::SettingsValue));
    assert!(
        msg.contains("routing.vpc_cidrs") && msg.contains("10.100.0.0/16"),
        "{msg}"
    );
    let (_, msg) = err(with_env(
        "",
        &[("CGWD_ROUTING_ONPREM_CIDRS", "10.0.0.0/8,192.168.1.1/24")],
    ));
    assert!(msg.contains("routing.onprem_cidrs"), "{msg}");
}

#[test]
fn bgp_announcements_beyond_aws_prefix_limit_are_refused() {
    let dir = std::env::temp_dir().join(format!("cgwd-bgp-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let file = dir.join("cgwd.toml");
    // 40 /24s: 120 announcements with the fast-failover halves, over a virtual private gateway's 100.
    let prefixes: Vec<String> = (0..40).map(|i| format!("\"10.0.{i}.0/24\"")).collect();
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!("[routing]\nonprem_cidrs = [{}]\n{extra}", prefixes.join(", ")),
        )
        .unwrap();
    };
    write("");
    let err = load(&config, Some(&file)).unwrap_err().to_string();
    assert!(
        err.contains("routing.onprem_cidrs") && err.contains("100"),
        "{err}"
    );
    assert!(err.contains("bgp.fast_failover = false"), "{err}");
    write("[bgp]\nfast_failover = false\n");
    assert!(load(&config, Some(&file)).is_ok());
    write("[bgp]\nspeaker = \"off\"\n");
    assert!(load(&config, Some(&file)).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- PSKs kept outside the AWS file: [tunnels.N] / [connections.<vpn-id>.tunnels.N] ----

const SM: &str = "vpn-0d4e5f60718293a4b";
const KEY1: &str = "Ab3dE9fGh1jK2lM4nP5qR6sT7uV8wX9y";
const KEY2: &str = "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0f.";

fn parity(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/parity")
        .join(name)
}

fn lab_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name)
}

/// A key file of mode `mode` in `dir`.
fn key_file(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// `load_many` of `configs` with `toml` as the settings file and only `vars` in the environment.
fn load_with(
    dir: &Path,
    configs: &[PathBuf],
    toml: &str,
    vars: &[(&str, &str)],
) -> Result<cgwd::config::Loaded, ConfigError> {
    let file = dir.join("cgwd.toml");
    std::fs::write(&file, toml).unwrap();
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    cgwd::config::load_many_with(configs, Some(&file), &move |k| map.get(k).cloned())
}

#[test]
fn tunnel_psk_settings_are_checked() {
    use cgwd::config::PskSetting;
    use cgwd::sa::TunnelId;
    let s = settings(
        "[tunnels.1]\npsk_file = \"/etc/cgwd/t1.psk\"\n[tunnels.2]\npsk_env = \"CGWD_T2_PSK\"\n\
         [connections.vpn-0aaaaaaaaaaaaaaaa.tunnels.2]\npsk_credential = \"a-2.psk\"\n",
    )
    .unwrap();
    assert_eq!(
        s.tunnel_psk("vpn-0bbbbbbbbbbbbbbbb", TunnelId::One),
        Some((
            "tunnels.1".into(),
            PskSetting::File(Path::new("/etc/cgwd/t1.psk"))
        ))
    );
    assert_eq!(
        s.tunnel_psk("vpn-0aaaaaaaaaaaaaaaa", TunnelId::Two),
        Some((
            "connections.vpn-0aaaaaaaaaaaaaaaa.tunnels.2".into(),
            PskSetting::Credential("a-2.psk")
        ))
    );
    // A connection's own table replaces [tunnels.N] for that tunnel only.
    let own = s.for_connection("vpn-0aaaaaaaaaaaaaaaa");
    assert_eq!(
        own.tunnels.two.unwrap().psk_credential.as_deref(),
        Some("a-2.psk")
    );
    assert_eq!(
        own.tunnels.one.unwrap().psk_file.as_deref(),
        Some(Path::new("/etc/cgwd/t1.psk"))
    );
    assert!(settings("").unwrap().tunnel_psk(SM, TunnelId::One).is_none());

    for (text, key, needle) in [
        ("[tunnels.3]\npsk_file = \"/k\"\n", "tunnels.3", "unknown field"),
        (
            "[tunnels.1]\npsk = \"abcdefgh\"\n",
            "tunnels.1.psk",
            "unknown field",
        ),
        (
            "[tunnels.1]\npsk_file = \"/k\"\npsk_env = \"K\"\n",
            "tunnels.1",
            "psk_file and psk_env",
        ),
        (
            "[tunnels.2]\npsk_file = \"t2.psk\"\n",
            "tunnels.2.psk_file",
            "not an absolute path",
        ),
        (
            "[tunnels.1]\npsk_env = \"1BAD\"\n",
            "tunnels.1.psk_env",
            "not an environment variable",
        ),
        (
            "[tunnels.1]\npsk_env = \"\"\n",
            "tunnels.1.psk_env",
            "not an environment variable",
        ),
        (
            "[tunnels.1]\npsk_credential = \"../t1\"\n",
            "tunnels.1.psk_credential",
            "not a credential name",
        ),
        (
            "[connections.vpn-0a.tunnels.1]\npsk_credential = \"a\"\npsk_file = \"/k\"\n",
            "connections.vpn-0a.tunnels.1",
            "psk_file and psk_credential",
        ),
    ] {
        let (p, msg) = err(settings(text));
        assert!(
            matches!(p, Some(Problem::SettingsKey | Problem::SettingsValue)),
            "{text}: {msg}"
        );
        assert!(msg.contains(key), "{text}: {msg}");
        assert!(msg.contains(needle), "{text}: {msg}");
    }
}

/// The Secrets Manager sample in both formats: refused without a key in the settings, valid with
/// one from a file, an environment variable or a systemd credential; `check` shows where from.
#[test]
fn secrets_manager_psks_from_file_env_and_credential() {
    let dir = common::tempdir::TempDir::new("psk-sources");
    let d = dir.0.as_path();
    let t1 = key_file(d, "t1.psk", format!("{KEY1}\n").as_bytes(), 0o600);
    let creds = d.join("creds");
    std::fs::create_dir(&creds).unwrap();
    key_file(&creds, "sm-2.psk", format!("{KEY2}\r\n").as_bytes(), 0o400);
    let t1_line = format!("[tunnels.1]\npsk_file = \"{}\"\n", t1.display());
    for sample in ["sample-secretsmanager.describe.json", "sample-secretsmanager.xml"] {
        let files = [parity(sample)];
        let e = load_with(d, &files, "", &[]).unwrap_err();
        assert_eq!(e.problem(), Some(Problem::PskMissing), "{e}");
        assert!(e.to_string().contains(sample), "{e}");

        // Tunnel 2 still has none: its error names it.
        let e = load_with(d, &files, &t1_line, &[]).unwrap_err();
        assert_eq!(e.problem(), Some(Problem::PskMissing), "{e}");
        assert!(e.to_string().contains("tunnel 2 (AWS 198.51.100.82)"), "{e}");
        assert!(e.to_string().contains("[tunnels.2] psk_file"), "{e}");

        for (tunnel2, vars, source) in [
            (
                "[tunnels.2]\npsk_env = \"SM_T2\"\n",
                vec![("SM_T2", KEY2)],
                "psk_env SM_T2".to_string(),
            ),
            (
                "[tunnels.2]\npsk_credential = \"sm-2.psk\"\n",
                vec![("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
                format!("psk_credential sm-2.psk at {}", creds.join("sm-2.psk").display()),
            ),
        ] {
            let loaded = load_with(d, &files, &format!("{t1_line}{tunnel2}"), &vars)
                .unwrap_or_else(|e| panic!("{sample}: {e}"));
            let (conn, s) = &loaded.connections[0];
            assert_eq!(
                conn.tunnels[0].psk.as_ref().unwrap().expose(),
                KEY1.as_bytes(),
                "newline stripped"
            );
            assert_eq!(
                conn.tunnels[1].psk.as_ref().unwrap().expose(),
                KEY2.as_bytes(),
                "CRLF stripped"
            );
            assert_eq!(
                conn.tunnels[0].origin("psk"),
                Some(&Origin::PskSetting(format!("psk_file {}", t1.display())))
            );
            assert_eq!(
                conn.tunnels[1].origin("psk"),
                Some(&Origin::PskSetting(source.clone()))
            );
            let text = cgwd::config::report::text(conn, s);
            assert!(
                text.contains(&format!(
                    "PSK                ******** (set)  (from psk_file {}",
                    t1.display()
                )),
                "{text}"
            );
            assert!(text.contains(&format!("(from {source})")), "{text}");
            // Only the describe output carries PreSharedKeyArn.
            assert_eq!(
                text.contains("PSK storage        AWS Secrets Manager (arn:aws:secretsmanager:"),
                sample.ends_with(".json"),
                "{text}"
            );
            assert!(!text.contains(KEY1) && !text.contains(KEY2), "{text}");
            let json = cgwd::config::report::json(conn, s).to_string();
            assert!(!json.contains(KEY1) && !json.contains(KEY2), "{json}");
            assert!(conn.notes.is_empty(), "{:?}", conn.notes);
        }
    }
}

/// A key from the settings wins over the one in the file, and `check` says so.
#[test]
fn a_settings_key_overrides_the_files() {
    let dir = common::tempdir::TempDir::new("psk-override");
    let d = dir.0.as_path();
    let t2 = key_file(d, "t2.psk", KEY2.as_bytes(), 0o600);
    let loaded = load_with(
        d,
        &[lab_config("lab.xml")],
        &format!("[tunnels.2]\npsk_file = \"{}\"\n", t2.display()),
        &[],
    )
    .unwrap();
    let conn = &loaded.connections[0].0;
    assert_eq!(
        conn.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel1_psk.AWS1"
    );
    assert_eq!(conn.tunnels[0].origin("psk"), Some(&Origin::Xml));
    assert_eq!(conn.tunnels[1].psk.as_ref().unwrap().expose(), KEY2.as_bytes());
    assert!(
        conn.notes
            .iter()
            .any(|n| n.starts_with("tunnel 2: the key from psk_file") && n.contains("overrides")),
        "{:?}",
        conn.notes
    );
    // The file's own key is still checked: a broken file stays broken.
    let bad = d.join("bad.xml");
    std::fs::write(&bad, sample("lab.xml").replace("lab_tunnel2_psk.AWS2", "short")).unwrap();
    let e = load_with(
        d,
        &[bad],
        &format!("[tunnels.2]\npsk_file = \"{}\"\n", t2.display()),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.problem(), Some(Problem::Psk), "{e}");
}

/// A key from the settings passes AWS's rules or is refused naming where it was read and the
/// setting, never printing it.
#[test]
fn bad_keys_from_the_settings_are_refused() {
    let dir = common::tempdir::TempDir::new("psk-bad");
    let d = dir.0.as_path();
    let t2 = key_file(d, "t2.psk", KEY2.as_bytes(), 0o600);
    // Tunnel 1's setting (tunnel 2's key is good) → the error.
    let refused = |tunnel1: &str, vars: &[(&str, &str)]| -> ConfigError {
        let toml = format!(
            "[tunnels.1]\n{tunnel1}\n[tunnels.2]\npsk_file = \"{}\"\n",
            t2.display()
        );
        load_with(d, &[parity("sample-secretsmanager.xml")], &toml, vars).unwrap_err()
    };
    let file_setting = |f: &Path| format!("psk_file = \"{}\"", f.display());
    let cases: [(&[u8], &str); 8] = [
        (b"short12\n", "7 characters long"),
        (b"0bcdefghij", "starts with 0"),
        (b"abcd+efgh_secret", "position 5"),
        (b"REDACTED\n", "placeholder `REDACTED`"),
        (b"redacted", "placeholder `REDACTED`"),
        (b"abcdefgh_one\nabcdefgh_two\n", "more than one line"),
        (b"abcdefgh_one\n\n", "more than one line"),
        (b"abc\xffdefghi", "not text"),
    ];
    for (content, needle) in cases {
        let f = key_file(d, "t1.psk", content, 0o600);
        let e = refused(&file_setting(&f), &[]);
        let msg = e.to_string();
        assert_eq!(e.problem(), Some(Problem::Psk), "{msg}");
        assert!(
            msg.starts_with(&format!("{}: ", f.display())),
            "names the key file: {msg}"
        );
        assert!(
            msg.contains(&format!("key tunnels.1.psk_file (tunnel 1 of {SM}")),
            "{msg}"
        );
        assert!(msg.contains(needle), "{needle}: {msg}");
        if let Ok(text) = std::str::from_utf8(content)
            && !text.trim().eq_ignore_ascii_case("REDACTED")
        {
            assert!(!msg.contains(text.trim()), "the key is printed: {msg}");
        }
    }
    let settings_file = format!("{}: ", d.join("cgwd.toml").display());
    for (tunnel1, vars, needles) in [
        (
            file_setting(&key_file(d, "big.psk", &[b'a'; 2000], 0o600)),
            vec![],
            vec!["big.psk: ", "larger than 1024 bytes"],
        ),
        (
            file_setting(&d.join("nope.psk")),
            vec![],
            vec!["nope.psk: ", "cannot read the key file"],
        ),
        (file_setting(d), vec![], vec!["not a regular file"]),
        (
            "psk_env = \"SM_T1\"".into(),
            vec![],
            vec![
                &settings_file as &str,
                "key tunnels.1.psk_env",
                "SM_T1 is not set",
            ],
        ),
        (
            "psk_env = \"SM_T1\"".into(),
            vec![("SM_T1", "bad key!")],
            vec![&settings_file as &str, "position 4"],
        ),
        (
            "psk_credential = \"t1\"".into(),
            vec![],
            vec![
                "key tunnels.1.psk_credential",
                "$CREDENTIALS_DIRECTORY",
                "LoadCredential=t1:",
            ],
        ),
        (
            "psk_credential = \"t1\"".into(),
            vec![("CREDENTIALS_DIRECTORY", d.to_str().unwrap())],
            vec!["t1: ", "cannot read the key file"],
        ),
    ] {
        let e = refused(&tunnel1, &vars).to_string();
        for n in needles {
            assert!(e.contains(n), "{tunnel1}: `{n}` in {e}");
        }
        assert!(!e.contains("bad key!"), "{e}");
    }
    // Broken settings come before "no key": they may be what should have given it.
    let e = load_with(
        d,
        &[parity("sample-secretsmanager.xml")],
        "[tunnels.1]\npsk_file = 3\n",
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("tunnels.1.psk_file"), "{e}");
}

/// Group or others may read a key file: loaded, and warned about (a note `cgwd check` prints,
/// a warning `cgwd run` logs).
#[test]
fn a_key_file_others_can_read_is_warned_about() {
    let dir = common::tempdir::TempDir::new("psk-mode");
    let d = dir.0.as_path();
    let t1 = key_file(d, "t1.psk", KEY1.as_bytes(), 0o644);
    let t2 = key_file(d, "t2.psk", KEY2.as_bytes(), 0o640);
    let loaded = load_with(
        d,
        &[parity("sample-secretsmanager.describe.json")],
        &format!(
            "[tunnels.1]\npsk_file = \"{}\"\n[tunnels.2]\npsk_file = \"{}\"\n",
            t1.display(),
            t2.display()
        ),
        &[],
    )
    .unwrap();
    let notes = &loaded.connections[0].0.notes;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains(&format!("tunnel 1: the key file {} may be read", t1.display()))
            && notes[0].contains("mode 0644")
            && notes[0].contains("chmod 600"),
        "{notes:?}"
    );
    assert!(notes[1].contains("mode 0640"), "{notes:?}");
}

/// Several connections: each names its own keys; a daemon-wide [tunnels.N] serving more than one
/// is refused (it would also override their files' keys).
#[test]
fn several_connections_name_their_own_keys() {
    let dir = common::tempdir::TempDir::new("psk-several");
    let d = dir.0.as_path();
    let t1 = key_file(d, "t1.psk", KEY1.as_bytes(), 0o600);
    let t2 = key_file(d, "t2.psk", KEY2.as_bytes(), 0o600);
    let files = [lab_config("lab.xml"), parity("sample-secretsmanager.xml")];
    // The two files name different customer gateway addresses.
    let local = "[local]\naddress = \"192.0.2.10\"\n";
    let e = load_with(d, &files, local, &[]).unwrap_err().to_string();
    assert!(
        e.contains(&format!("[connections.{SM}.tunnels.1] psk_file")),
        "{e}"
    );
    let own = format!(
        "{local}[connections.{SM}.tunnels.1]\npsk_file = \"{}\"\n[connections.{SM}.tunnels.2]\npsk_file = \"{}\"\n",
        t1.display(),
        t2.display()
    );
    let loaded = load_with(d, &files, &own, &[]).unwrap();
    let sm = &loaded.connections[1].0;
    assert_eq!(sm.id, SM);
    assert_eq!(sm.tunnels[1].psk.as_ref().unwrap().expose(), KEY2.as_bytes());
    assert_eq!(
        loaded.connections[0].0.tunnels[1].psk.as_ref().unwrap().expose(),
        b"lab_tunnel2_psk.AWS2"
    );
    // [tunnels.2] for both connections: refused, naming both.
    let shared = format!(
        "{local}[connections.{SM}.tunnels.1]\npsk_file = \"{}\"\n[tunnels.2]\npsk_file = \"{}\"\n",
        t1.display(),
        t2.display()
    );
    let e = load_with(d, &files, &shared, &[]).unwrap_err();
    assert_eq!(e.problem(), Some(Problem::Conflict));
    let e = e.to_string();
    assert!(
        e.contains("[tunnels.2]") && e.contains(SM) && e.contains("vpn-71310d5967085f652"),
        "{e}"
    );
    assert!(e.contains("[connections.<vpn-id>.tunnels.2]"), "{e}");
    // A connection table naming no given connection is still an error.
    let e = load_with(
        d,
        &files,
        &format!("{own}[connections.vpn-0ffffffffffffffff.tunnels.1]\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("vpn-0ffffffffffffffff"), "{e}");
}

/// configs/lab.describe.json moved to IPv6 outside addresses (2001:db8::/32), as AWS writes a
/// connection with `OutsideIpAddressType` Ipv6 and IPv4 inside /30s.
fn lab_ipv6_outside() -> String {
    sample("lab.describe.json")
        .replace(
            "\"OutsideIpAddressType\": \"PublicIpv4\"",
            "\"OutsideIpAddressType\": \"Ipv6\"",
        )
        .replace("198.51.100.11", "2001:db8:ffaa:1::21")
        .replace("203.0.113.12", "2001:db8:ffab:2::22")
        .replace("192.0.2.10", "2001:db8:100::10")
}

/// Every combination of outside family and inside IP version AWS writes runs: IPv6 outside
/// (IKE and ESP over UDP/IPv6, the tunnel MTU and MSS 20 octets smaller) with IPv4 or IPv6
/// inside, IPv6 inside over IPv4 outside. What the loader `cgwd check`, `cgwd run` and a reload
/// share still refuses: two outside families in one connection, a `local.address`/`local.id` of
/// the other family, an IPv6-inside tunnel without its /126, prefixes of the other IP version.
#[test]
fn ipv6_outside_and_inside_run_and_mixed_families_are_refused_at_load() {
    let dir = common::tempdir::TempDir::new("ipv6-load");
    let d = dir.0.as_path();
    // IPv6 outside and IPv6 inside (AWS's transit gateway IPv6 connection) in every format: the
    // describe JSON with its Options, the XML and the Generic text with only the addresses. IPv6
    // selectors, the /126s for the inside addresses, IKE/ESP over the IPv6 outside addresses.
    for name in ["sample-ipv6.describe.json", "sample-ipv6.xml", "sample-ipv6.txt"] {
        let loaded = load_with(d, &[parity(name)], "", &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (conn, _) = &loaded.connections[0];
        // AES-GCM over UDP/IPv6; the IPv6 MSS another 20 octets less (the inner IPv6 header).
        assert_eq!(conn.mtu(), 1418, "{name}");
        assert_eq!(conn.tunnels[0].mss_ipv6(), 1358, "{name}");
        for (t, aws, cgw) in [
            (
                cgwd::sa::TunnelId::One,
                "2001:db8:ffaa:1::21",
                "fd00:a1b2:c3d4:1::2",
            ),
            (
                cgwd::sa::TunnelId::Two,
                "2001:db8:ffab:2::22",
                "fd00:a1b2:c3d4:1::6",
            ),
        ] {
            let tc = conn.tunnel(t);
            assert_eq!(tc.aws_outside, aws.parse::<IpAddr>().unwrap(), "{name}");
            assert_eq!(
                tc.customer_outside,
                "2001:db8:100::10".parse::<IpAddr>().unwrap(),
                "{name}"
            );
            assert!(tc.is_inside_ipv6(), "{name}");
            assert_eq!(tc.customer_inside_ipv6(), Some(cgw.parse().unwrap()), "{name}");
            assert_eq!(
                tc.local_traffic_selector(),
                cgwd::sa::TrafficSelector::ANY_V6,
                "{name}"
            );
            assert_eq!(
                tc.remote_traffic_selector(),
                cgwd::sa::TrafficSelector::ANY_V6,
                "{name}"
            );
        }
    }

    // IPv6 outside with IPv4 inside: loads; the MTU and MSS lose the 20 octets IPv6's header adds.
    let v6 = d.join("v6outside.json");
    std::fs::write(&v6, lab_ipv6_outside()).unwrap();
    let loaded = load_with(d, std::slice::from_ref(&v6), "", &[]).expect("IPv6 outside loads");
    let (conn, s) = &loaded.connections[0];
    let ipv4 = cgwd::config::load_connection(&lab_config("lab.describe.json")).unwrap();
    assert_eq!(
        conn.tunnels[0].aws_outside,
        "2001:db8:ffaa:1::21".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        conn.tunnels[1].customer_outside,
        "2001:db8:100::10".parse::<IpAddr>().unwrap()
    );
    assert_eq!(conn.mtu(), ipv4.mtu() - 20);
    assert_eq!(
        conn.mtu(),
        1418,
        "AES-GCM (the strongest tier cgwd offers) over UDP/IPv6"
    );
    assert_eq!(conn.tunnels[0].mss(), 1378);
    assert_eq!(s.interface_mtu(conn), 1418);
    // An IPv6 local.address or local.id suits it; an IPv4 one is refused, naming the key.
    assert!(
        load_with(
            d,
            std::slice::from_ref(&v6),
            "[local]\naddress = \"2001:db8:100::7\"\n",
            &[]
        )
        .is_ok()
    );
    for key in ["address", "id"] {
        let e = load_with(
            d,
            std::slice::from_ref(&v6),
            &format!("[local]\n{key} = \"192.0.2.7\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.problem(), Some(Problem::Conflict));
        let msg = e.to_string();
        assert!(msg.contains(&format!("key local.{key}")), "{msg}");
        assert!(
            msg.contains("192.0.2.7 is IPv4") && msg.contains("are IPv6"),
            "{msg}"
        );
        assert!(msg.contains("give an IPv6 address"), "{msg}");
    }

    // IPv6 inside over IPv4 outside runs: IPv6 selectors from LocalIpv6NetworkCidr and
    // RemoteIpv6NetworkCidr, the /126s for the addresses, IPv6 prefixes only.
    let v6 = lab_config("ipv6-inside/lab.describe.json");
    let loaded = load_with(
        d,
        std::slice::from_ref(&v6),
        "[routing]\nvpc_cidrs = [\"2001:db8:100::/48\"]\n",
        &[],
    )
    .unwrap();
    let (conn, own) = &loaded.connections[0];
    let t1 = conn.tunnel(cgwd::sa::TunnelId::One);
    assert!(t1.is_inside_ipv6());
    assert_eq!(t1.local_traffic_selector(), cgwd::sa::TrafficSelector::ANY_V6);
    assert_eq!(t1.remote_traffic_selector(), cgwd::sa::TrafficSelector::ANY_V6);
    assert_eq!(
        t1.customer_inside_ipv6(),
        Some("fd00:a9fe:10::2".parse().unwrap())
    );
    assert_eq!(own.routing.vpc_cidrs, ["2001:db8:100::/48".parse().unwrap()]);
    // IPv4 tunnels keep their IPv4 selectors and no IPv6 at all.
    let v4 = load_with(d, &[lab_config("lab.xml")], "", &[]).unwrap();
    let t = v4.connections[0].0.tunnel(cgwd::sa::TunnelId::One);
    assert!(!t.is_inside_ipv6());
    assert_eq!(t.local_traffic_selector(), cgwd::sa::TrafficSelector::ANY);
    // A prefix of the other IP version is refused, naming the key and the fix.
    let e = load_with(
        d,
        std::slice::from_ref(&v6),
        "[routing]\nonprem_cidrs = [\"10.0.0.0/16\"]\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key routing.onprem_cidrs: 10.0.0.0/16 is IPv4")
            && e.contains("carries IPv6 inside")
            && e.contains("Fix: list only IPv6 prefixes"),
        "{e}"
    );
    let e = load_with(
        d,
        &[lab_config("lab.xml")],
        "[routing]\nvpc_cidrs = [\"2001:db8:100::/48\"]\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key routing.vpc_cidrs: 2001:db8:100::/48 is IPv6"),
        "{e}"
    );

    // IPv6 inside without the /126s (an edited file) has no address to put on the device.
    let mut v: serde_json::Value = serde_json::from_str(&sample("lab.describe.json")).unwrap();
    v["VpnConnections"][0]["Options"]["TunnelInsideIpVersion"] = serde_json::json!("ipv6");
    let f = d.join("v6inside.json");
    std::fs::write(&f, v.to_string()).unwrap();
    let e = load_with(d, std::slice::from_ref(&f), "", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tunnel 1 TunnelInsideIpv6Cidr") && e.contains("no inside IPv6 /126"),
        "{e}"
    );
    // BGP over the IPv6 inside addresses, announcing IPv6 on-prem prefixes.
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&v6).unwrap()).unwrap();
    b["VpnConnections"][0]["Options"]["StaticRoutesOnly"] = serde_json::json!(false);
    let fb = d.join("v6bgp.json");
    std::fs::write(&fb, b.to_string()).unwrap();
    let loaded = load_with(
        d,
        std::slice::from_ref(&fb),
        "[routing]\nonprem_cidrs = [\"2001:db8:10::/48\"]\n[bgp]\nspeaker = \"builtin\"\n",
        &[],
    )
    .unwrap();
    assert!(matches!(
        loaded.connections[0].0.routing,
        cgwd::config::Routing::Bgp { .. }
    ));
    v["VpnConnections"][0]["Options"]["TunnelInsideIpVersion"] = serde_json::json!("ipv4");
    v["VpnConnections"][0]["Options"]["OutsideIpAddressType"] = serde_json::json!("PrivateIpv4");
    std::fs::write(&f, v.to_string()).unwrap();
    assert!(
        load_with(
            d,
            std::slice::from_ref(&f),
            "[routing]\nonprem_cidrs = [\"10.0.0.0/16\"]\n",
            &[]
        )
        .is_ok()
    );

    // An IPv6 local address or IKE identity for IPv4 AWS endpoints: refused at load.
    for key in ["address", "id"] {
        let e = load_with(
            d,
            &[lab_config("lab.xml")],
            &format!("[local]\n{key} = \"2001:db8::1\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.problem(), Some(Problem::Conflict));
        assert!(e.to_string().contains(&format!("key local.{key}")), "{e}");
        assert!(e.to_string().contains("2001:db8::1 is IPv6"), "{e}");
    }

    // Mixed families in the AWS file (AWS never writes one): tunnel 2 over IPv6, tunnel 1 over
    // IPv4; and an IPv6 AWS endpoint with an IPv4 customer gateway address.
    for (from, to, what) in [
        (
            "203.0.113.12",
            "2001:db8:ffab:2::22",
            "tunnel 2's AWS outside address 2001:db8:ffab:2::22 is IPv6",
        ),
        (
            "198.51.100.11",
            "2001:db8:ffaa:1::21",
            "tunnel 1's customer gateway outside address 192.0.2.10 is IPv4",
        ),
    ] {
        let f = d.join("mixed.xml");
        std::fs::write(&f, sample("lab.xml").replace(from, to)).unwrap();
        let e = load_with(d, std::slice::from_ref(&f), "", &[]).unwrap_err();
        assert_eq!(e.problem(), Some(Problem::Conflict), "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}: ", f.display())), "{msg}");
        assert!(
            msg.contains("<tunnel_outside_address>") && msg.contains(what),
            "{msg}"
        );
        assert!(msg.contains("one IP family"), "{msg}");
    }
}

#[test]
fn daemon_user_from_the_file_or_the_environment() {
    // Default: no privilege drop (docs/configuration.md, "Privileges").
    assert_eq!(settings("").unwrap().daemon.user, "");
    let file = "[daemon]\nuser = \"cgwd\"\n";
    assert_eq!(settings(file).unwrap().daemon.user, "cgwd");
    assert_eq!(
        with_env("", &[("CGWD_DAEMON_USER", "nobody")])
            .unwrap()
            .daemon
            .user,
        "nobody"
    );
    // The environment wins, also to turn the drop off.
    assert_eq!(
        with_env(file, &[("CGWD_DAEMON_USER", "")]).unwrap().daemon.user,
        ""
    );
    for bad in ["cg wd", "a:b", "../x"] {
        let (p, msg) = err(settings(&format!("[daemon]\nuser = \"{bad}\"\n")));
        assert_eq!(p, Some(Problem::SettingsValue), "{bad}");
        assert!(
            msg.contains("daemon.user") && msg.contains("existing unprivileged user"),
            "{msg}"
        );
    }
}

/// Issue #16, settings layer: the FACTS §9.1 certificate sample (CertificateArn on both tunnels, no
/// key anywhere) with `[auth]` naming a certificate AWS Private CA would issue is accepted: its
/// tunnels carry no key, the connection carries the checked certificate, `cgwd check` shows it,
/// and the tunnels' IKE configs authenticate with it.
#[test]
fn certificate_sample_with_auth_settings_is_accepted() {
    use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
    let dir = common::tempdir::TempDir::new("cert-auth");
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let leaf = ca.issue(&PKCS_ECDSA_P256_SHA256, "cgw.example.com", Flaw::None);
    let cert = key_file(&dir.0, "cgw.pem", leaf.cert.as_bytes(), 0o644);
    let key = key_file(&dir.0, "cgw.key", leaf.key.as_bytes(), 0o600);
    let chain = key_file(&dir.0, "ca.pem", ca.pem.as_bytes(), 0o644);
    let toml = format!(
        "[auth]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n",
        cert.display(),
        key.display(),
        chain.display()
    );
    // All three formats: the describe JSON lists the CertificateArn, the XML has no key, the
    // Generic text says "Authentication Method : Certificate".
    for (name, evidence) in [
        ("sample-cert.xml", "(the AWS file has no pre-shared key for it)"),
        ("sample-cert.txt", "Authentication Method Certificate)"),
    ] {
        let loaded = load_with(&dir.0, &[parity(name)], &toml, &[]).unwrap();
        let (conn, _) = &loaded.connections[0];
        assert!(conn.tunnels.iter().all(|t| t.psk.is_none()), "{name}");
        assert_eq!(
            conn.certificate.as_ref().map(|c| c.subject.as_str()),
            Some("CN=cgw.example.com"),
            "{name}"
        );
        assert!(
            conn.notes.iter().any(|n| n
                .contains("tunnel 2: authenticates with the customer gateway certificate of [auth]")
                && n.contains(evidence)),
            "{name}: {:?}",
            conn.notes
        );
    }
    let loaded = load_with(&dir.0, &[parity("sample-cert.describe.json")], &toml, &[]).unwrap();
    let (conn, settings) = &loaded.connections[0];
    assert!(conn.tunnels.iter().all(|t| t.psk.is_none()));
    let c = conn.certificate.as_ref().expect("the certificate is loaded");
    assert_eq!(c.subject, "CN=cgw.example.com");
    assert_eq!(c.issuer, "CN=Example Private CA");
    let text = cgwd::config::report::text(conn, settings);
    for want in [
        "certificate        CN=cgw.example.com",
        "issuer           CN=Example Private CA",
        "key              ECDSA P-256 (private, never shown)",
        "none: the certificate of [auth]",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let json = cgwd::config::report::json(conn, settings);
    assert_eq!(json["certificate"]["subject"], "CN=cgw.example.com");
    let ike = cgwd::daemon::ike_config_for(
        conn,
        settings,
        cgwd::sa::TunnelId::Two,
        "192.0.2.10".parse().unwrap(),
    )
    .unwrap();
    let auth = ike
        .certificate
        .as_ref()
        .expect("tunnel 2 authenticates by certificate");
    assert_eq!(auth.subject_dn, c.subject_dn);
    assert_eq!(auth.ca, c.ca);

    // The same settings, each flaw: one error naming the file and the fix.
    for (flaw, other_ca, want) in [
        (Flaw::Expired, false, "expired at"),
        (
            Flaw::NoSubjectKeyId,
            false,
            "has no Subject Key Identifier extension",
        ),
        (Flaw::None, true, "was not issued by a CA in"),
    ] {
        let issuer = if other_ca {
            Ca::new(&PKCS_RSA_SHA256, "Other CA")
        } else {
            Ca::new(&PKCS_RSA_SHA256, "Example Private CA")
        };
        let leaf = issuer.issue(&PKCS_ECDSA_P256_SHA256, "cgw.example.com", flaw);
        key_file(&dir.0, "cgw.pem", leaf.cert.as_bytes(), 0o644);
        key_file(&dir.0, "cgw.key", leaf.key.as_bytes(), 0o600);
        let e = load_with(&dir.0, &[parity("sample-cert.describe.json")], &toml, &[]).unwrap_err();
        assert_eq!(e.problem(), Some(Problem::Certificate), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(want) && msg.contains("cgw.pem") && msg.contains("Fix:"),
            "{want:?}: {msg}"
        );
    }

    // A half-given [auth] is refused by the settings alone.
    let e = load_with(
        &dir.0,
        &[parity("sample-cert.describe.json")],
        "[auth]\nca = \"ca.pem\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("auth.ca") && e.to_string().contains("not an absolute path"),
        "{e}"
    );
}

/// Issue #16: each customer gateway has its own certificate, so a daemon serving two
/// certificate-authenticated connections takes `[connections.<vpn-id>.auth]` for one of them in
/// place of `[auth]`; a broken per-connection table is named in the error.
#[test]
fn certificate_per_connection() {
    use common::pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
    let dir = common::tempdir::TempDir::new("cert-per-conn");
    let ca = Ca::new(&PKCS_RSA_SHA256, "Example Private CA");
    let mut tables = String::new();
    for (table, cn) in [
        ("auth", "site-a.example.com"),
        ("connections.vpn-0feedbeef0000002.auth", "site-b.example.com"),
    ] {
        let leaf = ca.issue(&PKCS_ECDSA_P256_SHA256, cn, Flaw::None);
        let cert = key_file(&dir.0, &format!("{cn}.pem"), leaf.cert.as_bytes(), 0o644);
        let key = key_file(&dir.0, &format!("{cn}.key"), leaf.key.as_bytes(), 0o600);
        let chain = key_file(&dir.0, "ca.pem", ca.pem.as_bytes(), 0o644);
        tables.push_str(&format!(
            "[{table}]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"\n",
            cert.display(),
            key.display(),
            chain.display()
        ));
    }
    // A second connection of another site: its own ID, AWS endpoints and inside networks.
    let second = dir.0.join("second.xml");
    let xml = std::fs::read_to_string(parity("sample-cert.xml"))
        .unwrap()
        .replace("vpn-0c1d2e3f405162738", "vpn-0feedbeef0000002")
        .replace("169.254.31.", "169.254.32.")
        .replace("192.0.2.71", "192.0.2.171")
        .replace("198.51.100.72", "198.51.100.172");
    std::fs::write(&second, xml).unwrap();
    let configs = [parity("sample-cert.describe.json"), second.clone()];
    let loaded = load_with(&dir.0, &configs, &tables, &[]).unwrap();
    let subjects: Vec<&str> = loaded
        .connections
        .iter()
        .map(|(c, _)| c.certificate.as_ref().unwrap().subject.as_str())
        .collect();
    assert_eq!(subjects, ["CN=site-a.example.com", "CN=site-b.example.com"]);
    let (conn, settings) = &loaded.connections[1];
    let ike = cgwd::daemon::ike_config_for(
        conn,
        settings,
        cgwd::sa::TunnelId::One,
        "192.0.2.10".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        ike.certificate.as_ref().unwrap().subject_dn,
        conn.certificate.as_ref().unwrap().subject_dn
    );

    // The per-connection table half given, or with a missing file: named as such.
    let half = tables.replace(
        &format!(
            "private_key = \"{}\"\nca",
            dir.0.join("site-b.example.com.key").display()
        ),
        "ca",
    );
    let e = load_with(&dir.0, &configs, &half, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("table [connections.vpn-0feedbeef0000002.auth]")
            && e.to_string().contains("misses private_key"),
        "{e}"
    );
    let gone = tables.replace("site-b.example.com.pem", "nowhere.pem");
    let e = load_with(&dir.0, &configs, &gone, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("connections.vpn-0feedbeef0000002.auth.certificate"),
        "{e}"
    );
    // Without the per-connection table both use [auth].
    let only_global = tables.split("[connections.").next().unwrap().to_string();
    let loaded = load_with(&dir.0, &configs, &only_global, &[]).unwrap();
    assert!(
        loaded
            .connections
            .iter()
            .all(|(c, _)| c.certificate.as_ref().unwrap().subject == "CN=site-a.example.com")
    );
}

/// `interface.mtu` within what the connection's IP versions allow: at most 1426 over IPv6 outside
/// addresses (the outer header 20 octets longer than IPv4's, AWS's 1446 on IPv4), at least 1280
/// with IPv6 inside; the error names the key, the connection and the range to use.
#[test]
fn interface_mtu_is_checked_against_the_connections_ip_versions() {
    let dir = common::tempdir::TempDir::new("mtu-family");
    let d = dir.0.as_path();
    let v4 = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
    let v6 = parity("sample-ipv6.describe.json");
    let mtu = |n: u16| format!("[interface]\nmtu = {n}\n");
    for (file, n, refused) in [
        (&v4, 1446, None),
        (&v4, 1200, None),
        (&v6, 1426, None),
        (&v6, 1280, None),
        (&v6, 1427, Some("above 1426")),
        (&v6, 1446, Some("above 1426")),
        (&v6, 1279, Some("below 1280")),
    ] {
        let r = load_with(d, std::slice::from_ref(file), &mtu(n), &[]);
        match (refused, r) {
            (None, Ok(loaded)) => {
                let (conn, s) = &loaded.connections[0];
                assert_eq!(s.interface_mtu(conn), n, "{}", file.display());
            }
            (Some(why), Err(e)) => {
                let msg = e.to_string();
                for needle in ["interface.mtu", why, "use 1280 … 1426"] {
                    assert!(msg.contains(needle), "{n}: `{needle}` in {msg}");
                }
            }
            (want, got) => panic!(
                "{} with MTU {n}: wanted {want:?}, got {:?}",
                file.display(),
                got.err()
            ),
        }
    }
}
