//! `local.address = "auto"` (or unset): the customer gateway's outside address followed while cgwd
//! runs. Edge sites get theirs from DHCP or PPPoE and a restarted cloud VM gets a new one; AWS does
//! no MOBIKE, so the daemon moves its sockets and re-establishes both tunnels
//! ([`crate::gateway::Gateway::set_local_address`]).
//!
//! A thread listens to the kernel's rtnetlink address and route notifications (IPv4 and IPv6),
//! waits for them to settle ([`DEBOUNCE`]: an address change comes as a burst of address and route
//! messages), then resolves the address again the way start-up does
//! ([`crate::config::resolve_local_address`]), and hands the result to the control loop. It also
//! resolves every [`RECHECK`] in case a notification was lost (socket overrun), and so the loop
//! retries a rebind that failed. The messages' contents are never parsed: any of them only means
//! "look again".

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use crate::io::clock;

/// Quiet time after the last notification before the address is resolved again.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest wait for quiet: a steady stream of route changes does not postpone the look for ever.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// Resolve again this often even without a notification.
pub const RECHECK: Duration = Duration::from_secs(5);
/// Notifications read per wake-up at most (the rest wait for the next one).
const READS_PER_WAKE: usize = 256;

/// The kernel's address and route groups (linux/rtnetlink.h RTMGRP_*).
const GROUPS: u32 =
    (libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_IFADDR | libc::RTMGRP_IPV6_ROUTE)
        as u32;

/// The watching thread's results: the address cgwd should send from, `None` when nothing reaches
/// AWS. Stops the thread when dropped.
pub struct LocalWatch {
    rx: Receiver<Option<IpAddr>>,
    stop: Arc<AtomicBool>,
    /// No usable address was reported and the loop said so (it says it once).
    pub lost: bool,
}

impl LocalWatch {
    /// Starts watching; `resolve` finds the address (start-up's rule) and is called on the thread.
    pub fn start(resolve: Box<dyn Fn() -> io::Result<IpAddr> + Send>) -> io::Result<LocalWatch> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, GROUPS))?;
        socket.set_non_blocking(true)?;
        let (tx, rx) = sync_channel(4);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("cgwd-localaddr".into())
            .spawn(move || watch(&socket, &*resolve, &tx, &flag))?;
        Ok(LocalWatch {
            rx,
            stop,
            lost: false,
        })
    }

    /// Follow the address for `cgwd run` when `local.address` is unset or `"auto"` (None when it is
    /// fixed, or when no rtnetlink socket could be had: the address found at start then stays).
    pub fn for_settings(
        settings: &crate::config::Settings,
        tunnel: &crate::config::TunnelConfig,
    ) -> Option<LocalWatch> {
        if settings.local.address.is_some() {
            return None;
        }
        let (settings, tunnel) = (settings.clone(), tunnel.clone());
        let resolve = move || usable(crate::config::resolve_local_address(&settings, &tunnel)?);
        match LocalWatch::start(Box::new(resolve)) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "local.address = \"auto\": cannot watch the host's addresses; the outside address found at start stays until a restart");
                None
            }
        }
    }

    /// The newest result since the last call, if any.
    pub fn latest(&self) -> Option<Option<IpAddr>> {
        let mut last = None;
        while let Ok(r) = self.rx.try_recv() {
            last = Some(r);
        }
        last
    }
}

impl Drop for LocalWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `addr` unless it cannot be the customer gateway's outside address: with the outside address gone
/// the kernel picks the source toward AWS from any interface, such as cgwd's own TUN device with the
/// tunnels' inside addresses (169.254.0.0/16 link-local, never an AWS customer gateway address), or
/// loopback.
fn usable(addr: IpAddr) -> io::Result<IpAddr> {
    let unusable = match addr {
        IpAddr::V4(a) => a.is_link_local() || a.is_loopback() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_loopback() || a.is_unspecified() || a.is_unicast_link_local(),
    };
    if unusable {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("only {addr} reaches AWS, which is no outside address"),
        ));
    }
    Ok(addr)
}

/// What the thread should do now, given when notifications came and when it last resolved: a pure
/// decision, tested below.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Resolve the address now.
    Resolve,
    /// Sleep at most this long (a notification wakes it earlier).
    Wait(Duration),
}

/// `pending`: (first, last) notification not yet acted on.
fn next(now: Instant, pending: Option<(Instant, Instant)>, last_resolve: Instant) -> Next {
    let due = match pending {
        Some((first, last)) => (last + DEBOUNCE).min(first + DEBOUNCE_MAX),
        None => last_resolve + RECHECK,
    };
    match due.checked_duration_since(now) {
        None => Next::Resolve,
        Some(d) if d.is_zero() => Next::Resolve,
        // Wake at least twice a second to see the stop flag.
        Some(d) => Next::Wait(d.min(Duration::from_millis(500))),
    }
}

fn watch(
    socket: &Socket,
    resolve: &dyn Fn() -> io::Result<IpAddr>,
    tx: &SyncSender<Option<IpAddr>>,
    stop: &AtomicBool,
) {
    let mut pending: Option<(Instant, Instant)> = None;
    let mut last_resolve = clock::now();
    while !stop.load(Ordering::Relaxed) {
        let now = clock::now();
        match next(now, pending, last_resolve) {
            Next::Resolve => {
                pending = None;
                last_resolve = now;
                let addr = match resolve() {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::debug!(error = %e, "no outside address reaches AWS");
                        None
                    }
                };
                match tx.try_send(addr) {
                    // Full: the loop has results it has not read; the next look sends again.
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Next::Wait(d) => {
                if let Err(e) = crate::io::poll_any(&[socket.as_raw_fd()], d) {
                    tracing::warn!(error = %e, "polling the rtnetlink socket");
                    std::thread::sleep(d);
                    continue;
                }
                if drain(socket) {
                    let now = clock::now();
                    pending = Some(pending.map_or((now, now), |(first, _)| (first, now)));
                }
            }
        }
    }
}

/// Reads what the kernel sent; true if anything (or an overrun: notifications were lost) was there.
fn drain(socket: &Socket) -> bool {
    let mut any = false;
    for _ in 0..READS_PER_WAKE {
        match socket.recv_from_full() {
            Ok((msg, _)) if msg.is_empty() => break,
            Ok(_) => any = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading rtnetlink notifications");
                break;
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_loopback_addresses_are_no_outside_address() {
        for a in ["169.254.10.6", "127.0.0.1", "0.0.0.0", "::1", "fe80::1"] {
            assert!(usable(a.parse().unwrap()).is_err(), "{a}");
        }
        for a in ["192.0.2.20", "10.0.0.5", "2001:db8::1"] {
            assert!(usable(a.parse().unwrap()).is_ok(), "{a}");
        }
    }

    #[test]
    fn notifications_are_debounced_and_quiet_times_rechecked() {
        #[allow(clippy::disallowed_methods)] // a base instant for the pure decision
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Nothing pending: a recheck every RECHECK, sleeping in slices of at most 500 ms.
        assert_eq!(next(t0, None, t0), Next::Wait(ms(500)));
        assert_eq!(next(t0 + RECHECK, None, t0), Next::Resolve);
        // A notification: resolved DEBOUNCE after the last one of a burst...
        let p = Some((t0, t0 + ms(150)));
        assert_eq!(next(t0 + ms(200), p, t0), Next::Wait(ms(150)));
        assert_eq!(next(t0 + ms(350), p, t0), Next::Resolve);
        // ... but no later than DEBOUNCE_MAX after the first, however long the burst.
        let p = Some((t0, t0 + ms(990)));
        assert_eq!(next(t0 + ms(995), p, t0), Next::Wait(ms(5)));
        assert_eq!(next(t0 + DEBOUNCE_MAX, p, t0), Next::Resolve);
    }

    /// Without any notification the watcher still resolves every RECHECK and hands the result to
    /// the loop (tests/local_address_e2e.rs changes the address for real).
    #[test]
    fn the_watcher_hands_over_what_resolve_finds() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let w = LocalWatch::start(Box::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
            Ok(IpAddr::from([192, 0, 2, 20]))
        }))
        .expect("an rtnetlink socket");
        let got = (0..(RECHECK.as_millis() / 50 + 40))
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                w.latest()
            })
            .expect("a result within RECHECK");
        assert_eq!(got, Some(IpAddr::from([192, 0, 2, 20])));
        assert!(calls.load(Ordering::Relaxed) >= 1);
    }
}
