//! RX worker: UDP → ESP → TUN. Receives GRO-coalesced batches with `recvmmsg`, classifies each
//! datagram (RFC 3948), opens ESP in place, and queues the inner packets for one coalescing TUN write
//! per batch. IKE messages go to the control plane through a bounded channel (control traffic only:
//! a few per minute), keepalives are counted and dropped.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::packet::{clamp_mss, mss_for};
use super::tx::TxWorker;
use super::{DataplaneConfig, IkeDatagram, Shared};
use crate::esp::SaReader;
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
    error_log: RateLimit,
    /// The TX worker, for one step right after a small write to the TUN (see [`Self::run`]).
    tx: Option<Arc<Mutex<TxWorker>>>,
}

impl RxWorker {
    pub fn new(
        config: DataplaneConfig,
        tun: Arc<Tun>,
        udp: Arc<UdpSocket>,
        shared: Arc<Shared>,
        ike: Option<SyncSender<IkeDatagram>>,
        tx: Option<Arc<Mutex<TxWorker>>>,
    ) -> Self {
        RxWorker {
            reader: shared.sas.reader(),
            batch: RecvBatch::new(RECV_BATCH),
            out: TunWriteBatch::new(IDEAL_BATCH_SIZE),
            error_log: RateLimit::new(Duration::from_secs(5)),
            tx,
            config,
            tun,
            udp,
            shared,
            ike,
        }
    }

    pub fn run(mut self) {
        while !self.shared.stopping() {
            let n = match self.udp.recv_batch(&mut self.batch) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    continue;
                }
                Err(e) => {
                    self.shared.stats.rx_errors.fetch_add(1, Relaxed);
                    if self.error_log.check(clock::now()).is_some() {
                        tracing::warn!(error = %e, "UDP receive failed");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            for m in 0..n {
                self.message(m);
            }
            let wrote = !self.out.is_empty();
            self.flush();
            // Latency: what we just wrote often answers at once (a host or the gateway itself
            // replies within the same write syscall: the answer is already queued on the TUN).
            // Sending it from here saves a wake-up of the TX thread, maybe on another, idle CPU,
            // on every round trip. Only after a small batch (under load RX has its own work) and
            // only when TX is not busy itself.
            if wrote
                && n == 1
                && let Some(tx) = &self.tx
                && let Ok(mut worker) = tx.try_lock()
            {
                worker.step();
            }
        }
    }

    fn message(&mut self, m: usize) {
        let stats = &self.shared.stats;
        let (meta, data) = self.batch.message_mut(m);
        for seg in segments(&meta, data) {
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
                        if let Some(mss) = self.config.tcp_mss
                            && clamp_mss(inner, mss_for(inner, mss))
                        {
                            stats.mss_clamped.fetch_add(1, Relaxed);
                        }
                        if !self.out.push(inner) {
                            flush(&self.tun, &mut self.out, &self.shared);
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
    }

    fn flush(&mut self) {
        flush(&self.tun, &mut self.out, &self.shared);
    }
}

fn flush(tun: &Tun, out: &mut TunWriteBatch, shared: &Shared) {
    if out.is_empty() {
        return;
    }
    if tun.write_batch(out).is_err() {
        shared.stats.tun_write_errors.fetch_add(1, Relaxed);
    }
}
