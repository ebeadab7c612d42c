//! IPv4 routes through rtnetlink (RTM_NEWROUTE / RTM_DELROUTE), so the daemon never runs `ip`.
//!
//! Hand-written rather than the `rtnetlink` crate: that crate is async (tokio) and the data plane is
//! plain threads; one request and its ACK are ~40 lines of byte layout.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const RTMSG_LEN: usize = 12;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

fn attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    msg.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(value);
    while !msg.len().is_multiple_of(4) {
        msg.push(0);
    }
}

/// Builds the request: nlmsghdr, rtmsg, RTA_DST, RTA_OIF.
fn request(kind: u16, flags: u16, dst: Ipv4Addr, prefix: u8, if_index: u32) -> Vec<u8> {
    let mut msg = vec![0u8; NLMSG_HDR];
    msg[4..6].copy_from_slice(&kind.to_ne_bytes());
    msg[6..8].copy_from_slice(&(flags | (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&[
        libc::AF_INET as u8,
        prefix,
        0,
        0,
        libc::RT_TABLE_MAIN,
        RTPROT_STATIC,
        RT_SCOPE_LINK,
        RTN_UNICAST,
    ]);
    msg.extend_from_slice(&0u32.to_ne_bytes());
    debug_assert_eq!(msg.len(), NLMSG_HDR + RTMSG_LEN);
    attr(&mut msg, RTA_DST, &dst.octets());
    attr(&mut msg, RTA_OIF, &if_index.to_ne_bytes());
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg
}

fn transact(msg: &[u8]) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: plain socket(2) call; the result is checked before it is wrapped.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[allow(unsafe_code)]
    // SAFETY: msg is a live buffer of msg.len() bytes; the kernel is the implicit destination.
    let rc = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    #[allow(unsafe_code)]
    // SAFETY: reply is a live, writable buffer of reply.len() bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let reply = &reply[..n as usize];
    // NLMSG_ERROR carries an int error (0 = ACK) right after the header.
    if reply.len() >= NLMSG_HDR + 4 && u16::from_ne_bytes([reply[4], reply[5]]) == libc::NLMSG_ERROR as u16 {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if code == 0 {
            return Ok(());
        }
        return Err(io::Error::from_raw_os_error(-code));
    }
    Err(io::Error::other("unexpected netlink reply"))
}

/// Adds (or replaces) `dst/prefix` via the interface `if_index`.
pub fn add_route(dst: Ipv4Addr, prefix: u8, if_index: u32) -> io::Result<()> {
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    transact(&request(libc::RTM_NEWROUTE, flags, dst, prefix, if_index))
}

/// Removes `dst/prefix` via the interface `if_index`.
pub fn remove_route(dst: Ipv4Addr, prefix: u8, if_index: u32) -> io::Result<()> {
    transact(&request(libc::RTM_DELROUTE, 0, dst, prefix, if_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = request(libc::RTM_NEWROUTE, 0, Ipv4Addr::new(10, 2, 0, 0), 24, 7);
        assert_eq!(m.len(), NLMSG_HDR + RTMSG_LEN + 8 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(m[NLMSG_HDR + 1], 24);
        assert_eq!(
            &m[NLMSG_HDR + RTMSG_LEN + 4..NLMSG_HDR + RTMSG_LEN + 8],
            &[10, 2, 0, 0]
        );
    }
}
