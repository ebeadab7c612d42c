//! Derived values (inside addresses, MTU/MSS, rekey times), offer ordering, local address lookup,
//! and the `check` report.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use cgwd::config::{
    Phase, Settings, VpnConnection, mss_for_mtu, mtu_for, parse_str, report, resolve_local_address,
};
use cgwd::suite::{DhGroup, Encryption, Integrity};
use common::configs::sample;

fn lab() -> VpnConnection {
    parse_str(&sample("lab.describe.json"), Path::new("lab.describe.json")).unwrap()
}

/// AWS's MTU table, NAT-T rows (FACTS §2.10 / UG-CGW): cgwd always encapsulates ESP in UDP.
#[test]
fn mtu_table_nat_t_rows() {
    assert_eq!(mtu_for(Encryption::Aes256Gcm16, None), 1438);
    assert_eq!(mtu_for(Encryption::Aes128Gcm16, None), 1438);
    assert_eq!(mtu_for(Encryption::Aes128Cbc, Some(Integrity::Sha1)), 1422);
    assert_eq!(mtu_for(Encryption::Aes256Cbc, Some(Integrity::Sha2_256)), 1422);
    assert_eq!(mtu_for(Encryption::Aes256Cbc, Some(Integrity::Sha2_384)), 1422);
    assert_eq!(mtu_for(Encryption::Aes256Cbc, Some(Integrity::Sha2_512)), 1406);
    // MSS IPv4 column of the same rows.
    assert_eq!(mss_for_mtu(1438), 1398);
    assert_eq!(mss_for_mtu(1422), 1382);
    assert_eq!(mss_for_mtu(1406), 1366);
}

#[test]
fn tunnel_mtu_is_worst_case_over_the_phase2_offer() {
    let mut c = lab();
    let t = &mut c.tunnels[0];
    // The lab's options allow everything; cgwd offers only AES-GCM (the strongest tier).
    assert_eq!(t.mtu(), 1438);
    t.phase2.encryption = vec![Encryption::Aes256Cbc];
    assert_eq!(t.mtu(), 1406); // AES-CBC + SHA2-512 offered
    assert_eq!(t.mss(), 1366);
    assert_eq!(t.mss_ipv6(), 1346);
    t.phase2.integrity = vec![Integrity::Sha2_384, Integrity::Sha2_256];
    assert_eq!(t.mtu(), 1422);
    t.phase2.encryption = vec![Encryption::Aes256Gcm16, Encryption::Aes128Gcm16];
    assert_eq!(t.mtu(), 1438);
    assert_eq!(t.mss(), 1398);
    assert_eq!(t.mss_ipv6(), 1378);
    c.tunnels[1].phase2.encryption = vec![Encryption::Aes128Cbc];
    assert_eq!(c.mtu(), 1406, "connection MTU fits both tunnels");
    c.tunnels[1].phase2.encryption = vec![Encryption::Aes256Gcm16];
    assert_eq!(c.mtu(), 1438);
}

#[test]
fn inside_addresses() {
    let c = lab();
    let t1 = &c.tunnels[0];
    assert_eq!(t1.inside.to_string(), "169.254.10.4/30");
    assert_eq!(t1.aws_inside(), Ipv4Addr::new(169, 254, 10, 5));
    assert_eq!(t1.customer_inside(), Ipv4Addr::new(169, 254, 10, 6));
    let t2 = &c.tunnels[1];
    assert_eq!(t2.aws_inside(), Ipv4Addr::new(169, 254, 20, 9));
    assert_eq!(t2.customer_inside(), Ipv4Addr::new(169, 254, 20, 10));
    assert_eq!(t1.aws_inside_ipv6(), None);
    let any = t1.local_traffic_selector();
    assert_eq!(any, cgwd::sa::TrafficSelector::ANY);
    assert_eq!(t1.remote_traffic_selector(), cgwd::sa::TrafficSelector::ANY);
}

#[test]
fn rekey_window_opens_before_aws() {
    let mut c = lab();
    let t = &mut c.tunnels[0];
    t.phase2_lifetime_secs = 3600;
    t.rekey_margin_secs = 270;
    t.rekey_fuzz_percent = 100;
    let w = t.rekey_window(Phase::Two);
    // AWS's own window opens at 3600 − 270 = 3330 s; cgwd's ends there and spans the margin before it.
    assert_eq!(w.latest, Duration::from_secs(3330));
    assert_eq!(w.earliest, Duration::from_secs(3060));
    assert_eq!(t.rekey_time(Phase::Two, 0), w.earliest);
    assert_eq!(t.rekey_time(Phase::Two, 1000), w.latest);
    assert_eq!(t.rekey_time(Phase::Two, 5000), w.latest, "clamped");
    assert_eq!(t.rekey_time(Phase::Two, 500), Duration::from_secs(3195));
    t.rekey_fuzz_percent = 0;
    let w = t.rekey_window(Phase::Two);
    assert_eq!(w.earliest, w.latest);
    // Phase 1 uses the same margin.
    let w1 = t.rekey_window(Phase::One);
    assert_eq!(w1.latest, Duration::from_secs(28800 - 270));
    // A margin of half the lifetime (the most AWS allows) never rekeys before half the lifetime.
    t.phase2_lifetime_secs = 900;
    t.rekey_margin_secs = 450;
    t.rekey_fuzz_percent = 100;
    let w = t.rekey_window(Phase::Two);
    assert_eq!(w.latest, Duration::from_secs(450));
    assert_eq!(w.earliest, Duration::from_secs(450));
    assert_eq!(t.lifetime(Phase::Two), Duration::from_secs(900));
    assert_eq!(t.dpd_interval(), Duration::from_secs(10));
    assert_eq!(t.dpd_timeout(), Duration::from_secs(30));
}

#[test]
fn dh_preference_order() {
    let mut all = DhGroup::ALL.to_vec();
    cgwd::config::strongest_first(&mut all, DhGroup::strength);
    assert_eq!(
        all.iter().map(|g| g.number()).collect::<Vec<_>>(),
        [21, 20, 18, 19, 17, 16, 15, 14, 24, 23, 5, 2, 22]
    );
}

#[test]
fn local_address_resolution() {
    let mut c = lab();
    let t = &mut c.tunnels[0];
    // Explicit setting wins.
    let mut s = Settings::default();
    s.local.address = Some("192.0.2.77".parse().unwrap());
    assert_eq!(resolve_local_address(&s, t).unwrap().to_string(), "192.0.2.77");
    // Customer address configured on this host: use it.
    let s = Settings::default();
    t.customer_outside = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        resolve_local_address(&s, t).unwrap(),
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    // Not local (behind NAT): the kernel's source toward AWS. Loopback keeps this on the host;
    // connecting a UDP socket sends nothing.
    t.customer_outside = "192.0.2.10".parse().unwrap();
    t.aws_outside = "127.0.0.2".parse().unwrap();
    let got = resolve_local_address(&s, t).unwrap();
    assert!(got.is_loopback(), "{got}");
}

#[test]
fn report_says_when_the_inbound_source_check_is_off() {
    let c = lab();
    let mut s = Settings::default();
    assert!(!report::text(&c, &s).contains("source check"));
    s.bgp.speaker = cgwd::config::BgpSpeaker::External;
    let text = report::text(&c, &s);
    assert!(
        text.contains("source check       off (cgwd does not know the routes"),
        "{text}"
    );
    s.bgp.speaker = cgwd::config::BgpSpeaker::Builtin;
    s.routing.reverse_path_check = false;
    let text = report::text(&c, &s);
    assert!(
        text.contains("source check       off (routing.reverse_path_check = false)"),
        "{text}"
    );
    assert_eq!(
        report::json(&c, &s)["settings"]["routing"]["reverse_path_check"],
        false
    );
}

#[test]
fn report_text_and_json_show_both_tunnels_and_hide_psks() {
    let c = lab();
    let s = Settings::default();
    let text = report::text(&c, &s);
    assert!(text.contains("Tunnel 1  AWS 198.51.100.11"), "{text}");
    assert!(text.contains("Tunnel 2  AWS 203.0.113.12"), "{text}");
    assert!(text.contains("169.254.10.4/30"));
    assert!(text.contains("MTU / MSS          1438 / 1398"), "{text}");
    assert!(text.contains("PSK                ******** (set)"), "{text}");
    assert!(!text.contains("chars)"), "PSK length shown: {text}");
    assert!(!text.contains("lab_tunnel1_psk"), "PSK leaked: {text}");
    assert!(text.contains("BGP neighbor       169.254.10.5"));

    let xml = parse_str(&sample("lab.xml"), Path::new("lab.xml")).unwrap();
    let text = report::text(&xml, &s);
    assert!(
        text.contains("chosen by cgwd because the XML carries no IKEv2 algorithms"),
        "{text}"
    );
    assert!(text.contains("auto"), "{text}");

    let j = report::json(&c, &s);
    let js = j.to_string();
    assert!(
        !js.contains("lab_tunnel1_psk") && !js.contains("lab_tunnel2_psk"),
        "PSK leaked"
    );
    assert_eq!(j["valid"], true);
    assert_eq!(j["tunnels"].as_array().unwrap().len(), 2);
    assert_eq!(j["tunnels"][0]["aws_outside"], "198.51.100.11");
    assert_eq!(j["tunnels"][1]["customer_inside"], "169.254.20.10");
    assert_eq!(j["tunnels"][0]["mtu"], 1438);
    assert_eq!(j["tunnels"][0]["phase1"]["dh_groups"][0], 21);
    assert_eq!(j["tunnels"][0]["provenance"]["psk"]["from"], "tunnel-options");
    assert_eq!(j["routing"]["type"], "bgp");
    assert_eq!(j["local"]["address"], "auto");
    assert_eq!(j["interface"]["mtu"], 1438);
    assert_eq!(j["settings"]["failover"]["policy"], "prefer-tunnel-1");
}
