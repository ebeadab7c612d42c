//! cgwd's own settings: what AWS's download does not carry (interface, local address, routes to
//! install, failover policy, observability, where keys AWS does not hand out are). TOML file, every
//! plain key overridable from the environment as `CGWD_<SECTION>_<KEY>` (lists comma-separated),
//! environment winning; `[tunnels.N]`, `[connections.*]`, `[lab]` and `bgp.fast_failover` are file
//! only (`psk_env` is how a key comes from the environment).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problem, line_col};
use crate::sa::TunnelId;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Who `cgwd run` runs as (the privilege drop, [`crate::daemon::privilege`]).
    pub daemon: DaemonSettings,
    pub interface: InterfaceSettings,
    pub local: LocalSettings,
    pub routing: RoutingSettings,
    pub failover: FailoverSettings,
    pub dpd: DpdSettings,
    pub ike: IkeSettings,
    pub metrics: MetricsSettings,
    pub control: ControlSettings,
    pub log: LogSettings,
    /// Metadata about the AWS side for health logs (optional).
    pub aws: AwsSettings,
    /// BGP for connections whose AWS file says dynamic routing.
    pub bgp: BgpSettings,
    /// Lab-only switches (docs/configuration.md): never needed, nor accepted, against AWS.
    pub lab: LabSettings,
    /// The customer gateway's certificate, key and CA chain for certificate authentication
    /// (`[auth]`; docs/configuration.md, "Certificate authentication").
    pub auth: AuthSettings,
    /// Where a tunnel's pre-shared key comes from when not from the AWS file (`[tunnels.1]`,
    /// `[tunnels.2]`): for PSKs AWS keeps in Secrets Manager.
    pub tunnels: TunnelsSettings,
    /// Per-VPN-connection overrides, keyed by VPN connection ID (`[connections.vpn-0abc...]`):
    /// what differs between the connections one daemon serves. Sections not given there come from
    /// the daemon-wide ones above.
    pub connections: std::collections::BTreeMap<String, ConnectionSettings>,
}

/// Who speaks BGP over the tunnels of a dynamic-routing connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BgpSpeaker {
    /// Nobody: `routing.vpc_cidrs` are routed statically and AWS learns nothing (for a peer
    /// without BGP, e.g. a lab).
    Off,
    /// cgwd's own eBGP speaker, one session per tunnel: what AWS expects of a dynamic-routing
    /// connection.
    #[default]
    Builtin,
    /// The user's own BGP daemon (BIRD, FRR) on this host: cgwd gives every tunnel its own TUN
    /// device with its inside address (`<interface.name>-<N>`, like AWS's VTI recipes), the
    /// daemon peers over them, and what a device's routes send into it goes into its tunnel.
    External,
}

impl FromStr for BgpSpeaker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(Self::Off),
            "builtin" => Ok(Self::Builtin),
            "external" => Ok(Self::External),
            other => Err(format!("unknown bgp.speaker `{other}` (off, builtin, external)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BgpSettings {
    pub speaker: BgpSpeaker,
    /// When a tunnel dies, announce the on-prem prefixes' halves on the other so AWS moves return
    /// traffic at once (docs/configuration.md).
    pub fast_failover: bool,
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            speaker: BgpSpeaker::Builtin,
            fast_failover: true,
        }
    }
}

/// What one VPN connection may set differently from the daemon-wide settings. The interface, local
/// address, metrics, control socket and logs are the daemon's: one TUN device carries every
/// connection, and the data plane's prefix table picks the tunnel.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSettings {
    pub routing: Option<RoutingSettings>,
    pub failover: Option<FailoverSettings>,
    pub dpd: Option<DpdSettings>,
    pub aws: Option<AwsSettings>,
    /// `[connections.<vpn-id>.tunnels.N]`: replaces `[tunnels.N]` for this connection's tunnel N.
    pub tunnels: Option<TunnelsSettings>,
    /// `[connections.<vpn-id>.auth]`: this connection's customer gateway certificate, in place of
    /// `[auth]` (each AWS customer gateway has its own certificate).
    pub auth: Option<AuthSettings>,
}

/// `[tunnels.1]` and `[tunnels.2]`; any other tunnel number is an unknown key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TunnelsSettings {
    #[serde(rename = "1", skip_serializing_if = "Option::is_none")]
    pub one: Option<TunnelSettings>,
    #[serde(rename = "2", skip_serializing_if = "Option::is_none")]
    pub two: Option<TunnelSettings>,
}

impl TunnelsSettings {
    pub fn get(&self, id: TunnelId) -> Option<&TunnelSettings> {
        match id {
            TunnelId::One => self.one.as_ref(),
            TunnelId::Two => self.two.as_ref(),
        }
    }

    fn slot(&mut self, id: TunnelId) -> &mut Option<TunnelSettings> {
        match id {
            TunnelId::One => &mut self.one,
            TunnelId::Two => &mut self.two,
        }
    }
}

/// One tunnel's pre-shared key from outside the AWS file (docs/configuration.md, "PSKs kept
/// outside the AWS file"): at most one of the three. A key given here wins over the AWS file's.
/// These name where the key is, never the key itself, so the settings file stays shareable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TunnelSettings {
    /// Absolute path of a file holding the key (one trailing newline is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psk_file: Option<PathBuf>,
    /// Name of an environment variable holding the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psk_env: Option<String>,
    /// Name of a systemd credential (`LoadCredential=`): the file `$CREDENTIALS_DIRECTORY/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psk_credential: Option<String>,
}

/// `[auth]`: the customer gateway's certificate (PEM), its private key (PEM; RSA or ECDSA
/// P-256/P-384) and the AWS Private CA chain (PEM), each a file or a systemd credential
/// (`*_credential`, read from `$CREDENTIALS_DIRECTORY`). Read and checked by
/// [`super::cert::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub certificate: Option<PathBuf>,
    pub certificate_credential: Option<String>,
    pub private_key: Option<PathBuf>,
    pub private_key_credential: Option<String>,
    pub ca: Option<PathBuf>,
    pub ca_credential: Option<String>,
}

impl AuthSettings {
    /// Whether `[auth]` names a certificate at all.
    pub fn is_set(&self) -> bool {
        *self != AuthSettings::default()
    }

    /// `table`: `auth`, or `connections.<vpn-id>.auth`, as errors name it.
    fn check(&self, table: &str) -> Result<(), (String, String, String)> {
        for (key, path, cred) in [
            ("certificate", &self.certificate, &self.certificate_credential),
            ("private_key", &self.private_key, &self.private_key_credential),
            ("ca", &self.ca, &self.ca_credential),
        ] {
            if path.is_some() && cred.is_some() {
                return Err((
                    format!("table [{table}]"),
                    format!("sets {key} and {key}_credential; each file comes from one place"),
                    format!("keep one of {table}.{key}, {table}.{key}_credential"),
                ));
            }
            if let Some(p) = path
                && !p.is_absolute()
            {
                return Err((
                    format!("{table}.{key}"),
                    format!("`{}` is not an absolute path", p.display()),
                    "write the full path, e.g. \"/etc/cgwd/cgw.pem\"".into(),
                ));
            }
            if let Some(c) = cred
                && (c.is_empty() || c == "." || c == ".." || c.contains(['/', '\0']))
            {
                return Err((
                    format!("{table}.{key}_credential"),
                    format!("`{c}` is not a credential name"),
                    "use the NAME of systemd's LoadCredential=NAME:PATH, e.g. \"cgw.pem\"".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Where [`TunnelSettings`] says a tunnel's key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PskSetting<'a> {
    File(&'a Path),
    Env(&'a str),
    Credential(&'a str),
}

impl TunnelSettings {
    /// The one source set, or `None`; [`Settings::validate`] refused more than one.
    pub fn psk(&self) -> Option<PskSetting<'_>> {
        self.psk_file
            .as_deref()
            .map(PskSetting::File)
            .or(self.psk_env.as_deref().map(PskSetting::Env))
            .or(self.psk_credential.as_deref().map(PskSetting::Credential))
    }

    fn check(&self, table: &str) -> Result<(), (String, String, String)> {
        let set: Vec<&str> = [
            ("psk_file", self.psk_file.is_some()),
            ("psk_env", self.psk_env.is_some()),
            ("psk_credential", self.psk_credential.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        if set.len() > 1 {
            return Err((
                table.to_string(),
                format!("sets {}; a tunnel's key comes from one place", set.join(" and ")),
                "keep one of psk_file, psk_env, psk_credential".into(),
            ));
        }
        if let Some(p) = &self.psk_file
            && !p.is_absolute()
        {
            return Err((
                format!("{table}.psk_file"),
                format!("`{}` is not an absolute path", p.display()),
                "write the full path, e.g. \"/etc/cgwd/vpn-0123456789abcdef0-1.psk\"".into(),
            ));
        }
        if let Some(v) = &self.psk_env {
            let mut chars = v.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err((
                    format!("{table}.psk_env"),
                    format!("`{v}` is not an environment variable name"),
                    "use letters, digits and _, not starting with a digit, e.g. \"CGWD_T1_PSK\"".into(),
                ));
            }
        }
        if let Some(c) = &self.psk_credential
            && (c.is_empty() || c == "." || c == ".." || c.contains(['/', '\0']))
        {
            return Err((
                format!("{table}.psk_credential"),
                format!("`{c}` is not a credential name"),
                "use the NAME of systemd's LoadCredential=NAME:PATH, e.g. \"vpn-0123456789abcdef0-1.psk\""
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// The settings that apply to VPN connection `vpn_id`: the daemon-wide ones with its
    /// `[connections.<vpn_id>]` sections in place of theirs.
    pub fn for_connection(&self, vpn_id: &str) -> Settings {
        let mut s = self.clone();
        s.connections.clear();
        if let Some(c) = self.connections.get(vpn_id) {
            if let Some(r) = &c.routing {
                s.routing = r.clone();
            }
            if let Some(f) = &c.failover {
                s.failover = f.clone();
            }
            if let Some(d) = &c.dpd {
                s.dpd = d.clone();
            }
            if let Some(a) = &c.aws {
                s.aws = a.clone();
            }
            if let Some(a) = &c.auth {
                s.auth = a.clone();
            }
            if let Some(t) = &c.tunnels {
                for id in TunnelId::BOTH {
                    if let Some(own) = t.get(id) {
                        *s.tunnels.slot(id) = Some(own.clone());
                    }
                }
            }
        }
        s
    }

    /// The settings table that gives tunnel `id` of `vpn_id` its key, and what it says: the
    /// connection's own `[connections.<vpn_id>.tunnels.N]`, else `[tunnels.N]`.
    pub fn tunnel_psk(&self, vpn_id: &str, id: TunnelId) -> Option<(String, PskSetting<'_>)> {
        let own = self
            .connections
            .get(vpn_id)
            .and_then(|c| c.tunnels.as_ref())
            .and_then(|t| t.get(id));
        match own {
            Some(t) => t
                .psk()
                .map(|p| (format!("connections.{vpn_id}.tunnels.{}", id.number()), p)),
            None => self
                .tunnels
                .get(id)
                .and_then(TunnelSettings::psk)
                .map(|p| (format!("tunnels.{}", id.number()), p)),
        }
    }
}

/// The daemon process itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// The user `cgwd run` becomes when started as root, keeping only its network capabilities;
    /// empty (the default) keeps the identity it was started with: the packaged starts (systemd
    /// unit, container image) are unprivileged already, and a daemon that quietly becomes whichever
    /// account exists is a surprise (docs/configuration.md, "Privileges").
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterfaceSettings {
    /// TUN device name (≤ 15 bytes).
    pub name: String,
    /// `None` = derived from the suites both tunnels may negotiate ([`super::VpnConnection::mtu`]).
    pub mtu: Option<u16>,
    /// Longest on-CPU wait, in µs, for the answer to a packet sent through a quiet tunnel
    /// (`dataplane::answer_wait`); 0 = never wait. `None` = 250.
    pub answer_wait_us: Option<u32>,
}

impl Default for InterfaceSettings {
    fn default() -> Self {
        InterfaceSettings {
            name: "cgwd0".into(),
            mtu: None,
            answer_wait_us: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// Address IKE and ESP are sent from. `None` (unset or `"auto"`) follows the host: resolved
    /// at start ([`super::resolve_local_address`]) and again whenever the kernel's addresses or
    /// routes change, so a DHCP/PPPoE address or a restarted VM's new one is picked up. An explicit
    /// address stays fixed.
    #[serde(with = "auto_address")]
    pub address: Option<IpAddr>,
    /// IKE identity (ID_IPV4_ADDR). `None` = the customer outside address, which is what AWS
    /// checks (also behind NAT).
    pub id: Option<IpAddr>,
}

/// `local.address`: an IP address, or `"auto"` (the same as leaving it unset).
mod auto_address {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is neither an IP address nor \"auto\": write the customer gateway's outside \
                 address (e.g. \"192.0.2.10\"), or \"auto\" (or leave it out) to follow this host's address"
            ))
        })
    }

    pub fn serialize<S: Serializer>(v: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.collect_str(a),
            None => s.serialize_str("auto"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// VPC networks to route into the tunnels (static routing) or to expect from BGP; IPv6 ones
    /// for a connection with `TunnelInsideIpVersion` ipv6.
    pub vpc_cidrs: Vec<IpNet>,
    /// On-premises networks to advertise over BGP.
    pub onprem_cidrs: Vec<IpNet>,
    /// Drop decrypted packets whose source is not routed through the connection they arrived
    /// on: AWS's 0.0.0.0/0 traffic selectors let the peer send from any address. Off by itself
    /// with `bgp.speaker = "external"` (cgwd does not know those routes).
    pub reverse_path_check: bool,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            vpc_cidrs: Vec::new(),
            onprem_cidrs: Vec::new(),
            reverse_path_check: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailoverPolicy {
    /// Send on tunnel 1 whenever it is up; tunnel 2 only while it is down.
    #[default]
    #[serde(rename = "prefer-tunnel-1")]
    PreferTunnel1,
    /// Stay on whichever tunnel carries traffic until it fails (fewest switches).
    Stay,
    /// Send on both (per-flow); AWS accepts either.
    ActiveActive,
}

impl FailoverPolicy {
    pub fn name(self) -> &'static str {
        match self {
            Self::PreferTunnel1 => "prefer-tunnel-1",
            Self::Stay => "stay",
            Self::ActiveActive => "active-active",
        }
    }
}

impl FromStr for FailoverPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "prefer-tunnel-1" => Ok(Self::PreferTunnel1),
            "stay" => Ok(Self::Stay),
            "active-active" => Ok(Self::ActiveActive),
            other => Err(format!(
                "unknown failover policy `{other}` (prefer-tunnel-1, stay, active-active)"
            )),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSettings {
    pub policy: FailoverPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpdSettings {
    /// Seconds of silence before cgwd checks liveness; lower than AWS's 10 s for faster failover.
    pub interval: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IkeSettings {
    /// Largest IP datagram (IPv4 + UDP headers, non-ESP marker, IKE message) of an encrypted IKE
    /// message before it is split into RFC 7383 fragments; 0 = do not offer fragmentation. `None` =
    /// 1280, strongSwan's default, which every path carries.
    pub fragment_size: Option<u16>,
}

/// Smallest `ike.fragment_size`: the IPv4 minimum every host must reassemble (RFC 791), also RFC 7383
/// §2.5.1's floor for IPv4.
pub const MIN_FRAGMENT_SIZE: u16 = 576;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Prometheus listener; `None` = metrics off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    pub socket: PathBuf,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from("/run/cgwd/cgwd.sock"),
        }
    }
}

/// Where health events (JSON lines) go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HealthLog {
    #[default]
    Stderr,
    Stdout,
    File(PathBuf),
}

impl FromStr for HealthLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" => Err("log.health is empty (use stderr, stdout or a file path)".into()),
            "stderr" => Ok(Self::Stderr),
            "stdout" => Ok(Self::Stdout),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }
}

impl std::fmt::Display for HealthLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stderr => f.write_str("stderr"),
            Self::Stdout => f.write_str("stdout"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for HealthLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HealthLog {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How health records are written (see docs/observability.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthFormat {
    /// AWS's tunnel-log fields (`ike_phase1_state`, `details`, ...) on every state change and event.
    #[default]
    Aws,
    /// `status` UP/DOWN records (`vpnConnectionId`, `tunnelIp`, `statusMessage`, ...).
    Status,
}

impl HealthFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Status => "status",
        }
    }
}

impl FromStr for HealthFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "aws" => Ok(Self::Aws),
            "status" => Ok(Self::Status),
            other => Err(format!("unknown health format `{other}` (aws, status)")),
        }
    }
}

/// Default seconds between periodic health records.
pub const DEFAULT_HEALTH_INTERVAL: u32 = 60;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub health: HealthLog,
    /// Record format written to `health`; added later, so it defaults to the original (aws).
    pub health_format: HealthFormat,
    /// Seconds between periodic records (besides those on every change); 0 = only on change.
    pub health_interval: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            health: HealthLog::default(),
            health_format: HealthFormat::default(),
            health_interval: DEFAULT_HEALTH_INTERVAL,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
}

/// Switches for testing cgwd against a local IKE peer (strongSwan playing AWS). File only: no
/// `CGWD_LAB_*` variable exists, so an exported variable cannot turn one on by accident.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabSettings {
    /// Accept lifetimes and rekey margins below AWS's minimums (down to
    /// [`LAB_MIN_PHASE1_LIFETIME`] / [`LAB_MIN_PHASE2_LIFETIME`] / 1 s), so rekeys happen within
    /// a short test. AWS itself refuses such tunnels.
    pub allow_short_lifetimes: bool,
    /// Child SAs without PFS: no DH group in phase 2, whatever the AWS file lists, for a peer that
    /// rekeys Child SAs without a KE payload (the lab's `PHASE2_DH_GROUPS=""`). AWS requires PFS,
    /// and cgwd otherwise refuses a Child SA rekey without it, as AWS does.
    pub no_pfs: bool,
}

/// Shortest IKE SA lifetime accepted with `lab.allow_short_lifetimes` (AWS: 900 s).
pub const LAB_MIN_PHASE1_LIFETIME: u32 = 20;
/// Shortest Child SA lifetime accepted with `lab.allow_short_lifetimes` (AWS: 900 s).
pub const LAB_MIN_PHASE2_LIFETIME: u32 = 10;

/// The type of a settings key, for reading it from the environment.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every key, as (section, key, kind). The environment variable is `CGWD_SECTION_KEY`.
const KEYS: &[(&str, &str, Kind)] = &[
    ("daemon", "user", Kind::Str),
    ("interface", "name", Kind::Str),
    ("interface", "mtu", Kind::Int),
    ("interface", "answer_wait_us", Kind::Int),
    ("local", "address", Kind::Str),
    ("local", "id", Kind::Str),
    ("routing", "vpc_cidrs", Kind::List),
    ("routing", "onprem_cidrs", Kind::List),
    ("routing", "reverse_path_check", Kind::Bool),
    ("failover", "policy", Kind::Str),
    ("dpd", "interval", Kind::Int),
    ("bgp", "speaker", Kind::Str),
    ("ike", "fragment_size", Kind::Int),
    ("metrics", "listen", Kind::Str),
    ("control", "socket", Kind::Str),
    ("log", "health", Kind::Str),
    ("log", "health_format", Kind::Str),
    ("log", "health_interval", Kind::Int),
    ("aws", "account_id", Kind::Str),
    ("aws", "region", Kind::Str),
    ("aws", "vpc_id", Kind::Str),
];

/// The environment variable that overrides `section.key`.
pub fn env_var_name(section: &str, key: &str) -> String {
    format!(
        "CGWD_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

impl Settings {
    /// Read settings: the file (if any), then `CGWD_*` variables from `env` on top.
    pub fn load(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let (text, file) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    file: p.to_path_buf(),
                    source,
                })?,
                p.to_path_buf(),
            ),
            None => (String::new(), PathBuf::from("(no settings file)")),
        };
        Settings::from_toml(&text, &file, env)
    }

    /// Parse settings text; `file` only names it in errors.
    pub fn from_toml(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ConfigError::Syntax {
                file: file.to_path_buf(),
                format: "TOML",
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        // Check the file alone first so errors point at its lines.
        let from_file: Settings =
            toml::from_str(text).map_err(|e: toml::de::Error| toml_error(text, file, &e))?;
        let mut overridden = false;
        for &(section, key, kind) in KEYS {
            let var = env_var_name(section, key);
            let Some(raw) = env(&var) else { continue };
            overridden = true;
            let value = match kind {
                Kind::Str => toml::Value::String(raw.clone()),
                Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                    ConfigError::invalid(
                        file,
                        Problem::SettingsValue,
                        format!("environment {var} (key {section}.{key})"),
                        format!("`{raw}` is not a whole number"),
                        format!("set {var} to a number or unset it"),
                    )
                })?),
                Kind::Bool => toml::Value::Boolean(match raw.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ConfigError::invalid(
                            file,
                            Problem::SettingsValue,
                            format!("environment {var} (key {section}.{key})"),
                            format!("`{raw}` is not true or false"),
                            format!("set {var} to true or false, or unset it"),
                        ));
                    }
                }),
                Kind::List => toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
            };
            let sect = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = sect {
                t.insert(key.to_string(), value);
            }
            // Validate this variable on its own so its error names it.
            let mut single = toml::Table::new();
            let mut inner = toml::Table::new();
            if let Some(toml::Value::Table(t)) = table.get(section)
                && let Some(v) = t.get(key)
            {
                inner.insert(key.to_string(), v.clone());
            }
            single.insert(section.to_string(), toml::Value::Table(inner));
            toml::Value::Table(single).try_into::<Settings>().map_err(|e| {
                ConfigError::invalid(
                    file,
                    Problem::SettingsValue,
                    format!("environment {var} (key {section}.{key})"),
                    format!("`{raw}`: {}", e.message().trim()),
                    format!("fix or unset {var}"),
                )
            })?;
        }
        let settings = if overridden {
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| toml_error(text, file, &e))?
        } else {
            from_file
        };
        settings.validate(file)?;
        Ok(settings)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: String, fix: &str| {
            ConfigError::invalid(file, Problem::SettingsValue, format!("key {key}"), problem, fix)
        };
        let per_connection = self
            .connections
            .iter()
            .filter_map(|(id, c)| c.auth.as_ref().map(|a| (format!("connections.{id}.auth"), a)));
        for (table, auth) in std::iter::once(("auth".to_string(), &self.auth)).chain(per_connection) {
            if let Err((key, problem, fix)) = auth.check(&table) {
                return Err(ConfigError::invalid(
                    file,
                    Problem::SettingsValue,
                    key,
                    problem,
                    fix,
                ));
            }
        }
        let user = &self.daemon.user;
        if user.len() > 32
            || user
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
        {
            return Err(bad(
                "daemon.user",
                format!("`{}` is not a user name", user.escape_debug()),
                "name an existing unprivileged user (e.g. cgwd), or leave it out to keep the identity \
                 cgwd is started with",
            ));
        }
        let name = &self.interface.name;
        if name.is_empty()
            || name.len() > 15
            || name.contains(['/', ' ', '\0'])
            || name == "."
            || name == ".."
        {
            return Err(bad(
                "interface.name",
                format!("`{name}` is not a usable interface name"),
                "use 1-15 characters without '/' or spaces, e.g. cgwd0",
            ));
        }
        if let Some(mtu) = self.interface.mtu
            && !(576..=1446).contains(&mtu)
        {
            return Err(bad(
                "interface.mtu",
                format!("MTU {mtu} is outside 576 … 1446 (AWS's largest tunnel MTU)"),
                "leave it out to let cgwd derive it from the negotiated suite",
            ));
        }
        for (key, list) in [
            ("routing.vpc_cidrs", &self.routing.vpc_cidrs),
            ("routing.onprem_cidrs", &self.routing.onprem_cidrs),
        ] {
            if let Some(net) = list.iter().find(|n| n.trunc() != **n) {
                return Err(bad(
                    key,
                    format!("{net} has host bits set"),
                    &format!("write the network address, {}", net.trunc()),
                ));
            }
        }
        if let Some(size) = self.ike.fragment_size
            && size != 0
            && size < MIN_FRAGMENT_SIZE
        {
            return Err(bad(
                "ike.fragment_size",
                format!("{size} octets is below {MIN_FRAGMENT_SIZE}"),
                "use 0 (no fragmentation) or 576 … 65535; leave it out for 1280",
            ));
        }
        let max_wait = crate::dataplane::answer_wait::MAX_BUDGET.as_micros();
        if let Some(us) = self.interface.answer_wait_us
            && u128::from(us) > max_wait
        {
            return Err(bad(
                "interface.answer_wait_us",
                format!("{us} µs is more than {max_wait} µs"),
                &format!("use 0 (never wait) up to {max_wait}; leave it out for 250"),
            ));
        }
        if let Some(i) = self.dpd.interval
            && !(1..=3600).contains(&i)
        {
            return Err(bad(
                "dpd.interval",
                format!("{i} s is outside 1 … 3600"),
                "use a few seconds (AWS itself checks after 10 s)",
            ));
        }
        let tables = std::iter::once(("tunnels".to_string(), Some(&self.tunnels))).chain(
            self.connections
                .iter()
                .map(|(id, c)| (format!("connections.{id}.tunnels"), c.tunnels.as_ref())),
        );
        for (prefix, tunnels) in tables {
            for id in TunnelId::BOTH {
                if let Some(t) = tunnels.and_then(|t| t.get(id)) {
                    t.check(&format!("{prefix}.{}", id.number()))
                        .map_err(|(key, problem, fix)| bad(&key, problem, &fix))?;
                }
            }
        }
        if self.log.health_interval > 86_400 {
            return Err(bad(
                "log.health_interval",
                format!("{} s is more than a day", self.log.health_interval),
                "use 0 (only on change) or a number of seconds up to 86400",
            ));
        }
        Ok(())
    }

    /// RFC 7383 fragmentation for every IKE SA, from `ike.fragment_size`.
    pub fn ike_fragmentation(&self) -> crate::ike::frag::FragmentConfig {
        let mut f = crate::ike::frag::FragmentConfig::default();
        match self.ike.fragment_size {
            Some(0) => f.enabled = false,
            Some(size) => f.max_datagram = usize::from(size),
            None => {}
        }
        f
    }

    /// How long the data plane may wait on-CPU for an answer, from `interface.answer_wait_us`.
    pub fn answer_wait(&self) -> std::time::Duration {
        crate::dataplane::answer_wait::budget_from_micros(self.interface.answer_wait_us)
    }

    /// Whether the data plane checks inbound sources (customer side): `routing.reverse_path_check`,
    /// unless the user's own BGP daemon installs routes cgwd cannot see.
    pub fn checks_inbound_sources(&self) -> bool {
        self.routing.reverse_path_check && self.bgp.speaker != BgpSpeaker::External
    }

    /// The MTU to set on the TUN device.
    pub fn interface_mtu(&self, conn: &super::VpnConnection) -> u16 {
        self.interface.mtu.unwrap_or_else(|| conn.mtu())
    }

    /// The IKE identity: `local.id`, else the customer outside address AWS has on record.
    pub fn local_id(&self, tunnel: &super::TunnelConfig) -> IpAddr {
        self.local.id.unwrap_or(tunnel.customer_outside)
    }
}

/// A serde/TOML error with the key it concerns and its line.
fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().to_string();
    let (line, key) = match e.span() {
        Some(span) => {
            let (line, _) = line_col(text, span.start);
            (line, key_at(text, span.start))
        }
        None => (0, None),
    };
    let unknown = msg.starts_with("unknown field") || msg.starts_with("unknown variant");
    let location = match (&key, line) {
        (Some(k), l) if l > 0 => format!("line {l}, key {k}"),
        (Some(k), _) => format!("key {k}"),
        (None, l) if l > 0 => format!("line {l}"),
        (None, _) => "settings".into(),
    };
    let (kind, fix) = if msg.starts_with("unknown field") {
        (
            Problem::SettingsKey,
            "remove the key or fix its spelling; see configs/cgwd.toml for every key",
        )
    } else if unknown {
        (Problem::SettingsValue, "use one of the listed values")
    } else {
        (
            Problem::SettingsValue,
            "see configs/cgwd.toml for the expected type of each key",
        )
    };
    ConfigError::invalid(file, kind, location, msg, fix)
}

/// "section.key" for the key written on the line containing `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next().unwrap_or("");
    let mut section = None;
    for l in text.get(..start)?.lines().rev() {
        let l = l.trim();
        if l.starts_with('[') {
            section = Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            break;
        }
    }
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return Some(trimmed.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    }
    let key = trimmed.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return section;
    }
    Some(match section {
        Some(s) if !key.contains('.') => format!("{s}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_finds_section_and_key() {
        let text = "[interface]\nname = \"x\"\nmtu = \"y\"\n[log]\nhealth = 1\n";
        assert_eq!(
            key_at(text, text.find("\"y\"").unwrap()).as_deref(),
            Some("interface.mtu")
        );
        assert_eq!(
            key_at(text, text.find("1").unwrap()).as_deref(),
            Some("log.health")
        );
        assert_eq!(key_at(text, 0).as_deref(), Some("interface"));
        assert_eq!(key_at("top = 1", 6).as_deref(), Some("top"));
        assert_eq!(key_at("", 99), None);
    }

    #[test]
    fn answer_wait_defaults_turns_off_and_is_bounded() {
        use std::time::Duration;
        let none = |_: &str| None;
        let f = Path::new("t.toml");
        let default = Settings::from_toml("", f, &none).unwrap();
        assert_eq!(default.answer_wait(), Duration::from_micros(250));
        let off = Settings::from_toml("[interface]\nanswer_wait_us = 0\n", f, &none).unwrap();
        assert_eq!(off.answer_wait(), Duration::ZERO);
        let err = Settings::from_toml("[interface]\nanswer_wait_us = 5000\n", f, &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interface.answer_wait_us") && err.contains("1000"),
            "{err}"
        );
        let env = |v: &str| (v == "CGWD_INTERFACE_ANSWER_WAIT_US").then(|| "100".to_string());
        let from_env = Settings::from_toml("", f, &env).unwrap();
        assert_eq!(from_env.answer_wait(), Duration::from_micros(100));
    }

    #[test]
    fn reverse_path_check_is_on_unless_turned_off_in_the_file_or_the_environment() {
        let none = |_: &str| None;
        let f = Path::new("t.toml");
        assert!(
            Settings::from_toml("", f, &none)
                .unwrap()
                .routing
                .reverse_path_check
        );
        let off = Settings::from_toml("[routing]\nreverse_path_check = false\n", f, &none).unwrap();
        assert!(!off.routing.reverse_path_check);
        assert!(Settings::from_toml("[routing]\nreverse_path_check = \"no\"\n", f, &none).is_err());
        let var = "CGWD_ROUTING_REVERSE_PATH_CHECK";
        assert_eq!(env_var_name("routing", "reverse_path_check"), var);
        for (value, want) in [("false", false), (" true ", true)] {
            let env = |v: &str| (v == var).then(|| value.to_string());
            let s = Settings::from_toml("[routing]\nreverse_path_check = true\n", f, &env).unwrap();
            assert_eq!(s.routing.reverse_path_check, want, "{value:?}");
        }
        let env = |v: &str| (v == var).then(|| "0".to_string());
        let err = Settings::from_toml("", f, &env).unwrap_err().to_string();
        assert!(err.contains(var) && err.contains("true or false"), "{err}");
        // Per connection, like the rest of [routing].
        let per = "[connections.vpn-1.routing]\nreverse_path_check = false\n";
        let s = Settings::from_toml(per, f, &none).unwrap();
        assert!(s.routing.reverse_path_check);
        assert!(!s.for_connection("vpn-1").routing.reverse_path_check);
        // The data plane's view: off too while the user's BGP daemon owns the routes.
        assert!(s.checks_inbound_sources() && !s.for_connection("vpn-1").checks_inbound_sources());
        let external = Settings::from_toml("[bgp]\nspeaker = \"external\"\n", f, &none).unwrap();
        assert!(external.routing.reverse_path_check && !external.checks_inbound_sources());
    }

    #[test]
    fn ike_fragment_size_defaults_disables_and_bounds() {
        let none = |_: &str| None;
        let f = Path::new("t.toml");
        let default = Settings::from_toml("", f, &none).unwrap().ike_fragmentation();
        assert!(default.enabled);
        assert_eq!(default.max_datagram, 1280);
        let off = Settings::from_toml("[ike]\nfragment_size = 0\n", f, &none).unwrap();
        assert!(!off.ike_fragmentation().enabled);
        let small = Settings::from_toml("[ike]\nfragment_size = 600\n", f, &none).unwrap();
        assert_eq!(small.ike_fragmentation().max_datagram, 600);
        assert!(Settings::from_toml("[ike]\nfragment_size = 100\n", f, &none).is_err());
        let env = |v: &str| (v == "CGWD_IKE_FRAGMENT_SIZE").then(|| "1400".to_string());
        let from_env = Settings::from_toml("", f, &env).unwrap();
        assert_eq!(from_env.ike_fragmentation().max_datagram, 1400);
    }

    #[test]
    fn health_log_forms() {
        assert_eq!("stderr".parse::<HealthLog>(), Ok(HealthLog::Stderr));
        assert_eq!("stdout".parse::<HealthLog>(), Ok(HealthLog::Stdout));
        assert_eq!(
            "/var/log/h.jsonl".parse::<HealthLog>(),
            Ok(HealthLog::File("/var/log/h.jsonl".into()))
        );
        assert!("".parse::<HealthLog>().is_err());
        assert_eq!("status".parse::<HealthFormat>(), Ok(HealthFormat::Status));
        assert_eq!(
            HealthFormat::Aws.name().parse::<HealthFormat>(),
            Ok(HealthFormat::Aws)
        );
        assert!("text".parse::<HealthFormat>().is_err());
        assert_eq!("stay".parse::<FailoverPolicy>(), Ok(FailoverPolicy::Stay));
        assert!("x".parse::<FailoverPolicy>().is_err());
        for p in [
            FailoverPolicy::PreferTunnel1,
            FailoverPolicy::Stay,
            FailoverPolicy::ActiveActive,
        ] {
            assert_eq!(p.name().parse::<FailoverPolicy>(), Ok(p));
        }
    }
}
