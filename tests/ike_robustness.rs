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
