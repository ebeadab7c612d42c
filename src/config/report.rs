//! What `cgwd check` prints: a readable summary, or the same as JSON. PSKs appear only masked.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::model::*;
use super::settings::Settings;
use crate::secret::Secret;

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// "  (origin)" — or nothing when it repeats the previous note of the same tunnel, so a long
/// reason is printed once.
fn origin_note(t: &TunnelConfig, field: &str, last: &mut Option<Origin>) -> String {
    match t.origin(field) {
        Some(o) if last.as_ref() == Some(o) => String::new(),
        Some(o) => {
            *last = Some(o.clone());
            format!("  ({o})")
        }
        None => String::new(),
    }
}

/// The human summary.
pub fn text(conn: &VpnConnection, settings: &Settings) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "VPN connection {}  (read from {})", conn.id, conn.format);
    let _ = writeln!(s, "  customer gateway   {}", conn.customer_gateway_id);
    match (&conn.vpn_gateway_id, &conn.transit_gateway_id) {
        (Some(v), _) => {
            let _ = writeln!(s, "  virtual private gw {v}");
        }
        (None, Some(t)) => {
            let _ = writeln!(s, "  transit gateway    {t}");
        }
        (None, None) => {
            let _ = writeln!(s, "  gateway            transit gateway (ID not in the file)");
        }
    }
    if let Some(arn) = &conn.psk_arn {
        let _ = writeln!(
            s,
            "  PSK storage        AWS Secrets Manager ({arn}); each tunnel's PSK line says where cgwd takes its key from"
        );
    }
    if let Some(c) = &conn.certificate {
        let _ = writeln!(s, "  certificate        {}", c.subject);
        let _ = writeln!(s, "    issuer           {}", c.issuer);
        let _ = writeln!(
            s,
            "    valid            {} … {}",
            super::cert::fmt_time(c.not_before),
            super::cert::fmt_time(c.not_after)
        );
        let _ = writeln!(
            s,
            "    key              {} (private, never shown)",
            c.key.describe()
        );
        let _ = writeln!(s, "    CA chain         {} certificate(s)", c.ca.len());
        let _ = writeln!(s, "    from             {}", c.sources);
    }
    let ip = &conn.ip;
    if ip.outside_ip_address_type.is_some() || ip.tunnel_inside_ip_version.is_some() {
        let _ = writeln!(
            s,
            "  IP versions        outside {}, inside {}",
            ip.outside_ip_address_type
                .map_or("-", OutsideIpAddressType::aws_name),
            ip.tunnel_inside_ip_version.map_or("-", InsideIpVersion::aws_name),
        );
    }
    match conn.routing {
        Routing::Static => {
            let _ = writeln!(s, "  routing            static");
        }
        Routing::Bgp {
            customer_asn,
            aws_asn,
            hold_time,
        } => {
            let _ = writeln!(
                s,
                "  routing            BGP: customer ASN {customer_asn}, AWS ASN {aws_asn}, hold time {hold_time} s"
            );
            if settings.bgp.speaker == super::BgpSpeaker::External {
                let _ = writeln!(
                    s,
                    "  BGP speaker        external (bgp.speaker): your BGP daemon peers with AWS over devices {}, {}",
                    super::tunnel_device_name(&settings.interface.name, 0),
                    super::tunnel_device_name(&settings.interface.name, 1),
                );
            } else if settings.bgp.speaker != super::BgpSpeaker::Off
                && settings.routing.onprem_cidrs.is_empty()
            {
                let _ = writeln!(
                    s,
                    "  BGP announces      nothing: set routing.onprem_cidrs, or AWS has no route back to on-prem"
                );
            } else if settings.bgp.speaker == super::BgpSpeaker::Off {
                let _ = writeln!(
                    s,
                    "  BGP speaker        off (bgp.speaker): AWS learns no on-prem prefix"
                );
            } else {
                let (n, max) = (
                    settings.routing.onprem_cidrs.len(),
                    super::bgp_announced_max(settings),
                );
                let _ = writeln!(
                    s,
                    "  BGP announces      {n} prefix{} on each tunnel{}; AWS accepts {}",
                    if n == 1 { "" } else { "es" },
                    if max > n {
                        format!(" ({max} with fast-failover halves)")
                    } else {
                        String::new()
                    },
                    super::bgp_prefix_limit(conn)
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "  interface          {} MTU {}{}",
        settings.interface.name,
        settings.interface_mtu(conn),
        if settings.interface.mtu.is_some() {
            "  (from cgwd settings)"
        } else {
            "  (derived: smallest over the phase-2 suites offered, ESP in UDP)"
        }
    );
    let _ = writeln!(
        s,
        "  local address      {}",
        settings.local.address.map_or(
            "auto (customer outside address if local, else the kernel's source toward AWS; followed while running)".to_string(),
            |a| a.to_string()
        )
    );
    let _ = writeln!(s, "  failover policy    {}", settings.failover.policy.name());
    if !settings.checks_inbound_sources() {
        let why = if settings.routing.reverse_path_check {
            "cgwd does not know the routes of your BGP daemon (bgp.speaker = external)"
        } else {
            "routing.reverse_path_check = false"
        };
        let _ = writeln!(
            s,
            "  source check       off ({why}): any inner source the tunnel's selectors allow is accepted"
        );
    }
    if settings.lab.allow_short_lifetimes {
        let _ = writeln!(
            s,
            "  LAB MODE           lab.allow_short_lifetimes: lifetimes below AWS's minimums accepted \
             (tests against a local IKE peer only; AWS refuses them)"
        );
    }
    if settings.lab.no_pfs {
        let _ = writeln!(
            s,
            "  LAB MODE           lab.no_pfs: Child SAs without PFS (a local IKE peer only; AWS \
             requires PFS)"
        );
    }
    if !settings.routing.vpc_cidrs.is_empty() {
        let _ = writeln!(s, "  VPC CIDRs          {}", list(&settings.routing.vpc_cidrs));
    }
    if !settings.routing.onprem_cidrs.is_empty() {
        let _ = writeln!(s, "  on-prem CIDRs      {}", list(&settings.routing.onprem_cidrs));
    }

    for t in &conn.tunnels {
        let mut last = None;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Tunnel {}  AWS {} <- customer {}",
            t.id.number(),
            t.aws_outside,
            t.customer_outside
        );
        let _ = writeln!(
            s,
            "  inside             {}  AWS {}  customer {}",
            t.inside,
            t.aws_inside(),
            t.customer_inside()
        );
        if let Some(v6) = t.inside_ipv6 {
            let _ = writeln!(
                s,
                "  inside IPv6        {v6}  AWS {}  customer {}{}",
                t.aws_inside_ipv6().map_or(String::new(), |a| a.to_string()),
                t.customer_inside_ipv6().map_or(String::new(), |a| a.to_string()),
                if t.is_inside_ipv6() {
                    format!(
                        " (on the device as {}/{}; the tunnel carries IPv6 only)",
                        t.customer_inside_ipv6().map_or(String::new(), |a| a.to_string()),
                        v6.prefix_len()
                    )
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            s,
            "  PSK                {}{}",
            t.psk
                .as_ref()
                .map_or_else(|| "none: the certificate of [auth]".to_string(), Secret::masked),
            origin_note(t, "psk", &mut last)
        );
        let _ = writeln!(
            s,
            "  IKE                IKEv2 (tunnel allows {}){}",
            t.ike_versions
                .iter()
                .map(|v| v.aws_name())
                .collect::<Vec<_>>()
                .join(", "),
            origin_note(t, "ike_versions", &mut last)
        );
        let _ = writeln!(
            s,
            "  phase 1 offer      encryption {}{}",
            list(&t.phase1.encryption),
            origin_note(t, "phase1.encryption", &mut last)
        );
        let _ = writeln!(
            s,
            "                     integrity/PRF {}{}",
            list(&t.phase1.integrity),
            origin_note(t, "phase1.integrity", &mut last)
        );
        let _ = writeln!(
            s,
            "                     DH groups {}{}",
            list(&t.phase1.dh_groups),
            origin_note(t, "phase1.dh_groups", &mut last)
        );
        let _ = writeln!(
            s,
            "  phase 2 offer      encryption {}{}",
            list(&t.phase2.encryption),
            origin_note(t, "phase2.encryption", &mut last)
        );
        if t.phase2.encryption.iter().any(|e| !e.is_aead()) {
            let _ = writeln!(
                s,
                "                     integrity {}{}",
                list(&t.phase2.integrity),
                origin_note(t, "phase2.integrity", &mut last)
            );
        }
        let _ = writeln!(
            s,
            "                     PFS groups {}{}",
            if t.phase2.pfs_groups.is_empty() {
                "none (lab.no_pfs)".to_string()
            } else {
                list(&t.phase2.pfs_groups)
            },
            origin_note(t, "phase2.pfs_groups", &mut last)
        );
        let w2 = t.rekey_window(Phase::Two);
        let _ = writeln!(
            s,
            "  lifetimes          IKE {} s, Child {} s; AWS rekeys in the last {} s (fuzz {}%); cgwd rekeys Child SAs at {}-{} s",
            t.phase1_lifetime_secs,
            t.phase2_lifetime_secs,
            t.rekey_margin_secs,
            t.rekey_fuzz_percent,
            w2.earliest.as_secs(),
            w2.latest.as_secs()
        );
        let _ = writeln!(s, "  replay window      {} packets", t.replay_window);
        let _ = writeln!(
            s,
            "  DPD                every {} s{}; AWS times out after {} s and then does `{}`",
            t.dpd_interval_secs,
            origin_note(t, "dpd_interval", &mut last),
            t.dpd_timeout_secs,
            t.dpd_action.aws_name()
        );
        let _ = writeln!(
            s,
            "  startup            {} ({})",
            t.startup_action.aws_name(),
            match t.startup_action {
                StartupAction::Add => "AWS waits; cgwd initiates",
                StartupAction::Start => "AWS initiates too",
            }
        );
        match t.ts_v6 {
            Some((local, remote)) => {
                let _ = writeln!(
                    s,
                    "  traffic selectors  local {local} <-> AWS {remote} (IPv6: LocalIpv6NetworkCidr, RemoteIpv6NetworkCidr)"
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  traffic selectors  local {} <-> AWS {}",
                    t.local_ts, t.remote_ts
                );
            }
        }
        let _ = writeln!(
            s,
            "  MTU / MSS          {} / {} (IPv6 MSS {}); AWS suggests MSS {}; clear DF {}, fragment before encryption {}",
            t.mtu(),
            t.mss(),
            t.mss_ipv6(),
            t.tcp_mss_adjustment.map_or("-".into(), |m| m.to_string()),
            t.clear_df_bit,
            t.fragmentation_before_encryption
        );
        let next_hop = t
            .aws_inside_ipv6()
            .filter(|_| t.is_inside_ipv6())
            .map_or(t.aws_inside().to_string(), |a| a.to_string());
        match conn.routing {
            Routing::Bgp { .. } => {
                let _ = writeln!(s, "  BGP neighbor       {next_hop}");
            }
            Routing::Static => {
                let _ = writeln!(s, "  static next hop    {next_hop}");
            }
        }
    }
    if !conn.notes.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "Notes:");
        for n in &conn.notes {
            let _ = writeln!(s, "  - {n}");
        }
    }
    s
}

fn provenance_json(t: &TunnelConfig) -> Value {
    let mut m = serde_json::Map::new();
    for (k, o) in &t.provenance {
        m.insert((*k).to_string(), serde_json::to_value(o).unwrap_or(Value::Null));
    }
    Value::Object(m)
}

fn tunnel_json(t: &TunnelConfig, routing: Routing) -> Value {
    let w1 = t.rekey_window(Phase::One);
    let w2 = t.rekey_window(Phase::Two);
    json!({
        "tunnel": t.id.number(),
        "aws_outside": t.aws_outside,
        "customer_outside": t.customer_outside,
        "inside_cidr": t.inside.to_string(),
        "aws_inside": t.aws_inside(),
        "customer_inside": t.customer_inside(),
        "inside_ipv6_cidr": t.inside_ipv6.map(|n| n.to_string()),
        "aws_inside_ipv6": t.aws_inside_ipv6(),
        "customer_inside_ipv6": t.customer_inside_ipv6(),
        "psk": t.psk.as_ref().map(Secret::masked),
        "certificate_arn": t.certificate_arn,
        "ike_versions": t.ike_versions,
        "phase1": {
            "encryption": t.phase1.encryption.iter().map(|e| e.aws_name()).collect::<Vec<_>>(),
            "integrity": t.phase1.integrity.iter().map(|i| i.aws_name()).collect::<Vec<_>>(),
            "dh_groups": t.phase1.dh_groups.iter().map(|g| g.number()).collect::<Vec<_>>(),
        },
        "phase2": {
            "encryption": t.phase2.encryption.iter().map(|e| e.aws_name()).collect::<Vec<_>>(),
            "integrity": t.phase2.integrity.iter().map(|i| i.aws_name()).collect::<Vec<_>>(),
            "pfs_groups": t.phase2.pfs_groups.iter().map(|g| g.number()).collect::<Vec<_>>(),
        },
        "phase1_lifetime": t.phase1_lifetime_secs,
        "phase2_lifetime": t.phase2_lifetime_secs,
        "rekey_margin": t.rekey_margin_secs,
        "rekey_fuzz": t.rekey_fuzz_percent,
        "rekey_window_phase1": [w1.earliest.as_secs(), w1.latest.as_secs()],
        "rekey_window_phase2": [w2.earliest.as_secs(), w2.latest.as_secs()],
        "replay_window": t.replay_window,
        "dpd_interval": t.dpd_interval_secs,
        "dpd_timeout": t.dpd_timeout_secs,
        "dpd_action": t.dpd_action,
        "startup_action": t.startup_action,
        "local_ts": t.ts_v6.map_or(t.local_ts.to_string(), |(l, _)| l.to_string()),
        "remote_ts": t.ts_v6.map_or(t.remote_ts.to_string(), |(_, r)| r.to_string()),
        "tcp_mss_adjustment": t.tcp_mss_adjustment,
        "clear_df_bit": t.clear_df_bit,
        "fragmentation_before_encryption": t.fragmentation_before_encryption,
        "mtu": t.mtu(),
        "mss": t.mss(),
        "mss_ipv6": t.mss_ipv6(),
        "next_hop": t
            .aws_inside_ipv6()
            .filter(|_| t.is_inside_ipv6())
            .map_or(std::net::IpAddr::V4(t.aws_inside()), std::net::IpAddr::V6),
        "routing": routing,
        "provenance": provenance_json(t),
    })
}

/// The same as [`text`], as JSON.
pub fn json(conn: &VpnConnection, settings: &Settings) -> Value {
    json!({
        "valid": true,
        "format": conn.format,
        "vpn_connection_id": conn.id,
        "customer_gateway_id": conn.customer_gateway_id,
        "vpn_gateway_id": conn.vpn_gateway_id,
        "transit_gateway_id": conn.transit_gateway_id,
        "routing": conn.routing,
        "pre_shared_key_arn": conn.psk_arn,
        "certificate": conn.certificate.as_ref().map(|c| json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "not_before": super::cert::fmt_time(c.not_before),
            "not_after": super::cert::fmt_time(c.not_after),
            "key": c.key.describe(),
            "ca_certificates": c.ca.len(),
            "sources": c.sources,
        })),
        "outside_ip_address_type": conn.ip.outside_ip_address_type,
        "tunnel_inside_ip_version": conn.ip.tunnel_inside_ip_version,
        "local_ipv6_network_cidr": conn.ip.local_ipv6_network_cidr.map(|n| n.to_string()),
        "remote_ipv6_network_cidr": conn.ip.remote_ipv6_network_cidr.map(|n| n.to_string()),
        "interface": {
            "name": settings.interface.name,
            "mtu": settings.interface_mtu(conn),
            "mtu_from": if settings.interface.mtu.is_some() { "settings" } else { "derived" },
        },
        "local": {
            "address": settings.local.address.map_or("auto".to_string(), |a| a.to_string()),
            "id": settings.local.id.map_or_else(|| conn.tunnels[0].customer_outside.to_string(), |a| a.to_string()),
        },
        "settings": settings,
        "lab_mode": settings.lab.allow_short_lifetimes || settings.lab.no_pfs,
        "tunnels": conn.tunnels.iter().map(|t| tunnel_json(t, conn.routing)).collect::<Vec<_>>(),
        "notes": conn.notes,
    })
}
