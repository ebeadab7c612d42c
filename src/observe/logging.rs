//! `tracing` output on stderr: one line per event (state changes, errors), never per packet.
//!
//! Level comes from `RUST_LOG` (env-filter syntax) when set, else the `level` given.

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for journald/CloudWatch/Loki pipelines).
    Json,
}

/// Install the global subscriber. Returns `false` if one was already installed (tests, or a second
/// call), which is harmless.
pub fn init(format: LogFormat, level: tracing::Level) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.as_str().to_ascii_lowercase()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    match format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
            .is_ok(),
    }
}
