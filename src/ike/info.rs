//! INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5): liveness checks (DPD) and deletes.
//!
//! ```text
//! HDR, SK {}                     -->      DPD: an empty request
//!                                <--      HDR, SK {}
//! HDR, SK {D(ESP, spi...)}       -->      delete a Child SA
//!                                <--      HDR, SK {D(ESP, our spi...)}
//! HDR, SK {D(IKE)}               -->      delete the IKE SA (and its Child SAs)
//!                                <--      HDR, SK {}
//! ```
//! CREATE_CHILD_SA is in [`super::child`].
//!
//! Only an authenticated IKE SA gets here: before IKE_AUTH completes, INFORMATIONAL requests are
//! dropped and counted without taking a message ID (`IkeSa::receive` in `message.rs`), and a
//! response counts only in the exchange of our request. The one AUTHENTICATION_FAILED honoured here is the initiator's
//! after our IKE_AUTH response (RFC 7296 §2.21.2): by then the initiator has proved the PSK, so it
//! ends the SA no more than its DELETE would.

use std::time::Instant;

use super::message::{Inbound, RequestKind};
use super::timer::Timer;
use super::{IkeSa, State};
use crate::wire::ike::{DeleteRepr, ExchangeType, NotifyType, PayloadRepr, ProtocolId};

pub(crate) use super::init::notify;

impl IkeSa {
    pub(crate) fn process_informational(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let mut delete_ike = false;
        let mut auth_failed = false;
        let mut our_deleted = Vec::new();
        for p in &inbound.payloads {
            match p {
                PayloadRepr::Delete(d) if d.protocol == ProtocolId::IKE => delete_ike = true,
                PayloadRepr::Delete(d) if d.protocol == ProtocolId::ESP => {
                    for &spi in &d.spis {
                        if let Some(c) = self.children.iter().find(|c| c.outbound == spi) {
                            let inbound = c.inbound;
                            our_deleted.push(inbound);
                            self.child_deleted(inbound);
                        }
                    }
                }
                PayloadRepr::Notify(n) if n.kind == NotifyType::AUTHENTICATION_FAILED => auth_failed = true,
                PayloadRepr::Notify(n) if n.kind.is_error() => {
                    tracing::warn!(tunnel = %self.cfg.tunnel, notify = n.kind.0, "error notify in INFORMATIONAL");
                }
                _ => {}
            }
        }
        let mut response = Vec::new();
        if !our_deleted.is_empty() && !delete_ike {
            response.push(PayloadRepr::Delete(DeleteRepr {
                protocol: ProtocolId::ESP,
                spis: our_deleted,
            }));
        }
        self.send_response(ExchangeType::INFORMATIONAL, inbound.msg_id, raw, &response);
        if auth_failed && self.role == super::Role::Responder {
            // The initiator did not accept our AUTH (RFC 7296 §2.21.2): our PSK or ID is wrong for it.
            let reason = if self.cfg.certificate.is_some() {
                super::FailReason::PeerRejectedCertificate
            } else {
                super::FailReason::PeerRejectedAuth
            };
            self.fail(now, reason);
            return;
        }
        if delete_ike && !self.peer_deleted_rekeyed_ike(now) {
            tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA deleted by the peer");
            self.finish();
        }
    }

    /// Nothing heard for the DPD interval: ask the peer whether it is still there.
    pub(crate) fn on_dpd_timer(&mut self, now: Instant) {
        if self.state != State::Established {
            return;
        }
        let busy = self.in_flight.is_some() || self.queue.contains(&RequestKind::Dpd);
        if !busy {
            self.queue.push_back(RequestKind::Dpd);
            self.pump(now);
        }
        // Re-armed when the answer (or any other authenticated message) arrives; if none comes the
        // retransmission schedule declares the peer dead.
        self.timers.set(Timer::Dpd, now + self.cfg.dpd_interval);
    }
}
