//! The message layer: build and protect messages (SK payload, RFC 7296 §3.14 / RFC 5282), track message
//! IDs (a window of one, §2.3), retransmit our request with exponential backoff (§2.1), answer a
//! retransmitted request from the cached response (§2.1), and start queued requests one at a time.
//! Once RFC 7383 fragmentation is negotiated, large messages go out as SKF fragments and fragmented
//! messages are reassembled here (see [`super::frag`]).

use std::net::SocketAddr;
use std::time::Instant;

use super::frag::Offer;
use super::timer::Timer;
use super::{FailReason, IkeSa, Role, State, Transmit};
use crate::crypto::cipher::Cipher;
use crate::secret::Secret;
use crate::suite::Integrity;
use crate::wire::ike::{
    Encrypted, ExchangeType, Flags, HeaderRepr, Message, PayloadRepr, PayloadType, SealLayout, emit_message,
    emit_payloads, header_field, parse_inner_payloads, sk,
};

/// The IKE SA's keys, split by direction from our point of view.
pub(crate) struct Keys {
    pub prf: Integrity,
    pub sk_d: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
    /// Protects what we send (SK_ei/SK_ai if we are the original initiator).
    pub send: Cipher,
    /// Opens what we receive.
    pub recv: Cipher,
    /// Counter for GCM IVs: never repeats under `send`.
    pub iv_counter: u64,
    /// An IKE SA rekey that changed the PRF keys the new SA two ways ([`crate::crypto::RekeyPrfPlus`]):
    /// the other key set waits here until the peer's first authenticated message on the SA shows which
    /// one it derived (then this is dropped, or becomes the keys).
    pub untested: Option<Box<Keys>>,
}

/// Requests we start, one at a time (strongSwan's queued tasks, by priority: delete first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Init,
    Auth,
    Dpd,
    DeleteIke,
    RekeyChild,
    RekeyIke,
    /// Delete the Child SA with this inbound SPI (the old one after our rekey).
    DeleteChild(u32),
}

impl RequestKind {
    pub fn exchange_name(self) -> &'static str {
        match self {
            RequestKind::Init => "IKE_SA_INIT",
            RequestKind::Auth => "IKE_AUTH",
            RequestKind::Dpd => "a liveness check (DPD)",
            RequestKind::DeleteIke | RequestKind::DeleteChild(_) => "DELETE",
            RequestKind::RekeyChild => "a Child SA rekey (CREATE_CHILD_SA)",
            RequestKind::RekeyIke => "an IKE SA rekey (CREATE_CHILD_SA)",
        }
    }
}

/// Our request in flight.
pub(crate) struct Request {
    pub kind: RequestKind,
    pub msg_id: u32,
    /// What the request says, to seal it again under the other candidate keys (`Keys::untested`).
    pub exchange: ExchangeType,
    pub payloads: Vec<PayloadRepr>,
    /// The datagrams of the request: one, or all its SKF fragments (all resent on a retransmission,
    /// RFC 7383 §2.6.1).
    pub packets: Vec<Vec<u8>>,
    /// Transmissions so far (1 after the first send).
    pub sent: u32,
}

/// Our last response and the request it answered (for retransmitted requests).
pub(crate) struct Responded {
    pub msg_id: u32,
    /// The request as received (empty for a fragmented one).
    pub request: Vec<u8>,
    /// The response datagram; empty when it went as `fragments`.
    pub packet: Vec<u8>,
    /// The response's SKF fragments (RFC 7383), all resent for a retransmitted request.
    pub fragments: Vec<Vec<u8>>,
}

impl Responded {
    fn datagrams(&self) -> Vec<Vec<u8>> {
        if self.fragments.is_empty() {
            vec![self.packet.clone()]
        } else {
            self.fragments.clone()
        }
    }
}

/// What became of an encrypted datagram: a whole message, a fragment kept for later, or nothing.
enum Opened {
    Message(Vec<PayloadRepr>),
    /// The last missing fragment arrived: the whole message.
    Reassembled(Vec<PayloadRepr>),
    /// An authenticated fragment stored (or a duplicate ignored): accepted, nothing to process yet.
    Pending,
    Drop,
}

/// The IKE SA we rekeyed away from: kept until the peer deletes it, so that DELETE gets its answer.
pub(crate) struct OldIke {
    pub spi_i: u64,
    pub spi_r: u64,
    pub role: Role,
    pub keys: Option<Keys>,
    pub next_request_id: u32,
    pub peer_next_id: u32,
    pub last_response: Option<Responded>,
    /// Our DELETE of it is in flight (sent once): its answer ends it.
    pub deleting: bool,
}

/// Decrypted, authenticated content of a message.
pub(crate) struct Inbound {
    pub exchange: ExchangeType,
    pub msg_id: u32,
    pub payloads: Vec<PayloadRepr>,
}

impl IkeSa {
    pub(crate) fn header(&self, exchange: ExchangeType, msg_id: u32, response: bool) -> HeaderRepr {
        let mut flags = Flags::empty();
        if self.role == Role::Initiator {
            flags = flags | Flags::INITIATOR;
        }
        if response {
            flags = flags | Flags::RESPONSE;
        }
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::NONE,
            exchange,
            flags,
            message_id: msg_id,
            length: 0,
        }
    }

    /// A whole message: plaintext for IKE_SA_INIT, otherwise one SK payload around `payloads`.
    pub(crate) fn build(
        &mut self,
        exchange: ExchangeType,
        msg_id: u32,
        response: bool,
        payloads: &[PayloadRepr],
    ) -> Option<Vec<u8>> {
        let header = self.header(exchange, msg_id, response);
        let mut out = Vec::with_capacity(512);
        if exchange == ExchangeType::IKE_SA_INIT {
            emit_message(&header, payloads, &mut out).ok()?;
            return Some(out);
        }
        let mut inner = Vec::with_capacity(256);
        let first = emit_payloads(payloads, &mut inner).ok()?;
        let params = self.sk_params()?;
        let layout = sk::emit_sk_message(&header, first, &inner, params, &mut out).ok()?;
        self.seal(&mut out, &layout)?;
        Some(out)
    }

    fn sk_params(&self) -> Option<sk::SkParams> {
        let keys = self.keys.as_ref()?;
        Some(sk::SkParams {
            iv_len: keys.send.iv_len(),
            icv_len: keys.send.icv_len(),
            block_len: keys.send.block_len(),
        })
    }

    /// Write the IV, encrypt and compute the ICV of one laid-out SK/SKF message in `out`.
    fn seal(&mut self, out: &mut [u8], layout: &SealLayout) -> Option<()> {
        let keys = self.keys.as_mut()?;
        if keys.send.encryption().is_aead() {
            // GCM: a counter, unique under this key (RFC 5282 §3.1 only asks for uniqueness).
            keys.iv_counter += 1;
            keys.send
                .write_iv(keys.iv_counter, out.get_mut(layout.iv.clone())?)
                .ok()?;
        } else {
            // CBC: unpredictable (RFC 7296 §3.14), from our seeded-or-OS Random.
            self.rng.fill(out.get_mut(layout.iv.clone())?);
        }
        let keys = self.keys.as_ref()?;
        keys.send
            .seal(out.get_mut(layout.message.clone())?, layout.aad_len)
            .ok()
    }

    /// A message as the datagrams it goes out in: one, or its SKF fragments when fragmentation was
    /// negotiated and the whole message would exceed the fragment size (RFC 7383 §2.5). IKE_SA_INIT is
    /// never fragmented.
    pub(crate) fn build_datagrams(
        &mut self,
        exchange: ExchangeType,
        msg_id: u32,
        response: bool,
        payloads: &[PayloadRepr],
    ) -> Option<Vec<Vec<u8>>> {
        if exchange == ExchangeType::IKE_SA_INIT || !self.frag.negotiated {
            return self.build(exchange, msg_id, response, payloads).map(|p| vec![p]);
        }
        let mut inner = Vec::with_capacity(1024);
        let first = emit_payloads(payloads, &mut inner).ok()?;
        let params = self.sk_params()?;
        // After IKE_SA_INIT everything goes over port 4500, behind the non-ESP marker.
        let nat_t = self.local.port() == self.cfg.local_ports.nat_t;
        let max = self.cfg.fragmentation.max_message(nat_t, self.remote.is_ipv6());
        let whole = header_field::HEADER_LEN + params.overhead(inner.len()) + inner.len();
        if whole <= max {
            return self.build(exchange, msg_id, response, payloads).map(|p| vec![p]);
        }
        let header = self.header(exchange, msg_id, response);
        let Ok(laid_out) = sk::emit_skf_messages(&header, first, &inner, params, max) else {
            // Not even one octet per fragment fits (an absurdly small size): let IP fragment it.
            return self.build(exchange, msg_id, response, payloads).map(|p| vec![p]);
        };
        let mut out = Vec::with_capacity(laid_out.len());
        for (mut packet, layout) in laid_out {
            self.seal(&mut packet, &layout)?;
            out.push(packet);
        }
        self.frag.sent += out.len() as u64;
        tracing::debug!(tunnel = %self.cfg.tunnel, ?exchange, msg_id, fragments = out.len(), size = whole, "splitting IKE message into fragments");
        Some(out)
    }

    /// Decrypt and authenticate a message's SK payload. `None` = drop it (forged, corrupted, no SK, or
    /// an SKF fragment: those go through [`IkeSa::open_or_reassemble`]).
    pub(crate) fn open(&mut self, msg: &Message<'_>) -> Option<Vec<PayloadRepr>> {
        let enc = msg.encrypted().ok()??;
        if enc.kind() != PayloadType::SK {
            return None;
        }
        let inner = self.decrypt(msg, &enc)?;
        parse_inner_payloads(enc.inner_first(), &inner).ok()
    }

    /// The authenticated plaintext (padding stripped) of an SK or SKF payload; `None` if it fails the
    /// integrity check. The associated data covers the SKF fragment fields too (RFC 7383 §2.5.3).
    /// An SA keyed two ways (`Keys::untested`) learns here which way the peer keyed it.
    fn decrypt(&mut self, msg: &Message<'_>, enc: &Encrypted<'_>) -> Option<Vec<u8>> {
        let aad_len = enc.aad_len();
        let keys = self.keys.as_ref()?;
        if let Some(plain) = open_sk(&keys.recv, msg.bytes(), aad_len) {
            if keys.untested.is_some() {
                self.settle_keys(false, false);
            }
            return Some(plain);
        }
        let plain = open_sk(&keys.untested.as_ref()?.recv, msg.bytes(), aad_len)?;
        // A request tells us now; a response is to our request in flight, which needs no resend.
        self.settle_keys(true, !msg.header.flags.response());
        Some(plain)
    }

    /// The peer's first authenticated message on an SA keyed two ways used the first key set (`other`
    /// false: forget the other one) or the other one (switch to it; our request in flight, sealed
    /// under the wrong keys, goes again at once when `resend`, else at its next retransmission).
    fn settle_keys(&mut self, other: bool, resend: bool) {
        let Some(keys) = self.keys.as_mut() else { return };
        let Some(alternative) = keys.untested.take() else {
            return;
        };
        if !other {
            tracing::debug!(tunnel = %self.cfg.tunnel, "the peer keyed the rekeyed IKE SA as we did first");
            return;
        }
        *keys = *alternative;
        tracing::info!(tunnel = %self.cfg.tunnel, "the peer keyed the rekeyed IKE SA with the other reading of RFC 7296 §2.18: switching to its keys");
        let Some(req) = self.in_flight.as_ref() else {
            return;
        };
        let (exchange, msg_id, payloads) = (req.exchange, req.msg_id, req.payloads.clone());
        let Some(packets) = self.build_datagrams(exchange, msg_id, false, &payloads) else {
            return;
        };
        if let Some(req) = self.in_flight.as_mut() {
            req.packets = packets.clone();
        }
        if resend {
            self.transmit_all(packets);
        }
    }

    /// Run `f` with the untested key set in place of the keys (to seal a retransmission under it).
    fn with_untested_keys<R>(&mut self, f: impl FnOnce(&mut IkeSa) -> R) -> Option<R> {
        let keys = self.keys.as_mut()?;
        let alternative = *keys.untested.take()?;
        let first = std::mem::replace(keys, alternative);
        let r = f(self);
        if let Some(keys) = self.keys.as_mut() {
            let alternative = std::mem::replace(keys, first);
            keys.untested = Some(Box::new(alternative));
        }
        Some(r)
    }

    /// Open an SK message, or authenticate an SKF fragment and add it to the request or response
    /// reassembly buffer (RFC 7383 §2.6): a complete message comes back like an unfragmented one.
    fn open_or_reassemble(&mut self, now: Instant, msg: &Message<'_>, response: bool) -> Opened {
        let Some(enc) = msg.encrypted().ok().flatten() else {
            return Opened::Drop;
        };
        let Some(frag) = enc.fragment() else {
            return self.open(msg).map_or(Opened::Drop, Opened::Message);
        };
        if !self.frag.negotiated {
            self.frag.dropped += 1;
            return Opened::Drop;
        }
        let spis = (self.spi_i, self.spi_r);
        let msg_id = msg.header.message_id;
        let stored = if response {
            &self.frag.responses
        } else {
            &self.frag.requests
        };
        if stored.has(spis, msg_id, frag) {
            return Opened::Pending; // a duplicate: already authenticated and stored
        }
        let Some(chunk) = self.decrypt(msg, &enc) else {
            self.frag.dropped += 1;
            return Opened::Drop;
        };
        self.frag.received += 1;
        let reassembler = if response {
            &mut self.frag.responses
        } else {
            &mut self.frag.requests
        };
        match reassembler.offer(now, spis, msg_id, frag, enc.inner_first(), &chunk) {
            Offer::Stored | Offer::Duplicate => Opened::Pending,
            Offer::Rejected => {
                self.frag.dropped += 1;
                Opened::Drop
            }
            Offer::Complete { first, inner } => match parse_inner_payloads(first, &inner) {
                Ok(payloads) => {
                    tracing::debug!(tunnel = %self.cfg.tunnel, msg_id, fragments = frag.total(), size = inner.len(), "reassembled fragmented IKE message");
                    Opened::Reassembled(payloads)
                }
                Err(_) => {
                    self.frag.dropped += 1;
                    Opened::Drop
                }
            },
        }
    }

    fn transmit_all(&mut self, datagrams: Vec<Vec<u8>>) {
        for data in datagrams {
            self.transmits.push_back(Transmit {
                from: self.local,
                to: self.remote,
                data,
            });
        }
    }

    /// The peer sent message `msg` again after we answered it: resend our whole answer if it is the same
    /// request (identical bytes) or, fragmented, its authenticated fragment 1 (RFC 7383 §2.6.1: other
    /// fragments must not trigger a retransmission). Returns false when it was not such a retransmission.
    pub(crate) fn answer_retransmission(&mut self, msg: &Message<'_>) -> bool {
        let h = msg.header;
        let Some(r) = &self.last_response else {
            return false;
        };
        if r.msg_id != h.message_id {
            return false;
        }
        let identical = r.request == msg.bytes();
        let same = if identical {
            true
        } else {
            match msg.encrypted().ok().flatten() {
                Some(enc) if enc.fragment().is_some_and(|f| f.number() == 1) && self.frag.negotiated => {
                    self.decrypt(msg, &enc).is_some()
                }
                _ => false,
            }
        };
        if !same {
            return false;
        }
        let Some(r) = &self.last_response else {
            return false;
        };
        let datagrams = r.datagrams();
        self.transmit_all(datagrams);
        true
    }

    /// Send a new request now (the window must be free).
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        kind: RequestKind,
        exchange: ExchangeType,
        payloads: &[PayloadRepr],
    ) -> Option<Vec<u8>> {
        let msg_id = self.next_request_id;
        let packets = self.build_datagrams(exchange, msg_id, false, payloads)?;
        let first = packets.first()?.clone();
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.transmit_all(packets.clone());
        self.in_flight = Some(Request {
            kind,
            msg_id,
            exchange,
            payloads: payloads.to_vec(),
            packets,
            sent: 1,
        });
        if let Some(wait) = self.cfg.retransmit.timeout(0) {
            let wait = if kind == RequestKind::Init {
                super::INIT_RETRANSMIT
            } else {
                wait
            };
            self.timers.set(Timer::Retransmit, now + wait);
        }
        Some(first)
    }

    /// Answer the request `request` (message `msg_id`) and remember the answer for retransmissions.
    pub(crate) fn send_response(
        &mut self,
        exchange: ExchangeType,
        msg_id: u32,
        request: &[u8],
        payloads: &[PayloadRepr],
    ) -> Option<Vec<u8>> {
        let mut packets = self.build_datagrams(exchange, msg_id, true, payloads)?;
        let first = packets.first()?.clone();
        self.transmit_all(packets.clone());
        let (packet, fragments) = if packets.len() == 1 {
            (packets.pop().unwrap_or_default(), Vec::new())
        } else {
            (Vec::new(), packets)
        };
        self.last_response = Some(Responded {
            msg_id,
            request: request.to_vec(),
            packet,
            fragments,
        });
        Some(first)
    }

    pub(crate) fn on_retransmit_timer(&mut self, now: Instant) {
        let Some(req) = self.in_flight.as_mut() else {
            return;
        };
        // DPD has its own deadline (AWS's DpdTimeoutSeconds since we last heard the peer).
        let dpd_deadline = (req.kind == RequestKind::Dpd && !self.cfg.dpd_timeout.is_zero())
            .then(|| self.last_heard + self.cfg.dpd_timeout);
        if dpd_deadline.is_some_and(|d| now >= d) {
            let exchange = req.kind.exchange_name();
            self.fail(now, FailReason::PeerNotResponding { exchange });
            return;
        }
        match self.cfg.retransmit.timeout(req.sent) {
            Some(wait) => {
                // IKE_SA_INIT: one every INIT_RETRANSMIT, so a path restored while we retry is found
                // within that, and AWS gets no burst (RFC 7296 §2.4 leaves the schedule to us).
                let wait = if req.kind == RequestKind::Init {
                    super::INIT_RETRANSMIT
                } else {
                    wait
                };
                let wait = match dpd_deadline {
                    Some(d) => wait.min(d.saturating_duration_since(now)),
                    None => wait,
                };
                req.sent += 1;
                let (kind, tries) = (req.kind, req.sent);
                let mut packets = req.packets.clone();
                let two_ways = self.keys.as_ref().is_some_and(|k| k.untested.is_some());
                if two_ways && tries % 2 == 0 {
                    // Keyed two ways and the peer silent so far: every other try goes under the other
                    // keys, and its answer (opened under them) settles which keys the SA uses.
                    let (exchange, msg_id, payloads) = (req.exchange, req.msg_id, req.payloads.clone());
                    if let Some(Some(other)) =
                        self.with_untested_keys(|sa| sa.build_datagrams(exchange, msg_id, false, &payloads))
                    {
                        packets = other;
                    }
                }
                tracing::debug!(tunnel = %self.cfg.tunnel, exchange = kind.exchange_name(), try_no = tries, datagrams = packets.len(), "retransmitting");
                self.transmit_all(packets);
                self.timers.set(Timer::Retransmit, now + wait);
            }
            None => {
                let exchange = req.kind.exchange_name();
                if req.kind == RequestKind::DeleteIke {
                    self.finish();
                } else {
                    self.fail(now, FailReason::PeerNotResponding { exchange });
                }
            }
        }
    }

    /// Start the next queued request if the window is free.
    pub(crate) fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() || !matches!(self.state, State::Established | State::Deleting) {
            return;
        }
        let Some(kind) = self.queue.pop_front() else {
            return;
        };
        match kind {
            RequestKind::Dpd => {
                self.send_request(now, kind, ExchangeType::INFORMATIONAL, &[]);
            }
            RequestKind::DeleteIke => {
                let p = [PayloadRepr::Delete(crate::wire::ike::DeleteRepr::ike())];
                self.send_request(now, kind, ExchangeType::INFORMATIONAL, &p);
            }
            RequestKind::DeleteChild(spi) => {
                let p = [PayloadRepr::Delete(crate::wire::ike::DeleteRepr {
                    protocol: crate::wire::ike::ProtocolId::ESP,
                    spis: vec![spi],
                })];
                self.send_request(now, kind, ExchangeType::INFORMATIONAL, &p);
            }
            RequestKind::RekeyChild => self.start_child_rekey(now),
            RequestKind::RekeyIke => self.start_ike_rekey(now),
            RequestKind::Init | RequestKind::Auth => {}
        }
    }

    /// Entry point for every datagram. Returns false when it was dropped.
    pub(crate) fn receive(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) -> bool {
        let Ok(msg) = Message::parse(data) else {
            return false;
        };
        let h = msg.header;
        if let Some(used) = self.receive_on_other_ike(now, data, &msg) {
            return used;
        }
        if h.spi_i != self.spi_i {
            return false;
        }
        // The I flag says who sent it: it must be the other side.
        if h.flags.initiator() != (self.role == Role::Responder) {
            return false;
        }
        if h.exchange == ExchangeType::IKE_SA_INIT {
            return self.receive_init(now, from, to, &msg);
        }
        if h.spi_r != self.spi_r || self.keys.is_none() {
            return false;
        }
        if h.flags.response() {
            // A response answers our request in flight, in the same exchange: an INFORMATIONAL
            // "response" to our IKE_AUTH is no IKE_AUTH response.
            match &self.in_flight {
                Some(req) if req.msg_id == h.message_id && req.exchange == h.exchange => {}
                _ => return false,
            }
            let payloads = match self.open_or_reassemble(now, &msg, true) {
                Opened::Message(p) | Opened::Reassembled(p) => p,
                Opened::Pending => return true,
                Opened::Drop => return false,
            };
            let Some(req) = self.in_flight.take() else {
                return false;
            };
            self.timers.stop(Timer::Retransmit);
            self.heard(now);
            let inbound = Inbound {
                exchange: h.exchange,
                msg_id: h.message_id,
                payloads,
            };
            self.handle_response(now, req.kind, inbound);
        } else {
            if h.message_id.wrapping_add(1) == self.peer_next_id {
                // A retransmission of the request we answered last: same request, same answer.
                return self.answer_retransmission(&msg);
            }
            if h.message_id != self.peer_next_id {
                return false;
            }
            if !self.accepts_request(h.exchange) {
                // Before IKE_AUTH completes, the keys prove only that the sender did the DH with us,
                // not who it is: its DELETE or AUTHENTICATION_FAILED must not end the SA, and it
                // must not take the message ID the real IKE_AUTH needs. Dropped, counted.
                tracing::debug!(tunnel = %self.cfg.tunnel, exchange = ?h.exchange, state = ?self.state, "request before IKE_AUTH completed dropped");
                return false;
            }
            // A fragmented request is remembered by nothing but its message ID: its retransmission is
            // recognised by an authenticated fragment 1 (RFC 7383 §2.6.1), not by comparing bytes.
            let (payloads, raw) = match self.open_or_reassemble(now, &msg, false) {
                Opened::Message(p) => (p, data),
                Opened::Reassembled(p) => (p, &[][..]),
                Opened::Pending => return true,
                Opened::Drop => return false,
            };
            self.heard(now);
            // Authenticated: follow the peer to a new address/port (NAT-T floating to 4500, NAT rebinding).
            self.remote = from;
            self.local = to;
            self.peer_next_id = self.peer_next_id.wrapping_add(1);
            let inbound = Inbound {
                exchange: h.exchange,
                msg_id: h.message_id,
                payloads,
            };
            self.handle_request(now, raw, inbound);
        }
        self.pump(now);
        true
    }

    /// Whether a request of `exchange` from the peer is taken now: before the IKE SA is
    /// authenticated, only the IKE_AUTH request a responder waits for (RFC 7296 §1.2: nothing but
    /// IKE_AUTH follows IKE_SA_INIT; an initiator expects no request at all until it has verified the
    /// responder's AUTH).
    fn accepts_request(&self, exchange: ExchangeType) -> bool {
        match self.state {
            State::Established | State::Deleting => true,
            State::InitDone => exchange == ExchangeType::IKE_AUTH && self.role == Role::Responder,
            State::InitSent | State::AuthSent | State::Closed => false,
        }
    }

    /// Authenticated traffic from the peer: it is alive.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        if self.state == State::Established && !self.cfg.dpd_interval.is_zero() {
            self.timers.set(Timer::Dpd, now + self.cfg.dpd_interval);
        }
    }

    fn handle_response(&mut self, now: Instant, kind: RequestKind, inbound: Inbound) {
        match kind {
            RequestKind::Auth => self.process_auth_response(now, inbound),
            RequestKind::Dpd => {}
            RequestKind::DeleteIke => self.finish(),
            RequestKind::DeleteChild(spi) => self.child_deleted(spi),
            RequestKind::RekeyChild => self.process_child_rekey_response(now, inbound),
            RequestKind::RekeyIke => self.process_ike_rekey_response(now, inbound),
            RequestKind::Init => {}
        }
    }

    fn handle_request(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        match inbound.exchange {
            ExchangeType::IKE_AUTH if self.role == Role::Responder && self.state == State::InitDone => {
                self.process_auth_request(now, raw, inbound)
            }
            ExchangeType::INFORMATIONAL => self.process_informational(now, raw, inbound),
            ExchangeType::CREATE_CHILD_SA if matches!(self.state, State::Established | State::Deleting) => {
                self.process_create_child(now, raw, inbound)
            }
            _ => {
                // A request that does not fit our state (a repeated IKE_AUTH, an unknown exchange):
                // answer INVALID_SYNTAX so the peer's window moves on.
                let n = super::info::notify(crate::wire::ike::NotifyType::INVALID_SYNTAX, Vec::new());
                self.send_response(inbound.exchange, inbound.msg_id, raw, &[n]);
            }
        }
    }
}

/// Authenticate and decrypt an SK/SKF message under `recv`: the plaintext with its padding stripped.
fn open_sk(recv: &Cipher, bytes: &[u8], aad_len: usize) -> Option<Vec<u8>> {
    let mut buf = bytes.to_vec();
    recv.open(&mut buf, aad_len).ok()?;
    let start = aad_len + recv.iv_len();
    let end = buf.len().checked_sub(recv.icv_len())?;
    let plain = buf.get(start..end)?;
    Some(sk::strip_padding(plain).ok()?.to_vec())
}
