//! IKEv2 message codec (RFC 7296 §3, RFC 7383 §2.5 SKF).
//!
//! IKE is the control plane, so this codec trades zero-copy for simplicity above the header: a datagram
//! is checked through the zero-copy [`Header`] view ([`Message::parse`]), and its payload chain becomes an
//! owned, bounded `Vec<PayloadRepr>` ([`parse_payloads`]). Every count is capped (see the `MAX_*`
//! constants) so a hostile datagram cannot make us allocate more than a small multiple of its own size.
//!
//! Parsing never panics, rejects trailing bytes and any length field that disagrees with its contents.
//!
//! # Receiving
//! ```text
//! Message::parse(datagram)?            header checked, Length == datagram length, version 2
//!   .payloads()?                       plaintext chain (IKE_SA_INIT), or ...
//!   .encrypted()?                      the SK / SKF payload: aad_len(), iv/ciphertext/icv split
//! crypto open(buf = [aad | iv | ct | icv], aad_len) -> plaintext
//! sk::strip_padding(plaintext)?        payloads | padding | pad length  ->  payloads
//! parse_inner_payloads(encrypted.inner_first(), payloads)?   (no SK inside SK)
//! ```
//!
//! # Sending
//! [`emit_message`] for a plaintext message; [`sk::emit_sk_message`] / [`sk::emit_skf_message`] lay out
//! header + SK(F) header + IV room + padded plaintext + ICV room, fix both lengths, and return a
//! [`sk::SealLayout`] so the caller encrypts in place with `seal(buf, layout.aad_len)`.
//!
//! # API decisions
//! * `emit` methods append to a `Vec<u8>` (instead of smoltcp's `&mut [u8]` of exactly `buffer_len`):
//!   emission cannot panic and needs no size pre-computation; `buffer_len()` still tells the size.
//! * Each payload body must fit a 16-bit length; [`emit_payloads`] checks that and returns
//!   [`Error::TooLong`] instead of writing a wrapped length.
//! * Payload types RFC 7296 defines but this codec does not model (CP, EAP, GSPM) and unknown
//!   non-critical payloads come back as [`PayloadRepr::Unknown`] for the IKE layer to ignore; an unknown
//!   payload with the critical bit set is [`Error::UnsupportedCritical`].
//! * Traffic selectors are [`TsRepr`] with an address-family enum ([`TsAddresses`]) so a selector with
//!   mixed families cannot be built.
//! * Transform attributes other than Key Length are kept ([`Attribute`]) so messages round-trip; the IKE
//!   layer must treat a transform with `other_attributes` as unrecognised (RFC 7296 §3.3.6).
//! * Strict where RFC 7296 says MUST and real peers comply: Last Substruc values, Num Transforms, proposal
//!   SPI size 0/4/8, Delete SPI size (0 for IKE, 4 otherwise), nonce 16..=256 octets, at least one
//!   proposal / transform / traffic selector, an SK(F) payload only last, SKF fragment numbers in
//!   1..=total. Lenient where it says "ignore on receipt": reserved bits and octets, the minor version.
//!
//! # Test data
//! `testdata/` holds two complete exchanges captured from strongSwan 5.9.8 (CBC and GCM with SKF
//! fragments) with the initiator's keys (`keys.txt`: DH secret, SKEYSEED, SK_*; PSK in the header line),
//! usable by the IKE layer as end-to-end known answers; `testdata/capture/` re-creates them.

pub mod cert;
mod consts;
mod header;
mod payload;
mod sa;
pub mod sk;
mod ts;

pub use consts::*;
pub use header::{Flags, Header, HeaderRepr, Message, field as header_field};
pub use payload::{
    DeleteRepr, EncryptedRepr, GenericPayload, IdRepr, NotifyRepr, PayloadRepr, emit_message, emit_payloads,
    parse_inner_payloads, parse_payloads,
};
pub use sa::{Attribute, ProposalRepr, SaRepr, TransformRepr};
pub use sk::{Encrypted, Fragment, SealLayout, SkParams, SkParts};
pub use ts::{TsAddresses, TsRepr};

/// At most this many payloads in one message (or one decrypted SK payload).
pub const MAX_PAYLOADS: usize = 48;
/// At most this many proposals in one SA payload.
pub const MAX_PROPOSALS: usize = 32;
/// At most this many transforms in one proposal (a generous all-algorithms proposal has ~40).
pub const MAX_TRANSFORMS: usize = 64;
/// At most this many attributes on one transform.
pub const MAX_ATTRIBUTES: usize = 8;
/// At most this many traffic selectors in one TS payload.
pub const MAX_TRAFFIC_SELECTORS: usize = 16;
/// At most this many SPIs in one Delete payload.
pub const MAX_DELETE_SPIS: usize = 256;

/// Why bytes are not a valid IKEv2 message. `Copy` and allocation-free: hostile input is common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than a header or a length field needs.
    #[error("truncated")]
    Truncated,
    /// A length field disagrees with the bytes it describes (or with a count).
    #[error("length field disagrees with contents")]
    BadLength,
    /// Structurally wrong, with a short reason.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// An unknown payload with the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload {0:?}")]
    UnsupportedCritical(PayloadType),
    /// More elements than the `MAX_*` caps allow.
    #[error("too many elements")]
    TooMany,
    /// Major version other than 2 (RFC 7296 §2.5); the value is the major version received. The SPIs
    /// and Message ID for an INVALID_MAJOR_VERSION reply are still readable through [`Header`].
    #[error("unsupported IKE major version {0}")]
    UnsupportedVersion(u8),
    /// On emit: a payload body longer than its 16-bit length field can say.
    #[error("payload too long to encode")]
    TooLong,
}

impl Error {
    /// The error Notify the IKE layer answers with (RFC 7296 §2.21.1, §3.10.1), when it answers at all.
    pub fn notify(self) -> NotifyType {
        match self {
            Error::UnsupportedCritical(_) => NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            Error::UnsupportedVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            _ => NotifyType::INVALID_SYNTAX,
        }
    }

    /// The Notification Data going with [`Error::notify`]: the one-octet payload type for
    /// UNSUPPORTED_CRITICAL_PAYLOAD, the highest major version we support for INVALID_MAJOR_VERSION
    /// (carried in the header; no data), nothing otherwise.
    pub fn notify_data(self) -> Option<u8> {
        match self {
            Error::UnsupportedCritical(kind) => Some(kind.0),
            _ => None,
        }
    }
}

/// A cursor over a byte slice that never panics (rustls `Reader` style): every read is checked, and
/// nested length-prefixed structures get a sub-reader so trailing bytes can be rejected.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.bytes.len() {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads exactly `N` bytes into an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Converts a length to a 16-bit field, for emitters.
pub(crate) fn len16(len: usize) -> Result<u16, Error> {
    u16::try_from(len).map_err(|_| Error::TooLong)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_oracle;
#[cfg(test)]
mod tests_strongswan;
