//! Two sessions joined in-process on a virtual clock: cgwd's and AWS's.

use super::*;

fn cgwd() -> SessionConfig {
    SessionConfig {
        local_as: 65000,
        peer_as: 64512,
        router_id: Ipv4Addr::new(169, 254, 10, 6),
        hold_time: 30,
        next_hop: Ipv4Addr::new(169, 254, 10, 6),
        next_hop_v6: None,
    }
}

fn aws() -> SessionConfig {
    SessionConfig {
        local_as: 64512,
        peer_as: 65000,
        router_id: Ipv4Addr::new(169, 254, 10, 5),
        hold_time: 30,
        next_hop: Ipv4Addr::new(169, 254, 10, 5),
        next_hop_v6: None,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

struct Pair {
    now: Instant,
    a: Session,
    b: Session,
    a_events: Vec<SessionEvent>,
    b_events: Vec<SessionEvent>,
    /// Bytes stop flowing (a silent path).
    cut: bool,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        #[allow(clippy::disallowed_methods)] // the base of the virtual clock
        let now = Instant::now();
        Pair {
            now,
            a: Session::new(a),
            b: Session::new(b),
            a_events: Vec::new(),
            b_events: Vec::new(),
            cut: false,
        }
    }

    fn connect(&mut self) {
        self.a.connected(self.now);
        self.b.connected(self.now);
        self.pump();
    }

    /// Deliver everything in flight until quiet.
    fn pump(&mut self) {
        for _ in 0..20 {
            let mut moved = false;
            if let Some(bytes) = self.a.poll_transmit() {
                moved = true;
                if !self.cut {
                    self.b.handle_bytes(self.now, &bytes);
                }
            }
            if let Some(bytes) = self.b.poll_transmit() {
                moved = true;
                if !self.cut {
                    self.a.handle_bytes(self.now, &bytes);
                }
            }
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn learned(events: &[SessionEvent]) -> Vec<(IpNet, usize)> {
        events
            .iter()
            .flat_map(|e| match e {
                SessionEvent::Routes { announced, .. } => announced
                    .iter()
                    .map(|l| (l.prefix, l.attributes.as_path_len()))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

#[test]
fn sessions_establish_exchange_tables_and_end_of_rib() {
    let mut p = Pair::new(cgwd(), aws());
    p.a.set_announcements(vec![Announcement {
        prefix: net("10.0.0.0/16"),
        prepend: 0,
    }]);
    p.b.set_announcements(vec![Announcement {
        prefix: net("10.100.0.0/16"),
        prepend: 0,
    }]);
    p.connect();
    assert_eq!(p.a.state(), SessionState::Established);
    assert_eq!(p.b.state(), SessionState::Established);
    assert_eq!(
        p.a_events[0],
        SessionEvent::Established {
            peer_id: Ipv4Addr::new(169, 254, 10, 5),
            hold_time: 30
        }
    );
    assert_eq!(Pair::learned(&p.a_events), [(net("10.100.0.0/16"), 1)]);
    assert_eq!(Pair::learned(&p.b_events), [(net("10.0.0.0/16"), 1)]);
    assert!(p.a_events.contains(&SessionEvent::EndOfRib));
    // What cgwd learned names AWS's AS and next hop.
    let learned = p.a_events.iter().find_map(|e| match e {
        SessionEvent::Routes { announced, .. } => announced.first().cloned(),
        _ => None,
    });
    let l = learned.unwrap();
    assert_eq!(l.attributes.first_as(), Some(64512));
    assert_eq!(l.attributes.next_hop, Some(Ipv4Addr::new(169, 254, 10, 5)));
}

#[test]
fn changed_announcements_go_out_as_differences() {
    let mut p = Pair::new(cgwd(), aws());
    p.a.set_announcements(vec![
        Announcement {
            prefix: net("10.0.0.0/16"),
            prepend: 0,
        },
        Announcement {
            prefix: net("10.1.0.0/16"),
            prepend: 0,
        },
    ]);
    p.connect();
    p.b_events.clear();
    // Standby now: prepended twice; 10.1/16 gone; a more-specific added.
    p.a.set_announcements(vec![
        Announcement {
            prefix: net("10.0.0.0/16"),
            prepend: 2,
        },
        Announcement {
            prefix: net("10.0.0.0/17"),
            prepend: 0,
        },
    ]);
    p.pump();
    let withdrawn: Vec<IpNet> = p
        .b_events
        .iter()
        .flat_map(|e| match e {
            SessionEvent::Routes { withdrawn, .. } => withdrawn.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(withdrawn, [net("10.1.0.0/16")]);
    let mut learned = Pair::learned(&p.b_events);
    learned.sort();
    assert_eq!(learned, [(net("10.0.0.0/16"), 3), (net("10.0.0.0/17"), 1)]);
}

#[test]
fn keepalives_hold_the_session_and_silence_expires_it() {
    let mut p = Pair::new(cgwd(), aws());
    p.connect();
    p.run_for(Duration::from_secs(300));
    assert_eq!(p.a.state(), SessionState::Established, "keepalives every 10 s");
    p.cut = true;
    let cut_at = p.now;
    p.run_for(Duration::from_secs(31));
    assert_eq!(p.a.state(), SessionState::Idle);
    let down = p.a_events.iter().find_map(|e| match e {
        SessionEvent::Down(d) => Some(d.clone()),
        _ => None,
    });
    match down {
        Some(DownReason::Sent(n)) => assert_eq!((n.code, n.subcode), (code::HOLD_TIMER_EXPIRED, 0)),
        d => panic!("{d:?}"),
    }
    assert!(p.now.duration_since(cut_at) >= Duration::from_secs(30));
}

#[test]
fn a_wrong_peer_as_is_refused_with_bad_peer_as() {
    let mut wrong = aws();
    wrong.local_as = 64513;
    let mut p = Pair::new(cgwd(), wrong);
    p.connect();
    assert_eq!(p.a.state(), SessionState::Idle);
    assert!(matches!(
        p.a_events.last(),
        Some(SessionEvent::Down(DownReason::Sent(n))) if (n.code, n.subcode) == (code::OPEN, code::OPEN_BAD_PEER_AS)
    ));
    assert!(matches!(
        p.b_events.last(),
        Some(SessionEvent::Down(DownReason::Received(n))) if n.subcode == code::OPEN_BAD_PEER_AS
    ));
}

#[test]
fn four_octet_ases_on_both_sides() {
    let mut a = cgwd();
    a.local_as = 4_000_000_001;
    a.peer_as = 4_200_000_000;
    let mut b = aws();
    b.local_as = 4_200_000_000;
    b.peer_as = 4_000_000_001;
    let mut p = Pair::new(a, b);
    p.b.set_announcements(vec![Announcement {
        prefix: net("10.100.0.0/16"),
        prepend: 1,
    }]);
    p.connect();
    assert_eq!(p.a.state(), SessionState::Established);
    let l = p.a_events.iter().find_map(|e| match e {
        SessionEvent::Routes { announced, .. } => announced.first().cloned(),
        _ => None,
    });
    assert_eq!(
        l.unwrap().attributes.as_path,
        [Segment::Sequence(vec![4_200_000_000, 4_200_000_000])]
    );
}

#[test]
fn a_session_reset_mid_update_comes_back_with_the_full_table() {
    let mut p = Pair::new(cgwd(), aws());
    p.b.set_announcements(vec![Announcement {
        prefix: net("10.100.0.0/16"),
        prepend: 0,
    }]);
    p.connect();
    // Half an UPDATE, then the connection drops.
    let mut half = Message::Update(Update {
        withdrawn: vec![net("10.100.0.0/16")],
        ..Update::default()
    })
    .to_bytes(true);
    half.truncate(10);
    p.a.handle_bytes(p.now, &half);
    p.a.disconnected();
    p.b.disconnected();
    assert!(
        matches!(
            p.a_events.last(),
            Some(SessionEvent::Down(DownReason::ConnectionLost))
        ) || {
            while let Some(e) = p.a.poll_event() {
                p.a_events.push(e);
            }
            matches!(
                p.a_events.last(),
                Some(SessionEvent::Down(DownReason::ConnectionLost))
            )
        }
    );
    p.a_events.clear();
    p.connect();
    assert_eq!(p.a.state(), SessionState::Established);
    assert_eq!(Pair::learned(&p.a_events), [(net("10.100.0.0/16"), 1)]);
}

#[test]
fn fsm_errors_notifications_and_cease() {
    // An UPDATE before the OPEN: finite state machine error.
    let mut s = Session::new(cgwd());
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    s.connected(now);
    let _ = s.poll_transmit();
    s.handle_bytes(now, &Message::Update(Update::default()).to_bytes(true));
    assert_eq!(s.state(), SessionState::Idle);
    let sent = s.poll_transmit().unwrap();
    assert_eq!(&sent[18..21], &[3, code::FSM, 0]);
    // Garbage: header error, never a panic.
    s.connected(now);
    s.handle_bytes(now, &[0u8; 40]);
    assert_eq!(s.state(), SessionState::Idle);
    // Cease on shutdown, received as such.
    let mut p = Pair::new(cgwd(), aws());
    p.connect();
    p.a.close(code::CEASE_ADMIN_SHUTDOWN);
    p.pump();
    assert!(matches!(
        p.b_events.last(),
        Some(SessionEvent::Down(DownReason::Received(n))) if (n.code, n.subcode) == (code::CEASE, code::CEASE_ADMIN_SHUTDOWN)
    ));
    assert_eq!(p.b.state(), SessionState::Idle);
}

#[test]
fn hold_time_zero_means_no_timers() {
    let mut a = cgwd();
    a.hold_time = 0;
    let mut p = Pair::new(a, aws());
    p.connect();
    assert_eq!(p.a.hold_time(), 0);
    assert_eq!(p.a.poll_timeout(), None);
    p.cut = true;
    p.run_for(Duration::from_secs(3600));
    assert_eq!(p.a.state(), SessionState::Established);
}

/// Both sides open a connection at once (AWS's BGP is active too): each side runs a session per
/// connection until the OPENs name the identifiers, both resolve by RFC 4271 §6.8, and exactly
/// one connection carries the session, with our table, whichever identifier is higher.
#[test]
fn connection_collision_keeps_the_connection_of_the_higher_identifier() {
    for aws_id in [Ipv4Addr::new(169, 254, 10, 5), Ipv4Addr::new(250, 0, 0, 1)] {
        let aws_cfg = SessionConfig {
            router_id: aws_id,
            ..aws()
        };
        // Connection A: opened by cgwd (a.a is cgwd's session); B: opened by AWS.
        let mut a = Pair::new(cgwd(), aws_cfg.clone());
        let mut b = Pair::new(cgwd(), aws_cfg);
        a.a.set_announcements(vec![Announcement {
            prefix: net("10.0.0.0/16"),
            prepend: 0,
        }]);
        b.a = a.a.candidate();
        for p in [&mut a, &mut b] {
            p.a.connected(p.now);
            p.b.connected(p.now);
            // The OPENs cross; each side answers with a KEEPALIVE, not yet delivered.
            let (x, y) = (p.a.poll_transmit().unwrap(), p.b.poll_transmit().unwrap());
            p.b.handle_bytes(p.now, &x);
            p.a.handle_bytes(p.now, &y);
            assert_eq!(
                (p.a.state(), p.b.state()),
                (SessionState::OpenConfirm, SessionState::OpenConfirm)
            );
        }
        let cgwd_says = resolve_collision(a.a.state(), cgwd().router_id, b.a.peer_id().unwrap());
        let aws_says = resolve_collision(b.b.state(), aws_id, a.b.peer_id().unwrap());
        let aws_wins = u32::from(aws_id) > u32::from(cgwd().router_id);
        // Both sides keep the same connection: B (AWS's) exactly when AWS's identifier is higher.
        assert_eq!(cgwd_says == Collision::KeepIncoming, aws_wins);
        assert_eq!(aws_says == Collision::CloseIncoming, aws_wins);
        let (keep, drop) = if aws_wins {
            a.a.close(code::CEASE_COLLISION);
            let candidate = std::mem::replace(&mut b.a, Session::new(cgwd()));
            a.a.adopt(candidate);
            std::mem::swap(&mut a.a, &mut b.a);
            (b, a)
        } else {
            b.a.close(code::CEASE_COLLISION);
            (a, b)
        };
        let (mut keep, mut drop) = (keep, drop);
        drop.b.close(code::CEASE_COLLISION);
        drop.pump();
        keep.pump();
        assert_eq!(keep.a.state(), SessionState::Established, "AWS id {aws_id}");
        assert_eq!(keep.b.state(), SessionState::Established);
        assert_eq!(drop.b.state(), SessionState::Idle);
        assert_eq!(
            Pair::learned(&keep.b_events),
            vec![(net("10.0.0.0/16"), 1)],
            "the table went out on the surviving connection"
        );
        assert!(
            keep.a_events
                .iter()
                .any(|e| matches!(e, SessionEvent::Established { .. }))
        );
    }
}

#[test]
fn collision_rules() {
    let (lo, hi) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(169, 254, 10, 6));
    use SessionState::*;
    assert_eq!(resolve_collision(Established, lo, hi), Collision::CloseIncoming);
    assert_eq!(resolve_collision(Idle, hi, lo), Collision::KeepIncoming);
    for s in [OpenSent, OpenConfirm] {
        assert_eq!(resolve_collision(s, lo, hi), Collision::KeepIncoming);
        assert_eq!(resolve_collision(s, hi, lo), Collision::CloseIncoming);
    }
}

/// IPv6-inside tunnels: both sides offer IPv6 unicast, IPv6 prefixes go out in MP_REACH_NLRI with
/// our inside IPv6 address as next hop and come back withdrawn in MP_UNREACH_NLRI; the router ID
/// stays the IPv4 one.
#[test]
fn ipv6_prefixes_over_mp_bgp_with_the_inside_ipv6_next_hop() {
    let ours6: Ipv6Addr = "fd00:a9fe:10::2".parse().unwrap();
    let aws6: Ipv6Addr = "fd00:a9fe:10::1".parse().unwrap();
    let mut p = Pair::new(
        SessionConfig {
            next_hop_v6: Some(ours6),
            ..cgwd()
        },
        SessionConfig {
            next_hop_v6: Some(aws6),
            ..aws()
        },
    );
    p.a.set_announcements(vec![Announcement {
        prefix: net("2001:db8:10::/48"),
        prepend: 0,
    }]);
    p.b.set_announcements(vec![Announcement {
        prefix: net("2001:db8:100::/48"),
        prepend: 0,
    }]);
    p.connect();
    assert_eq!(p.a.state(), SessionState::Established);
    assert_eq!(Pair::learned(&p.a_events), [(net("2001:db8:100::/48"), 1)]);
    let at_aws = p.b_events.iter().find_map(|e| match e {
        SessionEvent::Routes { announced, .. } => announced.first().cloned(),
        _ => None,
    });
    let l = at_aws.unwrap();
    assert_eq!(l.prefix, net("2001:db8:10::/48"));
    assert_eq!(l.attributes.mp_next_hop, Some(ours6));
    assert_eq!(l.attributes.next_hop, None, "no IPv4 NEXT_HOP for IPv6 prefixes");
    p.b_events.clear();
    p.a.set_announcements(Vec::new());
    p.pump();
    let withdrawn: Vec<IpNet> = p
        .b_events
        .iter()
        .flat_map(|e| match e {
            SessionEvent::Routes { withdrawn, .. } => withdrawn.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(withdrawn, [net("2001:db8:10::/48")]);
}
