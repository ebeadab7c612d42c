//! A bare IKE payload chain (first octet: the first payload's type), skipping the header's length gate
//! so the fuzzer reaches every payload parser directly: no panic, and whatever parses survives
//! emit → parse unchanged with the same length.
#![no_main]

use cgwd::wire::ike::{PayloadType, emit_payloads, parse_payloads};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, chain)) = data.split_first() else {
        return;
    };
    let Ok(payloads) = parse_payloads(PayloadType(first), chain) else {
        return;
    };
    let mut again = Vec::new();
    let emitted_first = emit_payloads(&payloads, &mut again).expect("re-emit");
    assert_eq!(again.len(), chain.len(), "canonical length");
    assert_eq!(parse_payloads(emitted_first, &again).expect("re-parse"), payloads);
});
