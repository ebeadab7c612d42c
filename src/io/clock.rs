//! The one place that reads the monotonic clock; sans-IO code is handed `now` instead.

use std::time::{Duration, Instant};

/// Monotonic time. The data plane and the daemon call this; the protocol core never does.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock seconds since the Unix epoch (0 before it): what certificate validity is checked
/// against when the configuration is loaded ([`crate::config::cert::load`] is handed it).
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The monotonic instant of a kernel arrival stamp (`SO_TIMESTAMPNS`: wall-clock time since the
/// Unix epoch) read at `now`: `now` less how long ago the stamp was. `now` itself when the stamp is
/// missing, in the future or more than a second old (the wall clock was stepped in between).
#[allow(clippy::disallowed_methods)]
pub fn arrival(stamp: Option<Duration>, now: Instant) -> Instant {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    match stamp.and_then(|s| wall.checked_sub(s)) {
        Some(ago) if ago <= Duration::from_secs(1) => now.checked_sub(ago).unwrap_or(now),
        _ => now,
    }
}

/// Limits how often something (a log line) happens: at most once per `period`.
#[derive(Debug)]
pub struct RateLimit {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(period: Duration) -> Self {
        RateLimit {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when the event may happen now, `n` being how many were suppressed since the last one.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_kernel_stamp_becomes_the_instant_it_stands_for() {
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
        };
        let t = now();
        // 30 ms ago: that much before `now`, give or take the time this test takes.
        let at = arrival(Some(wall() - Duration::from_millis(30)), t);
        let ago = t - at;
        assert!(
            ago >= Duration::from_millis(29) && ago < Duration::from_secs(1),
            "{ago:?}"
        );
        // No stamp, one from the future, one from before a clock step: `now`.
        assert_eq!(arrival(None, t), t);
        assert_eq!(arrival(Some(wall() + Duration::from_secs(5)), t), t);
        assert_eq!(arrival(Some(wall() - Duration::from_secs(5)), t), t);
    }

    #[test]
    fn rate_limit_counts_suppressed_events() {
        let t0 = now();
        let mut rl = RateLimit::new(Duration::from_secs(1));
        assert_eq!(rl.check(t0), Some(0));
        assert_eq!(rl.check(t0 + Duration::from_millis(10)), None);
        assert_eq!(rl.check(t0 + Duration::from_millis(20)), None);
        assert_eq!(rl.check(t0 + Duration::from_secs(2)), Some(2));
    }
}
