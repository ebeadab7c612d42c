//! The generic payload header, the payload chain, and the small payloads (RFC 7296 §3.2–§3.12).
//!
//! ```text
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +---------------+---------------+---------------+---------------+
//! ```

use std::net::IpAddr;

use super::sa::SaRepr;
use super::sk::Fragment;
use super::ts::TsRepr;
use super::{
    AuthMethod, CertEncoding, Error, HeaderRepr, IdType, MAX_DELETE_SPIS, MAX_PAYLOADS,
    MAX_TRAFFIC_SELECTORS, NotifyType, PayloadType, ProtocolId, Reader, len16,
};

/// Byte ranges of the generic payload header.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const NEXT_PAYLOAD: usize = 0;
    pub const FLAGS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const HEADER_LEN: usize = 4;
}

const CRITICAL: u8 = 0x80;

/// A zero-copy view of one payload: generic header plus body.
#[derive(Debug, Clone, Copy)]
pub struct GenericPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenericPayload<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GenericPayload { buffer }
    }

    /// Checks that the buffer holds the header and the whole payload its length announces (it may hold
    /// more: the following payloads).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let payload = Self::new_unchecked(buffer);
        payload.check_len()?;
        Ok(payload)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let declared = usize::from(self.payload_length());
        if declared < field::HEADER_LEN || declared > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & CRITICAL != 0
    }

    /// Payload length, generic header included.
    pub fn payload_length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> GenericPayload<&'a T> {
    /// The body, borrowed for as long as the buffer (not the view).
    pub fn body(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..usize::from(self.payload_length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericPayload<T> {
    pub fn set_next_payload(&mut self, kind: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = kind.0;
    }

    /// Sets the critical bit and clears the reserved bits.
    pub fn set_critical(&mut self, critical: bool) {
        self.buffer.as_mut()[field::FLAGS] = if critical { CRITICAL } else { 0 };
    }

    pub fn set_payload_length(&mut self, length: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&length.to_be_bytes());
    }
}

/// Identification payload body (RFC 7296 §3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdRepr {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl IdRepr {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR: what AWS uses (the tunnel's outside address).
    pub fn from_ip(addr: IpAddr) -> IdRepr {
        match addr {
            IpAddr::V4(a) => IdRepr {
                id_type: IdType::ID_IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => IdRepr {
                id_type: IdType::ID_IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }

    /// ID_FQDN.
    pub fn fqdn(name: &str) -> IdRepr {
        IdRepr {
            id_type: IdType::ID_FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// The address of an IP identity, when its length fits its type.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::ID_IPV4_ADDR => <[u8; 4]>::try_from(self.data.as_slice()).ok().map(IpAddr::from),
            IdType::ID_IPV6_ADDR => <[u8; 16]>::try_from(self.data.as_slice()).ok().map(IpAddr::from),
            _ => None,
        }
    }

    /// The "RestOfIDPayload" (ID Type | 3 reserved | data) that the AUTH computation MACs
    /// (RFC 7296 §2.15): the payload body.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_len());
        self.emit_body(&mut out);
        out
    }

    fn parse_body(body: &[u8]) -> Result<IdRepr, Error> {
        let mut r = Reader::new(body);
        let id_type = IdType(r.u8()?);
        r.take(3)?;
        let data = r.rest();
        if data.is_empty() {
            return Err(Error::Malformed("empty identification data"));
        }
        Ok(IdRepr {
            id_type,
            data: data.to_vec(),
        })
    }

    fn body_len(&self) -> usize {
        4 + self.data.len()
    }

    fn emit_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
    }
}

/// Notify payload body (RFC 7296 §3.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyRepr {
    /// `NONE` when the notify is not about an SA (then `spi` is empty).
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyRepr {
    /// A notify about no particular SA.
    pub fn new(kind: NotifyType, data: Vec<u8>) -> NotifyRepr {
        NotifyRepr {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            kind,
            data,
        }
    }

    fn parse_body(body: &[u8]) -> Result<NotifyRepr, Error> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let kind = NotifyType(r.u16()?);
        let spi = r.take(spi_size).map_err(|_| Error::BadLength)?;
        Ok(NotifyRepr {
            protocol,
            spi: spi.to_vec(),
            kind,
            data: r.rest().to_vec(),
        })
    }

    fn body_len(&self) -> usize {
        4 + self.spi.len() + self.data.len()
    }

    fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| Error::TooLong)?;
        out.push(self.protocol.0);
        out.push(spi_size);
        out.extend_from_slice(&self.kind.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Delete payload body (RFC 7296 §3.11). The SPI size is implied by the protocol: 0 for IKE (the SA is
/// the one in the header, so `spis` is empty), 4 for ESP and AH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeleteRepr {
    pub protocol: ProtocolId,
    pub spis: Vec<u32>,
}

impl DeleteRepr {
    /// Deletes the IKE SA this message belongs to.
    pub fn ike() -> DeleteRepr {
        DeleteRepr {
            protocol: ProtocolId::IKE,
            spis: Vec::new(),
        }
    }

    fn spi_size(&self) -> u8 {
        if self.protocol == ProtocolId::IKE { 0 } else { 4 }
    }

    fn parse_body(body: &[u8]) -> Result<DeleteRepr, Error> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8()?);
        let spi_size = r.u8()?;
        let count = usize::from(r.u16()?);
        if protocol == ProtocolId::IKE {
            if spi_size != 0 || count != 0 || !r.is_empty() {
                return Err(Error::Malformed("IKE delete carries SPIs"));
            }
            return Ok(DeleteRepr::ike());
        }
        if spi_size != 4 {
            return Err(Error::Malformed("delete SPI size is not 4"));
        }
        if count > MAX_DELETE_SPIS {
            return Err(Error::TooMany);
        }
        if r.remaining() != count * 4 {
            return Err(Error::BadLength);
        }
        let mut spis = Vec::with_capacity(count);
        for _ in 0..count {
            spis.push(r.u32()?);
        }
        Ok(DeleteRepr { protocol, spis })
    }

    fn body_len(&self) -> usize {
        4 + usize::from(self.spi_size()) * self.spis.len()
    }

    fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let count = if self.spi_size() == 0 {
            0
        } else {
            len16(self.spis.len())?
        };
        out.push(self.protocol.0);
        out.push(self.spi_size());
        out.extend_from_slice(&count.to_be_bytes());
        if count > 0 {
            for spi in &self.spis {
                out.extend_from_slice(&spi.to_be_bytes());
            }
        }
        Ok(())
    }
}

/// An SK (RFC 7296 §3.14) or SKF (RFC 7383 §2.5) payload as received: still encrypted. It is always
/// the last payload; its Next Payload field names the first *inner* payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedRepr {
    /// First payload inside (zero in SKF fragments other than the first).
    pub inner_first: PayloadType,
    /// `Some` for SKF.
    pub fragment: Option<Fragment>,
    /// IV | ciphertext | ICV.
    pub data: Vec<u8>,
}

pub(crate) struct ParsedEncrypted {
    pub(crate) inner_first: PayloadType,
    pub(crate) fragment: Option<Fragment>,
    pub(crate) data_offset: usize,
}

impl EncryptedRepr {
    /// Validates the body of an SK or SKF payload; returns where IV|ciphertext|ICV starts.
    pub(crate) fn parse_body(
        kind: PayloadType,
        inner_first: PayloadType,
        body: &[u8],
    ) -> Result<ParsedEncrypted, Error> {
        if kind == PayloadType::SKF {
            let mut r = Reader::new(body);
            let number = r.u16()?;
            let total = r.u16()?;
            let fragment = Fragment::new(number, total)?;
            if number != 1 && inner_first != PayloadType::NONE {
                return Err(Error::Malformed("next payload set in a non-first fragment"));
            }
            Ok(ParsedEncrypted {
                inner_first,
                fragment: Some(fragment),
                data_offset: 4,
            })
        } else {
            Ok(ParsedEncrypted {
                inner_first,
                fragment: None,
                data_offset: 0,
            })
        }
    }

    pub fn kind(&self) -> PayloadType {
        if self.fragment.is_some() {
            PayloadType::SKF
        } else {
            PayloadType::SK
        }
    }

    fn body_len(&self) -> usize {
        self.fragment.map_or(0, |_| 4) + self.data.len()
    }

    fn emit_body(&self, out: &mut Vec<u8>) {
        if let Some(fragment) = self.fragment {
            out.extend_from_slice(&fragment.number().to_be_bytes());
            out.extend_from_slice(&fragment.total().to_be_bytes());
        }
        out.extend_from_slice(&self.data);
    }
}

/// One payload, owned. Variants cover what an AWS tunnel exchanges; anything else is `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PayloadRepr {
    Sa(SaRepr),
    /// Key Exchange (§3.4): DH group number and public value.
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI(IdRepr),
    IdR(IdRepr),
    /// Certificate (§3.6).
    Cert {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    /// Certificate Request (§3.7): for X.509 a list of SHA-1 hashes of CA public keys.
    CertReq {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    /// Authentication (§3.8).
    Auth {
        method: AuthMethod,
        data: Vec<u8>,
    },
    /// Ni or Nr (§3.9), 16..=256 octets.
    Nonce(Vec<u8>),
    Notify(NotifyRepr),
    Delete(DeleteRepr),
    /// Vendor ID (§3.12): opaque.
    VendorId(Vec<u8>),
    TsI(Vec<TsRepr>),
    TsR(Vec<TsRepr>),
    /// SK or SKF, always last.
    Encrypted(EncryptedRepr),
    /// A payload this codec does not model (CP, EAP, or an unknown non-critical type): kept so the
    /// message round-trips; the IKE layer ignores it. Parsing never yields a modelled type (or NONE)
    /// here; building one with such a `kind` emits bytes that parse back as that type instead.
    Unknown {
        kind: PayloadType,
        critical: bool,
        body: Vec<u8>,
    },
}

/// RFC 7296 §3.9.
const NONCE_MIN: usize = 16;
const NONCE_MAX: usize = 256;

impl PayloadRepr {
    /// The payload's type number.
    pub fn kind(&self) -> PayloadType {
        match self {
            PayloadRepr::Sa(_) => PayloadType::SA,
            PayloadRepr::Ke { .. } => PayloadType::KE,
            PayloadRepr::IdI(_) => PayloadType::IDI,
            PayloadRepr::IdR(_) => PayloadType::IDR,
            PayloadRepr::Cert { .. } => PayloadType::CERT,
            PayloadRepr::CertReq { .. } => PayloadType::CERTREQ,
            PayloadRepr::Auth { .. } => PayloadType::AUTH,
            PayloadRepr::Nonce(_) => PayloadType::NONCE,
            PayloadRepr::Notify(_) => PayloadType::NOTIFY,
            PayloadRepr::Delete(_) => PayloadType::DELETE,
            PayloadRepr::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadRepr::TsI(_) => PayloadType::TSI,
            PayloadRepr::TsR(_) => PayloadType::TSR,
            PayloadRepr::Encrypted(e) => e.kind(),
            PayloadRepr::Unknown { kind, .. } => *kind,
        }
    }

    /// Parses one payload body of type `kind`. `next` is the header's Next Payload (only SK/SKF use it).
    pub fn parse(
        kind: PayloadType,
        next: PayloadType,
        critical: bool,
        body: &[u8],
    ) -> Result<PayloadRepr, Error> {
        let mut r = Reader::new(body);
        let repr = match kind {
            PayloadType::SA => PayloadRepr::Sa(SaRepr::parse(body)?),
            PayloadType::KE => {
                let group = r.u16()?;
                r.take(2)?;
                let data = r.rest();
                if data.is_empty() {
                    return Err(Error::Malformed("empty key exchange data"));
                }
                PayloadRepr::Ke {
                    group,
                    data: data.to_vec(),
                }
            }
            PayloadType::IDI => PayloadRepr::IdI(IdRepr::parse_body(body)?),
            PayloadType::IDR => PayloadRepr::IdR(IdRepr::parse_body(body)?),
            PayloadType::CERT | PayloadType::CERTREQ => {
                let encoding = CertEncoding(r.u8()?);
                let data = r.rest().to_vec();
                if kind == PayloadType::CERT {
                    PayloadRepr::Cert { encoding, data }
                } else {
                    PayloadRepr::CertReq { encoding, data }
                }
            }
            PayloadType::AUTH => {
                let method = AuthMethod(r.u8()?);
                r.take(3)?;
                let data = r.rest();
                if data.is_empty() {
                    return Err(Error::Malformed("empty authentication data"));
                }
                PayloadRepr::Auth {
                    method,
                    data: data.to_vec(),
                }
            }
            PayloadType::NONCE => {
                if !(NONCE_MIN..=NONCE_MAX).contains(&body.len()) {
                    return Err(Error::Malformed("nonce not 16..=256 octets"));
                }
                PayloadRepr::Nonce(body.to_vec())
            }
            PayloadType::NOTIFY => PayloadRepr::Notify(NotifyRepr::parse_body(body)?),
            PayloadType::DELETE => PayloadRepr::Delete(DeleteRepr::parse_body(body)?),
            PayloadType::VENDOR_ID => PayloadRepr::VendorId(body.to_vec()),
            PayloadType::TSI => PayloadRepr::TsI(parse_ts_body(body)?),
            PayloadType::TSR => PayloadRepr::TsR(parse_ts_body(body)?),
            PayloadType::SK | PayloadType::SKF => {
                let parsed = EncryptedRepr::parse_body(kind, next, body)?;
                PayloadRepr::Encrypted(EncryptedRepr {
                    inner_first: parsed.inner_first,
                    fragment: parsed.fragment,
                    data: body[parsed.data_offset..].to_vec(),
                })
            }
            _ => {
                if critical && !kind.is_defined() {
                    return Err(Error::UnsupportedCritical(kind));
                }
                PayloadRepr::Unknown {
                    kind,
                    critical,
                    body: body.to_vec(),
                }
            }
        };
        Ok(repr)
    }

    /// Body length, generic header excluded.
    pub fn body_len(&self) -> usize {
        match self {
            PayloadRepr::Sa(sa) => sa.buffer_len(),
            PayloadRepr::Ke { data, .. } => 4 + data.len(),
            PayloadRepr::IdI(id) | PayloadRepr::IdR(id) => id.body_len(),
            PayloadRepr::Cert { data, .. } | PayloadRepr::CertReq { data, .. } => 1 + data.len(),
            PayloadRepr::Auth { data, .. } => 4 + data.len(),
            PayloadRepr::Nonce(data) | PayloadRepr::VendorId(data) => data.len(),
            PayloadRepr::Notify(n) => n.body_len(),
            PayloadRepr::Delete(d) => d.body_len(),
            PayloadRepr::TsI(ts) | PayloadRepr::TsR(ts) => {
                4 + ts.iter().map(TsRepr::buffer_len).sum::<usize>()
            }
            PayloadRepr::Encrypted(e) => e.body_len(),
            PayloadRepr::Unknown { body, .. } => body.len(),
        }
    }

    /// Whole payload length, generic header included.
    pub fn buffer_len(&self) -> usize {
        field::HEADER_LEN + self.body_len()
    }

    /// Appends the body (no generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            PayloadRepr::Sa(sa) => sa.emit(out)?,
            PayloadRepr::Ke { group, data } => {
                out.extend_from_slice(&group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(data);
            }
            PayloadRepr::IdI(id) | PayloadRepr::IdR(id) => id.emit_body(out),
            PayloadRepr::Cert { encoding, data } | PayloadRepr::CertReq { encoding, data } => {
                out.push(encoding.0);
                out.extend_from_slice(data);
            }
            PayloadRepr::Auth { method, data } => {
                out.extend_from_slice(&[method.0, 0, 0, 0]);
                out.extend_from_slice(data);
            }
            PayloadRepr::Nonce(data) | PayloadRepr::VendorId(data) => out.extend_from_slice(data),
            PayloadRepr::Notify(n) => n.emit_body(out)?,
            PayloadRepr::Delete(d) => d.emit_body(out)?,
            PayloadRepr::TsI(ts) | PayloadRepr::TsR(ts) => emit_ts_body(ts, out)?,
            PayloadRepr::Encrypted(e) => e.emit_body(out),
            PayloadRepr::Unknown { body, .. } => out.extend_from_slice(body),
        }
        Ok(())
    }

    /// Appends the whole payload with `next` as its Next Payload field.
    pub fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let result = self.emit_inner(next, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn emit_inner(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.resize(start + field::HEADER_LEN, 0);
        self.emit_body(out)?;
        let length = len16(out.len() - start)?;
        let mut header = GenericPayload::new_unchecked(&mut out[start..]);
        header.set_next_payload(next);
        header.set_critical(matches!(self, PayloadRepr::Unknown { critical: true, .. }));
        header.set_payload_length(length);
        Ok(())
    }
}

fn parse_ts_body(body: &[u8]) -> Result<Vec<TsRepr>, Error> {
    let mut r = Reader::new(body);
    let count = usize::from(r.u8()?);
    r.take(3)?;
    if count == 0 {
        return Err(Error::Malformed("no traffic selectors"));
    }
    if count > MAX_TRAFFIC_SELECTORS {
        return Err(Error::TooMany);
    }
    let mut selectors = Vec::with_capacity(count);
    for _ in 0..count {
        selectors.push(TsRepr::parse(&mut r)?);
    }
    if !r.is_empty() {
        return Err(Error::BadLength);
    }
    Ok(selectors)
}

fn emit_ts_body(selectors: &[TsRepr], out: &mut Vec<u8>) -> Result<(), Error> {
    let count = u8::try_from(selectors.len()).map_err(|_| Error::TooLong)?;
    out.extend_from_slice(&[count, 0, 0, 0]);
    for ts in selectors {
        ts.emit(out);
    }
    Ok(())
}

/// Parses a payload chain starting with type `first` that must fill `bytes` exactly. An SK/SKF payload
/// ends the chain (its Next Payload names the first inner payload) and must be the last bytes.
pub fn parse_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<PayloadRepr>, Error> {
    let mut payloads = Vec::new();
    let mut kind = first;
    let mut r = Reader::new(bytes);
    while kind != PayloadType::NONE {
        if payloads.len() == MAX_PAYLOADS {
            return Err(Error::TooMany);
        }
        let next = PayloadType(r.u8()?);
        let critical = r.u8()? & CRITICAL != 0;
        let length = usize::from(r.u16()?);
        if length < field::HEADER_LEN {
            return Err(Error::BadLength);
        }
        let body = r.take(length - field::HEADER_LEN).map_err(|_| Error::BadLength)?;
        let payload = PayloadRepr::parse(kind, next, critical, body)?;
        let encrypted = matches!(payload, PayloadRepr::Encrypted(_));
        payloads.push(payload);
        if encrypted {
            if !r.is_empty() {
                return Err(Error::Malformed("encrypted payload is not last"));
            }
            return Ok(payloads);
        }
        kind = next;
    }
    if !r.is_empty() {
        return Err(Error::BadLength);
    }
    Ok(payloads)
}

/// Parses the decrypted content of an SK payload (or reassembled SKF fragments): like
/// [`parse_payloads`], but an encrypted payload nested inside the encrypted payload is malformed.
pub fn parse_inner_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<PayloadRepr>, Error> {
    let payloads = parse_payloads(first, bytes)?;
    if payloads.iter().any(|p| matches!(p, PayloadRepr::Encrypted(_))) {
        return Err(Error::Malformed("encrypted payload inside an encrypted payload"));
    }
    Ok(payloads)
}

/// Appends a payload chain, linking each Next Payload field; returns the first payload's type (for the
/// header, or for the SK payload's Next Payload). An [`PayloadRepr::Encrypted`] must be last.
pub fn emit_payloads(payloads: &[PayloadRepr], out: &mut Vec<u8>) -> Result<PayloadType, Error> {
    if payloads.len() > MAX_PAYLOADS {
        return Err(Error::TooMany);
    }
    let start = out.len();
    for (i, payload) in payloads.iter().enumerate() {
        let next = match (payload, payloads.get(i + 1)) {
            (PayloadRepr::Encrypted(e), None) => e.inner_first,
            (PayloadRepr::Encrypted(_), Some(_)) => {
                out.truncate(start);
                return Err(Error::Malformed("encrypted payload is not last"));
            }
            (_, Some(following)) => following.kind(),
            (_, None) => PayloadType::NONE,
        };
        if let Err(e) = payload.emit(next, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(payloads.first().map_or(PayloadType::NONE, PayloadRepr::kind))
}

/// Appends a whole plaintext message: `header` with Next Payload and Length computed, then the chain.
pub fn emit_message(header: &HeaderRepr, payloads: &[PayloadRepr], out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    header.emit(out);
    let first = match emit_payloads(payloads, out) {
        Ok(first) => first,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let length = u32::try_from(out.len() - start).map_err(|_| Error::TooLong)?;
    let mut view = super::Header::new_unchecked(&mut out[start..]);
    view.set_next_payload(first);
    view.set_length(length);
    Ok(())
}
