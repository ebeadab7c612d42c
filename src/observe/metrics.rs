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
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

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
    pub drops: Vec<(&'static str, u64)>,
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    vpn_id: String,
    tunnel_outside_ip: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    vpn_id: String,
    tunnel_outside_ip: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RekeyLabels {
    vpn_id: String,
    tunnel_outside_ip: String,
    sa: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VpnLabels {
    vpn_id: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// The registry and every metric family; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MetricsRegistry {
    registry: Registry,
    state: Family<TunnelLabels, Gauge>,
    ipsec_up: Family<TunnelLabels, Gauge>,
    active: Family<TunnelLabels, Gauge>,
    bytes_in: Family<TunnelLabels, Counter>,
    bytes_out: Family<TunnelLabels, Counter>,
    packets_in: Family<TunnelLabels, Counter>,
    packets_out: Family<TunnelLabels, Counter>,
    drops: Family<DropLabels, Counter>,
    rekeys: Family<RekeyLabels, Counter>,
    ike_sa_age: Family<TunnelLabels, GaugeF>,
    child_sa_age: Family<TunnelLabels, GaugeF>,
    dpd_rtt: Family<TunnelLabels, GaugeF>,
    failovers: Family<VpnLabels, Counter>,
    bgp_state: Family<TunnelLabels, Gauge>,
    bgp_received: Family<TunnelLabels, Gauge>,
    bgp_advertised: Family<TunnelLabels, Gauge>,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("cgwd");
        let m = MetricsRegistry {
            registry: Registry::default(),
            state: Family::default(),
            ipsec_up: Family::default(),
            active: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            packets_in: Family::default(),
            packets_out: Family::default(),
            drops: Family::default(),
            rekeys: Family::default(),
            ike_sa_age: Family::default(),
            child_sa_age: Family::default(),
            dpd_rtt: Family::default(),
            failovers: Family::default(),
            bgp_state: Family::default(),
            bgp_received: Family::default(),
            bgp_advertised: Family::default(),
        };
        r.register(
            "tunnel_state",
            "Like AWS TunnelState: 1 up, 0 down; BGP connections are up only while BGP is Established",
            m.state.clone(),
        );
        r.register(
            "tunnel_ipsec_up",
            "1 while the IKE SA and a Child SA are established",
            m.ipsec_up.clone(),
        );
        r.register(
            "tunnel_active",
            "1 while this tunnel carries outbound traffic",
            m.active.clone(),
        );
        r.register_with_unit(
            "tunnel_data_in",
            "Inner bytes received from AWS after decryption (AWS TunnelDataOut)",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register_with_unit(
            "tunnel_data_out",
            "Inner bytes sent to AWS before encryption (AWS TunnelDataIn)",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        r.register(
            "tunnel_data_in_packets",
            "Inner packets received from AWS",
            m.packets_in.clone(),
        );
        r.register(
            "tunnel_data_out_packets",
            "Inner packets sent to AWS",
            m.packets_out.clone(),
        );
        r.register("tunnel_drops", "Packets dropped, by reason", m.drops.clone());
        r.register(
            "tunnel_rekeys",
            "Completed rekeys, by SA (ike or child)",
            m.rekeys.clone(),
        );
        r.register_with_unit(
            "tunnel_ike_sa_age",
            "Age of the current IKE SA (0 when none)",
            Unit::Seconds,
            m.ike_sa_age.clone(),
        );
        r.register_with_unit(
            "tunnel_child_sa_age",
            "Age of the current Child SA (0 when none)",
            Unit::Seconds,
            m.child_sa_age.clone(),
        );
        r.register_with_unit(
            "tunnel_dpd_rtt",
            "Round-trip time of the last answered DPD probe",
            Unit::Seconds,
            m.dpd_rtt.clone(),
        );
        r.register(
            "failovers",
            "Times outbound traffic moved to the other tunnel",
            m.failovers.clone(),
        );
        r.register(
            "bgp_session_state",
            "BGP FSM state as BGP4-MIB bgpPeerState (1 idle ... 6 established)",
            m.bgp_state.clone(),
        );
        r.register(
            "bgp_prefixes_received",
            "Prefixes received from AWS over BGP",
            m.bgp_received.clone(),
        );
        r.register(
            "bgp_prefixes_advertised",
            "Prefixes advertised to AWS over BGP",
            m.bgp_advertised.clone(),
        );
        MetricsRegistry { registry: root, ..m }
    }

    /// Bring every series of one tunnel up to date. One call per tunnel per status tick.
    pub fn update_tunnel(&self, s: &TunnelMetricsSnapshot) {
        let l = TunnelLabels {
            vpn_id: s.vpn_id.clone(),
            tunnel_outside_ip: s.tunnel_outside_ip.to_string(),
        };
        self.state.get_or_create(&l).set(i64::from(s.tunnel_up()));
        self.ipsec_up.get_or_create(&l).set(i64::from(s.ipsec_up));
        self.active.get_or_create(&l).set(i64::from(s.active));
        advance(&self.bytes_in.get_or_create(&l), s.bytes_in);
        advance(&self.bytes_out.get_or_create(&l), s.bytes_out);
        advance(&self.packets_in.get_or_create(&l), s.packets_in);
        advance(&self.packets_out.get_or_create(&l), s.packets_out);
        for &(reason, total) in &s.drops {
            let dl = DropLabels {
                vpn_id: l.vpn_id.clone(),
                tunnel_outside_ip: l.tunnel_outside_ip.clone(),
                reason: reason.to_string(),
            };
            advance(&self.drops.get_or_create(&dl), total);
        }
        for (sa, total) in [("ike", s.ike_rekeys), ("child", s.child_rekeys)] {
            let rl = RekeyLabels {
                vpn_id: l.vpn_id.clone(),
                tunnel_outside_ip: l.tunnel_outside_ip.clone(),
                sa: sa.to_string(),
            };
            advance(&self.rekeys.get_or_create(&rl), total);
        }
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.ike_sa_age.get_or_create(&l).set(secs(s.ike_sa_age));
        self.child_sa_age.get_or_create(&l).set(secs(s.child_sa_age));
        match s.dpd_rtt {
            Some(rtt) => {
                self.dpd_rtt.get_or_create(&l).set(rtt.as_secs_f64());
            }
            // No answered probe yet: no sample rather than a misleading 0.
            None => {
                self.dpd_rtt.remove(&l);
            }
        }
        if let Some(bgp) = s.bgp {
            self.bgp_state.get_or_create(&l).set(bgp.state as i64);
            self.bgp_received
                .get_or_create(&l)
                .set(saturating_i64(bgp.prefixes_received));
            self.bgp_advertised
                .get_or_create(&l)
                .set(saturating_i64(bgp.prefixes_advertised));
        }
    }

    /// Connection-wide counters: `failovers` is the total since the daemon started.
    pub fn update_connection(&self, vpn_id: &str, failovers: u64) {
        let l = VpnLabels {
            vpn_id: vpn_id.to_string(),
        };
        advance(&self.failovers.get_or_create(&l), failovers);
    }

    /// The OpenMetrics text exposition (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Content type of [`Self::encode`].
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

/// Move a counter up to `total` (counters only go up; the daemon hands totals, not deltas).
fn advance(c: &Counter, total: u64) {
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
            drops: vec![("auth_failed", 3)],
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
        let l = r#"{vpn_id="vpn-0123456789abcdef0",tunnel_outside_ip="203.0.113.10"}"#;
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
