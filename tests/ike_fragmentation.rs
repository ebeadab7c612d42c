//! RFC 7383 IKE fragmentation between two in-process cgwd SAs (virtual clock, seeded randomness): with a
//! tiny fragment size IKE_AUTH and CREATE_CHILD_SA go as SKF fragments both ways, and the exchange
//! survives lost, reordered, duplicated and forged fragments. Plus a proptest of the reassembly buffer.

mod common;

use std::time::{Duration, Instant};

use cgwd::ike::frag::{MAX_FRAGMENTS, MAX_MESSAGE_LEN, Offer, REASSEMBLY_TIMEOUT, Reassembler};
use cgwd::ike::{AlgorithmSet, IkeConfig, State};
use cgwd::suite::{DhGroup, Encryption, Integrity};
use cgwd::wire::ike::{Fragment, PayloadType};
use common::pair::{Dir, Fate, IKE_AUTH, Pair, config};
use proptest::prelude::*;

const CREATE_CHILD_SA: u8 = 36;
const SKF: u8 = 53;

/// A fragment size small enough that IKE_AUTH and CREATE_CHILD_SA need several fragments each way.
const TINY: usize = 180;

/// (exchange, response, fragment number, total) of an SKF datagram; `None` for anything else.
fn fragment_of(data: &[u8]) -> Option<(u8, bool, u16, u16)> {
    if data.len() < 36 || data[16] != SKF {
        return None;
    }
    let number = u16::from_be_bytes([data[32], data[33]]);
    let total = u16::from_be_bytes([data[34], data[35]]);
    Some((data[18], data[19] & 0x20 != 0, number, total))
}

fn with_fragment_size(mut c: IkeConfig, size: usize) -> IkeConfig {
    c.fragmentation.enabled = true;
    c.fragmentation.max_datagram = size;
    c
}

fn tiny_pair(seed: u64) -> Pair {
    let c = with_fragment_size(config(), TINY);
    let r = c.mirrored();
    Pair::new(c, r, seed)
}

/// SKF datagrams of `exchange` (request or response) seen going `dir`.
fn fragments(p: &Pair, dir: Dir, exchange: u8, response: bool) -> Vec<(u16, u16)> {
    p.raw
        .iter()
        .filter(|(d, _)| *d == dir)
        .filter_map(|(_, data)| fragment_of(data))
        .filter(|&(x, r, _, _)| x == exchange && r == response)
        .map(|(_, _, n, t)| (n, t))
        .collect()
}

fn assert_up(p: &Pair) {
    for (side, sa, events) in [
        ("initiator", &p.initiator, &p.initiator_events),
        ("responder", p.responder(), &p.responder_events),
    ] {
        let failures = Pair::failures(events);
        assert_eq!(sa.state(), State::Established, "{side}: {failures:?}");
    }
    let (i, r) = (
        Pair::child_ups(&p.initiator_events),
        Pair::child_ups(&p.responder_events),
    );
    assert!(
        !i.is_empty() && i.len() == r.len(),
        "child SAs: {} vs {}",
        i.len(),
        r.len()
    );
    let (i, r) = (i[i.len() - 1], r[r.len() - 1]);
    assert_eq!(i.inbound.spi, r.outbound.spi);
    assert_eq!(i.outbound.spi, r.inbound.spi);
    assert_eq!(i.outbound.encryption_key, r.inbound.encryption_key);
}

/// Every datagram of the run respects the fragment size (IP + UDP + marker + IKE), IKE_SA_INIT aside.
fn assert_within(p: &Pair, size: usize) {
    for (_, data) in &p.raw {
        if data[18] != 34 {
            assert!(data.len() + 28 + 4 <= size, "{} octets over {size}", data.len());
        }
    }
}

#[test]
fn ike_auth_is_fragmented_both_ways_and_establishes() {
    let mut p = tiny_pair(1);
    p.run_for(Duration::from_secs(2));
    assert_up(&p);
    let req = fragments(&p, Dir::ToResponder, IKE_AUTH, false);
    let resp = fragments(&p, Dir::ToInitiator, IKE_AUTH, true);
    assert!(req.len() >= 2, "IKE_AUTH request fragments: {req:?}");
    assert!(resp.len() >= 2, "IKE_AUTH response fragments: {resp:?}");
    // Numbered 1..=total, sent once each (nothing was lost).
    let total = req[0].1;
    assert_eq!(req, (1..=total).map(|n| (n, total)).collect::<Vec<_>>());
    assert_within(&p, TINY);
    // The initiator's first fragment names the first inner payload (IDi = 35), the others none.
    let first = p
        .raw
        .iter()
        .find(|(_, d)| fragment_of(d).is_some_and(|f| f.0 == IKE_AUTH && f.2 == 1))
        .map(|(_, d)| d.clone())
        .unwrap();
    assert_eq!(first[28], 35);
}

#[test]
fn cbc_suite_fragments_too() {
    let mut c = with_fragment_size(config(), TINY);
    let g = DhGroup::new(14).unwrap();
    c.ike = AlgorithmSet::single(Encryption::Aes128Cbc, Integrity::Sha2_256, g);
    c.esp = AlgorithmSet::single(Encryption::Aes128Cbc, Integrity::Sha2_256, g);
    let mut p = Pair::mirrored(c, 2);
    p.run_for(Duration::from_secs(2));
    assert_up(&p);
    assert!(fragments(&p, Dir::ToResponder, IKE_AUTH, false).len() >= 2);
    assert!(fragments(&p, Dir::ToInitiator, IKE_AUTH, true).len() >= 2);
    assert_within(&p, TINY);
}

#[test]
fn create_child_sa_is_fragmented_both_ways() {
    let mut c = with_fragment_size(config(), TINY);
    c.child_lifetime = Duration::from_secs(60);
    c.rekey_margin = Duration::from_secs(15);
    c.rekey_fuzz_percent = 0;
    let mut r = c.mirrored();
    r.child_lifetime = Duration::from_secs(3600);
    r.ike_lifetime = Duration::from_secs(80);
    // The initiator rekeys the Child SA at 45 s, the responder the IKE SA at 65 s: CREATE_CHILD_SA
    // requests and responses travel fragmented in both directions.
    let mut p = Pair::new(c, r, 3);
    p.run_for(Duration::from_secs(75));
    assert_up(&p);
    assert!(Pair::child_ups(&p.initiator_events).len() >= 2);
    assert!(
        p.initiator_events
            .iter()
            .any(|e| matches!(e, cgwd::ike::Event::IkeRekeyed { .. })),
        "{:?}",
        p.initiator_events
    );
    for (dir, response) in [
        (Dir::ToResponder, false),
        (Dir::ToInitiator, true),
        (Dir::ToInitiator, false),
        (Dir::ToResponder, true),
    ] {
        let f = fragments(&p, dir, CREATE_CHILD_SA, response);
        assert!(f.len() >= 2, "{dir:?} response={response}: {f:?}");
    }
    assert_within(&p, TINY);
}

#[test]
fn lost_fragments_are_recovered_by_retransmission() {
    let mut p = tiny_pair(4);
    // Lose fragment 2 of the first IKE_AUTH request and fragment 1 of the first response.
    let mut lost = [false, false];
    p.policy = Box::new(move |dir, _, data| match (dir, fragment_of(data)) {
        (Dir::ToResponder, Some((IKE_AUTH, false, 2, _))) if !lost[0] => {
            lost[0] = true;
            Fate::Drop
        }
        (Dir::ToInitiator, Some((IKE_AUTH, true, 1, _))) if !lost[1] => {
            lost[1] = true;
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    p.run_for(Duration::from_secs(10));
    assert_up(&p);
    let req = fragments(&p, Dir::ToResponder, IKE_AUTH, false);
    let total = usize::from(req[0].1);
    // Two retransmissions (one per loss), each resending every fragment.
    assert_eq!(req.len(), 3 * total, "{req:?}");
}

#[test]
fn retransmitted_fragmented_request_is_answered_from_the_cache_once_per_retransmission() {
    let mut p = tiny_pair(5);
    // Every fragment of the first IKE_AUTH response is lost: the initiator retransmits all its
    // fragments; only fragment 1 may trigger the cached response (RFC 7383 §2.6.1).
    let mut response_fragments = 0;
    p.policy = Box::new(move |dir, _, data| match (dir, fragment_of(data)) {
        (Dir::ToInitiator, Some((IKE_AUTH, true, _, total))) if response_fragments < total => {
            response_fragments += 1;
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    p.run_for(Duration::from_secs(5));
    assert_up(&p);
    let resp = fragments(&p, Dir::ToInitiator, IKE_AUTH, true);
    let total = usize::from(resp[0].1);
    assert_eq!(resp.len(), 2 * total, "{resp:?}");
    // The responder processed the request once: one Child SA, one Established.
    assert_eq!(Pair::child_ups(&p.responder_events).len(), 1);
}

#[test]
fn reordered_fragments_are_reassembled() {
    let mut p = tiny_pair(6);
    // Fragment 1 of every fragmented message arrives last.
    p.policy = Box::new(|_, _, data| match fragment_of(data) {
        Some((_, _, 1, total)) if total > 1 => Fate::Delay(Duration::from_millis(5)),
        _ => Fate::Deliver,
    });
    p.run_for(Duration::from_secs(2));
    assert_up(&p);
    // No retransmission was needed.
    let req = fragments(&p, Dir::ToResponder, IKE_AUTH, false);
    assert_eq!(req.len(), usize::from(req[0].1));
}

#[test]
fn duplicated_fragments_are_ignored() {
    let mut p = tiny_pair(7);
    p.policy = Box::new(|_, _, data| match fragment_of(data) {
        Some(_) => Fate::Duplicate,
        None => Fate::Deliver,
    });
    p.run_for(Duration::from_secs(2));
    assert_up(&p);
    assert_eq!(Pair::child_ups(&p.initiator_events).len(), 1);
    assert_eq!(Pair::child_ups(&p.responder_events).len(), 1);
    assert!(Pair::failures(&p.initiator_events).is_empty());
}

/// Flip one octet at `at` (from the end when negative).
fn forge(data: &[u8], at: isize) -> Vec<u8> {
    let mut d = data.to_vec();
    let i = if at < 0 {
        d.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    d[i] ^= 0x01;
    d
}

#[test]
fn forged_fragments_are_dropped_before_they_are_stored() {
    let mut p = tiny_pair(8);
    // Hold back fragment 2 of the IKE_AUTH request so the responder waits with a partial message.
    let mut held = false;
    p.policy = Box::new(move |dir, _, data| match (dir, fragment_of(data)) {
        (Dir::ToResponder, Some((IKE_AUTH, false, 2, _))) if !held => {
            held = true;
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.responder().state(), State::InitDone);
    let real = p
        .raw
        .iter()
        .find(|(d, data)| {
            *d == Dir::ToResponder && fragment_of(data).is_some_and(|f| f.0 == IKE_AUTH && f.2 == 2)
        })
        .map(|(_, d)| d.clone())
        .unwrap();
    let before = p.responder().dropped;
    // Bad ICV; a tampered ciphertext octet; a raised Total Fragments (covered by the ICV too, so it
    // cannot make the receiver throw away what it has, §2.6); a lowered one.
    let total = u16::from_be_bytes([real[34], real[35]]);
    let mut higher = real.clone();
    higher[34..36].copy_from_slice(&(total + 1).to_be_bytes());
    let mut lower = real.clone();
    lower[32..36].copy_from_slice(&[0, 1, 0, 1]);
    for forged in [forge(&real, -1), forge(&real, 60), higher, lower] {
        p.inject(Dir::ToResponder, &forged);
    }
    assert_eq!(p.responder().dropped, before + 4);
    assert_eq!(p.responder().state(), State::InitDone);
    // The genuine fragment still completes the message kept so far: no retransmission needed.
    p.inject(Dir::ToResponder, &real);
    p.run_for(Duration::from_millis(100));
    assert_up(&p);
    let req = fragments(&p, Dir::ToResponder, IKE_AUTH, false);
    assert_eq!(req.len(), usize::from(total));
}

#[test]
fn fragments_are_dropped_when_not_negotiated_and_never_sent() {
    for (fragment_initiator, fragment_responder) in [(true, false), (false, true)] {
        let mut c = with_fragment_size(config(), TINY);
        c.fragmentation.enabled = fragment_initiator;
        let mut r = with_fragment_size(config(), TINY).mirrored();
        r.fragmentation.enabled = fragment_responder;
        let mut p = Pair::new(c, r, 9);
        p.run_for(Duration::from_secs(2));
        assert_up(&p);
        assert!(
            p.raw.iter().all(|(_, d)| fragment_of(d).is_none()),
            "a fragment was sent although only one side supports fragmentation"
        );
        // Large unfragmented IKE_AUTH went through anyway (IP fragmentation is the network's job).
        assert!(
            p.raw
                .iter()
                .any(|(_, d)| d[18] == IKE_AUTH && d.len() + 32 > TINY)
        );
    }
}

#[test]
fn fragments_of_a_peer_that_did_not_negotiate_are_dropped() {
    // A fragmenting initiator's IKE_AUTH fragments, replayed against a responder of a pair without
    // fragmentation: unusable, dropped, no state change.
    let mut frag = tiny_pair(10);
    frag.run_for(Duration::from_secs(2));
    let mut c = config();
    c.fragmentation.enabled = false;
    let mut plain = Pair::mirrored(c, 10);
    plain.run_for(Duration::from_secs(2));
    assert_up(&plain);
    let before = plain.responder().dropped;
    let skf: Vec<Vec<u8>> = frag
        .raw
        .iter()
        .filter(|(_, d)| fragment_of(d).is_some())
        .map(|(_, d)| d.clone())
        .collect();
    for d in &skf {
        plain.inject(Dir::ToResponder, d);
    }
    assert_eq!(plain.responder().dropped, before + skf.len() as u64);
    assert_eq!(plain.responder().state(), State::Established);
}

#[test]
fn default_fragment_size_leaves_small_messages_alone() {
    let mut p = Pair::mirrored(config(), 11);
    p.run_for(Duration::from_secs(2));
    assert_up(&p);
    assert!(p.raw.iter().all(|(_, d)| fragment_of(d).is_none()));
}

// ---- the reassembly buffer alone ----

#[allow(clippy::disallowed_methods)] // a base for offsets only
fn base() -> Instant {
    Instant::now()
}

proptest! {
    /// Whatever the order, duplicates included, a message comes out exactly once and intact.
    #[test]
    fn reassembly_is_order_independent(
        message in proptest::collection::vec(any::<u8>(), 1..2000),
        chunk in 1usize..300,
        order in proptest::collection::vec(any::<proptest::sample::Index>(), 1..200),
    ) {
        let chunk = chunk.max(message.len().div_ceil(usize::from(MAX_FRAGMENTS)));
        let parts: Vec<&[u8]> = message.chunks(chunk).collect();
        let total = parts.len() as u16;
        let now = base();
        let mut r = Reassembler::default();
        // Some random sequence (with repeats), then every fragment once more to finish.
        let sequence = order.iter().map(|i| i.index(parts.len())).chain(0..parts.len());
        let mut completions = Vec::new();
        for i in sequence {
            let n = i as u16 + 1;
            let first = if n == 1 { PayloadType::IDI } else { PayloadType::NONE };
            let frag = Fragment::new(n, total).unwrap();
            match r.offer(now, (7, 8), 1, frag, first, parts[i]) {
                Offer::Complete { first, inner } => completions.push((first, inner)),
                Offer::Rejected => prop_assert!(false, "fragment {n}/{total} rejected"),
                Offer::Stored | Offer::Duplicate => {}
            }
            prop_assert!(r.buffered() <= message.len());
        }
        // Once complete, the buffer is empty; the final round may start a second copy, never finish it
        // twice with different contents.
        prop_assert!(!completions.is_empty());
        for (first, inner) in completions {
            prop_assert_eq!(first, PayloadType::IDI);
            prop_assert_eq!(&inner, &message);
        }
    }
}

proptest! {
    /// Any sequence of (already authenticated) fragments, consistent or not: the buffer never holds
    /// more than its limit and never hands out a message over it.
    #[test]
    fn hostile_fragment_sequences_stay_bounded(
        ops in proptest::collection::vec(
            (0u32..3, 1u16..80, 1u16..80, 0usize..12_000, 0u64..40), 1..100),
    ) {
        let t0 = base();
        let mut r = Reassembler::default();
        for (msg_id, number, total, len, secs) in ops {
            let Ok(frag) = Fragment::new(number.min(total), total) else { continue };
            let at = t0 + Duration::from_secs(secs % (2 * REASSEMBLY_TIMEOUT.as_secs()));
            if let Offer::Complete { inner, .. } =
                r.offer(at, (1, 2), msg_id, frag, PayloadType::NONE, &vec![0; len])
            {
                prop_assert!(inner.len() <= MAX_MESSAGE_LEN);
            }
            prop_assert!(r.buffered() <= MAX_MESSAGE_LEN);
        }
    }
}
