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
    fn rate_limit_counts_suppressed_events() {
        let t0 = now();
        let mut rl = RateLimit::new(Duration::from_secs(1));
        assert_eq!(rl.check(t0), Some(0));
        assert_eq!(rl.check(t0 + Duration::from_millis(10)), None);
        assert_eq!(rl.check(t0 + Duration::from_millis(20)), None);
        assert_eq!(rl.check(t0 + Duration::from_secs(2)), Some(2));
    }
}
