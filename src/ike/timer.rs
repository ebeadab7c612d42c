//! The IKE SA's timers as a plain table (quinn's `TimerTable`): `poll_timeout` is the minimum,
//! `handle_timeout` fires whatever has expired.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retransmit the request in flight, or give up.
    Retransmit = 0,
    /// Nothing heard from the peer for the DPD interval: send an empty INFORMATIONAL.
    Dpd = 1,
    /// Half-open IKE SA (responder waiting for IKE_AUTH, initiator waiting overall) times out.
    Establish = 2,
    /// Rekey the IKE SA (lifetime − margin − fuzz).
    IkeRekey = 3,
    /// Rekey the Child SA.
    ChildRekey = 4,
    /// A Child SA reached its hard lifetime (its rekey failed): delete it.
    ChildExpire = 5,
    /// The IKE SA reached its lifetime without a successful rekey: give it up (the daemon starts over).
    IkeExpire = 6,
    /// The peer rekeyed a Child SA but has not deleted the old one: switch to the new SA anyway.
    Successor = 7,
    /// Stop waiting for the DELETE exchange of a rekey collision's redundant IKE SA.
    RetiredIke = 8,
    /// Closing: stop waiting for the response to the request in flight and send our DELETE.
    CloseWait = 9,
}

const COUNT: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct TimerTable([Option<Instant>; COUNT]);

impl TimerTable {
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    pub fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Take the earliest expired timer, if any: call in a loop from `handle_timeout`.
    pub fn expired(&mut self, now: Instant) -> Option<Timer> {
        const ALL: [Timer; COUNT] = [
            Timer::Retransmit,
            Timer::Dpd,
            Timer::Establish,
            Timer::IkeRekey,
            Timer::ChildRekey,
            Timer::ChildExpire,
            Timer::IkeExpire,
            Timer::Successor,
            Timer::RetiredIke,
            Timer::CloseWait,
        ];
        let t = ALL
            .into_iter()
            .filter(|&t| self.get(t).is_some_and(|at| at <= now))
            .min_by_key(|&t| self.get(t))?;
        self.stop(t);
        Some(t)
    }

    pub fn clear(&mut self) {
        self.0 = [None; COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_fires_first_and_only_once() {
        let t0 = Instant::now_for_tests();
        let mut tt = TimerTable::default();
        tt.set(Timer::Dpd, t0 + Duration::from_secs(10));
        tt.set(Timer::Retransmit, t0 + Duration::from_secs(1));
        assert_eq!(tt.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(tt.expired(t0), None);
        let later = t0 + Duration::from_secs(20);
        assert_eq!(tt.expired(later), Some(Timer::Retransmit));
        assert_eq!(tt.expired(later), Some(Timer::Dpd));
        assert_eq!(tt.expired(later), None);
        assert_eq!(tt.next(), None);
    }

    trait NowForTests {
        fn now_for_tests() -> Instant;
    }
    impl NowForTests for Instant {
        #[allow(clippy::disallowed_methods)] // tests need some base instant; only differences matter
        fn now_for_tests() -> Instant {
            Instant::now()
        }
    }
}
