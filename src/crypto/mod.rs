//! The crypto provider: the only module that names a crypto library.
//!
//! aws-lc-rs supplies HMAC, ECDH and OS randomness; crypto-bigint supplies the constant-time Montgomery
//! arithmetic for the MODP groups (aws-lc-rs exposes no finite-field DH). Everything here is sans-IO:
//! randomness comes from a [`Random`] the caller passes in.

pub mod auth;
pub mod cipher;
pub mod dh;
mod hex;
pub mod keymat;
mod modp_groups;
pub mod prf;
pub mod random;
pub mod sig;

pub use auth::{auth_eq, psk_auth};
pub use dh::{DhPrivate, check_peer_value};
pub use keymat::{
    ChildKeys, IkeKeys, RekeyPrfPlus, derive_child_keys, derive_ike_keys, derive_rekeyed_ike_keys,
};
pub use prf::{prf, prf_plus};
pub use random::{OsRandom, Random, SeededRandom};

/// What can go wrong in the provider. Every variant is the peer's fault or a local RNG/library failure;
/// none carries secret material.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// prf+ can produce at most 255 blocks (RFC 7296 §2.13).
    #[error("prf+ output of {requested} octets exceeds the maximum of {max}")]
    OutputTooLong { requested: usize, max: usize },
    /// The peer's KE data does not have the group's fixed length (RFC 7296 §3.4, RFC 5903 §7).
    #[error("DH group {group}: key exchange data is {got} octets, expected {expected}")]
    PublicValueLength { group: u16, expected: usize, got: usize },
    /// The peer's public value is out of range, not in the prime-order subgroup, or not on the curve
    /// (RFC 6989).
    #[error("DH group {group}: invalid peer public value")]
    InvalidPublicValue { group: u16 },
    /// The library failed to make a key pair (should not happen with a working RNG).
    #[error("DH group {group}: key generation failed")]
    KeyGeneration { group: u16 },
}
