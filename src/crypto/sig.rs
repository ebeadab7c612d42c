//! Authentication by signature (RFC 7296 §2.15, RFC 7427, RFC 4754): the octets an AUTH signs,
//! signing them with the customer gateway's key, verifying a peer's AUTH against its certificate,
//! and checking that certificate against the configured CA chain and the identity the peer claims.
//! Sans-IO: the time is handed in.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::prf::prf;
use crate::config::cert::{Curve, SigningKey, missing_aws_extension, signed_by};
use crate::suite::Integrity;
use crate::wire::ike::cert::{CaKeyHash, SignatureAuth, SignatureScheme};
use crate::wire::ike::{AuthMethod, HashAlgorithm, IdRepr, IdType, PayloadRepr};

/// The octets the signer's AUTH signs (RFC 7296 §2.15):
/// `signed_message | peer_nonce | prf(SK_p, ID body)` — the PSK MAC's input, without the
/// `prf(prf(PSK, "Key Pad for IKEv2"), …)` step.
pub fn signed_octets(
    prf_alg: Integrity,
    signed_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_payload_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf(prf_alg, sk_p, &[id_payload_body]);
    [signed_message, peer_nonce, maced_id.expose()].concat()
}

/// The hash algorithms cgwd announces in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
pub const HASHES: [HashAlgorithm; 3] = [
    HashAlgorithm::SHA2_256,
    HashAlgorithm::SHA2_384,
    HashAlgorithm::SHA2_512,
];

/// How cgwd signs its AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnAuth {
    /// Digital Signature (method 14, RFC 7427) with this scheme.
    Digital(SignatureScheme),
    /// A classic method for a peer that did not announce RFC 7427: 1 (RSASSA-PKCS1-v1_5 with
    /// SHA-1), 9 (ECDSA P-256 with SHA-256) or 10 (ECDSA P-384 with SHA-384, RFC 4754).
    Classic(AuthMethod),
}

impl OwnAuth {
    /// The AUTH payload's method.
    pub fn method(self) -> AuthMethod {
        match self {
            OwnAuth::Digital(_) => AuthMethod::DIGITAL_SIGNATURE,
            OwnAuth::Classic(m) => m,
        }
    }

    /// For log lines: `method 14 (RFC 7427 Digital Signature, RsaPkcs1Sha256)`, `method 9 (...)`.
    pub fn describe(self) -> String {
        match self {
            OwnAuth::Digital(s) => format!("method 14 (RFC 7427 Digital Signature, {s:?})"),
            OwnAuth::Classic(AuthMethod::RSA_DIGITAL_SIGNATURE) => {
                "method 1 (RSA Digital Signature, PKCS#1 v1.5 with SHA-1)".into()
            }
            OwnAuth::Classic(AuthMethod::ECDSA_SHA256_P256) => {
                "method 9 (ECDSA with SHA-256 on P-256)".into()
            }
            OwnAuth::Classic(AuthMethod::ECDSA_SHA384_P384) => {
                "method 10 (ECDSA with SHA-384 on P-384)".into()
            }
            OwnAuth::Classic(m) => format!("method {m}"),
        }
    }
}

/// What cgwd signs its AUTH with (RFC 7427 §4), given the hashes the peer announced in its
/// SIGNATURE_HASH_ALGORITHMS (`None`: it sent none, or none that parses). A peer that announced
/// gets method 14 with a hash it listed: RSA PKCS#1 v1.5 with SHA-256, else SHA-384, else SHA-512;
/// ECDSA with the curve's own hash. Otherwise (no announcement, or no hash in common) the classic
/// method of the key: 1 for RSA, 9 for P-256, 10 for P-384.
pub fn choose_auth(key: &SigningKey, peer_hashes: Option<&[HashAlgorithm]>) -> OwnAuth {
    let listed = |h: HashAlgorithm| peer_hashes.is_some_and(|l| l.contains(&h));
    match key {
        SigningKey::Rsa { sha1, .. } => {
            let digital = [
                (HashAlgorithm::SHA2_256, SignatureScheme::RsaPkcs1Sha256),
                (HashAlgorithm::SHA2_384, SignatureScheme::RsaPkcs1Sha384),
                (HashAlgorithm::SHA2_512, SignatureScheme::RsaPkcs1Sha512),
            ]
            .into_iter()
            .find(|(h, _)| listed(*h));
            match (digital, sha1) {
                (Some((_, s)), _) => OwnAuth::Digital(s),
                (None, Some(_)) => OwnAuth::Classic(AuthMethod::RSA_DIGITAL_SIGNATURE),
                // A key only aws-lc reads: method 14 is all cgwd can sign.
                (None, None) => OwnAuth::Digital(SignatureScheme::RsaPkcs1Sha256),
            }
        }
        SigningKey::Ecdsa {
            curve: Curve::P256, ..
        } if listed(HashAlgorithm::SHA2_256) => OwnAuth::Digital(SignatureScheme::EcdsaSha256),
        SigningKey::Ecdsa {
            curve: Curve::P256, ..
        } => OwnAuth::Classic(AuthMethod::ECDSA_SHA256_P256),
        SigningKey::Ecdsa {
            curve: Curve::P384, ..
        } if listed(HashAlgorithm::SHA2_384) => OwnAuth::Digital(SignatureScheme::EcdsaSha384),
        SigningKey::Ecdsa {
            curve: Curve::P384, ..
        } => OwnAuth::Classic(AuthMethod::ECDSA_SHA384_P384),
    }
}

/// The AUTH payload over `octets` signed as `how` (from [`choose_auth`] for the same key);
/// `None` if `how` does not fit the key or signing fails.
pub fn sign(key: &SigningKey, how: OwnAuth, octets: &[u8]) -> Option<PayloadRepr> {
    let rng = SystemRandom::new();
    let data = match (how, key) {
        (OwnAuth::Digital(scheme), SigningKey::Rsa { pair, .. }) => {
            let encoding = match scheme {
                SignatureScheme::RsaPkcs1Sha256 => &signature::RSA_PKCS1_SHA256,
                SignatureScheme::RsaPkcs1Sha384 => &signature::RSA_PKCS1_SHA384,
                SignatureScheme::RsaPkcs1Sha512 => &signature::RSA_PKCS1_SHA512,
                _ => return None,
            };
            let mut out = vec![0u8; pair.public_modulus_len()];
            pair.sign(encoding, &rng, octets, &mut out).ok()?;
            SignatureAuth::new(scheme, out).to_data().ok()?
        }
        (OwnAuth::Digital(scheme), SigningKey::Ecdsa { pair, curve, .. }) => {
            let fits = matches!(
                (scheme, curve),
                (SignatureScheme::EcdsaSha256, Curve::P256) | (SignatureScheme::EcdsaSha384, Curve::P384)
            );
            if !fits {
                return None;
            }
            let sig = pair.sign(&rng, octets).ok()?.as_ref().to_vec();
            SignatureAuth::new(scheme, sig).to_data().ok()?
        }
        (OwnAuth::Classic(AuthMethod::RSA_DIGITAL_SIGNATURE), SigningKey::Rsa { sha1: Some(k), .. }) => {
            use sha1::Digest;
            let hash = sha1::Sha1::digest(octets);
            // The `rsa` crate blinds the private-key operation with the OS RNG.
            k.sign(rsa::Pkcs1v15Sign::new::<sha1::Sha1>(), &hash).ok()?
        }
        (OwnAuth::Classic(m), SigningKey::Ecdsa { fixed, curve, .. })
            if (m, *curve) == (AuthMethod::ECDSA_SHA256_P256, Curve::P256)
                || (m, *curve) == (AuthMethod::ECDSA_SHA384_P384, Curve::P384) =>
        {
            fixed.sign(&rng, octets).ok()?.as_ref().to_vec()
        }
        _ => return None,
    };
    Some(PayloadRepr::Auth {
        method: how.method(),
        data,
    })
}

/// The SHA-1 hash of a certificate's SubjectPublicKeyInfo, as CERTREQ names a CA (RFC 7296 §3.7).
pub fn ca_key_hash(ca_der: &[u8]) -> Option<CaKeyHash> {
    let (_, ca) = X509Certificate::from_der(ca_der).ok()?;
    let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, ca.public_key().raw);
    CaKeyHash::try_from(d.as_ref()).ok()
}

/// Whether `der` is a CA certificate issued by another CA (not a self-signed root).
pub fn is_subordinate_ca(der: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .is_ok_and(|(_, c)| c.is_ca() && c.subject().as_raw() != c.issuer().as_raw())
}

/// Why a peer's certificate or AUTH is refused: each a distinct log line naming the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the peer sent no X.509 certificate (CERT payload)")]
    NoCertificate,
    #[error("the peer's certificate does not parse")]
    Unparsable,
    #[error(
        "the peer's certificate ({subject}) expired at {at}; the AWS endpoint's certificate must be \
         renewed (console \"Rotate Tunnel Certificates\") or this host's clock is wrong"
    )]
    Expired { subject: String, at: String },
    #[error("the peer's certificate ({subject}) is valid only from {at}; check this host's clock")]
    NotYetValid { subject: String, at: String },
    #[error(
        "the peer's certificate ({subject}) was not issued by a CA of auth.ca (its issuer is {issuer}); \
         name the AWS Private CA chain the tunnel certificates come from in auth.ca"
    )]
    OtherCa { subject: String, issuer: String },
    #[error(
        "the peer's certificate ({subject}) has no {extension} extension, which AWS's certificates \
         carry; this peer is not an AWS endpoint certificate from AWS Private CA"
    )]
    MissingExtension {
        subject: String,
        extension: &'static str,
    },
    #[error("the peer's certificate ({subject}) is a CA certificate or may not sign (key usage)")]
    NotForSigning { subject: String },
    #[error(
        "the peer's identity ({id}) is neither its certificate's subject ({subject}) nor one of its \
         subject alternative names"
    )]
    IdMismatch { id: String, subject: String },
    #[error("the peer's AUTH uses a method or algorithm cgwd does not verify ({what})")]
    UnsupportedMethod { what: String },
    #[error("the peer's AUTH signature does not verify with its certificate's key")]
    BadSignature,
}

/// How many CA certificates the peer may send between its certificate and a trust anchor.
const MAX_INTERMEDIATES: usize = 4;

/// Checks `peer_der` at `now` (seconds since the epoch) against the trust anchors `ca`: valid,
/// carrying what AWS's certificates carry, an end-entity certificate that may sign, issued and
/// signed by one of `ca`, or through CA certificates the peer sent (`intermediates`, each valid
/// and signed in turn) by one of `ca`.
pub fn verify_certificate(
    peer_der: &[u8],
    intermediates: &[&[u8]],
    ca: &[Vec<u8>],
    now: i64,
) -> Result<(), CertError> {
    let (_, cert) = X509Certificate::from_der(peer_der).map_err(|_| CertError::Unparsable)?;
    let subject = cert.subject().to_string();
    let v = cert.validity();
    if now > v.not_after.timestamp() {
        return Err(CertError::Expired {
            subject,
            at: crate::config::cert::fmt_time(v.not_after.timestamp()),
        });
    }
    if now < v.not_before.timestamp() {
        return Err(CertError::NotYetValid {
            subject,
            at: crate::config::cert::fmt_time(v.not_before.timestamp()),
        });
    }
    let anchors: Vec<X509Certificate<'_>> = ca
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .collect();
    let sent: Vec<X509Certificate<'_>> = intermediates
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .filter(|c| {
            c.is_ca()
                && c.validity().is_valid_at(
                    x509_parser::time::ASN1Time::from_timestamp(now).unwrap_or(c.validity().not_after),
                )
        })
        .take(MAX_INTERMEDIATES)
        .collect();
    let issued = |child: &X509Certificate<'_>, parent: &X509Certificate<'_>| {
        parent.subject().as_raw() == child.issuer().as_raw() && signed_by(child, parent)
    };
    let mut current = &cert;
    let mut chained = false;
    for _ in 0..=MAX_INTERMEDIATES {
        if anchors.iter().any(|a| issued(current, a)) {
            chained = true;
            break;
        }
        match sent.iter().find(|i| issued(current, i)) {
            Some(next) => current = next,
            None => break,
        }
    }
    if !chained {
        return Err(CertError::OtherCa {
            subject,
            issuer: cert.issuer().to_string(),
        });
    }
    let may_sign = cert
        .key_usage()
        .ok()
        .flatten()
        .is_none_or(|ku| ku.value.digital_signature());
    if cert.is_ca() || !may_sign {
        return Err(CertError::NotForSigning { subject });
    }
    if let Some(extension) = missing_aws_extension(&cert) {
        return Err(CertError::MissingExtension { subject, extension });
    }
    Ok(())
}

/// Does the identity `id` name `peer_der`'s subject: its DN (ID_DER_ASN1_DN, byte for byte), or
/// a DNS name, e-mail or IP address among its subject alternative names?
pub fn check_identity(peer_der: &[u8], id: &IdRepr) -> Result<(), CertError> {
    let (_, cert) = X509Certificate::from_der(peer_der).map_err(|_| CertError::Unparsable)?;
    let sans: Vec<GeneralName<'_>> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|e| e.value.general_names.clone())
        .unwrap_or_default();
    let matches = match id.id_type {
        IdType::ID_DER_ASN1_DN => {
            id.data == cert.subject().as_raw()
                || x509_parser::x509::X509Name::from_der(&id.data)
                    .is_ok_and(|(_, n)| dn_eq(&n, cert.subject()))
        }
        IdType::ID_FQDN => sans
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.as_bytes().eq_ignore_ascii_case(&id.data))),
        IdType::ID_RFC822_ADDR => sans
            .iter()
            .any(|n| matches!(n, GeneralName::RFC822Name(d) if d.as_bytes().eq_ignore_ascii_case(&id.data))),
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => sans
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(a) if *a == id.data.as_slice())),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(CertError::IdMismatch {
            id: id_text(id),
            subject: cert.subject().to_string(),
        })
    }
}

/// Two DNs name the same subject: the same attributes in the same order with the same values,
/// whatever string types encode them (strongSwan re-encodes a configured `CN=…` as
/// PrintableString where the certificate may hold UTF8String). Values compare case-insensitively
/// (RFC 5280 §7.1 caseIgnoreMatch, ASCII).
fn dn_eq(a: &x509_parser::x509::X509Name<'_>, b: &x509_parser::x509::X509Name<'_>) -> bool {
    let attrs = |n: &x509_parser::x509::X509Name<'_>| -> Option<Vec<(String, String)>> {
        n.iter_attributes()
            .map(|at| {
                Some((
                    at.attr_type().to_id_string(),
                    at.as_str().ok()?.trim().to_ascii_lowercase(),
                ))
            })
            .collect()
    };
    match (attrs(a), attrs(b)) {
        (Some(x), Some(y)) => x == y && a.iter_rdn().count() == b.iter_rdn().count(),
        _ => false,
    }
}

fn id_text(id: &IdRepr) -> String {
    match id.id_type {
        IdType::ID_DER_ASN1_DN => x509_parser::x509::X509Name::from_der(&id.data)
            .map_or_else(|_| "an unparsable DN".into(), |(_, n)| n.to_string()),
        IdType::ID_FQDN | IdType::ID_RFC822_ADDR => String::from_utf8_lossy(&id.data).into_owned(),
        _ => id
            .ip()
            .map_or_else(|| format!("an ID of type {}", id.id_type.0), |a| a.to_string()),
    }
}

/// The curve of an EC public key, from its SubjectPublicKeyInfo parameters.
fn curve(cert: &X509Certificate<'_>) -> Option<&'static str> {
    let oid = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()?
        .as_oid()
        .ok()?
        .to_id_string();
    match oid.as_str() {
        "1.2.840.10045.3.1.7" => Some("P-256"),
        "1.3.132.0.34" => Some("P-384"),
        "1.3.132.0.35" => Some("P-521"),
        _ => None,
    }
}

/// Verifies a peer's AUTH (`method`, `data`) over `octets` with `peer_der`'s public key: RFC 7427
/// Digital Signature (14) with PKCS#1 v1.5, RSA-PSS or ECDSA and SHA-256/384/512, and the classic
/// RSA (1, PKCS#1 v1.5 SHA-1) and ECDSA (9/10/11, RFC 4754) methods.
pub fn verify_auth(peer_der: &[u8], method: AuthMethod, data: &[u8], octets: &[u8]) -> Result<(), CertError> {
    let (_, cert) = X509Certificate::from_der(peer_der).map_err(|_| CertError::Unparsable)?;
    let rsa = cert.public_key().algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1";
    let curve = curve(&cert);
    let unsupported = |what: String| CertError::UnsupportedMethod { what };
    let (alg, sig): (&'static dyn VerificationAlgorithm, Vec<u8>) = match method {
        AuthMethod::DIGITAL_SIGNATURE => {
            let auth = SignatureAuth::parse(data).map_err(|e| unsupported(format!("malformed: {e}")))?;
            let scheme = auth
                .scheme()
                .ok_or_else(|| unsupported("an unknown signature AlgorithmIdentifier".into()))?;
            use SignatureScheme as S;
            let alg: &'static dyn VerificationAlgorithm = match (scheme, rsa, curve) {
                (S::RsaPkcs1Sha256, true, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (S::RsaPkcs1Sha384, true, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
                (S::RsaPkcs1Sha512, true, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
                (S::RsaPssSha256, true, _) => &signature::RSA_PSS_2048_8192_SHA256,
                (S::RsaPssSha384, true, _) => &signature::RSA_PSS_2048_8192_SHA384,
                (S::RsaPssSha512, true, _) => &signature::RSA_PSS_2048_8192_SHA512,
                (S::EcdsaSha256, false, Some("P-256")) => &signature::ECDSA_P256_SHA256_ASN1,
                (S::EcdsaSha384, false, Some("P-256")) => &signature::ECDSA_P256_SHA384_ASN1,
                (S::EcdsaSha256, false, Some("P-384")) => &signature::ECDSA_P384_SHA256_ASN1,
                (S::EcdsaSha384, false, Some("P-384")) => &signature::ECDSA_P384_SHA384_ASN1,
                (S::EcdsaSha512, false, Some("P-521")) => &signature::ECDSA_P521_SHA512_ASN1,
                (s, _, c) => return Err(unsupported(format!("{s:?} with a {} key", c.unwrap_or("RSA")))),
            };
            (alg, auth.signature)
        }
        AuthMethod::RSA_DIGITAL_SIGNATURE if rsa => (
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            data.to_vec(),
        ),
        AuthMethod::ECDSA_SHA256_P256 if curve == Some("P-256") => {
            (&signature::ECDSA_P256_SHA256_FIXED, data.to_vec())
        }
        AuthMethod::ECDSA_SHA384_P384 if curve == Some("P-384") => {
            (&signature::ECDSA_P384_SHA384_FIXED, data.to_vec())
        }
        AuthMethod::ECDSA_SHA512_P521 if curve == Some("P-521") => {
            (&signature::ECDSA_P521_SHA512_FIXED, data.to_vec())
        }
        m => return Err(unsupported(format!("method {m} with this certificate's key"))),
    };
    UnparsedPublicKey::new(alg, cert.public_key().subject_public_key.data.as_ref())
        .verify(octets, &sig)
        .map_err(|_| CertError::BadSignature)
}

#[cfg(test)]
#[path = "sig_tests.rs"]
mod tests;
