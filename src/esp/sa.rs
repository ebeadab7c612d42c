//! One direction of a Child SA on the data plane: [`OutboundSa`] seals, [`InboundSa`] opens.
//!
//! Both are immutable after construction except for atomics, so they are shared as `Arc`s between
//! the control plane (which installs and removes them) and the TX / RX threads (which use them)
//! without a lock. The outbound sequence counter is a `fetch_add`, so even several TX threads would
//! each get unique sequence numbers (and so unique GCM nonces). The inbound replay window has one
//! writer, the RX thread (see [`crate::esp::replay`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::crypto::cipher::{Cipher, CipherError};
use crate::dataplane::packet::ipv6_upper_protocol;
use crate::sa::{EspKeys, EspSpi, TrafficSelector, TunnelKey};
use crate::wire::esp::{EspPacket, HEADER_LEN};

use super::counters::{DropReason, SaCounters};
use super::replay::{ReplayError, ReplayWindow};

/// IP protocol numbers of the ESP next-header field (RFC 4303 §2.6).
pub const NEXT_HEADER_IPV4: u8 = 4;
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": marks a dummy packet (RFC 4303 §2.6).
pub const NEXT_HEADER_NONE: u8 = 59;

/// Most headroom any transform needs in front of the inner packet: ESP header + CBC IV.
pub const MAX_HEADROOM: usize = HEADER_LEN + 16;
/// Most tailroom any transform needs after the inner packet: 15 octets of CBC padding, pad length,
/// next header, and the longest ICV (HMAC-SHA2-512-256).
pub const MAX_TAILROOM: usize = 15 + 2 + 32;

/// The last sequence number a 32-bit (non-ESN) SA may send (RFC 4303 §3.3.3: never cycle).
pub const SEQ_HARD_LIMIT: u64 = u32::MAX as u64;
/// From here on every seal reports `rekey_needed`. 2^28 packets before the hard limit: about 4.5
/// minutes at 1 Mpps, ample time for a CREATE_CHILD_SA exchange (and its retransmissions) while
/// wasting only 6% of the sequence space. AWS rekeys hourly anyway; this is the backstop for a
/// saturated link.
pub const SEQ_SOFT_LIMIT: u64 = SEQ_HARD_LIMIT - (1 << 28);

/// Why a packet could not be sealed. Nothing was sent; the buffer content is unspecified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no outbound SA for this tunnel")]
    NoSa,
    #[error("inner packet is empty or not IPv4/IPv6")]
    NotIp,
    #[error("buffer lacks headroom or tailroom around the inner packet")]
    NoRoom,
    #[error("sequence numbers exhausted (or past those reserved): the SA must be rekeyed")]
    SequenceExhausted,
    #[error("cipher failure")]
    Crypto,
}

/// Why an SA could not be built or installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("cipher: {0}")]
    Cipher(#[from] CipherError),
    #[error("replay window {0} outside 64..=2048")]
    ReplayWindowSize(u32),
    #[error("SPI 0 is reserved")]
    ZeroSpi,
    #[error("an inbound SA with SPI {0} is already installed")]
    DuplicateSpi(EspSpi),
}

/// A sealed ESP packet inside the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The ESP packet (header through ICV): the UDP payload to send.
    pub range: Range<usize>,
    pub seq: u32,
    /// The sequence counter passed [`SEQ_SOFT_LIMIT`]: rekey this Child SA soon.
    pub rekey_needed: bool,
}

/// An opened ESP packet: the inner IP packet now lies in clear inside the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The inner IP packet (TFC padding, if any, trimmed by the IP length field).
    pub inner: Range<usize>,
    /// [`NEXT_HEADER_IPV4`] or [`NEXT_HEADER_IPV6`].
    pub next_header: u8,
    pub spi: EspSpi,
    pub seq: u32,
    pub tunnel: TunnelKey,
}

/// Sending half of a Child SA.
pub struct OutboundSa {
    spi: EspSpi,
    tunnel: TunnelKey,
    cipher: Cipher,
    /// Last sequence number handed out (64 bits so it can never wrap; only 32 go on the wire).
    seq: AtomicU64,
    /// Highest sequence number that may be sent: [`SEQ_HARD_LIMIT`], or less while `cgwd esp-static`
    /// has recorded no more as used (see [`Self::set_seq_limit`]).
    limit: AtomicU64,
    counters: SaCounters,
}

impl std::fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &self.spi)
            .field("tunnel", &self.tunnel)
            .field("cipher", &self.cipher)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn build_cipher(keys: &EspKeys) -> Result<Cipher, InstallError> {
    if keys.spi.0 == 0 {
        return Err(InstallError::ZeroSpi);
    }
    Ok(Cipher::new(
        keys.encryption,
        keys.integrity,
        keys.encryption_key.expose(),
        keys.integrity_key.expose(),
    )?)
}

/// Rounds `n` up to a multiple of `align` (a power of two).
fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

impl OutboundSa {
    pub fn new(tunnel: TunnelKey, keys: &EspKeys) -> Result<Self, InstallError> {
        Ok(OutboundSa {
            spi: keys.spi,
            tunnel,
            cipher: build_cipher(keys)?,
            seq: AtomicU64::new(0),
            limit: AtomicU64::new(SEQ_HARD_LIMIT),
            counters: SaCounters::default(),
        })
    }

    pub fn spi(&self) -> EspSpi {
        self.spi
    }

    pub fn tunnel(&self) -> TunnelKey {
        self.tunnel
    }

    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// Continue after sequence number `last` (never going back): for a manually keyed SA whose key
    /// earlier runs used, where starting at 1 again would repeat AES-GCM nonces.
    pub fn resume_after(&self, last: u64) {
        self.seq.fetch_max(last, Relaxed);
    }

    /// Send no sequence number above `limit` (capped at [`SEQ_HARD_LIMIT`]); beyond it [`Self::seal`]
    /// fails with [`SealError::SequenceExhausted`] until the limit is raised.
    pub fn set_seq_limit(&self, limit: u64) {
        self.limit.store(limit.min(SEQ_HARD_LIMIT), Relaxed);
    }

    pub fn seq_limit(&self) -> u64 {
        self.limit.load(Relaxed)
    }

    /// Last sequence number used (0 before the first packet).
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Relaxed).min(SEQ_HARD_LIMIT)
    }

    /// True once the sequence counter passed [`SEQ_SOFT_LIMIT`]: the control plane polls this.
    pub fn rekey_needed(&self) -> bool {
        self.seq.load(Relaxed) >= SEQ_SOFT_LIMIT
    }

    /// Octets needed in front of the inner packet: ESP header and IV.
    pub fn headroom(&self) -> usize {
        HEADER_LEN + self.cipher.iv_len()
    }

    /// Octets needed after the inner packet at most: padding, pad length, next header, ICV.
    pub fn tailroom(&self) -> usize {
        self.cipher.block_len() - 1 + 2 + self.cipher.icv_len()
    }

    #[cfg(test)]
    pub(crate) fn set_last_seq(&self, seq: u64) {
        self.seq.store(seq, Relaxed);
    }

    /// Seals the inner IP packet at `buf[inner]` in place into an ESP packet (RFC 4303 §3.3).
    ///
    /// `buf` must hold [`Self::headroom`] octets before `inner.start` and up to [`Self::tailroom`]
    /// after `inner.end`. The payload is neither copied nor allocated; the returned range is the
    /// ESP packet.
    pub fn seal(&self, buf: &mut [u8], inner: Range<usize>) -> Result<Sealed, SealError> {
        let next_header = match buf.get(inner.clone()).and_then(|p| p.first()) {
            Some(b) if b >> 4 == 4 => NEXT_HEADER_IPV4,
            Some(b) if b >> 4 == 6 => NEXT_HEADER_IPV6,
            _ => return Err(SealError::NotIp),
        };
        let headroom = self.headroom();
        let start = inner.start.checked_sub(headroom).ok_or(SealError::NoRoom)?;
        let inner_len = inner.len();
        let padded = round_up(inner_len + 2, self.cipher.block_len());
        let pad_len = padded - inner_len - 2;
        let end = inner.start + padded + self.cipher.icv_len();
        if end > buf.len() {
            return Err(SealError::NoRoom);
        }

        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        if seq > self.limit.load(Relaxed) {
            return Err(SealError::SequenceExhausted);
        }

        let packet = &mut buf[start..end];
        let mut header = EspPacket::new_unchecked(&mut *packet);
        header.set_spi(self.spi.0);
        header.set_seq(seq as u32);
        self.cipher
            .write_iv(seq, &mut packet[HEADER_LEN..headroom])
            .map_err(|_| SealError::Crypto)?;
        // Trailer (RFC 4303 §2.4-2.6): padding 1, 2, 3, ..., pad length, next header.
        let trailer = headroom + inner_len;
        for (i, b) in packet[trailer..trailer + pad_len].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        packet[trailer + pad_len] = pad_len as u8;
        packet[trailer + pad_len + 1] = next_header;
        self.cipher
            .seal(packet, HEADER_LEN)
            .map_err(|_| SealError::Crypto)?;

        self.counters.record(inner_len);
        Ok(Sealed {
            range: start..end,
            seq: seq as u32,
            rekey_needed: seq >= SEQ_SOFT_LIMIT,
        })
    }
}

/// Receiving half of a Child SA.
pub struct InboundSa {
    spi: EspSpi,
    tunnel: TunnelKey,
    cipher: Cipher,
    window: ReplayWindow,
    /// Our side: inner destination addresses must fall in it.
    local_ts: TrafficSelector,
    /// The peer's side: inner source addresses must fall in it.
    remote_ts: TrafficSelector,
    counters: SaCounters,
}

impl std::fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &self.spi)
            .field("tunnel", &self.tunnel)
            .field("cipher", &self.cipher)
            .field("window", &self.window.size())
            .finish_non_exhaustive()
    }
}

impl InboundSa {
    pub fn new(
        tunnel: TunnelKey,
        keys: &EspKeys,
        replay_window: u32,
        local_ts: TrafficSelector,
        remote_ts: TrafficSelector,
    ) -> Result<Self, InstallError> {
        Ok(InboundSa {
            spi: keys.spi,
            tunnel,
            cipher: build_cipher(keys)?,
            window: ReplayWindow::new(replay_window).ok_or(InstallError::ReplayWindowSize(replay_window))?,
            local_ts,
            remote_ts,
            counters: SaCounters::default(),
        })
    }

    pub fn spi(&self) -> EspSpi {
        self.spi
    }

    pub fn tunnel(&self) -> TunnelKey {
        self.tunnel
    }

    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// Highest sequence number received.
    pub fn highest_seq(&self) -> u64 {
        self.window.top()
    }

    /// Opens the ESP packet `buf` (whole UDP payload) in place, counting any drop on this SA.
    pub fn open(&self, buf: &mut [u8]) -> Result<Opened, DropReason> {
        let result = self.open_uncounted(buf);
        match &result {
            Ok(opened) => self.counters.record(opened.inner.len()),
            Err(reason) => self.counters.drops.count(*reason),
        }
        result
    }

    fn open_uncounted(&self, buf: &mut [u8]) -> Result<Opened, DropReason> {
        let packet = EspPacket::new_checked(&*buf).map_err(|_| DropReason::Truncated)?;
        let seq = packet.seq();
        let (iv_len, icv_len, block) = (
            self.cipher.iv_len(),
            self.cipher.icv_len(),
            self.cipher.block_len(),
        );
        let ct_start = HEADER_LEN + iv_len;
        let ct_len = buf
            .len()
            .checked_sub(ct_start + icv_len)
            .ok_or(DropReason::Truncated)?;
        // At least pad length + next header, aligned to the cipher block (4 octets for GCM).
        if ct_len < block {
            return Err(DropReason::Truncated);
        }
        if ct_len % block != 0 {
            return Err(DropReason::BadLength);
        }

        // Replay check before spending an ICV verification on it (RFC 4303 §3.4.3).
        self.window.check(u64::from(seq)).map_err(replay_reason)?;
        self.cipher.open(buf, HEADER_LEN).map_err(|e| match e {
            CipherError::Truncated => DropReason::Truncated,
            CipherError::Misaligned => DropReason::BadLength,
            _ => DropReason::AuthFailed,
        })?;
        // Authenticated: only now may the window move.
        self.window.accept(u64::from(seq)).map_err(replay_reason)?;

        let ct_end = ct_start + ct_len;
        let next_header = buf[ct_end - 1];
        let pad_len = usize::from(buf[ct_end - 2]);
        let inner_end = (ct_end - 2)
            .checked_sub(pad_len)
            .filter(|&e| e >= ct_start)
            .ok_or(DropReason::BadPadding)?;
        if !buf[inner_end..ct_end - 2]
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1)
        {
            return Err(DropReason::BadPadding);
        }
        let inner = self.check_inner(&buf[ct_start..inner_end], next_header)?;
        Ok(Opened {
            inner: ct_start..ct_start + inner,
            next_header,
            spi: self.spi,
            seq,
            tunnel: self.tunnel,
        })
    }

    /// The packet came from inside the peer's selector and goes inside ours (RFC 4301 §5.2 step 4).
    fn check_selectors(&self, src: IpAddr, dst: IpAddr, protocol: u8) -> Result<(), DropReason> {
        let (remote, local) = (&self.remote_ts, &self.local_ts);
        if remote.contains(src)
            && local.contains(dst)
            && remote.allows_protocol(protocol)
            && local.allows_protocol(protocol)
        {
            Ok(())
        } else {
            Err(DropReason::SelectorMismatch)
        }
    }

    /// Validates the inner IP header and the selectors; returns the inner packet's own length.
    fn check_inner(&self, inner: &[u8], next_header: u8) -> Result<usize, DropReason> {
        match next_header {
            NEXT_HEADER_IPV4 => {
                if inner.len() < 20 || inner[0] >> 4 != 4 {
                    return Err(DropReason::BadInnerPacket);
                }
                let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
                let header = usize::from(inner[0] & 0x0f) * 4;
                if header < 20 || total < header || total > inner.len() {
                    return Err(DropReason::BadInnerPacket);
                }
                let src = Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]);
                let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
                self.check_selectors(src.into(), dst.into(), inner[9])?;
                Ok(total)
            }
            NEXT_HEADER_IPV6 => {
                if inner.len() < 40 || inner[0] >> 4 != 6 {
                    return Err(DropReason::BadInnerPacket);
                }
                let total = 40 + usize::from(u16::from_be_bytes([inner[4], inner[5]]));
                if total > inner.len() {
                    return Err(DropReason::BadInnerPacket);
                }
                let addr = |at: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&inner[at..at + 16]);
                    Ipv6Addr::from(a)
                };
                // The protocol a selector names is the upper layer, after any extension headers
                // (RFC 4301 §4.4.1.1 "Next Layer Protocol"); unparsable chains match only "any".
                let protocol = ipv6_upper_protocol(&inner[..total]).unwrap_or(NEXT_HEADER_NONE);
                self.check_selectors(addr(8).into(), addr(24).into(), protocol)?;
                Ok(total)
            }
            NEXT_HEADER_NONE => Err(DropReason::DummyPacket),
            _ => Err(DropReason::BadNextHeader),
        }
    }
}

fn replay_reason(e: ReplayError) -> DropReason {
    match e {
        ReplayError::Duplicate => DropReason::ReplayDuplicate,
        ReplayError::TooOld | ReplayError::Zero => DropReason::ReplayTooOld,
    }
}
