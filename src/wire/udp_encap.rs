//! What arrives on UDP port 4500 (RFC 3948 §2): NAT keepalives, IKE behind a non-ESP marker, or ESP.
//!
//! ```text
//! keepalive: | 0xFF |                                   (RFC 3948 §2.3)
//! IKE:       | 0x00000000 (non-ESP marker) | IKE msg |  (RFC 3948 §2.2)
//! ESP:       | SPI (never 0) | seq | ...               (RFC 3948 §2.1)
//! ```

/// The 4 zero octets that put IKE on the ESP port: an SPI of 0 is reserved (RFC 4303 §2.1), so no
/// ESP packet starts with them.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The single-octet NAT-keepalive payload.
pub const KEEPALIVE: [u8; 1] = [0xff];

/// One classified UDP/4500 payload, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncapPayload<'a> {
    /// NAT keepalive: nothing to do but (optionally) note the peer is alive.
    Keepalive,
    /// An IKE message: the bytes after the non-ESP marker.
    Ike(&'a [u8]),
    /// An ESP packet (the whole datagram, at least an ESP header long).
    Esp(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("empty UDP payload")]
    Empty,
    #[error("UDP payload too short for an ESP header or an IKE message")]
    Truncated,
}

/// Classifies a UDP/4500 payload. Never panics.
pub fn classify(payload: &[u8]) -> Result<UdpEncapPayload<'_>, Error> {
    match payload {
        [] => Err(Error::Empty),
        [0xff] => Ok(UdpEncapPayload::Keepalive),
        [0, 0, 0, 0, ike @ ..] if !ike.is_empty() => Ok(UdpEncapPayload::Ike(ike)),
        _ if payload.len() >= crate::wire::esp::HEADER_LEN && payload[..4] != NON_ESP_MARKER => {
            Ok(UdpEncapPayload::Esp(payload))
        }
        _ => Err(Error::Truncated),
    }
}

/// Writes the non-ESP marker in front of an IKE message already placed at `buf[4..4 + ike_len]`,
/// returning the datagram length.
pub fn emit_ike(buf: &mut [u8], ike_len: usize) -> Result<usize, Error> {
    let total = ike_len
        .checked_add(NON_ESP_MARKER.len())
        .ok_or(Error::Truncated)?;
    if ike_len == 0 || buf.len() < total {
        return Err(Error::Truncated);
    }
    buf[..NON_ESP_MARKER.len()].copy_from_slice(&NON_ESP_MARKER);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deconstruct() {
        assert_eq!(classify(&[0xff]), Ok(UdpEncapPayload::Keepalive));
        // RFC 3948 §2.2: marker then the IKE header (SPIi starts here).
        let ike = [0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
        assert_eq!(classify(&ike), Ok(UdpEncapPayload::Ike(&ike[4..])));
        let esp = [0, 0, 0xa5, 0xf8, 0, 0, 0, 0x0a];
        assert_eq!(classify(&esp), Ok(UdpEncapPayload::Esp(&esp[..])));
    }

    #[test]
    fn construct() {
        let mut buf = [0xaau8; 8];
        buf[4..].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(emit_ike(&mut buf, 4), Ok(8));
        assert_eq!(buf, [0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(emit_ike(&mut buf, 5), Err(Error::Truncated));
        assert_eq!(emit_ike(&mut buf, 0), Err(Error::Truncated));
        assert_eq!(emit_ike(&mut buf, usize::MAX), Err(Error::Truncated));
    }

    #[test]
    fn check_len() {
        assert_eq!(classify(&[]), Err(Error::Empty));
        assert_eq!(classify(&[0xfe]), Err(Error::Truncated));
        assert_eq!(classify(&[0, 0, 0, 0]), Err(Error::Truncated));
        assert_eq!(classify(&[1, 2, 3, 4, 5, 6, 7]), Err(Error::Truncated));
        assert_eq!(classify(&[0xff, 0xff]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn classification_is_total_and_consistent(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            match classify(&bytes) {
                Ok(UdpEncapPayload::Keepalive) => prop_assert_eq!(&bytes[..], &[0xff][..]),
                Ok(UdpEncapPayload::Ike(ike)) => {
                    prop_assert_eq!(&bytes[..4], &NON_ESP_MARKER[..]);
                    prop_assert_eq!(ike, &bytes[4..]);
                    prop_assert!(!ike.is_empty());
                }
                Ok(UdpEncapPayload::Esp(esp)) => {
                    prop_assert!(esp.len() >= 8);
                    prop_assert_ne!(&esp[..4], &NON_ESP_MARKER[..]);
                }
                Err(_) => prop_assert!(bytes.len() < 8),
            }
        }
    }
}
