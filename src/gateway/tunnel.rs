//! One tunnel's IKE SAs and their lifecycle (see the gateway's module doc).
//!
//! ```text
//!   half_open ──(authenticated)──► sa            when the tunnel has no established IKE SA
//!             └─(authenticated)──► incoming ──(its Child SA up + HANDOVER_GRACE)──► sa
//!                                                  └─ the old sa ──► retiring ──(RETIRE_GRACE)──► DELETE
//!   sa closed ──► retry_at = now + backoff (1 s doubling to 30 s, reset once established)
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{
    HALF_OPEN_PER_TUNNEL, Header, Output, SaCommand, Stats, TunnelEvent, TunnelHandle, TunnelSpec,
    established, take_events, take_transmits,
};
use crate::crypto::Random;
use crate::ike::message::RequestKind;
use crate::ike::{Event, IkeSa, LinkState, State, Status};
use crate::sa::{ChildSa, EspSpi, TunnelKey};

/// How long the inbound half of a Child SA replaced by a rekey still decrypts: packets the peer
/// sealed with it just before switching may still be in flight (or queued behind the rekey on a
/// slow path). strongSwan's `charon.delete_rekeyed_delay` is the same idea, with the same 5 s.
pub const REKEYED_INBOUND_LINGER: Duration = Duration::from_secs(5);
/// Reconnect backoff after an IKE SA closed: 1 s doubling to 30 s; reset once established. After
/// an attempt AWS never answered the wait stays short ([`RETRY_SILENT_MAX`]): that attempt spaced its
/// own IKE_SA_INITs already (`ike::INIT_RETRANSMIT`), and a restored path is found at once.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
pub const RETRY_SILENT_MAX: Duration = Duration::from_secs(3);
/// How long a second IKE SA AWS opened waits, its Child SA up, before cgwd sends on it and deletes
/// the older SA: AWS installs the Child SA when our IKE_AUTH response reaches it, a moment later.
pub const HANDOVER_GRACE: Duration = Duration::from_millis(500);
/// How long the older IKE SA stays after the tunnel moved off it before cgwd sends its DELETE: AWS
/// removes that IKE SA's Child SAs the moment the DELETE arrives (strongSwan's `delete_rekeyed_delay`
/// covers Child SA rekeys only), so what cgwd sealed with the old Child SA just before the switch
/// must be through AWS's ESP processing first. Shorter than [`HANDOVER_GRACE`], so it always ends
/// before the next handover.
pub const RETIRE_GRACE: Duration = Duration::from_millis(200);

/// An IKE SA that AWS's newer one replaced, on its way out.
struct Retiring {
    sa: IkeSa,
    /// Its Child SAs' (inbound, outbound) SPIs, dropped from the data plane once it is gone.
    spis: Vec<(u32, u32)>,
    /// When its DELETE is due ([`RETIRE_GRACE`] after the tunnel moved off it); None once sent.
    delete_at: Option<Instant>,
}

pub(super) struct Tunnel {
    handle: TunnelHandle,
    spec: TunnelSpec,
    /// The tunnel's IKE SA: ours (initiated, maybe still negotiating) or AWS's (authenticated).
    sa: Option<IkeSa>,
    /// When cgwd initiates next, if it will.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Responder SAs for IKE_SA_INIT requests from AWS's address, not authenticated yet.
    half_open: Vec<IkeSa>,
    /// An IKE SA AWS opened and authenticated while `sa` was established (RFC 7296 §2.4 lets a peer
    /// start a new one at any time: AWS with StartupAction `start`, or after losing its state): once
    /// its Child SA is up it carries the tunnel and `sa` is deleted (make-before-break).
    incoming: Option<IkeSa>,
    /// `incoming`'s Child SA, its inbound half installed, and when the tunnel moves to it.
    handover: Option<(Instant, ChildSa)>,
    retiring: Option<Retiring>,
    /// Inbound SPIs of Child SAs replaced by a rekey, and when to remove them.
    lingering: Vec<(Instant, EspSpi)>,
    /// The last rekey request of ours reported (IKE SA, message ID), so each is reported once.
    rekey_logged: Option<(u64, u32)>,
    /// Events of the tunnel itself (not of an IKE SA) waiting for the next drain.
    pending: Vec<TunnelEvent>,
    /// Shut down: no more initiating, no more half-open SAs.
    closing: bool,
    /// The last IKE SA failed because AWS never answered (the path, not the configuration).
    silent_failure: bool,
    /// Half-open SAs that authenticated and took (or joined) the tunnel.
    pub(super) promoted: u64,
    /// An operator took the tunnel down (`cgwd tunnel down`): no SA, no initiating, AWS's
    /// IKE_SA_INITs unanswered, until `cgwd tunnel up`.
    admin_down: bool,
    /// The host has no usable outside address ([`super::Gateway::set_local_address`]): no SA, no
    /// initiating, until one appears.
    no_local: bool,
}

/// Where new IKE SAs get their randomness (the OS in production, seeded in tests).
pub(super) type RngFactory = dyn FnMut() -> Box<dyn Random>;

/// A tunnel as status shows it.
pub struct TunnelView<'a> {
    pub id: TunnelKey,
    pub sa: Option<&'a IkeSa>,
    pub retry_at: Option<Instant>,
}

impl TunnelView<'_> {
    /// The current IKE SA's status.
    pub fn status(&self) -> Option<Status> {
        self.sa.map(IkeSa::status)
    }

    /// Phase 1 and phase 2 in AWS's words; phase 2 "rekeying" while a CREATE_CHILD_SA of ours is in
    /// flight.
    pub fn phases(&self) -> (LinkState, LinkState, bool) {
        match self.sa {
            None => (LinkState::Down, LinkState::Down, false),
            Some(sa) => {
                let s = sa.status();
                let rekeying = sa.rekeying() && s.phase1 == LinkState::Established;
                (s.phase1, s.phase2, rekeying)
            }
        }
    }

    pub fn next_child_rekey(&self) -> Option<Instant> {
        self.sa.and_then(IkeSa::next_child_rekey)
    }
}

impl Tunnel {
    pub(super) fn new(handle: TunnelHandle, spec: TunnelSpec, now: Instant) -> Tunnel {
        let retry_at = spec.initiate.then_some(now);
        Tunnel {
            handle,
            spec,
            sa: None,
            retry_at,
            backoff: RETRY_MIN,
            half_open: Vec::new(),
            incoming: None,
            handover: None,
            retiring: None,
            lingering: Vec::new(),
            rekey_logged: None,
            pending: Vec::new(),
            closing: false,
            silent_failure: false,
            promoted: 0,
            admin_down: false,
            no_local: false,
        }
    }

    pub(super) fn spec_cfg(&self) -> std::sync::Arc<crate::ike::IkeConfig> {
        self.spec.cfg.clone()
    }

    pub(super) fn id(&self) -> TunnelKey {
        self.spec.cfg.tunnel
    }

    pub(super) fn peer_is(&self, peer: SocketAddr) -> bool {
        peer.ip() == self.spec.cfg.remote_addr
    }

    pub(super) fn view(&self) -> TunnelView<'_> {
        TunnelView {
            id: self.id(),
            sa: self.sa.as_ref(),
            retry_at: self.retry_at,
        }
    }

    fn established(&self) -> bool {
        self.sa.as_ref().is_some_and(established)
    }

    /// Route one datagram of this tunnel's peer to the IKE SA it belongs to.
    pub(super) fn datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        stats: &mut Stats,
        new_rng: &mut RngFactory,
    ) {
        let Some(h) = Header::parse(data) else {
            stats.unmatched += 1;
            return;
        };
        if h.init_request {
            // A retransmission of a request a half-open SA (or our own AWS-started SA) answered
            // goes to it; a new one starts a half-open SA of its own.
            if let Some(sa) = self.half_open.iter_mut().find(|sa| sa.spis().0 == h.spi_i) {
                sa.handle_datagram(now, from, to, data);
                return;
            }
            if let Some(sa) = [self.sa.as_mut(), self.incoming.as_mut()]
                .into_iter()
                .flatten()
                .find(|sa| sa.spis().0 == h.spi_i && sa.status().role == crate::ike::Role::Responder)
            {
                sa.handle_datagram(now, from, to, data);
                return;
            }
            self.start_half_open(now, from, to, data, stats, new_rng);
            return;
        }
        let ours = |sa: &IkeSa| sa.spis().0 == h.spi_i && (h.spi_r == 0 || sa.spis().1 == h.spi_r);
        if let Some(sa) = self.half_open.iter_mut().find(|sa| ours(sa)) {
            sa.handle_datagram(now, from, to, data);
            return;
        }
        if let Some(sa) = self.incoming.as_mut().filter(|sa| sa.spis().0 == h.spi_i) {
            sa.handle_datagram(now, from, to, data);
            return;
        }
        if let Some(r) = self.retiring.as_mut().filter(|r| r.sa.spis().0 == h.spi_i) {
            r.sa.handle_datagram(now, from, to, data);
            return;
        }
        // Everything else goes to the tunnel's IKE SA, which knows its current and (during an IKE
        // rekey) its old and new SPIs, and drops (and counts) what is not its own.
        match self.sa.as_mut() {
            Some(sa) => sa.handle_datagram(now, from, to, data),
            None => stats.unmatched += 1,
        }
    }

    fn start_half_open(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        stats: &mut Stats,
        new_rng: &mut RngFactory,
    ) {
        if self.closing || self.admin_down {
            stats.init_rejected += 1;
            return;
        }
        if self.half_open.len() >= HALF_OPEN_PER_TUNNEL {
            stats.half_open_refused += 1;
            tracing::debug!(tunnel = %self.id(), "IKE_SA_INIT dropped: too many half-open SAs");
            return;
        }
        match IkeSa::responder(self.spec.cfg.clone(), now, new_rng(), data, from, to) {
            Ok(sa) => {
                // A stateless answer (COOKIE, INVALID_KE_PAYLOAD, INVALID_SYNTAX) closes it at once;
                // it stays only until that answer is sent.
                if sa.state() == State::Closed {
                    stats.init_rejected += 1;
                } else {
                    stats.half_open_started += 1;
                    tracing::debug!(tunnel = %self.id(), "IKE_SA_INIT from AWS's address: half-open responder SA");
                }
                self.half_open.push(sa);
            }
            Err(e) => {
                stats.init_rejected += 1;
                tracing::debug!(tunnel = %self.id(), error = %e, "IKE_SA_INIT rejected");
            }
        }
    }

    pub(super) fn timeout(&mut self, now: Instant, new_rng: &mut RngFactory) {
        let due = |sa: &IkeSa| sa.poll_timeout().is_some_and(|t| t <= now);
        for sa in &mut self.half_open {
            if due(sa) {
                sa.handle_timeout(now);
            }
        }
        if let Some(sa) = self.sa.as_mut().filter(|sa| due(sa)) {
            sa.handle_timeout(now);
        }
        if let Some(sa) = self.incoming.as_mut().filter(|sa| due(sa)) {
            sa.handle_timeout(now);
        }
        // The older IKE SA's DELETE once its grace is over; until then its timers wait too (no rekey
        // or DPD of an SA about to go).
        if let Some(r) = self.retiring.as_mut() {
            if r.delete_at.is_some_and(|at| at <= now) {
                r.delete_at = None;
                r.sa.close(now);
            } else if r.delete_at.is_none() && due(&r.sa) {
                r.sa.handle_timeout(now);
            }
        }
        if self.sa.is_none()
            && !self.closing
            && !self.admin_down
            && !self.no_local
            && self.retry_at.is_some_and(|t| t <= now)
        {
            self.retry_at = None;
            tracing::info!(tunnel = %self.id(), peer = %self.spec.cfg.remote_addr, "initiating IKE");
            self.sa = Some(IkeSa::initiator(self.spec.cfg.clone(), now, new_rng()));
            self.pending.push(TunnelEvent::Initiating);
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let sas = self
            .half_open
            .iter()
            .chain(self.sa.as_ref())
            .chain(self.incoming.as_ref())
            .filter_map(IkeSa::poll_timeout);
        let retiring = self
            .retiring
            .as_ref()
            .and_then(|r| r.delete_at.or_else(|| r.sa.poll_timeout()));
        let handover = self.handover.as_ref().map(|(at, _)| *at);
        let linger = self.lingering.iter().map(|(at, _)| *at).min();
        let retry = self.retry_at.filter(|_| self.sa.is_none());
        sas.chain(retiring)
            .chain(handover)
            .chain(linger)
            .chain(retry)
            .min()
    }
}

impl Tunnel {
    /// Everything the tunnel's IKE SAs want done, in order: per SA its events (SA commands first, so
    /// an inbound half is in before the message letting the peer use it), then its datagrams.
    pub(super) fn drain_all(&mut self, now: Instant, out: &mut std::collections::VecDeque<Output>) {
        let mut out = Out {
            tunnel: self.handle,
            q: out,
        };
        for e in self.pending.drain(..) {
            out.event(e);
        }
        self.drain_half_open(now, &mut out);
        self.drain_incoming(now, &mut out);
        self.drain_current(now, &mut out);
        let ours_up = self.established();
        if self
            .handover
            .as_ref()
            .is_some_and(|(at, _)| *at <= now || !ours_up)
        {
            self.take_over(now, &mut out);
        }
        self.drain_retiring(now, &mut out);
        self.lingering.retain(|&(until, spi)| {
            let keep = until > now;
            if !keep {
                out.sa(SaCommand::RemoveInbound(spi));
            }
            keep
        });
    }

    fn drain_half_open(&mut self, now: Instant, out: &mut Out<'_>) {
        let mut i = 0;
        while i < self.half_open.len() {
            let sa = &mut self.half_open[i];
            let events = take_events(sa);
            let transmits = take_transmits(sa);
            if events.iter().any(|e| matches!(e, Event::Established)) {
                // Its events first: the Child SA's inbound half is installed before the IKE_AUTH
                // response that lets AWS use it goes out.
                let sa = self.half_open.swap_remove(i);
                let current = !self.established();
                self.promote(sa, events, now, out);
                for tx in transmits {
                    out.transmit(current, tx);
                }
                continue;
            }
            for tx in transmits {
                out.transmit(false, tx);
            }
            let sa = &self.half_open[i];
            let dead = sa.state() == State::Closed
                || events
                    .iter()
                    .any(|e| matches!(e, Event::Failed(_) | Event::Closed));
            if dead {
                self.half_open.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// A half-open SA authenticated: it takes the tunnel if the tunnel has no established IKE SA
    /// (our own attempt, if any, is dropped), else it is AWS's newer IKE SA beside ours.
    fn promote(&mut self, sa: IkeSa, events: Vec<Event>, now: Instant, out: &mut Out<'_>) {
        self.promoted += 1;
        if self.established() {
            tracing::info!(tunnel = %self.id(), "a second IKE SA of AWS's authenticated beside ours; the tunnel moves to it once its Child SA is up");
            if let Some(mut earlier) = self.incoming.replace(sa) {
                // AWS opened yet another before the last one took over: that one is deleted.
                earlier.close(now);
                for tx in take_transmits(&mut earlier) {
                    out.transmit(false, tx);
                }
                if let Some((_, child)) = self.handover.take() {
                    out.sa(SaCommand::RemoveInbound(child.inbound.spi));
                }
            }
            for ev in events {
                self.incoming_event(ev, now, out);
            }
            return;
        }
        tracing::info!(tunnel = %self.id(), "AWS initiated IKE; responding");
        self.sa = Some(sa);
        self.retry_at = None;
        for ev in events {
            self.current_event(ev, now, out);
        }
    }

    fn drain_incoming(&mut self, now: Instant, out: &mut Out<'_>) {
        loop {
            let Some(sa) = self.incoming.as_mut() else { return };
            let events = take_events(sa);
            let transmits = take_transmits(sa);
            if events.is_empty() && transmits.is_empty() {
                return;
            }
            for ev in events {
                self.incoming_event(ev, now, out);
            }
            for tx in transmits {
                out.transmit(false, tx);
            }
        }
    }

    fn incoming_event(&mut self, ev: Event, now: Instant, out: &mut Out<'_>) {
        match ev {
            Event::ChildUp(child) => {
                out.sa(SaCommand::InstallInbound(child.clone()));
                self.handover = Some((now + HANDOVER_GRACE, child));
            }
            Event::Failed(f) => {
                tracing::warn!(tunnel = %self.id(), "AWS's new IKE SA failed, keeping ours: {}", f.message());
            }
            Event::Closed => {
                if let Some(mut sa) = self.incoming.take() {
                    for tx in take_transmits(&mut sa) {
                        out.transmit(false, tx);
                    }
                }
                if let Some((_, child)) = self.handover.take() {
                    out.sa(SaCommand::RemoveInbound(child.inbound.spi));
                }
            }
            _ => {}
        }
    }

    fn drain_current(&mut self, now: Instant, out: &mut Out<'_>) {
        loop {
            let Some(sa) = self.sa.as_mut() else { return };
            let events = take_events(sa);
            let transmits = take_transmits(sa);
            let rekey = sa.request_in_flight().and_then(|(kind, id)| {
                let ike = match kind {
                    RequestKind::RekeyChild => false,
                    RequestKind::RekeyIke => true,
                    _ => return None,
                };
                Some(((sa.local_spi(), id), ike))
            });
            if events.is_empty() && transmits.is_empty() {
                return;
            }
            for ev in events {
                self.current_event(ev, now, out);
            }
            for tx in transmits {
                out.transmit(true, tx);
            }
            // Who started a rekey is what tells cgwd's rekeys from AWS's in the log: one line per
            // request (a retry after INVALID_KE_PAYLOAD or TEMPORARY_FAILURE is a new one).
            if let Some((key, ike)) = rekey
                && self.rekey_logged != Some(key)
            {
                self.rekey_logged = Some(key);
                let what = if ike { "IKE SA" } else { "Child SA" };
                tracing::info!(tunnel = %self.id(), "rekeying the {what} (cgwd initiates)");
                out.event(TunnelEvent::RekeyStarted { ike });
            }
        }
    }

    /// An event of the tunnel's IKE SA: the SA commands it calls for, then the event itself.
    fn current_event(&mut self, ev: Event, now: Instant, out: &mut Out<'_>) {
        let id = self.id();
        match &ev {
            Event::Established => {
                self.backoff = RETRY_MIN;
                tracing::info!(tunnel = %id, "IKE SA established (phase 1 up)");
            }
            Event::ChildInbound(child) => out.sa(SaCommand::InstallInbound(child.clone())),
            Event::ChildUp(child) => {
                out.sa(SaCommand::Install(child.clone()));
                tracing::info!(
                    tunnel = %id,
                    spi_in = %child.inbound.spi,
                    spi_out = %child.outbound.spi,
                    "Child SA up (phase 2 up)"
                );
            }
            Event::ChildDown { inbound, outbound } => {
                out.sa(SaCommand::RemoveOutbound(id, *outbound));
                // The old SA of a rekey going away: the new one (installed already) carries on, and
                // the old inbound half still takes stragglers for a moment.
                let rekeyed = self
                    .sa
                    .as_ref()
                    .filter(|sa| established(sa))
                    .and_then(|sa| sa.status().child_spis)
                    .is_some();
                if rekeyed {
                    self.lingering.push((now + REKEYED_INBOUND_LINGER, *inbound));
                    tracing::info!(tunnel = %id, spi_in = %inbound, "old Child SA removed after rekey");
                    out.event(TunnelEvent::ChildRekeyed {
                        old_inbound: *inbound,
                    });
                    return;
                }
                out.sa(SaCommand::RemoveInbound(*inbound));
                tracing::warn!(tunnel = %id, "Child SA down");
            }
            Event::IkeRekeyed { new_local_spi, .. } => {
                tracing::info!(tunnel = %id, spi = format!("{new_local_spi:016x}"), "IKE SA rekeyed");
            }
            Event::ChildFailed(f) => {
                tracing::warn!(tunnel = %id, "{}", f.message());
            }
            Event::Failed(f) => {
                self.silent_failure = matches!(f.reason, crate::ike::FailReason::PeerNotResponding { .. });
                tracing::warn!(tunnel = %id, "{}", f.message());
            }
            Event::Closed => {
                out.sa(SaCommand::RemoveTunnel(id));
                self.sa = None;
                if self.silent_failure {
                    self.backoff = self.backoff.min(RETRY_SILENT_MAX);
                }
                let retry = (self.spec.reinitiate && !self.closing && !self.admin_down && !self.no_local)
                    .then_some(self.backoff);
                self.retry_at = retry.map(|b| now + b);
                tracing::info!(tunnel = %id, retry_in = ?retry, "IKE SA closed");
                let cap = if self.silent_failure {
                    RETRY_SILENT_MAX
                } else {
                    RETRY_MAX
                };
                self.backoff = (self.backoff * 2).min(cap);
                self.silent_failure = false;
                out.event(TunnelEvent::Ike(Box::new(ev)));
                out.event(TunnelEvent::Closed { retry_in: retry });
                return;
            }
        }
        out.event(TunnelEvent::Ike(Box::new(ev)));
    }

    /// AWS's new IKE SA has had its Child SA for [`HANDOVER_GRACE`]: it becomes the tunnel's SA (its
    /// Child SA sent on from now, as after a rekey) and the older IKE SA gets its DELETE
    /// [`RETIRE_GRACE`] later, its SAs kept for inbound packets until that completes.
    fn take_over(&mut self, now: Instant, out: &mut Out<'_>) {
        let Some((_, child)) = self.handover.take() else {
            return;
        };
        let Some(new) = self.incoming.take() else { return };
        self.retry_at = None;
        if let Some(old) = self.sa.replace(new) {
            let retiring = Retiring {
                spis: old.child_spi_pairs(),
                sa: old,
                delete_at: Some(now + RETIRE_GRACE),
            };
            if let Some(earlier) = self.retiring.replace(retiring) {
                self.forget_children(&earlier.spis, now, out);
            }
        }
        tracing::info!(tunnel = %self.id(), "AWS opened a new IKE SA: the tunnel moves to it; deleting the older one");
        out.event(TunnelEvent::MovedToPeersIkeSa);
        self.current_event(Event::Established, now, out);
        self.current_event(Event::ChildUp(child), now, out);
        self.drain_current(now, out);
    }

    fn drain_retiring(&mut self, now: Instant, out: &mut Out<'_>) {
        let id = self.id();
        loop {
            let Some(r) = self.retiring.as_mut() else { return };
            let events = take_events(&mut r.sa);
            let transmits = take_transmits(&mut r.sa);
            if events.is_empty() && transmits.is_empty() {
                return;
            }
            for tx in transmits {
                out.transmit(false, tx);
            }
            for ev in events {
                match ev {
                    Event::Closed => {
                        if let Some(old) = self.retiring.take() {
                            self.forget_children(&old.spis, now, out);
                        }
                        tracing::info!(tunnel = %id, "older IKE SA deleted");
                        out.event(TunnelEvent::OldIkeSaDeleted);
                        return;
                    }
                    Event::ChildDown { inbound, outbound } => {
                        out.sa(SaCommand::RemoveOutbound(id, outbound));
                        self.lingering.push((now + REKEYED_INBOUND_LINGER, inbound));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Drop a replaced IKE SA's Child SAs from the data plane: outbound now, inbound after
    /// [`REKEYED_INBOUND_LINGER`] (AWS may still have packets sealed with them in flight).
    fn forget_children(&mut self, spis: &[(u32, u32)], now: Instant, out: &mut Out<'_>) {
        let id = self.id();
        for &(inbound, outbound) in spis {
            out.sa(SaCommand::RemoveOutbound(id, EspSpi(outbound)));
            self.lingering
                .push((now + REKEYED_INBOUND_LINGER, EspSpi(inbound)));
        }
    }

    /// Forget the tunnel's IKE SAs at once, as an endpoint replacement does (`emulate-aws`'s
    /// maintenance rehearsal): the current one gets a one-shot DELETE, the tunnel reports it closed
    /// and initiates again as its spec says.
    pub(super) fn reset(&mut self, now: Instant, q: &mut std::collections::VecDeque<Output>) {
        let mut out = Out {
            tunnel: self.handle,
            q,
        };
        self.half_open.clear();
        self.incoming = None;
        if let Some((_, child)) = self.handover.take() {
            out.sa(SaCommand::RemoveInbound(child.inbound.spi));
        }
        if let Some(old) = self.retiring.take() {
            self.forget_children(&old.spis, now, &mut out);
        }
        if let Some(mut sa) = self.sa.take() {
            sa.close(now);
            for tx in take_transmits(&mut sa) {
                out.transmit(true, tx);
            }
            self.sa = Some(sa);
            self.current_event(Event::Closed, now, &mut out);
        }
    }

    /// `cgwd tunnel down`: DELETE the tunnel's IKE SAs and keep it down; `up`: initiate again at once.
    pub(super) fn set_admin_down(
        &mut self,
        down: bool,
        now: Instant,
        q: &mut std::collections::VecDeque<Output>,
    ) {
        if down == self.admin_down {
            return;
        }
        self.admin_down = down;
        if down {
            tracing::info!(tunnel = %self.id(), "tunnel taken down by the operator");
            self.retry_at = None;
            self.reset(now, q);
        } else {
            tracing::info!(tunnel = %self.id(), "tunnel brought up by the operator");
            self.backoff = RETRY_MIN;
            self.retry_at = (!self.no_local).then_some(now);
        }
    }

    /// Reload: new settings for the tunnel's next IKE SAs; the current one is deleted (under its
    /// own, old keys) and a new one initiated at once under the new ones, unless the operator
    /// took the tunnel down.
    pub(super) fn reconfigure(
        &mut self,
        spec: TunnelSpec,
        now: Instant,
        q: &mut std::collections::VecDeque<Output>,
    ) {
        tracing::info!(tunnel = %self.id(), "tunnel reconfigured: re-establishing");
        self.spec = spec;
        self.reset(now, q);
        if !self.admin_down && !self.closing {
            self.backoff = RETRY_MIN;
            self.retry_at = self.spec.initiate.then_some(now);
        }
    }

    /// See [`super::Gateway::renew_credentials`].
    pub(super) fn renew_credentials(&mut self, cfg: std::sync::Arc<crate::ike::IkeConfig>) {
        tracing::info!(tunnel = %self.id(), "credentials renewed: used from the next IKE SA");
        self.spec.cfg = cfg;
    }

    /// The customer gateway's outside address changed to `cfg`'s (or, `None`, none is usable): the
    /// IKE SAs are dropped (the current one gets a one-shot DELETE, sent from the new address;
    /// AWS may take it or not, nothing waits for it) and, with an address, a new IKE SA is
    /// initiated from it at once, without backoff.
    pub(super) fn move_local(
        &mut self,
        cfg: Option<std::sync::Arc<crate::ike::IkeConfig>>,
        now: Instant,
        q: &mut std::collections::VecDeque<Output>,
    ) {
        self.no_local = cfg.is_none();
        if let Some(cfg) = cfg {
            self.spec.cfg = cfg;
        }
        self.reset(now, q);
        if self.no_local || self.admin_down || self.closing || !self.spec.reinitiate {
            self.retry_at = None;
        } else {
            tracing::info!(tunnel = %self.id(), local = %self.spec.cfg.local_addr, "initiating from the new outside address");
            self.backoff = RETRY_MIN;
            self.retry_at = Some(now);
        }
    }

    /// Removed by a reload: it only finishes deleting its IKE SAs; AWS's datagrams go to a live
    /// tunnel of the same endpoint first (`Gateway::tunnel_for_peer`).
    pub(super) fn removed(&self) -> bool {
        self.closing
    }

    /// `cgwd tunnel reset`: a fresh IKE SA now (the current one deleted).
    pub(super) fn restart(&mut self, now: Instant, q: &mut std::collections::VecDeque<Output>) {
        tracing::info!(tunnel = %self.id(), "tunnel reset by the operator");
        self.reset(now, q);
        if !self.admin_down {
            self.backoff = RETRY_MIN;
            self.retry_at = Some(now);
        }
    }

    pub(super) fn admin_down(&self) -> bool {
        self.admin_down
    }

    pub(super) fn rekey(&mut self, now: Instant, ike: bool) -> bool {
        match self.sa.as_mut().filter(|sa| established(sa)) {
            Some(sa) => {
                sa.rekey_now(now, ike);
                true
            }
            None => false,
        }
    }

    /// The data plane refused the Child SA `inbound`: the IKE SA holding it (the tunnel's, or AWS's
    /// newer one waiting to take over) is deleted. False if neither holds it.
    pub(super) fn child_refused(&mut self, now: Instant, inbound: EspSpi, why: &str) -> bool {
        if self
            .incoming
            .as_mut()
            .is_some_and(|sa| sa.child_refused(now, inbound, why))
        {
            // It never takes the tunnel over.
            self.handover = None;
            return true;
        }
        self.sa
            .as_mut()
            .is_some_and(|sa| sa.child_refused(now, inbound, why))
    }

    /// The outbound SA `spi` nears sequence exhaustion: rekey it if it is the current IKE SA's.
    pub(super) fn outbound_exhausting(&mut self, now: Instant, spi: EspSpi) -> bool {
        self.sa
            .as_mut()
            .is_some_and(|sa| sa.outbound_exhausting(now, spi))
    }

    pub(super) fn check_liveness(&mut self, now: Instant) {
        if let Some(sa) = self.sa.as_mut() {
            sa.check_liveness(now);
        }
    }

    pub(super) fn note_peer_alive(&mut self, now: Instant) {
        if let Some(sa) = self.sa.as_mut() {
            sa.note_peer_alive(now);
        }
    }

    /// Shutdown: DELETE every IKE SA of the tunnel, initiate no more.
    pub(super) fn close(&mut self, now: Instant) {
        self.closing = true;
        self.retry_at = None;
        self.half_open.clear();
        if let Some(sa) = self.incoming.as_mut() {
            sa.close(now);
        }
        if let Some(sa) = self.sa.as_mut() {
            sa.close(now);
        }
        // An older IKE SA still in its grace gets its DELETE now.
        if let Some(r) = self.retiring.as_mut()
            && r.delete_at.take().is_some()
        {
            r.sa.close(now);
        }
    }

    /// Half-open responder SAs.
    pub(super) fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    pub(super) fn deleting(&self) -> bool {
        let deleting = |sa: &IkeSa| sa.state() == State::Deleting;
        self.sa.as_ref().is_some_and(deleting)
            || self.incoming.as_ref().is_some_and(deleting)
            || self.retiring.as_ref().is_some_and(|r| deleting(&r.sa))
    }

    pub(super) fn delete_queued(&self) -> bool {
        self.sa.as_ref().is_some_and(IkeSa::delete_queued)
    }
}

/// The gateway's output queue, seen from one tunnel.
struct Out<'a> {
    tunnel: TunnelHandle,
    q: &'a mut std::collections::VecDeque<Output>,
}

impl Out<'_> {
    fn transmit(&mut self, current: bool, tx: crate::ike::Transmit) {
        self.q.push_back(Output::Transmit {
            tunnel: self.tunnel,
            current,
            tx,
        });
    }

    fn sa(&mut self, c: SaCommand) {
        self.q.push_back(Output::Sa(c));
    }

    fn event(&mut self, event: TunnelEvent) {
        self.q.push_back(Output::Event {
            tunnel: self.tunnel,
            event,
        });
    }
}
