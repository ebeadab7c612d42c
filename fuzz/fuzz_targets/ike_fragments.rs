//! RFC 7383 reassembly under hostile input: it must never panic, never hold more than its limits, and
//! never accept a fragment that fails authentication.
//!
//! Input: `mode | ops...`
//! * mode even — the bare [`Reassembler`]: 6-octet ops `msg_id, number, total, first, len(2)` each
//!   followed by `len` chunk octets (capped by what is left), time advancing 1 s per op;
//! * mode odd — a real responder waiting for a fragmented IKE_AUTH (captured once from an in-process
//!   initiator with a tiny fragment size): 4-octet ops `fragment index, position(2), xor` deliver that
//!   fragment, with one octet flipped when `xor` is non-zero (a forgery: it must be dropped).
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cgwd::crypto::SeededRandom;
use cgwd::ike::frag::{MAX_MESSAGE_LEN, Offer, Reassembler};
use cgwd::ike::{IkeConfig, IkeSa, State};
use cgwd::sa::TunnelId;
use cgwd::secret::Secret;
use cgwd::suite::DhGroup;
use cgwd::wire::ike::{Fragment, PayloadType};
use libfuzzer_sys::fuzz_target;

const RESPONDER_SEED: u64 = 11;

fn initiator_config() -> IkeConfig {
    let mut c = IkeConfig::aws_defaults(
        TunnelId::One,
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(198, 51, 100, 11),
        Secret::from_slice(b"fragment fuzzing PSK"),
    );
    c.ike.dh = vec![DhGroup::new(19).unwrap()];
    c.fragmentation.max_datagram = 160;
    c
}

/// The initiator's IKE_SA_INIT request and its IKE_AUTH fragments, encrypted under the keys a
/// responder seeded with `RESPONDER_SEED` derives from that request.
struct Captured {
    init: Vec<u8>,
    from: SocketAddr,
    to: SocketAddr,
    fragments: Vec<Vec<u8>>,
}

#[allow(clippy::disallowed_methods)] // a fuzz harness: real time only as a base
fn now() -> Instant {
    Instant::now()
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let cfg = initiator_config();
        let rcfg = Arc::new(cfg.mirrored());
        let t0 = now();
        let mut init = IkeSa::initiator(Arc::new(cfg), t0, Box::new(SeededRandom::new(10)));
        let first = init.poll_transmit().expect("IKE_SA_INIT request");
        let mut resp = IkeSa::responder(
            rcfg,
            t0,
            Box::new(SeededRandom::new(RESPONDER_SEED)),
            &first.data,
            first.from,
            first.to,
        )
        .expect("responder");
        while let Some(t) = resp.poll_transmit() {
            init.handle_datagram(t0, t.from, t.to, &t.data);
        }
        let mut fragments = Vec::new();
        while let Some(t) = init.poll_transmit() {
            fragments.push(t.data);
        }
        assert!(fragments.len() > 1, "IKE_AUTH is fragmented at 160 octets");
        Captured {
            init: first.data,
            from: first.from,
            to: first.to,
            fragments,
        }
    })
}

fn bare_reassembler(mut data: &[u8]) {
    let t0 = now();
    let mut r = Reassembler::default();
    let mut step = 0u64;
    while data.len() >= 6 {
        let (op, rest) = data.split_at(6);
        let len = usize::from(u16::from_be_bytes([op[4], op[5]])).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        data = rest;
        step += 1;
        let Ok(frag) = Fragment::new(u16::from(op[1]), u16::from(op[2])) else {
            continue;
        };
        let at = t0 + Duration::from_secs(step);
        if let Offer::Complete { inner, .. } =
            r.offer(at, (1, 2), u32::from(op[0]), frag, PayloadType(op[3]), chunk)
        {
            assert!(inner.len() <= MAX_MESSAGE_LEN);
        }
        assert!(r.buffered() <= MAX_MESSAGE_LEN);
    }
}

fn responder_under_attack(ops: &[u8]) {
    let c = captured();
    let t0 = now();
    let rcfg = Arc::new(initiator_config().mirrored());
    let Ok(mut sa) = IkeSa::responder(
        rcfg,
        t0,
        Box::new(SeededRandom::new(RESPONDER_SEED)),
        &c.init,
        c.from,
        c.to,
    ) else {
        return;
    };
    while sa.poll_transmit().is_some() {}
    // Fragments travel on 4500 after IKE_SA_INIT.
    let (mut from, mut to) = (c.from, c.to);
    from.set_port(4500);
    to.set_port(4500);
    for op in ops.chunks_exact(4).take(256) {
        let Some(original) = c.fragments.get(usize::from(op[0]) % c.fragments.len()) else {
            return;
        };
        let mut d = original.clone();
        let forged = op[3] != 0;
        if forged {
            let pos = usize::from(u16::from_be_bytes([op[1], op[2]])) % d.len();
            d[pos] ^= op[3];
        }
        let was = sa.state();
        sa.handle_datagram(t0, from, to, &d);
        if forged && was == State::InitDone {
            // A flipped octet anywhere fails parsing or the ICV (or names a fragment already held, which
            // is then ignored unread): it can never complete the message.
            assert_eq!(sa.state(), State::InitDone);
        }
        let mut replies = 0;
        while sa.poll_transmit().is_some() {
            replies += 1;
        }
        assert!(replies <= 64);
        while sa.poll_event().is_some() {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        bare_reassembler(rest);
    } else {
        responder_under_attack(rest);
    }
});
