//! The console's Generic text download: every field, the variants real files show, errors.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use cgwd::config::{ConfigError, Origin, Problem, Routing, SourceFormat, VpnConnection, parse_str};
use common::configs::{ip, parse_named, rejected_named, sample};

fn parse(text: &str) -> Result<VpnConnection, ConfigError> {
    parse_named(text, "vpn.txt")
}

fn err(text: &str) -> (Problem, String) {
    rejected_named(text, "vpn.txt")
}

#[test]
fn current_layout_every_field() {
    let c = parse(&sample("aws-generic.txt")).unwrap();
    assert_eq!(c.format, SourceFormat::GenericText);
    assert_eq!(c.id, "vpn-0c3d4e5f60718293a");
    assert_eq!(c.customer_gateway_id, "cgw-0d1c2b3a49587766e");
    assert_eq!(c.vpn_gateway_id.as_deref(), Some("vgw-0fedcba9876543210"));
    assert_eq!(
        c.routing,
        Routing::Bgp {
            customer_asn: 65000,
            aws_asn: 64512,
            hold_time: 30
        }
    );
    let t1 = &c.tunnels[0];
    assert_eq!(t1.aws_outside, ip("192.0.2.51"));
    assert_eq!(t1.customer_outside, ip("203.0.113.30"));
    assert_eq!(t1.inside.to_string(), "169.254.187.20/30");
    assert_eq!(t1.customer_inside(), Ipv4Addr::new(169, 254, 187, 22));
    assert_eq!(
        t1.psk.as_ref().unwrap().expose(),
        b"Vb7Nc3Xz9Lk5Jh1Gf6Ds2Aq8Wp4Er0Ty"
    );
    assert_eq!(t1.origin("psk"), Some(&Origin::GenericText));
    assert_eq!(t1.phase1_lifetime_secs, 28800);
    assert_eq!(t1.origin("phase1_lifetime"), Some(&Origin::GenericText));
    assert_eq!(t1.phase2_lifetime_secs, 3600);
    assert_eq!(t1.dpd_interval_secs, 10);
    assert_eq!(t1.dpd_timeout_secs, 30);
    assert_eq!(t1.tcp_mss_adjustment, Some(1379));
    assert!(t1.clear_df_bit);
    assert!(t1.fragmentation_before_encryption);
    let t2 = &c.tunnels[1];
    assert_eq!(t2.aws_outside, ip("198.51.100.61"));
    assert_eq!(t2.inside.to_string(), "169.254.91.148/30");
    assert_eq!(
        t2.psk.as_ref().unwrap().expose(),
        b"Mn4Bv8Cx2Za6Sd0Fg3Hj7Kl1Qw5Er9T."
    );
    match t1.origin("phase1.encryption") {
        Some(Origin::CgwdDefault(why)) => assert!(why.contains("Generic text"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_connection_as_the_xml() {
    let text = parse(&sample("aws-generic.txt")).unwrap();
    let xml = parse_str(&sample("aws-default.xml"), Path::new("x.xml")).unwrap();
    assert_eq!(text.id, xml.id);
    assert_eq!(text.routing, xml.routing);
    for (a, b) in text.tunnels.iter().zip(&xml.tunnels) {
        assert_eq!(a.aws_outside, b.aws_outside);
        assert_eq!(a.customer_outside, b.customer_outside);
        assert_eq!(a.inside, b.inside);
        assert_eq!(a.psk.as_ref().unwrap().expose(), b.psk.as_ref().unwrap().expose());
        assert_eq!(a.phase1, b.phase1);
        assert_eq!(a.phase2, b.phase2);
        assert_eq!(a.mtu(), b.mtu());
    }
    let lab_text = parse(&sample("lab-generic.txt")).unwrap();
    let lab_xml = parse_str(&sample("lab.xml"), Path::new("x.xml")).unwrap();
    assert_eq!(lab_text.id, lab_xml.id);
    for (a, b) in lab_text.tunnels.iter().zip(&lab_xml.tunnels) {
        assert_eq!(a.aws_outside, b.aws_outside);
        assert_eq!(a.psk.as_ref().unwrap().expose(), b.psk.as_ref().unwrap().expose());
        assert_eq!(a.inside, b.inside);
    }
    let swapped = parse(&sample("lab-swapped-generic.txt")).unwrap();
    assert_eq!(swapped.tunnels[0].aws_outside, ip("203.0.113.12"));
    assert_eq!(
        swapped.tunnels[0].psk.as_ref().unwrap().expose(),
        b"lab_tunnel2_psk.AWS2"
    );
}

#[test]
fn old_layout_variants() {
    let c = parse(&sample("generic-old-static.txt")).unwrap();
    assert_eq!(c.routing, Routing::Static);
    assert_eq!(c.vpn_gateway_id, None, "empty gateway ID = transit gateway");
    assert_eq!(c.id, "vpn-0d4e5f60718293a4b");
    // "Customer Gateway:        :" (doubled colon)
    assert_eq!(c.tunnels[0].customer_outside, ip("203.0.113.40"));
    assert_eq!(c.tunnels[0].aws_outside, ip("192.0.2.71"));
    assert_eq!(c.tunnels[1].aws_outside, ip("198.51.100.81"));
    assert_eq!(c.tunnels[1].inside.to_string(), "169.254.44.16/30");
    assert_eq!(c.tunnels[0].tcp_mss_adjustment, Some(1387));
    assert_eq!(
        c.tunnels[1].psk.as_ref().unwrap().expose(),
        b"Wx2Yz4Ab6Cd8Ef0Gh2Ij4Kl6Mn8Op0Q."
    );
    assert!(c.notes.is_empty());
}

#[test]
fn ikev1_download_is_noted_not_refused() {
    let text = sample("aws-generic.txt").replace(
        "IKE version              : IKEv2",
        "IKE version              : IKEv1",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.notes.len(), 2);
    assert!(c.notes[0].contains("downloaded for IKEv1"), "{}", c.notes[0]);
}

#[test]
fn column_widths_and_case_vary() {
    let text = sample("aws-generic.txt")
        .replace("  - Pre-Shared Key           : ", "- pre-shared key: ")
        .replace("IPSec Tunnel #", "IPsec Tunnel #")
        .replace(
            "Virtual Private  Gateway ASN          :",
            "Virtual Private Gateway ASN:",
        );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.tunnels[1].psk.as_ref().unwrap().expose(),
        b"Mn4Bv8Cx2Za6Sd0Fg3Hj7Kl1Qw5Er9T."
    );
    assert!(matches!(c.routing, Routing::Bgp { aws_asn: 64512, .. }));
}

#[test]
fn errors_name_the_line() {
    // Bad outside address.
    let text = sample("aws-generic.txt").replace(
        "Virtual Private Gateway             : 198.51.100.61",
        "Virtual Private Gateway             : 198.51.100.611",
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadAddress);
    assert!(msg.contains("line 142 (virtual private gateway)"), "{msg}");
    // Inside addresses that are not a /30 pair.
    let text = sample("aws-generic.txt").replace("169.254.187.22/30", "169.254.187.22/29");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::InsideCidr);
    assert!(msg.contains("line 73"), "{msg}");
    // PSK.
    let text = sample("aws-generic.txt").replace("Vb7Nc3Xz9Lk5Jh1Gf6Ds2Aq8Wp4Er0Ty", "Vb7Nc3Xz-Lk5Jh1G");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::Psk);
    assert!(msg.contains("line 33 (pre-shared key)"), "{msg}");
    // BGP section without ASNs.
    let text = sample("aws-generic.txt").replace("  - Customer Gateway ASN                  : 65000\n", "");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BgpAsn);
    assert!(msg.contains("IPSec Tunnel #1"), "{msg}");
    // One tunnel.
    let full = sample("aws-generic.txt");
    let cut = full.find("IPSec Tunnel #2").unwrap();
    let (p, msg) = err(&full[..cut]);
    assert_eq!(p, Problem::TunnelCount);
    assert!(msg.contains("found 1 tunnel"), "{msg}");
    // Lifetime.
    let text = sample("aws-generic.txt").replacen("28800 seconds", "forever", 1);
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::BadNumber);
    assert!(msg.contains("(lifetime)"), "{msg}");
}

#[test]
fn unrelated_text_is_rejected() {
    let e = parse(&sample("invalid/not-a-config.txt")).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
    let e = parse("").unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = parse("   \n\t").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownFormat { .. }), "{e}");
}

/// The PSK rules and the placeholder are the same in the Generic text (AWS's download in Secrets
/// Manager mode is unknown; whatever it shows, `REDACTED` is not taken as a key).
#[test]
fn redacted_or_missing_key_in_the_text() {
    let text = sample("aws-generic.txt").replace("Vb7Nc3Xz9Lk5Jh1Gf6Ds2Aq8Wp4Er0Ty", "REDACTED");
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::PskMissing);
    assert!(msg.contains("line 33 (pre-shared key)"), "{msg}");
    assert!(msg.contains("[tunnels.1] psk_file"), "{msg}");
    let text = sample("aws-generic.txt").replace(
        "  - Pre-Shared Key           : Vb7Nc3Xz9Lk5Jh1Gf6Ds2Aq8Wp4Er0Ty\n",
        "",
    );
    let (p, msg) = err(&text);
    assert_eq!(p, Problem::PskMissing);
    assert!(msg.contains("the pre-shared key is missing"), "{msg}");
}

/// The parity samples as Generic text (layout inferred, FACTS §9): the IPv6 one reads to the same
/// tunnels as its XML — IPv6 outside addresses, the inside /30s, and the "Inside IPv6 Addresses"
/// block's /128 host addresses giving the /126.
#[test]
fn ipv6_generic_text_reads_like_its_xml() {
    let text = parse(&sample("parity/sample-ipv6.txt")).unwrap();
    let xml = parse_str(
        &sample("parity/sample-ipv6.xml"),
        Path::new("configs/parity/sample-ipv6.xml"),
    )
    .unwrap();
    assert_eq!(text.format, SourceFormat::GenericText);
    assert_eq!(text.id, xml.id);
    assert_eq!(text.vpn_gateway_id, None);
    for (t, x) in text.tunnels.iter().zip(&xml.tunnels) {
        assert_eq!(t.aws_outside, x.aws_outside);
        assert_eq!(t.customer_outside, x.customer_outside);
        assert_eq!(t.inside, x.inside);
        assert_eq!(t.inside_ipv6, x.inside_ipv6);
        assert!(t.inside_ipv6.is_some());
    }
    assert_eq!(
        text.tunnels[1].inside_ipv6.unwrap().to_string(),
        "fd00:a1b2:c3d4:1::4/126"
    );
}
