//! `tracing` output on stderr: one line per event (state changes, errors), never per packet.
//!
//! Level comes from `RUST_LOG` (env-filter syntax) when set, else the `level` given. Secrets never
//! reach a log line: keys are [`crate::secret::Secret`], whose `Debug` is redacted.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for journald/CloudWatch/Loki pipelines).
    Json,
}

/// Install the global subscriber writing to stderr. Returns `false` if one was already installed
/// (tests, or a second call), which is harmless.
pub fn init(format: LogFormat, level: tracing::Level) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.as_str().to_ascii_lowercase()));
    tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr)).is_ok()
}

/// The subscriber [`init`] installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(true);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}
