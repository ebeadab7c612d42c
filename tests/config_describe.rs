//! describe-vpn-connections JSON: TunnelOptions fields, casing variants, address matching, errors.

mod common;

use std::path::Path;

use cgwd::config::{
    ConfigError, DpdAction, IkeVersion, Origin, Problem, Routing, SourceFormat, StartupAction, VpnConnection,
    parse_str,
};
use common::configs::{ip, sample};
use serde_json::{Value, json};

fn sample_json(name: &str) -> Value {
    serde_json::from_str(&sample(name)).unwrap()
}

fn parse(text: &str) -> Result<VpnConnection, ConfigError> {
    parse_str(text, Path::new("vpn.json"))
}

fn parse_v(v: &Value) -> Result<VpnConnection, ConfigError> {
    parse(&v.to_string())
}

fn err(v: &Value) -> (Problem, String) {
    let e = parse_v(v).expect_err("must be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with("vpn.json"), "error must name the file: {msg}");
    (e.problem().unwrap_or(Problem::MissingField), msg)
}

fn opts(v: &mut Value, i: usize) -> &mut Value {
    &mut v["VpnConnections"][0]["Options"]["TunnelOptions"][i]
}

fn names<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn static_describe_sample_every_field() {
    let c = parse(&sample("aws-static.describe.json")).unwrap();
    assert_eq!(c.format, SourceFormat::DescribeJson);
    assert_eq!(c.id, "vpn-0a1b2c3d4e5f60718");
    assert_eq!(c.customer_gateway_id, "cgw-0f1e2d3c4b5a69788");
    assert_eq!(c.vpn_gateway_id.as_deref(), Some("vgw-0123456789abcdef0"));
    assert_eq!(c.routing, Routing::Static);
    for t in &c.tunnels {
        assert_eq!(t.ike_versions, vec![IkeVersion::Ikev2]);
        assert_eq!(names(&t.phase1.encryption), ["AES256-GCM-16"]);
        assert_eq!(names(&t.phase1.integrity), ["SHA2-384"]);
        assert_eq!(names(&t.phase1.dh_groups), ["21", "20"]);
        assert_eq!(names(&t.phase2.encryption), ["AES256-GCM-16"]);
        assert_eq!(names(&t.phase2.integrity), ["SHA2-384"]);
        assert_eq!(names(&t.phase2.pfs_groups), ["21", "20"]);
        assert_eq!(t.phase1_lifetime_secs, 28800);
        assert_eq!(t.phase2_lifetime_secs, 3600);
        assert_eq!(t.rekey_margin_secs, 270);
        assert_eq!(t.rekey_fuzz_percent, 100);
        assert_eq!(t.replay_window, 1024);
        assert_eq!(t.dpd_timeout_secs, 30);
        assert_eq!(t.dpd_action, DpdAction::Restart);
        assert_eq!(t.startup_action, StartupAction::Start);
        assert_eq!(t.local_ts.to_string(), "0.0.0.0/0");
        assert_eq!(t.remote_ts.to_string(), "0.0.0.0/0");
        for f in [
            "psk",
            "ike_versions",
            "phase1.encryption",
            "phase2.pfs_groups",
            "phase1_lifetime",
            "rekey_margin",
            "replay_window",
            "dpd_timeout",
            "dpd_action",
            "startup_action",
        ] {
            assert_eq!(t.origin(f), Some(&Origin::TunnelOptions), "{f}");
        }
        assert_eq!(t.origin("local_ts"), Some(&Origin::ConnectionOptions));
        // DPD interval is not a tunnel option; it comes from the XML.
        assert_eq!(t.origin("dpd_interval"), Some(&Origin::Xml));
    }
    assert_eq!(c.tunnels[0].aws_outside, ip("192.0.2.11"));
    assert_eq!(
        c.tunnels[0].psk.as_ref().unwrap().expose(),
        b"Kq3vT8mLp2Rz7Wn4Xb9Hc5Jd1Fg6Ys_a"
    );
    assert_eq!(c.tunnels[1].aws_outside, ip("198.51.100.21"));
    assert_eq!(c.tunnels[1].inside.to_string(), "169.254.100.4/30");
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn lab_describe_offers_the_strongest_tier_the_options_allow() {
    let c = parse(&sample("lab.describe.json")).unwrap();
    assert!(matches!(
        c.routing,
        Routing::Bgp {
            customer_asn: 65000,
            aws_asn: 64512,
            hold_time: 30
        }
    ));
    let t = &c.tunnels[0];
    assert_eq!(names(&t.phase1.encryption), ["AES256-GCM-16", "AES128-GCM-16"]);
    assert_eq!(names(&t.phase1.integrity), ["SHA2-512", "SHA2-384", "SHA2-256"]);
    assert_eq!(
        names(&t.phase1.dh_groups),
        ["21", "20", "18", "19", "17", "16", "15", "14"]
    );
    assert_eq!(
        names(&t.phase2.pfs_groups),
        ["21", "20", "18", "19", "17", "16", "15", "14"]
    );
    assert_eq!(t.rekey_margin_secs, 540);
    // AWS picks the lowest option offered: the weaker tiers the tunnel also allows are left out of
    // the offer, and check says so.
    assert_eq!(c.notes.len(), 2);
    assert!(c.notes[0].contains("SHA1"), "{}", c.notes[0]);
    assert!(c.notes[0].contains("leaves them out"), "{}", c.notes[0]);
    // Only AES-GCM is offered for the Child SA: ESP in UDP with GCM.
    assert_eq!(c.mtu(), 1438);
}

#[test]
fn swapped_xml_is_matched_by_outside_address_not_order() {
    let straight = parse(&sample("lab.describe.json")).unwrap();
    let swapped = parse(&sample("lab-swapped.describe.json")).unwrap();
    for (a, b) in straight.tunnels.iter().zip(&swapped.tunnels) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.aws_outside, b.aws_outside);
        assert_eq!(a.psk.as_ref().unwrap().expose(), b.psk.as_ref().unwrap().expose());
        assert_eq!(a.inside, b.inside);
    }
    assert_eq!(swapped.tunnels[0].aws_outside, ip("198.51.100.11"));
    assert_eq!(
        swapped.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel1_psk.AWS1"
    );

    // Per-tunnel options follow their address even when both lists are in different orders.
    let c = parse(&sample("lab-static-tgw-options-swapped.describe.json")).unwrap();
    assert_eq!(c.transit_gateway_id.as_deref(), Some("tgw-0123456789abcdef0"));
    assert_eq!(c.routing, Routing::Static);
    let t1 = c
        .tunnels
        .iter()
        .find(|t| t.aws_outside == ip("198.51.100.11"))
        .unwrap();
    let t2 = c
        .tunnels
        .iter()
        .find(|t| t.aws_outside == ip("203.0.113.12"))
        .unwrap();
    assert_eq!(t1.inside.to_string(), "169.254.10.4/30");
    assert_eq!(t1.psk.as_ref().unwrap().expose(), b"lab_tunnel1_psk.AWS1");
    assert_eq!(names(&t1.phase1.encryption), ["AES256-GCM-16"]);
    assert_eq!(names(&t1.phase2.encryption), ["AES256-GCM-16"]);
    assert_eq!(names(&t1.phase2.pfs_groups), ["20", "19"]);
    assert_eq!(t1.dpd_action, DpdAction::Restart);
    assert_eq!(t1.startup_action, StartupAction::Start);
    assert_eq!(t1.rekey_margin_secs, 300);
    assert_eq!(t1.replay_window, 2048);
    assert_eq!(t1.phase2_lifetime_secs, 1800);
    assert_eq!(t1.dpd_timeout_secs, 40);
    assert_eq!(t2.ike_versions, vec![IkeVersion::Ikev1, IkeVersion::Ikev2]);
    assert_eq!(t2.dpd_action, DpdAction::Clear);
    assert_eq!(t2.inside.to_string(), "169.254.20.8/30");
    // Traffic selectors: Local = customer side, Remote = AWS side.
    assert_eq!(t1.local_ts.to_string(), "10.0.0.0/16");
    assert_eq!(t1.remote_ts.to_string(), "10.100.0.0/16");
    assert_eq!(t1.local_traffic_selector().start.to_string(), "10.0.0.0");
    assert_eq!(t1.local_traffic_selector().end.to_string(), "10.0.255.255");
    // TunnelOptions order decides tunnel numbers.
    assert_eq!(c.tunnels[0].aws_outside, ip("203.0.113.12"));
}

#[test]
fn input_casing_and_bare_connection_object() {
    let mut v = sample_json("lab.describe.json");
    for i in 0..2 {
        let o = opts(&mut v, i).as_object_mut().unwrap();
        let ike = o.remove("IkeVersions").unwrap();
        o.insert("IKEVersions".into(), ike);
        o.remove("DpdTimeoutSeconds");
        o.insert("DPDTimeoutSeconds".into(), json!(45));
        o.remove("DpdTimeoutAction");
        o.insert("DPDTimeoutAction".into(), json!("restart"));
        let g = o.remove("Phase1DHGroupNumbers").unwrap();
        o.insert("Phase1DhGroupNumbers".into(), g);
    }
    opts(&mut v, 0)["IKEVersions"] = json!([{"Value": "ikev1"}]);
    // The bare VpnConnection object, as `--query 'VpnConnections[0]'` prints it.
    let bare = v["VpnConnections"][0].clone();
    let e = parse_v(&bare).unwrap_err();
    assert_eq!(e.problem(), Some(Problem::IkeV1Only));
    assert!(e.to_string().contains("TunnelOptions[0].IKEVersions"), "{e}");

    opts(&mut v, 0)["IKEVersions"] = json!([{"Value": "ikev2"}, {"Value": "ikev1"}]);
    let bare = v["VpnConnections"][0].clone();
    let c = parse_v(&bare).unwrap();
    assert_eq!(
        c.tunnels[0].ike_versions,
        vec![IkeVersion::Ikev1, IkeVersion::Ikev2]
    );
    assert_eq!(c.tunnels[0].dpd_timeout_secs, 45);
    assert_eq!(c.tunnels[0].dpd_action, DpdAction::Restart);
    assert_eq!(c.tunnels[0].phase1.dh_groups.len(), 8);
}

#[test]
fn empty_or_missing_lists_mean_aws_default_and_cgwd_offers_its_strong_subset() {
    let mut v = sample_json("lab.describe.json");
    let o = opts(&mut v, 0);
    o["Phase1EncryptionAlgorithms"] = json!([]);
    o["Phase2DHGroupNumbers"] = json!([]);
    o["IkeVersions"] = json!([]);
    o.as_object_mut().unwrap().remove("Phase2EncryptionAlgorithms");
    let c = parse_v(&v).unwrap();
    let t = &c.tunnels[0];
    assert_eq!(names(&t.phase1.encryption), ["AES256-GCM-16"]);
    assert_eq!(names(&t.phase2.encryption), ["AES256-GCM-16"]);
    assert_eq!(names(&t.phase2.pfs_groups), ["21", "20", "19", "16", "15", "14"]);
    assert_eq!(t.ike_versions, vec![IkeVersion::Ikev1, IkeVersion::Ikev2]);
    match t.origin("phase1.encryption") {
        Some(Origin::CgwdDefault(why)) => assert!(why.contains("list is empty"), "{why}"),
        other => panic!("{other:?}"),
    }
    match t.origin("phase2.encryption") {
        Some(Origin::CgwdDefault(why)) => assert!(why.contains("do not list"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_may_be_strings_or_numbers_and_plain_lists() {
    let mut v = sample_json("lab.describe.json");
    let o = opts(&mut v, 1);
    o["Phase1DHGroupNumbers"] = json!(["19", 20]);
    o["Phase1EncryptionAlgorithms"] = json!(["aes256-gcm-16"]);
    o["Phase1LifetimeSeconds"] = json!("14400");
    let c = parse_v(&v).unwrap();
    assert_eq!(names(&c.tunnels[1].phase1.dh_groups), ["20", "19"]);
    assert_eq!(names(&c.tunnels[1].phase1.encryption), ["AES256-GCM-16"]);
    assert_eq!(c.tunnels[1].phase1_lifetime_secs, 14400);
}

#[test]
fn ikev1_only_error_names_the_fix() {
    let v: Value = sample_json("invalid/ikev1-only.describe.json");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::IkeV1Only);
    assert!(
        msg.contains("VpnConnections[0].Options.TunnelOptions[0].IkeVersions"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "aws ec2 modify-vpn-tunnel-options --vpn-connection-id vpn-71310d5967085f652 \
             --vpn-tunnel-outside-ip-address 198.51.100.11 --tunnel-options IKEVersions=[{Value=ikev2}]"
        ),
        "{msg}"
    );
}

#[test]
fn tunnel_options_must_match_an_xml_tunnel() {
    let (p, msg) = err(&sample_json("invalid/unmatched-tunnel-options.describe.json"));
    assert_eq!(p, Problem::UnmatchedTunnelOptions);
    assert!(msg.contains("TunnelOptions[1].OutsideIpAddress"), "{msg}");
    assert!(msg.contains("203.0.113.99"), "{msg}");

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 1)["OutsideIpAddress"] = json!("not-an-ip");
    assert_eq!(err(&v).0, Problem::BadAddress);

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 1)
        .as_object_mut()
        .unwrap()
        .remove("OutsideIpAddress");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::MissingField);
    assert!(msg.contains("OutsideIpAddress"), "{msg}");
}

#[test]
fn tunnel_options_count() {
    let mut v = sample_json("lab.describe.json");
    let list = v["VpnConnections"][0]["Options"]["TunnelOptions"]
        .as_array_mut()
        .unwrap();
    list.pop();
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::TunnelCount);
    assert!(msg.contains("TunnelOptions has 1 entries"), "{msg}");

    let mut v = sample_json("lab.describe.json");
    let list = v["VpnConnections"][0]["Options"]["TunnelOptions"]
        .as_array_mut()
        .unwrap();
    let extra = list[0].clone();
    list.push(extra);
    assert_eq!(err(&v).0, Problem::TunnelCount);
}

#[test]
fn unknown_algorithms_and_disallowed_groups() {
    let (p, msg) = err(&sample_json("invalid/unknown-algorithm.describe.json"));
    assert_eq!(p, Problem::UnknownAlgorithm);
    assert!(
        msg.contains("TunnelOptions[0].Phase1EncryptionAlgorithms[0].Value"),
        "{msg}"
    );
    assert!(msg.contains("3DES"), "{msg}");

    for (key, value, expect) in [
        ("Phase2IntegrityAlgorithms", json!([{"Value": "MD5"}]), "MD5"),
        ("Phase1DHGroupNumbers", json!([{"Value": 5}]), "phase 1"),
        ("Phase2DHGroupNumbers", json!([{"Value": 1}]), "phase 2"),
        ("IkeVersions", json!([{"Value": "ikev3"}]), "ikev3"),
    ] {
        let mut v = sample_json("lab.describe.json");
        opts(&mut v, 1)[key] = value;
        let (p, msg) = err(&v);
        assert_eq!(p, Problem::UnknownAlgorithm, "{key}");
        assert!(msg.contains(expect), "{key}: {msg}");
        assert!(msg.contains(&format!("TunnelOptions[1].{key}")), "{msg}");
    }
}

#[test]
fn options_ranges_and_enums() {
    for (key, value) in [
        ("Phase1LifetimeSeconds", json!(600)),
        ("Phase2LifetimeSeconds", json!(7200)),
        ("RekeyMarginTimeSeconds", json!(30)),
        ("RekeyMarginTimeSeconds", json!(2000)),
        ("RekeyFuzzPercentage", json!(101)),
        ("ReplayWindowSize", json!(32)),
        ("DpdTimeoutSeconds", json!(10)),
        ("DpdTimeoutAction", json!("explode")),
        ("StartupAction", json!("later")),
    ] {
        let mut v = sample_json("lab.describe.json");
        opts(&mut v, 0)[key] = value.clone();
        let (p, msg) = err(&v);
        assert_eq!(p, Problem::BadNumber, "{key}={value}: {msg}");
        assert!(msg.contains(&format!("TunnelOptions[0].{key}")), "{key}: {msg}");
    }
    // Phase 2 lifetime must be shorter than phase 1.
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["Phase1LifetimeSeconds"] = json!(3600);
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::BadNumber);
    assert!(msg.contains("not shorter"), "{msg}");
    // Valid non-defaults.
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["DpdTimeoutAction"] = json!("none");
    opts(&mut v, 0)["RekeyFuzzPercentage"] = json!(0);
    let c = parse_v(&v).unwrap();
    assert_eq!(c.tunnels[0].dpd_action, DpdAction::None);
    assert_eq!(c.tunnels[0].rekey_fuzz_percent, 0);
}

#[test]
fn options_must_agree_with_xml() {
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["PreSharedKey"] = json!("another_key_1234");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::Conflict);
    assert!(msg.contains("TunnelOptions[0].PreSharedKey"), "{msg}");
    assert!(!msg.contains("another_key"), "PSK must not be printed: {msg}");

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["TunnelInsideCidr"] = json!("169.254.44.0/30");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::Conflict);
    assert!(msg.contains("TunnelInsideCidr"), "{msg}");

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["TunnelInsideCidr"] = json!("169.254.169.252/30");
    assert_eq!(err(&v).0, Problem::InsideCidr);

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["TunnelInsideCidr"] = json!("169.254.44.1/30");
    assert_eq!(err(&v).0, Problem::BadCidr);

    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["PreSharedKey"] = json!("bad key!");
    assert_eq!(err(&v).0, Problem::Psk);
}

#[test]
fn connection_options() {
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["Options"]["LocalIpv4NetworkCidr"] = json!("10.0.0.0/8");
    v["VpnConnections"][0]["Options"]["RemoteIpv4NetworkCidr"] = json!("10.100.0.0/16");
    let c = parse_v(&v).unwrap();
    assert_eq!(c.tunnels[1].local_ts.to_string(), "10.0.0.0/8");
    assert_eq!(c.tunnels[1].remote_ts.to_string(), "10.100.0.0/16");

    v["VpnConnections"][0]["Options"]["RemoteIpv4NetworkCidr"] = json!("10.100.0.0/99");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::BadCidr);
    assert!(msg.contains("Options.RemoteIpv4NetworkCidr"), "{msg}");

    v["VpnConnections"][0]["Options"]["RemoteIpv4NetworkCidr"] = json!("10.100.0.1/16");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::BadCidr);
    assert!(msg.contains("10.100.0.0/16"), "suggests the network: {msg}");

    // StaticRoutesOnly=true wins over <bgp> in the XML.
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["Options"]["StaticRoutesOnly"] = json!(true);
    assert_eq!(parse_v(&v).unwrap().routing, Routing::Static);
}

#[test]
fn bgp_connection_without_asns() {
    // StaticRoutesOnly=false but the XML has no <bgp>.
    let mut v = sample_json("aws-static.describe.json");
    v["VpnConnections"][0]["Options"]["StaticRoutesOnly"] = json!(false);
    let xml = v["VpnConnections"][0]["CustomerGatewayConfiguration"]
        .as_str()
        .unwrap()
        .replace(
            "<vpn_connection_attributes>NoBGPVPNConnection</vpn_connection_attributes>",
            "",
        );
    v["VpnConnections"][0]["CustomerGatewayConfiguration"] = json!(xml);
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("ASN"), "{msg}");
}

#[test]
fn structural_errors() {
    // Malformed JSON: line and column.
    let text = sample("lab.describe.json").replacen("\"Category\": \"VPN\",", "\"Category\": \"VPN\",,", 1);
    match parse(&text).unwrap_err() {
        ConfigError::Syntax {
            format, line, column, ..
        } => {
            assert_eq!(format, "JSON");
            assert_eq!(line, 4);
            assert!(column > 1);
        }
        other => panic!("{other}"),
    }
    // Several connections.
    let mut v = sample_json("lab.describe.json");
    let c = v["VpnConnections"][0].clone();
    v["VpnConnections"].as_array_mut().unwrap().push(c);
    let (_, msg) = err(&v);
    assert!(msg.contains("holds 2 connections"), "{msg}");
    assert!(msg.contains("--vpn-connection-ids"), "{msg}");
    // None.
    let (_, msg) = err(&json!({"VpnConnections": []}));
    assert!(msg.contains("holds 0 connections"), "{msg}");
    // Deleted connection: no XML.
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]
        .as_object_mut()
        .unwrap()
        .remove("CustomerGatewayConfiguration");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::MissingField);
    assert!(
        msg.contains("VpnConnections[0].CustomerGatewayConfiguration"),
        "{msg}"
    );
    // Some other JSON.
    let e = parse(r#"{"Reservations": []}"#).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
    let e = parse("[1, 2]").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
    // Broken embedded XML names the JSON path.
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["CustomerGatewayConfiguration"] = json!("<vpn_connection><oops></vpn_connection>");
    match parse_v(&v).unwrap_err() {
        ConfigError::Syntax { message, .. } => {
            assert!(message.contains("CustomerGatewayConfiguration"), "{message}")
        }
        other => panic!("{other}"),
    }
    // Bad value inside the embedded XML names both.
    let mut v = sample_json("lab.describe.json");
    let xml = v["VpnConnections"][0]["CustomerGatewayConfiguration"]
        .as_str()
        .unwrap()
        .replace("169.254.20.10", "169.254.20.11");
    v["VpnConnections"][0]["CustomerGatewayConfiguration"] = json!(xml);
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::InsideCidr);
    assert!(
        msg.contains("VpnConnections[0].CustomerGatewayConfiguration, XML line"),
        "{msg}"
    );
}

#[test]
fn ids_prefer_json_fields() {
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["VpnConnectionId"] = json!("vpn-00000000000000001");
    v["VpnConnections"][0]["TransitGatewayId"] = json!("tgw-00000000000000001");
    let c = parse_v(&v).unwrap();
    assert_eq!(c.id, "vpn-00000000000000001");
    assert_eq!(c.transit_gateway_id.as_deref(), Some("tgw-00000000000000001"));
}

#[test]
fn ipv6_inside_from_tunnel_options() {
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["TunnelInsideIpv6Cidr"] = json!("fd00:1:2:3::4/126");
    let c = parse_v(&v).unwrap();
    assert_eq!(
        c.tunnels[0].aws_inside_ipv6().unwrap().to_string(),
        "fd00:1:2:3::5"
    );
    assert_eq!(
        c.tunnels[0].customer_inside_ipv6().unwrap().to_string(),
        "fd00:1:2:3::6"
    );
    opts(&mut v, 0)["TunnelInsideIpv6Cidr"] = json!("fd00:1:2:3::/64");
    assert_eq!(err(&v).0, Problem::InsideCidr);
}

#[test]
fn without_tunnel_options_the_xml_order_is_used() {
    let mut v = sample_json("lab-swapped.describe.json");
    v["VpnConnections"][0]["Options"]
        .as_object_mut()
        .unwrap()
        .remove("TunnelOptions");
    let c = parse_v(&v).unwrap();
    assert_eq!(c.tunnels[0].aws_outside, ip("203.0.113.12"));
    assert!(matches!(
        c.tunnels[0].origin("phase1.encryption"),
        Some(Origin::CgwdDefault(_))
    ));
    // No Options at all.
    v["VpnConnections"][0].as_object_mut().unwrap().remove("Options");
    let c = parse_v(&v).unwrap();
    assert_eq!(c.tunnels[0].local_ts.to_string(), "0.0.0.0/0");
}

#[test]
fn tunnel_options_for_the_same_address_twice() {
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 1)["OutsideIpAddress"] = json!("198.51.100.11");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::UnmatchedTunnelOptions);
    assert!(msg.contains("TunnelOptions[1]"), "{msg}");
}

#[test]
fn ipv6_outside_addresses() {
    let mut v = sample_json("lab.describe.json");
    let xml = v["VpnConnections"][0]["CustomerGatewayConfiguration"]
        .as_str()
        .unwrap()
        .replace("192.0.2.10", "2001:db8::10")
        .replace("198.51.100.11", "2001:db8:1::11")
        .replace("203.0.113.12", "2001:db8:2::12");
    v["VpnConnections"][0]["CustomerGatewayConfiguration"] = json!(xml);
    opts(&mut v, 0)["OutsideIpAddress"] = json!("2001:db8:1::11");
    opts(&mut v, 1)["OutsideIpAddress"] = json!("2001:db8:2::12");
    // The lab file says PublicIpv4: IPv6 addresses contradict it.
    assert_eq!(err(&v).0, Problem::Conflict);
    v["VpnConnections"][0]["Options"]["OutsideIpAddressType"] = json!("Ipv6");
    let c = parse_v(&v).unwrap();
    assert_eq!(c.tunnels[0].aws_outside, ip("2001:db8:1::11"));
    assert_eq!(c.tunnels[1].customer_outside, ip("2001:db8::10"));
}

/// FACTS §9.2: PSKs in Secrets Manager — `PreSharedKeyArn`, no `PreSharedKey` in TunnelOptions,
/// `REDACTED` in the XML. The file alone gives no key: refused naming the tunnel, the placeholder,
/// the ARN and the setting that gives the key.
#[test]
fn secrets_manager_sample_has_no_key_of_its_own() {
    let e = parse(&sample("parity/sample-secretsmanager.describe.json")).unwrap_err();
    assert_eq!(e.problem(), Some(Problem::PskMissing));
    let msg = e.to_string();
    assert!(msg.starts_with("vpn.json: "), "{msg}");
    assert!(msg.contains("<ipsec_tunnel>[1]/<ike>/<pre_shared_key>"), "{msg}");
    assert!(msg.contains("tunnel 1 (AWS 192.0.2.81)"), "{msg}");
    assert!(msg.contains("placeholder `REDACTED`, not a key"), "{msg}");
    assert!(
        msg.contains("PreSharedKeyArn arn:aws:secretsmanager:us-east-1:111122223333:secret:s2svpn!"),
        "{msg}"
    );
    assert!(
        msg.contains("[tunnels.1] psk_file = \"/etc/cgwd/vpn-0d4e5f60718293a4b-1.psk\""),
        "{msg}"
    );
    assert!(msg.contains("psk_env") && msg.contains("psk_credential"), "{msg}");
}

/// FACTS §9.1: a certificate-authenticated connection (no key anywhere, `VgwTelemetry[].CertificateArn`)
/// without settings giving the customer gateway a certificate is refused, naming the field and the
/// `[auth]` table, not as a file missing its key.
#[test]
fn certificate_sample_is_unsupported() {
    let e = parse(&sample("parity/sample-cert.describe.json")).unwrap_err();
    assert_eq!(e.problem(), Some(Problem::Unsupported));
    let msg = e.to_string();
    assert!(
        msg.contains("VpnConnections[0].VgwTelemetry[0].CertificateArn"),
        "names the field: {msg}"
    );
    assert!(
        msg.contains("tunnel 1 (AWS 192.0.2.71) authenticates with a certificate"),
        "{msg}"
    );
    assert!(
        msg.contains("arn:aws:acm:us-east-1:111122223333:certificate/3f1c0b9e"),
        "{msg}"
    );
    assert!(
        msg.contains("the settings give the customer gateway no certificate") && msg.contains("[auth] table"),
        "{msg}"
    );
    assert!(!msg.contains("pre-shared key is missing"), "{msg}");
}

/// A certificate listed next to a key: cgwd uses the key (FACTS §9.4: the ARN alone proves nothing)
/// and says what happens if AWS expects the certificate.
#[test]
fn certificate_arn_next_to_a_key_is_a_note() {
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["VgwTelemetry"] = json!([
        {"OutsideIpAddress": "203.0.113.12", "Status": "UP", "CertificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/abc"}
    ]);
    let c = parse_v(&v).unwrap();
    let t = c
        .tunnels
        .iter()
        .find(|t| t.aws_outside == ip("203.0.113.12"))
        .unwrap();
    assert_eq!(
        t.certificate_arn.as_deref(),
        Some("arn:aws:acm:eu-west-1:111122223333:certificate/abc")
    );
    assert!(c.tunnels.iter().filter(|t| t.certificate_arn.is_some()).count() == 1);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("VgwTelemetry[0].CertificateArn") && n.contains("AUTHENTICATION_FAILED")),
        "{:?}",
        c.notes
    );
}

/// `REDACTED` is never a key, in TunnelOptions as in the XML, in any case; the other source's real
/// key is used, and with none the tunnel is refused.
#[test]
fn redacted_is_a_placeholder_wherever_it_appears() {
    let mut v = sample_json("lab.describe.json");
    opts(&mut v, 0)["PreSharedKey"] = json!("REDACTED");
    let c = parse_v(&v).unwrap();
    assert_eq!(
        c.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel1_psk.AWS1"
    );
    assert_eq!(c.tunnels[0].origin("psk"), Some(&Origin::Xml));

    for placeholder in ["REDACTED", "redacted", "Redacted"] {
        let mut v = sample_json("lab.describe.json");
        let xml = v["VpnConnections"][0]["CustomerGatewayConfiguration"]
            .as_str()
            .unwrap()
            .replace("lab_tunnel1_psk.AWS1", placeholder);
        v["VpnConnections"][0]["CustomerGatewayConfiguration"] = json!(xml);
        opts(&mut v, 0)["PreSharedKey"] = json!(placeholder);
        let (p, msg) = err(&v);
        assert_eq!(p, Problem::PskMissing, "{placeholder}");
        assert!(msg.contains("placeholder `REDACTED`"), "{msg}");
        assert!(msg.contains("tunnel 1 (AWS 198.51.100.11)"), "{msg}");
        // No PreSharedKeyArn in this file: the message says what the placeholder means.
        assert!(msg.contains("where it keeps the key in Secrets Manager"), "{msg}");
    }
}

/// FACTS §9.3: every IPv6 field of the describe output reaches the model (the loader then refuses
/// the connection, see config_settings and config_cli).
#[test]
fn ipv6_sample_every_ipv6_field() {
    use cgwd::config::{InsideIpVersion, OutsideIpAddressType};
    let c = parse(&sample("parity/sample-ipv6.describe.json")).unwrap();
    assert_eq!(c.transit_gateway_id.as_deref(), Some("tgw-0a1b2c3d4e5f60718"));
    assert_eq!(c.vpn_gateway_id, None);
    assert_eq!(c.ip.outside_ip_address_type, Some(OutsideIpAddressType::Ipv6));
    assert_eq!(c.ip.tunnel_inside_ip_version, Some(InsideIpVersion::Ipv6));
    assert_eq!(c.ip.local_ipv6_network_cidr.unwrap().to_string(), "::/0");
    assert_eq!(c.ip.remote_ipv6_network_cidr.unwrap().to_string(), "::/0");
    let [t1, t2] = &c.tunnels;
    assert_eq!(t1.aws_outside, ip("2001:db8:ffaa:1::21"));
    assert_eq!(t2.aws_outside, ip("2001:db8:ffab:2::22"));
    assert_eq!(t1.customer_outside, ip("2001:db8:100::10"));
    assert_eq!(t1.inside.to_string(), "169.254.51.0/30");
    assert_eq!(t1.inside_ipv6.unwrap().to_string(), "fd00:a1b2:c3d4:1::/126");
    assert_eq!(t2.inside_ipv6.unwrap().to_string(), "fd00:a1b2:c3d4:1::4/126");
    assert_eq!(t2.aws_inside_ipv6().unwrap().to_string(), "fd00:a1b2:c3d4:1::5");
    assert_eq!(
        t2.customer_inside_ipv6().unwrap().to_string(),
        "fd00:a1b2:c3d4:1::6"
    );
    // Without the connection options the XML's /128 addresses still give the /126s.
    let mut v = sample_json("parity/sample-ipv6.describe.json");
    v["VpnConnections"][0]["Options"]
        .as_object_mut()
        .unwrap()
        .remove("TunnelOptions");
    let c = parse_v(&v).unwrap();
    assert_eq!(
        c.tunnels[1].inside_ipv6.unwrap().to_string(),
        "fd00:a1b2:c3d4:1::4/126"
    );
    // The lab sample has AWS's defaults.
    let lab = parse(&sample("lab.describe.json")).unwrap();
    assert_eq!(
        lab.ip.outside_ip_address_type,
        Some(OutsideIpAddressType::PublicIpv4)
    );
    assert_eq!(lab.ip.tunnel_inside_ip_version, Some(InsideIpVersion::Ipv4));
    assert_eq!(lab.ip.local_ipv6_network_cidr, None);
}

#[test]
fn ipv6_options_are_checked() {
    let base = sample_json("parity/sample-ipv6.describe.json");
    for (key, value, problem, needle) in [
        (
            "OutsideIpAddressType",
            "Ipv5",
            Problem::BadNumber,
            "Options.OutsideIpAddressType: OutsideIpAddressType `Ipv5`",
        ),
        (
            "OutsideIpAddressType",
            "PublicIpv4",
            Problem::Conflict,
            "2001:db8:ffaa:1::21 is IPv6",
        ),
        (
            "TunnelInsideIpVersion",
            "ipv5",
            Problem::BadNumber,
            "TunnelInsideIpVersion `ipv5`",
        ),
        (
            "LocalIpv6NetworkCidr",
            "fd00::1/64",
            Problem::BadCidr,
            "did you mean fd00::/64",
        ),
        (
            "RemoteIpv6NetworkCidr",
            "nonsense",
            Problem::BadCidr,
            "not an IPv6 CIDR",
        ),
    ] {
        let mut v = base.clone();
        v["VpnConnections"][0]["Options"][key] = json!(value);
        let (p, msg) = err(&v);
        assert_eq!(p, problem, "{key} {value}: {msg}");
        assert!(msg.contains(needle), "{key} {value}: {msg}");
    }
    let mut v = base.clone();
    opts(&mut v, 1)["TunnelInsideIpv6Cidr"] = json!("fd00:a1b2:c3d4:1::8/126");
    let (p, msg) = err(&v);
    assert_eq!(p, Problem::Conflict);
    assert!(msg.contains("TunnelOptions[1].TunnelInsideIpv6Cidr"), "{msg}");
    // Case-insensitive values (the user guide's excerpt writes its own casing).
    let mut v = base.clone();
    v["VpnConnections"][0]["Options"]["OutsideIpAddressType"] = json!("IPV6");
    assert!(parse_v(&v).is_ok());
    let mut v = sample_json("lab.describe.json");
    v["VpnConnections"][0]["Options"]["OutsideIpAddressType"] = json!("PrivateIpv4");
    assert_eq!(
        parse_v(&v).unwrap().ip.outside_ip_address_type,
        Some(cgwd::config::OutsideIpAddressType::PrivateIpv4)
    );
}
