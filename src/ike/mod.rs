//! Sans-IO IKEv2 (RFC 7296): an `IkeSa` fed datagrams and time, returning datagrams, timers and events.

pub mod config;
pub mod errors;
pub mod proposal;
pub mod timer;
