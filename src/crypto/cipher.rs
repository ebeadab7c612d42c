//! Per-packet transforms shared by ESP (RFC 4303/4106/3602) and the IKE SK payload (RFC 7296 §3.14,
//! RFC 5282): built once per SA, then used in place with no allocation.
//!
//! One buffer shape covers both users:
//!
//! ```text
//! [ aad (aad_len) | iv (iv_len) | payload (padded by the caller) | icv (icv_len) ]
//! ```
//!
//! * ESP: aad = SPI | sequence number (RFC 4106 §5, RFC 4303 §2).
//! * IKE: aad = IKE header .. SK generic payload header (RFC 5282 §5.1; for CBC + HMAC the checksum
//!   covers the same bytes plus IV and ciphertext, RFC 7296 §3.14).
//!
//! GCM: nonce = salt (last 4 octets of the keying material) | IV, AAD = aad, tag = ICV.
//! CBC + HMAC: encrypt-then-MAC, ICV = first `icv_len` octets of HMAC(aad | iv | ciphertext).

use aws_lc_rs::{aead, cipher, constant_time, hmac, iv::FixedLength};
use zeroize::Zeroizing;

use crate::suite::{Encryption, Integrity};

/// GCM salt length (RFC 4106 §4, RFC 5282 §7.1).
const GCM_SALT_LEN: usize = 4;
/// GCM explicit IV carried in each packet (RFC 4106 §3.1).
const GCM_IV_LEN: usize = 8;
/// GCM ICV: cgwd only speaks the 16-octet-ICV variants AWS offers.
const GCM_ICV_LEN: usize = 16;
/// AES block = CBC IV length (RFC 3602 §2.2).
const AES_BLOCK_LEN: usize = 16;

/// Why a transform could not be built or a buffer could not be sealed/opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("key length {got} does not match the algorithm (expected {expected})")]
    KeyLength { expected: usize, got: usize },
    #[error("CBC encryption needs an integrity algorithm, AEAD must not have one")]
    IntegrityMismatch,
    #[error("buffer too short for aad, IV and ICV")]
    Truncated,
    #[error("payload length is not a multiple of the cipher block")]
    Misaligned,
    #[error("integrity check failed")]
    AuthFailed,
    #[error("crypto library failure")]
    Internal,
}

// One Cipher exists per SA direction, so the variant size difference costs nothing; boxing would
// add a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Gcm {
        key: aead::LessSafeKey,
        salt: Zeroizing<[u8; GCM_SALT_LEN]>,
    },
    CbcHmac {
        encrypt: cipher::EncryptingKey,
        decrypt: cipher::DecryptingKey,
        mac: hmac::Key,
        icv_len: usize,
        /// Separate random key that whitens a counter into an unpredictable CBC IV (see
        /// [`Cipher::write_iv`]).
        iv_whitener: cipher::EncryptingKey,
    },
}

/// One direction's transform. Keys live inside aws-lc, which cleanses its key schedules on free; the
/// GCM salt we hold ourselves is zeroized on drop.
pub struct Cipher {
    kind: Kind,
    encryption: Encryption,
    integrity: Option<Integrity>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher")
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity)
            .finish_non_exhaustive()
    }
}

/// The four regions of a sealed buffer.
struct Parts<'a> {
    aad: &'a [u8],
    iv: &'a [u8],
    payload: &'a mut [u8],
    icv: &'a mut [u8],
}

fn hmac_algorithm(integrity: Integrity) -> hmac::Algorithm {
    match integrity {
        Integrity::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Integrity::Sha2_256 => hmac::HMAC_SHA256,
        Integrity::Sha2_384 => hmac::HMAC_SHA384,
        Integrity::Sha2_512 => hmac::HMAC_SHA512,
    }
}

impl Cipher {
    /// `encryption_key` includes the 4-octet salt for GCM (RFC 4106 §8.1 / RFC 5282 §7.1);
    /// `integrity_key` is empty for AEAD.
    pub fn new(
        encryption: Encryption,
        integrity: Option<Integrity>,
        encryption_key: &[u8],
        integrity_key: &[u8],
    ) -> Result<Self, CipherError> {
        if encryption_key.len() != encryption.keymat_len() {
            return Err(CipherError::KeyLength {
                expected: encryption.keymat_len(),
                got: encryption_key.len(),
            });
        }
        let kind = match (encryption.is_aead(), integrity) {
            (true, None) => {
                if !integrity_key.is_empty() {
                    return Err(CipherError::KeyLength {
                        expected: 0,
                        got: integrity_key.len(),
                    });
                }
                let algorithm = match encryption {
                    Encryption::Aes128Gcm16 => &aead::AES_128_GCM,
                    _ => &aead::AES_256_GCM,
                };
                let (aes_key, salt_bytes) = encryption_key.split_at(encryption_key.len() - GCM_SALT_LEN);
                let unbound = aead::UnboundKey::new(algorithm, aes_key).map_err(|_| CipherError::Internal)?;
                let mut salt = Zeroizing::new([0u8; GCM_SALT_LEN]);
                salt.copy_from_slice(salt_bytes);
                Kind::Gcm {
                    key: aead::LessSafeKey::new(unbound),
                    salt,
                }
            }
            (false, Some(integrity)) => {
                if integrity_key.len() != integrity.key_len() {
                    return Err(CipherError::KeyLength {
                        expected: integrity.key_len(),
                        got: integrity_key.len(),
                    });
                }
                let algorithm = match encryption {
                    Encryption::Aes128Cbc => &cipher::AES_128,
                    _ => &cipher::AES_256,
                };
                let unbound = || {
                    cipher::UnboundCipherKey::new(algorithm, encryption_key)
                        .map_err(|_| CipherError::Internal)
                };
                let encrypt = cipher::EncryptingKey::cbc(unbound()?).map_err(|_| CipherError::Internal)?;
                let decrypt = cipher::DecryptingKey::cbc(unbound()?).map_err(|_| CipherError::Internal)?;
                let mut whitener_key = Zeroizing::new([0u8; 16]);
                aws_lc_rs::rand::fill(&mut whitener_key[..]).map_err(|_| CipherError::Internal)?;
                let iv_whitener = cipher::EncryptingKey::ecb(
                    cipher::UnboundCipherKey::new(&cipher::AES_128, &whitener_key[..])
                        .map_err(|_| CipherError::Internal)?,
                )
                .map_err(|_| CipherError::Internal)?;
                Kind::CbcHmac {
                    encrypt,
                    decrypt,
                    mac: hmac::Key::new(hmac_algorithm(integrity), integrity_key),
                    icv_len: integrity.icv_len(),
                    iv_whitener,
                }
            }
            _ => return Err(CipherError::IntegrityMismatch),
        };
        Ok(Cipher {
            kind,
            encryption,
            integrity,
        })
    }

    pub fn encryption(&self) -> Encryption {
        self.encryption
    }

    pub fn integrity(&self) -> Option<Integrity> {
        self.integrity
    }

    /// 8 for GCM, 16 for CBC.
    pub fn iv_len(&self) -> usize {
        match self.kind {
            Kind::Gcm { .. } => GCM_IV_LEN,
            Kind::CbcHmac { .. } => AES_BLOCK_LEN,
        }
    }

    /// 16 for GCM, the integrity's truncated length for CBC.
    pub fn icv_len(&self) -> usize {
        match self.kind {
            Kind::Gcm { .. } => GCM_ICV_LEN,
            Kind::CbcHmac { icv_len, .. } => icv_len,
        }
    }

    /// Payload alignment the caller pads to: 16 for CBC, 4 for GCM (ESP needs 4-octet alignment,
    /// RFC 4303 §2.4).
    pub fn block_len(&self) -> usize {
        match self.kind {
            Kind::Gcm { .. } => 4,
            Kind::CbcHmac { .. } => AES_BLOCK_LEN,
        }
    }

    /// Writes the IV for the packet numbered `counter` into `iv` (`iv_len()` octets).
    ///
    /// `counter` must never repeat under this `Cipher` (ESP: the 64-bit sequence counter; IKE: a
    /// per-SA message counter, not the Message ID, which requests and responses share).
    /// * GCM: the counter itself, big-endian — RFC 4106 §3.1 only requires uniqueness per key.
    /// * CBC: AES_K'(counter) under a per-`Cipher` random key K' that never leaves this struct. A
    ///   block cipher under a secret key is a pseudo-random permutation, so distinct counters give
    ///   distinct IVs an attacker cannot predict (RFC 3602 §2.2 asks for unpredictable IVs; NIST SP
    ///   800-38A App. C names this "encrypt a nonce" construction). It costs one AES block per
    ///   packet instead of a getrandom syscall.
    pub fn write_iv(&self, counter: u64, iv: &mut [u8]) -> Result<(), CipherError> {
        match &self.kind {
            Kind::Gcm { .. } => {
                let out = iv.get_mut(..GCM_IV_LEN).ok_or(CipherError::Truncated)?;
                out.copy_from_slice(&counter.to_be_bytes());
            }
            Kind::CbcHmac { iv_whitener, .. } => {
                let out = iv.get_mut(..AES_BLOCK_LEN).ok_or(CipherError::Truncated)?;
                out[..8].fill(0);
                out[8..].copy_from_slice(&counter.to_be_bytes());
                iv_whitener
                    .less_safe_encrypt(out, cipher::EncryptionContext::None)
                    .map_err(|_| CipherError::Internal)?;
            }
        }
        Ok(())
    }

    /// Splits `buf` into (aad, iv, payload, icv), checking lengths and alignment.
    fn split<'a>(&self, buf: &'a mut [u8], aad_len: usize) -> Result<Parts<'a>, CipherError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let min = aad_len
            .checked_add(iv_len + icv_len)
            .ok_or(CipherError::Truncated)?;
        if buf.len() < min {
            return Err(CipherError::Truncated);
        }
        let (aad, rest) = buf.split_at_mut(aad_len);
        let (iv, rest) = rest.split_at_mut(iv_len);
        let payload_len = rest.len() - icv_len;
        let (payload, icv) = rest.split_at_mut(payload_len);
        if let Kind::CbcHmac { .. } = self.kind
            && payload.len() % AES_BLOCK_LEN != 0
        {
            return Err(CipherError::Misaligned);
        }
        Ok(Parts {
            aad,
            iv,
            payload,
            icv,
        })
    }

    fn gcm_nonce(salt: &[u8; GCM_SALT_LEN], iv: &[u8]) -> aead::Nonce {
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce[..GCM_SALT_LEN].copy_from_slice(salt);
        nonce[GCM_SALT_LEN..].copy_from_slice(iv);
        aead::Nonce::assume_unique_for_key(nonce)
    }

    /// `buf = [aad | iv (written by the caller) | payload (padded by the caller) | icv (output)]`.
    /// Encrypts the payload in place and writes the ICV.
    pub fn seal(&self, buf: &mut [u8], aad_len: usize) -> Result<(), CipherError> {
        let mac_len = buf.len().saturating_sub(self.icv_len());
        let Parts {
            aad,
            iv,
            payload,
            icv,
        } = self.split(buf, aad_len)?;
        match &self.kind {
            Kind::Gcm { key, salt } => {
                let tag = key
                    .seal_in_place_separate_tag(Self::gcm_nonce(salt, iv), aead::Aad::from(aad), payload)
                    .map_err(|_| CipherError::Internal)?;
                icv.copy_from_slice(tag.as_ref());
            }
            Kind::CbcHmac { encrypt, mac, .. } => {
                let iv = FixedLength::<AES_BLOCK_LEN>::try_from(iv).map_err(|_| CipherError::Internal)?;
                encrypt
                    .less_safe_encrypt(payload, cipher::EncryptionContext::Iv128(iv))
                    .map_err(|_| CipherError::Internal)?;
                let (covered, icv) = buf.split_at_mut(mac_len);
                let tag = hmac::sign(mac, covered);
                icv.copy_from_slice(&tag.as_ref()[..icv.len()]);
            }
        }
        Ok(())
    }

    /// Verifies the ICV (constant time) then decrypts the payload in place. Never panics on any
    /// input; on failure the payload content is unspecified.
    pub fn open(&self, buf: &mut [u8], aad_len: usize) -> Result<(), CipherError> {
        let mac_len = buf.len().saturating_sub(self.icv_len());
        match &self.kind {
            Kind::Gcm { key, salt } => {
                let Parts {
                    aad,
                    iv,
                    payload,
                    icv,
                } = self.split(buf, aad_len)?;
                key.open_in_place_separate_tag(Self::gcm_nonce(salt, iv), aead::Aad::from(aad), icv, payload)
                    .map_err(|_| CipherError::AuthFailed)?;
            }
            Kind::CbcHmac { decrypt, mac, .. } => {
                // Check shape first (cheap, public information), then the MAC over the ciphertext,
                // and only then decrypt: encrypt-then-MAC.
                self.split(buf, aad_len)?;
                let (covered, icv) = buf.split_at(mac_len);
                let tag = hmac::sign(mac, covered);
                constant_time::verify_slices_are_equal(&tag.as_ref()[..icv.len()], icv)
                    .map_err(|_| CipherError::AuthFailed)?;
                let Parts { iv, payload, .. } = self.split(buf, aad_len)?;
                let iv = FixedLength::<AES_BLOCK_LEN>::try_from(iv).map_err(|_| CipherError::Internal)?;
                decrypt
                    .decrypt(payload, cipher::DecryptionContext::Iv128(iv))
                    .map_err(|_| CipherError::Internal)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Seals `[aad | iv | plaintext | icv]` and checks ciphertext and tag, then opens it back.
    fn gcm_case(keymat: &str, iv: &str, aad: &str, pt: &str, ct: &str, tag: &str) {
        let keymat = hex(keymat);
        let encryption = if keymat.len() == 20 {
            Encryption::Aes128Gcm16
        } else {
            Encryption::Aes256Gcm16
        };
        let cipher = Cipher::new(encryption, None, &keymat, &[]).unwrap();
        let (aad, iv, pt, ct, tag) = (hex(aad), hex(iv), hex(pt), hex(ct), hex(tag));
        let mut buf = [aad.clone(), iv.clone(), pt.clone(), vec![0; 16]].concat();
        cipher.seal(&mut buf, aad.len()).unwrap();
        let body = aad.len() + iv.len();
        assert_eq!(&buf[body..body + ct.len()], &ct[..]);
        assert_eq!(&buf[body + ct.len()..], &tag[..]);
        cipher.open(&mut buf, aad.len()).unwrap();
        assert_eq!(&buf[body..body + pt.len()], &pt[..]);
    }

    const GCM_P: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";

    // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B, Test Case 2:
    // K = 0^128, IV = 0^96 (salt 00000000 | iv 0^64), P = 0^128.
    #[test]
    fn gcm_spec_test_case_2() {
        gcm_case(
            "00000000000000000000000000000000 00000000",
            "0000000000000000",
            "",
            "00000000000000000000000000000000",
            "0388dace60b6a392f328c2b971b2fe78",
            "ab6e47d42cec13bdf53a67b21257bddf",
        );
    }

    // GCM spec Test Case 3: K = feffe992..., IV = cafebabe (salt) | facedbaddecaf888.
    #[test]
    fn gcm_spec_test_case_3() {
        gcm_case(
            "feffe9928665731c6d6a8f9467308308 cafebabe",
            "facedbaddecaf888",
            "",
            GCM_P,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
            "4d5c2af327cd64a62cf35abd2ba6fab4",
        );
    }

    // GCM spec Test Case 4: as 3 with A = feedface... and a 60-octet plaintext.
    #[test]
    fn gcm_spec_test_case_4() {
        gcm_case(
            "feffe9928665731c6d6a8f9467308308 cafebabe",
            "facedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            &GCM_P.split_whitespace().collect::<String>()[..120],
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        );
    }

    // GCM spec Test Case 14: K = 0^256, IV = 0^96, P = 0^128.
    #[test]
    fn gcm_spec_test_case_14() {
        gcm_case(
            "0000000000000000000000000000000000000000000000000000000000000000 00000000",
            "0000000000000000",
            "",
            "00000000000000000000000000000000",
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919",
        );
    }

    // GCM spec Test Case 15 (AES-256, no AAD).
    #[test]
    fn gcm_spec_test_case_15() {
        gcm_case(
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabe",
            "facedbaddecaf888",
            "",
            GCM_P,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c",
        );
    }

    // GCM spec Test Case 16 (AES-256, with AAD, 60-octet plaintext).
    #[test]
    fn gcm_spec_test_case_16() {
        gcm_case(
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabe",
            "facedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            &GCM_P.split_whitespace().collect::<String>()[..120],
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        );
    }

    // RFC 3602 §4, Case #2: AES-128-CBC, 32 octets. The cipher is checked through `seal`/`open`
    // (aad empty, HMAC-SHA-256-128 with an arbitrary key on top).
    #[test]
    fn rfc3602_case_2_through_seal_and_open() {
        let cipher = Cipher::new(
            Encryption::Aes128Cbc,
            Some(Integrity::Sha2_256),
            &hex("c286696d887c9aa0611bbb3e2025a45a"),
            &[7u8; 32],
        )
        .unwrap();
        let iv = hex("562e17996d093d28ddb3ba695a2e6f58");
        let pt = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let ct = hex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
        let mut buf = [iv.clone(), pt.clone(), vec![0; 16]].concat();
        cipher.seal(&mut buf, 0).unwrap();
        assert_eq!(&buf[16..48], &ct[..]);
        // The ICV is HMAC over iv | ciphertext, truncated to 128 bits (RFC 4868 §2.3).
        let full = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &buf[..48]);
        assert_eq!(&buf[48..], &full.as_ref()[..16]);
        cipher.open(&mut buf, 0).unwrap();
        assert_eq!(&buf[16..48], &pt[..]);
    }

    // RFC 3602 §4, Case #1 (AES-128-CBC, "Single block msg"), with a 4-octet aad in front.
    #[test]
    fn rfc3602_case_1_with_aad() {
        let cipher = Cipher::new(
            Encryption::Aes128Cbc,
            Some(Integrity::Sha1),
            &hex("06a9214036b8a15b512e03d534120006"),
            &[1u8; 20],
        )
        .unwrap();
        let mut buf = [
            vec![1, 2, 3, 4],
            hex("3dafba429d9eb430b422da802c9fac41"),
            b"Single block msg".to_vec(),
            vec![0; 12],
        ]
        .concat();
        cipher.seal(&mut buf, 4).unwrap();
        assert_eq!(&buf[20..36], &hex("e353779c1079aeb82708942dbe77181a")[..]);
        assert_eq!(&buf[..4], &[1, 2, 3, 4]);
        cipher.open(&mut buf, 4).unwrap();
        assert_eq!(&buf[20..36], b"Single block msg");
    }

    // RFC 4868 §2.7.2.1 (HMAC-SHA-256 on "Hi There", key 0x0b x 32) and the truncation of §2.3:
    // AUTH256-1 = first 128 bits. The ICV `seal` writes is exactly that truncation.
    #[test]
    fn rfc4868_truncation() {
        let key = hmac::Key::new(hmac_algorithm(Integrity::Sha2_256), &[0x0b; 32]);
        let tag = hmac::sign(&key, b"Hi There");
        assert_eq!(
            &tag.as_ref()[..Integrity::Sha2_256.icv_len()],
            &hex("198a607eb44bfbc69903a0f1cf2bbdc5")[..]
        );
    }

    fn all_ciphers() -> Vec<Cipher> {
        let mut out = Vec::new();
        for e in Encryption::ALL {
            let key = vec![0x42; e.keymat_len()];
            if e.is_aead() {
                out.push(Cipher::new(e, None, &key, &[]).unwrap());
            } else {
                for i in Integrity::ALL {
                    out.push(Cipher::new(e, Some(i), &key, &vec![0x24; i.key_len()]).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn flipped_bits_fail_authentication() {
        for cipher in all_ciphers() {
            let len = 8 + cipher.iv_len() + 32 + cipher.icv_len();
            let mut sealed = vec![0u8; len];
            cipher.write_iv(1, &mut sealed[8..]).unwrap();
            cipher.seal(&mut sealed, 8).unwrap();
            for bit in 0..len * 8 {
                let mut buf = sealed.clone();
                buf[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(cipher.open(&mut buf, 8), Err(CipherError::AuthFailed));
            }
            cipher.open(&mut sealed, 8).unwrap();
            assert!(
                sealed[8 + cipher.iv_len()..len - cipher.icv_len()]
                    .iter()
                    .all(|&b| b == 0)
            );
        }
    }

    #[test]
    fn shape_errors_not_panics() {
        for cipher in all_ciphers() {
            for len in 0..64 {
                let mut buf = vec![0u8; len];
                for aad in [0, 8, 100, usize::MAX] {
                    assert!(cipher.open(&mut buf, aad).is_err());
                }
            }
        }
        let cbc = &all_ciphers()[0];
        let mut buf = vec![0u8; 16 + 15 + 12];
        assert_eq!(cbc.seal(&mut buf, 0), Err(CipherError::Misaligned));
    }

    #[test]
    fn rejects_wrong_keys() {
        assert!(matches!(
            Cipher::new(Encryption::Aes128Gcm16, None, &[0; 16], &[]),
            Err(CipherError::KeyLength { .. })
        ));
        assert_eq!(
            Cipher::new(Encryption::Aes128Gcm16, Some(Integrity::Sha1), &[0; 20], &[0; 20]).unwrap_err(),
            CipherError::IntegrityMismatch
        );
        assert_eq!(
            Cipher::new(Encryption::Aes256Cbc, None, &[0; 32], &[]).unwrap_err(),
            CipherError::IntegrityMismatch
        );
        assert!(matches!(
            Cipher::new(
                Encryption::Aes256Cbc,
                Some(Integrity::Sha2_512),
                &[0; 32],
                &[0; 32]
            ),
            Err(CipherError::KeyLength { .. })
        ));
    }

    #[test]
    fn ivs_are_unique_and_cbc_ivs_look_random() {
        let gcm = &all_ciphers()[all_ciphers().len() - 1];
        let mut iv = [0u8; 8];
        gcm.write_iv(0x0102, &mut iv).unwrap();
        assert_eq!(iv, [0, 0, 0, 0, 0, 0, 1, 2]);
        let cbc = &all_ciphers()[0];
        let mut seen = std::collections::HashSet::new();
        for n in 0..1000u64 {
            let mut iv = [0u8; 16];
            cbc.write_iv(n, &mut iv).unwrap();
            assert!(seen.insert(iv));
            // Not the counter in clear: the high octets are not all zero.
            assert_ne!(&iv[..8], &[0u8; 8]);
        }
    }

    proptest::proptest! {
        /// Any aad length and payload (aligned as the caller must) round-trips for every suite.
        #[test]
        fn seal_open_round_trip(
            suite in 0usize..10,
            aad in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            blocks in 0usize..8,
            fill in proptest::prelude::any::<u8>(),
            counter in proptest::prelude::any::<u64>(),
        ) {
            let cipher = &all_ciphers()[suite];
            let payload = vec![fill; blocks * cipher.block_len()];
            let mut buf = [aad.clone(), vec![0; cipher.iv_len()], payload.clone(), vec![0; cipher.icv_len()]].concat();
            cipher.write_iv(counter, &mut buf[aad.len()..]).unwrap();
            cipher.seal(&mut buf, aad.len()).unwrap();
            proptest::prop_assert_eq!(&buf[..aad.len()], &aad[..]);
            cipher.open(&mut buf, aad.len()).unwrap();
            let body = aad.len() + cipher.iv_len();
            proptest::prop_assert_eq!(&buf[body..body + payload.len()], &payload[..]);
        }

        /// Arbitrary bytes and aad lengths: `open` returns an error, never panics.
        #[test]
        fn open_never_panics(
            suite in 0usize..10,
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            aad_len in 0usize..140,
        ) {
            let cipher = &all_ciphers()[suite];
            proptest::prop_assert!(cipher.open(&mut bytes, aad_len).is_err());
        }
    }
}
