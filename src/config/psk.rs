//! Pre-shared keys: AWS's rules (one place, for the AWS file and the settings alike), the
//! `REDACTED` placeholder, and a tunnel's key from outside the AWS file — a file, an environment
//! variable or a systemd credential, as `[tunnels.N]` says (docs/configuration.md, "PSKs kept
//! outside the AWS file"). No error or log line carries a key or any part of it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::error::{ConfigError, Problem};
use super::settings::{PskSetting, Settings};
use crate::sa::TunnelId;
use crate::secret::Secret;

/// What AWS writes in place of a key it keeps in Secrets Manager (FACTS §9.2). It satisfies AWS's
/// PSK rules, so it is recognised before them, in any case: no key AWS generates is a case variant
/// of it, and a chosen one that is would be a poor key anyway.
pub(crate) const PLACEHOLDER: &str = "REDACTED";

pub(crate) fn is_placeholder(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case(PLACEHOLDER)
}

/// AWS's PSK rules, as the fix of an error breaking them says.
pub(crate) const RULES: &str =
    "AWS pre-shared keys are 8–64 characters of A-Z a-z 0-9 . _ and do not start with 0";

/// Which of AWS's PSK rules `psk` breaks, if any: 8–64 characters of `[A-Za-z0-9._]`, not
/// starting with `0`. The answer names a length or a position, never a character of the key.
pub(crate) fn violation(psk: &str) -> Option<String> {
    if psk.len() < 8 || psk.len() > 64 {
        Some(format!(
            "the pre-shared key is {} characters long",
            psk.chars().count()
        ))
    } else if psk.starts_with('0') {
        Some("the pre-shared key starts with 0".to_string())
    } else {
        psk.chars()
            .position(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .map(|p| {
                format!(
                    "the pre-shared key has a character outside [A-Za-z0-9._] at position {}",
                    p + 1
                )
            })
    }
}

/// A tunnel's key from the settings, checked by AWS's rules.
pub(crate) struct ExternalPsk {
    pub secret: Secret,
    /// Where it came from, as `cgwd check` shows it: `psk_file /etc/cgwd/vpn-…-1.psk`.
    pub source: String,
    /// What the user should hear about (a key file others may read).
    pub warning: Option<String>,
}

/// Where the builder gets the keys the AWS file does not hold.
pub(crate) trait PskLookup {
    /// The key the settings give tunnel `id` of `vpn_id`, read and checked; `None` if they give none.
    fn psk(&self, vpn_id: &str, id: TunnelId) -> Result<Option<ExternalPsk>, ConfigError>;
    /// The settings table an error should tell the user to write (`[tunnels.1]`).
    fn table(&self, vpn_id: &str, id: TunnelId) -> String;
    /// Whether the settings give the customer gateway a certificate (`[auth]`), so that a tunnel
    /// AWS authenticates by certificate needs no key.
    fn certificate(&self, _vpn_id: &str) -> bool {
        false
    }
}

/// No settings: the AWS file alone ([`super::parse_str`], [`super::load_connection`]).
pub(crate) struct FileOnly;

impl PskLookup for FileOnly {
    fn psk(&self, _: &str, _: TunnelId) -> Result<Option<ExternalPsk>, ConfigError> {
        Ok(None)
    }

    fn table(&self, _: &str, id: TunnelId) -> String {
        format!("[tunnels.{}]", id.number())
    }
}

/// The keys `[tunnels.N]` and `[connections.<vpn-id>.tunnels.N]` point at.
pub(crate) struct FromSettings<'a> {
    pub settings: &'a Settings,
    pub settings_file: &'a Path,
    /// The environment (`psk_env`, `CREDENTIALS_DIRECTORY`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Several connections in one daemon: errors name the per-connection table.
    pub several: bool,
}

/// The longest key file read: a key is at most 64 characters, and a little more tells "too long"
/// from "not a key file" without reading a large file into memory.
const MAX_KEY_FILE: usize = 1024;

/// What a key-source error needs to say where it is.
struct Place<'a> {
    /// `key tunnels.1.psk_file (tunnel 1 of vpn-…, settings cgwd.toml)`.
    location: String,
    id: TunnelId,
    settings_file: &'a Path,
}

impl Place<'_> {
    fn err(&self, file: &Path, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::invalid(file, Problem::Psk, self.location.clone(), problem, fix)
    }

    /// `value` by AWS's rules, as the key of this tunnel read from `file`.
    fn check(&self, file: &Path, value: &str) -> Result<Secret, ConfigError> {
        let n = self.id.number();
        if is_placeholder(value) {
            return Err(self.err(
                file,
                format!("holds the placeholder `{PLACEHOLDER}`, not a key"),
                format!(
                    "copy tunnel {n}'s key itself from the Secrets Manager secret (the connection's \
                     PreSharedKeyArn; `aws secretsmanager get-secret-value --secret-id ARN`)"
                ),
            ));
        }
        match violation(value) {
            Some(problem) => Err(self.err(
                file,
                problem,
                format!("{RULES}; copy tunnel {n}'s key exactly as the Secrets Manager secret holds it"),
            )),
            None => Ok(Secret::from_slice(value.as_bytes())),
        }
    }

    /// A key file (`psk_file`, or a credential): one line, one trailing newline ignored.
    fn read_file(&self, path: &Path, source: String) -> Result<ExternalPsk, ConfigError> {
        let n = self.id.number();
        let fix_path = format!(
            "write tunnel {n}'s key into {} (mode 0600, readable by cgwd), or fix the setting in {}",
            path.display(),
            self.settings_file.display()
        );
        let meta = std::fs::metadata(path)
            .map_err(|e| self.err(path, format!("cannot read the key file: {e}"), fix_path.clone()))?;
        if !meta.is_file() {
            return Err(self.err(path, "is not a regular file", fix_path));
        }
        let mode = meta.permissions().mode() & 0o777;
        let warning = (mode & 0o077 != 0).then(|| {
            format!(
                "tunnel {n}: the key file {} may be read or written by group or others (mode \
                 {mode:04o}); `chmod 600` it",
                path.display(),
            )
        });
        // A fixed buffer, zeroized on drop: nothing of the key is left behind by a reallocation.
        let mut buf = Zeroizing::new([0u8; MAX_KEY_FILE + 1]);
        let mut len = 0;
        let mut file = std::fs::File::open(path)
            .map_err(|e| self.err(path, format!("cannot read the key file: {e}"), fix_path.clone()))?;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(k) => len += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(self.err(path, format!("cannot read the key file: {e}"), fix_path));
                }
            }
        }
        if len > MAX_KEY_FILE {
            return Err(self.err(
                path,
                format!("the key file is larger than {MAX_KEY_FILE} bytes; a key is at most 64 characters"),
                fix_path,
            ));
        }
        let mut text = &buf[..len];
        if let Some(t) = text.strip_suffix(b"\n") {
            text = t.strip_suffix(b"\r").unwrap_or(t);
        }
        if text.contains(&b'\n') {
            return Err(self.err(
                path,
                "the key file has more than one line",
                format!("put tunnel {n}'s key alone on the file's one line"),
            ));
        }
        let text = std::str::from_utf8(text).map_err(|e| {
            self.err(
                path,
                format!(
                    "the key file is not text (a byte at position {} is not UTF-8)",
                    e.valid_up_to() + 1
                ),
                format!("{RULES}; write tunnel {n}'s key as text"),
            )
        })?;
        let secret = self.check(path, text)?;
        Ok(ExternalPsk {
            secret,
            source,
            warning,
        })
    }
}

impl PskLookup for FromSettings<'_> {
    fn psk(&self, vpn_id: &str, id: TunnelId) -> Result<Option<ExternalPsk>, ConfigError> {
        let Some((table, setting)) = self.settings.tunnel_psk(vpn_id, id) else {
            return Ok(None);
        };
        let key = match setting {
            PskSetting::File(_) => "psk_file",
            PskSetting::Env(_) => "psk_env",
            PskSetting::Credential(_) => "psk_credential",
        };
        let place = Place {
            location: format!(
                "key {table}.{key} ({id} of {vpn_id}, settings {})",
                self.settings_file.display()
            ),
            id,
            settings_file: self.settings_file,
        };
        let found = match setting {
            PskSetting::File(path) => place.read_file(path, format!("psk_file {}", path.display()))?,
            PskSetting::Env(var) => {
                let value = (self.env)(var).map(Zeroizing::new).ok_or_else(|| {
                    place.err(
                        self.settings_file,
                        format!("the environment variable {var} is not set"),
                        format!(
                            "set {var} to {id}'s key in cgwd's environment (systemd: \
                             EnvironmentFile= with mode 0600), or use psk_file"
                        ),
                    )
                })?;
                ExternalPsk {
                    secret: place.check(self.settings_file, &value)?,
                    source: format!("psk_env {var}"),
                    warning: None,
                }
            }
            PskSetting::Credential(name) => {
                let dir = (self.env)("CREDENTIALS_DIRECTORY")
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| {
                        place.err(
                            self.settings_file,
                            format!(
                                "psk_credential `{name}` is read from $CREDENTIALS_DIRECTORY, which is \
                                 not set (cgwd is not running as a systemd service with credentials)"
                            ),
                            format!(
                                "give the service `LoadCredential={name}:/path/to/key` (or \
                                 LoadCredentialEncrypted=), or use psk_file"
                            ),
                        )
                    })?;
                let path = Path::new(&dir).join(name);
                let source = format!("psk_credential {name} at {}", path.display());
                place.read_file(&path, source)?
            }
        };
        if let Some(w) = &found.warning {
            tracing::warn!(vpn = %vpn_id, "{w}");
        }
        Ok(Some(found))
    }

    fn certificate(&self, vpn_id: &str) -> bool {
        self.settings
            .connections
            .get(vpn_id)
            .and_then(|c| c.auth.as_ref())
            .unwrap_or(&self.settings.auth)
            .is_set()
    }

    fn table(&self, vpn_id: &str, id: TunnelId) -> String {
        if self.several {
            format!("[connections.{vpn_id}.tunnels.{}]", id.number())
        } else {
            format!("[tunnels.{}]", id.number())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_placeholder() {
        assert_eq!(violation("abcdefgh"), None);
        assert_eq!(violation(&"Z".repeat(64)), None);
        assert!(violation("short7c").unwrap().contains("7 characters"));
        assert!(violation("0abcdefgh").unwrap().contains("starts with 0"));
        assert!(violation("abc+defgh").unwrap().contains("position 4"));
        assert_eq!(violation(PLACEHOLDER), None, "the placeholder passes the rules");
        for p in ["REDACTED", "redacted", " Redacted\n"] {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder("REDACTED1"));
    }
}
