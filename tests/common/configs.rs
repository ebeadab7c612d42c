//! Helpers shared by the config tests: the sample files in `configs/` and parsing them under a
//! file name the error messages must carry.

use std::net::IpAddr;
use std::path::Path;

use cgwd::config::{ConfigError, Problem, VpnConnection, parse_str};

/// A file from `configs/` (the tests never read /work/shared or anything outside the repository).
pub fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn parse_named(text: &str, file: &str) -> Result<VpnConnection, ConfigError> {
    parse_str(text, Path::new(file))
}

/// The problem and message of a config that must be rejected; the message must name `file`.
pub fn rejected_named(text: &str, file: &str) -> (Problem, String) {
    let e = parse_named(text, file).expect_err("must be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with(file), "error must name the file: {msg}");
    (e.problem().unwrap_or(Problem::MissingField), msg)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
