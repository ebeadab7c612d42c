//! TX worker: TUN → ESP → UDP. Reads a TUN batch (a 64 KiB super-packet split into segments, each in
//! its own buffer with ESP headroom), seals every packet in place, and sends each tunnel's packets in
//! as few UDP GSO calls as possible (scatter-gather: no copy of the sealed packets).

use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::packet::{
    IPV6_MIN_MTU, clamp_mss, clear_df, destination, flow_hash, fragment, icmp_frag_needed,
    icmpv6_packet_too_big, ipv4_df, ipv6_tunnelable, mss_for,
};
use super::{DataplaneConfig, DataplaneStats, Shared};
use crate::esp::{MAX_HEADROOM, MAX_TAILROOM, SaReader, SealError};
use crate::io::clock;
use crate::io::tun::{IDEAL_BATCH_SIZE, Tun, TunReadBatch};
use crate::io::udp::{MAX_GSO_SEGMENTS, UdpSocket};
use crate::sa::{MAX_TUNNELS, TunnelKey};

use super::routes::{RouteIndex, RouteTable};
use crate::wire::udp_encap::KEEPALIVE;

/// Fragment buffers per batch (a ≤ 64 KiB packet at the smallest sane tunnel MTU needs ~120; one
/// oversized LAN packet at 1500 needs 2).
const FRAGMENT_BUFS: usize = 64;
/// Packet buffers for TUN reads: a batch keeps reading while it holds fewer than
/// [`GATHER_UNTIL`] packets, and a read is only tried with at least [`IDEAL_BATCH_SIZE`] buffers
/// free, enough for a 64 KiB super-packet split at an MSS down to 512.
const TUN_BUFS: usize = 2 * IDEAL_BATCH_SIZE;
/// One full UDP GSO send's worth: gathering more only adds latency.
const GATHER_UNTIL: usize = crate::io::udp::MAX_GSO_SEGMENTS;
/// Sealed packets per batch at most (TUN packets and fragments): the iovec array size.
const MAX_PER_BATCH: usize = TUN_BUFS + FRAGMENT_BUFS;

/// A packet sealed in place: which buffer, which tunnel, where the ESP packet lies.
#[derive(Clone)]
struct SealedRef {
    buf: usize,
    fragment: bool,
    tunnel: TunnelKey,
    range: Range<usize>,
}

/// ICMP errors we generate (IPv4 "fragmentation needed", ICMPv6 "packet too big"): a token bucket
/// of this many, refilled at [`ICMP_ERRORS_PER_SECOND`] (RFC 4443 §2.4 (f) asks for a limit; a
/// flood of oversize packets must not turn into a flood of errors on the LAN).
const ICMP_BURST: u32 = 20;
const ICMP_ERRORS_PER_SECOND: u32 = 100;

/// Token bucket for generated ICMP errors.
#[derive(Debug)]
pub struct IcmpBudget {
    tokens: u32,
    last: Option<Instant>,
}

impl IcmpBudget {
    pub fn new() -> Self {
        IcmpBudget {
            tokens: ICMP_BURST,
            last: None,
        }
    }

    /// Takes one token if there is one, refilling for the time since the last refill.
    pub fn take(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        let step = Duration::from_secs(1) / ICMP_ERRORS_PER_SECOND;
        let earned = now.saturating_duration_since(last).as_nanos() / step.as_nanos();
        if earned > 0 {
            self.tokens = (u128::from(self.tokens) + earned).min(u128::from(ICMP_BURST)) as u32;
            self.last = Some(last + step * earned.min(u128::from(u32::MAX)) as u32);
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Default for IcmpBudget {
    fn default() -> Self {
        Self::new()
    }
}

pub struct TxWorker {
    config: DataplaneConfig,
    tun: Arc<Tun>,
    udp: Arc<UdpSocket>,
    shared: Arc<Shared>,
    reader: SaReader,
    batch: TunReadBatch,
    fragments: Vec<Vec<u8>>,
    sealed: Vec<SealedRef>,
    /// When each tunnel slot last sent (NAT keepalives go to the quiet ones).
    last_sent: Vec<Option<Instant>>,
    /// Tunnels already flushed in this batch's send.
    flushed: Vec<TunnelKey>,
    routes: arc_swap::Cache<Arc<arc_swap::ArcSwap<RouteTable>>, Arc<RouteTable>>,
    icmp_budget: IcmpBudget,
    /// The last read found the queue empty: the next packet starts a burst (or is a lone ping) and
    /// goes out at once, without one more read looking for company.
    was_idle: bool,
    error_log: clock::RateLimit,
    /// A tunnel's own device (`bgp.speaker = "external"`): what the kernel routed into it goes
    /// into that tunnel, not through the prefix table.
    fixed: Option<TunnelKey>,
}

/// What [`TxWorker::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Packets were read (`packets` of them; 0 when a read failed and the next may work): step
    /// again. `lone` when they were the first after an idle TUN and something was sent (a request
    /// whose answer may be worth waiting for: [`super::answer_wait`]).
    Worked { packets: usize, lone: bool },
    /// Nothing queued: wait for the TUN to become readable.
    Idle,
    /// The TUN is gone.
    Closed,
}

impl TxWorker {
    pub fn new(config: DataplaneConfig, tun: Arc<Tun>, udp: Arc<UdpSocket>, shared: Arc<Shared>) -> Self {
        // Every segment fits the TUN MTU; a plain (non-offload) read may be as large as the MTU too.
        let mtu = usize::from(tun.mtu().unwrap_or(1500)).max(usize::from(config.tunnel_mtu));
        let frag_len = MAX_HEADROOM + usize::from(config.tunnel_mtu) + MAX_TAILROOM;
        TxWorker {
            reader: shared.sas.reader(),
            batch: TunReadBatch::new(TUN_BUFS, MAX_HEADROOM, mtu, MAX_TAILROOM),
            fragments: (0..FRAGMENT_BUFS).map(|_| vec![0u8; frag_len]).collect(),
            sealed: Vec::with_capacity(MAX_PER_BATCH),
            last_sent: vec![None; MAX_TUNNELS],
            flushed: Vec::with_capacity(8),
            routes: shared.route_reader(),
            icmp_budget: IcmpBudget::new(),
            was_idle: true,
            error_log: clock::RateLimit::new(Duration::from_secs(5)),
            fixed: None,
            config,
            tun,
            udp,
            shared,
        }
    }

    /// The worker of tunnel `key`'s own device: its packets go into that tunnel (see
    /// [`fixed_route`] for the one exception).
    pub fn for_tunnel(mut self, key: TunnelKey) -> Self {
        self.fixed = Some(key);
        self
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn tun_fd(&self) -> std::os::fd::RawFd {
        self.tun.raw_fd()
    }

    /// One non-blocking pass: reads what the TUN has queued, seals it and sends it (see
    /// [`super::workers`] for which thread calls it when).
    pub fn step(&mut self) -> Step {
        let n = match self.tun.read_batch(&mut self.batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                return Step::Worked {
                    packets: 0,
                    lone: false,
                };
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.was_idle = true;
                self.keepalives(clock::now());
                return Step::Idle;
            }
            Err(e) => {
                // A malformed super-packet (or too many segments) drops this read only.
                self.shared.stats.tun_read_errors.fetch_add(1, Relaxed);
                if self.error_log.check(clock::now()).is_some() {
                    tracing::warn!(error = %e, "TUN read failed; packet dropped");
                }
                if e.raw_os_error() == Some(libc::EBADFD) || e.raw_os_error() == Some(libc::EBADF) {
                    return Step::Closed;
                }
                return Step::Worked {
                    packets: 0,
                    lone: false,
                };
            }
        };
        // Latency: after an idle wait, send what the wake-up brought right away (a read finding
        // nothing costs a syscall on every ping's path). Under load the queue never empties, so
        // batches still fill up to one GSO send.
        let n = if self.was_idle { n } else { self.gather(n) };
        let lone = std::mem::replace(&mut self.was_idle, false);
        self.process(n);
        let now = clock::now();
        let sent = self.send(now);
        self.keepalives(now);
        Step::Worked {
            packets: n,
            lone: lone && sent,
        }
    }

    /// After a first read of `n` packets, keeps reading while packets are queued, the batch is
    /// short of one GSO send and a 64 KiB split still fits: one-packet reads (forwarded UDP, ACKs)
    /// then share a UDP GSO send instead of paying a sendmsg each. Returns the batch size.
    fn gather(&mut self, mut n: usize) -> usize {
        while n < GATHER_UNTIL && self.batch.free() >= IDEAL_BATCH_SIZE {
            match self.tun.read_more(&mut self.batch) {
                Ok(0) => break,
                Ok(more) => n += more,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.shared.stats.tun_read_errors.fetch_add(1, Relaxed);
                    if self.error_log.check(clock::now()).is_some() {
                        tracing::warn!(error = %e, "TUN read failed; packet dropped");
                    }
                    break;
                }
            }
        }
        n
    }

    /// Fix-ups and sealing of the `n` packets just read.
    fn process(&mut self, n: usize) {
        self.sealed.clear();
        let mut fragments_used = 0;
        let routes = Arc::clone(self.routes.load());
        // The route of the last destination: a batch is mostly one flow (one lookup per batch).
        let mut last: Option<(IpAddr, RouteIndex)> = None;
        let stats = &self.shared.stats;
        let headroom = self.batch.headroom();
        let tunnel_mtu = usize::from(self.config.tunnel_mtu);
        for i in 0..n {
            let len = self.batch.size(i);
            let pkt = self.batch.packet_mut(i);
            let Some(dst) = destination(pkt) else {
                stats.tx_not_ip.fetch_add(1, Relaxed);
                continue;
            };
            // The kernel's own IPv6 chatter on the TUN (router solicitations, MLD to ff02::) and
            // link-local traffic never belong in a tunnel.
            if let IpAddr::V6(d) = dst
                && !ipv6_tunnelable(d)
            {
                stats.tx_not_tunnelable.fetch_add(1, Relaxed);
                continue;
            }
            let chosen = match self.fixed {
                Some(key) => fixed_route(&self.shared, key, dst),
                None => route(&routes, &mut last, &self.shared, dst, flow_hash(pkt)),
            };
            let Some(tunnel) = chosen else {
                stats.tx_no_tunnel.fetch_add(1, Relaxed);
                continue;
            };
            if let Some(mss) = self.config.tcp_mss
                && clamp_mss(pkt, mss_for(pkt, mss))
            {
                stats.mss_clamped.fetch_add(1, Relaxed);
            }
            if len > tunnel_mtu {
                // Routers never fragment IPv6 (RFC 8200 §5): the sender learns the MTU. IPv4 with
                // DF set is answered the same way unless told to clear DF.
                let answer = match dst {
                    IpAddr::V6(_) => true,
                    IpAddr::V4(_) => ipv4_df(pkt) && !self.config.clear_df_bit,
                };
                if answer {
                    let mut icmp = [0u8; IPV6_MIN_MTU];
                    let mtu = self.config.tunnel_mtu;
                    let built = match dst {
                        IpAddr::V6(d) => {
                            // From the tunnel's far inside address when known, else from the
                            // destination (either is a unicast address reached through the tunnel).
                            let source = self.shared.aws_inside_v6(tunnel).unwrap_or(d);
                            icmpv6_packet_too_big(pkt, u32::from(mtu), source, &mut icmp)
                                .map(|m| (m, &stats.tx_icmp6_packet_too_big))
                        }
                        IpAddr::V4(_) => icmp_frag_needed(
                            pkt,
                            mtu,
                            self.shared.aws_inside(tunnel).unwrap_or(self.config.icmp_source),
                            &mut icmp,
                        )
                        .map(|m| (m, &stats.tx_icmp_frag_needed)),
                    };
                    if let Some((m, counter)) = built {
                        send_icmp_error(&self.tun, &mut self.icmp_budget, stats, &icmp[..m], counter);
                    }
                    continue;
                }
                clear_df(pkt);
                stats.tx_fragmented.fetch_add(1, Relaxed);
                let (fragments, reader, sealed) = (&mut self.fragments, &mut self.reader, &mut self.sealed);
                let pkt = &self.batch.buf(i)[headroom..headroom + len];
                fragment(pkt, tunnel_mtu, |hdr, data| {
                    let Some(buf) = fragments.get_mut(fragments_used) else {
                        return false;
                    };
                    let end = MAX_HEADROOM + hdr.len() + data.len();
                    buf[MAX_HEADROOM..MAX_HEADROOM + hdr.len()].copy_from_slice(hdr);
                    buf[MAX_HEADROOM + hdr.len()..end].copy_from_slice(data);
                    match reader.seal(tunnel, buf, MAX_HEADROOM..end) {
                        Ok(s) => sealed.push(SealedRef {
                            buf: fragments_used,
                            fragment: true,
                            tunnel,
                            range: s.range,
                        }),
                        Err(e) => count_seal_error(&self.shared, e),
                    }
                    fragments_used += 1;
                    true
                });
                continue;
            }
            match self
                .reader
                .seal(tunnel, self.batch.buf_mut(i), headroom..headroom + len)
            {
                Ok(s) => self.sealed.push(SealedRef {
                    buf: i,
                    fragment: false,
                    tunnel,
                    range: s.range,
                }),
                Err(e) => count_seal_error(&self.shared, e),
            }
        }
    }

    /// One UDP batch per tunnel with sealed packets, in chunks of one GSO send (a 1 KiB iovec
    /// array on the stack rather than one for the whole batch: a lone ping should not pay for
    /// clearing 5 KiB); whether anything was sent.
    fn send(&mut self, now: Instant) -> bool {
        let stats = &self.shared.stats;
        let mut any = false;
        // Tunnels in order of their first packet; a batch is mostly one tunnel, a handful at most.
        self.flushed.clear();
        for first in 0..self.sealed.len() {
            let tunnel = self.sealed[first].tunnel;
            if self.flushed.contains(&tunnel) {
                continue;
            }
            self.flushed.push(tunnel);
            let mut queued = self.sealed[first..]
                .iter()
                .filter(|s| s.tunnel == tunnel)
                .peekable();
            let Some(peer) = self.shared.peer(tunnel) else {
                stats.tx_no_peer.fetch_add(queued.count() as u64, Relaxed);
                continue;
            };
            let mut iov = [IoSlice::new(&[]); MAX_GSO_SEGMENTS];
            let mut k = 0;
            loop {
                let next = queued.next();
                if let Some(s) = next {
                    let buf = if s.fragment {
                        &self.fragments[s.buf][..]
                    } else {
                        self.batch.buf(s.buf)
                    };
                    iov[k] = IoSlice::new(&buf[s.range.clone()]);
                    k += 1;
                }
                if k == iov.len() || (next.is_none() && k > 0) {
                    match self.udp.send_batch(peer, &iov[..k]) {
                        Ok(sent) => {
                            stats.tx_packets.fetch_add(k as u64, Relaxed);
                            stats.tx_datagrams.fetch_add(sent as u64, Relaxed);
                            if let Some(t) = self.last_sent.get_mut(tunnel.slot()) {
                                *t = Some(now);
                            }
                            any = true;
                        }
                        Err(_) => {
                            stats.tx_send_blocked.fetch_add(k as u64, Relaxed);
                        }
                    }
                    k = 0;
                }
                if next.is_none() {
                    break;
                }
            }
        }
        any
    }

    /// RFC 3948 §4 NAT keepalive on every tunnel with a peer that sent nothing for the interval.
    fn keepalives(&mut self, now: Instant) {
        let Some(interval) = self.config.keepalive else {
            return;
        };
        let in_use = self.shared.slots_in_use().min(self.last_sent.len());
        for (slot, last) in self.last_sent[..in_use].iter_mut().enumerate() {
            let Some(peer) = self.shared.peer(TunnelKey::from_slot(slot)) else {
                continue;
            };
            if last.is_none_or(|t| now.saturating_duration_since(t) >= interval) {
                if self.udp.send_to(&KEEPALIVE, peer).is_ok() {
                    self.shared.stats.keepalives_sent.fetch_add(1, Relaxed);
                }
                *last = Some(now);
            }
        }
    }
}

/// The tunnel for a packet to `dst`: the last destination's route when it is the same and still
/// has a usable tunnel, else a full lookup (remembered for the next packet).
fn route(
    routes: &RouteTable,
    last: &mut Option<(IpAddr, RouteIndex)>,
    shared: &Shared,
    dst: IpAddr,
    hash: u32,
) -> Option<TunnelKey> {
    let usable = |t: TunnelKey| shared.usable(t);
    if let Some((d, i)) = *last
        && d == dst
        && let Some(t) = routes.choose(i, hash, &usable)
    {
        return Some(t);
    }
    let (i, t) = routes
        .matches(dst)
        .find_map(|i| routes.choose(i, hash, &usable).map(|t| (i, t)))?;
    *last = Some((dst, i));
    Some(t)
}

/// The tunnel for a packet the kernel routed into tunnel `key`'s own device: that tunnel while
/// failover lets it carry traffic (with `bgp.speaker = "external"` every live tunnel does), else
/// the connection's other tunnel if that one can. The user's BGP daemon moves its routes only
/// when its hold timer expires (AWS: 30 s); cgwd's failover knows in about a second. Packets to
/// the tunnel's own far inside address (the BGP session) never move.
fn fixed_route(shared: &Shared, key: TunnelKey, dst: IpAddr) -> Option<TunnelKey> {
    if shared.usable(key) || shared.aws_inside(key).is_some_and(|a| IpAddr::V4(a) == dst) {
        return Some(key);
    }
    let other = TunnelKey::new(key.conn, key.id.other());
    shared.usable(other).then_some(other)
}

fn count_seal_error(shared: &Shared, e: SealError) {
    let stats = &shared.stats;
    match e {
        SealError::NoSa => stats.tx_no_sa.fetch_add(1, Relaxed),
        _ => stats.tx_seal_errors.fetch_add(1, Relaxed),
    };
}

/// Writes a generated ICMP error back into the TUN if the budget allows, counting it in `counter`.
fn send_icmp_error(
    tun: &Tun,
    budget: &mut IcmpBudget,
    stats: &DataplaneStats,
    packet: &[u8],
    counter: &AtomicU64,
) {
    if !budget.take(clock::now()) {
        stats.tx_icmp_rate_limited.fetch_add(1, Relaxed);
        return;
    }
    counter.fetch_add(1, Relaxed);
    if tun.write_one(packet).is_err() {
        stats.tun_write_errors.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tunnel's own device (`bgp.speaker = "external"`): its tunnel while alive, the other one
    /// of the connection while it is dead, never the other one for its BGP peer's address.
    #[test]
    fn a_tunnel_device_follows_its_tunnel_and_falls_back_to_the_other() {
        use crate::sa::TunnelId;
        let shared = Shared::new(Arc::new(crate::esp::SaTable::new()));
        let (one, two) = (TunnelKey::new(3, TunnelId::One), TunnelKey::new(3, TunnelId::Two));
        let peer = std::net::Ipv4Addr::new(169, 254, 10, 5);
        shared.set_aws_inside(one, Some(peer));
        let vpc: IpAddr = "10.100.0.10".parse().unwrap();
        shared.set_usable(one, true);
        shared.set_usable(two, true);
        assert_eq!(fixed_route(&shared, one, vpc), Some(one));
        assert_eq!(fixed_route(&shared, two, vpc), Some(two));
        shared.set_usable(one, false);
        assert_eq!(
            fixed_route(&shared, one, vpc),
            Some(two),
            "dead: the other tunnel"
        );
        assert_eq!(
            fixed_route(&shared, one, IpAddr::V4(peer)),
            Some(one),
            "BGP stays"
        );
        shared.set_usable(two, false);
        assert_eq!(fixed_route(&shared, one, vpc), None);
    }

    #[test]
    fn icmp_budget_allows_a_burst_then_the_refill_rate() {
        let t0 = clock::now();
        let mut b = IcmpBudget::new();
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, ICMP_BURST as usize);
        // 50 ms later: 5 more at 100 per second.
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 5);
        // Long idle refills to the burst size, no more.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), ICMP_BURST as usize);
    }
}
