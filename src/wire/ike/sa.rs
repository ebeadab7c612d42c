//! Security Association payload (RFC 7296 §3.3): proposals, transforms, attributes.
//!
//! ```text
//! Proposal substructure:
//! | Last Substruc |   RESERVED    |         Proposal Length       |
//! | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//! ~                        SPI (variable)                         ~
//! ~                        <Transforms>                           ~
//!
//! Transform substructure:
//! | Last Substruc |   RESERVED    |        Transform Length       |
//! |Transform Type |   RESERVED    |          Transform ID         |
//! ~                      Transform Attributes                     ~
//!
//! Attribute:
//! |A|       Attribute Type        |    AF=0  Attribute Length     |
//! |                               |    AF=1  Attribute Value      |
//! ~                   AF=0  Attribute Value (TLV only)            ~
//! ```

use super::{
    ATTRIBUTE_KEY_LENGTH, Error, MAX_ATTRIBUTES, MAX_PROPOSALS, MAX_TRANSFORMS, ProtocolId, Reader,
    TransformType, len16,
};

/// "Last Substruc" values (RFC 7296 §3.3.1, §3.3.2).
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: set for TV (2-octet value inline).
const AF_TV: u16 = 0x8000;

/// A transform attribute other than Key Length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// Type/Value format (AF = 1); `kind` is 15 bits.
    Tv { kind: u16, value: u16 },
    /// Type/Length/Value format (AF = 0); `kind` is 15 bits.
    Tlv { kind: u16, value: Vec<u8> },
}

impl Attribute {
    fn buffer_len(&self) -> usize {
        match self {
            Attribute::Tv { .. } => 4,
            Attribute::Tlv { value, .. } => 4 + value.len(),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Attribute::Tv { kind, value } => {
                out.extend_from_slice(&(AF_TV | (kind & !AF_TV)).to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            Attribute::Tlv { kind, value } => {
                out.extend_from_slice(&(kind & !AF_TV).to_be_bytes());
                out.extend_from_slice(&len16(value.len())?.to_be_bytes());
                out.extend_from_slice(value);
            }
        }
        Ok(())
    }
}

/// One transform: type, ID and (for ENCR AES) the key length in bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformRepr {
    pub kind: TransformType,
    pub id: u16,
    /// Key Length attribute (type 14, TV format), in bits.
    pub key_length: Option<u16>,
    /// Any other attribute, kept so the message round-trips. RFC 7296 §3.3.6: a transform with an
    /// attribute we do not understand must not be selected.
    pub other_attributes: Vec<Attribute>,
}

impl TransformRepr {
    /// A transform without attributes.
    pub fn new(kind: TransformType, id: u16) -> TransformRepr {
        TransformRepr {
            kind,
            id,
            key_length: None,
            other_attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (bits).
    pub fn with_key_length(kind: TransformType, id: u16, bits: u16) -> TransformRepr {
        TransformRepr {
            key_length: Some(bits),
            ..TransformRepr::new(kind, id)
        }
    }

    /// Parses one transform substructure; returns it and whether more follow.
    fn parse(r: &mut Reader<'_>) -> Result<(TransformRepr, bool), Error> {
        let last = r.u8()?;
        r.u8()?;
        let length = usize::from(r.u16()?);
        if length < 8 {
            return Err(Error::BadLength);
        }
        let mut body = Reader::new(r.take(length - 4).map_err(|_| Error::BadLength)?);
        let kind = TransformType(body.u8()?);
        body.u8()?;
        let id = body.u16()?;
        let mut key_length = None;
        let mut other_attributes = Vec::new();
        let mut count = 0;
        while !body.is_empty() {
            count += 1;
            if count > MAX_ATTRIBUTES {
                return Err(Error::TooMany);
            }
            let type_field = body.u16()?;
            let attr_kind = type_field & !AF_TV;
            if type_field & AF_TV != 0 {
                let value = body.u16()?;
                if attr_kind == ATTRIBUTE_KEY_LENGTH {
                    if key_length.is_some() {
                        return Err(Error::Malformed("duplicate key length attribute"));
                    }
                    key_length = Some(value);
                } else {
                    other_attributes.push(Attribute::Tv {
                        kind: attr_kind,
                        value,
                    });
                }
            } else {
                if attr_kind == ATTRIBUTE_KEY_LENGTH {
                    return Err(Error::Malformed("key length attribute not in TV format"));
                }
                let len = usize::from(body.u16()?);
                let value = body.take(len).map_err(|_| Error::BadLength)?;
                other_attributes.push(Attribute::Tlv {
                    kind: attr_kind,
                    value: value.to_vec(),
                });
            }
        }
        let more = match last {
            LAST => false,
            MORE_TRANSFORMS => true,
            _ => return Err(Error::Malformed("bad transform Last Substruc")),
        };
        Ok((
            TransformRepr {
                kind,
                id,
                key_length,
                other_attributes,
            },
            more,
        ))
    }

    pub fn buffer_len(&self) -> usize {
        8 + self.key_length.map_or(0, |_| 4)
            + self
                .other_attributes
                .iter()
                .map(Attribute::buffer_len)
                .sum::<usize>()
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let length = len16(self.buffer_len())?;
        out.push(if last { LAST } else { MORE_TRANSFORMS });
        out.push(0);
        out.extend_from_slice(&length.to_be_bytes());
        out.push(self.kind.0);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        if let Some(bits) = self.key_length {
            out.extend_from_slice(&(AF_TV | ATTRIBUTE_KEY_LENGTH).to_be_bytes());
            out.extend_from_slice(&bits.to_be_bytes());
        }
        for attribute in &self.other_attributes {
            attribute.emit(out)?;
        }
        Ok(())
    }
}

/// One proposal: a protocol, an SPI (empty in IKE_SA_INIT, 8 octets when rekeying IKE, 4 for ESP/AH)
/// and its transforms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProposalRepr {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<TransformRepr>,
}

impl ProposalRepr {
    /// The SPI as an ESP/AH SPI, when it is 4 octets.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
    }

    /// The SPI as an IKE SPI, when it is 8 octets.
    pub fn spi_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(self.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    }

    fn parse(r: &mut Reader<'_>) -> Result<(ProposalRepr, bool), Error> {
        let last = r.u8()?;
        r.u8()?;
        let length = usize::from(r.u16()?);
        if length < 8 {
            return Err(Error::BadLength);
        }
        let mut body = Reader::new(r.take(length - 4).map_err(|_| Error::BadLength)?);
        let number = body.u8()?;
        let protocol = ProtocolId(body.u8()?);
        let spi_size = usize::from(body.u8()?);
        let count = usize::from(body.u8()?);
        if !matches!(spi_size, 0 | 4 | 8) {
            return Err(Error::Malformed("proposal SPI size not 0, 4 or 8"));
        }
        if count == 0 {
            return Err(Error::Malformed("proposal without transforms"));
        }
        if count > MAX_TRANSFORMS {
            return Err(Error::TooMany);
        }
        let spi = body.take(spi_size).map_err(|_| Error::BadLength)?.to_vec();
        let mut transforms = Vec::with_capacity(count);
        let mut more = true;
        while more {
            if transforms.len() == count {
                return Err(Error::BadLength);
            }
            let (transform, more_transforms) = TransformRepr::parse(&mut body)?;
            transforms.push(transform);
            more = more_transforms;
        }
        if transforms.len() != count || !body.is_empty() {
            return Err(Error::BadLength);
        }
        let more = match last {
            LAST => false,
            MORE_PROPOSALS => true,
            _ => return Err(Error::Malformed("bad proposal Last Substruc")),
        };
        Ok((
            ProposalRepr {
                number,
                protocol,
                spi,
                transforms,
            },
            more,
        ))
    }

    pub fn buffer_len(&self) -> usize {
        8 + self.spi.len()
            + self
                .transforms
                .iter()
                .map(TransformRepr::buffer_len)
                .sum::<usize>()
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let length = len16(self.buffer_len())?;
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| Error::TooLong)?;
        let count = u8::try_from(self.transforms.len()).map_err(|_| Error::TooLong)?;
        out.push(if last { LAST } else { MORE_PROPOSALS });
        out.push(0);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&[self.number, self.protocol.0, spi_size, count]);
        out.extend_from_slice(&self.spi);
        for (i, transform) in self.transforms.iter().enumerate() {
            transform.emit(i + 1 == self.transforms.len(), out)?;
        }
        Ok(())
    }
}

/// SA payload body: one or more proposals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaRepr {
    pub proposals: Vec<ProposalRepr>,
}

impl SaRepr {
    /// Parses an SA payload body; rejects zero proposals, a proposal list that ends before the body
    /// does (or vice versa), and more than [`MAX_PROPOSALS`].
    pub fn parse(body: &[u8]) -> Result<SaRepr, Error> {
        let mut r = Reader::new(body);
        let mut proposals = Vec::new();
        let mut more = true;
        while more {
            if proposals.len() == MAX_PROPOSALS {
                return Err(Error::TooMany);
            }
            if r.is_empty() {
                return Err(if proposals.is_empty() {
                    Error::Malformed("SA without proposals")
                } else {
                    Error::Truncated
                });
            }
            let (proposal, more_proposals) = ProposalRepr::parse(&mut r)?;
            proposals.push(proposal);
            more = more_proposals;
        }
        if !r.is_empty() {
            return Err(Error::BadLength);
        }
        Ok(SaRepr { proposals })
    }

    /// Body length (no generic payload header).
    pub fn buffer_len(&self) -> usize {
        self.proposals.iter().map(ProposalRepr::buffer_len).sum()
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.emit(i + 1 == self.proposals.len(), out)?;
        }
        Ok(())
    }
}
