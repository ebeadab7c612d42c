//! The configuration parsers never panic: arbitrary text, and samples mutated at random. Whatever
//! they accept satisfies the model's invariants.

mod common;

use std::path::Path;

use cgwd::config::{IkeVersion, Settings, VpnConnection, parse_str};
use common::configs::sample;
use proptest::prelude::*;

const SAMPLES: [&str; 8] = [
    "aws-default.xml",
    "aws-static.describe.json",
    "aws-bgp-tgw.xml",
    "aws-generic.txt",
    "generic-old-static.txt",
    "lab.describe.json",
    "lab-swapped.xml",
    "lab-static-tgw-options-swapped.describe.json",
];

fn check_invariants(c: &VpnConnection) {
    for t in &c.tunnels {
        assert_eq!(t.inside.prefix_len(), 30);
        assert_eq!(t.inside.network().octets()[..2], [169, 254]);
        assert!((8..=64).contains(&t.psk.len()));
        assert!(t.ike_versions.contains(&IkeVersion::Ikev2));
        assert!(!t.phase1.encryption.is_empty() && !t.phase1.integrity.is_empty());
        assert!(!t.phase1.dh_groups.is_empty() && !t.phase2.pfs_groups.is_empty());
        assert!(!t.phase2.encryption.is_empty());
        assert!((1406..=1438).contains(&t.mtu()));
        assert!(t.phase2_lifetime_secs < t.phase1_lifetime_secs);
        let w = t.rekey_window(cgwd::config::Phase::Two);
        assert!(w.earliest <= w.latest && w.latest < t.lifetime(cgwd::config::Phase::Two));
    }
    assert_ne!(c.tunnels[0].aws_outside, c.tunnels[1].aws_outside);
}

fn parse(text: &str) {
    if let Ok(c) = parse_str(text, Path::new("fuzz")) {
        check_invariants(&c);
    }
}

/// Apply one edit at a char boundary: delete, insert, duplicate or swap a slice.
fn mutate(text: &str, op: u8, at: usize, len: usize, insert: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n == 0 {
        return insert.to_string();
    }
    let a = at % n;
    let b = (a + len % 64).min(n);
    let mut out: Vec<char> = Vec::with_capacity(n + insert.len());
    match op % 4 {
        0 => {
            out.extend(&chars[..a]);
            out.extend(&chars[b..]);
        }
        1 => {
            out.extend(&chars[..a]);
            out.extend(insert.chars());
            out.extend(&chars[a..]);
        }
        2 => {
            out.extend(&chars[..b]);
            out.extend(&chars[a..]);
        }
        _ => {
            out.extend(&chars[..a]);
            out.extend(insert.chars());
            out.extend(&chars[b..]);
        }
    }
    out.into_iter().collect()
}

// 256 cases by default; set PROPTEST_CASES for a longer run.
proptest! {

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        parse(&s);
        parse(&format!("<{s}"));
        parse(&format!("{{{s}"));
        parse(&format!("IPSec Tunnel #1\n- Pre-Shared Key : {s}\n"));
        let _ = Settings::from_toml(&s, Path::new("fuzz.toml"), &|_| None);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_samples_never_panic(
        which in 0..SAMPLES.len(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), "[0-9a-zA-Z<>/{}\\[\\]\":,. \n-]{0,12}"), 1..6),
    ) {
        let mut text = sample(SAMPLES[which]);
        for (op, at, len, insert) in &edits {
            text = mutate(&text, *op, *at, *len, insert);
        }
        parse(&text);
    }

    #[test]
    fn env_values_never_panic(v in ".{0,40}") {
        let _ = Settings::from_toml("", Path::new("fuzz.toml"), &|k| {
            if k.starts_with("CGWD_") { Some(v.clone()) } else { None }
        });
    }
}

#[test]
fn every_sample_satisfies_the_invariants() {
    for name in SAMPLES {
        let c = parse_str(&sample(name), Path::new(name)).unwrap();
        check_invariants(&c);
    }
}
