//! The message layer: build and protect messages (SK payload, RFC 7296 §3.14 / RFC 5282), track message
//! IDs (a window of one, §2.3), retransmit our request with exponential backoff (§2.1), answer a
//! retransmitted request from the cached response (§2.1), and start queued requests one at a time.

use std::net::SocketAddr;
use std::time::Instant;

use super::timer::Timer;
use super::{FailReason, IkeSa, Role, State, Transmit};
use crate::crypto::cipher::Cipher;
use crate::secret::Secret;
use crate::suite::Integrity;
use crate::wire::ike::{
    ExchangeType, Flags, HeaderRepr, Message, PayloadRepr, PayloadType, emit_message, emit_payloads,
    parse_payloads, sk,
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
    pub packet: Vec<u8>,
    /// Transmissions so far (1 after the first send).
    pub sent: u32,
}

/// Our last response and the request it answered (for retransmitted requests).
pub(crate) struct Responded {
    pub msg_id: u32,
    pub request: Vec<u8>,
    pub packet: Vec<u8>,
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
        let keys = self.keys.as_mut()?;
        let params = sk::SkParams {
            iv_len: keys.send.iv_len(),
            icv_len: keys.send.icv_len(),
            block_len: keys.send.block_len(),
        };
        let layout = sk::emit_sk_message(&header, first, &inner, params, &mut out).ok()?;
        if keys.send.encryption().is_aead() {
            // GCM: a counter, unique under this key (RFC 5282 §3.1 only asks for uniqueness).
            keys.iv_counter += 1;
            keys.send
                .write_iv(keys.iv_counter, &mut out[layout.iv.clone()])
                .ok()?;
        } else {
            // CBC: unpredictable (RFC 7296 §3.14), from our seeded-or-OS Random.
            self.rng.fill(&mut out[layout.iv.clone()]);
        }
        let keys = self.keys.as_ref()?;
        keys.send
            .seal(&mut out[layout.message.clone()], layout.aad_len)
            .ok()?;
        Some(out)
    }

    /// Decrypt and authenticate a message's SK payload. `None` = drop it (forged, corrupted, or no SK).
    pub(crate) fn open(&self, msg: &Message<'_>) -> Option<Vec<PayloadRepr>> {
        let keys = self.keys.as_ref()?;
        let enc = msg.encrypted().ok()??;
        if enc.kind() != PayloadType::SK {
            return None; // fragmentation is not negotiated
        }
        let aad_len = enc.aad_len();
        let mut buf = msg.bytes().to_vec();
        keys.recv.open(&mut buf, aad_len).ok()?;
        let start = aad_len + keys.recv.iv_len();
        let end = buf.len().checked_sub(keys.recv.icv_len())?;
        let plain = buf.get(start..end)?;
        let inner = sk::strip_padding(plain).ok()?;
        parse_payloads(enc.inner_first(), inner).ok()
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
        let packet = self.build(exchange, msg_id, false, payloads)?;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.transmits.push_back(Transmit {
            from: self.local,
            to: self.remote,
            data: packet.clone(),
        });
        self.in_flight = Some(Request {
            kind,
            msg_id,
            packet: packet.clone(),
            sent: 1,
        });
        if let Some(wait) = self.cfg.retransmit.timeout(0) {
            self.timers.set(Timer::Retransmit, now + wait);
        }
        Some(packet)
    }

    /// Answer the request `request` (message `msg_id`) and remember the answer for retransmissions.
    pub(crate) fn send_response(
        &mut self,
        exchange: ExchangeType,
        msg_id: u32,
        request: &[u8],
        payloads: &[PayloadRepr],
    ) -> Option<Vec<u8>> {
        let packet = self.build(exchange, msg_id, true, payloads)?;
        self.transmits.push_back(Transmit {
            from: self.local,
            to: self.remote,
            data: packet.clone(),
        });
        self.last_response = Some(Responded {
            msg_id,
            request: request.to_vec(),
            packet: packet.clone(),
        });
        Some(packet)
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
                let wait = match dpd_deadline {
                    Some(d) => wait.min(d.saturating_duration_since(now)),
                    None => wait,
                };
                req.sent += 1;
                let data = req.packet.clone();
                tracing::debug!(tunnel = %self.cfg.tunnel, exchange = req.kind.exchange_name(), try_no = req.sent, "retransmitting");
                self.transmits.push_back(Transmit {
                    from: self.local,
                    to: self.remote,
                    data,
                });
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
            match &self.in_flight {
                Some(req) if req.msg_id == h.message_id => {}
                _ => return false,
            }
            let Some(payloads) = self.open(&msg) else {
                return false;
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
                // A retransmission of the request we answered last: same bytes, same answer.
                if let Some(r) = &self.last_response
                    && r.msg_id == h.message_id
                    && r.request == data
                {
                    let data = r.packet.clone();
                    self.transmits.push_back(Transmit {
                        from: self.local,
                        to: self.remote,
                        data,
                    });
                    return true;
                }
                return false;
            }
            if h.message_id != self.peer_next_id {
                return false;
            }
            let Some(payloads) = self.open(&msg) else {
                return false;
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
            self.handle_request(now, data, inbound);
        }
        self.pump(now);
        true
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
