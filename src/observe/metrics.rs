//! Prometheus metrics, named to line up with AWS's CloudWatch `AWS/VPN` metrics (FACTS §3.3).
//!
//! The daemon builds one [`TunnelMetricsSnapshot`] per tunnel from its status snapshot and counters
//! and calls [`MetricsRegistry::update_tunnel`] once per status tick; nothing here is on the packet
//! path. Direction mapping (AWS counts inner bytes, after decryption / before encryption, as we do):
//!
//! | cgwd                                  | AWS/VPN         |
//! |---------------------------------------|-----------------|
//! | `cgwd_tunnel_data_out_bytes_total`    | `TunnelDataIn`  |
//! | `cgwd_tunnel_data_in_bytes_total`     | `TunnelDataOut` |
//! | `cgwd_tunnel_state`                   | `TunnelState`   |
//!
//! Labels: `vpn_id` (AWS's `VpnId`), `tunnel_outside_ip` (AWS's `TunnelIpAddress`, the AWS end).

use std::net::IpAddr;
use std::time::Duration;

use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// BGP finite-state-machine state (RFC 4271 §8.2.2), numbered as BGP4-MIB `bgpPeerState` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgpState {
    Idle = 1,
    Connect = 2,
    Active = 3,
    OpenSent = 4,
    OpenConfirm = 5,
    Established = 6,
}

/// BGP session of one tunnel (placeholder until cgwd speaks BGP; filled by whoever runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgpSnapshot {
    pub state: BgpState,
    pub prefixes_received: u64,
    pub prefixes_advertised: u64,
}

/// Everything the metrics say about one tunnel at a status tick. Counters are totals since the
/// daemon started (monotonic); a smaller value than last time is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelMetricsSnapshot {
    pub vpn_id: String,
    /// AWS's outside address of the tunnel.
    pub tunnel_outside_ip: IpAddr,
    /// IKE SA and Child SA established.
    pub ipsec_up: bool,
    /// `None` for static routing. With BGP the tunnel counts as up only while BGP is Established.
    pub bgp: Option<BgpSnapshot>,
    /// This tunnel carries our outbound traffic now.
    pub active: bool,
    /// Inner bytes/packets received from AWS (after decryption) = AWS's TunnelDataOut.
    pub bytes_in: u64,
    pub packets_in: u64,
    /// Inner bytes/packets sent to AWS (before encryption) = AWS's TunnelDataIn.
    pub bytes_out: u64,
    pub packets_out: u64,
    /// Drop totals by reason (e.g. [`crate::esp::counters::DropReason::name`]).
    pub drops: Vec<(String, u64)>,
    pub ike_rekeys: u64,
    pub child_rekeys: u64,
    /// Age of the current IKE / Child SA; `None` when there is none (exported as 0).
    pub ike_sa_age: Option<Duration>,
    pub child_sa_age: Option<Duration>,
    /// Round trip of the last answered DPD probe.
    pub dpd_rtt: Option<Duration>,
}

impl TunnelMetricsSnapshot {
    /// AWS's `TunnelState`: IPsec up and, for BGP connections, BGP Established.
    pub fn tunnel_up(&self) -> bool {
        self.ipsec_up && self.bgp.is_none_or(|b| b.state == BgpState::Established)
    }
}

const TUNNEL: &[&str] = &["vpn_id", "tunnel_outside_ip"];

/// The registry and every metric family; share it behind an `Arc` (all methods take `&self`).
///
/// The `prometheus` crate rather than `prometheus-client`: it writes the classic text format
/// (0.0.4) that every Prometheus and `promtool check metrics` accept; prometheus-client writes only
/// OpenMetrics, whose counter families `promtool` (2.x) flags.
#[derive(Debug, Clone)]
pub struct MetricsRegistry {
    registry: Registry,
    state: IntGaugeVec,
    ipsec_up: IntGaugeVec,
    active: IntGaugeVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    packets_in: IntCounterVec,
    packets_out: IntCounterVec,
    drops: IntCounterVec,
    rekeys: IntCounterVec,
    ike_sa_age: GaugeVec,
    child_sa_age: GaugeVec,
    dpd_rtt: GaugeVec,
    failovers: IntCounterVec,
    ike_input: IntCounterVec,
    ike_half_open: IntGaugeVec,
    bgp_state: IntGaugeVec,
    bgp_received: IntGaugeVec,
    bgp_advertised: IntGaugeVec,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// Register a metric built from constant names; both steps fail only on a malformed or duplicate
/// name, which the tests would show at once.
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: prometheus::Result<M>) -> M {
    let m = m.expect("valid metric definition");
    r.register(Box::new(m.clone())).expect("unique metric name");
    m
}

impl MetricsRegistry {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("cgwd".into()), None).expect("valid prefix");
        let ig = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let ic = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let fg = |name: &str, help: &str| reg(&r, GaugeVec::new(Opts::new(name, help), TUNNEL));
        MetricsRegistry {
            state: ig(
                "tunnel_state",
                "Like AWS TunnelState: 1 up, 0 down; BGP connections are up only while BGP is Established",
                TUNNEL,
            ),
            ipsec_up: ig(
                "tunnel_ipsec_up",
                "1 while the IKE SA and a Child SA are established",
                TUNNEL,
            ),
            active: ig(
                "tunnel_active",
                "1 while this tunnel carries outbound traffic",
                TUNNEL,
            ),
            bytes_in: ic(
                "tunnel_data_in_bytes_total",
                "Inner bytes received from AWS after decryption (AWS TunnelDataOut)",
                TUNNEL,
            ),
            bytes_out: ic(
                "tunnel_data_out_bytes_total",
                "Inner bytes sent to AWS before encryption (AWS TunnelDataIn)",
                TUNNEL,
            ),
            packets_in: ic(
                "tunnel_data_in_packets_total",
                "Inner packets received from AWS",
                TUNNEL,
            ),
            packets_out: ic(
                "tunnel_data_out_packets_total",
                "Inner packets sent to AWS",
                TUNNEL,
            ),
            drops: ic(
                "tunnel_drops_total",
                "Packets dropped, by reason",
                &["vpn_id", "tunnel_outside_ip", "reason"],
            ),
            rekeys: ic(
                "tunnel_rekeys_total",
                "Completed rekeys, by SA (ike or child)",
                &["vpn_id", "tunnel_outside_ip", "sa"],
            ),
            ike_sa_age: fg(
                "tunnel_ike_sa_age_seconds",
                "Age of the current IKE SA (0 when none)",
            ),
            child_sa_age: fg(
                "tunnel_child_sa_age_seconds",
                "Age of the current Child SA (0 when none)",
            ),
            dpd_rtt: fg(
                "tunnel_dpd_rtt_seconds",
                "Round-trip time of the last answered DPD probe",
            ),
            failovers: ic(
                "failovers_total",
                "Times outbound traffic moved to the other tunnel",
                &["vpn_id"],
            ),
            ike_input: ic(
                "ike_input_total",
                "IKE datagrams refused or dropped before authentication, by what happened (spoofs, floods, strays)",
                &["vpn_id", "what"],
            ),
            ike_half_open: ig(
                "ike_half_open_sas",
                "Responder IKE SAs whose peer has not authenticated yet",
                &["vpn_id"],
            ),
            bgp_state: ig(
                "bgp_session_state",
                "BGP FSM state as BGP4-MIB bgpPeerState (1 idle ... 6 established)",
                TUNNEL,
            ),
            bgp_received: ig(
                "bgp_prefixes_received",
                "Prefixes received from AWS over BGP",
                TUNNEL,
            ),
            bgp_advertised: ig(
                "bgp_prefixes_advertised",
                "Prefixes advertised to AWS over BGP",
                TUNNEL,
            ),
            registry: r.clone(),
        }
    }

    /// Bring every series of one tunnel up to date. One call per tunnel per status tick.
    pub fn update_tunnel(&self, s: &TunnelMetricsSnapshot) {
        let ip = s.tunnel_outside_ip.to_string();
        let l = [s.vpn_id.as_str(), ip.as_str()];
        self.state.with_label_values(&l).set(i64::from(s.tunnel_up()));
        self.ipsec_up.with_label_values(&l).set(i64::from(s.ipsec_up));
        self.active.with_label_values(&l).set(i64::from(s.active));
        advance(&self.bytes_in.with_label_values(&l), s.bytes_in);
        advance(&self.bytes_out.with_label_values(&l), s.bytes_out);
        advance(&self.packets_in.with_label_values(&l), s.packets_in);
        advance(&self.packets_out.with_label_values(&l), s.packets_out);
        for (reason, total) in &s.drops {
            advance(
                &self.drops.with_label_values(&[l[0], l[1], reason.as_str()]),
                *total,
            );
        }
        for (sa, total) in [("ike", s.ike_rekeys), ("child", s.child_rekeys)] {
            advance(&self.rekeys.with_label_values(&[l[0], l[1], sa]), total);
        }
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.ike_sa_age.with_label_values(&l).set(secs(s.ike_sa_age));
        self.child_sa_age.with_label_values(&l).set(secs(s.child_sa_age));
        match s.dpd_rtt {
            Some(rtt) => self.dpd_rtt.with_label_values(&l).set(rtt.as_secs_f64()),
            // No answered probe yet: no sample rather than a misleading 0.
            None => {
                let _ = self.dpd_rtt.remove_label_values(&l);
            }
        }
        if let Some(bgp) = s.bgp {
            self.bgp_state.with_label_values(&l).set(bgp.state as i64);
            self.bgp_received
                .with_label_values(&l)
                .set(saturating_i64(bgp.prefixes_received));
            self.bgp_advertised
                .with_label_values(&l)
                .set(saturating_i64(bgp.prefixes_advertised));
        }
    }

    /// Connection-wide counters: `failovers` is the total since the daemon started.
    pub fn update_connection(&self, vpn_id: &str, failovers: u64) {
        advance(&self.failovers.with_label_values(&[vpn_id]), failovers);
    }

    /// The gateway's counters of unauthenticated IKE input, and its half-open SAs now.
    pub fn update_ike_input(&self, vpn_id: &str, stats: &crate::gateway::Stats, half_open: u64) {
        for (what, total) in stats.labelled() {
            advance(&self.ike_input.with_label_values(&[vpn_id, what]), total);
        }
        self.ike_half_open
            .with_label_values(&[vpn_id])
            .set(saturating_i64(half_open));
    }

    /// The text exposition (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Content type of [`Self::encode`].
    pub const CONTENT_TYPE: &'static str = prometheus::TEXT_FORMAT;
}

/// Move a counter up to `total` (counters only go up; the daemon hands totals, not deltas).
fn advance(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> TunnelMetricsSnapshot {
        TunnelMetricsSnapshot {
            vpn_id: "vpn-0123456789abcdef0".into(),
            tunnel_outside_ip: "203.0.113.10".parse().unwrap(),
            ipsec_up: true,
            bgp: None,
            active: true,
            bytes_in: 1000,
            packets_in: 10,
            bytes_out: 2000,
            packets_out: 20,
            drops: vec![("auth_failed".into(), 3)],
            ike_rekeys: 1,
            child_rekeys: 2,
            ike_sa_age: Some(Duration::from_secs(90)),
            child_sa_age: Some(Duration::from_millis(1500)),
            dpd_rtt: Some(Duration::from_millis(12)),
        }
    }

    #[test]
    fn counters_follow_totals_and_never_go_down() {
        let m = MetricsRegistry::new();
        let mut s = snapshot();
        m.update_tunnel(&s);
        s.bytes_out = 5000;
        m.update_tunnel(&s);
        s.bytes_out = 10; // lower total (should not happen) is ignored
        m.update_tunnel(&s);
        let text = m.encode();
        let l = r#"{tunnel_outside_ip="203.0.113.10",vpn_id="vpn-0123456789abcdef0"}"#;
        assert!(
            text.contains(&format!("cgwd_tunnel_data_out_bytes_total{l} 5000\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("cgwd_tunnel_data_in_bytes_total{l} 1000\n")),
            "{text}"
        );
        assert!(text.contains(&format!("cgwd_tunnel_state{l} 1\n")), "{text}");
    }

    #[test]
    fn bgp_tunnel_is_up_only_when_established() {
        let mut s = snapshot();
        s.bgp = Some(BgpSnapshot {
            state: BgpState::OpenConfirm,
            prefixes_received: 0,
            prefixes_advertised: 1,
        });
        assert!(!s.tunnel_up());
        s.bgp = Some(BgpSnapshot {
            state: BgpState::Established,
            prefixes_received: 4,
            prefixes_advertised: 1,
        });
        assert!(s.tunnel_up());
        s.ipsec_up = false;
        assert!(!s.tunnel_up());
    }
}
