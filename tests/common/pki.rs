//! Certificates made at run time with rcgen (never fixed files that expire): a CA and customer
//! gateway / AWS endpoint certificates with what AWS requires (Subject and Authority Key
//! Identifiers, Basic Constraints), or deliberately without one. Also the unit tests' PKI
//! (src/config/cert_tests.rs includes this file), which fix the validity to test dates.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};

#[allow(unused_imports)]
pub use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};

/// A CA: its certificate (PEM) and what it signs with.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

/// What a leaf certificate lacks or has wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    None,
    NoSubjectKeyId,
    NoAuthorityKeyId,
    Expired,
}

/// A leaf certificate (PEM) and its PKCS#8 private key (PEM).
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

fn days(n: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(n)
}

/// Seconds since the Unix epoch as a certificate time.
pub fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

impl Ca {
    /// A CA valid from yesterday for a year.
    pub fn new(alg: &'static SignatureAlgorithm, cn: &str) -> Ca {
        Ca::valid(alg, cn, days(-1), days(365))
    }

    pub fn valid(
        alg: &'static SignatureAlgorithm,
        cn: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Ca {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before;
        params.not_after = not_after;
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A subordinate CA issued by this one (AWS requires the customer gateway's certificate to come
    /// from a subordinate CA of AWS Private CA).
    pub fn subordinate(&self, alg: &'static SignatureAlgorithm, cn: &str) -> Ca {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        params.not_before = self.params.not_before;
        params.not_after = self.params.not_after;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let pem = params.signed_by(&key, &issuer).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A certificate for `cn` (also its DNS SAN) with a fresh key of `alg`, valid from yesterday
    /// for 200 days (expired: until yesterday).
    pub fn issue(&self, alg: &'static SignatureAlgorithm, cn: &str, flaw: Flaw) -> Leaf {
        let validity = match flaw {
            Flaw::Expired => (days(-30), days(-1)),
            _ => (days(-1), days(200)),
        };
        self.issue_valid(alg, cn, flaw, validity)
    }

    pub fn issue_valid(
        &self,
        alg: &'static SignatureAlgorithm,
        cn: &str,
        flaw: Flaw,
        (not_before, not_after): (time::OffsetDateTime, time::OffsetDateTime),
    ) -> Leaf {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = flaw != Flaw::NoAuthorityKeyId;
        (p.not_before, p.not_after) = (not_before, not_after);
        if flaw == Flaw::NoSubjectKeyId {
            // rcgen writes the SKI with Basic Constraints: this one gets Basic Constraints alone.
            p.is_ca = IsCa::NoCa;
            p.custom_extensions = vec![CustomExtension::from_oid_content(
                &[2, 5, 29, 19],
                vec![0x30, 0x00],
            )];
        } else {
            p.is_ca = IsCa::ExplicitNoCa;
        }
        let issuer = Issuer::from_params(&self.params, &self.key);
        Leaf {
            cert: p.signed_by(&key, &issuer).unwrap().pem(),
            key: key.serialize_pem(),
        }
    }
}
