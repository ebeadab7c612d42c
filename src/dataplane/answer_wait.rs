//! Waiting on-CPU, briefly, for the answer to a packet just sent.
//!
//! Why: a request that leaves through a quiet tunnel (a ping, a DNS query, a database round trip)
//! comes back to a sleeping thread, and waking a thread is the largest cost on a quiet gateway:
//! on a VM without guest halt-polling (this machine) a wake-up on an idle vCPU is an IPI and a VM
//! exit, 35–45 µs measured with `perf sched`, against ~30 µs of work to open the answer and write
//! it to the TUN. Right after sending such a lone packet the lead thread is still on its CPU; if
//! answers typically arrive within a short budget it polls the UDP socket for this one instead of
//! going to sleep, yielding the CPU to anything runnable between polls (on a host that packs
//! threads onto few CPUs, that is often the thread producing the answer).
//!
//! It stays cheap when it does not help, by learning: every lone send stamps the time, the next
//! arrival measures the gap, and a moving average of the gaps decides. Peers milliseconds away
//! (AWS over the Internet, most real deployments) give averages far above the budget, and nothing
//! spins; a peer a few hundred microseconds away (same site, a lab, `emulate-aws`) gets its answers
//! without the wake-up. Loaded, the data plane runs a thread per direction and never spins (see
//! [`super::workers`]). A spin is one non-blocking `recvmmsg` and one `sched_yield` per iteration,
//! at most `interface.answer_wait_us` long (default [`DEFAULT_BUDGET`]; 0 turns it off), and the
//! worst case costs that much CPU per lone packet: a request/response stream of 2000 lone requests
//! a second answered in 150 µs spends ~30% of a core on it, in exchange for a wake-up per answer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::io::clock;

/// Default budget: longer than a round trip through a nearby second gateway (~100–200 µs here),
/// short enough that a miss costs little (it happens only after the average said "fast").
pub const DEFAULT_BUDGET: Duration = Duration::from_micros(250);
/// Largest budget accepted from the settings: beyond a millisecond sleeping is cheaper.
pub const MAX_BUDGET: Duration = Duration::from_millis(1);

/// The budget for a setting in microseconds: `None` is the default, more than [`MAX_BUDGET`] is
/// cut to it (settings files are validated before; this also covers `esp-static`'s own config).
pub fn budget_from_micros(us: Option<u32>) -> Duration {
    us.map_or(DEFAULT_BUDGET, |us| {
        Duration::from_micros(u64::from(us)).min(MAX_BUDGET)
    })
}

/// Gaps longer than this many budgets count as this many: one lost answer must not take dozens of
/// fast answers to forget.
const GAP_CAP_BUDGETS: u64 = 8;

/// The lone-send → next-arrival statistics and the spin decision (shared by the two workers).
#[derive(Debug)]
pub struct AnswerWait {
    budget_ns: u64,
    epoch: Instant,
    /// When the last lone packet left, in ns since `epoch` (+1, so 0 means "none pending").
    sent_at: AtomicU64,
    /// Moving average (1/8 weight) of the gap from a lone send to the next arrival, ns.
    typical_gap_ns: AtomicU64,
}

/// What [`AnswerWait::wait`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Answers are not near (or waiting is off), or someone else received it.
    No,
    /// The answer arrived while waiting.
    Caught,
    /// The budget ran out.
    RanOut,
}

impl AnswerWait {
    /// `budget` zero turns spinning off.
    pub fn new(budget: Duration, now: Instant) -> Self {
        let budget_ns = budget.as_nanos().min(u128::from(u64::MAX)) as u64;
        AnswerWait {
            budget_ns,
            epoch: now,
            sent_at: AtomicU64::new(0),
            // Unknown at first: as if answers came at the budget, so the first lone sends try.
            typical_gap_ns: AtomicU64::new(budget_ns),
        }
    }

    fn ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64
            + 1
    }

    /// A lone packet (the first after an idle TUN) just left.
    pub fn sent_lone(&self, now: Instant) {
        if self.budget_ns > 0 {
            self.sent_at.store(self.ns(now), Relaxed);
        }
    }

    /// Something arrived on the UDP socket: if a lone send was waiting, learn how long it took.
    pub fn arrived(&self, now: Instant) {
        let sent = self.sent_at.swap(0, Relaxed);
        if sent == 0 {
            return;
        }
        let gap = self
            .ns(now)
            .saturating_sub(sent)
            .min(self.budget_ns.saturating_mul(GAP_CAP_BUDGETS));
        let avg = self.typical_gap_ns.load(Relaxed);
        self.typical_gap_ns.store(avg - avg / 8 + gap / 8, Relaxed);
    }

    /// Whether the lone send is still waiting for its answer (false once anything arrived, whoever
    /// received it).
    pub fn waiting(&self) -> bool {
        self.sent_at.load(Relaxed) != 0
    }

    /// How long to wait on-CPU for the answer to the lone packet just sent: `None` when answers
    /// typically take longer than the budget (or spinning is off).
    pub fn spin_budget(&self) -> Option<Duration> {
        let typical = self.typical_gap_ns.load(Relaxed);
        (self.budget_ns > 0 && typical <= self.budget_ns).then(|| Duration::from_nanos(self.budget_ns))
    }

    /// After a lone send at `sent`: calls `poll` (one non-blocking receive; `true` when something
    /// arrived) until something arrives, anyone else received the answer, or the budget is spent,
    /// yielding the CPU between calls.
    pub fn wait(&self, sent: Instant, mut poll: impl FnMut() -> bool) -> Waited {
        let Some(budget) = self.spin_budget() else {
            return Waited::No;
        };
        loop {
            if !self.waiting() {
                return Waited::No;
            }
            if poll() {
                return Waited::Caught;
            }
            if clock::now().saturating_duration_since(sent) >= budget {
                return Waited::RanOut;
            }
            std::thread::yield_now();
        }
    }

    /// The learned typical gap (status and tests).
    pub fn typical_gap(&self) -> Duration {
        Duration::from_nanos(self.typical_gap_ns.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn fast_answers_keep_spinning_far_answers_stop_it() {
        let t0 = clock::now();
        let w = AnswerWait::new(250 * US, t0);
        assert_eq!(w.spin_budget(), Some(250 * US), "tries before it knows");
        let mut t = t0;
        for _ in 0..20 {
            t += 20_000 * US;
            w.sent_lone(t);
            w.arrived(t + 120 * US);
        }
        assert!(w.typical_gap() < 150 * US, "{:?}", w.typical_gap());
        assert_eq!(w.spin_budget(), Some(250 * US));
        // A peer 5 ms away: a few answers are enough to stop spinning.
        for _ in 0..3 {
            t += 20_000 * US;
            w.sent_lone(t);
            w.arrived(t + 5_000 * US);
        }
        assert_eq!(w.spin_budget(), None, "{:?}", w.typical_gap());
        // And when answers are fast again, it comes back.
        for _ in 0..30 {
            t += 20_000 * US;
            w.sent_lone(t);
            w.arrived(t + 100 * US);
        }
        assert_eq!(w.spin_budget(), Some(250 * US), "{:?}", w.typical_gap());
    }

    #[test]
    fn arrivals_without_a_lone_send_teach_nothing_and_zero_budget_is_off() {
        let t0 = clock::now();
        let w = AnswerWait::new(250 * US, t0);
        w.arrived(t0 + 10 * US);
        w.arrived(t0 + 900_000 * US);
        assert_eq!(w.typical_gap(), 250 * US);
        let off = AnswerWait::new(Duration::ZERO, t0);
        off.sent_lone(t0);
        off.arrived(t0 + US);
        assert_eq!(off.spin_budget(), None);
    }

    #[test]
    fn a_lost_answer_is_capped() {
        let t0 = clock::now();
        let w = AnswerWait::new(250 * US, t0);
        w.sent_lone(t0);
        w.arrived(t0 + Duration::from_secs(3600));
        // 250 - 250/8 + 8*250/8 = 468.75 µs, not an hour/8.
        assert!(w.typical_gap() < 500 * US, "{:?}", w.typical_gap());
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn wait_stops_at_the_answer_or_the_budget_and_not_at_all_when_off() {
        let t0 = clock::now();
        let w = AnswerWait::new(Duration::from_millis(5), t0);
        w.sent_lone(t0);
        let mut polls = 0;
        let waited = w.wait(t0, || {
            polls += 1;
            polls == 3
        });
        assert_eq!((waited, polls), (Waited::Caught, 3));
        // The budget runs out (time is real here: 5 ms of polling nothing).
        let t1 = clock::now();
        w.sent_lone(t1);
        assert_eq!(w.wait(t1, || false), Waited::RanOut);
        assert!(clock::now().saturating_duration_since(t1) >= Duration::from_millis(5));
        // Someone else received it: no polling at all.
        w.sent_lone(t1);
        w.arrived(clock::now());
        assert_eq!(
            w.wait(t1, || panic!("polled after the answer arrived")),
            Waited::No
        );
        let off = AnswerWait::new(Duration::ZERO, t0);
        off.sent_lone(t0);
        assert_eq!(off.wait(t0, || panic!("polled while off")), Waited::No);
    }
}
