//! CustomerGatewayConfiguration XML: every field, the tolerances real files need, every error.

mod common;

use std::net::Ipv4Addr;

use cgwd::config::{
    ConfigError, DpdAction, IkeVersion, Origin, Problem, Routing, SourceFormat, StartupAction, VpnConnection,
};
use cgwd::sa::TunnelId;
use common::configs::{ip, parse_named, rejected_named, sample};

fn parse(text: &str) -> Result<VpnConnection, ConfigError> {
    parse_named(text, "test.xml")
}

fn err(text: &str) -> (Problem, String) {
    rejected_named(text, "test.xml")
}

#[test]
fn default_bgp_sample_every_field() {
    let c = parse(&sample("aws-default.xml")).unwrap();
    assert_eq!(c.format, SourceFormat::Xml);
    assert_eq!(c.id, "vpn-0c3d4e5f60718293a");
    assert_eq!(c.customer_gateway_id, "cgw-0d1c2b3a49587766e");
    assert_eq!(c.vpn_gateway_id.as_deref(), Some("vgw-0fedcba9876543210"));
    assert_eq!(c.transit_gateway_id, None);
    assert_eq!(
        c.routing,
        Routing::Bgp {
            customer_asn: 65000,
            aws_asn: 64512,
            hold_time: 30
        }
    );
    let t1 = c.tunnel(TunnelId::One);
    assert_eq!(t1.id, TunnelId::One);
    assert_eq!(t1.aws_outside, ip("192.0.2.51"));
    assert_eq!(t1.customer_outside, ip("203.0.113.30"));
    assert_eq!(t1.inside.to_string(), "169.254.187.20/30");
    assert_eq!(t1.aws_inside(), Ipv4Addr::new(169, 254, 187, 21));
    assert_eq!(t1.customer_inside(), Ipv4Addr::new(169, 254, 187, 22));
    assert_eq!(t1.inside_ipv6, None);
    assert_eq!(
        t1.psk.as_ref().unwrap().expose(),
        b"Vb7Nc3Xz9Lk5Jh1Gf6Ds2Aq8Wp4Er0Ty"
    );
    assert_eq!(t1.origin("psk"), Some(&Origin::Xml));
    assert_eq!(t1.phase1_lifetime_secs, 28800);
    assert_eq!(t1.origin("phase1_lifetime"), Some(&Origin::Xml));
    assert_eq!(t1.phase2_lifetime_secs, 3600);
    assert_eq!(t1.dpd_interval_secs, 10);
    assert_eq!(t1.origin("dpd_interval"), Some(&Origin::Xml));
    // interval 10 × retries 3
    assert_eq!(t1.dpd_timeout_secs, 30);
    assert_eq!(t1.tcp_mss_adjustment, Some(1379));
    assert!(t1.clear_df_bit);
    assert!(t1.fragmentation_before_encryption);
    // Not in the XML: AWS defaults, and say so.
    assert_eq!(t1.dpd_action, DpdAction::Clear);
    assert_eq!(t1.startup_action, StartupAction::Add);
    assert_eq!(t1.replay_window, 1024);
    assert_eq!(t1.rekey_margin_secs, 540, "the larger documented default");
    assert_eq!(t1.rekey_fuzz_percent, 100);
    assert_eq!(t1.local_ts.to_string(), "0.0.0.0/0");
    assert_eq!(t1.remote_ts.to_string(), "0.0.0.0/0");
    assert!(matches!(t1.origin("dpd_action"), Some(Origin::CgwdDefault(_))));
    assert_eq!(t1.ike_versions, vec![IkeVersion::Ikev1, IkeVersion::Ikev2]);

    let t2 = c.tunnel(TunnelId::Two);
    assert_eq!(t2.aws_outside, ip("198.51.100.61"));
    assert_eq!(t2.inside.to_string(), "169.254.91.148/30");
    assert_eq!(
        t2.psk.as_ref().unwrap().expose(),
        b"Mn4Bv8Cx2Za6Sd0Fg3Hj7Kl1Qw5Er9T."
    );
}

#[test]
fn xml_offer_is_cgwd_strong_default_and_says_why() {
    let c = parse(&sample("aws-default.xml")).unwrap();
    for t in &c.tunnels {
        assert_eq!(
            t.phase1
                .encryption
                .iter()
                .map(|e| e.aws_name())
                .collect::<Vec<_>>(),
            ["AES256-GCM-16"]
        );
        assert_eq!(
            t.phase1
                .integrity
                .iter()
                .map(|i| i.aws_name())
                .collect::<Vec<_>>(),
            ["SHA2-512", "SHA2-384", "SHA2-256"]
        );
        assert_eq!(
            t.phase1.dh_groups.iter().map(|g| g.number()).collect::<Vec<_>>(),
            [21, 20, 19, 16, 15, 14]
        );
        assert_eq!(
            t.phase2
                .encryption
                .iter()
                .map(|e| e.aws_name())
                .collect::<Vec<_>>(),
            ["AES256-GCM-16"]
        );
        assert_eq!(t.phase2.pfs_groups, t.phase1.dh_groups);
        match t.origin("phase1.encryption") {
            Some(Origin::CgwdDefault(why)) => {
                assert!(why.contains("XML carries no IKEv2 algorithms"), "{why}")
            }
            other => panic!("unexpected origin {other:?}"),
        }
        assert_eq!(t.mtu(), 1438);
    }
}

#[test]
fn static_sample_and_lab_sample() {
    let c = parse(&sample("aws-static.xml")).unwrap();
    assert_eq!(c.routing, Routing::Static);
    assert_eq!(c.tunnels[0].inside.to_string(), "169.254.100.0/30");
    assert_eq!(c.tunnels[1].inside.to_string(), "169.254.100.4/30");

    let lab = parse(&sample("lab.xml")).unwrap();
    assert_eq!(lab.tunnels[0].aws_outside, ip("198.51.100.11"));
    assert_eq!(lab.tunnels[1].aws_outside, ip("203.0.113.12"));
    assert_eq!(lab.tunnels[0].customer_outside, ip("192.0.2.10"));
    assert_eq!(lab.tunnels[0].customer_inside(), Ipv4Addr::new(169, 254, 10, 6));
    assert_eq!(lab.tunnels[1].customer_inside(), Ipv4Addr::new(169, 254, 20, 10));
    assert_eq!(lab.tunnels[1].aws_inside(), Ipv4Addr::new(169, 254, 20, 9));
    assert_eq!(
        lab.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel1_psk.AWS1"
    );
}

#[test]
fn transit_gateway_empty_vgw_and_32bit_asn() {
    let c = parse(&sample("aws-bgp-tgw.xml")).unwrap();
    assert_eq!(c.vpn_gateway_id, None);
    assert_eq!(
        c.routing,
        Routing::Bgp {
            customer_asn: 65010,
            aws_asn: 4_200_000_001,
            hold_time: 30
        }
    );
}

#[test]
fn swapped_xml_keeps_document_order_and_pairs_addresses() {
    let c = parse(&sample("lab-swapped.xml")).unwrap();
    // Without TunnelOptions, document order is all there is; each tunnel keeps its own values.
    assert_eq!(c.tunnels[0].aws_outside, ip("203.0.113.12"));
    assert_eq!(
        c.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel2_psk.AWS2"
    );
    assert_eq!(c.tunnels[0].inside.to_string(), "169.254.20.8/30");
}

#[test]
fn tolerates_comments_reordering_unknown_elements_and_missing_optional_parts() {
    let text = sample("aws-default.xml")
        // a comment and an unknown element at the top
        .replace(
            "<customer_gateway_id>",
            "<!-- c --><future_field a=\"b\">x</future_field><customer_gateway_id>",
        )
        // element order changed: vpn_gateway_id after the tunnels
        .replace("<vpn_gateway_id>vgw-0fedcba9876543210</vpn_gateway_id>", "")
        .replace(
            "</vpn_connection>",
            "<vpn_gateway_id>vgw-0fedcba9876543210</vpn_gateway_id></vpn_connection>",
        )
        // no vpn_connection_type
        .replace("<vpn_connection_type>ipsec.1</vpn_connection_type>", "");
    let c = parse(&text).unwrap();
    assert_eq!(c.vpn_gateway_id.as_deref(), Some("vgw-0fedcba9876543210"));
    assert!(matches!(c.routing, Routing::Bgp { .. }));

    // No <bgp> and no vpn_connection_attributes: static.
    let no_bgp = regex_free_remove(&sample("aws-default.xml"), "<bgp>", "</bgp>");
    let c = parse(&no_bgp).unwrap();
    assert_eq!(c.routing, Routing::Static);

    // NoBGPVPNConnection wins even if <bgp> is present.
    let declared = sample("aws-default.xml").replace(
        "<vpn_connection_type>ipsec.1</vpn_connection_type>",
        "<vpn_connection_type>ipsec.1</vpn_connection_type><vpn_connection_attributes>NoBGPVPNConnection</vpn_connection_attributes>",
    );
    assert_eq!(parse(&declared).unwrap().routing, Routing::Static);

    // No DPD, MSS, DF, fragmentation, lifetimes: defaults.
    let bare = regex_free_remove(&sample("aws-static.xml"), "<ipsec>\n", "</ipsec>");
    let c = parse(&bare).unwrap();
    assert_eq!(c.tunnels[0].dpd_interval_secs, 10);
    assert_eq!(c.tunnels[0].phase2_lifetime_secs, 3600);
    assert_eq!(c.tunnels[0].tcp_mss_adjustment, None);
    assert!(c.tunnels[0].clear_df_bit);
}

/// Remove every `start…end` span (inclusive).
fn regex_free_remove(text: &str, start: &str, end: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(s) = rest.find(start) {
        out.push_str(&rest[..s]);
        match rest[s..].find(end) {
            Some(e) => rest = &rest[s + e + end.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn optional_ipv6_inside_addresses() {
    let text = sample("aws-static.xml").replacen(
        "</customer_gateway>",
        "<tunnel_inside_ipv6_address><ip_address>fd00:0:0:1::2</ip_address><prefix_length>126</prefix_length></tunnel_inside_ipv6_address></customer_gateway>",
        1,
    );
    let c = parse(&text).unwrap();
    let t = &c.tunnels[0];
    assert_eq!(t.inside_ipv6.unwrap().to_string(), "fd00:0:0:1::/126");
    assert_eq!(t.aws_inside_ipv6().unwrap().to_string(), "fd00:0:0:1::1");
    assert_eq!(t.customer_inside_ipv6().unwrap().to_string(), "fd00:0:0:1::2");
    assert_eq!(c.tunnels[1].inside_ipv6, None);
}

#[test]
fn malformed_xml_reports_line_and_column() {
    let text = sample("aws-static.xml").replace("</customer_gateway_id>", "</customer_gateway>");
    match parse(&text).unwrap_err() {
        ConfigError::Syntax {
            format, line, column, ..
        } => {
            assert_eq!(format, "XML");
            assert_eq!(line, 16);
            assert!(column > 1);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn wrong_root_is_not_an_aws_config() {
    let e = parse("<html><body/></html>").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
    assert!(e.to_string().contains("<html>"));
}

#[test]
fn missing_and_extra_tunnels() {
    let one = sample("invalid/one-tunnel.xml");
    let (p, msg) = err(&one);
    assert_eq!(p, Problem::TunnelCount);
    assert!(msg.contains("found 1 tunnel"), "{msg}");
    assert!(msg.contains("<vpn_connection>"), "{msg}");

    let xml = sample("lab.xml");
    let start = xml.find("<ipsec_tunnel>").unwrap();
    let end = xml.find("</ipsec_tunnel>").unwrap() + "</ipsec_tunnel>".len();
    let three = xml.replace(
        "</vpn_connection>",
        &format!("{}</vpn_connection>", &xml[start..end]),
    );
    let (p, msg) = err(&three);
    assert_eq!(p, Problem::TunnelCount);
    assert!(msg.contains("found 3 tunnel"), "{msg}");
}

#[test]
fn duplicate_aws_outside_address() {
    let text = sample("lab.xml").replace("203.0.113.12", "198.51.100.11");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::DuplicateTunnel);
    assert!(msg.contains("198.51.100.11"), "{msg}");
}

#[test]
fn bad_ip_addresses_name_the_element() {
    let text = sample("lab.xml").replace(
        "<ip_address>203.0.113.12</ip_address>",
        "<ip_address>203.0.113.300</ip_address>",
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadAddress);
    assert!(
        msg.contains("<ipsec_tunnel>[2]/<vpn_gateway>/<tunnel_outside_address>/<ip_address>"),
        "{msg}"
    );
    assert!(msg.contains("203.0.113.300"), "{msg}");

    let text = sample("lab.xml").replacen(
        "<ip_address>192.0.2.10</ip_address>",
        "<ip_address>cgw.example</ip_address>",
        1,
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadAddress);
    assert!(
        msg.contains("<customer_gateway>/<tunnel_outside_address>"),
        "{msg}"
    );

    let text = sample("lab.xml").replace("169.254.10.6", "169.254.10.x");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadAddress);
    assert!(msg.contains("tunnel_inside_address"), "{msg}");
}

#[test]
fn inside_cidr_rules() {
    // Reserved /30.
    let (p, msg) = err(&sample("invalid/reserved-inside.xml"));
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("reserved"), "{msg}");
    for reserved in ["169.254.0.", "169.254.5.", "169.254.169.25"] {
        let (c, a) = if reserved.ends_with("25") {
            (format!("{reserved}4"), format!("{reserved}3"))
        } else {
            (format!("{reserved}2"), format!("{reserved}1"))
        };
        let text = sample("lab.xml")
            .replace("169.254.10.6", &c)
            .replace("169.254.10.5", &a);
        assert_eq!(err(&text).0, Problem::InsideCidr, "{reserved}");
    }
    // Not in 169.254.0.0/16.
    let text = sample("lab.xml")
        .replace("169.254.10.6", "10.254.10.6")
        .replace("169.254.10.5", "10.254.10.5");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("169.254.0.0/16"), "{msg}");
    // Not a /30.
    let text = sample("lab.xml").replacen(
        "<network_cidr>30</network_cidr>",
        "<network_cidr>29</network_cidr>",
        1,
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("not a /30"), "{msg}");
    // Customer is not network+2.
    let text = sample("lab.xml").replace("169.254.10.6", "169.254.10.5");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("second host"), "{msg}");
    // AWS is not network+1.
    let text = sample("lab.xml").replace("169.254.10.5", "169.254.10.7");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("first host"), "{msg}");
}

#[test]
fn psk_rules() {
    let (p, msg) = err(&sample("invalid/bad-psk.xml"));
    assert_eq!(p, Problem::Psk);
    assert!(msg.contains("<ike>/<pre_shared_key>"), "{msg}");
    assert!(msg.contains("starts with 0"), "{msg}");
    assert!(!msg.contains("0ab+cdef"), "PSK must not be printed: {msg}");

    let cases = [
        ("short7c", "characters long"),
        (&"a".repeat(65) as &str, "characters long"),
        ("abc+defgh", "position 4"),
        ("abc defgh", "position 4"),
        ("0abcdefgh", "starts with 0"),
    ];
    for (psk, expect) in cases {
        let text = sample("lab.xml").replace("lab_tunnel2_psk.AWS2", psk);
        let (p, msg) = err(&text);
        assert_eq!(p, Problem::Psk, "{psk}");
        assert!(msg.contains(expect), "{psk}: {msg}");
        assert!(msg.contains("<ipsec_tunnel>[2]"), "{msg}");
    }
    // The limits themselves are fine.
    for psk in ["abcdefgh", &"Z".repeat(64) as &str, "a._.b_9Z"] {
        let text = sample("lab.xml").replace("lab_tunnel2_psk.AWS2", psk);
        assert_eq!(
            parse(&text).unwrap().tunnels[1].psk.as_ref().unwrap().expose(),
            psk.as_bytes()
        );
    }
    // No PSK at all (Secrets Manager or certificate auth) is refused naming the setting that gives one.
    let text = sample("lab.xml").replace("<pre_shared_key>lab_tunnel1_psk.AWS1</pre_shared_key>", "");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::PskMissing);
    assert!(
        msg.contains("tunnel 1 (AWS 198.51.100.11): the pre-shared key is missing"),
        "{msg}"
    );
    assert!(msg.contains("<ipsec_tunnel>[1]"), "{msg}");
    assert!(msg.contains("[tunnels.1] psk_file"), "{msg}");
}

#[test]
fn bgp_without_asns() {
    let (p, msg) = err(&sample("invalid/bgp-without-asn.xml"));
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("no customer gateway ASN"), "{msg}");
    let text = sample("aws-default.xml").replace("<asn>64512</asn>", "");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("AWS-side ASN"), "{msg}");
    let text = sample("aws-default.xml").replace("<asn>64512</asn>", "<asn>sixty</asn>");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("sixty"), "{msg}");
    let text = sample("aws-default.xml").replacen("<asn>65000</asn>", "<asn>65001</asn>", 1);
    assert_eq!(err(&text).0, Problem::Conflict);
}

/// AWS's own ASNs cannot be the customer gateway's, and eBGP needs two ASes.
#[test]
fn reserved_and_equal_asns_are_refused() {
    for reserved in [7224, 9059, 10124, 17943] {
        let text = sample("aws-default.xml").replace("<asn>65000</asn>", &format!("<asn>{reserved}</asn>"));
        let (p, msg) = err(&text);
        assert_eq!(p, Problem::BgpAsn, "{msg}");
        assert!(
            msg.contains(&format!("ASN {reserved} is reserved by AWS")),
            "{msg}"
        );
    }
    let text = sample("aws-default.xml").replace("<asn>65000</asn>", "<asn>64512</asn>");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("share ASN 64512"), "{msg}");
    // A customer AS AWS does not reserve (a public one, or 17493, Singapore's legacy VGW AS).
    for ok in [17493u32, 1, 4_200_000_000] {
        let text = sample("aws-default.xml").replace("<asn>65000</asn>", &format!("<asn>{ok}</asn>"));
        assert!(parse(&text).is_ok(), "{ok}");
    }
}

#[test]
fn numeric_fields_are_range_checked() {
    let text = sample("lab.xml").replacen("<lifetime>28800</lifetime>", "<lifetime>99999</lifetime>", 1);
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadNumber);
    assert!(msg.contains("<ike>/<lifetime>"), "{msg}");
    let text = sample("lab.xml").replacen("<lifetime>3600</lifetime>", "<lifetime>an hour</lifetime>", 1);
    assert_eq!(err(&text).0, Problem::BadNumber);
    let text = sample("lab.xml").replacen(
        "<clear_df_bit>true</clear_df_bit>",
        "<clear_df_bit>maybe</clear_df_bit>",
        1,
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadNumber);
    assert!(msg.contains("clear_df_bit"), "{msg}");
    let text = sample("lab.xml").replacen(
        "<clear_df_bit>true</clear_df_bit>",
        "<clear_df_bit>false</clear_df_bit>",
        1,
    );
    assert!(!parse(&text).unwrap().tunnels[0].clear_df_bit);
}

#[test]
fn missing_ids_are_reported() {
    let text = sample("lab.xml").replace(" id=\"vpn-71310d5967085f652\"", "");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::MissingField);
    assert!(msg.contains("VPN connection ID"), "{msg}");
    let text = sample("lab.xml").replace(
        "<customer_gateway_id>cgw-4e4fc93bfc2a83a34</customer_gateway_id>",
        "",
    );
    assert!(err(&text).1.contains("customer gateway ID"));
}

#[test]
fn thousands_of_tunnels_are_counted_cheaply() {
    let xml = sample("lab.xml");
    let start = xml.find("<ipsec_tunnel>").unwrap();
    let end = xml.find("</ipsec_tunnel>").unwrap() + "</ipsec_tunnel>".len();
    let many = xml[start..end].repeat(5000);
    let text = xml.replace("</vpn_connection>", &format!("{many}</vpn_connection>"));
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::TunnelCount);
    assert!(msg.contains("found 5002 tunnel"), "{msg}");
}

/// The XML of the IPv6 describe sample of FACTS §9.3 (what `--query CustomerGatewayConfiguration`
/// saves): IPv6 outside addresses, and inside ones as AWS writes them, /128 each.
#[test]
fn ipv6_sample_as_xml() {
    let c = parse(&sample("parity/sample-ipv6.xml")).unwrap();
    assert_eq!(c.tunnels[0].aws_outside, ip("2001:db8:ffaa:1::21"));
    assert_eq!(c.tunnels[0].customer_outside, ip("2001:db8:100::10"));
    assert_eq!(
        c.tunnels[0].inside_ipv6.unwrap().to_string(),
        "fd00:a1b2:c3d4:1::/126"
    );
    assert_eq!(
        c.tunnels[1].inside_ipv6.unwrap().to_string(),
        "fd00:a1b2:c3d4:1::4/126"
    );
    assert_eq!(
        c.ip,
        cgwd::config::IpOptions::default(),
        "the XML carries no Options"
    );
    assert_eq!(c.vpn_gateway_id, None);
}

/// The XML of the certificate and Secrets Manager describe samples of FACTS §9.1/9.2: no key, or
/// the placeholder.
#[test]
fn keyless_samples_as_xml() {
    // Certificate authentication leaves no trace in the XML: a missing key, both causes named.
    let (p, msg) = err(&sample("parity/sample-cert.xml"));
    assert_eq!(p, Problem::PskMissing);
    assert!(
        msg.contains("tunnel 1 (AWS 192.0.2.71): the pre-shared key is missing"),
        "{msg}"
    );
    assert!(msg.contains("[tunnels.1] psk_file"), "{msg}");
    assert!(
        msg.contains("if the tunnel is authenticated by certificate") && msg.contains("[auth] table"),
        "{msg}"
    );

    let (p, msg) = err(&sample("parity/sample-secretsmanager.xml"));
    assert_eq!(p, Problem::PskMissing);
    assert!(
        msg.contains("line 41, <vpn_connection>/<ipsec_tunnel>[1]/<ike>/<pre_shared_key>"),
        "{msg}"
    );
    assert!(msg.contains("placeholder `REDACTED`"), "{msg}");
}

#[test]
fn inside_ipv6_addresses_are_hosts_1_and_2_of_a_126() {
    let text = sample("parity/sample-ipv6.xml");
    let (p, msg) = err(&text.replace("fd00:a1b2:c3d4:1::1<", "fd00:a1b2:c3d4:1::3<"));
    assert_eq!(p, Problem::InsideCidr);
    assert!(
        msg.contains("AWS inside IPv6 address fd00:a1b2:c3d4:1::3 is not host 1"),
        "{msg}"
    );
    let (p, msg) = err(&text.replacen("<prefix_length>128<", "<prefix_length>64<", 1));
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("prefix length 64"), "{msg}");
    let c = parse(&text.replace("<prefix_length>128<", "<prefix_length>126<")).unwrap();
    assert_eq!(
        c.tunnels[0].inside_ipv6.unwrap().to_string(),
        "fd00:a1b2:c3d4:1::/126"
    );
}

#[test]
fn redacted_in_the_xml_is_never_a_key() {
    for placeholder in ["REDACTED", "redacted", " REDACTED "] {
        let text = sample("lab.xml").replace("lab_tunnel2_psk.AWS2", placeholder);
        let (p, msg) = err(&text);
        assert_eq!(p, Problem::PskMissing, "{placeholder}");
        assert!(msg.contains("<ipsec_tunnel>[2]/<ike>/<pre_shared_key>"), "{msg}");
        assert!(msg.contains("[tunnels.2] psk_file"), "{msg}");
    }
    // Only the whole value is the placeholder.
    let text = sample("lab.xml").replace("lab_tunnel2_psk.AWS2", "REDACTED2");
    assert_eq!(
        parse(&text).unwrap().tunnels[1].psk.as_ref().unwrap().expose(),
        b"REDACTED2"
    );
}
