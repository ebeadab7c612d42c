//! Drafts (what a parser found, as text, with where it found it) → validated [`VpnConnection`].
//!
//! All three parsers fill the same draft, so every rule (inside /30s, PSK charset, IKEv2, algorithm
//! names, ranges, tunnel matching) is checked once, with the same messages, whatever the format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

/// ASNs AWS keeps for its own gateways (7224 in every Region, 9059 eu-west-1, 10124
/// ap-northeast-1, 17943 ap-southeast-1): a customer gateway cannot use them.
const RESERVED_CUSTOMER_ASNS: [u32; 4] = [7224, 9059, 10124, 17943];

use ipnet::{Ipv4Net, Ipv6Net};

use super::error::{ConfigError, Problem};
use super::model::*;
use super::psk::{PLACEHOLDER, PskLookup, is_placeholder};
use crate::sa::TunnelId;
use crate::secret::Secret;
use crate::suite::{DhGroup, Encryption, Integrity};

/// A whole number as AWS writes it (`28800`, `28800 seconds`, `1024 bytes`).
fn plain_number(value: &str) -> Option<u64> {
    let text = value.trim();
    let text = text
        .strip_suffix("seconds")
        .or_else(|| text.strip_suffix("bytes"))
        .unwrap_or(text)
        .trim();
    text.parse().ok()
}

/// A value as written in the file, and where (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub value: String,
    pub at: String,
}

impl At {
    pub fn new(value: impl Into<String>, at: impl Into<String>) -> Self {
        At {
            value: value.into(),
            at: at.into(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct DraftConnection {
    pub id: Option<At>,
    pub customer_gateway_id: Option<At>,
    pub vpn_gateway_id: Option<String>,
    pub transit_gateway_id: Option<String>,
    /// XML `vpn_connection_attributes` contains `NoBGP`, or the text has a static routing section.
    pub declared_static: bool,
    /// JSON `Options.StaticRoutesOnly`.
    pub static_routes_only: Option<bool>,
    pub tunnels: Vec<DraftTunnel>,
    /// Tunnels seen beyond those kept in `tunnels` (parsers stop building drafts after three, so
    /// a hostile file with thousands costs nothing; the count still goes into the error).
    pub extra_tunnels: usize,
    /// Where the tunnels live (for "expected two tunnels" errors).
    pub tunnels_at: String,
    /// JSON only: `Options.TunnelOptions`, and where that list is.
    pub options: Option<(Vec<DraftOptions>, String)>,
    pub local_ts: Option<At>,
    pub remote_ts: Option<At>,
    /// JSON `Options.OutsideIpAddressType`, `TunnelInsideIpVersion`, `LocalIpv6NetworkCidr`,
    /// `RemoteIpv6NetworkCidr`.
    pub outside_ip_type: Option<At>,
    pub inside_ip_version: Option<At>,
    pub local_ipv6_ts: Option<At>,
    pub remote_ipv6_ts: Option<At>,
    /// JSON `PreSharedKeyArn`.
    pub psk_arn: Option<At>,
    /// JSON `VgwTelemetry[]` entries with a `CertificateArn`: (OutsideIpAddress, CertificateArn).
    pub certificates: Vec<(At, At)>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct DraftTunnel {
    pub at: String,
    pub aws_outside: Option<At>,
    pub customer_outside: Option<At>,
    pub aws_inside: Option<At>,
    pub customer_inside: Option<At>,
    /// Prefix length of the inside network (`network_cidr`, or the `/30` of a text line).
    pub inside_prefix: Option<At>,
    pub aws_inside_ipv6: Option<At>,
    pub customer_inside_ipv6: Option<At>,
    pub inside_ipv6_prefix: Option<At>,
    pub psk: Option<At>,
    /// A `<bgp>` element or a BGP section was present.
    pub bgp_seen: bool,
    pub customer_asn: Option<At>,
    pub aws_asn: Option<At>,
    pub hold_time: Option<At>,
    pub phase1_lifetime: Option<At>,
    pub phase2_lifetime: Option<At>,
    pub dpd_interval: Option<At>,
    pub dpd_retries: Option<At>,
    pub tcp_mss: Option<At>,
    pub clear_df: Option<At>,
    pub fragmentation: Option<At>,
    /// Generic text: the IKE version the download was made for.
    pub ike_version: Option<At>,
    /// Generic text: "Authentication Method" (`Pre-Shared Key`, or a certificate).
    pub auth_method: Option<At>,
}

/// One `Options.TunnelOptions[]` entry.
#[derive(Debug, Default)]
pub(crate) struct DraftOptions {
    pub at: String,
    pub outside: Option<At>,
    pub inside_cidr: Option<At>,
    pub inside_ipv6_cidr: Option<At>,
    pub psk: Option<At>,
    pub phase1_lifetime: Option<At>,
    pub phase2_lifetime: Option<At>,
    pub rekey_margin: Option<At>,
    pub rekey_fuzz: Option<At>,
    pub replay_window: Option<At>,
    pub dpd_timeout: Option<At>,
    pub dpd_action: Option<At>,
    pub startup_action: Option<At>,
    pub ike_versions: Option<(Vec<At>, String)>,
    pub phase1_encryption: Option<(Vec<At>, String)>,
    pub phase2_encryption: Option<(Vec<At>, String)>,
    pub phase1_integrity: Option<(Vec<At>, String)>,
    pub phase2_integrity: Option<(Vec<At>, String)>,
    pub phase1_dh: Option<(Vec<At>, String)>,
    pub phase2_dh: Option<(Vec<At>, String)>,
}

pub(crate) struct Builder<'a> {
    pub file: &'a Path,
    pub format: SourceFormat,
    pub limits: super::Limits,
    /// Keys from the settings ([`super::psk::FileOnly`] for the AWS file alone).
    pub psks: &'a dyn PskLookup,
}

/// What a tunnel needs to know of its connection.
struct TunnelCtx<'c> {
    conn_id: &'c str,
    /// `PreSharedKeyArn`, for the error of a tunnel without a key.
    psk_arn: Option<&'c At>,
    /// `VgwTelemetry[]` (OutsideIpAddress, CertificateArn) pairs.
    certificates: &'c [(At, At)],
}

type R<T> = Result<T, ConfigError>;

/// AWS's reserved inside /30s (UG-TO, API-MTO).
const RESERVED_INSIDE: [&str; 7] = [
    "169.254.0.0/30",
    "169.254.1.0/30",
    "169.254.2.0/30",
    "169.254.3.0/30",
    "169.254.4.0/30",
    "169.254.5.0/30",
    "169.254.169.252/30",
];

impl Builder<'_> {
    fn err(
        &self,
        kind: Problem,
        at: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(self.file, kind, at, problem, fix)
    }

    fn missing(&self, at: &str, what: &str, fix: &str) -> ConfigError {
        self.err(Problem::MissingField, at, format!("{what} is missing"), fix)
    }

    fn file_origin(&self) -> Origin {
        match self.format {
            SourceFormat::GenericText => Origin::GenericText,
            _ => Origin::Xml,
        }
    }

    fn no_lists_reason(&self) -> String {
        match self.format {
            SourceFormat::GenericText => "the Generic text shows only AWS's baseline algorithms, \
                                          not the tunnel options; cgwd offers a strong set AWS \
                                          allows by default"
                .into(),
            _ => "the XML carries no IKEv2 algorithms; cgwd offers a strong set AWS allows by \
                  default"
                .into(),
        }
    }

    pub fn build(&self, mut d: DraftConnection) -> R<VpnConnection> {
        let id =
            d.id.take()
                .filter(|a| !a.value.is_empty())
                .ok_or_else(|| {
                    self.missing(
                        &d.tunnels_at,
                        "the VPN connection ID (vpn-…)",
                        "use the file exactly as AWS produced it",
                    )
                })?
                .value;
        let customer_gateway_id = d
            .customer_gateway_id
            .take()
            .filter(|a| !a.value.is_empty())
            .ok_or_else(|| {
                self.missing(
                    &d.tunnels_at,
                    "the customer gateway ID (cgw-…)",
                    "use the file exactly as AWS produced it",
                )
            })?
            .value;

        if d.tunnels.len() + d.extra_tunnels != 2 {
            return Err(self.err(
                Problem::TunnelCount,
                &d.tunnels_at,
                format!(
                    "found {} tunnel(s); an AWS VPN connection always has exactly two",
                    d.tunnels.len() + d.extra_tunnels
                ),
                "use the complete, unedited file AWS produced for one VPN connection",
            ));
        }

        // Pair XML/text tunnels with TunnelOptions by AWS outside address, never by position.
        let mut aws_addrs = Vec::with_capacity(2);
        for t in &d.tunnels {
            let a = t.aws_outside.as_ref().ok_or_else(|| {
                self.missing(
                    &t.at,
                    "the AWS (virtual private gateway) outside address",
                    "use the complete file AWS produced",
                )
            })?;
            aws_addrs.push(self.ip(a, "AWS outside address")?);
        }
        if aws_addrs[0] == aws_addrs[1] {
            return Err(self.err(
                Problem::DuplicateTunnel,
                &d.tunnels[1].at,
                format!("both tunnels use the AWS outside address {}", aws_addrs[0]),
                "each tunnel has its own AWS endpoint; use the unedited file",
            ));
        }

        let mut tunnels = std::mem::take(&mut d.tunnels);
        let mut pairs: Vec<(DraftTunnel, Option<DraftOptions>)> = Vec::with_capacity(2);
        match d.options.take() {
            None => pairs.extend(tunnels.into_iter().map(|t| (t, None))),
            Some((opts, opts_at)) => {
                if opts.len() != 2 {
                    return Err(self.err(
                        Problem::TunnelCount,
                        &opts_at,
                        format!(
                            "TunnelOptions has {} entries; an AWS VPN connection always has exactly two",
                            opts.len()
                        ),
                        "use the unedited describe-vpn-connections output",
                    ));
                }
                for o in opts {
                    let out = o.outside.as_ref().ok_or_else(|| {
                        self.missing(&o.at, "OutsideIpAddress", "use the unedited describe output")
                    })?;
                    let addr = self.ip(out, "TunnelOptions OutsideIpAddress")?;
                    let pos = tunnels
                        .iter()
                        .position(|t| {
                            t.aws_outside
                                .as_ref()
                                .and_then(|a| IpAddr::from_str(a.value.trim()).ok())
                                == Some(addr)
                        })
                        .ok_or_else(|| {
                            self.err(
                                Problem::UnmatchedTunnelOptions,
                                &out.at,
                                format!(
                                    "TunnelOptions OutsideIpAddress {addr} matches no tunnel of the \
                                     CustomerGatewayConfiguration XML (its AWS outside addresses: {})",
                                    aws_addrs
                                        .iter()
                                        .map(ToString::to_string)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                                "the XML and TunnelOptions must come from the same describe-vpn-connections \
                                 call; fetch it again",
                            )
                        })?;
                    let t = tunnels.swap_remove(pos);
                    pairs.push((t, Some(o)));
                }
            }
        }

        let local_ts = self.selector(d.local_ts.as_ref(), "LocalIpv4NetworkCidr")?;
        let remote_ts = self.selector(d.remote_ts.as_ref(), "RemoteIpv4NetworkCidr")?;
        let ip = self.ip_options(&d)?;

        let ctx = TunnelCtx {
            conn_id: &id,
            psk_arn: d.psk_arn.as_ref(),
            certificates: &d.certificates,
        };
        let mut built = Vec::with_capacity(2);
        for (i, (t, o)) in pairs.into_iter().enumerate() {
            let id = if i == 0 { TunnelId::One } else { TunnelId::Two };
            built.push(self.tunnel(id, &ctx, &t, o.as_ref(), (&local_ts, &remote_ts), &mut d.notes)?);
        }
        self.check_outside_type(&d, &ip, &built)?;
        let inside_v6 = ip.tunnel_inside_ip_version == Some(InsideIpVersion::Ipv6)
            || built.iter().any(|(t, _)| t.inside_ipv6.is_some());
        if inside_v6 {
            let all: Ipv6Net = Ipv6Net::default();
            // The IPv4 selectors do not apply: say where the IPv6 ones came from.
            let origin = |set: bool, what: &str| {
                if set {
                    Origin::ConnectionOptions
                } else {
                    Origin::CgwdDefault(format!("the file does not set {what}; AWS's default is ::/0"))
                }
            };
            for (t, _) in &mut built {
                t.ts_v6 = Some((
                    ip.local_ipv6_network_cidr.unwrap_or(all),
                    ip.remote_ipv6_network_cidr.unwrap_or(all),
                ));
                t.provenance.insert(
                    "local_ts",
                    origin(ip.local_ipv6_network_cidr.is_some(), "LocalIpv6NetworkCidr"),
                );
                t.provenance.insert(
                    "remote_ts",
                    origin(ip.remote_ipv6_network_cidr.is_some(), "RemoteIpv6NetworkCidr"),
                );
            }
        }
        let routing = self.routing(&d, &built)?;
        let tunnels: [TunnelConfig; 2] =
            match <[TunnelConfig; 2]>::try_from(built.into_iter().map(|(t, _)| t).collect::<Vec<_>>()) {
                Ok(t) => t,
                Err(_) => unreachable!("exactly two tunnels were checked above"),
            };

        Ok(VpnConnection {
            id,
            customer_gateway_id,
            vpn_gateway_id: d.vpn_gateway_id.filter(|s| !s.trim().is_empty()),
            transit_gateway_id: d.transit_gateway_id.filter(|s| !s.trim().is_empty()),
            routing,
            tunnels,
            format: self.format,
            psk_arn: d.psk_arn.map(|a| a.value.trim().to_string()),
            ip,
            notes: d.notes,
            certificate: None,
        })
    }

    /// `Options.OutsideIpAddressType`, `TunnelInsideIpVersion` and the IPv6 selectors.
    fn ip_options(&self, d: &DraftConnection) -> R<IpOptions> {
        let present = |a: &Option<At>| a.clone().filter(|a| !a.value.trim().is_empty());
        let outside_ip_address_type = match present(&d.outside_ip_type) {
            None => None,
            Some(a) => Some(
                OutsideIpAddressType::ALL
                    .into_iter()
                    .find(|t| t.aws_name().eq_ignore_ascii_case(a.value.trim()))
                    .ok_or_else(|| {
                        self.err(
                            Problem::BadNumber,
                            &a.at,
                            format!(
                                "OutsideIpAddressType `{}` is not PublicIpv4, PrivateIpv4 or Ipv6",
                                a.value.trim()
                            ),
                            "use the unedited describe output",
                        )
                    })?,
            ),
        };
        let tunnel_inside_ip_version = match present(&d.inside_ip_version) {
            None => None,
            Some(a) => Some(match a.value.trim().to_ascii_lowercase().as_str() {
                "ipv4" => InsideIpVersion::Ipv4,
                "ipv6" => InsideIpVersion::Ipv6,
                other => {
                    return Err(self.err(
                        Problem::BadNumber,
                        &a.at,
                        format!("TunnelInsideIpVersion `{other}` is not ipv4 or ipv6"),
                        "use the unedited describe output",
                    ));
                }
            }),
        };
        let cidr6 = |a: Option<At>, what: &str| a.map(|a| self.cidr::<Ipv6Net>(&a, what)).transpose();
        Ok(IpOptions {
            outside_ip_address_type,
            tunnel_inside_ip_version,
            local_ipv6_network_cidr: cidr6(present(&d.local_ipv6_ts), "LocalIpv6NetworkCidr")?,
            remote_ipv6_network_cidr: cidr6(present(&d.remote_ipv6_ts), "RemoteIpv6NetworkCidr")?,
        })
    }

    /// `OutsideIpAddressType` must name the family of every outside address.
    fn check_outside_type(
        &self,
        d: &DraftConnection,
        ip: &IpOptions,
        built: &[(TunnelConfig, BgpDraft)],
    ) -> R<()> {
        let (Some(kind), Some(at)) = (ip.outside_ip_address_type, d.outside_ip_type.as_ref()) else {
            return Ok(());
        };
        let want_v6 = kind == OutsideIpAddressType::Ipv6;
        let odd = built
            .iter()
            .flat_map(|(t, _)| {
                [
                    (t.id, "AWS", t.aws_outside),
                    (t.id, "customer", t.customer_outside),
                ]
            })
            .find(|(_, _, a)| a.is_ipv6() != want_v6);
        match odd {
            None => Ok(()),
            Some((id, side, addr)) => Err(self.err(
                Problem::Conflict,
                &at.at,
                format!(
                    "OutsideIpAddressType {} but {id}'s {side} outside address {addr} is IPv{}",
                    kind.aws_name(),
                    if addr.is_ipv6() { 6 } else { 4 }
                ),
                "use the unedited describe output (the XML and Options come from one call)",
            )),
        }
    }

    fn routing(&self, d: &DraftConnection, built: &[(TunnelConfig, BgpDraft)]) -> R<Routing> {
        let explicit_static = d.declared_static || d.static_routes_only == Some(true);
        let any_bgp = built.iter().any(|(_, b)| b.seen);
        if explicit_static || !(any_bgp || d.static_routes_only == Some(false)) {
            return Ok(Routing::Static);
        }
        let mut result: Option<(u32, u32, u16, String)> = None;
        for (t, b) in built {
            let fix = "a BGP connection needs the customer and AWS ASNs; use the unedited file (or \
                       recreate the connection with static routing)";
            let c = b.customer_asn.as_ref().ok_or_else(|| {
                self.err(
                    Problem::BgpAsn,
                    &b.at,
                    format!("{}: dynamic (BGP) routing but no customer gateway ASN", t.id),
                    fix,
                )
            })?;
            let a = b.aws_asn.as_ref().ok_or_else(|| {
                self.err(
                    Problem::BgpAsn,
                    &b.at,
                    format!("{}: dynamic (BGP) routing but no AWS-side ASN", t.id),
                    fix,
                )
            })?;
            let customer = self.asn(c)?;
            let aws = self.asn(a)?;
            if RESERVED_CUSTOMER_ASNS.contains(&customer) {
                return Err(self.err(
                    Problem::BgpAsn,
                    &c.at,
                    format!("customer gateway ASN {customer} is reserved by AWS for its own gateways"),
                    "recreate the customer gateway with another ASN (a private one: 64512–65534 or 4200000000–4294967294)",
                ));
            }
            if customer == aws {
                return Err(self.err(
                    Problem::BgpAsn,
                    &c.at,
                    format!("the customer gateway and AWS share ASN {customer}, but the session is eBGP"),
                    "give the customer gateway or the AWS side (virtual private / transit gateway) another ASN",
                ));
            }
            let hold = match &b.hold_time {
                Some(h) => self.num::<u16>(h, "BGP hold time", 0, 65535)?,
                None => 30,
            };
            if hold != 0 && hold < 3 {
                return Err(self.err(
                    Problem::BadNumber,
                    &b.hold_time.as_ref().map_or(b.at.clone(), |h| h.at.clone()),
                    format!("BGP hold time {hold} s is not 0 or ≥ 3 (RFC 4271 §4.2)"),
                    "AWS uses 30",
                ));
            }
            if let Some((pc, pa, ph, _)) = &result
                && (*pc, *pa, *ph) != (customer, aws, hold)
            {
                return Err(self.err(
                    Problem::Conflict,
                    &b.at,
                    format!(
                        "the tunnels disagree on BGP: ASNs {pc}/{pa} hold {ph} vs {customer}/{aws} hold {hold}"
                    ),
                    "use the unedited file; both tunnels of a connection share the ASNs",
                ));
            }
            result = Some((customer, aws, hold, b.at.clone()));
        }
        let (customer_asn, aws_asn, hold_time, _) =
            result.ok_or_else(|| self.missing(&d.tunnels_at, "BGP", ""))?;
        Ok(Routing::Bgp {
            customer_asn,
            aws_asn,
            hold_time,
        })
    }

    fn asn(&self, a: &At) -> R<u32> {
        let n = self.num::<u64>(a, "BGP ASN", 1, 4_294_967_294).map_err(|_| {
            self.err(
                Problem::BgpAsn,
                &a.at,
                format!("`{}` is not a BGP ASN (1 … 4294967294)", a.value.trim()),
                "use the ASN AWS shows for the customer gateway / the Amazon side",
            )
        })?;
        Ok(n as u32)
    }

    fn ip(&self, a: &At, what: &str) -> R<IpAddr> {
        IpAddr::from_str(a.value.trim()).map_err(|_| {
            self.err(
                Problem::BadAddress,
                &a.at,
                format!("{what} `{}` is not an IP address", a.value.trim()),
                "write a plain IPv4 address such as 192.0.2.10",
            )
        })
    }

    fn num<T: TryFrom<u64> + Copy>(&self, a: &At, what: &str, min: u64, max: u64) -> R<T> {
        let n: u64 = plain_number(&a.value).ok_or_else(|| {
            self.err(
                Problem::BadNumber,
                &a.at,
                format!("{what} `{}` is not a whole number", a.value.trim()),
                format!("write a number from {min} to {max}"),
            )
        })?;
        if n < min || n > max {
            return Err(self.err(
                Problem::BadNumber,
                &a.at,
                format!("{what} {n} is outside AWS's range {min} … {max}"),
                format!("use a value from {min} to {max}"),
            ));
        }
        T::try_from(n)
            .map_err(|_| self.err(Problem::BadNumber, &a.at, format!("{what} {n} is too large"), ""))
    }

    fn flag(&self, a: &At, what: &str) -> R<bool> {
        match a.value.trim().to_ascii_lowercase().as_str() {
            "true" | "enabled" | "yes" | "on" | "before encryption" => Ok(true),
            "false" | "disabled" | "no" | "off" | "after encryption" => Ok(false),
            other => Err(self.err(
                Problem::BadNumber,
                &a.at,
                format!("{what} `{other}` is neither true nor false"),
                "write true or false",
            )),
        }
    }

    fn cidr<N: Cidr>(&self, a: &At, what: &str) -> R<N> {
        let net = N::from_str(a.value.trim()).map_err(|_| {
            self.err(
                Problem::BadCidr,
                &a.at,
                format!("{what} `{}` is not an {} CIDR", a.value.trim(), N::FAMILY),
                format!("write it as ADDRESS/PREFIX, e.g. {}", N::EXAMPLES),
            )
        })?;
        if net.truncated() != net {
            return Err(self.err(
                Problem::BadCidr,
                &a.at,
                format!("{what} `{net}` has host bits set"),
                format!("did you mean {}?", net.truncated()),
            ));
        }
        Ok(net)
    }

    fn selector(&self, a: Option<&At>, what: &str) -> R<(Ipv4Net, Origin)> {
        match a {
            Some(a) if !a.value.trim().is_empty() => Ok((self.cidr(a, what)?, Origin::ConnectionOptions)),
            _ => Ok((
                Ipv4Net::default(),
                Origin::CgwdDefault(format!(
                    "the file does not set {what}; AWS's default is 0.0.0.0/0"
                )),
            )),
        }
    }

    /// Validate an inside /30 the way AWS does.
    fn inside(&self, net: Ipv4Net, at: &str) -> R<Ipv4Net> {
        let fix = "AWS inside CIDRs are /30s inside 169.254.0.0/16, not 169.254.0.0/30 … \
                   169.254.5.0/30 or 169.254.169.252/30; use the unedited file";
        if net.prefix_len() != 30 {
            return Err(self.err(
                Problem::InsideCidr,
                at,
                format!("inside CIDR {net} is not a /30"),
                fix,
            ));
        }
        let link_local: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16).unwrap_or_default();
        if !link_local.contains(&net) {
            return Err(self.err(
                Problem::InsideCidr,
                at,
                format!("inside CIDR {net} is not inside 169.254.0.0/16"),
                fix,
            ));
        }
        if RESERVED_INSIDE
            .iter()
            .filter_map(|r| Ipv4Net::from_str(r).ok())
            .any(|r| r == net)
        {
            return Err(self.err(
                Problem::InsideCidr,
                at,
                format!("inside CIDR {net} is one of AWS's reserved /30s"),
                fix,
            ));
        }
        Ok(net)
    }

    fn tunnel(
        &self,
        id: TunnelId,
        ctx: &TunnelCtx<'_>,
        t: &DraftTunnel,
        o: Option<&DraftOptions>,
        (local_ts, remote_ts): (&(Ipv4Net, Origin), &(Ipv4Net, Origin)),
        notes: &mut Vec<String>,
    ) -> R<(TunnelConfig, BgpDraft)> {
        let mut prov = Provenance::new();
        let file_origin = self.file_origin();
        let aws_outside = self.ip(
            t.aws_outside
                .as_ref()
                .ok_or_else(|| self.missing(&t.at, "AWS outside address", ""))?,
            "AWS outside address",
        )?;
        let customer_outside = self.ip(
            t.customer_outside.as_ref().ok_or_else(|| {
                self.missing(
                    &t.at,
                    "the customer gateway outside address",
                    "use the complete file AWS produced",
                )
            })?,
            "customer gateway outside address",
        )?;

        // Inside /30: from the file's addresses, cross-checked with TunnelOptions.TunnelInsideCidr.
        let inside_from_file = self.inside_from_file(t)?;
        let inside_from_options = match o.and_then(|o| o.inside_cidr.as_ref()) {
            Some(a) => Some((
                self.inside(self.cidr(a, "TunnelInsideCidr")?, &a.at)?,
                a.at.clone(),
            )),
            None => None,
        };
        let inside = match (inside_from_file, inside_from_options) {
            (Some((f, fat)), Some((o, oat))) if f != o => {
                return Err(self.err(
                    Problem::Conflict,
                    &oat,
                    format!("TunnelInsideCidr {o} disagrees with the XML's inside addresses ({f}, {fat})"),
                    "the XML and TunnelOptions must come from the same describe call; fetch it again",
                ));
            }
            (Some((f, _)), _) => f,
            (None, Some((o, _))) => o,
            (None, None) => {
                return Err(self.missing(
                    &t.at,
                    "the tunnel inside address",
                    "use the complete file AWS produced",
                ));
            }
        };
        let inside_ipv6 = self.inside_ipv6(t, o)?;

        // PSK: a key from the settings wins; else the file's (XML/text and TunnelOptions must agree
        // when both carry one). `REDACTED` stands for a key kept in Secrets Manager, never a key.
        let in_xml = t.psk.as_ref().filter(|a| !a.value.trim().is_empty());
        let in_options = o
            .and_then(|o| o.psk.as_ref())
            .filter(|a| !a.value.trim().is_empty());
        let placeholder = in_xml
            .into_iter()
            .chain(in_options)
            .find(|a| is_placeholder(&a.value));
        let psk_file = in_xml.filter(|a| !is_placeholder(&a.value));
        let psk_opt = in_options.filter(|a| !is_placeholder(&a.value));
        for a in psk_file.iter().chain(psk_opt.iter()) {
            self.psk(a)?;
        }
        let from_file = match (psk_file, psk_opt) {
            (Some(f), Some(p)) => {
                if f.value.trim() != p.value.trim() {
                    return Err(self.err(
                        Problem::Conflict,
                        &p.at,
                        format!("PreSharedKey differs from the XML's pre_shared_key ({})", f.at),
                        "the XML and TunnelOptions must come from the same describe call; fetch it again",
                    ));
                }
                Some((p, Origin::TunnelOptions))
            }
            (Some(f), None) => Some((f, file_origin.clone())),
            (None, Some(p)) => Some((p, Origin::TunnelOptions)),
            (None, None) => None,
        };
        let certificate = ctx
            .certificates
            .iter()
            .find(|(out, _)| IpAddr::from_str(out.value.trim()).ok() == Some(aws_outside))
            .map(|(_, arn)| arn);
        // Generic text: "Authentication Method : Certificate" (the form is inferred, FACTS §9.1).
        let by_method = t.auth_method.as_ref().filter(|a| names_certificate(&a.value));
        let psk = match (self.psks.psk(ctx.conn_id, id)?, from_file) {
            (Some(ext), in_file) => {
                if in_file.is_some() {
                    notes.push(format!(
                        "{id}: the key from {} overrides the one in the AWS file",
                        ext.source
                    ));
                }
                notes.extend(ext.warning);
                prov.insert("psk", Origin::PskSetting(ext.source));
                Some(ext.secret)
            }
            (None, Some((a, origin))) => {
                prov.insert("psk", origin);
                Some(self.psk(a)?)
            }
            // No key anywhere and `[auth]` gives cgwd a certificate: AWS authenticates this
            // endpoint by certificate (the describe JSON lists its CertificateArn; the XML and the
            // Generic text may say nothing, or "Authentication Method : Certificate").
            // The placeholder `REDACTED` says the key is in Secrets Manager, unless AWS lists a
            // certificate for the endpoint.
            (None, None)
                if self.psks.certificate(ctx.conn_id) && (certificate.is_some() || placeholder.is_none()) =>
            {
                None
            }
            (None, None) => {
                let why = certificate
                    .map(|a| ("CertificateArn", a))
                    .or_else(|| by_method.map(|a| ("Authentication Method", a)));
                return Err(self.no_psk(id, ctx, t, aws_outside, placeholder, why));
            }
        };
        if psk.is_none() {
            let evidence = match (certificate, by_method) {
                (Some(arn), _) => format!(" (AWS lists {}: {})", arn.at, arn.value.trim()),
                (None, Some(m)) => format!(" ({}: Authentication Method {})", m.at, m.value.trim()),
                (None, None) => " (the AWS file has no pre-shared key for it)".to_string(),
            };
            notes.push(format!(
                "{id}: authenticates with the customer gateway certificate of [auth]{evidence}"
            ));
        } else if let Some(arn) = certificate {
            notes.push(format!(
                "{id}: AWS lists a certificate for its endpoint ({}: {}); cgwd authenticates with the \
                 pre-shared key, and if AWS expects the certificate it answers AUTHENTICATION_FAILED \
                 (to authenticate with the certificate, remove the key and give [auth] in the settings)",
                arn.at,
                arn.value.trim()
            ));
        }

        // IKE versions.
        let ike_versions = match o.and_then(|o| o.ike_versions.as_ref()) {
            Some((list, list_at)) if !list.is_empty() => {
                let mut v = Vec::new();
                for a in list {
                    let ver = match a.value.trim().to_ascii_lowercase().as_str() {
                        "ikev1" => IkeVersion::Ikev1,
                        "ikev2" => IkeVersion::Ikev2,
                        other => {
                            return Err(self.err(
                                Problem::UnknownAlgorithm,
                                &a.at,
                                format!("unknown IKE version `{other}`"),
                                "AWS knows ikev1 and ikev2",
                            ));
                        }
                    };
                    if !v.contains(&ver) {
                        v.push(ver);
                    }
                }
                v.sort();
                if !v.contains(&IkeVersion::Ikev2) {
                    return Err(self.err(
                        Problem::IkeV1Only,
                        list_at,
                        format!("{id} ({aws_outside}) allows only IKEv1; cgwd speaks IKEv2"),
                        format!(
                            "allow IKEv2 on the tunnel: `aws ec2 modify-vpn-tunnel-options \
                             --vpn-connection-id {} --vpn-tunnel-outside-ip-address {aws_outside} \
                             --tunnel-options IKEVersions=[{{Value=ikev2}}]`",
                            ctx.conn_id
                        ),
                    ));
                }
                prov.insert("ike_versions", Origin::TunnelOptions);
                v
            }
            _ => {
                prov.insert(
                    "ike_versions",
                    Origin::CgwdDefault(
                        "the file does not restrict IKE versions (AWS allows ikev1 and ikev2); cgwd uses IKEv2"
                            .into(),
                    ),
                );
                vec![IkeVersion::Ikev1, IkeVersion::Ikev2]
            }
        };
        if let Some(v) = &t.ike_version
            && v.value.trim().eq_ignore_ascii_case("ikev1")
        {
            notes.push(format!(
                "{id}: the Generic text was downloaded for IKEv1 ({}); cgwd uses IKEv2, which AWS \
                 allows unless the tunnel options were narrowed to IKEv1",
                v.at
            ));
        }

        // Algorithm offers.
        let reason = self.no_lists_reason();
        let (p1_enc, o1) = self.enc_list(
            o.and_then(|o| o.phase1_encryption.as_ref()),
            &defaults::PHASE1_ENCRYPTION,
            &reason,
        )?;
        let (p1_int, o2) = self.int_list(
            o.and_then(|o| o.phase1_integrity.as_ref()),
            &defaults::PHASE1_INTEGRITY,
            &reason,
        )?;
        let (p1_dh, o3) = self.dh_list(o.and_then(|o| o.phase1_dh.as_ref()), true, &reason)?;
        let (p2_enc, o4) = self.enc_list(
            o.and_then(|o| o.phase2_encryption.as_ref()),
            &defaults::PHASE2_ENCRYPTION,
            &reason,
        )?;
        let (p2_int, o5) = self.int_list(
            o.and_then(|o| o.phase2_integrity.as_ref()),
            &defaults::PHASE2_INTEGRITY,
            &reason,
        )?;
        let (p2_dh, o6) = self.dh_list(o.and_then(|o| o.phase2_dh.as_ref()), false, &reason)?;
        // AWS picks the lowest option it allows among those offered, so a weak algorithm offered next
        // to a strong one is the one negotiated: offer only the strongest tier the tunnel allows.
        let mut left_out: Vec<String> = Vec::new();
        let p1_enc = keep_strongest_tier(p1_enc, encryption_tier, &mut left_out, "phase 1");
        let p1_int = keep_strongest_tier(p1_int, integrity_tier, &mut left_out, "phase 1");
        let p1_dh = keep_strongest_tier(p1_dh, dh_tier, &mut left_out, "phase 1 DH");
        let p2_enc = keep_strongest_tier(p2_enc, encryption_tier, &mut left_out, "phase 2");
        let p2_int = keep_strongest_tier(p2_int, integrity_tier, &mut left_out, "phase 2");
        let p2_dh = keep_strongest_tier(p2_dh, dh_tier, &mut left_out, "phase 2 PFS");
        if !left_out.is_empty() {
            notes.push(format!(
                "{id}: the tunnel also allows {}; cgwd leaves them out of its offer because AWS picks \
                 the lowest option it is offered",
                left_out.join(", ")
            ));
        }
        prov.insert("phase1.encryption", o1);
        prov.insert("phase1.integrity", o2);
        prov.insert("phase1.dh_groups", o3);
        prov.insert("phase2.encryption", o4);
        prov.insert("phase2.integrity", o5);
        prov.insert("phase2.pfs_groups", o6);

        // Lifetimes, margins, replay, DPD.
        let (p1_life, org) = self.pick_lifetime(
            (
                o.and_then(|o| o.phase1_lifetime.as_ref()),
                t.phase1_lifetime.as_ref(),
            ),
            "Phase1LifetimeSeconds",
            (900, super::LAB_MIN_PHASE1_LIFETIME, 28800),
            defaults::PHASE1_LIFETIME_SECS,
        )?;
        prov.insert("phase1_lifetime", org);
        let (p2_life, org) = self.pick_lifetime(
            (
                o.and_then(|o| o.phase2_lifetime.as_ref()),
                t.phase2_lifetime.as_ref(),
            ),
            "Phase2LifetimeSeconds",
            (900, super::LAB_MIN_PHASE2_LIFETIME, 3600),
            defaults::PHASE2_LIFETIME_SECS,
        )?;
        prov.insert("phase2_lifetime", org);
        if p2_life >= p1_life {
            let at = o
                .and_then(|o| o.phase2_lifetime.as_ref())
                .or(t.phase2_lifetime.as_ref())
                .map_or(t.at.as_str(), |a| a.at.as_str());
            return Err(self.err(
                Problem::BadNumber,
                at,
                format!("phase 2 lifetime {p2_life} s is not shorter than phase 1 lifetime {p1_life} s"),
                "AWS requires Phase2LifetimeSeconds < Phase1LifetimeSeconds",
            ));
        }
        let (margin, org) = self.pick_lifetime(
            (o.and_then(|o| o.rekey_margin.as_ref()), None),
            "RekeyMarginTimeSeconds",
            (60, 1, p2_life / 2),
            defaults::REKEY_MARGIN_SECS.min(p2_life / 2),
        )?;
        let org = match org {
            Origin::CgwdDefault(_) => Origin::CgwdDefault(
                "the file does not set RekeyMarginTimeSeconds; AWS documents 270 s (older docs \
                 540 s), so cgwd assumes 540 and rekeys before AWS under either"
                    .into(),
            ),
            other => other,
        };
        prov.insert("rekey_margin", org);
        let (fuzz, org) = self.pick_num::<u8>(
            o.and_then(|o| o.rekey_fuzz.as_ref()),
            None,
            "RekeyFuzzPercentage",
            0,
            100,
            defaults::REKEY_FUZZ_PERCENT,
        )?;
        prov.insert("rekey_fuzz", org);
        let (replay, org) = self.pick_num::<u32>(
            o.and_then(|o| o.replay_window.as_ref()),
            None,
            "ReplayWindowSize",
            64,
            2048,
            defaults::REPLAY_WINDOW,
        )?;
        prov.insert("replay_window", org);
        let (dpd_interval, org) = self.pick_num::<u32>(
            None,
            t.dpd_interval.as_ref(),
            "DPD interval",
            1,
            3600,
            defaults::DPD_INTERVAL_SECS,
        )?;
        prov.insert("dpd_interval", org);
        let file_dpd_timeout = match &t.dpd_retries {
            Some(r) => {
                let retries = self.num::<u32>(r, "DPD retries", 1, 100)?;
                Some(At::new(
                    (dpd_interval * retries).max(30).to_string(),
                    r.at.clone(),
                ))
            }
            None => None,
        };
        let (dpd_timeout, org) = self.pick_num::<u32>(
            o.and_then(|o| o.dpd_timeout.as_ref()),
            file_dpd_timeout.as_ref(),
            "DPDTimeoutSeconds",
            30,
            86400,
            defaults::DPD_TIMEOUT_SECS,
        )?;
        prov.insert("dpd_timeout", org);
        let dpd_action = match o.and_then(|o| o.dpd_action.as_ref()) {
            Some(a) => {
                prov.insert("dpd_action", Origin::TunnelOptions);
                match a.value.trim().to_ascii_lowercase().as_str() {
                    "clear" => DpdAction::Clear,
                    "none" => DpdAction::None,
                    "restart" => DpdAction::Restart,
                    other => {
                        return Err(self.err(
                            Problem::BadNumber,
                            &a.at,
                            format!("DPDTimeoutAction `{other}` is not clear, none or restart"),
                            "use clear, none or restart",
                        ));
                    }
                }
            }
            None => {
                prov.insert("dpd_action", Origin::CgwdDefault("AWS's default is clear".into()));
                DpdAction::Clear
            }
        };
        let startup_action = match o.and_then(|o| o.startup_action.as_ref()) {
            Some(a) => {
                prov.insert("startup_action", Origin::TunnelOptions);
                match a.value.trim().to_ascii_lowercase().as_str() {
                    "add" => StartupAction::Add,
                    "start" => StartupAction::Start,
                    other => {
                        return Err(self.err(
                            Problem::BadNumber,
                            &a.at,
                            format!("StartupAction `{other}` is not add or start"),
                            "use add or start",
                        ));
                    }
                }
            }
            None => {
                prov.insert(
                    "startup_action",
                    Origin::CgwdDefault("AWS's default is add (cgwd initiates)".into()),
                );
                StartupAction::Add
            }
        };

        let tcp_mss_adjustment = match &t.tcp_mss {
            Some(a) => Some(self.num::<u16>(a, "TCP MSS adjustment", 536, 1460)?),
            None => None,
        };
        let clear_df_bit = match &t.clear_df {
            Some(a) => {
                prov.insert("clear_df_bit", file_origin.clone());
                self.flag(a, "clear DF bit")?
            }
            None => {
                prov.insert(
                    "clear_df_bit",
                    Origin::CgwdDefault("AWS recommends clearing DF".into()),
                );
                true
            }
        };
        let fragmentation_before_encryption = match &t.fragmentation {
            Some(a) => {
                prov.insert("fragmentation_before_encryption", file_origin.clone());
                self.flag(a, "fragmentation before encryption")?
            }
            None => {
                prov.insert(
                    "fragmentation_before_encryption",
                    Origin::CgwdDefault("AWS recommends fragmenting before encryption".into()),
                );
                true
            }
        };
        prov.insert("local_ts", local_ts.1.clone());
        prov.insert("remote_ts", remote_ts.1.clone());

        let tunnel = TunnelConfig {
            id,
            aws_outside,
            customer_outside,
            inside,
            inside_ipv6,
            psk,
            certificate_arn: certificate.map(|a| a.value.trim().to_string()),
            ike_versions,
            phase1: Phase1Offer {
                encryption: p1_enc,
                integrity: p1_int,
                dh_groups: p1_dh,
            },
            phase2: Phase2Offer {
                encryption: p2_enc,
                integrity: p2_int,
                pfs_groups: p2_dh,
            },
            phase1_lifetime_secs: p1_life,
            phase2_lifetime_secs: p2_life,
            rekey_margin_secs: margin,
            rekey_fuzz_percent: fuzz,
            replay_window: replay,
            dpd_interval_secs: dpd_interval,
            dpd_timeout_secs: dpd_timeout,
            dpd_action,
            startup_action,
            local_ts: local_ts.0,
            remote_ts: remote_ts.0,
            ts_v6: None,
            tcp_mss_adjustment,
            clear_df_bit,
            fragmentation_before_encryption,
            provenance: prov,
        };
        let bgp = BgpDraft {
            at: t.at.clone(),
            seen: t.bgp_seen,
            customer_asn: t.customer_asn.clone(),
            aws_asn: t.aws_asn.clone(),
            hold_time: t.hold_time.clone(),
        };
        Ok((tunnel, bgp))
    }

    /// The inside /30 from the file's customer/AWS inside addresses and prefix length.
    fn inside_from_file(&self, t: &DraftTunnel) -> R<Option<(Ipv4Net, String)>> {
        let anchor = match t.customer_inside.as_ref().or(t.aws_inside.as_ref()) {
            Some(a) => a,
            None => return Ok(None),
        };
        let prefix = match &t.inside_prefix {
            Some(p) => self.num::<u8>(p, "inside network prefix length", 0, 32)?,
            None => 30,
        };
        let addr_of = |a: &At| -> R<Ipv4Addr> {
            Ipv4Addr::from_str(a.value.trim()).map_err(|_| {
                self.err(
                    Problem::BadAddress,
                    &a.at,
                    format!("inside address `{}` is not an IPv4 address", a.value.trim()),
                    "use the unedited file",
                )
            })
        };
        let addr = addr_of(anchor)?;
        let net = Ipv4Net::new(addr, prefix)
            .map_err(|_| self.err(Problem::BadCidr, &anchor.at, "bad prefix length", ""))?
            .trunc();
        let net = self.inside(net, &anchor.at)?;
        let base = u32::from(net.network());
        if let Some(c) = &t.customer_inside {
            let a = addr_of(c)?;
            if u32::from(a) != base.wrapping_add(2) {
                return Err(self.err(
                    Problem::InsideCidr,
                    &c.at,
                    format!(
                        "customer inside address {a} is not the second host of {net} ({})",
                        Ipv4Addr::from(base.wrapping_add(2))
                    ),
                    "AWS always takes network+1 and gives the customer network+2; use the unedited file",
                ));
            }
        }
        if let Some(c) = &t.aws_inside {
            let a = addr_of(c)?;
            if u32::from(a) != base.wrapping_add(1) {
                return Err(self.err(
                    Problem::InsideCidr,
                    &c.at,
                    format!(
                        "AWS inside address {a} is not the first host of {net} ({})",
                        Ipv4Addr::from(base.wrapping_add(1))
                    ),
                    "AWS always takes network+1 and gives the customer network+2; use the unedited file",
                ));
            }
        }
        Ok(Some((net, anchor.at.clone())))
    }

    /// The inside IPv6 /126 (IPv6-inside tunnels): `TunnelInsideIpv6Cidr`, cross-checked with the
    /// XML's `tunnel_inside_ipv6_address`es. AWS writes those as single addresses with
    /// `prefix_length` 128 (FACTS §9.3), so the /126 is the one holding them, AWS's = network+1 and
    /// the customer's = network+2, as for the IPv4 /30.
    fn inside_ipv6(&self, t: &DraftTunnel, o: Option<&DraftOptions>) -> R<Option<Ipv6Net>> {
        let from_options = match o.and_then(|o| o.inside_ipv6_cidr.as_ref()) {
            Some(a) if !a.value.trim().is_empty() => {
                let net = Ipv6Net::from_str(a.value.trim()).map_err(|_| {
                    self.err(
                        Problem::BadCidr,
                        &a.at,
                        format!("TunnelInsideIpv6Cidr `{}` is not an IPv6 CIDR", a.value.trim()),
                        "write it as fd00:…/126",
                    )
                })?;
                if net.prefix_len() != 126 || net.trunc() != net {
                    return Err(self.err(
                        Problem::InsideCidr,
                        &a.at,
                        format!("inside IPv6 CIDR {net} is not a /126 network"),
                        "AWS inside IPv6 CIDRs are /126s from fd00::/8",
                    ));
                }
                Some((net, a.at.clone()))
            }
            _ => None,
        };
        let from_file = match t.customer_inside_ipv6.as_ref().or(t.aws_inside_ipv6.as_ref()) {
            None => None,
            Some(anchor) => {
                if let Some(p) = &t.inside_ipv6_prefix {
                    let len = self.num::<u8>(p, "inside IPv6 prefix length", 0, 128)?;
                    if len != 126 && len != 128 {
                        return Err(self.err(
                            Problem::InsideCidr,
                            &p.at,
                            format!("inside IPv6 prefix length {len} is neither 126 nor 128"),
                            "AWS inside IPv6 networks are /126s (the XML shows each address as /128); \
                             use the unedited file",
                        ));
                    }
                }
                let addr_of = |a: &At| -> R<Ipv6Addr> {
                    Ipv6Addr::from_str(a.value.trim()).map_err(|_| {
                        self.err(
                            Problem::BadAddress,
                            &a.at,
                            format!("inside IPv6 address `{}` is not an IPv6 address", a.value.trim()),
                            "use the unedited file",
                        )
                    })
                };
                let net = Ipv6Net::new(addr_of(anchor)?, 126)
                    .map_err(|_| self.err(Problem::BadCidr, &anchor.at, "bad IPv6 prefix length", ""))?
                    .trunc();
                let base = u128::from(net.network());
                for (a, side, host) in [
                    (t.customer_inside_ipv6.as_ref(), "customer", 2),
                    (t.aws_inside_ipv6.as_ref(), "AWS", 1),
                ] {
                    let Some(a) = a else { continue };
                    let addr = addr_of(a)?;
                    let want = Ipv6Addr::from(base.wrapping_add(host));
                    if addr != want {
                        return Err(self.err(
                            Problem::InsideCidr,
                            &a.at,
                            format!("{side} inside IPv6 address {addr} is not host {host} of {net} ({want})"),
                            "AWS always takes network+1 and gives the customer network+2; use the unedited file",
                        ));
                    }
                }
                Some((net, anchor.at.clone()))
            }
        };
        match (from_file, from_options) {
            (Some((f, fat)), Some((o, oat))) if f != o => Err(self.err(
                Problem::Conflict,
                &oat,
                format!(
                    "TunnelInsideIpv6Cidr {o} disagrees with the XML's inside IPv6 addresses ({f}, {fat})"
                ),
                "the XML and TunnelOptions must come from the same describe call; fetch it again",
            )),
            (_, Some((o, _))) => Ok(Some(o)),
            (f, None) => Ok(f.map(|(net, _)| net)),
        }
    }

    /// AWS's PSK rules ([`super::psk::violation`]) on a key in the AWS file.
    fn psk(&self, a: &At) -> R<Secret> {
        let psk = a.value.trim();
        match super::psk::violation(psk) {
            Some(p) => Err(self.err(
                Problem::Psk,
                &a.at,
                p,
                format!(
                    "{}; copy the key AWS shows, or set a new one with `aws ec2 \
                     modify-vpn-tunnel-options … --tunnel-options PreSharedKey=…`",
                    super::psk::RULES
                ),
            )),
            None => Ok(Secret::from_slice(psk.as_bytes())),
        }
    }

    /// The error of a tunnel with no key in the file nor in the settings: what the file says
    /// instead (a certificate, the placeholder, nothing) and the setting that gives the key.
    fn no_psk(
        &self,
        id: TunnelId,
        ctx: &TunnelCtx<'_>,
        t: &DraftTunnel,
        aws_outside: IpAddr,
        placeholder: Option<&At>,
        certificate: Option<(&str, &At)>,
    ) -> ConfigError {
        let table = self.psks.table(ctx.conn_id, id);
        let setting = format!(
            "cgwd's settings file (--settings): {table} psk_file = \"/etc/cgwd/{}-{}.psk\" (or psk_env = \
             \"VARIABLE\", or psk_credential = \"NAME\" for a systemd credential); see \"PSKs kept \
             outside the AWS file\" in docs/configuration.md",
            ctx.conn_id,
            id.number()
        );
        if let Some((field, arn)) = certificate {
            return self.err(
                Problem::Unsupported,
                &arn.at,
                format!(
                    "{id} (AWS {aws_outside}) authenticates with a certificate ({field} {}) and \
                     the file has no pre-shared key, and the settings give the customer gateway no \
                     certificate",
                    arn.value.trim()
                ),
                format!(
                    "give cgwd's settings file (--settings) an [auth] table: certificate = \
                     \"/etc/cgwd/cgw.pem\", private_key = \"/etc/cgwd/cgw.key\", ca = \
                     \"/etc/cgwd/ca.pem\" (the customer gateway's certificate from AWS Private CA, its \
                     key and the CA chain; see \"Certificate authentication\" in \
                     docs/configuration.md); if this tunnel does have a key, give it in {setting}"
                ),
            );
        }
        let secret = match ctx.psk_arn {
            Some(arn) => format!(
                ": AWS keeps this connection's keys in Secrets Manager (PreSharedKeyArn {})",
                arn.value.trim()
            ),
            None if placeholder.is_some() => {
                ": AWS writes it where it keeps the key in Secrets Manager".to_string()
            }
            None => String::new(),
        };
        let (at, what) = match placeholder {
            Some(a) => (
                a.at.as_str(),
                format!("the pre-shared key is the placeholder `{PLACEHOLDER}`, not a key"),
            ),
            None => (t.at.as_str(), "the pre-shared key is missing".to_string()),
        };
        let copy = format!(
            "copy {id}'s key (AWS outside address {aws_outside}) from the Secrets Manager secret into a \
             file only cgwd can read, and name it in {setting}"
        );
        let fix = if placeholder.is_some() || ctx.psk_arn.is_some() {
            copy
        } else {
            format!(
                "if AWS keeps the key in Secrets Manager, {copy}; if the tunnel is authenticated \
                 by certificate (the customer gateway was created with a certificate ARN), give the \
                 customer gateway's certificate, key and CA chain in the settings' [auth] table \
                 (see \"Certificate authentication\" in docs/configuration.md)"
            )
        };
        self.err(
            Problem::PskMissing,
            at,
            format!("{id} (AWS {aws_outside}): {what}{secret}"),
            fix,
        )
    }

    /// A number from TunnelOptions, else from the XML/text, else cgwd's default.
    fn pick_num<T: TryFrom<u64> + Copy>(
        &self,
        from_options: Option<&At>,
        from_file: Option<&At>,
        what: &str,
        min: u64,
        max: u64,
        default: T,
    ) -> R<(T, Origin)> {
        if let Some(a) = from_options {
            return Ok((self.num(a, what, min, max)?, Origin::TunnelOptions));
        }
        if let Some(a) = from_file {
            return Ok((self.num(a, what, min, max)?, self.file_origin()));
        }
        Ok((
            default,
            Origin::CgwdDefault(format!("the file does not set {what}; AWS's default applies")),
        ))
    }

    /// A lifetime or rekey margin: AWS's range `(aws_min, lab_min, max)`, or down to `lab_min` with
    /// `lab.allow_short_lifetimes`. A value that only the lab switch would accept gets a fix naming
    /// it, so a lab user finds it and an AWS user learns AWS refuses the value.
    fn pick_lifetime(
        &self,
        (from_options, from_file): (Option<&At>, Option<&At>),
        what: &str,
        (aws_min, lab_min, max): (u32, u32, u32),
        default: u32,
    ) -> R<(u32, Origin)> {
        let short = self.limits.short_lifetimes;
        let min = if short { lab_min } else { aws_min };
        let result = self.pick_num::<u32>(
            from_options,
            from_file,
            what,
            u64::from(min),
            u64::from(max),
            default,
        );
        let lab_would_accept = from_options
            .or(from_file)
            .and_then(|a| plain_number(&a.value))
            .is_some_and(|n| (u64::from(lab_min)..u64::from(aws_min)).contains(&n));
        match result {
            Err(ConfigError::Invalid {
                file,
                kind,
                location,
                problem,
                ..
            }) if !short && lab_would_accept => Err(ConfigError::Invalid {
                file,
                kind,
                location,
                problem,
                fix: format!(
                    "use a value from {aws_min} to {max} (AWS refuses shorter); only to test against a \
                     local IKE peer, never AWS, add `[lab]` with `allow_short_lifetimes = true` to cgwd's \
                     settings file (--settings), which accepts down to {lab_min} s"
                ),
            }),
            other => other,
        }
    }

    fn enc_list(
        &self,
        list: Option<&(Vec<At>, String)>,
        default: &[Encryption],
        reason: &str,
    ) -> R<(Vec<Encryption>, Origin)> {
        let Some((items, _)) = list.filter(|(l, _)| !l.is_empty()) else {
            return Ok((default.to_vec(), self.default_origin(list, reason)));
        };
        let mut v = Vec::new();
        for a in items {
            let e = Encryption::ALL
                .into_iter()
                .find(|e| e.aws_name().eq_ignore_ascii_case(a.value.trim()))
                .ok_or_else(|| {
                    self.err(
                        Problem::UnknownAlgorithm,
                        &a.at,
                        format!("unknown encryption algorithm `{}`", a.value.trim()),
                        "AWS allows AES128, AES256, AES128-GCM-16, AES256-GCM-16",
                    )
                })?;
            if !v.contains(&e) {
                v.push(e);
            }
        }
        strongest_first(&mut v, Encryption::strength);
        Ok((v, Origin::TunnelOptions))
    }

    fn int_list(
        &self,
        list: Option<&(Vec<At>, String)>,
        default: &[Integrity],
        reason: &str,
    ) -> R<(Vec<Integrity>, Origin)> {
        let Some((items, _)) = list.filter(|(l, _)| !l.is_empty()) else {
            return Ok((default.to_vec(), self.default_origin(list, reason)));
        };
        let mut v = Vec::new();
        for a in items {
            let i = Integrity::ALL
                .into_iter()
                .find(|i| i.aws_name().eq_ignore_ascii_case(a.value.trim()))
                .ok_or_else(|| {
                    self.err(
                        Problem::UnknownAlgorithm,
                        &a.at,
                        format!("unknown integrity algorithm `{}`", a.value.trim()),
                        "AWS allows SHA1, SHA2-256, SHA2-384, SHA2-512",
                    )
                })?;
            if !v.contains(&i) {
                v.push(i);
            }
        }
        strongest_first(&mut v, Integrity::strength);
        Ok((v, Origin::TunnelOptions))
    }

    fn dh_list(
        &self,
        list: Option<&(Vec<At>, String)>,
        phase1: bool,
        reason: &str,
    ) -> R<(Vec<DhGroup>, Origin)> {
        let Some((items, _)) = list.filter(|(l, _)| !l.is_empty()) else {
            return Ok((defaults::dh_groups(), self.default_origin(list, reason)));
        };
        let allowed = if phase1 {
            "AWS allows 2, 14-24 in phase 1"
        } else {
            "AWS allows 2, 5, 14-24 in phase 2"
        };
        let mut v = Vec::new();
        for a in items {
            let g = a
                .value
                .trim()
                .trim_start_matches("group")
                .parse::<u16>()
                .ok()
                .and_then(DhGroup::new)
                .filter(|g| !(phase1 && g.number() == 5))
                .ok_or_else(|| {
                    self.err(
                        Problem::UnknownAlgorithm,
                        &a.at,
                        format!("`{}` is not a DH group number AWS allows here", a.value.trim()),
                        allowed,
                    )
                })?;
            if !v.contains(&g) {
                v.push(g);
            }
        }
        strongest_first(&mut v, DhGroup::strength);
        Ok((v, Origin::TunnelOptions))
    }

    fn default_origin(&self, list: Option<&(Vec<At>, String)>, reason: &str) -> Origin {
        match list {
            Some(_) => Origin::CgwdDefault(
                "the TunnelOptions list is empty (AWS allows everything, and picks the lowest it is \
                 offered); cgwd offers its strong subset"
                    .into(),
            ),
            None if self.format == SourceFormat::DescribeJson => Origin::CgwdDefault(
                "TunnelOptions do not list these (AWS allows everything, and picks the lowest it is \
                 offered); cgwd offers its strong subset"
                    .into(),
            ),
            None => Origin::CgwdDefault(reason.to_string()),
        }
    }
}

/// An IPv4 or IPv6 network as the file writes it.
trait Cidr: FromStr + Copy + PartialEq + std::fmt::Display {
    const FAMILY: &'static str;
    const EXAMPLES: &'static str;
    fn truncated(&self) -> Self;
}

impl Cidr for Ipv4Net {
    const FAMILY: &'static str = "IPv4";
    const EXAMPLES: &'static str = "10.0.0.0/16 or 0.0.0.0/0";
    fn truncated(&self) -> Self {
        self.trunc()
    }
}

impl Cidr for Ipv6Net {
    const FAMILY: &'static str = "IPv6";
    const EXAMPLES: &'static str = "::/0 or 2001:db8::/32";
    fn truncated(&self) -> Self {
        self.trunc()
    }
}

/// BGP values of one tunnel, checked for agreement once both tunnels are built.
pub(crate) struct BgpDraft {
    at: String,
    seen: bool,
    customer_asn: Option<At>,
    aws_asn: Option<At>,
    hold_time: Option<At>,
}

/// Tier of an encryption transform for the offer: AES-GCM (an AEAD, the fastest data plane) first,
/// then AES-CBC by key length ([`Encryption::strength`] without the GCM key-length step).
fn encryption_tier(e: &Encryption) -> u8 {
    if e.is_aead() { 0 } else { 4 - e.strength() }
}

fn integrity_tier(i: &Integrity) -> u8 {
    u8::from(*i == Integrity::Sha1)
}

fn dh_tier(g: &DhGroup) -> u8 {
    u8::from(g.is_weak())
}

/// Keeps the items of the strongest tier present (order kept) and names the others in `left_out`.
fn keep_strongest_tier<T: Copy + std::fmt::Display>(
    allowed: Vec<T>,
    tier: fn(&T) -> u8,
    left_out: &mut Vec<String>,
    what: &str,
) -> Vec<T> {
    let Some(best) = allowed.iter().map(tier).min() else {
        return allowed;
    };
    let (keep, drop): (Vec<T>, Vec<T>) = allowed.into_iter().partition(|a| tier(a) == best);
    if !drop.is_empty() {
        let names: Vec<String> = drop.iter().map(|d| d.to_string()).collect();
        left_out.push(format!("{what} {}", names.join("/")));
    }
    keep
}

/// Whether a Generic text's "Authentication Method" names certificate authentication (AWS's
/// wording is not known: anything naming a certificate or a signature counts).
fn names_certificate(method: &str) -> bool {
    let m = method.to_ascii_lowercase();
    ["cert", "signature", "rsa", "ecdsa", "pubkey", "public key"]
        .iter()
        .any(|w| m.contains(w))
}
