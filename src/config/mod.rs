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
    SourceFormat, StartupAction, TunnelConfig, VpnConnection, defaults, dh_rank, encryption_rank,
    integrity_rank, mss_for_mtu, mtu_for,
};
pub use settings::{
    AwsSettings, ControlSettings, DEFAULT_HEALTH_INTERVAL, DpdSettings, FailoverPolicy, FailoverSettings,
    HealthFormat, HealthLog, InterfaceSettings, LocalSettings, LogSettings, MetricsSettings, RoutingSettings,
    Settings, env_var_name,
};

/// Largest configuration file cgwd reads; real ones are a few tens of KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Read and validate the AWS configuration and the settings, and apply settings that refine the
/// connection (the `dpd.interval` override). What the daemon calls at start.
pub fn load(
    config_path: &Path,
    settings_path: Option<&Path>,
) -> Result<(VpnConnection, Settings), ConfigError> {
    let mut conn = load_connection(config_path)?;
    let settings = Settings::load(settings_path, &|k| std::env::var(k).ok())?;
    apply_settings(&mut conn, &settings);
    Ok((conn, settings))
}

/// Read and validate only the AWS configuration file.
pub fn load_connection(path: &Path) -> Result<VpnConnection, ConfigError> {
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
    parse_str(&text, path)
}

/// Parse configuration text of any of the three formats; `file` only names it in errors. Never
/// panics (fuzzed).
pub fn parse_str(text: &str, file: &Path) -> Result<VpnConnection, ConfigError> {
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
    build::Builder { file, format }.build(draft)
}

/// Apply the settings that refine the connection itself.
pub fn apply_settings(conn: &mut VpnConnection, settings: &Settings) {
    if let Some(interval) = settings.dpd.interval {
        for t in &mut conn.tunnels {
            t.dpd_interval_secs = interval;
            t.provenance.insert("dpd_interval", Origin::Settings);
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
