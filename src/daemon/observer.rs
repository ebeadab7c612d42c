//! The daemon's side of [`crate::observe`]: health records and Prometheus metrics fed from the
//! control loop's events and status snapshots.
//!
//! Kept out of `run.rs` so the loop only calls [`Observer::event`], [`Observer::status`],
//! [`Observer::poll`] and [`Observer::reopen`]. Write errors of the health sink are logged (rate
//! limited) and never stop the daemon: losing a log line must not take a tunnel down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Settings, VpnConnection};
use crate::daemon::status::StatusSnapshot;
use crate::ike::{FailReason, Phase};
use crate::io::clock::RateLimit;
use crate::observe::health::IkePhase;
use crate::observe::{
    HealthEvent, HealthReporter, MetricsRegistry, MetricsServer, Side, TunnelHealth, TunnelMetricsSnapshot,
};
use crate::sa::TunnelId;

/// Per-tunnel facts the status snapshot does not carry, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaFacts {
    pub ike_rekeys: u64,
    pub child_rekeys: u64,
    pub ike_since: Option<Instant>,
    pub child_since: Option<Instant>,
}

/// Health reporter, metrics registry and (when `metrics.listen` is set) its HTTP server.
pub struct Observer {
    /// `None` in the AWS role (`cgwd emulate-aws`): these records speak for the customer gateway.
    health: Option<HealthReporter>,
    metrics: Arc<MetricsRegistry>,
    server: Option<MetricsServer>,
    pub facts: [SaFacts; 2],
    /// cgwd is deleting its SAs (shutdown): Child SAs going away are not AWS's DELETEs.
    pub closing: bool,
    /// Header of the IKE message being handled per tunnel (a rekey's ChildUp names its exchange).
    pub inbound: [Option<IkeHeader>; 2],
    /// (IKE SA initiator SPI, message id) of the last CREATE_CHILD_SA request we sent per tunnel:
    /// retransmits and fragments make one record; the SPI tells a new IKE SA's request 2 from the old's.
    requests_sent: [Option<(u64, u32)>; 2],
    write_errors: RateLimit,
    /// Another connection's registry ([`Observer::start_shared`]): daemon-wide series are not ours.
    shared_registry: bool,
}

/// Wall-clock time for the records (the only wall-clock read of the daemon).
#[allow(clippy::disallowed_methods)]
fn wall_now() -> SystemTime {
    SystemTime::now()
}

impl Observer {
    /// Open the health sink and bind the metrics listener; either failing stops the start.
    /// `customer`: false for the AWS role, which writes no health records and serves no metrics.
    pub fn start(conn: &VpnConnection, settings: &Settings, customer: bool) -> Result<Observer, String> {
        let metrics = Arc::new(MetricsRegistry::new());
        let mut observer = Observer::start_shared(conn, settings, customer, &metrics)?;
        observer.shared_registry = false;
        observer.server = match settings.metrics.listen.filter(|_| customer) {
            Some(addr) => Some(
                MetricsServer::start(addr, metrics.clone())
                    .map_err(|e| format!("metrics.listen {addr}: {e}"))?,
            ),
            None => None,
        };
        if let Some(s) = &observer.server {
            tracing::info!(listen = %s.local_addr(), "Prometheus metrics served on /metrics");
        }
        Ok(observer)
    }

    /// Another VPN connection's observer in the same daemon: its own health records, the first
    /// observer's metrics registry (one `/metrics` for every connection, labelled by VPN ID).
    pub fn start_shared(
        conn: &VpnConnection,
        settings: &Settings,
        customer: bool,
        metrics: &Arc<MetricsRegistry>,
    ) -> Result<Observer, String> {
        let health = customer
            .then(|| HealthReporter::new(conn, settings))
            .transpose()
            .map_err(|e| {
                // Under daemon.user (or a service's User=) the file is the user's, not root's.
                let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    ". Fix: make the file, or its directory, writable by the user cgwd runs as \
                     (daemon.user, or the service's user), e.g. `install -d -o cgwd /var/log/cgwd`"
                } else {
                    ""
                };
                format!("opening log.health {:?}: {e}{fix}", settings.log.health)
            })?;
        Ok(Observer {
            health,
            metrics: metrics.clone(),
            server: None,
            facts: [SaFacts::default(); 2],
            closing: false,
            inbound: [None; 2],
            requests_sent: [None; 2],
            write_errors: RateLimit::new(Duration::from_secs(60)),
            shared_registry: true,
        })
    }

    /// The metrics registry this observer updates.
    pub fn registry(&self) -> Arc<MetricsRegistry> {
        self.metrics.clone()
    }

    /// Where the metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(MetricsServer::local_addr)
    }

    fn check(&mut self, r: std::io::Result<()>, now: Instant) {
        if let Err(e) = r
            && let Some(missed) = self.write_errors.check(now)
        {
            tracing::warn!(error = %e, missed, "writing a health record failed");
        }
    }

    /// An IKE message cgwd sends on tunnel `i`: a new CREATE_CHILD_SA request gets a record.
    pub fn sent(&mut self, i: usize, data: &[u8]) -> Option<HealthEvent> {
        let h = ike_header(data)?;
        let last = self.requests_sent.get_mut(i)?;
        if h.exchange != CREATE_CHILD_SA || h.response || *last == Some((h.spi_i, h.msg_id)) {
            return None;
        }
        *last = Some((h.spi_i, h.msg_id));
        Some(HealthEvent::CreateChildSaRequestSent { id: h.msg_id })
    }

    /// The CREATE_CHILD_SA records for a rekey completed by the message being handled on tunnel
    /// `i`: our request's response processed, or AWS's request processed and answered.
    pub fn rekey_events(&self, i: usize) -> Vec<HealthEvent> {
        match self.inbound.get(i).copied().flatten() {
            Some(h) if h.exchange == CREATE_CHILD_SA && h.response => {
                vec![HealthEvent::CreateChildSaResponseProcessed { id: h.msg_id }]
            }
            Some(h) if h.exchange == CREATE_CHILD_SA => vec![
                HealthEvent::CreateChildSaRequestProcessed { id: h.msg_id },
                HealthEvent::CreateChildSaResponseSent { id: h.msg_id },
            ],
            _ => Vec::new(),
        }
    }

    /// A reported event on `tunnel`, which left it in `state`.
    pub fn event(&mut self, tunnel: TunnelId, state: TunnelHealth, ev: &HealthEvent, now: Instant) {
        if let Some(h) = &mut self.health {
            let r = h.event(wall_now(), tunnel, Some(state), ev);
            self.check(r, now);
        }
    }

    /// Every status publish: metrics from the snapshot (plus rekeys and SA ages), then the health
    /// state changes and periodic records.
    pub fn status(&mut self, snap: &StatusSnapshot, now: Instant) {
        for t in &snap.tunnels {
            let Some(f) = (t.tunnel as usize).checked_sub(1).and_then(|i| self.facts.get(i)) else {
                continue;
            };
            let mut m = TunnelMetricsSnapshot::from_status(&snap.vpn_connection_id, t);
            m.ike_rekeys = f.ike_rekeys;
            m.child_rekeys = f.child_rekeys;
            m.ike_sa_age = f.ike_since.map(|s| now.saturating_duration_since(s));
            m.child_sa_age = f.child_since.map(|s| now.saturating_duration_since(s));
            self.metrics.update_tunnel(&m);
        }
        self.metrics
            .update_connection(&snap.vpn_connection_id, snap.failovers);
        // The gateway's IKE input counters are the daemon's (one socket pair for every
        // connection): reported once, under the first connection's VPN ID.
        if !self.shared_registry {
            self.metrics
                .update_ike_input(&snap.vpn_connection_id, &snap.ike_input, snap.ike_half_open);
        }
        if let Some(h) = &mut self.health {
            let r = h.status_tick(wall_now(), snap, None);
            self.check(r, now);
        }
    }

    /// How long the loop may sleep before periodic records are due (`None`: no periodic records).
    pub fn due_in(&self) -> Option<Duration> {
        let at = self.health.as_ref()?.next_deadline()?;
        Some(at.duration_since(wall_now()).unwrap_or(Duration::ZERO))
    }

    /// Periodic records, if due.
    pub fn poll(&mut self, now: Instant) {
        if self.due_in().is_some_and(|d| d.is_zero())
            && let Some(h) = &mut self.health
        {
            let r = h.tick(wall_now());
            self.check(r, now);
        }
    }

    /// SIGHUP: reopen the health file (logrotate moved it).
    pub fn reopen(&mut self) {
        let Some(h) = &self.health else { return };
        match h.reopen() {
            Ok(()) => tracing::info!("SIGHUP: health log reopened"),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: reopening the health log failed; still writing to the old file")
            }
        }
    }
}

/// IKE exchange type CREATE_CHILD_SA (RFC 7296 §3.1).
const CREATE_CHILD_SA: u8 = 36;

/// The cleartext part of an IKE header that names an exchange (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeHeader {
    pub spi_i: u64,
    pub exchange: u8,
    pub response: bool,
    pub msg_id: u32,
}

/// `None` when `data` is shorter than an IKE header.
pub fn ike_header(data: &[u8]) -> Option<IkeHeader> {
    let h = data.get(..28)?;
    Some(IkeHeader {
        spi_i: u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]),
        exchange: h[18],
        response: h[19] & 0x20 != 0,
        msg_id: u32::from_be_bytes([h[20], h[21], h[22], h[23]]),
    })
}

/// The health event for an IKE SA failure (`child`: only the Child SA failed). `ike_up`: the IKE
/// SA had been established (a silence then is a DPD / liveness-check timeout).
pub fn failure_event(f: &FailReason, ike_up: bool, child: bool, retries: u32) -> Option<HealthEvent> {
    let side = |by_peer: bool| if by_peer { Side::Aws } else { Side::Cgwd };
    Some(match f {
        FailReason::PeerRejectedAuth | FailReason::PeerAuthInvalid => HealthEvent::PskMismatch,
        FailReason::PeerRejectedCertificate => HealthEvent::CertificateRejectedByAws,
        FailReason::PeerCertificate { why } => HealthEvent::AwsCertificateRefused { why: why.clone() },
        FailReason::NoProposalChosen { phase, by_peer } => HealthEvent::NoProposalChosen {
            phase: match phase {
                Phase::One => IkePhase::One,
                Phase::Two => IkePhase::Two,
            },
            by: side(*by_peer),
        },
        FailReason::TsUnacceptable { by_peer } => HealthEvent::TsUnacceptable { by: side(*by_peer) },
        _ if child => HealthEvent::Phase2FailedKeepingPhase1,
        FailReason::PeerNotResponding { .. } if ike_up => HealthEvent::DpdTimeout { retransmits: retries },
        FailReason::PeerNotResponding { .. } => HealthEvent::UnestablishedTimeout,
        FailReason::DeletedByPeer => HealthEvent::DeleteIkeSaReceived,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab connection, health to a file in `dir`, metrics on an ephemeral loopback port.
    fn observer(dir: &std::path::Path, customer: bool) -> Observer {
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
        let settings = dir.join("cgwd.toml");
        std::fs::write(
            &settings,
            format!(
                "[metrics]\nlisten = \"127.0.0.1:0\"\n[log]\nhealth = \"{}\"\n",
                dir.join("health.jsonl").display()
            ),
        )
        .unwrap();
        let (conn, settings) = crate::config::load(&config, Some(&settings)).unwrap();
        Observer::start(&conn, &settings, customer).unwrap()
    }

    fn up() -> TunnelHealth {
        TunnelHealth {
            phase1: crate::observe::SaState::Established,
            phase2: crate::observe::SaState::Established,
            dpd_enabled: true,
            ..TunnelHealth::default()
        }
    }

    #[test]
    fn events_go_to_the_file_which_reopens_after_rotation() {
        let dir = std::env::temp_dir().join(format!("cgwd-observer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut o = observer(&dir, true);
        assert!(o.metrics_addr().is_some_and(|a| a.ip().is_loopback()));
        let now = crate::io::clock::now();
        o.event(TunnelId::One, up(), &HealthEvent::IkeSaUp, now);
        // logrotate: rename, then SIGHUP.
        std::fs::rename(dir.join("health.jsonl"), dir.join("health.jsonl.1")).unwrap();
        o.reopen();
        o.event(TunnelId::Two, up(), &HealthEvent::DeleteIkeSaReceived, now);
        let old = std::fs::read_to_string(dir.join("health.jsonl.1")).unwrap();
        let new = std::fs::read_to_string(dir.join("health.jsonl")).unwrap();
        assert!(
            old.contains("established IKE_SA with AWS")
                && old.contains("\"ike_phase1_state\":\"established\""),
            "{old}"
        );
        assert!(new.contains("received DELETE for IKE_SA from AWS"), "{new}");
        assert_eq!(new.lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn aws_role_writes_no_records_and_serves_no_metrics() {
        let dir = std::env::temp_dir().join(format!("cgwd-observer-aws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut o = observer(&dir, false);
        assert!(o.metrics_addr().is_none());
        o.event(
            TunnelId::One,
            up(),
            &HealthEvent::IkeSaUp,
            crate::io::clock::now(),
        );
        assert!(o.due_in().is_none());
        assert!(!dir.join("health.jsonl").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn create_child_sa_records_follow_the_headers() {
        let dir = std::env::temp_dir().join(format!("cgwd-observer-cc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut o = observer(&dir, true);
        let header = |exchange: u8, flags: u8, id: u32| {
            let mut h = vec![0u8; 28];
            h[18] = exchange;
            h[19] = flags;
            h[20..24].copy_from_slice(&id.to_be_bytes());
            h
        };
        // Our request (initiator flag 0x08), its retransmit, then an INFORMATIONAL (37).
        assert_eq!(
            o.sent(0, &header(36, 0x08, 5)),
            Some(HealthEvent::CreateChildSaRequestSent { id: 5 })
        );
        assert_eq!(o.sent(0, &header(36, 0x08, 5)), None);
        assert_eq!(o.sent(0, &header(37, 0x08, 6)), None);
        assert_eq!(o.sent(0, &header(36, 0x28, 9)), None, "a response is no request");
        assert_eq!(o.sent(0, &[0u8; 10]), None);
        // After an IKE SA rekey message ids start again: the same id on a new IKE SA is a new request.
        let mut on_new_ike_sa = header(36, 0x08, 5);
        on_new_ike_sa[..8].copy_from_slice(&7u64.to_be_bytes());
        assert_eq!(
            o.sent(0, &on_new_ike_sa),
            Some(HealthEvent::CreateChildSaRequestSent { id: 5 })
        );
        o.inbound[0] = ike_header(&header(36, 0x20, 5));
        assert_eq!(
            o.rekey_events(0),
            vec![HealthEvent::CreateChildSaResponseProcessed { id: 5 }]
        );
        o.inbound[1] = ike_header(&header(36, 0x00, 9));
        assert_eq!(
            o.rekey_events(1),
            vec![
                HealthEvent::CreateChildSaRequestProcessed { id: 9 },
                HealthEvent::CreateChildSaResponseSent { id: 9 }
            ]
        );
        o.inbound[1] = ike_header(&header(37, 0x00, 10));
        assert!(o.rekey_events(1).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_map_to_aws_vocabulary() {
        let dpd = failure_event(
            &FailReason::PeerNotResponding {
                exchange: "INFORMATIONAL",
            },
            true,
            false,
            4,
        );
        assert_eq!(dpd, Some(HealthEvent::DpdTimeout { retransmits: 4 }));
        let early = failure_event(
            &FailReason::PeerNotResponding { exchange: "IKE_AUTH" },
            false,
            false,
            4,
        );
        assert_eq!(early, Some(HealthEvent::UnestablishedTimeout));
        assert_eq!(
            failure_event(&FailReason::PeerRejectedAuth, false, false, 4),
            Some(HealthEvent::PskMismatch)
        );
        assert_eq!(
            failure_event(&FailReason::PeerRejectedCertificate, false, false, 4),
            Some(HealthEvent::CertificateRejectedByAws)
        );
        let refused = failure_event(
            &FailReason::PeerCertificate {
                why: "the peer's certificate (CN=x) expired at 2026-01-01".into(),
            },
            false,
            false,
            4,
        )
        .unwrap();
        assert_eq!(
            refused.details("192.0.2.1".parse().unwrap()),
            "cgwd tunnel refused the certificate of AWS: 192.0.2.1: the peer's certificate (CN=x) expired at 2026-01-01"
        );
        assert_eq!(
            failure_event(&FailReason::DeletedByPeer, true, false, 4),
            Some(HealthEvent::DeleteIkeSaReceived)
        );
        assert_eq!(
            failure_event(
                &FailReason::NoProposalChosen {
                    phase: Phase::Two,
                    by_peer: true
                },
                true,
                true,
                4
            ),
            Some(HealthEvent::NoProposalChosen {
                phase: IkePhase::Two,
                by: Side::Aws
            })
        );
        assert_eq!(
            failure_event(&FailReason::TsUnacceptable { by_peer: false }, true, true, 4),
            Some(HealthEvent::TsUnacceptable { by: Side::Cgwd })
        );
        assert_eq!(
            failure_event(&FailReason::Expired, true, true, 4),
            Some(HealthEvent::Phase2FailedKeepingPhase1)
        );
        assert_eq!(failure_event(&FailReason::Expired, true, false, 4), None);
    }
}
