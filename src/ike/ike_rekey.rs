//! IKE SA rekeying (RFC 7296 §1.3.2, §2.18) and its collisions (§2.8.2, §2.25.2).
//!
//! ```text
//! IKE rekey     HDR, SK {SA(new SPIi), Ni, KEi}                   -->
//!                                   <--  HDR, SK {SA(new SPIr), Nr, KEr}
//!               HDR(old SPIs), SK {D(IKE)}                        -->   answered with the old keys
//! ```
//! One [`IkeSa`] object stands for the tunnel's IKE SA across rekeys: the current SA's SPIs, keys and
//! message IDs live in the object, and the SAs on their way out are kept beside it as [`OldIke`]
//! records, only to answer (or send) their DELETE:
//! * `old_ike`: the SA we rekeyed away from, until the peer deletes it;
//! * `retired_ike`: the redundant new SA of a collision, until its DELETE exchange is done (bounded);
//! * the peer's new SA of a collision while ours is still in flight (in [`PendingRekey`]).
//!
//! Child SAs belong to the tunnel, not to one IKE SA, so moving them to the surviving SA is free: the
//! data plane sees one `IkeRekeyed` (for the surviving SA) and no Child SA event at all.
//!
//! Simultaneous rekeys (§2.8.2): both requests are answered, and when both exchanges are complete the
//! new SA made by the exchange holding the lowest of the four nonces is redundant. Its initiator
//! deletes it (over the redundant SA itself); the surviving SA's initiator deletes the old SA.
//! ```text
//!  A                                                  B
//!  CREATE_CHILD_SA {SA, Na1, KE} ---\    /--- CREATE_CHILD_SA {SA, Nb1, KE}      (both on the old SA)
//!  answered {Na2}: SA "B" pending    \  /     answered {Nb2}: SA "A" pending
//!  <-- {Nb2}: SA "A" done             \/      {Na2} -->: SA "B" done
//!  lowest of Na1,Nb2,Nb1,Na2 in A's exchange → SA "A" redundant, SA "B" survives:
//!  INFORMATIONAL(SA "A") {D(IKE)} -->         <-- INFORMATIONAL(old SA) {D(IKE)}
//! ```
//! Late messages: if the winner's DELETE of the old SA arrives before our own response, the peer's SA
//! won (a peer only deletes the old SA when its SA survives); we switch to it and forget our exchange
//! (its late response is dropped, the peer drops the redundant SA it holds after a while). A DELETE
//! over the peer's pending SA means the peer found it redundant: ours wins once its response comes.
//! A TEMPORARY_FAILURE (the peer did not see a collision, its SA simply replaces the old one) or any
//! failure of ours leaves the peer's rekey as an ordinary one.
//!
//! Other crossings (§2.25.2): a rekey of an IKE SA we are deleting gets TEMPORARY_FAILURE; a DELETE of
//! the IKE SA we are rekeying is answered and our rekey forgotten; an IKE rekey crossing a Child SA
//! rekey is refused with TEMPORARY_FAILURE on both sides and each retries after 1–5 s (strongSwan does
//! the same).

use std::time::{Duration, Instant};

use super::auth::find_sa;
use super::child::{PendingRekey, find_ke, find_nonce, redundant};
use super::init::{keys_from, notify};
use super::message::{Inbound, OldIke, RequestKind};
use super::proposal::{Prefer, Proposal, select_ike_with};
use super::timer::Timer;
use super::{Event, FailReason, IkeSa, Phase, Role, Transmit};
use crate::crypto::{DhPrivate, RekeyPrfPlus, derive_rekeyed_ike_keys};
use crate::suite::{Integrity, Suite};
use crate::wire::ike::{DeleteRepr, ExchangeType, Message, NotifyType, PayloadRepr, ProtocolId, SaRepr};

const NONCE_LEN: usize = 32;

/// The peer's IKE SA rekey we answered while ours was in flight: its nonces and the SA it made.
pub(crate) struct PeerIkeRekey {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub sa: OldIke,
    pub suite: Suite,
}

/// Which side record a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Old,
    Retired,
    Pending,
}

/// An IKE SA's own state before any message was exchanged on it.
fn fresh(spi_i: u64, spi_r: u64, role: Role, keys: super::message::Keys) -> OldIke {
    OldIke {
        spi_i,
        spi_r,
        role,
        keys: Some(keys),
        next_request_id: 0,
        peer_next_id: 0,
        last_response: None,
        deleting: false,
    }
}

impl IkeSa {
    /// Make `sa` the current IKE SA and the current one `sa` (SPIs, role, keys, message IDs).
    pub(crate) fn swap_with(&mut self, sa: &mut OldIke) {
        std::mem::swap(&mut self.spi_i, &mut sa.spi_i);
        std::mem::swap(&mut self.spi_r, &mut sa.spi_r);
        std::mem::swap(&mut self.role, &mut sa.role);
        std::mem::swap(&mut self.keys, &mut sa.keys);
        std::mem::swap(&mut self.peer_next_id, &mut sa.peer_next_id);
        std::mem::swap(&mut self.next_request_id, &mut sa.next_request_id);
        std::mem::swap(&mut self.last_response, &mut sa.last_response);
    }

    /// Every IKE SA this object still keeps state for, as (SPIi, SPIr): the current one first, then
    /// those on their way out (the rekeyed-away SA, a collision's redundant SA, a peer's pending SA).
    pub fn ike_sas(&self) -> Vec<(u64, u64)> {
        let mut v = vec![(self.spi_i, self.spi_r)];
        let pending = self
            .rekey
            .as_ref()
            .and_then(|r| r.ike_collision.as_ref())
            .map(|c| &c.sa);
        let retired = self.retired_ike.as_ref();
        for sa in [self.old_ike.as_ref(), retired, pending].into_iter().flatten() {
            v.push((sa.spi_i, sa.spi_r));
        }
        v
    }

    /// The PRF an IKE SA rekey keeps (offered alone, preferred as responder): the current SA's, unless
    /// the policy says otherwise (see [`super::RekeyKeyPolicy`]).
    fn kept_prf(&self) -> Option<Integrity> {
        self.cfg
            .rekey_keys
            .keep_prf
            .then(|| self.keys.as_ref().map(|k| k.prf))
            .flatten()
    }

    /// The keys of the IKE SA a rekey of the current one makes (RFC 7296 §2.18). When the PRF changes,
    /// peers disagree on the PRF of prf+ ([`RekeyPrfPlus`]): the policy's reading comes first and the
    /// other waits in `Keys::untested` until the peer shows which one it used.
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_keys(
        &self,
        role: Role,
        suite: &Suite,
        ni: &[u8],
        nr: &[u8],
        shared: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Option<super::message::Keys> {
        let old = self.keys.as_ref()?;
        let prf = suite.prf?;
        let derive = |reading| {
            let k = derive_rekeyed_ike_keys(
                prf,
                old.prf,
                old.sk_d.expose(),
                suite.encryption,
                suite.integrity,
                ni,
                nr,
                shared,
                spi_i,
                spi_r,
                reading,
            );
            keys_from(role, suite, k)
        };
        let policy = self.cfg.rekey_keys;
        let mut keys = derive(policy.first)?;
        if prf != old.prf {
            tracing::info!(tunnel = %self.cfg.tunnel, old_prf = %old.prf, new_prf = %prf, "the IKE SA rekey changes the PRF; keying the new SA the way strongSwan does, the other way too until the peer shows which it used");
            if policy.try_other {
                let other = match policy.first {
                    RekeyPrfPlus::OldPrf => RekeyPrfPlus::NewPrf,
                    RekeyPrfPlus::NewPrf => RekeyPrfPlus::OldPrf,
                };
                keys.untested = derive(other).map(Box::new);
            }
        }
        Some(keys)
    }

    /// Our IKE SA rekey (not a Child SA rekey) is in flight.
    fn ike_rekey_in_flight(&self) -> bool {
        self.rekey.is_some() && matches!(&self.in_flight, Some(r) if r.kind == RequestKind::RekeyIke)
    }

    pub(crate) fn start_ike_rekey(&mut self, now: Instant) {
        // The group the peer chose for this IKE SA is the one it will choose again (AWS takes the lowest
        // option offered): guessing it first saves an INVALID_KE_PAYLOAD round trip. AWS's role guesses
        // as AWS does ([`super::proposal::first_guess`]).
        let learned = self.ike_rekey_group.or_else(|| self.suite.and_then(|s| s.dh));
        let retry = self.ke_retry.take();
        let Some(g) = retry
            .or(learned.filter(|_| self.cfg.selection == super::proposal::Selection::Strongest))
            .or_else(|| super::proposal::first_guess(&self.cfg.ike, self.cfg.selection))
        else {
            return;
        };
        let Ok(dh) = DhPrivate::generate(g, &mut *self.rng) else {
            return;
        };
        let ni = self.random_bytes(NONCE_LEN);
        let new_spi = self.random_spi64();
        let payloads = [
            PayloadRepr::Sa(SaRepr {
                proposals: super::proposal::ike_offer(&self.cfg.ike, &new_spi.to_be_bytes(), self.kept_prf())
                    .iter()
                    .map(Proposal::to_repr)
                    .collect(),
            }),
            PayloadRepr::Nonce(ni.clone()),
            PayloadRepr::Ke {
                group: g.number(),
                data: dh.public_value().to_vec(),
            },
        ];
        self.rekey = Some(PendingRekey {
            ni,
            dh: Some(dh),
            new_spi,
            old_child: None,
            collision: None,
            ike_collision: None,
            ke_retry: retry.is_some(),
            offered_ts: None,
        });
        self.send_request(
            now,
            RequestKind::RekeyIke,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
        );
    }

    pub(crate) fn respond_ike_rekey(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let colliding = self.ike_rekey_in_flight();
        if self.rekey.is_some() && !colliding {
            // §2.25.2: we are rekeying a Child SA of this IKE SA. Both sides refuse and retry later.
            self.refuse(
                raw,
                inbound.msg_id,
                notify(NotifyType::TEMPORARY_FAILURE, Vec::new()),
            );
            return;
        }
        let p = &inbound.payloads;
        let msg_id = inbound.msg_id;
        let Some(sa) = find_sa(p) else { return };
        let offered: Vec<Proposal> = sa.proposals.iter().map(Proposal::from_repr).collect();
        let prefer = Prefer {
            prf: self.kept_prf(),
            ke: find_ke(p).and_then(|(g, _)| self.acceptable_ke(g)),
        };
        let Some((mut chosen, suite)) = select_ike_with(&offered, &self.cfg.ike, self.cfg.selection, prefer)
        else {
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
        // The peer started this rekey, so it is the new IKE SA's original initiator.
        let Some(new_keys) = self.rekeyed_keys(
            Role::Responder,
            &suite,
            &ni,
            &nr,
            shared.expose(),
            peer_spi,
            our_spi,
        ) else {
            return;
        };
        chosen.spi = our_spi.to_be_bytes().to_vec();
        let response = [
            PayloadRepr::Sa(SaRepr {
                proposals: vec![chosen.to_repr()],
            }),
            PayloadRepr::Nonce(nr.clone()),
            PayloadRepr::Ke {
                group: g.number(),
                data: dh.public_value().to_vec(),
            },
        ];
        self.send_response(ExchangeType::CREATE_CHILD_SA, msg_id, raw, &response);
        let theirs = fresh(peer_spi, our_spi, Role::Responder, new_keys);
        if colliding {
            // Ours is in flight on the old SA: its response decides which new SA survives.
            tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekey collision: both rekeys proceed");
            if let Some(r) = self.rekey.as_mut() {
                r.ike_collision = Some(PeerIkeRekey {
                    ni,
                    nr,
                    sa: theirs,
                    suite,
                });
            }
            return;
        }
        self.adopt_peer_ike(now, theirs, suite, false);
    }

    /// Switch to the IKE SA the peer's rekey made. The SA it replaces stays (as `old_ike`) to answer
    /// the peer's DELETE of it, unless `old_deleted` (the peer deleted it already).
    fn adopt_peer_ike(&mut self, now: Instant, mut sa: OldIke, suite: Suite, old_deleted: bool) {
        let old_local_spi = self.local_spi();
        self.swap_with(&mut sa);
        self.old_ike = (!old_deleted).then_some(sa);
        self.bound_retired(now);
        self.suite = Some(suite);
        self.rekey = None;
        self.abandon_in_flight();
        tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekeyed by the peer");
        self.rekeyed(now, old_local_spi);
        self.heard(now);
    }

    /// A request of ours in flight on the IKE SA just replaced gets no answer there any more: the
    /// deletes among them go again on the new SA (a DPD or a rekey has no point any more).
    fn abandon_in_flight(&mut self) {
        self.timers.stop(Timer::Retransmit);
        if let Some(req) = self.in_flight.take()
            && matches!(req.kind, RequestKind::DeleteChild(_) | RequestKind::DeleteIke)
            && !self.queue.contains(&req.kind)
        {
            self.queue.push_front(req.kind);
        }
    }

    /// The current IKE SA is new: tell the daemon, restart the IKE SA's lifetime.
    fn rekeyed(&mut self, now: Instant, old_local_spi: u64) {
        self.events.push_back(Event::IkeRekeyed {
            old_local_spi,
            new_local_spi: self.local_spi(),
        });
        let delay = self.rekey_delay(self.cfg.ike_lifetime);
        self.timers.set(Timer::IkeRekey, now + delay);
        self.timers.set(Timer::IkeExpire, now + self.cfg.ike_lifetime);
    }

    /// A one-shot DELETE of the current IKE SA (the old or a redundant one, swapped in by the caller):
    /// its answer matters to nobody, and the peer drops the SA anyway once its own side gives up.
    fn send_ike_delete(&mut self) {
        let del = [PayloadRepr::Delete(DeleteRepr::ike())];
        let id = self.next_request_id;
        if let Some(packet) = self.build(ExchangeType::INFORMATIONAL, id, false, &del) {
            self.next_request_id = id.wrapping_add(1);
            self.transmits.push_back(Transmit {
                from: self.local,
                to: self.remote,
                data: packet,
            });
        }
    }

    /// Switch to the IKE SA our rekey made and delete the old one over its own keys (sent once; the
    /// peer's retransmissions of anything on it are still answered through `old_ike`).
    fn adopt_own_ike(&mut self, now: Instant, mut sa: OldIke, suite: Suite) {
        let old_local_spi = self.local_spi();
        self.send_ike_delete();
        self.swap_with(&mut sa);
        sa.deleting = true;
        self.old_ike = Some(sa);
        self.bound_retired(now);
        self.suite = Some(suite);
        tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekeyed");
        self.rekeyed(now, old_local_spi);
    }

    /// Keep a redundant new IKE SA until its DELETE exchange is done; we send that DELETE ourselves
    /// when `ours` (we initiated the SA).
    fn retire(&mut self, now: Instant, mut sa: OldIke, ours: bool) {
        if ours {
            self.swap_with(&mut sa);
            self.send_ike_delete();
            self.swap_with(&mut sa);
        }
        sa.deleting = ours;
        self.retired_ike = Some(sa);
        self.bound_retired(now);
    }

    /// The old and redundant IKE SAs live at most one retransmission schedule (the peer's DELETE of
    /// them comes right after the rekey, or never), so state stays bounded whatever the peer does.
    fn bound_retired(&mut self, now: Instant) {
        let wait = self.cfg.retransmit.give_up_after() + Duration::from_secs(1);
        self.timers.set(Timer::RetiredIke, now + wait);
    }

    pub(crate) fn process_ike_rekey_response(&mut self, now: Instant, inbound: Inbound) {
        let Some(mut pending) = self.rekey.take() else {
            return;
        };
        let collision = pending.ike_collision.take();
        let p = &inbound.payloads;
        let wanted = self.wanted_group(p, &self.cfg.ike.dh);
        if let Some(g) = wanted {
            self.ike_rekey_group = Some(g);
        }
        if let Some(err) = super::init::first_error(p) {
            if let Some(c) = collision {
                // The peer saw no collision (or refused ours): its rekey replaces the old SA as usual.
                self.adopt_peer_ike(now, c.sa, c.suite, false);
                return;
            }
            // INVALID_KE naming another allowed group: again at once with it (as strongSwan does).
            // TEMPORARY_FAILURE (collision), or an INVALID_KE we cannot follow: try again shortly.
            // Anything else: the IKE SA is still fine until its lifetime ends; try again later (the
            // peer may rekey it meanwhile).
            if self.retry_with_named_group(now, err, &pending, wanted, RequestKind::RekeyIke) {
                // Started again at once with the group the peer named.
            } else if err == NotifyType::TEMPORARY_FAILURE || err == NotifyType::INVALID_KE_PAYLOAD {
                self.rekey_later(now, Timer::IkeRekey);
            } else {
                tracing::warn!(tunnel = %self.cfg.tunnel, notify = err.0, "IKE SA rekey refused by the peer");
                self.timers.set(Timer::IkeRekey, now + Duration::from_secs(30));
            }
            return;
        }
        let result = (|| {
            let sa = find_sa(p)?;
            let chosen: Vec<Proposal> = sa.proposals.iter().map(Proposal::from_repr).collect();
            let suite = super::proposal::accept_ike_choice(&chosen, &self.cfg.ike, self.kept_prf()).ok()?;
            let peer_spi = u64::from_be_bytes(<[u8; 8]>::try_from(chosen.first()?.spi.as_slice()).ok()?);
            let nr = find_nonce(p)?.to_vec();
            let (group, data) = find_ke(p)?;
            let d = pending.dh.as_ref()?;
            if suite.dh != Some(d.group()) || group != d.group().number() || peer_spi == 0 {
                return None;
            }
            let shared = d.shared_secret(data).ok()?;
            let keys = self.rekeyed_keys(
                Role::Initiator,
                &suite,
                &pending.ni,
                &nr,
                shared.expose(),
                pending.new_spi,
                peer_spi,
            )?;
            Some((suite, fresh(pending.new_spi, peer_spi, Role::Initiator, keys), nr))
        })();
        let Some((suite, ours, nr)) = result else {
            match collision {
                Some(c) => self.adopt_peer_ike(now, c.sa, c.suite, false),
                None => self.rekey_later(now, Timer::IkeRekey),
            }
            return;
        };
        match collision {
            None => self.adopt_own_ike(now, ours, suite),
            Some(c) if redundant(&pending.ni, &nr, &c.ni, &c.nr) => {
                // The peer's SA survives; it deletes the old SA, we delete the SA we just made.
                tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekey collision lost: deleting our redundant IKE SA");
                self.adopt_peer_ike(now, c.sa, c.suite, false);
                self.retire(now, ours, true);
            }
            Some(c) => {
                // Ours survives: we delete the old SA, the peer deletes its redundant one.
                tracing::info!(tunnel = %self.cfg.tunnel, "IKE SA rekey collision won: the peer deletes its redundant IKE SA");
                self.adopt_own_ike(now, ours, suite);
                self.retire(now, c.sa, false);
            }
        }
    }

    /// The peer deleted the current IKE SA. If our rekey of it collided with the peer's, the peer's
    /// won (it deletes the old SA only then): carry on with the peer's SA and forget ours. Returns
    /// false if the IKE SA is really gone.
    pub(crate) fn peer_deleted_rekeyed_ike(&mut self, now: Instant) -> bool {
        if !self.ike_rekey_in_flight() {
            return false;
        }
        let Some(c) = self.rekey.as_mut().and_then(|r| r.ike_collision.take()) else {
            return false;
        };
        tracing::info!(tunnel = %self.cfg.tunnel, "the peer deleted the old IKE SA: its colliding rekey won");
        self.adopt_peer_ike(now, c.sa, c.suite, true);
        true
    }

    /// Messages for an IKE SA other than the current one (see the module doc). `None`: not for any of
    /// them; otherwise whether the message was used.
    pub(crate) fn receive_on_other_ike(
        &mut self,
        now: Instant,
        data: &[u8],
        msg: &Message<'_>,
    ) -> Option<bool> {
        let h = msg.header;
        let is = |sa: &OldIke| sa.spi_i == h.spi_i && sa.spi_r == h.spi_r;
        let side = if self.old_ike.as_ref().is_some_and(is) {
            Side::Old
        } else if self.retired_ike.as_ref().is_some_and(is) {
            Side::Retired
        } else if self
            .rekey
            .as_ref()
            .and_then(|r| r.ike_collision.as_ref())
            .is_some_and(|c| is(&c.sa))
        {
            Side::Pending
        } else {
            return None;
        };
        let mut sa = match side {
            Side::Old => self.old_ike.take(),
            Side::Retired => self.retired_ike.take(),
            Side::Pending => self
                .rekey
                .as_mut()
                .and_then(|r| r.ike_collision.as_mut())
                .map(|c| std::mem::replace(&mut c.sa, fresh_placeholder())),
        }?;
        self.swap_with(&mut sa);
        let (used, gone) = self.serve_other(data, msg, sa.deleting);
        self.swap_with(&mut sa);
        match side {
            Side::Old if !gone => self.old_ike = Some(sa),
            Side::Retired if !gone => self.retired_ike = Some(sa),
            Side::Pending => {
                if let Some(r) = self.rekey.as_mut() {
                    if gone {
                        // The peer found its SA redundant: ours wins when its response comes.
                        tracing::info!(tunnel = %self.cfg.tunnel, "the peer deleted its colliding IKE SA");
                        r.ike_collision = None;
                    } else if let Some(c) = r.ike_collision.as_mut() {
                        c.sa = sa;
                    }
                }
            }
            Side::Old | Side::Retired => {}
        }
        if used {
            self.heard(now);
        }
        Some(used)
    }

    /// One message on a non-current IKE SA swapped in as current: the answer to our DELETE of it, or a
    /// request (its DELETE, a late DPD, a rekey it no longer accepts). Returns (used, SA gone).
    fn serve_other(&mut self, data: &[u8], msg: &Message<'_>, deleting: bool) -> (bool, bool) {
        let h = msg.header;
        // The I flag says who sent it: it must be the other side.
        if h.flags.initiator() != (self.role == Role::Responder) {
            return (false, false);
        }
        if h.flags.response() {
            let ours = deleting && h.message_id.wrapping_add(1) == self.next_request_id;
            let ok = ours && self.open(msg).is_some();
            return (ok, ok);
        }
        if h.message_id.wrapping_add(1) == self.peer_next_id {
            return (self.answer_retransmission(msg), false);
        }
        if h.message_id != self.peer_next_id {
            return (false, false);
        }
        let Some(payloads) = self.open(msg) else {
            return (false, false);
        };
        self.peer_next_id = self.peer_next_id.wrapping_add(1);
        let delete_ike = payloads
            .iter()
            .any(|p| matches!(p, PayloadRepr::Delete(d) if d.protocol == ProtocolId::IKE));
        // Child SAs live on the current IKE SA: a rekey here waits (§2.25), anything else gets an
        // empty answer.
        let answer = if h.exchange == ExchangeType::CREATE_CHILD_SA {
            vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())]
        } else {
            Vec::new()
        };
        self.send_response(h.exchange, h.message_id, data, &answer);
        (true, delete_ike)
    }
}

/// Holds the place of a pending SA while it is swapped in; never used for anything.
fn fresh_placeholder() -> OldIke {
    OldIke {
        spi_i: 0,
        spi_r: 0,
        role: Role::Responder,
        keys: None,
        next_request_id: 0,
        peer_next_id: 0,
        last_response: None,
        deleting: false,
    }
}
