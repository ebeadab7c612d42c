//! Adapters from the daemon's status snapshot ([`crate::daemon::status`]), so the run loop feeds
//! metrics and health with one call per status tick.

use std::time::Duration;

use crate::daemon::status::{StatusSnapshot, TunnelStatus};

use super::health::TunnelHealth;
use super::metrics::{BgpSnapshot, BgpState, MetricsRegistry, TunnelMetricsSnapshot};

impl TunnelHealth {
    /// The health-relevant part of a tunnel's status (BGP's when the tunnel runs a session).
    pub fn from_status(t: &TunnelStatus) -> Self {
        TunnelHealth {
            phase1: t.ike_phase1_state,
            phase2: t.ike_phase2_state,
            dpd_enabled: t.dpd_enabled,
            nat_t_detected: t.nat_t_detected,
            bgp_established: t.bgp.as_ref().map(|b| b.established()),
            bgp_routes: t
                .bgp
                .as_ref()
                .map(|b| u32::try_from(b.prefixes_received).unwrap_or(u32::MAX)),
        }
    }
}

impl TunnelMetricsSnapshot {
    /// What the status snapshot knows. Rekey counts, SA ages and BGP are not in it: they stay
    /// 0/`None` unless the caller fills them in.
    pub fn from_status(vpn_id: &str, t: &TunnelStatus) -> Self {
        TunnelMetricsSnapshot {
            vpn_id: vpn_id.to_string(),
            tunnel_outside_ip: t.aws_outside,
            ipsec_up: t.ike_phase1_state.is_up() && t.ike_phase2_state.is_up(),
            bgp: t.bgp.as_ref().map(|b| BgpSnapshot {
                state: match b.state.as_str() {
                    "established" => BgpState::Established,
                    "openconfirm" => BgpState::OpenConfirm,
                    "opensent" => BgpState::OpenSent,
                    _ => BgpState::Idle,
                },
                prefixes_received: b.prefixes_received,
                prefixes_advertised: b.prefixes_advertised,
            }),
            active: t.active,
            bytes_in: t.traffic.bytes_in,
            packets_in: t.traffic.packets_in,
            bytes_out: t.traffic.bytes_out,
            packets_out: t.traffic.packets_out,
            drops: t.drops.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ike_rekeys: 0,
            child_rekeys: 0,
            ike_sa_age: None,
            child_sa_age: None,
            dpd_rtt: t
                .probe_rtt_ms
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
        }
    }
}

impl MetricsRegistry {
    /// Update every series from a status snapshot: both tunnels and the failover count.
    pub fn update_from_status(&self, s: &StatusSnapshot) {
        for t in &s.tunnels {
            self.update_tunnel(&TunnelMetricsSnapshot::from_status(&s.vpn_connection_id, t));
        }
        self.update_connection(&s.vpn_connection_id, s.failovers);
        self.update_ike_input(&s.vpn_connection_id, &s.ike_input, s.ike_half_open);
    }
}
