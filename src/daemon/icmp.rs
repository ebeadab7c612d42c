//! Raw ICMP sockets (IPv4, and ICMPv6 for IPv6-inside tunnels) for the liveness probe: the probe packets (built whole by
//! [`crate::failover::probe::Prober`], our inside address as source) are handed to the kernel,
//! which routes them to the TUN device like any packet to the AWS inside address; the data plane
//! seals them into that tunnel. AWS's echo replies come back through the TUN device to the kernel,
//! which gives every raw ICMP socket a copy (IP header included).
//!
//! Hand-written on libc: std has no raw sockets and the crate has no socket2 dependency; it is four
//! system calls. Replies are read with the kernel's arrival time (`SO_TIMESTAMPNS`, through nix's
//! `recvmsg`): the control loop reads them only at its next tick, and the round trip it reports
//! (`cgwd_tunnel_dpd_rtt_seconds`) must be the path's, not up to a tick of waiting.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn6, SockaddrLike, recvmsg, setsockopt, sockopt,
};

/// Ask the kernel to stamp every packet queued on `fd` with its arrival time.
fn stamp_arrivals(fd: &OwnedFd) -> io::Result<()> {
    setsockopt(fd, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// A received packet's length, its sender's address and the kernel's arrival stamp (wall-clock
/// time since the Unix epoch).
type Stamped<S> = (usize, Option<S>, Option<Duration>);

/// One queued packet into `buf` without blocking; `None` when nothing is queued.
fn recv_stamped<S: SockaddrLike>(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<Stamped<S>>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = match recvmsg::<S>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stamp = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(t) => {
                let (secs, nanos) = (u64::try_from(t.tv_sec()).ok()?, u32::try_from(t.tv_nsec()).ok()?);
                Some(Duration::new(secs, nanos))
            }
            _ => None,
        })
    });
    Ok(Some((msg.bytes, msg.address, stamp)))
}

pub struct RawIcmp {
    fd: OwnedFd,
}

impl RawIcmp {
    #[allow(unsafe_code)]
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: valid fd, pointer to a c_int that lives across the call, matching length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_HDRINCL,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Echo replies only (linux/icmp.h ICMP_FILTER on SOL_RAW: a bit set drops that type): the
        // socket never queues the rest of the host's ICMP traffic.
        const ICMP_FILTER: libc::c_int = 1;
        let drop_all_but_echo_reply: u32 = !1u32;
        // SAFETY: valid fd, pointer to a u32 (struct icmp_filter) living across the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_RAW,
                ICMP_FILTER,
                (&drop_all_but_echo_reply as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        stamp_arrivals(&fd)?;
        Ok(RawIcmp { fd })
    }

    /// Hear only what arrives on `ifname` (the TUN device): replies that came out of a tunnel, not
    /// echo replies anyone can send to the host's outside address.
    #[allow(unsafe_code)]
    pub fn bind_to_device(&self, ifname: &str) -> io::Result<()> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        let bytes = name.as_bytes_with_nul();
        // SAFETY: valid fd, pointer to the NUL-terminated name valid for its length during the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Send a complete IPv4 packet to `dst` (its header's destination).
    #[allow(unsafe_code)]
    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `packet` and `addr` are valid for the lengths passed and outlive the call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One received packet (IPv4 header included) and when it arrived (see [`recv_stamped`]), or
    /// `None` when nothing is queued.
    pub fn try_recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Option<(&'a [u8], Option<Duration>)>> {
        let got = recv_stamped::<nix::sys::socket::SockaddrIn>(&self.fd, buf)?;
        Ok(got.and_then(|(n, _, stamp)| Some((buf.get(..n)?, stamp))))
    }
}

/// A raw ICMPv6 socket for the liveness probe of IPv6-inside tunnels: it sends the ICMPv6 echo
/// message only (the kernel adds the IPv6 header, picking our inside address of the /126 as the
/// source, and the checksum) and receives echo replies without their IPv6 header.
pub struct RawIcmp6 {
    fd: OwnedFd,
}

impl RawIcmp6 {
    #[allow(unsafe_code)]
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMPV6,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Echo replies only (linux/icmpv6.h ICMPV6_FILTER: struct icmp6_filter, a set bit blocks
        // that type), so the host's other ICMPv6 (neighbour discovery, MLD) is never queued here.
        const ICMPV6_FILTER: libc::c_int = 1;
        let mut filter = [u32::MAX; 8];
        let reply = 129usize;
        filter[reply >> 5] &= !(1u32 << (reply & 31));
        // SAFETY: valid fd, pointer to the 32-byte filter living across the call, matching length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMPV6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        stamp_arrivals(&fd)?;
        Ok(RawIcmp6 { fd })
    }

    /// Hear only what arrives on `ifname` (the TUN device), as [`RawIcmp::bind_to_device`].
    #[allow(unsafe_code)]
    pub fn bind_to_device(&self, ifname: &str) -> io::Result<()> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        let bytes = name.as_bytes_with_nul();
        // SAFETY: valid fd, pointer to the NUL-terminated name valid for its length during the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Send an ICMPv6 message to `dst`.
    #[allow(unsafe_code)]
    pub fn send(&self, message: &[u8], dst: Ipv6Addr) -> io::Result<()> {
        // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        addr.sin6_addr.s6_addr = dst.octets();
        // SAFETY: `message` and `addr` are valid for the lengths passed and outlive the call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&addr as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One received ICMPv6 message, its source and when it arrived (see [`recv_stamped`]), or
    /// `None` when nothing is queued.
    #[allow(clippy::type_complexity)]
    pub fn try_recv<'a>(
        &self,
        buf: &'a mut [u8],
    ) -> io::Result<Option<(Ipv6Addr, &'a [u8], Option<Duration>)>> {
        let got = recv_stamped::<SockaddrIn6>(&self.fd, buf)?;
        Ok(got.and_then(|(n, from, stamp)| Some((from?.ip(), buf.get(..n)?, stamp))))
    }
}
