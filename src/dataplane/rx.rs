//! RX worker: UDP → ESP → TUN. Receives GRO-coalesced batches with `recvmmsg`, classifies each
//! datagram (RFC 3948), opens ESP in place, drops inner packets from sources not routed through
//! the tunnel's VPN connection (the reverse-path check: AWS's selectors allow any source), and
//! queues the rest for one coalescing TUN write per batch. The socket is read without blocking;
//! the threads wait for it outside the worker's lock ([`super::workers`]). IKE messages go to the
//! control plane through a bounded channel (control traffic only: a few per minute), keepalives
//! are counted and dropped.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use super::packet::{clamp_mss, mss_for, source};
use super::routes::RouteTable;
use super::{DataplaneConfig, IkeDatagram, Shared};
use crate::esp::{DropReason, SaReader};
use crate::io::clock::{self, RateLimit};
use crate::io::tun::{IDEAL_BATCH_SIZE, Tun, TunWriteBatch};
use crate::io::udp::{RECV_BATCH, RecvBatch, UdpSocket, segments};
use crate::wire::udp_encap::{UdpEncapPayload, classify};

/// What a datagram turned out to be (decided before the buffer is borrowed mutably to open it).
enum Kind {
    Keepalive,
    Ike,
    Esp,
    Malformed,
}

pub struct RxWorker {
    config: DataplaneConfig,
    tun: Arc<Tun>,
    udp: Arc<UdpSocket>,
    shared: Arc<Shared>,
    ike: Option<SyncSender<IkeDatagram>>,
    reader: SaReader,
    batch: RecvBatch,
    out: TunWriteBatch,
    /// Tunnels' own devices by slot (`bgp.speaker = "external"`; empty otherwise): a tunnel's
    /// inner packets are written to its device, so they arrive where its BGP session and routes are.
    devices: Vec<Option<Arc<Tun>>>,
    /// The slot whose device `out` is for (None: the shared device).
    out_device: Option<usize>,
    routes: arc_swap::Cache<Arc<arc_swap::ArcSwap<RouteTable>>, Arc<RouteTable>>,
    /// The last source checked in this batch, its connection and the verdict: a batch is mostly
    /// one flow (one lookup per batch, as the TX worker remembers its last destination).
    last_source: Option<(IpAddr, u16, bool)>,
    error_log: RateLimit,
}

/// What [`RxWorker::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxStep {
    /// Nothing queued: wait for the socket to become readable.
    Idle,
    /// `datagrams` were received; `small_write` when they ended in a one-message TUN write (an
    /// answer to it may already be queued on the TUN).
    Received { datagrams: usize, small_write: bool },
    /// The receive failed (not for lack of data): back off before trying again.
    Failed,
}

impl RxWorker {
    pub fn new(
        config: DataplaneConfig,
        tun: Arc<Tun>,
        udp: Arc<UdpSocket>,
        shared: Arc<Shared>,
        ike: Option<SyncSender<IkeDatagram>>,
    ) -> Self {
        RxWorker {
            reader: shared.sas.reader(),
            batch: RecvBatch::new(RECV_BATCH),
            out: TunWriteBatch::new(IDEAL_BATCH_SIZE),
            devices: Vec::new(),
            out_device: None,
            routes: shared.route_reader(),
            last_source: None,
            error_log: RateLimit::new(Duration::from_secs(5)),
            config,
            tun,
            udp,
            shared,
            ike,
        }
    }

    /// Tunnels with their own device: their packets go there.
    pub fn with_devices(mut self, devices: &[(crate::sa::TunnelKey, Arc<Tun>)]) -> Self {
        for (key, tun) in devices {
            let slot = key.slot();
            if self.devices.len() <= slot {
                self.devices.resize(slot + 1, None);
            }
            self.devices[slot] = Some(tun.clone());
        }
        self
    }

    pub fn udp_fd(&self) -> std::os::fd::RawFd {
        self.udp.raw_fd()
    }

    /// One non-blocking pass: receives what the socket has queued, opens it and writes the inner
    /// packets to the TUN (see [`super::workers`] for which thread calls it when).
    pub fn step(&mut self) -> RxStep {
        let n = match self.udp.try_recv_batch(&mut self.batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return RxStep::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                return RxStep::Received {
                    datagrams: 0,
                    small_write: false,
                };
            }
            Err(e) => {
                self.shared.stats.rx_errors.fetch_add(1, Relaxed);
                if self.error_log.check(clock::now()).is_some() {
                    tracing::warn!(error = %e, "UDP receive failed");
                }
                return RxStep::Failed;
            }
        };
        // The table for this batch; the remembered verdict was the previous table's.
        let routes = Arc::clone(self.routes.load());
        self.last_source = None;
        let mut datagrams = 0;
        for m in 0..n {
            datagrams += self.message(m, &routes);
        }
        let wrote = !self.out.is_empty();
        self.flush();
        RxStep::Received {
            datagrams,
            small_write: wrote && n == 1,
        }
    }

    /// Handles received message `m`; returns how many datagrams it held.
    fn message(&mut self, m: usize, routes: &RouteTable) -> usize {
        let stats = &self.shared.stats;
        let (meta, data) = self.batch.message_mut(m);
        let mut datagrams = 0;
        for seg in segments(&meta, data) {
            datagrams += 1;
            let kind = match classify(seg) {
                Ok(UdpEncapPayload::Keepalive) => Kind::Keepalive,
                Ok(UdpEncapPayload::Ike(_)) => Kind::Ike,
                Ok(UdpEncapPayload::Esp(_)) => Kind::Esp,
                Err(_) => Kind::Malformed,
            };
            match kind {
                Kind::Keepalive => {
                    stats.rx_keepalives.fetch_add(1, Relaxed);
                }
                Kind::Malformed => {
                    stats.rx_malformed.fetch_add(1, Relaxed);
                }
                Kind::Ike => {
                    stats.rx_ike.fetch_add(1, Relaxed);
                    let delivered = self.ike.as_ref().is_some_and(|tx| {
                        tx.try_send(IkeDatagram {
                            from: meta.source,
                            message: seg[4..].to_vec(),
                        })
                        .is_ok()
                    });
                    if !delivered {
                        stats.rx_ike_dropped.fetch_add(1, Relaxed);
                    }
                }
                Kind::Esp => match self.reader.open(seg) {
                    Ok(opened) => {
                        stats.rx_esp.fetch_add(1, Relaxed);
                        let inner = &mut seg[opened.inner];
                        if !source_allowed(routes, &mut self.last_source, inner, opened.tunnel.conn) {
                            stats.rx_reverse_path_dropped.fetch_add(1, Relaxed);
                            self.reader.count_drop(opened.spi, DropReason::ReversePath);
                            continue;
                        }
                        if let Some(mss) = self.config.tcp_mss
                            && clamp_mss(inner, mss_for(inner, mss))
                        {
                            stats.mss_clamped.fetch_add(1, Relaxed);
                        }
                        let device = Some(opened.tunnel.slot())
                            .filter(|&s| self.devices.get(s).is_some_and(Option::is_some));
                        if device != self.out_device {
                            let tun = device_of(&self.tun, &self.devices, self.out_device);
                            flush(tun, &mut self.out, &self.shared);
                            self.out_device = device;
                        }
                        if !self.out.push(inner) {
                            let tun = device_of(&self.tun, &self.devices, self.out_device);
                            flush(tun, &mut self.out, &self.shared);
                            self.out.push(inner);
                        }
                    }
                    Err(_) => {
                        // The reason is counted on the SA (or the table) by `open`.
                        stats.rx_esp_dropped.fetch_add(1, Relaxed);
                    }
                },
            }
        }
        datagrams
    }

    fn flush(&mut self) {
        let tun = device_of(&self.tun, &self.devices, self.out_device);
        flush(tun, &mut self.out, &self.shared);
    }
}

/// Whether `inner`, which arrived on a tunnel of connection `conn`, comes from a source routed
/// through that connection ([`RouteTable::source_allowed`]): the last verdict when source and
/// connection are the same, else a lookup (remembered). No readable source: dropped.
fn source_allowed(
    routes: &RouteTable,
    last: &mut Option<(IpAddr, u16, bool)>,
    inner: &[u8],
    conn: u16,
) -> bool {
    let Some(src) = source(inner) else {
        return false;
    };
    if let Some((s, c, verdict)) = *last
        && s == src
        && c == conn
    {
        return verdict;
    }
    let verdict = routes.source_allowed(src, conn);
    *last = Some((src, conn, verdict));
    verdict
}

/// The device of tunnel slot `slot` (None, or no device of its own: the shared one).
fn device_of<'a>(shared: &'a Tun, devices: &'a [Option<Arc<Tun>>], slot: Option<usize>) -> &'a Tun {
    slot.and_then(|s| devices.get(s)?.as_deref()).unwrap_or(shared)
}

fn flush(tun: &Tun, out: &mut TunWriteBatch, shared: &Shared) {
    if out.is_empty() {
        return;
    }
    if tun.write_batch(out).is_err() {
        shared.stats.tun_write_errors.fetch_add(1, Relaxed);
    }
}
