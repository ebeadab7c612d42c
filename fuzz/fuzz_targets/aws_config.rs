//! Fuzz the AWS configuration parsers (XML, describe JSON, Generic text, format detection) and the
//! settings TOML: no input may panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cgwd::config::parse_str(text, Path::new("fuzz"));
        let _ = cgwd::config::Settings::from_toml(text, Path::new("fuzz.toml"), &|_| None);
    }
});
