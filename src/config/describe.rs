//! `aws ec2 describe-vpn-connections` JSON → draft (FACTS §1a.7, §1c).
//!
//! The embedded XML gives addresses and PSKs; `Options.TunnelOptions[]` gives the real policy. Keys
//! are matched case-insensitively so both describe-output casing (`DpdTimeoutSeconds`,
//! `IkeVersions`) and request casing (`DPDTimeoutSeconds`, `IKEVersions`) work.

use std::path::Path;

use serde_json::{Map, Value};

use super::build::{At, DraftConnection, DraftOptions};
use super::error::{ConfigError, Problem};
use super::xml;

pub(crate) fn parse(file: &Path, text: &str) -> Result<DraftConnection, ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_path_buf(),
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let invalid =
        |kind, at: &str, problem: String, fix: &str| ConfigError::invalid(file, kind, at, problem, fix);
    let Some(obj) = root.as_object() else {
        return Err(ConfigError::UnknownFormat {
            file: file.to_path_buf(),
            why: "the JSON is not an object".into(),
        });
    };
    let (conn, path) = if let Some(list) = get(obj, "VpnConnections") {
        let list = list.as_array().ok_or_else(|| {
            invalid(
                Problem::MissingField,
                "VpnConnections",
                "VpnConnections is not a list".into(),
                "use the unedited `aws ec2 describe-vpn-connections` output",
            )
        })?;
        if list.len() != 1 {
            return Err(invalid(
                Problem::TunnelCount,
                "VpnConnections",
                format!(
                    "VpnConnections holds {} connections; cgwd runs exactly one",
                    list.len()
                ),
                "describe just one: `aws ec2 describe-vpn-connections --vpn-connection-ids vpn-…`",
            ));
        }
        let conn = list[0].as_object().ok_or_else(|| {
            invalid(
                Problem::MissingField,
                "VpnConnections[0]",
                "VpnConnections[0] is not an object".into(),
                "use the unedited describe output",
            )
        })?;
        (conn, "VpnConnections[0]".to_string())
    } else if get(obj, "CustomerGatewayConfiguration").is_some() || get(obj, "VpnConnectionId").is_some() {
        (obj, String::new())
    } else {
        return Err(ConfigError::UnknownFormat {
            file: file.to_path_buf(),
            why: "JSON without VpnConnections or VpnConnectionId".into(),
        });
    };
    let p = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };

    let xml_path = p("CustomerGatewayConfiguration");
    let xml_text = get(conn, "CustomerGatewayConfiguration")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                Problem::MissingField,
                &xml_path,
                "CustomerGatewayConfiguration is missing (AWS includes it only while the \
                 connection is pending or available)"
                    .into(),
                "describe the connection while it is available, or pass the XML it was created with",
            )
        })?;
    let mut d = xml::parse(file, xml_text, &xml_path)?;

    if let Some(v) = get(conn, "VpnConnectionId").and_then(scalar) {
        d.id = Some(At::new(v, p("VpnConnectionId")));
    }
    if let Some(v) = get(conn, "CustomerGatewayId").and_then(scalar) {
        d.customer_gateway_id = Some(At::new(v, p("CustomerGatewayId")));
    }
    if let Some(v) = get(conn, "VpnGatewayId").and_then(scalar) {
        d.vpn_gateway_id = Some(v);
    }
    d.transit_gateway_id = get(conn, "TransitGatewayId").and_then(scalar);
    d.psk_arn = get_entry(conn, "PreSharedKeyArn")
        .and_then(|(k, v)| scalar(v).map(|v| At::new(v, p(k))))
        .filter(|a| !a.value.trim().is_empty());
    if let Some((key, Value::Array(list))) = get_entry(conn, "VgwTelemetry") {
        for (i, entry) in list.iter().enumerate() {
            let Some(e) = entry.as_object() else { continue };
            let at = format!("{}[{i}]", p(key));
            let field = |key: &str| {
                get_entry(e, key)
                    .and_then(|(k, v)| scalar(v).map(|v| At::new(v, format!("{at}.{k}"))))
                    .filter(|a| !a.value.trim().is_empty())
            };
            if let (Some(outside), Some(arn)) = (field("OutsideIpAddress"), field("CertificateArn")) {
                d.certificates.push((outside, arn));
            }
        }
    }

    let opts_path = p("Options");
    let options = get(conn, "Options").and_then(Value::as_object);
    if let Some(o) = options {
        d.static_routes_only = get(o, "StaticRoutesOnly").and_then(Value::as_bool);
        d.local_ts = get(o, "LocalIpv4NetworkCidr")
            .and_then(scalar)
            .map(|v| At::new(v, format!("{opts_path}.LocalIpv4NetworkCidr")));
        d.remote_ts = get(o, "RemoteIpv4NetworkCidr")
            .and_then(scalar)
            .map(|v| At::new(v, format!("{opts_path}.RemoteIpv4NetworkCidr")));
        let opt = |key: &str| {
            get_entry(o, key).and_then(|(k, v)| scalar(v).map(|v| At::new(v, format!("{opts_path}.{k}"))))
        };
        d.outside_ip_type = opt("OutsideIpAddressType");
        d.inside_ip_version = opt("TunnelInsideIpVersion");
        d.local_ipv6_ts = opt("LocalIpv6NetworkCidr");
        d.remote_ipv6_ts = opt("RemoteIpv6NetworkCidr");
        if let Some(list) = get(o, "TunnelOptions") {
            let list_path = format!("{opts_path}.TunnelOptions");
            let list = list.as_array().ok_or_else(|| {
                invalid(
                    Problem::MissingField,
                    &list_path,
                    "TunnelOptions is not a list".into(),
                    "use the unedited describe output",
                )
            })?;
            let mut drafts = Vec::with_capacity(list.len());
            for (i, entry) in list.iter().enumerate() {
                let at = format!("{list_path}[{i}]");
                let e = entry.as_object().ok_or_else(|| {
                    invalid(
                        Problem::MissingField,
                        &at,
                        "TunnelOptions entry is not an object".into(),
                        "use the unedited describe output",
                    )
                })?;
                drafts.push(tunnel_options(e, &at));
            }
            d.options = Some((drafts, list_path));
        }
    }
    Ok(d)
}

fn tunnel_options(e: &Map<String, Value>, at: &str) -> DraftOptions {
    let s =
        |key: &str| get_entry(e, key).and_then(|(k, v)| scalar(v).map(|v| At::new(v, format!("{at}.{k}"))));
    let l = |key: &str| {
        get_entry(e, key).map(|(k, v)| {
            let path = format!("{at}.{k}");
            let items = match v {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| match item {
                        Value::Object(o) => get_entry(o, "Value")
                            .and_then(|(vk, v)| scalar(v).map(|s| At::new(s, format!("{path}[{i}].{vk}")))),
                        other => scalar(other).map(|s| At::new(s, format!("{path}[{i}]"))),
                    })
                    .collect(),
                other => scalar(other)
                    .map(|s| vec![At::new(s, path.clone())])
                    .unwrap_or_default(),
            };
            (items, path)
        })
    };
    DraftOptions {
        at: at.to_string(),
        outside: s("OutsideIpAddress"),
        inside_cidr: s("TunnelInsideCidr"),
        inside_ipv6_cidr: s("TunnelInsideIpv6Cidr"),
        psk: s("PreSharedKey"),
        phase1_lifetime: s("Phase1LifetimeSeconds"),
        phase2_lifetime: s("Phase2LifetimeSeconds"),
        rekey_margin: s("RekeyMarginTimeSeconds"),
        rekey_fuzz: s("RekeyFuzzPercentage"),
        replay_window: s("ReplayWindowSize"),
        dpd_timeout: s("DpdTimeoutSeconds"),
        dpd_action: s("DpdTimeoutAction"),
        startup_action: s("StartupAction"),
        ike_versions: l("IkeVersions"),
        phase1_encryption: l("Phase1EncryptionAlgorithms"),
        phase2_encryption: l("Phase2EncryptionAlgorithms"),
        phase1_integrity: l("Phase1IntegrityAlgorithms"),
        phase2_integrity: l("Phase2IntegrityAlgorithms"),
        phase1_dh: l("Phase1DHGroupNumbers"),
        phase2_dh: l("Phase2DHGroupNumbers"),
    }
}

/// Case-insensitive key lookup: AWS's request and response casings differ (`IKEVersions` vs
/// `IkeVersions`).
fn get_entry<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<(&'a str, &'a Value)> {
    obj.get_key_value(key)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(k, v)| (k.as_str(), v))
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    get_entry(obj, key).map(|(_, v)| v)
}

/// Strings and numbers as text; anything else is "not there".
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
