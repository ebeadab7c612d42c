//! The daemon: the I/O shell that joins config, IKE, the data plane, failover and routing.
//!
//! * [`ike_map`] maps the AWS model onto one [`crate::ike::config::IkeConfig`] per tunnel.
//! * [`status`] is the snapshot `cgwd status` shows, and its human rendering.
//! * [`control`] serves that snapshot as JSON on a Unix socket (root-only).
//! * [`signals`] turns SIGTERM/SIGINT into a flag the run loop polls.

pub mod ike_map;

pub use ike_map::{MappingError, ike_config_for};
pub mod control;
pub mod status;

pub use status::{StatusSnapshot, TunnelStatus};
