//! Secret bytes (PSKs, keys): zeroized on drop, never printed.

use zeroize::Zeroizing;

/// Bytes that must never reach a log. `Debug` prints only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret::new(bytes.to_vec())
    }

    /// The secret itself. Callers must not log or persist it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A masked form for people: first and last character of a printable secret, length in between.
    pub fn masked(&self) -> String {
        match (self.0.first(), self.0.last()) {
            (Some(a), Some(b)) if self.0.len() >= 8 && a.is_ascii_graphic() && b.is_ascii_graphic() => {
                format!(
                    "{}{}{} ({} chars)",
                    *a as char,
                    "*".repeat(6),
                    *b as char,
                    self.0.len()
                )
            }
            _ => format!("****** ({} bytes)", self.0.len()),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_masked_hide_the_secret() {
        let s = Secret::from_slice(b"QMP5tKPP5qk95Y1Eee9c_82.MofNUJQV");
        assert!(!format!("{s:?}").contains("QMP5"));
        assert_eq!(s.masked(), "Q******V (32 chars)");
    }
}
