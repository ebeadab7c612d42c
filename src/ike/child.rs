//! CREATE_CHILD_SA as responder (RFC 7296 §1.3): new or rekeyed Child SAs (with PFS when the phase 2 DH
//! groups ask for it, as AWS's do) and IKE SA rekeys (§2.18). AWS rekeys both on its own schedule.
//!
//! ```text
//! Child rekey   HDR, SK {N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}   -->
//!                                   <--  HDR, SK {SA, Nr, [KEr], TSi, TSr}
//!               HDR, SK {D(ESP, old)}                             -->   (then the old one goes)
//! IKE rekey     HDR, SK {SA(new SPIi), Ni, KEi}                   -->
//!                                   <--  HDR, SK {SA(new SPIr), Nr, KEr}
//!               HDR(old SPIs), SK {D(IKE)}                        -->   answered with the old keys
//! ```
//! Starting rekeys ourselves (lifetime − margin) and collisions (§2.8.1) are not done yet: the request
//! queue in [`super::message`] is where they go, as `RequestKind::RekeyChild` / `RekeyIke`.

use std::time::Instant;

use super::auth::find_sa;
use super::init::{find_notify, keys_from, notify};
use super::message::{Inbound, OldIke};
use super::proposal::{PfsMode, Proposal, select_ike};
use super::timer::Timer;
use super::{Event, FailReason, IkeSa, Phase, Role};
use crate::crypto::{DhPrivate, derive_child_keys, derive_rekeyed_ike_keys};
use crate::suite::DhGroup;
use crate::wire::ike::{ExchangeType, NotifyRepr, NotifyType, PayloadRepr, ProtocolId, SaRepr};

const NONCE_LEN: usize = 32;

fn find_nonce(p: &[PayloadRepr]) -> Option<&[u8]> {
    p.iter().find_map(|x| match x {
        PayloadRepr::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

fn find_ke(p: &[PayloadRepr]) -> Option<(u16, &[u8])> {
    p.iter().find_map(|x| match x {
        PayloadRepr::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

impl IkeSa {
    pub(crate) fn process_create_child(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let is_ike = find_sa(&inbound.payloads)
            .is_some_and(|sa| sa.proposals.iter().any(|p| p.protocol == ProtocolId::IKE));
        if is_ike {
            self.respond_ike_rekey(now, raw, inbound);
        } else {
            self.respond_child(now, raw, inbound);
        }
    }

    fn refuse(&mut self, raw: &[u8], msg_id: u32, n: PayloadRepr) {
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &[n]);
    }

    /// Our DH half for group `g` against the peer's KE, or the notify to answer with.
    fn pfs_secret(
        &mut self,
        g: DhGroup,
        ke: Option<(u16, &[u8])>,
    ) -> Result<(DhPrivate, crate::secret::Secret), PayloadRepr> {
        match ke {
            Some((group, data)) if group == g.number() => {
                let dh = DhPrivate::generate(g, &mut *self.rng)
                    .map_err(|_| notify(NotifyType::TEMPORARY_FAILURE, Vec::new()))?;
                let shared = dh
                    .shared_secret(data)
                    .map_err(|_| notify(NotifyType::INVALID_SYNTAX, Vec::new()))?;
                Ok((dh, shared))
            }
            _ => Err(notify(
                NotifyType::INVALID_KE_PAYLOAD,
                g.number().to_be_bytes().to_vec(),
            )),
        }
    }

    fn respond_child(&mut self, _now: Instant, raw: &[u8], inbound: Inbound) {
        let p = &inbound.payloads;
        let msg_id = inbound.msg_id;
        if let Some(n) = find_notify(p, NotifyType::REKEY_SA) {
            let known = <[u8; 4]>::try_from(n.spi.as_slice())
                .map(u32::from_be_bytes)
                .is_ok_and(|spi| self.children.iter().any(|c| c.outbound == spi));
            if n.protocol != ProtocolId::ESP || !known {
                let nf = PayloadRepr::Notify(NotifyRepr {
                    protocol: n.protocol,
                    spi: n.spi.clone(),
                    kind: NotifyType::CHILD_SA_NOT_FOUND,
                    data: Vec::new(),
                });
                self.refuse(raw, msg_id, nf);
                return;
            }
        }
        let Some(ni) = find_nonce(p).map(<[u8]>::to_vec) else {
            self.refuse(raw, msg_id, notify(NotifyType::INVALID_SYNTAX, Vec::new()));
            return;
        };
        let pfs = if self.cfg.esp.dh.is_empty() {
            PfsMode::Ignore
        } else {
            PfsMode::Require
        };
        let our_spi = self.random_spi32();
        let (chosen, suite, tsi, tsr, peer_spi) = match self.select_first_child(p, our_spi, pfs) {
            Ok(x) => x,
            Err((kind, reason)) => {
                self.refuse(raw, msg_id, notify(kind, Vec::new()));
                let f = self.failure(reason);
                tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "Child SA rekey refused");
                self.events.push_back(Event::ChildFailed(f));
                return;
            }
        };
        let dh = match suite.dh {
            Some(g) => match self.pfs_secret(g, find_ke(p)) {
                Ok(x) => Some(x),
                Err(n) => {
                    self.refuse(raw, msg_id, n);
                    return;
                }
            },
            None => None,
        };
        let nr = self.random_bytes(NONCE_LEN);
        let Some(keys) = self.keys.as_ref() else { return };
        let k = derive_child_keys(
            keys.prf,
            keys.sk_d.expose(),
            dh.as_ref().map(|(_, s)| s.expose()),
            &ni,
            &nr,
            suite.encryption,
            suite.integrity,
        );
        let mut response = vec![
            PayloadRepr::Sa(SaRepr {
                proposals: vec![chosen.to_repr()],
            }),
            PayloadRepr::Nonce(nr),
        ];
        if let (Some(g), Some((priv_dh, _))) = (suite.dh, dh.as_ref()) {
            response.push(PayloadRepr::Ke {
                group: g.number(),
                data: priv_dh.public_value().to_vec(),
            });
        }
        response.push(PayloadRepr::TsI(vec![super::ts::to_wire(&tsi)]));
        response.push(PayloadRepr::TsR(vec![super::ts::to_wire(&tsr)]));
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &response);
        let child = self.orient_child(suite, our_spi, peer_spi, tsr, tsi, k, false);
        self.child_up(child);
    }

    fn respond_ike_rekey(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let p = &inbound.payloads;
        let msg_id = inbound.msg_id;
        let Some(sa) = find_sa(p) else { return };
        let offered: Vec<Proposal> = sa.proposals.iter().map(Proposal::from_repr).collect();
        let Some((mut chosen, suite)) = select_ike(&offered, &self.cfg.ike) else {
            self.refuse(raw, msg_id, notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()));
            let f = self.failure(FailReason::NoProposalChosen {
                phase: Phase::One,
                by_peer: false,
            });
            self.events.push_back(Event::ChildFailed(f));
            return;
        };
        let peer_spi = offered
            .iter()
            .find(|o| o.number == chosen.number)
            .and_then(|o| <[u8; 8]>::try_from(o.spi.as_slice()).ok())
            .map(u64::from_be_bytes)
            .filter(|&s| s != 0);
        let (Some(peer_spi), Some(g), Some(ni)) = (peer_spi, suite.dh, find_nonce(p).map(<[u8]>::to_vec))
        else {
            self.refuse(raw, msg_id, notify(NotifyType::INVALID_SYNTAX, Vec::new()));
            return;
        };
        let (dh, shared) = match self.pfs_secret(g, find_ke(p)) {
            Ok(x) => x,
            Err(n) => {
                self.refuse(raw, msg_id, n);
                return;
            }
        };
        let our_spi = self.random_spi64();
        let nr = self.random_bytes(NONCE_LEN);
        let (Some(old_keys), Some(prf)) = (self.keys.as_ref(), suite.prf) else {
            return;
        };
        let k = derive_rekeyed_ike_keys(
            prf,
            old_keys.prf,
            old_keys.sk_d.expose(),
            suite.encryption,
            suite.integrity,
            &ni,
            &nr,
            shared.expose(),
            peer_spi,
            our_spi,
        );
        // The peer started this rekey, so it is the new IKE SA's original initiator.
        let Some(new_keys) = keys_from(Role::Responder, &suite, k) else {
            return;
        };
        chosen.spi = our_spi.to_be_bytes().to_vec();
        let response = [
            PayloadRepr::Sa(SaRepr {
                proposals: vec![chosen.to_repr()],
            }),
            PayloadRepr::Nonce(nr),
            PayloadRepr::Ke {
                group: g.number(),
                data: dh.public_value().to_vec(),
            },
        ];
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &response);

        let old_local_spi = self.local_spi();
        self.old_ike = Some(OldIke {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            role: self.role,
            keys: self.keys.take(),
            peer_next_id: self.peer_next_id,
            last_response: self.last_response.take(),
        });
        self.spi_i = peer_spi;
        self.spi_r = our_spi;
        self.role = Role::Responder;
        self.keys = Some(new_keys);
        self.suite = Some(suite);
        self.next_request_id = 0;
        self.peer_next_id = 0;
        self.in_flight = None;
        self.timers.stop(Timer::Retransmit);
        tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekeyed by the peer");
        self.events.push_back(Event::IkeRekeyed {
            old_local_spi,
            new_local_spi: self.local_spi(),
        });
        self.heard(now);
    }
}
