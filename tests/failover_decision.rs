//! Table tests of the failover decision over health histories: each case replays events at given
//! milliseconds and checks where outbound traffic goes at given instants.

use std::time::{Duration, Instant};

use cgwd::config::FailoverPolicy;
use cgwd::failover::{
    ChildState, DownReason, FailoverTimers, Monitor, Outbound, TunnelHealth, Verdict, decide,
};
use cgwd::sa::TunnelId::{self, One, Two};

#[derive(Clone, Copy, Debug)]
enum Ev {
    Up(TunnelId),
    Down(TunnelId, DownReason),
    Rekeying(TunnelId),
    /// Inbound traffic or a probe reply: the tunnel is heard.
    Heard(TunnelId),
    /// From this instant on, the tunnel is heard every 100 ms until `Cut` (steady traffic).
    Flowing(TunnelId),
    /// Silently cut: nothing heard any more.
    Cut(TunnelId),
    /// Check outbound at this instant.
    Expect(Outbound),
}

use Ev::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Replays `events` (at millisecond offsets, sorted) with a 50 ms loop tick, as the run loop does.
/// Returns the instant (ms) of every outbound change.
fn replay(policy: FailoverPolicy, events: &[(u64, Ev)]) -> Vec<(u64, Outbound)> {
    let t0 = cgwd::io::clock::now();
    let mut m = Monitor::new(policy, FailoverTimers::default());
    let mut flowing = [false; 2];
    let mut changes = Vec::new();
    let end = events.iter().map(|e| e.0).max().unwrap_or(0);
    let mut i = 0;
    for now_ms in (0..=end).step_by(10) {
        let now = t0 + ms(now_ms);
        if now_ms % 100 == 0 {
            for t in TunnelId::BOTH {
                if flowing[t.index()] {
                    m.inbound(t, now);
                }
            }
        }
        while i < events.len() && events[i].0 <= now_ms {
            match events[i].1 {
                Up(t) => m.child_up(t, now),
                Down(t, r) => {
                    flowing[t.index()] = false;
                    m.child_down(t, r, now);
                }
                Rekeying(t) => m.rekeying(t),
                Heard(t) => m.inbound(t, now),
                Flowing(t) => {
                    flowing[t.index()] = true;
                    m.inbound(t, now);
                }
                Cut(t) => flowing[t.index()] = false,
                Expect(_) => {}
            }
            i += 1;
        }
        // Events change health; the loop re-decides right away, and also on every 50 ms tick.
        let (d, changed) = m.tick(now);
        if changed {
            changes.push((now_ms, d.outbound));
        }
        for e in events.iter().filter(|e| e.0 == now_ms) {
            if let Expect(want) = e.1 {
                assert_eq!(m.outbound(), want, "at {now_ms} ms (policy {policy:?})");
            }
        }
    }
    changes
}

#[test]
fn silent_cut_of_tunnel_1_moves_outbound_to_tunnel_2_within_a_second() {
    let changes = replay(
        FailoverPolicy::PreferTunnel1,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Up(Two)),
            (0, Flowing(Two)),
            (100, Expect(Outbound::One(One))),
            (10_000, Cut(One)),
            (10_500, Expect(Outbound::One(One))),
            (11_000, Expect(Outbound::One(Two))),
        ],
    );
    let (at, to) = changes.last().copied().unwrap();
    assert_eq!(to, Outbound::One(Two));
    // The last inbound was at 10 000 ms at the latest (the 100 ms flow), the switch within 1 s.
    assert!(at - 10_000 < 1000, "switched after {} ms", at - 10_000);
}

#[test]
fn delete_received_switches_immediately() {
    let changes = replay(
        FailoverPolicy::PreferTunnel1,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Up(Two)),
            (0, Flowing(Two)),
            (5_000, Down(One, DownReason::DeleteReceived)),
            (5_000, Expect(Outbound::One(Two))),
        ],
    );
    assert_eq!(changes.last(), Some(&(5_000, Outbound::One(Two))));
}

#[test]
fn prefer_tunnel_1_returns_only_after_hold_down() {
    let changes = replay(
        FailoverPolicy::PreferTunnel1,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Up(Two)),
            (0, Flowing(Two)),
            (1_000, Down(One, DownReason::DpdTimeout)),
            (1_000, Expect(Outbound::One(Two))),
            (2_000, Up(One)),
            (2_000, Flowing(One)),
            (4_000, Expect(Outbound::One(Two))),
            (6_990, Expect(Outbound::One(Two))),
            (7_000, Expect(Outbound::One(One))),
        ],
    );
    assert_eq!(
        changes,
        vec![
            (0, Outbound::One(One)),
            (1_000, Outbound::One(Two)),
            (7_000, Outbound::One(One))
        ]
    );
}

#[test]
fn flapping_tunnel_1_does_not_pull_traffic_back() {
    // Tunnel 1 answers for 500 ms every 1.5 s: never healthy for the 5 s hold-down.
    let mut ev = vec![(0, Up(One)), (0, Up(Two)), (0, Flowing(Two)), (0, Cut(One))];
    for k in 0..8u64 {
        let base = 2_000 + k * 1_500;
        ev.push((base, Flowing(One)));
        ev.push((base + 500, Cut(One)));
    }
    ev.push((14_000, Expect(Outbound::One(Two))));
    let changes = replay(FailoverPolicy::PreferTunnel1, &ev);
    // Switched once, on the first tick after suspect_after, and never back.
    let suspect_ms = FailoverTimers::default().suspect_after.as_millis() as u64;
    assert_eq!(
        changes,
        vec![(0, Outbound::One(One)), (suspect_ms + 10, Outbound::One(Two))]
    );
}

#[test]
fn stay_keeps_the_working_tunnel_after_recovery() {
    let changes = replay(
        FailoverPolicy::Stay,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Up(Two)),
            (0, Flowing(Two)),
            (1_000, Down(One, DownReason::DpdTimeout)),
            (2_000, Up(One)),
            (2_000, Flowing(One)),
            (20_000, Expect(Outbound::One(Two))),
        ],
    );
    assert_eq!(
        changes,
        vec![(0, Outbound::One(One)), (1_000, Outbound::One(Two))]
    );
}

#[test]
fn active_active_uses_both_only_while_both_are_healthy() {
    replay(
        FailoverPolicy::ActiveActive,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Expect(Outbound::One(One))),
            (100, Up(Two)),
            (100, Flowing(Two)),
            (200, Expect(Outbound::Both)),
            (1_000, Cut(Two)),
            (2_000, Expect(Outbound::One(One))),
            (3_000, Down(One, DownReason::DeleteReceived)),
            // Tunnel 2 is suspect but still the only one with an SA: better than nothing.
            (3_000, Expect(Outbound::One(Two))),
            (4_000, Down(Two, DownReason::DpdTimeout)),
            (4_000, Expect(Outbound::None)),
        ],
    );
}

#[test]
fn rekeying_tunnel_keeps_carrying_traffic() {
    replay(
        FailoverPolicy::PreferTunnel1,
        &[
            (0, Up(One)),
            (0, Flowing(One)),
            (0, Up(Two)),
            (0, Flowing(Two)),
            (1_000, Rekeying(One)),
            (1_500, Expect(Outbound::One(One))),
            (2_000, Up(One)),
            (2_500, Expect(Outbound::One(One))),
        ],
    );
}

#[test]
fn nothing_up_means_no_outbound() {
    replay(
        FailoverPolicy::PreferTunnel1,
        &[(0, Expect(Outbound::None)), (1_000, Expect(Outbound::None))],
    );
}

#[test]
fn idle_tunnel_kept_alive_by_probe_replies_stays_healthy() {
    let mut ev = vec![(0, Up(One)), (0, Up(Two)), (0, Flowing(Two))];
    // Tunnel 1 carries nothing; probe replies arrive every 250 ms.
    for k in 1..40u64 {
        ev.push((k * 250, Heard(One)));
    }
    ev.push((9_990, Expect(Outbound::One(One))));
    let changes = replay(FailoverPolicy::PreferTunnel1, &ev);
    assert_eq!(changes, vec![(0, Outbound::One(One))]);
}

/// The pure function on its own, for the tie-breaking rules.
#[test]
fn decide_tie_breaks() {
    let t0: Instant = cgwd::io::clock::now();
    let timers = FailoverTimers::default();
    let up = TunnelHealth {
        child: ChildState::Up { since: t0 },
        ..TunnelHealth::new()
    };
    let now = t0 + ms(100);
    // Both healthy: prefer-tunnel-1 ignores previous, stay honours it.
    let d = decide(&[up, up], FailoverPolicy::PreferTunnel1, Some(Two), &timers, now);
    assert_eq!(d.outbound, Outbound::One(One));
    assert_eq!(d.verdicts, [Verdict::Healthy; 2]);
    let d = decide(&[up, up], FailoverPolicy::Stay, Some(Two), &timers, now);
    assert_eq!(d.outbound, Outbound::One(Two));
    // Both suspect: keep the previous one, whatever the policy.
    let late = t0 + ms(5_000);
    let d = decide(&[up, up], FailoverPolicy::PreferTunnel1, Some(Two), &timers, late);
    assert_eq!(d.verdicts, [Verdict::Suspect; 2]);
    assert_eq!(d.outbound, Outbound::One(Two));
    // Exactly at suspect_after the tunnel is still alive; 1 ms later it is not.
    let edge = decide(
        &[up, up],
        FailoverPolicy::PreferTunnel1,
        None,
        &timers,
        t0 + timers.suspect_after,
    );
    assert_eq!(edge.verdicts[0], Verdict::Healthy);
    let past = decide(
        &[up, up],
        FailoverPolicy::PreferTunnel1,
        None,
        &timers,
        t0 + timers.suspect_after + ms(1),
    );
    assert_eq!(past.verdicts[0], Verdict::Suspect);
}
