//! [`super::load`] against certificates rcgen makes at run time (never fixed files that expire).

use std::path::{Path, PathBuf};

use super::*;
use crate::config::settings::AuthSettings;

use crate::test_pki::{Ca, Flaw, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, at};

/// 2030-06-15 00:00:00 UTC: every test leaf is valid from 2030-01-01 to 2031-01-01.
const NOW: i64 = 1_907_712_000;
const DAY: i64 = 86_400;
const FROM: i64 = 1_893_456_000; // 2030-01-01
const END: i64 = 1_924_992_000; // 2031-01-01

fn ca(alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> Ca {
    Ca::valid(alg, cn, at(FROM - 365 * DAY), at(END + 365 * DAY))
}

/// (certificate PEM, key PEM) of a leaf for cgw.example.com.
fn leaf(alg: &'static rcgen::SignatureAlgorithm, ca: &Ca, flaw: Flaw) -> (String, String) {
    let l = ca.issue_valid(alg, "cgw.example.com", flaw, (at(FROM), at(END)));
    (l.cert, l.key)
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("cgwd-cert-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn auth(&self, cert: &str, key: &str, ca: &str) -> AuthSettings {
        AuthSettings {
            certificate: Some(self.write("cgw.pem", cert)),
            private_key: Some(self.write("cgw.key", key)),
            ca: Some(self.write("ca.pem", ca)),
            ..AuthSettings::default()
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_at(auth: &AuthSettings, now: i64) -> Result<Option<Loaded>, ConfigError> {
    load(auth, Path::new("cgwd.toml"), &no_env, now)
}

fn problem_text(e: &ConfigError) -> String {
    assert_eq!(e.problem(), Some(Problem::Certificate), "{e}");
    e.to_string()
}

#[test]
fn rsa_and_ecdsa_identities_load_with_subject_issuer_and_expiry() {
    for (alg, shown) in [
        (&PKCS_RSA_SHA256, "RSA 2048"),
        (&PKCS_ECDSA_P256_SHA256, "ECDSA P-256"),
        (&PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
    ] {
        let f = Files::new("ok");
        let ca = ca(alg, "Example Private CA");
        let (cert, key) = leaf(alg, &ca, Flaw::None);
        let loaded = load_at(&f.auth(&cert, &key, &ca.pem), NOW).unwrap().unwrap();
        let id = &loaded.identity;
        assert_eq!(id.subject, "CN=cgw.example.com");
        assert_eq!(id.issuer, "CN=Example Private CA");
        assert_eq!(id.key.describe(), shown);
        assert_eq!(fmt_time(id.not_after), "2031-01-01 00:00:00 UTC");
        assert_eq!(id.ca.len(), 1);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(!format!("{id:?}").contains("PRIVATE"), "Debug shows no key");
    }
}

#[test]
fn no_auth_table_is_no_identity_and_a_partial_one_names_what_is_missing() {
    assert!(load_at(&AuthSettings::default(), NOW).unwrap().is_none());
    let auth = AuthSettings {
        certificate: Some("/etc/cgwd/cgw.pem".into()),
        ..AuthSettings::default()
    };
    let e = load_at(&auth, NOW).unwrap_err();
    assert!(problem_text(&e).contains("misses private_key and ca"), "{e}");
}

#[test]
fn expiry_within_30_days_warns_and_after_it_refuses() {
    let f = Files::new("expiry");
    let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let (cert, key) = leaf(&PKCS_ECDSA_P256_SHA256, &ca, Flaw::None);
    let auth = f.auth(&cert, &key, &ca.pem);
    let end = END;
    let soon = load_at(&auth, end - 10 * DAY).unwrap().unwrap();
    assert_eq!(soon.warnings.len(), 1);
    assert!(
        soon.warnings[0].contains("expires at 2031-01-01 00:00:00 UTC (in 10 days)"),
        "{:?}",
        soon.warnings
    );
    let e = load_at(&auth, end + DAY).unwrap_err();
    let text = problem_text(&e);
    assert!(
        text.contains("expired at 2031-01-01 00:00:00 UTC") && text.contains("renew it"),
        "{text}"
    );
    let e = load_at(&auth, NOW - 365 * DAY).unwrap_err();
    assert!(problem_text(&e).contains("valid only from"), "{e}");
}

#[test]
fn missing_ski_or_aki_is_refused_naming_the_extension() {
    for (kind, ext) in [
        (Flaw::NoSubjectKeyId, "no Subject Key Identifier extension"),
        (Flaw::NoAuthorityKeyId, "no Authority Key Identifier extension"),
    ] {
        let f = Files::new("ext");
        let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
        let (cert, key) = leaf(&PKCS_ECDSA_P256_SHA256, &ca, kind);
        let e = load_at(&f.auth(&cert, &key, &ca.pem), NOW).unwrap_err();
        assert!(problem_text(&e).contains(ext), "{e}");
    }
}

#[test]
fn a_certificate_from_another_ca_or_another_key_is_refused() {
    let f = Files::new("other");
    let ca1 = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    // Same name, other key: only the signature tells them apart.
    let ca2 = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let (cert, key) = leaf(&PKCS_ECDSA_P256_SHA256, &ca1, Flaw::None);
    let e = load_at(&f.auth(&cert, &key, &ca2.pem), NOW).unwrap_err();
    assert!(problem_text(&e).contains("was not issued by a CA in"), "{e}");
    let (_, other_key) = leaf(&PKCS_ECDSA_P256_SHA256, &ca1, Flaw::None);
    let e = load_at(&f.auth(&cert, &other_key, &ca1.pem), NOW).unwrap_err();
    assert!(
        problem_text(&e).contains("is not the key of the certificate"),
        "{e}"
    );
    // A leaf where the chain belongs.
    let e = load_at(&f.auth(&cert, &key, &cert), NOW).unwrap_err();
    assert!(problem_text(&e).contains("is not a CA certificate"), "{e}");
}

#[test]
fn errors_never_carry_the_key_and_a_readable_key_file_warns() {
    let f = Files::new("secret");
    let ca = ca(&PKCS_ECDSA_P256_SHA256, "CA");
    let (cert, key) = leaf(&PKCS_ECDSA_P256_SHA256, &ca, Flaw::None);
    let auth = f.auth(&cert, &key, &ca.pem);
    std::fs::set_permissions(
        auth.private_key.as_ref().unwrap(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let loaded = load_at(&auth, NOW).unwrap().unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.contains("mode 0644")),
        "{:?}",
        loaded.warnings
    );
    // A corrupted key: the error names the file, not its contents.
    let body: String = key.lines().nth(1).unwrap().to_string();
    let broken = key.replacen(&body, &body[..body.len() - 4], 1);
    let e = load_at(&f.auth(&cert, &broken, &ca.pem), NOW).unwrap_err();
    let text = problem_text(&e);
    assert!(!text.contains(&body[..16]), "{text}");
    let e = load_at(&f.auth(&cert, "not a key", &ca.pem), NOW).unwrap_err();
    assert!(problem_text(&e).contains("holds no private key block"), "{e}");
}

#[test]
fn credentials_come_from_the_credentials_directory() {
    let f = Files::new("cred");
    let ca = ca(&PKCS_RSA_SHA256, "CA");
    let (cert, key) = leaf(&PKCS_ECDSA_P384_SHA384, &ca, Flaw::None);
    f.write("c", &cert);
    f.write("k", &key);
    f.write("a", &ca.pem);
    let auth = AuthSettings {
        certificate_credential: Some("c".into()),
        private_key_credential: Some("k".into()),
        ca_credential: Some("a".into()),
        ..AuthSettings::default()
    };
    let dir = f.dir.display().to_string();
    let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| dir.clone());
    let loaded = load(&auth, Path::new("cgwd.toml"), &env, NOW).unwrap().unwrap();
    assert!(
        loaded.identity.sources.contains("certificate_credential c at"),
        "{}",
        loaded.identity.sources
    );
    let e = load_at(&auth, NOW).unwrap_err();
    assert!(
        problem_text(&e).contains("$CREDENTIALS_DIRECTORY, which is not set"),
        "{e}"
    );
}

#[test]
fn pem_and_base64_edge_cases_never_panic() {
    assert_eq!(&**b64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(&**b64_decode("aGVs\nbG8h").unwrap(), b"hello!");
    assert!(b64_decode("aGVsbG9").is_none(), "dangling bits");
    assert_eq!(
        &**b64_decode("aGVsbG8").unwrap(),
        b"hello",
        "padding may be left out"
    );
    assert!(b64_decode("a=b").is_none());
    assert!(b64_decode("aGVsb").is_none(), "a lone sextet");
    assert!(b64_decode("a*").is_none());
    for text in [
        "-----BEGIN ",
        "-----BEGIN X-----\nAAAA",
        "-----BEGIN X-----\n!!\n-----END X-----",
        "x",
    ] {
        let _ = pem_blocks(text);
    }
    assert_eq!(
        pem_blocks("junk\n-----BEGIN A-----\nAAEC\n-----END A-----\n").unwrap()[0]
            .der
            .as_slice(),
        &[0, 1, 2]
    );
}

#[test]
fn the_expiry_warning_starts_30_days_before_and_changes_once_expired() {
    let w = |now| expiry_warning("CN=x", END, now, "/etc/cgwd/cgw.pem");
    assert_eq!(w(END - 30 * DAY), None);
    assert_eq!(
        w(END - 30 * DAY + 1).as_deref(),
        Some(
            "the customer gateway certificate (CN=x) expires at 2031-01-01 00:00:00 UTC (in 29 days); \
             renew it with AWS Private CA and replace /etc/cgwd/cgw.pem"
        )
    );
    assert!(
        w(END + 1)
            .unwrap()
            .contains("expired at 2031-01-01 00:00:00 UTC: new IKE SAs cannot authenticate")
    );
}
