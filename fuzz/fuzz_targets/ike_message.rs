//! An IKE datagram from the network: parsing must never panic, and whatever parses must survive
//! emit → parse unchanged (the codec is canonical on everything it accepts).
#![no_main]

use cgwd::wire::ike::{Message, emit_message, parse_inner_payloads, sk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let encrypted = message.encrypted();
    let Ok(payloads) = message.payloads() else {
        return;
    };
    // A chain that parses has a well-formed encrypted payload iff it ends with one.
    let encrypted = encrypted.expect("payloads() accepted what encrypted() rejected");
    assert_eq!(
        encrypted.is_some(),
        matches!(payloads.last(), Some(cgwd::wire::ike::PayloadRepr::Encrypted(_)))
    );

    let mut again = Vec::new();
    emit_message(&message.header, &payloads, &mut again).expect("re-emit");
    assert_eq!(again.len(), data.len(), "canonical length");
    let reparsed = Message::parse(&again).expect("re-parse header");
    assert_eq!(reparsed.header, message.header);
    assert_eq!(reparsed.payloads().expect("re-parse payloads"), payloads);

    // Treat the SK content as if it were plaintext: the inner chain parser must hold up too.
    if let Some(enc) = encrypted {
        if let Ok(inner) = sk::strip_padding(enc.content()) {
            let _ = parse_inner_payloads(enc.inner_first(), inner);
        }
    }
});
