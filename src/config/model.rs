//! The validated model of one AWS VPN connection: what every other part of cgwd reads.
//!
//! Nothing here parses text; [`super::build`] turns the parsers' drafts into these types and refuses
//! anything AWS itself would refuse, so a `VpnConnection` in hand is always usable.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::sa::{TrafficSelector, TunnelId};
use crate::secret::Secret;
use crate::suite::{DhGroup, Encryption, Integrity};

/// Which of the three AWS downloads a connection was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// `CustomerGatewayConfiguration` XML on its own.
    Xml,
    /// `aws ec2 describe-vpn-connections` output (XML string + `Options.TunnelOptions`).
    DescribeJson,
    /// The console's "Generic / Vendor Agnostic" text download.
    GenericText,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Xml => "CustomerGatewayConfiguration XML",
            Self::DescribeJson => "describe-vpn-connections JSON",
            Self::GenericText => "Generic text download",
        })
    }
}

/// One validated AWS Site-to-Site VPN connection: always exactly two tunnels. Equality (reload:
/// which connections changed) covers every field, the PSKs included.
#[derive(Debug, Clone, PartialEq)]
pub struct VpnConnection {
    /// `vpn-…`.
    pub id: String,
    /// `cgw-…`.
    pub customer_gateway_id: String,
    /// `vgw-…`; `None` for transit-gateway attachments (AWS leaves the XML element empty).
    pub vpn_gateway_id: Option<String>,
    /// `tgw-…`; only describe JSON carries it.
    pub transit_gateway_id: Option<String>,
    pub routing: Routing,
    /// Index 0 is tunnel 1. Describe JSON numbers tunnels in `TunnelOptions` order; XML and text in
    /// document order (nothing better is known for them).
    pub tunnels: [TunnelConfig; 2],
    pub format: SourceFormat,
    /// `PreSharedKeyArn` (describe JSON): the Secrets Manager secret AWS keeps the tunnels' keys
    /// in. cgwd never reads it; such keys come from the settings (`[tunnels.N]`).
    pub psk_arn: Option<String>,
    /// The connection's IP versions, as far as the file says.
    pub ip: IpOptions,
    /// Things `check` should tell the user (weak algorithms allowed, IKEv1 download, …).
    pub notes: Vec<String>,
    /// The customer gateway's certificate, key and CA chain from `[auth]`, loaded and checked;
    /// `None` when the settings name none.
    pub certificate: Option<super::cert::CertIdentity>,
}

impl VpnConnection {
    pub fn tunnel(&self, id: TunnelId) -> &TunnelConfig {
        &self.tunnels[id.index()]
    }

    /// The interface MTU that fits every suite either tunnel may negotiate.
    pub fn mtu(&self) -> u16 {
        self.tunnels[0].mtu().min(self.tunnels[1].mtu())
    }
}

/// `OutsideIpAddressType`: what the tunnels' outside (IKE/ESP) addresses are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OutsideIpAddressType {
    /// AWS's default.
    PublicIpv4,
    /// Private IP VPN over Direct Connect.
    PrivateIpv4,
    Ipv6,
}

impl OutsideIpAddressType {
    pub const ALL: [OutsideIpAddressType; 3] = [Self::PublicIpv4, Self::PrivateIpv4, Self::Ipv6];

    pub fn aws_name(self) -> &'static str {
        match self {
            Self::PublicIpv4 => "PublicIpv4",
            Self::PrivateIpv4 => "PrivateIpv4",
            Self::Ipv6 => "Ipv6",
        }
    }
}

/// `TunnelInsideIpVersion`: which IP version the tunnels carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InsideIpVersion {
    /// AWS's default.
    Ipv4,
    /// Transit gateway and Cloud WAN only.
    Ipv6,
}

impl InsideIpVersion {
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

/// The connection-level IP-version options of describe JSON (`Options`); `None` where the file does
/// not say (XML and Generic text never do). The per-tunnel inside IPv6 /126 is
/// [`TunnelConfig::inside_ipv6`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IpOptions {
    pub outside_ip_address_type: Option<OutsideIpAddressType>,
    pub tunnel_inside_ip_version: Option<InsideIpVersion>,
    /// `LocalIpv6NetworkCidr` (customer side; AWS's default `::/0`).
    pub local_ipv6_network_cidr: Option<Ipv6Net>,
    /// `RemoteIpv6NetworkCidr` (AWS side; AWS's default `::/0`).
    pub remote_ipv6_network_cidr: Option<Ipv6Net>,
}

/// How routes are exchanged with AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Routing {
    /// Static routes configured on the AWS side (`NoBGPVPNConnection`).
    Static,
    /// eBGP over each tunnel's inside /30; neighbor = the AWS inside address.
    Bgp {
        customer_asn: u32,
        aws_asn: u32,
        /// Seconds (AWS uses 30; keepalive is a third of it).
        hold_time: u16,
    },
}

/// An IKE version a tunnel allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IkeVersion {
    Ikev1,
    Ikev2,
}

impl IkeVersion {
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Ikev1 => "ikev1",
            Self::Ikev2 => "ikev2",
        }
    }
}

/// What AWS does when its DPD declares the customer gateway dead (`DPDTimeoutAction`). cgwd itself
/// always re-initiates; this is kept so `check` and health logs can explain AWS's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    Clear,
    None,
    Restart,
}

impl DpdAction {
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::None => "none",
            Self::Restart => "restart",
        }
    }
}

/// Who starts IKE (`StartupAction`): `add` = AWS waits for cgwd, `start` = AWS initiates too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartupAction {
    Add,
    Start,
}

impl StartupAction {
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Start => "start",
        }
    }
}

/// What cgwd offers in IKE_SA_INIT, strongest first. With AEAD encryption `integrity` names only the
/// PRF hash (AWS requires PRF = integrity hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Phase1Offer {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub dh_groups: Vec<DhGroup>,
}

/// What cgwd offers for the Child SA, strongest first. `integrity` applies to non-AEAD encryption
/// only; `pfs_groups` is never empty because AWS requires PFS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Phase2Offer {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub pfs_groups: Vec<DhGroup>,
}

/// Where a value came from, so `check` can explain every choice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "why")]
pub enum Origin {
    /// `Options.TunnelOptions[]` of describe JSON.
    TunnelOptions,
    /// Connection-level `Options` of describe JSON (traffic selectors).
    ConnectionOptions,
    /// The `CustomerGatewayConfiguration` XML (also when embedded in JSON).
    Xml,
    /// The Generic text download.
    GenericText,
    /// The cgwd settings file or `CGWD_*` environment.
    Settings,
    /// A tunnel's key, read from where the settings point (`psk_file /etc/cgwd/…`).
    PskSetting(String),
    /// Chosen by cgwd; the string says why.
    CgwdDefault(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TunnelOptions => f.write_str("from TunnelOptions"),
            Self::ConnectionOptions => f.write_str("from connection Options"),
            Self::Xml => f.write_str("from the XML"),
            Self::GenericText => f.write_str("from the Generic text"),
            Self::Settings => f.write_str("from cgwd settings"),
            Self::PskSetting(source) => write!(f, "from {source}"),
            Self::CgwdDefault(why) => write!(f, "chosen by cgwd because {why}"),
        }
    }
}

/// Field name (as printed by `check --json`) → where its value came from.
pub type Provenance = BTreeMap<&'static str, Origin>;

/// Which IKE exchange a lifetime belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The IKE SA.
    One,
    /// The Child (IPsec) SA.
    Two,
}

/// When cgwd should start a rekey, measured from SA establishment. cgwd rekeys before AWS's own
/// window opens (lifetime − margin) so AWS rarely has to, and collisions stay rare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RekeyWindow {
    pub earliest: Duration,
    pub latest: Duration,
}

impl RekeyWindow {
    /// cgwd's window for an SA of `lifetime`: it ends where AWS's opens (lifetime − margin; AWS rekeys at
    /// a random point of the last `margin`) and spans `margin × fuzz%` before that, never before half
    /// the lifetime (an SA that lives long enough to be worth its exchange) nor before 1 s.
    /// The one definition: `cgwd check` prints it and the IKE SA draws its rekey instant from it.
    pub fn new(lifetime: Duration, margin: Duration, fuzz_percent: u32) -> RekeyWindow {
        let floor = (lifetime / 2).max(Duration::from_secs(1));
        let latest = lifetime.saturating_sub(margin).max(floor);
        let spread = margin.mul_f64(f64::from(fuzz_percent.min(100)) / 100.0);
        let earliest = latest.saturating_sub(spread).max(floor);
        RekeyWindow { earliest, latest }
    }

    /// The instant at `permille` (0..=1000, from the caller's RNG) through the window.
    pub fn at(&self, permille: u16) -> Duration {
        let span = self.latest.saturating_sub(self.earliest);
        self.earliest + span.mul_f64(f64::from(permille.min(1000)) / 1000.0)
    }
}

/// One of the connection's two tunnels, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelConfig {
    pub id: TunnelId,
    /// AWS endpoint ("Virtual Private Gateway" outside address); the key that ties XML tunnels to
    /// `TunnelOptions`.
    pub aws_outside: IpAddr,
    /// The address registered on the customer gateway (a NAT's public address if cgwd sits behind
    /// NAT). Also the default IKE ID.
    pub customer_outside: IpAddr,
    /// Inside /30 in 169.254.0.0/16: AWS = network+1, customer = network+2.
    pub inside: Ipv4Net,
    /// Inside /126 for IPv6 tunnels (transit gateway only): AWS = network+1, customer = network+2.
    pub inside_ipv6: Option<Ipv6Net>,
    /// From the AWS file or, overriding it, from the settings (`provenance["psk"]` says which).
    /// `None`: the tunnel authenticates with the customer gateway's certificate
    /// ([`VpnConnection::certificate`]): AWS lists one for it and no key was given.
    pub psk: Option<Secret>,
    /// `VgwTelemetry[].CertificateArn` (describe JSON): AWS lists a certificate for this endpoint.
    /// A tunnel with a key authenticates with it regardless.
    pub certificate_arn: Option<String>,
    /// What the tunnel allows; cgwd speaks IKEv2, so this always contains it.
    pub ike_versions: Vec<IkeVersion>,
    pub phase1: Phase1Offer,
    pub phase2: Phase2Offer,
    pub phase1_lifetime_secs: u32,
    pub phase2_lifetime_secs: u32,
    /// AWS rekeys within this many seconds before expiry (`RekeyMarginTimeSeconds`).
    pub rekey_margin_secs: u32,
    /// Percentage of the margin over which the rekey instant is randomised.
    pub rekey_fuzz_percent: u8,
    /// Anti-replay window in packets.
    pub replay_window: u32,
    /// Seconds of silence after which a liveness check is sent.
    pub dpd_interval_secs: u32,
    /// AWS declares the peer dead after this many seconds without answer.
    pub dpd_timeout_secs: u32,
    pub dpd_action: DpdAction,
    pub startup_action: StartupAction,
    /// Customer-side selector (`LocalIpv4NetworkCidr`).
    pub local_ts: Ipv4Net,
    /// AWS-side selector (`RemoteIpv4NetworkCidr`).
    pub remote_ts: Ipv4Net,
    /// IPv6-inside tunnels: the selectors (`LocalIpv6NetworkCidr`, `RemoteIpv6NetworkCidr`, AWS's
    /// default ::/0) that replace the IPv4 ones, since a connection carries one IP version.
    pub ts_v6: Option<(Ipv6Net, Ipv6Net)>,
    /// The MSS AWS's download recommends (informational; cgwd clamps to [`Self::mss`]).
    pub tcp_mss_adjustment: Option<u16>,
    pub clear_df_bit: bool,
    pub fragmentation_before_encryption: bool,
    pub provenance: Provenance,
}

/// AWS's recommended tunnel MTU for a Child SA suite with NAT-T (FACTS §2.10, UG-CGW table).
///
/// cgwd always UDP-encapsulates ESP (its data plane lives in userspace and needs a UDP socket), so
/// the NAT-T rows apply even when no NAT is in the path: 8 bytes less than the plain-ESP rows.
pub fn mtu_for(encryption: Encryption, integrity: Option<Integrity>) -> u16 {
    if encryption.is_aead() {
        return 1438;
    }
    match integrity {
        Some(Integrity::Sha2_512) => 1406,
        // SHA1, SHA2-256, SHA2-384 (and the "no integrity" case, which AWS never allows with CBC).
        _ => 1422,
    }
}

/// How much more an IPv6 outside header takes than an IPv4 one (40 against 20 octets): the
/// tunnel MTU, and with it the MSS clamp, is this much smaller over IPv6 outside addresses.
pub const IPV6_OUTSIDE_EXTRA: u16 = 20;

/// IPv4 TCP MSS for an interface MTU: 20 bytes IPv4 + 20 bytes TCP.
pub fn mss_for_mtu(mtu: u16) -> u16 {
    mtu.saturating_sub(40)
}

impl TunnelConfig {
    /// AWS's inside address (network+1): the BGP neighbor / static next hop.
    pub fn aws_inside(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.inside.network()).wrapping_add(1))
    }

    /// Our inside address (network+2), put on the TUN device.
    pub fn customer_inside(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.inside.network()).wrapping_add(2))
    }

    pub fn aws_inside_ipv6(&self) -> Option<Ipv6Addr> {
        self.inside_ipv6
            .map(|n| Ipv6Addr::from(u128::from(n.network()).wrapping_add(1)))
    }

    pub fn customer_inside_ipv6(&self) -> Option<Ipv6Addr> {
        self.inside_ipv6
            .map(|n| Ipv6Addr::from(u128::from(n.network()).wrapping_add(2)))
    }

    /// The smallest MTU over every phase-2 suite cgwd offers: correct whichever AWS picks. After
    /// negotiation, [`mtu_for`] on the chosen suite gives the exact value.
    /// Over IPv6 outside addresses every value is [`IPV6_OUTSIDE_EXTRA`] (20) less: the outer
    /// IPv6 header is 40 octets where IPv4's is 20.
    pub fn mtu(&self) -> u16 {
        let mut mtu = u16::MAX;
        for &enc in &self.phase2.encryption {
            if enc.is_aead() {
                mtu = mtu.min(mtu_for(enc, None));
            } else {
                for &integ in &self.phase2.integrity {
                    mtu = mtu.min(mtu_for(enc, Some(integ)));
                }
            }
        }
        let mtu = if mtu == u16::MAX { 1406 } else { mtu };
        if self.aws_outside.is_ipv6() {
            mtu - IPV6_OUTSIDE_EXTRA
        } else {
            mtu
        }
    }

    /// IPv4 TCP MSS to clamp to on this tunnel.
    pub fn mss(&self) -> u16 {
        mss_for_mtu(self.mtu())
    }

    /// IPv6 TCP MSS (40-byte IPv6 header).
    pub fn mss_ipv6(&self) -> u16 {
        self.mtu().saturating_sub(60)
    }

    pub fn lifetime(&self, phase: Phase) -> Duration {
        Duration::from_secs(u64::from(match phase {
            Phase::One => self.phase1_lifetime_secs,
            Phase::Two => self.phase2_lifetime_secs,
        }))
    }

    /// When cgwd should rekey an SA of this phase ([`RekeyWindow::new`]).
    pub fn rekey_window(&self, phase: Phase) -> RekeyWindow {
        RekeyWindow::new(
            self.lifetime(phase),
            Duration::from_secs(u64::from(self.rekey_margin_secs)),
            u32::from(self.rekey_fuzz_percent),
        )
    }

    /// The rekey instant at `permille` through [`Self::rekey_window`].
    pub fn rekey_time(&self, phase: Phase, permille: u16) -> Duration {
        self.rekey_window(phase).at(permille)
    }

    pub fn dpd_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.dpd_interval_secs))
    }

    pub fn dpd_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.dpd_timeout_secs))
    }

    /// Our Child SA selector (TSi when we initiate).
    pub fn local_traffic_selector(&self) -> TrafficSelector {
        match self.ts_v6 {
            Some((local, _)) => selector_v6(local),
            None => selector(self.local_ts),
        }
    }

    /// AWS's Child SA selector.
    pub fn remote_traffic_selector(&self) -> TrafficSelector {
        match self.ts_v6 {
            Some((_, remote)) => selector_v6(remote),
            None => selector(self.remote_ts),
        }
    }

    /// The tunnel carries IPv6 inside (`TunnelInsideIpVersion` ipv6).
    pub fn is_inside_ipv6(&self) -> bool {
        self.ts_v6.is_some()
    }

    /// Where a field's value came from (`None` for fields that are always from the file).
    pub fn origin(&self, field: &str) -> Option<&Origin> {
        self.provenance.get(field)
    }
}

fn selector_v6(net: Ipv6Net) -> TrafficSelector {
    TrafficSelector {
        v6: Some(crate::sa::Ipv6Range::prefix(net.network(), net.prefix_len())),
        ..TrafficSelector::ANY_V6
    }
}

fn selector(net: Ipv4Net) -> TrafficSelector {
    TrafficSelector {
        start: net.network(),
        end: net.broadcast(),
        ..TrafficSelector::ANY
    }
}

/// Sorts algorithms strongest first by the program's one strength order ([`Encryption::strength`],
/// [`Integrity::strength`], [`DhGroup::strength`]): the order cgwd offers them and `cgwd check` shows.
pub fn strongest_first<T: Copy>(items: &mut [T], strength: impl Fn(T) -> u8) {
    items.sort_by_key(|&x| std::cmp::Reverse(strength(x)));
}

/// cgwd's offer when the file carries no algorithm lists (XML, Generic text) or an empty list (AWS
/// default = everything allowed).
///
/// AWS allows all of these by default and, when several are offered, picks the *lowest* it allows
/// regardless of order (UG-TO), so the only way to get strong crypto is to offer nothing weak:
/// AES-GCM-256 / AES-CBC-256, SHA-2 only, and DH groups 21/20/19 (ECP) with 16/15/14 (MODP ≥ 2048)
/// as fallbacks. Phase 2 offers only AES256-GCM-16: it is the fastest suite in the data plane and
/// gives the largest tunnel MTU (1438 with UDP encapsulation); AWS accepts it on every tunnel whose
/// options were not narrowed — and a narrowed tunnel needs the describe JSON anyway.
pub mod defaults {
    use super::*;

    pub const PHASE1_ENCRYPTION: [Encryption; 1] = [Encryption::Aes256Gcm16];
    pub const PHASE1_INTEGRITY: [Integrity; 3] =
        [Integrity::Sha2_512, Integrity::Sha2_384, Integrity::Sha2_256];
    pub const PHASE2_ENCRYPTION: [Encryption; 1] = [Encryption::Aes256Gcm16];
    pub const PHASE2_INTEGRITY: [Integrity; 3] =
        [Integrity::Sha2_512, Integrity::Sha2_384, Integrity::Sha2_256];
    pub const DH_GROUP_NUMBERS: [u16; 6] = [21, 20, 19, 16, 15, 14];

    pub fn dh_groups() -> Vec<DhGroup> {
        DH_GROUP_NUMBERS.iter().filter_map(|&n| DhGroup::new(n)).collect()
    }

    pub const PHASE1_LIFETIME_SECS: u32 = 28800;
    pub const PHASE2_LIFETIME_SECS: u32 = 3600;
    /// Current AWS docs say 270, older ones 540. When the file does not say, cgwd assumes the
    /// larger one, so its own rekey window ends before AWS's opens under either default.
    pub const REKEY_MARGIN_SECS: u32 = 540;
    pub const REKEY_FUZZ_PERCENT: u8 = 100;
    pub const REPLAY_WINDOW: u32 = 1024;
    /// AWS probes after 10 s of silence (FACTS §2.5).
    pub const DPD_INTERVAL_SECS: u32 = 10;
    /// The user guide's 30 s (newer API docs say 40): the shorter one, so cgwd never assumes AWS
    /// waits longer than it may.
    pub const DPD_TIMEOUT_SECS: u32 = 30;
}
