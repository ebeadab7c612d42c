//! NAT detection hashes (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP address | port).
//!
//! cgwd always encapsulates ESP in UDP (a userspace data plane needs UDP), so like strongSwan's
//! `encap=yes` it sends a *fake* source hash: the peer then believes we are behind a NAT and
//! encapsulates too.

use std::net::{IpAddr, SocketAddr};

/// The NAT_DETECTION_*_IP notification data for `addr`.
// Plain SHA-1 is needed here and crate::crypto only exposes HMAC-based functions; aws-lc-rs's digest is
// the provider's own library, so nothing new is pulled in. (Candidate to move into crate::crypto.)
pub fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 + 8 + 16 + 2);
    data.extend_from_slice(&spi_i.to_be_bytes());
    data.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(&addr.port().to_be_bytes());
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &data)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_input_and_is_sha1_sized() {
        let a: SocketAddr = "192.0.2.10:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.10:4500".parse().unwrap();
        let h = hash(1, 2, a);
        assert_eq!(h.len(), 20);
        assert_ne!(h, hash(1, 2, b));
        assert_ne!(h, hash(1, 3, a));
        assert_eq!(h, hash(1, 2, a));
    }

    /// RFC 7296 §2.23: the address is hashed in its own length, 16 octets for IPv6 (34 in all).
    #[test]
    fn ipv6_hash_covers_16_octets() {
        let a: SocketAddr = "[2001:db8:ffaa:1::21]:4500".parse().unwrap();
        let mut input = Vec::new();
        input.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        input.extend_from_slice(&0x1112_1314_1516_1718u64.to_be_bytes());
        input.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0xaa, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x21,
        ]);
        input.extend_from_slice(&[0x11, 0x94]);
        let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
        assert_eq!(
            hash(0x0102_0304_0506_0708, 0x1112_1314_1516_1718, a),
            want.as_ref()
        );
        // Not the IPv4-mapped form of anything: another address, another hash.
        let b: SocketAddr = "[2001:db8:ffaa:1::22]:4500".parse().unwrap();
        assert_ne!(hash(1, 2, a), hash(1, 2, b));
    }
}
