//! Why an IKE SA failed, in words a person configuring a VPN understands.
//!
//! Every failure is classified by who noticed it: a Notify the peer sent us (it rejected us), a Notify we
//! sent (we rejected it), or silence. The message names the tunnel and the config field to check.

use std::fmt;
use std::net::IpAddr;

use crate::sa::TunnelKey;

/// Error notify types we send or interpret (RFC 7296 §3.10.1).
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    // Status types.
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;

    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(kind: u16) -> bool {
        kind < 16384
    }

    pub fn name(kind: u16) -> String {
        let s = match kind {
            UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD",
            INVALID_IKE_SPI => "INVALID_IKE_SPI",
            INVALID_MAJOR_VERSION => "INVALID_MAJOR_VERSION",
            INVALID_SYNTAX => "INVALID_SYNTAX",
            INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
            INVALID_SPI => "INVALID_SPI",
            NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN",
            INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD",
            AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
            SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED",
            NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS",
            INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE",
            FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED",
            TS_UNACCEPTABLE => "TS_UNACCEPTABLE",
            INVALID_SELECTORS => "INVALID_SELECTORS",
            TEMPORARY_FAILURE => "TEMPORARY_FAILURE",
            CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND",
            _ => return format!("notify type {kind}"),
        };
        s.to_string()
    }
}

/// Which phase a failure belongs to, in AWS's words (phase 1 = IKE SA, phase 2 = Child SA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    One,
    Two,
}

/// What went wrong; [`Failure::message`] turns it into a sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum FailReason {
    /// The peer sent AUTHENTICATION_FAILED: it did not accept our PSK (or our ID).
    PeerRejectedAuth,
    /// The peer sent AUTHENTICATION_FAILED to our certificate authentication.
    PeerRejectedCertificate,
    /// The peer's AUTH payload did not verify with our PSK.
    PeerAuthInvalid,
    /// The peer identified itself as someone else.
    PeerIdMismatch { got: String },
    /// Certificate authentication: the peer's certificate, identity or signature was refused
    /// (`why` names which and the fix).
    PeerCertificate { why: String },
    /// No proposal in common; `by_peer` = the peer said so, otherwise we did.
    NoProposalChosen { phase: Phase, by_peer: bool },
    /// The traffic selectors do not overlap.
    TsUnacceptable { by_peer: bool },
    /// The peer asked for a DH group we do not allow, or kept asking for another.
    InvalidKe { group: u16 },
    /// The peer sent another error notify.
    PeerError { notify: u16 },
    /// A message from the peer was malformed or broke the protocol.
    Protocol { what: String },
    /// No answer after all retransmissions.
    PeerNotResponding { exchange: &'static str },
    /// The peer deleted the IKE SA.
    DeletedByPeer,
    /// The IKE SA reached its lifetime without a successful rekey.
    Expired,
}

/// A failure with the tunnel context needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub tunnel: TunnelKey,
    pub peer: IpAddr,
    pub reason: FailReason,
}

impl Failure {
    /// The sentence for logs and `cgwd status`.
    pub fn message(&self) -> String {
        let t = self.tunnel;
        let peer = self.peer;
        match &self.reason {
            FailReason::PeerRejectedAuth => format!(
                "{t}: AWS rejected our PSK — check the pre_shared_key of tunnel {peer} \
                 (and that our outside IP is the customer gateway IP AWS expects)"
            ),
            FailReason::PeerRejectedCertificate => format!(
                "{t}: AWS rejected our certificate — check that auth.certificate was issued by the AWS \
                 Private CA the customer gateway was created with (a subordinate CA), is valid, and \
                 that auth.private_key is its key"
            ),
            FailReason::PeerAuthInvalid => format!(
                "{t}: the peer {peer} proved a different PSK than ours — check the pre_shared_key of tunnel {peer}"
            ),
            FailReason::PeerCertificate { why } => format!("{t}: refused the peer {peer}: {why}"),
            FailReason::PeerIdMismatch { got } => format!(
                "{t}: the peer identified itself as {got}, expected {peer} — is the tunnel outside IP right?"
            ),
            FailReason::NoProposalChosen { phase, by_peer } => {
                let which = match phase {
                    Phase::One => "phase 1 (IKE)",
                    Phase::Two => "phase 2 (IPsec)",
                };
                if *by_peer {
                    format!(
                        "{t}: AWS accepted none of our {which} algorithms — compare the tunnel options \
                         (encryption, integrity, DH groups) of tunnel {peer} with ours"
                    )
                } else {
                    format!(
                        "{t}: the peer {peer} offered no {which} algorithm combination we allow — compare the \
                         tunnel options (encryption, integrity, DH groups)"
                    )
                }
            }
            FailReason::TsUnacceptable { by_peer } => {
                if *by_peer {
                    format!(
                        "{t}: AWS rejected our traffic selectors — check local/remote IPv4 network CIDR of tunnel {peer}"
                    )
                } else {
                    format!(
                        "{t}: the traffic selectors of {peer} do not overlap ours — check the network CIDRs"
                    )
                }
            }
            FailReason::InvalidKe { group } => format!(
                "{t}: the peer {peer} insists on DH group {group}, which our phase 1 DH groups do not allow"
            ),
            FailReason::PeerError { notify: n } => {
                format!("{t}: the peer {peer} refused with {}", notify::name(*n))
            }
            FailReason::Protocol { what } => format!("{t}: protocol error with {peer}: {what}"),
            FailReason::PeerNotResponding { exchange } => format!(
                "{t}: no answer from {peer} to {exchange} — is UDP 500/4500 to it open, and is the tunnel configured on the AWS side?"
            ),
            FailReason::DeletedByPeer => format!("{t}: the peer {peer} closed the tunnel"),
            FailReason::Expired => format!(
                "{t}: the IKE SA with {peer} reached its lifetime without a successful rekey; starting over"
            ),
        }
    }

    /// The error notify this failure corresponds to, if any.
    pub fn notify(&self) -> Option<u16> {
        Some(match self.reason {
            FailReason::PeerRejectedAuth
            | FailReason::PeerRejectedCertificate
            | FailReason::PeerAuthInvalid
            | FailReason::PeerIdMismatch { .. }
            | FailReason::PeerCertificate { .. } => notify::AUTHENTICATION_FAILED,
            FailReason::NoProposalChosen { .. } => notify::NO_PROPOSAL_CHOSEN,
            FailReason::TsUnacceptable { .. } => notify::TS_UNACCEPTABLE,
            FailReason::InvalidKe { .. } => notify::INVALID_KE_PAYLOAD,
            FailReason::PeerError { notify: n } => n,
            FailReason::Protocol { .. } => notify::INVALID_SYNTAX,
            _ => return None,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_rejection_names_the_tunnel_and_the_field() {
        let f = Failure {
            tunnel: crate::sa::TunnelId::One.into(),
            peer: std::net::Ipv4Addr::new(198, 51, 100, 11).into(),
            reason: FailReason::PeerRejectedAuth,
        };
        let m = f.message();
        assert!(m.starts_with(
            "tunnel 1: AWS rejected our PSK — check the pre_shared_key of tunnel 198.51.100.11"
        ));
        assert_eq!(f.notify(), Some(notify::AUTHENTICATION_FAILED));
    }
}
