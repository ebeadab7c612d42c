//! IKE_AUTH with a pre-shared key and the first Child SA (RFC 7296 §1.2, §2.15, §2.9 narrowing).
//!
//! ```text
//! Initiator                                   Responder
//! HDR, SK {IDi, [N(INITIAL_CONTACT)], AUTH,
//!          SAi2, TSi, TSr}             -->
//!                                      <--    HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//!                                      <--    or HDR, SK {N(AUTHENTICATION_FAILED)}
//!                                      <--    or HDR, SK {IDr, AUTH, N(NO_PROPOSAL_CHOSEN | TS_UNACCEPTABLE)}
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::init::{find_notify, first_error, notify};
use super::message::{Inbound, RequestKind};
use super::proposal::{PfsMode, accept_esp_choice, esp_offer, select_esp_with};
use super::timer::Timer;
use super::{ChildState, Event, FailReason, IkeSa, Phase, Role, State};
use crate::crypto::{auth_eq, derive_child_keys, psk_auth};
use crate::sa::{ChildSa, EspKeys, EspSpi, TrafficSelector};
use crate::suite::Suite;
use crate::wire::ike::{AuthMethod, ExchangeType, IdRepr, IdType, NotifyType, PayloadRepr, SaRepr};

fn our_id(addr: IpAddr) -> IdRepr {
    IdRepr::from_ip(addr)
}

fn find_id(payloads: &[PayloadRepr], initiator: bool) -> Option<&IdRepr> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::IdI(id) if initiator => Some(id),
        PayloadRepr::IdR(id) if !initiator => Some(id),
        _ => None,
    })
}

fn find_auth(payloads: &[PayloadRepr]) -> Option<(AuthMethod, &[u8])> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::Auth { method, data } => Some((*method, data.as_slice())),
        _ => None,
    })
}

pub(crate) fn find_sa(payloads: &[PayloadRepr]) -> Option<&SaRepr> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::Sa(sa) => Some(sa),
        _ => None,
    })
}

pub(crate) fn find_ts(payloads: &[PayloadRepr], initiator: bool) -> Option<&[crate::wire::ike::TsRepr]> {
    payloads.iter().find_map(|p| match p {
        PayloadRepr::TsI(t) if initiator => Some(t.as_slice()),
        PayloadRepr::TsR(t) if !initiator => Some(t.as_slice()),
        _ => None,
    })
}

/// The CERTREQ naming the CAs `c` trusts (RFC 7296 §3.7).
pub(crate) fn certreq(c: &super::config::CertAuth) -> PayloadRepr {
    let hashes: Vec<_> =
        c.ca.iter()
            .filter_map(|d| crate::crypto::sig::ca_key_hash(d))
            .collect();
    crate::wire::ike::cert::certreq_payload(&hashes)
}

fn cert_fail(e: crate::crypto::sig::CertError) -> FailReason {
    FailReason::PeerCertificate { why: e.to_string() }
}

fn id_text(id: &IdRepr) -> String {
    match id.ip() {
        Some(ip) => ip.to_string(),
        None => format!("an ID of type {}", id.id_type.0),
    }
}

impl IkeSa {
    /// Our identity: the certificate's subject DN, else our IPv4 address.
    fn own_id(&self) -> IdRepr {
        match &self.cfg.certificate {
            Some(c) => IdRepr {
                id_type: IdType::ID_DER_ASN1_DN,
                data: c.subject_dn.clone(),
            },
            None => our_id(self.cfg.local_id),
        }
    }

    /// Our AUTH over `signed | nonce | prf(sk_p, id)`: the PSK MAC, or a signature (then with our
    /// CERT before it). `None` if signing fails.
    fn own_auth(&self, signed: &[u8], nonce: &[u8], sk_p: &[u8], id: &IdRepr) -> Option<Vec<PayloadRepr>> {
        let prf = self.keys.as_ref()?.prf;
        match &self.cfg.certificate {
            None => {
                let auth = psk_auth(prf, self.cfg.psk.expose(), signed, nonce, sk_p, &id.body_bytes());
                Some(vec![PayloadRepr::Auth {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data: auth.expose().to_vec(),
                }])
            }
            Some(c) => {
                use crate::crypto::sig;
                let octets = sig::signed_octets(prf, signed, nonce, sk_p, &id.body_bytes());
                let peer_hashes = self.hs.as_ref()?.peer_hashes.as_deref();
                let how = sig::choose_auth(&c.key, peer_hashes);
                let auth = sig::sign(&c.key, how, &octets)?;
                // Once per IKE SA: our AUTH is built once, for the one IKE_AUTH exchange.
                tracing::debug!(tunnel = %self.cfg.tunnel, method = %how.describe(), "signing our AUTH");
                if matches!(how, sig::OwnAuth::Classic(_)) {
                    let why = if peer_hashes.is_some() {
                        "announced no hash our key signs with (RFC 7427 SIGNATURE_HASH_ALGORITHMS)"
                    } else {
                        "did not announce RFC 7427 signature authentication (no SIGNATURE_HASH_ALGORITHMS)"
                    };
                    tracing::info!(
                        tunnel = %self.cfg.tunnel,
                        method = %how.describe(),
                        "the peer {why}: signing our AUTH with the classic method"
                    );
                }
                // Our certificate, then the subordinate CAs of our chain (not self-signed roots,
                // which the peer must have), so a peer trusting only the root can build the path.
                let mut out = vec![crate::wire::ike::cert::cert_payload(&c.certificate)];
                out.extend(
                    c.ca.iter()
                        .filter(|d| crate::crypto::sig::is_subordinate_ca(d))
                        .map(|d| crate::wire::ike::cert::cert_payload(d)),
                );
                out.push(auth);
                Some(out)
            }
        }
    }

    pub(crate) fn send_auth_request(&mut self, now: Instant) {
        let (Some(hs), Some(keys)) = (self.hs.as_ref(), self.keys.as_ref()) else {
            return;
        };
        let id = self.own_id();
        let Some(mut auth) = self.own_auth(&hs.init_request, &hs.nr, keys.sk_pi.expose(), &id) else {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "signing our AUTH failed".into(),
                },
            );
            return;
        };
        let mut payloads = vec![PayloadRepr::IdI(id)];
        // CERT(s) right after IDi, CERTREQ before AUTH (RFC 7296 §1.2).
        let last = auth.len().saturating_sub(1);
        payloads.extend(auth.drain(..last));
        if self.cfg.initial_contact {
            payloads.push(notify(NotifyType::INITIAL_CONTACT, Vec::new()));
        }
        if let Some(c) = &self.cfg.certificate {
            payloads.push(certreq(c));
        }
        payloads.extend(auth);
        payloads.push(PayloadRepr::Sa(SaRepr {
            proposals: esp_offer(&self.cfg.esp, hs.child_spi, false)
                .iter()
                .map(|p| p.to_repr())
                .collect(),
        }));
        payloads.push(PayloadRepr::TsI(super::ts::to_wire(&self.cfg.local_ts)));
        payloads.push(PayloadRepr::TsR(super::ts::to_wire(&self.cfg.remote_ts)));
        self.state = State::AuthSent;
        self.send_request(now, RequestKind::Auth, ExchangeType::IKE_AUTH, &payloads);
    }

    /// Does `id` + `auth` prove the peer knows our PSK? `signed` is the peer's IKE_SA_INIT message and
    /// `nonce` ours.
    fn verify_peer(
        &self,
        id: &IdRepr,
        payloads: &[PayloadRepr],
        peer_is_initiator: bool,
    ) -> Result<(), FailReason> {
        let auth = find_auth(payloads);
        if let Some(c) = &self.cfg.certificate {
            return self.verify_peer_certificate(c, id, payloads, auth, peer_is_initiator);
        }
        let expected_id = our_id(self.cfg.remote_id);
        if id.id_type != expected_id.id_type || id.data != expected_id.data {
            return Err(FailReason::PeerIdMismatch { got: id_text(id) });
        }
        let (Some(hs), Some(keys)) = (self.hs.as_ref(), self.keys.as_ref()) else {
            return Err(FailReason::Protocol {
                what: "no handshake state".into(),
            });
        };
        let Some((AuthMethod::SHARED_KEY_MIC, data)) = auth else {
            return Err(FailReason::PeerAuthInvalid);
        };
        let (signed, nonce, sk_p) = if peer_is_initiator {
            (&hs.init_request, &hs.nr, &keys.sk_pi)
        } else {
            (&hs.init_response, &hs.ni, &keys.sk_pr)
        };
        let expected = psk_auth(
            keys.prf,
            self.cfg.psk.expose(),
            signed,
            nonce,
            sk_p.expose(),
            &id.body_bytes(),
        );
        if auth_eq(expected.expose(), data) {
            Ok(())
        } else {
            Err(FailReason::PeerAuthInvalid)
        }
    }

    /// [`Self::verify_peer`] by certificate: the peer's CERT chains to our CA and is valid now, its
    /// ID names the certificate, and its AUTH is a signature by the certificate's key.
    fn verify_peer_certificate(
        &self,
        c: &super::config::CertAuth,
        id: &IdRepr,
        payloads: &[PayloadRepr],
        auth: Option<(AuthMethod, &[u8])>,
        peer_is_initiator: bool,
    ) -> Result<(), FailReason> {
        use crate::crypto::sig;
        // The first CERT is the peer's own (RFC 7296 §3.6); any others, CA certificates of its chain.
        let mut certs = payloads.iter().filter_map(crate::wire::ike::cert::x509_cert);
        let der = certs
            .next()
            .ok_or_else(|| cert_fail(sig::CertError::NoCertificate))?;
        let intermediates: Vec<&[u8]> = certs.collect();
        sig::verify_certificate(der, &intermediates, &c.ca, (c.wall_clock)()).map_err(cert_fail)?;
        sig::check_identity(der, id).map_err(cert_fail)?;
        let (Some(hs), Some(keys)) = (self.hs.as_ref(), self.keys.as_ref()) else {
            return Err(FailReason::Protocol {
                what: "no handshake state".into(),
            });
        };
        let (method, data) = auth.ok_or(FailReason::PeerAuthInvalid)?;
        let (signed, nonce, sk_p) = if peer_is_initiator {
            (&hs.init_request, &hs.nr, &keys.sk_pi)
        } else {
            (&hs.init_response, &hs.ni, &keys.sk_pr)
        };
        let octets = sig::signed_octets(keys.prf, signed, nonce, sk_p.expose(), &id.body_bytes());
        sig::verify_auth(der, method, data, &octets).map_err(cert_fail)
    }

    pub(crate) fn process_auth_response(&mut self, now: Instant, inbound: Inbound) {
        let p = &inbound.payloads;
        let Some(idr) = find_id(p, false) else {
            let reason = match first_error(p) {
                Some(NotifyType::AUTHENTICATION_FAILED) if self.cfg.certificate.is_some() => {
                    FailReason::PeerRejectedCertificate
                }
                Some(NotifyType::AUTHENTICATION_FAILED) => FailReason::PeerRejectedAuth,
                Some(NotifyType::NO_PROPOSAL_CHOSEN) => FailReason::NoProposalChosen {
                    phase: Phase::Two,
                    by_peer: true,
                },
                Some(NotifyType::TS_UNACCEPTABLE) => FailReason::TsUnacceptable { by_peer: true },
                Some(n) => FailReason::PeerError { notify: n.0 },
                None => FailReason::Protocol {
                    what: "IKE_AUTH response without IDr".into(),
                },
            };
            self.fail(now, reason);
            return;
        };
        if let Err(reason) = self.verify_peer(idr, p, false) {
            // RFC 7296 §2.21.2: tell the responder in a separate INFORMATIONAL (sent once, no answer
            // awaited), so it does not keep an SA we will never use.
            let n = [notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())];
            let id = self.next_request_id;
            if let Some(packet) = self.build(ExchangeType::INFORMATIONAL, id, false, &n) {
                self.transmits.push_back(super::Transmit {
                    from: self.local,
                    to: self.remote,
                    data: packet,
                });
            }
            self.fail(now, reason);
            return;
        }
        self.established(now);

        // The first Child SA.
        let child_error = match first_error(p) {
            Some(NotifyType::NO_PROPOSAL_CHOSEN) => Some(FailReason::NoProposalChosen {
                phase: Phase::Two,
                by_peer: true,
            }),
            Some(NotifyType::TS_UNACCEPTABLE) => Some(FailReason::TsUnacceptable { by_peer: true }),
            Some(n) => Some(FailReason::PeerError { notify: n.0 }),
            None => None,
        };
        let result = match child_error {
            Some(e) => Err(e),
            None => self.accept_first_child(p),
        };
        match result {
            Ok(child) => self.child_up(child),
            Err(reason) => {
                let f = self.failure(reason);
                tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "Child SA failed");
                self.events.push_back(Event::ChildFailed(f));
                // An AWS tunnel without its Child SA carries nothing: delete the IKE SA.
                self.close(now);
            }
        }
    }

    fn accept_first_child(&mut self, p: &[PayloadRepr]) -> Result<ChildSa, FailReason> {
        let protocol = |what: &str| FailReason::Protocol {
            what: what.to_string(),
        };
        let sa = find_sa(p).ok_or_else(|| protocol("IKE_AUTH response lacks SAr2"))?;
        let chosen: Vec<_> = sa
            .proposals
            .iter()
            .map(super::proposal::Proposal::from_repr)
            .collect();
        let (suite, peer_spi) =
            accept_esp_choice(&chosen, &self.cfg.esp, PfsMode::Ignore).map_err(|e| FailReason::Protocol {
                what: format!("phase 2 proposal: {e}"),
            })?;
        let tsi = find_ts(p, true).and_then(|t| super::ts::from_wire_list(t, &self.cfg.local_ts));
        let tsr = find_ts(p, false).and_then(|t| super::ts::from_wire_list(t, &self.cfg.remote_ts));
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return Err(protocol(
                "IKE_AUTH response lacks traffic selectors of the tunnel's IP version",
            ));
        };
        if !super::ts::contains(&self.cfg.local_ts, &tsi) || !super::ts::contains(&self.cfg.remote_ts, &tsr) {
            return Err(protocol("the peer widened the traffic selectors"));
        }
        if find_notify(p, NotifyType::USE_TRANSPORT_MODE).is_some() {
            return Err(protocol("the peer wants transport mode"));
        }
        let our_spi = self.hs.as_ref().map_or(0, |h| h.child_spi);
        Ok(self.child_sa(suite, our_spi, peer_spi, tsi, tsr))
    }

    /// The first Child SA, keyed from SK_d and the IKE_SA_INIT nonces (no PFS in IKE_AUTH).
    fn child_sa(
        &self,
        suite: Suite,
        our_spi: u32,
        peer_spi: u32,
        local_ts: TrafficSelector,
        remote_ts: TrafficSelector,
    ) -> ChildSa {
        let (keys, hs) = (
            self.keys.as_ref().expect("keyed"),
            self.hs.as_ref().expect("handshake"),
        );
        let k = derive_child_keys(
            keys.prf,
            keys.sk_d.expose(),
            None,
            &hs.ni,
            &hs.nr,
            suite.encryption,
            suite.integrity,
        );
        let we_initiated = self.role == Role::Initiator;
        self.orient_child(suite, our_spi, peer_spi, local_ts, remote_ts, k, we_initiated)
    }

    /// Turn negotiated keys into a [`ChildSa`] from our point of view; `we_initiated` = we sent the
    /// request that created it (its "initiator" keys are then our outbound keys).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn orient_child(
        &self,
        suite: Suite,
        our_spi: u32,
        peer_spi: u32,
        local_ts: TrafficSelector,
        remote_ts: TrafficSelector,
        k: crate::crypto::ChildKeys,
        we_initiated: bool,
    ) -> ChildSa {
        let (out_keys, in_keys) = if we_initiated {
            (k.initiator_to_responder, k.responder_to_initiator)
        } else {
            (k.responder_to_initiator, k.initiator_to_responder)
        };
        let esp = |spi: u32, (enc, integ): (crate::secret::Secret, crate::secret::Secret)| EspKeys {
            spi: EspSpi(spi),
            encryption: suite.encryption,
            integrity: suite.integrity,
            encryption_key: enc,
            integrity_key: integ,
        };
        // ESP always goes in UDP to the NAT-T port, even if IKE had not floated yet.
        let mut local = self.local;
        local.set_port(self.cfg.local_ports.nat_t);
        let remote = self.esp_remote();
        ChildSa {
            tunnel: self.cfg.tunnel,
            inbound: esp(our_spi, in_keys),
            outbound: esp(peer_spi, out_keys),
            local_ts,
            remote_ts,
            pfs: suite.dh,
            local,
            remote,
            replay_window: self.cfg.replay_window,
        }
    }

    /// Where ESP goes: the peer's IKE address, on the NAT-T port even if IKE had not floated yet.
    pub(crate) fn esp_remote(&self) -> SocketAddr {
        if self.remote.port() == self.cfg.remote_ports.ike {
            SocketAddr::new(self.remote.ip(), self.cfg.remote_ports.nat_t)
        } else {
            self.remote
        }
    }

    fn established(&mut self, now: Instant) {
        self.state = State::Established;
        self.timers.stop(Timer::Establish);
        self.events.push_back(Event::Established);
        tracing::info!(tunnel = %self.cfg.tunnel, suite = ?self.suite, "IKE SA established");
        self.heard(now);
        let delay = self.rekey_delay(self.cfg.ike_lifetime);
        self.timers.set(Timer::IkeRekey, now + delay);
        self.timers.set(Timer::IkeExpire, now + self.cfg.ike_lifetime);
    }

    pub(crate) fn child_up(&mut self, child: ChildSa) {
        let state = self.child_state(&child, true);
        self.children.push(state);
        self.arm_child_expiry();
        let delay = self.rekey_delay(self.cfg.child_lifetime);
        self.timers.set(Timer::ChildRekey, self.last_heard + delay);
        tracing::info!(tunnel = %self.cfg.tunnel, inbound = %child.inbound.spi, outbound = %child.outbound.spi, "Child SA up");
        self.events.push_back(Event::ChildUp(child));
    }

    /// A Child SA that lost a rekey collision (RFC 7296 §2.8.1): kept (oldest first, so it is never taken
    /// for the current one) only until its DELETE completes, and never announced to the data plane.
    pub(crate) fn child_redundant(&mut self, child: ChildSa) {
        let state = self.child_state(&child, false);
        self.children.insert(0, state);
        self.arm_child_expiry();
        tracing::info!(tunnel = %self.cfg.tunnel, inbound = %child.inbound.spi, outbound = %child.outbound.spi, "redundant Child SA of a rekey collision, not installed");
    }

    /// The new SA of the peer's rekey: inbound installed now, outbound once the peer deletes the old
    /// SA (an ordinary rekey) or if it wins (`colliding`: a rekey collision).
    pub(crate) fn child_inbound(&mut self, child: ChildSa, colliding: bool) {
        let state = self.child_state(&child, true);
        self.children.insert(0, state);
        self.arm_child_expiry();
        if colliding {
            tracing::info!(tunnel = %self.cfg.tunnel, inbound = %child.inbound.spi, "Child SA of the peer's colliding rekey: inbound installed");
        } else {
            tracing::info!(tunnel = %self.cfg.tunnel, inbound = %child.inbound.spi, "Child SA rekeyed by the peer: inbound installed, outbound once it deletes the old SA");
        }
        self.events.push_back(Event::ChildInbound(child));
    }

    fn child_state(&self, child: &ChildSa, announced: bool) -> ChildState {
        ChildState {
            inbound: child.inbound.spi.0,
            outbound: child.outbound.spi.0,
            suite: Suite {
                encryption: child.inbound.encryption,
                integrity: child.inbound.integrity,
                prf: None,
                dh: child.pfs,
            },
            local_ts: child.local_ts,
            remote_ts: child.remote_ts,
            expires: self.last_heard + self.cfg.child_lifetime,
            announced,
        }
    }

    pub(crate) fn process_auth_request(&mut self, now: Instant, raw: &[u8], inbound: Inbound) {
        let p = &inbound.payloads;
        let msg_id = inbound.msg_id;
        let verdict = match find_id(p, true) {
            Some(idi) => self.verify_peer(idi, p, true),
            None => Err(FailReason::Protocol {
                what: "IKE_AUTH request without IDi".into(),
            }),
        };
        if let Err(reason) = verdict {
            let n = notify(NotifyType::AUTHENTICATION_FAILED, Vec::new());
            self.send_response(ExchangeType::IKE_AUTH, msg_id, raw, &[n]);
            self.fail(now, reason);
            return;
        }
        let (Some(hs), Some(keys)) = (self.hs.as_ref(), self.keys.as_ref()) else {
            return;
        };
        let idr = self.own_id();
        let Some(auth) = self.own_auth(&hs.init_response, &hs.ni, keys.sk_pr.expose(), &idr) else {
            self.fail(
                now,
                FailReason::Protocol {
                    what: "signing our AUTH failed".into(),
                },
            );
            return;
        };
        let child_spi = hs.child_spi;
        let mut response = vec![PayloadRepr::IdR(idr)];
        response.extend(auth);
        let bounds = (self.cfg.local_ts, self.cfg.remote_ts);
        let child = self.select_first_child(p, child_spi, PfsMode::Ignore, bounds);
        match &child {
            Ok((chosen, _, tsi, tsr, _)) => {
                response.push(PayloadRepr::Sa(SaRepr {
                    proposals: vec![chosen.to_repr()],
                }));
                response.push(PayloadRepr::TsI(super::ts::to_wire(tsi)));
                response.push(PayloadRepr::TsR(super::ts::to_wire(tsr)));
            }
            Err((kind, _)) => response.push(notify(*kind, Vec::new())),
        }
        self.send_response(ExchangeType::IKE_AUTH, msg_id, raw, &response);
        self.established(now);
        match child {
            Ok((_, suite, tsi, tsr, peer_spi)) => {
                let c = self.child_sa(suite, child_spi, peer_spi, tsr, tsi);
                self.child_up(c);
            }
            Err((_, reason)) => {
                let f = self.failure(reason);
                tracing::warn!(tunnel = %self.cfg.tunnel, reason = %f, "Child SA refused");
                self.events.push_back(Event::ChildFailed(f));
            }
        }
    }

    /// Responder: pick the ESP proposal and narrow the selectors (TSi is the peer's side) to
    /// `bounds` (ours, the peer's): the configured ones, or a rekeyed SA's.
    #[allow(clippy::type_complexity)]
    pub(crate) fn select_first_child(
        &self,
        p: &[PayloadRepr],
        our_spi: u32,
        pfs: PfsMode,
        bounds: (TrafficSelector, TrafficSelector),
    ) -> Result<
        (
            super::proposal::Proposal,
            Suite,
            TrafficSelector,
            TrafficSelector,
            u32,
        ),
        (NotifyType, FailReason),
    > {
        let no_proposal = || {
            (
                NotifyType::NO_PROPOSAL_CHOSEN,
                FailReason::NoProposalChosen {
                    phase: Phase::Two,
                    by_peer: false,
                },
            )
        };
        let sa = find_sa(p).ok_or_else(no_proposal)?;
        let prefer = super::proposal::Prefer {
            prf: None,
            ke: super::child::find_ke(p).and_then(|(g, _)| self.acceptable_ke(g)),
        };
        let offered: Vec<_> = sa
            .proposals
            .iter()
            .map(super::proposal::Proposal::from_repr)
            .collect();
        let (chosen, suite, peer_spi) =
            select_esp_with(&offered, &self.cfg.esp, pfs, our_spi, self.cfg.selection, prefer)
                .ok_or_else(no_proposal)?;
        let ts_fail = || {
            (
                NotifyType::TS_UNACCEPTABLE,
                FailReason::TsUnacceptable { by_peer: false },
            )
        };
        let (local, remote) = bounds;
        let tsi = find_ts(p, true)
            .and_then(|t| super::ts::narrow(t, &remote))
            .ok_or_else(ts_fail)?;
        let tsr = find_ts(p, false)
            .and_then(|t| super::ts::narrow(t, &local))
            .ok_or_else(ts_fail)?;
        Ok((chosen, suite, tsi, tsr, peer_spi))
    }
}
