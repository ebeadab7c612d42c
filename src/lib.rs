//! cgwd — an AWS Site-to-Site VPN customer gateway.
//!
//! The crate is laid out the way a packet and a configuration flow through it:
//!
//! ```text
//!  config ──► ike (sans-IO IKEv2) ──► gateway (sans-IO tunnel lifecycle) ──► sa ──► esp, dataplane
//!    │            ▲                                │ tunnel events                   │ prefix table
//!    │          wire (zero-copy views: IKE, ESP)   ▼                                 ▼
//!    └──────────► crypto (one provider)          failover → bgp → routing → observe ◄── daemon (I/O shell)
//! ```
//!
//! * [`config`] turns the files AWS lets a user download (XML, describe JSON or Generic text) plus an
//!   optional settings TOML into validated [`config::VpnConnection`]s, one per VPN connection.
//! * [`wire`] holds zero-copy, never-panicking views over packet bytes and owned `Repr`s to build them.
//! * [`crypto`] is the only place that names a crypto library.
//! * [`ike`] is a sans-IO IKEv2 state machine: fed datagrams and time, it returns datagrams, timers and
//!   events. It reads no clock and opens no socket.
//! * [`gateway`] owns every tunnel's IKE SAs and their lifecycle, sans-IO: datagrams, time and
//!   commands in; IKE datagrams, SA-table commands and tunnel events out.
//! * [`sa`] is the narrow interface between the control plane and the data plane: what IKE negotiated,
//!   for which tunnel ([`sa::TunnelKey`]: connection and tunnel 1/2).
//! * [`dataplane`] moves packets between the TUN device and UDP; its prefix table picks each
//!   packet's tunnel (longest match, equal-cost sets by flow hash), failover flips per-tunnel flags.
//! * [`esp`] seals and opens ESP packets and keeps the SA table the hot path reads without locks.
//! * [`suite`] names the algorithms AWS allows and ranks them (one strength order), shared by all of
//!   the above.
//! * [`bgp`] speaks eBGP with AWS over each tunnel's inside /30: a codec, a sans-IO session and a
//!   per-connection speaker choosing routes and announcing the on-prem prefixes.
//! * [`daemon`] is the I/O shell for any number of VPN connections: sockets, TUN, the SA table,
//!   probes, failover, routes, status.

pub mod bgp;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod emulate;
pub mod esp;
pub mod failover;
pub mod gateway;
pub mod ike;
pub mod io;
pub mod observe;
pub mod routing;
pub mod sa;
pub mod secret;
pub mod suite;
pub mod wire;

/// Certificates made at run time for unit tests (shared with the integration tests).
#[cfg(test)]
#[path = "../tests/common/pki.rs"]
#[allow(dead_code)]
pub(crate) mod test_pki;
