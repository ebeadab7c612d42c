//! The algorithms AWS Site-to-Site VPN allows, named once for the whole crate.
//!
//! Config parsing, IKE proposal building/selection and the ESP data plane all speak these types, so an
//! algorithm that AWS does not offer cannot be represented anywhere. IANA numbers are from the IKEv2
//! registry (RFC 7296 §3.3.2, RFC 5282, RFC 4868, RFC 5114, RFC 5903).

use std::fmt;

/// Encryption transform (phase 1 and phase 2 share the list AWS allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Encryption {
    /// AES-CBC with a 128-bit key (RFC 3602). AWS name `AES128`.
    Aes128Cbc,
    /// AES-CBC with a 256-bit key. AWS name `AES256`.
    Aes256Cbc,
    /// AES-GCM with a 16-octet ICV and a 128-bit key (RFC 4106/5282). AWS name `AES128-GCM-16`.
    Aes128Gcm16,
    /// AES-GCM with a 16-octet ICV and a 256-bit key. AWS name `AES256-GCM-16`.
    Aes256Gcm16,
}

impl Encryption {
    pub const ALL: [Encryption; 4] = [
        Self::Aes128Cbc,
        Self::Aes256Cbc,
        Self::Aes128Gcm16,
        Self::Aes256Gcm16,
    ];

    /// IKEv2 transform type 1 ID: ENCR_AES_CBC = 12, ENCR_AES_GCM_16 = 20.
    pub fn transform_id(self) -> u16 {
        match self {
            Self::Aes128Cbc | Self::Aes256Cbc => 12,
            Self::Aes128Gcm16 | Self::Aes256Gcm16 => 20,
        }
    }

    /// Key length in bits, carried in the Key Length transform attribute.
    pub fn key_bits(self) -> u16 {
        match self {
            Self::Aes128Cbc | Self::Aes128Gcm16 => 128,
            Self::Aes256Cbc | Self::Aes256Gcm16 => 256,
        }
    }

    /// Keying material length in octets: the AES key, plus the 4-octet salt for GCM (RFC 5282 §7.1).
    pub fn keymat_len(self) -> usize {
        let key = usize::from(self.key_bits()) / 8;
        if self.is_aead() { key + 4 } else { key }
    }

    /// AEAD transforms carry no separate integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::Aes128Gcm16 | Self::Aes256Gcm16)
    }

    /// Look up by IKEv2 transform ID and key length attribute.
    pub fn from_transform(id: u16, key_bits: u16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.transform_id() == id && e.key_bits() == key_bits)
    }

    /// The program's one strength order (higher = stronger), used for the offer order, the
    /// responder's choice and `cgwd check`: AES-GCM ahead of AES-CBC (an AEAD, and the fastest data
    /// plane), then the longer key.
    pub fn strength(self) -> u8 {
        match self {
            Self::Aes256Gcm16 => 4,
            Self::Aes128Gcm16 => 3,
            Self::Aes256Cbc => 2,
            Self::Aes128Cbc => 1,
        }
    }

    /// The name AWS uses in `Phase1EncryptionAlgorithms` etc.
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "AES128",
            Self::Aes256Cbc => "AES256",
            Self::Aes128Gcm16 => "AES128-GCM-16",
            Self::Aes256Gcm16 => "AES256-GCM-16",
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_name())
    }
}

/// Integrity algorithm (and, in phase 1, the PRF with the same hash: AWS requires PRF = integrity hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Integrity {
    /// HMAC-SHA1-96 (RFC 2404). AWS name `SHA1`.
    Sha1,
    /// HMAC-SHA2-256-128 (RFC 4868). AWS name `SHA2-256`.
    Sha2_256,
    /// HMAC-SHA2-384-192. AWS name `SHA2-384`.
    Sha2_384,
    /// HMAC-SHA2-512-256. AWS name `SHA2-512`.
    Sha2_512,
}

impl Integrity {
    pub const ALL: [Integrity; 4] = [Self::Sha1, Self::Sha2_256, Self::Sha2_384, Self::Sha2_512];

    /// IKEv2 transform type 3 ID: AUTH_HMAC_SHA1_96 = 2, AUTH_HMAC_SHA2_256_128 = 12, _384_192 = 13,
    /// _512_256 = 14.
    pub fn transform_id(self) -> u16 {
        match self {
            Self::Sha1 => 2,
            Self::Sha2_256 => 12,
            Self::Sha2_384 => 13,
            Self::Sha2_512 => 14,
        }
    }

    /// IKEv2 transform type 2 ID of the PRF with the same hash: PRF_HMAC_SHA1 = 2, PRF_HMAC_SHA2_256 = 5,
    /// _384 = 6, _512 = 7.
    pub fn prf_transform_id(self) -> u16 {
        match self {
            Self::Sha1 => 2,
            Self::Sha2_256 => 5,
            Self::Sha2_384 => 6,
            Self::Sha2_512 => 7,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.transform_id() == id)
    }

    pub fn from_prf_transform(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.prf_transform_id() == id)
    }

    /// HMAC key length in octets (= hash output length, RFC 4868 §2.1.1; 20 for SHA-1).
    pub fn key_len(self) -> usize {
        self.hash_len()
    }

    /// Hash output length in octets; also the PRF output length.
    pub fn hash_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha2_256 => 32,
            Self::Sha2_384 => 48,
            Self::Sha2_512 => 64,
        }
    }

    /// Truncated ICV length in octets.
    pub fn icv_len(self) -> usize {
        match self {
            Self::Sha1 => 12,
            Self::Sha2_256 => 16,
            Self::Sha2_384 => 24,
            Self::Sha2_512 => 32,
        }
    }

    /// The program's one strength order (higher = stronger): the longer hash.
    pub fn strength(self) -> u8 {
        match self {
            Self::Sha2_512 => 4,
            Self::Sha2_384 => 3,
            Self::Sha2_256 => 2,
            Self::Sha1 => 1,
        }
    }

    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha2_256 => "SHA2-256",
            Self::Sha2_384 => "SHA2-384",
            Self::Sha2_512 => "SHA2-512",
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_name())
    }
}

/// A Diffie-Hellman group by IANA number. Only the groups AWS allows can be constructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct DhGroup(u16);

impl DhGroup {
    /// Every group AWS allows in phase 2 (phase 1 is the same without 5).
    pub const ALL: [DhGroup; 13] = [
        DhGroup(2),
        DhGroup(5),
        DhGroup(14),
        DhGroup(15),
        DhGroup(16),
        DhGroup(17),
        DhGroup(18),
        DhGroup(19),
        DhGroup(20),
        DhGroup(21),
        DhGroup(22),
        DhGroup(23),
        DhGroup(24),
    ];
    pub const MODP_1024: DhGroup = DhGroup(2);
    pub const MODP_2048: DhGroup = DhGroup(14);
    pub const ECP_256: DhGroup = DhGroup(19);
    pub const ECP_384: DhGroup = DhGroup(20);
    pub const ECP_521: DhGroup = DhGroup(21);

    /// `Some` only for a group AWS allows.
    pub fn new(number: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.0 == number)
    }

    pub fn number(self) -> u16 {
        self.0
    }

    /// Length in octets of the KE payload's key exchange data (RFC 7296 §3.4, RFC 5903 §7).
    pub fn public_len(self) -> usize {
        match self.0 {
            2 | 22 => 128,
            5 => 192,
            14 | 23 | 24 => 256,
            15 => 384,
            16 => 512,
            17 => 768,
            18 => 1024,
            19 => 64,
            20 => 96,
            21 => 132,
            _ => unreachable!("DhGroup holds only AWS groups"),
        }
    }

    /// Elliptic-curve groups (19, 20, 21).
    pub fn is_ecp(self) -> bool {
        matches!(self.0, 19..=21)
    }

    /// Estimated security strength in bits, NIST SP 800-57 Part 1 Rev. 5 Table 2: a modulus counts
    /// for the largest row it reaches (1024 → 80, 2048 → 112, 3072 → 128, 7680 → 192); a curve for
    /// half its order's size. The RFC 5114 subgroups (22–24) count as their modulus.
    pub fn security_bits(self) -> u16 {
        match self.0 {
            2 | 5 | 22 => 80,
            14 | 23 | 24 => 112,
            15..=17 | 19 => 128,
            18 | 20 => 192,
            21 => 256,
            _ => unreachable!("DhGroup holds only AWS groups"),
        }
    }

    /// The program's one strength order (higher = stronger), used for the offer order, the
    /// responder's choice, the INVALID_KE_PAYLOAD request and `cgwd check`: by
    /// [`DhGroup::security_bits`], then elliptic curves ahead of MODP of the same strength (far
    /// cheaper), then the larger modulus, then the RFC 2409/3526 groups ahead of the RFC 5114
    /// subgroups of the same size (whose provenance is doubted). Strongest first:
    /// 21, 20, 18, 19, 17, 16, 15, 14, 24, 23, 5, 2, 22.
    pub fn strength(self) -> u8 {
        const STRONGEST_FIRST: [u16; 13] = [21, 20, 18, 19, 17, 16, 15, 14, 24, 23, 5, 2, 22];
        let at = STRONGEST_FIRST.iter().position(|&n| n == self.0).unwrap_or(12);
        13 - at as u8
    }

    /// Groups AWS still allows but below 112 bits or from RFC 5114 (2, 5, 22, 23, 24): cgwd leaves
    /// them out of its offer and `cgwd check` warns about them.
    pub fn is_weak(self) -> bool {
        self.security_bits() < 112 || matches!(self.0, 22..=24)
    }
}

impl TryFrom<u16> for DhGroup {
    type Error = String;
    fn try_from(n: u16) -> Result<Self, String> {
        Self::new(n).ok_or_else(|| format!("DH group {n} is not one AWS allows (2, 5, 14-24)"))
    }
}

impl From<DhGroup> for u16 {
    fn from(g: DhGroup) -> u16 {
        g.0
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One negotiated (or offered) suite: what an IKE SA or a Child SA runs with.
///
/// For an IKE SA `integrity` also names the PRF; for AEAD encryption it is `None` on a Child SA and on an
/// IKE SA it names only the PRF (`prf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Suite {
    pub encryption: Encryption,
    /// Integrity transform; `None` with AEAD encryption.
    pub integrity: Option<Integrity>,
    /// IKE SA only: the PRF (its hash). `None` on a Child SA.
    pub prf: Option<Integrity>,
    /// DH group (IKE SA), or the PFS group of a Child SA (`None` when PFS was not used).
    pub dh: Option<DhGroup>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_ids_round_trip() {
        for e in Encryption::ALL {
            assert_eq!(
                Encryption::from_transform(e.transform_id(), e.key_bits()),
                Some(e)
            );
        }
        for i in Integrity::ALL {
            assert_eq!(Integrity::from_transform(i.transform_id()), Some(i));
            assert_eq!(Integrity::from_prf_transform(i.prf_transform_id()), Some(i));
        }
    }

    #[test]
    fn strength_order_follows_security_bits_then_cost() {
        let mut groups = DhGroup::ALL.to_vec();
        groups.sort_by_key(|g| std::cmp::Reverse(g.strength()));
        let order: Vec<u16> = groups.iter().map(|g| g.number()).collect();
        assert_eq!(order, [21, 20, 18, 19, 17, 16, 15, 14, 24, 23, 5, 2, 22]);
        for w in groups.windows(2) {
            assert!(w[0].security_bits() >= w[1].security_bits(), "{w:?}");
        }
        let weak: Vec<u16> = DhGroup::ALL
            .iter()
            .filter(|g| g.is_weak())
            .map(|g| g.number())
            .collect();
        assert_eq!(weak, [2, 5, 22, 23, 24]);
        let mut e = Encryption::ALL.to_vec();
        e.sort_by_key(|e| std::cmp::Reverse(e.strength()));
        assert_eq!(
            e,
            [
                Encryption::Aes256Gcm16,
                Encryption::Aes128Gcm16,
                Encryption::Aes256Cbc,
                Encryption::Aes128Cbc
            ]
        );
    }

    #[test]
    fn only_aws_groups_exist() {
        assert!(DhGroup::new(1).is_none());
        assert!(DhGroup::new(31).is_none());
        assert_eq!(DhGroup::new(21).unwrap().public_len(), 132);
        assert_eq!(DhGroup::ALL.len(), 13);
    }
}
