//! Which tunnel carries outbound traffic: a pure decision over both tunnels' health.
//!
//! Inbound is accepted on both tunnels at all times (AWS picks its side); only the outbound choice
//! is decided here. Health comes from two sources:
//!
//! * IKE events: Child SA up, rekeying, DELETE received, DPD failure, rekey/negotiation failure.
//!   A DELETE takes the tunnel out *immediately*, so a graceful shutdown by AWS loses nothing.
//! * Data-plane liveness: the last authenticated inbound ESP packet and the last answer to the
//!   [`probe`] (ICMP echo to AWS's inside address, sent only when the tunnel carried nothing
//!   inbound for [`FailoverTimers::probe_interval`]). A silently cut tunnel becomes *suspect*
//!   after [`FailoverTimers::suspect_after`] without either, well before IKE's DPD (10+ s) notices;
//!   the run loop then starts a DPD exchange at once ([`Monitor::turned_suspect`]).
//!
//! [`decide`] reads no clock: `now` is an argument, so the table tests in
//! `tests/failover_decision.rs` replay health histories exactly. [`Monitor`] is the small stateful
//! wrapper the run loop feeds with events.

pub mod probe;

use std::time::{Duration, Instant};

use crate::config::{FailoverPolicy, Settings};
use crate::sa::TunnelId;

/// Why a tunnel's Child SA is not up (in words the status view and health logs reuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownReason {
    /// Not negotiated yet since cgwd started.
    NotStarted,
    /// IKE liveness check (DPD) got no answer.
    DpdTimeout,
    /// AWS sent a DELETE for the IKE or Child SA.
    DeleteReceived,
    /// A rekey failed and the SA expired.
    RekeyFailed,
    /// IKE_SA_INIT / IKE_AUTH failed (PSK, proposals, selectors, no answer).
    NegotiationFailed,
    /// Closed by cgwd (shutdown).
    Closed,
}

impl DownReason {
    /// The `details` text of a tunnel health record (issue 8), phrased after AWS's tunnel-log
    /// catalogue (FACTS §3.1) so the same CloudWatch Logs Insights queries and metric filters
    /// (`DPD timed out`, `received DELETE`, `pre-shared key`, `No Proposal`) match cgwd's records.
    /// `dpd_retransmits` is how many liveness requests went unanswered.
    pub fn details(self, dpd_retransmits: u32) -> String {
        match self {
            Self::NotStarted => "Tunnel is waiting for IKE negotiation to start".into(),
            Self::DpdTimeout => format!("Tunnel DPD timed out after {dpd_retransmits} retransmits"),
            Self::DeleteReceived => "Tunnel received DELETE for IKE_SA from AWS".into(),
            Self::RekeyFailed => "Tunnel Phase 2 was unable to rekey: SA expired".into(),
            Self::NegotiationFailed => {
                "Tunnel Timeout: deleting un-established Phase 1 IKE_SA with AWS".into()
            }
            Self::Closed => "Tunnel sent DELETE for IKE_SA to AWS (cgwd stopping)".into(),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::NotStarted => "not established yet",
            Self::DpdTimeout => "AWS stopped answering (DPD timeout)",
            Self::DeleteReceived => "AWS deleted the SA",
            Self::RekeyFailed => "rekey failed",
            Self::NegotiationFailed => "negotiation failed",
            Self::Closed => "closed by cgwd",
        }
    }
}

/// The Child SA as IKE reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    Down(DownReason),
    /// IKE_SA_INIT / IKE_AUTH in progress: nothing can be sent yet.
    Negotiating,
    /// Installed since `since` (the first ChildUp of this IKE SA; rekeys do not reset it).
    Up {
        since: Instant,
    },
    /// A rekey is in progress; the old SA still carries traffic.
    Rekeying {
        since: Instant,
    },
}

impl ChildState {
    fn up_since(self) -> Option<Instant> {
        match self {
            Self::Up { since } | Self::Rekeying { since } => Some(since),
            _ => None,
        }
    }
}

/// Everything the decision knows about one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelHealth {
    pub child: ChildState,
    /// Last authenticated inbound ESP packet (any traffic proves the path works).
    pub last_inbound: Option<Instant>,
    /// Last echo reply from the AWS inside address.
    pub last_probe_reply: Option<Instant>,
    /// The last instant this tunnel was judged unusable (suspect or down); [`Monitor`] keeps it
    /// from previous decisions. The hold-down runs from here.
    pub last_bad: Option<Instant>,
}

impl TunnelHealth {
    pub const fn new() -> Self {
        TunnelHealth {
            child: ChildState::Down(DownReason::NotStarted),
            last_inbound: None,
            last_probe_reply: None,
            last_bad: None,
        }
    }
}

impl Default for TunnelHealth {
    fn default() -> Self {
        Self::new()
    }
}

/// The timing constants of failover.
///
/// Target (issue 6): tunnel 1 cut silently → outbound on tunnel 2 within 1 s. The budget:
/// a probe every `probe_interval` = 200 ms while nothing comes in, suspect after 3 missed probes
/// plus 50 ms for the last reply's round trip = 650 ms, leaving ~350 ms for the loop tick (50 ms)
/// and scheduling on a loaded host. Measured end to end (tests/status_e2e.rs): 645-660 ms of
/// outbound loss (790-880 ms with 250 ms probes). A probe costs one ~60-byte ESP
/// packet: 5 per second per idle tunnel, none while traffic flows in. `hold_down` stops a
/// flapping tunnel from pulling traffic back: a tunnel that was bad is only preferred again after
/// it has been healthy this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverTimers {
    pub probe_interval: Duration,
    pub suspect_after: Duration,
    pub hold_down: Duration,
}

impl FailoverTimers {
    pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
    pub const MISSED_PROBES: u32 = 3;
    /// Allowance for the round trip of the last probe (AWS regions are ≤ ~150 ms away, but the
    /// previous probe's reply is what counts, so 50 ms extra suffices).
    pub const RTT_ALLOWANCE: Duration = Duration::from_millis(50);
    pub const HOLD_DOWN: Duration = Duration::from_secs(5);

    /// Derived from `probe_interval`: suspect after [`Self::MISSED_PROBES`] missed probes.
    pub fn with_probe_interval(probe_interval: Duration, hold_down: Duration) -> Self {
        FailoverTimers {
            probe_interval,
            suspect_after: probe_interval * Self::MISSED_PROBES + Self::RTT_ALLOWANCE,
            hold_down,
        }
    }

    /// The timers for these settings. There are no failover timing keys yet, so these are the
    /// documented defaults; `settings` is taken so adding `failover.probe_interval_ms` /
    /// `failover.hold_down_secs` later changes no caller.
    pub fn from_settings(_settings: &Settings) -> Self {
        Self::default()
    }
}

impl Default for FailoverTimers {
    fn default() -> Self {
        Self::with_probe_interval(Self::PROBE_INTERVAL, Self::HOLD_DOWN)
    }
}

/// How usable a tunnel is right now, best last (so `Ord` ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No Child SA.
    Down,
    /// Child SA up, but nothing heard for `suspect_after`: probably cut.
    Suspect,
    /// Up and alive, but bad less than `hold_down` ago: used only if the other one is worse.
    Settling,
    Healthy,
}

/// Where outbound traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "tunnel")]
pub enum Outbound {
    /// No tunnel has a Child SA: drop (and routes should be withdrawn).
    None,
    One(TunnelId),
    /// Active-active: the data plane spreads flows by hash over both.
    Both,
}

impl Outbound {
    /// The tunnel for a flow with this hash (from the 5-tuple; any stable hash).
    pub fn tunnel_for(self, flow_hash: u32) -> Option<TunnelId> {
        match self {
            Self::None => None,
            Self::One(t) => Some(t),
            Self::Both => Some(if flow_hash & 1 == 0 {
                TunnelId::One
            } else {
                TunnelId::Two
            }),
        }
    }

    /// The single tunnel last chosen (for `stay` and the status view); `Both` counts as tunnel 1.
    pub fn primary(self) -> Option<TunnelId> {
        match self {
            Self::None => None,
            Self::One(t) => Some(t),
            Self::Both => Some(TunnelId::One),
        }
    }
}

/// The result of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outbound: Outbound,
    pub verdicts: [Verdict; 2],
}

/// Judge one tunnel at `now`.
pub fn verdict(h: &TunnelHealth, timers: &FailoverTimers, now: Instant) -> Verdict {
    let Some(up_since) = h.child.up_since() else {
        return Verdict::Down;
    };
    // A fresh SA gets the same grace as a probe answer: it just proved the path in IKE_AUTH.
    let heard = [Some(up_since), h.last_inbound, h.last_probe_reply]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(up_since);
    if now.saturating_duration_since(heard) > timers.suspect_after {
        return Verdict::Suspect;
    }
    let good_since = h.last_bad.map_or(up_since, |b| b.max(up_since));
    if now.saturating_duration_since(good_since) < timers.hold_down && h.last_bad.is_some() {
        return Verdict::Settling;
    }
    Verdict::Healthy
}

/// Choose the outbound tunnel(s). Pure: same inputs, same answer.
///
/// The best verdict wins. Among equals: when both are `Healthy`, the policy decides
/// (prefer-tunnel-1: tunnel 1; stay: `previous`); otherwise `previous` is kept so two equally
/// doubtful tunnels do not ping-pong, then tunnel 1. Active-active sends on both only while both
/// are `Healthy`. A suspect tunnel is still used when nothing better exists (the probe may be
/// what is lost, not the traffic); `Outbound::None` only when neither has a Child SA.
pub fn decide(
    health: &[TunnelHealth; 2],
    policy: FailoverPolicy,
    previous: Option<TunnelId>,
    timers: &FailoverTimers,
    now: Instant,
) -> Decision {
    let verdicts = [verdict(&health[0], timers, now), verdict(&health[1], timers, now)];
    let v = |t: TunnelId| verdicts[t.index()];
    let outbound = if verdicts == [Verdict::Down, Verdict::Down] {
        Outbound::None
    } else if policy == FailoverPolicy::ActiveActive && verdicts == [Verdict::Healthy; 2] {
        Outbound::Both
    } else {
        let (a, b) = (TunnelId::One, TunnelId::Two);
        let chosen = if v(a) != v(b) {
            if v(a) > v(b) { a } else { b }
        } else if v(a) == Verdict::Healthy {
            match (policy, previous) {
                (FailoverPolicy::Stay, Some(p)) => p,
                _ => a,
            }
        } else {
            previous.unwrap_or(a)
        };
        Outbound::One(chosen)
    };
    Decision { outbound, verdicts }
}

/// The run loop's failover state: health fed by events, [`decide`] on every tick.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub policy: FailoverPolicy,
    pub timers: FailoverTimers,
    health: [TunnelHealth; 2],
    outbound: Outbound,
    /// How many times outbound moved from one tunnel to another (a metric).
    pub switches: u64,
    /// The verdicts of the last tick and of the one before it.
    verdicts: [Verdict; 2],
    previous: [Verdict; 2],
}

impl Monitor {
    pub fn new(policy: FailoverPolicy, timers: FailoverTimers) -> Self {
        Monitor {
            policy,
            timers,
            health: [TunnelHealth::new(); 2],
            outbound: Outbound::None,
            switches: 0,
            verdicts: [Verdict::Down; 2],
            previous: [Verdict::Down; 2],
        }
    }

    /// Tunnels the last [`Monitor::tick`] judged suspect that the tick before did not: their path
    /// just went quiet. IKE should ask the peer now (a DPD exchange) rather than at its next
    /// interval: behind a NAT that dropped or changed its mapping, that authenticated request is
    /// what tells AWS where cgwd is now (RFC 7296 §2.23), and through a cut path it starts DPD's
    /// retransmissions early.
    pub fn turned_suspect(&self) -> impl Iterator<Item = TunnelId> + '_ {
        TunnelId::BOTH.into_iter().filter(|t| {
            self.verdicts[t.index()] == Verdict::Suspect && self.previous[t.index()] != Verdict::Suspect
        })
    }

    pub fn health(&self, t: TunnelId) -> &TunnelHealth {
        &self.health[t.index()]
    }

    pub fn outbound(&self) -> Outbound {
        self.outbound
    }

    pub fn child_up(&mut self, t: TunnelId, now: Instant) {
        let h = &mut self.health[t.index()];
        if h.child.up_since().is_none() {
            h.child = ChildState::Up { since: now };
        } else if let ChildState::Rekeying { since } = h.child {
            h.child = ChildState::Up { since };
        }
    }

    pub fn rekeying(&mut self, t: TunnelId) {
        let h = &mut self.health[t.index()];
        if let ChildState::Up { since } = h.child {
            h.child = ChildState::Rekeying { since };
        }
    }

    pub fn negotiating(&mut self, t: TunnelId) {
        let h = &mut self.health[t.index()];
        if h.child.up_since().is_none() {
            h.child = ChildState::Negotiating;
        }
    }

    pub fn child_down(&mut self, t: TunnelId, reason: DownReason, now: Instant) {
        let h = &mut self.health[t.index()];
        h.child = ChildState::Down(reason);
        h.last_bad = Some(now);
    }

    pub fn inbound(&mut self, t: TunnelId, now: Instant) {
        let h = &mut self.health[t.index()];
        h.last_inbound = Some(h.last_inbound.map_or(now, |l| l.max(now)));
    }

    pub fn probe_reply(&mut self, t: TunnelId, now: Instant) {
        let h = &mut self.health[t.index()];
        h.last_probe_reply = Some(h.last_probe_reply.map_or(now, |l| l.max(now)));
    }

    /// Re-decide; returns the decision and whether outbound changed.
    pub fn tick(&mut self, now: Instant) -> (Decision, bool) {
        let d = decide(
            &self.health,
            self.policy,
            self.outbound.primary(),
            &self.timers,
            now,
        );
        for t in TunnelId::BOTH {
            // Down is recorded by `child_down` (with its reason); a tunnel never started is not "bad".
            if d.verdicts[t.index()] == Verdict::Suspect {
                self.health[t.index()].last_bad = Some(now);
            }
        }
        self.previous = std::mem::replace(&mut self.verdicts, d.verdicts);
        let changed = d.outbound != self.outbound;
        if changed && matches!((self.outbound, d.outbound), (Outbound::One(_), Outbound::One(_))) {
            self.switches += 1;
        }
        self.outbound = d.outbound;
        (d, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_match_aws_log_filters() {
        assert!(
            DownReason::DpdTimeout
                .details(4)
                .contains("DPD timed out after 4 retransmits")
        );
        assert!(
            DownReason::DeleteReceived
                .details(0)
                .contains("received DELETE for IKE_SA")
        );
    }

    #[test]
    fn default_timers_fit_the_one_second_target() {
        let t = FailoverTimers::default();
        assert_eq!(t.suspect_after, Duration::from_millis(650));
        // Detection + one more tick of the loop must stay under 1 s.
        assert!(t.suspect_after + t.probe_interval / 2 < Duration::from_secs(1));
    }

    #[test]
    fn a_tunnel_turning_suspect_is_reported_once() {
        let t0 = crate::io::clock::now();
        let timers = FailoverTimers::default();
        let mut m = Monitor::new(FailoverPolicy::PreferTunnel1, timers);
        m.child_up(TunnelId::One, t0);
        m.child_up(TunnelId::Two, t0);
        // Tunnel 2 hears its peer on every tick; `at` ms after t0, what turned suspect.
        let mut tick = |at: u64, tunnel_1_answers: bool| {
            let now = t0 + Duration::from_millis(at);
            m.inbound(TunnelId::Two, now);
            if tunnel_1_answers {
                m.probe_reply(TunnelId::One, now);
            }
            m.tick(now);
            m.turned_suspect().collect::<Vec<_>>()
        };
        let quiet = timers.suspect_after.as_millis() as u64 + 10;
        assert_eq!(tick(0, false), []);
        // Tunnel 1 goes quiet: reported once, not again while it stays suspect.
        assert_eq!(tick(quiet, false), [TunnelId::One]);
        assert_eq!(tick(quiet + 50, false), []);
        // It answers, then goes quiet again: reported again.
        assert_eq!(tick(quiet + 100, true), []);
        assert_eq!(tick(2 * quiet + 100, false), [TunnelId::One]);
    }

    #[test]
    fn flow_hash_spreads_over_both_in_active_active() {
        assert_eq!(Outbound::Both.tunnel_for(2), Some(TunnelId::One));
        assert_eq!(Outbound::Both.tunnel_for(3), Some(TunnelId::Two));
        assert_eq!(Outbound::One(TunnelId::Two).tunnel_for(2), Some(TunnelId::Two));
        assert_eq!(Outbound::None.tunnel_for(1), None);
    }
}
