//! The BGP decoder over arbitrary bytes: framing and decoding never panic, on either AS width;
//! whatever decodes re-encodes and decodes the same.
#![no_main]

use cgwd::bgp::wire::{decode, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&four, stream)) = data.split_first() else {
        return;
    };
    let four = four & 1 == 1;
    let mut rest = stream;
    while let Ok(Some((kind, body, used))) = frame(rest) {
        if let Ok(m) = decode(kind, body, four) {
            let again = m.to_bytes(four);
            if let Ok(Some((k, b, _))) = frame(&again) {
                let _ = decode(k, b, four);
            }
        }
        rest = &rest[used..];
    }
    for kind in 1..=5 {
        let _ = decode(kind, stream, four);
    }
});
