//! What the control plane hands the data plane: one negotiated Child SA pair.
//!
//! This is the whole interface between [`crate::ike`] and [`crate::esp`] (and the daemon between them):
//! IKE emits a [`ChildSa`] when a Child SA is created or rekeyed, and names SPIs when one is deleted.
//! The data plane installs the inbound half first, switches outbound when told, and keeps an old inbound
//! SA until its delete — make-before-break without a stall.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::secret::Secret;
use crate::suite::{DhGroup, Encryption, Integrity};

/// Which of the connection's two tunnels (AWS always gives exactly two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum TunnelId {
    One,
    Two,
}

impl TunnelId {
    pub const BOTH: [TunnelId; 2] = [TunnelId::One, TunnelId::Two];

    /// 0 for tunnel 1, 1 for tunnel 2: an index into per-tunnel arrays.
    pub fn index(self) -> usize {
        match self {
            TunnelId::One => 0,
            TunnelId::Two => 1,
        }
    }

    /// 1 or 2, as AWS and people number tunnels.
    pub fn number(self) -> u8 {
        self.index() as u8 + 1
    }

    /// The connection's other tunnel.
    pub fn other(self) -> TunnelId {
        match self {
            TunnelId::One => TunnelId::Two,
            TunnelId::Two => TunnelId::One,
        }
    }
}

impl std::fmt::Display for TunnelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tunnel {}", self.number())
    }
}

/// Most tunnels one daemon carries (256 VPN connections): the data plane sizes its per-tunnel
/// state once at start, so that adding a connection on reload never moves what the workers read.
/// AWS's default quota is 50 VPN connections per region.
pub const MAX_TUNNELS: usize = 512;

/// One tunnel of the gateway: which VPN connection (its position in the daemon's list, stable for
/// the connection's life) and which of its two tunnels. The SA table and the data plane keep
/// per-tunnel state at [`TunnelKey::slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TunnelKey {
    pub conn: u16,
    pub id: TunnelId,
}

impl TunnelKey {
    pub const fn new(conn: u16, id: TunnelId) -> Self {
        TunnelKey { conn, id }
    }

    /// Index into per-tunnel arrays: `2 × connection + tunnel`.
    pub fn slot(self) -> usize {
        usize::from(self.conn) * 2 + self.id.index()
    }

    /// The key of slot `slot` (inverse of [`Self::slot`]).
    pub fn from_slot(slot: usize) -> Self {
        let id = if slot.is_multiple_of(2) {
            TunnelId::One
        } else {
            TunnelId::Two
        };
        TunnelKey::new((slot / 2).min(usize::from(u16::MAX)) as u16, id)
    }

    /// Both tunnels of connection `conn`.
    pub fn both(conn: u16) -> [TunnelKey; 2] {
        TunnelId::BOTH.map(|id| TunnelKey::new(conn, id))
    }
}

/// The first connection's tunnel: what a single-connection daemon, the lab tools and tests use.
impl From<TunnelId> for TunnelKey {
    fn from(id: TunnelId) -> Self {
        TunnelKey::new(0, id)
    }
}

impl std::fmt::Display for TunnelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.conn == 0 {
            write!(f, "{}", self.id)
        } else {
            write!(f, "connection {} {}", self.conn + 1, self.id)
        }
    }
}

/// An ESP SPI (network byte order is the wire's business; this is the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct EspSpi(pub u32);

impl std::fmt::Display for EspSpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A traffic selector (RFC 7296 §2.9): an IPv4 address range, optionally an IPv6 range too, with a
/// protocol and port range that apply to both. One Child SA may carry both families (TSi/TSr hold a
/// selector of each); AWS tunnels are IPv4 inside unless `TunnelInsideIpVersion` is ipv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TrafficSelector {
    /// IPv4 range, inclusive; `start > end` covers no IPv4 address (an IPv6-only selector).
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    /// IPv6 range (TS_IPV6_ADDR_RANGE); `None` = no IPv6 address at all, as before IPv6 existed here.
    pub v6: Option<Ipv6Range>,
}

/// An inclusive IPv6 address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Ipv6Range {
    pub start: Ipv6Addr,
    pub end: Ipv6Addr,
}

impl Ipv6Range {
    /// ::/0.
    pub const ALL: Ipv6Range = Ipv6Range {
        start: Ipv6Addr::UNSPECIFIED,
        end: Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff),
    };

    /// The addresses of `prefix/len` (`len` above 128 is taken as 128).
    pub fn prefix(prefix: Ipv6Addr, len: u8) -> Ipv6Range {
        let host_bits = 128 - u32::from(len.min(128));
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        let p = u128::from(prefix) & mask;
        Ipv6Range {
            start: Ipv6Addr::from(p),
            end: Ipv6Addr::from(p | !mask),
        }
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        self.start <= addr && addr <= self.end
    }
}

impl TrafficSelector {
    /// 0.0.0.0/0, any protocol and port: AWS's default on both sides (IPv4 only).
    pub const ANY: TrafficSelector = TrafficSelector {
        start: Ipv4Addr::UNSPECIFIED,
        end: Ipv4Addr::BROADCAST,
        protocol: 0,
        start_port: 0,
        end_port: 65535,
        v6: None,
    };

    /// ::/0, any protocol and port, and no IPv4: AWS's default for IPv6-inside tunnels.
    pub const ANY_V6: TrafficSelector = TrafficSelector {
        start: Ipv4Addr::BROADCAST,
        end: Ipv4Addr::UNSPECIFIED,
        v6: Some(Ipv6Range::ALL),
        ..TrafficSelector::ANY
    };

    /// Every address of both families (manual keys, tests).
    pub const ANY_DUAL: TrafficSelector = TrafficSelector {
        v6: Some(Ipv6Range::ALL),
        ..TrafficSelector::ANY
    };

    /// Whether `addr` lies in the selector's address ranges (protocol and ports not considered).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.start <= a && a <= self.end,
            IpAddr::V6(a) => self.v6.is_some_and(|r| r.contains(a)),
        }
    }

    /// Whether the selector lets IP protocol `protocol` through.
    pub fn allows_protocol(&self, protocol: u8) -> bool {
        self.protocol == 0 || self.protocol == protocol
    }
}

/// Keys and algorithms of one direction of a Child SA.
#[derive(Debug, Clone)]
pub struct EspKeys {
    pub spi: EspSpi,
    pub encryption: Encryption,
    /// `None` for AEAD (GCM) encryption.
    pub integrity: Option<Integrity>,
    /// Encryption keying material: the AES key, followed by the 4-octet salt for GCM (RFC 4106 §8.1).
    pub encryption_key: Secret,
    /// Integrity key; empty for AEAD.
    pub integrity_key: Secret,
}

/// A negotiated Child SA pair, ready to install.
#[derive(Debug, Clone)]
pub struct ChildSa {
    pub tunnel: TunnelKey,
    /// Packets we receive: SPI we chose.
    pub inbound: EspKeys,
    /// Packets we send: SPI the peer chose.
    pub outbound: EspKeys,
    /// Our side's selector (TSi when we initiated).
    pub local_ts: TrafficSelector,
    /// The peer's side's selector.
    pub remote_ts: TrafficSelector,
    /// PFS group used to create it, if any.
    pub pfs: Option<DhGroup>,
    /// UDP encapsulation (RFC 3948): our address and port, the peer's address and port. cgwd always
    /// encapsulates, because a userspace data plane needs UDP.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Anti-replay window size in packets, from the tunnel options.
    pub replay_window: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn any_keeps_ipv4_only_and_the_v6_variants_add_ipv6() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(TrafficSelector::ANY.contains(v4));
        assert!(!TrafficSelector::ANY.contains(v6));
        assert!(!TrafficSelector::ANY_V6.contains(v4));
        assert!(TrafficSelector::ANY_V6.contains(v6));
        assert!(TrafficSelector::ANY_DUAL.contains(v4) && TrafficSelector::ANY_DUAL.contains(v6));
    }

    #[test]
    fn ipv6_prefix_ranges() {
        let r = Ipv6Range::prefix("2001:db8:1::99".parse().unwrap(), 48);
        assert_eq!(r.start, "2001:db8:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            r.end,
            "2001:db8:1:ffff:ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(Ipv6Range::prefix(Ipv6Addr::LOCALHOST, 0), Ipv6Range::ALL);
        let host = Ipv6Range::prefix(Ipv6Addr::LOCALHOST, 200);
        assert_eq!((host.start, host.end), (Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
    }

    proptest! {
        #[test]
        fn prefix_membership_matches_the_mask(p in any::<u128>(), len in 0u8..=128, a in any::<u128>()) {
            let r = Ipv6Range::prefix(Ipv6Addr::from(p), len);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            prop_assert_eq!(r.contains(Ipv6Addr::from(a)), a & mask == p & mask);
            let ts = TrafficSelector { v6: Some(r), ..TrafficSelector::ANY };
            prop_assert_eq!(ts.contains(IpAddr::V6(Ipv6Addr::from(a))), a & mask == p & mask);
            // The IPv4 half is untouched by the IPv6 range.
            prop_assert!(ts.contains(IpAddr::V4(Ipv4Addr::from(a as u32))));
        }
    }
}
