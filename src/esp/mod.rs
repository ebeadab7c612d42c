//! ESP data plane core (RFC 4303 tunnel mode, RFC 3948 UDP encapsulation): seal, open, replay, SA table.
//!
//! No I/O here. The I/O shell reads an inner IP packet from the TUN device into a buffer at offset
//! [`MAX_HEADROOM`] (leaving [`MAX_TAILROOM`] behind it), calls [`SaTable::seal`] /
//! [`SaReader::seal`] and sends the returned range as the UDP/4500 payload. In the other direction
//! it classifies the UDP payload ([`crate::wire::udp_encap::classify`]), hands ESP to
//! [`SaReader::open`] and writes the returned inner range to the TUN device. Both work in place:
//! no allocation, no copy of the payload.
//!
//! Threading: see [`table`] — lock-free snapshots for the SA set, atomics for per-SA state, one TX
//! and one RX thread running concurrently.

pub mod counters;
pub mod replay;
pub mod sa;
pub mod table;

pub use counters::{DropCounts, DropReason, TunnelCounters};
pub use sa::{
    InboundSa, InstallError, MAX_HEADROOM, MAX_TAILROOM, Opened, OutboundSa, SEQ_HARD_LIMIT, SEQ_SOFT_LIMIT,
    SealError, Sealed,
};
pub use table::{SaReader, SaTable, Snapshot, TableCounters};

#[cfg(test)]
mod tests;
