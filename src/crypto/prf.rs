//! The IKEv2 pseudorandom function (HMAC with the negotiated hash) and prf+ (RFC 7296 §2.13).

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::CryptoError;
use crate::secret::Secret;
use crate::suite::Integrity;

fn hmac_algorithm(alg: Integrity) -> hmac::Algorithm {
    match alg {
        // SHA-1 is what AWS still offers; as a PRF (HMAC) it has no known practical weakness.
        Integrity::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Integrity::Sha2_256 => hmac::HMAC_SHA256,
        Integrity::Sha2_384 => hmac::HMAC_SHA384,
        Integrity::Sha2_512 => hmac::HMAC_SHA512,
    }
}

/// `prf(key, data[0] | data[1] | ...)`: HMAC over the concatenation, without building it.
pub fn prf(alg: Integrity, key: &[u8], data: &[&[u8]]) -> Secret {
    let key = hmac::Key::new(hmac_algorithm(alg), key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in data {
        ctx.update(part);
    }
    Secret::from_slice(ctx.sign().as_ref())
}

/// The largest prf+ output: 255 blocks, because the counter is one octet (RFC 7296 §2.13).
pub fn prf_plus_max_len(alg: Integrity) -> usize {
    255 * alg.hash_len()
}

/// `prf+(K, S) = T1 | T2 | ...` truncated to `len`, where `T1 = prf(K, S | 0x01)` and
/// `Tn = prf(K, Tn-1 | S | n)` (RFC 7296 §2.13). `seed` parts are concatenated to form S.
pub fn prf_plus(alg: Integrity, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret, CryptoError> {
    let max = prf_plus_max_len(alg);
    if len > max {
        return Err(CryptoError::OutputTooLong { requested: len, max });
    }
    let key = hmac::Key::new(hmac_algorithm(alg), key);
    // Reserved up front so the buffer never reallocates (which would leave unzeroized copies).
    let mut out = Zeroizing::new(Vec::with_capacity(len + alg.hash_len()));
    let mut previous: Option<hmac::Tag> = None;
    let mut counter: u8 = 1;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        if let Some(t) = &previous {
            ctx.update(t.as_ref());
        }
        for part in seed {
            ctx.update(part);
        }
        ctx.update(&[counter]);
        let block = ctx.sign();
        out.extend_from_slice(block.as_ref());
        previous = Some(block);
        // Cannot overflow: len ≤ 255 blocks was checked above.
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Ok(Secret::new(std::mem::take(&mut *out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prf+ written straight from RFC 7296 §2.13, building every input by concatenation.
    fn naive_prf_plus(alg: Integrity, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t: Vec<u8> = Vec::new();
        for n in 1..=255u8 {
            if out.len() >= len {
                break;
            }
            let mut input = t.clone();
            input.extend_from_slice(seed);
            input.push(n);
            t = prf(alg, key, &[&input]).expose().to_vec();
            out.extend_from_slice(&t);
        }
        out.truncate(len);
        out
    }

    #[test]
    fn prf_plus_matches_the_definition_for_every_hash() {
        let key = b"a key of some length";
        for alg in Integrity::ALL {
            for len in [0, 1, alg.hash_len() - 1, alg.hash_len(), alg.hash_len() + 1, 333] {
                let got = prf_plus(alg, key, &[b"seed part one|", b"two"], len).unwrap();
                assert_eq!(
                    got.expose(),
                    naive_prf_plus(alg, key, b"seed part one|two", len),
                    "{alg} len {len}"
                );
            }
        }
    }

    #[test]
    fn prf_plus_allows_exactly_255_blocks() {
        for alg in Integrity::ALL {
            let max = 255 * alg.hash_len();
            let full = prf_plus(alg, b"k", &[b"s"], max).unwrap();
            assert_eq!(full.expose(), naive_prf_plus(alg, b"k", b"s", max));
            assert_eq!(
                prf_plus(alg, b"k", &[b"s"], max + 1),
                Err(CryptoError::OutputTooLong {
                    requested: max + 1,
                    max
                })
            );
        }
    }

    #[test]
    fn prf_concatenates_its_parts() {
        for alg in Integrity::ALL {
            assert_eq!(
                prf(alg, b"key", &[b"ab", b"", b"cd"]),
                prf(alg, b"key", &[b"abcd"])
            );
            assert_eq!(prf(alg, b"key", &[]).len(), alg.hash_len());
        }
    }
}
