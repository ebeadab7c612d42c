//! AWS configuration (XML, describe JSON, Generic text) and cgwd settings → one validated model.
//!
//! ```text
//!  file ──detect──► xml / describe / generic ──► draft (text + location) ──build──► VpnConnection
//!  settings TOML + CGWD_* env ──────────────────────────────────────────────────► Settings
//! ```
//!
//! The format is recognised from the content, never the file name. Every parser fills the same
//! draft so every rule is checked once ([`build`]). Errors name file, place, problem and fix.

mod build;
mod describe;
mod error;
mod generic;
mod model;
pub mod report;
mod settings;
mod xml;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

pub use error::{ConfigError, Problem};
pub use model::{
    DpdAction, IkeVersion, Origin, Phase, Phase1Offer, Phase2Offer, Provenance, RekeyWindow, Routing,
    SourceFormat, StartupAction, TunnelConfig, VpnConnection, defaults, mss_for_mtu, mtu_for,
    strongest_first,
};
pub use settings::{
    AwsSettings, ControlSettings, DEFAULT_HEALTH_INTERVAL, DpdSettings, FailoverPolicy, FailoverSettings,
    HealthFormat, HealthLog, InterfaceSettings, LAB_MIN_PHASE1_LIFETIME, LAB_MIN_PHASE2_LIFETIME,
    LabSettings, LocalSettings, LogSettings, MetricsSettings, RoutingSettings, Settings, env_var_name,
};

/// Largest configuration file cgwd reads; real ones are a few tens of KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Which ranges the AWS file's numbers are checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `lab.allow_short_lifetimes`: lifetimes and rekey margins below AWS's minimums are accepted.
    pub short_lifetimes: bool,
}

impl Limits {
    pub fn of(settings: &Settings) -> Limits {
        Limits {
            short_lifetimes: settings.lab.allow_short_lifetimes,
        }
    }
}

/// Read and validate the AWS configuration and the settings, and apply settings that refine the
/// connection (the `dpd.interval` override). What the daemon calls at start.
pub fn load(
    config_path: &Path,
    settings_path: Option<&Path>,
) -> Result<(VpnConnection, Settings), ConfigError> {
    // The settings decide the limits, but an error in the AWS file is still reported first.
    let settings = Settings::load(settings_path, &|k| std::env::var(k).ok());
    let limits = settings.as_ref().map(Limits::of).unwrap_or_default();
    let mut conn = load_connection_with(config_path, limits)?;
    let settings = settings?;
    if limits.short_lifetimes {
        tracing::warn!(
            "lab.allow_short_lifetimes is set: lifetimes below AWS's minimums are accepted; \
             for tests against a local IKE peer only, never against AWS"
        );
    }
    if settings.lab.no_pfs {
        tracing::warn!(
            "lab.no_pfs is set: Child SAs are rekeyed without PFS, which AWS refuses; for tests \
             against a local IKE peer only"
        );
    }
    apply_settings(&mut conn, &settings);
    Ok((conn, settings))
}

/// Read and validate only the AWS configuration file (AWS's limits).
pub fn load_connection(path: &Path) -> Result<VpnConnection, ConfigError> {
    load_connection_with(path, Limits::default())
}

/// [`load_connection`] with the given limits.
pub fn load_connection_with(path: &Path, limits: Limits) -> Result<VpnConnection, ConfigError> {
    let io = |source| ConfigError::Io {
        file: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::UnknownFormat {
            file: path.to_path_buf(),
            why: format!("{} bytes is far larger than any AWS download", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::UnknownFormat {
        file: path.to_path_buf(),
        why: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse_str_with(&text, path, limits)
}

/// Parse configuration text of any of the three formats; `file` only names it in errors. Never
/// panics (fuzzed).
pub fn parse_str(text: &str, file: &Path) -> Result<VpnConnection, ConfigError> {
    parse_str_with(text, file, Limits::default())
}

/// [`parse_str`] with the given limits.
pub fn parse_str_with(text: &str, file: &Path, limits: Limits) -> Result<VpnConnection, ConfigError> {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let (format, draft) = if body.starts_with('<') {
        (SourceFormat::Xml, xml::parse(file, body, "")?)
    } else if body.starts_with('{') || body.starts_with('[') {
        (SourceFormat::DescribeJson, describe::parse(file, body)?)
    } else if generic::looks_like(body) {
        (SourceFormat::GenericText, generic::parse(file, body))
    } else {
        return Err(ConfigError::UnknownFormat {
            file: file.to_path_buf(),
            why: if body.is_empty() {
                "the file is empty".into()
            } else {
                "neither XML, JSON nor the Generic text layout".into()
            },
        });
    };
    build::Builder { file, format, limits }.build(draft)
}

/// Apply the settings that refine the connection itself.
pub fn apply_settings(conn: &mut VpnConnection, settings: &Settings) {
    if let Some(interval) = settings.dpd.interval {
        for t in &mut conn.tunnels {
            t.dpd_interval_secs = interval;
            t.provenance.insert("dpd_interval", Origin::Settings);
        }
    }
    if settings.lab.no_pfs {
        for t in &mut conn.tunnels {
            t.phase2.pfs_groups.clear();
            t.provenance.insert("phase2.pfs_groups", Origin::Settings);
        }
    }
}

/// The address cgwd sends IKE/ESP from for `tunnel`: `local.address` if set; else the customer
/// outside address if it is configured on this host (no NAT); else the source address the kernel
/// picks toward the AWS endpoint (behind NAT). Connecting a UDP socket sends nothing.
pub fn resolve_local_address(settings: &Settings, tunnel: &TunnelConfig) -> std::io::Result<IpAddr> {
    if let Some(addr) = settings.local.address {
        return Ok(addr);
    }
    if UdpSocket::bind(SocketAddr::new(tunnel.customer_outside, 0)).is_ok() {
        return Ok(tunnel.customer_outside);
    }
    let unspecified: IpAddr = if tunnel.aws_outside.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    let sock = UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
    sock.connect(SocketAddr::new(tunnel.aws_outside, 500))?;
    Ok(sock.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// configs/lab.describe.json with both tunnels' IKE/Child lifetimes and margin replaced.
    fn lab_with(p1: u32, p2: u32, margin: u32) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
        std::fs::read_to_string(path)
            .expect("sample")
            .replace(
                "\"Phase1LifetimeSeconds\": 28800",
                &format!("\"Phase1LifetimeSeconds\": {p1}"),
            )
            .replace(
                "\"Phase2LifetimeSeconds\": 3600",
                &format!("\"Phase2LifetimeSeconds\": {p2}"),
            )
            .replace(
                "\"RekeyMarginTimeSeconds\": 540",
                &format!("\"RekeyMarginTimeSeconds\": {margin}"),
            )
    }

    const LAB: Limits = Limits {
        short_lifetimes: true,
    };

    #[test]
    fn short_lifetimes_name_file_field_and_the_lab_switch() {
        let file = Path::new("/etc/cgwd/vpn.json");
        for (text, field) in [
            (lab_with(60, 900, 60), "Phase1LifetimeSeconds"),
            (lab_with(28800, 20, 5), "Phase2LifetimeSeconds"),
            (lab_with(28800, 3600, 5), "RekeyMarginTimeSeconds"),
        ] {
            let msg = parse_str(&text, file).expect_err("AWS's limits").to_string();
            assert!(msg.starts_with("/etc/cgwd/vpn.json: "), "{msg}");
            assert!(msg.contains(field), "{msg}");
            assert!(msg.contains("TunnelOptions[0]"), "names the tunnel: {msg}");
            assert!(
                msg.contains("[lab]") && msg.contains("allow_short_lifetimes = true"),
                "names the fix: {msg}"
            );
            assert!(msg.contains("never AWS"), "{msg}");
        }
    }

    #[test]
    fn lab_limits_accept_short_lifetimes_and_keep_margin_and_fuzz() {
        let file = Path::new("lab.json");
        let conn = parse_str_with(&lab_with(60, 20, 5), file, LAB).expect("lab limits");
        for t in &conn.tunnels {
            assert_eq!(
                (
                    t.phase1_lifetime_secs,
                    t.phase2_lifetime_secs,
                    t.rekey_margin_secs
                ),
                (60, 20, 5)
            );
            assert_eq!(t.rekey_fuzz_percent, 100, "RekeyFuzzPercentage still applies");
        }
        // Still bounded: below the lab floor, margin over half the Child lifetime, Child ≥ IKE.
        for (text, needle) in [
            (lab_with(5, 3, 1), "Phase1LifetimeSeconds 5 is outside"),
            (lab_with(60, 20, 11), "RekeyMarginTimeSeconds 11 is outside"),
            (lab_with(30, 30, 5), "not shorter than phase 1"),
        ] {
            let msg = parse_str_with(&text, file, LAB)
                .expect_err("rejected")
                .to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains("allow_short_lifetimes"), "already on: {msg}");
        }
        // AWS-range values do not mention the lab switch either.
        let msg = parse_str(&lab_with(28800, 5000, 540), file)
            .expect_err("over AWS's maximum")
            .to_string();
        assert!(!msg.contains("allow_short_lifetimes"), "{msg}");
    }

    #[test]
    fn the_switch_is_file_only_and_strictly_boolean() {
        let f = Path::new("cgwd.toml");
        let on = Settings::from_toml("[lab]\nallow_short_lifetimes = true\n", f, &|_| None).unwrap();
        assert_eq!(Limits::of(&on), LAB);
        assert_eq!(Limits::of(&Settings::default()), Limits::default());
        let env = |k: &str| (k == "CGWD_LAB_ALLOW_SHORT_LIFETIMES").then(|| "true".to_string());
        let off = Settings::from_toml("", f, &env).unwrap();
        assert!(
            !off.lab.allow_short_lifetimes,
            "no environment variable turns it on"
        );
        for text in [
            "[lab]\nallow_short_lifetimes = \"yes\"\n",
            "[lab]\nallow_short_lifetime = true\n",
        ] {
            let msg = Settings::from_toml(text, f, &|_| None).unwrap_err().to_string();
            assert!(msg.contains("lab.allow_short_lifetime"), "{msg}");
        }
    }
}
