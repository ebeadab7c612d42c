//! The data plane's prefix → tunnel lookup next to sealing the packet it routes (AES-128-GCM,
//! 1400 octets): the lookup's share of the per-packet work, for the issue's ≤ 3 % budget.
//!
//! Tables: the static case (one VPC prefix over 8 connections, ECMP), and a BGP-sized one (1,000
//! prefixes of 6 lengths over 8 connections). Each is looked up cold (a new destination every
//! packet, the worst case) and as the TX worker does within a batch of one flow (same
//! destination: the remembered route, [`RouteTable::choose`] only). The RX worker's reverse-path
//! check ([`RouteTable::source_allowed`]) is measured cold too (within a batch of one flow it is
//! one comparison with the remembered source).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use cgwd::dataplane::RouteTable;
use cgwd::esp::{MAX_HEADROOM, MAX_TAILROOM, OutboundSa};
use cgwd::sa::{EspKeys, EspSpi, TunnelId, TunnelKey};
use cgwd::secret::Secret;
use cgwd::suite::Encryption;

const INNER: usize = 1400;

fn static_table() -> RouteTable {
    let mut b = RouteTable::builder();
    for c in 0..8 {
        for t in TunnelKey::both(c) {
            b.route("10.100.0.0/16".parse().unwrap(), t);
            b.pin(
                IpAddr::V4(Ipv4Addr::new(169, 254, 100 + c as u8, 5 + t.id.index() as u8 * 4)),
                t,
            );
        }
    }
    b.build()
}

fn bgp_table() -> RouteTable {
    let mut b = RouteTable::builder();
    let mut x: u32 = 0x1234_5678;
    for i in 0..1000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = [8u8, 16, 20, 22, 24, 28][(i % 6) as usize];
        let net = ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(x)), len).unwrap();
        b.route(net, TunnelKey::new((i % 8) as u16, TunnelId::One));
        b.route(net, TunnelKey::new(((i + 3) % 8) as u16, TunnelId::One));
    }
    b.route("0.0.0.0/0".parse().unwrap(), TunnelKey::new(0, TunnelId::Two));
    b.build()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_vs_seal");
    group.throughput(Throughput::Elements(1));
    let usable = |t: TunnelKey| t.id == TunnelId::One;
    for (name, table) in [("static", static_table()), ("bgp_1000", bgp_table())] {
        let mut dst = 0x0a64_0000u32;
        group.bench_function(format!("{name}_cold"), |b| {
            b.iter(|| {
                dst = dst.wrapping_add(0x0001_0101);
                black_box(table.lookup(IpAddr::V4(Ipv4Addr::from(black_box(dst))), dst, usable))
            })
        });
        let mut src = 0x0a64_0000u32;
        group.bench_function(format!("{name}_source_cold"), |b| {
            b.iter(|| {
                src = src.wrapping_add(0x0001_0101);
                black_box(table.source_allowed(IpAddr::V4(Ipv4Addr::from(black_box(src))), 3))
            })
        });
        let remembered = table
            .matches(IpAddr::V4(Ipv4Addr::new(10, 100, 3, 4)))
            .next()
            .unwrap_or(0);
        let mut hash = 0u32;
        group.bench_function(format!("{name}_same_flow"), |b| {
            b.iter(|| {
                hash = hash.wrapping_add(0x9e37_79b9);
                black_box(table.choose(black_box(remembered), hash, &usable))
            })
        });
    }
    let keys = EspKeys {
        spi: EspSpi(0x1234_5678),
        encryption: Encryption::Aes128Gcm16,
        integrity: None,
        encryption_key: Secret::new(vec![0x11; Encryption::Aes128Gcm16.keymat_len()]),
        integrity_key: Secret::new(Vec::new()),
    };
    let sa = OutboundSa::new(TunnelId::One.into(), &keys).unwrap();
    let mut buf = vec![0u8; MAX_HEADROOM + INNER + MAX_TAILROOM];
    buf[MAX_HEADROOM] = 0x45;
    buf[MAX_HEADROOM + 2..MAX_HEADROOM + 4].copy_from_slice(&(INNER as u16).to_be_bytes());
    group.bench_function("seal_aes128gcm_1400", |b| {
        b.iter(|| {
            // Sealing encrypted the previous inner packet in place: restore its version nibble.
            buf[MAX_HEADROOM] = 0x45;
            black_box(
                sa.seal(black_box(&mut buf), MAX_HEADROOM..MAX_HEADROOM + INNER)
                    .unwrap(),
            );
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
