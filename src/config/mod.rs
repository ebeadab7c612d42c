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
pub mod cert;
mod describe;
mod error;
mod generic;
mod model;
mod psk;
pub mod report;
mod settings;
mod xml;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Problem};
pub use model::{
    DpdAction, IkeVersion, InsideIpVersion, IpOptions, Origin, OutsideIpAddressType, Phase, Phase1Offer,
    Phase2Offer, Provenance, RekeyWindow, Routing, SourceFormat, StartupAction, TunnelConfig, VpnConnection,
    defaults, mss_for_mtu, mtu_for, strongest_first,
};
pub use settings::{
    AwsSettings, BgpSettings, BgpSpeaker, ConnectionSettings, ControlSettings, DEFAULT_HEALTH_INTERVAL,
    DpdSettings, FailoverPolicy, FailoverSettings, HealthFormat, HealthLog, InterfaceSettings,
    LAB_MIN_PHASE1_LIFETIME, LAB_MIN_PHASE2_LIFETIME, LabSettings, LocalSettings, LogSettings,
    MetricsSettings, PskSetting, RoutingSettings, Settings, TunnelSettings, TunnelsSettings, env_var_name,
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
    let loaded = load_many(&[config_path.to_path_buf()], settings_path)?;
    loaded.connections.into_iter().next().ok_or_else(|| {
        ConfigError::invalid(
            config_path,
            Problem::MissingField,
            "VPN connection",
            "no VPN connection found",
            "give the file AWS gave you for the VPN connection",
        )
    })
}

/// Every VPN connection one daemon serves, each with the settings that apply to it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// In the order given (a directory's files by name); a connection's position is its index.
    pub connections: Vec<(VpnConnection, Settings)>,
    /// The daemon-wide settings (interface, local address, metrics, control socket, logs).
    pub settings: Settings,
}

/// AWS file extensions a directory given to `cgwd run` is searched for.
pub const CONFIG_EXTENSIONS: [&str; 3] = ["json", "xml", "txt"];

/// The AWS files `paths` name: files as given, directories as their `*.json`, `*.xml` and `*.txt`
/// files sorted by name.
pub fn expand_config_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let io = |source| ConfigError::Io {
            file: p.clone(),
            source,
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                f.is_file()
                    && f.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| CONFIG_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if found.is_empty() {
            return Err(ConfigError::invalid(
                p,
                Problem::MissingField,
                "directory",
                "holds no AWS configuration file (*.json, *.xml or *.txt)",
                "put the files AWS gave you for each VPN connection in it, or name the files",
            ));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// [`load`] for several VPN connections (`cgwd run FILE...` or a directory): every file read and
/// validated, then checked against each other, all or nothing. Connections share one customer
/// gateway address (one pair of IKE sockets), so their tunnels must name distinct AWS outside
/// addresses and non-overlapping inside /30s.
pub fn load_many(paths: &[PathBuf], settings_path: Option<&Path>) -> Result<Loaded, ConfigError> {
    load_many_with(paths, settings_path, &|k| std::env::var(k).ok())
}

/// [`load_many`] with the environment given (`CGWD_*`, `psk_env`, `CREDENTIALS_DIRECTORY`).
pub fn load_many_with(
    paths: &[PathBuf],
    settings_path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let files = expand_config_paths(paths)?;
    let settings = Settings::load(settings_path, env);
    let limits = settings.as_ref().map(Limits::of).unwrap_or_default();
    let settings_file = settings_path.map_or_else(|| PathBuf::from("(no settings file)"), Path::to_path_buf);
    let several = files.len() > 1;
    let mut raw = Vec::with_capacity(files.len());
    for f in &files {
        let conn = match &settings {
            Ok(s) => read_connection(
                f,
                limits,
                &psk::FromSettings {
                    settings: s,
                    settings_file: &settings_file,
                    env,
                    several,
                },
            ),
            Err(_) => read_connection(f, limits, &psk::FileOnly),
        };
        match conn {
            Ok(c) => raw.push((f.clone(), c)),
            // Unusable settings may be what would have given the key (or, for a tunnel AWS
            // authenticates by certificate, the certificate): their error comes first.
            Err(e) if matches!(e.problem(), Some(Problem::PskMissing | Problem::Unsupported)) => {
                return Err(settings.err().unwrap_or(e));
            }
            Err(e) => return Err(e),
        }
    }
    let settings = settings?;
    let now = crate::io::clock::unix_now();
    // Each connection's certificate: its own `[connections.<id>.auth]`, else `[auth]`; each table
    // read and checked once.
    let mut loaded_auth: Vec<(String, Option<cert::Loaded>)> = Vec::new();
    for (_, conn) in &mut raw {
        let own = settings.connections.get(&conn.id).and_then(|c| c.auth.as_ref());
        let table = own.map_or_else(|| "auth".to_string(), |_| format!("connections.{}.auth", conn.id));
        if !loaded_auth.iter().any(|(t, _)| *t == table) {
            let found = cert::load_table(own.unwrap_or(&settings.auth), &table, &settings_file, env, now)?;
            for w in found.iter().flat_map(|f| &f.warnings) {
                tracing::warn!("{w}");
            }
            loaded_auth.push((table.clone(), found));
        }
        if let Some((_, Some(found))) = loaded_auth.iter().find(|(t, _)| *t == table) {
            conn.notes.extend(found.warnings.iter().cloned());
            conn.certificate = Some(found.identity.clone());
        }
    }
    check_together(&raw, &settings, &settings_file)?;
    for (file, conn) in &raw {
        check_runnable(file, conn, &settings, &settings_file)?;
    }
    check_device_names(&settings, &settings_file, raw.len())?;
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
    let mut connections = Vec::with_capacity(raw.len());
    for (_, mut conn) in raw {
        let own = settings.for_connection(&conn.id);
        check_bgp_limits(&settings_file, &conn, &own)?;
        check_inside_family(&settings_file, &conn, &own)?;
        check_interface_mtu(&settings_file, &conn, &own)?;
        apply_settings(&mut conn, &own);
        connections.push((conn, own));
    }
    Ok(Loaded {
        connections,
        settings,
    })
}

/// What `cgwd run` cannot do with a connection AWS accepts, refused when the configuration is
/// loaded, so `cgwd check`, `cgwd run` and a reload refuse it alike, before anything changes on
/// the host: outside addresses of two IP families (AWS runs every tunnel of a connection over one,
/// and cgwd binds one address), and an IPv6-inside connection whose tunnels do not all carry an
/// inside IPv6 /126 (one inside IP version for the whole connection).
pub fn check_runnable(
    file: &Path,
    conn: &VpnConnection,
    settings: &Settings,
    settings_file: &Path,
) -> Result<(), ConfigError> {
    let ip = &conn.ip;
    let described = conn.format == SourceFormat::DescribeJson;
    check_outside_family(file, conn, settings, settings_file)?;
    let inside_v6 = ip.tunnel_inside_ip_version == Some(InsideIpVersion::Ipv6)
        || conn.tunnels.iter().any(|t| t.inside_ipv6.is_some());
    if inside_v6 {
        // IPv6 inside runs: each tunnel needs its /126 for the device's address and AWS's peer.
        if let Some(t) = conn.tunnels.iter().find(|t| t.inside_ipv6.is_none()) {
            return Err(ConfigError::invalid(
                file,
                Problem::Unsupported,
                format!(
                    "VPN connection {}, {} {}",
                    conn.id,
                    t.id,
                    if described {
                        "TunnelInsideIpv6Cidr"
                    } else {
                        "<tunnel_inside_ipv6_address>"
                    }
                ),
                format!(
                    "the connection carries IPv6 inside (TunnelInsideIpVersion ipv6) but {} has no inside \
                     IPv6 /126, so cgwd has no address for it",
                    t.id
                ),
                "use the unedited describe-vpn-connections output, which lists TunnelInsideIpv6Cidr for \
                 every tunnel of an IPv6 connection",
            ));
        }
    }
    Ok(())
}

/// IKE and ESP run over one IP family (AWS: an IPv6 connection is IPv6 outside on both sides of
/// both tunnels): every outside address, `local.address` and `local.id` must be of the family of
/// AWS's first tunnel endpoint.
fn check_outside_family(
    file: &Path,
    conn: &VpnConnection,
    settings: &Settings,
    settings_file: &Path,
) -> Result<(), ConfigError> {
    let first = conn.tunnels[0].aws_outside;
    let family = |a: IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
    let described = conn.format == SourceFormat::DescribeJson;
    for t in &conn.tunnels {
        for (side, addr) in [("AWS", t.aws_outside), ("customer gateway", t.customer_outside)] {
            if addr.is_ipv4() != first.is_ipv4() {
                return Err(ConfigError::invalid(
                    file,
                    Problem::Conflict,
                    format!(
                        "VPN connection {}, {}",
                        conn.id,
                        if described && side == "AWS" {
                            "Options.TunnelOptions[].OutsideIpAddress"
                        } else {
                            "<tunnel_outside_address>"
                        }
                    ),
                    format!(
                        "{}'s {side} outside address {addr} is {} but tunnel 1's AWS outside address \
                         {first} is {}: AWS runs both tunnels of a connection, on both sides, over \
                         one IP family",
                        t.id,
                        family(addr),
                        family(first)
                    ),
                    "use the unedited file AWS gave for the connection",
                ));
            }
        }
    }
    for (key, addr) in [
        ("local.address", settings.local.address),
        ("local.id", settings.local.id),
    ] {
        if let Some(a) = addr.filter(|a| a.is_ipv4() != first.is_ipv4()) {
            return Err(ConfigError::invalid(
                settings_file,
                Problem::Conflict,
                format!("key {key}"),
                format!(
                    "{a} is {} but VPN connection {}'s AWS outside addresses ({first}, …) are {}: \
                     IKE and ESP run over the outside address family AWS gave the connection",
                    family(a),
                    conn.id,
                    family(first)
                ),
                format!("give an {} address, or leave {key} out", family(first)),
            ));
        }
    }
    Ok(())
}

/// `interface.mtu` (576 … 1446 for any connection, checked with the settings) against what this
/// connection's families allow: over IPv6 outside addresses the outer header is 20 octets longer,
/// so at most 1426 fits AWS's 1446; an IPv6-inside tunnel needs the 1280 IPv6 requires of every
/// link (RFC 8200 §5; Linux turns IPv6 off on a device below it).
fn check_interface_mtu(
    settings_file: &Path,
    conn: &VpnConnection,
    settings: &Settings,
) -> Result<(), ConfigError> {
    let Some(mtu) = settings.interface.mtu else {
        return Ok(());
    };
    let outside_v6 = conn.tunnels[0].aws_outside.is_ipv6();
    let max = if outside_v6 {
        1446 - model::IPV6_OUTSIDE_EXTRA
    } else {
        1446
    };
    let min = if conn.tunnels.iter().any(TunnelConfig::is_inside_ipv6) {
        1280
    } else {
        576
    };
    let why = if mtu > max {
        format!(
            "MTU {mtu} is above {max}, the largest that fits AWS's 1446 over VPN connection {}'s \
             IPv6 outside addresses (the outer IPv6 header is 20 octets longer than IPv4's)",
            conn.id
        )
    } else if mtu < min {
        format!(
            "MTU {mtu} is below 1280, the least IPv6 allows on a link, and VPN connection {} carries \
             IPv6 inside its tunnels",
            conn.id
        )
    } else {
        return Ok(());
    };
    Err(ConfigError::invalid(
        settings_file,
        Problem::Conflict,
        "key interface.mtu".to_string(),
        why,
        format!(
            "use {min} … {max}, or leave interface.mtu out to let cgwd derive it from the negotiated suite"
        ),
    ))
}

/// A connection carries one IP version inside (AWS's rule): its `routing.vpc_cidrs` and
/// `routing.onprem_cidrs` must be of that version.
fn check_inside_family(
    settings_file: &Path,
    conn: &VpnConnection,
    settings: &Settings,
) -> Result<(), ConfigError> {
    let v6 = conn.tunnels.iter().any(TunnelConfig::is_inside_ipv6);
    let (inside, other) = if v6 { ("IPv6", "IPv4") } else { ("IPv4", "IPv6") };
    for (key, list) in [
        ("routing.vpc_cidrs", &settings.routing.vpc_cidrs),
        ("routing.onprem_cidrs", &settings.routing.onprem_cidrs),
    ] {
        if let Some(net) = list.iter().find(|n| matches!(n, ipnet::IpNet::V6(_)) != v6) {
            return Err(ConfigError::invalid(
                settings_file,
                Problem::Conflict,
                format!("key {key}"),
                format!(
                    "{net} is {other}, but VPN connection {} carries {inside} inside its tunnels \
                     (TunnelInsideIpVersion {}), and AWS carries one IP version per connection",
                    conn.id,
                    if v6 { "ipv6" } else { "ipv4" }
                ),
                format!(
                    "list only {inside} prefixes for this connection (per connection: \
                     [connections.{}.routing]); {other} traffic needs a VPN connection of its own",
                    conn.id
                ),
            ));
        }
    }
    Ok(())
}

/// How many prefixes AWS accepts from the customer gateway on one BGP session: 100 to a virtual
/// private gateway, 1,000 to a transit gateway ("Site-to-Site VPN quotas").
pub fn bgp_prefix_limit(conn: &VpnConnection) -> usize {
    if conn.transit_gateway_id.is_some() || conn.vpn_gateway_id.is_none() {
        1000
    } else {
        100
    }
}

/// The most prefixes cgwd announces on one session: the on-prem prefixes, plus the two halves of
/// each splittable one while the other tunnel is down (`bgp.fast_failover`).
pub fn bgp_announced_max(settings: &Settings) -> usize {
    let onprem = &settings.routing.onprem_cidrs;
    let halves = if settings.bgp.fast_failover {
        2 * onprem
            .iter()
            .filter(|n| n.prefix_len() < n.max_prefix_len())
            .count()
    } else {
        0
    };
    onprem.len() + halves
}

/// The TUN device of the tunnel at data-plane slot `slot` with `bgp.speaker = "external"`:
/// `<interface>-<slot + 1>` (`cgwd0-1`, `cgwd0-2` for the first connection's tunnels, `cgwd0-3`
/// for the second's tunnel 1 …), numbered like AWS's VTI recipes number theirs.
pub fn tunnel_device_name(interface: &str, slot: usize) -> String {
    format!("{interface}-{}", slot + 1)
}

/// With `bgp.speaker = "external"` every tunnel's device name must fit the kernel's 15 bytes.
fn check_device_names(
    settings: &Settings,
    settings_file: &Path,
    connections: usize,
) -> Result<(), ConfigError> {
    if settings.bgp.speaker != BgpSpeaker::External {
        return Ok(());
    }
    let longest = tunnel_device_name(&settings.interface.name, 2 * connections.max(1) - 1);
    if longest.len() > 15 {
        return Err(ConfigError::invalid(
            settings_file,
            Problem::SettingsValue,
            "interface.name",
            format!(
                "`{}` is too long for bgp.speaker = \"external\": its tunnel devices are named like `{longest}`, over the kernel's 15 characters",
                settings.interface.name
            ),
            "choose a shorter interface.name (e.g. \"cgwd0\")",
        ));
    }
    Ok(())
}

/// Why a dynamic-routing connection is not fit to run although it loads: the built-in speaker
/// would announce nothing, so the tunnels and BGP sessions come up and AWS has no route back to
/// on-prem. `cgwd check` fails on it; `cgwd run` starts and warns (the file alone brings the
/// tunnels up, and a reload adding `routing.onprem_cidrs` fixes it without a restart).
pub fn nothing_to_announce(conn: &VpnConnection, settings: &Settings) -> Option<String> {
    let bgp = matches!(conn.routing, Routing::Bgp { .. });
    (bgp && settings.bgp.speaker == BgpSpeaker::Builtin && settings.routing.onprem_cidrs.is_empty()).then(
        || {
            "a BGP connection with nothing to announce: routing.onprem_cidrs is empty, so AWS would \
         learn no route back to on-prem; set it in the settings file ([routing] onprem_cidrs = \
         [\"10.0.0.0/16\"]) or CGWD_ROUTING_ONPREM_CIDRS, or bgp.speaker = \"off\" to route \
         nothing by BGP"
                .to_string()
        },
    )
}

/// AWS's prefix limit against what a BGP connection would announce: refused beyond it (AWS would
/// tear the session down), warned above 80 %.
fn check_bgp_limits(file: &Path, conn: &VpnConnection, settings: &Settings) -> Result<(), ConfigError> {
    if !matches!(conn.routing, Routing::Bgp { .. }) || settings.bgp.speaker != BgpSpeaker::Builtin {
        return Ok(());
    }
    let (max, limit) = (bgp_announced_max(settings), bgp_prefix_limit(conn));
    if max > limit {
        return Err(ConfigError::invalid(
            file,
            Problem::SettingsValue,
            "routing.onprem_cidrs",
            format!(
                "{} prefixes, {max} with the fast-failover halves, exceed the {limit} AWS accepts on a BGP session to {}",
                settings.routing.onprem_cidrs.len(),
                if limit == 100 {
                    "a virtual private gateway"
                } else {
                    "a transit gateway"
                }
            ),
            "announce fewer, larger prefixes, or set bgp.fast_failover = false",
        ));
    }
    if max * 5 > limit * 4 {
        tracing::warn!(
            vpn = %conn.id,
            announced = max,
            limit,
            "BGP announcements near AWS's prefix limit"
        );
    }
    Ok(())
}

/// The checks that need every connection: what makes two of them unable to share one daemon.
fn check_together(
    raw: &[(PathBuf, VpnConnection)],
    settings: &Settings,
    settings_file: &Path,
) -> Result<(), ConfigError> {
    let max = crate::sa::MAX_TUNNELS / 2;
    if raw.len() > max {
        return Err(ConfigError::invalid(
            &raw[max].0,
            Problem::Conflict,
            "VPN connections",
            format!("{} connections given; one cgwd serves at most {max}", raw.len()),
            "split the connections over several customer gateway addresses, one cgwd each",
        ));
    }
    for (i, (file, conn)) in raw.iter().enumerate() {
        for (other_file, other) in &raw[..i] {
            let clash = |what: &str, fix: &str| {
                ConfigError::invalid(
                    file,
                    Problem::Conflict,
                    format!("VPN connection {}", conn.id),
                    format!("{what} as {} in {}", other.id, other_file.display()),
                    fix,
                )
            };
            if conn.id == other.id {
                return Err(clash(
                    "is the same VPN connection",
                    "give each VPN connection once",
                ));
            }
            if settings.local.address.is_none()
                && conn.tunnels[0].customer_outside != other.tunnels[0].customer_outside
            {
                return Err(clash(
                    &format!(
                        "has customer gateway address {}, not {}",
                        conn.tunnels[0].customer_outside, other.tunnels[0].customer_outside
                    ),
                    "run one cgwd per customer gateway address, or set local.address if NAT maps one address to both",
                ));
            }
            for t in &conn.tunnels {
                for u in &other.tunnels {
                    if t.aws_outside == u.aws_outside {
                        return Err(clash(
                            &format!(
                                "tunnel {} has AWS outside address {}, the same",
                                t.id.number(),
                                t.aws_outside
                            ),
                            "each AWS endpoint belongs to one tunnel; check that the right files were given",
                        ));
                    }
                    if t.inside.contains(&u.inside.network()) || u.inside.contains(&t.inside.network()) {
                        return Err(clash(
                            &format!(
                                "tunnel {} has inside CIDR {}, overlapping {}",
                                t.id.number(),
                                t.inside,
                                u.inside
                            ),
                            "give the connections' tunnels distinct inside CIDRs (AWS tunnel options TunnelInsideCidr)",
                        ));
                    }
                }
            }
        }
    }
    // A daemon-wide key for tunnel N would be every connection's tunnel N key (and override the
    // keys in their files): with several connections each names its own.
    for id in crate::sa::TunnelId::BOTH {
        if settings.tunnels.get(id).and_then(TunnelSettings::psk).is_none() {
            continue;
        }
        let users: Vec<&str> = raw
            .iter()
            .map(|(_, c)| c.id.as_str())
            .filter(|vpn| {
                settings
                    .tunnel_psk(vpn, id)
                    .is_some_and(|(table, _)| table.starts_with("tunnels."))
            })
            .collect();
        if users.len() > 1 {
            let n = id.number();
            return Err(ConfigError::invalid(
                settings_file,
                Problem::Conflict,
                format!("[tunnels.{n}]"),
                format!(
                    "would give tunnel {n} of {} connections one key: {}",
                    users.len(),
                    users.join(", ")
                ),
                format!(
                    "with several connections give each its own key in [connections.<vpn-id>.tunnels.{n}], e.g. [connections.{}.tunnels.{n}]",
                    users[0]
                ),
            ));
        }
    }
    if let Some(unknown) = settings
        .connections
        .keys()
        .find(|k| !raw.iter().any(|(_, c)| &c.id == *k))
    {
        return Err(ConfigError::invalid(
            settings_file,
            Problem::SettingsKey,
            format!("[connections.{unknown}]"),
            "names no VPN connection given to cgwd".to_string(),
            format!(
                "use one of: {}",
                raw.iter()
                    .map(|(_, c)| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

/// Read and validate only the AWS configuration file (AWS's limits; keys from the file alone).
pub fn load_connection(path: &Path) -> Result<VpnConnection, ConfigError> {
    load_connection_with(path, Limits::default())
}

/// [`load_connection`] with the given limits.
pub fn load_connection_with(path: &Path, limits: Limits) -> Result<VpnConnection, ConfigError> {
    read_connection(path, limits, &psk::FileOnly)
}

/// [`load_connection_with`], taking the keys the file lacks (or the settings override) from `psks`.
fn read_connection(
    path: &Path,
    limits: Limits,
    psks: &dyn psk::PskLookup,
) -> Result<VpnConnection, ConfigError> {
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
    parse_with_keys(&text, path, limits, psks)
}

/// Parse configuration text of any of the three formats; `file` only names it in errors. Never
/// panics (fuzzed).
pub fn parse_str(text: &str, file: &Path) -> Result<VpnConnection, ConfigError> {
    parse_str_with(text, file, Limits::default())
}

/// [`parse_str`] with the given limits.
pub fn parse_str_with(text: &str, file: &Path, limits: Limits) -> Result<VpnConnection, ConfigError> {
    parse_with_keys(text, file, limits, &psk::FileOnly)
}

fn parse_with_keys(
    text: &str,
    file: &Path,
    limits: Limits,
    psks: &dyn psk::PskLookup,
) -> Result<VpnConnection, ConfigError> {
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
    build::Builder {
        file,
        format,
        limits,
        psks,
    }
    .build(draft)
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
