//! Child SA rekey collisions (RFC 7296 §2.8.1) between two in-process cgwd IKE SAs on a virtual clock.
//!
//! Every scenario records each side's events with the virtual time they appeared and replays them as the
//! daemon would (ChildUp: install inbound, switch outbound; ChildDown: remove), then checks what matters
//! for traffic: at every millisecond each side sends on an SA the other side has installed inbound by the
//! time the packet gets there, both sides end with exactly one Child SA pair and agree on its SPIs, and
//! no collision ever fails. The cases follow the list of strongSwan's child_rekey suite (read only):
//! plain collision, either response delayed behind the winner's DELETE, the peer's request arriving
//! after our rekey completed, and a rekey of an SA being deleted.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cgwd::ike::{Event, State};
use cgwd::suite::DhGroup;
use common::pair::{Dir, Fate, INFORMATIONAL, Pair, config};

const CREATE_CHILD_SA: u8 = 36;

/// Exchange type and response flag of a raw IKE message.
fn kind(data: &[u8]) -> (u8, bool) {
    if data.len() < 28 {
        return (0, false);
    }
    (data[18], data[19] & 0x20 != 0)
}

/// Every message of kind `what` (exchange, response) travelling `dir` meets `fate`; the rest arrive.
fn disturb(dir: Dir, what: (u8, bool), fate: Fate) -> common::pair::Policy {
    Box::new(move |d, _, data| {
        if d == dir && kind(data) == what {
            fate
        } else {
            Fate::Deliver
        }
    })
}

/// Both sides rekey their only Child SA at the same virtual instant: same lifetimes, no fuzz, and a
/// latency long enough that the two CREATE_CHILD_SA requests cross.
fn colliding_pair(seed: u64, latency: Duration) -> Pair {
    // The responder's timer fires 40 ms after the initiator's (its Child SA came up one latency earlier),
    // so the two requests cross on the wire.
    let skew = latency - Duration::from_millis(10);
    timed_pair(
        seed,
        latency,
        (secs(3600), secs(60)),
        (secs(3600), secs(60) + skew),
    )
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A pair whose sides rekey exactly at lifetime − 15 s (no fuzz), with PFS like AWS; `initiator` and
/// `responder` are each side's (IKE SA, Child SA) lifetimes.
fn timed_pair(
    seed: u64,
    latency: Duration,
    initiator: (Duration, Duration),
    responder: (Duration, Duration),
) -> Pair {
    let mut c = config();
    c.rekey_margin = Duration::from_secs(15);
    c.rekey_fuzz_percent = 0;
    c.esp.dh = vec![DhGroup::new(19).unwrap()];
    let mut r = c.mirrored();
    (c.ike_lifetime, c.child_lifetime) = initiator;
    (r.ike_lifetime, r.child_lifetime) = responder;
    let mut p = Pair::new(c, r, seed);
    p.latency = latency;
    p
}

/// One side's events, stamped with the virtual time (ms since start) they came out.
#[derive(Default)]
struct Timeline {
    events: Vec<(u64, Event)>,
}

/// Run in 1 ms steps for `d`, stamping events.
fn run_stamped(p: &mut Pair, d: Duration, ti: &mut Timeline, tr: &mut Timeline) {
    let steps = d.as_millis() as u64;
    for _ in 0..steps {
        p.run_for(Duration::from_millis(1));
        let at = (p.now - p.start).as_millis() as u64;
        for e in p.initiator_events.drain(..) {
            ti.events.push((at, e));
        }
        for e in p.responder_events.drain(..) {
            tr.events.push((at, e));
        }
    }
}

/// What a daemon replaying `t` has installed at time `at`: (inbound SPIs, outbound SPI).
fn installed(t: &Timeline, at: u64) -> (BTreeSet<u32>, Option<u32>) {
    let mut inbound = BTreeSet::new();
    let mut outbound = None;
    for (when, e) in &t.events {
        if *when > at {
            break;
        }
        match e {
            Event::ChildUp(c) => {
                inbound.insert(c.inbound.spi.0);
                outbound = Some(c.outbound.spi.0);
            }
            Event::ChildInbound(c) => {
                inbound.insert(c.inbound.spi.0);
            }
            Event::ChildDown {
                inbound: i,
                outbound: o,
            } => {
                inbound.remove(&i.0);
                if outbound == Some(o.0) {
                    outbound = None;
                }
            }
            _ => {}
        }
    }
    (inbound, outbound)
}

/// No loss at any instant: what each side sends on is installed at the other end when it arrives, and
/// a side with a Child SA up always has an outbound SA.
fn assert_hitless(ti: &Timeline, tr: &Timeline, from: u64, to: u64, latency: u64) {
    for at in from..=to {
        for (name, a, b) in [("initiator", ti, tr), ("responder", tr, ti)] {
            let (a_in, a_out) = installed(a, at);
            let Some(out) = a_out else {
                assert!(a_in.is_empty(), "{name} at {at} ms: inbound SAs but no outbound");
                continue;
            };
            let (b_in, _) = installed(b, at + latency);
            assert!(
                b_in.contains(&out),
                "{name} at {at} ms sends on {out:08x}, not installed at the peer ({b_in:x?})"
            );
        }
    }
}

fn debug_dump(p: &Pair, ti: &Timeline, tr: &Timeline) {
    if std::env::var_os("LIFECYCLE_DEBUG").is_some() {
        for (name, t) in [("I", ti), ("R", tr)] {
            for (at, e) in &t.events {
                match e {
                    Event::ChildUp(c) => {
                        eprintln!("{name} {at} up in {} out {}", c.inbound.spi, c.outbound.spi)
                    }
                    Event::ChildInbound(c) => eprintln!("{name} {at} inbound {}", c.inbound.spi),
                    e => eprintln!("{name} {at} {e:?}"),
                }
            }
        }
        for s in &p.wire {
            eprintln!(
                "{:?} {:?} x{} r{} id{} {:?}",
                s.at, s.dir, s.exchange, s.response, s.msg_id, s.fate
            );
        }
    }
}

/// Exactly one Child SA pair on each side, mirrored, matching what `status` reports.
fn assert_one_pair(p: &Pair, ti: &Timeline, tr: &Timeline) {
    debug_dump(p, ti, tr);
    let end = (p.now - p.start).as_millis() as u64;
    let (i_in, i_out) = installed(ti, end);
    let (r_in, r_out) = installed(tr, end);
    assert_eq!(i_in.len(), 1, "initiator inbound SAs: {i_in:x?}");
    assert_eq!(r_in.len(), 1, "responder inbound SAs: {r_in:x?}");
    let (i_in, r_in) = (*i_in.first().unwrap(), *r_in.first().unwrap());
    assert_eq!(Some(r_in), i_out);
    assert_eq!(Some(i_in), r_out);
    assert_eq!(p.initiator.status().child_spis, Some((i_in, r_in)));
    assert_eq!(p.responder().status().child_spis, Some((r_in, i_in)));
    assert_eq!(p.initiator.state(), State::Established);
    assert_eq!(p.responder().state(), State::Established);
}

fn failures(t: &Timeline) -> Vec<String> {
    t.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Failed(f) | Event::ChildFailed(f) => Some(f.message()),
            _ => None,
        })
        .collect()
}

/// The common body: establish, run through the colliding rekey and the next (normal) one, check.
/// Returns how many CREATE_CHILD_SA requests each side sent.
fn scenario(mut p: Pair) -> (usize, usize) {
    let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
    // Establishment, then up to just before the rekeys at 45 s.
    run_stamped(&mut p, Duration::from_secs(44), &mut ti, &mut tr);
    assert_eq!(p.initiator.state(), State::Established);
    run_stamped(&mut p, Duration::from_secs(6), &mut ti, &mut tr);
    let by_i = p.count(Dir::ToResponder, CREATE_CHILD_SA, false);
    let by_r = p.count(Dir::ToInitiator, CREATE_CHILD_SA, false);
    assert_one_pair(&p, &ti, &tr);
    // The next rekey, 45 s later, is an ordinary one on the surviving SA.
    run_stamped(&mut p, Duration::from_secs(50), &mut ti, &mut tr);
    assert_one_pair(&p, &ti, &tr);
    debug_dump(&p, &ti, &tr);
    assert_clean_run(&p, &ti, &tr);
    (by_i, by_r)
}

/// No failure on either side, and no loss from the first Child SA on (see [`assert_hitless`]; data
/// packets travel with the base latency, the policies only delay IKE messages).
fn assert_clean_run(p: &Pair, ti: &Timeline, tr: &Timeline) {
    let latency_ms = p.latency.as_millis() as u64;
    assert!(failures(ti).is_empty(), "{:?}", failures(ti));
    assert!(failures(tr).is_empty(), "{:?}", failures(tr));
    let first_up = ti
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::ChildUp(_)))
        .map(|(at, _)| *at)
        .expect("a Child SA came up");
    let end = (p.now - p.start).as_millis() as u64;
    assert_hitless(
        ti,
        tr,
        first_up + latency_ms + 1,
        end - latency_ms - 1,
        latency_ms,
    );
}

/// The plain collision. Both requests cross; both exchanges complete; the one holding the lowest of
/// the four nonces made the redundant SA, which its initiator deletes; the winner deletes the old SA.
/// ```text
///  initiator                                          responder
///  CREATE_CHILD_SA {N(REKEY_SA,old), Ni1} ---\   /--- CREATE_CHILD_SA {N(REKEY_SA,old), Ni2}
///                                             \ /
///  <-- {Nr2} answered (new SA 2, installed)    X      answered (new SA 1, installed) {Nr1} -->
///  response {Nr1}: SA 1 done                          response {Nr2}: SA 2 done
///  min(Ni1,Nr1,Ni2,Nr2) in exchange 1 → SA 1 redundant: initiator deletes SA 1, responder deletes old
///  (or the mirror image)
///  INFORMATIONAL {D(ESP, redundant or old)}  <-->  INFORMATIONAL {D(ESP, old or redundant)}
/// ```
#[test]
fn simultaneous_child_rekeys_keep_one_pair_and_lose_nothing() {
    for seed in 1..=12 {
        let p = colliding_pair(seed, Duration::from_millis(50));
        let (by_i, by_r) = scenario(p);
        // Both sides rekeyed at once (a collision happened), and nobody retried.
        assert!(
            by_i >= 1 && by_r >= 1,
            "seed {seed}: {by_i} / {by_r} rekey requests"
        );
        assert!(
            by_i + by_r == 2,
            "seed {seed}: a collision was retried ({by_i} + {by_r})"
        );
    }
}

/// Delayed response: the winner's DELETE of the old SA overtakes its response to the loser's rekey
/// (every CREATE_CHILD_SA response in one direction is held back 300 ms; data is not).
/// ```text
///  A (responses to A delayed)                          B
///  CREATE_CHILD_SA {REKEY_SA(old), Na} ---\   /--- CREATE_CHILD_SA {REKEY_SA(old), Nb}
///  answered {Nb'}: SA B inbound only        X        answered {Na'} (SA A inbound only) ...delayed...
///                                                    {Nb'} arrives: if SA B wins, B sends on SA B
///  <-- INFORMATIONAL {D(ESP, old)}                   (B's DELETE overtakes A's response)
///  A: the peer deleted old, so its rekey won: A sends on SA B, then removes old
///  ... {Na'} arrives: SA A is redundant → D(ESP, SA A) -->
///  (if SA A wins instead, B waits for A's DELETE of old before it sends on SA A)
/// ```
#[test]
fn delete_of_the_old_sa_overtaking_the_rekey_response() {
    for dir in [Dir::ToInitiator, Dir::ToResponder] {
        for seed in 1..=8 {
            let mut p = colliding_pair(seed, Duration::from_millis(50));
            p.policy = disturb(
                dir,
                (CREATE_CHILD_SA, true),
                Fate::Delay(Duration::from_millis(300)),
            );
            scenario(p);
        }
    }
}

/// The peer's rekey arrives after ours completed (its request was delayed): the late request is still
/// a collision. Depending on timing the old SA is already gone (the peer gets CHILD_SA_NOT_FOUND and
/// gives up, its new SA never existed) or not (the four nonces decide, as above).
/// ```text
///  A                                                   B
///  CREATE_CHILD_SA {REKEY_SA(old), Na} -->             (B's own request to A is delayed)
///  <-- {Nb'}: SA A done
///  INFORMATIONAL {D(ESP, old)} -->  <-- D(ESP, old)     [delay d1]
///        <-- CREATE_CHILD_SA {REKEY_SA(old), Nb} arrives late:
///            old still there → answered, nonces decide; old gone → CHILD_SA_NOT_FOUND
/// ```
#[test]
fn peer_rekey_arriving_after_ours_completed() {
    for delay in [60u64, 120, 400] {
        for dir in [Dir::ToInitiator, Dir::ToResponder] {
            for seed in 1..=6 {
                let mut p = colliding_pair(seed, Duration::from_millis(50));
                let late = Fate::Delay(Duration::from_millis(delay));
                p.policy = disturb(dir, (CREATE_CHILD_SA, false), late);
                scenario(p);
            }
        }
    }
}

/// The nonce comparison both ends make gives one verdict: exactly one of the two exchanges is
/// redundant, whichever way round it is computed.
#[test]
fn nonce_verdict_is_antisymmetric() {
    use cgwd::crypto::Random;
    let mut rng = cgwd::crypto::SeededRandom::new(7);
    for _ in 0..1000 {
        let n: Vec<[u8; 32]> = (0..4)
            .map(|_| {
                let mut b = [0u8; 32];
                rng.fill(&mut b);
                b
            })
            .collect();
        let a = cgwd::ike::child::redundant(&n[0], &n[1], &n[2], &n[3]);
        let b = cgwd::ike::child::redundant(&n[2], &n[3], &n[0], &n[1]);
        assert_ne!(a, b);
        // The exchange holding the lowest nonce is the redundant one.
        let lowest = n.iter().min().unwrap();
        assert_eq!(a, lowest == &n[0] || lowest == &n[1]);
    }
}

/// DPD honours AWS's DpdTimeoutSeconds: a peer that goes silent is declared dead at most the DPD
/// timeout after it was last heard, although the retransmission schedule alone (1+2+4+8+16 s after a
/// DPD sent 10 s into the silence) would take 41 s.
/// ```text
///  t0 last message from the peer          (peer silent from here)
///  t0+10 s  INFORMATIONAL {} -->  retransmitted at +1, +3, +7, +15 s
///  t0+30 s  dead: Failed(no answer to a liveness check), ChildDown, Closed
/// ```
#[test]
fn dpd_declares_a_silent_peer_dead_within_the_dpd_timeout() {
    let mut c = config();
    c.dpd_timeout = Duration::from_secs(30);
    let mut p = Pair::mirrored(c, 5);
    let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
    run_stamped(&mut p, Duration::from_secs(3), &mut ti, &mut tr);
    assert_eq!(p.initiator.state(), State::Established);
    p.policy = Box::new(|_, _, _| Fate::Drop);
    let last_heard = p
        .wire
        .iter()
        .filter(|s| s.dir == Dir::ToInitiator)
        .map(|s| s.at + p.latency)
        .max()
        .unwrap();
    run_stamped(&mut p, Duration::from_secs(60), &mut ti, &mut tr);
    let failed_at = ti
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Failed(_)))
        .map(|(at, _)| Duration::from_millis(*at))
        .expect("the silent peer is declared dead");
    let after = failed_at - last_heard;
    assert!(
        after <= Duration::from_millis(30_001) && after >= Duration::from_secs(29),
        "dead {after:?} after the peer was last heard"
    );
    assert!(
        failures(&ti).iter().any(|m| m.contains("liveness check")),
        "{:?}",
        failures(&ti)
    );
    assert_eq!(p.initiator.state(), State::Closed);
}

// ---------------------------------------------------------------------------------------------------
// IKE SA rekey collisions (RFC 7296 §2.8.2, §2.25.2), following strongSwan's ike_rekey suite (read
// only): plain collision, a response delayed behind the winner's DELETE of the old SA, a request
// delayed or dropped (one side never sees a collision), an IKE rekey crossing a Child SA rekey, and an
// IKE rekey crossing the peer's DELETE of the IKE SA.

/// Both sides rekey the IKE SA at the same virtual instant (45 s); the Child SA lives long, except
/// that cgwd's side rekeys it at 65 s, over whichever IKE SA survived (its SK_d must agree).
fn colliding_ike_pair(seed: u64, latency: Duration) -> Pair {
    // As in `colliding_pair`: the responder's timer fires 10 ms before the initiator's.
    let skew = latency - Duration::from_millis(10);
    timed_pair(seed, latency, (secs(60), secs(80)), (secs(60) + skew, secs(3600)))
}

fn ike_rekeys(t: &Timeline, from: u64) -> Vec<(u64, u64)> {
    t.events
        .iter()
        .filter(|(at, _)| *at >= from)
        .filter_map(|(_, e)| match e {
            Event::IkeRekeyed {
                old_local_spi,
                new_local_spi,
            } => Some((*old_local_spi, *new_local_spi)),
            _ => None,
        })
        .collect()
}

fn child_events(t: &Timeline, from: u64, to: u64) -> usize {
    t.events
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .filter(|(_, e)| {
            matches!(
                e,
                Event::ChildUp(_) | Event::ChildDown { .. } | Event::ChildInbound(_)
            )
        })
        .count()
}

/// Both sides hold exactly one IKE SA, the same one.
fn assert_one_ike_sa(p: &Pair, what: &str) {
    assert_ike_sas(p, what, 1);
}

/// Both sides are on the same IKE SA and keep at most `max` (the current one and SAs whose DELETE
/// exchange is still to come).
fn assert_ike_sas(p: &Pair, what: &str, max: usize) {
    let (i, r) = (p.initiator.ike_sas(), p.responder().ike_sas());
    assert!(i.len() <= max, "{what}: initiator keeps {i:x?}");
    assert!(r.len() <= max, "{what}: responder keeps {r:x?}");
    assert_eq!(i[0], r[0], "{what}: both sides on the same IKE SA");
    if max == 1 {
        assert_eq!(i, r, "{what}: both sides on the same IKE SA");
    }
}

/// The newest Child SA each side reported carries the same keys in each direction.
fn assert_child_keys_agree(ti: &Timeline, tr: &Timeline) {
    let last = |t: &Timeline| {
        t.events
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                Event::ChildUp(c) => Some(c.clone()),
                _ => None,
            })
            .expect("a Child SA")
    };
    let (i, r) = (last(ti), last(tr));
    assert_eq!(i.inbound.spi, r.outbound.spi);
    assert_eq!(i.outbound.spi, r.inbound.spi);
    assert_eq!(
        i.inbound.encryption_key.expose(),
        r.outbound.encryption_key.expose()
    );
    assert_eq!(
        i.outbound.encryption_key.expose(),
        r.inbound.encryption_key.expose()
    );
}

/// What an IKE rekey round ended with, for the variant's own assertions.
struct IkeRound {
    /// Whether the surviving IKE SA was started by cgwd's side (the IKE initiator).
    initiator_won: bool,
    /// CREATE_CHILD_SA requests each side sent during the round (initiator, responder).
    requests: (usize, usize),
}

/// The common body of the IKE collision cases: establish, rekey at 45 s (however the variant's
/// policy disturbs it), then check that each side ends on one and the same new IKE SA, reported one
/// `IkeRekeyed` for it and nothing at all about the Child SA; then a Child SA rekey at 65 s over the
/// new IKE SA gives both sides the same keys, and traffic was never lost. `lingering`: right after
/// the round a side may still keep the redundant SA the other side never learned about (until its
/// bound, one retransmission schedule); at 80 s, before the next IKE rekey at 90 s, it must be gone.
fn ike_scenario(mut p: Pair, settle: Duration, lingering: bool) -> IkeRound {
    let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
    run_stamped(&mut p, Duration::from_secs(44), &mut ti, &mut tr);
    assert_eq!(p.initiator.state(), State::Established);
    assert_one_ike_sa(&p, "before the rekey");
    let before = p.initiator.spis();
    let child_before = p.initiator.status().child_spis;
    let start = (p.now - p.start).as_millis() as u64;
    let req_i = p.count(Dir::ToResponder, CREATE_CHILD_SA, false);
    let req_r = p.count(Dir::ToInitiator, CREATE_CHILD_SA, false);
    run_stamped(&mut p, settle, &mut ti, &mut tr);
    let end = (p.now - p.start).as_millis() as u64;
    debug_dump(&p, &ti, &tr);
    assert_ike_sas(&p, "after the rekey", if lingering { 2 } else { 1 });
    assert_ne!(p.initiator.spis(), before, "the IKE SA was rekeyed");
    for (name, t, sa) in [
        ("initiator", &ti, &p.initiator),
        ("responder", &tr, p.responder()),
    ] {
        let r = ike_rekeys(t, start);
        assert_eq!(r.len(), 1, "{name}: one IkeRekeyed, for the surviving SA: {r:x?}");
        assert_eq!(
            r[0].1,
            sa.local_spi(),
            "{name}: IkeRekeyed names the surviving SA"
        );
        assert_eq!(child_events(t, start, end), 0, "{name}: no Child SA churn");
    }
    assert_eq!(p.initiator.status().child_spis, child_before);
    assert!(failures(&ti).is_empty(), "{:?}", failures(&ti));
    assert!(failures(&tr).is_empty(), "{:?}", failures(&tr));
    let round = IkeRound {
        initiator_won: p.initiator.status().role == cgwd::ike::Role::Initiator,
        requests: (
            p.count(Dir::ToResponder, CREATE_CHILD_SA, false) - req_i,
            p.count(Dir::ToInitiator, CREATE_CHILD_SA, false) - req_r,
        ),
    };
    // The Child SA rekey at 65 s derives from the surviving IKE SA's SK_d, and DPD every 10 s runs
    // over its SK_e/SK_a: both only work if the two sides hold the same keys.
    let rest = Duration::from_secs(80) - (p.now - p.start);
    run_stamped(&mut p, rest, &mut ti, &mut tr);
    assert_one_pair(&p, &ti, &tr);
    assert_one_ike_sa(&p, "after the next Child SA rekey");
    assert_ne!(
        p.initiator.status().child_spis,
        child_before,
        "the Child SA was rekeyed"
    );
    assert_child_keys_agree(&ti, &tr);
    assert_clean_run(&p, &ti, &tr);
    round
}

/// The plain IKE SA rekey collision: both requests cross on the old SA, both are answered, and the
/// new SA made by the exchange holding the lowest of the four nonces is deleted by its initiator; the
/// other new SA's initiator deletes the old SA. Seeds cover both winners.
/// ```text
///  initiator (I)                                          responder (R)
///  CREATE_CHILD_SA {SA(I1), Ni1, KE} ---\    /--- CREATE_CHILD_SA {SA(R1), Ni2, KE}
///  answered {SA(I2), Nr2}: SA "R" pending \  /    answered {SA(R2), Nr1}: SA "I" pending
///  <-- {Nr1}: SA "I" complete              \/     {Nr2} -->: SA "R" complete
///  lowest of (Ni1, Nr1, Ni2, Nr2) in I's exchange → SA "I" redundant, else SA "R":
///  INFORMATIONAL(SA "I") {D(IKE)} -->       <-- INFORMATIONAL(old SA) {D(IKE)}     (or the mirror)
///  both on SA "R" (or "I"), one IkeRekeyed each, the Child SA untouched
/// ```
#[test]
fn simultaneous_ike_rekeys_keep_one_ike_sa_and_the_child_sa() {
    let mut winners = BTreeSet::new();
    for seed in 1..=12 {
        let p = colliding_ike_pair(seed, Duration::from_millis(50));
        let round = ike_scenario(p, Duration::from_secs(6), false);
        assert_eq!(
            round.requests,
            (1, 1),
            "seed {seed}: both rekeyed once, nobody retried"
        );
        winners.insert(round.initiator_won);
    }
    assert_eq!(winners.len(), 2, "both sides won some collision");
}

/// The winner's DELETE of the old SA overtakes its response to the loser's request (every
/// CREATE_CHILD_SA response in one direction is held back 300 ms). A peer deletes the old SA only
/// when its own new SA survives, so the loser switches to it on that DELETE and forgets its own
/// exchange; the late response finds no SA. If the delayed side wins instead, the other side waits
/// for the response and everything runs as in the plain collision.
/// ```text
///  A (responses to A delayed)                          B
///  CREATE_CHILD_SA {SA, Na1} ---\   /--- CREATE_CHILD_SA {SA, Nb1}
///  answered {Na2}: SA "B" pending X     answered {Nb2}: SA "A" pending
///                                       {Na2} -->: SA "B" complete, B wins (its exchange has no
///                                       lowest nonce) → keeps SA "A" until A deletes it or a timeout
///  <-- INFORMATIONAL(old) {D(IKE)}       (overtakes the delayed {Nb2})
///  A: the peer won → switch to SA "B", answer the DELETE, forget its own rekey
///  <-- {Nb2} (delayed): the old SA is gone → dropped
/// ```
#[test]
fn ike_rekey_collision_with_the_response_behind_the_winners_delete() {
    for dir in [Dir::ToInitiator, Dir::ToResponder] {
        let mut winners = BTreeSet::new();
        for seed in 1..=8 {
            let mut p = colliding_ike_pair(seed, Duration::from_millis(50));
            p.policy = disturb(
                dir,
                (CREATE_CHILD_SA, true),
                Fate::Delay(Duration::from_millis(300)),
            );
            let round = ike_scenario(p, Duration::from_secs(6), true);
            assert_eq!(round.requests, (1, 1), "{dir:?} seed {seed}");
            winners.insert(round.initiator_won);
        }
        assert_eq!(winners.len(), 2, "{dir:?}: both sides won some collision");
    }
}

/// One side's request is delayed (or dropped): the other side completes its rekey without seeing a
/// collision and deletes the old SA, which tells the side that did see one that the peer's SA won.
/// The delayed request then reaches an SA that is being deleted: TEMPORARY_FAILURE, or nothing.
/// ```text
///  A                                                   B
///  CREATE_CHILD_SA {SA, Na1} ---\      /--- CREATE_CHILD_SA {SA, Nb1}
///               (delayed/dropped)\    /
///  answered {Na2}: SA "B" pending \--/-->   ...
///                   <-- {Na2} done: no collision seen by B, SA "B" current
///  <-- INFORMATIONAL(old) {D(IKE)}: A switches to SA "B", forgets its rekey
///      CREATE_CHILD_SA {SA, Na1} arrives late on the old SA → TEMPORARY_FAILURE (dropped by A)
/// ```
#[test]
fn ike_rekey_collision_with_a_delayed_or_dropped_request() {
    for fate in [
        Fate::Delay(Duration::from_millis(60)),
        Fate::Delay(Duration::from_millis(200)),
        Fate::Delay(Duration::from_millis(400)),
        Fate::Drop,
    ] {
        for dir in [Dir::ToInitiator, Dir::ToResponder] {
            for seed in 1..=4 {
                let mut p = colliding_ike_pair(seed, Duration::from_millis(50));
                let mut first = true;
                p.policy = Box::new(move |d, _, data| {
                    if d == dir && kind(data) == (CREATE_CHILD_SA, false) && first {
                        first = false;
                        fate
                    } else {
                        Fate::Deliver
                    }
                });
                let round = ike_scenario(p, Duration::from_secs(6), true);
                if fate == Fate::Delay(Duration::from_millis(60)) {
                    continue; // late enough to race the response: either side may see the collision
                }
                // The side whose request got through won: only its SA was ever complete.
                let delayed_side_is_initiator = dir == Dir::ToResponder;
                assert_eq!(
                    round.initiator_won, !delayed_side_is_initiator,
                    "{fate:?} {dir:?} seed {seed}"
                );
            }
        }
    }
}

/// An IKE SA rekey crossing a Child SA rekey (RFC 7296 §2.25.2: a peer rekeying a Child SA refuses
/// the IKE rekey with TEMPORARY_FAILURE; §2.25.1 likewise the other way round, as strongSwan does):
/// both are refused, both retry after a random 1–5 s, and both complete.
/// ```text
///  I (IKE rekey)                                   R (Child SA rekey)
///  CREATE_CHILD_SA {SA(IKE), Ni, KE} ---\   /--- CREATE_CHILD_SA {N(REKEY_SA), SA(ESP), Ni', KE, TS}
///  <-- {N(TEMPORARY_FAILURE)}            X       {N(TEMPORARY_FAILURE)} -->
///  retry after 1–5 s                             retry after 1–5 s (one finishes before the other)
/// ```
#[test]
fn ike_rekey_crossing_a_child_rekey_is_retried_and_both_complete() {
    for seed in 1..=6 {
        let latency = Duration::from_millis(50);
        let skew = latency - Duration::from_millis(10);
        let mut p = timed_pair(
            seed,
            latency,
            (secs(60), secs(3600)),
            (secs(3600), secs(60) + skew),
        );
        let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
        run_stamped(&mut p, Duration::from_secs(44), &mut ti, &mut tr);
        let before = p.initiator.spis();
        let child_before = p.initiator.status().child_spis;
        run_stamped(&mut p, Duration::from_secs(16), &mut ti, &mut tr);
        debug_dump(&p, &ti, &tr);
        assert_one_ike_sa(&p, "after both rekeys");
        assert_one_pair(&p, &ti, &tr);
        assert_ne!(p.initiator.spis(), before);
        assert_ne!(p.initiator.status().child_spis, child_before);
        assert_child_keys_agree(&ti, &tr);
        assert_eq!(ike_rekeys(&ti, 44_000).len(), 1);
        assert_eq!(ike_rekeys(&tr, 44_000).len(), 1);
        // Each side was refused once and tried again.
        assert_eq!(
            p.count(Dir::ToResponder, CREATE_CHILD_SA, false),
            2,
            "seed {seed}"
        );
        assert_eq!(
            p.count(Dir::ToInitiator, CREATE_CHILD_SA, false),
            2,
            "seed {seed}"
        );
        assert!(failures(&ti).is_empty() && failures(&tr).is_empty());
        let end = (p.now - p.start).as_millis() as u64;
        assert_hitless(&ti, &tr, 1_000, end - 51, 50);
    }
}

/// An IKE SA rekey crossing the peer's DELETE of that IKE SA (RFC 7296 §2.25.2): the side closing
/// answers the rekey with TEMPORARY_FAILURE, the side rekeying answers the DELETE and forgets its
/// rekey; both end Closed, having reported the Child SA down once and no IkeRekeyed.
/// ```text
///  A (rekeying)                                      B (closing)
///  CREATE_CHILD_SA {SA, Ni, KE} ---\   /--- INFORMATIONAL {D(IKE)}
///  answered {}, Closed              \ /     <-- {N(TEMPORARY_FAILURE)}
///                                    X      {} -->: Closed
///  {N(TEMPORARY_FAILURE)} arrives: no SA any more → dropped
/// ```
#[test]
fn ike_rekey_crossing_the_peers_delete_closes_both() {
    for closer_is_responder in [true, false] {
        let (rekeying, closing) = ((secs(60), secs(3600)), (secs(3600), secs(3600)));
        let (i, r) = if closer_is_responder {
            (rekeying, closing)
        } else {
            (closing, rekeying)
        };
        let mut p = timed_pair(9, Duration::from_millis(50), i, r);
        let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
        // Once the rekey request is on the wire, the other side closes at once.
        let rekeyer = if closer_is_responder {
            Dir::ToResponder
        } else {
            Dir::ToInitiator
        };
        until_rekey_request(&mut p, rekeyer, &mut ti, &mut tr);
        close_and_settle(&mut p, !closer_is_responder, &mut ti, &mut tr);
        for t in [&ti, &tr] {
            assert!(ike_rekeys(t, 0).is_empty());
            let downs = t
                .events
                .iter()
                .filter(|(_, e)| matches!(e, Event::ChildDown { .. }))
                .count();
            assert_eq!(downs, 1);
            assert!(failures(t).is_empty(), "{:?}", failures(t));
        }
        // The rekeying side got TEMPORARY_FAILURE, after it had closed: nothing was retried.
        assert_eq!(p.count(rekeyer, CREATE_CHILD_SA, false), 1);
    }
}

// ---------------------------------------------------------------------------------------------------
// Graceful close with a request in flight (window of one, RFC 7296 §2.3): the DELETE waits for the
// response and goes out the moment it arrives, or after `cgwd::ike::CLOSE_WAIT` without one.

/// Run until `dir`'s side has put its first CREATE_CHILD_SA request on the wire (at 45 s).
fn until_rekey_request(p: &mut Pair, dir: Dir, ti: &mut Timeline, tr: &mut Timeline) {
    run_stamped(p, Duration::from_secs(44), ti, tr);
    assert_eq!(p.initiator.state(), State::Established);
    while p.count(dir, CREATE_CHILD_SA, false) == 0 {
        run_stamped(p, Duration::from_millis(1), ti, tr);
    }
}

/// One side closes now; 5 s later both must be Closed. Returns when (ms) the close happened.
fn close_and_settle(p: &mut Pair, initiator_closes: bool, ti: &mut Timeline, tr: &mut Timeline) -> u64 {
    let now = p.now;
    if initiator_closes {
        p.initiator.close(now);
    } else {
        p.responder.as_mut().expect("a responder").close(now);
    }
    p.collect();
    run_stamped(p, Duration::from_secs(5), ti, tr);
    debug_dump(p, ti, tr);
    assert_eq!(p.initiator.state(), State::Closed);
    assert_eq!(p.responder().state(), State::Closed);
    (now - p.start).as_millis() as u64
}

/// When (ms) each side reported `Closed`.
fn closed_at(t: &Timeline) -> Option<u64> {
    t.events
        .iter()
        .find(|(_, e)| matches!(e, Event::Closed))
        .map(|(at, _)| *at)
}

/// cgwd closes (shutdown) while its Child SA rekey is in flight. The DELETE follows the rekey's
/// response at once; if that response is lost, it goes out after CLOSE_WAIT. Either way the peer sees
/// it, both sides end Closed, and cgwd never announces the Child SA the rekey made.
/// ```text
///  cgwd                                                 peer
///  CREATE_CHILD_SA {N(REKEY_SA), SA, Ni, KE, TS} -->
///  close(): DELETE queued, window busy                  answered (new SA inbound only)
///  <-- {SA, Nr, KE, TS}   (or lost: wait CLOSE_WAIT)
///  INFORMATIONAL {D(IKE)} -->                           Closed (all Child SAs down)
///  <-- {}: Closed
/// ```
#[test]
fn close_during_a_child_rekey_sends_the_delete_after_its_response() {
    for lose_response in [false, true] {
        let long = (secs(3600), secs(3600));
        let mut p = timed_pair(21, Duration::from_millis(50), (secs(3600), secs(60)), long);
        if lose_response {
            p.policy = disturb(Dir::ToInitiator, (CREATE_CHILD_SA, true), Fate::Drop);
        }
        let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
        until_rekey_request(&mut p, Dir::ToResponder, &mut ti, &mut tr);
        let ups_before = Pair::child_ups(&ti.events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>()).len();
        let infos = p.count(Dir::ToResponder, INFORMATIONAL, false);
        let closing = close_and_settle(&mut p, true, &mut ti, &mut tr);
        let delete_at = p
            .wire
            .iter()
            .filter(|s| s.dir == Dir::ToResponder && s.exchange == INFORMATIONAL && !s.response)
            .nth(infos)
            .map(|s| s.at.as_millis() as u64)
            .expect("a DELETE");
        assert!(delete_at > closing, "window busy: no DELETE at close() itself");
        let peer_closed = closed_at(&tr).expect("the peer saw the DELETE");
        let bound = if lose_response {
            cgwd::ike::CLOSE_WAIT.as_millis() as u64 + 60
        } else {
            // The rekey's round trip, then the DELETE's way.
            160
        };
        assert!(
            peer_closed - closing <= bound,
            "lost response {lose_response}: the peer closed {} ms after close()",
            peer_closed - closing
        );
        let ups_after = Pair::child_ups(&ti.events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>()).len();
        assert_eq!(ups_after, ups_before, "no Child SA announced while closing");
        assert!(failures(&ti).is_empty(), "{:?}", failures(&ti));
        assert!(failures(&tr).is_empty(), "{:?}", failures(&tr));
        // The rekey was retransmitted (once, within CLOSE_WAIT) only when its response was lost.
        let rekeys = p.count(Dir::ToResponder, CREATE_CHILD_SA, false);
        assert_eq!(rekeys, if lose_response { 2 } else { 1 });
    }
}

/// cgwd closes while its IKE SA rekey is in flight: the rekey completes (the peer moved the Child SA
/// to the new IKE SA), the old IKE SA is deleted as after any rekey, and the DELETE goes over the new
/// one; both sides end Closed.
#[test]
fn close_during_an_ike_rekey_deletes_the_new_ike_sa() {
    let long = (secs(3600), secs(3600));
    let mut p = timed_pair(22, Duration::from_millis(50), (secs(60), secs(3600)), long);
    let (mut ti, mut tr) = (Timeline::default(), Timeline::default());
    until_rekey_request(&mut p, Dir::ToResponder, &mut ti, &mut tr);
    let closing = close_and_settle(&mut p, true, &mut ti, &mut tr);
    assert!(closed_at(&tr).unwrap() - closing <= 160);
    assert!(failures(&ti).is_empty() && failures(&tr).is_empty());
}
