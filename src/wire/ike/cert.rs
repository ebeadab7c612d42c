//! Typed views of what certificate authentication puts on the wire, over the generic
//! [`PayloadRepr::Cert`], [`PayloadRepr::CertReq`], [`PayloadRepr::Auth`] and [`NotifyRepr`]:
//!
//! * CERT with encoding 4, X.509 Certificate - Signature: one DER certificate (RFC 7296 §3.6).
//! * CERTREQ with encoding 4: concatenated SHA-1 hashes of the trusted CAs' SubjectPublicKeyInfo
//!   (RFC 7296 §3.7); empty means "any CA" in practice (strongSwan, AWS).
//! * SIGNATURE_HASH_ALGORITHMS notify data: 16-bit hash algorithm numbers (RFC 7427 §4).
//! * AUTH method 14, Digital Signature: a one-octet length, that many octets of ASN.1
//!   AlgorithmIdentifier, then the signature (RFC 7427 §3), with the AlgorithmIdentifiers of
//!   RFC 7427 Appendix A for what cgwd signs and verifies.
//!
//! Parsers never panic and bound what they allocate by their input.

use super::{AuthMethod, CertEncoding, Error, HashAlgorithm, NotifyRepr, NotifyType, PayloadRepr};

/// A SHA-1 hash of a CA's SubjectPublicKeyInfo, as CERTREQ carries it.
pub type CaKeyHash = [u8; 20];

/// At most this many CA hashes in one CERTREQ (a hostile one is bounded by its length anyway).
pub const MAX_CERTREQ_HASHES: usize = 64;

/// A CERT payload with one X.509 certificate (DER).
pub fn cert_payload(der: &[u8]) -> PayloadRepr {
    PayloadRepr::Cert {
        encoding: CertEncoding::X509_SIGNATURE,
        data: der.to_vec(),
    }
}

/// The DER certificate of a CERT payload of encoding 4; `None` for another payload or encoding.
pub fn x509_cert(payload: &PayloadRepr) -> Option<&[u8]> {
    match payload {
        PayloadRepr::Cert { encoding, data }
            if *encoding == CertEncoding::X509_SIGNATURE && !data.is_empty() =>
        {
            Some(data)
        }
        _ => None,
    }
}

/// A CERTREQ payload naming the CAs whose key hashes are `hashes`.
pub fn certreq_payload(hashes: &[CaKeyHash]) -> PayloadRepr {
    PayloadRepr::CertReq {
        encoding: CertEncoding::X509_SIGNATURE,
        data: hashes.concat(),
    }
}

/// The CA key hashes of an X.509 CERTREQ body: a whole number of 20-octet hashes.
pub fn parse_certreq(encoding: CertEncoding, data: &[u8]) -> Result<Vec<CaKeyHash>, Error> {
    if encoding != CertEncoding::X509_SIGNATURE {
        return Err(Error::Malformed("CERTREQ encoding is not X.509 signature"));
    }
    if !data.len().is_multiple_of(20) {
        return Err(Error::BadLength);
    }
    if data.len() / 20 > MAX_CERTREQ_HASHES {
        return Err(Error::TooMany);
    }
    Ok(data
        .chunks_exact(20)
        .filter_map(|c| CaKeyHash::try_from(c).ok())
        .collect())
}

/// The SIGNATURE_HASH_ALGORITHMS notify announcing `algs`.
pub fn signature_hash_algorithms_notify(algs: &[HashAlgorithm]) -> NotifyRepr {
    NotifyRepr::new(
        NotifyType::SIGNATURE_HASH_ALGORITHMS,
        algs.iter().flat_map(|a| a.0.to_be_bytes()).collect(),
    )
}

/// The algorithms of a SIGNATURE_HASH_ALGORITHMS notify's data (at most 32 kept).
pub fn parse_signature_hash_algorithms(data: &[u8]) -> Result<Vec<HashAlgorithm>, Error> {
    if data.is_empty() || !data.len().is_multiple_of(2) {
        return Err(Error::BadLength);
    }
    Ok(data
        .chunks_exact(2)
        .take(32)
        .map(|c| HashAlgorithm(u16::from_be_bytes([c[0], c[1]])))
        .collect())
}

/// A signature scheme of RFC 7427 AUTH (method 14), known by its AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    /// RSASSA-PSS, MGF1 with the same hash, salt the hash's length.
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

/// `SEQUENCE { OID sha*WithRSAEncryption, NULL }` (RFC 7427 A.1).
const fn rsa_pkcs1(last: u8) -> [u8; 15] {
    [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last, 0x05, 0x00,
    ]
}

/// `SEQUENCE { OID ecdsa-with-SHA* }` (RFC 7427 A.3).
const fn ecdsa(last: u8) -> [u8; 12] {
    [
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, last,
    ]
}

/// The DER of id-sha256/384/512 (2.16.840.1.101.3.4.2.1/2/3), as it appears in PSS parameters.
const fn sha2_oid(last: u8) -> [u8; 11] {
    [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last]
}

/// RSASSA-PSS AlgorithmIdentifier with explicit parameters (RFC 4055 §3.1; RFC 7427 A.4.3 style):
/// hashAlgorithm, maskGenAlgorithm MGF1(hash), saltLength = hash length.
fn rsa_pss(hash_last: u8, salt: u8) -> Vec<u8> {
    let hash = {
        let mut v = vec![0x30, 0x0d];
        v.extend_from_slice(&sha2_oid(hash_last));
        v.extend_from_slice(&[0x05, 0x00]);
        v
    };
    let mut params = Vec::new();
    params.extend_from_slice(&[0xa0, hash.len() as u8]);
    params.extend_from_slice(&hash);
    let mut mgf = vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    mgf.extend_from_slice(&hash);
    params.extend_from_slice(&[0xa1, mgf.len() as u8 + 2, 0x30, mgf.len() as u8]);
    params.extend_from_slice(&mgf);
    params.extend_from_slice(&[0xa2, 0x03, 0x02, 0x01, salt]);
    let mut body = vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    body.extend_from_slice(&[0x30, params.len() as u8]);
    body.extend_from_slice(&params);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// The DER prefix of the id-RSASSA-PSS AlgorithmIdentifier's OID (1.2.840.113549.1.1.10).
const PSS_OID: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

impl SignatureScheme {
    pub const ALL: [SignatureScheme; 9] = [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPkcs1Sha384,
        SignatureScheme::RsaPkcs1Sha512,
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha384,
        SignatureScheme::RsaPssSha512,
        SignatureScheme::EcdsaSha256,
        SignatureScheme::EcdsaSha384,
        SignatureScheme::EcdsaSha512,
    ];

    /// The ASN.1 AlgorithmIdentifier (DER) cgwd sends for this scheme.
    pub fn algorithm_identifier(self) -> Vec<u8> {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => rsa_pkcs1(0x0b).to_vec(),
            SignatureScheme::RsaPkcs1Sha384 => rsa_pkcs1(0x0c).to_vec(),
            SignatureScheme::RsaPkcs1Sha512 => rsa_pkcs1(0x0d).to_vec(),
            SignatureScheme::RsaPssSha256 => rsa_pss(0x01, 32),
            SignatureScheme::RsaPssSha384 => rsa_pss(0x02, 48),
            SignatureScheme::RsaPssSha512 => rsa_pss(0x03, 64),
            SignatureScheme::EcdsaSha256 => ecdsa(0x02).to_vec(),
            SignatureScheme::EcdsaSha384 => ecdsa(0x03).to_vec(),
            SignatureScheme::EcdsaSha512 => ecdsa(0x04).to_vec(),
        }
    }

    /// The scheme an AlgorithmIdentifier names. PKCS#1 v1.5 is accepted with or without the NULL
    /// parameters; RSASSA-PSS by its OID and the SHA-2 hash its parameters name (MGF1 and salt are
    /// left to the verifier, which requires the hash's own).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<SignatureScheme> {
        for s in SignatureScheme::ALL {
            if !matches!(
                s,
                SignatureScheme::RsaPssSha256 | SignatureScheme::RsaPssSha384 | SignatureScheme::RsaPssSha512
            ) && der == s.algorithm_identifier().as_slice()
            {
                return Some(s);
            }
        }
        // sha*WithRSAEncryption without NULL: SEQUENCE { OID }.
        if der.len() == 13 && der[..2] == [0x30, 0x0b] && der[2..] == rsa_pkcs1(der[12])[2..13] {
            return match der[12] {
                0x0b => Some(SignatureScheme::RsaPkcs1Sha256),
                0x0c => Some(SignatureScheme::RsaPkcs1Sha384),
                0x0d => Some(SignatureScheme::RsaPkcs1Sha512),
                _ => None,
            };
        }
        let inner = der.get(2..)?;
        if der.first() != Some(&0x30)
            || usize::from(*der.get(1)?) != inner.len()
            || !inner.starts_with(&PSS_OID)
        {
            return None;
        }
        // The first SHA-2 OID in the parameters is hashAlgorithm; absent parameters mean SHA-1,
        // which cgwd does not accept.
        let params = &inner[PSS_OID.len()..];
        [
            (0x01, SignatureScheme::RsaPssSha256),
            (0x02, SignatureScheme::RsaPssSha384),
            (0x03, SignatureScheme::RsaPssSha512),
        ]
        .into_iter()
        .filter_map(|(last, s)| {
            params
                .windows(11)
                .position(|w| w == sha2_oid(last))
                .map(|at| (at, s))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, s)| s)
    }

    /// The hash algorithm SIGNATURE_HASH_ALGORITHMS names for this scheme.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            SignatureScheme::RsaPkcs1Sha256
            | SignatureScheme::RsaPssSha256
            | SignatureScheme::EcdsaSha256 => HashAlgorithm::SHA2_256,
            SignatureScheme::RsaPkcs1Sha384
            | SignatureScheme::RsaPssSha384
            | SignatureScheme::EcdsaSha384 => HashAlgorithm::SHA2_384,
            SignatureScheme::RsaPkcs1Sha512
            | SignatureScheme::RsaPssSha512
            | SignatureScheme::EcdsaSha512 => HashAlgorithm::SHA2_512,
        }
    }
}

/// The data of a Digital Signature AUTH payload (method 14): AlgorithmIdentifier and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureAuth {
    /// The ASN.1 AlgorithmIdentifier (DER), as received.
    pub algorithm: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SignatureAuth {
    pub fn new(scheme: SignatureScheme, signature: Vec<u8>) -> SignatureAuth {
        SignatureAuth {
            algorithm: scheme.algorithm_identifier(),
            signature,
        }
    }

    /// Parses AUTH data of method 14: a length octet, the AlgorithmIdentifier, a non-empty
    /// signature.
    pub fn parse(data: &[u8]) -> Result<SignatureAuth, Error> {
        let (&len, rest) = data.split_first().ok_or(Error::Truncated)?;
        let len = usize::from(len);
        if len == 0 {
            return Err(Error::Malformed("empty signature AlgorithmIdentifier"));
        }
        let (algorithm, signature) = rest.split_at_checked(len).ok_or(Error::Truncated)?;
        if signature.is_empty() {
            return Err(Error::Malformed("empty signature"));
        }
        Ok(SignatureAuth {
            algorithm: algorithm.to_vec(),
            signature: signature.to_vec(),
        })
    }

    /// The scheme its AlgorithmIdentifier names, if cgwd knows it.
    pub fn scheme(&self) -> Option<SignatureScheme> {
        SignatureScheme::from_algorithm_identifier(&self.algorithm)
    }

    /// The AUTH payload data (what [`Self::parse`] reads).
    pub fn to_data(&self) -> Result<Vec<u8>, Error> {
        let len = u8::try_from(self.algorithm.len()).map_err(|_| Error::TooLong)?;
        let mut out = Vec::with_capacity(1 + self.algorithm.len() + self.signature.len());
        out.push(len);
        out.extend_from_slice(&self.algorithm);
        out.extend_from_slice(&self.signature);
        Ok(out)
    }

    /// The AUTH payload.
    pub fn payload(&self) -> Result<PayloadRepr, Error> {
        Ok(PayloadRepr::Auth {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data: self.to_data()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ike::{PayloadType, emit_payloads, parse_payloads};

    /// RFC 7427 Appendix A, verbatim.
    #[test]
    fn algorithm_identifiers_are_rfc_7427_appendix_a() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        assert_eq!(
            SignatureScheme::RsaPkcs1Sha256.algorithm_identifier(),
            hex("300d06092a864886f70d01010b0500")
        );
        assert_eq!(
            SignatureScheme::RsaPkcs1Sha512.algorithm_identifier(),
            hex("300d06092a864886f70d01010d0500")
        );
        assert_eq!(
            SignatureScheme::EcdsaSha256.algorithm_identifier(),
            hex("300a06082a8648ce3d040302")
        );
        assert_eq!(
            SignatureScheme::EcdsaSha512.algorithm_identifier(),
            hex("300a06082a8648ce3d040304")
        );
        // RFC 7427 A.4.3: RSASSA-PSS with SHA-256, MGF1 SHA-256, salt 32.
        assert_eq!(
            SignatureScheme::RsaPssSha256.algorithm_identifier(),
            hex(
                "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108\
                 300d06096086480165030402010500a203020120"
            )
        );
        for s in SignatureScheme::ALL {
            assert_eq!(
                SignatureScheme::from_algorithm_identifier(&s.algorithm_identifier()),
                Some(s),
                "{s:?}"
            );
        }
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("300b06092a864886f70d01010c")),
            Some(SignatureScheme::RsaPkcs1Sha384),
            "without NULL"
        );
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("300b06092a864886f70d010105")),
            None,
            "SHA-1"
        );
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("300d06092a864886f70d01010a")),
            None,
            "PSS, SHA-1"
        );
    }

    #[test]
    fn signature_auth_round_trips_through_an_auth_payload() {
        let auth = SignatureAuth::new(SignatureScheme::EcdsaSha384, vec![7; 103]);
        let payload = auth.payload().unwrap();
        let mut bytes = Vec::new();
        let first = emit_payloads(std::slice::from_ref(&payload), &mut bytes).unwrap();
        assert_eq!(first, PayloadType::AUTH);
        let back = parse_payloads(first, &bytes).unwrap();
        let PayloadRepr::Auth { method, data } = &back[0] else {
            panic!("{back:?}")
        };
        assert_eq!(*method, AuthMethod::DIGITAL_SIGNATURE);
        let parsed = SignatureAuth::parse(data).unwrap();
        assert_eq!(parsed, auth);
        assert_eq!(parsed.scheme(), Some(SignatureScheme::EcdsaSha384));
        for bad in [&[][..], &[0, 1], &[3, 1, 2], &[2, 1, 2]] {
            assert!(SignatureAuth::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn certreq_and_cert_round_trip() {
        let hashes = [[1u8; 20], [2u8; 20]];
        let payloads = [certreq_payload(&hashes), cert_payload(b"\x30\x03\x02\x01\x00")];
        let mut bytes = Vec::new();
        let first = emit_payloads(&payloads, &mut bytes).unwrap();
        let back = parse_payloads(first, &bytes).unwrap();
        let PayloadRepr::CertReq { encoding, data } = &back[0] else {
            panic!()
        };
        assert_eq!(parse_certreq(*encoding, data).unwrap(), hashes);
        assert_eq!(x509_cert(&back[1]), Some(&b"\x30\x03\x02\x01\x00"[..]));
        assert_eq!(
            parse_certreq(CertEncoding::X509_SIGNATURE, &[]).unwrap(),
            Vec::<CaKeyHash>::new()
        );
        assert_eq!(
            parse_certreq(CertEncoding::X509_SIGNATURE, &[0; 21]),
            Err(Error::BadLength)
        );
        assert!(parse_certreq(CertEncoding::CRL, &[0; 20]).is_err());
        assert_eq!(
            parse_certreq(CertEncoding::X509_SIGNATURE, &[0; 20 * 65]),
            Err(Error::TooMany)
        );
        assert_eq!(
            x509_cert(&PayloadRepr::Cert {
                encoding: CertEncoding::CRL,
                data: vec![1]
            }),
            None
        );
    }

    #[test]
    fn signature_hash_algorithms_notify_round_trips() {
        let algs = [
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
            HashAlgorithm(99),
        ];
        let n = signature_hash_algorithms_notify(&algs);
        assert_eq!(n.kind, NotifyType::SIGNATURE_HASH_ALGORITHMS);
        assert_eq!(n.data, [0, 2, 0, 3, 0, 4, 0, 99]);
        assert_eq!(parse_signature_hash_algorithms(&n.data).unwrap(), algs);
        assert!(parse_signature_hash_algorithms(&[0, 2, 0]).is_err());
        assert!(parse_signature_hash_algorithms(&[]).is_err());
        assert_eq!(format!("{:?}", HashAlgorithm::SHA2_384), "SHA2_384");
    }
}
