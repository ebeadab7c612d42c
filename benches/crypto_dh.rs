//! What one IKE_SA_INIT or PFS rekey costs in CPU: key generation + shared secret per DH group, and the
//! key derivation that follows.

use std::hint::black_box;

use cgwd::crypto::{DhPrivate, SeededRandom, derive_child_keys, derive_ike_keys};
use cgwd::suite::{DhGroup, Encryption, Integrity};
use criterion::{Criterion, criterion_group, criterion_main};

fn dh_exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("dh_generate_and_agree");
    group.sample_size(10);
    for number in [2u16, 14, 15, 18, 19, 20, 21, 24] {
        let dh = DhGroup::new(number).unwrap();
        let mut rng = SeededRandom::new(u64::from(number));
        let peer = DhPrivate::generate(dh, &mut rng).unwrap();
        group.bench_function(format!("group_{number}"), |b| {
            b.iter(|| {
                let ours = DhPrivate::generate(dh, &mut rng).unwrap();
                black_box(ours.shared_secret(peer.public_value()).unwrap())
            })
        });
    }
    group.finish();
}

fn key_derivation(c: &mut Criterion) {
    let (ni, nr, g_ir) = ([1u8; 32], [2u8; 32], [3u8; 256]);
    c.bench_function("derive_ike_keys_sha256_aes256gcm", |b| {
        b.iter(|| {
            black_box(derive_ike_keys(
                Integrity::Sha2_256,
                Encryption::Aes256Gcm16,
                None,
                &ni,
                &nr,
                &g_ir,
                1,
                2,
            ))
        })
    });
    c.bench_function("derive_child_keys_sha256_aes256cbc", |b| {
        b.iter(|| {
            black_box(derive_child_keys(
                Integrity::Sha2_256,
                &[4u8; 32],
                None,
                &ni,
                &nr,
                Encryption::Aes256Cbc,
                Some(Integrity::Sha2_256),
            ))
        })
    });
}

criterion_group!(benches, dh_exchange, key_derivation);
criterion_main!(benches);
