//! Arbitrary datagrams against a responder IkeSa (seeded randomness, fixed config): it must never panic,
//! never emit more than one reply per datagram, and — once established — never leave the Established
//! state because of unauthenticated input.
//!
//! Input: `mode | datagrams...`, each datagram prefixed by a 2-octet length.
//! * mode % 3 == 0: the first datagram starts a responder (`IkeSa::responder`), the rest are fed to it;
//! * mode % 3 == 1: a real initiator first establishes with the responder in process, then every
//!   datagram goes to the established responder (and to the initiator);
//! * mode % 3 == 2: a real IKE_SA_INIT request, patched by the input (3-octet `position, value`
//!   patches), starts a responder — reaching proposal selection and key exchange with hostile values.
//!
//! mode ≥ 128: both sides have IPv6 traffic selectors (an IPv6-inside tunnel), so hostile TSi/TSr
//! meet the IPv6 narrowing too.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::crypto::SeededRandom;
use cgwd::ike::{IkeConfig, IkeSa, State};
use cgwd::sa::{TrafficSelector, TunnelId};
use cgwd::secret::Secret;
use cgwd::suite::{DhGroup, Encryption, Integrity};
use libfuzzer_sys::fuzz_target;

fn config(v6: bool) -> IkeConfig {
    let mut c = IkeConfig::aws_defaults(
        TunnelId::One,
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(198, 51, 100, 11),
        Secret::from_slice(b"fuzzing PSK"),
    );
    // One cheap group keeps iterations fast; every encryption and integrity stays allowed.
    c.ike.dh = vec![DhGroup::new(19).unwrap()];
    c.ike.encryption = Encryption::ALL.to_vec();
    c.ike.integrity = Integrity::ALL.to_vec();
    if v6 {
        c.local_ts = TrafficSelector::ANY_V6;
        c.remote_ts = TrafficSelector::ANY_V6;
    }
    c
}

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 64 {
        let n = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        out.push(&data[2..2 + n]);
        data = &data[2 + n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    // The responder plays AWS (198.51.100.11); the initiator is cgwd (192.0.2.10).
    let aws: SocketAddr = "198.51.100.11:500".parse().unwrap();
    let cgw: SocketAddr = "192.0.2.10:500".parse().unwrap();
    let v6 = mode >= 128;
    let responder_cfg = Arc::new(config(v6).mirrored());
    let datagrams = split(rest);

    if mode % 3 == 2 {
        let mut init = IkeSa::initiator(Arc::new(config(v6)), now, Box::new(SeededRandom::new(4)));
        let Some(t) = init.poll_transmit() else {
            return;
        };
        let mut msg = t.data;
        for patch in rest.chunks_exact(3) {
            let pos = usize::from(u16::from_be_bytes([patch[0], patch[1]])) % msg.len();
            msg[pos] = patch[2];
        }
        if let Ok(mut sa) =
            IkeSa::responder(responder_cfg, now, Box::new(SeededRandom::new(5)), &msg, cgw, aws)
        {
            while let Some(reply) = sa.poll_transmit() {
                init.handle_datagram(now, aws, cgw, &reply.data);
            }
            while sa.poll_event().is_some() {}
            while init.poll_transmit().is_some() {}
        }
        return;
    }

    if mode % 3 == 0 {
        let Some((first, more)) = datagrams.split_first() else {
            return;
        };
        let Ok(mut sa) = IkeSa::responder(
            responder_cfg,
            now,
            Box::new(SeededRandom::new(1)),
            first,
            cgw,
            aws,
        ) else {
            return;
        };
        for d in more {
            now += Duration::from_millis(100);
            sa.handle_datagram(now, cgw, aws, d);
            sa.handle_timeout(now);
            let mut replies = 0;
            while sa.poll_transmit().is_some() {
                replies += 1;
            }
            assert!(replies <= 2);
            while sa.poll_event().is_some() {}
        }
        return;
    }

    // Establish for real, then attack both ends.
    let mut init = IkeSa::initiator(Arc::new(config(v6)), now, Box::new(SeededRandom::new(2)));
    let mut resp: Option<IkeSa> = None;
    for _ in 0..8 {
        while let Some(t) = init.poll_transmit() {
            match resp.as_mut() {
                None => {
                    resp = IkeSa::responder(
                        responder_cfg.clone(),
                        now,
                        Box::new(SeededRandom::new(3)),
                        &t.data,
                        t.from,
                        t.to,
                    )
                    .ok()
                }
                Some(r) => r.handle_datagram(now, t.from, t.to, &t.data),
            }
        }
        if let Some(r) = resp.as_mut() {
            while let Some(t) = r.poll_transmit() {
                init.handle_datagram(now, t.from, t.to, &t.data);
            }
        }
    }
    let mut resp = resp.expect("in-process establishment works");
    assert_eq!(init.state(), State::Established);
    assert_eq!(resp.state(), State::Established);
    for d in datagrams {
        resp.handle_datagram(now, cgw, aws, d);
        init.handle_datagram(now, aws, cgw, d);
        assert_eq!(
            resp.state(),
            State::Established,
            "unauthenticated input changed the responder"
        );
        assert_eq!(
            init.state(),
            State::Established,
            "unauthenticated input changed the initiator"
        );
        while resp.poll_transmit().is_some() {}
        while init.poll_transmit().is_some() {}
    }
});
