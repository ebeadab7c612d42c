//! ESP seal / open of a 1400-octet inner packet, next to the bare aws-lc-rs AEAD call on the same
//! size (target: our seal within 1.3x of the raw AEAD).

use std::hint::black_box;

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use cgwd::esp::{InboundSa, MAX_HEADROOM, MAX_TAILROOM, OutboundSa};
use cgwd::sa::{EspKeys, EspSpi, TrafficSelector, TunnelId};
use cgwd::secret::Secret;
use cgwd::suite::{Encryption, Integrity};

const INNER: usize = 1400;

fn keys(encryption: Encryption, integrity: Option<Integrity>) -> EspKeys {
    EspKeys {
        spi: EspSpi(0x1234_5678),
        encryption,
        integrity,
        encryption_key: Secret::new(vec![0x11; encryption.keymat_len()]),
        integrity_key: Secret::new(vec![0x22; integrity.map_or(0, |i| i.key_len())]),
    }
}

/// A buffer with an IPv4 packet of `INNER` octets at `MAX_HEADROOM`.
fn packet_buffer() -> Vec<u8> {
    let mut buf = vec![0u8; MAX_HEADROOM + INNER + MAX_TAILROOM];
    let p = &mut buf[MAX_HEADROOM..MAX_HEADROOM + INNER];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(INNER as u16).to_be_bytes());
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 1, 0, 1]);
    buf
}

fn bench_raw_aead(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_aead_aes128gcm");
    group.throughput(Throughput::Bytes(INNER as u64));
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x11; 16]).unwrap());
    // Same work as an ESP packet: 8-octet AAD, inner + 2 trailer octets (already 4-aligned).
    let mut buf = vec![0u8; INNER + 2 + 16];
    let mut counter = 0u64;
    group.bench_function("seal", |b| {
        b.iter(|| {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_be_bytes());
            let aad = [0u8; 8];
            let (payload, tag_out) = buf.split_at_mut(INNER + 2);
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    black_box(payload),
                )
                .unwrap();
            tag_out.copy_from_slice(tag.as_ref());
        })
    });
    let nonce = [7u8; 12];
    let mut sealed = vec![0u8; INNER + 2];
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([0u8; 8]),
            &mut sealed,
        )
        .unwrap();
    group.bench_function("open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |ct| {
                key.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from([0u8; 8]),
                    tag.as_ref(),
                    black_box(&mut ct[..]),
                )
                .unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_esp(c: &mut Criterion, name: &str, encryption: Encryption, integrity: Option<Integrity>) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(INNER as u64));
    let k = keys(encryption, integrity);
    let outbound = OutboundSa::new(TunnelId::One.into(), &k).unwrap();
    let mut buf = packet_buffer();
    let inner = MAX_HEADROOM..MAX_HEADROOM + INNER;
    group.bench_function("seal", |b| {
        b.iter(|| {
            // Sealing encrypted the previous inner packet in place: restore its version nibble.
            buf[MAX_HEADROOM] = 0x45;
            black_box(outbound.seal(black_box(&mut buf), inner.clone()).unwrap());
        })
    });
    // Opening needs a fresh sequence number each time (the replay window remembers), so every
    // iteration gets its own sealed packet, prepared outside the timed part.
    let sender = OutboundSa::new(TunnelId::One.into(), &k).unwrap();
    let inbound = InboundSa::new(
        TunnelId::One.into(),
        &k,
        2048,
        TrafficSelector::ANY,
        TrafficSelector::ANY,
    )
    .unwrap();
    let template = packet_buffer();
    group.bench_function("open", |b| {
        b.iter_batched_ref(
            || {
                let mut buf = template.clone();
                let sealed = sender.seal(&mut buf, inner.clone()).unwrap();
                buf.truncate(sealed.range.end);
                buf.drain(..sealed.range.start);
                buf
            },
            |packet| {
                black_box(inbound.open(black_box(&mut packet[..])).unwrap());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_raw_aead(c);
    bench_esp(c, "esp_aes128gcm", Encryption::Aes128Gcm16, None);
    bench_esp(c, "esp_aes256gcm", Encryption::Aes256Gcm16, None);
    bench_esp(
        c,
        "esp_aes128cbc_sha256",
        Encryption::Aes128Cbc,
        Some(Integrity::Sha2_256),
    );
}

criterion_group!(esp, benches);
criterion_main!(esp);
