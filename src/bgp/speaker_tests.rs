//! A connection's speaker against two AWS sessions in-process.

use std::time::Instant;

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

const INSIDE: [(Ipv4Addr, Ipv4Addr); 2] = [
    (Ipv4Addr::new(169, 254, 10, 6), Ipv4Addr::new(169, 254, 10, 5)),
    (Ipv4Addr::new(169, 254, 20, 10), Ipv4Addr::new(169, 254, 20, 9)),
];

fn speaker(preference: Preference) -> Speaker {
    Speaker::new(SpeakerConfig {
        local_as: 65000,
        peer_as: 64512,
        hold_time: 30,
        inside: INSIDE,
        inside_v6: None,
        onprem: vec![net("10.0.0.0/16")],
        preference,
        fast_failover: true,
    })
}

fn aws_session(i: usize) -> Session {
    Session::new(SessionConfig {
        local_as: 64512,
        peer_as: 65000,
        router_id: INSIDE[i].1,
        hold_time: 30,
        next_hop: INSIDE[i].1,
        next_hop_v6: None,
    })
}

struct Lab {
    now: Instant,
    s: Speaker,
    aws: [Session; 2],
    /// What each AWS session learned: prefix → AS path length.
    aws_rib: [BTreeMap<IpNet, usize>; 2],
}

impl Lab {
    fn new(preference: Preference) -> Lab {
        #[allow(clippy::disallowed_methods)] // the base of the virtual clock
        let now = Instant::now();
        Lab {
            now,
            s: speaker(preference),
            aws: [aws_session(0), aws_session(1)],
            aws_rib: Default::default(),
        }
    }

    fn connect(&mut self, t: TunnelId) {
        self.s.session_mut(t).connected(self.now);
        self.aws[t.index()].connected(self.now);
        self.pump();
    }

    fn pump(&mut self) {
        for _ in 0..20 {
            let mut moved = false;
            for t in TunnelId::BOTH {
                let i = t.index();
                if let Some(b) = self.s.session_mut(t).poll_transmit() {
                    self.aws[i].handle_bytes(self.now, &b);
                    moved = true;
                }
                if let Some(b) = self.aws[i].poll_transmit() {
                    self.s.session_mut(t).handle_bytes(self.now, &b);
                    moved = true;
                }
                self.s.poll(t);
                while let Some(e) = self.aws[i].poll_event() {
                    if let SessionEvent::Routes { announced, withdrawn } = e {
                        for w in withdrawn {
                            self.aws_rib[i].remove(&w);
                        }
                        for l in announced {
                            self.aws_rib[i].insert(l.prefix, l.attributes.as_path_len());
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// AWS announces `prefix` on tunnel `t`, its AS `prepend` extra times.
    fn aws_announces(&mut self, t: TunnelId, prefix: &str, prepend: u8) {
        self.aws[t.index()].set_announcements(vec![Announcement {
            prefix: net(prefix),
            prepend,
        }]);
        self.pump();
    }
}

#[test]
fn the_shorter_path_is_the_first_tier_equal_paths_share_it() {
    let mut lab = Lab::new(Preference::Prefer(TunnelId::One));
    lab.connect(TunnelId::One);
    lab.connect(TunnelId::Two);
    lab.aws_announces(TunnelId::One, "10.100.0.0/16", 0);
    lab.aws_announces(TunnelId::Two, "10.100.0.0/16", 0);
    assert!(lab.s.take_changed());
    assert_eq!(
        lab.s.routes(),
        [Route {
            prefix: net("10.100.0.0/16"),
            tiers: vec![vec![TunnelId::One, TunnelId::Two]]
        }]
    );
    // AWS drains tunnel 1 (prepends there): tunnel 2 first, tunnel 1 the fallback.
    lab.aws_announces(TunnelId::One, "10.100.0.0/16", 2);
    assert_eq!(
        lab.s.routes()[0].tiers,
        [vec![TunnelId::Two], vec![TunnelId::One]]
    );
    // A session down takes its routes with it.
    lab.s.session_mut(TunnelId::Two).disconnected();
    lab.s.poll(TunnelId::Two);
    assert_eq!(lab.s.routes()[0].tiers, [vec![TunnelId::One]]);
    assert_eq!(lab.s.received(TunnelId::Two), 0);
}

#[test]
fn the_standby_tunnel_prepends_and_active_active_does_not() {
    let mut lab = Lab::new(Preference::Prefer(TunnelId::One));
    lab.connect(TunnelId::One);
    lab.connect(TunnelId::Two);
    assert_eq!(lab.aws_rib[0].get(&net("10.0.0.0/16")), Some(&1));
    assert_eq!(
        lab.aws_rib[1].get(&net("10.0.0.0/16")),
        Some(&(1 + usize::from(STANDBY_PREPEND)))
    );
    let mut lab = Lab::new(Preference::Both);
    lab.connect(TunnelId::One);
    lab.connect(TunnelId::Two);
    assert_eq!(lab.aws_rib[0].get(&net("10.0.0.0/16")), Some(&1));
    assert_eq!(lab.aws_rib[1].get(&net("10.0.0.0/16")), Some(&1));
    // Never re-announced: what AWS sent stays AWS's.
    lab.aws_announces(TunnelId::One, "10.100.0.0/16", 0);
    assert!(!lab.aws_rib[1].contains_key(&net("10.100.0.0/16")));
}

#[test]
fn a_dead_tunnel_moves_return_traffic_with_more_specifics_until_it_is_back() {
    let mut lab = Lab::new(Preference::Prefer(TunnelId::One));
    lab.connect(TunnelId::One);
    lab.connect(TunnelId::Two);
    // Failover: tunnel 1 silent. Its BGP session still looks up (AWS's hold timer runs 30 s).
    lab.s.set_dead(TunnelId::One, true);
    lab.pump();
    let on_two: Vec<(IpNet, usize)> = lab.aws_rib[1].iter().map(|(p, l)| (*p, *l)).collect();
    assert_eq!(
        on_two,
        [
            (net("10.0.0.0/16"), 3),
            (net("10.0.0.0/17"), 1),
            (net("10.0.128.0/17"), 1)
        ]
    );
    // Tunnel 1 back and its session Established: the halves go.
    lab.s.set_dead(TunnelId::One, false);
    lab.pump();
    assert_eq!(
        lab.aws_rib[1].keys().copied().collect::<Vec<_>>(),
        [net("10.0.0.0/16")]
    );
    // Dead again, then its session drops and comes back while still dead: halves stay until
    // failover says it carries traffic again.
    lab.s.set_dead(TunnelId::One, true);
    lab.s.session_mut(TunnelId::One).disconnected();
    lab.s.poll(TunnelId::One);
    lab.aws[0].disconnected();
    lab.connect(TunnelId::One);
    assert_eq!(lab.aws_rib[1].len(), 3);
    lab.s.set_dead(TunnelId::One, false);
    lab.pump();
    assert_eq!(lab.aws_rib[1].len(), 1);
}

#[test]
fn a_host_route_cannot_be_split_and_stays_as_is() {
    assert_eq!(halves(net("10.0.0.1/32")), None);
    assert_eq!(
        halves(net("10.0.0.0/31")),
        Some([net("10.0.0.0/32"), net("10.0.0.1/32")])
    );
    assert_eq!(
        halves(net("2001:db8::/32")),
        Some([net("2001:db8::/33"), net("2001:db8:8000::/33")])
    );
}
