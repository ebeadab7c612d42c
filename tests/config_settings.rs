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
