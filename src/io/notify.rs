//! A wake-up a thread can wait for next to its sockets (`eventfd`): the data-plane helper thread
//! uses it to hand the TUN back to the lead thread, which is blocked in `poll` at that moment.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// A non-blocking eventfd: [`notify`](Self::notify) makes it readable until [`drain`](Self::drain).
#[derive(Debug)]
pub struct Notify {
    fd: File,
}

impl Notify {
    pub fn new() -> io::Result<Self> {
        #[allow(unsafe_code)]
        // SAFETY: eventfd has no memory arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(unsafe_code)]
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        let fd = unsafe { File::from_raw_fd(fd) };
        Ok(Notify { fd })
    }

    /// Makes the descriptor readable (wakes a thread polling it).
    pub fn notify(&self) {
        // Only fails when the counter would overflow (it is then readable anyway).
        let _ = (&self.fd).write(&1u64.to_ne_bytes());
    }

    /// Consumes all notifications.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = (&self.fd).read(&mut buf);
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notify_makes_it_readable_until_drained() {
        let n = Notify::new().unwrap();
        assert_eq!(crate::io::poll_any(&[n.raw_fd()], Duration::ZERO).unwrap(), 0);
        n.notify();
        n.notify();
        assert_eq!(crate::io::poll_any(&[n.raw_fd()], Duration::ZERO).unwrap(), 1);
        n.drain();
        assert_eq!(crate::io::poll_any(&[n.raw_fd()], Duration::ZERO).unwrap(), 0);
    }
}
