//! What local clients send: a control-socket request line (`cgwd rekey`, `cgwd tunnel`, `cgwd
//! reload`) and a metrics HTTP request head. Neither may panic; a control line is a command or
//! nothing, and the metrics server's answer is always one complete HTTP/1.1 response.
//!
//! Input: the first octet picks the listener (even: control, odd: metrics), the rest is the request.
#![no_main]

use std::sync::OnceLock;

use cgwd::daemon::control::Command;
use cgwd::observe::MetricsRegistry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, request)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let line = String::from_utf8_lossy(request);
        if let Some(c) = Command::parse(&line) {
            // A command comes only from a line that names one.
            assert!(
                line.contains("rekey") || line.contains("tunnel") || line.contains("reload"),
                "{c:?}"
            );
        }
    } else {
        static METRICS: OnceLock<MetricsRegistry> = OnceLock::new();
        let metrics = METRICS.get_or_init(MetricsRegistry::new);
        let answer = cgwd::observe::server::answer(request, metrics);
        assert!(answer.starts_with(b"HTTP/1.1 "));
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = std::str::from_utf8(&answer[..head_end]).expect("an ASCII head");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("a Content-Length");
        assert_eq!(
            answer.len(),
            head_end + 4 + length,
            "the body is as long as announced"
        );
    }
});
