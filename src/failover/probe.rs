//! The data-plane liveness probe: ICMP echo requests from our inside address to AWS's inside
//! address of one tunnel (AWS answers them), sent only while the tunnel receives nothing.
//!
//! Sans-IO: [`Prober::poll`] returns a complete IPv4 packet for the data plane to seal into the
//! tunnel; the data plane hands every decrypted inbound packet to [`Prober::handle`] first, which
//! swallows our replies and lets everything else through. The identifier is chosen by the caller
//! (random per run) so replies to an earlier run are not mistaken for ours.
//!
//! IPv6-inside tunnels carry no IPv4, so their prober also has AWS's inside IPv6 address
//! ([`Prober::with_v6`]): it then probes with ICMPv6 echo messages ([`Prober::poll_v6`], the kernel
//! adds the IPv6 header and checksum) and matches replies with [`Prober::handle_v6`].

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::dataplane::packet::checksum;

const IPV4_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// Payload marks the packet as cgwd's in a capture.
const PAYLOAD: &[u8; 8] = b"cgwd-lv\0";
/// Length of a probe packet (IPv4 + ICMP + payload).
pub const PROBE_LEN: usize = IPV4_HEADER + ICMP_HEADER + PAYLOAD.len();
const ICMP_PROTOCOL: u8 = 1;
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const ECHO6_REQUEST: u8 = 128;
const ECHO6_REPLY: u8 = 129;
/// Length of an ICMPv6 probe message (ICMPv6 header + payload; the kernel adds the IPv6 header).
pub const PROBE6_LEN: usize = ICMP_HEADER + PAYLOAD.len();
/// Probes remembered for matching replies; older ones count as lost.
const OUTSTANDING: usize = 8;

/// What [`Prober::handle`] made of an inbound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Not a reply to our probes: deliver it to the TUN device.
    NotOurs,
    /// A reply to an outstanding probe, with its round-trip time.
    Reply { rtt: Duration },
    /// Our identifier but an unknown or repeated sequence number (late or duplicated): drop it.
    Stale,
}

/// Probes one tunnel.
#[derive(Debug, Clone)]
pub struct Prober {
    /// Our inside address (the source).
    pub local: Ipv4Addr,
    /// AWS's inside address (the target).
    pub remote: Ipv4Addr,
    /// IPv6-inside tunnels: AWS's inside IPv6 address, probed instead of `remote`.
    pub remote_v6: Option<Ipv6Addr>,
    ident: u16,
    next_seq: u16,
    interval: Duration,
    last_sent: Option<Instant>,
    outstanding: VecDeque<(u16, Instant)>,
    /// Probes sent and replies matched (for status and metrics).
    pub sent: u64,
    pub answered: u64,
}

impl Prober {
    pub fn new(local: Ipv4Addr, remote: Ipv4Addr, ident: u16, interval: Duration) -> Self {
        Prober {
            local,
            remote,
            remote_v6: None,
            ident,
            next_seq: 0,
            interval,
            last_sent: None,
            outstanding: VecDeque::with_capacity(OUTSTANDING),
            sent: 0,
            answered: 0,
        }
    }

    /// The same prober for an IPv6-inside tunnel: ICMPv6 echo to AWS's inside IPv6 address.
    pub fn with_v6(mut self, remote: Option<Ipv6Addr>) -> Self {
        self.remote_v6 = remote;
        self
    }

    /// When the next probe is due given the last inbound packet on the tunnel.
    pub fn next_due(&self, last_inbound: Option<Instant>) -> Option<Instant> {
        match (self.last_sent, last_inbound) {
            (None, None) => None,
            (a, b) => a.max(b).map(|t| t + self.interval),
        }
    }

    /// A probe packet if one is due at `now`: nothing inbound and nothing sent for an interval.
    pub fn poll(&mut self, now: Instant, last_inbound: Option<Instant>) -> Option<[u8; PROBE_LEN]> {
        let seq = self.due(now, last_inbound)?;
        Some(self.build(seq))
    }

    /// [`Self::poll`] for an IPv6-inside tunnel: the ICMPv6 echo request message (checksum left to
    /// the kernel, which computes it for raw ICMPv6 sockets), to send to [`Self::remote_v6`].
    pub fn poll_v6(&mut self, now: Instant, last_inbound: Option<Instant>) -> Option<[u8; PROBE6_LEN]> {
        let seq = self.due(now, last_inbound)?;
        let mut m = [0u8; PROBE6_LEN];
        m[0] = ECHO6_REQUEST;
        m[4..6].copy_from_slice(&self.ident.to_be_bytes());
        m[6..8].copy_from_slice(&seq.to_be_bytes());
        m[ICMP_HEADER..].copy_from_slice(PAYLOAD);
        Some(m)
    }

    /// The next sequence number if a probe is due at `now`, recorded as outstanding.
    fn due(&mut self, now: Instant, last_inbound: Option<Instant>) -> Option<u16> {
        if let Some(due) = self.next_due(last_inbound)
            && now < due
        {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((seq, now));
        self.last_sent = Some(now);
        self.sent += 1;
        Some(seq)
    }

    fn build(&self, seq: u16) -> [u8; PROBE_LEN] {
        let mut p = [0u8; PROBE_LEN];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(PROBE_LEN as u16).to_be_bytes());
        p[4..6].copy_from_slice(&seq.to_be_bytes());
        p[6] = 0x40; // DF: a probe must never be fragmented.
        p[8] = 64;
        p[9] = ICMP_PROTOCOL;
        p[12..16].copy_from_slice(&self.local.octets());
        p[16..20].copy_from_slice(&self.remote.octets());
        let c = checksum(&p[..IPV4_HEADER]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let icmp = &mut p[IPV4_HEADER..];
        icmp[0] = ECHO_REQUEST;
        icmp[4..6].copy_from_slice(&self.ident.to_be_bytes());
        icmp[6..8].copy_from_slice(&seq.to_be_bytes());
        icmp[ICMP_HEADER..].copy_from_slice(PAYLOAD);
        let c = checksum(icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// Look at a decrypted inbound packet. Never panics on any input.
    pub fn handle(&mut self, packet: &[u8], now: Instant) -> Inbound {
        let reply = self.parse_reply(packet);
        self.matched(reply, now)
    }

    /// An ICMPv6 message from `from` (a raw ICMPv6 socket's datagram: no IPv6 header; the kernel
    /// has checked its checksum). Never panics on any input.
    pub fn handle_v6(&mut self, from: Ipv6Addr, message: &[u8], now: Instant) -> Inbound {
        let reply = match message {
            [ECHO6_REPLY, 0, _, _, i0, i1, s0, s1, ..] if self.remote_v6 == Some(from) => {
                Some((u16::from_be_bytes([*i0, *i1]), u16::from_be_bytes([*s0, *s1])))
            }
            _ => None,
        };
        self.matched(reply, now)
    }

    fn matched(&mut self, reply: Option<(u16, u16)>, now: Instant) -> Inbound {
        let Some((ident, seq)) = reply else {
            return Inbound::NotOurs;
        };
        if ident != self.ident {
            return Inbound::NotOurs;
        }
        match self.outstanding.iter().position(|&(s, _)| s == seq) {
            Some(i) => {
                let (_, sent) = self.outstanding.remove(i).unwrap_or((seq, now));
                // Replies to older probes are implied lost-and-late; forget them.
                self.outstanding.drain(..i);
                self.answered += 1;
                Inbound::Reply {
                    rtt: now.saturating_duration_since(sent),
                }
            }
            None => Inbound::Stale,
        }
    }

    /// (identifier, sequence) if `packet` is a well-formed echo reply from `remote` to `local`.
    fn parse_reply(&self, packet: &[u8]) -> Option<(u16, u16)> {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
        if ihl < IPV4_HEADER || total < ihl + ICMP_HEADER || total > packet.len() {
            return None;
        }
        // Fragments cannot be ours (probes carry DF and are tiny).
        let frag = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff;
        if packet[9] != ICMP_PROTOCOL
            || frag != 0
            || packet[12..16] != self.remote.octets()
            || packet[16..20] != self.local.octets()
        {
            return None;
        }
        let icmp = &packet[ihl..total];
        if icmp[0] != ECHO_REPLY || icmp[1] != 0 || checksum(icmp) != 0 {
            return None;
        }
        Some((
            u16::from_be_bytes([icmp[4], icmp[5]]),
            u16::from_be_bytes([icmp[6], icmp[7]]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const US: Ipv4Addr = Ipv4Addr::new(169, 254, 10, 6);
    const AWS: Ipv4Addr = Ipv4Addr::new(169, 254, 10, 5);

    /// What AWS does with an echo request: swap addresses, type 0, fix checksums.
    fn answer(req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r[12..16].copy_from_slice(&req[16..20]);
        r[16..20].copy_from_slice(&req[12..16]);
        r[10..12].fill(0);
        let c = checksum(&r[..20]);
        r[10..12].copy_from_slice(&c.to_be_bytes());
        r[20] = ECHO_REPLY;
        r[22..24].fill(0);
        let c = checksum(&r[20..]);
        r[22..24].copy_from_slice(&c.to_be_bytes());
        r
    }

    #[test]
    fn request_is_a_valid_ipv4_icmp_echo() {
        let t0 = crate::io::clock::now();
        let mut p = Prober::new(US, AWS, 0x1234, Duration::from_millis(250));
        let pkt = p.poll(t0, None).expect("first probe is sent at once");
        assert_eq!(checksum(&pkt[..20]), 0);
        assert_eq!(checksum(&pkt[20..]), 0);
        assert_eq!(pkt[9], 1);
        assert_eq!(&pkt[12..16], &US.octets());
        assert_eq!(&pkt[16..20], &AWS.octets());
        assert_eq!(pkt[20], ECHO_REQUEST);
        assert_eq!(&pkt[24..26], &0x1234u16.to_be_bytes());
    }

    #[test]
    fn probes_only_when_idle_for_an_interval() {
        let t0 = crate::io::clock::now();
        let ms = Duration::from_millis;
        let mut p = Prober::new(US, AWS, 7, ms(250));
        assert!(p.poll(t0, None).is_some());
        assert!(p.poll(t0 + ms(100), None).is_none());
        assert!(p.poll(t0 + ms(250), None).is_some());
        // Traffic came in at +400: nothing until +650.
        assert!(p.poll(t0 + ms(500), Some(t0 + ms(400))).is_none());
        assert_eq!(p.next_due(Some(t0 + ms(400))), Some(t0 + ms(650)));
        assert!(p.poll(t0 + ms(650), Some(t0 + ms(400))).is_some());
    }

    #[test]
    fn reply_is_recognised_once_and_reports_rtt() {
        let t0 = crate::io::clock::now();
        let mut p = Prober::new(US, AWS, 99, Duration::from_millis(250));
        let req = p.poll(t0, None).unwrap();
        let rep = answer(&req);
        assert_eq!(
            p.handle(&rep, t0 + Duration::from_millis(30)),
            Inbound::Reply {
                rtt: Duration::from_millis(30)
            }
        );
        assert_eq!(p.handle(&rep, t0 + Duration::from_millis(31)), Inbound::Stale);
        assert_eq!(p.answered, 1);
    }

    #[test]
    fn other_traffic_and_other_identifiers_pass_through() {
        let t0 = crate::io::clock::now();
        let mut p = Prober::new(US, AWS, 99, Duration::from_millis(250));
        let mut other = Prober::new(US, AWS, 100, Duration::from_millis(250));
        let req = other.poll(t0, None).unwrap();
        assert_eq!(p.handle(&answer(&req), t0), Inbound::NotOurs);
        // The request itself (type 8) is not a reply.
        let own = p.poll(t0, None).unwrap();
        let mut looped = own;
        looped[12..16].copy_from_slice(&AWS.octets());
        looped[16..20].copy_from_slice(&US.octets());
        assert_eq!(p.handle(&looped, t0), Inbound::NotOurs);
        // A corrupted checksum is not ours either.
        let mut bad = answer(&own);
        bad[30] ^= 1;
        assert_eq!(p.handle(&bad, t0), Inbound::NotOurs);
        assert_eq!(p.handle(&[], t0), Inbound::NotOurs);
    }

    #[test]
    fn ipv6_probe_and_reply() {
        let t0 = crate::io::clock::now();
        let aws6: Ipv6Addr = "fd00:a9fe:10::1".parse().unwrap();
        let mut p = Prober::new(US, AWS, 0x4242, Duration::from_millis(250)).with_v6(Some(aws6));
        let req = p.poll_v6(t0, None).expect("first probe at once");
        assert_eq!(req[0], ECHO6_REQUEST);
        assert_eq!(&req[4..6], &0x4242u16.to_be_bytes());
        assert!(p.poll_v6(t0 + Duration::from_millis(100), None).is_none());
        let mut rep = req;
        rep[0] = ECHO6_REPLY;
        // From someone else, or a request looped back: not ours.
        assert_eq!(
            p.handle_v6("fd00::9".parse().unwrap(), &rep, t0),
            Inbound::NotOurs
        );
        assert_eq!(p.handle_v6(aws6, &req, t0), Inbound::NotOurs);
        assert_eq!(
            p.handle_v6(aws6, &rep, t0 + Duration::from_millis(20)),
            Inbound::Reply {
                rtt: Duration::from_millis(20)
            }
        );
        assert_eq!(p.handle_v6(aws6, &rep, t0), Inbound::Stale);
        assert_eq!(p.handle_v6(aws6, &rep[..7], t0), Inbound::NotOurs);
    }

    proptest! {
        #[test]
        fn handle_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut p = Prober::new(US, AWS, 1, Duration::from_millis(250))
                .with_v6(Some(Ipv6Addr::LOCALHOST));
            let _ = p.handle(&bytes, crate::io::clock::now());
            let _ = p.handle_v6(Ipv6Addr::LOCALHOST, &bytes, crate::io::clock::now());
        }
    }
}
