//! Hex decoding for the compiled-in group constants (written the way the RFCs print them, with
//! spaces). Small enough not to warrant a dependency.

/// Decode hex digits, ignoring ASCII whitespace. Panics on a non-hex digit: callers pass only
/// constants from this crate's source, checked by the tests.
pub(crate) fn decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => panic!("non-hex digit in a compiled-in constant"),
        })
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in a constant"
    );
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_rfc_style_hex() {
        assert_eq!(super::decode("0aFF 10\n 7e"), vec![0x0a, 0xff, 0x10, 0x7e]);
    }
}
