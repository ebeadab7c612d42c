//! Which tunnel an inner packet leaves by: a prefix → tunnel-set table, longest match first.
//!
//! The control plane builds a [`RouteTable`] from every VPN connection's prefixes (static routes
//! today, BGP's best paths later) and publishes it whole; the TX worker reads it without a lock.
//! Each prefix names a set of tunnels (one per connection that routes it, both tunnels of each);
//! whether a tunnel may carry traffic *now* is a separate per-tunnel flag that failover flips
//! ([`super::Shared::set_usable`]), so a tunnel going down never rebuilds the table.
//!
//! A lookup takes the longest prefix with at least one usable tunnel (a prefix whose tunnels are
//! all down is as good as withdrawn, and the next shorter one applies, as in any router) and picks
//! among its tunnels by the flow hash, so one flow stays on one tunnel (equal-cost multi-path, as
//! AWS Transit Gateway spreads over VPN connections): the hash names a slot in the set, and an
//! unusable slot passes its flows to the next usable tunnel, so a failure moves only the flows of
//! the tunnel that failed. With each connection's standby tunnel next to its active one in the
//! set, the active tunnels end up with equal shares. A tunnel's own far inside
//! address is *pinned*: it always goes to that tunnel, usable or not (BGP and the liveness probes
//! talk to it).
//!
//! The RX worker asks the same table the reverse question ([`RouteTable::source_allowed`]): a
//! decrypted packet's source must be a prefix routed through the VPN connection it arrived on, or
//! the peer (with AWS's 0.0.0.0/0 traffic selectors) could send us packets from any address.
//!
//! Layout: one hash map per prefix length present, longest first (the "lookup by length" scheme
//! of Waldvogel et al., without the binary search: a VPN's table holds a few lengths). A lookup
//! costs one masked hash probe per length present; a TX batch of one TCP stream does it once
//! (the TX worker remembers the last destination's route).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::sa::TunnelKey;

/// The index of a route in [`RouteTable`]; the TX worker caches it per destination.
pub type RouteIndex = u32;

/// One prefix's next hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub net: IpNet,
    /// Tunnels that reach `net`, best tier first, sorted within a tier, without duplicates.
    pub tunnels: Vec<TunnelKey>,
    /// Where each tier ends in `tunnels` (BGP: the best paths, then the others); one tier for
    /// static routes.
    pub tier_ends: Vec<usize>,
    /// A tunnel's own far inside address: taken even while the tunnel is not usable.
    pub pinned: bool,
}

/// An immutable prefix → tunnel-set table (build with [`RouteTable::builder`]).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<RouteEntry>,
    /// (prefix length, masked address → entry), longest length first.
    v4: Vec<(u8, PrefixMap<u32>)>,
    v6: Vec<(u8, PrefixMap<u128>)>,
    /// By connection number: its inbound sources are not checked (see
    /// [`RouteTableBuilder::accept_any_source`]).
    any_source: Vec<bool>,
}

type PrefixMap<K> = HashMap<K, RouteIndex, BuildHasherDefault<PrefixHasher>>;

/// The keys are masked addresses the control plane chose, not attacker-chosen strings: a
/// multiplicative hash is enough and several times cheaper than SipHash on the per-packet path.
#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing; the high bits (which hashbrown uses for its control bytes) mix all input bits.
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }

    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

impl RouteTable {
    pub fn builder() -> RouteTableBuilder {
        RouteTableBuilder::default()
    }

    /// Every route, for status output and tests.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// The tunnel for a packet to `dst` of flow `flow_hash`: the longest prefix with a usable
    /// tunnel (or a pinned one), then one of its usable tunnels by hash. `None`: no route.
    pub fn lookup(
        &self,
        dst: IpAddr,
        flow_hash: u32,
        usable: impl Fn(TunnelKey) -> bool,
    ) -> Option<TunnelKey> {
        self.matches(dst).find_map(|i| self.choose(i, flow_hash, &usable))
    }

    /// The routes that contain `dst`, longest prefix first.
    pub fn matches(&self, dst: IpAddr) -> impl Iterator<Item = RouteIndex> + '_ {
        let (v4, v6) = match dst {
            IpAddr::V4(a) => (Some(u32::from(a)), None),
            IpAddr::V6(a) => (None, Some(u128::from(a))),
        };
        let four = v4.into_iter().flat_map(move |a| {
            self.v4.iter().filter_map(move |(len, map)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                map.get(&(a & mask)).copied()
            })
        });
        let six = v6.into_iter().flat_map(move |a| {
            self.v6.iter().filter_map(move |(len, map)| {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                map.get(&(a & mask)).copied()
            })
        });
        four.chain(six)
    }

    /// Reverse-path check for a packet from `src` that arrived on a tunnel of connection `conn`:
    /// the longest prefix containing `src` must be routed (any tier) through a tunnel of that
    /// connection. Either tunnel will do (AWS may answer on either, whatever we chose) and whether
    /// it may carry traffic now does not matter (a route being failed over is still ours). No
    /// match: dropped. A tunnel's pinned far inside address passes on its own connection.
    pub fn source_allowed(&self, src: IpAddr, conn: u16) -> bool {
        if self.any_source.get(usize::from(conn)).copied().unwrap_or(false) {
            return true;
        }
        self.matches(src)
            .next()
            .and_then(|i| self.entries.get(i as usize))
            .is_some_and(|e| e.tunnels.iter().any(|t| t.conn == conn))
    }

    /// A tunnel of route `i` for this flow, if the route has one that may carry it.
    pub fn choose(
        &self,
        i: RouteIndex,
        flow_hash: u32,
        usable: &impl Fn(TunnelKey) -> bool,
    ) -> Option<TunnelKey> {
        let e = self.entries.get(i as usize)?;
        if e.pinned {
            return e.tunnels.first().copied();
        }
        // The best tier with a usable tunnel; in it, the flow's slot or the next usable tunnel
        // after it: a tunnel going down moves only its own flows.
        let mut begin = 0;
        for &end in &e.tier_ends {
            let tier = e.tunnels.get(begin..end)?;
            begin = end;
            if tier.is_empty() {
                continue;
            }
            let start = flow_hash as usize % tier.len();
            let (after, before) = tier.split_at(start);
            if let Some(t) = before.iter().chain(after).copied().find(|&t| usable(t)) {
                return Some(t);
            }
        }
        None
    }
}

/// Collects prefixes and their tunnels; [`Self::build`] merges equal prefixes into one ECMP set.
#[derive(Debug, Default, Clone)]
pub struct RouteTableBuilder {
    /// (prefix, tunnel, tier, pinned).
    routes: Vec<(IpNet, TunnelKey, u8, bool)>,
    /// Connections exempt from the reverse-path check.
    any_source: Vec<u16>,
}

impl RouteTableBuilder {
    /// `net` (host bits ignored) is reachable through `tunnel`.
    pub fn route(&mut self, net: IpNet, tunnel: TunnelKey) -> &mut Self {
        self.route_tier(net, tunnel, 0)
    }

    /// `net` is reachable through `tunnel` as a tier-`tier` path: lower tiers are used while any
    /// of their tunnels can carry traffic (BGP's best paths first).
    pub fn route_tier(&mut self, net: IpNet, tunnel: TunnelKey, tier: u8) -> &mut Self {
        self.routes.push((net.trunc(), tunnel, tier, false));
        self
    }

    /// Packets to `addr` always take `tunnel` (its far inside address).
    pub fn pin(&mut self, addr: IpAddr, tunnel: TunnelKey) -> &mut Self {
        self.routes.push((IpNet::from(addr), tunnel, 0, true));
        self
    }

    /// Packets arriving on connection `conn` may come from any source: for a connection whose
    /// routes this table does not know (the user's own BGP daemon installs them) or whose check
    /// is turned off, and for AWS's side, whose VPC router already chose the tunnel.
    pub fn accept_any_source(&mut self, conn: u16) -> &mut Self {
        self.any_source.push(conn);
        self
    }

    pub fn build(&self) -> RouteTable {
        let mut by_net: std::collections::BTreeMap<IpNet, (Vec<(u8, TunnelKey)>, bool)> = Default::default();
        for &(net, tunnel, tier, pinned) in &self.routes {
            let (tunnels, is_pinned) = by_net.entry(net).or_default();
            // A pin replaces ordinary routes to the same address; the first pin stays.
            match (pinned, *is_pinned) {
                (true, false) => {
                    *tunnels = vec![(0, tunnel)];
                    *is_pinned = true;
                }
                (false, false) => tunnels.push((tier, tunnel)),
                (_, true) => {}
            }
        }
        let mut t = RouteTable::default();
        let mut v4: std::collections::BTreeMap<u8, PrefixMap<u32>> = Default::default();
        let mut v6: std::collections::BTreeMap<u8, PrefixMap<u128>> = Default::default();
        for (net, (mut tiered, pinned)) in by_net {
            // A tunnel in several tiers keeps its best.
            tiered.sort_unstable_by_key(|&(tier, key)| (key, tier));
            tiered.dedup_by_key(|&mut (_, key)| key);
            tiered.sort_unstable();
            let tunnels: Vec<TunnelKey> = tiered.iter().map(|&(_, key)| key).collect();
            let mut tier_ends: Vec<usize> = tiered
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0].0 != w[1].0)
                .map(|(i, _)| i + 1)
                .collect();
            tier_ends.push(tunnels.len());
            let i = t.entries.len() as RouteIndex;
            match net {
                IpNet::V4(n) => {
                    v4.entry(n.prefix_len())
                        .or_default()
                        .insert(u32::from(n.network()), i);
                }
                IpNet::V6(n) => {
                    v6.entry(n.prefix_len())
                        .or_default()
                        .insert(u128::from(n.network()), i);
                }
            }
            t.entries.push(RouteEntry {
                net,
                tunnels,
                tier_ends,
                pinned,
            });
        }
        t.v4 = v4.into_iter().rev().collect();
        t.v6 = v6.into_iter().rev().collect();
        for &conn in &self.any_source {
            let i = usize::from(conn);
            if t.any_source.len() <= i {
                t.any_source.resize(i + 1, false);
            }
            t.any_source[i] = true;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::TunnelId;
    use proptest::prelude::*;

    fn k(conn: u16, n: u8) -> TunnelKey {
        TunnelKey::new(conn, if n == 1 { TunnelId::One } else { TunnelId::Two })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_match_wins_and_a_dead_prefix_falls_back_to_a_shorter_one() {
        let mut b = RouteTable::builder();
        b.route(net("0.0.0.0/0"), k(0, 1));
        b.route(net("10.0.0.0/8"), k(1, 1));
        b.route(net("10.1.0.0/16"), k(2, 1));
        let t = b.build();
        let all = |_| true;
        assert_eq!(t.lookup(ip("10.1.2.3"), 0, all), Some(k(2, 1)));
        assert_eq!(t.lookup(ip("10.2.2.3"), 0, all), Some(k(1, 1)));
        assert_eq!(t.lookup(ip("192.0.2.1"), 0, all), Some(k(0, 1)));
        // Connection 2 down: 10.1/16 is as good as withdrawn; 10/8 applies.
        let not_2 = |t: TunnelKey| t.conn != 2;
        assert_eq!(t.lookup(ip("10.1.2.3"), 0, not_2), Some(k(1, 1)));
        assert_eq!(t.lookup(ip("10.1.2.3"), 0, |_| false), None);
        assert_eq!(t.lookup(ip("2001:db8::1"), 0, all), None);
    }

    #[test]
    fn equal_prefixes_spread_flows_over_usable_tunnels_only() {
        let mut b = RouteTable::builder();
        for c in 0..4 {
            b.route(net("10.100.0.0/16"), k(c, 1));
            b.route(net("10.100.0.0/16"), k(c, 2));
        }
        let t = b.build();
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.entries()[0].tunnels.len(), 8);
        // Only each connection's tunnel 1 carries traffic (prefer-tunnel-1 everywhere).
        let ones = |t: TunnelKey| t.id == TunnelId::One;
        let mut seen = [0usize; 4];
        for h in 0..4000u32 {
            let h = h.wrapping_mul(2_654_435_761);
            let got = t.lookup(ip("10.100.3.4"), h, ones).unwrap();
            assert_eq!(got.id, TunnelId::One);
            assert_eq!(got, t.lookup(ip("10.100.3.4"), h, ones).unwrap());
            seen[usize::from(got.conn)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn a_lower_tier_carries_traffic_only_while_no_better_tunnel_can() {
        let mut b = RouteTable::builder();
        b.route_tier(net("10.100.0.0/16"), k(0, 2), 1);
        b.route_tier(net("10.100.0.0/16"), k(0, 1), 0);
        b.route_tier(net("10.100.0.0/16"), k(1, 1), 0);
        // Listed in a worse tier too: keeps its best.
        b.route_tier(net("10.100.0.0/16"), k(1, 1), 1);
        let t = b.build();
        assert_eq!(t.entries()[0].tunnels, [k(0, 1), k(1, 1), k(0, 2)]);
        assert_eq!(t.entries()[0].tier_ends, [2, 3]);
        for h in 0..100 {
            let got = t.lookup(ip("10.100.1.1"), h, |_| true).unwrap();
            assert_eq!(got.id, TunnelId::One);
        }
        let only_standby = |x: TunnelKey| x == k(0, 2);
        assert_eq!(t.lookup(ip("10.100.1.1"), 5, only_standby), Some(k(0, 2)));
        assert_eq!(t.lookup(ip("10.100.1.1"), 5, |_| false), None);
    }

    #[test]
    fn a_failed_tunnel_moves_only_its_own_flows() {
        let mut b = RouteTable::builder();
        for c in 0..4 {
            b.route(net("10.0.0.0/8"), k(c, 1));
        }
        let t = b.build();
        let failed = k(2, 1);
        for h in 0..1000u32 {
            let before = t.lookup(ip("10.1.1.1"), h, |_| true).unwrap();
            let after = t.lookup(ip("10.1.1.1"), h, |x| x != failed).unwrap();
            if before != failed {
                assert_eq!(before, after, "hash {h}");
            } else {
                assert_ne!(after, failed);
            }
        }
    }

    #[test]
    fn two_tunnels_split_by_the_low_bit_as_before() {
        let mut b = RouteTable::builder();
        b.route(net("0.0.0.0/0"), k(0, 2));
        b.route(net("0.0.0.0/0"), k(0, 1));
        let t = b.build();
        assert_eq!(t.lookup(ip("10.0.0.1"), 2, |_| true), Some(k(0, 1)));
        assert_eq!(t.lookup(ip("10.0.0.1"), 3, |_| true), Some(k(0, 2)));
    }

    #[test]
    fn pinned_inside_addresses_ignore_usability_and_beat_routes() {
        let mut b = RouteTable::builder();
        b.route(net("169.254.0.0/16"), k(0, 1));
        b.route(net("169.254.20.9/32"), k(0, 1));
        b.pin(ip("169.254.20.9"), k(0, 2));
        b.pin(ip("fd00:a:2::1"), k(3, 2));
        let t = b.build();
        assert_eq!(t.lookup(ip("169.254.20.9"), 0, |_| false), Some(k(0, 2)));
        assert_eq!(t.lookup(ip("169.254.20.10"), 0, |_| true), Some(k(0, 1)));
        assert_eq!(t.lookup(ip("fd00:a:2::1"), 7, |_| false), Some(k(3, 2)));
        assert_eq!(t.lookup(ip("fd00:a:2::2"), 7, |_| true), None);
    }

    #[test]
    fn ipv6_prefixes_match_longest_first() {
        let mut b = RouteTable::builder();
        b.route(net("::/0"), k(0, 1));
        b.route(net("2001:db8::/32"), k(1, 1));
        b.route(net("2001:db8:1::/48"), k(1, 2));
        let t = b.build();
        assert_eq!(t.lookup(ip("2001:db8:1::5"), 0, |_| true), Some(k(1, 2)));
        assert_eq!(t.lookup(ip("2001:db8:2::5"), 0, |_| true), Some(k(1, 1)));
        assert_eq!(t.lookup(ip("2001:db9::5"), 0, |_| true), Some(k(0, 1)));
        assert_eq!(t.lookup(ip("10.0.0.1"), 0, |_| true), None);
    }

    #[test]
    fn a_source_must_be_routed_through_the_connection_it_arrived_on() {
        let mut b = RouteTable::builder();
        b.route(net("10.100.0.0/16"), k(0, 1));
        b.route_tier(net("10.100.0.0/16"), k(0, 2), 1);
        b.route(net("10.100.7.0/24"), k(1, 1));
        b.route(net("10.0.0.0/8"), k(0, 1));
        b.route(net("2001:db8::/32"), k(1, 2));
        b.pin(ip("169.254.10.5"), k(0, 1));
        b.pin(ip("169.254.11.5"), k(1, 2));
        let t = b.build();
        // Either tunnel of the connection, any tier; usability plays no part.
        assert!(t.source_allowed(ip("10.100.0.10"), 0));
        assert!(!t.source_allowed(ip("10.100.0.10"), 1));
        // The longest match decides: 10.100.7/24 belongs to connection 1 only.
        assert!(t.source_allowed(ip("10.100.7.1"), 1));
        assert!(!t.source_allowed(ip("10.100.7.1"), 0));
        assert!(t.source_allowed(ip("10.200.0.1"), 0));
        // Unrouted sources (the spoofing this is for) and the other family.
        assert!(!t.source_allowed(ip("192.168.1.1"), 0));
        assert!(!t.source_allowed(ip("2001:db9::1"), 1));
        assert!(t.source_allowed(ip("2001:db8::1"), 1));
        // Far inside addresses pass on their own connection (BGP, probes), not on another.
        assert!(t.source_allowed(ip("169.254.10.5"), 0));
        assert!(!t.source_allowed(ip("169.254.10.5"), 1));
        assert!(t.source_allowed(ip("169.254.11.5"), 1));
        assert!(!t.source_allowed(ip("169.254.11.6"), 1));
        // A connection beyond any route: nothing passes.
        assert!(!t.source_allowed(ip("10.100.0.10"), 9));
        assert!(!RouteTable::default().source_allowed(ip("10.0.0.1"), 0));
    }

    #[test]
    fn an_exempt_connection_accepts_any_source_and_others_stay_checked() {
        let mut b = RouteTable::builder();
        b.route(net("10.100.0.0/16"), k(0, 1));
        b.accept_any_source(3);
        let t = b.build();
        assert!(t.source_allowed(ip("192.0.2.99"), 3));
        assert!(t.source_allowed(ip("2001:db8::1"), 3));
        assert!(!t.source_allowed(ip("10.100.0.1"), u16::MAX));
        assert!(!t.source_allowed(ip("192.0.2.99"), 0));
        assert!(!t.source_allowed(ip("192.0.2.99"), 2));
    }

    proptest! {
        /// The reverse-path check agrees with a brute force: among the routes containing the
        /// source, those of the longest length must name a tunnel of the connection.
        #[test]
        fn source_check_agrees_with_brute_force(
            routes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u16..4, any::<bool>(), 0u8..3), 0..40),
            pins in proptest::collection::vec((any::<u32>(), 0u16..4, any::<bool>()), 0..4),
            srcs in proptest::collection::vec(any::<u32>(), 1..40),
            exempt in proptest::option::of(0u16..5),
        ) {
            let mut b = RouteTable::builder();
            let mut nets = Vec::new();
            for &(a, len, conn, two, tier) in &routes {
                let n = IpNet::new(IpAddr::V4(a.into()), len).unwrap().trunc();
                let key = k(conn, if two { 2 } else { 1 });
                b.route_tier(n, key, tier);
                nets.push((n, key, false));
            }
            for &(a, conn, two) in &pins {
                let key = k(conn, if two { 2 } else { 1 });
                b.pin(IpAddr::V4(a.into()), key);
                nets.push((IpNet::from(IpAddr::V4(a.into())), key, true));
            }
            if let Some(c) = exempt {
                b.accept_any_source(c);
            }
            let t = b.build();
            // Sources inside the routes too, not only random ones (which mostly match nothing).
            let inside = nets.iter().map(|(n, _, _)| match n.network() {
                IpAddr::V4(a) => u32::from(a) | 1,
                IpAddr::V6(_) => 0,
            });
            for s in srcs.iter().copied().chain(inside) {
                let src = IpAddr::V4(s.into());
                let longest = nets.iter().filter(|(n, _, _)| n.contains(&src)).map(|(n, _, _)| n.prefix_len()).max();
                for conn in 0u16..5 {
                    let want = exempt == Some(conn) || longest.is_some_and(|len| {
                        let at_len: Vec<_> = nets.iter().filter(|(n, _, _)| n.prefix_len() == len && n.contains(&src)).collect();
                        // A pin replaces the routes of its address: the first pin's tunnel only.
                        match at_len.iter().find(|(_, _, pinned)| *pinned) {
                            Some((_, key, _)) => key.conn == conn,
                            None => at_len.iter().any(|(_, key, _)| key.conn == conn),
                        }
                    });
                    prop_assert_eq!(t.source_allowed(src, conn), want, "src {} conn {}", src, conn);
                }
            }
        }

        /// The table agrees with a brute-force longest-match over the same routes.
        #[test]
        fn agrees_with_brute_force(
            routes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u16..4, any::<bool>()), 0..40),
            dsts in proptest::collection::vec(any::<u32>(), 1..40),
            down in proptest::collection::vec(any::<bool>(), 8),
            hash in any::<u32>(),
        ) {
            let mut b = RouteTable::builder();
            let mut nets = Vec::new();
            for &(a, len, conn, two) in &routes {
                let n = IpNet::new(IpAddr::V4(a.into()), len).unwrap().trunc();
                let key = k(conn, if two { 2 } else { 1 });
                b.route(n, key);
                nets.push((n, key));
            }
            let t = b.build();
            let usable = |t: TunnelKey| !down[t.slot()];
            for d in dsts {
                let dst = IpAddr::V4(d.into());
                // Brute force: group by prefix, longest first, first with a usable tunnel.
                let mut best: Option<(u8, Vec<TunnelKey>)> = None;
                let mut lens: Vec<u8> = nets.iter().filter(|(n, _)| n.contains(&dst)).map(|(n, _)| n.prefix_len()).collect();
                lens.sort_unstable();
                lens.dedup();
                for len in lens.into_iter().rev() {
                    let mut set: Vec<TunnelKey> = nets.iter()
                        .filter(|(n, key)| n.prefix_len() == len && n.contains(&dst) && usable(*key))
                        .map(|(_, key)| *key).collect();
                    set.sort_unstable();
                    set.dedup();
                    if !set.is_empty() { best = Some((len, set)); break; }
                }
                let want = best.map(|(len, _)| {
                    let mut all: Vec<TunnelKey> = nets.iter()
                        .filter(|(n, _)| n.prefix_len() == len && n.contains(&dst))
                        .map(|(_, key)| *key).collect();
                    all.sort_unstable();
                    all.dedup();
                    let start = hash as usize % all.len();
                    (0..all.len()).map(|k| all[(start + k) % all.len()]).find(|t| usable(*t)).unwrap()
                });
                prop_assert_eq!(t.lookup(dst, hash, usable), want);
            }
        }
    }
}
