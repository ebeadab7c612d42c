//! Key derivation for IKE SAs (RFC 7296 §2.14, §2.18) and Child SAs (§2.17).

use super::prf::{prf, prf_plus};
use crate::secret::Secret;
use crate::suite::{Encryption, Integrity};

/// The seven IKE SA keys, in the order prf+ produces them (RFC 7296 §2.14).
///
/// With AEAD encryption `sk_ai`/`sk_ar` are empty, and `sk_ei`/`sk_er` end with the 4-octet GCM salt
/// (RFC 5282 §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

/// Keys of one Child SA pair: `(encryption incl. GCM salt, integrity — empty for AEAD)` per direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildKeys {
    pub initiator_to_responder: (Secret, Secret),
    pub responder_to_initiator: (Secret, Secret),
}

/// Cuts a prf+ stream into consecutive keys.
struct Splitter<'a> {
    stream: &'a [u8],
}

impl Splitter<'_> {
    fn take(&mut self, len: usize) -> Secret {
        let (head, tail) = self.stream.split_at(len);
        self.stream = tail;
        Secret::from_slice(head)
    }
}

fn integrity_key_len(integrity: Option<Integrity>) -> usize {
    integrity.map_or(0, Integrity::key_len)
}

/// prf+ for lengths this module computes from the suite: always far below 255 blocks (the largest,
/// SHA-1 IKE keys with AES-256-CBC, is 7·20+… < 300 octets against a limit of 5100).
fn expand(alg: Integrity, key: &[u8], seed: &[&[u8]], len: usize) -> Secret {
    prf_plus(alg, key, seed, len).expect("suite key lengths are far below the prf+ limit")
}

/// What fixes the lengths of an IKE SA's keys: its PRF (SK_d, SK_pi, SK_pr), cipher and MAC.
struct KeyLengths {
    prf: Integrity,
    encryption: Encryption,
    integrity: Option<Integrity>,
}

fn ike_keys_from_skeyseed(
    lengths: KeyLengths,
    expand_with: Integrity,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    // SK_d, SK_pi and SK_pr take the PRF's preferred key size, its output length (RFC 7296 §2.14).
    let prf_len = lengths.prf.hash_len();
    let integ_len = integrity_key_len(lengths.integrity);
    let encr_len = lengths.encryption.keymat_len();
    let total = 3 * prf_len + 2 * integ_len + 2 * encr_len;
    let stream = expand(
        expand_with,
        skeyseed,
        &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
        total,
    );
    let mut s = Splitter {
        stream: stream.expose(),
    };
    IkeKeys {
        sk_d: s.take(prf_len),
        sk_ai: s.take(integ_len),
        sk_ar: s.take(integ_len),
        sk_ei: s.take(encr_len),
        sk_er: s.take(encr_len),
        sk_pi: s.take(prf_len),
        sk_pr: s.take(prf_len),
    }
}

/// Keys of a new IKE SA from IKE_SA_INIT (RFC 7296 §2.14):
/// `SKEYSEED = prf(Ni | Nr, g^ir)`, `{SK_d | SK_ai | ... | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`.
///
/// `ni`/`nr` are the nonce payload bodies; `shared` is g^ir as [`super::DhPrivate::shared_secret`]
/// returns it.
#[allow(clippy::too_many_arguments)]
pub fn derive_ike_keys(
    prf_alg: Integrity,
    encryption: Encryption,
    integrity: Option<Integrity>,
    ni: &[u8],
    nr: &[u8],
    shared: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    // The HMAC key is the whole Ni | Nr (RFC 7296 §2.14: only fixed-key-size PRFs truncate).
    let mut nonces = zeroize::Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    nonces.extend_from_slice(ni);
    nonces.extend_from_slice(nr);
    let skeyseed = prf(prf_alg, &nonces, &[shared]);
    ike_keys_from_skeyseed(
        KeyLengths {
            prf: prf_alg,
            encryption,
            integrity,
        },
        prf_alg,
        skeyseed.expose(),
        ni,
        nr,
        spi_i,
        spi_r,
    )
}

/// Which PRF runs prf+ when a rekeyed IKE SA's PRF differs from the old SA's (with the same PRF the
/// two agree).
///
/// RFC 7296 §2.18 computes SKEYSEED with the old SA's PRF and then the keys "using the new IKE SA's
/// cryptographic algorithms". strongSwan (every release from 4.x to 6.x, `keymat_v2.c`: "use OLD SAs
/// PRF functions for both prf_plus and prf") runs prf+ with the OLD PRF as well, and takes only the
/// lengths of SK_d, SK_pi and SK_pr from the new one. A peer's convention cannot be told in advance,
/// so cgwd keeps the PRF across IKE SA rekeys whenever it can, and otherwise tries both (see
/// `ike::ike_rekey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyPrfPlus {
    /// prf+ with the old SA's PRF (strongSwan's reading).
    OldPrf,
    /// prf+ with the new SA's PRF (RFC 7296 §2.18 as written).
    NewPrf,
}

/// Keys of an IKE SA made by rekeying (RFC 7296 §2.18):
/// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` with the OLD SA's PRF, then prf+ over the new
/// nonces and the new SPIs with the PRF `expansion` names; key lengths follow the new suite.
#[allow(clippy::too_many_arguments)]
pub fn derive_rekeyed_ike_keys(
    prf_alg: Integrity,
    old_prf: Integrity,
    old_sk_d: &[u8],
    encryption: Encryption,
    integrity: Option<Integrity>,
    ni: &[u8],
    nr: &[u8],
    shared: &[u8],
    spi_i: u64,
    spi_r: u64,
    expansion: RekeyPrfPlus,
) -> IkeKeys {
    let skeyseed = prf(old_prf, old_sk_d, &[shared, ni, nr]);
    let expand_with = match expansion {
        RekeyPrfPlus::OldPrf => old_prf,
        RekeyPrfPlus::NewPrf => prf_alg,
    };
    ike_keys_from_skeyseed(
        KeyLengths {
            prf: prf_alg,
            encryption,
            integrity,
        },
        expand_with,
        skeyseed.expose(),
        ni,
        nr,
        spi_i,
        spi_r,
    )
}

/// Child SA keys (RFC 7296 §2.17): `KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr)`; the initiator→responder
/// keys come first, and within a direction the encryption key precedes the integrity key.
///
/// `shared` is the PFS secret of a CREATE_CHILD_SA with KE payloads, `None` otherwise (and for the
/// first Child SA, created in IKE_AUTH).
pub fn derive_child_keys(
    prf_alg: Integrity,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    encryption: Encryption,
    integrity: Option<Integrity>,
) -> ChildKeys {
    let encr_len = encryption.keymat_len();
    let integ_len = integrity_key_len(integrity);
    let total = 2 * (encr_len + integ_len);
    let stream = match shared {
        Some(g_ir) => expand(prf_alg, sk_d, &[g_ir, ni, nr], total),
        None => expand(prf_alg, sk_d, &[ni, nr], total),
    };
    let mut s = Splitter {
        stream: stream.expose(),
    };
    let i_to_r = (s.take(encr_len), s.take(integ_len));
    let r_to_i = (s.take(encr_len), s.take(integ_len));
    ChildKeys {
        initiator_to_responder: i_to_r,
        responder_to_initiator: r_to_i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(parts: &[&Secret]) -> Vec<u8> {
        parts.iter().flat_map(|s| s.expose().to_vec()).collect()
    }

    #[test]
    fn ike_keys_are_consecutive_slices_of_prf_plus() {
        let (ni, nr, g_ir) = ([1u8; 32], [2u8; 32], [3u8; 256]);
        for prf_alg in Integrity::ALL {
            for encryption in Encryption::ALL {
                let integrity = (!encryption.is_aead()).then_some(prf_alg);
                let keys = derive_ike_keys(prf_alg, encryption, integrity, &ni, &nr, &g_ir, 0x1122, 0x3344);
                let prf_len = prf_alg.hash_len();
                let integ_len = integrity.map_or(0, Integrity::key_len);
                assert_eq!(keys.sk_d.len(), prf_len);
                assert_eq!(keys.sk_pi.len(), prf_len);
                assert_eq!(keys.sk_pr.len(), prf_len);
                assert_eq!(keys.sk_ai.len(), integ_len);
                assert_eq!(keys.sk_ar.len(), integ_len);
                assert_eq!(keys.sk_ei.len(), encryption.keymat_len());
                assert_eq!(keys.sk_er.len(), encryption.keymat_len());

                let skeyseed = prf(prf_alg, &[ni, nr].concat(), &[&g_ir]);
                let all = concat(&[
                    &keys.sk_d,
                    &keys.sk_ai,
                    &keys.sk_ar,
                    &keys.sk_ei,
                    &keys.sk_er,
                    &keys.sk_pi,
                    &keys.sk_pr,
                ]);
                let seed = [
                    &ni[..],
                    &nr[..],
                    &0x1122u64.to_be_bytes(),
                    &0x3344u64.to_be_bytes(),
                ]
                .concat();
                let stream = prf_plus(prf_alg, skeyseed.expose(), &[&seed], all.len()).unwrap();
                assert_eq!(all, stream.expose());
            }
        }
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let keys = derive_ike_keys(
            Integrity::Sha2_256,
            Encryption::Aes128Gcm16,
            None,
            b"ni",
            b"nr",
            b"g",
            1,
            2,
        );
        let printed = format!("{keys:?}");
        assert!(printed.contains("Secret(32 bytes)"), "{printed}");
        let k = keys.sk_d.expose();
        assert!(!printed.contains(&format!("{}, {}, {}", k[0], k[1], k[2])));
    }

    #[test]
    fn rekeyed_ike_keys_use_old_prf_for_skeyseed_and_the_chosen_prf_for_expansion() {
        let (ni, nr, g_ir) = ([4u8; 24], [5u8; 40], [6u8; 64]);
        let old_sk_d = [9u8; 20];
        let skeyseed = prf(Integrity::Sha1, &old_sk_d, &[&g_ir, &ni, &nr]);
        assert_eq!(skeyseed.len(), 20);
        let seed: [&[u8]; 4] = [&ni, &nr, &1u64.to_be_bytes(), &2u64.to_be_bytes()];
        for (expansion, expand_with) in [
            (RekeyPrfPlus::NewPrf, Integrity::Sha2_384),
            (RekeyPrfPlus::OldPrf, Integrity::Sha1),
        ] {
            let keys = derive_rekeyed_ike_keys(
                Integrity::Sha2_384,
                Integrity::Sha1,
                &old_sk_d,
                Encryption::Aes256Gcm16,
                None,
                &ni,
                &nr,
                &g_ir,
                1,
                2,
                expansion,
            );
            // SK_d is as long as the NEW PRF's key in both readings.
            let stream = prf_plus(expand_with, skeyseed.expose(), &seed, 48).unwrap();
            assert_eq!(keys.sk_d, stream, "{expansion:?}");
            assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
            assert_eq!(keys.sk_ei.len(), 36);
            assert_eq!(keys.sk_pr.len(), 48);
        }
    }

    #[test]
    fn child_keys_lengths_and_order_for_every_suite() {
        let (sk_d, ni, nr, g_ir) = ([8u8; 32], [1u8; 32], [2u8; 32], [3u8; 97]);
        for prf_alg in Integrity::ALL {
            for encryption in Encryption::ALL {
                let integrities: Vec<Option<Integrity>> = if encryption.is_aead() {
                    vec![None]
                } else {
                    Integrity::ALL.into_iter().map(Some).collect()
                };
                for integrity in integrities {
                    for shared in [None, Some(&g_ir[..])] {
                        let keys = derive_child_keys(prf_alg, &sk_d, shared, &ni, &nr, encryption, integrity);
                        let (ei, ai) = &keys.initiator_to_responder;
                        let (er, ar) = &keys.responder_to_initiator;
                        let integ_len = integrity.map_or(0, Integrity::key_len);
                        assert_eq!(ei.len(), encryption.keymat_len());
                        assert_eq!(er.len(), encryption.keymat_len());
                        assert_eq!(ai.len(), integ_len);
                        assert_eq!(ar.len(), integ_len);
                        assert_ne!(ei, er);
                        // RFC 7296 §2.17: i→r encryption, i→r integrity, r→i encryption, r→i integrity.
                        let all = concat(&[ei, ai, er, ar]);
                        let seed: Vec<u8> = match shared {
                            Some(g) => [g, &ni, &nr].concat(),
                            None => [&ni[..], &nr].concat(),
                        };
                        let stream = prf_plus(prf_alg, &sk_d, &[&seed], all.len()).unwrap();
                        assert_eq!(all, stream.expose());
                    }
                }
            }
        }
    }
}
