//! ESP packet header view (RFC 4303 §2).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Sequence Number                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   IV | encrypted payload, padding, pad length, next header | ICV
//! ```
//!
//! Only the two cleartext fields are parsed here; what follows depends on the SA's transform and is
//! the business of [`crate::esp`].

/// SPI + sequence number.
pub const HEADER_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("ESP packet shorter than its 8-octet header")]
    Truncated,
}

/// A read (and, over a mutable buffer, write) view of an ESP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps without checking; accessors may panic on a short buffer. Use [`Self::new_checked`] for
    /// anything from the network.
    pub const fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// Wraps after [`Self::check_len`]: no accessor panics afterwards.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn spi(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn seq(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// Everything after the header: IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    pub fn set_spi(&mut self, spi: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&spi.to_be_bytes());
    }

    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The cleartext header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspRepr {
    pub spi: u32,
    pub seq: u32,
}

impl EspRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &EspPacket<T>) -> Result<Self, Error> {
        packet.check_len()?;
        Ok(EspRepr {
            spi: packet.spi(),
            seq: packet.seq(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut EspPacket<T>) {
        packet.set_spi(self.spi);
        packet.set_seq(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // SPI 0x0000a5f8, sequence number 0x0000000a (draft-mcgrew-gcm-test-01 §4, the AES-128 ESP case),
    // then the first octets of its IV.
    static PACKET_BYTES: [u8; 12] = [
        0x00, 0x00, 0xa5, 0xf8, 0x00, 0x00, 0x00, 0x0a, 0xfa, 0xce, 0xdb, 0xad,
    ];

    #[test]
    fn deconstruct() {
        let packet = EspPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.spi(), 0xa5f8);
        assert_eq!(packet.seq(), 10);
        assert_eq!(packet.payload(), &[0xfa, 0xce, 0xdb, 0xad]);
        assert_eq!(EspRepr::parse(&packet).unwrap(), EspRepr { spi: 0xa5f8, seq: 10 });
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 12];
        let mut packet = EspPacket::new_unchecked(&mut bytes[..]);
        EspRepr { spi: 0xa5f8, seq: 10 }.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&[0xfa, 0xce, 0xdb, 0xad]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EspPacket::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        let header_only = EspPacket::new_checked(&PACKET_BYTES[..HEADER_LEN]).unwrap();
        assert!(header_only.payload().is_empty());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match EspPacket::new_checked(&bytes[..]) {
                Err(Error::Truncated) => prop_assert!(bytes.len() < HEADER_LEN),
                Ok(packet) => {
                    let repr = EspRepr::parse(&packet).unwrap();
                    let mut out = bytes.clone();
                    out[..HEADER_LEN].fill(0);
                    repr.emit(&mut EspPacket::new_unchecked(&mut out[..]));
                    prop_assert_eq!(out, bytes.clone());
                    prop_assert_eq!(packet.payload().len(), bytes.len() - HEADER_LEN);
                }
            }
        }
    }
}
