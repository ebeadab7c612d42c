//! Helpers for tests on `cgwd::demo::Lab` namespaces: waiting on a condition, log tails.

use std::path::Path;
use std::time::Duration;

/// Poll `ok` every 20 ms until it holds (how long that took) or `limit` passes (panic, with
/// `logs()`).
pub fn wait_for(limit: Duration, what: &str, ok: impl Fn() -> bool, logs: impl Fn() -> String) -> Duration {
    let start = cgwd::io::clock::now();
    while cgwd::io::clock::now() - start < limit {
        if ok() {
            return cgwd::io::clock::now() - start;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}; logs:\n{}", logs());
}

/// The last 40 lines of `dir/file`, under a heading.
pub fn tail(dir: &Path, file: &str) -> String {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {file} ---\n{}\n",
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}
