//! The operating-system shell of the data plane: the TUN device, the UDP sockets and the clock.
//!
//! Everything here talks to the kernel; everything above it (ESP, IKE) is handed bytes and time. The
//! calls are batched because per-packet syscalls are the bottleneck on a userspace VPN (see
//! `shared/notes/dataplane-performance.md`): TUN offloads move 64 KiB per read/write, UDP GSO/GRO move up
//! to 64 datagrams per send/receive.

pub mod clock;
pub mod notify;
pub mod route;
pub mod tun;
pub mod udp;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Waits up to `timeout` (rounded down to milliseconds) for any of `fds` (at most 8) to be
/// readable; returns a bit mask of the readable ones (bit `i` for `fds[i]`), 0 on timeout or a
/// signal. The workers block here, outside their locks; the caller keeps the descriptors open.
pub fn poll_any(fds: &[RawFd], timeout: Duration) -> io::Result<u32> {
    const MAX: usize = 8;
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX];
    let n = fds.len().min(MAX);
    for (p, &fd) in pfds.iter_mut().zip(&fds[..n]) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    let whole_ms = Duration::from_millis(timeout.as_millis().min(u64::MAX as u128) as u64);
    poll(&mut pfds[..n], Some(whole_ms))?;
    // POLLERR/POLLHUP count as readable: the next read reports what happened.
    Ok(pfds[..n]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .fold(0, |mask, (i, _)| mask | 1 << i))
}

/// poll(2) on `fds`, each with its own `events`; waits up to `timeout` (rounded up to milliseconds;
/// `None`: until one is ready). Returns how many have `revents`, 0 on timeout or a signal.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    #[allow(unsafe_code)]
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfds of the given length; poll only
    // reads and writes those.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(rc as usize)
}
