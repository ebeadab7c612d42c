//! A VPN connection's BGP, sans-IO: one [`Session`] per tunnel, what each learned (Adj-RIB-In),
//! the choice per prefix, and what each announces.
//!
//! * **Learned routes**: per prefix, the tunnels whose session is Established and that carry it,
//!   ranked by AS path length, then ORIGIN, then MED (AWS raises MED or prepends on the tunnel it
//!   wants to drain, "Site-to-Site VPN tunnel endpoint replacements"); the best-ranked form the
//!   first tier (equal ones share traffic by flow), the rest a second tier that takes over when
//!   failover says the first cannot carry traffic. Nothing learned is ever announced back.
//! * **Announced routes**: `routing.onprem_cidrs` on both tunnels. Active/standby (the default,
//!   following `failover.policy`): the standby tunnel prepends our AS [`STANDBY_PREPEND`] extra
//!   times so AWS sends return traffic to the preferred one; active/active: equal attributes, AWS
//!   spreads (and a transit gateway does ECMP over connections).
//! * **Fast inbound failover**: when failover declares a tunnel dead (about a second, long
//!   before AWS's 30 s hold timer), the surviving tunnel also announces each on-prem prefix split
//!   in two halves: longer prefixes win at AWS whatever the attributes, so return traffic moves
//!   at once. They are withdrawn when the dead tunnel's session is Established again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::session::{Announcement, Session, SessionConfig, SessionEvent, SessionState};
use super::wire::Attributes;
use crate::sa::TunnelId;

/// Extra copies of our AS on the standby tunnel's announcements.
pub const STANDBY_PREPEND: u8 = 2;

/// Which tunnel AWS should send return traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Prepend on the other tunnel.
    Prefer(TunnelId),
    /// Equal attributes on both.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub hold_time: u16,
    /// Per tunnel: (our inside address, AWS's inside address); ours is also the BGP identifier.
    pub inside: [(Ipv4Addr, Ipv4Addr); 2],
    /// IPv6-inside tunnels: (ours, AWS's) inside IPv6 addresses, over which the session runs
    /// (MP-BGP IPv6 unicast, RFC 4760; ours is the next hop of what we announce).
    pub inside_v6: Option<[(Ipv6Addr, Ipv6Addr); 2]>,
    /// What we announce.
    pub onprem: Vec<IpNet>,
    pub preference: Preference,
    /// Announce more-specific halves on the surviving tunnel when one dies.
    pub fast_failover: bool,
}

/// A learned prefix: the tunnels to reach it, best tier first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    pub tiers: Vec<Vec<TunnelId>>,
}

pub struct Speaker {
    cfg: SpeakerConfig,
    sessions: [Session; 2],
    rib: [BTreeMap<IpNet, Attributes>; 2],
    /// Failover declared the tunnel unable to carry traffic.
    dead: [bool; 2],
    /// Something learned or the session states changed since [`Speaker::take_changed`].
    changed: bool,
}

/// The two halves of a prefix, if it can be split.
fn halves(p: IpNet) -> Option<[IpNet; 2]> {
    let len = p.prefix_len() + 1;
    if len > p.max_prefix_len() {
        return None;
    }
    let mut subnets = p.subnets(len).ok()?;
    Some([subnets.next()?, subnets.next()?])
}

impl Speaker {
    pub fn new(cfg: SpeakerConfig) -> Speaker {
        let session = |i: usize| {
            Session::new(SessionConfig {
                local_as: cfg.local_as,
                peer_as: cfg.peer_as,
                router_id: cfg.inside[i].0,
                hold_time: cfg.hold_time,
                next_hop: cfg.inside[i].0,
                next_hop_v6: cfg.inside_v6.map(|v| v[i].0),
            })
        };
        let mut s = Speaker {
            sessions: [session(0), session(1)],
            rib: Default::default(),
            dead: [false; 2],
            changed: false,
            cfg,
        };
        s.refresh_announcements();
        s
    }

    pub fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }

    /// Tunnel `t`'s session endpoints (ours, AWS's): the IPv6 inside addresses on IPv6-inside
    /// tunnels, else the /30's.
    pub fn endpoints(&self, t: TunnelId) -> (IpAddr, IpAddr) {
        let i = t.index();
        match self.cfg.inside_v6 {
            Some(v) => (IpAddr::V6(v[i].0), IpAddr::V6(v[i].1)),
            None => (IpAddr::V4(self.cfg.inside[i].0), IpAddr::V4(self.cfg.inside[i].1)),
        }
    }

    pub fn session(&self, t: TunnelId) -> &Session {
        &self.sessions[t.index()]
    }

    /// The session of tunnel `t`, for the I/O shell to feed (then call [`Speaker::poll`]).
    pub fn session_mut(&mut self, t: TunnelId) -> &mut Session {
        &mut self.sessions[t.index()]
    }

    pub fn established(&self, t: TunnelId) -> bool {
        self.sessions[t.index()].state() == SessionState::Established
    }

    /// Prefixes learned on tunnel `t`.
    pub fn received(&self, t: TunnelId) -> usize {
        self.rib[t.index()].len()
    }

    /// Take tunnel `t`'s session events: the RIB follows, announcements adjust. Returns the
    /// events for logs and health records.
    pub fn poll(&mut self, t: TunnelId) -> Vec<SessionEvent> {
        let mut out = Vec::new();
        let i = t.index();
        while let Some(e) = self.sessions[i].poll_event() {
            match &e {
                SessionEvent::Routes { announced, withdrawn } => {
                    for p in withdrawn {
                        self.rib[i].remove(p);
                    }
                    for l in announced {
                        self.rib[i].insert(l.prefix, l.attributes.clone());
                    }
                    self.changed = true;
                }
                SessionEvent::Down(_) => {
                    self.rib[i].clear();
                    self.changed = true;
                    self.refresh_announcements();
                }
                SessionEvent::Established { .. } => {
                    self.changed = true;
                    self.refresh_announcements();
                }
                SessionEvent::EndOfRib => {}
            }
            out.push(e);
        }
        out
    }

    /// Failover's verdict on tunnel `t`: `dead` when it cannot carry traffic.
    pub fn set_dead(&mut self, t: TunnelId, dead: bool) {
        if self.dead[t.index()] != dead {
            self.dead[t.index()] = dead;
            self.refresh_announcements();
        }
    }

    /// New on-prem prefixes or preference (reload).
    pub fn reconfigure(&mut self, onprem: Vec<IpNet>, preference: Preference, fast_failover: bool) {
        self.cfg.onprem = onprem;
        self.cfg.preference = preference;
        self.cfg.fast_failover = fast_failover;
        self.refresh_announcements();
    }

    /// What each tunnel announces now.
    fn refresh_announcements(&mut self) {
        for t in TunnelId::BOTH {
            let prepend = match self.cfg.preference {
                Preference::Prefer(p) if p != t => STANDBY_PREPEND,
                _ => 0,
            };
            let other = if t == TunnelId::One {
                TunnelId::Two
            } else {
                TunnelId::One
            };
            let mut routes: Vec<Announcement> = self
                .cfg
                .onprem
                .iter()
                .map(|&prefix| Announcement { prefix, prepend })
                .collect();
            // The other tunnel is dead and not back: pull AWS's return traffic here at once.
            let other_back = !self.dead[other.index()] && self.established(other);
            if self.cfg.fast_failover && self.dead[other.index()] && !other_back && !self.dead[t.index()] {
                for p in &self.cfg.onprem {
                    if let Some(h) = halves(*p) {
                        routes.extend(h.into_iter().map(|prefix| Announcement { prefix, prepend: 0 }));
                    }
                }
            }
            self.sessions[t.index()].set_announcements(routes);
        }
    }

    /// Whether the learned routes changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Every learned prefix with its tunnels, best tier first (only Established sessions count).
    pub fn routes(&self) -> Vec<Route> {
        let mut by_prefix: BTreeMap<IpNet, Vec<(TunnelId, &Attributes)>> = BTreeMap::new();
        for t in TunnelId::BOTH {
            if !self.established(t) {
                continue;
            }
            for (p, a) in &self.rib[t.index()] {
                by_prefix.entry(*p).or_default().push((t, a));
            }
        }
        by_prefix
            .into_iter()
            .map(|(prefix, mut c)| {
                let rank = |a: &Attributes| (a.as_path_len(), a.origin, a.med.unwrap_or(0));
                c.sort_by_key(|(t, a)| (rank(a), *t));
                let mut tiers: Vec<Vec<TunnelId>> = Vec::new();
                let mut last = None;
                for (t, a) in c {
                    if last == Some(rank(a)) {
                        if let Some(tier) = tiers.last_mut() {
                            tier.push(t);
                        }
                    } else {
                        tiers.push(vec![t]);
                        last = Some(rank(a));
                    }
                }
                Route { prefix, tiers }
            })
            .collect()
    }

    /// What tunnel `t` announces now.
    pub fn announcements(&self, t: TunnelId) -> &[Announcement] {
        self.sessions[t.index()].announcements()
    }
}

#[cfg(test)]
#[path = "speaker_tests.rs"]
mod tests;
