//! UDP sockets: 500 carries IKE, 4500 carries ESP-in-UDP and IKE behind the non-ESP marker.
//!
//! Batched both ways, because per-datagram stack traversal is what costs (measured here: 1.8 us per
//! 1400 B datagram with sendmmsg, 0.3 us with UDP GSO; never receive GSO traffic without UDP_GRO):
//! * send: `sendmsg` with a `UDP_SEGMENT` control message over a *scatter-gather* iovec list, one
//!   iovec per ESP packet, so packets sealed in their own buffers go out without being copied into one
//!   contiguous buffer. GSO is disabled for good after the kernel answers EIO/EINVAL (no checksum
//!   offload, xfrm on the route, old kernel) and the batch falls back to `sendmmsg`.
//! * receive: `UDP_GRO` + `recvmmsg`; each message may hold several datagrams of `segment_size`.
//!
//! Why libc and not quinn-udp: quinn-udp's `Transmit` takes one contiguous buffer (forcing a copy of
//! every sealed packet) and has no sendmmsg fallback; the two syscalls are ~250 lines here.

use std::io::{self, IoSlice};
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::io::clock::{self, RateLimit};

/// linux/udp.h: `UDP_SEGMENT` (GSO segment size, setsockopt or cmsg). Not exported by libc for glibc.
const UDP_SEGMENT: libc::c_int = 103;
/// linux/udp.h: `UDP_GRO` (receive coalesced datagrams, segment size in a cmsg).
const UDP_GRO: libc::c_int = 104;

/// The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65507;
/// Messages per `recvmmsg` call (quinn-udp uses 32 as well).
pub const RECV_BATCH: usize = 32;
/// Buffer per received message: a whole GRO super-datagram fits.
pub const RECV_BUF_LEN: usize = 65536;
/// Socket buffer size asked for (forced when we are root): ~8 MB as measured best here.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; 64]);

/// Counters of one socket, readable from any thread.
#[derive(Debug, Default)]
pub struct UdpStats {
    pub sent_datagrams: AtomicU64,
    pub send_calls: AtomicU64,
    pub send_errors: AtomicU64,
    pub received_datagrams: AtomicU64,
    pub recv_calls: AtomicU64,
}

/// One bound UDP socket shared by the RX worker (receives), the TX worker and the control plane (send).
#[derive(Debug)]
pub struct UdpSocket {
    sock: std::net::UdpSocket,
    gso: AtomicBool,
    gro: bool,
    pub stats: UdpStats,
    error_log: Mutex<RateLimit>,
}

/// What one received message was.
#[derive(Debug, Clone, Copy)]
pub struct RecvMeta {
    /// Bytes in the message (several datagrams when GRO coalesced them).
    pub len: usize,
    /// Size of each datagram in the message; the last one may be shorter.
    pub segment_size: usize,
    pub source: SocketAddr,
}

impl RecvMeta {
    const EMPTY: RecvMeta = RecvMeta {
        len: 0,
        segment_size: 0,
        source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    };
}

/// Messages a quiet socket asks the kernel for (see [`RecvBatch`]).
const QUIET_WANT: usize = 4;

/// Preallocated buffers for [`UdpSocket::recv_batch`]; reused for every call.
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    meta: [RecvMeta; RECV_BATCH],
    /// How many messages the next call offers the kernel: [`QUIET_WANT`] while calls return one
    /// message or none, all of them once a call fills what it offered. Each offered message costs
    /// its headers' set-up, paid before knowing whether a second datagram is even queued.
    want: usize,
}

impl RecvBatch {
    /// `messages` buffers of [`RECV_BUF_LEN`] (at most [`RECV_BATCH`]).
    pub fn new(messages: usize) -> Self {
        let n = messages.clamp(1, RECV_BATCH);
        RecvBatch {
            bufs: (0..n)
                .map(|_| vec![0u8; RECV_BUF_LEN].into_boxed_slice())
                .collect(),
            meta: [RecvMeta::EMPTY; RECV_BATCH],
            want: n,
        }
    }

    pub fn meta(&self, i: usize) -> &RecvMeta {
        &self.meta[i]
    }

    /// The received bytes of message `i`, writable so ESP can be opened in place.
    pub fn message_mut(&mut self, i: usize) -> (RecvMeta, &mut [u8]) {
        let meta = self.meta[i];
        (meta, &mut self.bufs[i][..meta.len])
    }

    pub fn message(&self, i: usize) -> (RecvMeta, &[u8]) {
        let meta = self.meta[i];
        (meta, &self.bufs[i][..meta.len])
    }
}

/// Splits a received message into its datagrams (GRO segments).
pub fn segments<'a>(meta: &RecvMeta, data: &'a mut [u8]) -> impl Iterator<Item = &'a mut [u8]> {
    let seg = if meta.segment_size == 0 {
        data.len().max(1)
    } else {
        meta.segment_size
    };
    data.chunks_mut(seg)
}

fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: fd is a live socket; the option value is a c_int on the stack whose size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A `sockaddr` for the kernel.
fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    #[allow(unsafe_code)]
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            #[allow(unsafe_code)]
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            #[allow(unsafe_code)]
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            #[allow(unsafe_code)]
            // SAFETY: the family says the storage holds a sockaddr_in; storage is aligned for it.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            #[allow(unsafe_code)]
            // SAFETY: the family says the storage holds a sockaddr_in6; storage is aligned for it.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl UdpSocket {
    /// Binds `addr`; blocking calls return `WouldBlock`/`TimedOut` after `timeout` so workers can see
    /// a stop flag. Asks for UDP_GRO and large buffers; neither is fatal when refused.
    pub fn bind(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let sock = std::net::UdpSocket::bind(addr)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let fd = sock.as_raw_fd();
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
            }
        }
        let gro = setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1).is_ok();
        Ok(UdpSocket {
            sock,
            gso: AtomicBool::new(true),
            gro,
            stats: UdpStats::default(),
            error_log: Mutex::new(RateLimit::new(Duration::from_secs(5))),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Whether sends still use UDP_SEGMENT (false after the kernel refused it once).
    pub fn gso_enabled(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// Turns GSO off (tests and kernels known not to support it).
    pub fn disable_gso(&self) {
        self.gso.store(false, Ordering::Relaxed);
    }

    /// One datagram (control plane). Errors other than `WouldBlock` are counted and logged.
    pub fn send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<()> {
        match self.sock.send_to(buf, dest) {
            Ok(_) => {
                self.stats.sent_datagrams.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => self.send_failed(e, 1),
        }
    }

    /// One datagram, blocking up to the socket timeout (control plane; no GRO splitting: a control
    /// socket on port 500 sees no GRO because IKE datagrams are sparse, but callers of the 4500 socket
    /// should use [`recv_batch`](Self::recv_batch)).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.recv_from(buf)
    }

    fn send_failed(&self, e: io::Error, datagrams: u64) -> io::Result<()> {
        if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        self.stats.send_errors.fetch_add(datagrams, Ordering::Relaxed);
        if let Ok(mut rl) = self.error_log.lock()
            && let Some(suppressed) = rl.check(clock::now())
        {
            tracing::warn!(error = %e, suppressed, "UDP send failed; datagrams dropped");
        }
        Ok(())
    }

    /// Sends every packet in `packets` to `dest` as its own datagram, batching equal-size runs into
    /// UDP GSO sends (≤ 64 segments, ≤ 65507 B; a shorter packet may only end a run). Returns the
    /// number of datagrams handed to the kernel; only `WouldBlock` is an error (the rest is counted).
    pub fn send_batch(&self, dest: SocketAddr, packets: &[IoSlice<'_>]) -> io::Result<usize> {
        let (addr, addr_len) = to_sockaddr(&dest);
        let mut sent = 0;
        let mut i = 0;
        while i < packets.len() {
            if !self.gso_enabled() {
                sent += self.send_mmsg(&addr, addr_len, &packets[i..])?;
                break;
            }
            let seg = packets[i].len();
            if seg == 0 {
                // A zero segment size would make the kernel refuse GSO for good; nothing to send.
                i += 1;
                continue;
            }
            let mut total = seg;
            let mut j = i + 1;
            while j < packets.len()
                && j - i < MAX_GSO_SEGMENTS
                && packets[j].len() <= seg
                && total + packets[j].len() <= MAX_UDP_PAYLOAD
            {
                total += packets[j].len();
                j += 1;
                if packets[j - 1].len() < seg {
                    break;
                }
            }
            let run = &packets[i..j];
            let segment = if run.len() > 1 { Some(seg as u16) } else { None };
            match self.send_msg(&addr, addr_len, run, segment) {
                Ok(()) => {
                    sent += run.len();
                    i = j;
                }
                // EIO: no checksum offload on the route (or xfrm): GSO can never work.
                Err(e) if segment.is_some() && e.raw_os_error() == Some(libc::EIO) => {
                    tracing::info!(error = %e, "kernel refused UDP GSO; sending datagrams one by one");
                    self.disable_gso();
                }
                // EINVAL: GSO unsupported, or a segment larger than the path allows. Resend the run
                // one by one: if that works, GSO was the problem and is turned off; if it fails too
                // (EMSGSIZE, counted), GSO stays on for the packets that fit.
                Err(e) if segment.is_some() && e.raw_os_error() == Some(libc::EINVAL) => {
                    let errors = self.stats.send_errors.load(Ordering::Relaxed);
                    sent += self.send_mmsg(&addr, addr_len, run)?;
                    if self.stats.send_errors.load(Ordering::Relaxed) == errors {
                        tracing::info!(error = %e, "kernel refused UDP GSO; sending datagrams one by one");
                        self.disable_gso();
                    }
                    i = j;
                }
                Err(e) => {
                    self.send_failed(e, run.len() as u64)?;
                    i = j;
                }
            }
        }
        self.stats
            .sent_datagrams
            .fetch_add(sent as u64, Ordering::Relaxed);
        Ok(sent)
    }

    /// One `sendmsg` of `run` (all iovecs), with a UDP_SEGMENT cmsg when `segment` is set.
    fn send_msg(
        &self,
        addr: &libc::sockaddr_storage,
        addr_len: libc::socklen_t,
        run: &[IoSlice<'_>],
        segment: Option<u16>,
    ) -> io::Result<()> {
        let mut cmsg = CmsgBuf([0; 64]);
        #[allow(unsafe_code)]
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (addr as *const libc::sockaddr_storage).cast_mut().cast();
        msg.msg_namelen = addr_len;
        // IoSlice is ABI-compatible with iovec on Unix (std guarantees it); the kernel only reads them.
        msg.msg_iov = run.as_ptr().cast_mut().cast();
        msg.msg_iovlen = run.len() as _;
        if let Some(size) = segment {
            msg.msg_control = cmsg.0.as_mut_ptr().cast();
            #[allow(unsafe_code)]
            // SAFETY: CMSG_SPACE is a pure computation.
            let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) };
            msg.msg_controllen = space as _;
            #[allow(unsafe_code)]
            // SAFETY: msg_control points at a 64-byte, 8-aligned buffer, larger than CMSG_SPACE(2)
            // (24), so CMSG_FIRSTHDR is non-null and the header and its u16 payload fit.
            unsafe {
                let hdr = libc::CMSG_FIRSTHDR(&msg);
                (*hdr).cmsg_level = libc::SOL_UDP;
                (*hdr).cmsg_type = UDP_SEGMENT;
                (*hdr).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<u16>(), size);
            }
        }
        self.stats.send_calls.fetch_add(1, Ordering::Relaxed);
        #[allow(unsafe_code)]
        // SAFETY: msg points at live buffers (address, iovecs, control) for the duration of the call.
        let rc = unsafe { libc::sendmsg(self.sock.as_raw_fd(), &msg, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Fallback without GSO: `sendmmsg`, one datagram per message, up to 64 per call.
    fn send_mmsg(
        &self,
        addr: &libc::sockaddr_storage,
        addr_len: libc::socklen_t,
        packets: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let mut sent = 0;
        for chunk in packets.chunks(MAX_GSO_SEGMENTS) {
            #[allow(unsafe_code)]
            // SAFETY: mmsghdr is plain old data; all-zero is valid.
            let mut msgs: [libc::mmsghdr; MAX_GSO_SEGMENTS] = unsafe { mem::zeroed() };
            for (m, p) in msgs.iter_mut().zip(chunk) {
                m.msg_hdr.msg_name = (addr as *const libc::sockaddr_storage).cast_mut().cast();
                m.msg_hdr.msg_namelen = addr_len;
                m.msg_hdr.msg_iov = (p as *const IoSlice<'_>).cast_mut().cast();
                m.msg_hdr.msg_iovlen = 1;
            }
            let mut off = 0;
            while off < chunk.len() {
                self.stats.send_calls.fetch_add(1, Ordering::Relaxed);
                #[allow(unsafe_code)]
                // SAFETY: msgs[off..chunk.len()] point at live address and iovec memory.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.sock.as_raw_fd(),
                        msgs[off..].as_mut_ptr(),
                        (chunk.len() - off) as libc::c_uint,
                        0,
                    )
                };
                if rc < 0 {
                    // Skip the failing datagram so one bad packet cannot wedge the batch.
                    self.send_failed(io::Error::last_os_error(), 1)?;
                    off += 1;
                } else {
                    off += rc as usize;
                    sent += rc as usize;
                }
            }
        }
        Ok(sent)
    }

    /// Receives up to `batch`'s capacity of messages (`recvmmsg` + `MSG_WAITFORONE`: blocks up to the
    /// timeout for the first, then takes what is queued). Returns how many messages were filled.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.recv_batch_flags(batch, libc::MSG_WAITFORONE)
    }

    /// Like [`recv_batch`](Self::recv_batch) but never blocks: `WouldBlock` when nothing is queued
    /// (the workers poll [`raw_fd`](Self::raw_fd) outside their lock, so that another thread may
    /// take a turn at receiving; see `dataplane::workers`).
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.recv_batch_flags(batch, libc::MSG_DONTWAIT)
    }

    /// The descriptor, for polling it together with others ([`crate::io::poll_any`]).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// Moves the socket to `addr` (the customer gateway's outside address changed) while every
    /// thread keeps its `Arc` of it: a socket bound to `addr` with the same options is made and
    /// `dup3` puts it behind this socket's descriptor number in one step, closing the old one. A
    /// call in progress finishes on the old socket (within its timeout); every later call, and
    /// every `poll` of [`raw_fd`](Self::raw_fd), uses the new one. No worker restarts and the
    /// packet path keeps its plain `sendmmsg`/GSO sends; binding the wildcard and choosing the
    /// source per datagram (IP_PKTINFO) would cost a control message on every send and take port
    /// 500/4500 on every address of the host.
    pub fn rebind(&self, addr: SocketAddr) -> io::Result<()> {
        let timeout = self.sock.read_timeout()?.unwrap_or(Duration::from_millis(100));
        let fresh = UdpSocket::bind(addr, timeout)?;
        #[allow(unsafe_code)]
        // SAFETY: both descriptors are open and owned by live sockets; dup3 only makes ours refer
        // to the fresh socket (closing the old one atomically) and `fresh` closes its own number
        // when dropped, leaving the socket open through ours.
        let rc = unsafe { libc::dup3(fresh.raw_fd(), self.raw_fd(), libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if fresh.gro != self.gro {
            tracing::debug!(gro = fresh.gro, "UDP_GRO differs on the rebound socket");
        }
        Ok(())
    }

    fn recv_batch_flags(&self, batch: &mut RecvBatch, flags: libc::c_int) -> io::Result<usize> {
        let n = batch.want.clamp(1, batch.bufs.len());
        // Only the `n` entries offered to the kernel are initialised: a quiet socket asks for a few
        // (see `RecvBatch::want`), so a lone datagram does not pay for clearing 8 KiB of headers.
        let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; RECV_BATCH];
        let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; RECV_BATCH];
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; RECV_BATCH];
        let mut cmsgs = [const { MaybeUninit::<CmsgBuf>::uninit() }; RECV_BATCH];
        for i in 0..n {
            let iov = iovs[i].write(libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr().cast(),
                iov_len: batch.bufs[i].len(),
            });
            #[allow(unsafe_code)]
            // SAFETY: plain old data; all-zero is valid.
            let (mut m, name): (libc::mmsghdr, _) = unsafe { (mem::zeroed(), names[i].write(mem::zeroed())) };
            let cmsg = cmsgs[i].write(CmsgBuf([0; 64]));
            m.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = cmsg.0.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = cmsg.0.len() as _;
            msgs[i].write(m);
        }
        self.stats.recv_calls.fetch_add(1, Ordering::Relaxed);
        #[allow(unsafe_code)]
        // SAFETY: msgs[..n] are initialised and point at initialised iovecs over live buffers, names
        // and control buffers that outlive the call; the kernel writes at most n entries.
        let rc = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr().cast::<libc::mmsghdr>(),
                n as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::TimedOut {
                io::Error::from(io::ErrorKind::WouldBlock)
            } else {
                e
            });
        }
        let got = rc as usize;
        // Filled every entry offered: a queue is building, offer them all next time. One or none:
        // quiet again.
        batch.want = if got == n {
            batch.bufs.len()
        } else if got <= 1 {
            QUIET_WANT
        } else {
            n
        };
        let mut datagrams = 0u64;
        for i in 0..got {
            #[allow(unsafe_code)]
            // SAFETY: i < got <= n, and msgs[..n] were initialised above (the kernel updated them).
            let msg = unsafe { msgs[i].assume_init_ref() };
            let h = &msg.msg_hdr;
            let len = (msg.msg_len as usize).min(batch.bufs[i].len());
            let mut segment_size = len;
            #[allow(unsafe_code)]
            // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk within it and
            // the UDP_GRO payload is a c_int.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                        let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                        if v > 0 {
                            segment_size = v as usize;
                        }
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
            #[allow(unsafe_code)]
            // SAFETY: i < n: zeroed above, then written by the kernel.
            let name = unsafe { names[i].assume_init_ref() };
            let source = from_sockaddr(name).unwrap_or(RecvMeta::EMPTY.source);
            datagrams += len.div_ceil(segment_size.max(1)) as u64;
            batch.meta[i] = RecvMeta {
                len,
                segment_size,
                source,
            };
        }
        self.stats
            .received_datagrams
            .fetch_add(datagrams, Ordering::Relaxed);
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let t = Duration::from_millis(500);
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), t).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), t).unwrap();
        (a, b)
    }

    /// A rebound socket keeps its descriptor (what the workers hold) and receives and sends on the
    /// new address; the old address is free again.
    #[test]
    fn rebind_moves_the_socket_behind_the_same_descriptor() {
        let (a, peer) = pair();
        let fd = a.raw_fd();
        let old = a.local_addr().unwrap();
        let new: SocketAddr = "127.0.0.2:0".parse().unwrap();
        a.rebind(new).unwrap();
        assert_eq!(a.raw_fd(), fd);
        let moved = a.local_addr().unwrap();
        assert_eq!(moved.ip(), new.ip());
        peer.send_to(b"to the new address", moved).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"to the new address"[..], peer.local_addr().unwrap())
        );
        a.send_to(b"from it", peer.local_addr().unwrap()).unwrap();
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"from it"[..], moved));
        UdpSocket::bind(old, Duration::from_millis(10)).expect("the old address is free");
    }

    /// Receives until `want` datagrams arrived; returns them in order.
    fn recv_all(sock: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
        let mut batch = RecvBatch::new(8);
        let mut out = Vec::new();
        while out.len() < want {
            let n = sock.recv_batch(&mut batch).expect("datagrams arrive");
            for i in 0..n {
                let (meta, data) = batch.message_mut(i);
                for seg in segments(&meta, data) {
                    out.push(seg.to_vec());
                }
            }
        }
        out
    }

    fn packets(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect()
    }

    #[test]
    fn gso_batch_arrives_as_separate_datagrams_in_order() {
        let (a, b) = pair();
        // Equal runs, a shorter one ending a run, then a longer one starting a new run; > 64 packets.
        let mut sizes = vec![1000; 70];
        sizes[10] = 400;
        sizes.push(1200);
        sizes.push(1);
        let pkts = packets(&sizes);
        let iov: Vec<IoSlice<'_>> = pkts.iter().map(|p| IoSlice::new(p)).collect();
        let dest = b.local_addr().unwrap();
        assert_eq!(a.send_batch(dest, &iov).unwrap(), pkts.len());
        let got = recv_all(&b, pkts.len());
        assert_eq!(got, pkts);
        // Loopback supports GSO: runs of 11 (ended by the 400 B one), 59, and 1200+1 -> 3 sendmsg calls.
        assert!(a.gso_enabled());
        assert_eq!(a.stats.send_calls.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn empty_packets_are_skipped_and_keep_gso_on() {
        let (a, b) = pair();
        let pkts = packets(&[0, 100, 100]);
        let iov: Vec<IoSlice<'_>> = pkts.iter().map(|p| IoSlice::new(p)).collect();
        assert_eq!(a.send_batch(b.local_addr().unwrap(), &iov).unwrap(), 2);
        assert_eq!(recv_all(&b, 2), pkts[1..].to_vec());
        assert!(a.gso_enabled());
    }

    #[test]
    fn fallback_without_gso_uses_sendmmsg() {
        let (a, b) = pair();
        a.disable_gso();
        let pkts = packets(&[300, 300, 200, 500]);
        let iov: Vec<IoSlice<'_>> = pkts.iter().map(|p| IoSlice::new(p)).collect();
        assert_eq!(a.send_batch(b.local_addr().unwrap(), &iov).unwrap(), 4);
        assert_eq!(recv_all(&b, 4), pkts);
        assert_eq!(a.stats.send_calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn receive_times_out_as_would_block_and_reports_source() {
        let (a, b) = pair();
        let mut batch = RecvBatch::new(2);
        let e = b.recv_batch(&mut batch).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        a.send_to(b"hello", b.local_addr().unwrap()).unwrap();
        assert_eq!(b.recv_batch(&mut batch).unwrap(), 1);
        let (meta, data) = batch.message(0);
        assert_eq!(data, b"hello");
        assert_eq!(meta.source, a.local_addr().unwrap());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Whatever the mix of sizes, every datagram arrives once, intact, in order (GSO runs are
        /// split correctly and GRO segments are cut back apart).
        #[test]
        fn any_batch_arrives_intact_and_in_order(
            sizes in proptest::collection::vec(1usize..1500, 1..150),
            gso in proptest::bool::ANY,
        ) {
            let (a, b) = pair();
            if !gso {
                a.disable_gso();
            }
            let pkts = packets(&sizes);
            let iov: Vec<IoSlice<'_>> = pkts.iter().map(|p| IoSlice::new(p)).collect();
            proptest::prop_assert_eq!(a.send_batch(b.local_addr().unwrap(), &iov).unwrap(), pkts.len());
            proptest::prop_assert_eq!(recv_all(&b, pkts.len()), pkts);
        }
    }

    /// IPv6 outside addresses: GSO runs, the sendmmsg fallback and GRO over UDP/IPv6 (::1).
    #[test]
    fn ipv6_batches_arrive_intact_with_and_without_gso() {
        let t = Duration::from_millis(500);
        let Ok(a) = UdpSocket::bind("[::1]:0".parse().unwrap(), t) else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let b = UdpSocket::bind("[::1]:0".parse().unwrap(), t).unwrap();
        let mut sizes = vec![1400; 40];
        sizes.push(300);
        for gso in [true, false] {
            if !gso {
                a.disable_gso();
            }
            let pkts = packets(&sizes);
            let iov: Vec<IoSlice<'_>> = pkts.iter().map(|p| IoSlice::new(p)).collect();
            assert_eq!(a.send_batch(b.local_addr().unwrap(), &iov).unwrap(), pkts.len());
            assert_eq!(recv_all(&b, pkts.len()), pkts);
        }
        a.send_to(b"v6", b.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2);
        assert_eq!(b.recv_batch(&mut batch).unwrap(), 1);
        assert_eq!(batch.meta(0).source, a.local_addr().unwrap());
    }

    #[test]
    fn sockaddr_round_trips() {
        for s in ["192.0.2.1:4500", "[2001:db8::1]:500"] {
            let addr: SocketAddr = s.parse().unwrap();
            let (st, _) = to_sockaddr(&addr);
            assert_eq!(from_sockaddr(&st), Some(addr));
        }
    }
}
