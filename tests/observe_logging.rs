//! Log lines: JSON mode gives one parseable object per event; the CLI accepts `--log-format`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cgwd::observe::logging::{LogFormat, subscriber};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

fn capture(format: LogFormat) -> String {
    let buf = Buffer::default();
    let sub = subscriber(format, EnvFilter::new("info"), buf.clone());
    tracing::subscriber::with_default(sub, || {
        tracing::info!(tunnel = 1, peer = "203.0.113.10", "IKE SA established");
        tracing::debug!("filtered out at info");
        tracing::warn!(
            retransmits = 3,
            "DPD timed out\nsecond line stays in the JSON string"
        );
    });
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn json_is_one_object_per_event() {
    let out = capture(LogFormat::Json);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["message"], "IKE SA established");
    assert_eq!(first["tunnel"], 1);
    assert_eq!(first["peer"], "203.0.113.10");
    assert!(first["timestamp"].is_string());
    let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(second["level"], "WARN");
    assert_eq!(second["retransmits"], 3);
}

#[test]
fn text_is_one_line_per_event() {
    let out = capture(LogFormat::Text);
    assert!(
        out.lines().next().unwrap().contains("IKE SA established"),
        "{out}"
    );
    assert!(!out.contains("filtered out"), "{out}");
    assert!(!out.contains('\x1b'), "no colour codes in log files: {out:?}");
}

#[test]
fn cli_takes_log_format_anywhere() {
    let exe = env!("CARGO_BIN_EXE_cgwd");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/aws-static.xml");
    for args in [
        vec!["--log-format", "json", "check", config],
        vec!["check", config, "--log-format", "text"],
    ] {
        let out = std::process::Command::new(exe).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new(exe)
        .args(["--log-format", "xml", "check", config])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown format");
}
