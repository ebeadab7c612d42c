//! Fuzz the ESP receive path: UDP/4500 classification, then `SaTable::open` with fixed SAs (one
//! AES-GCM, one AES-CBC + HMAC). No input may panic.
//!
//! First byte selects the mode:
//! * even: the rest is a raw datagram (what an attacker without keys can send);
//! * odd: the rest is an ESP *plaintext* (inner packet, padding, trailer) that is sealed with the
//!   real keys first, so the fuzzer reaches the post-authentication parsing (padding, next header,
//!   inner IP header, selectors).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use cgwd::crypto::cipher::Cipher;
use cgwd::esp::SaTable;
use cgwd::sa::{ChildSa, EspKeys, EspSpi, TrafficSelector, TunnelId};
use cgwd::secret::Secret;
use cgwd::suite::{Encryption, Integrity};
use cgwd::wire::udp_encap::{UdpEncapPayload, classify};
use libfuzzer_sys::fuzz_target;

const GCM_SPI: u32 = 0x0100_0001;
const CBC_SPI: u32 = 0x0100_0002;

fn keys(spi: u32, encryption: Encryption, integrity: Option<Integrity>) -> EspKeys {
    EspKeys {
        spi: EspSpi(spi),
        encryption,
        integrity,
        encryption_key: Secret::new(vec![0x5a; encryption.keymat_len()]),
        integrity_key: Secret::new(vec![0xa5; integrity.map_or(0, |i| i.key_len())]),
    }
}

fn child(tunnel: TunnelId, inbound: EspKeys) -> ChildSa {
    let addr: SocketAddr = "192.0.2.1:4500".parse().unwrap();
    ChildSa {
        tunnel: tunnel.into(),
        outbound: inbound.clone(),
        inbound,
        local_ts: TrafficSelector::ANY,
        remote_ts: TrafficSelector::ANY,
        pfs: None,
        local: addr,
        remote: addr,
        replay_window: 2048,
    }
}

struct Fixture {
    table: SaTable,
    gcm: Cipher,
    cbc: Cipher,
    seq: AtomicU32,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let gcm = keys(GCM_SPI, Encryption::Aes128Gcm16, None);
        let cbc = keys(CBC_SPI, Encryption::Aes256Cbc, Some(Integrity::Sha2_256));
        let table = SaTable::new();
        table.install(&child(TunnelId::One, gcm.clone())).unwrap();
        table.install(&child(TunnelId::Two, cbc.clone())).unwrap();
        let cipher = |k: &EspKeys| {
            Cipher::new(
                k.encryption,
                k.integrity,
                k.encryption_key.expose(),
                k.integrity_key.expose(),
            )
            .unwrap()
        };
        Fixture {
            gcm: cipher(&gcm),
            cbc: cipher(&cbc),
            table,
            seq: AtomicU32::new(1),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut datagram = rest.to_vec();
        if let Ok(UdpEncapPayload::Esp(_)) = classify(&datagram) {
            let _ = f.table.open(&mut datagram);
        }
        return;
    }
    let (spi, cipher) = if mode & 2 == 0 {
        (GCM_SPI, &f.gcm)
    } else {
        (CBC_SPI, &f.cbc)
    };
    let aligned = rest.len() - rest.len() % cipher.block_len();
    let seq = f.seq.fetch_add(1, Ordering::Relaxed).max(1);
    let mut packet = Vec::with_capacity(8 + cipher.iv_len() + aligned + cipher.icv_len());
    packet.extend_from_slice(&spi.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.resize(8 + cipher.iv_len(), 0);
    cipher.write_iv(u64::from(seq), &mut packet[8..]).unwrap();
    packet.extend_from_slice(&rest[..aligned]);
    packet.resize(packet.len() + cipher.icv_len(), 0);
    if cipher.seal(&mut packet, 8).is_ok() {
        if let Ok(opened) = f.table.open(&mut packet) {
            assert!(opened.inner.end <= packet.len());
        }
    }
});
