//! Static routing: routes to `routing.vpc_cidrs` through the TUN device, present while at least
//! one tunnel is up, and the tunnels' inside addresses.
//!
//! The desired [`RouteSet`] is computed from settings and tunnel state and diffed against what
//! the kernel has under cgwd's own route protocol number [`RTPROT_CGWD`]; only the difference is
//! applied. Tagging every route cgwd installs means a restart after a crash finds and removes the
//! stale ones, and cgwd never touches a route someone else installed.
//!
//! The kernel side ([`netlink`]) speaks rtnetlink synchronously with `netlink-packet-route` +
//! `netlink-sys`: the daemon's control thread is a plain poll loop (no async runtime), changes are
//! rare (tunnel up/down) and a blocking request/ACK is simplest to reason about; both crates are
//! already in the build through `tun-rs`.

pub mod netlink;

use std::collections::BTreeSet;

use ipnet::IpNet;

pub use netlink::{Netlink, NetlinkError};

/// cgwd's route protocol number (`ip route show proto 198`). 198 (0xC6) is free in iproute2's
/// `rt_protos` (named ones: 0-4, 8-16, 18, 42, 99, 186-189, 192) and not used by BIRD, FRR or
/// keepalived.
pub const RTPROT_CGWD: u8 = 198;

/// One route cgwd owns: `dst dev <ifindex> proto 198` in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Route {
    pub dst: IpNet,
    pub ifindex: u32,
}

/// A set of routes, ordered for stable output.
pub type RouteSet = BTreeSet<Route>;

/// What must change to go from installed to desired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDiff {
    pub add: Vec<Route>,
    pub remove: Vec<Route>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The routes cgwd wants: every VPC CIDR via the TUN device while at least one tunnel is up;
/// none otherwise (traffic then takes whatever route the host has, instead of a black hole).
pub fn desired(vpc_cidrs: &[IpNet], ifindex: u32, any_tunnel_up: bool) -> RouteSet {
    if !any_tunnel_up {
        return RouteSet::new();
    }
    vpc_cidrs
        .iter()
        .map(|n| Route {
            dst: n.trunc(),
            ifindex,
        })
        .collect()
}

/// Removals first (a route on a stale interface index must go before its replacement is added).
pub fn diff(desired: &RouteSet, installed: &RouteSet) -> RouteDiff {
    RouteDiff {
        remove: installed.difference(desired).copied().collect(),
        add: desired.difference(installed).copied().collect(),
    }
}

/// Installs and removes cgwd's routes and inside addresses, remembering what it did so
/// [`Router::teardown`] leaves the host as it found it.
pub struct Router {
    nl: Netlink,
    vpc_cidrs: Vec<IpNet>,
    ifindex: u32,
    installed: RouteSet,
    addresses: Vec<(IpNet, u32)>,
}

impl Router {
    /// Open rtnetlink for the device `ifindex` and remove stale cgwd routes left by a crash.
    pub fn new(vpc_cidrs: Vec<IpNet>, ifindex: u32) -> Result<Self, NetlinkError> {
        let mut nl = Netlink::open()?;
        for stale in nl.routes(RTPROT_CGWD)? {
            tracing::info!(dst = %stale.dst, "removing stale cgwd route from an earlier run");
            nl.del_route(&stale, RTPROT_CGWD)?;
        }
        Ok(Router {
            nl,
            vpc_cidrs,
            ifindex,
            installed: RouteSet::new(),
            addresses: Vec::new(),
        })
    }

    /// The prefixes routed to the device while a tunnel is up (the union over VPN connections).
    pub fn set_cidrs(&mut self, vpc_cidrs: Vec<IpNet>) {
        self.vpc_cidrs = vpc_cidrs;
    }

    /// Make the kernel match the desired routes for this tunnel state; returns what changed.
    pub fn sync(&mut self, any_tunnel_up: bool) -> Result<RouteDiff, NetlinkError> {
        let want = desired(&self.vpc_cidrs, self.ifindex, any_tunnel_up);
        let have: RouteSet = self.nl.routes(RTPROT_CGWD)?.into_iter().collect();
        let d = diff(&want, &have);
        for r in &d.remove {
            self.nl.del_route(r, RTPROT_CGWD)?;
            tracing::info!(dst = %r.dst, "route removed");
        }
        for r in &d.add {
            self.nl.add_route(r, RTPROT_CGWD)?;
            tracing::info!(dst = %r.dst, "route installed");
        }
        self.installed = want;
        Ok(d)
    }

    /// The routes cgwd has installed (for status).
    pub fn installed(&self) -> &RouteSet {
        &self.installed
    }

    /// Put an inside address (our address with the tunnel's prefix, e.g. 169.254.10.6/30) on the
    /// device. Already present counts as success.
    pub fn add_address(&mut self, addr: IpNet, ifindex: u32) -> Result<(), NetlinkError> {
        self.nl.add_address(addr, ifindex)?;
        if !self.addresses.contains(&(addr, ifindex)) {
            self.addresses.push((addr, ifindex));
        }
        Ok(())
    }

    /// Take an inside address off the device (a reload removed or changed its tunnel). Already
    /// gone counts as success.
    pub fn remove_address(&mut self, addr: IpNet, ifindex: u32) -> Result<(), NetlinkError> {
        self.addresses.retain(|a| *a != (addr, ifindex));
        self.nl.del_address(addr, ifindex)
    }

    /// Remove every route and address cgwd added. Keeps going after an error and returns the first.
    pub fn teardown(&mut self) -> Result<(), NetlinkError> {
        let mut first = None;
        let routes: Vec<Route> = match self.nl.routes(RTPROT_CGWD) {
            Ok(r) => r,
            Err(e) => {
                first.get_or_insert(e);
                self.installed.iter().copied().collect()
            }
        };
        for r in routes {
            if let Err(e) = self.nl.del_route(&r, RTPROT_CGWD) {
                first.get_or_insert(e);
            }
        }
        self.installed.clear();
        for (addr, ifindex) in std::mem::take(&mut self.addresses) {
            if let Err(e) = self.nl.del_address(addr, ifindex) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn r(s: &str, ifindex: u32) -> Route {
        Route { dst: net(s), ifindex }
    }

    #[test]
    fn desired_routes_exist_only_while_a_tunnel_is_up() {
        let cidrs = [net("10.100.0.0/16"), net("10.101.0.0/16")];
        assert!(desired(&cidrs, 7, false).is_empty());
        let up = desired(&cidrs, 7, true);
        assert_eq!(up.len(), 2);
        assert!(up.contains(&r("10.100.0.0/16", 7)));
    }

    #[test]
    fn host_bits_are_dropped_and_duplicates_merged() {
        let cidrs = [net("10.100.3.4/16"), net("10.100.0.0/16")];
        let up = desired(&cidrs, 7, true);
        assert_eq!(up.into_iter().collect::<Vec<_>>(), vec![r("10.100.0.0/16", 7)]);
    }

    #[test]
    fn diff_adds_missing_and_removes_stale() {
        let want: RouteSet = [r("10.100.0.0/16", 7), r("10.101.0.0/16", 7)].into();
        let have: RouteSet = [r("10.101.0.0/16", 7), r("10.99.0.0/16", 7)].into();
        let d = diff(&want, &have);
        assert_eq!(d.add, vec![r("10.100.0.0/16", 7)]);
        assert_eq!(d.remove, vec![r("10.99.0.0/16", 7)]);
    }

    #[test]
    fn route_on_an_old_interface_index_is_replaced() {
        // cgwd crashed; the TUN device was recreated with a new index.
        let want: RouteSet = [r("10.100.0.0/16", 9)].into();
        let have: RouteSet = [r("10.100.0.0/16", 7)].into();
        let d = diff(&want, &have);
        assert_eq!(d.remove, vec![r("10.100.0.0/16", 7)]);
        assert_eq!(d.add, vec![r("10.100.0.0/16", 9)]);
    }

    #[test]
    fn in_sync_means_nothing_to_do() {
        let s: RouteSet = [r("10.100.0.0/16", 7)].into();
        assert!(diff(&s, &s).is_empty());
        assert!(diff(&RouteSet::new(), &RouteSet::new()).is_empty());
    }

    #[test]
    fn all_down_removes_everything() {
        let have: RouteSet = [r("10.100.0.0/16", 7), r("10.101.0.0/16", 7)].into();
        let d = diff(&desired(&[net("10.100.0.0/16")], 7, false), &have);
        assert!(d.add.is_empty());
        assert_eq!(d.remove.len(), 2);
    }
}
