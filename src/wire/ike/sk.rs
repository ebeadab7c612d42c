//! The Encrypted and Authenticated payload SK (RFC 7296 §3.14) and its fragment form SKF
//! (RFC 7383 §2.5), laid out for in-place AEAD / encrypt-then-MAC by the caller.
//!
//! ```text
//! SK:  | Next Payload  |C|  RESERVED   |         Payload Length        |
//!      |                     Initialization Vector                     |
//!      ~                    Encrypted IKE Payloads                     ~
//!      |               |             Padding (0-255 octets)            |
//!      |                               |  Pad Length   |
//!      ~                    Integrity Checksum Data                    ~
//!
//! SKF: | Next Payload  |C|  RESERVED   |         Payload Length        |
//!      |        Fragment Number        |        Total Fragments        |
//!      |  IV | encrypted content | ICV  (as SK)
//! ```
//!
//! The associated data is everything from the first octet of the IKE header to the last octet of the
//! SK (or SKF, fragment fields included) payload header (RFC 5282 §5.1, RFC 7383 §2.5.3); for
//! encrypt-then-MAC ciphers the ICV covers the same bytes plus IV and ciphertext. Both are the layout
//! `[aad | iv | ciphertext | icv]` with `aad_len` = [`Encrypted::aad_len`] / [`SealLayout::aad_len`].

use core::ops::Range;

use super::header::field::HEADER_LEN;
use super::payload::field::HEADER_LEN as PAYLOAD_HEADER_LEN;
use super::{Error, Header, HeaderRepr, PayloadType, len16};

/// RFC 7383 §2.5: a fragment's position. Invariant: `1 <= number <= total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    number: u16,
    total: u16,
}

impl Fragment {
    /// Rejects fragment 0, a zero total, and a number above the total.
    pub fn new(number: u16, total: u16) -> Result<Fragment, Error> {
        if number == 0 || total == 0 || number > total {
            return Err(Error::Malformed("bad fragment number"));
        }
        Ok(Fragment { number, total })
    }

    pub fn number(self) -> u16 {
        self.number
    }

    pub fn total(self) -> u16 {
        self.total
    }
}

/// A received SK/SKF payload inside its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypted<'a> {
    kind: PayloadType,
    inner_first: PayloadType,
    fragment: Option<Fragment>,
    aad: &'a [u8],
    content: &'a [u8],
}

impl<'a> Encrypted<'a> {
    pub(crate) fn new(
        kind: PayloadType,
        inner_first: PayloadType,
        fragment: Option<Fragment>,
        aad: &'a [u8],
        content: &'a [u8],
    ) -> Self {
        Encrypted {
            kind,
            inner_first,
            fragment,
            aad,
            content,
        }
    }

    /// SK or SKF.
    pub fn kind(&self) -> PayloadType {
        self.kind
    }

    /// Type of the first payload inside (NONE for SKF fragments after the first).
    pub fn inner_first(&self) -> PayloadType {
        self.inner_first
    }

    pub fn fragment(&self) -> Option<Fragment> {
        self.fragment
    }

    /// IKE header through the SK/SKF payload header: the associated data.
    pub fn aad(&self) -> &'a [u8] {
        self.aad
    }

    /// Length of [`Encrypted::aad`]; the offset of the IV in the datagram.
    pub fn aad_len(&self) -> usize {
        self.aad.len()
    }

    /// IV | ciphertext | ICV.
    pub fn content(&self) -> &'a [u8] {
        self.content
    }

    /// Splits the content into IV, ciphertext and ICV; the ciphertext must hold at least the Pad
    /// Length octet.
    pub fn split(&self, iv_len: usize, icv_len: usize) -> Result<SkParts<'a>, Error> {
        let overhead = iv_len.checked_add(icv_len).ok_or(Error::Truncated)?;
        if self.content.len() <= overhead {
            return Err(Error::Truncated);
        }
        let (iv, rest) = self.content.split_at(iv_len);
        let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
        Ok(SkParts { iv, ciphertext, icv })
    }
}

/// The three parts of SK/SKF content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkParts<'a> {
    pub iv: &'a [u8],
    pub ciphertext: &'a [u8],
    pub icv: &'a [u8],
}

/// Removes `Padding | Pad Length` from decrypted SK content, returning the inner payloads.
pub fn strip_padding(plaintext: &[u8]) -> Result<&[u8], Error> {
    let (&pad_len, rest) = plaintext.split_last().ok_or(Error::Truncated)?;
    let pad_len = usize::from(pad_len);
    if pad_len > rest.len() {
        return Err(Error::Malformed("pad length exceeds plaintext"));
    }
    Ok(&rest[..rest.len() - pad_len])
}

/// Length of `payloads | padding | pad length` for `inner_len` payload octets: the minimum that is a
/// multiple of `block_len` (1 for GCM; RFC 7296 §3.14 says SHOULD use the minimum).
pub fn padded_len(inner_len: usize, block_len: usize) -> usize {
    let block = block_len.max(1);
    (inner_len + 1).div_ceil(block) * block
}

/// The sizes a cipher imposes on the SK layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkParams {
    /// IV octets at the start of the content (16 for AES-CBC, 8 for AES-GCM).
    pub iv_len: usize,
    /// ICV octets at the end (the truncated MAC, or the 16-octet GCM tag).
    pub icv_len: usize,
    /// Plaintext alignment (16 for AES-CBC, 1 for GCM; values below 1 are taken as 1).
    pub block_len: usize,
}

impl SkParams {
    /// Octets one SK payload adds around `inner_len` payload octets (header, IV, padding, ICV).
    pub fn overhead(&self, inner_len: usize) -> usize {
        PAYLOAD_HEADER_LEN + self.iv_len + padded_len(inner_len, self.block_len) - inner_len + self.icv_len
    }
}

/// Where [`emit_sk_message`] put things. `message` indexes the output vector; the other ranges and
/// `aad_len` are relative to the message start, so the caller seals `&mut out[layout.message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealLayout {
    /// The whole message in the output vector.
    pub message: Range<usize>,
    /// IKE header through the SK/SKF header.
    pub aad_len: usize,
    /// Zero-filled; the caller (or its cipher) writes the IV here.
    pub iv: Range<usize>,
    /// Payloads, zero padding and the Pad Length octet, to be encrypted.
    pub plaintext: Range<usize>,
    /// Zero-filled; the cipher writes the ICV here.
    pub icv: Range<usize>,
}

/// Appends a whole message carrying one SK payload around `inner` (already emitted payloads whose
/// first type is `inner_first`), with the header's Next Payload and Length and the SK length set.
pub fn emit_sk_message(
    header: &HeaderRepr,
    inner_first: PayloadType,
    inner: &[u8],
    params: SkParams,
    out: &mut Vec<u8>,
) -> Result<SealLayout, Error> {
    emit_encrypted(header, PayloadType::SK, inner_first, None, inner, params, out)
}

/// Appends a whole message carrying one SKF payload (RFC 7383 §2.5): `chunk` is this fragment's share
/// of the inner payloads; `inner_first` is sent only in fragment 1 (NONE otherwise).
pub fn emit_skf_message(
    header: &HeaderRepr,
    inner_first: PayloadType,
    fragment: Fragment,
    chunk: &[u8],
    params: SkParams,
    out: &mut Vec<u8>,
) -> Result<SealLayout, Error> {
    let next = if fragment.number() == 1 {
        inner_first
    } else {
        PayloadType::NONE
    };
    emit_encrypted(header, PayloadType::SKF, next, Some(fragment), chunk, params, out)
}

fn emit_encrypted(
    header: &HeaderRepr,
    kind: PayloadType,
    inner_first: PayloadType,
    fragment: Option<Fragment>,
    inner: &[u8],
    params: SkParams,
    out: &mut Vec<u8>,
) -> Result<SealLayout, Error> {
    let padded = padded_len(inner.len(), params.block_len);
    let pad_len = u8::try_from(padded - inner.len() - 1).map_err(|_| Error::TooLong)?;
    let sk_header_len = PAYLOAD_HEADER_LEN + fragment.map_or(0, |_| 4);
    let sk_len = len16(sk_header_len + params.iv_len + padded + params.icv_len)?;
    let total = HEADER_LEN + usize::from(sk_len);
    let total32 = u32::try_from(total).map_err(|_| Error::TooLong)?;

    let start = out.len();
    let mut head = *header;
    head.next_payload = kind;
    head.length = total32;
    head.emit(out);
    out.push(inner_first.0);
    out.push(0);
    out.extend_from_slice(&sk_len.to_be_bytes());
    if let Some(f) = fragment {
        out.extend_from_slice(&f.number().to_be_bytes());
        out.extend_from_slice(&f.total().to_be_bytes());
    }
    let aad_len = out.len() - start;
    out.resize(out.len() + params.iv_len, 0);
    out.extend_from_slice(inner);
    out.resize(out.len() + usize::from(pad_len), 0);
    out.push(pad_len);
    out.resize(out.len() + params.icv_len, 0);
    debug_assert_eq!(out.len() - start, total);
    debug_assert_eq!(Header::new_unchecked(&out[start..]).length() as usize, total);

    let iv = aad_len..aad_len + params.iv_len;
    let plaintext = iv.end..iv.end + padded;
    let icv = plaintext.end..plaintext.end + params.icv_len;
    Ok(SealLayout {
        message: start..start + total,
        aad_len,
        iv,
        plaintext,
        icv,
    })
}

/// The largest share of inner payload octets one SKF message of at most `max_len` octets can carry
/// (IKE header, SKF header with fragment fields, IV, padding, pad length and ICV subtracted); `None`
/// when not even one octet fits. `max_len` is the IKE message size, without IP/UDP headers or the
/// non-ESP marker (RFC 7383 §2.5.1).
pub fn max_fragment_chunk(max_len: usize, params: SkParams) -> Option<usize> {
    let fixed = HEADER_LEN + PAYLOAD_HEADER_LEN + 4 + params.iv_len + params.icv_len;
    let room = max_len.checked_sub(fixed)?;
    let block = params.block_len.max(1);
    // The padded plaintext is a multiple of the block and holds the chunk plus the pad length octet.
    let chunk = (room / block * block).checked_sub(1)?;
    (chunk > 0).then_some(chunk)
}

/// Lays out `inner` (payloads whose first type is `inner_first`) as SKF messages of at most `max_len`
/// octets each, numbered 1..=total (RFC 7383 §2.5). Each comes with its [`SealLayout`] (relative to
/// that message's own vector) for in-place encryption.
pub fn emit_skf_messages(
    header: &HeaderRepr,
    inner_first: PayloadType,
    inner: &[u8],
    params: SkParams,
    max_len: usize,
) -> Result<Vec<(Vec<u8>, SealLayout)>, Error> {
    let chunk = max_fragment_chunk(max_len, params).ok_or(Error::TooLong)?;
    let chunks: Vec<&[u8]> = if inner.is_empty() {
        vec![inner]
    } else {
        inner.chunks(chunk).collect()
    };
    let total = u16::try_from(chunks.len()).map_err(|_| Error::TooLong)?;
    chunks
        .iter()
        .zip(1..=total)
        .map(|(part, number)| {
            let mut out = Vec::with_capacity(max_len);
            let fragment = Fragment::new(number, total)?;
            let layout = emit_skf_message(header, inner_first, fragment, part, params, &mut out)?;
            Ok((out, layout))
        })
        .collect()
}
