//! Per-SA counters: plain relaxed atomics bumped on the hot path, read as snapshots by the status /
//! metrics code. TX-side and RX-side counters live in different SAs (and so different cache lines),
//! so the TX thread and the RX thread never contend on them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::ser::SerializeMap;

/// Why an inbound packet was dropped. Every drop is counted, none is logged per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Shorter than ESP header + IV + minimal trailer + ICV.
    Truncated,
    /// Ciphertext not a multiple of the cipher block (CBC) or of 4 octets (RFC 4303 §2.4).
    BadLength,
    /// No inbound SA with this SPI (includes SPI 0, which is never sent).
    UnknownSpi,
    /// Sequence number left of the replay window (or 0, which is never sent).
    ReplayTooOld,
    /// Sequence number already received.
    ReplayDuplicate,
    /// ICV did not verify.
    AuthFailed,
    /// Pad length beyond the payload, or padding bytes not 1, 2, 3, ... (RFC 4303 §2.4).
    BadPadding,
    /// Next header neither IPv4 (4) nor IPv6 (41).
    BadNextHeader,
    /// Next header 59: a dummy packet (RFC 4303 §2.6), discarded by rule.
    DummyPacket,
    /// Inner packet not a well-formed IP header of the announced version and length.
    BadInnerPacket,
    /// Inner addresses outside the SA's traffic selectors (RFC 4301 §5.2).
    SelectorMismatch,
    /// Decrypted, but its source is not routed through the tunnel's VPN connection: the data
    /// plane's reverse-path check (`routing.reverse_path_check`), counted after `open` (the
    /// packet is in the SA's packet count too).
    ReversePath,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::Truncated,
        Self::BadLength,
        Self::UnknownSpi,
        Self::ReplayTooOld,
        Self::ReplayDuplicate,
        Self::AuthFailed,
        Self::BadPadding,
        Self::BadNextHeader,
        Self::DummyPacket,
        Self::BadInnerPacket,
        Self::SelectorMismatch,
        Self::ReversePath,
    ];

    /// Stable name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadLength => "bad_length",
            Self::UnknownSpi => "unknown_spi",
            Self::ReplayTooOld => "replay_too_old",
            Self::ReplayDuplicate => "replay_duplicate",
            Self::AuthFailed => "auth_failed",
            Self::BadPadding => "bad_padding",
            Self::BadNextHeader => "bad_next_header",
            Self::DummyPacket => "dummy_packet",
            Self::BadInnerPacket => "bad_inner_packet",
            Self::SelectorMismatch => "selector_mismatch",
            Self::ReversePath => "reverse_path",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Live drop counters, one per reason.
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::COUNT]);

impl DropCounters {
    pub fn count(&self, reason: DropReason) {
        self.0[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> DropCounts {
        DropCounts(std::array::from_fn(|i| self.0[i].load(Relaxed)))
    }
}

/// Drop counts at one instant. Serializes as `{ "truncated": n, ... }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Reasons with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|&(_, n)| n != 0)
    }

    pub fn add(&mut self, other: &DropCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl serde::Serialize for DropCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(DropReason::COUNT))?;
        for reason in DropReason::ALL {
            map.serialize_entry(reason.name(), &self.get(reason))?;
        }
        map.end()
    }
}

/// Packets and bytes (of inner IP packets) through one SA, plus its drops (inbound only).
#[derive(Debug, Default)]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    pub(crate) drops: DropCounters,
}

impl SaCounters {
    pub(crate) fn record(&self, bytes: usize) {
        self.packets.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub fn packets(&self) -> u64 {
        self.packets.load(Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }
}

/// Totals of one tunnel: live SAs plus every SA it ever retired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TunnelCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub drops: DropCounts,
}
