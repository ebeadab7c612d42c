//! The data plane: two run-to-completion workers joining the TUN device, ESP and UDP/4500.
//!
//! ```text
//!  TX: TUN read (64 KiB, split) ─► prefix table: tunnel ─► MSS/DF fix-ups ─► seal in place ─► UDP GSO send
//!  RX: UDP GRO recvmmsg ─► classify ─► ESP: open in place ─► source check ─► MSS fix-up ─► coalesce ─► TUN write
//!                                  └─► IKE: bounded channel to the control plane; keepalive: drop
//! ```
//!
//! One worker per direction, no channel and no lock per packet (wireguard-go lost 20% to per-packet
//! channels): the SA set and the prefix → tunnel table ([`routes`]) are read through cached
//! snapshots, the tunnel endpoints and whether each tunnel may carry traffic are atomics the
//! control plane (IKE, failover) writes. Tunnels are named by [`TunnelKey`] (VPN connection and
//! tunnel 1/2), any number of connections through one TUN device and one UDP socket.
//! Two threads run the workers ([`workers`]): quiet, one thread polls both sides and carries both
//! directions (one wake-up per packet, none wasted); loaded, a second thread takes the TUN side
//! so that each direction has a core. Graceful stop: [`Shared::request_stop`] plus 100 ms polls.
//!
//! Inner packets are IPv4 or IPv6 (ESP next header 4 or 41): IPv6 is routed, hashed and MSS-clamped
//! like IPv4, never fragmented (an oversize one gets ICMPv6 "packet too big"), and checked against
//! the SA's IPv6 selector range on receipt.
//!
//! Latency (a ping crosses both directions of two gateways; measured with `perf sched` and the
//! syscall tracepoints, see README "Performance"): quiet, the one thread sends what an idle
//! wake-up brought at once instead of reading again for company, a lone packet skips the TUN write
//! coalescing, an answer the kernel queued during a TUN write (a LAN host or the gateway replying at
//! once) leaves straight after it, the thread waits on-CPU for the answer to a lone packet when
//! answers have been coming back within [`answer_wait`]'s budget, and the threads ask for a short
//! scheduler slice so a wake-up preempts a busy neighbour.
//!
//! Wiring it into the daemon (what `static_keys` does with manual keys):
//!
//! ```text
//! let sas = Arc::new(SaTable::new());
//! let shared = Arc::new(Shared::new(sas.clone()));
//! let t1 = TunnelKey::new(0, TunnelId::One);                  // connection 0, tunnel 1
//! shared.set_peer(t1, Some(aws_outside_1_4500));               // per tunnel, from the config
//! shared.set_aws_inside(t1, Some(aws_inside_1));
//! shared.set_routes(RouteTable::builder().route(vpc, t1).route(vpc, t2).pin(aws_inside_1, t1).build());
//! let udp = Arc::new(UdpSocket::bind(local_4500, POLL_INTERVAL)?);   // shared with IKE (sends)
//! let tun = Arc::new(Tun::create(&TunConfig { name, mtu, addresses: both /30s, offload: true })?);
//! let (ike_tx, ike_rx) = std::sync::mpsc::sync_channel(64);   // IKE arriving on 4500
//! let dp = Dataplane::spawn(config, tun, udp, shared.clone(), Some(ike_tx))?;
//! // IKE: sas.install(&child) on CREATE_CHILD_SA, sas.remove_inbound(spi) on delete;
//! // failover: shared.set_usable(t1, false); shared.set_usable(t2, true); shutdown: dp.stop().
//! ```

pub mod answer_wait;
pub mod packet;
pub mod routes;
pub mod rx;
pub mod static_keys;
pub mod tx;
pub mod workers;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::esp::SaTable;
use crate::io::tun::Tun;
use crate::io::udp::UdpSocket;
use crate::sa::{MAX_TUNNELS, TunnelKey};
use crate::suite::{Encryption, Integrity};
use arc_swap::{ArcSwap, ArcSwapOption};
pub use routes::{RouteTable, RouteTableBuilder};

/// How long a worker blocks before it looks at the stop flag and its timers again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// RFC 3948 §4: NAT keepalives every 20 s when nothing else was sent.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Largest inner packet whose ESP-in-UDP/IPv4 datagram still fits `outer_mtu` (RFC 4303 §2.4
/// padding to the cipher block, RFC 3948 UDP header); over IPv6 pass `outer_mtu` less 20. 1500 → 1438 for AES-GCM, 1422 for AES-CBC
/// with SHA1 or SHA2-256 (the ICV is 12-16 octets and the IV 16).
pub fn inner_mtu(outer_mtu: u16, encryption: Encryption, integrity: Option<Integrity>) -> u16 {
    let (iv, block, icv) = if encryption.is_aead() {
        (8, 4, 16)
    } else {
        (16, 16, integrity.map_or(0, Integrity::icv_len))
    };
    // IPv4 20 + UDP 8 + SPI/sequence 8.
    let room = usize::from(outer_mtu).saturating_sub(20 + 8 + 8 + iv + icv);
    ((room / block) * block).saturating_sub(2) as u16
}

/// Data-plane settings fixed for the life of the workers.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Largest inner packet sent through a tunnel; bigger IPv4 ones are fragmented or answered with
    /// ICMP "fragmentation needed", bigger IPv6 ones with ICMPv6 "packet too big" (AWS: 1446 minus ESP
    /// overhead; commonly 1436 or less).
    pub tunnel_mtu: u16,
    /// Clamp the MSS option of TCP SYNs both ways to this (AWS `tcp_mss_adjustment`, e.g. 1379);
    /// IPv6 SYNs to 20 less (the IPv6 header is 20 octets longer).
    pub tcp_mss: Option<u16>,
    /// Clear DF and fragment before encryption instead of sending ICMP (AWS `clear_df_bit`).
    pub clear_df_bit: bool,
    /// Source of the ICMP errors we generate: the peer's inside address (the "next hop" that cannot
    /// take the packet). Never one of our own addresses: the kernel drops those as martians.
    pub icmp_source: Ipv4Addr,
    /// NAT keepalive interval when idle; `None` to leave keepalives to the control plane.
    pub keepalive: Option<Duration>,
    /// Longest on-CPU wait for the answer to a lone packet ([`answer_wait`]); zero turns it off.
    pub answer_wait: Duration,
}

/// An IKE message that arrived on the ESP socket (after the non-ESP marker), for the control plane.
#[derive(Debug, Clone)]
pub struct IkeDatagram {
    pub from: SocketAddr,
    pub message: Vec<u8>,
}

/// Per-tunnel endpoint state the control plane writes and the workers read without a lock.
#[derive(Debug, Default)]
pub struct TunnelPath {
    /// Peer outside address and port (IPv4 or IPv6); `None` = unknown. An IPv6 address does not fit
    /// one atomic word, so it is swapped whole (written once per Child SA, read once per TX batch).
    peer: ArcSwapOption<SocketAddr>,
    /// The AWS-side inside address (169.254.x.y): the source of ICMP errors about this tunnel.
    aws_inside: AtomicU32,
    /// The AWS-side IPv6 inside address (IPv6-inside tunnels), as two halves; 0 = none.
    aws_inside_v6: [AtomicU64; 2],
    /// Failover lets this tunnel carry routed traffic now ([`routes`]).
    usable: AtomicBool,
}

/// Data-plane counters (relaxed atomics, read as a snapshot by status code).
#[derive(Debug, Default)]
pub struct DataplaneStats {
    pub tx_packets: AtomicU64,
    pub tx_datagrams: AtomicU64,
    pub tx_no_tunnel: AtomicU64,
    pub tx_not_ip: AtomicU64,
    pub tx_not_tunnelable: AtomicU64,
    pub tx_no_sa: AtomicU64,
    pub tx_no_peer: AtomicU64,
    pub tx_seal_errors: AtomicU64,
    pub tx_send_blocked: AtomicU64,
    pub tx_fragmented: AtomicU64,
    pub tx_icmp_frag_needed: AtomicU64,
    pub tx_icmp6_packet_too_big: AtomicU64,
    pub tx_icmp_rate_limited: AtomicU64,
    pub tun_read_errors: AtomicU64,
    pub rx_esp: AtomicU64,
    pub rx_esp_dropped: AtomicU64,
    pub rx_keepalives: AtomicU64,
    pub rx_ike: AtomicU64,
    pub rx_ike_dropped: AtomicU64,
    pub rx_malformed: AtomicU64,
    /// Decrypted packets whose source is not routed through their tunnel's VPN connection
    /// ([`RouteTable::source_allowed`]); also counted per tunnel as the SA drop `reverse_path`.
    pub rx_reverse_path_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tun_write_errors: AtomicU64,
    pub mss_clamped: AtomicU64,
    pub keepalives_sent: AtomicU64,
    /// Times the helper thread took the TUN direction (load), and handed it back (quiet again):
    /// [`workers`].
    pub helper_takeovers: AtomicU64,
    pub helper_handbacks: AtomicU64,
    /// Answers to lone packets caught by waiting on-CPU, and waits that ran out ([`answer_wait`]).
    pub answer_wait_hits: AtomicU64,
    pub answer_wait_misses: AtomicU64,
}

impl DataplaneStats {
    /// `(name, value)` pairs for logs and status output.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let v = |a: &AtomicU64| a.load(Relaxed);
        vec![
            ("tx_packets", v(&self.tx_packets)),
            ("tx_datagrams", v(&self.tx_datagrams)),
            ("tx_no_tunnel", v(&self.tx_no_tunnel)),
            ("tx_not_ip", v(&self.tx_not_ip)),
            ("tx_not_tunnelable", v(&self.tx_not_tunnelable)),
            ("tx_no_sa", v(&self.tx_no_sa)),
            ("tx_no_peer", v(&self.tx_no_peer)),
            ("tx_seal_errors", v(&self.tx_seal_errors)),
            ("tx_send_blocked", v(&self.tx_send_blocked)),
            ("tx_fragmented", v(&self.tx_fragmented)),
            ("tx_icmp_frag_needed", v(&self.tx_icmp_frag_needed)),
            ("tx_icmp6_packet_too_big", v(&self.tx_icmp6_packet_too_big)),
            ("tx_icmp_rate_limited", v(&self.tx_icmp_rate_limited)),
            ("tun_read_errors", v(&self.tun_read_errors)),
            ("rx_esp", v(&self.rx_esp)),
            ("rx_esp_dropped", v(&self.rx_esp_dropped)),
            ("rx_keepalives", v(&self.rx_keepalives)),
            ("rx_ike", v(&self.rx_ike)),
            ("rx_ike_dropped", v(&self.rx_ike_dropped)),
            ("rx_malformed", v(&self.rx_malformed)),
            ("rx_reverse_path_dropped", v(&self.rx_reverse_path_dropped)),
            ("rx_errors", v(&self.rx_errors)),
            ("tun_write_errors", v(&self.tun_write_errors)),
            ("mss_clamped", v(&self.mss_clamped)),
            ("keepalives_sent", v(&self.keepalives_sent)),
            ("helper_takeovers", v(&self.helper_takeovers)),
            ("helper_handbacks", v(&self.helper_handbacks)),
            ("answer_wait_hits", v(&self.answer_wait_hits)),
            ("answer_wait_misses", v(&self.answer_wait_misses)),
        ]
    }
}

/// State shared by the workers and the control plane.
#[derive(Debug)]
pub struct Shared {
    pub sas: Arc<SaTable>,
    /// Indexed by [`TunnelKey::slot`]; [`MAX_TUNNELS`] long, so it never moves.
    tunnels: Box<[TunnelPath]>,
    /// One past the highest slot with a peer: the TX worker's keepalive and flush range.
    slots_in_use: AtomicUsize,
    routes: Arc<ArcSwap<RouteTable>>,
    stop: AtomicBool,
    pub stats: DataplaneStats,
}

impl Shared {
    pub fn new(sas: Arc<SaTable>) -> Self {
        Shared {
            sas,
            tunnels: (0..MAX_TUNNELS).map(|_| TunnelPath::default()).collect(),
            slots_in_use: AtomicUsize::new(0),
            routes: Arc::new(ArcSwap::from_pointee(RouteTable::default())),
            stop: AtomicBool::new(false),
            stats: DataplaneStats::default(),
        }
    }

    fn path(&self, tunnel: TunnelKey) -> Option<&TunnelPath> {
        self.tunnels.get(tunnel.slot())
    }

    /// Where the tunnel's ESP goes (the AWS endpoint's address and port, IPv4 or IPv6). A tunnel
    /// beyond [`MAX_TUNNELS`] is ignored (the daemon refuses such configurations first).
    pub fn set_peer(&self, tunnel: TunnelKey, peer: Option<SocketAddr>) {
        if let Some(p) = self.path(tunnel) {
            p.peer.store(peer.map(Arc::new));
            if peer.is_some() {
                self.slots_in_use.fetch_max(tunnel.slot() + 1, Relaxed);
            }
        }
    }

    pub fn peer(&self, tunnel: TunnelKey) -> Option<SocketAddr> {
        self.path(tunnel)?.peer.load().as_deref().copied()
    }

    /// One past the highest tunnel slot that ever had a peer.
    pub fn slots_in_use(&self) -> usize {
        self.slots_in_use.load(Relaxed)
    }

    /// The AWS-side inside address of a tunnel: ICMP errors about the tunnel come from it.
    pub fn set_aws_inside(&self, tunnel: TunnelKey, addr: Option<Ipv4Addr>) {
        if let Some(p) = self.path(tunnel) {
            p.aws_inside.store(addr.map_or(0, u32::from), Relaxed);
        }
    }

    pub fn aws_inside(&self, tunnel: TunnelKey) -> Option<Ipv4Addr> {
        let v = self.path(tunnel)?.aws_inside.load(Relaxed);
        (v != 0).then(|| Ipv4Addr::from(v))
    }

    /// The AWS-side IPv6 inside address of a tunnel (`TunnelInsideIpVersion` ipv6): ICMPv6 errors
    /// about that tunnel come from it.
    pub fn set_aws_inside_v6(&self, tunnel: TunnelKey, addr: Option<Ipv6Addr>) {
        let v = addr.map_or(0, u128::from);
        if let Some(p) = self.path(tunnel) {
            p.aws_inside_v6[0].store((v >> 64) as u64, Relaxed);
            p.aws_inside_v6[1].store(v as u64, Relaxed);
        }
    }

    pub fn aws_inside_v6(&self, tunnel: TunnelKey) -> Option<Ipv6Addr> {
        let halves = &self.path(tunnel)?.aws_inside_v6;
        let v = u128::from(halves[0].load(Relaxed)) << 64 | u128::from(halves[1].load(Relaxed));
        (v != 0).then(|| Ipv6Addr::from(v))
    }

    /// Whether failover lets the tunnel carry routed traffic now (its pinned inside address is
    /// always reachable). Set per connection from the failover decision.
    pub fn set_usable(&self, tunnel: TunnelKey, usable: bool) {
        if let Some(p) = self.path(tunnel) {
            p.usable.store(usable, Relaxed);
        }
    }

    pub fn usable(&self, tunnel: TunnelKey) -> bool {
        self.path(tunnel).is_some_and(|p| p.usable.load(Relaxed))
    }

    /// Publishes a new prefix → tunnel table; packets being routed finish on the old one.
    pub fn set_routes(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// A per-thread cached view of the route table (one atomic load to revalidate).
    pub(crate) fn route_reader(&self) -> arc_swap::Cache<Arc<ArcSwap<RouteTable>>, Arc<RouteTable>> {
        arc_swap::Cache::new(Arc::clone(&self.routes))
    }

    /// Tunnel for an inner packet to `dst` ([`RouteTable::lookup`] with the live usable flags).
    pub fn route(&self, dst: IpAddr, flow_hash: u32) -> Option<TunnelKey> {
        self.routes.load().lookup(dst, flow_hash, |t| self.usable(t))
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// Scheduler slice asked for the worker threads (see [`prefer_wakeup_latency`]).
const WORKER_SLICE: Duration = Duration::from_micros(100);

/// Asks the scheduler for a short time slice for the calling worker thread (`sched_setattr`,
/// SCHED_OTHER with `sched_runtime`, Linux ≥ 6.12 EEVDF): a thread with a shorter slice preempts a
/// busy neighbour when a packet wakes it instead of waiting up to a whole tick (measured here: 4 ms
/// ping spikes while a compiler ran on both cores). Same priority and CPU share as before; older
/// kernels refuse or ignore it, which is fine.
fn prefer_wakeup_latency() {
    /// linux/sched/types.h `struct sched_attr`, SCHED_ATTR_SIZE_VER0 (48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }
    // Keep the thread's nice value: SCHED_OTHER with sched_nice = current nice.
    #[allow(unsafe_code)]
    // SAFETY: getpriority has no memory arguments.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: WORKER_SLICE.as_nanos() as u64,
        sched_deadline: 0,
        sched_period: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: attr is a valid, fully initialised sched_attr of the size it declares; pid 0 is the
    // calling thread; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "short scheduler slice refused");
    }
}

/// The two running data-plane threads ([`workers`]), and one TX thread per tunnel device.
pub struct Dataplane {
    shared: Arc<Shared>,
    threads: [Option<JoinHandle<()>>; 2],
    /// One per tunnel with its own device (`bgp.speaker = "external"`).
    device_threads: Vec<JoinHandle<()>>,
}

impl Dataplane {
    /// Starts the TX and RX threads. `ike` receives IKE messages arriving on the ESP socket.
    pub fn spawn(
        config: DataplaneConfig,
        tun: Arc<Tun>,
        udp: Arc<UdpSocket>,
        shared: Arc<Shared>,
        ike: Option<SyncSender<IkeDatagram>>,
    ) -> io::Result<Self> {
        Self::spawn_with_devices(config, tun, udp, shared, ike, &[])
    }

    /// [`Self::spawn`], with tunnels that have their own device (`bgp.speaker = "external"`):
    /// what the kernel routes into a tunnel's device goes into that tunnel, each device read by a
    /// thread of its own (a device per tunnel is for the user's BGP daemon and its route choice,
    /// not for speed: the shared device keeps the batched two-thread path), and what the tunnel
    /// brings in is written to its device.
    pub fn spawn_with_devices(
        config: DataplaneConfig,
        tun: Arc<Tun>,
        udp: Arc<UdpSocket>,
        shared: Arc<Shared>,
        ike: Option<SyncSender<IkeDatagram>>,
        devices: &[(TunnelKey, Arc<Tun>)],
    ) -> io::Result<Self> {
        let mut device_threads = Vec::with_capacity(devices.len());
        for (key, dev) in devices {
            let worker =
                tx::TxWorker::new(config.clone(), dev.clone(), udp.clone(), shared.clone()).for_tunnel(*key);
            let spawned = std::thread::Builder::new()
                .name(format!("cgwd-tx{}", key.slot() + 1))
                .spawn(move || run_device(worker));
            match spawned {
                Ok(h) => device_threads.push(h),
                Err(e) => {
                    shared.request_stop();
                    for h in device_threads {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        let workers = Arc::new(workers::Workers::new(
            tx::TxWorker::new(config.clone(), tun.clone(), udp.clone(), shared.clone()),
            rx::RxWorker::new(config.clone(), tun, udp, shared.clone(), ike).with_devices(devices),
            shared.clone(),
            config.answer_wait,
        )?);
        let spawn = |name: &str, body: fn(Arc<workers::Workers>)| {
            let workers = workers.clone();
            std::thread::Builder::new().name(name.into()).spawn(move || {
                prefer_wakeup_latency();
                body(workers)
            })
        };
        let helper = spawn("cgwd-tx", workers::run_helper)?;
        workers.set_helper(helper.thread().clone());
        let lead = match spawn("cgwd-io", workers::run_lead) {
            Ok(lead) => lead,
            Err(e) => {
                shared.request_stop();
                helper.thread().unpark();
                let _ = helper.join();
                return Err(e);
            }
        };
        Ok(Dataplane {
            shared,
            threads: [Some(lead), Some(helper)],
            device_threads,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Asks both workers to stop and waits for them (at most about one poll interval).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.request_stop();
        for h in self.threads.iter_mut().filter_map(Option::take) {
            h.thread().unpark();
            let _ = h.join();
        }
        for h in self.device_threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// A tunnel device's TX thread: step while there is work, else wait for the device (at most
/// [`POLL_INTERVAL`], to notice a stop).
fn run_device(mut worker: tx::TxWorker) {
    let fd = worker.tun_fd();
    let shared = worker.shared().clone();
    while !shared.stopping() {
        match worker.step() {
            tx::Step::Worked { .. } => {}
            tx::Step::Idle => {
                let _ = crate::io::poll_any(&[fd], POLL_INTERVAL);
            }
            tx::Step::Closed => break,
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_mtu_fits_the_outer_mtu() {
        assert_eq!(inner_mtu(1500, Encryption::Aes128Gcm16, None), 1438);
        assert_eq!(
            inner_mtu(1500, Encryption::Aes256Cbc, Some(Integrity::Sha2_256)),
            1422
        );
        assert_eq!(
            inner_mtu(1500, Encryption::Aes128Cbc, Some(Integrity::Sha1)),
            1422
        );
        assert_eq!(
            inner_mtu(1500, Encryption::Aes256Cbc, Some(Integrity::Sha2_512)),
            1406
        );
        assert_eq!(inner_mtu(10, Encryption::Aes128Gcm16, None), 0);
    }

    fn both_tunnels_everywhere(s: &Shared) {
        let mut b = RouteTable::builder();
        for t in TunnelKey::both(0) {
            b.route("0.0.0.0/0".parse().unwrap(), t);
            b.route("::/0".parse().unwrap(), t);
            if let Some(a) = s.aws_inside(t) {
                b.pin(a.into(), t);
            }
            if let Some(a) = s.aws_inside_v6(t) {
                b.pin(a.into(), t);
            }
        }
        s.set_routes(b.build());
    }

    #[test]
    fn active_active_spreads_flows_and_keeps_inside_addresses_on_their_tunnel() {
        let [one, two] = TunnelKey::both(0);
        let s = Shared::new(Arc::new(SaTable::new()));
        s.set_aws_inside(two, Some(Ipv4Addr::new(169, 254, 20, 9)));
        both_tunnels_everywhere(&s);
        s.set_usable(one, true);
        s.set_usable(two, true);
        let dst = Ipv4Addr::new(10, 100, 0, 10);
        assert_eq!(s.route(dst.into(), 2), Some(one));
        assert_eq!(s.route(dst.into(), 3), Some(two));
        assert_eq!(s.route(IpAddr::V4(Ipv4Addr::new(169, 254, 20, 9)), 2), Some(two));
        // Many flows land on both tunnels; one flow always on the same one.
        let mut pkt = [0u8; 28];
        pkt[0] = 0x45;
        pkt[2..4].copy_from_slice(&28u16.to_be_bytes());
        pkt[9] = 17;
        pkt[12..16].copy_from_slice(&[10, 0, 1, 10]);
        pkt[16..20].copy_from_slice(&[10, 100, 0, 10]);
        let mut on = [0usize; 2];
        for port in 1000u16..1200 {
            pkt[20..22].copy_from_slice(&port.to_be_bytes());
            let h = super::packet::flow_hash(&pkt);
            assert_eq!(h, super::packet::flow_hash(&pkt));
            on[s.route(dst.into(), h).unwrap().slot()] += 1;
        }
        assert!(on[0] > 50 && on[1] > 50, "{on:?}");
    }

    #[test]
    fn peer_and_usable_round_trip() {
        let [one, two] = TunnelKey::both(0);
        let s = Shared::new(Arc::new(SaTable::new()));
        assert_eq!(s.peer(one), None);
        assert_eq!(s.slots_in_use(), 0);
        s.set_peer(two, Some("192.0.2.7:4500".parse().unwrap()));
        assert_eq!(s.peer(two), Some("192.0.2.7:4500".parse().unwrap()));
        assert_eq!(s.slots_in_use(), 2);
        assert!(!s.usable(two));
        s.set_usable(two, true);
        assert!(s.usable(two));
        // Out of range: ignored, never a panic.
        let far = TunnelKey::new(u16::MAX, crate::sa::TunnelId::Two);
        s.set_peer(far, Some("192.0.2.7:4500".parse().unwrap()));
        assert_eq!(s.peer(far), None);
        assert!(!s.usable(far));
        // An IPv6 outside address round-trips whole, and clearing it works.
        let v6: SocketAddr = "[2001:db8:ffaa:1::21]:4500".parse().unwrap();
        s.set_peer(one, Some(v6));
        assert_eq!(s.peer(one), Some(v6));
        s.set_peer(one, None);
        assert_eq!(s.peer(one), None);
    }

    #[test]
    fn inside_address_pins_the_tunnel() {
        let [one, two] = TunnelKey::both(0);
        let s = Shared::new(Arc::new(SaTable::new()));
        s.set_aws_inside(one, Some(Ipv4Addr::new(169, 254, 10, 1)));
        s.set_aws_inside(two, Some(Ipv4Addr::new(169, 254, 11, 1)));
        both_tunnels_everywhere(&s);
        s.set_usable(two, true);
        assert_eq!(s.route(IpAddr::V4(Ipv4Addr::new(169, 254, 10, 1)), 0), Some(one));
        assert_eq!(s.route(IpAddr::V4(Ipv4Addr::new(169, 254, 11, 1)), 0), Some(two));
        assert_eq!(s.route(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)), 0), Some(two));
        s.set_usable(two, false);
        assert_eq!(s.route(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)), 0), None);
    }

    #[test]
    fn ipv6_inside_address_pins_the_tunnel() {
        let [one, two] = TunnelKey::both(0);
        let s = Shared::new(Arc::new(SaTable::new()));
        let inside: Ipv6Addr = "fd00:a:2::1".parse().unwrap();
        assert_eq!(s.aws_inside_v6(two), None);
        s.set_aws_inside_v6(two, Some(inside));
        assert_eq!(s.aws_inside_v6(two), Some(inside));
        both_tunnels_everywhere(&s);
        s.set_usable(one, true);
        assert_eq!(s.route(IpAddr::V6(inside), 0), Some(two));
        let other: Ipv6Addr = "2001:db8::7".parse().unwrap();
        assert_eq!(s.route(IpAddr::V6(other), 0), Some(one));
    }
}
