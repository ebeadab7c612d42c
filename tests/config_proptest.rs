//! The configuration parsers never panic: arbitrary text, and samples mutated at random. Whatever
//! they accept satisfies the model's invariants.

mod common;

use std::path::Path;

use cgwd::config::{ConfigError, IkeVersion, Settings, VpnConnection, parse_str};
use common::configs::sample;
use proptest::prelude::*;

const SAMPLES: [&str; 11] = [
    "aws-default.xml",
    "aws-static.describe.json",
    "aws-bgp-tgw.xml",
    "aws-generic.txt",
    "generic-old-static.txt",
    "lab.describe.json",
    "lab-swapped.xml",
    "lab-static-tgw-options-swapped.describe.json",
    "parity/sample-ipv6.describe.json",
    "parity/sample-ipv6.xml",
    "parity/sample-ipv6.txt",
];

/// Samples the file alone cannot make a connection of (no key): mutated too.
const KEYLESS: [&str; 6] = [
    "parity/sample-cert.describe.json",
    "parity/sample-cert.xml",
    "parity/sample-secretsmanager.describe.json",
    "parity/sample-secretsmanager.xml",
    "parity/sample-cert.txt",
    "parity/sample-secretsmanager.txt",
];

fn check_invariants(c: &VpnConnection) {
    for t in &c.tunnels {
        assert_eq!(t.inside.prefix_len(), 30);
        assert_eq!(t.inside.network().octets()[..2], [169, 254]);
        assert!((8..=64).contains(&t.psk.as_ref().unwrap().len()));
        assert!(
            !t.psk.as_ref().unwrap().expose().eq_ignore_ascii_case(b"REDACTED"),
            "a placeholder taken as a key"
        );
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
        which in 0..SAMPLES.len() + KEYLESS.len(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), "[0-9a-zA-Z<>/{}\\[\\]\":,. \n-]{0,12}"), 1..6),
    ) {
        let mut text = sample(SAMPLES.iter().chain(&KEYLESS).nth(which).unwrap());
        for (op, at, len, insert) in &edits {
            text = mutate(&text, *op, *at, *len, insert);
        }
        parse(&text);
    }

    /// Any key AWS allows, in a key file with or without a trailing newline, is the tunnel's key.
    #[test]
    fn any_valid_key_from_a_file_is_the_key(
        key in "[A-Za-z1-9._][A-Za-z0-9._]{7,63}",
        ending in prop::sample::select(vec!["", "\n", "\r\n"]),
    ) {
        prop_assume!(!key.eq_ignore_ascii_case("REDACTED"));
        let conn = load_key_file(format!("{key}{ending}").as_bytes()).expect("a valid key");
        prop_assert_eq!(conn.tunnels[0].psk.as_ref().unwrap().expose(), key.as_bytes());
    }

    /// Whatever a key file holds, loading never panics, and a refused key is never printed.
    #[test]
    fn any_key_file_content_is_safe(content in proptest::collection::vec(any::<u8>(), 0..100)) {
        match load_key_file(&content) {
            Ok(c) => check_invariants(&c),
            Err(e) => {
                let msg = e.to_string();
                if let Ok(text) = std::str::from_utf8(&content) {
                    let text = text.trim();
                    if text.len() >= 12 {
                        prop_assert!(!msg.contains(text), "{}", msg);
                    }
                }
            }
        }
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

/// configs/parity/sample-secretsmanager.xml with tunnel 1's key from a file holding `content` and
/// tunnel 2's from the environment.
fn load_key_file(content: &[u8]) -> Result<VpnConnection, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    // The tests run in parallel: a directory per thread, removed after each case.
    let thread = format!("{:?}", std::thread::current().id());
    let dir = common::tempdir::TempDir::new(&format!(
        "proptest-psk-{}",
        thread.trim_matches(|c: char| !c.is_ascii_digit())
    ));
    let key = dir.0.join("t1.psk");
    std::fs::write(&key, content).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let settings = dir.0.join("cgwd.toml");
    std::fs::write(
        &settings,
        format!(
            "[routing]\nonprem_cidrs = [\"10.0.0.0/16\"]\n[tunnels.1]\npsk_file = \"{}\"\n\
             [tunnels.2]\npsk_env = \"T2\"\n",
            key.display()
        ),
    )
    .unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/parity/sample-secretsmanager.xml");
    cgwd::config::load_many_with(&[config], Some(&settings), &|k| {
        (k == "T2").then(|| "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0f.".to_string())
    })
    .map(|mut l| l.connections.remove(0).0)
}
