//! Shared-key authentication (RFC 7296 §2.15).

use super::prf::prf;
use crate::secret::Secret;
use crate::suite::Integrity;

/// The pad string RFC 7296 §2.15 mixes into the PSK, 17 ASCII octets without a terminator.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The AUTH payload data for a pre-shared key:
/// `prf(prf(PSK, "Key Pad for IKEv2"), signed_message | peer_nonce | prf(SK_p, ID body))`.
///
/// * `signed_message` — the whole first message the signer sent (IKE_SA_INIT request for the initiator,
///   response for the responder), header included.
/// * `peer_nonce` — the other side's nonce data (Nr for the initiator, Ni for the responder).
/// * `sk_p` — SK_pi for the initiator's AUTH, SK_pr for the responder's.
/// * `id_payload_body` — the signer's ID payload after the generic header: ID type, 3 reserved octets,
///   identification data.
pub fn psk_auth(
    prf_alg: Integrity,
    psk: &[u8],
    signed_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_payload_body: &[u8],
) -> Secret {
    let maced_id = prf(prf_alg, sk_p, &[id_payload_body]);
    let padded_key = prf(prf_alg, psk, &[KEY_PAD]);
    prf(
        prf_alg,
        padded_key.expose(),
        &[signed_message, peer_nonce, maced_id.expose()],
    )
}

/// Constant-time comparison of AUTH values (so a forger learns nothing from timing). Different lengths
/// compare unequal.
pub fn auth_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_auth_follows_rfc7296_section_2_15() {
        let alg = Integrity::Sha2_256;
        let (psk, msg, nonce, sk_p, id) = (
            b"QMP5tKPP5qk95Y1Eee9c_82.MofNUJQV".as_slice(),
            b"IKE_SA_INIT message bytes".as_slice(),
            b"peer nonce".as_slice(),
            [7u8; 32],
            [1u8, 0, 0, 0, 192, 0, 2, 1],
        );
        // Built the long way: every intermediate as its own buffer.
        let maced_id = prf(alg, &sk_p, &[&id]);
        let key = prf(alg, psk, &[b"Key Pad for IKEv2"]);
        let mut octets = msg.to_vec();
        octets.extend_from_slice(nonce);
        octets.extend_from_slice(maced_id.expose());
        let expected = prf(alg, key.expose(), &[&octets]);
        let got = psk_auth(alg, psk, msg, nonce, &sk_p, &id);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 32);
        // Any input changes the result.
        assert_ne!(psk_auth(alg, b"other", msg, nonce, &sk_p, &id), got);
        assert_ne!(psk_auth(alg, psk, msg, b"x", &sk_p, &id), got);
        assert_ne!(psk_auth(alg, psk, msg, nonce, &[8u8; 32], &id), got);
        assert_ne!(psk_auth(alg, psk, msg, nonce, &sk_p, &id[..7]), got);
    }

    #[test]
    fn auth_eq_compares_content_and_length() {
        assert!(auth_eq(b"abc", b"abc"));
        assert!(!auth_eq(b"abc", b"abd"));
        assert!(!auth_eq(b"abc", b"ab"));
        assert!(auth_eq(b"", b""));
    }
}
