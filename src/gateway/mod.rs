//! The gateway core: every tunnel's IKE SAs and their lifecycle, sans-IO.
//!
//! ```text
//!  datagrams, time, commands ─► Gateway ─► outputs, in order: IKE datagrams to send ·
//!                                 │        SA-table commands (install / switch / remove) ·
//!                                 │        tunnel events (for failover, health records, status)
//!                                 ├─ dispatch: a datagram goes to its tunnel by the peer's address,
//!                                 │  then to the IKE SA it names (SPIs), or to a half-open responder
//!                                 └─ Tunnel (tunnel.rs): the tunnel's IKE SA, a newer one AWS opened
//!                                    (make-before-break), the one it replaced, reconnect backoff
//! ```
//!
//! Modelled on quinn-proto's `Endpoint` (one object demultiplexing datagrams to connections with
//! private state, fed time and returning what to send) and strongSwan's `ike_sa_manager` (half-open
//! SAs kept by SPI apart from the established ones). The daemon is the I/O shell around it: sockets,
//! TUN, the SA table, netlink, signals.
//!
//! What an attacker who can send from AWS's address cannot do (RFC 7296 §2.6 and §2.21 on
//! unauthenticated input):
//! * displace anything: an IKE_SA_INIT request becomes a *half-open* responder SA beside the
//!   tunnel's own (an attempt of ours in progress, an established SA); only once it authenticates
//!   (IKE_AUTH with the tunnel's PSK) does it take the tunnel, and a stateless reply (COOKIE,
//!   INVALID_KE_PAYLOAD) or a failure leaves nothing behind;
//! * grow state without bound: COOKIEs are demanded by load (`ike::cookie`), and at most
//!   [`HALF_OPEN_PER_TUNNEL`] half-open SAs are kept per tunnel (beyond, requests are dropped,
//!   counted); a KE value that cannot be right is refused before any DH work;
//! * flood the log: unauthenticated requests are counted in [`Stats`], logged at debug level only.
//!
//! What AWS itself (authenticated, misbehaving) cannot do, nor a party that only did the DH:
//! * end or stall an IKE SA before IKE_AUTH completes: no request but the IKE_AUTH a responder waits
//!   for is processed until then, and a response counts only in its request's exchange;
//! * get a Child SA up in IKE that the data plane refuses: reserved ESP SPIs (0–255) are refused at
//!   negotiation, and a refusal by the table ([`SaCommand::apply`]) comes back through
//!   [`Gateway::child_sa_refused`], which deletes the IKE SA holding it;
//! * grow the inbound SA table: at most `ike::child::MAX_CHILD_SAS` Child SAs per IKE SA;
//! * widen traffic selectors at a rekey: a rekey stays within the rekeyed SA's selectors.
//!
//! A saturated link rekeys before its outbound sequence numbers run out
//! ([`Gateway::check_sequence_numbers`]).

mod tunnel;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::crypto::Random;
use crate::esp::table::OutboundSaCounters;
use crate::esp::{InstallError, SaTable};
use crate::ike::{Event, IkeConfig, IkeSa, State, Transmit};
use crate::sa::{ChildSa, EspSpi, TunnelKey};

use tunnel::Tunnel;
pub use tunnel::TunnelView;

/// Half-open responder SAs kept per tunnel, a hard cap (AWS has one address per tunnel, so this is
/// per source as well, strongSwan's `block_threshold`). Above the COOKIE threshold of `ike::cookie`
/// (16 for the daemon), so under a flood cookies come first: a spoofer never sees them, and a genuine
/// AWS returns them and still gets through.
pub const HALF_OPEN_PER_TUNNEL: usize = 32;

/// A tunnel of the gateway (an index: tunnels are never removed while the gateway runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelHandle(u32);

impl TunnelHandle {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What the gateway needs to run a tunnel.
pub struct TunnelSpec {
    /// The tunnel's IKE configuration (addresses, PSK, algorithms, lifetimes, role).
    pub cfg: Arc<IkeConfig>,
    /// Initiate at start (customer: always; AWS role: StartupAction `start`).
    pub initiate: bool,
    /// Initiate again after the IKE SA closed (customer: always; AWS role: DPDTimeoutAction
    /// `restart`).
    pub reinitiate: bool,
}

/// Something for the I/O shell to do, in order.
#[derive(Debug)]
pub enum Output {
    /// An IKE datagram to send. `current`: from the tunnel's IKE SA (its requests and responses are
    /// what health records report), not from a half-open, newer or retiring one.
    Transmit {
        tunnel: TunnelHandle,
        current: bool,
        tx: Transmit,
    },
    /// A change to the data plane's SA table.
    Sa(SaCommand),
    /// What happened to a tunnel.
    Event {
        tunnel: TunnelHandle,
        event: TunnelEvent,
    },
}

/// A change to the data plane's SA table (`esp::SaTable`), in the order it must happen: an inbound
/// half before the IKE message that lets the peer use it.
#[derive(Debug)]
pub enum SaCommand {
    /// Install a Child SA's inbound half only (a peer's rekey answered, a newer IKE SA's Child SA).
    InstallInbound(ChildSa),
    /// Install a Child SA and send on it (its inbound half may be in already).
    Install(ChildSa),
    RemoveInbound(EspSpi),
    RemoveOutbound(TunnelKey, EspSpi),
    /// The tunnel's IKE SA is gone: every SA of the tunnel.
    RemoveTunnel(TunnelKey),
}

/// A Child SA the data plane's table would not take: hand it to [`Gateway::child_sa_refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub tunnel: TunnelKey,
    pub inbound: EspSpi,
    pub error: InstallError,
}

impl SaCommand {
    /// Carry the command out on the data plane's SA table (the daemon does; so do in-process tests).
    /// An inbound SPI another tunnel holds already is refused too: installing beside it would
    /// blackhole one of them.
    pub fn apply(&self, sas: &SaTable) -> Result<(), Refused> {
        let refused = |child: &ChildSa, error| Refused {
            tunnel: child.tunnel,
            inbound: child.inbound.spi,
            error,
        };
        match self {
            SaCommand::InstallInbound(child) => sas.install_inbound(child).map_err(|e| refused(child, e)),
            SaCommand::Install(child) => match sas.install(child) {
                // Installed inbound already (a peer's rekey, AWS's newer IKE SA): switch outbound only.
                Err(InstallError::DuplicateSpi(spi))
                    if sas
                        .snapshot()
                        .inbound(spi.0)
                        .is_some_and(|sa| sa.tunnel() == child.tunnel) =>
                {
                    sas.switch_outbound(child).map_err(|e| refused(child, e))
                }
                r => r.map_err(|e| refused(child, e)),
            },
            SaCommand::RemoveInbound(spi) => {
                sas.remove_inbound(*spi);
                Ok(())
            }
            SaCommand::RemoveOutbound(tunnel, spi) => {
                sas.remove_outbound(*tunnel, *spi);
                Ok(())
            }
            SaCommand::RemoveTunnel(tunnel) => {
                sas.remove_tunnel(*tunnel);
                Ok(())
            }
        }
    }
}

/// What happened to a tunnel, for failover, health records and status.
#[derive(Debug)]
pub enum TunnelEvent {
    /// An event of the tunnel's IKE SA, after the gateway acted on it (SA commands already queued).
    /// A `ChildDown` here means the tunnel lost its Child SA (a rekey's old SA is `ChildRekeyed`).
    Ike(Box<Event>),
    /// The old Child SA of a rekey was removed (its inbound half lingers for stragglers).
    ChildRekeyed { old_inbound: EspSpi },
    /// The tunnel moved to an IKE SA AWS opened while ours was established; the older one is being
    /// deleted.
    MovedToPeersIkeSa,
    /// The IKE SA the tunnel moved away from is deleted.
    OldIkeSaDeleted,
    /// The tunnel's IKE SA closed; `retry_in`: when cgwd initiates again (None: it waits for AWS).
    Closed { retry_in: Option<Duration> },
    /// cgwd initiates an IKE SA for the tunnel.
    Initiating,
    /// A rekey request of ours left: `ike` (else a Child SA's).
    RekeyStarted { ike: bool },
}

/// What an operator can do to one tunnel (`cgwd tunnel ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelOp {
    Down,
    Up,
    Reset,
}

/// Counters of what the gateway refused or dropped, for metrics (`cgwd_ike_input_total`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Datagrams from an address that is no tunnel's peer.
    pub unknown_peer: u64,
    /// Datagrams too short for an IKE header, or for no SA of their tunnel.
    pub unmatched: u64,
    /// IKE_SA_INIT requests that started a half-open responder SA (state kept).
    pub half_open_started: u64,
    /// IKE_SA_INIT requests dropped because the tunnel had [`HALF_OPEN_PER_TUNNEL`] half-open SAs.
    pub half_open_refused: u64,
    /// IKE_SA_INIT requests answered statelessly (COOKIE, INVALID_KE_PAYLOAD, INVALID_SYNTAX) or
    /// refused as malformed: no state kept.
    pub init_rejected: u64,
    /// Half-open SAs that authenticated and took (or joined) their tunnel.
    pub half_open_promoted: u64,
}

/// The gateway core (see the module doc).
pub struct Gateway {
    tunnels: Vec<Tunnel>,
    outputs: VecDeque<Output>,
    /// Where each new IKE SA gets its randomness: the OS's ([`Gateway::new`]), or seeded in tests.
    new_rng: Box<dyn FnMut() -> Box<dyn Random> + Send>,
    stats: Stats,
}

impl Gateway {
    /// A gateway whose IKE SAs draw their SPIs, nonces and DH keys from the OS.
    pub fn new() -> Gateway {
        Gateway::with_rng(Box::new(|| Box::new(crate::crypto::OsRandom)))
    }

    /// A gateway whose IKE SAs get their generators from `new_rng` (tests: seeded, reproducible).
    pub fn with_rng(new_rng: Box<dyn FnMut() -> Box<dyn Random> + Send>) -> Gateway {
        Gateway {
            tunnels: Vec::new(),
            outputs: VecDeque::new(),
            new_rng,
            stats: Stats::default(),
        }
    }

    /// Add a tunnel; it initiates at the next [`Gateway::handle_timeout`] if its spec says so.
    pub fn add_tunnel(&mut self, spec: TunnelSpec, now: Instant) -> TunnelHandle {
        let handle = TunnelHandle(self.tunnels.len() as u32);
        self.tunnels.push(Tunnel::new(handle, spec, now));
        handle
    }

    pub fn tunnels(&self) -> impl Iterator<Item = TunnelHandle> + '_ {
        (0..self.tunnels.len() as u32).map(TunnelHandle)
    }

    /// What a tunnel looks like now (for status).
    pub fn tunnel(&self, t: TunnelHandle) -> TunnelView<'_> {
        self.tunnels[t.index()].view()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            half_open_promoted: self.tunnels.iter().map(|t| t.promoted).sum(),
            ..self.stats
        }
    }

    /// Responder SAs for IKE_SA_INITs from AWS's addresses, not authenticated yet.
    pub fn half_open(&self) -> usize {
        self.tunnels.iter().map(Tunnel::half_open_count).sum()
    }

    /// The tunnel whose AWS endpoint is `peer`'s address: a live one before one a reload removed
    /// (still deleting its SAs).
    pub fn tunnel_for_peer(&self, peer: SocketAddr) -> Option<TunnelHandle> {
        self.tunnels
            .iter()
            .position(|t| t.peer_is(peer) && !t.removed())
            .or_else(|| self.tunnels.iter().position(|t| t.peer_is(peer)))
            .map(|i| TunnelHandle(i as u32))
    }

    /// The customer gateway's outside address changed (`Some`), or no usable one is left (`None`).
    /// AWS does not do MOBIKE (RFC 4555), and with a PSK it checks the address, so an IKE SA cannot
    /// follow the address: every tunnel drops its IKE and Child SAs here (SA-table commands and
    /// `Closed` events follow as for any close) and, given an address, initiates a new IKE SA from
    /// it at once rather than after DPD notices; without one, nothing is initiated until an
    /// address is given again. A tunnel a reload removed is left to finish deleting.
    pub fn set_local_address(&mut self, addr: Option<IpAddr>, now: Instant) {
        for tunnel in self.tunnels.iter_mut().filter(|t| !t.removed()) {
            let cfg = addr.and_then(|a| with_local(&tunnel.spec_cfg(), a));
            tunnel.move_local(cfg, now, &mut self.outputs);
            tunnel.drain_all(now, &mut self.outputs);
        }
    }

    /// Reload: the tunnel's IKE SA is replaced by one under `spec` (see `Tunnel::reconfigure`);
    /// other tunnels are untouched.
    pub fn reconfigure(&mut self, t: TunnelHandle, spec: TunnelSpec, now: Instant) {
        let tunnel = &mut self.tunnels[t.index()];
        tunnel.reconfigure(spec, now, &mut self.outputs);
        tunnel.drain_all(now, &mut self.outputs);
    }

    /// Reload renewed the customer gateway's certificate and changed nothing else of the tunnel:
    /// IKE SAs from now on authenticate with `cfg`; the current ones stay (IKEv2 authenticates an
    /// IKE SA once, and its rekeys do not authenticate again), so no packet is lost.
    pub fn renew_credentials(&mut self, t: TunnelHandle, cfg: Arc<IkeConfig>) {
        self.tunnels[t.index()].renew_credentials(cfg);
    }

    /// Reload removed the tunnel's VPN connection: DELETE its IKE SAs, initiate no more. The
    /// handle stays valid (its view shows the SAs going); a tunnel added later for the same AWS
    /// endpoint gets its datagrams.
    pub fn remove_tunnel(&mut self, t: TunnelHandle, now: Instant) {
        let tunnel = &mut self.tunnels[t.index()];
        tunnel.close(now);
        tunnel.drain_all(now, &mut self.outputs);
    }

    /// An IKE datagram (non-ESP marker already stripped) from the network.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let Some(t) = self.tunnel_for_peer(from) else {
            self.stats.unknown_peer += 1;
            tracing::debug!(%from, "IKE datagram from an unknown peer dropped");
            return;
        };
        let tunnel = &mut self.tunnels[t.index()];
        tunnel.datagram(now, from, to, data, &mut self.stats, &mut *self.new_rng);
        tunnel.drain_all(now, &mut self.outputs);
    }

    /// Run what is due: IKE timers, initiations, handovers, retiring SAs' DELETEs, lingering SAs.
    pub fn handle_timeout(&mut self, now: Instant) {
        for tunnel in &mut self.tunnels {
            tunnel.timeout(now, &mut *self.new_rng);
            tunnel.drain_all(now, &mut self.outputs);
        }
    }

    /// The next instant [`Gateway::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tunnels.iter().filter_map(Tunnel::next_timeout).min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Rekey a tunnel's IKE SA (`ike`) or Child SA now (`cgwd rekey`); false when it has no
    /// established IKE SA.
    pub fn rekey(&mut self, t: TunnelHandle, now: Instant, ike: bool) -> bool {
        let tunnel = &mut self.tunnels[t.index()];
        let done = tunnel.rekey(now, ike);
        tunnel.drain_all(now, &mut self.outputs);
        done
    }

    /// Forget a tunnel's IKE SAs at once (see `Tunnel::reset`).
    pub fn reset(&mut self, t: TunnelHandle, now: Instant) {
        self.tunnels[t.index()].reset(now, &mut self.outputs);
    }

    /// An operator's `cgwd tunnel down|up|reset`: DELETE the tunnel's IKE SAs and keep it down,
    /// bring it up again (initiating at once), or replace its IKE SA with a fresh one now.
    pub fn operate(&mut self, t: TunnelHandle, now: Instant, op: TunnelOp) {
        let tunnel = &mut self.tunnels[t.index()];
        match op {
            TunnelOp::Down => tunnel.set_admin_down(true, now, &mut self.outputs),
            TunnelOp::Up => tunnel.set_admin_down(false, now, &mut self.outputs),
            TunnelOp::Reset => tunnel.restart(now, &mut self.outputs),
        }
        tunnel.drain_all(now, &mut self.outputs);
    }

    /// The tunnel was taken down by the operator.
    pub fn admin_down(&self, t: TunnelHandle) -> bool {
        self.tunnels[t.index()].admin_down()
    }

    /// The data plane refused a Child SA ([`SaCommand::apply`]): the IKE SA holding it is deleted
    /// (and the tunnel starts over), so IKE never reports up a Child SA that carries nothing.
    pub fn child_sa_refused(&mut self, now: Instant, refused: Refused) {
        for tunnel in self.tunnels.iter_mut().filter(|t| t.id() == refused.tunnel) {
            if tunnel.child_refused(now, refused.inbound, &refused.error.to_string()) {
                tunnel.drain_all(now, &mut self.outputs);
                return;
            }
        }
        tracing::error!(tunnel = %refused.tunnel, spi = %refused.inbound, error = %refused.error, "the data plane refused a Child SA no IKE SA holds");
    }

    /// The data plane's outbound SAs (`SaTable::counters`): a tunnel whose current outbound SA
    /// passed its sequence soft limit starts a Child SA rekey (once per SA), so a saturated link
    /// gets a new SA before the hard limit stops it sending. ESN is never negotiated, so the
    /// 32-bit limit is the one that counts.
    pub fn check_sequence_numbers(&mut self, now: Instant, outbound: &[OutboundSaCounters]) {
        for sa in outbound.iter().filter(|sa| sa.rekey_needed) {
            for tunnel in self.tunnels.iter_mut().filter(|t| t.id() == sa.tunnel) {
                if tunnel.outbound_exhausting(now, sa.spi) {
                    tunnel.drain_all(now, &mut self.outputs);
                }
            }
        }
    }

    /// Ask the tunnel's peer now whether it is there (a DPD exchange on the current IKE SA, unless
    /// a request is in flight already): failover found its path quiet.
    pub fn check_liveness(&mut self, t: TunnelHandle, now: Instant) {
        let tunnel = &mut self.tunnels[t.index()];
        tunnel.check_liveness(now);
        tunnel.drain_all(now, &mut self.outputs);
    }

    /// The data plane saw authenticated ESP from the tunnel's peer: DPD can wait.
    pub fn note_peer_alive(&mut self, t: TunnelHandle, now: Instant) {
        self.tunnels[t.index()].note_peer_alive(now);
    }

    /// Shutdown: DELETE every IKE SA (a newer one AWS opened, the current one, a retiring one still
    /// in its grace), stop initiating.
    pub fn close_all(&mut self, now: Instant) {
        for tunnel in &mut self.tunnels {
            tunnel.close(now);
            tunnel.drain_all(now, &mut self.outputs);
        }
    }

    /// Some IKE SA is still deleting (shutdown waits for its DELETE to be answered); `queued`: a
    /// DELETE still waits behind a request in flight.
    pub fn deleting(&self) -> (bool, bool) {
        let deleting = self.tunnels.iter().any(Tunnel::deleting);
        let queued = self.tunnels.iter().any(Tunnel::delete_queued);
        (deleting, queued)
    }
}

/// Why an IKE datagram is what it is, from its fixed header only (RFC 7296 §3.1): enough to route it.
#[derive(Debug, Clone, Copy)]
struct Header {
    spi_i: u64,
    spi_r: u64,
    /// An IKE_SA_INIT request (a new responder SA, or a retransmission of one).
    init_request: bool,
}

impl Header {
    fn parse(data: &[u8]) -> Option<Header> {
        let h = data.get(..28)?;
        let spi_i = u64::from_be_bytes(h[0..8].try_into().ok()?);
        let spi_r = u64::from_be_bytes(h[8..16].try_into().ok()?);
        let exchange = h[18];
        let response = h[19] & 0x20 != 0;
        Some(Header {
            spi_i,
            spi_r,
            init_request: exchange == 34 && !response && spi_r == 0,
        })
    }
}

impl Stats {
    /// (metric label, count) of every counter.
    pub fn labelled(&self) -> [(&'static str, u64); 6] {
        [
            ("unknown_peer", self.unknown_peer),
            ("unmatched", self.unmatched),
            ("half_open_started", self.half_open_started),
            ("half_open_refused", self.half_open_refused),
            ("init_rejected", self.init_rejected),
            ("half_open_promoted", self.half_open_promoted),
        ]
    }
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway::new()
    }
}

/// `cfg` sending from `addr` (None: not the family of the peer's address, which AWS never mixes).
fn with_local(cfg: &IkeConfig, addr: IpAddr) -> Option<Arc<IkeConfig>> {
    if addr.is_ipv4() != cfg.remote_addr.is_ipv4() {
        tracing::warn!(%addr, peer = %cfg.remote_addr, "an outside address of the other IP family than AWS's: not used");
        return None;
    }
    Some(Arc::new(IkeConfig {
        local_addr: addr,
        ..cfg.clone()
    }))
}

/// The events an IKE SA reported since the last call.
fn take_events(sa: &mut IkeSa) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = sa.poll_event() {
        v.push(e);
    }
    v
}

fn take_transmits(sa: &mut IkeSa) -> Vec<Transmit> {
    let mut v = Vec::new();
    while let Some(t) = sa.poll_transmit() {
        v.push(t);
    }
    v
}

fn established(sa: &IkeSa) -> bool {
    sa.state() == State::Established
}

#[cfg(test)]
mod tests;
