//! `cgwd run`: the foreground daemon, the I/O shell around the gateway core.
//!
//! ```text
//!  start-up checks ─► TUN + inside addresses ─► UDP 500 (reader thread) / 4500 (data plane)
//!        ─► gateway core (crate::gateway): every tunnel's IKE SAs, sans-IO ─► control loop:
//!           IKE datagrams, timers, `cgwd rekey` ──► gateway ──► IKE datagrams to send ·
//!           SA-table commands · tunnel events ──► failover, health records, status
//!           probes · failover → active tunnel · routes · status
//!        ─► SIGTERM/SIGINT: DELETE every IKE SA, stop workers, remove routes/addresses/TUN
//! ```
//!
//! One control thread drives everything but the packet path; it wakes at least every [`TICK`]
//! (the failover and probe resolution) and otherwise blocks on the IKE input channel, handling at
//! most [`IKE_PER_TICK`] datagrams before its timers run again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::control::{Command, ControlServer, SharedStatus};
use super::icmp::RawIcmp;
use super::observer::{Observer, failure_event, ike_header};
use super::signals::Signals;
use super::status::{Algorithms, PhaseState, RouteStatus, StatusSnapshot, Traffic, TunnelStatus};
use crate::config::{ConfigError, Settings, VpnConnection};
use crate::crypto::OsRandom;
use crate::dataplane::{Dataplane, DataplaneConfig, IkeDatagram, KEEPALIVE_INTERVAL, POLL_INTERVAL, Shared};
use crate::esp::SaTable;
use crate::failover::probe::{Inbound, Prober};
use crate::failover::{DownReason, FailoverTimers, Monitor, Outbound, Verdict};
use crate::gateway::{Gateway, Output, SaCommand, TunnelEvent, TunnelHandle, TunnelSpec};
use crate::ike::{Event, FailReason, IkeConfig, LinkState, State};
use crate::io::clock;
use crate::io::tun::{Tun, TunConfig};
use crate::io::udp::UdpSocket;
use crate::observe::{HealthEvent, TunnelHealth};
use crate::routing::Router;
use crate::sa::TunnelId;
use crate::suite::Suite;
use crate::wire::udp_encap::NON_ESP_MARKER;

/// The control loop's longest sleep: failover and probe timing resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// How often the status snapshot is refreshed (and on every state change).
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How long the shutdown waits for the DELETE exchanges to be answered once they are sent (a DELETE
/// queued behind a request in flight may first wait up to [`crate::ike::CLOSE_WAIT`]).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);
/// IKE datagrams queued from the RX worker before it starts dropping (control traffic is sparse).
const IKE_QUEUE: usize = 64;
/// IKE datagrams handled before the loop runs its timers, probes and failover again.
const IKE_PER_TICK: usize = 64;
/// Probe replies read per tick at most.
const PROBE_REPLIES_PER_TICK: usize = 64;
/// Linux capability number of CAP_NET_ADMIN.
const CAP_NET_ADMIN: u32 = 12;

/// An IKE datagram for the control loop, from either port.
struct IkeInput {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Feed the control loop from both IKE ports so it wakes the moment a message arrives (a DELETE
/// must switch traffic at once): a reader thread on UDP 500, and a forwarder for what the
/// data-plane RX worker hands over from UDP 4500. Both end when the loop's receiver is dropped (or
/// the data plane stops, or `stop` is set).
fn spawn_ike_inputs(
    local: Ipv4Addr,
    udp500: Arc<UdpSocket>,
    from_rx_worker: Receiver<IkeDatagram>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<Receiver<IkeInput>> {
    let (tx, rx) = sync_channel::<IkeInput>(IKE_QUEUE);
    let tx500 = tx.clone();
    std::thread::Builder::new()
        .name("cgwd-ike500".into())
        .spawn(move || {
            let to = SocketAddr::new(IpAddr::V4(local), 500);
            let mut buf = vec![0u8; 65536];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match udp500.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let input = IkeInput {
                            from,
                            to,
                            data: buf[..n].to_vec(),
                        };
                        match tx500.try_send(input) {
                            Ok(()) | Err(std::sync::mpsc::TrySendError::Full(_)) => {}
                            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "UDP 500 receive failed");
                        std::thread::sleep(TICK);
                    }
                }
            }
        })?;
    std::thread::Builder::new()
        .name("cgwd-ike4500".into())
        .spawn(move || {
            let to = SocketAddr::new(IpAddr::V4(local), 4500);
            for dg in from_rx_worker {
                let input = IkeInput {
                    from: dg.from,
                    to,
                    data: dg.message,
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// Why `cgwd run` could not start, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cgwd run needs root or CAP_NET_ADMIN (to create the TUN device and routes): run it with sudo, \
         or give the service AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW"
    )]
    NotPrivileged,
    #[error(
        "/dev/net/tun is missing: load the tun module (`modprobe tun`) or give the container /dev/net/tun"
    )]
    NoTun,
    #[error(
        "UDP port {port} on {addr} is already in use — another IPsec daemon (strongSwan, libreswan) \
         or cgwd is running; see `ss -ulpn 'sport = :{port}'`"
    )]
    PortTaken { port: u16, addr: IpAddr },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl StartError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Io { what, source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => ConfigError::EXIT_STATUS,
            _ => 1,
        }
    }
}

/// Which end of the VPN this process plays: the same loop serves `cgwd run` and `cgwd emulate-aws`.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// The customer gateway (`cgwd run`).
    #[default]
    Customer,
    /// AWS's endpoint of one tunnel (`cgwd emulate-aws`).
    Aws(AwsRole),
}

/// What the AWS role needs beyond the configuration.
#[derive(Debug, Clone)]
pub struct AwsRole {
    /// The tunnel this process serves (one outside address per process).
    pub tunnel: TunnelId,
    /// Overrides `control.socket` (the customer side may use the settings' path on the same host).
    pub control_socket: Option<std::path::PathBuf>,
    /// Overrides `interface.name`.
    pub interface: Option<String>,
}

/// Entry point of `cgwd run`.
pub fn main(config: &Path, settings: Option<&Path>) -> ExitCode {
    main_as(config, settings, &Role::Customer)
}

/// Entry point shared by `cgwd run` and `cgwd emulate-aws`.
pub fn main_as(config: &Path, settings: Option<&Path>, role: &Role) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    match run_as(config, settings, role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cmd = match role {
                Role::Customer => "cgwd run",
                Role::Aws(_) => "cgwd emulate-aws",
            };
            eprintln!("{cmd}: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Effective capabilities include CAP_NET_ADMIN (root has it unless dropped).
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

fn bind(addr: IpAddr, port: u16, timeout: Duration) -> Result<UdpSocket, StartError> {
    UdpSocket::bind(SocketAddr::new(addr, port), timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::PortTaken { port, addr }
        } else {
            StartError::Io {
                what: format!("binding UDP {addr}:{port}"),
                source: e,
            }
        }
    })
}

/// Checks that need no change to the host, in the order a user would fix them.
pub fn preflight() -> Result<(), StartError> {
    if !has_net_admin() {
        return Err(StartError::NotPrivileged);
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(StartError::NoTun);
    }
    Ok(())
}

/// One tunnel as the daemon sees it: its handle in the gateway core, and what failover, probes and
/// status keep beside the IKE SAs.
struct Tunnel {
    id: TunnelId,
    /// The tunnel in the gateway (None: this process does not serve it, as an `emulate-aws`
    /// endpoint serves one).
    handle: Option<TunnelHandle>,
    cfg: Arc<IkeConfig>,
    prober: Prober,
    inside: Ipv4Net,
    aws_inside: Ipv4Addr,
    last_rx_packets: u64,
    child_since: Option<Instant>,
    child_spis: Option<(u32, u32)>,
    last_reason: Option<String>,
    rtt: Option<Duration>,
    ike_suite: Option<Suite>,
    esp_suite: Option<Suite>,
    nat: bool,
}

impl Tunnel {
    fn phase_states(&self, gw: &Gateway) -> (PhaseState, PhaseState) {
        let map = |l: LinkState| match l {
            LinkState::Established => PhaseState::Established,
            LinkState::Negotiating => PhaseState::Negotiating,
            LinkState::Down => PhaseState::Down,
        };
        let Some(h) = self.handle else {
            return (PhaseState::Down, PhaseState::Down);
        };
        let (p1, p2, rekeying) = gw.tunnel(h).phases();
        // A CREATE_CHILD_SA of ours in flight while established: AWS's "rekeying".
        let p2 = if rekeying && p2 == LinkState::Established {
            PhaseState::Rekeying
        } else {
            map(p2)
        };
        (map(p1), p2)
    }

    /// Seconds until cgwd rekeys the Child SA.
    fn next_rekey(&self, gw: &Gateway, now: Instant) -> Option<u64> {
        let at = gw.tunnel(self.handle?).next_child_rekey()?;
        Some(at.saturating_duration_since(now).as_secs())
    }

    /// The tunnel's IKE SA is established.
    fn ike_up(&self, gw: &Gateway) -> bool {
        self.handle
            .and_then(|h| gw.tunnel(h).sa)
            .is_some_and(|sa| sa.state() == State::Established)
    }
}

struct Daemon {
    conn: VpnConnection,
    settings: Settings,
    local: Ipv4Addr,
    tunnels: [Tunnel; 2],
    udp500: Arc<UdpSocket>,
    udp4500: Arc<UdpSocket>,
    /// IKE datagrams from both ports, in arrival order; the loop blocks here.
    input: Receiver<IkeInput>,
    shared: Arc<Shared>,
    monitor: Monitor,
    router: Router,
    icmp: Option<RawIcmp>,
    status: SharedStatus,
    started: Instant,
    last_status: Option<Instant>,
    routes_up: Option<bool>,
    /// emulate-aws: the maintenance rehearsal (None for `cgwd run`).
    maintenance: Option<crate::emulate::Maintenance>,
    /// emulate-aws: the routes AWS installs while its tunnel is up.
    aws_routes: Option<crate::emulate::AwsRoutes>,
    interface: String,
    /// Health records and Prometheus metrics (docs/observability.md).
    observer: Observer,
    /// The tunnels' IKE SAs and their lifecycle (sans-IO).
    gateway: Gateway,
    /// Requests from the control socket (`cgwd rekey`).
    commands: Receiver<Command>,
}

fn suite_algorithms(s: &Option<Suite>) -> Option<Algorithms> {
    s.map(|s| Algorithms {
        encryption: s.encryption.aws_name().to_string(),
        integrity: s.integrity.or(s.prf).map(|i| i.aws_name().to_string()),
        dh_group: s.dh.map(|g| g.number()),
    })
}

/// One IKE datagram out (port 4500 with the non-ESP marker). The 4500 socket is the data plane's
/// too: a send buffer momentarily full of ESP gets one more try a millisecond later, and a datagram
/// still not sent is logged (IKE retransmits requests, but a lost response waits for the peer's).
fn send_ike(udp500: &UdpSocket, udp4500: &UdpSocket, tx: &crate::ike::Transmit) {
    let send = || {
        if tx.from.port() == 4500 || tx.to.port() == 4500 {
            let mut data = Vec::with_capacity(tx.data.len() + 4);
            data.extend_from_slice(&NON_ESP_MARKER);
            data.extend_from_slice(&tx.data);
            udp4500.send_to(&data, tx.to)
        } else {
            udp500.send_to(&tx.data, tx.to)
        }
    };
    let mut r = send();
    if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
        std::thread::sleep(Duration::from_millis(1));
        r = send();
    }
    if let Err(e) = r {
        tracing::warn!(error = %e, to = %tx.to, bytes = tx.data.len(), "IKE datagram not sent");
    }
}

fn down_reason(f: &FailReason, was_up: bool) -> DownReason {
    match f {
        FailReason::DeletedByPeer => DownReason::DeleteReceived,
        FailReason::PeerNotResponding { .. } if was_up => DownReason::DpdTimeout,
        _ => DownReason::NegotiationFailed,
    }
}

/// Start everything, run until a signal, tear down.
pub fn run(config: &Path, settings_path: Option<&Path>) -> Result<(), StartError> {
    run_as(config, settings_path, &Role::Customer)
}

/// [`run`] in either role.
pub fn run_as(config: &Path, settings_path: Option<&Path>, role: &Role) -> Result<(), StartError> {
    let (conn, mut settings) = crate::config::load(config, settings_path)?;
    if let Role::Aws(a) = role {
        if let Some(p) = &a.control_socket {
            settings.control.socket = p.clone();
        }
        if let Some(n) = &a.interface {
            settings.interface.name = n.clone();
        }
        // The customer gateway's metrics listener and health log are not AWS's (and two endpoint
        // processes would fight over them).
        settings.metrics.listen = None;
        settings.log.health = Default::default();
    }
    let aws = match role {
        Role::Customer => None,
        Role::Aws(a) => Some(a.tunnel),
    };
    let served = TunnelId::BOTH.map(|id| aws.is_none_or(|t| t == id));
    preflight()?;
    let observer = Observer::start(&conn, &settings, aws.is_none()).map_err(StartError::Other)?;
    let signals = Signals::install().map_err(StartError::io("installing signal handlers"))?;

    // One local address for both tunnels: AWS sends both to the same customer gateway IP.
    let local_ip = match aws {
        Some(t) => conn.tunnel(t).aws_outside,
        None => crate::config::resolve_local_address(&settings, conn.tunnel(TunnelId::One))
            .map_err(StartError::io("finding the local address"))?,
    };
    let IpAddr::V4(local) = local_ip else {
        return Err(StartError::Other(format!(
            "local address {local_ip} is IPv6; cgwd supports IPv4 outside addresses"
        )));
    };
    let udp500 = Arc::new(bind(local_ip, 500, TICK)?);
    let udp4500 = Arc::new(bind(local_ip, 4500, POLL_INTERVAL)?);

    if settings.routing.vpc_cidrs.is_empty() {
        tracing::warn!(
            "routing.vpc_cidrs is empty: cgwd installs no routes; route the VPC networks to {} yourself",
            settings.interface.name
        );
    }
    let mtu = settings.interface_mtu(&conn);
    let mut addresses = Vec::new();
    for t in conn.tunnels.iter().filter(|t| served[t.id.index()]) {
        let ours = if aws.is_some() {
            t.aws_inside()
        } else {
            t.customer_inside()
        };
        addresses.push((ours, t.inside.prefix_len()));
    }
    let tun = Arc::new(
        Tun::create(&TunConfig {
            name: settings.interface.name.clone(),
            mtu,
            addresses: Vec::new(),
            offload: true,
        })
        .map_err(StartError::io(format!(
            "creating TUN device {}",
            settings.interface.name
        )))?,
    );
    let ifindex = tun.if_index().map_err(StartError::io("TUN interface index"))?;
    // AWS installs routes to the on-prem prefixes (static routing; BGP would feed the same hook)
    // through its own per-endpoint routes, not the customer gateway's Router.
    let far_side = match aws {
        Some(_) => Vec::new(),
        None => settings.routing.vpc_cidrs.clone(),
    };
    let aws_routes = aws.map(|t| {
        crate::emulate::AwsRoutes::new(
            &settings.interface.name,
            t,
            crate::emulate::RouteHook::static_routes(&settings),
        )
    });
    let mut router = Router::new(far_side, ifindex).map_err(|e| StartError::Other(e.to_string()))?;
    for &(addr, prefix) in &addresses {
        let net = Ipv4Net::new(addr, prefix).map_err(|e| StartError::Other(e.to_string()))?;
        router
            .add_address(net, ifindex)
            .map_err(|e| StartError::Other(e.to_string()))?;
    }

    let sas = Arc::new(SaTable::new());
    let shared = Arc::new(Shared::new(sas));
    let (ike_tx, ike_rx) = sync_channel(IKE_QUEUE);
    let first = conn.tunnel(TunnelId::One);
    let dp_config = DataplaneConfig {
        tunnel_mtu: mtu,
        tcp_mss: Some(crate::config::mss_for_mtu(mtu)),
        clear_df_bit: first.clear_df_bit,
        icmp_source: first.aws_inside(),
        keepalive: Some(KEEPALIVE_INTERVAL),
        answer_wait: settings.answer_wait(),
    };
    let dataplane = Dataplane::spawn(
        dp_config,
        tun.clone(),
        udp4500.clone(),
        shared.clone(),
        Some(ike_tx),
    )
    .map_err(StartError::io("starting data-plane workers"))?;

    let status: SharedStatus = Arc::new(Mutex::new(None));
    let (command_tx, commands) = sync_channel(super::control::COMMAND_QUEUE);
    let control = ControlServer::start(&settings.control.socket, status.clone(), command_tx)
        .map_err(|e| StartError::Other(e.to_string()))?;

    let timers = FailoverTimers::from_settings(&settings);
    let now = clock::now();
    let mut rng = OsRandom;
    let mut ike_configs = Vec::with_capacity(2);
    for id in TunnelId::BOTH {
        let cfg = match aws {
            Some(_) => crate::emulate::aws_ike_config(&conn, &settings, id),
            None => super::ike_config_for(&conn, &settings, id, local_ip),
        }
        .map_err(|e| StartError::Other(e.to_string()))?;
        ike_configs.push(Arc::new(cfg));
    }
    let mut gateway = Gateway::new();
    let tunnels = TunnelId::BOTH.map(|id| {
        let t = conn.tunnel(id);
        let cfg = ike_configs[id.index()].clone();
        use crate::crypto::Random;
        let ident = rng.next_u32() as u16;
        // "aws_inside" is the peer's inside address; in the AWS role the peer is the customer gateway.
        let (ours, peers) = match aws {
            Some(_) => (t.aws_inside(), t.customer_inside()),
            None => (t.customer_inside(), t.aws_inside()),
        };
        let behaviour = crate::emulate::Behaviour::of(t);
        let enabled = served[id.index()];
        shared.set_aws_inside(id, enabled.then_some(peers));
        let handle = enabled.then(|| {
            gateway.add_tunnel(
                TunnelSpec {
                    cfg: cfg.clone(),
                    initiate: aws.is_none() || behaviour.initiate_at_start,
                    reinitiate: aws.is_none() || behaviour.reinitiate_after_close,
                },
                now,
            )
        });
        Tunnel {
            id,
            handle,
            prober: Prober::new(ours, peers, ident, timers.probe_interval),
            inside: Ipv4Net::new(ours, t.inside.prefix_len()).unwrap_or(t.inside),
            aws_inside: peers,
            last_rx_packets: 0,
            child_since: None,
            child_spis: None,
            last_reason: None,
            rtt: None,
            ike_suite: None,
            esp_suite: None,
            nat: false,
            cfg,
        }
    });
    let icmp = match RawIcmp::open().and_then(|s| s.bind_to_device(tun.name()).map(|()| s)) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no raw ICMP socket: liveness probes off, failover relies on DPD");
            None
        }
    };
    // Without probes an idle tunnel would look cut: judge liveness by IKE (DPD) alone then.
    let timers = if icmp.is_some() {
        timers
    } else {
        FailoverTimers {
            suspect_after: Duration::from_secs(u64::from(u32::MAX)),
            ..timers
        }
    };
    tracing::info!(
        vpn = %conn.id,
        local = %local,
        tun = %tun.name(),
        mtu,
        policy = settings.failover.policy.name(),
        "cgwd running"
    );
    let input_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let input = spawn_ike_inputs(local, udp500.clone(), ike_rx, input_stop.clone())
        .map_err(StartError::io("starting IKE input threads"))?;
    let maintenance = match role {
        Role::Aws(_) => Some(
            crate::emulate::Maintenance::listen(&settings.control.socket)
                .map_err(StartError::io("binding the maintenance socket"))?,
        ),
        Role::Customer => None,
    };
    let mut d = Daemon {
        maintenance,
        aws_routes,
        monitor: Monitor::new(settings.failover.policy, timers),
        interface: tun.name().to_string(),
        conn,
        settings,
        local,
        tunnels,
        udp500,
        udp4500,
        input,
        shared,
        router,
        icmp,
        status,
        started: now,
        last_status: None,
        routes_up: None,
        observer,
        gateway,
        commands,
    };
    let result = d.run_loop(&signals);
    d.shutdown();
    if let Some(r) = d.aws_routes.as_mut() {
        r.sync(false);
    }
    input_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(control);
    dataplane.stop();
    if let Err(e) = d.router.teardown() {
        tracing::warn!(error = %e, "removing routes and addresses");
    }
    drop(tun);
    tracing::info!("cgwd stopped");
    result
}

impl Daemon {
    fn run_loop(&mut self, signals: &Signals) -> Result<(), StartError> {
        while !signals.stop_requested() {
            // Sleep until an IKE datagram arrives or the next tick; then at most IKE_PER_TICK of
            // them before timers, probes and failover run (a flood cannot delay DPD or failover).
            match self.input.recv_timeout(TICK) {
                Ok(first) => {
                    let mut next = Some(first);
                    let mut handled = 0;
                    while let Some(i) = next {
                        self.ike_datagram(clock::now(), i.from, i.to, &i.data);
                        handled += 1;
                        next = (handled < IKE_PER_TICK)
                            .then(|| self.input.try_recv().ok())
                            .flatten();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StartError::Other("IKE input threads stopped".into()));
                }
            }
            if signals.take_reopen() {
                self.observer.reopen();
            }
            let now = clock::now();
            self.observer.poll(now);
            if !self.maintenance_tick(now) {
                self.timers(now);
            }
            while let Ok(c) = self.commands.try_recv() {
                self.command(c, now);
            }
            self.probes(now);
            self.failover(now);
            if self
                .last_status
                .is_none_or(|t| now.saturating_duration_since(t) >= STATUS_EVERY)
            {
                self.publish_status(now);
            }
        }
        tracing::info!("stop requested");
        Ok(())
    }

    /// A request from the control socket.
    fn command(&mut self, c: Command, now: Instant) {
        match c {
            Command::Rekey { tunnel, ike } => {
                let Some(h) = self.tunnels[tunnel.index()].handle else {
                    tracing::warn!(%tunnel, "rekey requested, but this process does not serve the tunnel");
                    return;
                };
                tracing::info!(%tunnel, what = if ike { "IKE SA" } else { "Child SA" }, "rekey requested");
                if !self.gateway.rekey(h, now, ike) {
                    tracing::warn!(%tunnel, "rekey requested, but the tunnel has no established IKE SA");
                }
                self.apply_outputs(now);
            }
            Command::Tunnel { tunnel, op } => {
                let Some(h) = self.tunnels[tunnel.index()].handle else {
                    tracing::warn!(%tunnel, "this process does not serve the tunnel");
                    return;
                };
                self.gateway.operate(h, now, op);
                self.apply_outputs(now);
                if self.gateway.admin_down(h) {
                    self.tunnels[tunnel.index()].last_reason =
                        Some("taken down by the operator (`cgwd tunnel up` brings it back)".into());
                }
                self.publish_status(now);
            }
        }
    }

    /// emulate-aws maintenance rehearsal: on a request DELETE the served SAs and forget them; true while
    /// the endpoint is silent.
    fn maintenance_tick(&mut self, now: Instant) -> bool {
        let Some(m) = self.maintenance.as_mut() else {
            return false;
        };
        if let Some(d) = m.take_request(now) {
            tracing::warn!(duration = ?d, "maintenance: deleting the SAs and going silent");
            for h in self.tunnels.iter().filter_map(|t| t.handle) {
                self.gateway.reset(h, now);
            }
            self.apply_outputs(now);
        }
        self.maintenance.as_mut().is_some_and(|m| m.silent(now))
    }

    fn index_of(&self, h: TunnelHandle) -> usize {
        self.tunnels
            .iter()
            .position(|t| t.handle == Some(h))
            .unwrap_or_default()
    }

    fn ike_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        if self.maintenance.as_mut().is_some_and(|m| m.silent(now)) {
            return;
        }
        if let Some(h) = self.gateway.tunnel_for_peer(from) {
            let i = self.index_of(h);
            self.observer.inbound[i] = ike_header(data);
        }
        self.gateway.handle_datagram(now, from, to, data);
        self.apply_outputs(now);
    }

    fn timers(&mut self, now: Instant) {
        if self.gateway.poll_timeout().is_some_and(|t| t <= now) {
            self.gateway.handle_timeout(now);
            self.apply_outputs(now);
        }
    }

    /// Carry out what the gateway core asks, in its order: send IKE datagrams, change the SA table,
    /// act on tunnel events (failover, health records, status).
    fn apply_outputs(&mut self, now: Instant) {
        while let Some(o) = self.gateway.poll_output() {
            match o {
                Output::Transmit { tunnel, current, tx } => {
                    let i = self.index_of(tunnel);
                    let record = current.then(|| self.observer.sent(i, &tx.data)).flatten();
                    send_ike(&self.udp500, &self.udp4500, &tx);
                    if let Some(h) = record {
                        self.report(i, &h, now);
                    }
                }
                Output::Sa(c) => self.sa_command(c),
                Output::Event { tunnel, event } => {
                    let i = self.index_of(tunnel);
                    self.tunnel_event(i, event, now);
                }
            }
        }
    }

    fn sa_command(&mut self, c: SaCommand) {
        let sas = &self.shared.sas;
        match c {
            SaCommand::InstallInbound(child) => {
                if let Err(e) = sas.install_inbound(&child) {
                    tracing::error!(tunnel = %child.tunnel, error = %e, "installing the Child SA failed");
                }
            }
            SaCommand::Install(child) => {
                // Installed inbound already (a peer's rekey, AWS's newer IKE SA): switch outbound only.
                let installed = match sas.install(&child) {
                    Err(crate::esp::InstallError::DuplicateSpi(_)) => sas.switch_outbound(&child),
                    r => r,
                };
                if let Err(e) = installed {
                    tracing::error!(tunnel = %child.tunnel, error = %e, "installing the Child SA failed");
                    return;
                }
                if let SocketAddr::V4(peer) = child.remote {
                    self.shared.set_peer(child.tunnel, Some(peer));
                } else {
                    self.shared.set_peer(child.tunnel, None::<SocketAddrV4>);
                }
            }
            SaCommand::RemoveInbound(spi) => {
                sas.remove_inbound(spi);
            }
            SaCommand::RemoveOutbound(tunnel, spi) => {
                sas.remove_outbound(tunnel, spi);
            }
            SaCommand::RemoveTunnel(tunnel) => {
                sas.remove_tunnel(tunnel);
            }
        }
    }

    /// A health record for `ev` on tunnel `i`, with the state the tunnel is in now.
    fn report(&mut self, i: usize, ev: &HealthEvent, now: Instant) {
        let t = &self.tunnels[i];
        let (p1, p2) = t.phase_states(&self.gateway);
        let state = TunnelHealth {
            phase1: p1,
            phase2: p2,
            dpd_enabled: true,
            nat_t_detected: t.nat,
            bgp_established: None,
            bgp_routes: None,
        };
        self.observer.event(t.id, state, ev, now);
    }

    /// A tunnel event from the gateway core: what failover, health records and status make of it
    /// (the SA table has been changed already).
    fn tunnel_event(&mut self, i: usize, ev: TunnelEvent, now: Instant) {
        let id = self.tunnels[i].id;
        let ev = match ev {
            TunnelEvent::Ike(ev) => *ev,
            TunnelEvent::ChildRekeyed { .. } => {
                let current = self.tunnels[i]
                    .handle
                    .and_then(|h| self.gateway.tunnel(h).status())
                    .and_then(|s| s.child_spis);
                if current.is_some() {
                    self.tunnels[i].child_spis = current;
                }
                return;
            }
            TunnelEvent::MovedToPeersIkeSa
            | TunnelEvent::OldIkeSaDeleted
            | TunnelEvent::Closed { .. }
            | TunnelEvent::Initiating
            | TunnelEvent::RekeyStarted { .. } => return,
        };
        self.observe_event(i, &ev, now);
        let status = self.tunnels[i]
            .handle
            .and_then(|h| self.gateway.tunnel(h).status());
        match ev {
            Event::Established => {
                let t = &mut self.tunnels[i];
                t.last_reason = None;
                if let Some(s) = status {
                    t.ike_suite = s.ike_suite;
                    t.nat = s.nat_detected;
                }
            }
            Event::ChildUp(child) => {
                let t = &mut self.tunnels[i];
                t.child_since.get_or_insert(now);
                t.child_spis = Some((child.inbound.spi.0, child.outbound.spi.0));
                t.esp_suite = status.and_then(|s| s.esp_suite);
                // Start counting inbound from here.
                t.last_rx_packets = self.shared.sas.counters().tunnels[i].packets_in;
                self.monitor.child_up(id, now);
                self.failover(now);
                self.publish_status(now);
            }
            Event::ChildDown { .. } => {
                let t = &mut self.tunnels[i];
                t.child_spis = None;
                t.child_since = None;
                // After `Failed` (DPD timeout, ...) the IKE SA's teardown also reports ChildDown:
                // keep the more precise reason recorded first.
                if !matches!(
                    self.monitor.health(id).child,
                    crate::failover::ChildState::Down(_)
                ) {
                    t.last_reason = Some("AWS deleted the Child SA".into());
                    self.monitor.child_down(id, DownReason::DeleteReceived, now);
                }
                self.failover(now);
                self.publish_status(now);
            }
            Event::ChildInbound(_) | Event::IkeRekeyed { .. } => {}
            Event::ChildFailed(f) => {
                self.tunnels[i].last_reason = Some(f.message());
                // A refused rekey leaves the current Child SA working.
                let still_up = status.is_some_and(|s| s.child_spis.is_some());
                if !still_up {
                    self.monitor.child_down(id, DownReason::NegotiationFailed, now);
                }
            }
            Event::Failed(f) => {
                let was_up = self.tunnels[i].child_since.is_some();
                self.tunnels[i].last_reason = Some(f.message());
                self.monitor.child_down(id, down_reason(&f.reason, was_up), now);
            }
            Event::Closed => {
                let t = &mut self.tunnels[i];
                t.child_spis = None;
                t.child_since = None;
                t.ike_suite = None;
                t.esp_suite = None;
                if !matches!(
                    self.monitor.health(id).child,
                    crate::failover::ChildState::Down(_)
                ) {
                    self.monitor.child_down(id, DownReason::Closed, now);
                }
                self.failover(now);
                self.publish_status(now);
            }
        }
    }

    /// Health records and SA facts (rekeys, ages) for an IKE event, before the daemon acts on it.
    fn observe_event(&mut self, i: usize, ev: &Event, now: Instant) {
        let t = &self.tunnels[i];
        let ike_up = t.ike_up(&self.gateway);
        let mut completed = self.observer.rekey_events(i);
        let f = &mut self.observer.facts[i];
        let mut rekey = Vec::new();
        let ev = match ev {
            Event::Established => {
                f.ike_since = Some(now);
                Some(HealthEvent::IkeSaUp)
            }
            Event::ChildUp(child) => {
                if t.child_since.is_some() {
                    f.child_rekeys += 1;
                    rekey = std::mem::take(&mut completed);
                }
                f.child_since = Some(now);
                Some(HealthEvent::ChildSaUp {
                    spi: child.inbound.spi.0,
                })
            }
            // A rekey's old SA comes as `ChildRekeyed`: this Child SA the tunnel lost.
            Event::ChildDown { outbound, .. } => {
                let already_down = matches!(
                    self.monitor.health(t.id).child,
                    crate::failover::ChildState::Down(_)
                );
                f.child_since = None;
                // The IKE SA went with it: AWS deleted the IKE SA (a failure such as a DPD timeout
                // was reported before and marked the tunnel down). Otherwise AWS deleted this Child
                // SA, naming its inbound SPI: our outbound.
                (!already_down && !self.observer.closing).then_some(if ike_up {
                    HealthEvent::DeleteChildSaReceived { spi: outbound.0 }
                } else {
                    HealthEvent::DeleteIkeSaReceived
                })
            }
            // The peer's rekey answered (inbound half installed; `ChildUp` follows when the old SA
            // goes): the CREATE_CHILD_SA records belong to this message.
            Event::ChildInbound(_) => {
                rekey = std::mem::take(&mut completed);
                None
            }
            Event::IkeRekeyed { .. } => {
                f.ike_rekeys += 1;
                f.ike_since = Some(now);
                rekey = std::mem::take(&mut completed);
                None
            }
            Event::ChildFailed(e) => failure_event(&e.reason, true, true, t.cfg.retransmit.retries),
            Event::Failed(e) => {
                failure_event(&e.reason, f.ike_since.is_some(), false, t.cfg.retransmit.retries)
            }
            Event::Closed => {
                f.ike_since = None;
                f.child_since = None;
                None
            }
        };
        for ev in rekey.iter().chain(&ev) {
            self.report(i, ev, now);
        }
    }

    /// Inbound accounting and liveness probes.
    fn probes(&mut self, now: Instant) {
        let counters = self.shared.sas.counters();
        for i in 0..2 {
            let id = self.tunnels[i].id;
            let packets = counters.tunnels[i].packets_in;
            if packets != self.tunnels[i].last_rx_packets {
                self.tunnels[i].last_rx_packets = packets;
                self.monitor.inbound(id, now);
            }
        }
        let Some(icmp) = &self.icmp else { return };
        let mut buf = [0u8; 1500];
        // Bounded: a flood of echo replies through the tunnel cannot hold the control loop.
        for _ in 0..PROBE_REPLIES_PER_TICK {
            let Ok(Some(pkt)) = icmp.try_recv(&mut buf) else {
                break;
            };
            for t in &mut self.tunnels {
                if let Inbound::Reply { rtt } = t.prober.handle(pkt, now) {
                    t.rtt = Some(rtt);
                    self.monitor.probe_reply(t.id, now);
                    break;
                }
            }
        }
        for t in &mut self.tunnels {
            if t.child_spis.is_none() {
                continue;
            }
            let h = self.monitor.health(t.id);
            let heard = h.last_inbound.max(h.last_probe_reply);
            if let Some(pkt) = t.prober.poll(now, heard)
                && let Err(e) = icmp.send(&pkt, t.aws_inside)
            {
                tracing::debug!(tunnel = %t.id, error = %e, "probe send failed");
            }
        }
    }

    fn failover(&mut self, now: Instant) {
        let (d, changed) = self.monitor.tick(now);
        if changed {
            match d.outbound {
                Outbound::None => self.shared.set_active(None),
                Outbound::One(t) => self.shared.set_active(Some(t)),
                // Active-active: the data plane spreads flows over both tunnels by flow hash.
                Outbound::Both => self.shared.set_active_both(),
            }
            tracing::info!(outbound = ?d.outbound, verdicts = ?d.verdicts, "outbound tunnel changed");
            self.last_status = None;
        }
        let any_up = d.verdicts.iter().any(|v| *v != Verdict::Down);
        if let Some(r) = self.aws_routes.as_mut() {
            // AWS withdraws a static route as soon as its tunnel is in doubt, so the other endpoint's
            // route (higher metric) carries the traffic.
            let serving = d
                .verdicts
                .iter()
                .zip(&self.tunnels)
                .any(|(v, t)| t.handle.is_some() && matches!(v, Verdict::Healthy | Verdict::Settling));
            r.sync(serving);
        }
        if self.routes_up != Some(any_up) {
            match self.router.sync(any_up) {
                Ok(_) => self.routes_up = Some(any_up),
                Err(e) => tracing::warn!(error = %e, "route update failed; retrying"),
            }
        }
    }

    fn publish_status(&mut self, now: Instant) {
        self.last_status = Some(now);
        let counters = self.shared.sas.counters();
        let outbound = self.monitor.outbound();
        let decision = crate::failover::decide(
            &[
                *self.monitor.health(TunnelId::One),
                *self.monitor.health(TunnelId::Two),
            ],
            self.monitor.policy,
            outbound.primary(),
            &self.monitor.timers,
            now,
        );
        let tunnels = self
            .tunnels
            .iter()
            .map(|t| {
                let i = t.id.index();
                let (p1, p2) = t.phase_states(&self.gateway);
                let c = &counters.tunnels[i];
                let verdict = decision.verdicts[i];
                let liveness = match verdict {
                    Verdict::Down => "down",
                    Verdict::Suspect => "suspect",
                    Verdict::Settling => "settling",
                    Verdict::Healthy => "healthy",
                };
                let tc = self.conn.tunnel(t.id);
                TunnelStatus {
                    tunnel: t.id.number(),
                    ike_phase1_state: p1,
                    ike_phase2_state: p2,
                    local_outside: IpAddr::V4(self.local),
                    aws_outside: tc.aws_outside,
                    inside: t.inside,
                    aws_inside: t.aws_inside,
                    phase1_algorithms: suite_algorithms(&t.ike_suite),
                    phase2_algorithms: suite_algorithms(&t.esp_suite),
                    spi_in: t.child_spis.map(|(i, _)| format!("{i:08x}")),
                    spi_out: t.child_spis.map(|(_, o)| format!("{o:08x}")),
                    uptime_secs: t.child_since.map(|s| now.saturating_duration_since(s).as_secs()),
                    next_rekey_secs: t.next_rekey(&self.gateway, now),
                    traffic: Traffic {
                        packets_in: c.packets_in,
                        bytes_in: c.bytes_in,
                        packets_out: c.packets_out,
                        bytes_out: c.bytes_out,
                    },
                    drops: c
                        .drops
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(r, n)| (r.name().to_string(), n))
                        .collect(),
                    nat_t_detected: t.nat,
                    dpd_enabled: true,
                    liveness: liveness.into(),
                    probe_rtt_ms: t.rtt.map(|r| r.as_secs_f64() * 1000.0),
                    active: outbound.tunnel_for(0) == Some(t.id) || outbound == Outbound::Both,
                    reason: if verdict == Verdict::Suspect {
                        Some("no answer from AWS inside address (probe)".into())
                    } else if p2.is_up() {
                        None
                    } else {
                        t.last_reason.clone()
                    },
                }
            })
            .collect();
        let snap = StatusSnapshot {
            cgwd_version: env!("CARGO_PKG_VERSION").into(),
            vpn_connection_id: self.conn.id.clone(),
            interface: self.interface.clone(),
            failover_policy: self.settings.failover.policy.name().into(),
            outbound: match outbound {
                Outbound::None => "none".into(),
                Outbound::One(t) => format!("tunnel-{}", t.number()),
                Outbound::Both => "both".into(),
            },
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
            failovers: self.monitor.switches,
            ike_input: self.gateway.stats(),
            ike_half_open: self.gateway.half_open() as u64,
            tunnels,
            routes: self
                .router
                .installed()
                .iter()
                .map(|r| RouteStatus {
                    destination: r.dst,
                    device: self.interface.clone(),
                })
                .collect(),
        };
        self.observer.status(&snap, now);
        if let Ok(mut s) = self.status.lock() {
            *s = Some(snap);
        }
    }

    /// DELETE every IKE SA (sent, not awaited beyond a short grace).
    fn shutdown(&mut self) {
        let now = clock::now();
        self.observer.closing = true;
        for i in 0..2 {
            if self.tunnels[i].ike_up(&self.gateway) {
                self.report(i, &HealthEvent::IkeSaDeletedByCgwd, now);
            }
        }
        self.gateway.close_all(now);
        self.apply_outputs(now);
        // A DELETE queued behind a request in flight leaves when that request is answered, or after
        // `CLOSE_WAIT` without an answer (the IKE SA's timer): wait for that too, then the grace.
        let (_, queued) = self.gateway.deleting();
        let deadline = now
            + SHUTDOWN_GRACE
            + if queued {
                crate::ike::CLOSE_WAIT
            } else {
                Duration::ZERO
            };
        loop {
            let now = clock::now();
            if now >= deadline || !self.gateway.deleting().0 {
                break;
            }
            self.timers(now);
            let wait = self
                .gateway
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK))
                .min(deadline.saturating_duration_since(now));
            if let Ok(i) = self.input.recv_timeout(wait) {
                self.ike_datagram(clock::now(), i.from, i.to, &i.data);
            }
        }
        self.shared.set_active(None);
    }
}
