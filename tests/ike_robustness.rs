//! Hostile input: garbage and tampered messages never panic and never change an established IKE SA
//! (the same properties fuzz/fuzz_targets/ike_responder.rs checks with coverage guidance).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cgwd::crypto::SeededRandom;
use cgwd::ike::{Event, IkeSa, State};
use common::pair::{Dir, Pair, config};
use proptest::prelude::*;

fn established(seed: u64) -> Pair {
    let mut p = Pair::mirrored(config(), seed);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.initiator.state(), State::Established);
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes as the first datagram: a responder is refused or created, never a panic.
    #[test]
    fn responder_survives_any_first_datagram(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let from: SocketAddr = "198.51.100.11:500".parse().unwrap();
        let to: SocketAddr = "192.0.2.10:500".parse().unwrap();
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        if let Ok(mut sa) = IkeSa::responder(Arc::new(config()), now, Box::new(SeededRandom::new(1)), &data, from, to) {
            sa.handle_datagram(now, from, to, &data);
            sa.handle_timeout(now + Duration::from_secs(100));
            while sa.poll_transmit().is_some() {}
            while sa.poll_event().is_some() {}
        }
    }

    /// Every real message of the handshake, with one byte changed, replayed to both sides of an
    /// established SA: ignored (unauthenticated input never changes established state).
    #[test]
    fn tampered_replays_do_not_disturb_an_established_sa(which in 0usize..16, pos in any::<usize>(), xor in 1u8..=255) {
        let mut p = established(77);
        let before = p.initiator_events.len() + p.responder_events.len();
        let raws = p.raw.clone();
        let (_, msg) = &raws[which % raws.len()];
        let mut m = msg.clone();
        let i = pos % m.len();
        m[i] ^= xor;
        p.inject(Dir::ToResponder, &m);
        p.inject(Dir::ToInitiator, &m);
        prop_assert_eq!(p.initiator.state(), State::Established);
        prop_assert_eq!(p.responder().state(), State::Established);
        prop_assert_eq!(p.initiator_events.len() + p.responder_events.len(), before);
    }

    /// Random garbage of plausible IKE shape (a correct header with our SPIs) is dropped too.
    #[test]
    fn forged_messages_with_the_right_spis_are_dropped(body in proptest::collection::vec(any::<u8>(), 0..300), exchange in 34u8..=37, flags in any::<u8>(), msg_id in 0u32..4) {
        let mut p = established(78);
        let (spi_i, spi_r) = p.initiator.spis();
        let mut m = Vec::new();
        m.extend_from_slice(&spi_i.to_be_bytes());
        m.extend_from_slice(&spi_r.to_be_bytes());
        m.extend_from_slice(&[46, 0x20, exchange, flags]);
        m.extend_from_slice(&msg_id.to_be_bytes());
        m.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        p.inject(Dir::ToResponder, &m);
        p.inject(Dir::ToInitiator, &m);
        prop_assert_eq!(p.initiator.state(), State::Established);
        prop_assert_eq!(p.responder().state(), State::Established);
    }
}

/// A replayed (unchanged) copy of every message is harmless too: requests get the cached answer,
/// stale responses are ignored.
#[test]
fn exact_replays_are_harmless() {
    let mut p = established(79);
    for (dir, m) in p.raw.clone() {
        p.inject(dir, &m);
    }
    assert_eq!(p.initiator.state(), State::Established);
    assert_eq!(p.responder().state(), State::Established);
    assert_eq!(Pair::child_ups(&p.responder_events).len(), 1);
    assert!(
        !p.initiator_events
            .iter()
            .any(|e| matches!(e, Event::Failed(_) | Event::Closed))
    );
}

/// The IKE_SA_INIT request a fresh initiator sends (`seed` makes it unique).
fn init_request(seed: u64, now: std::time::Instant) -> Vec<u8> {
    let mut i = IkeSa::initiator(Arc::new(config()), now, Box::new(SeededRandom::new(seed)));
    i.poll_transmit().expect("IKE_SA_INIT").data
}

/// Whether an IKE_SA_INIT answer is a COOKIE demand.
fn demands_cookie(sa: &mut IkeSa) -> bool {
    let reply = sa.poll_transmit().expect("an answer");
    let msg = cgwd::wire::ike::Message::parse(&reply.data).unwrap();
    msg.payloads().unwrap().iter().any(|p| {
        matches!(p, cgwd::wire::ike::PayloadRepr::Notify(n) if n.kind == cgwd::wire::ike::NotifyType::COOKIE)
    })
}

/// Responder COOKIEs by load (RFC 7296 §2.6): a flood of IKE_SA_INITs from spoofed source ports is
/// answered statefully up to the threshold (16 half-open SAs), then with stateless COOKIE demands;
/// a legitimate initiator returns the cookie and still establishes; half-open SAs time out and with
/// them the demand. SAs dropped by their owner (the daemon replaces a tunnel's half-open SA on every
/// new IKE_SA_INIT) keep counting until their half-open time is over.
/// ```text
///  spoofed :1000..:1015  HDR, SAi1, KEi, Ni -->  <-- HDR, SAr1, KEr, Nr     (16 half-open)
///  spoofed :1016         HDR, SAi1, KEi, Ni -->  <-- HDR, N(COOKIE)         (no state)
///  legitimate            HDR, SAi1, KEi, Ni -->  <-- HDR, N(COOKIE)
///                        HDR, N(COOKIE), SAi1, KEi, Ni --> <-- HDR, SAr1, KEr, Nr ... IKE_AUTH: up
///  +31 s: the half-open SAs fail (no IKE_AUTH), the count is 0, no cookie demanded any more
/// ```
#[test]
fn cookies_are_demanded_above_the_half_open_threshold() {
    use cgwd::ike::cookie::CookieGuard;
    #[allow(clippy::disallowed_methods)]
    let now = std::time::Instant::now();
    let guard = Arc::new(CookieGuard::new(
        CookieGuard::DEFAULT_THRESHOLD,
        cgwd::secret::Secret::from_slice(&[7; 32]),
    ));
    let mut rcfg = config().mirrored();
    rcfg.cookies = Some(guard.clone());
    let rcfg = Arc::new(rcfg);
    let to: SocketAddr = "192.0.2.10:500".parse().unwrap();
    let spoofed = |port: u16| SocketAddr::new("198.51.100.11".parse().unwrap(), port);
    let mut kept = Vec::new();
    for n in 0..CookieGuard::DEFAULT_THRESHOLD as u64 {
        let data = init_request(100 + n, now);
        let rng = Box::new(SeededRandom::new(200 + n));
        let mut sa = IkeSa::responder(rcfg.clone(), now, rng, &data, spoofed(1000 + n as u16), to).unwrap();
        assert_eq!(
            sa.state(),
            State::InitDone,
            "below the threshold: answered with state"
        );
        assert!(
            !demands_cookie(&mut sa),
            "no cookie below the threshold ({n} half-open)"
        );
        if n >= 12 {
            kept.push(sa); // the rest are dropped, as the daemon replaces them
        }
    }
    assert_eq!(guard.half_open(now), CookieGuard::DEFAULT_THRESHOLD);
    let data = init_request(300, now);
    let rng = Box::new(SeededRandom::new(301));
    let mut flood = IkeSa::responder(rcfg.clone(), now, rng, &data, spoofed(1016), to).unwrap();
    assert_eq!(flood.state(), State::Closed, "a COOKIE demand keeps no state");
    assert!(demands_cookie(&mut flood));
    assert_eq!(guard.half_open(now), CookieGuard::DEFAULT_THRESHOLD);

    // A legitimate initiator returns the cookie and gets its IKE SA and Child SA.
    let mut p = Pair::new(config(), (*rcfg).clone(), 302);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.initiator.state(), State::Established);
    assert_eq!(p.responder().state(), State::Established);
    assert_eq!(
        p.responders_created, 2,
        "the first answer was a stateless COOKIE demand"
    );
    assert_eq!(p.count(Dir::ToResponder, common::pair::IKE_SA_INIT, false), 2);
    assert_eq!(Pair::child_ups(&p.initiator_events).len(), 1);
    // Authenticated: it no longer counts as half-open.
    assert_eq!(guard.half_open(now), CookieGuard::DEFAULT_THRESHOLD);

    // The half-open SAs time out (no IKE_AUTH came), and so does the demand.
    let later = now + Duration::from_secs(32);
    for sa in &mut kept {
        sa.handle_timeout(later);
        assert_eq!(sa.state(), State::Closed, "a half-open SA times out");
        while sa.poll_transmit().is_some() {}
    }
    assert_eq!(guard.half_open(later), 0);
    let data = init_request(400, later);
    let rng = Box::new(SeededRandom::new(401));
    let mut sa = IkeSa::responder(rcfg, later, rng, &data, spoofed(2000), to).unwrap();
    assert_eq!(sa.state(), State::InitDone);
    assert!(!demands_cookie(&mut sa));
}
