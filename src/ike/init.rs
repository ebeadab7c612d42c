//! IKE_SA_INIT (RFC 7296 §1.2, §2.6 cookies, §1.3 INVALID_KE_PAYLOAD, §2.23 NAT detection).
//!
//! ```text
//! Initiator                                   Responder
//! HDR, [N(COOKIE)], SAi1, KEi, Ni,
//!      N(NAT_D_SRC), N(NAT_D_DST)      -->
//!                                      <--    HDR, SAr1, KEr, Nr, N(NAT_D_SRC), N(NAT_D_DST)
//!                                      <--    or HDR, N(COOKIE) | N(INVALID_KE_PAYLOAD) | N(NO_PROPOSAL_CHOSEN)
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use super::message::{Keys, RequestKind};
use super::proposal::{Prefer, accept_ike_choice, first_guess, ike_offer, select_ike_with};
use super::timer::Timer;
use super::{FailReason, Handshake, IkeSa, Phase, RejectReason, Role, State};
use crate::crypto::cipher::Cipher;
use crate::crypto::{DhPrivate, derive_ike_keys};
use crate::secret::Secret;
use crate::suite::{DhGroup, Suite};
use crate::wire::ike::{ExchangeType, Message, NotifyRepr, NotifyType, PayloadRepr, SaRepr};

/// COOKIE and INVALID_KE_PAYLOAD answers we follow before giving up (a responder asking more is broken
/// or hostile).
const MAX_INIT_RETRIES: u32 = 3;
const NONCE_LEN: usize = 32;

pub(crate) fn notify(kind: NotifyType, data: Vec<u8>) -> PayloadRepr {
    PayloadRepr::Notify(NotifyRepr::new(kind, data))
}

pub(crate) fn find_notify(payloads: &[PayloadRepr], kind: NotifyType) -> Option<&NotifyRepr> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

/// The hashes of a SIGNATURE_HASH_ALGORITHMS notify among `payloads` (RFC 7427 §4): `None` when
/// there is none, or the first does not parse (odd or empty: as if absent).
pub(crate) fn peer_signature_hashes(
    payloads: &[PayloadRepr],
) -> Option<Vec<crate::wire::ike::HashAlgorithm>> {
    let n = find_notify(payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS)?;
    crate::wire::ike::cert::parse_signature_hash_algorithms(&n.data).ok()
}

/// The first error notify, if any.
pub(crate) fn first_error(payloads: &[PayloadRepr]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    })
}

impl IkeSa {
    pub(crate) fn start_initiator(&mut self, now: Instant) {
        self.spi_i = self.random_spi64();
        let Some(group) = first_guess(&self.cfg.ike, self.cfg.selection) else {
            self.fail(
                now,
                FailReason::NoProposalChosen {
                    phase: Phase::One,
                    by_peer: false,
                },
            );
            return;
        };
        let ni = self.random_bytes(NONCE_LEN);
        let child_spi = self.random_spi32();
        self.hs = Some(Handshake {
            ni,
            nr: Vec::new(),
            dh: None,
            group,
            cookie: None,
            init_request: Vec::new(),
            init_response: Vec::new(),
            child_spi,
            init_retries: 0,
            peer_hashes: None,
        });
        if self.new_dh(group).is_none() {
            self.fail(
                now,
                FailReason::Protocol {
                    what: format!("cannot generate a DH group {group} key"),
                },
            );
            return;
        }
        self.send_init_request(now);
    }

    fn new_dh(&mut self, group: DhGroup) -> Option<()> {
        let dh = DhPrivate::generate(group, &mut *self.rng).ok()?;
        let hs = self.hs.as_mut()?;
        hs.group = group;
        hs.dh = Some(dh);
        Some(())
    }

    fn send_init_request(&mut self, now: Instant) {
        let Some(hs) = self.hs.as_ref() else { return };
        let Some(dh) = hs.dh.as_ref() else { return };
        let mut payloads = Vec::with_capacity(6);
        if let Some(c) = &hs.cookie {
            payloads.push(notify(NotifyType::COOKIE, c.clone()));
        }
        let offer = ike_offer(&self.cfg.ike, &[], None);
        payloads.push(PayloadRepr::Sa(SaRepr {
            proposals: offer.iter().map(|p| p.to_repr()).collect(),
        }));
        payloads.push(PayloadRepr::Ke {
            group: hs.group.number(),
            data: dh.public_value().to_vec(),
        });
        payloads.push(PayloadRepr::Nonce(hs.ni.clone()));
        let fake_source = self.random_bytes(20);
        payloads.push(notify(NotifyType::NAT_DETECTION_SOURCE_IP, fake_source));
        payloads.push(notify(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            super::natd::hash(self.spi_i, 0, self.remote),
        ));
        if self.cfg.fragmentation.enabled {
            payloads.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, Vec::new()));
        }
        if self
            .cfg
            .certificate
            .as_ref()
            .is_some_and(|c| c.announce_signature_hashes)
        {
            // RFC 7427 §4: we sign and verify with these hashes.
            payloads.push(PayloadRepr::Notify(
                crate::wire::ike::cert::signature_hash_algorithms_notify(&crate::crypto::sig::HASHES),
            ));
        }
        self.next_request_id = 0;
        self.in_flight = None;
        if let Some(packet) = self.send_request(now, RequestKind::Init, ExchangeType::IKE_SA_INIT, &payloads)
            && let Some(hs) = self.hs.as_mut()
        {
            hs.init_request = packet;
        }
    }

    /// An IKE_SA_INIT message for an existing SA: the response (initiator) or a retransmitted request
    /// (responder).
    pub(crate) fn receive_init(
        &mut self,
        now: Instant,
        _from: SocketAddr,
        _to: SocketAddr,
        msg: &Message<'_>,
    ) -> bool {
        let h = msg.header;
        if h.message_id != 0 {
            return false;
        }
        if self.role == Role::Responder {
            if h.flags.response() {
                return false;
            }
            if let Some(r) = &self.last_response
                && r.msg_id == 0
                && r.request == msg.bytes()
            {
                let data = r.packet.clone();
                self.transmits.push_back(super::Transmit {
                    from: self.local,
                    to: self.remote,
                    data,
                });
                return true;
            }
            return false;
        }
        if !h.flags.response() || self.state != State::InitSent {
            return false;
        }
        if !matches!(&self.in_flight, Some(r) if r.kind == RequestKind::Init) {
            return false;
        }
        let Ok(payloads) = msg.payloads() else {
            return false;
        };
        self.process_init_response(now, msg, &payloads);
        true
    }

    /// A COOKIE or INVALID_KE_PAYLOAD answer our request in flight already follows: the cookie it
    /// carries, the group it uses. It answers an earlier attempt (a duplicated or delayed datagram:
    /// a duplicated first request draws two INVALID_KE_PAYLOADs, and the second arrives after the
    /// retry), so it is ignored and the retry's own answer awaited; acting on it would restart the
    /// exchange again or give up on a peer that asks for nothing new.
    fn stale_init_answer(&self, payloads: &[PayloadRepr]) -> bool {
        let Some(hs) = self.hs.as_ref().filter(|h| h.init_retries > 0) else {
            return false;
        };
        if let Some(c) = find_notify(payloads, NotifyType::COOKIE) {
            return hs.cookie.as_ref() == Some(&c.data);
        }
        find_notify(payloads, NotifyType::INVALID_KE_PAYLOAD).is_some_and(|n| {
            <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .map(u16::from_be_bytes)
                == Some(hs.group.number())
        })
    }

    fn process_init_response(&mut self, now: Instant, msg: &Message<'_>, payloads: &[PayloadRepr]) {
        let retries = self.hs.as_ref().map_or(0, |h| h.init_retries);
        if self.stale_init_answer(payloads) {
            tracing::debug!(tunnel = %self.cfg.tunnel, "IKE_SA_INIT answer to an earlier attempt ignored");
            return;
        }
        if let Some(c) = find_notify(payloads, NotifyType::COOKIE) {
            if retries >= MAX_INIT_RETRIES || c.data.is_empty() || c.data.len() > 64 {
                self.fail(
                    now,
                    FailReason::Protocol {
                        what: "the peer keeps demanding cookies".into(),
                    },
                );
                return;
            }
            if let Some(hs) = self.hs.as_mut() {
                hs.cookie = Some(c.data.clone());
                hs.init_retries += 1;
            }
            self.timers.stop(Timer::Retransmit);
            self.send_init_request(now);
            return;
        }
        if let Some(n) = find_notify(payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let wanted = <[u8; 2]>::try_from(n.data.as_slice())
                .map(u16::from_be_bytes)
                .unwrap_or(0);
            let current = self.hs.as_ref().map(|h| h.group.number());
            match DhGroup::new(wanted) {
                Some(g)
                    if self.cfg.ike.dh.contains(&g)
                        && Some(wanted) != current
                        && retries < MAX_INIT_RETRIES =>
                {
                    if let Some(hs) = self.hs.as_mut() {
                        hs.init_retries += 1;
                    }
                    if self.new_dh(g).is_none() {
                        self.fail(now, FailReason::InvalidKe { group: wanted });
                        return;
                    }
                    self.timers.stop(Timer::Retransmit);
                    self.send_init_request(now);
                }
                _ => self.fail(now, FailReason::InvalidKe { group: wanted }),
            }
            return;
        }
        if let Some(err) = first_error(payloads) {
            let reason = if err == NotifyType::NO_PROPOSAL_CHOSEN {
                FailReason::NoProposalChosen {
                    phase: Phase::One,
                    by_peer: true,
                }
            } else {
                FailReason::PeerError { notify: err.0 }
            };
            self.fail(now, reason);
            return;
        }
        let h = msg.header;
        let sa = payloads.iter().find_map(|p| match p {
            PayloadRepr::Sa(sa) => Some(sa),
            _ => None,
        });
        let ke = payloads.iter().find_map(|p| match p {
            PayloadRepr::Ke { group, data } => Some((*group, data.as_slice())),
            _ => None,
        });
        let nr = payloads.iter().find_map(|p| match p {
            PayloadRepr::Nonce(n) => Some(n.clone()),
            _ => None,
        });
        let (Some(sa), Some((group, ke_data)), Some(nr)) = (sa, ke, nr) else {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "IKE_SA_INIT response lacks SA, KE or Nonce".into(),
                },
            );
            return;
        };
        if h.spi_r == 0 {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "IKE_SA_INIT response with a zero SPI".into(),
                },
            );
            return;
        }
        let chosen: Vec<_> = sa
            .proposals
            .iter()
            .map(super::proposal::Proposal::from_repr)
            .collect();
        let suite = match accept_ike_choice(&chosen, &self.cfg.ike, None) {
            Ok(s) => s,
            Err(e) => {
                self.fail(
                    now,
                    FailReason::Protocol {
                        what: format!("phase 1 proposal: {e}"),
                    },
                );
                return;
            }
        };
        let Some(hs) = self.hs.as_mut() else { return };
        if suite.dh.map(DhGroup::number) != Some(group) || group != hs.group.number() {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "the peer's KE does not match the chosen DH group".into(),
                },
            );
            return;
        }
        let Some(shared) = hs.dh.as_ref().and_then(|dh| dh.shared_secret(ke_data).ok()) else {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "invalid DH public value from the peer".into(),
                },
            );
            return;
        };
        hs.nr = nr;
        hs.dh = None;
        hs.peer_hashes = peer_signature_hashes(payloads);
        hs.init_response = msg.bytes().to_vec();
        self.spi_r = h.spi_r;
        let hs = self.hs.as_ref().expect("checked above");
        let Some(keys) = make_keys(
            Role::Initiator,
            &suite,
            &hs.ni,
            &hs.nr,
            &shared,
            self.spi_i,
            self.spi_r,
        ) else {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "cannot derive keys".into(),
                },
            );
            return;
        };
        self.detect_nat(payloads, self.remote, self.local);
        self.frag.negotiated = self.cfg.fragmentation.enabled
            && find_notify(payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        self.keys = Some(keys);
        self.suite = Some(suite);
        self.in_flight = None;
        self.timers.stop(Timer::Retransmit);
        // NAT-T (RFC 7296 §2.23): everything after IKE_SA_INIT goes over port 4500, as if a NAT had been
        // detected, because cgwd always encapsulates ESP in UDP.
        self.local.set_port(self.cfg.local_ports.nat_t);
        self.remote.set_port(self.cfg.remote_ports.nat_t);
        self.send_auth_request(now);
    }

    /// Compare the peer's NAT-D hashes with what we see: `peer` sent it, `us` received it.
    fn detect_nat(&mut self, payloads: &[PayloadRepr], peer: SocketAddr, us: SocketAddr) {
        let spi_r = if self.role == Role::Responder {
            0
        } else {
            self.spi_r
        };
        let src_hash = super::natd::hash(self.spi_i, spi_r, peer);
        let dst_hash = super::natd::hash(self.spi_i, spi_r, us);
        let mut any_src = false;
        let mut src_match = false;
        for p in payloads {
            if let PayloadRepr::Notify(n) = p {
                if n.kind == NotifyType::NAT_DETECTION_SOURCE_IP {
                    any_src = true;
                    src_match |= n.data == src_hash;
                } else if n.kind == NotifyType::NAT_DETECTION_DESTINATION_IP {
                    self.nat_local = n.data != dst_hash;
                }
            }
        }
        self.nat_remote = any_src && !src_match;
    }

    pub(crate) fn start_responder(&mut self, now: Instant, first: &[u8]) -> Result<(), RejectReason> {
        let msg = Message::parse(first).map_err(RejectReason::Malformed)?;
        let h = msg.header;
        if h.exchange != ExchangeType::IKE_SA_INIT {
            return Err(RejectReason::NotInitRequest("wrong exchange type"));
        }
        if h.flags.response() || !h.flags.initiator() || h.message_id != 0 || h.spi_r != 0 || h.spi_i == 0 {
            return Err(RejectReason::NotInitRequest("wrong flags, message ID or SPIs"));
        }
        let payloads = msg.payloads().map_err(RejectReason::Malformed)?;
        self.spi_i = h.spi_i;
        self.peer_next_id = 1;
        self.state = State::InitDone;
        let (from, to) = (self.remote, self.local);

        let sa = payloads.iter().find_map(|p| match p {
            PayloadRepr::Sa(sa) => Some(sa),
            _ => None,
        });
        let ke = payloads.iter().find_map(|p| match p {
            PayloadRepr::Ke { group, data } => Some((*group, data.clone())),
            _ => None,
        });
        let ni = payloads.iter().find_map(|p| match p {
            PayloadRepr::Nonce(n) => Some(n.clone()),
            _ => None,
        });
        let (Some(sa), Some((ke_group, ke_data)), Some(ni)) = (sa, ke, ni) else {
            return Err(RejectReason::NotInitRequest("missing SA, KE or Nonce"));
        };

        // A fixed secret always demands a cookie; the daemon's guard only while it is busy.
        let returned = find_notify(&payloads, NotifyType::COOKIE).map(|c| c.data.clone());
        let demand = if let Some(secret) = &self.cfg.cookie_secret {
            let expected = super::cookie::cookie_for(secret, None, &ni, from, self.spi_i);
            let ok = returned
                .as_ref()
                .is_some_and(|c| crate::crypto::auth_eq(c, &expected));
            (!ok).then_some(expected)
        } else if let Some(guard) = self.cfg.cookies.clone()
            && guard.busy(now)
        {
            let ok = returned
                .as_ref()
                .is_some_and(|c| guard.valid(now, &mut *self.rng, c, &ni, from, self.spi_i));
            (!ok).then(|| guard.cookie(now, &mut *self.rng, &ni, from, self.spi_i))
        } else {
            None
        };
        if let Some(expected) = demand {
            // Stateless: nothing kept, the initiator comes back with the cookie.
            self.send_response(
                ExchangeType::IKE_SA_INIT,
                0,
                first,
                &[notify(NotifyType::COOKIE, expected)],
            );
            self.last_response = None;
            self.state = State::Closed;
            return Ok(());
        }

        let offered: Vec<_> = sa
            .proposals
            .iter()
            .map(super::proposal::Proposal::from_repr)
            .collect();
        let prefer = Prefer {
            prf: None,
            ke: self.acceptable_ke(ke_group),
        };
        let Some((chosen, suite)) = select_ike_with(&offered, &self.cfg.ike, self.cfg.selection, prefer)
        else {
            self.send_response(
                ExchangeType::IKE_SA_INIT,
                0,
                first,
                &[notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())],
            );
            self.fail(
                now,
                FailReason::NoProposalChosen {
                    phase: Phase::One,
                    by_peer: false,
                },
            );
            return Ok(());
        };
        let Some(group) = suite.dh else {
            return Err(RejectReason::NotInitRequest("no DH group"));
        };
        if ke_group != group.number() {
            let data = group.number().to_be_bytes().to_vec();
            self.send_response(
                ExchangeType::IKE_SA_INIT,
                0,
                first,
                &[notify(NotifyType::INVALID_KE_PAYLOAD, data)],
            );
            self.last_response = None;
            self.state = State::Closed;
            return Ok(());
        }
        // A KE value that cannot be right costs us no DH work (RFC 6989's checks, cheap half first):
        // refused statelessly, like a wrong group.
        let shared = match crate::crypto::check_peer_value(group, &ke_data) {
            Ok(()) => DhPrivate::generate(group, &mut *self.rng)
                .ok()
                .and_then(|dh| dh.shared_secret(&ke_data).ok().map(|s| (dh, s))),
            Err(_) => None,
        };
        let Some((dh, shared)) = shared else {
            self.send_response(
                ExchangeType::IKE_SA_INIT,
                0,
                first,
                &[notify(NotifyType::INVALID_SYNTAX, Vec::new())],
            );
            self.last_response = None;
            self.state = State::Closed;
            return Ok(());
        };
        self.spi_r = self.random_spi64();
        let nr = self.random_bytes(NONCE_LEN);
        let Some(keys) = make_keys(Role::Responder, &suite, &ni, &nr, &shared, self.spi_i, self.spi_r) else {
            return Err(RejectReason::NotInitRequest("key derivation failed"));
        };
        self.detect_nat(&payloads, from, to);
        let fake_source = self.random_bytes(20);
        // RFC 7383 §2.3: offered back only to an initiator that offered it.
        self.frag.negotiated = self.cfg.fragmentation.enabled
            && find_notify(&payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let mut response = vec![
            PayloadRepr::Sa(SaRepr {
                proposals: vec![chosen.to_repr()],
            }),
            PayloadRepr::Ke {
                group: group.number(),
                data: dh.public_value().to_vec(),
            },
            PayloadRepr::Nonce(nr.clone()),
            notify(NotifyType::NAT_DETECTION_SOURCE_IP, fake_source),
            notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                super::natd::hash(self.spi_i, self.spi_r, from),
            ),
        ];
        if self.frag.negotiated {
            response.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, Vec::new()));
        }
        if let Some(c) = &self.cfg.certificate {
            if c.announce_signature_hashes {
                response.push(PayloadRepr::Notify(
                    crate::wire::ike::cert::signature_hash_algorithms_notify(&crate::crypto::sig::HASHES),
                ));
            }
            response.push(super::auth::certreq(c));
        }
        let child_spi = self.random_spi32();
        let Some(packet) = self.send_response(ExchangeType::IKE_SA_INIT, 0, first, &response) else {
            return Err(RejectReason::NotInitRequest("cannot encode the response"));
        };
        self.keys = Some(keys);
        self.suite = Some(suite);
        self.hs = Some(Handshake {
            ni,
            nr,
            dh: None,
            group,
            cookie: None,
            init_request: first.to_vec(),
            init_response: packet,
            child_spi,
            init_retries: 0,
            peer_hashes: peer_signature_hashes(&payloads),
        });
        // A half-open SA does not live forever, and counts towards the cookie threshold meanwhile.
        let until = now + self.cfg.retransmit.give_up_after();
        self.timers.set(Timer::Establish, until);
        self.half_open = self.cfg.cookies.as_ref().map(|g| g.open(now, until));
        Ok(())
    }
}

pub(crate) fn make_keys(
    role: Role,
    suite: &Suite,
    ni: &[u8],
    nr: &[u8],
    shared: &Secret,
    spi_i: u64,
    spi_r: u64,
) -> Option<Keys> {
    let prf_alg = suite.prf?;
    let k = derive_ike_keys(
        prf_alg,
        suite.encryption,
        suite.integrity,
        ni,
        nr,
        shared.expose(),
        spi_i,
        spi_r,
    );
    keys_from(role, suite, k)
}

/// Orient derived IKE keys: `role` is ours in the (possibly rekeyed) IKE SA they belong to.
pub(crate) fn keys_from(role: Role, suite: &Suite, k: crate::crypto::IkeKeys) -> Option<Keys> {
    let prf_alg = suite.prf?;
    let ci = Cipher::new(
        suite.encryption,
        suite.integrity,
        k.sk_ei.expose(),
        k.sk_ai.expose(),
    )
    .ok()?;
    let cr = Cipher::new(
        suite.encryption,
        suite.integrity,
        k.sk_er.expose(),
        k.sk_ar.expose(),
    )
    .ok()?;
    let (send, recv) = match role {
        Role::Initiator => (ci, cr),
        Role::Responder => (cr, ci),
    };
    Some(Keys {
        prf: prf_alg,
        sk_d: k.sk_d,
        sk_pi: k.sk_pi,
        sk_pr: k.sk_pr,
        send,
        recv,
        iv_counter: 0,
        untested: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ike::HashAlgorithm;

    fn with(data: Vec<u8>) -> Vec<PayloadRepr> {
        vec![
            PayloadRepr::Nonce(vec![1; 32]),
            notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, data),
        ]
    }

    #[test]
    fn the_peers_signature_hashes_are_recorded_and_hostile_ones_count_as_absent() {
        assert_eq!(peer_signature_hashes(&[PayloadRepr::Nonce(vec![1; 32])]), None);
        assert_eq!(
            peer_signature_hashes(&with(vec![0, 3, 0, 4])),
            Some(vec![HashAlgorithm::SHA2_384, HashAlgorithm::SHA2_512])
        );
        // Unknown numbers are kept (and ignored when choosing).
        assert_eq!(
            peer_signature_hashes(&with(vec![0xff, 0xff])),
            Some(vec![HashAlgorithm(0xffff)])
        );
        // Odd or empty: as if the peer had not announced RFC 7427.
        assert_eq!(peer_signature_hashes(&with(vec![0, 2, 0])), None);
        assert_eq!(peer_signature_hashes(&with(Vec::new())), None);
        // Huge: bounded, no panic.
        let huge = peer_signature_hashes(&with([0, 2].repeat(30_000))).unwrap();
        assert_eq!(huge.len(), 32);
    }
}
