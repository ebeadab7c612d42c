//! Zero-copy views over packet bytes (smoltcp `wire/` style) and owned `Repr`s to build packets.
//!
//! Contract: a view is created with `new_checked`, after which no accessor panics; parsing never
//! allocates on the hot path and rejects short or trailing data. Packets from the network are hostile.

pub mod esp;
pub mod ike;
pub mod udp_encap;
