//! SIGTERM/SIGINT → an orderly stop; SIGHUP → reopen log files and reload the configuration.
//!
//! Design: signal handlers only set flags (`signal-hook`, async-signal-safe); the control loop
//! wakes at least every [`crate::daemon::run::TICK`] (50 ms, which failover needs anyway), sees the
//! flag and runs the shutdown sequence: send DELETE for both IKE SAs (one attempt, not waited for
//! beyond a short grace), stop the data-plane workers, remove routes and inside addresses, remove
//! the TUN device and the control socket, exit 0 — well within a second. A second SIGTERM/SIGINT
//! while that runs exits at once with status 1 (systemd's stop timeout never has to SIGKILL us).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Flags set by signal handlers.
#[derive(Debug, Clone)]
pub struct Signals {
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
}

impl Signals {
    /// Install the handlers (once per process).
    pub fn install() -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            // Order matters: the conditional exit sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
            signal_hook::flag::register(sig, stop.clone())?;
        }
        signal_hook::flag::register(SIGHUP, reopen.clone())?;
        Ok(Signals { stop, reopen })
    }

    /// A stop was asked for (SIGTERM or SIGINT).
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Ask for a stop from inside the process (fatal error in a worker, tests).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// SIGHUP arrived since the last call (log files should be reopened).
    pub fn take_reopen(&self) -> bool {
        self.reopen.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigterm_and_sighup_set_their_flags() {
        let s = Signals::install().unwrap();
        assert!(!s.stop_requested());
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert!(s.take_reopen());
        assert!(!s.take_reopen());
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert!(s.stop_requested());
    }
}
