//! A BGP session fed arbitrary bytes in arbitrary pieces, with time passing: no panic, bounded
//! buffers, and once it has gone down it stays quiet until reconnected.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cgwd::bgp::session::{Announcement, Session, SessionConfig, SessionState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new(SessionConfig {
        local_as: 65000,
        peer_as: 64512,
        router_id: Ipv4Addr::new(169, 254, 10, 6),
        hold_time: 30,
        next_hop: Ipv4Addr::new(169, 254, 10, 6),
        next_hop_v6: None,
    });
    s.set_announcements(vec![Announcement {
        prefix: "10.0.0.0/16".parse().unwrap(),
        prepend: 1,
    }]);
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    s.connected(now);
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let take = usize::from(n % 64).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        s.handle_bytes(now, piece);
        now += Duration::from_millis(u64::from(n) * 50);
        s.handle_timeout(now);
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        if s.state() == SessionState::Idle {
            s.handle_bytes(now, piece);
            assert!(s.poll_transmit().is_none());
        }
        rest = tail;
    }
});
