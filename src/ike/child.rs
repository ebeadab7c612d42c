//! CREATE_CHILD_SA (RFC 7296 §1.3): rekeyed Child SAs (with PFS when the phase 2 DH groups ask for it,
//! as AWS's do), answered when the peer starts them (AWS rekeys on its own schedule) and started by us
//! at lifetime − margin − random fuzz. IKE SA rekeys are in [`super::ike_rekey`].
//!
//! ```text
//! Child rekey   HDR, SK {N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}   -->
//!                                   <--  HDR, SK {SA, Nr, [KEr], TSi, TSr}
//!               HDR, SK {D(ESP, old)}                             -->   (then the old one goes)
//! ```
//! Child SA rekey collisions (§2.8.1, both sides rekeying the same Child SA at once) are resolved as the
//! RFC says: both exchanges complete, and the SA made by the exchange holding the lowest of the four
//! nonces is redundant. Its initiator deletes it (without ever announcing it to the data plane) and
//! leaves the old SA alone; the winner's initiator deletes the old SA as after any rekey.
//!
//! Make-before-break on the answering side (collision or not): the peer's new SA is installed inbound
//! at once (`Event::ChildInbound`), and we switch outbound to it only when the peer deletes the old SA
//! (it does so after installing the new one), or after the peer's retransmission schedule if that
//! DELETE never comes. So nothing we send can overtake a delayed response, and a redundant SA is
//! never sent on by either side.
//! ```text
//!  A (nonces Na1, Nb2 win)                          B
//!  CREATE_CHILD_SA {REKEY_SA(old), Na1} -->  <-- CREATE_CHILD_SA {REKEY_SA(old), Nb1}
//!  <-- {Nb2}  (A's new SA)                          {Na2} -->  (B's new SA)
//!  lowest nonce is Nb1 or Na2: B's SA is redundant
//!  D(ESP, old) -->                          <-- D(ESP, B's new SA)
//! ```
//! A peer's rekey of an SA we are deleting gets TEMPORARY_FAILURE (§2.25.1); one of an SA that is gone,
//! CHILD_SA_NOT_FOUND; any Child SA rekey while we close the IKE SA, TEMPORARY_FAILURE (§2.25.2).
//! A Child rekey crossing an IKE rekey is refused with TEMPORARY_FAILURE by both sides, and each
//! retries after a random 1–5 s (see [`super::ike_rekey`]).

use std::time::Instant;

use super::auth::find_sa;
use super::init::{find_notify, notify};
use super::message::{Inbound, RequestKind};
use super::proposal::{PfsMode, Proposal};
use super::timer::Timer;
use super::{Event, FailReason, IkeSa};
use crate::crypto::{DhPrivate, derive_child_keys};
use crate::suite::DhGroup;
use crate::wire::ike::{ExchangeType, NotifyRepr, NotifyType, PayloadRepr, ProtocolId, SaRepr};

const NONCE_LEN: usize = 32;

/// Child SAs one IKE SA holds at most. AWS makes one per tunnel; a rekey adds its successor beside
/// it and a rekey collision one more (make-before-break). Every one is an inbound SA the data plane
/// searches, so a peer asking for more gets NO_ADDITIONAL_SAS (a rekey, TEMPORARY_FAILURE: it
/// frees a place once the peer deletes what it replaced).
pub const MAX_CHILD_SAS: usize = 3;

pub(super) fn find_nonce(p: &[PayloadRepr]) -> Option<&[u8]> {
    p.iter().find_map(|x| match x {
        PayloadRepr::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

pub(super) fn find_ke(p: &[PayloadRepr]) -> Option<(u16, &[u8])> {
    p.iter().find_map(|x| match x {
        PayloadRepr::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

impl IkeSa {
    pub(crate) fn process_create_child(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        if self.state == super::State::Deleting {
            // RFC 7296 §2.25.1/§2.25.2: we are closing the IKE SA; our DELETE is on its way.
            self.refuse(
                raw,
                inbound.msg_id,
                notify(NotifyType::TEMPORARY_FAILURE, Vec::new()),
            );
            return;
        }
        let is_ike = find_sa(&inbound.payloads)
            .is_some_and(|sa| sa.proposals.iter().any(|p| p.protocol == ProtocolId::IKE));
        if is_ike {
            self.respond_ike_rekey(now, raw, inbound);
        } else {
            self.respond_child(now, raw, inbound);
        }
    }

    pub(super) fn refuse(&mut self, raw: &[u8], msg_id: u32, n: PayloadRepr) {
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &[n]);
    }

    /// Our DH half for group `g` against the peer's KE, or the notify to answer with.
    /// The group of the peer's KE payload, as a preference for our choice (see
    /// [`super::proposal::Prefer`]): cgwd takes it when allowed; `emulate-aws` (AWS's lowest-option
    /// rule) does not.
    pub(super) fn acceptable_ke(&self, group: u16) -> Option<DhGroup> {
        if self.cfg.selection != super::proposal::Selection::Strongest {
            return None;
        }
        DhGroup::new(group)
    }

    pub(super) fn pfs_secret(
        &mut self,
        g: DhGroup,
        ke: Option<(u16, &[u8])>,
    ) -> Result<(DhPrivate, crate::secret::Secret), PayloadRepr> {
        match ke {
            Some((group, data)) if group == g.number() => {
                // Checked before we spend a DH key generation on it.
                crate::crypto::check_peer_value(g, data)
                    .map_err(|_| notify(NotifyType::INVALID_SYNTAX, Vec::new()))?;
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

    fn respond_child(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let p = &inbound.payloads;
        let msg_id = inbound.msg_id;
        // Our inbound SPI of the Child SA the peer rekeys (it names it by its own inbound SPI).
        let mut target: Option<u32> = None;
        if let Some(n) = find_notify(p, NotifyType::REKEY_SA) {
            target = <[u8; 4]>::try_from(n.spi.as_slice())
                .ok()
                .map(u32::from_be_bytes)
                .and_then(|spi| self.children.iter().find(|c| c.outbound == spi))
                .map(|c| c.inbound);
            if n.protocol != ProtocolId::ESP || target.is_none() {
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
        if let Some(t) = target {
            let deleting = self.queue.contains(&RequestKind::DeleteChild(t))
                || matches!(&self.in_flight, Some(r) if r.kind == RequestKind::DeleteChild(t));
            if deleting {
                // §2.25.1: we are deleting the SA the peer wants to rekey.
                self.refuse(raw, msg_id, notify(NotifyType::TEMPORARY_FAILURE, Vec::new()));
                return;
            }
        }
        // Is this a collision with our own rekey of the same SA, in flight or just completed?
        let colliding = target.is_some()
            && match &self.rekey {
                Some(r) => r.old_child == target,
                None => false,
            };
        let late = target.is_some()
            && self.rekey.is_none()
            && self
                .rekeyed_child
                .as_ref()
                .is_some_and(|r| Some(r.old_inbound) == target);
        if self.rekey.is_some() && !colliding {
            // A different exchange of ours in flight (an IKE rekey, a rekey of another SA).
            self.refuse(raw, msg_id, notify(NotifyType::TEMPORARY_FAILURE, Vec::new()));
            return;
        }
        if self.children.len() >= MAX_CHILD_SAS {
            let kind = if target.is_some() {
                NotifyType::TEMPORARY_FAILURE
            } else {
                NotifyType::NO_ADDITIONAL_SAS
            };
            tracing::debug!(tunnel = %self.cfg.tunnel, children = self.children.len(), "CREATE_CHILD_SA refused: Child SA limit");
            self.refuse(raw, msg_id, notify(kind, Vec::new()));
            return;
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
        // A rekeyed SA's successor stays within its selectors (RFC 7296 §2.9.2: they should be the
        // same), so a narrowing agreed at IKE_AUTH is not widened by a rekey; a new SA, the config's.
        let bounds = target
            .and_then(|t| self.children.iter().find(|c| c.inbound == t))
            .map_or((self.cfg.local_ts, self.cfg.remote_ts), |c| {
                (c.local_ts, c.remote_ts)
            });
        let (chosen, suite, tsi, tsr, peer_spi) = match self.select_first_child(p, our_spi, pfs, bounds) {
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
        let their_nonces = (ni.clone(), nr.clone());
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
        response.push(PayloadRepr::TsI(super::ts::to_wire(&tsi)));
        response.push(PayloadRepr::TsR(super::ts::to_wire(&tsr)));
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &response);
        let child = self.orient_child(suite, our_spi, peer_spi, tsr, tsi, k, false);
        if colliding {
            // Ours is still in flight: the peer's SA may win and the peer may send on it as soon as it
            // has our answer, so its inbound half goes in now; the verdict comes with our response.
            tracing::info!(tunnel = %self.cfg.tunnel, "Child SA rekey collision: both rekeys proceed");
            self.child_inbound(child.clone(), true);
            if let Some(r) = self.rekey.as_mut() {
                r.collision = Some(Collision {
                    ni: their_nonces.0,
                    nr: their_nonces.1,
                    child: Some(child),
                });
            }
        } else if late {
            // Ours completed before the peer's arrived: decide now.
            let Some(done) = self.rekeyed_child.take() else {
                return;
            };
            let ours_redundant = redundant(&done.ni, &done.nr, &their_nonces.0, &their_nonces.1);
            tracing::info!(tunnel = %self.cfg.tunnel, ours_redundant, "Child SA rekey collision after our rekey completed");
            if ours_redundant {
                // The peer's rekey wins and it deletes the old SA: we delete ours instead of the old.
                self.queue
                    .retain(|k| *k != RequestKind::DeleteChild(done.old_inbound));
                self.child_up(child);
                self.queue.push_back(RequestKind::DeleteChild(done.new_inbound));
                self.demote(done.new_inbound);
            } else {
                self.child_redundant(child);
                self.rekeyed_child = Some(done);
            }
        } else if let Some(old) = target {
            // An ordinary rekey by the peer: the new SA's inbound half goes in now, and we switch to it
            // when the peer deletes the old SA, which it does only once it has our answer and the new
            // SA installed (strongSwan's order), so nothing we send can overtake a delayed response.
            self.child_inbound(child.clone(), false);
            self.await_delete(now, old, child);
        } else {
            self.child_up(child);
        }
    }

    /// Move a Child SA to the front (oldest), so the current one is `children.last()` again.
    fn demote(&mut self, inbound: u32) {
        if let Some(i) = self.children.iter().position(|c| c.inbound == inbound) {
            let c = self.children.remove(i);
            self.children.insert(0, c);
        }
    }
}

/// Our CREATE_CHILD_SA in flight: what its response needs.
pub(crate) struct PendingRekey {
    pub ni: Vec<u8>,
    pub dh: Option<DhPrivate>,
    /// The new SA's SPI we chose (Child: our inbound SPI; IKE: our new SPIi).
    pub new_spi: u64,
    /// Child rekey: our inbound SPI of the SA being replaced.
    pub old_child: Option<u32>,
    /// The peer's rekey of the same Child SA, answered while ours was in flight.
    pub collision: Option<Collision>,
    /// The peer's IKE SA rekey, answered while our IKE SA rekey was in flight (RFC 7296 §2.8.2).
    pub ike_collision: Option<super::ike_rekey::PeerIkeRekey>,
    /// This exchange retries with the group an INVALID_KE_PAYLOAD named: a second one waits (a peer
    /// naming groups in turn cannot keep us retrying at once).
    pub ke_retry: bool,
    /// Child rekey: the selectors we offered (ours, the peer's), the old SA's; the answer must lie
    /// within them, as IKE_AUTH's must lie within the configured ones.
    pub offered_ts: Option<(crate::sa::TrafficSelector, crate::sa::TrafficSelector)>,
}

/// The peer's colliding rekey: its nonces and the SA it made (inbound installed, outbound not yet).
pub(crate) struct Collision {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// `None` once it is the SA we send on (the peer deleted the old SA before our response came).
    pub child: Option<crate::sa::ChildSa>,
}

/// Our completed Child SA rekey, remembered while the SA it replaced still exists.
pub(crate) struct CompletedRekey {
    pub old_inbound: u32,
    pub new_inbound: u32,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

/// The lower of two nonces, compared as strongSwan does (memcmp over the shorter length), so both ends
/// of a collision reach the same verdict.
fn lower<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    let n = a.len().min(b.len());
    if a[..n] < b[..n] { a } else { b }
}

/// RFC 7296 §2.8.1: is the SA made by our exchange (`ni`, `nr`) redundant against the peer's
/// (`their_ni`, `their_nr`)? Yes when our exchange holds the lowest of the four nonces.
pub fn redundant(ni: &[u8], nr: &[u8], their_ni: &[u8], their_nr: &[u8]) -> bool {
    let ours = lower(ni, nr);
    let theirs = lower(their_ni, their_nr);
    let n = ours.len().min(theirs.len());
    ours[..n] < theirs[..n]
}

/// A retry after TEMPORARY_FAILURE or a collision waits 1–5 s (random, so colliding peers drift apart).
fn retry_delay(rng: &mut dyn crate::crypto::Random) -> std::time::Duration {
    std::time::Duration::from_millis(1000 + u64::from(rng.next_u32() % 4000))
}

impl IkeSa {
    /// When to rekey an SA of `lifetime`: a random instant of cgwd's window (see
    /// [`crate::config::RekeyWindow::new`]), before AWS's own.
    pub(crate) fn rekey_delay(&mut self, lifetime: std::time::Duration) -> std::time::Duration {
        let window =
            crate::config::RekeyWindow::new(lifetime, self.cfg.rekey_margin, self.cfg.rekey_fuzz_percent);
        window.at((self.rng.next_u64() % 1001) as u16)
    }

    pub(crate) fn queue_rekey(&mut self, now: Instant, kind: super::message::RequestKind) {
        if self.state != super::State::Established || self.queue.contains(&kind) {
            return;
        }
        if kind == super::message::RequestKind::RekeyChild && self.children.is_empty() {
            return;
        }
        self.queue.push_back(kind);
        self.pump(now);
    }

    pub(crate) fn arm_child_expiry(&mut self) {
        match self.children.iter().map(|c| c.expires).min() {
            Some(t) => self.timers.set(Timer::ChildExpire, t),
            None => self.timers.stop(Timer::ChildExpire),
        }
    }

    /// Child SAs past their hard lifetime go, with a DELETE to the peer.
    pub(crate) fn expire_children(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.expires <= now)
            .map(|c| c.inbound)
            .collect();
        for spi in expired {
            if let Some(c) = self.children.iter_mut().find(|c| c.inbound == spi) {
                // Not again: the DELETE below removes it.
                c.expires = now + self.cfg.retransmit.give_up_after() + std::time::Duration::from_secs(1);
            }
            let kind = super::message::RequestKind::DeleteChild(spi);
            if !self.queue.contains(&kind) && !matches!(&self.in_flight, Some(r) if r.kind == kind) {
                tracing::warn!(tunnel = %self.cfg.tunnel, spi = %crate::sa::EspSpi(spi), "Child SA expired before it was rekeyed");
                self.queue.push_back(kind);
            }
        }
        self.arm_child_expiry();
        self.pump(now);
    }

    pub(crate) fn child_deleted(&mut self, inbound: u32) {
        if self
            .rekeyed_child
            .as_ref()
            .is_some_and(|r| r.old_inbound == inbound || r.new_inbound == inbound)
        {
            self.rekeyed_child = None;
        }
        // The peer deletes the old SA of a colliding rekey only when its rekey won: switch to its SA
        // now rather than when our response comes.
        let won = self
            .rekey
            .as_mut()
            .filter(|r| r.old_child == Some(inbound))
            .and_then(|r| r.collision.as_mut())
            .and_then(|c| c.child.take());
        if let Some(child) = won {
            self.promote(child, "the peer's rekey won the collision");
        }
        if let Some((old, new)) = self.successor.take() {
            if old == inbound {
                // The SA the peer rekeyed goes: its replacement carries on (switch before removing).
                self.promote(new, "the peer rekeyed it and deleted the old one");
            } else {
                self.successor = Some((old, new));
            }
        }
        if let Some(i) = self.children.iter().position(|c| c.inbound == inbound) {
            let c = self.children.remove(i);
            if !c.announced {
                return self.arm_child_expiry();
            }
            self.events.push_back(Event::ChildDown {
                inbound: crate::sa::EspSpi(c.inbound),
                outbound: crate::sa::EspSpi(c.outbound),
            });
        }
        self.arm_child_expiry();
    }

    pub(crate) fn start_child_rekey(&mut self, now: Instant) {
        let Some(old) = self.children.last().cloned() else {
            return;
        };
        if self.successor.as_ref().is_some_and(|(o, _)| *o == old.inbound) {
            // The peer is rekeying this SA already (we answered it); its DELETE of the old SA follows.
            return;
        }
        let retry = self.ke_retry.take();
        let group = if self.cfg.esp.dh.is_empty() {
            None
        } else {
            // The group an INVALID_KE_PAYLOAD just named; else guess the peer's choice (AWS takes the
            // lowest option offered): the group of the last PFS exchange, else the IKE SA's group when
            // PFS allows it, saving an INVALID_KE_PAYLOAD round trip. AWS's role guesses as AWS does.
            let ike_group = self
                .suite
                .and_then(|s| s.dh)
                .filter(|g| self.cfg.esp.dh.contains(g));
            let learned = self.child_rekey_group.or(old.suite.dh).or(ike_group);
            retry
                .or(learned.filter(|_| self.cfg.selection == super::proposal::Selection::Strongest))
                .or_else(|| super::proposal::first_guess(&self.cfg.esp, self.cfg.selection))
        };
        let dh = match group {
            Some(g) => match DhPrivate::generate(g, &mut *self.rng) {
                Ok(d) => Some(d),
                Err(_) => return,
            },
            None => None,
        };
        let ni = self.random_bytes(NONCE_LEN);
        let new_spi = self.random_spi32();
        let mut payloads = vec![
            PayloadRepr::Notify(NotifyRepr {
                protocol: ProtocolId::ESP,
                spi: old.inbound.to_be_bytes().to_vec(),
                kind: NotifyType::REKEY_SA,
                data: Vec::new(),
            }),
            PayloadRepr::Sa(SaRepr {
                proposals: super::proposal::esp_offer(&self.cfg.esp, new_spi, group.is_some())
                    .iter()
                    .map(Proposal::to_repr)
                    .collect(),
            }),
            PayloadRepr::Nonce(ni.clone()),
        ];
        if let (Some(g), Some(d)) = (group, dh.as_ref()) {
            payloads.push(PayloadRepr::Ke {
                group: g.number(),
                data: d.public_value().to_vec(),
            });
        }
        payloads.push(PayloadRepr::TsI(super::ts::to_wire(&old.local_ts)));
        payloads.push(PayloadRepr::TsR(super::ts::to_wire(&old.remote_ts)));
        self.rekey = Some(PendingRekey {
            ni,
            dh,
            new_spi: u64::from(new_spi),
            old_child: Some(old.inbound),
            collision: None,
            ike_collision: None,
            ke_retry: retry.is_some(),
            offered_ts: Some((old.local_ts, old.remote_ts)),
        });
        self.send_request(
            now,
            super::message::RequestKind::RekeyChild,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
        );
    }

    /// The group an INVALID_KE_PAYLOAD asks for, if we allow it.
    pub(super) fn wanted_group(&self, p: &[PayloadRepr], allowed: &[DhGroup]) -> Option<DhGroup> {
        let n = find_notify(p, NotifyType::INVALID_KE_PAYLOAD)?;
        let g = DhGroup::new(u16::from_be_bytes(<[u8; 2]>::try_from(n.data.as_slice()).ok()?))?;
        allowed.contains(&g).then_some(g)
    }

    /// Our rekey got INVALID_KE_PAYLOAD naming another group we allow: start it again at once with that
    /// group (as strongSwan does), unless this exchange already was such a retry (a peer naming groups
    /// in turn then waits for the usual retry delay). Returns whether it did.
    pub(super) fn retry_with_named_group(
        &mut self,
        now: Instant,
        err: NotifyType,
        pending: &PendingRekey,
        wanted: Option<DhGroup>,
        kind: RequestKind,
    ) -> bool {
        let used = pending.dh.as_ref().map(DhPrivate::group);
        let retry = err == NotifyType::INVALID_KE_PAYLOAD
            && !pending.ke_retry
            && wanted.is_some_and(|g| Some(g) != used);
        if retry {
            self.ke_retry = wanted;
            self.queue_rekey(now, kind);
        }
        retry
    }

    /// The peer refused our rekey for now (collision, TEMPORARY_FAILURE): try again shortly.
    pub(super) fn rekey_later(&mut self, now: Instant, timer: Timer) {
        let d = retry_delay(&mut *self.rng);
        self.timers.set(timer, now + d);
    }

    pub(crate) fn process_child_rekey_response(&mut self, now: Instant, inbound: Inbound) {
        let Some(mut pending) = self.rekey.take() else {
            return;
        };
        if self.state == super::State::Deleting {
            // Closing: the new SA goes with the IKE SA our DELETE (sent next) removes.
            return;
        }
        let collision = pending.collision.take();
        let p = &inbound.payloads;
        let wanted = self.wanted_group(p, &self.cfg.esp.dh);
        if let Some(g) = wanted {
            self.child_rekey_group = Some(g);
        }
        let old_exists = pending
            .old_child
            .is_some_and(|o| self.children.iter().any(|c| c.inbound == o));
        if let Some(err) = super::init::first_error(p) {
            if let Some(c) = collision {
                // Ours failed, the peer's colliding rekey succeeded: it replaces the old SA.
                self.succeed(now, pending.old_child.filter(|_| old_exists), c.child);
                return;
            }
            if !old_exists {
                // The SA we meant to rekey was deleted meanwhile: nothing left to do.
                return;
            }
            if self.retry_with_named_group(now, err, &pending, wanted, RequestKind::RekeyChild) {
                // Started again at once with the group the peer named.
            } else if err == NotifyType::TEMPORARY_FAILURE || err == NotifyType::INVALID_KE_PAYLOAD {
                self.rekey_later(now, Timer::ChildRekey);
            } else {
                let f = self.failure(FailReason::PeerError { notify: err.0 });
                tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "Child SA rekey refused by the peer");
                self.events.push_back(Event::ChildFailed(f));
            }
            return;
        }
        let pfs = if pending.dh.is_some() {
            PfsMode::Require
        } else {
            PfsMode::Ignore
        };
        let result = (|| {
            let malformed = |what: &str| format!("malformed CREATE_CHILD_SA response: {what}");
            let sa = find_sa(p).ok_or_else(|| malformed("no SA payload"))?;
            let chosen: Vec<Proposal> = sa.proposals.iter().map(Proposal::from_repr).collect();
            let (suite, peer_spi) = super::proposal::accept_esp_choice(&chosen, &self.cfg.esp, pfs)
                .map_err(|e| format!("phase 2 proposal: {e}"))?;
            let nr = find_nonce(p).ok_or_else(|| malformed("no nonce"))?.to_vec();
            let shared = match (suite.dh, pending.dh.as_ref()) {
                (Some(g), Some(d)) if d.group() == g => {
                    let bad_ke = || malformed("bad KE payload");
                    let (group, data) = find_ke(p).ok_or_else(bad_ke)?;
                    if group != g.number() {
                        return Err(bad_ke());
                    }
                    Some(d.shared_secret(data).map_err(|_| bad_ke())?)
                }
                (None, _) => None,
                _ => return Err(malformed("DH group not offered")),
            };
            let (want_i, want_r) = pending
                .offered_ts
                .unwrap_or((self.cfg.local_ts, self.cfg.remote_ts));
            let tsi = super::auth::find_ts(p, true)
                .and_then(|t| super::ts::from_wire_list(t, &want_i))
                .ok_or_else(|| malformed("no TSi of the tunnel's IP version"))?;
            let tsr = super::auth::find_ts(p, false)
                .and_then(|t| super::ts::from_wire_list(t, &want_r))
                .ok_or_else(|| malformed("no TSr of the tunnel's IP version"))?;
            if let Some((local, remote)) = &pending.offered_ts
                && (!super::ts::contains(local, &tsi) || !super::ts::contains(remote, &tsr))
            {
                return Err("the peer widened the traffic selectors".to_string());
            }
            let keys = self.keys.as_ref().ok_or_else(|| malformed("no keys"))?;
            let k = derive_child_keys(
                keys.prf,
                keys.sk_d.expose(),
                shared.as_ref().map(|s| s.expose()),
                &pending.ni,
                &nr,
                suite.encryption,
                suite.integrity,
            );
            Ok((
                self.orient_child(suite, pending.new_spi as u32, peer_spi, tsi, tsr, k, true),
                nr,
            ))
        })();
        let (child, nr) = match result {
            Ok(x) => x,
            Err(what) => {
                // After a collision the peer's rekey replaces the old SA: nothing to retry.
                let retry = old_exists && collision.is_none();
                if let Some(c) = collision {
                    self.succeed(now, pending.old_child.filter(|_| old_exists), c.child);
                }
                self.reject_rekey_answer(now, &pending, retry, what);
                return;
            }
        };
        let new_inbound = child.inbound.spi.0;
        if let Some(c) = collision {
            if redundant(&pending.ni, &nr, &c.ni, &c.nr) {
                // The peer's rekey won: it deletes the old SA; we delete the SA we just made, which the
                // peer never sends on.
                tracing::info!(tunnel = %self.cfg.tunnel, "Child SA rekey collision lost: deleting our redundant SA");
                self.succeed(now, pending.old_child.filter(|_| old_exists), c.child);
                self.child_redundant(child);
                self.queue.push_back(RequestKind::DeleteChild(new_inbound));
                return;
            }
            // Ours won: the peer deletes its SA (installed inbound only, never sent on).
            tracing::info!(tunnel = %self.cfg.tunnel, "Child SA rekey collision won: the peer deletes its redundant SA");
            if let Some(theirs) = c.child {
                self.demote(theirs.inbound.spi.0);
            }
        }
        self.child_up(child);
        if let Some(old) = pending.old_child.filter(|_| old_exists) {
            self.queue.push_back(RequestKind::DeleteChild(old));
            self.rekeyed_child = Some(CompletedRekey {
                old_inbound: old,
                new_inbound,
                ni: pending.ni,
                nr,
            });
        }
    }

    /// The peer answered our rekey with a Child SA we cannot use (a reserved SPI, a choice we did not
    /// offer, a malformed answer): the peer has created it, so it gets a DELETE (RFC 7296 §1.4.1, the
    /// SA named by our inbound SPI), the old SA carries on, and (`retry`) the rekey is tried again
    /// after 1–5 s. A peer answering so every time gets such an exchange every few seconds until the
    /// old SA's hard lifetime ends it.
    fn reject_rekey_answer(&mut self, now: Instant, pending: &PendingRekey, retry: bool, what: String) {
        let f = self.failure(FailReason::Protocol { what });
        tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "Child SA rekey failed: deleting the SA the peer made, keeping the old one");
        self.events.push_back(Event::ChildFailed(f));
        self.queue
            .push_back(RequestKind::DeleteChild(pending.new_spi as u32));
        if retry {
            self.rekey_later(now, Timer::ChildRekey);
        }
    }

    /// The peer's rekey of `old` won: we send on its SA once the peer deletes `old` (the peer has its SA
    /// installed by then), or now if `old` is gone already.
    fn succeed(&mut self, now: Instant, old: Option<u32>, child: Option<crate::sa::ChildSa>) {
        let Some(child) = child else { return };
        match old {
            Some(old) => self.await_delete(now, old, child),
            None => self.promote(child, "the peer's rekey won the collision"),
        }
    }

    /// Send on `child` once the peer deletes `old`; if that DELETE never comes (the peer gave up on
    /// it), switch anyway after the peer's whole retransmission schedule, by which time it has `child`.
    fn await_delete(&mut self, now: Instant, old: u32, child: crate::sa::ChildSa) {
        self.successor = Some((old, child));
        let wait = self.cfg.retransmit.give_up_after() + std::time::Duration::from_secs(1);
        self.timers.set(Timer::Successor, now + wait);
    }

    /// The peer's SA of a rekey, installed inbound only, becomes the one we send on; `why` goes
    /// into the log line.
    pub(crate) fn promote(&mut self, child: crate::sa::ChildSa, why: &'static str) {
        let spi = child.inbound.spi.0;
        if let Some(i) = self.children.iter().position(|c| c.inbound == spi) {
            let c = self.children.remove(i);
            self.children.push(c);
            tracing::info!(tunnel = %self.cfg.tunnel, inbound = %child.inbound.spi, outbound = %child.outbound.spi, why, "Child SA up");
            self.events.push_back(Event::ChildUp(child));
            let delay = self.rekey_delay(self.cfg.child_lifetime);
            self.timers.set(Timer::ChildRekey, self.last_heard + delay);
        }
    }
}
