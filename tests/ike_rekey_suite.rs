//! IKE SA rekeys that change the suite, in-process on a virtual clock (cgwd ↔ cgwd playing AWS).
//!
//! The production failure this guards against: AWS started an IKE SA rekey, cgwd chose a suite with
//! another PRF, and keyed the new SA by RFC 7296 §2.18 read literally (prf+ with the new PRF) where
//! AWS's side (strongSwan) runs prf+ with the old PRF; every later message failed the peer's
//! integrity check. cgwd now keeps the PRF across IKE SA rekeys (so both readings agree), accepts the
//! peer's KE group when the tunnel options allow it, and, should the PRF change anyway, keys the SA
//! strongSwan's way first and the RFC's way too until the peer's first message shows which it used.
//! (`tests/crypto_vectors.rs` pins strongSwan's derivation with a captured vector.)
//!
//! Each case checks what the production failure broke: after the rekey both sides exchange
//! INFORMATIONAL (DPD) and CREATE_CHILD_SA (a Child SA rekey) on the new IKE SA in both directions,
//! each side answers the other's request and each request is sent once (its answer opened), and both
//! end with the same IKE SA and Child SA.
//!
//! The AWS side (`Selection::Lowest`) picks the lowest option offered and guesses its lowest allowed
//! KE group at every exchange, as AWS (and strongSwan playing AWS) does.

mod common;

use std::time::Duration;

use cgwd::crypto::RekeyPrfPlus;
use cgwd::ike::proposal::Selection;
use cgwd::ike::{AlgorithmSet, Event, IkeConfig, IkeSa, RekeyKeyPolicy, State};
use cgwd::suite::{DhGroup, Encryption, Integrity, Suite};
use common::pair::{Dir, INFORMATIONAL, Pair, config};

const CREATE_CHILD_SA: u8 = 36;

fn set(e: &[Encryption], i: &[Integrity], d: &[u16]) -> AlgorithmSet {
    AlgorithmSet {
        encryption: e.to_vec(),
        integrity: i.to_vec(),
        dh: d.iter().map(|&n| DhGroup::new(n).unwrap()).collect(),
    }
}

fn gcm_both() -> Vec<Encryption> {
    vec![Encryption::Aes128Gcm16, Encryption::Aes256Gcm16]
}

fn sha256_512() -> Vec<Integrity> {
    vec![Integrity::Sha2_256, Integrity::Sha2_512]
}

/// One side's configuration: algorithms for both phases, AWS's role or cgwd's, a rekey-key policy.
fn side(algs: AlgorithmSet, aws: bool, policy: RekeyKeyPolicy) -> IkeConfig {
    let mut c = if aws { config().mirrored() } else { config() };
    c.ike = algs.clone();
    c.esp = algs;
    c.selection = if aws {
        Selection::Lowest
    } else {
        Selection::Strongest
    };
    c.rekey_keys = policy;
    c
}

/// The policy with PRF keeping off (on both sides), so that a rekey can change the PRF, as it would
/// with a peer whose offer lacks the current PRF.
fn prf_may_change() -> RekeyKeyPolicy {
    RekeyKeyPolicy {
        keep_prf: false,
        ..RekeyKeyPolicy::default()
    }
}

/// A peer that derives a PRF-changing rekey one way only: strongSwan's, or the RFC's literal reading.
fn strict(first: RekeyPrfPlus) -> RekeyKeyPolicy {
    RekeyKeyPolicy {
        keep_prf: false,
        first,
        try_other: false,
    }
}

/// cgwd and the AWS side in a [`Pair`]; `aws_initiates` makes AWS open the IKE SA (StartupAction
/// start), else cgwd does.
struct Tunnel {
    p: Pair,
    aws_initiates: bool,
}

impl Tunnel {
    fn up(cgwd: IkeConfig, aws: IkeConfig, aws_initiates: bool, seed: u64) -> Tunnel {
        let p = if aws_initiates {
            Pair::new(aws, cgwd, seed)
        } else {
            Pair::new(cgwd, aws, seed)
        };
        let mut t = Tunnel { p, aws_initiates };
        t.p.run_for(Duration::from_secs(3));
        assert_eq!(t.cgwd().state(), State::Established);
        assert_eq!(t.aws().state(), State::Established);
        assert_eq!(t.cgwd().status().ike_suite, t.aws().status().ike_suite);
        t
    }

    fn cgwd(&self) -> &IkeSa {
        if self.aws_initiates {
            self.p.responder()
        } else {
            &self.p.initiator
        }
    }

    fn aws(&self) -> &IkeSa {
        if self.aws_initiates {
            &self.p.initiator
        } else {
            self.p.responder()
        }
    }

    /// Act on one side now (`cgwd` or AWS), then run the network for `d`.
    fn act(&mut self, on_cgwd: bool, d: Duration, f: impl FnOnce(&mut IkeSa, std::time::Instant)) {
        let now = self.p.now;
        let on_initiator = on_cgwd != self.aws_initiates;
        if on_initiator {
            f(&mut self.p.initiator, now);
        } else {
            f(self.p.responder.as_mut().expect("responder"), now);
        }
        self.p.collect();
        self.p.run_for(d);
    }

    /// Messages AWS sent since wire index `from`: (exchange, response).
    fn dir_of_aws(&self) -> Dir {
        if self.aws_initiates {
            Dir::ToResponder
        } else {
            Dir::ToInitiator
        }
    }

    fn count_since(&self, from: usize, dir: Dir, exchange: u8, response: bool) -> usize {
        self.p.wire[from..]
            .iter()
            .filter(|s| s.dir == dir && s.exchange == exchange && s.response == response)
            .count()
    }

    fn ike_suite(&self) -> Suite {
        let s = self.cgwd().status().ike_suite.expect("suite");
        assert_eq!(
            Some(s),
            self.aws().status().ike_suite,
            "both sides run the same suite"
        );
        s
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Pair::failures(&self.p.initiator_events);
        f.extend(Pair::failures(&self.p.responder_events));
        f
    }

    fn rekeyed(&self) -> (usize, usize) {
        let n = |ev: &[Event]| {
            ev.iter()
                .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
                .count()
        };
        (n(&self.p.initiator_events), n(&self.p.responder_events))
    }

    /// Rekey the IKE SA from one side: the suite it ends with and how many CREATE_CHILD_SA requests
    /// that took (2 = one INVALID_KE_PAYLOAD retry).
    fn rekey_ike(&mut self, by_cgwd: bool) -> (Suite, usize) {
        let mark = self.p.wire.len();
        let before = self.rekeyed();
        let old_spis = self.cgwd().spis();
        self.act(by_cgwd, Duration::from_secs(3), |sa, now| sa.rekey_now(now, true));
        let after = self.rekeyed();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "one IkeRekeyed each side"
        );
        assert_ne!(self.cgwd().spis(), old_spis);
        assert_eq!(self.cgwd().spis(), self.aws().spis());
        let requester = if by_cgwd == self.aws_initiates {
            Dir::ToInitiator
        } else {
            Dir::ToResponder
        };
        let requests = self.count_since(mark, requester, CREATE_CHILD_SA, false);
        (self.ike_suite(), requests)
    }

    /// On the current IKE SA: DPD from cgwd, DPD from AWS, a Child SA rekey from cgwd, one from AWS.
    /// Each request is answered and sent exactly once: both sides open each other's messages.
    fn both_talk(&mut self) {
        let spis = self.cgwd().spis();
        let dropped = (self.cgwd().dropped, self.aws().dropped);
        let mark = self.p.wire.len();
        for on_cgwd in [true, false] {
            self.act(on_cgwd, Duration::from_secs(4), |sa, now| sa.check_liveness(now));
            self.act(on_cgwd, Duration::from_secs(4), |sa, now| {
                sa.rekey_now(now, false)
            });
        }
        let aws = self.dir_of_aws();
        let cgwd = if aws == Dir::ToInitiator {
            Dir::ToResponder
        } else {
            Dir::ToInitiator
        };
        for (dir, who) in [(cgwd, "cgwd"), (aws, "AWS")] {
            for (exchange, name) in [
                (INFORMATIONAL, "INFORMATIONAL"),
                (CREATE_CHILD_SA, "CREATE_CHILD_SA"),
            ] {
                let asked = self.count_since(mark, dir, exchange, false);
                let other = if dir == cgwd { aws } else { cgwd };
                let answered = self.count_since(mark, other, exchange, true);
                assert!(asked >= 1, "{who} sent no {name} request");
                assert!(answered >= 1, "{who}'s {name} went unanswered");
            }
        }
        // No retransmission: every request's answer was opened the first time.
        let mut ids = std::collections::BTreeMap::new();
        for s in &self.p.wire[mark..] {
            if !s.response {
                *ids.entry((s.dir as u8, s.msg_id)).or_insert(0) += 1;
            }
        }
        assert!(
            ids.values().all(|&n| n == 1),
            "a request was retransmitted: {ids:?}"
        );
        assert_eq!(
            (self.cgwd().dropped, self.aws().dropped),
            dropped,
            "a message failed to open"
        );
        assert_eq!(self.cgwd().spis(), spis, "still the same IKE SA");
        self.converged();
    }

    /// Both sides up, on the same IKE SA and Child SA, with no failure reported.
    fn converged(&self) {
        assert_eq!(self.failures(), Vec::<String>::new());
        assert_eq!(self.cgwd().state(), State::Established);
        assert_eq!(self.aws().state(), State::Established);
        assert_eq!(self.cgwd().spis(), self.aws().spis());
        let (i, o) = self.cgwd().status().child_spis.expect("a Child SA");
        assert_eq!(self.aws().status().child_spis, Some((o, i)));
    }
}

fn suite(e: Encryption, prf: Integrity, dh: u16) -> Suite {
    Suite {
        encryption: e,
        integrity: None,
        prf: Some(prf),
        dh: DhGroup::new(dh),
    }
}

/// AWS rekeys; its KE guess (its lowest group, MODP-2048) is one cgwd allows, so no round trip: the
/// new SA gets the strongest cipher of AWS's offer and keeps the PRF (cgwd's policy), or, with PRF
/// keeping off, the strongest PRF too — encryption key size and PRF changed in one exchange.
#[test]
fn aws_rekey_changes_the_suite_directly() {
    for (policy, prf) in [
        (RekeyKeyPolicy::default(), Integrity::Sha2_256),
        (prf_may_change(), Integrity::Sha2_512),
    ] {
        let algs = set(&gcm_both(), &sha256_512(), &[14, 19, 20]);
        let mut t = Tunnel::up(
            side(algs.clone(), false, policy),
            side(algs, true, policy),
            false,
            1,
        );
        // cgwd's KE guess (ECP-384) met AWS's lowest-option rule: the IKE SA runs MODP-2048.
        assert_eq!(
            t.ike_suite(),
            suite(Encryption::Aes128Gcm16, Integrity::Sha2_256, 14)
        );
        let (new, requests) = t.rekey_ike(false);
        assert_eq!(new, suite(Encryption::Aes256Gcm16, prf, 14));
        assert_eq!(requests, 1, "no INVALID_KE_PAYLOAD round trip");
        t.both_talk();
        // And again, from the new SA.
        let (again, _) = t.rekey_ike(false);
        assert_eq!(again, new);
        t.both_talk();
    }
}

/// AWS rekeys guessing MODP-1024 (its lowest), which cgwd's options do not allow: cgwd answers
/// INVALID_KE_PAYLOAD naming its strongest group, AWS retries with it, and the new SA changes
/// cipher key size, DH group and (PRF keeping off) PRF — the exact path that failed in production.
#[test]
fn aws_rekey_changes_the_suite_after_invalid_ke() {
    for (policy, prf) in [
        (RekeyKeyPolicy::default(), Integrity::Sha2_256),
        (prf_may_change(), Integrity::Sha2_512),
    ] {
        let mut t = Tunnel::up(
            side(set(&gcm_both(), &sha256_512(), &[14, 19, 20]), false, policy),
            side(set(&gcm_both(), &sha256_512(), &[2, 14, 19, 20]), true, policy),
            false,
            2,
        );
        assert_eq!(
            t.ike_suite(),
            suite(Encryption::Aes128Gcm16, Integrity::Sha2_256, 14)
        );
        let (new, requests) = t.rekey_ike(false);
        assert_eq!(requests, 2, "one INVALID_KE_PAYLOAD retry");
        assert_eq!(new, suite(Encryption::Aes256Gcm16, prf, 20));
        t.both_talk();
    }
}

/// cgwd rekeys an SA it chose as responder (the strongest cipher and PRF, AWS's KE group): AWS picks
/// the lowest of cgwd's offer, so the cipher changes in one exchange; cgwd's offer names the current
/// PRF alone, or (PRF keeping off) every PRF, and AWS then takes the lowest.
#[test]
fn cgwd_rekey_changes_the_suite_directly() {
    for (policy, prf) in [
        (RekeyKeyPolicy::default(), Integrity::Sha2_512),
        (prf_may_change(), Integrity::Sha2_256),
    ] {
        let algs = set(&gcm_both(), &sha256_512(), &[14, 19, 20]);
        let mut t = Tunnel::up(
            side(algs.clone(), false, policy),
            side(algs, true, policy),
            true,
            3,
        );
        assert_eq!(
            t.ike_suite(),
            suite(Encryption::Aes256Gcm16, Integrity::Sha2_512, 14)
        );
        let (new, requests) = t.rekey_ike(true);
        assert_eq!(requests, 1);
        assert_eq!(new, suite(Encryption::Aes128Gcm16, prf, 14));
        t.both_talk();
    }
}

/// cgwd rekeys guessing the SA's group (ECP-384, which it took after asking AWS for it), AWS wants its
/// lowest allowed of cgwd's offer (ECP-256): INVALID_KE_PAYLOAD, an immediate retry, and a new SA
/// with another cipher and group.
#[test]
fn cgwd_rekey_changes_the_suite_after_invalid_ke() {
    for (policy, prf) in [
        (RekeyKeyPolicy::default(), Integrity::Sha2_512),
        (prf_may_change(), Integrity::Sha2_256),
    ] {
        let mut t = Tunnel::up(
            side(set(&gcm_both(), &sha256_512(), &[19, 20]), false, policy),
            side(set(&gcm_both(), &sha256_512(), &[14, 19, 20]), true, policy),
            true,
            4,
        );
        assert_eq!(
            t.ike_suite(),
            suite(Encryption::Aes256Gcm16, Integrity::Sha2_512, 20)
        );
        let (new, requests) = t.rekey_ike(true);
        assert_eq!(requests, 2, "one INVALID_KE_PAYLOAD retry");
        assert_eq!(new, suite(Encryption::Aes128Gcm16, prf, 19));
        t.both_talk();
    }
}

/// The PRF changes against peers that key such an SA one way only, whoever rekeys: strongSwan's way
/// (cgwd's first choice) works at once; the RFC's literal way is found from the peer's first message
/// (or the answer to a retransmission sealed the other way) and both sides then talk normally.
#[test]
fn a_prf_change_settles_on_the_peers_reading() {
    for reading in [RekeyPrfPlus::OldPrf, RekeyPrfPlus::NewPrf] {
        for by_cgwd in [false, true] {
            let algs = set(&gcm_both(), &sha256_512(), &[14, 19, 20]);
            let aws_initiates = by_cgwd;
            let mut t = Tunnel::up(
                side(algs.clone(), false, prf_may_change()),
                side(algs, true, strict(reading)),
                aws_initiates,
                5,
            );
            let before = t.ike_suite().prf;
            let (new, _) = t.rekey_ike(by_cgwd);
            assert_ne!(
                new.prf, before,
                "the PRF changed ({reading:?}, cgwd rekeys: {by_cgwd})"
            );
            // cgwd speaks first on the new SA: under strongSwan's keys, which a literal-RFC peer
            // drops; the retransmission goes under the other keys and its answer settles it.
            let dropped = t.aws().dropped;
            t.act(true, Duration::from_secs(6), |sa, now| sa.check_liveness(now));
            let expected = usize::from(reading == RekeyPrfPlus::NewPrf) as u64;
            assert_eq!(
                t.aws().dropped - dropped,
                expected,
                "{reading:?}: first try dropped by the peer"
            );
            t.act(false, Duration::from_secs(4), |sa, now| sa.check_liveness(now));
            t.converged();
            // From then on nothing is lost in either direction.
            t.both_talk();
        }
    }
}
