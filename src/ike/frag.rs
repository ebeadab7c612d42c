//! IKEv2 fragmentation (RFC 7383): when an encrypted message would not fit the path, it goes as several
//! SKF messages, each encrypted and integrity-protected on its own, so a lost IP fragment (or a middlebox
//! dropping IP fragments, common for the large IKE_AUTH) cannot stall the exchange.
//!
//! * Negotiation: both sides send N(IKEV2_FRAGMENTATION_SUPPORTED) in IKE_SA_INIT ([`super::init`]);
//!   only then is anything fragmented or any SKF accepted. A rekeyed IKE SA keeps the setting (§2.3).
//! * Sending ([`super::message`]): a message whose IP datagram would exceed
//!   [`FragmentConfig::max_datagram`] is split; a retransmission resends every fragment (§2.6.1).
//!   IKE_SA_INIT is never fragmented (it cannot be: no keys yet).
//! * Receiving: [`Reassembler`] holds one message per direction, bounded by [`MAX_FRAGMENTS`] and
//!   [`MAX_MESSAGE_LEN`]; the caller authenticates each fragment before offering it (§2.6), so a forged
//!   fragment can neither fill nor reset the buffer.

use std::time::{Duration, Instant};

use crate::wire::ike::{Fragment, PayloadType};

/// Most fragments one message may have: a PSK IKE_AUTH needs 2-3 at 1280 octets, 64 leaves room for
/// tiny fragment sizes without letting a peer make us track thousands of slots.
pub const MAX_FRAGMENTS: u16 = 64;

/// Most decrypted octets one reassembled message may hold (a PSK exchange is well under 4 KiB; 32 KiB
/// allows certificates and still bounds what a peer can make us keep).
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;

/// A partial message is dropped when it is this old at the next fragment's arrival: the peer has given
/// up on it (its own retransmissions of the same message refill the buffer from scratch).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default largest IP datagram for one IKE message, as strongSwan's `charon.fragment_size` (1280, the
/// IPv6 minimum MTU, which every sane path carries unfragmented).
pub const DEFAULT_MAX_DATAGRAM: usize = 1280;

/// IPv4 header (no options) + UDP header: what the network adds around an IKE message.
pub const IPV4_UDP_OVERHEAD: usize = 20 + 8;
/// The same over IPv6 outside addresses: a 40-octet header, so a 1280-octet datagram still fits
/// the IPv6 minimum MTU.
pub const IPV6_UDP_OVERHEAD: usize = 40 + 8;
/// The four zero octets in front of IKE on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER_LEN: usize = 4;

/// RFC 7383 fragmentation settings of one IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentConfig {
    /// Offer fragmentation in IKE_SA_INIT (and accept the peer's offer). Off: never fragment, never
    /// accept SKF, like a peer without RFC 7383.
    pub enabled: bool,
    /// The largest IP datagram (IP + UDP headers, non-ESP marker, IKE message) an encrypted message
    /// may take before it is fragmented; each fragment's datagram stays within it too.
    pub max_datagram: usize,
}

impl Default for FragmentConfig {
    fn default() -> Self {
        FragmentConfig {
            enabled: true,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

impl FragmentConfig {
    /// Largest IKE message (header included) that fits `max_datagram` when sent with (`nat_t`) or
    /// without the non-ESP marker, over IPv4 or (`ipv6`) IPv6.
    pub fn max_message(&self, nat_t: bool, ipv6: bool) -> usize {
        let marker = if nat_t { NON_ESP_MARKER_LEN } else { 0 };
        let ip_udp = if ipv6 {
            IPV6_UDP_OVERHEAD
        } else {
            IPV4_UDP_OVERHEAD
        };
        self.max_datagram.saturating_sub(ip_udp + marker)
    }
}

/// What happened to an offered fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Stored; more are missing.
    Stored,
    /// Already had this fragment number: ignored.
    Duplicate,
    /// Not stored: the Total Fragments is lower than the message being reassembled (§2.6), the
    /// message would exceed the limits, or the fragment is for an older message.
    Rejected,
    /// The last missing fragment: the whole inner payload chain, starting with payload type `first`.
    Complete { first: PayloadType, inner: Vec<u8> },
}

struct Partial {
    /// Which message: the IKE SA's SPIs (a rekeyed SA restarts message IDs) and the message ID.
    key: (u64, u64, u32),
    total: u16,
    first: PayloadType,
    parts: Vec<Option<Vec<u8>>>,
    received: u16,
    bytes: usize,
    started: Instant,
}

/// Reassembles one fragmented message at a time (per direction: the caller keeps one for requests and
/// one for responses). Fragments must be authenticated before they are offered.
#[derive(Default)]
pub struct Reassembler {
    partial: Option<Partial>,
}

impl Reassembler {
    /// Offer the decrypted `chunk` of fragment `frag` of message `msg_id` on the IKE SA `spis`;
    /// `first` is the fragment's Next Payload (the first inner payload's type when `frag` is number 1).
    pub fn offer(
        &mut self,
        now: Instant,
        spis: (u64, u64),
        msg_id: u32,
        frag: Fragment,
        first: PayloadType,
        chunk: &[u8],
    ) -> Offer {
        let key = (spis.0, spis.1, msg_id);
        let total = frag.total();
        if total > MAX_FRAGMENTS || chunk.len() > MAX_MESSAGE_LEN {
            return Offer::Rejected;
        }
        if let Some(p) = &self.partial {
            let expired = now.saturating_duration_since(p.started) >= REASSEMBLY_TIMEOUT;
            // §2.6: a higher Total Fragments means the sender re-fragmented smaller (PMTU discovery):
            // start over with this fragment; a lower one belongs to an older attempt: ignore it.
            if p.key == key && !expired && total < p.total {
                return Offer::Rejected;
            }
            if p.key != key || expired || total > p.total {
                self.partial = None;
            }
        }
        let p = self.partial.get_or_insert_with(|| Partial {
            key,
            total,
            first: PayloadType::NONE,
            parts: vec![None; usize::from(total)],
            received: 0,
            bytes: 0,
            started: now,
        });
        let index = usize::from(frag.number() - 1);
        let Some(slot) = p.parts.get_mut(index) else {
            return Offer::Rejected;
        };
        if slot.is_some() {
            return Offer::Duplicate;
        }
        if p.bytes + chunk.len() > MAX_MESSAGE_LEN {
            // Cannot be a message we would accept: give up on it entirely.
            self.partial = None;
            return Offer::Rejected;
        }
        *slot = Some(chunk.to_vec());
        p.bytes += chunk.len();
        p.received += 1;
        if frag.number() == 1 {
            p.first = first;
        }
        if p.received < p.total {
            return Offer::Stored;
        }
        let Some(p) = self.partial.take() else {
            return Offer::Rejected;
        };
        let mut inner = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            inner.extend_from_slice(&part);
        }
        Offer::Complete {
            first: p.first,
            inner,
        }
    }

    /// Whether fragment `frag` of message `msg_id` on `spis` is already stored (so a duplicate can be
    /// ignored before spending a decryption on it).
    pub fn has(&self, spis: (u64, u64), msg_id: u32, frag: Fragment) -> bool {
        self.partial.as_ref().is_some_and(|p| {
            p.key == (spis.0, spis.1, msg_id)
                && p.total == frag.total()
                && p.parts
                    .get(usize::from(frag.number() - 1))
                    .is_some_and(Option::is_some)
        })
    }

    /// Octets held for the partial message (for tests and metrics).
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.bytes)
    }

    /// Forget the partial message.
    pub fn clear(&mut self) {
        self.partial = None;
    }
}

/// Per-SA fragmentation state: whether it was negotiated, and the reassembly buffers.
#[derive(Default)]
pub(crate) struct FragState {
    /// Both sides sent IKEV2_FRAGMENTATION_SUPPORTED.
    pub negotiated: bool,
    /// The peer's requests being reassembled.
    pub requests: Reassembler,
    /// Responses to our requests being reassembled.
    pub responses: Reassembler,
    /// See [`FragmentStats`].
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
}

/// Fragment counters of one IKE SA, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentStats {
    /// Both sides offered fragmentation in IKE_SA_INIT.
    pub negotiated: bool,
    /// SKF datagrams we sent (first transmissions; retransmissions resend the same ones).
    pub sent: u64,
    /// Authenticated SKF datagrams we received.
    pub received: u64,
    /// SKF datagrams dropped: not negotiated, failed authentication, over the limits, stale.
    pub dropped: u64,
}

impl super::IkeSa {
    pub fn fragment_stats(&self) -> FragmentStats {
        FragmentStats {
            negotiated: self.frag.negotiated,
            sent: self.frag.sent,
            received: self.frag.received,
            dropped: self.frag.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(n: u16, t: u16) -> Fragment {
        Fragment::new(n, t).unwrap()
    }

    const SPIS: (u64, u64) = (1, 2);

    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    /// Offers each `(msg_id, number, total, chunk)` at `t` (fragment 1 naming IDi) and returns the
    /// outcomes.
    fn run(r: &mut Reassembler, t: Instant, steps: &[(u32, u16, u16, &[u8])]) -> Vec<Offer> {
        steps
            .iter()
            .map(|&(id, n, total, chunk)| {
                let first = if n == 1 {
                    PayloadType::IDI
                } else {
                    PayloadType::NONE
                };
                r.offer(t, SPIS, id, frag(n, total), first, chunk)
            })
            .collect()
    }

    fn complete(inner: &[u8]) -> Offer {
        Offer::Complete {
            first: PayloadType::IDI,
            inner: inner.to_vec(),
        }
    }

    #[test]
    fn reassembles_out_of_order_and_ignores_duplicates() {
        let mut r = Reassembler::default();
        let steps: [(u32, u16, u16, &[u8]); 3] = [(5, 3, 3, b"ef"), (5, 1, 3, b"ab"), (5, 1, 3, b"ab")];
        use Offer::*;
        assert_eq!(run(&mut r, now(), &steps), [Stored, Stored, Duplicate]);
        assert!(r.has(SPIS, 5, frag(3, 3)));
        assert_eq!(run(&mut r, now(), &[(5, 2, 3, b"cd")]), [complete(b"abcdef")]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn higher_total_restarts_lower_total_is_ignored() {
        let mut r = Reassembler::default();
        let steps: [(u32, u16, u16, &[u8]); 5] = [
            (1, 1, 2, b"xx"),
            (1, 1, 3, b"a"),
            (1, 2, 2, b"yy"),
            (1, 2, 3, b"b"),
            (1, 3, 3, b"c"),
        ];
        use Offer::*;
        assert_eq!(
            run(&mut r, now(), &steps),
            [Stored, Stored, Rejected, Stored, complete(b"abc")]
        );
    }

    #[test]
    fn new_message_id_or_timeout_discards_the_partial_one() {
        let t = now();
        let mut r = Reassembler::default();
        r.offer(t, SPIS, 1, frag(1, 2), PayloadType::IDI, b"old");
        r.offer(t, SPIS, 2, frag(2, 2), PayloadType::NONE, b"new");
        assert_eq!(r.buffered(), 3);
        assert!(!r.has(SPIS, 1, frag(1, 2)));
        let later = t + REASSEMBLY_TIMEOUT;
        assert_eq!(
            r.offer(later, SPIS, 2, frag(1, 2), PayloadType::IDI, b"x"),
            Offer::Stored
        );
        assert_eq!(r.buffered(), 1);
    }

    #[test]
    fn limits_bound_memory() {
        let t = now();
        let mut r = Reassembler::default();
        assert_eq!(
            r.offer(t, SPIS, 1, frag(1, MAX_FRAGMENTS + 1), PayloadType::IDI, b"a"),
            Offer::Rejected
        );
        let big = vec![0u8; MAX_MESSAGE_LEN / 2 + 1];
        assert_eq!(
            r.offer(t, SPIS, 1, frag(1, 3), PayloadType::IDI, &big),
            Offer::Stored
        );
        assert_eq!(
            r.offer(t, SPIS, 1, frag(2, 3), PayloadType::NONE, &big),
            Offer::Rejected
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn max_message_subtracts_ip_udp_and_marker() {
        let c = FragmentConfig::default();
        assert_eq!(c.max_message(true, false), 1280 - 20 - 8 - 4);
        assert_eq!(c.max_message(false, false), 1280 - 28);
        assert_eq!(c.max_message(true, true), 1280 - 40 - 8 - 4);
    }
}
