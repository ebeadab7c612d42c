//! The console's "Generic / Vendor Agnostic" text download → draft (FACTS §1b.2).
//!
//! Line-oriented: `IPSec Tunnel #N` starts a tunnel, `#1:`…`#4:` start its sections, and
//! `- Label : value` lines carry the values. Tolerates `IPsec`/`IPSec`, any column widths, doubled
//! colons in labels, old files without an IKE version line (phase-1 group as "Perfect Forward
//! Secrecy" in the IKE block), and an empty gateway ID (transit gateways).

use std::path::Path;

use super::build::{At, DraftConnection, DraftTunnel};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Ike,
    Ipsec,
    Interface,
    Bgp,
    Static,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sub {
    None,
    Outside,
    Inside,
    /// "Inside IPv6 Addresses" (transit gateway IPv6-inside connections; inferred layout).
    InsideV6,
}

/// True when `text` looks like a Generic download.
pub(crate) fn looks_like(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    (lower.contains("ipsec tunnel #") || lower.contains("vpn connection id"))
        && (lower.contains("pre-shared key") || lower.contains("outside ip addresses"))
}

pub(crate) fn parse(_file: &Path, text: &str) -> DraftConnection {
    let mut d = DraftConnection {
        tunnels_at: "the whole file (no \"IPSec Tunnel #N\" headings)".into(),
        ..Default::default()
    };
    let mut section = Section::None;
    let mut sub = Sub::None;
    let mut tunnel: Option<DraftTunnel> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        let lower = line.to_ascii_lowercase();
        let at = |label: &str| format!("line {line_no} ({label})");

        if let Some(rest) = lower.strip_prefix("ipsec tunnel #") {
            if let Some(t) = tunnel.take() {
                push_tunnel(&mut d, t);
            }
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            tunnel = Some(DraftTunnel {
                at: format!("line {line_no} (IPSec Tunnel #{n})"),
                ..Default::default()
            });
            d.tunnels_at = "the \"IPSec Tunnel #N\" sections".into();
            section = Section::None;
            sub = Sub::None;
            continue;
        }
        if lower.starts_with("additional notes") {
            if let Some(t) = tunnel.take() {
                push_tunnel(&mut d, t);
            }
            section = Section::None;
            continue;
        }
        if let Some(rest) = lower.strip_prefix('#')
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            section = if lower.contains("internet key exchange") {
                Section::Ike
            } else if lower.contains("ipsec configuration") {
                Section::Ipsec
            } else if lower.contains("tunnel interface") {
                Section::Interface
            } else if lower.contains("border gateway protocol") || lower.contains("bgp") {
                if let Some(t) = tunnel.as_mut() {
                    t.bgp_seen = true;
                }
                Section::Bgp
            } else if lower.contains("static routing") {
                d.declared_static = true;
                Section::Static
            } else {
                Section::None
            };
            sub = Sub::None;
            continue;
        }
        if lower.starts_with("outside ip address") {
            sub = Sub::Outside;
            continue;
        }
        if lower.starts_with("inside ip address") {
            sub = Sub::Inside;
            continue;
        }
        if lower.starts_with("inside ipv6 address") {
            sub = Sub::InsideV6;
            continue;
        }

        // Header lines before the first tunnel: "Your VPN Connection ID : vpn-…".
        if tunnel.is_none() {
            if let Some((label, value)) = split_label(line) {
                match label.as_str() {
                    "your vpn connection id" => d.id = Some(At::new(value, at("VPN Connection ID"))),
                    "your customer gateway id" => {
                        d.customer_gateway_id = Some(At::new(value, at("Customer Gateway ID")))
                    }
                    "your virtual private gateway id" | "your vpn gateway id" => {
                        d.vpn_gateway_id = Some(value)
                    }
                    "your transit gateway id" => d.transit_gateway_id = Some(value),
                    _ => {}
                }
            }
            continue;
        }
        let Some(rest) = line.strip_prefix('-') else {
            continue;
        };
        let Some((label, value)) = split_label(rest) else {
            continue;
        };
        let Some(t) = tunnel.as_mut() else { continue };
        let v = || Some(At::new(value.clone(), at(&label)));
        match (section, label.as_str()) {
            (Section::Ike, "ike version") => t.ike_version = v(),
            (Section::Ike, "pre-shared key") => t.psk = v(),
            (Section::Ike, "authentication method") => t.auth_method = v(),
            (Section::Ike, "lifetime") => t.phase1_lifetime = v(),
            (Section::Ipsec, "lifetime") => t.phase2_lifetime = v(),
            (Section::Ipsec, "dpd interval") => t.dpd_interval = v(),
            (Section::Ipsec, "dpd retries") => t.dpd_retries = v(),
            (Section::Ipsec, "tcp mss adjustment") => t.tcp_mss = v(),
            (Section::Ipsec, "clear don't fragment bit") => t.clear_df = v(),
            (Section::Ipsec, "fragmentation") => t.fragmentation = v(),
            (Section::Interface, l) => {
                let aws_side = is_aws_label(l);
                let customer_side = l == "customer gateway";
                match sub {
                    Sub::Outside if aws_side => t.aws_outside = v(),
                    Sub::Outside if customer_side => t.customer_outside = v(),
                    // An IPv6 address under "Inside IP Addresses" is the IPv6 inside address too.
                    Sub::Inside | Sub::InsideV6
                        if (aws_side || customer_side) && (sub == Sub::InsideV6 || value.contains(':')) =>
                    {
                        let (addr, prefix) = match value.split_once('/') {
                            Some((a, p)) => (a.trim().to_string(), Some(p.trim().to_string())),
                            None => (value.clone(), None),
                        };
                        if let Some(p) = prefix
                            && (customer_side || t.inside_ipv6_prefix.is_none())
                        {
                            t.inside_ipv6_prefix = Some(At::new(p, at(&label)));
                        }
                        let a = Some(At::new(addr, at(&label)));
                        if aws_side {
                            t.aws_inside_ipv6 = a;
                        } else {
                            t.customer_inside_ipv6 = a;
                        }
                    }
                    Sub::Inside if aws_side || customer_side => {
                        let (addr, prefix) = match value.split_once('/') {
                            Some((a, p)) => (a.trim().to_string(), Some(p.trim().to_string())),
                            None => (value.clone(), None),
                        };
                        let a = Some(At::new(addr, at(&label)));
                        // The customer line's prefix wins: it is the one cgwd configures.
                        if let Some(p) = prefix
                            && (customer_side || t.inside_prefix.is_none())
                        {
                            t.inside_prefix = Some(At::new(p, at(&label)));
                        }
                        if aws_side {
                            t.aws_inside = a;
                        } else {
                            t.customer_inside = a;
                        }
                    }
                    _ => {}
                }
            }
            (Section::Bgp, "customer gateway asn") => t.customer_asn = v(),
            (Section::Bgp, l) if l.ends_with("asn") && is_aws_label(l.trim_end_matches("asn").trim()) => {
                t.aws_asn = v()
            }
            (Section::Bgp, "neighbor hold time") => t.hold_time = v(),
            _ => {}
        }
    }
    if let Some(t) = tunnel.take() {
        push_tunnel(&mut d, t);
    }
    d
}

/// Keep at most three drafts (enough to report "more than two"); count the rest.
fn push_tunnel(d: &mut DraftConnection, t: DraftTunnel) {
    if d.tunnels.len() >= 3 {
        d.extra_tunnels += 1;
    } else {
        d.tunnels.push(t);
    }
}

fn is_aws_label(l: &str) -> bool {
    matches!(
        l,
        "virtual private gateway" | "transit gateway" | "vpn gateway" | "aws"
    )
}

/// "Label   : value" → ("label", "value"): label lower-cased with runs of spaces collapsed and
/// trailing colons dropped (one old sample has "Customer Gateway:        :").
fn split_label(line: &str) -> Option<(String, String)> {
    // Split on the last " : "-style colon that is followed by the value; labels never contain a
    // colon except the doubled one, values may (IPv6), so take the first colon after which the rest
    // does not start with another colon-only run.
    let mut idx = line.find(':')?;
    loop {
        let after = &line[idx + 1..];
        let trimmed = after.trim_start();
        if let Some(rest) = trimmed.strip_prefix(':') {
            // "Customer Gateway:        : value"
            idx = line.len() - rest.len() - 1;
            continue;
        }
        break;
    }
    let label = line[..idx]
        .trim_end_matches(|c: char| c == ':' || c.is_whitespace())
        .trim();
    let value = line[idx + 1..].trim();
    if label.is_empty() {
        return None;
    }
    let label = label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    Some((label, value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalised() {
        assert_eq!(
            split_label("Pre-Shared Key           : abc"),
            Some(("pre-shared key".into(), "abc".into()))
        );
        assert_eq!(
            split_label("Customer Gateway:        : 203.0.113.40"),
            Some(("customer gateway".into(), "203.0.113.40".into()))
        );
        assert_eq!(
            split_label("Virtual Private  Gateway ASN   : 64512"),
            Some(("virtual private gateway asn".into(), "64512".into()))
        );
        assert_eq!(
            split_label("Customer Gateway : fd00::2/126"),
            Some(("customer gateway".into(), "fd00::2/126".into()))
        );
        assert_eq!(split_label(": value"), None);
        assert_eq!(split_label("no colon"), None);
        assert_eq!(split_label("a:"), Some(("a".into(), String::new())));
        assert_eq!(split_label("a: : :"), Some(("a".into(), String::new())));
    }

    #[test]
    fn detection() {
        assert!(looks_like("IPSec Tunnel #1\n - Pre-Shared Key : x"));
        assert!(looks_like(
            "Your VPN Connection ID : vpn-1\nOutside IP Addresses:"
        ));
        assert!(!looks_like("hello world"));
    }
}
