//! Diffie-Hellman for every group AWS allows: MODP 2, 5, 14–18 (RFC 2409, RFC 3526), MODP with a
//! prime-order subgroup 22–24 (RFC 5114), ECP 19–21 (RFC 5903).
//!
//! ECP uses aws-lc-rs ECDH. aws-lc-rs has no finite-field DH, so MODP uses crypto-bigint's boxed
//! (runtime-sized) Montgomery arithmetic: it is written to be constant time (fixed-window exponentiation
//! with constant-time table lookups, no secret-dependent branches) and is maintained by RustCrypto as
//! the base of their RSA and elliptic-curve crates; `num-bigint`, the usual alternative, is explicitly
//! variable time and would leak the private exponent through timing. Only the exponent's bit length
//! (a per-group constant) shapes the running time.

use std::sync::OnceLock;

use aws_lc_rs::agreement;
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use zeroize::{Zeroize, Zeroizing};

use super::random::Random;
use super::{CryptoError, hex, modp_groups};
use crate::secret::Secret;
use crate::suite::DhGroup;

/// Our half of one Diffie-Hellman exchange. The private value is zeroized on drop (MODP here; ECP
/// inside AWS-LC, which cleanses keys when it frees them).
pub struct DhPrivate {
    group: DhGroup,
    public: Vec<u8>,
    key: KeyPair,
}

enum KeyPair {
    Modp { exponent: BoxedUint, bits: u32 },
    Ecp(agreement::PrivateKey),
}

impl Drop for DhPrivate {
    fn drop(&mut self) {
        if let KeyPair::Modp { exponent, .. } = &mut self.key {
            exponent.zeroize();
        }
    }
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate(group {})", self.group)
    }
}

impl DhPrivate {
    /// A fresh key pair; deterministic given the `rng` state (so seeded tests replay exactly).
    pub fn generate(group: DhGroup, rng: &mut dyn Random) -> Result<Self, CryptoError> {
        if group.is_ecp() {
            generate_ecp(group, rng)
        } else {
            generate_modp(group, rng)
        }
    }

    /// A key pair from given private bytes (big-endian exponent or scalar), for known-answer tests.
    /// Production code uses [`DhPrivate::generate`].
    pub fn from_private_bytes(group: DhGroup, private: &[u8]) -> Result<Self, CryptoError> {
        let rejected = CryptoError::KeyGeneration {
            group: group.number(),
        };
        if group.is_ecp() {
            let (alg, len) = ecdh_algorithm(group);
            if private.len() != len {
                return Err(rejected);
            }
            let key = agreement::PrivateKey::from_private_key(alg, private).map_err(|_| rejected)?;
            ecp_from_key(group, key)
        } else {
            let modp = modp_group(group);
            let bits = u32::try_from(private.len() * 8).map_err(|_| rejected.clone())?;
            let exponent = BoxedUint::from_be_slice(private, bits.max(64)).map_err(|_| rejected.clone())?;
            let upper = modp.subgroup_order.as_ref().unwrap_or(&modp.p_minus_1);
            if bool::from(exponent.is_zero()) || exponent >= *upper {
                return Err(rejected);
            }
            Ok(modp_from_exponent(group, modp, exponent, bits))
        }
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The KE payload's key exchange data: exactly `group.public_len()` octets; g^x padded to len(p) for
    /// MODP, `x | y` without the 0x04 point-format octet for ECP (RFC 5903 §7).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data, validated first (RFC 6989): wrong length, 0, 1, p-1, ≥ p, outside
    /// the prime-order subgroup (groups 22–24), or not on the curve are all errors.
    ///
    /// MODP returns g^ir padded to len(p) (RFC 7296 §2.14); ECP returns the x coordinate only
    /// (RFC 5903 §7).
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Secret, CryptoError> {
        let expected = self.group.public_len();
        if peer_public.len() != expected {
            return Err(CryptoError::PublicValueLength {
                group: self.group.number(),
                expected,
                got: peer_public.len(),
            });
        }
        let invalid = CryptoError::InvalidPublicValue {
            group: self.group.number(),
        };
        match &self.key {
            KeyPair::Ecp(key) => {
                let mut point = Vec::with_capacity(1 + peer_public.len());
                point.push(0x04);
                point.extend_from_slice(peer_public);
                let peer = agreement::UnparsedPublicKey::new(key.algorithm(), &point);
                agreement::agree(key, peer, invalid, |x| Ok(Secret::from_slice(x)))
            }
            KeyPair::Modp { exponent, bits } => {
                let modp = modp_group(self.group);
                let y = BoxedUint::from_be_slice(peer_public, modp.bits).map_err(|_| invalid.clone())?;
                let one = BoxedUint::one_with_precision(modp.bits);
                if y <= one || y >= modp.p_minus_1 {
                    return Err(invalid);
                }
                let y = BoxedMontyForm::new(y, &modp.params);
                if let Some(q) = &modp.subgroup_order {
                    // y^q = 1 proves y lies in the order-q subgroup (RFC 6989 §2.2); q is public, so
                    // variable time is fine here.
                    if !bool::from(y.pow(q).retrieve().is_one()) {
                        return Err(invalid);
                    }
                }
                let mut z_monty = y.pow_bounded_exp(exponent, *bits);
                let mut z = z_monty.retrieve();
                z_monty.zeroize();
                // Unreachable for a validated y and 0 < x < order, but a 1 here must never become a key.
                let degenerate = bool::from(z.is_one());
                let bytes = z.to_be_bytes().into_vec();
                z.zeroize();
                let secret = Secret::new(bytes);
                if degenerate {
                    return Err(invalid);
                }
                Ok(secret)
            }
        }
    }
}

/// The cheap half of [`DhPrivate::shared_secret`]'s validation, for a responder to run before it
/// spends anything on DH: the length, the range 1 < y < p−1 (MODP), a point on the curve (ECP). A
/// value failing it is refused before we generate a key of our own. (The subgroup test of groups
/// 22–24 costs an exponentiation and stays in `shared_secret`.)
pub fn check_peer_value(group: DhGroup, peer_public: &[u8]) -> Result<(), CryptoError> {
    let expected = group.public_len();
    if peer_public.len() != expected {
        return Err(CryptoError::PublicValueLength {
            group: group.number(),
            expected,
            got: peer_public.len(),
        });
    }
    let invalid = CryptoError::InvalidPublicValue {
        group: group.number(),
    };
    if group.is_ecp() {
        let (alg, _) = ecdh_algorithm(group);
        let mut point = Vec::with_capacity(1 + peer_public.len());
        point.push(0x04);
        point.extend_from_slice(peer_public);
        return agreement::ParsedPublicKey::try_from(&agreement::UnparsedPublicKey::new(alg, &point))
            .map(|_| ())
            .map_err(|_| invalid);
    }
    let modp = modp_group(group);
    let y = BoxedUint::from_be_slice(peer_public, modp.bits).map_err(|_| invalid.clone())?;
    let one = BoxedUint::one_with_precision(modp.bits);
    if y <= one || y >= modp.p_minus_1 {
        return Err(invalid);
    }
    Ok(())
}

/// A MODP group ready for arithmetic.
struct ModpGroup {
    params: BoxedMontyParams,
    generator: BoxedMontyForm,
    p_minus_1: BoxedUint,
    /// q for the RFC 5114 groups.
    subgroup_order: Option<BoxedUint>,
    /// Bits of p (a multiple of 64 for every group here, so to_be_bytes gives exactly len(p)).
    bits: u32,
    /// Private exponent size for the safe-prime groups.
    exponent_bits: u32,
}

const MODP_GROUPS: [u16; 10] = [2, 5, 14, 15, 16, 17, 18, 22, 23, 24];

/// Private exponent length for the safe-prime groups: at least twice the group's strength, taking RFC
/// 3526 §8's higher estimate ("Strength Estimate 2"), rounded up to whole 64-bit limbs.
fn safe_prime_exponent_bits(group: u16) -> u32 {
    match group {
        2 | 5 => 256,
        14 => 320,
        15 => 448,
        16 => 512,
        17 => 576,
        _ => 640,
    }
}

fn modp_group(group: DhGroup) -> &'static ModpGroup {
    static CACHE: [OnceLock<ModpGroup>; 10] = [const { OnceLock::new() }; 10];
    let index = MODP_GROUPS
        .iter()
        .position(|&g| g == group.number())
        .expect("caller passes a MODP group");
    CACHE[index].get_or_init(|| {
        let published = modp_groups::params(group.number()).expect("MODP group has parameters");
        let p_bytes = hex::decode(published.prime);
        let bits = u32::try_from(p_bytes.len() * 8).expect("small");
        let p = BoxedUint::from_be_slice(&p_bytes, bits).expect("fits its own size");
        let p_minus_1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
        let p = Odd::new(p).expect("published primes are odd");
        let params = BoxedMontyParams::new(p);
        let g =
            BoxedUint::from_be_slice(&hex::decode(published.generator), bits).expect("generator is below p");
        let generator = BoxedMontyForm::new(g, &params);
        let subgroup_order = published.subgroup_order.map(|q| {
            let q = hex::decode(q);
            let q_bits = u32::try_from(q.len() * 8).expect("small").next_multiple_of(64);
            BoxedUint::from_be_slice(&q, q_bits).expect("fits")
        });
        ModpGroup {
            params,
            generator,
            p_minus_1,
            subgroup_order,
            bits,
            exponent_bits: safe_prime_exponent_bits(group.number()),
        }
    })
}

fn generate_modp(group: DhGroup, rng: &mut dyn Random) -> Result<DhPrivate, CryptoError> {
    let modp = modp_group(group);
    match &modp.subgroup_order {
        // RFC 5114 groups: x uniform in [1, q-1] by rejection sampling (SP 800-56A §5.6.1.1).
        Some(q) => {
            let q_bits = q.bit_width_vartime();
            let mut bytes = Zeroizing::new(vec![0u8; q_bits.div_ceil(8) as usize]);
            let top_mask = 0xffu8 >> ((8 - q_bits % 8) % 8);
            // Each draw succeeds with probability > 1/2; 128 failures means a broken RNG.
            for _ in 0..128 {
                rng.fill(&mut bytes);
                bytes[0] &= top_mask;
                let mut x = BoxedUint::from_be_slice(&bytes, q.bits_precision()).expect("at most q's size");
                if !bool::from(x.is_zero()) && x < *q {
                    return Ok(modp_from_exponent(group, modp, x, q_bits));
                }
                x.zeroize();
            }
            Err(CryptoError::KeyGeneration {
                group: group.number(),
            })
        }
        // Safe-prime groups: a random exponent of fixed length with its top bit set (so never 0 or 1,
        // and always far below p-1).
        None => {
            let bits = modp.exponent_bits;
            let mut bytes = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
            rng.fill(&mut bytes);
            bytes[0] |= 0x80;
            let x = BoxedUint::from_be_slice(&bytes, bits).expect("exact size");
            Ok(modp_from_exponent(group, modp, x, bits))
        }
    }
}

fn modp_from_exponent(group: DhGroup, modp: &ModpGroup, exponent: BoxedUint, bits: u32) -> DhPrivate {
    let public = modp
        .generator
        .pow_bounded_exp(&exponent, bits)
        .retrieve()
        .to_be_bytes()
        .into_vec();
    debug_assert_eq!(public.len(), group.public_len());
    DhPrivate {
        group,
        public,
        key: KeyPair::Modp { exponent, bits },
    }
}

fn ecdh_algorithm(group: DhGroup) -> (&'static agreement::Algorithm, usize) {
    match group.number() {
        19 => (&agreement::ECDH_P256, 32),
        20 => (&agreement::ECDH_P384, 48),
        _ => (&agreement::ECDH_P521, 66),
    }
}

fn generate_ecp(group: DhGroup, rng: &mut dyn Random) -> Result<DhPrivate, CryptoError> {
    let (alg, len) = ecdh_algorithm(group);
    let mut scalar = Zeroizing::new(vec![0u8; len]);
    // A draw is rejected only if it is 0 or ≥ n: about 2^-32 for P-256/P-384, and P-521 after masking
    // to 521 bits about 1/2^260. Many failures in a row means a broken RNG.
    for _ in 0..64 {
        rng.fill(&mut scalar);
        if group.number() == 21 {
            scalar[0] &= 0x01;
        }
        if let Ok(key) = agreement::PrivateKey::from_private_key(alg, &scalar) {
            return ecp_from_key(group, key);
        }
    }
    Err(CryptoError::KeyGeneration {
        group: group.number(),
    })
}

fn ecp_from_key(group: DhGroup, key: agreement::PrivateKey) -> Result<DhPrivate, CryptoError> {
    let public = key.compute_public_key().map_err(|_| CryptoError::KeyGeneration {
        group: group.number(),
    })?;
    // Uncompressed SEC1: 0x04 | x | y. IKEv2 carries x | y (RFC 5903 §7).
    let public = public.as_ref()[1..].to_vec();
    debug_assert_eq!(public.len(), group.public_len());
    Ok(DhPrivate {
        group,
        public,
        key: KeyPair::Ecp(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random::SeededRandom;
    use crypto_bigint::Resize;

    fn group(n: u16) -> DhGroup {
        DhGroup::new(n).unwrap()
    }

    fn monty_pow(base: &BoxedUint, exponent: &BoxedUint, modulus: &BoxedUint) -> BoxedUint {
        let params = BoxedMontyParams::new(Odd::new(modulus.clone()).unwrap());
        BoxedMontyForm::new(base.clone().resize_unchecked(modulus.bits_precision()), &params)
            .pow(exponent)
            .retrieve()
    }

    /// Catches any slip in the transcribed constants: p passes a Fermat test, and the generator has
    /// the order the RFC states (q for RFC 5114; (p-1)/2 for the safe primes, where 2 is a quadratic
    /// residue because p ≡ 7 mod 8).
    #[test]
    fn published_group_parameters_are_consistent() {
        for n in MODP_GROUPS {
            let g = group(n);
            let modp = modp_group(g);
            assert_eq!(usize::try_from(modp.bits / 8).unwrap(), g.public_len(), "{n}");
            let p = modp.params.modulus().as_ref().clone();
            let three = BoxedUint::from(3u64).resize_unchecked(modp.bits);
            let one = BoxedUint::one_with_precision(modp.bits);
            assert_eq!(monty_pow(&three, &modp.p_minus_1, &p), one, "group {n}: p prime");
            let generator = modp.generator.retrieve();
            match &modp.subgroup_order {
                Some(q) => {
                    assert_eq!(monty_pow(&generator, q, &p), one, "group {n}: g^q");
                    let q_minus_1 = q.wrapping_sub(BoxedUint::one_with_precision(q.bits_precision()));
                    let three_q = BoxedUint::from(3u64).resize_unchecked(q.bits_precision());
                    let one_q = BoxedUint::one_with_precision(q.bits_precision());
                    assert_eq!(monty_pow(&three_q, &q_minus_1, q), one_q, "group {n}: q prime");
                }
                None => {
                    assert_eq!(generator, BoxedUint::from(2u64).resize_unchecked(modp.bits));
                    let half = modp.p_minus_1.shr_vartime(1).unwrap();
                    assert_eq!(monty_pow(&generator, &half, &p), one, "group {n}: 2^((p-1)/2)");
                }
            }
        }
    }

    #[test]
    fn keys_can_move_between_threads_and_never_print() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<DhPrivate>();
        let key = DhPrivate::generate(group(19), &mut SeededRandom::new(9)).unwrap();
        assert_eq!(format!("{key:?}"), "DhPrivate(group 19)");
    }

    #[test]
    fn both_sides_agree_in_every_group() {
        let mut rng = SeededRandom::new(1);
        for g in DhGroup::ALL {
            let a = DhPrivate::generate(g, &mut rng).unwrap();
            let b = DhPrivate::generate(g, &mut rng).unwrap();
            assert_eq!(a.group(), g);
            assert_eq!(a.public_value().len(), g.public_len(), "group {g}");
            assert_ne!(a.public_value(), b.public_value());
            let s1 = a.shared_secret(b.public_value()).unwrap();
            let s2 = b.shared_secret(a.public_value()).unwrap();
            assert_eq!(s1, s2, "group {g}");
            let expected_len = if g.is_ecp() {
                g.public_len() / 2
            } else {
                g.public_len()
            };
            assert_eq!(s1.len(), expected_len, "group {g}");
        }
    }

    #[test]
    fn generation_is_deterministic_given_the_seed() {
        for n in [2, 14, 19, 21, 24] {
            let a = DhPrivate::generate(group(n), &mut SeededRandom::new(42)).unwrap();
            let b = DhPrivate::generate(group(n), &mut SeededRandom::new(42)).unwrap();
            let c = DhPrivate::generate(group(n), &mut SeededRandom::new(43)).unwrap();
            assert_eq!(a.public_value(), b.public_value());
            assert_ne!(a.public_value(), c.public_value());
        }
    }

    /// An RNG that returns only zeros must produce an error, never a loop or a zero key.
    struct Zeros;
    impl Random for Zeros {
        fn fill(&mut self, out: &mut [u8]) {
            out.fill(0)
        }
    }

    #[test]
    fn broken_rng_is_an_error_for_ecp_and_subgroup_groups() {
        for n in [19, 20, 21, 22, 23, 24] {
            assert_eq!(
                DhPrivate::generate(group(n), &mut Zeros).unwrap_err(),
                CryptoError::KeyGeneration { group: n }
            );
        }
        // Safe-prime groups set the exponent's top bit, so even all-zero input gives a valid key.
        assert!(DhPrivate::generate(group(2), &mut Zeros).is_ok());
    }

    fn be(value: &BoxedUint, len: usize) -> Vec<u8> {
        let bytes = value.to_be_bytes();
        bytes[bytes.len() - len..].to_vec()
    }

    #[test]
    fn degenerate_modp_values_are_rejected() {
        let mut rng = SeededRandom::new(2);
        for n in [2, 5, 14, 22, 23, 24] {
            let g = group(n);
            let ours = DhPrivate::generate(g, &mut rng).unwrap();
            let modp = modp_group(g);
            let len = g.public_len();
            let p = modp.params.modulus().as_ref().clone();
            let mut one = vec![0u8; len];
            one[len - 1] = 1;
            let p_plus_1 = be(&p.wrapping_add(BoxedUint::one_with_precision(modp.bits)), len);
            for bad in [
                vec![0u8; len],
                one,
                be(&modp.p_minus_1, len),
                be(&p, len),
                p_plus_1,
                vec![0xff; len],
            ] {
                assert_eq!(
                    ours.shared_secret(&bad),
                    Err(CryptoError::InvalidPublicValue { group: n }),
                    "group {n}"
                );
            }
            for wrong_len in [0, len - 1, len + 1] {
                assert!(matches!(
                    ours.shared_secret(&vec![5u8; wrong_len]),
                    Err(CryptoError::PublicValueLength { .. })
                ));
            }
        }
    }

    #[test]
    fn values_outside_the_prime_order_subgroup_are_rejected() {
        // 2 is not in the order-q subgroup of any RFC 5114 group (its order is a multiple of a large
        // cofactor prime), and p-2 neither; both would pass a plain range check.
        let mut rng = SeededRandom::new(3);
        for n in [22, 23, 24] {
            let g = group(n);
            let ours = DhPrivate::generate(g, &mut rng).unwrap();
            let len = g.public_len();
            let mut two = vec![0u8; len];
            two[len - 1] = 2;
            assert_eq!(
                ours.shared_secret(&two),
                Err(CryptoError::InvalidPublicValue { group: n })
            );
        }
    }

    #[test]
    fn the_cheap_check_refuses_what_shared_secret_refuses_but_the_subgroup_test() {
        let mut rng = crate::crypto::SeededRandom::new(7);
        for g in DhGroup::ALL {
            let peer = DhPrivate::generate(g, &mut rng).unwrap();
            assert!(check_peer_value(g, peer.public_value()).is_ok(), "group {g}");
            let len = g.public_len();
            assert!(check_peer_value(g, &vec![0u8; len]).is_err(), "zero, group {g}");
            assert!(
                check_peer_value(g, &vec![0xffu8; len]).is_err(),
                "all ones, group {g}"
            );
            assert!(
                check_peer_value(g, &peer.public_value()[1..]).is_err(),
                "short, group {g}"
            );
            let mut off = peer.public_value().to_vec();
            if g.is_ecp() {
                // y + 1: no longer on the curve.
                let last = off.len() - 1;
                off[last] ^= 1;
                assert!(check_peer_value(g, &off).is_err(), "off the curve, group {g}");
            }
        }
    }

    #[test]
    fn points_off_the_curve_are_rejected() {
        let mut rng = SeededRandom::new(4);
        for n in [19, 20, 21] {
            let g = group(n);
            let ours = DhPrivate::generate(g, &mut rng).unwrap();
            let peer = DhPrivate::generate(g, &mut rng).unwrap();
            let mut off_curve = peer.public_value().to_vec();
            let last = off_curve.len() - 1;
            off_curve[last] ^= 1; // y changed: no longer on the curve
            for bad in [vec![0u8; g.public_len()], vec![0xff; g.public_len()], off_curve] {
                assert_eq!(
                    ours.shared_secret(&bad),
                    Err(CryptoError::InvalidPublicValue { group: n }),
                    "group {n}"
                );
            }
            assert!(matches!(
                ours.shared_secret(&peer.public_value()[1..]),
                Err(CryptoError::PublicValueLength { .. })
            ));
        }
    }

    #[test]
    fn private_bytes_are_range_checked() {
        for n in [19, 20, 21] {
            let g = group(n);
            let len = ecdh_algorithm(g).1;
            assert!(DhPrivate::from_private_bytes(g, &vec![0u8; len]).is_err());
            assert!(DhPrivate::from_private_bytes(g, &vec![0xffu8; len]).is_err());
            assert!(DhPrivate::from_private_bytes(g, &vec![1u8; len - 1]).is_err());
        }
        assert!(DhPrivate::from_private_bytes(group(22), &[0u8; 20]).is_err());
        assert!(DhPrivate::from_private_bytes(group(22), &[0xffu8; 20]).is_err()); // ≥ q
        assert!(DhPrivate::from_private_bytes(group(22), &[0x01u8; 20]).is_ok());
        assert!(DhPrivate::from_private_bytes(group(14), &[0u8; 32]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Hostile KE data never panics: any bytes give a secret or an error.
        #[test]
        fn arbitrary_peer_values_never_panic(
            n in proptest::sample::select(vec![2u16, 19, 20, 21, 22]),
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..140),
            pad_to_length: bool,
        ) {
            let g = group(n);
            let ours = DhPrivate::generate(g, &mut SeededRandom::new(5)).unwrap();
            let mut peer = bytes;
            if pad_to_length {
                peer.resize(g.public_len(), 0x5a);
            }
            let _ = ours.shared_secret(&peer);
        }
    }
}
