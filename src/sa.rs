//! What the control plane hands the data plane: one negotiated Child SA pair.
//!
//! This is the whole interface between [`crate::ike`] and [`crate::esp`] (and the daemon between them):
//! IKE emits a [`ChildSa`] when a Child SA is created or rekeyed, and names SPIs when one is deleted.
//! The data plane installs the inbound half first, switches outbound when told, and keeps an old inbound
//! SA until its delete — make-before-break without a stall.

use std::net::{Ipv4Addr, SocketAddr};

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
}

impl std::fmt::Display for TunnelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tunnel {}", self.number())
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

/// An IPv4 traffic selector range (AWS is IPv4 inside unless configured otherwise; IPv6 comes later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TrafficSelector {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
}

impl TrafficSelector {
    /// 0.0.0.0/0, any protocol and port: AWS's default on both sides.
    pub const ANY: TrafficSelector = TrafficSelector {
        start: Ipv4Addr::UNSPECIFIED,
        end: Ipv4Addr::BROADCAST,
        protocol: 0,
        start_port: 0,
        end_port: 65535,
    };
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
    pub tunnel: TunnelId,
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
