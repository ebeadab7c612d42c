//! IKE codec speed: parsing and emitting a real strongSwan IKE_SA_INIT request (MODP-2048) and building
//! an SK message layout. IKE is the control plane, so this guards against pathological slowness (a
//! responder under an IKE_SA_INIT flood parses every datagram before any cookie check), not for speed.

use std::hint::black_box;

use cgwd::wire::ike::{
    ExchangeType, Flags, HeaderRepr, Message, PayloadType, emit_message, emit_payloads, sk,
};
use criterion::{Criterion, criterion_group, criterion_main};

const SA_INIT: &[u8] = include_bytes!("../src/wire/ike/testdata/strongswan-cbc/01-sa-init-req.bin");

fn parse(c: &mut Criterion) {
    c.bench_function("ike_sa_init_parse_header", |b| {
        b.iter(|| Message::parse(black_box(SA_INIT)).unwrap().header)
    });
    c.bench_function("ike_sa_init_parse_payloads", |b| {
        b.iter(|| Message::parse(black_box(SA_INIT)).unwrap().payloads().unwrap())
    });
}

fn emit(c: &mut Criterion) {
    let message = Message::parse(SA_INIT).unwrap();
    let payloads = message.payloads().unwrap();
    let mut out = Vec::with_capacity(1024);
    c.bench_function("ike_sa_init_emit", |b| {
        b.iter(|| {
            out.clear();
            emit_message(black_box(&message.header), black_box(&payloads), &mut out).unwrap();
        })
    });
    let mut inner = Vec::new();
    let first = emit_payloads(&payloads, &mut inner).unwrap();
    let header = HeaderRepr {
        spi_i: 1,
        spi_r: 2,
        next_payload: PayloadType::NONE,
        exchange: ExchangeType::IKE_AUTH,
        flags: Flags::INITIATOR,
        message_id: 1,
        length: 0,
    };
    let params = sk::SkParams {
        iv_len: 16,
        icv_len: 16,
        block_len: 16,
    };
    c.bench_function("ike_sk_layout", |b| {
        b.iter(|| {
            out.clear();
            sk::emit_sk_message(&header, first, black_box(&inner), params, &mut out).unwrap()
        })
    });
}

criterion_group!(benches, parse, emit);
criterion_main!(benches);
