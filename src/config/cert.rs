//! The customer gateway's certificate for IKE authentication by signature (issue #16): its
//! certificate, private key and CA chain from `[auth]` (files or systemd credentials), checked as
//! AWS checks a customer gateway certificate (Authority Key Identifier, Subject Key Identifier,
//! Basic Constraints present), against the key (same public key) and against the CA chain
//! (issued and signed by one of its certificates), and shown by `cgwd check`. No error or log line
//! carries the private key or any part of it; its bytes are zeroized once parsed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::error::{ConfigError, Problem};
use super::settings::AuthSettings;

/// How long before expiry `cgwd check` (and loading) warns: AWS Private CA certificates are
/// renewed by hand, and a tunnel whose certificate expires stops at its next IKE SA rekey.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// The longest PEM file read (a certificate chain is a few KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

/// The elliptic curves AWS accepts for a customer gateway's ECDSA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// The private key that signs IKE_AUTH. aws-lc's memory is cleansed on free; the RustCrypto copy
/// of an RSA key zeroizes itself on drop.
pub enum SigningKey {
    Rsa {
        pair: RsaKeyPair,
        /// The same key for RSASSA-PKCS1-v1_5 with SHA-1 (auth method 1, for peers that do not
        /// announce RFC 7427), which aws-lc cannot sign; `None` if the `rsa` crate refuses a key
        /// aws-lc took (cgwd then signs with method 14 even for such peers).
        sha1: Option<Box<rsa::PrivateKey>>,
    },
    Ecdsa {
        /// Signs with the curve's hash, ASN.1 DER encoding (method 14, RFC 7427).
        pair: EcdsaKeyPair,
        /// The same key, fixed `r | s` encoding (methods 9 and 10, RFC 4754).
        fixed: EcdsaKeyPair,
        curve: Curve,
    },
}

impl SigningKey {
    /// A PKCS#8 key (RSA or ECDSA P-256/P-384), or an RFC 5915 EC key.
    pub fn from_der(der: &[u8]) -> Option<SigningKey> {
        use rsa::pkcs8::DecodePrivateKey;
        let ec = |alg, fixed, curve| {
            Some(SigningKey::Ecdsa {
                pair: EcdsaKeyPair::from_private_key_der(alg, der).ok()?,
                fixed: EcdsaKeyPair::from_private_key_der(fixed, der).ok()?,
                curve,
            })
        };
        RsaKeyPair::from_pkcs8(der)
            .ok()
            .map(|pair| SigningKey::Rsa {
                pair,
                sha1: rsa::PrivateKey::from_pkcs8_der(der).ok().map(Box::new),
            })
            .or_else(|| {
                ec(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Curve::P256,
                )
            })
            .or_else(|| {
                ec(
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    Curve::P384,
                )
            })
    }

    /// A PKCS#1 RSAPrivateKey (`RSA PRIVATE KEY`).
    pub fn from_pkcs1_der(der: &[u8]) -> Option<SigningKey> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let pair = RsaKeyPair::from_der(der).ok()?;
        Some(SigningKey::Rsa {
            pair,
            sha1: rsa::PrivateKey::from_pkcs1_der(der).ok().map(Box::new),
        })
    }

    /// The public key as the certificate's SubjectPublicKeyInfo bit string holds it (PKCS#1
    /// RSAPublicKey, or the uncompressed EC point).
    pub fn public_key(&self) -> &[u8] {
        match self {
            SigningKey::Rsa { pair, .. } => pair.public_key().as_ref(),
            SigningKey::Ecdsa { pair, .. } => pair.public_key().as_ref(),
        }
    }

    /// `RSA 2048`, `ECDSA P-256`: what `cgwd check` shows.
    pub fn describe(&self) -> String {
        match self {
            SigningKey::Rsa { pair, .. } => format!("RSA {}", pair.public_modulus_len() * 8),
            SigningKey::Ecdsa {
                curve: Curve::P256, ..
            } => "ECDSA P-256".into(),
            SigningKey::Ecdsa {
                curve: Curve::P384, ..
            } => "ECDSA P-384".into(),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, private)", self.describe())
    }
}

/// The customer gateway's identity for certificate authentication, as loaded from `[auth]`.
#[derive(Debug, Clone)]
pub struct CertIdentity {
    /// The certificate (DER), sent in the CERT payload.
    pub certificate: Vec<u8>,
    /// The configured CA chain (DER): the trust anchors AWS's certificate must chain to, and whose
    /// public keys CERTREQ names.
    pub ca: Vec<Vec<u8>>,
    pub key: Arc<SigningKey>,
    /// The subject's distinguished name (DER), the ID_DER_ASN1_DN identity.
    pub subject_dn: Vec<u8>,
    /// For people: `CN=…, O=…`.
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Where the three came from, as `cgwd check` shows it.
    pub sources: String,
    /// The certificate's file (what a renewal replaces).
    pub certificate_file: PathBuf,
}

/// Equal when the same files give the same certificate, chain and key (reload: what changed).
impl PartialEq for CertIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.certificate == other.certificate
            && self.ca == other.ca
            && self.sources == other.sources
            && self.key.public_key() == other.key.public_key()
    }
}

/// A loaded identity and what the user should hear about it.
#[derive(Debug)]
pub struct Loaded {
    pub identity: CertIdentity,
    pub warnings: Vec<String>,
}

/// Which file of the three an error is about.
struct Source {
    key: &'static str,
    path: PathBuf,
    /// `certificate /etc/cgwd/cgw.pem` or `certificate_credential cgw.pem at /run/…`.
    shown: String,
}

struct Ctx<'a> {
    settings_file: &'a Path,
    /// `auth`, or `connections.<vpn-id>.auth`: the table errors name.
    table: &'a str,
}

impl Ctx<'_> {
    fn err(&self, src: &Source, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::invalid(
            &src.path,
            Problem::Certificate,
            format!(
                "key {}.{} ({})",
                self.table,
                src.key,
                self.settings_file.display()
            ),
            problem,
            fix,
        )
    }
}

/// One PEM block: its label and decoded contents (zeroized on drop: it may be a private key).
struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Standard base64 with padding, whitespace ignored; `None` if malformed.
fn b64_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut pad = 0usize;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            pad += 1;
            continue;
        }
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(b64_value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (pad <= 2 && bits < 6 && acc == 0).then_some(out)
}

/// The PEM blocks of `text` in order; text outside blocks is ignored (OpenSSL's `Bag Attributes`).
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("a BEGIN line is not closed by -----")?;
        let label = after[..label_end].to_string();
        let body = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body
            .find(&end_marker)
            .ok_or_else(|| format!("the {label} block has no END line"))?;
        let der = b64_decode(&body[..end]).ok_or_else(|| format!("the {label} block is not valid base64"))?;
        blocks.push(PemBlock { label, der });
        rest = &body[end + end_marker.len()..];
    }
    Ok(blocks)
}

/// The file `setting` names: a path, or a credential under `$CREDENTIALS_DIRECTORY`.
fn locate(
    key: &'static str,
    path: Option<&Path>,
    credential: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    ctx: &Ctx<'_>,
) -> Result<Option<Source>, ConfigError> {
    if let Some(p) = path {
        return Ok(Some(Source {
            key,
            path: p.to_path_buf(),
            shown: format!("{key} {}", p.display()),
        }));
    }
    let Some(name) = credential else {
        return Ok(None);
    };
    let cred_key: &'static str = match key {
        "certificate" => "certificate_credential",
        "private_key" => "private_key_credential",
        _ => "ca_credential",
    };
    let dir = env("CREDENTIALS_DIRECTORY")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ConfigError::invalid(
                ctx.settings_file,
                Problem::Certificate,
                format!("key {}.{cred_key}", ctx.table),
                format!(
                    "credential `{name}` is read from $CREDENTIALS_DIRECTORY, which is not set (cgwd is \
                 not running as a systemd service with credentials)"
                ),
                format!(
                    "give the service `LoadCredential={name}:/path/to/file`, or use {}.{key}",
                    ctx.table
                ),
            )
        })?;
    let path = Path::new(&dir).join(name);
    Ok(Some(Source {
        key: cred_key,
        shown: format!("{cred_key} {name} at {}", path.display()),
        path,
    }))
}

/// The file's text, refusing what cannot be a PEM file.
fn read_pem(src: &Source, ctx: &Ctx<'_>, what: &str) -> Result<(Zeroizing<String>, u32), ConfigError> {
    let fix = format!(
        "put {what} (PEM) in {}, or fix {}.{} in {}",
        src.path.display(),
        ctx.table,
        src.key,
        ctx.settings_file.display()
    );
    let meta =
        std::fs::metadata(&src.path).map_err(|e| ctx.err(src, format!("cannot read: {e}"), fix.clone()))?;
    if !meta.is_file() {
        return Err(ctx.err(src, "is not a regular file", fix));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(ctx.err(
            src,
            format!("is {} bytes, too large for a PEM file", meta.len()),
            fix,
        ));
    }
    let bytes = Zeroizing::new(
        std::fs::read(&src.path).map_err(|e| ctx.err(src, format!("cannot read: {e}"), fix.clone()))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        ctx.err(
            src,
            "is not text (a DER file?)",
            format!("{fix}; convert DER with `openssl x509 -inform der`"),
        )
    })?;
    Ok((
        Zeroizing::new(text.to_string()),
        meta.permissions().mode() & 0o777,
    ))
}

fn certificates(src: &Source, ctx: &Ctx<'_>, what: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let (text, _) = read_pem(src, ctx, what)?;
    let blocks = pem_blocks(&text).map_err(|p| ctx.err(src, p, format!("write {what} as PEM")))?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.to_vec())
        .collect();
    if ders.is_empty() {
        return Err(ctx.err(
            src,
            "holds no -----BEGIN CERTIFICATE----- block",
            format!("write {what} as PEM"),
        ));
    }
    for (i, der) in ders.iter().enumerate() {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(ctx.err(
                src,
                format!("certificate {} does not parse: {e}", i + 1),
                format!("write {what} as PEM, as `aws acm-pca get-certificate` gives it"),
            ));
        }
    }
    Ok(ders)
}

/// Which curve an EC SubjectPublicKeyInfo names.
fn spki_curve(cert: &X509Certificate<'_>) -> Option<&'static str> {
    let params = cert.public_key().algorithm.parameters.as_ref()?;
    let oid = params.as_oid().ok()?.to_id_string();
    match oid.as_str() {
        "1.2.840.10045.3.1.7" => Some("P-256"),
        "1.3.132.0.34" => Some("P-384"),
        "1.3.132.0.35" => Some("P-521"),
        _ => None,
    }
}

/// Whether `issuer`'s key signed `cert` (RSA PKCS#1 v1.5, RSA-PSS, ECDSA; SHA-256/384/512).
pub fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let alg: &'static dyn signature::VerificationAlgorithm = match (
        cert.signature_algorithm.algorithm.to_id_string().as_str(),
        spki_curve(issuer),
    ) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some("P-256")) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("P-256")) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", Some("P-384")) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("P-384")) => &signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", Some("P-521")) => &signature::ECDSA_P521_SHA512_ASN1,
        _ => return false,
    };
    let key = issuer.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(alg, key)
        .verify(cert.tbs_certificate.as_ref(), cert.signature_value.data.as_ref())
        .is_ok()
}

/// The Subject and Authority Key Identifiers and Basic Constraints AWS requires of a customer
/// gateway certificate (and of certificates it verifies): which is missing, if one is.
pub fn missing_aws_extension(cert: &X509Certificate<'_>) -> Option<&'static str> {
    let (mut ski, mut aki, mut bc) = (false, false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(_) => ski = true,
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.is_some(),
            ParsedExtension::BasicConstraints(_) => bc = true,
            _ => {}
        }
    }
    if !ski {
        Some("Subject Key Identifier")
    } else if !aki {
        Some("Authority Key Identifier")
    } else if !bc {
        Some("Basic Constraints")
    } else {
        None
    }
}

fn private_key(src: &Source, ctx: &Ctx<'_>) -> Result<(SigningKey, Option<String>), ConfigError> {
    let (text, mode) = read_pem(src, ctx, "the customer gateway's private key")?;
    let fix = "write the key as PEM (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): RSA 2048/3072/4096 or \
               ECDSA P-256/P-384, unencrypted (`openssl pkey -in KEY -out KEY.pem`)";
    let blocks = pem_blocks(&text).map_err(|p| ctx.err(src, p, fix))?;
    let keys: Vec<&PemBlock> = blocks
        .iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"))
        .collect();
    let block = match keys.as_slice() {
        [one] => *one,
        [] => return Err(ctx.err(src, "holds no private key block", fix)),
        _ => {
            return Err(ctx.err(
                src,
                format!("holds {} private keys", keys.len()),
                "keep the one that belongs to the certificate",
            ));
        }
    };
    let key = match block.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => {
            return Err(ctx.err(
                src,
                "the private key is encrypted",
                "decrypt it: `openssl pkey -in KEY -out KEY.pem` (and keep the file mode 0600)",
            ));
        }
        "RSA PRIVATE KEY" => SigningKey::from_pkcs1_der(&block.der),
        "EC PRIVATE KEY" | "PRIVATE KEY" => SigningKey::from_der(&block.der),
        other => {
            return Err(ctx.err(
                src,
                format!("holds a `{other}` block, not a private key cgwd reads"),
                fix,
            ));
        }
    };
    let key = key.ok_or_else(|| {
        ctx.err(
            src,
            "the private key does not parse as RSA (2048–8192 bits) or ECDSA P-256/P-384",
            fix,
        )
    })?;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "the private key file {} may be read or written by group or others (mode {mode:04o}); `chmod 600` it",
            src.path.display()
        )
    });
    Ok((key, warning))
}

/// The identity `[auth]` gives, read and checked at `now` (seconds since the epoch); `None` when
/// `[auth]` names no certificate.
pub fn load(
    auth: &AuthSettings,
    settings_file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    now: i64,
) -> Result<Option<Loaded>, ConfigError> {
    load_table(auth, "auth", settings_file, env, now)
}

/// [`load`] for the table `table` (`auth`, or a connection's `connections.<vpn-id>.auth`).
pub fn load_table(
    auth: &AuthSettings,
    table: &str,
    settings_file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    now: i64,
) -> Result<Option<Loaded>, ConfigError> {
    let ctx = Ctx { settings_file, table };
    let cert_src = locate(
        "certificate",
        auth.certificate.as_deref(),
        auth.certificate_credential.as_deref(),
        env,
        &ctx,
    )?;
    let key_src = locate(
        "private_key",
        auth.private_key.as_deref(),
        auth.private_key_credential.as_deref(),
        env,
        &ctx,
    )?;
    let ca_src = locate("ca", auth.ca.as_deref(), auth.ca_credential.as_deref(), env, &ctx)?;
    let (cert_src, key_src, ca_src) = match (cert_src, key_src, ca_src) {
        (None, None, None) => return Ok(None),
        (Some(c), Some(k), Some(a)) => (c, k, a),
        (c, k, a) => {
            let missing: Vec<&str> = [
                ("certificate", c.is_none()),
                ("private_key", k.is_none()),
                ("ca", a.is_none()),
            ]
            .into_iter()
            .filter_map(|(n, m)| m.then_some(n))
            .collect();
            return Err(ConfigError::invalid(
                settings_file,
                Problem::Certificate,
                format!("table [{table}]"),
                format!(
                    "misses {}: certificate authentication needs all three",
                    missing.join(" and ")
                ),
                format!(
                    "give {table}.certificate, {table}.private_key and {table}.ca (or their \
                     *_credential forms): the customer gateway's certificate, its key, and the AWS \
                     Private CA chain"
                ),
            ));
        }
    };
    let mut warnings = Vec::new();

    let chain = certificates(&cert_src, &ctx, "the customer gateway's certificate")?;
    let der = chain[0].clone();
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| ctx.err(&cert_src, e.to_string(), "fix the file"))?;
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    let (not_before, not_after) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    let export = format!(
        "export the certificate AWS Private CA issued for the customer gateway \
         (`aws acm-pca get-certificate`, or ACM's export) and name it in {}.certificate",
        ctx.table
    );
    if let Some(ext) = missing_aws_extension(&cert) {
        return Err(ctx.err(
            &cert_src,
            format!("the certificate ({subject}) has no {ext} extension, which AWS requires of a customer gateway certificate"),
            export,
        ));
    }
    if now > not_after {
        return Err(ctx.err(
            &cert_src,
            format!("the certificate ({subject}) expired at {}", fmt_time(not_after)),
            format!("renew it with AWS Private CA; {export}"),
        ));
    }
    if now < not_before {
        return Err(ctx.err(
            &cert_src,
            format!(
                "the certificate ({subject}) is valid only from {}",
                fmt_time(not_before)
            ),
            "check this host's clock, or wait until the certificate is valid",
        ));
    }
    warnings.extend(expiry_warning(
        &subject,
        not_after,
        now,
        &cert_src.path.display().to_string(),
    ));

    let (key, key_warning) = private_key(&key_src, &ctx)?;
    warnings.extend(key_warning);
    if key.public_key() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(ctx.err(
            &key_src,
            format!(
                "the private key ({}) is not the key of the certificate ({subject})",
                key.describe()
            ),
            format!(
                "name the key the certificate {} was issued for",
                cert_src.path.display()
            ),
        ));
    }

    let mut ca = certificates(&ca_src, &ctx, "the AWS Private CA chain")?;
    // Intermediates after the leaf in the certificate file count as chain too.
    for extra in &chain[1..] {
        if !ca.contains(extra) {
            ca.push(extra.clone());
        }
    }
    let parsed: Vec<X509Certificate<'_>> = ca
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .collect();
    if let Some(bad) = parsed.iter().find(|c| !c.is_ca()) {
        return Err(ctx.err(
            &ca_src,
            format!("{} is not a CA certificate (no Basic Constraints CA:TRUE)", bad.subject()),
            "name the AWS Private CA's certificate chain (`aws acm-pca get-certificate-authority-certificate`)",
        ));
    }
    if !parsed
        .iter()
        .any(|c| c.subject().as_raw() == cert.issuer().as_raw() && signed_by(&cert, c))
    {
        return Err(ctx.err(
            &cert_src,
            format!(
                "the certificate ({subject}) was not issued by a CA in {} (its issuer is {issuer})",
                ca_src.path.display()
            ),
            format!(
                "name the chain of the AWS Private CA that issued the certificate in {}.ca",
                ctx.table
            ),
        ));
    }
    let sources = format!("{}; {}; {}", cert_src.shown, key_src.shown, ca_src.shown);
    Ok(Some(Loaded {
        identity: CertIdentity {
            certificate: der.clone(),
            ca,
            key: Arc::new(key),
            subject_dn: cert.subject().as_raw().to_vec(),
            subject,
            issuer,
            not_before,
            not_after,
            sources,
            certificate_file: cert_src.path.clone(),
        },
        warnings,
    }))
}

/// What to tell the user about a certificate expiring at `not_after` (seconds since the epoch) when
/// it is `now`: nothing until [`EXPIRY_WARNING_SECS`] before, then when and what to replace
/// (`file`); once expired, that tunnels cannot authenticate until it is renewed. Loading says it,
/// and the running daemon once a day ([`crate::daemon`]).
pub fn expiry_warning(subject: &str, not_after: i64, now: i64, file: &str) -> Option<String> {
    let left = not_after - now;
    if left >= EXPIRY_WARNING_SECS {
        None
    } else if left < 0 {
        Some(format!(
            "the customer gateway certificate ({subject}) expired at {}: new IKE SAs cannot \
             authenticate; renew it with AWS Private CA and replace {file}, then `cgwd reload`",
            fmt_time(not_after)
        ))
    } else {
        Some(format!(
            "the customer gateway certificate ({subject}) expires at {} (in {} days); renew it with AWS \
             Private CA and replace {file}",
            fmt_time(not_after),
            left / 86400
        ))
    }
}

/// `2026-12-03 23:05:26 UTC`.
pub fn fmt_time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs());
    let iso = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", iso.trim_end_matches('Z').replacen('T', " ", 1))
}

#[cfg(test)]
#[path = "cert_tests.rs"]
mod tests;
