//! Configuration errors: each names the file, the place in it, what is wrong and how to fix it.

use std::path::PathBuf;

/// What kind of problem an [`ConfigError::Invalid`] reports (for callers and tests; the message is
/// for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    MissingField,
    TunnelCount,
    UnmatchedTunnelOptions,
    DuplicateTunnel,
    BadAddress,
    BadCidr,
    InsideCidr,
    /// A key breaks AWS's PSK rules, or cannot be read from where the settings point.
    Psk,
    /// A tunnel has no key: none in the file (or the placeholder `REDACTED`), none in the settings.
    PskMissing,
    /// The certificate, key or CA chain of `[auth]` cannot be read, or fails a check (expired,
    /// missing an extension AWS requires, not issued by the CA chain, not the key's certificate).
    Certificate,
    /// Valid for AWS, but cgwd cannot run it (certificate authentication, IPv6).
    Unsupported,
    IkeV1Only,
    UnknownAlgorithm,
    BadNumber,
    BgpAsn,
    Conflict,
    SettingsKey,
    SettingsValue,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not well-formed XML / JSON / TOML.
    #[error("{file}:{line}:{column}: malformed {format}: {message}")]
    Syntax {
        file: PathBuf,
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "{file}: not an AWS VPN configuration ({why}). Give cgwd the output of `aws ec2 \
         describe-vpn-connections` (JSON), the CustomerGatewayConfiguration XML, or the console's \
         \"Generic / Vendor Agnostic\" text download"
    )]
    UnknownFormat { file: PathBuf, why: String },

    /// Well-formed, but a value is missing, out of range or contradicts another.
    #[error("{file}: {location}: {problem}. Fix: {fix}")]
    Invalid {
        file: PathBuf,
        kind: Problem,
        /// Element path and line (XML), JSON path, text line, or TOML key.
        location: String,
        problem: String,
        fix: String,
    },
}

impl ConfigError {
    pub fn invalid(
        file: impl Into<PathBuf>,
        kind: Problem,
        location: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.into(),
            kind,
            location: location.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The [`Problem`] of an `Invalid` error.
    pub fn problem(&self) -> Option<Problem> {
        match self {
            ConfigError::Invalid { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// `cgwd` exits with this status on a config error: bad input from the user.
    pub const EXIT_STATUS: u8 = 2;
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based() {
        let text = "ab\ncde\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 5), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
        assert_eq!(
            line_col("é", 1),
            (1, 1),
            "offset inside a character does not panic"
        );
    }
}
