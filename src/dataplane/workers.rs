//! Which thread runs which worker, and when.
//!
//! The two workers are the directions, [`TxWorker`] (TUN → ESP → UDP) and [`RxWorker`] (UDP → ESP →
//! TUN), each behind a mutex that is taken once per batch. Two threads run them:
//!
//! * **Quiet** (the usual state of a customer gateway: pings, DNS, interactive traffic, BGP
//!   keepalives): the *lead* thread alone polls the TUN and the UDP socket together and steps
//!   whichever is ready; the *helper* is parked. Every packet costs one wake-up and nothing else:
//!   when the lead writes a packet to the TUN and the kernel queues the answer during that write (a
//!   LAN host or the gateway itself replying at once), the lead sends it right after, and nobody
//!   else was waiting on the TUN to be woken for nothing. With one thread per direction each such
//!   answer also woke the TX thread (`perf sched` on this 2-vCPU VM: ~22 µs of CPU in a ~250 µs
//!   round trip, and a wake-up of an idle vCPU without guest halt-polling is an IPI and a VM exit).
//! * **Loaded** (a step moved a batch of [`SPLIT_BATCH`] packets or more: a TSO super-packet, a
//!   queue that built up): the lead unparks the helper, which takes the TUN direction, and each
//!   direction has its own core, as in wireguard-go and boringtun. When neither direction has
//!   moved such a batch for [`SOLO_AFTER`], the helper hands the TUN back (an eventfd wakes the
//!   lead, which is polling only the socket) and parks.
//!
//! Quiet, after sending a lone packet the lead may also wait on-CPU for its answer
//! ([`answer_wait`](super::answer_wait)). Both workers are stepped without blocking; the threads
//! block in `poll`, outside the locks.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::POLL_INTERVAL;
use super::answer_wait::{AnswerWait, Waited};
use super::rx::{RxStep, RxWorker};
use super::tx::{Step, TxWorker};
use crate::io::clock::{self, RateLimit};
use crate::io::notify::Notify;
use crate::io::poll_any;

/// A step moving this many packets means a queue built up: worth a second core.
pub const SPLIT_BATCH: usize = 8;
/// Back to one thread after this long without such a step in either direction.
pub const SOLO_AFTER: Duration = Duration::from_millis(50);
/// Pause after a socket error other than "nothing queued" (a hot loop helps nobody).
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// The two workers and the state the two threads share.
pub struct Workers {
    tx: Mutex<TxWorker>,
    rx: Mutex<RxWorker>,
    /// Loaded: the helper owns the TUN direction. Quiet: the lead owns both.
    split: AtomicBool,
    /// When the lead last received a big batch (ns since `epoch`): keeps the helper from handing
    /// the TUN back while the RX direction alone is loaded.
    rx_big_at: AtomicU64,
    epoch: Instant,
    /// Wakes the lead when the helper hands the TUN back.
    handback: Notify,
    helper: OnceLock<Thread>,
    /// Lone sends and their answers ([`answer_wait`](super::answer_wait)).
    answers: AnswerWait,
    tun_fd: std::os::fd::RawFd,
    udp_fd: std::os::fd::RawFd,
    shared: Arc<super::Shared>,
}

impl Workers {
    pub fn new(
        tx: TxWorker,
        rx: RxWorker,
        shared: Arc<super::Shared>,
        answer_wait: Duration,
    ) -> io::Result<Self> {
        let now = clock::now();
        Ok(Workers {
            tun_fd: tx.tun_fd(),
            udp_fd: rx.udp_fd(),
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
            split: AtomicBool::new(false),
            rx_big_at: AtomicU64::new(0),
            epoch: now,
            answers: AnswerWait::new(answer_wait, now),
            handback: Notify::new()?,
            helper: OnceLock::new(),
            shared,
        })
    }

    /// Registers the helper thread (to unpark it); call before the lead starts.
    pub fn set_helper(&self, helper: Thread) {
        let _ = self.helper.set(helper);
    }

    /// Whether the helper currently owns the TUN direction.
    pub fn split(&self) -> bool {
        self.split.load(Ordering::Acquire)
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn go_split(&self) {
        if !self.split.swap(true, Ordering::AcqRel) {
            self.shared.stats.helper_takeovers.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = self.helper.get() {
                h.unpark();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A step that once panicked left buffers and counters behind, still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lead thread: both directions while quiet, RX only while loaded.
pub fn run_lead(w: Arc<Workers>) {
    let mut lead = Lead {
        rx_ready: true,
        tx_ready: true,
        tun_open: true,
        big: false,
        tx_stepped: clock::now(),
    };
    let mut poll_log = RateLimit::new(Duration::from_secs(5));
    while !w.shared.stopping() {
        let split = w.split();
        lead.big = false;
        if lead.rx_ready {
            let step = lock(&w.rx).step();
            lead.received(&w, step, split);
        }
        // A TX step at least every poll interval even while received traffic keeps the lead busy:
        // it sends the NAT keepalives that are due when nothing else went out.
        if !lead.tx_ready && clock::now().saturating_duration_since(lead.tx_stepped) >= POLL_INTERVAL {
            lead.tx_ready = true;
        }
        if !split && lead.tx_ready && lead.tun_open {
            lead.tx_stepped = clock::now();
            match lock(&w.tx).step() {
                Step::Idle => lead.tx_ready = false,
                Step::Closed => lead.tun_open = false,
                Step::Worked { packets, lone } => {
                    lead.big |= packets >= SPLIT_BATCH;
                    if lone {
                        // Quiet, and answers may be near: wait for this one on-CPU.
                        let sent = clock::now();
                        w.answers.sent_lone(sent);
                        let mut caught = None;
                        let waited = w.answers.wait(sent, || match lock(&w.rx).step() {
                            RxStep::Idle => false,
                            step => {
                                caught = Some(step);
                                true
                            }
                        });
                        let stats = &w.shared.stats;
                        match waited {
                            Waited::No => {}
                            Waited::Caught => _ = stats.answer_wait_hits.fetch_add(1, Ordering::Relaxed),
                            Waited::RanOut => _ = stats.answer_wait_misses.fetch_add(1, Ordering::Relaxed),
                        }
                        if let Some(step) = caught {
                            lead.received(&w, step, split);
                        }
                    }
                }
            }
        }
        if lead.big && !split {
            w.go_split();
        }
        let watch_tun = !w.split() && lead.tun_open;
        if lead.rx_ready || (watch_tun && lead.tx_ready) {
            continue;
        }
        let fds = [w.udp_fd, w.handback.raw_fd(), w.tun_fd];
        let fds = if watch_tun { &fds[..] } else { &fds[..2] };
        match poll_any(fds, POLL_INTERVAL) {
            Ok(mask) => {
                lead.rx_ready = mask & 1 != 0;
                if mask & 2 != 0 {
                    w.handback.drain();
                }
                // The TUN when readable, just handed back, or on a timeout (keepalives are due
                // from the TX step).
                lead.tx_ready = mask & 4 != 0 || mask & 2 != 0 || mask == 0;
            }
            Err(e) => {
                if poll_log.check(clock::now()).is_some() {
                    tracing::warn!(error = %e, "data-plane poll failed");
                }
                std::thread::sleep(ERROR_BACKOFF);
                (lead.rx_ready, lead.tx_ready) = (true, true);
            }
        }
    }
}

/// The lead thread's view of what is ready.
struct Lead {
    rx_ready: bool,
    tx_ready: bool,
    tun_open: bool,
    /// This round moved a batch worth a second core.
    big: bool,
    /// When the lead last stepped the TX worker.
    tx_stepped: Instant,
}

impl Lead {
    /// Bookkeeping after an RX step (the lead's own, or one taken while waiting for an answer).
    fn received(&mut self, w: &Workers, step: RxStep, split: bool) {
        match step {
            RxStep::Idle => self.rx_ready = false,
            RxStep::Failed => {
                self.rx_ready = false;
                std::thread::sleep(ERROR_BACKOFF);
            }
            RxStep::Received {
                datagrams,
                small_write,
            } => {
                self.rx_ready = true;
                let now = clock::now();
                w.answers.arrived(now);
                if datagrams >= SPLIT_BATCH {
                    self.big = true;
                    w.rx_big_at.store(w.ns(now), Ordering::Relaxed);
                }
                if small_write {
                    // The answer to what we just wrote may be queued on the TUN already.
                    if !split {
                        self.tx_ready = true;
                    } else if let Ok(mut tx) = w.tx.try_lock() {
                        // Loaded, but the helper is not busy: send it now rather than wait for
                        // the helper's wake-up.
                        tx.step();
                    }
                }
            }
        }
    }
}

/// The helper thread: parked while quiet, the TUN direction while loaded.
pub fn run_helper(w: Arc<Workers>) {
    let mut tx_big_at = clock::now();
    let mut poll_log = RateLimit::new(Duration::from_secs(5));
    while !w.shared.stopping() {
        if !w.split() {
            std::thread::park_timeout(POLL_INTERVAL);
            tx_big_at = clock::now();
            continue;
        }
        match lock(&w.tx).step() {
            Step::Worked { packets, .. } => {
                if packets >= SPLIT_BATCH {
                    tx_big_at = clock::now();
                }
            }
            Step::Closed => {
                // The TUN is gone: nothing left to do here; the lead stops watching it too.
                w.split.store(false, Ordering::Release);
                w.handback.notify();
                return;
            }
            Step::Idle => {
                let now = clock::now();
                let rx_big_at = w.epoch + Duration::from_nanos(w.rx_big_at.load(Ordering::Relaxed));
                let last_big = tx_big_at.max(rx_big_at);
                let quiet_for = now.saturating_duration_since(last_big);
                if quiet_for >= SOLO_AFTER {
                    w.split.store(false, Ordering::Release);
                    w.handback.notify();
                    w.shared.stats.helper_handbacks.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let wait = (SOLO_AFTER - quiet_for).clamp(Duration::from_millis(1), POLL_INTERVAL);
                if let Err(e) = poll_any(&[w.tun_fd], wait) {
                    if poll_log.check(now).is_some() {
                        tracing::warn!(error = %e, "TUN poll failed");
                    }
                    std::thread::sleep(ERROR_BACKOFF);
                }
            }
        }
    }
}
