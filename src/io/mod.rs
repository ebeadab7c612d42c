//! The operating-system shell of the data plane: the TUN device, the UDP sockets and the clock.
//!
//! Everything here talks to the kernel; everything above it (ESP, IKE) is handed bytes and time. The
//! calls are batched because per-packet syscalls are the bottleneck on a userspace VPN (see
//! `shared/notes/dataplane-performance.md`): TUN offloads move 64 KiB per read/write, UDP GSO/GRO move up
//! to 64 datagrams per send/receive.

pub mod clock;
pub mod route;
pub mod tun;
pub mod udp;
