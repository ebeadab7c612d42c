//! BGP-4 for the tunnels' inside /30s, as AWS expects of a dynamic-routing VPN connection:
//! [`wire`] encodes and decodes messages, [`session`] is one sans-IO session (RFC 4271 §8).
//! The daemon carries each session's bytes over a TCP connection through its tunnel.

pub mod session;
pub mod speaker;
pub mod wire;
