//! A peer's KE payload data is hostile: for every DH group, any bytes must give a secret or an error,
//! never a panic. The first input byte picks the group; the rest is the key exchange data.
#![no_main]

use std::sync::OnceLock;

use cgwd::crypto::{DhPrivate, SeededRandom};
use cgwd::suite::DhGroup;
use libfuzzer_sys::fuzz_target;

fn our_key(index: usize) -> &'static DhPrivate {
    static KEYS: [OnceLock<DhPrivate>; 13] = [const { OnceLock::new() }; 13];
    KEYS[index].get_or_init(|| {
        DhPrivate::generate(DhGroup::ALL[index], &mut SeededRandom::new(index as u64))
            .expect("key generation with a seeded RNG")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, peer)) = data.split_first() else {
        return;
    };
    let index = usize::from(selector) % DhGroup::ALL.len();
    let ours = our_key(index);
    if let Ok(secret) = ours.shared_secret(peer) {
        // Only a value of exactly the group's length can be accepted.
        assert_eq!(peer.len(), DhGroup::ALL[index].public_len());
        assert!(!secret.is_empty());
    }
});
