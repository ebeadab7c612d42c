//! What `cgwd status` shows: a snapshot the run loop fills, served as JSON and rendered for people.
//!
//! Field names follow AWS's vocabulary where it has one (`ike_phase1_state`, `ike_phase2_state`,
//! `nat_t_detected`, `dpd_enabled`, as in AWS's tunnel logs) so an operator can compare with the
//! console and CloudWatch; the health logs (issue 8) reuse [`PhaseState`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A phase's state in AWS's words (AWS documents them capitalised; its own filters match lowercase,
/// which is what it writes and what we write).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseState {
    Established,
    Rekeying,
    Negotiating,
    #[default]
    Down,
}

impl PhaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Established => "established",
            Self::Rekeying => "rekeying",
            Self::Negotiating => "negotiating",
            Self::Down => "down",
        }
    }

    /// Established or rekeying: the SA carries traffic.
    pub fn is_up(self) -> bool {
        matches!(self, Self::Established | Self::Rekeying)
    }
}

/// Negotiated algorithms, in AWS's names (`AES256-GCM-16`, `SHA2-256`, DH group numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Algorithms {
    pub encryption: String,
    /// `None` for AEAD (phase 2) — in phase 1 the PRF/integrity hash.
    pub integrity: Option<String>,
    /// Phase 1: the DH group; phase 2: the PFS group of the last rekey (none for the first SA).
    pub dh_group: Option<u16>,
}

/// Packet and byte counters of one tunnel's data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

/// One tunnel, as `cgwd status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// 1 or 2.
    pub tunnel: u8,
    pub ike_phase1_state: PhaseState,
    pub ike_phase2_state: PhaseState,
    /// Our outside address (where IKE/ESP leave from).
    pub local_outside: IpAddr,
    /// AWS's outside address.
    pub aws_outside: IpAddr,
    /// Our inside address with the tunnel's prefix (on the TUN device): the /126's on IPv6-inside
    /// tunnels, else the /30's.
    pub inside: ipnet::IpNet,
    /// AWS's inside address (probe target, BGP neighbour).
    pub aws_inside: IpAddr,
    pub phase1_algorithms: Option<Algorithms>,
    pub phase2_algorithms: Option<Algorithms>,
    /// Current Child SA SPIs, hex.
    pub spi_in: Option<String>,
    pub spi_out: Option<String>,
    /// Seconds since the Child SA came up (rekeys do not reset it).
    pub uptime_secs: Option<u64>,
    /// Seconds until cgwd rekeys the Child SA.
    pub next_rekey_secs: Option<u64>,
    pub traffic: Traffic,
    /// Dropped packets by reason (`replay`, `auth`, `no_sa`, …); only non-zero ones.
    pub drops: BTreeMap<String, u64>,
    pub nat_t_detected: bool,
    pub dpd_enabled: bool,
    /// Failover's view: `healthy`, `settling`, `suspect`, `down`.
    pub liveness: String,
    /// Last probe round trip, milliseconds.
    pub probe_rtt_ms: Option<f64>,
    /// Carries outbound traffic now.
    pub active: bool,
    /// Why the tunnel is down or suspect, in words (AWS-style where AWS has a phrase).
    pub reason: Option<String>,
    /// The tunnel's BGP session (built-in speaker); absent for static routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
}

impl TunnelStatus {
    /// IPsec up and, with BGP, the session Established: what AWS calls a tunnel UP.
    pub fn carries_routes(&self) -> bool {
        self.ike_phase2_state.is_up() && self.bgp.as_ref().is_none_or(BgpStatus::established)
    }
}

/// One tunnel's BGP session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    /// `idle`, `opensent`, `openconfirm` or `established` (RFC 4271 §8.2.2).
    pub state: String,
    /// AWS's inside address (IPv6 on IPv6-inside tunnels) and AS.
    pub neighbor: std::net::IpAddr,
    pub peer_as: u32,
    pub local_as: u32,
    /// Seconds since Established.
    pub uptime_secs: Option<u64>,
    /// The negotiated hold time (the smaller offer; keepalives every third of it), once the
    /// peer's OPEN arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    pub prefixes_received: u64,
    pub prefixes_advertised: u64,
    /// Why it last went down, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl BgpStatus {
    pub fn established(&self) -> bool {
        self.state == "established"
    }
}

/// A prefix learned over BGP and the tunnels it uses (the first tier; the others take over when
/// they cannot carry traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpRouteStatus {
    pub prefix: String,
    /// Tunnel numbers of the best paths.
    pub tunnels: Vec<u8>,
    /// Tunnel numbers of the fallback paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<u8>,
}

/// One route cgwd installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub destination: ipnet::IpNet,
    pub device: String,
}

/// Everything `cgwd status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub cgwd_version: String,
    pub vpn_connection_id: String,
    pub interface: String,
    pub failover_policy: String,
    /// `none`, `tunnel-1`, `tunnel-2` or `both`.
    pub outbound: String,
    /// Seconds since cgwd started.
    pub uptime_secs: u64,
    /// Outbound moves between tunnels since start.
    pub failovers: u64,
    pub tunnels: Vec<TunnelStatus>,
    pub routes: Vec<RouteStatus>,
    /// IKE input the gateway refused or dropped before authentication (spoofs, floods, strays).
    #[serde(default)]
    pub ike_input: crate::gateway::Stats,
    /// Responder IKE SAs not authenticated yet.
    #[serde(default)]
    pub ike_half_open: u64,
    /// With several VPN connections: every connection's snapshot, this one (the first) included.
    /// The fields above then describe the first connection, except `routes`: every route of the
    /// daemon. Empty with one connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<StatusSnapshot>,
    /// Prefixes learned over BGP (built-in speaker), with their tunnels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_routes: Vec<BgpRouteStatus>,
    /// The last reload (SIGHUP, `cgwd reload`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadStatus>,
}

/// How the last reload went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Counts reloads since start: `cgwd reload` waits for it to move.
    pub generation: u64,
    /// False: the new configuration was rejected whole and the running one kept.
    pub ok: bool,
    /// What changed, or why it was rejected.
    pub message: String,
}

impl StatusSnapshot {
    /// Process exit status for `cgwd status`: 0 both up, 1 one down (degraded), 2 both down.
    /// With several connections: 0 every tunnel up, 2 every tunnel down, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if !self.connections.is_empty() {
            let codes: Vec<u8> = self.connections.iter().map(StatusSnapshot::exit_code).collect();
            return if codes.iter().all(|&c| c == 0) {
                0
            } else if codes.iter().all(|&c| c == 2) {
                2
            } else {
                1
            };
        }
        match self.tunnels.iter().filter(|t| t.carries_routes()).count() {
            n if n >= 2 => 0,
            1 => 1,
            _ => 2,
        }
    }
}

/// "1h02m", "3m05s", "42s".
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// "1.2 MB", "512 B".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn algorithms(a: &Option<Algorithms>) -> String {
    match a {
        None => "-".into(),
        Some(a) => {
            let mut s = a.encryption.clone();
            if let Some(i) = &a.integrity {
                let _ = write!(s, "/{i}");
            }
            if let Some(g) = a.dh_group {
                let _ = write!(s, "/DH{g}");
            }
            s
        }
    }
}

/// The human view: a headline, one line per tunnel with ✔/✘ and why, details, the routes; with
/// several VPN connections, one such block per connection and the routes once.
pub fn render(s: &StatusSnapshot) -> String {
    if s.connections.is_empty() {
        return render_one(s, true);
    }
    let up = s
        .connections
        .iter()
        .filter(|c| c.tunnels.iter().any(|t| t.ike_phase2_state.is_up()))
        .count();
    let mut out = format!(
        "cgwd {} — {} VPN connections on {}, {up} with a tunnel up\n\n",
        s.cgwd_version,
        s.connections.len(),
        s.interface
    );
    for c in &s.connections {
        out.push_str(&render_one(c, false));
        out.push('\n');
    }
    out.push_str(&render_routes(s));
    out
}

fn render_routes(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    if s.routes.is_empty() {
        out.push_str("routes: none installed\n");
    } else {
        out.push_str("routes (proto 198):\n");
        for r in &s.routes {
            let _ = writeln!(out, "    {} dev {}", r.destination, r.device);
        }
    }
    out
}

fn render_one(s: &StatusSnapshot, routes: bool) -> String {
    let mut out = String::new();
    // A suspect tunnel (IPsec up but AWS silent) counts as down here: that is what matters.
    let up = s
        .tunnels
        .iter()
        .filter(|t| t.carries_routes() && t.liveness != "suspect")
        .count();
    let health = match up {
        2 => "both tunnels up",
        1 => "DEGRADED: one tunnel down",
        _ => "DOWN: no tunnel up, traffic to AWS is not flowing",
    };
    let _ = writeln!(
        out,
        "cgwd {} — {} on {} — {health}",
        s.cgwd_version, s.vpn_connection_id, s.interface
    );
    let _ = writeln!(
        out,
        "outbound: {} (policy {}, {} failover{}), up {}",
        s.outbound,
        s.failover_policy,
        s.failovers,
        if s.failovers == 1 { "" } else { "s" },
        human_duration(s.uptime_secs)
    );
    for t in &s.tunnels {
        let ok = t.carries_routes() && t.liveness != "suspect";
        let mark = if ok { '✔' } else { '✘' };
        let state = match (t.ike_phase1_state, t.ike_phase2_state) {
            (_, PhaseState::Established) => "ESTABLISHED".to_string(),
            (_, PhaseState::Rekeying) => "REKEYING".to_string(),
            (p1, p2) => format!(
                "{} (IKE {}, IPsec {})",
                if p1 == PhaseState::Negotiating || p2 == PhaseState::Negotiating {
                    "NEGOTIATING"
                } else {
                    "DOWN"
                },
                p1.as_str(),
                p2.as_str()
            ),
        };
        let _ = write!(
            out,
            "{mark} tunnel {}  {} ↔ {}  inside {} ↔ {}  {state}",
            t.tunnel, t.local_outside, t.aws_outside, t.inside, t.aws_inside
        );
        if let Some(u) = t.uptime_secs {
            let _ = write!(out, "  up {}", human_duration(u));
        }
        if t.active {
            out.push_str("  [active]");
        }
        if !ok {
            let why = t.reason.clone().unwrap_or_else(|| {
                if t.liveness == "suspect" {
                    "no answer from AWS inside address".into()
                } else if t.ike_phase2_state.is_up() {
                    "BGP IS DOWN".into()
                } else {
                    "not established".into()
                }
            });
            let _ = write!(out, "  — {why}");
        }
        out.push('\n');
        if t.ike_phase2_state.is_up() {
            let _ = writeln!(
                out,
                "    IKE {}  IPsec {}  SPI in {} out {}{}{}",
                algorithms(&t.phase1_algorithms),
                algorithms(&t.phase2_algorithms),
                t.spi_in.as_deref().unwrap_or("-"),
                t.spi_out.as_deref().unwrap_or("-"),
                t.next_rekey_secs
                    .map(|r| format!("  rekey in {}", human_duration(r)))
                    .unwrap_or_default(),
                if t.nat_t_detected { "  NAT-T" } else { "" },
            );
        }
        let _ = write!(
            out,
            "    in {} pkts {}  out {} pkts {}",
            t.traffic.packets_in,
            human_bytes(t.traffic.bytes_in),
            t.traffic.packets_out,
            human_bytes(t.traffic.bytes_out)
        );
        if let Some(rtt) = t.probe_rtt_ms {
            let _ = write!(out, "  probe rtt {rtt:.1} ms");
        }
        if let Some(b) = &t.bgp {
            let _ = write!(
                out,
                "\n    BGP {} with {} (AS {}){}  {} received, {} advertised",
                b.state.to_uppercase(),
                b.neighbor,
                b.peer_as,
                b.uptime_secs
                    .map(|u| format!(" up {}", human_duration(u)))
                    .unwrap_or_default(),
                b.prefixes_received,
                b.prefixes_advertised
            );
            if let Some(e) = b.last_error.as_ref().filter(|_| !b.established()) {
                let _ = write!(out, "  — {e}");
            }
        }
        let drops: Vec<String> = t
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if !drops.is_empty() {
            let _ = write!(out, "  drops: {}", drops.join(" "));
        }
        out.push('\n');
    }
    if !s.bgp_routes.is_empty() {
        out.push_str("learned over BGP:\n");
        for r in &s.bgp_routes {
            let list = |v: &[u8]| v.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
            let _ = write!(out, "    {} via tunnel {}", r.prefix, list(&r.tunnels));
            if !r.fallback.is_empty() {
                let _ = write!(out, " (then {})", list(&r.fallback));
            }
            out.push('\n');
        }
    }
    if routes {
        out.push_str(&render_routes(s));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with tunnel 1 up and active, tunnel 2 down after a DPD timeout.
    pub fn sample() -> StatusSnapshot {
        let up = TunnelStatus {
            tunnel: 1,
            ike_phase1_state: PhaseState::Established,
            ike_phase2_state: PhaseState::Established,
            local_outside: "192.0.2.10".parse().unwrap(),
            aws_outside: "198.51.100.11".parse().unwrap(),
            inside: "169.254.10.6/30".parse().unwrap(),
            aws_inside: "169.254.10.5".parse().unwrap(),
            phase1_algorithms: Some(Algorithms {
                encryption: "AES256-GCM-16".into(),
                integrity: Some("SHA2-512".into()),
                dh_group: Some(21),
            }),
            phase2_algorithms: Some(Algorithms {
                encryption: "AES256-GCM-16".into(),
                integrity: None,
                dh_group: None,
            }),
            spi_in: Some("c1a2b3c4".into()),
            spi_out: Some("0badf00d".into()),
            uptime_secs: Some(3725),
            next_rekey_secs: Some(2460),
            traffic: Traffic {
                packets_in: 1200,
                bytes_in: 3_400_000,
                packets_out: 1100,
                bytes_out: 900,
            },
            drops: [("replay".to_string(), 3)].into(),
            nat_t_detected: false,
            dpd_enabled: true,
            liveness: "healthy".into(),
            probe_rtt_ms: Some(12.5),
            active: true,
            reason: None,
            bgp: None,
        };
        let down = TunnelStatus {
            tunnel: 2,
            ike_phase1_state: PhaseState::Down,
            ike_phase2_state: PhaseState::Down,
            aws_outside: "203.0.113.12".parse().unwrap(),
            inside: "169.254.20.10/30".parse().unwrap(),
            aws_inside: "169.254.20.9".parse().unwrap(),
            phase1_algorithms: None,
            phase2_algorithms: None,
            spi_in: None,
            spi_out: None,
            uptime_secs: None,
            next_rekey_secs: None,
            traffic: Traffic::default(),
            drops: BTreeMap::new(),
            liveness: "down".into(),
            probe_rtt_ms: None,
            active: false,
            reason: Some("AWS stopped answering (DPD timeout)".into()),
            bgp: None,
            ..up.clone()
        };
        StatusSnapshot {
            cgwd_version: "0.1.0".into(),
            vpn_connection_id: "vpn-71310d5967085f652".into(),
            interface: "cgwd0".into(),
            failover_policy: "prefer-tunnel-1".into(),
            outbound: "tunnel-1".into(),
            uptime_secs: 4000,
            failovers: 1,
            ike_input: Default::default(),
            ike_half_open: 0,
            tunnels: vec![up, down],
            routes: vec![RouteStatus {
                destination: "10.100.0.0/16".parse().unwrap(),
                device: "cgwd0".into(),
            }],
            reload: None,
            bgp_routes: Vec::new(),
            connections: Vec::new(),
        }
    }

    #[test]
    fn human_view_shows_what_is_wrong_at_a_glance() {
        let text = render(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("DEGRADED: one tunnel down"), "{text}");
        let t1 = lines.iter().find(|l| l.contains("tunnel 1 ")).unwrap();
        let t2 = lines.iter().find(|l| l.contains("tunnel 2 ")).unwrap();
        assert!(t1.starts_with('✔') && t1.contains("ESTABLISHED") && t1.contains("[active]"));
        assert!(t1.contains("up 1h02m"), "{t1}");
        assert!(t2.starts_with('✘'), "{t2}");
        assert!(t2.contains("DOWN (IKE down, IPsec down)"), "{t2}");
        assert!(t2.contains("— AWS stopped answering (DPD timeout)"), "{t2}");
        assert!(
            text.contains("IKE AES256-GCM-16/SHA2-512/DH21  IPsec AES256-GCM-16"),
            "{text}"
        );
        assert!(
            text.contains("SPI in c1a2b3c4 out 0badf00d  rekey in 41m00s"),
            "{text}"
        );
        assert!(
            text.contains("in 1200 pkts 3.4 MB  out 1100 pkts 900 B"),
            "{text}"
        );
        assert!(text.contains("drops: replay=3"), "{text}");
        assert!(text.contains("10.100.0.0/16 dev cgwd0"), "{text}");
    }

    #[test]
    fn suspect_tunnel_is_marked_even_when_ipsec_is_up() {
        let mut s = sample();
        s.tunnels[0].liveness = "suspect".into();
        let text = render(&s);
        let t1 = text.lines().find(|l| l.contains("tunnel 1 ")).unwrap();
        assert!(
            t1.starts_with('✘') && t1.contains("no answer from AWS inside address"),
            "{t1}"
        );
        let head = text.lines().next().unwrap();
        assert!(head.contains("DOWN: no tunnel up"), "{head}");
    }

    #[test]
    fn json_uses_aws_words_and_round_trips() {
        let s = sample();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["tunnels"][0]["ike_phase1_state"], "established");
        assert_eq!(v["tunnels"][1]["ike_phase2_state"], "down");
        assert_eq!(v["tunnels"][0]["nat_t_detected"], false);
        assert_eq!(v["routes"][0]["destination"], "10.100.0.0/16");
        let back: StatusSnapshot = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn exit_code_tells_degraded_from_down() {
        let mut s = sample();
        assert_eq!(s.exit_code(), 1);
        s.tunnels[1].ike_phase2_state = PhaseState::Rekeying;
        assert_eq!(s.exit_code(), 0);
        for t in &mut s.tunnels {
            t.ike_phase2_state = PhaseState::Negotiating;
        }
        assert_eq!(s.exit_code(), 2);
        assert!(render(&s).contains("DOWN: no tunnel up"));
    }

    #[test]
    fn several_connections_render_one_block_each_and_combine_exit_codes() {
        let one = sample();
        let mut two = sample();
        two.vpn_connection_id = "vpn-0second".into();
        for t in &mut two.tunnels {
            t.ike_phase2_state = PhaseState::Established;
        }
        let mut top = one.clone();
        top.connections = vec![one.clone(), two.clone()];
        let text = render(&top);
        assert!(
            text.starts_with(&format!("cgwd {} — 2 VPN connections", one.cgwd_version)),
            "{text}"
        );
        assert!(
            text.contains(&one.vpn_connection_id) && text.contains("vpn-0second"),
            "{text}"
        );
        assert_eq!(text.matches("routes").count(), 1, "{text}");
        assert_eq!(top.exit_code(), 1);
        top.connections = vec![two.clone(), two];
        assert_eq!(top.exit_code(), 0);
    }

    #[test]
    fn durations_and_bytes_read_naturally() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(185), "3m05s");
        assert_eq!(human_duration(90061), "1d01h");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }
}
