//! Observability: what an operator sees of cgwd without reading its code.
//!
//! * [`health`] turns tunnel state and events into health records in AWS's own tunnel-log vocabulary
//!   (so one CloudWatch Logs Insights query or metric filter works on both ends of a tunnel) or as
//!   UP/DOWN status records. Sans-IO: the caller passes the wall-clock time.
//! * [`sink`] writes those records as JSON lines to stdout, stderr or a file reopened on SIGHUP.
//! * [`metrics`] keeps the Prometheus registry the daemon updates once per status tick, and
//!   [`server`] serves it on `metrics.listen`.
//! * [`logging`] sets up `tracing` (text or JSON, one line per event) on stderr.

mod from_status;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod reporter;
pub mod server;
pub mod sink;

pub use health::{
    AwsRecord, HealthEvent, HealthRecord, HealthTracker, SaState, Side, StatusRecord, TunnelHealth,
    TunnelIdentity,
};
pub use metrics::{BgpSnapshot, MetricsRegistry, TunnelMetricsSnapshot};
pub use reporter::HealthReporter;
pub use server::MetricsServer;
pub use sink::HealthSink;
