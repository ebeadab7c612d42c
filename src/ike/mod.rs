//! Sans-IO IKEv2 (RFC 7296): an [`IkeSa`] fed datagrams and time, returning datagrams, timers and events.
//!
//! # Contract (quinn-proto style)
//! * inputs: [`IkeSa::handle_datagram`] (an IKE message; on port 4500 the caller strips the non-ESP
//!   marker; [`route`] says which SA it belongs to), [`IkeSa::handle_timeout`] (when
//!   [`IkeSa::poll_timeout`] is reached), commands ([`IkeSa::close`], [`IkeSa::note_peer_alive`]);
//! * outputs, to drain after every input in this order: [`IkeSa::poll_transmit`] (the caller adds the
//!   non-ESP marker when sending from/to port 4500), [`IkeSa::poll_timeout`], [`IkeSa::poll_event`].
//!
//! Nothing here reads a clock, opens a socket or draws OS randomness: `now` and a [`Random`] come in, so
//! an exchange is reproducible from a seed.
//!
//! # Structure (strongSwan-style, one module per exchange)
//! * [`message`]: SK payload encryption, message IDs (window of one), request retransmission with
//!   exponential backoff, answering a retransmitted request from the cached response, the request queue;
//! * [`init`]: IKE_SA_INIT (SA, KE, Nonce, NAT-D, COOKIE, INVALID_KE_PAYLOAD);
//! * [`auth`]: IKE_AUTH (PSK, IDs, the first Child SA and its traffic selectors);
//! * [`child`]: CREATE_CHILD_SA — Child SA rekeys, started by either side (PFS when the phase 2 DH
//!   groups are set), hard Child SA lifetime;
//! * [`ike_rekey`]: CREATE_CHILD_SA — IKE SA rekeys and their collisions;
//! * [`info`]: INFORMATIONAL (DPD, DELETE);
//! * [`frag`]: RFC 7383 fragmentation (negotiation flag, limits, the reassembly buffer);
//! * [`proposal`], [`errors`], [`timer`], [`config`]: pure helpers.
//!
//! Unauthenticated input never changes an established SA: everything after IKE_SA_INIT must decrypt
//! with the SA's keys before it is looked at.
//!
//! # Events the daemon acts on
//! `ChildUp` → install inbound then switch outbound (only switch if `ChildInbound` installed it already);
//! `ChildInbound` → install inbound only; `ChildDown` → remove; `IkeRekeyed` → route IKE by
//! the new local SPI; `Failed` (with a sentence for people) then `Closed` → start over after a backoff.

pub mod auth;
pub mod child;
pub mod config;
pub mod cookie;
pub mod errors;
pub mod frag;
pub mod ike_rekey;
pub mod info;
pub mod init;
pub mod message;
pub mod natd;
pub mod proposal;
pub mod timer;
pub mod ts;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use config::{AlgorithmSet, IkeConfig, Ports, RekeyKeyPolicy, RetransmitConfig};

/// The wait between two transmissions of our IKE_SA_INIT request (instead of the doubling schedule
/// of other requests): a tunnel whose path comes back is found within it, and AWS gets one
/// IKE_SA_INIT every 2 s at most while the path is down.
pub const INIT_RETRANSMIT: std::time::Duration = std::time::Duration::from_secs(2);
pub use errors::{FailReason, Failure, Phase};

use crate::crypto::{DhPrivate, Random};
use crate::sa::{ChildSa, EspSpi};
use crate::suite::{DhGroup, Suite};
use message::{Keys, Request, Responded};
use timer::{Timer, TimerTable};

/// How long [`IkeSa::close`] waits for the response to a request in flight before it sends the DELETE
/// anyway: two round trips of a slow path and one retransmission, short enough for a shutdown.
pub const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A datagram to send. On port 4500 the caller prepends the 4-octet non-ESP marker (RFC 3948 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// What happened, for the daemon (install SAs, update health, log).
#[derive(Debug, Clone)]
pub enum Event {
    /// The IKE SA is authenticated and usable (phase 1 up).
    Established,
    /// A Child SA is negotiated: install inbound, then switch outbound.
    ChildUp(ChildSa),
    /// A Child SA the peer may start sending on before we know whether it survives (we answered the
    /// peer's rekey while ours of the same SA was in flight, RFC 7296 §2.8.1): install the inbound half
    /// only. A `ChildUp` with the same SPIs (then switch outbound only) or its `ChildDown` follows.
    ChildInbound(ChildSa),
    /// A Child SA is gone (deleted by either side).
    ChildDown { inbound: EspSpi, outbound: EspSpi },
    /// The first Child SA could not be created; the IKE SA may still be up.
    ChildFailed(Failure),
    /// The IKE SA failed; [`Failure::message`] says why in words for people. `Closed` follows.
    Failed(Failure),
    /// The IKE SA was rekeyed (RFC 7296 §2.18): IKE messages now carry `new_local_spi`; route them here.
    IkeRekeyed { old_local_spi: u64, new_local_spi: u64 },
    /// The IKE SA is gone; the daemon may drop this `IkeSa` once `poll_transmit` is drained.
    Closed,
}

/// Which side started this IKE SA (fixes SPI order, key direction and the I flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Role {
    Initiator,
    Responder,
}

/// Where the SA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitDone,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    Established,
    /// Our DELETE of the IKE SA is in flight.
    Deleting,
    /// Nothing more will happen (failed, deleted, or a stateless reply such as a COOKIE demand).
    Closed,
}

/// Up/negotiating/down in AWS's words, for `cgwd status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LinkState {
    Established,
    Negotiating,
    Down,
}

/// A snapshot for status output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub role: Role,
    pub state: State,
    pub phase1: LinkState,
    pub phase2: LinkState,
    pub ike_suite: Option<Suite>,
    pub esp_suite: Option<Suite>,
    pub spi_i: u64,
    pub spi_r: u64,
    /// (inbound, outbound) of the newest Child SA.
    pub child_spis: Option<(u32, u32)>,
    /// A NAT (or a peer faking one, as AWS's encap forcing does) between us and the peer.
    pub nat_detected: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What IKE_SA_INIT and IKE_AUTH need until the SA is established.
pub(crate) struct Handshake {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub dh: Option<DhPrivate>,
    pub group: DhGroup,
    pub cookie: Option<Vec<u8>>,
    /// The IKE_SA_INIT request as sent/received: the initiator's AUTH signs it.
    pub init_request: Vec<u8>,
    /// The IKE_SA_INIT response: the responder's AUTH signs it.
    pub init_response: Vec<u8>,
    /// Our inbound SPI for the first Child SA.
    pub child_spi: u32,
    /// COOKIE and INVALID_KE_PAYLOAD retries so far (bounded, so a hostile responder cannot loop us).
    pub init_retries: u32,
    /// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS in its IKE_SA_INIT (RFC 7427 §4);
    /// `None` if it sent none, or one that does not parse. Chooses our AUTH method.
    pub peer_hashes: Option<Vec<crate::wire::ike::HashAlgorithm>>,
}

/// The installed Child SA, as far as IKE needs to remember it.
#[derive(Debug, Clone)]
pub(crate) struct ChildState {
    pub inbound: u32,
    pub outbound: u32,
    pub suite: Suite,
    pub local_ts: crate::sa::TrafficSelector,
    pub remote_ts: crate::sa::TrafficSelector,
    /// Hard lifetime: deleted at this time unless rekeyed (and then deleted) before.
    pub expires: Instant,
    /// Reported with `ChildUp` (false for the redundant SA of a rekey collision, which the data plane
    /// never sees, so its deletion reports no `ChildDown` either).
    pub announced: bool,
}

/// One IKE SA (one AWS tunnel's phase 1) and its Child SA.
pub struct IkeSa {
    pub(crate) cfg: Arc<IkeConfig>,
    pub(crate) rng: Box<dyn Random>,
    pub(crate) role: Role,
    pub(crate) state: State,
    pub(crate) spi_i: u64,
    pub(crate) spi_r: u64,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) suite: Option<Suite>,
    pub(crate) keys: Option<Keys>,
    pub(crate) hs: Option<Handshake>,
    /// Child SAs, oldest first (two overlap briefly during a rekey).
    pub(crate) children: Vec<ChildState>,
    /// Our CREATE_CHILD_SA in flight (Child or IKE rekey).
    pub(crate) rekey: Option<child::PendingRekey>,
    /// Our last completed Child SA rekey, kept while the SA it replaced exists: a peer's rekey of that
    /// same SA arriving late is a collision too (RFC 7296 §2.8.1).
    pub(crate) rekeyed_child: Option<child::CompletedRekey>,
    /// The outbound SPI whose sequence exhaustion started a rekey ([`IkeSa::outbound_exhausting`]).
    pub(crate) seq_rekey: Option<u32>,
    /// The peer's rekey we answered: (old inbound SPI, new SA), sent on once the old SA is deleted.
    pub(crate) successor: Option<(u32, ChildSa)>,
    /// DH groups the peer asked for with INVALID_KE_PAYLOAD on a Child / IKE rekey: used next time.
    pub(crate) child_rekey_group: Option<DhGroup>,
    pub(crate) ike_rekey_group: Option<DhGroup>,
    /// The group an INVALID_KE_PAYLOAD just named: the immediate retry of that rekey uses it (once).
    pub(crate) ke_retry: Option<DhGroup>,
    /// The IKE SA we rekeyed away from, kept only to answer the peer's DELETE of it.
    pub(crate) old_ike: Option<message::OldIke>,
    /// The redundant new IKE SA of a rekey collision, kept until its DELETE exchange is done.
    pub(crate) retired_ike: Option<message::OldIke>,
    pub(crate) nat_local: bool,
    pub(crate) nat_remote: bool,
    /// Message ID of our next request.
    pub(crate) next_request_id: u32,
    /// Our request in flight (window size 1).
    pub(crate) in_flight: Option<Request>,
    /// Requests waiting for the window (DPD, delete, ...), strongSwan's queued tasks.
    pub(crate) queue: VecDeque<message::RequestKind>,
    /// Message ID we expect in the peer's next request.
    pub(crate) peer_next_id: u32,
    /// Our last response, resent when the peer retransmits the request.
    pub(crate) last_response: Option<Responded>,
    pub(crate) last_heard: Instant,
    pub(crate) timers: TimerTable,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// Our place in the daemon's half-open count (responder, IKE_SA_INIT answered, not authenticated).
    pub(crate) half_open: Option<cookie::HalfOpen>,
    /// Datagrams dropped (malformed, unauthenticated, unexpected), for metrics.
    pub dropped: u64,
    /// RFC 7383 fragmentation: negotiated or not, reassembly buffers, counters.
    pub(crate) frag: frag::FragState,
}

/// How the daemon finds the `IkeSa` an incoming IKE message belongs to (RFC 7296 §2.6: each side names
/// the SA by the SPI it chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the SA whose [`IkeSa::local_spi`] is this.
    LocalSpi(u64),
    /// A new (or retransmitted) IKE_SA_INIT request: to the responder SA created for this SPIi from this
    /// address, or to a new [`IkeSa::responder`].
    NewRequest { spi_i: u64 },
}

/// Classify an IKE message (non-ESP marker stripped) for routing; `None` = not IKE, drop.
pub fn route(data: &[u8]) -> Option<Route> {
    let msg = crate::wire::ike::Message::parse(data).ok()?;
    let h = msg.header;
    if h.flags.initiator() {
        // Sent by the original initiator, so we are the responder and our SPI is SPIr.
        if h.spi_r == 0 {
            (h.exchange == crate::wire::ike::ExchangeType::IKE_SA_INIT && !h.flags.response() && h.spi_i != 0)
                .then_some(Route::NewRequest { spi_i: h.spi_i })
        } else {
            Some(Route::LocalSpi(h.spi_r))
        }
    } else {
        (h.spi_i != 0).then_some(Route::LocalSpi(h.spi_i))
    }
}

/// Why a first datagram could not start a responder SA (it is simply dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("not an IKE_SA_INIT request: {0}")]
    NotInitRequest(&'static str),
    #[error("malformed message: {0}")]
    Malformed(crate::wire::ike::Error),
}

impl IkeSa {
    fn blank(cfg: Arc<IkeConfig>, now: Instant, rng: Box<dyn Random>, role: Role) -> Self {
        let local = SocketAddr::new(cfg.local_addr, cfg.local_ports.ike);
        let remote = SocketAddr::new(cfg.remote_addr, cfg.remote_ports.ike);
        IkeSa {
            cfg,
            rng,
            role,
            state: State::InitSent,
            spi_i: 0,
            spi_r: 0,
            local,
            remote,
            suite: None,
            keys: None,
            hs: None,
            children: Vec::new(),
            rekey: None,
            rekeyed_child: None,
            seq_rekey: None,
            successor: None,
            child_rekey_group: None,
            ike_rekey_group: None,
            ke_retry: None,
            old_ike: None,
            retired_ike: None,
            nat_local: false,
            nat_remote: false,
            next_request_id: 0,
            in_flight: None,
            queue: VecDeque::new(),
            peer_next_id: 0,
            last_response: None,
            last_heard: now,
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            half_open: None,
            dropped: 0,
            frag: frag::FragState::default(),
        }
    }

    /// Start an IKE SA as initiator: queues IKE_SA_INIT.
    pub fn initiator(cfg: Arc<IkeConfig>, now: Instant, rng: Box<dyn Random>) -> Self {
        let mut sa = Self::blank(cfg, now, rng, Role::Initiator);
        sa.start_initiator(now);
        sa
    }

    /// Answer a peer's first IKE_SA_INIT request (`first`, received on `to` from `from`).
    ///
    /// May return an SA that is already [`State::Closed`] after queueing a stateless reply (COOKIE demand,
    /// INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN): drain `poll_transmit`/`poll_event` and drop it.
    pub fn responder(
        cfg: Arc<IkeConfig>,
        now: Instant,
        rng: Box<dyn Random>,
        first: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<Self, RejectReason> {
        let mut sa = Self::blank(cfg, now, rng, Role::Responder);
        sa.local = to;
        sa.remote = from;
        sa.start_responder(now, first)?;
        Ok(sa)
    }

    /// An IKE message from the network (non-ESP marker already stripped). Hostile input is dropped.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        if self.state == State::Closed {
            // A responder that only sent a stateless reply (COOKIE, INVALID_KE_PAYLOAD) takes the
            // initiator's retry itself, so the caller needs no special case for it.
            if self.role == Role::Responder && self.keys.is_none() && self.spi_r == 0 {
                self.restart_responder(now, from, to, data);
            } else {
                self.dropped += 1;
            }
            return;
        }
        if !self.receive(now, from, to, data) {
            self.dropped += 1;
        }
        if self.state == State::Established
            && let Some(h) = self.half_open.take()
        {
            h.authenticated();
        }
    }

    fn restart_responder(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        /// Holds the place of the real generator while the SA is rebuilt; never asked for bytes.
        struct Moved;
        impl Random for Moved {
            fn fill(&mut self, out: &mut [u8]) {
                out.fill(0);
            }
        }
        let rng = std::mem::replace(&mut self.rng, Box::new(Moved));
        let dropped = self.dropped;
        *self = Self::blank(self.cfg.clone(), now, rng, Role::Responder);
        self.dropped = dropped;
        self.local = to;
        self.remote = from;
        if self.start_responder(now, data).is_err() {
            self.dropped += 1;
            self.state = State::Closed;
        }
    }

    /// Fire expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.expired(now) {
            match t {
                Timer::Retransmit => self.on_retransmit_timer(now),
                Timer::Dpd => self.on_dpd_timer(now),
                Timer::Establish => {
                    if self.state != State::Established {
                        self.fail(now, FailReason::PeerNotResponding { exchange: "IKE_AUTH" });
                    }
                }
                Timer::IkeRekey => self.queue_rekey(now, message::RequestKind::RekeyIke),
                Timer::ChildRekey => self.queue_rekey(now, message::RequestKind::RekeyChild),
                Timer::ChildExpire => self.expire_children(now),
                Timer::IkeExpire => self.fail(now, FailReason::Expired),
                Timer::CloseWait => self.stop_waiting_to_close(now),
                Timer::RetiredIke => {
                    // Their DELETE exchanges are long over (or never coming): forget them.
                    self.retired_ike = None;
                    self.old_ike = None;
                }
                Timer::Successor => {
                    if let Some((_, child)) = self.successor.take() {
                        tracing::info!(tunnel = %self.cfg.tunnel, "the peer did not delete the Child SA it rekeyed: switching to the new one anyway");
                        self.promote(child);
                    }
                }
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Delete the IKE SA (and with it the Child SA) politely: an INFORMATIONAL with Delete(IKE).
    ///
    /// The DELETE goes out at once unless a request of ours (a rekey, a DPD, a Child SA delete) is in
    /// flight. The window is one request (RFC 7296 §2.3), so the DELETE then waits for that response
    /// (the request keeps its retransmissions) and goes out the moment it arrives; if none comes
    /// within [`CLOSE_WAIT`], the request is given up and the DELETE sent with the next message ID
    /// anyway (the peer, which has almost always received the request, accepts it; going silent would
    /// leave it waiting for DPD). Queued requests are dropped. A Child SA rekey answered meanwhile
    /// is not installed (the DELETE takes it with the IKE SA); an IKE SA rekey answered meanwhile
    /// completes, so that the DELETE goes over the IKE SA that now holds the Child SA.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Established => {
                self.queue.clear();
                self.queue.push_back(message::RequestKind::DeleteIke);
                self.state = State::Deleting;
                if self.in_flight.is_some() {
                    self.timers.set(Timer::CloseWait, now + CLOSE_WAIT);
                }
                self.pump(now);
            }
            State::Closed | State::Deleting => {}
            _ => self.finish(),
        }
    }

    /// [`CLOSE_WAIT`] passed without the response the DELETE waits for: give that request up.
    fn stop_waiting_to_close(&mut self, now: Instant) {
        let waiting = self
            .in_flight
            .as_ref()
            .is_some_and(|r| r.kind != message::RequestKind::DeleteIke);
        if self.state == State::Deleting && waiting {
            tracing::info!(tunnel = %self.cfg.tunnel, "closing: no answer to the request in flight, sending the DELETE anyway");
            self.in_flight = None;
            self.rekey = None;
            self.timers.stop(Timer::Retransmit);
            self.pump(now);
        }
    }

    /// Rekey now, as `swanctl --rekey` does: the IKE SA (`ike`) or the newest Child SA. Queued behind
    /// a request in flight; ignored unless established.
    pub fn rekey_now(&mut self, now: Instant, ike: bool) {
        let kind = if ike {
            message::RequestKind::RekeyIke
        } else {
            message::RequestKind::RekeyChild
        };
        self.queue_rekey(now, kind);
    }

    /// The data plane refused to install the Child SA whose inbound SPI is `inbound` (`why`, for
    /// people). IKE must not go on believing a blackholed SA is up, and a rekey's old SA may be on
    /// its way out already, so the IKE SA is deleted and the tunnel starts over with fresh SPIs.
    /// Returns false when no Child SA of this IKE SA has that SPI.
    pub fn child_refused(&mut self, now: Instant, inbound: EspSpi, why: &str) -> bool {
        let Some(i) = self.children.iter().position(|c| c.inbound == inbound.0) else {
            return false;
        };
        // Nothing of it is in the table (an install is all or nothing), and its inbound SPI may be
        // another tunnel's SA there: no ChildDown, which would remove that SPI. The tunnel's SAs go
        // by tunnel once the IKE SA is closed.
        self.children.remove(i);
        self.arm_child_expiry();
        let f = self.failure(FailReason::Protocol {
            what: format!("the data plane refused Child SA {inbound}: {why}"),
        });
        tracing::error!(tunnel = %self.cfg.tunnel, reason = %f, "deleting the IKE SA");
        self.events.push_back(Event::ChildFailed(f));
        self.close(now);
        true
    }

    /// The data plane reports the outbound SA `outbound` past its sequence soft limit
    /// ([`crate::esp::SEQ_SOFT_LIMIT`]): rekey the Child SA now rather than at its lifetime, before
    /// the hard limit stops it sending. Once per SA (a failed rekey is not restarted every tick);
    /// only the current Child SA (an older one is being replaced already). Returns whether a rekey
    /// was queued.
    pub fn outbound_exhausting(&mut self, now: Instant, outbound: EspSpi) -> bool {
        let current = self.children.last().is_some_and(|c| c.outbound == outbound.0);
        if self.state != State::Established || !current || self.seq_rekey == Some(outbound.0) {
            return false;
        }
        self.seq_rekey = Some(outbound.0);
        tracing::info!(tunnel = %self.cfg.tunnel, spi = %outbound, "outbound ESP sequence numbers nearly exhausted: rekeying the Child SA");
        self.queue_rekey(now, message::RequestKind::RekeyChild);
        true
    }

    /// Check the peer's liveness now (a DPD exchange), as the DPD timer would.
    pub fn check_liveness(&mut self, now: Instant) {
        self.on_dpd_timer(now);
    }

    /// The data plane received authenticated ESP from the peer: it is alive, so DPD can wait (as
    /// strongSwan checks its SAs' use before sending DPD).
    pub fn note_peer_alive(&mut self, now: Instant) {
        if self.state == State::Established {
            self.heard(now);
        }
    }

    /// A CREATE_CHILD_SA of ours (a Child SA or IKE SA rekey) is in flight: AWS's "rekeying".
    pub fn rekeying(&self) -> bool {
        self.rekey.is_some()
    }

    /// Our request in flight, if any: what it is and its message ID.
    pub(crate) fn request_in_flight(&self) -> Option<(message::RequestKind, u32)> {
        self.in_flight.as_ref().map(|r| (r.kind, r.msg_id))
    }

    /// When cgwd rekeys the Child SA next (its rekey timer).
    pub fn next_child_rekey(&self) -> Option<Instant> {
        self.timers.get(timer::Timer::ChildRekey)
    }

    /// Every Child SA's (inbound, outbound) SPIs, oldest first.
    pub fn child_spi_pairs(&self) -> Vec<(u32, u32)> {
        self.children.iter().map(|c| (c.inbound, c.outbound)).collect()
    }

    /// Closing, with its DELETE queued behind a request still in flight (it waits up to
    /// [`CLOSE_WAIT`] for that answer).
    pub fn delete_queued(&self) -> bool {
        self.state == State::Deleting
            && self
                .in_flight
                .as_ref()
                .is_some_and(|r| r.kind != message::RequestKind::DeleteIke)
    }

    /// The local SPI: what the daemon uses to route incoming IKE messages to this SA (see [`route`]).
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    pub fn spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn status(&self) -> Status {
        let phase1 = match self.state {
            State::Established | State::Deleting => LinkState::Established,
            State::Closed => LinkState::Down,
            _ => LinkState::Negotiating,
        };
        let phase2 = match (self.children.last(), phase1) {
            (Some(_), LinkState::Established) => LinkState::Established,
            (_, LinkState::Down) | (None, LinkState::Established) => LinkState::Down,
            _ => LinkState::Negotiating,
        };
        Status {
            role: self.role,
            state: self.state,
            phase1,
            phase2,
            ike_suite: self.suite,
            esp_suite: self.children.last().map(|c| c.suite),
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            child_spis: self.children.last().map(|c| (c.inbound, c.outbound)),
            nat_detected: self.nat_local || self.nat_remote,
            local: self.local,
            remote: self.remote,
        }
    }

    pub(crate) fn failure(&self, reason: FailReason) -> Failure {
        Failure {
            tunnel: self.cfg.tunnel,
            peer: self.cfg.remote_addr,
            reason,
        }
    }

    /// The IKE SA is dead: report why, then close.
    pub(crate) fn fail(&mut self, _now: Instant, reason: FailReason) {
        if self.state == State::Closed {
            return;
        }
        let f = self.failure(reason);
        tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "IKE SA failed");
        self.events.push_back(Event::Failed(f));
        self.finish();
    }

    /// Close without a failure (deleted, or a stateless reply sent).
    pub(crate) fn finish(&mut self) {
        if self.state == State::Closed {
            return;
        }
        for c in std::mem::take(&mut self.children) {
            self.events.push_back(Event::ChildDown {
                inbound: EspSpi(c.inbound),
                outbound: EspSpi(c.outbound),
            });
        }
        self.state = State::Closed;
        self.timers.clear();
        self.in_flight = None;
        self.queue.clear();
        self.hs = None;
        self.events.push_back(Event::Closed);
    }

    pub(crate) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    /// A non-zero random SPI.
    pub(crate) fn random_spi64(&mut self) -> u64 {
        loop {
            let s = self.rng.next_u64();
            if s != 0 {
                return s;
            }
        }
    }

    pub(crate) fn random_spi32(&mut self) -> u32 {
        loop {
            // SPIs 1..=255 are reserved by IANA (RFC 4303 §2.1).
            let s = self.rng.next_u32();
            if s > 255 {
                return s;
            }
        }
    }
}
