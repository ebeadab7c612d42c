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

    /// The form people see (`cgwd check`): whether the secret is set, nothing derived from it.
    /// Not its length or first and last characters (they narrow a guess), nor a fingerprint: a
    /// hash of a short, human-chosen PSK in a pasted report is an offline dictionary-attack oracle.
    /// To compare two files, compare the files.
    pub fn masked(&self) -> String {
        if self.0.is_empty() {
            "(empty)".to_string()
        } else {
            "******** (set)".to_string()
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
        assert_eq!(s.masked(), "******** (set)");
        // Nothing of the secret shows, not even its length.
        assert_eq!(Secret::from_slice(b"x").masked(), s.masked());
        assert_eq!(Secret::new(Vec::new()).masked(), "(empty)");
    }
}
