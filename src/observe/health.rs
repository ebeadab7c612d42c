//! Tunnel health records in AWS's vocabulary.
//!
//! AWS writes a tunnel activity log per tunnel (FACTS §3.1) with `ike_phase1_state`,
//! `ike_phase2_state`, `details` and friends; operators alarm on it with metric filters such as
//! `$.ike_phase1_state = "down"` or substrings of `$.details`. A [`HealthTracker`] writes the same
//! fields from our end, so one query covers both ends of a tunnel. Sentences about our side say
//! "cgwd tunnel" where AWS says "AWS tunnel"; the rest of each sentence (the part queries match on,
//! e.g. "DPD timed out after", "received DELETE for IKE_SA") is AWS's wording.
//!
//! Sans-IO: every call takes the wall-clock time; the tracker reads no clock and writes nothing.
//! It returns [`HealthRecord`]s for a [`super::HealthSink`] to write.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::HealthFormat;

/// The state of one IKE phase: the status snapshot's [`PhaseState`] (one vocabulary for `cgwd status`,
/// the health records and the metrics).
pub use crate::daemon::status::PhaseState as SaState;

/// What the daemon knows about a tunnel at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelHealth {
    pub phase1: SaState,
    pub phase2: SaState,
    pub dpd_enabled: bool,
    /// NAT detected between us and AWS (NAT_DETECTION payloads differed).
    pub nat_t_detected: bool,
    /// `None` for static routing; `Some(established)` for BGP connections, where AWS counts a tunnel
    /// UP only while BGP is Established.
    pub bgp_established: Option<bool>,
    /// Prefixes learned over BGP, for the status message ("N BGP ROUTES", as AWS's telemetry says).
    pub bgp_routes: Option<u32>,
}

impl TunnelHealth {
    /// UP in the sense of AWS's `TunnelState`/telemetry: IPsec up, and BGP Established if BGP is used.
    pub fn is_up(&self) -> bool {
        self.phase1.is_up() && self.phase2.is_up() && self.bgp_established != Some(false)
    }
}

/// Which end of the tunnel did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Us, the customer gateway.
    Cgwd,
    /// The AWS endpoint.
    Aws,
}

/// IKE phase an event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkePhase {
    /// IKE_SA (IKE_SA_INIT / IKE_AUTH).
    One,
    /// Child SA (IKE_AUTH's child or CREATE_CHILD_SA).
    Two,
}

/// Things the daemon reports that deserve a record of their own. Each maps to one `details` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// IKE_SA established (IKE_AUTH done).
    IkeSaUp,
    /// Child SA installed; `spi` is the inbound SPI (ours).
    ChildSaUp { spi: u32 },
    /// We sent a CREATE_CHILD_SA request (rekey or new child) with this message id.
    CreateChildSaRequestSent { id: u32 },
    /// We processed the response to our CREATE_CHILD_SA request.
    CreateChildSaResponseProcessed { id: u32 },
    /// We processed AWS's CREATE_CHILD_SA request.
    CreateChildSaRequestProcessed { id: u32 },
    /// We sent the response to AWS's CREATE_CHILD_SA request.
    CreateChildSaResponseSent { id: u32 },
    /// DPD (empty INFORMATIONAL) went unanswered after this many retransmits.
    DpdTimeout { retransmits: u32 },
    /// AWS deleted the IKE SA.
    DeleteIkeSaReceived,
    /// AWS deleted a Child SA; `spi` as carried in the Delete payload (AWS's inbound SPI).
    DeleteChildSaReceived { spi: u32 },
    /// Simultaneous rekey: the losing (redundant) Child SA is deleted (RFC 7296 §2.8.1).
    RekeyCollisionRedundantDeleted,
    /// A CHILD_SA rekey collided with a delete of the same SA and is handled as the delete.
    RekeyCollisionAsDelete,
    /// IKE_AUTH failed on the PSK: AWS answered AUTHENTICATION_FAILED or its AUTH did not verify.
    PskMismatch,
    /// We refused AWS's IKE_AUTH and answered AUTHENTICATION_FAILED.
    AuthenticationFailedSent,
    /// Certificate authentication: AWS answered AUTHENTICATION_FAILED to our certificate.
    CertificateRejectedByAws,
    /// Certificate authentication: we refused AWS's certificate or signature; `why` names it.
    AwsCertificateRefused { why: String },
    /// NO_PROPOSAL_CHOSEN: `by` is the side that found no acceptable proposal.
    NoProposalChosen { phase: IkePhase, by: Side },
    /// TS_UNACCEPTABLE: `by` is the side that rejected the traffic selectors.
    TsUnacceptable { by: Side },
    /// The Child SA failed but the IKE SA stays.
    Phase2FailedKeepingPhase1,
    /// The IKE SA never completed and was abandoned.
    UnestablishedTimeout,
    /// We deleted the IKE SA (shutdown or reconfiguration).
    IkeSaDeletedByCgwd,
    /// The customer gateway's outside address changed (`to`), or none is left (`to` None); `from`
    /// None: there was none. The tunnel is re-established from the new address.
    LocalAddressChanged {
        from: Option<IpAddr>,
        to: Option<IpAddr>,
    },
}

impl HealthEvent {
    /// The `details` text; `aws_ip` is the tunnel's AWS outside address.
    ///
    /// Phrasing follows AWS's catalogue (FACTS §3.1); "AWS tunnel" becomes "cgwd tunnel" where the
    /// sentence is about our side and "CGW" becomes "AWS" where it names the peer.
    pub fn details(&self, aws_ip: IpAddr) -> String {
        match *self {
            Self::IkeSaUp => format!("cgwd tunnel established IKE_SA with AWS: {aws_ip}"),
            Self::ChildSaUp { spi } => {
                format!("cgwd tunnel established Phase 2 SA with SPI: {spi:08x}")
            }
            Self::CreateChildSaRequestSent { id } => {
                format!("cgwd tunnel is sending request (id={id}) for CREATE_CHILD_SA")
            }
            Self::CreateChildSaResponseProcessed { id } => {
                format!("cgwd tunnel processed response (id={id}) for CREATE_CHILD_SA")
            }
            Self::CreateChildSaRequestProcessed { id } => {
                format!("cgwd tunnel processed request (id={id}) for CREATE_CHILD_SA")
            }
            Self::CreateChildSaResponseSent { id } => {
                format!("cgwd tunnel is sending response (id={id}) for CREATE_CHILD_SA")
            }
            Self::DpdTimeout { retransmits } => {
                format!("cgwd tunnel DPD timed out after {retransmits} retransmits")
            }
            Self::DeleteIkeSaReceived => "cgwd tunnel received DELETE for IKE_SA from AWS".into(),
            Self::DeleteChildSaReceived { spi } => {
                format!("cgwd tunnel received DELETE for Phase 2 SA with SPI: {spi:08x}")
            }
            Self::RekeyCollisionRedundantDeleted => {
                "cgwd tunnel (CHILD_SA) redundant SA is being deleted due to detected collision".into()
            }
            Self::RekeyCollisionAsDelete => {
                "cgwd tunnel detected a (CHILD_REKEY) collision as CHILD_DELETE".into()
            }
            Self::PskMismatch => {
                format!("cgwd tunnel detected a pre-shared key mismatch with AWS: {aws_ip}")
            }
            Self::AuthenticationFailedSent => {
                "cgwd tunnel is sending AUTHENTICATION_FAILED as the response".into()
            }
            Self::CertificateRejectedByAws => format!(
                "cgwd tunnel received AUTHENTICATION_FAILED from AWS: {aws_ip} for the customer gateway certificate"
            ),
            Self::AwsCertificateRefused { ref why } => {
                format!("cgwd tunnel refused the certificate of AWS: {aws_ip}: {why}")
            }
            Self::NoProposalChosen {
                phase: IkePhase::One,
                by: Side::Aws,
            } => "No Proposal Match Found by AWS".into(),
            Self::NoProposalChosen {
                phase: IkePhase::One,
                by: Side::Cgwd,
            } => "No Proposal Match Found by cgwd".into(),
            Self::NoProposalChosen {
                phase: IkePhase::Two,
                by: Side::Cgwd,
            } => "No Proposal Match Found. Notifying with \"No proposal chosen\"".into(),
            Self::NoProposalChosen {
                phase: IkePhase::Two,
                by: Side::Aws,
            } => "No Proposal Match Found by AWS. Received \"No proposal chosen\"".into(),
            Self::TsUnacceptable { by: Side::Aws } => {
                "cgwd: Traffic Selector: TS_UNACCEPTABLE: received from responder".into()
            }
            Self::TsUnacceptable { by: Side::Cgwd } => {
                "cgwd: Traffic Selector: TS_UNACCEPTABLE: sent to initiator".into()
            }
            Self::Phase2FailedKeepingPhase1 => {
                "cgwd tunnel Phase 2 was unable to establish while keeping Phase 1".into()
            }
            Self::UnestablishedTimeout => {
                format!("cgwd tunnel Timeout: deleting un-established Phase 1 IKE_SA with AWS: {aws_ip}")
            }
            Self::IkeSaDeletedByCgwd => "cgwd tunnel is sending DELETE for IKE_SA to AWS".into(),
            Self::LocalAddressChanged { from, to } => {
                let from = from.map_or_else(|| "none".to_string(), |a| a.to_string());
                match to {
                    Some(to) => format!(
                        "cgwd: customer gateway outside address changed from {from} to {to}; re-establishing IKE_SA with AWS: {aws_ip}"
                    ),
                    None => format!(
                        "cgwd: customer gateway outside address {from} is gone and no other reaches AWS: {aws_ip}; waiting for one"
                    ),
                }
            }
        }
    }
}

/// Who a tunnel is, copied into every record so a line stands alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelIdentity {
    /// `vpn-…`.
    pub vpn_connection_id: String,
    /// AWS's outside address of this tunnel (what AWS's metrics call `TunnelIpAddress`).
    pub tunnel_outside_ip: IpAddr,
    pub customer_gateway_id: String,
    /// `None` for transit-gateway attachments.
    pub vpn_gateway_id: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
}

/// One record of the `aws` format: AWS's tunnel-log keys plus who the tunnel is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsRecord {
    /// Epoch seconds (AWS's tunnel log unit; FACTS §3.1).
    pub event_timestamp: u64,
    /// UTC with milliseconds, `2025-11-08 05:40:29.641Z`, as AWS's 2025 log examples.
    pub timestamp: String,
    pub details: String,
    pub dpd_enabled: bool,
    pub nat_t_detected: bool,
    pub ike_phase1_state: SaState,
    pub ike_phase2_state: SaState,
    pub vpn_connection_id: String,
    pub tunnel_outside_ip: IpAddr,
}

/// UP/DOWN as AWS's VgwTelemetry says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UpDown {
    #[serde(rename = "UP")]
    Up,
    #[serde(rename = "DOWN")]
    Down,
}

/// One record of the `status` format. Unknown ids are `null` so every line has the same keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub vpc_id: Option<String>,
    pub vpn_connection_id: String,
    pub customer_gateway_id: String,
    pub vpn_gateway_id: Option<String>,
    pub tunnel_ip: IpAddr,
    pub status: UpDown,
    pub status_message: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

/// A record for the sinks of its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthRecord {
    Aws(AwsRecord),
    Status(StatusRecord),
}

impl HealthRecord {
    pub fn format(&self) -> HealthFormat {
        match self {
            Self::Aws(_) => HealthFormat::Aws,
            Self::Status(_) => HealthFormat::Status,
        }
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        let r = match self {
            Self::Aws(r) => serde_json::to_string(r),
            Self::Status(r) => serde_json::to_string(r),
        };
        // Serialising plain strings, bools and numbers cannot fail.
        r.unwrap_or_default()
    }
}

/// `2025-11-08 05:40:29.641Z` (AWS's readable `timestamp`).
pub fn aws_timestamp(t: SystemTime) -> String {
    rfc3339_millis(t).replacen('T', " ", 1)
}

/// `2025-11-08T05:40:29.641Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    // humantime refuses times before the epoch; clamp rather than fail a log line.
    let t = t.max(UNIX_EPOCH);
    humantime::format_rfc3339_millis(t).to_string()
}

fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Follows one tunnel and decides when a record is due.
///
/// * `aws` records: on every event, on every change of phase 1/2 state, DPD or NAT-T flags, and
///   periodically.
/// * `status` records: on every UP/DOWN change (the first report always gives one) and periodically.
#[derive(Debug)]
pub struct HealthTracker {
    id: TunnelIdentity,
    interval: Option<Duration>,
    current: TunnelHealth,
    /// Last state an `aws` record carried.
    last_aws: Option<TunnelHealth>,
    /// Last UP/DOWN a `status` record carried, with its message.
    last_status: Option<(UpDown, String)>,
    /// Details of the last event, kept for the status message of a DOWN caused by it.
    last_event: Option<String>,
    next_periodic: Option<SystemTime>,
}

impl HealthTracker {
    /// `interval`: periodic records every so often (`None` or zero: only on change).
    pub fn new(id: TunnelIdentity, interval: Option<Duration>) -> Self {
        HealthTracker {
            id,
            interval: interval.filter(|d| !d.is_zero()),
            current: TunnelHealth::default(),
            last_aws: None,
            last_status: None,
            last_event: None,
            next_periodic: None,
        }
    }

    pub fn identity(&self) -> &TunnelIdentity {
        &self.id
    }

    /// The state last reported.
    pub fn current(&self) -> TunnelHealth {
        self.current
    }

    /// Report the tunnel's state, with the event that led to it if any. Returns the records due.
    pub fn report(
        &mut self,
        now: SystemTime,
        state: TunnelHealth,
        event: Option<&HealthEvent>,
    ) -> Vec<HealthRecord> {
        self.current = state;
        let mut out = Vec::new();
        let details = match event {
            Some(e) => {
                let d = e.details(self.id.tunnel_outside_ip);
                self.last_event = Some(d.clone());
                Some(d)
            }
            None if self.last_aws != Some(state) => Some(self.change_details(state)),
            None => None,
        };
        if let Some(details) = details {
            out.push(self.aws_record(now, details));
            self.last_aws = Some(state);
        }
        let status = self.status_now();
        if self.last_status.as_ref().map(|(s, _)| *s) != Some(status.0) {
            out.push(self.status_record(now, status));
        }
        if self.next_periodic.is_none() {
            self.next_periodic = self.interval.map(|i| now + i);
        }
        out
    }

    /// When [`Self::tick`] next has something to say (`None`: never, until the next report).
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.next_periodic
    }

    /// Periodic records, if due. A wall clock stepped backwards restarts the period.
    pub fn tick(&mut self, now: SystemTime) -> Vec<HealthRecord> {
        let (Some(due), Some(interval)) = (self.next_periodic, self.interval) else {
            return Vec::new();
        };
        if now < due {
            if due.duration_since(now).unwrap_or_default() > interval {
                self.next_periodic = Some(now + interval);
            }
            return Vec::new();
        }
        self.next_periodic = Some(now + interval);
        let s = self.current;
        let details = format!(
            "cgwd tunnel periodic status: Phase 1 {}, Phase 2 {}",
            s.phase1.as_str(),
            s.phase2.as_str()
        );
        let aws = self.aws_record(now, details);
        self.last_aws = Some(s);
        let status = self.status_now();
        vec![aws, self.status_record(now, status)]
    }

    fn change_details(&self, new: TunnelHealth) -> String {
        let old = self.last_aws.unwrap_or_default();
        let mut parts = Vec::new();
        if old.phase1 != new.phase1 {
            parts.push(format!(
                "Phase 1 {} -> {}",
                old.phase1.as_str(),
                new.phase1.as_str()
            ));
        }
        if old.phase2 != new.phase2 {
            parts.push(format!(
                "Phase 2 {} -> {}",
                old.phase2.as_str(),
                new.phase2.as_str()
            ));
        }
        if old.dpd_enabled != new.dpd_enabled {
            parts.push(format!(
                "DPD {}",
                if new.dpd_enabled { "enabled" } else { "disabled" }
            ));
        }
        if old.nat_t_detected != new.nat_t_detected {
            parts.push(format!(
                "NAT-T {}",
                if new.nat_t_detected {
                    "detected"
                } else {
                    "not detected"
                }
            ));
        }
        if old.bgp_established != new.bgp_established || old.bgp_routes != new.bgp_routes {
            parts.push(match new.bgp_established {
                Some(true) => format!("BGP established, {} routes", new.bgp_routes.unwrap_or(0)),
                Some(false) => "BGP down".into(),
                None => "BGP off".into(),
            });
        }
        if parts.is_empty() {
            // First record of a tunnel whose state equals the default.
            parts.push(format!(
                "Phase 1 {}, Phase 2 {}",
                new.phase1.as_str(),
                new.phase2.as_str()
            ));
        }
        format!("cgwd tunnel state changed: {}", parts.join(", "))
    }

    fn status_now(&self) -> (UpDown, String) {
        let s = self.current;
        if s.is_up() {
            let msg = match s.bgp_established {
                Some(_) => format!("{} BGP ROUTES", s.bgp_routes.unwrap_or(0)),
                None => "IPSEC IS UP".into(),
            };
            (UpDown::Up, msg)
        } else {
            let base = if s.phase1.is_up() && s.phase2.is_up() {
                "BGP IS DOWN"
            } else {
                "IPSEC IS DOWN"
            };
            let msg = match &self.last_event {
                Some(d) => format!("{base}: {d}"),
                None => base.into(),
            };
            (UpDown::Down, msg)
        }
    }

    fn aws_record(&self, now: SystemTime, details: String) -> HealthRecord {
        let s = self.current;
        HealthRecord::Aws(AwsRecord {
            event_timestamp: epoch_seconds(now),
            timestamp: aws_timestamp(now),
            details,
            dpd_enabled: s.dpd_enabled,
            nat_t_detected: s.nat_t_detected,
            ike_phase1_state: s.phase1,
            ike_phase2_state: s.phase2,
            vpn_connection_id: self.id.vpn_connection_id.clone(),
            tunnel_outside_ip: self.id.tunnel_outside_ip,
        })
    }

    fn status_record(&mut self, now: SystemTime, (status, message): (UpDown, String)) -> HealthRecord {
        self.last_status = Some((status, message.clone()));
        HealthRecord::Status(StatusRecord {
            account_id: self.id.account_id.clone(),
            region: self.id.region.clone(),
            vpc_id: self.id.vpc_id.clone(),
            vpn_connection_id: self.id.vpn_connection_id.clone(),
            customer_gateway_id: self.id.customer_gateway_id.clone(),
            vpn_gateway_id: self.id.vpn_gateway_id.clone(),
            tunnel_ip: self.id.tunnel_outside_ip,
            status,
            status_message: message,
            timestamp: rfc3339_millis(now),
        })
    }
}

impl TunnelIdentity {
    /// Identity of `tunnel` of `conn`, with the AWS metadata from settings.
    pub fn from_config(
        conn: &crate::config::VpnConnection,
        tunnel: &crate::config::TunnelConfig,
        aws: &crate::config::AwsSettings,
    ) -> Self {
        TunnelIdentity {
            vpn_connection_id: conn.id.clone(),
            tunnel_outside_ip: tunnel.aws_outside,
            customer_gateway_id: conn.customer_gateway_id.clone(),
            vpn_gateway_id: conn.vpn_gateway_id.clone(),
            account_id: aws.account_id.clone(),
            region: aws.region.clone(),
            vpc_id: aws.vpc_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_aws() {
        let t = UNIX_EPOCH + Duration::from_millis(1_762_580_429_641);
        assert_eq!(aws_timestamp(t), "2025-11-08 05:40:29.641Z");
        assert_eq!(rfc3339_millis(t), "2025-11-08T05:40:29.641Z");
        assert_eq!(epoch_seconds(t), 1_762_580_429);
        assert_eq!(epoch_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn local_address_records_name_both_addresses_and_the_endpoint() {
        let aws: IpAddr = "203.0.113.10".parse().unwrap();
        let (a, b) = ("192.0.2.10".parse().ok(), "192.0.2.20".parse().ok());
        let changed = HealthEvent::LocalAddressChanged { from: a, to: b }.details(aws);
        assert_eq!(
            changed,
            "cgwd: customer gateway outside address changed from 192.0.2.10 to 192.0.2.20; re-establishing IKE_SA with AWS: 203.0.113.10"
        );
        let gone = HealthEvent::LocalAddressChanged { from: a, to: None }.details(aws);
        assert_eq!(
            gone,
            "cgwd: customer gateway outside address 192.0.2.10 is gone and no other reaches AWS: 203.0.113.10; waiting for one"
        );
    }

    #[test]
    fn details_keep_aws_substrings() {
        let ip: IpAddr = "203.0.113.10".parse().unwrap();
        // Substrings AWS's catalogue (FACTS §3.1) uses, which filters written for AWS's log match on.
        let cases = [
            (
                HealthEvent::DpdTimeout { retransmits: 3 },
                "DPD timed out after 3 retransmits",
            ),
            (
                HealthEvent::DeleteIkeSaReceived,
                "received DELETE for IKE_SA from",
            ),
            (
                HealthEvent::DeleteChildSaReceived { spi: 0xc0ffee01 },
                "received DELETE for Phase 2 SA with SPI: c0ffee01",
            ),
            (
                HealthEvent::RekeyCollisionAsDelete,
                "detected a (CHILD_REKEY) collision as CHILD_DELETE",
            ),
            (
                HealthEvent::RekeyCollisionRedundantDeleted,
                "(CHILD_SA) redundant SA is being deleted due to detected collision",
            ),
            (
                HealthEvent::PskMismatch,
                "detected a pre-shared key mismatch with",
            ),
            (
                HealthEvent::AuthenticationFailedSent,
                "is sending AUTHENTICATION_FAILED as the response",
            ),
            (
                HealthEvent::NoProposalChosen {
                    phase: IkePhase::Two,
                    by: Side::Cgwd,
                },
                "No Proposal Match Found. Notifying with \"No proposal chosen\"",
            ),
            (
                HealthEvent::NoProposalChosen {
                    phase: IkePhase::One,
                    by: Side::Aws,
                },
                "No Proposal Match Found by AWS",
            ),
            (
                HealthEvent::TsUnacceptable { by: Side::Aws },
                "Traffic Selector: TS_UNACCEPTABLE: received from responder",
            ),
            (
                HealthEvent::CreateChildSaRequestSent { id: 7 },
                "is sending request (id=7) for CREATE_CHILD_SA",
            ),
            (
                HealthEvent::CreateChildSaResponseProcessed { id: 7 },
                "processed response (id=7) for CREATE_CHILD_SA",
            ),
            (
                HealthEvent::CreateChildSaRequestProcessed { id: 9 },
                "processed request (id=9) for CREATE_CHILD_SA",
            ),
            (
                HealthEvent::CreateChildSaResponseSent { id: 9 },
                "is sending response (id=9) for CREATE_CHILD_SA",
            ),
            (
                HealthEvent::Phase2FailedKeepingPhase1,
                "Phase 2 was unable to establish while keeping Phase 1",
            ),
            (
                HealthEvent::UnestablishedTimeout,
                "Timeout: deleting un-established Phase 1 IKE_SA with",
            ),
        ];
        for (event, needle) in cases {
            let d = event.details(ip);
            assert!(d.contains(needle), "{d:?} lacks {needle:?}");
        }
    }
}
