//! The IKE header (RFC 7296 §3.1) and a whole received [`Message`].
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;

use super::payload::{EncryptedRepr, PayloadRepr, parse_payloads};
use super::sk::Encrypted;
use super::{Error, ExchangeType, PayloadType, Reader};

/// Byte ranges of the header fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const SPI_I: Field = 0..8;
    pub const SPI_R: Field = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Field = 20..24;
    pub const LENGTH: Field = 24..28;
    /// Header length; the first payload starts here.
    pub const HEADER_LEN: usize = 28;
}

/// IKE version 2.0 as the one-octet MjVer|MnVer field.
const VERSION_2_0: u8 = 0x20;

/// Header flags (RFC 7296 §3.1). Only the three defined bits are kept: the others "MUST be ignored on
/// receipt".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// I: set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// V: the sender can speak a higher major version (never set by us).
    pub const VERSION: Flags = Flags(0x10);
    /// R: this message is a response.
    pub const RESPONSE: Flags = Flags(0x20);
    const KNOWN: u8 = 0x38;

    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Builds from the wire octet, dropping reserved bits.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & Self::KNOWN)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub fn initiator(self) -> bool {
        self.contains(Self::INITIATOR)
    }

    pub fn response(self) -> bool {
        self.contains(Self::RESPONSE)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.contains(Self::INITIATOR) {
            names.push("I");
        }
        if self.contains(Self::VERSION) {
            names.push("V");
        }
        if self.contains(Self::RESPONSE) {
            names.push("R");
        }
        write!(f, "Flags({})", names.join("|"))
    }
}

/// A zero-copy view of the IKE header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps without checking; accessors may panic on a short buffer. Use for emitting.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps after [`Header::check_len`]: no accessor panics afterwards.
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// The buffer holds at least a full header.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < field::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, range: field::Field) -> u32 {
        let b = &self.buffer.as_ref()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn u64_at(&self, range: field::Field) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buffer.as_ref()[range]);
        u64::from_be_bytes(b)
    }

    pub fn spi_i(&self) -> u64 {
        self.u64_at(field::SPI_I)
    }

    pub fn spi_r(&self) -> u64 {
        self.u64_at(field::SPI_R)
    }

    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.buffer.as_ref()[field::EXCHANGE_TYPE])
    }

    pub fn flags(&self) -> Flags {
        Flags::from_bits(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn message_id(&self) -> u32 {
        self.u32_at(field::MESSAGE_ID)
    }

    /// Total message length, header included.
    pub fn length(&self) -> u32 {
        self.u32_at(field::LENGTH)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    pub fn set_spi_i(&mut self, spi: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&spi.to_be_bytes());
    }

    pub fn set_spi_r(&mut self, spi: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&spi.to_be_bytes());
    }

    pub fn set_next_payload(&mut self, kind: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = kind.0;
    }

    /// Writes version 2.0, the only one we speak.
    pub fn set_version_2_0(&mut self) {
        self.buffer.as_mut()[field::VERSION] = VERSION_2_0;
    }

    pub fn set_exchange_type(&mut self, exchange: ExchangeType) {
        self.buffer.as_mut()[field::EXCHANGE_TYPE] = exchange.0;
    }

    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.bits();
    }

    pub fn set_message_id(&mut self, id: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&id.to_be_bytes());
    }

    pub fn set_length(&mut self, length: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&length.to_be_bytes());
    }
}

/// The header as a value. `length` is the total message length; emitters that build a whole message
/// ([`super::emit_message`], [`super::sk::emit_sk_message`]) compute it and `next_payload` themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    pub length: u32,
}

impl HeaderRepr {
    /// Parses a checked header. Rejects a major version other than 2 (the minor version is ignored, as
    /// RFC 7296 §2.5 says) and a Length smaller than the header itself.
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<HeaderRepr, Error> {
        header.check_len()?;
        if header.major_version() != 2 {
            return Err(Error::UnsupportedVersion(header.major_version()));
        }
        if (header.length() as usize) < field::HEADER_LEN {
            return Err(Error::BadLength);
        }
        Ok(HeaderRepr {
            spi_i: header.spi_i(),
            spi_r: header.spi_r(),
            next_payload: header.next_payload(),
            exchange: header.exchange_type(),
            flags: header.flags(),
            message_id: header.message_id(),
            length: header.length(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Appends the 28 header octets, version 2.0.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + field::HEADER_LEN, 0);
        let mut header = Header::new_unchecked(&mut out[start..]);
        header.set_spi_i(self.spi_i);
        header.set_spi_r(self.spi_r);
        header.set_next_payload(self.next_payload);
        header.set_version_2_0();
        header.set_exchange_type(self.exchange);
        header.set_flags(self.flags);
        header.set_message_id(self.message_id);
        header.set_length(self.length);
    }
}

/// A received datagram whose header checked out: version 2, Length equal to the datagram length.
/// (The non-ESP marker of port 4500 must already be stripped.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: HeaderRepr,
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn parse(datagram: &'a [u8]) -> Result<Message<'a>, Error> {
        let header = HeaderRepr::parse(&Header::new_checked(datagram)?)?;
        if header.length as usize != datagram.len() {
            return Err(if (header.length as usize) > datagram.len() {
                Error::Truncated
            } else {
                Error::BadLength
            });
        }
        Ok(Message {
            header,
            bytes: datagram,
        })
    }

    /// The whole datagram, header included (what AUTH signs as the "RealMessage").
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Everything after the header: the payload chain.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[field::HEADER_LEN..]
    }

    /// The payload chain as owned reprs. An SK or SKF payload comes back as the last element,
    /// [`PayloadRepr::Encrypted`], with its ciphertext.
    pub fn payloads(&self) -> Result<Vec<PayloadRepr>, Error> {
        parse_payloads(self.header.next_payload, self.body())
    }

    /// The SK or SKF payload (which must be the last payload), as a view into the datagram for
    /// in-place decryption; `None` when the message carries no encrypted payload.
    pub fn encrypted(&self) -> Result<Option<Encrypted<'a>>, Error> {
        let mut kind = self.header.next_payload;
        let mut reader = Reader::new(self.body());
        let mut count = 0;
        while kind != PayloadType::NONE {
            count += 1;
            if count > super::MAX_PAYLOADS {
                return Err(Error::TooMany);
            }
            let offset = field::HEADER_LEN + self.body().len() - reader.remaining();
            let next = PayloadType(reader.u8()?);
            let _critical = reader.u8()?;
            let length = usize::from(reader.u16()?);
            if length < 4 {
                return Err(Error::BadLength);
            }
            let _body = reader.take(length - 4)?;
            if kind == PayloadType::SK || kind == PayloadType::SKF {
                if !reader.is_empty() {
                    return Err(Error::Malformed("encrypted payload is not last"));
                }
                let payload = &self.bytes[offset..];
                let parsed = EncryptedRepr::parse_body(kind, next, &payload[4..])?;
                let header_len = 4 + parsed.fragment.map_or(0, |_| 4);
                return Ok(Some(Encrypted::new(
                    kind,
                    parsed.inner_first,
                    parsed.fragment,
                    &self.bytes[..offset + header_len],
                    &self.bytes[offset + header_len..],
                )));
            }
            kind = next;
        }
        if !reader.is_empty() {
            return Err(Error::BadLength);
        }
        Ok(None)
    }
}
